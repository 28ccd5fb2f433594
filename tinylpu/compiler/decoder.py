"""The decoder compiler: a quantized Llama-style model (:class:`tinylpu.model.intmodel.QModel`)
becomes one tile program that runs the whole token loop on-chip.

Placement. Weights go to the weight banks in MATVEC layout (the embedding is the classifier's
matrix when they are shared, and its rows are read by the vector unit with ``Space.WROW``
indexed by the token). Each matrix's per-row requantization multipliers go to the
row-multiplier memory, a word per row block. Activation bank 0 and bank 1 hold the KV cache
(K in bank 0, V in bank 1, ``positions`` rows each), the RoPE table, RMSNorm gains and the
working vectors. Each vector's bank is fixed so that no vector-unit instruction reads both
operands from one bank, and the residual MATVECs (``x += W a``) read ``a`` and ``x`` from two
banks (one read port per bank). The exp and SiLU tables go to the vector unit's table memory.

Program. One pass over the layers per position (:func:`compile_decoder`), ending in ARGMAX and
NEXT, which loops back to pc 0 while positions remain. Dependent instructions are kept apart
by WAITs computed from the fixed latencies (:class:`tinylpu.compiler.schedule.Scheduler`; docs/isa.md,
"Timing"); durations that grow with the position (attention over ``pos + 1`` keys) only widen
the gaps, so WAITs computed at position 0 hold at every position. The per-position cycle
count is therefore a closed form, ``a + b * (pos + 1)``, which
:meth:`DecoderProgram.step_cycles` gives before any run.
"""

__all__ = ["DecoderProgram", "compile_decoder", "config_for", "check_positions",
           "GenerateResult"]

import dataclasses

import numpy as np

from tinylpu import host, isa
from tinylpu.compiler import CompileError, weight_blocks
from tinylpu.config import Config, ELEM_ADDR_BITS
from tinylpu.model.intmodel import mulshr
from tinylpu.numerics import RECIP_FRAC
from tinylpu.compiler.schedule import Scheduler

SS_RADIX = (1 << 15) - 1      # the first RMSNorm's tabulated sum of squares: hi * SS_RADIX + lo

A = isa.Space.ACT.value
MEM = isa.BMode.MEM
POS, TOK = isa.Index.POS.value, isa.Index.TOK.value


@dataclasses.dataclass
class _Buf:
    name: str
    bank: int
    base: int          # element address (word aligned)
    size: int          # elements


