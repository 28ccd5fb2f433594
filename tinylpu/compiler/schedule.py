"""The scheduler both compilers emit through (:mod:`tinylpu.compiler` for GEMV chains,
:mod:`tinylpu.compiler.decoder` for the decoder).

:class:`Scheduler` takes instructions in program order, each as the operands of its
:mod:`tinylpu.isa` constructor, and puts a WAIT in front of one that would break a schedule
rule (docs/isa.md, "Schedule rules") against an instruction still in flight. It works from
the fixed latencies alone (docs/isa.md, "Timing model"), without executing any data.
"""

__all__ = ["Scheduler"]

import dataclasses

from tinylpu import isa

A = isa.Space.ACT.value
MEM, IMM, SCALE = isa.BMode.MEM, isa.BMode.IMM, isa.BMode.SCALE
POS, TOK = isa.Index.POS.value, isa.Index.TOK.value
WEIGHTS = -1             # the bank of a region of weight words (MATVEC y_wbank, QK's q)


@dataclasses.dataclass
class _Issued:
    end: int                 # issue slot free (at position 0)
    lat: int                 # the last write through a write port lands at end - 1 + lat
    writes: list             # (region, lat): the region's last write lands at end - 1 + lat
    wbanks: set
    rbanks: set = dataclasses.field(default_factory=set)   # read ports used after the slot
    rlat: int = 0            # ... until end - 1 + rlat
    yport: bool = False      # writes results through the output unit's write port

    def landed(self):
        """The cycle after which every write (registers too) has landed (at position 0), in
        issue time: the unit's reads, and so its writes, come ``isa.ISSUE_LAT`` cycles after
        the issue slot's."""
        return self.end - 1 + isa.ISSUE_LAT + max([self.lat, *(lat for _, lat in self.writes)])


