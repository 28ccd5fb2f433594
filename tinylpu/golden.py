"""The golden model: a cycle-accurate instruction-level simulator of the tile, in NumPy.

It is the executable specification. It keeps the tile's memories, executes the host
protocol (:mod:`tinylpu.host`) and the ISA (:mod:`tinylpu.isa`) with the RTL's timing: a
read issued in cycle c sees every write that landed at the end of a cycle before c (and
none that lands later, even if its instruction was executed first), and the result of a
row block is written ``LAT_WRITE`` cycles after its last read. Values and status words
leaving the RTL must equal the ones leaving this model, bit for bit.
"""

__all__ = ["GoldenTile", "RunResult", "GoldenError"]

import bisect
import dataclasses
import heapq

import numpy as np

from tinylpu import host, isa
from tinylpu.config import ACT_BITS, ELEM_ADDR_BITS, X_BITS
from tinylpu.numerics import (exp2_neg, isqrt, norm_recip, norm_requantize, requantize, rope_rotate,
                       rsqrt_scale, saturate, silu_gate,
                       silu_interp, wrap)


class GoldenError(RuntimeError):
    """A program the golden model refuses: one it cannot finish (no HALT), or (strict mode)
    one that breaks a schedule rule (docs/isa.md, "Schedule rules")."""


@dataclasses.dataclass
class RunResult:
    cycles: int            # start cycle .. first idle cycle, as the RTL's cycle counter
    status: int            # host.STATUS_* bits
    hazards: list          # (cycle, bank, word) of every read of a word with a write in flight
    instructions: int      # instructions issued, HALT included
    counters: dict = None  # the busy counters at the end (host.COUNTERS names -> cycles)
    # the busy counters at the end of each NEXT's last cycle T, as if read then: each counts
    # the cycles before T (cycles: T itself, the start cycle being cycle 0)
    next_counters: list = None
    # not strict: the schedule rules broken (messages), whose status bits are in ``status``
    refusals: list = dataclasses.field(default_factory=list)


def _sext(values, bits):
    return wrap(values, bits)