class _Layout:
    """Word-aligned element allocation in the activation banks and the weight banks."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.next = [0] * cfg.act_banks
        self.bufs = {}
        self.init = {}                    # name -> int array placed at the buffer
        self.wnext = 0
        self.tnext = 0                    # words used of the weight banks' tail
        self.wblocks = []                 # (word, array [R, words, L])
        self.wmats = {}                   # id(matrix) -> (w_base, n_blocks, n_chunks)
        self.placed = []                  # the matrices placed (their ids stay theirs)
        self.mwords = []                  # row-multiplier words, each [R] int16
        self.mbases = {}                  # id(multipliers) -> word of row block 0

    def alloc(self, name, bank, size, init=None):
        L = self.cfg.lanes
        words = -(-max(size, 1) // L)
        buf = _Buf(name, bank, self.next[bank] * L, size)
        self.next[bank] += words
        self.bufs[name] = buf
        if init is not None:
            self.init[name] = np.asarray(init, dtype=np.int64).reshape(-1)
        return buf

    def matrix(self, w):
        """Place int8 matrix ``w [out, in]`` in MATVEC layout; the same array is placed once."""
        key = id(w)
        if key in self.wmats:
            return self.wmats[key]
        cfg = self.cfg
        out, inp = w.shape
        nb, nc = -(-out // cfg.rows), -(-inp // cfg.lanes)
        block = weight_blocks(w, cfg)
        self.wblocks.append((self.wnext, block))
        self.wmats[key] = (self.wnext, nb, nc)
        self.placed.append(w)
        self.wnext += nb * nc
        return self.wmats[key]

    def weight_word(self, n=1):
        """``n`` weight words the program writes (MATVEC y_wbank, y_wcol), loaded as zeros;
        the first's address: in the weight banks' tail (``Config.wtail``) if they have one,
        else beside the weights."""
        cfg = self.cfg
        zeros = np.zeros((cfg.rows, n, cfg.lanes), dtype=np.int64)
        if cfg.wtail:
            self.wblocks.append((cfg.wdepth + self.tnext, zeros))
            self.tnext += n
            return cfg.wdepth + self.tnext - n
        self.wblocks.append((self.wnext, zeros))
        self.wnext += n
        return self.wnext - n

    def multipliers(self, mult):
        """Place per-row multipliers (one int16 per matrix row) as row-multiplier words, R
        rows a word (zero-padded); the same array is placed once. Returns the first word."""
        key = id(mult)
        if key not in self.mbases:
            R = self.cfg.rows
            words = np.zeros((-(-len(mult) // R), R), dtype=np.int64)
            words.reshape(-1)[:len(mult)] = mult
            self.mbases[key] = len(self.mwords)
            self.mwords.extend(words)
        return self.mbases[key]


@dataclasses.dataclass
class GenerateResult:
    tokens: list            # generated ids
    stamps: list            # cycle of the NEXT that emitted each id
    status: int
    cycles: int
    seconds: float = 0.0    # wall time of the request, where a run measured it


@dataclasses.dataclass
class DecoderProgram:
    """A compiled decoder: program, memory images and the cycle model."""
    cfg: Config
    qm: object
    positions: int
    program: list            # instruction words
    weights: list            # (word, array [R, words, L])
    act_init: list           # (bank, element base, int array)
    mmem: np.ndarray         # row-multiplier words [words, R]
    rmem: np.ndarray         # RoPE-table words [words, R]: R/2 (cos, sin) pairs each
    table: np.ndarray        # TABLE_DEPTH int16
    bufs: dict               # name -> _Buf
    body: list               # the instructions of one position, up to NEXT (decoded)
    macs_issued: int         # MAC-array multiply-accumulates per position (incl. padding)
    macs_useful: int         # of the model's matrices
    wmain_words: int = 0     # weight words used per bank below wdepth
    wtail_words: int = 0     # ... and in the tail (Config.wtail): the words the program writes

    # Cycle model --------------------------------------------------------------------------

    def step_cycles(self, pos):
        """Cycles from the start of position ``pos`` (first instruction issue) to the start
        of position ``pos + 1``: the NEXT at its end included (the body's issue slots,
        :func:`tinylpu.isa.duration` at ``pos``: QK and PV take ``pos + 1`` cycles, a PV
        pass a chunk more for every L positions)."""
        return sum(isa.duration(i, pos) for i in self.body)

    def predict(self, n_prompt, steps):
        """``(stamps, cycles)`` of a GENERATE: the issue cycle of each emitting NEXT and the
        run's total cycle count (start cycle 0; the first instruction issues in cycle 1)."""
        self.check_request(n_prompt, steps)
        t, stamps = 1, []
        for pos in range(n_prompt + steps - 1):
            t += self.step_cycles(pos)
            if pos + 1 >= n_prompt:
                stamps.append(t - isa.NEXT_CYCLES)
        return stamps, t + 1          # HALT issues at t; done in the following cycle

    def check_request(self, n_prompt, steps):
        check_positions(n_prompt, steps, self.positions)
        total = n_prompt + steps - 1
        if total >= self.cfg.tdepth:
            raise CompileError(f"prompt + steps needs {total + 1} token-memory entries; the "
                               f"config has tdepth={self.cfg.tdepth}")

    # Host streams -------------------------------------------------------------------------

    def load_stream(self):
        """Host beats that load weights, constants, tables and the program."""
        cfg = self.cfg
        beats = []
        for word, block in self.weights:
            for r in range(cfg.rows):
                for i in range(0, block.shape[1], 256):
                    beats += host.write_cmd(cfg, host.TARGET_WBANK + r, word + i,
                                            block[r, i:i + 256])
        L = cfg.lanes
        for bank, base, values in self.act_init:
            words = np.zeros((-(-len(values) // L), L), dtype=np.int64)
            words.reshape(-1)[:len(values)] = values
            for i in range(0, len(words), 256):
                beats += host.write_cmd(cfg, host.TARGET_ABANK + bank, base // L + i,
                                        words[i:i + 256])
        for target, image in ((host.TARGET_MMEM, self.mmem), (host.TARGET_RMEM, self.rmem)):
            for i in range(0, len(image), 256):
                beats += host.write_cmd(cfg, target, i, image[i:i + 256])
        beats += host.write_cmd(cfg, host.TARGET_TABLE, 0, self.table)
        for i in range(0, len(self.program), 256):
            beats += host.write_cmd(cfg, host.TARGET_PROG, i, self.program[i:i + 256])
        # the tile refuses a GENERATE past the KV cache (RANGE)
        return beats + host.ctrl_cmd(cfg, positions=self.positions)

    def generate_stream(self, prompt, steps):
        """Host beats of one request: the prompt into the token memory, then GENERATE."""
        self.check_request(len(prompt), steps)
        vocab = self.qm.config.vocab_size
        bad = [t for t in prompt if not 0 <= int(t) < vocab]
        if bad:
            raise CompileError(f"token id {bad[0]} is outside the vocabulary (0..{vocab - 1})")
        # a cycle budget of twice the prediction: a run that went wrong still ends (TIMEOUT)
        budget = min(2 * self.predict(len(prompt), steps)[1] + 1024, (1 << 32) - 1)
        return (host.ctrl_cmd(self.cfg, budget=budget)
                + host.write_cmd(self.cfg, host.TARGET_TOKENS, 0, np.asarray(prompt))
                + host.generate_cmd(len(prompt), steps))

    def parse(self, response, steps):
        """Split the response of :meth:`generate_stream` into a :class:`GenerateResult`."""
        if len(response) != 2 * steps + 2:
            raise ValueError(f"expected {2 * steps + 2} response beats, got {len(response)}")
        return GenerateResult([int(b) for b in response[0:2 * steps:2]],
                              [int(b) for b in response[1:2 * steps:2]],
                              int(response[-2]), int(response[-1]))

    def read_stream(self, name):
        """Host beats that read buffer ``name`` back (e.g. ``"logits"``)."""
        buf, L = self.bufs[name], self.cfg.lanes
        return host.read_cmd(self.cfg, host.TARGET_ABANK + buf.bank, buf.base // L,
                             -(-buf.size // L))

    def read_values(self, name, response):
        buf = self.bufs[name]
        words = host.unpack_words(self.cfg, host.TARGET_ABANK + buf.bank, response)
        return words.reshape(-1)[:buf.size]

    def footprint(self):
        """Words used per memory, against the config's depth."""
        cfg = self.cfg
        used = {"weight words (per bank)": (self.wmain_words, cfg.wdepth)}
        if cfg.wtail:
            used["weight tail words (per bank)"] = (self.wtail_words, cfg.wtail)
        used |= {"program": (len(self.program), cfg.pdepth),
                 "row-multiplier words": (len(self.mmem), cfg.mdepth),
                 "RoPE-table words": (len(self.rmem), cfg.rdepth)}
        for bank in range(2):
            hi = max((b.base + b.size for b in self.bufs.values() if b.bank == bank), default=0)
            used[f"activation bank {bank} words"] = (-(-hi // cfg.lanes), cfg.adepth)
        return used


def check_positions(n_prompt, steps, positions):
    """A request of ``n_prompt`` prompt ids and ``steps`` generated ones fits a program with a
    KV cache of ``positions``, else a :class:`CompileError` naming the limit."""
    if n_prompt < 1:
        raise CompileError("the prompt needs at least one token (e.g. BOS = 1)")
    if steps < 1:
        raise CompileError(f"steps must be at least 1, not {steps}")
    total = n_prompt + steps - 1
    if total > positions:
        raise CompileError(
            f"prompt ({n_prompt} tokens) + steps ({steps}) needs {total} positions; the "
            f"program has a KV cache of {positions} positions (--positions)")


def config_for(qm, positions=None, passes=False, **overrides):
    """The smallest power-of-two config (default lanes/rows) that holds ``qm`` (compiled with
    ``passes``: :func:`compile_decoder`)."""
    positions = positions or qm.config.seq_len
    base = Config(**overrides) if overrides else Config()
    big = dataclasses.replace(base, wdepth=32768, wtail=32768,
                              adepth=min(65536, (1 << ELEM_ADDR_BITS) // base.lanes),
                              pdepth=4096, tdepth=65536, mdepth=65536, rdepth=65536)
    prog = compile_decoder(qm, big, positions, check=False, passes=passes)
    need = {name: _pow2(used) for name, (used, _) in
            (("pdepth", prog.footprint()["program"]),
             ("mdepth", prog.footprint()["row-multiplier words"]),
             ("rdepth", prog.footprint()["RoPE-table words"]))}
    need["adepth"] = _pow2(max(prog.footprint()[f"activation bank {b} words"][0]
                               for b in range(2)))
    need["tdepth"] = _pow2(positions + 1)
    # the words the program writes (V^T, q) in a tail of their own where beside the
    # weights they would double the banks (Config.wtail)
    main = prog.footprint()["weight words (per bank)"][0]
    written = prog.footprint()["weight tail words (per bank)"][0]
    need["wdepth"], need["wtail"] = _pow2(main + written), 0
    if written and _pow2(main + written) > _pow2(main) and _pow2(written) <= _pow2(main):
        need["wdepth"], need["wtail"] = _pow2(main), _pow2(written)
    # byte writes into the weight banks only if the program makes them (whole-word banks
    # pack 2048 x k words into fewer block RAMs)
    need["wbytes"] = int(any(isa.decode(w)["op"] == isa.Opcode.MATVEC
                             and isa.decode(w)["args"]["matvec"]["y_wcol"]
                             for w in prog.program))
    # PV's datapath only if the program runs PV (not with passes)
    need["pv"] = int(any(isa.decode(w)["op"] == isa.Opcode.PV for w in prog.program))
    if "wdepth" in overrides and "wtail" not in overrides:
        need["wtail"] = 0                # a given depth holds the written words too
    for key in need:
        if key in overrides:
            need[key] = overrides[key]
    return dataclasses.replace(base, **need)


def _interleave(a, b):
    """Rows (or entries) of a and b alternating: a[0], b[0], a[1], b[1], ..."""
    a, b = np.asarray(a), np.asarray(b)
    out = np.empty((2 * len(a),) + a.shape[1:], dtype=a.dtype)
    out[0::2], out[1::2] = a, b
    return out


def _attention_slots(mc, cfg):
    """Which model head each of the MAC array's 2R head slots serves, and which K/V head
    each of the four K/V slots holds (lane-local tiles: :func:`tinylpu.isa.kv_slot`).

    Head slot ``2r + s`` is row r, lane half s, and reads K/V slot ``kv_slot(r, s * L/2)``.
    A K/V head's ``kv_mul`` heads take the head slots of one K/V slot at a time, so a K/V
    head with more heads than a slot serves is held in more than one. Returns ``(heads,
    slots, rows)``: ``heads[2r + s]`` the model head or -1, ``slots[(s, t)]`` the K/V head
    or -1, and the rows that serve a head (the first R/2 when their slots hold every head,
    else R)."""
    R, half = cfg.rows, cfg.lanes // 2
    order = [(0, 0), (1, 0), (0, 1), (1, 1)]         # rows 0 .. R/2 - 1 first
    members = {st: [2 * r + s for r in range(R) for s in range(2)
                    if isa.kv_slot(r, s * half, cfg.lanes, R) == st] for st in order}
    heads, slots = [-1] * (2 * R), {}
    for k in range(mc.n_kv_heads):
        served = list(range(k * mc.kv_mul, (k + 1) * mc.kv_mul))
        while served:
            if len(slots) == len(order):
                raise CompileError(
                    f"attention on the MAC array holds 4 K/V slots of {R // 2} heads each; "
                    f"the model's {mc.n_kv_heads} K/V heads of {mc.kv_mul} heads need more")
            st = order[len(slots)]
            slots[st] = k
            for slot, h in zip(members[st], served):
                heads[slot] = h
            served = served[len(members[st]):]
    rows = R if any(t for _, t in slots) else R // 2
    return heads, {st: slots.get(st, -1) for st in order}, rows


def _slot_layer(layer, mc, cfg, heads, slots, rows_used):
    """A layer's wq, wk, wv and wo rearranged for the head slots of
    :func:`_attention_slots` (lane-local tiles): q in head-slot order (row r's heads in
    word r), K and V rows of 2L outputs that ``y_pack`` writes as one word whose lane
    ``s * L/2 + i`` holds element i of K/V slots (s, 0) and (s, 1) (:func:`tinylpu.isa.
    pack_block`), and wo's columns in the order PV drains the head slots' outputs.
    Missing heads and slots are zero rows (columns); rows that serve no head get no q word
    and drain nothing (their stale q latches meet zero K/V halves)."""
    R, L, hs = cfg.rows, cfg.lanes, mc.head_size
    q_src = np.array([heads[h] * hs + i if heads[h] >= 0 else -1
                      for h in range(2 * rows_used) for i in range(hs)])
    # packed value j of the K/V row (lane j // 2, half j % 2) is output `written[j]`
    written = isa.halves(isa.pack_block(np.arange(2 * L).reshape(-1, R))).reshape(-1)
    kv_src = np.full(2 * L, -1)
    for j, o in enumerate(written):
        lane, t = divmod(j, 2)
        k = slots[(lane // hs, t)]
        kv_src[o] = k * hs + lane % hs if k >= 0 else -1

    def rows(qmat, src):
        keep = src >= 0
        w = np.where(keep[:, None], qmat.w[np.maximum(src, 0)], 0).astype(qmat.w.dtype)
        mult = np.where(keep, qmat.mult[np.maximum(src, 0)], 0).astype(qmat.mult.dtype)
        return dataclasses.replace(qmat, w=w, mult=mult)

    keep = q_src >= 0
    wo = np.where(keep[None, :], layer.wo.w[:, np.maximum(q_src, 0)], 0).astype(layer.wo.w.dtype)
    return dataclasses.replace(layer, wq=rows(layer.wq, q_src), wk=rows(layer.wk, kv_src),
                               wv=rows(layer.wv, kv_src),
                               wo=dataclasses.replace(layer.wo, w=wo))


def _pow2(n):
    return 1 << max(1, (max(n, 1) - 1).bit_length())


def compile_decoder(qm, cfg, positions=None, check=True, passes=False):
    """Compile ``qm`` for a tile of config ``cfg`` with a KV cache of ``positions``.

    ``passes``: attention's p.V as PV passes (MATVEC ``x_exp``) over V^T in the weight banks
    (the wv MATVEC writes it, ``y_wcol``) and QK's transposed scores (``s_tr``), instead of
    QK's score words and PV over the V cache in an activation bank: the same integers."""
    mc = qm.config
    positions = positions or mc.seq_len
    if cfg.act_banks < 2:
        raise CompileError(f"the decoder needs 2 activation banks, the config has "
                           f"{cfg.act_banks} (act_banks)")
    if not cfg.attention:
        raise CompileError(f"the decoder's attention (QK, PV) needs lanes >= 2 * rows, not "
                           f"lanes={cfg.lanes}, rows={cfg.rows}")
    if not 1 <= positions <= mc.seq_len:
        raise CompileError(f"positions must be in [1, {mc.seq_len}] (the model's seq_len), "
                           f"not {positions}")
    if qm.q_bits != 8:
        raise CompileError(f"the tile's q is 8-bit (QK reads it from the weight banks); this "
                           f"model was quantized with a {qm.q_bits}-bit q: use "
                           f"quantize(..., q_bits=8), the default")
    if qm.k_bits != 16:
        raise CompileError(f"the tile's K cache is int16; this model was quantized with a "
                           f"{qm.k_bits}-bit K cache (kv_bits), which only the integer model "
                           f"runs")
    if mc.head_size % 2:
        raise CompileError(f"RoPE needs an even head size, not {mc.head_size}")
    P = positions
    dim, kv, hid, hs = mc.dim, mc.kv_dim, mc.hidden_dim, mc.head_size
    fmt = qm.fmt
    lay = _Layout(cfg)
    LN = mc.n_layers

    # ---- placement -------------------------------------------------------------------------
    # Each vector's bank is fixed so that no vector-unit instruction reads A and B from one
    # bank, and a residual MATVEC (y += W x) reads x and its destination y from two banks (one
    # read port per bank). Constants carry their initial values.
    R = cfg.rows
    if R % 2 or hs % R or (hs // R) & (hs // R - 1):
        raise CompileError(f"RoPE in the MATVEC epilogue rotates pairs within a row block: it "
                           f"needs an even rows count that divides the head size with a "
                           f"power-of-two quotient, not rows={R}, head size {hs}")
    L = cfg.lanes
    if hs != L // 2 or mc.n_heads > 2 * R or kv > 2 * L or dim > 7 * L \
            or mc.kv_mul & (mc.kv_mul - 1) or mc.kv_mul > 8 or 2 * R > isa.HEAD_SLOTS:
        raise CompileError(
            f"attention on the MAC array needs head size = lanes / 2 ({L // 2}), at most "
            f"2 * rows = {2 * R} heads, kv_dim <= 2 * lanes = {2 * L} (one K/V row a word), "
            f"dim <= {7 * L}, a power-of-two kv_mul <= 8 and at most {isa.HEAD_SLOTS} head "
            f"slots (2 * rows: QK's head shifts); the model has head size {hs}, "
            f"{mc.n_heads} heads, kv_dim {kv}, dim {dim}, kv_mul {mc.kv_mul}")
    # K and V caches: one word of packed int16 per position (isa.halves); with passes V^T
    # in the weight banks instead (isa.wcol_slot: a word per block of R elements and group
    # of L positions, 2**vt_shift words a group)
    # (with passes K is placed below, over both banks)
    K = None if passes else [lay.alloc(f"k{l}", 0, P * L) for l in range(LN)]
    n_groups, vt_shift = -(-P // L), (max(kv // R, 1) - 1).bit_length()
    if passes:
        if qm.v_bits != 8:
            raise CompileError(f"PV passes read V^T as 8-bit weights; this model was "
                               f"quantized with a {qm.v_bits}-bit V cache")
        Vc = [lay.weight_word(n_groups << vt_shift) for l in range(LN)]
    else:
        Vc = [lay.alloc(f"v{l}", 1, P * L) for l in range(LN)]
    # RoPE table: per position, hs / R words of R / 2 (cos, sin) pairs (one per row block)
    rope_words = np.stack([qm.rope_cos[:P], qm.rope_sin[:P]], axis=-1).reshape(P * hs // R, R)
    rope = dict(rope_base=0, rope_shift=(hs // R).bit_length() - 1)   # table word, log2 words/pos
    emb_mult = lay.alloc("emb_mult", 0, len(qm.emb_mult), qm.emb_mult)
    final_gain = lay.alloc("g_final", 1, dim, qm.final_gain)
    per_word = L // R                                  # score words: positions a word
    # lane-local tiles: the heads sit in slots the compiler assigns; q and PV's output
    # cover every head slot of the rows that serve heads
    slotted = isa.lane_local(R)
    placement = _attention_slots(mc, cfg) if slotted else None
    att_dim = placement[2] * L if slotted else dim
    # QK's scores: a word of L/R positions of every head slot, or (passes, transposed) a
    # word of L positions of one head slot, 2**s_hs words a head slot, in bank 1
    s_hs = (n_groups - 1).bit_length()
    scores = ((), (("scores", (2 * R << s_hs) * L),)) if passes else \
        ((("scores", -(-P // per_word) * L),), ())
    b0 = {n: lay.alloc(n, 0, size) for n, size in (("x", dim),) + scores[0]}
    b1 = {n: lay.alloc(n, 1, size) for n, size in
          (("scale", 1), ("xg", dim), ("att", att_dim), ("g", hid),
           ("logits", mc.vocab_size)) + scores[1]}
    buf = {**b0, **b1}
    if passes:      # bank 1 holds no V: each layer's K into the bank with fewer words used
        K = [lay.alloc(f"k{l}", min((0, 1), key=lambda b: lay.next[b]), P * L)
             for l in range(LN)]

    # weights: the classifier first, so a shared embedding is the same placement
    cls_w = lay.matrix(qm.cls.w)
    shared = qm.cls.w is qm.emb or np.array_equal(qm.cls.w, qm.emb)
    emb_w = cls_w if shared else lay.matrix(qm.emb)
    names = ("wq", "wk", "wv", "wo", "w2")
    layers = [_slot_layer(layer, mc, cfg, *placement) for layer in qm.layers] if slotted \
        else qm.layers
    # wq's rows padded to whole words of q: a y_wbank word is written by its last block
    pad = lambda w, n: np.pad(w, ((0, -len(w) % L), (0, 0))) if n == "wq" and len(w) % L \
        else w
    # (V^T for the passes takes wv's rows in the model's order: block b, elements b*R ..)
    wv_src = qm.layers if passes else layers
    wmat = [{n: lay.matrix(pad(getattr(wv_src[l] if n == "wv" else layer, n).w, n))
             for n in names} for l, layer in enumerate(layers)]
    # w1 and w3 row by row: blocks of (h1, h3) pairs for the SILU_GATE epilogue
    w13, w13_mult = [], {}
    for layer in qm.layers:
        if layer.w1.shift != layer.w3.shift:
            raise CompileError("w1 and w3 share one MATVEC: they need one requantization "
                               "shift (intmodel.quantize gives them one)")
        w13.append(lay.matrix(_interleave(layer.w1.w, layer.w3.w)))
        w13_mult[id(layer.w1)] = _interleave(layer.w1.mult, layer.w3.mult)

    # ---- program ---------------------------------------------------------------------------
    # word timing: a MATVEC may issue once each x word it reads has landed by the cycle it
    # reads it (w2 right behind w13: its first row block reads g's last chunk 10 cycles in)
    asm = Scheduler(cfg, P, mc.vocab_size)

    def words(**bufs):
        """The ISA operands ``<name>_bank`` and ``<name>_addr`` of (word-aligned) buffers."""
        out = {}
        for name, b in bufs.items():
            out[f"{name}_bank"], out[f"{name}_addr"] = b.bank, b.base // L
        return out

    def act(b, off=0, **kw):
        return {"space": A, "bank": b.bank, "base": b.base + off, **kw}

    def bop(b, mode=MEM, off=0, **kw):
        return {"mode": mode, "bank": b.bank, "base": b.base + off, **kw}

    def cop(b, off=0, **kw):
        return {"bank": b.bank, "base": b.base + off, **kw}

    def check_shift(name, s):
        if s < 0:
            raise CompileError(f"{name}: the format change needs a left shift ({s}); the "
                               f"vector unit only shifts right")
        return s

    def matvec(qmat, mat, x, y, **kw):
        """y = requant(W x) per row (MATVEC with row multipliers); ``y`` None: a weight
        word (``y_wbank``, its ``y_addr`` in ``kw``). ``kw`` overrides the matrix's fields."""
        w, nb, nc = mat
        mult = lay.multipliers(w13_mult[id(qmat)] if id(qmat) in w13_mult else qmat.mult)
        out = words(y=y) if y is not None else {"y_bank": 0}
        asm.matvec(**{"w_base": w, "n_blocks": nb, "n_chunks": nc, **words(x=x), **out,
                      "m_base": mult, "q_shift": qmat.shift, "y_bits": qmat.bits,
                      "norm": qmat.norm, **kw})

    if not 0 <= qm.eps < 1 << 23:
        raise CompileError(f"RMSNorm epsilon {qm.eps} does not fit the 23-bit init fields")

    # The first RMSNorm's scale: the sum of squares of x = the embedding row of the token is
    # a function of the token, tabulated here as two elements (hi, lo) per token with
    # ss = hi * SS_RADIX + lo; a NORM VOP forms init + hi * SS_RADIX + lo * 1 (B from a
    # two-element constant) and the norm unit takes it, while the embedding is still being
    # formed. The residual MATVECs take the later scales as they write x (``ss``).
    emb_x = mulshr(qm.emb, qm.emb_mult[:, None], qm.emb_shift)
    emb_ss = np.sum(emb_x * emb_x, axis=1)
    ss_emb = lay.alloc("ss_emb", 0, 2 * mc.vocab_size,
                       np.stack([emb_ss // SS_RADIX, emb_ss % SS_RADIX], axis=1))
    ss_radix = lay.alloc("ss_radix", 1, 2, [SS_RADIX, 1])
    asm.vop(n=2, a=act(ss_emb, index=TOK, istride=2, ks=1), b=bop(ss_radix, ks=1),
            c=cop(buf["scale"]), out=isa.OutFunc.NORM, init=qm.eps, sat=32)
    # embedding: x = mulshr(emb[tok], emb_mult[tok], emb_shift)
    asm.vop(s=dim, a={"space": isa.Space.WROW.value, "base": emb_w[0], "index": TOK,
                      "istride": emb_w[2], "js": 1},
            b=bop(emb_mult, index=TOK, istride=1), c=cop(buf["x"], js=1),
            shift=qm.emb_shift, sat=16)
    # q: 8 bits, one weight word (q word k in bank k, isa.wbank_slot), the wq MATVEC's
    # y_wbank write; each head slot rounded by its own shift (RoPE), taken back by QK
    q_word, kv_shift = lay.weight_word(), mc.kv_mul.bit_length() - 1
    slot_heads = placement[0] if slotted else list(range(mc.n_heads))
    for l, layer in enumerate(layers):
        wm = wmat[l]
        q_shift = [int(qm.q_shift[l, h]) if h >= 0 else 0 for h in slot_heads]
        if max(q_shift) > qm.att_shift[l] or max(q_shift) > 15:
            raise CompileError(f"layer {l}: q's head shifts {q_shift} must be at most 15 and "
                               f"at most the score shift {qm.att_shift[l]}")
        matvec(layer.wq, wm["wq"], buf["x"], None, y_addr=q_word, y_wbank=True,
               y_bits=qm.q_bits, epi=isa.Epi.ROPE, head_shift=q_shift, **rope)
        matvec(layer.wk, wm["wk"], buf["x"], K[l], y_index=POS, epi=isa.Epi.ROPE, **rope,
               y_pack=True)
        # a narrow V cache holds V >> v_shift (wv's requantization): the output's shift
        # takes it back, (e . V) << v_shift rounded at RECIP_FRAC exactly
        v_shift = int(qm.kv_shifts()[1, l, 0])
        if passes:
            matvec(wv_src[l].wv, wm["wv"], buf["x"], None, y_addr=Vc[l], y_wcol=True,
                   y_index=POS, y_shift=vt_shift)
            asm.qk(q_addr=q_word, **words(k=K[l], s=buf["scores"]), shift=qm.att_shift[l],
                   head_shift=q_shift, n_pos=True, kv_shift=kv_shift, s_tr=True, s_hs=s_hs)
            # a pass a head slot: its K/V head's blocks of V^T, its score words; its
            # outputs where PV's drain puts them (element h * hs .., lane group y_grp)
            for h, head in enumerate(slot_heads):
                if head < 0:
                    continue
                out = buf["att"].base + h * hs
                asm.matvec(w_base=Vc[l] + (head // mc.kv_mul) * (hs // R), x_bank=1,
                           x_addr=buf["scores"].base // L + (h << s_hs),
                           y_bank=buf["att"].bank, y_addr=out // L, y_grp=(out % L) // R,
                           n_blocks=hs // R, n_chunks=n_groups, q_shift=RECIP_FRAC - v_shift,
                           y_bits=16, x_exp=True, x_head=h, w_shift=vt_shift, x_pos=True,
                           x_shift=L.bit_length() - 1)
        else:
            matvec(layer.wv, wm["wv"], buf["x"], Vc[l], y_index=POS, y_pack=True)
            asm.qk(q_addr=q_word, **words(k=K[l], s=buf["scores"]), shift=qm.att_shift[l],
                   head_shift=q_shift, n_pos=True, kv_shift=kv_shift)
            asm.pv(**words(v=Vc[l], s=buf["scores"], y=buf["att"]), d_blocks=-(-att_dim // R),
                   shift=RECIP_FRAC - v_shift, n_pos=True, kv_shift=kv_shift)
        matvec(layer.wo, wm["wo"], buf["att"], buf["x"], epi=isa.Epi.RESID, ss_init=qm.eps)
        # w1 and w3 interleaved by rows: each row block holds (h1, h3) pairs -> SiLU x gate
        matvec(layer.w1, w13[l], buf["x"], buf["g"], epi=isa.Epi.SILU_GATE,
               epi_shift=check_shift("SwiGLU product", fmt.h1 + fmt.h3 - fmt.g))
        matvec(layer.w2, wm["w2"], buf["g"], buf["x"], epi=isa.Epi.RESID, ss_init=qm.eps)
    # the classifier shares the embedding's weights: the final gains are applied to x here
    asm.vop(s=dim, a=act(buf["x"], js=1), b=bop(final_gain, js=1), c=cop(buf["xg"], js=1),
            shift=check_shift("final RMSNorm gain", qm.final_shift), sat=16)
    matvec(qm.cls, cls_w, buf["xg"], buf["logits"], epi=isa.Epi.ARGMAX)
    asm.next_(0)
    asm.halt()

    # ---- cycle model, sizes ----------------------------------------------------------------
    body = asm.instrs[:-1]                       # up to and including NEXT
    macs_issued = sum(isa.duration(i) * cfg.macs for i in body if i["op"] == isa.Opcode.MATVEC)
    mats = [qm.cls.w] + [getattr(layer, n).w for layer in qm.layers
                         for n in ("wq", "wk", "wv", "wo", "w1", "w3", "w2")]
    macs_useful = sum(w.size for w in mats)
    table = np.zeros(isa.TABLE_DEPTH, dtype=np.int64)
    table[isa.SILU_TABLE:isa.SILU_TABLE + len(qm.silu_table)] = qm.silu_table
    act_init = [(lay.bufs[n].bank, lay.bufs[n].base, v) for n, v in lay.init.items()]
    mmem = np.array(lay.mwords, dtype=np.int64).reshape(-1, cfg.rows)
    prog = DecoderProgram(cfg, qm, P, [isa.encode(i) for i in asm.instrs], lay.wblocks,
                          act_init, mmem, rope_words, table, lay.bufs, body,
                          macs_issued, macs_useful, lay.wnext, lay.tnext)
    if check:
        problems = [f"{name}: needs {used}, the config has {avail}"
                    for name, (used, avail) in prog.footprint().items() if used > avail]
        if problems:
            raise CompileError(f"the model does not fit config {cfg.ident}: "
                               + "; ".join(problems))
    return prog