class Scheduler:
    """Emits instructions and WAITs: a read of a region written by an instruction in flight
    waits until the write has landed; a write to a bank another instruction in flight
    still writes waits until that one's writes are done (no two writes share a port cycle,
    and writes to one element land in program order).

    A region is ``(bank, lo, hi)``, elements ``lo .. hi`` of an activation bank (or, bank
    :data:`WEIGHTS`, of the weight words, L a word, written by ``y_wbank``), or a register: ``("next",)``, ``("norm",)``, ``("maxima",)``. Regions cover every position
    (``index`` POS up to ``positions - 1``, TOK up to ``vocab - 1``, S and N at the last
    position). A read is ``(region, first, sweep)``: read from ``first`` cycles after the
    issue on, with ``sweep`` word k of the region ``first + k`` cycles after the issue. A
    write is ``(region, lat)``: it lands ``lat`` cycles after the last cycle of the issue slot.
    (Both count in the units' time, ``isa.ISSUE_LAT`` after the issue's, the same shift for
    every unit; only NEXT, the sequencer's own, reads in issue time.)

    ``word_timing``: a MATVEC sweeps x (word k in the k-th cycle after its issue) and each
    y word lands with the last row block that writes it, so a MATVEC issues as soon as every
    x word it reads has landed by the cycle it reads it (GEMV chains and the decoder, since
    S3d). Without it a MATVEC reads all of x at its issue and its y lands with its last block
    (the whole-region rule, which tests/test_schedule.py compares against).
    """

    def __init__(self, cfg, positions=1, vocab=1, *, word_timing=True):
        self.cfg = cfg
        self.P = positions
        self.vocab = vocab
        self.word_timing = word_timing
        self.instrs = []
        self.t = 1
        self.inflight = []
        self.out_free = 0        # the output unit takes no result before this cycle (PV drain)

    def _region(self, op, S, N, ks=True):
        """(bank, lo, hi) of an ACT operand over all positions (linear, non-negative strides)."""
        idx_max = {0: 0, POS: self.P - 1, TOK: self.vocab - 1}[op.get("index", 0)]
        lo = op.get("base", 0)
        hi = lo + idx_max * op.get("istride", 0) + (S - 1) * op.get("js", 0) \
            + ((N - 1) * op.get("ks", 0) if ks else 0)
        return (op["bank"], lo, hi)

    def _words(self, bank, addr, words):
        """The region of ``words`` activation words from word ``addr``."""
        L = self.cfg.lanes
        return (bank, addr * L, (addr + words) * L - 1)

    def _wait_for(self, reads, writes, wbanks, first, rbanks=(), yport=False):
        """WAIT until the reads and writes (regions) find no write in flight, the write
        ports ``wbanks`` are free (the first write lands ``first`` cycles after issue, or
        later) and the read ports ``rbanks`` are free. The score transposer's words
        (port "tr", QK s_tr) and results (``yport``) share the output unit's write port."""
        L = self.cfg.lanes
        need = self.t
        for inf in self.inflight:
            last = inf.end - 1 + inf.lat
            for w, lat in inf.writes:
                if any(_overlap(r, w) for r in writes):
                    need = max(need, inf.end + lat)
                for r, first_read, sweep in reads:
                    if _overlap(r, w):
                        if sweep:       # the first word of r that w writes
                            first_read += (max(r[1], w[1]) - r[1]) // L
                        need = max(need, inf.end + lat - first_read)
            cross = (yport and "tr" in inf.wbanks) or ("tr" in wbanks and inf.yport)
            if wbanks & inf.wbanks or cross:    # banks' write ports, the vector unit's port
                need = max(need, last + 1 - first)
            if set(rbanks) & inf.rbanks:    # read ports still used after the other's slot
                need = max(need, inf.end + inf.rlat)
        if need > self.t:
            self._emit(isa.wait(need - self.t))

    def _emit(self, instr, issued=None):
        self.instrs.append(instr)
        self.t += isa.duration(instr, 0)
        if issued is not None:
            issued.end = self.t
            self.inflight.append(issued)
        self.inflight = [i for i in self.inflight
                         if max(i.landed(), i.end - 1 + i.rlat) >= self.t]

    def vop(self, **kw):
        """A VOP (the operands of :func:`tinylpu.isa.vop`)."""
        instr = isa.vop(**kw)
        a = instr["args"]["vop"]
        Smax, Nmax = isa.vop_dims(a, self.P - 1)
        reads, a_op, b_op = [], kw["a"], kw.get("b") or {"mode": IMM}
        if a_op.get("space", A) == A:
            reads.append(self._region(a_op, Smax, Nmax))
        if isa.BMode(b_op.get("mode", MEM)) in (MEM, SCALE):
            reads.append(self._region(b_op, Smax, Nmax))
        rbanks = {r[0] for r in reads}
        if kw.get("red") == isa.Reduce.ARGMAX:
            reads.append(("next",))
        c = self._region(kw["c"], Smax, 1, ks=False)
        norm = kw.get("out") == isa.OutFunc.NORM          # into the norm register, not c
        writes = [("norm",) if norm else c] + (
            [("next",)] if kw.get("red") == isa.Reduce.ARGMAX else [])
        lat = isa.vop_latency(a)
        # NORM goes to the norm unit ("norm" above); RSQRT/RECIP results use the vector
        # unit's write port, like MULSHR
        ports = set() if norm else {c[0], "vu"}
        # NORM: no norm MATVEC may still read the norm register (its total is in flight
        # from the cycle after this issue on)
        self._wait_for([(r, 0, False) for r in reads], writes, ports, lat,
                       rbanks | ({"norm"} if norm else set()))
        self._emit(instr, _Issued(0, lat, [(w, lat) for w in writes], ports))

    def _output_unit(self, first_result):
        """Issue no earlier than needed for the first result (``first_result`` cycles after
        issue) to enter the output unit after a PV's drain."""
        if self.t + first_result < self.out_free:
            self._emit(isa.wait(self.out_free - self.t - first_result))

    def qk(self, **kw):
        """A QK (the operands of :func:`tinylpu.isa.qk`); with ``n_pos``, over up to
        ``positions`` keys."""
        instr = isa.qk(**kw)
        a = instr["args"]["qk"]
        R, L = self.cfg.rows, self.cfg.lanes
        n = isa.positions(a, self.P - 1)
        reads = [self._words(WEIGHTS, a["q_addr"], 1),
                 self._words(a["k_bank"], a["k_addr"], ((n - 1) << a["k_shift"]) + 1)]
        if a["s_tr"]:     # the transposer's words, the last at most lat after the last read
            lo, span = isa.score_box(a, n, L, R)
            lat = max(isa.score_word_lat(m, L, R)
                      for m in (range(1, n + 1) if a["n_pos"] else [n]))
            writes = [self._words(a["s_bank"], lo, span + 1), ("maxima",), ("transposer",)]
            reads.append(("transposer",))       # the previous QK's words are written
            ports, first, yport = {a["s_bank"], "tr"}, isa.LAT_SCORE_WORD, False
        else:
            per_word = L // R                   # score words: positions a word
            writes = [self._words(a["s_bank"], a["s_addr"], -(-n // per_word)), ("maxima",)]
            lat, ports, first, yport = isa.LAT_WRITE, {a["s_bank"]}, isa.LAT_WRITE, True
        self._wait_for([(r, 0, False) for r in reads], writes, ports, first, {a["k_bank"]},
                       yport)
        self._output_unit(isa.LAT_RESULT)
        self._emit(instr, _Issued(0, lat, [(w, lat) for w in writes], ports, yport=yport))

    def pv(self, **kw):
        """A PV (the operands of :func:`tinylpu.isa.pv`); with ``n_pos``, over up to
        ``positions`` keys."""
        instr = isa.pv(**kw)
        a = instr["args"]["pv"]
        R, L = self.cfg.rows, self.cfg.lanes
        n = isa.positions(a, self.P - 1)
        reads = [self._words(a["s_bank"], a["s_addr"], -(-n // (L // R))),
                 self._words(a["v_bank"], a["v_addr"], ((n - 1) << a["v_shift"]) + 1),
                 ("maxima",)]
        y = (a["y_bank"], a["y_addr"] * L, a["y_addr"] * L + a["d_blocks"] * R - 1)
        drain = isa.PV_DRAIN + isa.LAT_OUT             # from the last V read to block 0's write
        lat = drain + a["d_blocks"] - 1
        self._wait_for([(r, 0, False) for r in reads], [y], {a["y_bank"]}, 1 + drain,
                       {a["s_bank"], a["v_bank"]}, yport=True)
        self._emit(instr, _Issued(0, lat, [(y, lat)], {a["y_bank"]}, yport=True))
        self.out_free = self.t - 1 + isa.PV_DRAIN + a["d_blocks"]      # at position 0

    def matvec(self, **kw):
        """A MATVEC (the operands of :func:`tinylpu.isa.matvec`); a y indexed by POS is a
        cache of ``positions`` entries, ``2**y_shift`` words each."""
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        instr = isa.matvec(**kw)
        a = instr["args"]["matvec"]
        if a["x_exp"]:
            return self._pv_pass(instr, a)
        nb, nc = isa.matvec_dims(a)
        epi = isa.Epi(a["epi"])
        resid, norm, ss = epi == isa.Epi.RESID, a["norm"], a["ss"]
        weights = a["y_wbank"] or a["y_wcol"]          # written into the weight banks
        x, y_bank = a["x_bank"], WEIGHTS if weights else a["y_bank"]
        half = a["y_pack"] or epi == isa.Epi.SILU_GATE        # R/2 lanes a block
        lanes = -(-nb * R // (2 if half else 1))
        cache = a["y_index"] == POS
        ywords = -(-lanes // L) + ((self.P - 1) << a["y_shift"] if cache else 0)
        if a["y_wcol"]:   # a word a block, for each group of L positions (isa.wcol_slot)
            ywords = nb + (((self.P - 1) // L) << a["y_shift"] if cache else 0)
        y = self._words(y_bank, a["y_addr"], ywords)
        reads = [(self._words(x, a["x_addr"], nc), 0, self.word_timing)]
        if norm:          # the norm register, read by the first block
            reads.append((("norm",), nc - 1 + isa.LAT_NORM_READ, False))
        if a["y_wbank"]:  # a weight word, written with the last block of each bank
            writes = [(self._words(WEIGHTS, a["y_addr"], 1), isa.LAT_WRITE)]
        elif self.word_timing and not cache:
            writes = [(self._words(y_bank, a["y_addr"] + j, 1),
                       isa.LAT_WRITE - (nb - 1 - b) * nc) for j, b in _last_blocks(nb, R, L, half)]
        else:
            writes = [(y, isa.LAT_WRITE)]
        if epi == isa.Epi.ARGMAX:
            reads.append((("next",), 0, False))
            writes.append((("next",), isa.LAT_WRITE))
        if resid:
            reads.append((y, 0, False))
        if ss:
            writes.append((("norm",), isa.LAT_SS_NORM))
        rbanks = {x} | ({y_bank} if resid else set())
        ports = set() if weights else {y_bank}    # the weight banks': no other writer
        self._wait_for(reads, [w for w, _ in writes], ports, isa.LAT_WRITE, rbanks,
                       yport=not weights)
        self._output_unit(nc - 1 + isa.LAT_RESULT)
        issued = _Issued(0, isa.LAT_WRITE, writes, ports, yport=not weights)
        if resid:
            issued.rbanks, issued.rlat = {y_bank}, isa.LAT_RESID_READ
        if norm:          # its last block reads the norm register in end - 1 + 2
            issued.rbanks = issued.rbanks | {"norm"}
            issued.rlat = max(issued.rlat, isa.LAT_NORM_READ)
        self._emit(instr, issued)

    def _pv_pass(self, instr, a):
        """A PV pass (MATVEC ``x_exp``): it reads its score words and V^T (the weight words
        ``w_base + b + (k << w_shift)``) over up to ``positions`` keys, and QK's maxima in
        its first read's c+1; block b (lanes of lane group ``y_grp + b``) enters the output
        unit ``LAT_EXP_RESULT`` after its last read, the last block LAT_EXP_RESULT - 1
        after the issue slot's last cycle (the slot is one cycle longer than the reads)."""
        R, L = self.cfg.rows, self.cfg.lanes
        nb, nc = isa.matvec_dims(a, self.P - 1)
        g0 = a["y_grp"] % max(L // R, 1)
        idx_max = self.P - 1 if a["y_index"] == POS else 0
        y_lo = (a["y_addr"] + (idx_max << a["y_shift"] if idx_max else 0)) * L
        y = (a["y_bank"], a["y_addr"] * L + g0 * R, y_lo + (g0 + nb) * R - 1)
        reads = [(self._words(a["x_bank"], a["x_addr"], nc), 0, False),
                 (self._words(WEIGHTS, a["w_base"], nb + ((nc - 1) << a["w_shift"])),
                  isa.PASS_W_LAT, False),
                 (("maxima",), 1, False)]
        lat = isa.LAT_EXP_RESULT + isa.LAT_OUT - 1
        first = isa.matvec_dims(a, 0)[1] - 1 + isa.LAT_EXP_RESULT + isa.LAT_OUT
        self._wait_for(reads, [y], {a["y_bank"]}, first, {a["x_bank"]}, yport=True)
        self._output_unit(first - isa.LAT_OUT)
        self._emit(instr, _Issued(0, lat, [(y, lat)], {a["y_bank"]}, yport=True))
        # the next result enters the output unit after this pass's last block
        self.out_free = max(self.out_free, self.t - 2 + isa.LAT_EXP_RESULT + 1)

    def next_(self, target):
        """NEXT; it reads the argmax register, and the loop head must find nothing in
        flight."""
        need = max([self.t] + [i.landed() + 1 for i in self.inflight])
        if need > self.t:
            self._emit(isa.wait(need - self.t))
        self._emit(isa.next_(target))

    def halt(self):
        self._emit(isa.halt())


def _overlap(r, w):
    if isinstance(r[0], str) or isinstance(w[0], str):      # a register: "next", "maxima"
        return r[0] == w[0]
    return r[0] == w[0] and r[1] <= w[2] and w[1] <= r[2]


def _last_blocks(nb, R, L, half):
    """``(word, block)``: each y word (from 0) a MATVEC of ``nb`` row blocks writes, and the
    last block that writes it (``half``: R/2 lanes a block)."""
    last = {}
    for b in range(nb):
        lo, n = (b * R // 2, R // 2) if half else (b * R, R)
        for word in range(lo // L, (lo + n - 1) // L + 1) if n else ():
            last[word] = b
    return sorted(last.items())