class GoldenTile:
    """Memories and execution of one tile of configuration ``cfg``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.wmem = np.zeros((cfg.rows, cfg.wwords, cfg.lanes), dtype=np.int64)
        self.amem = np.zeros((cfg.act_banks, cfg.adepth, cfg.lanes), dtype=np.int64)
        self.pmem = [0] * cfg.pdepth
        self.table = np.zeros(isa.TABLE_DEPTH, dtype=np.int64)
        self.tmem = np.zeros(cfg.tdepth, dtype=np.int64)
        self.mmem = np.zeros((cfg.mdepth, cfg.rows), dtype=np.int64)
        self.rmem = np.zeros((cfg.rdepth, cfg.rows), dtype=np.int64)
        self.wbuf = np.zeros(cfg.lanes, dtype=np.int64)    # y_wbank's weight-word buffer
        self.maxima = np.zeros(2 * cfg.rows, dtype=np.int64)             # QK's running maxima
        self.next_token = 0
        self.norm = 0              # the norm register: RMSNorm's scale, b << 16 | m
        self.bad_command = False
        self.emitted = []          # (id, cycle) of the last GENERATE
        self.counters = [0] * len(host.Counter)    # the busy counters of the last run
        self.ctrl = host.ctrl_reset(cfg)           # the control registers (host.Ctrl)
        self.on_emit = None        # called with (id, cycle) as NEXT emits (streaming)
        # strict: a broken schedule rule raises GoldenError; else the run goes on, and the
        # status has the rule's bit (the RTL's; the data of such a run is undefined)
        self.strict = True

    # Memory access by host target ---------------------------------------------------------

    def _memory(self, target):
        cfg = self.cfg
        if host.TARGET_WBANK <= target < host.TARGET_WBANK + cfg.rows:
            return self.wmem[target - host.TARGET_WBANK]
        if host.TARGET_ABANK <= target < host.TARGET_ABANK + cfg.act_banks:
            return self.amem[target - host.TARGET_ABANK]
        if target == host.TARGET_TABLE:
            return self.table.reshape(-1, 1)
        if target == host.TARGET_TOKENS:
            return self.tmem.reshape(-1, 1)
        if target == host.TARGET_MMEM:
            return self.mmem
        if target == host.TARGET_RMEM:
            return self.rmem
        raise host.HostError(f"target {target:#x} does not exist in config {cfg.ident}")

    def write(self, target, address, words):
        if target == host.TARGET_CTRL:          # beyond the last register: ignored
            for i, word in enumerate(np.asarray(words).reshape(-1)):
                if address + i < len(self.ctrl) and address + i not in host.CTRL_READ_ONLY:
                    self.ctrl[address + i] = int(word) & 0xffffffff
            return
        if target == host.TARGET_PROG:
            cfg = self.cfg
            for i, word in enumerate(words):        # with its legality (isa.stored_word)
                self.pmem[(address + i) % cfg.pdepth] = isa.stored_word(
                    word, cfg.attention, cfg.wbytes, cfg.pv)
            return
        mem = self._memory(target)
        words = np.asarray(words, dtype=np.int64).reshape(-1, mem.shape[1])
        rows = (address + np.arange(len(words))) % len(mem)
        mem[rows] = words

    def read(self, target, address, count):
        if target == host.TARGET_PROG:
            return [self.pmem[(address + i) % self.cfg.pdepth] for i in range(count)]
        if target == host.TARGET_CTRL:
            return np.array([[self.ctrl[a] if a < len(self.ctrl) else 0]
                             for a in range(address, address + count)], dtype=np.int64)
        if target == host.TARGET_COUNTERS:     # 32-bit counters; beyond the last one, 0
            n = len(self.counters)
            return np.array([[self.counters[a] & 0xffffffff if a < n else 0]
                             for a in range(address, address + count)], dtype=np.int64)
        mem = self._memory(target)
        return mem[(address + np.arange(count)) % len(mem)].copy()

    # The host stream ----------------------------------------------------------------------

    def host(self, beats):
        """Execute a stream of host beats; return the response beats (as the RTL would)."""
        cfg, out, i = self.cfg, [], 0
        self.last_run = None
        while i + 1 < len(beats):
            word0, address = beats[i], beats[i + 1]
            fields = host.Header.from_bits(word0)
            cmd, target, count = fields.cmd, fields.target, fields.count
            i += 2
            if cmd == host.CMD_GENERATE and (count == 0 or address == 0):
                self.bad_command = True          # GENERATE needs a prompt and a step
                continue
            n_end = count + address - 1
            if cmd == host.CMD_GENERATE and (n_end > self.ctrl[host.Ctrl.POSITIONS]
                                             or n_end >= cfg.tdepth):
                self.last_run_at = len(out)      # refused: RANGE, cycles 0, nothing runs
                out += [host.STATUS_RANGE | (host.STATUS_BAD_COMMAND if self.bad_command
                                             else 0), 0]
                self.bad_command = False
                continue
            if cmd in (host.CMD_RUN, host.CMD_GENERATE):
                if cmd == host.CMD_RUN:
                    self.last_run = self.run(address)
                else:
                    self.last_run = self.run(0, n_prompt=count, steps=address)
                    for token, cycle in self.emitted:
                        out += [token, cycle & 0xffffffff]
                self.last_run_at = len(out)      # where its status beat is in the response
                out += [self.last_run.status, self.last_run.cycles & 0xffffffff]
                continue
            if cmd not in (host.CMD_WRITE, host.CMD_READ):
                self.bad_command = True
                continue
            try:
                host.target_depth(cfg, target)
                valid = True
            except host.HostError:
                valid, self.bad_command = False, True
            n = host.beats(cfg, target) if valid else host.beats(cfg, 0)
            if cmd == host.CMD_WRITE:
                payload = beats[i:i + count * n]
                i += count * n
                if target == host.TARGET_COUNTERS:     # read-only: the payload is dropped
                    self.bad_command = True
                elif valid:
                    self.write(target, address, host.unpack_words(cfg, target, payload))
            else:
                if valid:
                    out += host.pack_words(cfg, target, self.read(target, address, count))
                else:
                    out += [0] * (count * n)
        return out

    # Execution ----------------------------------------------------------------------------

    def run(self, start_pc=0, max_instructions=1 << 24, *, n_prompt=0, steps=0):
        """Execute from ``start_pc`` until HALT. With ``steps`` (GENERATE), NEXT runs the
        token loop over positions ``0 .. n_prompt + steps - 2``."""
        cfg = self.cfg
        generate = steps > 0
        n_end = n_prompt + steps - 1
        st = _RunState(self.strict)
        self.emitted = []
        self.counters = [0] * len(host.Counter)
        slots = [0] * len(host.Counter)    # issue-slot cycles per counter
        next_counters = []
        pos = 0
        t = 1              # cycle 0 fetches the first instruction
        issued = 0

        jump = {}

        def next_step(pc):
            """NEXT issued in cycle t: emit, record, advance pos; returns the loop decision."""
            nonlocal pos
            st.land_before(t, self)
            if st.pending_next():
                st.refuse(host.STATUS_RAW_HAZARD,
                          f"NEXT at pc {pc} (cycle {t}) issues before "
                          f"the argmax result lands")
            p1 = pos + 1
            if generate and p1 >= n_prompt:
                self.emitted.append((int(self.next_token), t))
                if self.on_emit is not None:
                    self.on_emit(int(self.next_token), t)
                self.tmem[p1 % cfg.tdepth] = self.next_token
            pos = p1
            jump[pc] = generate and p1 < n_end

        budget = self.ctrl[host.Ctrl.BUDGET]
        try:
            for pc, instr in isa.execution_order(self.pmem, start_pc, max_instructions,
                                                 on_next=lambda pc, _: jump.pop(pc),
                                                 illegal_stops=True,
                                                 attention=cfg.attention,
                                                 wbytes=bool(cfg.wbytes),
                                                 pv=bool(cfg.pv),
                                                 detect_loops=budget == host.ctrl_reset(
                                                     cfg)[host.Ctrl.BUDGET]):
                issued += 1
                op = instr["op"]
                over = t >= budget                # not issued: the budget is spent
                if op == isa.Opcode.HALT or op is None or over:   # None: an illegal word
                    st.land_before(float("inf"), self)
                    status = host.STATUS_DONE | (host.STATUS_TIMEOUT if over else
                                                 host.STATUS_ILLEGAL if op is None else 0)
                    if st.conflict:
                        status |= host.STATUS_PORT_CONFLICT
                    if st.hazards:
                        status |= host.STATUS_RAW_HAZARD
                    status |= st.violations
                    if self.bad_command:
                        status |= host.STATUS_BAD_COMMAND
                        self.bad_command = False
                    cycles = max(t + 1, st.last_write + 1)
                    self.counters = st.counters(slots, cycles)
                    return RunResult(cycles, status, st.hazards, issued,
                                     dict(zip(host.COUNTERS, self.counters)), next_counters,
                                     st.refusals)
                u = t + isa.ISSUE_LAT             # a unit's first read (registered issue)
                if op == isa.Opcode.MATVEC:
                    st.land_before(u, self)
                    mv = instr["args"]["matvec"]
                    if mv["norm"]:            # its first block reads the norm register then
                        read = u + isa.matvec_dims(mv)[1] - 1 + isa.LAT_NORM_READ
                        st.land_norm_before(read, self)
                        if st.norm_pending:
                            st.refuse(
                                host.STATUS_RAW_HAZARD,
                                f"MATVEC at pc {pc} reads the norm register in cycle {read}, "
                                f"before the write that sets it lands (cycle "
                                f"{st.norm_pending[0][0]})")
                    self._matvec(instr["args"]["matvec"], u, pos, st)
                elif op == isa.Opcode.VOP:
                    tok = int(self.tmem[pos % cfg.tdepth])
                    self._vop(instr["args"]["vop"], u, pos, tok, st, pc)
                elif op == isa.Opcode.QK:
                    st.land_before(u, self)
                    self._qk(instr["args"]["qk"], u, pos, st)
                elif op == isa.Opcode.PV:
                    st.land_before(u, self)
                    self._pv(instr["args"]["pv"], u, pos, st, pc)
                duration = isa.duration(instr, pos)
                slots[_SLOT_COUNTER[op]] += duration
                if op == isa.Opcode.NEXT:
                    next_step(pc)
                t += duration
                if op == isa.Opcode.NEXT:
                    next_counters.append(dict(zip(host.COUNTERS, st.counters(slots, t))))
        except isa.IsaError as error:
            raise GoldenError(str(error)) from None

    def _matvec(self, a, t, pos, st):
        """One MATVEC, event by event in cycle order: the x reads of each chunk, then for a
        block's last chunk its write (in flight from that cycle on) and, with RESID, the
        read of the old destination lanes ``LAT_RESID_READ`` cycles later."""
        if a["x_exp"]:
            return self._pv_pass(a, t, pos, st)
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        nb, nc = isa.matvec_dims(a)
        bank, y_bank = a["x_bank"] % cfg.act_banks, a["y_bank"] % cfg.act_banks
        st.read_port(range(t, t + nb * nc), bank)
        idx, y_base = _y_index(a, pos)
        resid = a["epi"] == isa.Epi.RESID.value
        rope_word = a["rope_base"] + (pos << a["rope_shift"])
        bits = a["y_bits"] or 64
        # ROPE rotates int16 pairs: a narrower y_bits saturates the rotation only
        rq_bits = max(bits, 16) if a["epi"] == isa.Epi.ROPE.value else bits
        olds = []                         # (cycle, block's write entry, y) awaiting RESID
        entries = []                      # the blocks' write entries
        best = (0, 0)                     # ARGMAX: the largest result so far, its row
        for b in range(nb):
            acc = np.zeros(R, dtype=np.int64)
            for k in range(nc):
                c = t + b * nc + k
                while olds and olds[0][0] <= c:
                    self._resid(st, y_bank, *olds.pop(0), bits)
                x = _sext(st.read(self, c, bank, (a["x_addr"] + k) % cfg.adepth), X_BITS)
                w = st.wread(self, c, cfg.wphys(a["w_base"] + b * nc + k))
                acc = wrap(acc + w @ x, cfg.acc_bits)
            mult = (self.mmem[(a["m_base"] + b) % cfg.mdepth] if a["m_rows"]
                    else np.int64(a["q_mult"]))
            if a["norm"]:
                read = t + b * nc + nc - 1 + isa.LAT_NORM_READ    # this block's read
                st.norm_reads = [r for r in st.norm_reads if r >= t] + [read]
                y = norm_requantize(acc, mult, a["q_shift"], self.norm & 0x7fff,
                                    (self.norm >> 16) & 63, rq_bits)
            else:
                y = requantize(acc, mult, a["q_shift"], rq_bits)
            epi = isa.Epi(a["epi"]) if a["epi"] < len(isa.Epi) else isa.Epi.NONE
            if epi == isa.Epi.ROPE:
                packed = bool(a["y_pack"])
                word = rope_word + isa.rope_block(R, packed, b) % (1 << a["rope_shift"])
                extra = isa.head_shift_entry(a["head_shift"], isa.block_head_slot(b, R, L))
                y = self._rope(wrap(y, ACT_BITS), word, bits, isa.rope_entries(R, packed, b),
                               extra)
            elif epi == isa.Epi.ARGMAX:
                lane = int(np.argmax(wrap(y, ACT_BITS)))
                if b == 0 or wrap(y, ACT_BITS)[lane] > best[0]:
                    best = (wrap(y, ACT_BITS)[lane], b * R + lane)
            elif epi == isa.Epi.SILU_GATE:
                y = silu_gate(wrap(y[0:R // 2 * 2:2], 16), wrap(y[1:R // 2 * 2:2], ACT_BITS),
                              self._silu_table(), a["epi_shift"], bits)
            last = t + b * nc + nc - 1
            st.result(last + isa.LAT_RESULT)
            half = (a["y_pack"] and not resid) or epi == isa.Epi.SILU_GATE
            if a["y_wbank"]:         # into the weight-word buffer (isa.wbank_slot) ...
                w_bank, lane = isa.wbank_slot(b, R, L)
                self.wbuf[lane:lane + R] = wrap(y, cfg.data_bits)
                if lane == L - R:    # ... which its last lanes' block writes
                    st.push(last + isa.LAT_WRITE, "mac", ("w", w_bank), cfg.wphys(y_base),
                            np.arange(L), self.wbuf.copy(), produced=last)
                # the others write nothing, but pass through the output unit all the same
                st.last_write = max(st.last_write, last + isa.LAT_WRITE)
                continue
            if a["y_wcol"]:          # one byte a result: a column (isa.wcol_slot)
                word, lane = isa.wcol_slot(b, idx, L, a["y_shift"])
                for r in range(R):
                    st.push(last + isa.LAT_WRITE, "mac", ("w", r),
                            cfg.wphys(a["y_addr"] + word), np.array([lane]),
                            wrap(y[r:r + 1], cfg.data_bits), produced=last)
                continue
            if half:                 # R / 2 lanes: packed int16 pairs, or SILU_GATE's results
                h = b * R // 2
                word, lanes = (y_base + h // L) % cfg.adepth, h % L + np.arange(R // 2)
                if epi != isa.Epi.SILU_GATE:
                    y = isa.pack_block(y)
            else:
                word, lanes = (y_base + (b * R) // L) % cfg.adepth, (b * R) % L + np.arange(R)
            entry = st.push(last + isa.LAT_WRITE, "mac", y_bank, word, lanes,
                            None if resid else wrap(y, ACT_BITS), produced=last)
            entries.append(entry)
            if resid:
                olds.append((last + isa.LAT_RESID_READ, entry, y))
        for old in olds:
            self._resid(st, y_bank, *old, bits)
        if a["ss"]:                  # RMSNorm's scale of the written values, via the norm unit
            final = t + nb * nc - 1
            ss = a["ss_init"] + sum(int((_sext(e[5], 16) ** 2).sum()) for e in entries)
            st.push_norm(final + isa.LAT_SS_NORM, _norm_scale(ss))
        if a["epi"] == isa.Epi.ARGMAX.value:
            st.push_next(t + nb * nc - 1 + isa.LAT_ARGMAX, best[1])

    def _pv_pass(self, a, t, pos, st):
        """A PV pass (MATVEC ``x_exp``): per block, the chunks' scores through exp2_neg from
        head ``x_head``'s maximum (0 past ``pos`` with ``x_pos``) times the weight words
        ``w_base + b + (k << w_shift)`` (V^T), summed per row; the block's sum of weights
        gives its reciprocal, and the block enters the output unit ``LAT_EXP_RESULT`` after
        its last read."""
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        nb, nc = isa.matvec_dims(a, pos)
        bank, y_bank = a["x_bank"] % cfg.act_banks, a["y_bank"] % cfg.act_banks
        st.read_port(range(t, t + nb * nc), bank)
        if t + 1 <= st.maxima_final:
            st.refuse(host.STATUS_RAW_HAZARD,
                      f"PV pass forms weights in cycle {t + 1} while QK's running maxima "
                      f"are written until cycle {st.maxima_final}")
        _, y_base = _y_index(a, pos)
        bits = a["y_bits"] or 64
        top = self.maxima[a["x_head"] % len(self.maxima)]
        g0 = a["y_grp"] % max(L // R, 1)          # the first block's lane group
        for b in range(nb):
            acc, total = np.zeros(R, dtype=np.int64), 0
            for k in range(nc):
                c = t + b * nc + k
                d = _sext(st.read(self, c, bank, (a["x_addr"] + k) % cfg.adepth), X_BITS)
                e = exp2_neg(top - d)
                if a["x_pos"]:
                    e = np.where((k << a["x_shift"]) + np.arange(L) > pos, 0, e)
                w = st.wread(self, c + isa.PASS_W_LAT,
                             cfg.wphys(a["w_base"] + b + (k << a["w_shift"])))
                acc = wrap(acc + w @ e, cfg.acc_bits)
                total += int(e.sum())
            last = t + b * nc + nc - 1
            m, be = _recip(total % (1 << isa.SUM_BITS))
            y = requantize(acc, m, min(be + a["q_shift"], 63), bits)
            enter = last + isa.LAT_EXP_RESULT
            if st.result(enter, "exp"):
                st.exp_blocks.append((enter, st.push(
                    enter + isa.LAT_OUT, "mac", y_bank,
                    (y_base + ((g0 + b) * R) // L) % cfg.adepth,
                    ((g0 + b) * R) % L + np.arange(R), wrap(y, ACT_BITS), produced=last)))

    def _silu_table(self):
        return _sext(self.table[isa.SILU_TABLE:isa.SILU_TABLE + isa.SILU_SIZE], 16)

    def _att_tables(self, kv_shift):
        """The head and the packed K/V value of every MAC in QK and PV: [R, L] each."""
        R, L = self.cfg.rows, self.cfg.lanes
        r, l = np.arange(R)[:, None], np.arange(L)[None, :]
        return isa.att_head(r, l, L), isa.att_kv_index(r, l, L, R, kv_shift)

    def _rows_read(self, st, first, bank, base, shift, n):
        """n activation words ``base + (p << shift)``, read in cycles ``first + p``."""
        cfg = self.cfg
        st.read_port(range(first, first + n), bank)
        return np.array([st.read(self, first + p, bank, (base + (p << shift)) % cfg.adepth)
                         for p in range(n)], dtype=np.int64).reshape(n, cfg.lanes)

    def _qk(self, a, t, pos, st):
        """QK: q from weight word ``q_addr`` (row r: bank r's lanes), one K row per cycle;
        scores written like result blocks."""
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        n, q_addr = isa.positions(a, pos), cfg.wphys(a["q_addr"])
        first = t
        k_bank, s_bank, per_word = a["k_bank"] % cfg.act_banks, a["s_bank"] % cfg.act_banks, L // R
        heads, index = self._att_tables(a["kv_shift"])
        shifts = isa.qk_shifts(a, 2 * R)
        k_words = (a["k_addr"] + (np.arange(n) << a["k_shift"])) % cfg.adepth
        s_words = (a["s_addr"] + np.arange(n) // per_word) % cfg.adepth

        def score(rows, q):
            prod = isa.halves(rows)[:, index] * q[None]                      # [n, R, L]
            sums = np.stack([prod[..., :L // 2].sum(-1), prod[..., L // 2:].sum(-1)], -1)
            sums = sums.reshape(len(rows), 2 * R)
            return np.stack([requantize(sums[:, h], 1, shifts[h], 16) for h in range(2 * R)],
                            axis=-1)

        groups = {}              # s_tr: the transposer's groups, by their last position
        if a["s_tr"]:
            lo, span = isa.score_box(a, n, L, R)
            st.transposer_start(first, n, L, R, s_bank, lo, span, cfg.adepth)
            writes = st.transposer_groups(first, n, L, R)
            groups = {g * L + n_g - 1: (g, w, n_g) for g, w, n_g in writes}
            if writes:                       # the last group's copy into the out buffer
                st.tr_copy = writes[-1][1] - 1
            own = k_bank == s_bank and ((k_words - lo) % cfg.adepth <= span).any()
        else:
            own = k_bank == s_bank and np.isin(k_words, s_words).any()

        def push(p, value):
            c = first + p
            st.result(c + isa.LAT_RESULT)
            if not a["s_tr"]:
                st.push(c + isa.LAT_WRITE, "mac", s_bank, int(s_words[p]),
                        (p % per_word) * R + np.arange(R), isa.pack_halves(value), produced=c)
            elif p in groups:    # a group's words: a word a head slot
                g, w, n_g = groups[p]
                for h in range(2 * R):
                    word = (a["s_addr"] + isa.score_tr_slot(g * L, h, L, a["s_hs"])[0])
                    st.transposer_write(w + h, s_bank, word % cfg.adepth,
                                        np.arange(n_g), scores[g * L:g * L + n_g, h])

        if st.w_pending or own:
            # in cycle order: a read sees this QK's own earlier score writes in flight (or
            # landed), or a y_wbank write to q landing during the QK
            st.read_port(range(first, first + n), k_bank)
            scores = np.zeros((n, 2 * R), dtype=np.int64)
            for p in range(n):
                c = first + p
                scores[p] = score(st.read(self, c, k_bank, int(k_words[p]))[None],
                                  st.wread(self, c, q_addr))[0]
                push(p, scores[p])
        else:
            scores = score(self._rows_read(st, first, k_bank, a["k_addr"], a["k_shift"], n),
                           st.wread(self, first, q_addr))
            for p in range(n):
                push(p, scores[p])
        self.maxima = scores.max(axis=0)
        st.maxima_final = first + n - 1 + isa.LAT_QK_MAX

    def _pv(self, a, t, pos, st, pc):
        """PV: softmax weights from the scores, times V rows, accumulated per MAC; then the
        outputs, divided by each head's sum of weights, drain through the output unit."""
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        n = isa.positions(a, pos)
        if t + 1 <= st.maxima_final:
            st.refuse(host.STATUS_RAW_HAZARD,
                      f"PV at pc {pc} forms weights in cycle {t + 1} while QK's "
                      f"running maxima are written until cycle {st.maxima_final}")
        if t + 1 < st.pv_free:
            st.refuse(host.STATUS_UNIT_BUSY,
                      f"PV at pc {pc} reads its first V row in cycle {t + 1} while "
                      f"the previous PV's outputs drain until cycle {st.pv_free - 1}")
        s_bank, v_bank = a["s_bank"] % cfg.act_banks, a["v_bank"] % cfg.act_banks
        if s_bank == v_bank and n > 1:
            st.conflict = True                      # the two streams share one read port
        per_word = L // R
        slots = (np.arange(n) % per_word)[:, None] * R + np.arange(R)[None, :]
        scores = isa.halves(np.array(
            [st.read(self, t + p, s_bank, (a["s_addr"] + p // per_word) % cfg.adepth, slots[p])
             for p in range(n)], dtype=np.int64).reshape(n, R))
        st.read_port(range(t, t + n), s_bank)
        values = isa.halves(self._rows_read(st, t + 1, v_bank, a["v_addr"], a["v_shift"], n))
        weights = exp2_neg(self.maxima[None, :] - scores)           # [n, 2R]
        heads, index = self._att_tables(a["kv_shift"])
        acc = wrap((weights[:, heads] * values[:, index]).sum(axis=0), isa.ATT_ACC_BITS)
        recips = [_recip(int(v)) for v in weights.sum(axis=0)]
        c_last = t + n
        y_bank, bits = a["y_bank"] % cfg.act_banks, a["y_bits"] or 64
        # a PV started while the previous one drains (UNIT_BUSY) restarts the drain: the
        # blocks not yet offered by c_last are lost
        for enter, entry in st.pv_blocks:
            if enter >= c_last + 2:
                st.cancel(entry, enter)
        st.pv_blocks = []
        # the drain: busy from the cycle after the last V read until the last block enters
        st.drain_busy.add(c_last + 1, c_last + isa.PV_DRAIN + (a["d_blocks"] or 256))
        for j in range(a["d_blocks"] or 256):
            enter = c_last + isa.PV_DRAIN + j
            if not st.result(enter, "drain"):       # the output unit took another result
                continue
            first = (j * R) % (R * L)
            m, b = recips[first // (L // 2)]
            y = requantize(acc.reshape(-1)[first:first + R], m, min(b + a["shift"], 63), bits)
            st.pv_blocks.append((enter, st.push(
                enter + isa.LAT_OUT, "mac", y_bank, (a["y_addr"] + first // L) % cfg.adepth,
                first % L + np.arange(R), wrap(y, ACT_BITS), produced=enter - 1)))
        st.pv_free = c_last + isa.PV_DRAIN + (a["d_blocks"] or 256)

    def _rope(self, y, word, bits, entries, extra=0):
        """ROPE: pair j of the block, (y[2j], y[2j+1]), rotated by entries 2e, 2e+1 of
        RoPE-table word ``word``, e = ``entries[j]`` (:func:`tinylpu.isa.rope_entries`),
        rounded ``extra`` more bits (the head slot's ``head_shift`` entry)."""
        cs = self.rmem[word % self.cfg.rdepth]
        n = len(y) // 2 * 2
        e = np.asarray(entries, dtype=np.int64)[:n // 2]
        out = y.copy()
        out[0:n:2], out[1:n:2] = rope_rotate(y[0:n:2], y[1:n:2], cs[2 * e], cs[2 * e + 1], bits,
                                             extra)
        return out

    def _resid(self, st, bank, cycle, entry, y, bits):
        """RESID: the destination lanes as of ``cycle`` plus y (as the 32-bit lane it would
        be written as), saturated to ``bits``, become the write's values."""
        st.delayed_read(cycle, bank)
        st.resid_reads = st.resid_reads[-8:] + [(cycle, bank, entry[3])]
        old = st.read(self, cycle, bank, entry[3], entry[4], exclude=entry)
        entry[5] = wrap(saturate(old + wrap(y, ACT_BITS), bits), ACT_BITS)

    def _vop(self, a, t, pos, tok, st, pc):
        """One VOP, vectorized: every read sees memory as of its own cycle, which the
        schedule rules make equal to memory as of the first read (checked)."""
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        lr, ll = R.bit_length() - 1, L.bit_length() - 1
        S, N = isa.vop_dims(a, pos)
        j = np.arange(S, dtype=np.int64)[:, None]
        k = np.arange(N, dtype=np.int64)[None, :]
        cycles = t + j * N + k                              # read cycle of element (j, k)
        st.land_before(t, self)
        emask = (1 << ELEM_ADDR_BITS) - 1

        def index(op):
            return {isa.Index.NONE.value: 0, isa.Index.POS.value: pos,
                    isa.Index.TOK.value: tok}.get(op["index"], 0)

        reads = []                                          # (bank, words, lanes)

        def act_read(op, bank, what):
            e = (op["base"] + index(op) * op["istride"] + j * op["js"] + k * op["ks"]) & emask
            e = np.broadcast_to(e, (S, N))
            word, lane = (e >> ll) % cfg.adepth, e & (L - 1)
            st.check_read_block(np.broadcast_to(cycles, (S, N)), bank, word, lane, what, pc)
            reads.append((bank, word, lane))
            return self.amem[bank][word, lane]

        A_op, B_op, C_op = a["a"], a["b"], a["c"]
        if A_op["space"] == isa.Space.WROW.value:
            row = index(A_op)
            i = np.broadcast_to(j * A_op["js"] + k * A_op["ks"], (S, N))
            word = cfg.wphys(A_op["base"] + (row >> lr) * A_op["istride"] + (i >> ll))
            A = st.wrow_read(self, np.broadcast_to(cycles, (S, N)),
                             np.full((S, N), row & (R - 1)), word, i & (L - 1))
            a_bank = None
        else:
            a_bank = A_op["bank"] % cfg.act_banks
            st.read_port(range(t, t + S * N), a_bank)
            A = act_read(A_op, a_bank, "A")
        mode = isa.BMode(B_op["mode"])
        exp = 0
        if mode == isa.BMode.IMM:
            B = np.full((S, N), _sext(B_op["base"] & 0xffff, 16), dtype=np.int64)
        elif mode == isa.BMode.SQUARE:
            B = A
        else:
            b_bank = B_op["bank"] % cfg.act_banks
            if a_bank == b_bank:
                st.conflict = True
            st.read_port(range(t, t + S * N), b_bank)
            B = act_read(B_op, b_bank, "B")
            if mode == isa.BMode.SCALE:
                exp = (B[:, -1] >> 16) & 63
                B = B & 0xffff
        B16 = _sext(B & 0xffff, 16)
        g = isa.GFunc(a["g"])
        if g == isa.GFunc.MUL:
            G = A * B16
        elif g == isa.GFunc.ADD:
            G = A + B
        elif g == isa.GFunc.EXP:
            G = _sext(self.table[isa.EXP_TABLE + np.clip(B - A, 0, isa.EXP_SIZE - 1)], 16)
        elif g == isa.GFunc.SILU:
            G = silu_interp(self._silu_table(), A)
        else:
            G = A
        red = isa.Reduce(a["red"])
        if red == isa.Reduce.SUM:
            Rv = wrap(a["init"] + G.sum(axis=1), isa.SCALAR_WIDTH)
        elif red == isa.Reduce.MAX:
            Rv = G.max(axis=1)
        else:
            Rv = G.argmax(axis=1)
        out = isa.OutFunc(a["out"])
        if red == isa.Reduce.ARGMAX:
            Y = Rv
        elif out == isa.OutFunc.MULSHR:
            shift = np.clip(a["shift"] + exp, 0, 63)
            prod = Rv * np.int64(a["mult"])
            rnd = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0)
            Y = saturate((prod + rnd) >> shift, a["sat"] or 64)
        elif out == isa.OutFunc.NORM:
            Y = np.array([_norm_scale(int(v)) for v in Rv], dtype=np.int64)
        else:
            Y = np.array([_scale(int(v) & ((1 << isa.SCALAR_WIDTH) - 1),
                                 out != isa.OutFunc.RECIP) for v in Rv], dtype=np.int64)
        lat = isa.vop_latency(a)
        if out in (isa.OutFunc.RSQRT, isa.OutFunc.RECIP):
            done = t + N - 1 + lat
            if not st.scalar(done - lat + isa.V_RESULT, done - isa.SCALAR_WRITE):
                return
        if out == isa.OutFunc.NORM:       # the result into the norm register (S = 1)
            late = [r for r in st.norm_reads if r > t]
            if late:        # its total is in flight from the cycle after its first read on
                st.refuse(host.STATUS_RAW_HAZARD,
                          f"a norm MATVEC reads the norm register in cycle {late[0]} while "
                          f"the write of the VOP NORM at pc {pc} (first read in {t}) is in "
                          f"flight")
            st.push_norm(int(t + N - 1 + lat), int(Y[0]))
            return
        e = (C_op["base"] + index(C_op) * C_op["istride"] + np.arange(S) * C_op["js"]) & emask
        c_bank = C_op["bank"] % cfg.act_banks
        land = t + np.arange(S) * N + N - 1 + lat
        words, lanes = (e >> ll) % cfg.adepth, e & (L - 1)
        # a write must not land before a later read of the same element by this VOP
        same = [(w.ravel(), ln.ravel(), np.broadcast_to(cycles, (S, N)).ravel())
                for bank, w, ln in reads if bank == c_bank]
        if same:
            st.check_self_overlap(pc, c_bank, words, lanes, land, same)
        for jj in range(S):
            st.push(int(land[jj]), "vu", c_bank, int(words[jj]), np.array([lanes[jj]]),
                    np.array([wrap(Y[jj], ACT_BITS)]))
        if red == isa.Reduce.ARGMAX:
            st.push_next(int(land[-1]), int(Y[-1]))



# the busy counter of each instruction's issue slot (WAIT: WAIT and LOOP; HALT is not counted)
_SLOT_COUNTER = {isa.Opcode.MATVEC: host.Counter.MAC, isa.Opcode.QK: host.Counter.MAC,
                 isa.Opcode.PV: host.Counter.MAC, isa.Opcode.VOP: host.Counter.VU,
                 isa.Opcode.NEXT: host.Counter.NEXT, isa.Opcode.WAIT: host.Counter.WAIT,
                 isa.Opcode.LOOP: host.Counter.WAIT}


class _Coverage:
    """Cycles covered by half-open intervals ``[start, end)``, counted as they become final:
    an interval added later never starts before a cycle already passed to :meth:`below`."""

    def __init__(self):
        self.heap = []         # intervals not counted yet
        self.total = 0         # cycles covered by the counted ones
        self.end = 0           # the end of the last counted one that reaches furthest

    def add(self, start, end):
        heapq.heappush(self.heap, (start, end))

    def below(self, cycle):
        """The covered cycles before ``cycle``."""
        while self.heap and self.heap[0][0] < cycle:
            start, end = heapq.heappop(self.heap)
            start = max(start, self.end)
            if end > start:
                self.total += end - start
                self.end = end
        return self.total - max(0, self.end - cycle)


def _y_index(a, pos):
    """A MATVEC's y index (the position with ``y_index`` POS, else 0) and its first y word
    ``y_addr + (idx << y_shift)``."""
    idx = pos if a["y_index"] == isa.Index.POS.value else 0
    return idx, a["y_addr"] + (idx << a["y_shift"])


def _recip(v):
    """The reciprocal pipeline: ``norm_recip(v)``; v = 0 gives (0x7fff, 0) (rtl.recip)."""
    return norm_recip(v) if v else (0x7fff, 0)


def _norm_scale(ss):
    """The norm unit: the norm register's ``b << 16 | m`` of ``rsqrt_scale`` of the low
    ``SS_BITS`` bits of a total."""
    m, b = rsqrt_scale(int(ss) & ((1 << isa.SS_BITS) - 1))
    return (b << 16) | m


def _scale(v, sqrt_first):
    """The scalar unit: a packed scale ``exponent << 16 | mantissa`` of 1/v (or 1/isqrt(v));
    v = 0 gives mantissa 0x7fff, exponent 0 (the RTL's defined result)."""
    if sqrt_first:
        v = isqrt(v)
    if v == 0:
        return 0x7fff
    m, b = norm_recip(v)
    return (b << 16) | m


class _RunState:
    """Writes in flight and the schedule checks of one run.

    A write is *pending* from when its instruction is executed until it lands; it is *in
    flight* for a read in cycle r when it was produced (the read of its block's last chunk)
    before r and lands in r or later: the read sees the old value.
    """

    def __init__(self, strict=True):
        self.strict = strict
        self.violations = 0        # not strict: the status bits of the rules broken
        self.refusals = []         # ... and what broke them
        self.pending = []          # (cycle, unit, bank, word, lanes, values, produced)
        self.by_word = {}          # (bank, word) -> its pending writes; bank ("w", r): a
        self.w_pending = 0         # weight bank's (MATVEC y_wbank), counted here
        self.next_pending = []     # (cycle, token)
        self.norm_pending = []     # (cycle, value) of the norm register
        self.write_banks = {}      # cycle -> banks written
        self.delayed_reads = []    # (cycle, bank): reads outside an instruction's issue slot
        self.slot_reads = []       # (cycles, bank): the read streams of the issue slot
        self.hazards = []
        self.conflict = False
        self.last_write = -1
        self.vu_writes = set()     # cycles with a vector-unit write (one write port)
        self.scalar_done = -1      # the scalar unit's done cycle of its latest operation
        self.results = {}          # cycle -> the kind of result entering the output unit
        self.exp_blocks = []       # (enter, write entry) of PV pass blocks
        self.maxima_final = -1     # QK's maxima are final from the cycle after this one
        self.pv_free = 0           # a PV's first V read may come from this cycle on
        self.pv_blocks = []        # (enter, write entry) of the last PV's drain blocks
        self.norm_reads = []       # cycles norm MATVEC blocks read the norm register
        self.out_busy = _Coverage()     # results in the output unit, entry to write
        self.y_writes = {}         # cycle -> a result's write through the output unit's port
        self.tr_end = -1           # the score transposer's last write (QK s_tr)
        self.tr_copy = -1          # ... its last group's copy into the out buffer
        self.resid_reads = []      # (cycle, bank, word): RESID's reads, after the issue slot
        self.tr_box = None         # (bank, lo, span, depth, start, end): its words
        self.drain_busy = _Coverage()   # PV drains

    def refuse(self, bit, message):
        """A broken schedule rule, which the RTL flags with status ``bit``: strict, a
        GoldenError; else recorded."""
        if self.strict:
            raise GoldenError(message)
        self.violations |= bit
        self.refusals.append(message)

    def counters(self, slots, cycle):
        """The busy counters as read at ``cycle`` (counting the cycles before it), given the
        issue-slot cycles ``slots`` so far (a list by :class:`tinylpu.host.Counter`): all
        results entering the output unit before ``cycle`` must be known."""
        out = list(slots)
        out[host.Counter.CYCLES] = cycle
        out[host.Counter.OUT] = self.out_busy.below(cycle)
        out[host.Counter.DRAIN] = self.drain_busy.below(cycle)
        return out

    _RANK = {"mac": 0, "exp": 1, "drain": 2}    # who gets the output unit in one cycle

    def result(self, cycle, kind="mac"):
        """A block result enters the output unit (the requantizer) in ``cycle``: ``kind``
        "mac" (a MATVEC or QK block, c+3), "exp" (a PV pass block) or "drain" (a PV drain
        block). Two in one cycle break a rule (UNIT_BUSY); the unit takes the one first in
        that order, the other's write never happens. Returns whether this one enters."""
        self.out_busy.add(cycle, cycle + isa.LAT_OUT + 1)
        other = self.results.get(cycle)
        if other is None:
            self.results[cycle] = kind
            return True
        self.refuse(host.STATUS_UNIT_BUSY, f"two results enter the output unit in cycle {cycle}")
        if self._RANK[kind] >= self._RANK[other]:
            return False
        for enter, entry in self.pv_blocks + self.exp_blocks:     # not strict: it is lost
            if enter == cycle:
                self.cancel(entry, enter)
        self.results[cycle] = kind
        return True

    def scalar(self, start, done):
        """The bit-serial scalar unit takes a new operand no earlier than the previous
        operation's done cycle."""
        if start < self.scalar_done:
            self.refuse(host.STATUS_UNIT_BUSY,
                        f"scalar unit started in cycle {start} while busy until cycle "
                        f"{self.scalar_done}")
            return False                  # not strict: the start is ignored, nothing lands
        self.scalar_done = done
        return True

    def transposer_start(self, first, n, lanes, rows, bank, lo, span, depth):
        """A QK with s_tr over ``n`` positions reads its first K row in ``first``: the
        transposer must have written the previous one's scores (UNIT_BUSY); its words are
        ``lo + (0 .. span)``."""
        busy = first <= self.tr_end
        if busy:
            self.refuse(host.STATUS_UNIT_BUSY,
                        f"QK (s_tr) starts in cycle {first} while the score transposer "
                        f"writes until cycle {self.tr_end}")
        groups = self.transposer_groups(first, n, lanes, rows)
        end = groups[-1][1] + 2 * rows - 1 if groups else self.tr_end
        # the RTL's range takes this QK's words from its issue; while the previous QK's
        # words are in flight (busy) the rule holds already in this QK's first read
        self.tr_box = (bank, lo, span, depth, first - busy, end)
        for cycle, b, word in self.resid_reads:    # an earlier MATVEC's RESID read (c + 4)
            if self.transposer_hazard(cycle, b, word):
                self.hazards.append((cycle, b, word))

    def transposer_groups(self, first, n, lanes, rows):
        """``(g, w, n_g)``: group g's words are written from the end of cycle ``w``
        (:func:`tinylpu.isa.score_word_writes` after the transposer's earlier words, in
        absolute cycles)."""
        return [(g, first + w, n_g) for g, w, n_g in isa.score_word_writes(
            n, lanes, rows, self.tr_end + 1 - first, self.tr_copy - first)]

    def transposer_write(self, cycle, bank, word, lanes, scores):
        """A head-slot word of transposed scores, written at the end of ``cycle`` through the
        output unit's write port, unless a result is written there then (UNIT_BUSY: the
        result's write happens, the transposer's is lost)."""
        self.tr_end = max(self.tr_end, cycle)
        if cycle in self.y_writes:
            return self.refuse(host.STATUS_UNIT_BUSY,
                               f"the score transposer and a result write in cycle {cycle}")
        self.y_writes[cycle] = self.push(cycle, "tr", bank, word, lanes,
                                         wrap(np.asarray(scores, dtype=np.int64), ACT_BITS))

    def transposer_hazard(self, cycles, bank, words):
        """Whether a read of ``words`` of ``bank`` in ``cycles`` (arrays of one shape) meets
        the transposer's words while they are in flight: from the cycle after its QK's first
        read until its last write (the RTL compares each read with the word range)."""
        if self.tr_box is None:
            return False
        b, lo, span, depth, start, end = self.tr_box
        if b != bank:
            return False
        cycles, words = np.asarray(cycles), np.asarray(words)
        inside = ((words - lo) % depth <= span) & (cycles > start) & (cycles <= end)
        return bool(inside.any())

    def push(self, cycle, unit, bank, word, lanes, values, produced=-1):
        if unit == "mac" and not isinstance(bank, tuple):    # the output unit's write port
            other = self.y_writes.get(cycle)
            if other is not None and other[1] == "tr":
                self.refuse(host.STATUS_UNIT_BUSY,
                            f"the score transposer and a result write in cycle {cycle}")
                self._drop(other)
            self.y_writes[cycle] = (cycle, unit)
        banks = self.write_banks.setdefault(cycle, set())
        if bank in banks:
            self.conflict = True
        banks.add(bank)
        if unit == "vu":
            if cycle in self.vu_writes:
                self.refuse(host.STATUS_PORT_CONFLICT,
                            f"two vector-unit writes land in cycle {cycle}: the unit "
                            f"has one write port")
            self.vu_writes.add(cycle)
        entry = [cycle, unit, bank, word, lanes, values, produced]
        self.w_pending += isinstance(bank, tuple)
        bisect.insort(self.pending, entry, key=lambda p: p[0])
        self.by_word.setdefault((bank, word), []).append(entry)
        self.last_write = max(self.last_write, cycle)
        return entry

    def cancel(self, entry, enter):
        """A pending write (a PV drain block entering the output unit in ``enter``) that
        never happens."""
        if self._drop(entry):
            self.results.pop(enter, None)

    def _drop(self, entry):
        """Takes a pending write out; whether it was still pending."""
        at = [i for i, e in enumerate(self.pending) if e is entry]
        if not at:                        # landed, or already cancelled
            return False
        del self.pending[at[0]]
        key = (entry[2], entry[3])
        self.by_word[key] = [e for e in self.by_word[key] if e is not entry]
        if not self.by_word[key]:
            del self.by_word[key]
        self.write_banks.get(entry[0], set()).discard(entry[2])
        return True

    def push_norm(self, cycle, value):
        if any(c == cycle for c, _ in self.norm_pending):       # every total: NORM_LAT
            self.refuse(host.STATUS_PORT_CONFLICT,
                        f"two totals enter the norm unit in cycle {cycle - isa.NORM_LAT}"
                        f" (its one input): their writes would land together")
        bisect.insort(self.norm_pending, (cycle, value), key=lambda p: p[0])
        self.last_write = max(self.last_write, cycle)

    def push_next(self, cycle, token):
        self.next_pending.append((cycle, token))
        self.last_write = max(self.last_write, cycle)

    def pending_next(self):
        return bool(self.next_pending)

    def land_before(self, cycle, tile):
        if len(self.results) > 4096:
            self.results = {c: k for c, k in self.results.items() if c >= cycle}
        if len(self.y_writes) > 4096:
            self.y_writes = {c: e for c, e in self.y_writes.items() if c >= cycle}
        if len(self.exp_blocks) > 64:
            self.exp_blocks = [(c, e) for c, e in self.exp_blocks if c >= cycle]
        while self.pending and self.pending[0][0] < cycle:
            entry = self.pending.pop(0)
            _, _, bank, word, lanes, values, _ = entry
            if isinstance(bank, tuple):            # ("w", r): a weight bank's bytes
                tile.wmem[bank[1], word, lanes] = values
                self.w_pending -= 1
            else:
                tile.amem[bank, word, lanes] = values
            same = self.by_word[(bank, word)]
            same.remove(entry)
            if not same:
                del self.by_word[(bank, word)]
        while self.next_pending and self.next_pending[0][0] < cycle:
            tile.next_token = self.next_pending.pop(0)[1]
        self.land_norm_before(cycle, tile)

    def land_norm_before(self, cycle, tile):
        while self.norm_pending and self.norm_pending[0][0] < cycle:
            tile.norm = self.norm_pending.pop(0)[1]

    def read(self, tile, cycle, bank, word, lanes=None, exclude=None):
        """A MATVEC-pipeline read of ``lanes`` (default: all) of a word in ``cycle``: the word
        as of that cycle. A MATVEC write in flight to those lanes is the RTL-flagged hazard
        (the old value is read); a vector-unit write in flight is a schedule error.
        ``exclude``: the reader's own write (RESID reads the lanes it will write)."""
        value = tile.amem[bank, word].copy()
        if self.transposer_hazard(cycle, bank, word):
            self.hazards.append((cycle, bank, word))
        for entry in self.by_word.get((bank, word), ()):
            landing, unit, _, _, wl, values, produced = entry
            if entry is exclude:
                continue
            if landing < cycle:
                value[wl] = values
            elif unit == "tr":            # in flight: the transposer's range rule above
                continue
            elif produced < cycle and (lanes is None or np.isin(wl, lanes).any()):
                if unit == "vu":
                    self.refuse(host.STATUS_RAW_HAZARD,
                                f"MATVEC read of bank {bank} word {word} in cycle "
                                f"{cycle} while a vector-unit write to it is in flight")
                self.hazards.append((cycle, bank, word))
        return value if lanes is None else value[lanes]

    def wread(self, tile, cycle, word):
        """A read of word ``word`` of every weight bank in ``cycle`` (MATVEC's weights): the
        words as of that cycle. A y_wbank write to that word in flight is the RTL-flagged
        hazard (the old bytes are read)."""
        value = tile.wmem[:, word]
        if not self.w_pending:
            return value
        value = value.copy()
        for r in range(len(value)):
            for entry in self.by_word.get((("w", r), word), ()):
                landing, _, _, _, wl, values, produced = entry
                if landing < cycle:
                    value[r, wl] = values
                elif produced < cycle:
                    self.hazards.append((cycle, ("w", r), word))
        return value

    def wrow_read(self, tile, cycles, rows, words, bytes_):
        """A VOP's WROW operand: byte ``bytes_`` of word ``words`` of weight bank ``rows``,
        each read in its cycle of ``cycles`` (arrays of one shape), as of that cycle; reads
        of a y_wbank write in flight are RTL-flagged hazards (the old byte is read)."""
        value = tile.wmem[rows, words, bytes_]
        if not self.w_pending:
            return value
        value = value.copy()
        for entry in self.pending:
            landing, _, bank, word, lanes, values, produced = entry
            if not isinstance(bank, tuple):
                continue
            same = words == word                 # the RTL compares the word (all banks)
            flight = same & (cycles > produced) & (cycles <= landing)
            if flight.any():
                n = np.argmax(flight)
                self.hazards.append((int(cycles.flat[n]), bank, word))
            written = np.zeros(tile.cfg.lanes, dtype=bool)    # a whole word or one byte
            written[lanes] = True
            landed = np.zeros(tile.cfg.lanes, dtype=np.int64)
            landed[lanes] = values
            hit = same & (rows == bank[1]) & (cycles > landing) & written[bytes_]
            value[hit] = landed[bytes_[hit]]
        return value

    def read_port(self, cycles, bank):
        """An instruction reads ``bank`` in ``cycles`` (a range, its read stream): a
        delayed read of another instruction in one of them is a port conflict."""
        if any(b == bank and c in cycles for c, b in self.delayed_reads):
            self.conflict = True
        self.delayed_reads = [(c, b) for c, b in self.delayed_reads if c >= cycles.start]
        self.slot_reads = [(r, b) for r, b in self.slot_reads if r.stop > cycles.start]
        self.slot_reads.append((cycles, bank))

    def delayed_read(self, cycle, bank):
        """A read outside the issue slot's streams (RESID's read of the destination word)."""
        if (cycle, bank) in self.delayed_reads or any(
                b == bank and cycle in r for r, b in self.slot_reads):
            self.conflict = True
        self.delayed_reads.append((cycle, bank))

    def check_read_block(self, cycles, bank, words, lanes, what, pc):
        if self.transposer_hazard(cycles, bank, words):
            return self.refuse(host.STATUS_RAW_HAZARD,
                               f"VOP at pc {pc} reads {what} from bank {bank} in the words "
                               f"of a QK's transposed scores while they are in flight")
        for p in self.pending:
            if p[2] != bank or p[1] == "tr":
                continue
            hit = (words == p[3]) & np.isin(lanes, p[4])
            if hit.any():
                return self.refuse(host.STATUS_RAW_HAZARD,
                                   f"VOP at pc {pc} reads {what} from bank {bank} word {p[3]} "
                                   f"while a write to it is in flight (lands in cycle {p[0]})")

    def check_self_overlap(self, pc, bank, words, lanes, land, reads):
        """No read of an element after this same VOP's write to it has landed (vectorized)."""
        keys = words.astype(np.int64) * 4096 + lanes
        land = np.asarray(land)
        order = np.lexsort((land, keys))
        keys, land = keys[order], land[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        keys, land = keys[first], land[first]          # earliest landing per element
        for rw, rl, rc in reads:
            rk = rw.astype(np.int64) * 4096 + rl
            at = np.minimum(np.searchsorted(keys, rk), len(keys) - 1)
            late = (keys[at] == rk) & (rc > land[at])
            if late.any():
                n = int(np.argmax(late))
                return self.refuse(host.STATUS_RAW_HAZARD,
                                   f"VOP at pc {pc} reads bank {bank} word {int(rw[n])} lane "
                                   f"{int(rl[n])} in cycle {int(rc[n])}, after its own write "
                                   f"landed")
