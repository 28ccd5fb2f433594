"""Attention on the MAC array: the QK/PV address generator, the score unit (QK's results and
running maxima), the weight unit (PV's softmax weights and their sums) and the drain (PV's
outputs, divided by each head's sum, through the output unit)."""

__all__ = ["AttentionAgu", "ScoreUnit", "ScoreTransposer", "WeightUnit", "Drain",
           "exp2_neg_unit", "transposer_start"]

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.numerics import EXP2_MAX, EXP2_TABLE

from .agu import ATTENTION_FIELDS, token_layout
from .router import weight_read
from .mac import MacMode
from .recip import RecipPipeline
from .rounding import registered_terms, round_shift_sat
from .sequencer import attention_issue, positions

SCORE_BITS = 16
SUM_BITS = isa.SUM_BITS  # a head's sum of weights: at most 2**14 * 2**16 positions


def transposer_start():
    """The score transposer's start: a QK with s_tr issues (``start``), its scores go to
    ``bank``, head slot h's words from ``lo + (h << hs)``, all of them in ``lo + (0 ..
    span)`` (:func:`tinylpu.isa.score_box`)."""
    return wiring.Signature({"start": Out(1), "bank": Out(2), "lo": Out(16), "hs": Out(4),
                             "span": Out(20)})


class AttentionAgu(wiring.Component):
    """Streams the reads of QK and PV, one cycle each, no bubbles.

    Its issue port is ``op`` (:func:`rtl.sequencer.attention_issue`). In the cycle
    ``issue_qk`` or ``issue_pv`` is high (with the args and ``pos``) the first cycle's reads are
    emitted combinationally (its positions N, last cycle and score box registered from the
    early args the cycle before); the instruction then runs with ``busy`` high
    until the cycle with ``final`` (its :func:`tinylpu.isa.duration`).

    * QK cycle p < N: ``w`` reads weight word ``q_addr`` (q, the MAC array's weight side),
      ``x`` reads K row ``k_addr + (p << k_shift)``, token QK (a result: its scores go to
      word ``s_addr + p // (L/R)``, lane group ``p % (L/R)``; with ``s_tr`` to the
      transposer, ``y_word`` ``s_addr + p // L``, ``y_lane`` ``p % L``, ``g_last`` on a
      group's last position); ``shifts`` are the head slots' score shifts
      (:func:`tinylpu.isa.qk_shifts`) while it runs; ``tr`` starts the transposer.
    * PV cycle k < N: ``s`` reads the score word of position k; from cycle 1, ``x`` reads
      the V row of position p = k - 1, token PV (``y_group``: the lane group of p's scores,
      which arrive with the V row; ``last`` on p = N - 1, carrying the drain's operands).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "op": In(attention_issue()),
            "w": Out(weight_read()),
            "shifts": Out(6).array(2 * cfg.rows),
            "x_en": Out(1), "x_bank": Out(2), "x_addr": Out(16),
            "s_en": Out(1), "s_bank": Out(2), "s_addr": Out(16),
            "s_group": Out(range(max(cfg.lanes // cfg.rows, 2))),
            "token": Out(token_layout(cfg, ATTENTION_FIELDS)),
            "tr": Out(transposer_start()),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        per_word = cfg.lanes // cfg.rows
        L, R = cfg.lanes, cfg.rows
        ll = (L - 1).bit_length()
        qk, pv, tok = self.op.qk, self.op.pv, self.token
        # (a tile without PV's datapath never issues PV: an illegal word, cfg.pv)
        issue_pv = self.op.issue_pv if cfg.pv else Const(0, 1)
        issue = self.op.issue_qk | issue_pv
        # an instruction's positions N, and from them its last cycle and the transposer's
        # score box, formed from the early args (the cycle before its issue) and registered:
        # the position's increment and compares are not on its first read's path
        e_pos_1 = self.op.early_pos + 1
        qk_n, pv_n = positions(self.op.early_qk, e_pos_1), positions(self.op.early_pv, e_pos_1)
        qk_last, pv_last, tr_lo, tr_span = Signal(18), Signal(18), Signal(16), Signal(20)
        e_lo, e_span = isa.score_box(self.op.early_qk, qk_n, L, R)
        m.d.sync += [qk_last.eq(qk_n - 1), pv_last.eq(pv_n), tr_lo.eq(e_lo), tr_span.eq(e_span)]

        # the instruction's constant operands, latched at issue
        is_pv, last_k, head_shift, s_tr = Signal(), Signal(18), Signal(64), Signal()
        qa, x_bank, s_bank, step = Signal(16), Signal(2), Signal(2), Signal(16)
        shift, kv_shift, y_bank, y_addr = Signal(6), Signal(2), Signal(2), Signal(16)
        d_blocks, y_bits = Signal(8), Signal(6)
        # what moves: the cycle, the next row and score word
        # (one bit even when a score word holds one position: no zero-width signals)
        k, xa, sa, sg, pg = Signal(18), Signal(16), Signal(16), Signal(range(max(per_word, 2))), \
            Signal(range(max(per_word, 2)))
        # the operands latched at issue, then what moves (updated below)
        operands = dict(is_pv=is_pv, last_k=last_k, head_shift=head_shift, s_tr=s_tr, qa=qa,
                        x_bank=x_bank, s_bank=s_bank, step=step, shift=shift,
                        kv_shift=kv_shift, y_bank=y_bank, y_addr=y_addr, d_blocks=d_blocks,
                        y_bits=y_bits)
        state = dict(operands, k=k, xa=xa, sa=sa, sg=sg, pg=pg)
        cur = {name: Signal.like(sig, name=f"cur_{name}") for name, sig in state.items()}
        with m.If(issue_pv):
            m.d.comb += [
                cur["is_pv"].eq(1), cur["last_k"].eq(pv_last), cur["s_tr"].eq(0),
                cur["x_bank"].eq(pv.v_bank), cur["s_bank"].eq(pv.s_bank),
                cur["step"].eq(1 << pv.v_shift), cur["shift"].eq(pv.shift),
                cur["kv_shift"].eq(pv.kv_shift), cur["y_bank"].eq(pv.y_bank),
                cur["y_addr"].eq(pv.y_addr), cur["d_blocks"].eq(pv.d_blocks),
                cur["y_bits"].eq(pv.y_bits), cur["k"].eq(0), cur["xa"].eq(pv.v_addr),
                cur["sa"].eq(pv.s_addr), cur["sg"].eq(0), cur["pg"].eq(0),
            ]
        with m.Elif(self.op.issue_qk):
            m.d.comb += [
                cur["is_pv"].eq(0), cur["last_k"].eq(qk_last), cur["s_tr"].eq(qk.s_tr),
                cur["qa"].eq(qk.q_addr), cur["head_shift"].eq(qk.head_shift),
                cur["x_bank"].eq(qk.k_bank),
                cur["s_bank"].eq(qk.s_bank), cur["step"].eq(1 << qk.k_shift),
                cur["shift"].eq(qk.shift), cur["kv_shift"].eq(qk.kv_shift),
                cur["y_bank"].eq(qk.s_bank), cur["y_addr"].eq(qk.s_addr),
                cur["y_bits"].eq(16), cur["k"].eq(0), cur["xa"].eq(qk.k_addr),
                cur["sa"].eq(qk.s_addr), cur["sg"].eq(0),
            ]
        with m.Else():
            m.d.comb += [cur[name].eq(sig) for name, sig in state.items()]
        active = issue | self.op.busy
        c = cur
        # QK's score shift of each head slot: shift less its head_shift entry, at least 0
        for h in range(2 * cfg.rows):
            entry = c["head_shift"].word_select(h % isa.HEAD_SLOTS, isa.HEAD_SHIFT_BITS)
            m.d.comb += self.shifts[h].eq(Mux(c["shift"] > entry, c["shift"] - entry, 0))
        m.d.comb += self.op.final.eq(active & (c["k"] == c["last_k"]))
        next_sg = Mux(c["sg"] == per_word - 1, 0, c["sg"] + 1)
        lane = c["k"][:ll] if ll else Const(0, 1)
        next_sa = c["sa"] + Mux(c["s_tr"], lane == L - 1, c["sg"] == per_word - 1)
        # the transposer's start, with its words' range (the span: isa.score_box)
        m.d.comb += [
            self.tr.start.eq(self.op.issue_qk & qk.s_tr), self.tr.bank.eq(qk.s_bank),
            self.tr.hs.eq(qk.s_hs),
        ]
        m.d.comb += [self.tr.lo.eq(tr_lo), self.tr.span.eq(tr_span)]
        m.d.comb += [
            tok.kv_shift.eq(c["kv_shift"]), tok.shift.eq(c["shift"]),
            tok.y_bits.eq(c["y_bits"]), tok.y_bank.eq(c["y_bank"]),
            tok.d_blocks.eq(c["d_blocks"]),
        ]
        with m.If(c["is_pv"]):
            # the score of position k (if k < N); the V row of position k - 1 (if k >= 1)
            m.d.comb += [
                self.s_en.eq(active & (c["k"] != c["last_k"])), self.s_bank.eq(c["s_bank"]),
                self.s_addr.eq(c["sa"]), self.s_group.eq(c["sg"]),
                self.x_en.eq(active & (c["k"] != 0)), self.x_bank.eq(c["x_bank"]),
                self.x_addr.eq(c["xa"]),
                tok.valid.eq(active & (c["k"] != 0)), tok.kind.eq(MacMode.PV),
                tok.first.eq(c["k"] == 1), tok.last.eq(c["k"] == c["last_k"]),
                tok.y_word.eq(c["y_addr"]), tok.y_group.eq(c["pg"]),
            ]
        with m.Else():
            m.d.comb += [
                self.w.en.eq(active), self.w.word.eq(c["qa"]),
                self.x_en.eq(active), self.x_bank.eq(c["x_bank"]), self.x_addr.eq(c["xa"]),
                tok.valid.eq(active), tok.kind.eq(MacMode.QK),
                tok.first.eq(c["k"] == 0), tok.last.eq(1),
                tok.y_word.eq(c["sa"]), tok.y_group.eq(c["sg"]),
                tok.s_tr.eq(active & c["s_tr"]), tok.y_lane.eq(lane),
                tok.g_last.eq(active & ((lane == L - 1) | (c["k"] == c["last_k"]))),
            ]

        with m.If(active & ~self.op.final):
            m.d.sync += self.op.busy.eq(1)
            m.d.sync += [sig.eq(c[name]) for name, sig in operands.items()]
            m.d.sync += k.eq(c["k"] + 1)
            with m.If(c["is_pv"]):
                m.d.sync += [sa.eq(next_sa), sg.eq(next_sg), pg.eq(c["sg"]),
                             xa.eq(Mux(c["k"] != 0, c["xa"] + c["step"], c["xa"]))]
            with m.Else():
                m.d.sync += [xa.eq(c["xa"] + c["step"]), sa.eq(next_sa), sg.eq(next_sg)]
        with m.Else():
            m.d.sync += self.op.busy.eq(0)
        return m


class ScoreUnit(wiring.Component):
    """QK's results: the 2R head sums of a position become int16 scores, packed two to a
    lane (the lane group of a score word), and the running maxima.

    ``d_h = sat16((half_h + 2**(s_h-1)) >> s_h)`` (no rounding for s_h 0), head
    ``h = 2r + s`` from ``halves[r][s]``, ``s_h = shifts[h]``.

    Timing: ``valid``, ``first`` and ``halves`` in cycle n (the MAC array's sums of a QK
    read in n - 3), ``shifts`` in n - 1: the unit registers each shift with its rounding
    constant and its saturation limit (``shift + 15``), so that cycle n has no decode or
    adder in front of the rounding add and the saturation's compares (rtl/rounding.py); the
    scores are registered at its end; ``packed`` (lane r: heads
    2r, 2r + 1 in its low and high halves) is valid in n + 1, and the maxima (restarting
    from the scores on ``first``) are registered at the end of n + 1: in ``maxima`` from
    n + 2 (the QK read's cycle + :data:`tinylpu.isa.LAT_QK_MAX` + 1).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R = cfg.rows
        super().__init__({
            "valid": In(1), "first": In(1), "shifts": In(6).array(2 * R),
            "halves": In(signed(isa.ATT_ACC_BITS)).array(R, 2),
            "packed": Out(32).array(R),
            "maxima": Out(signed(SCORE_BITS)).array(2 * R),
        })

    def elaborate(self, platform):
        m = Module()
        R = self.cfg.rows
        scores = [Signal(signed(SCORE_BITS), name=f"d{h}") for h in range(2 * R)]
        valid, first = Signal(), Signal()
        m.d.sync += [valid.eq(self.valid), first.eq(self.first)]
        top, width = SCORE_BITS - 1, isa.ATT_ACC_BITS
        for h in range(2 * R):
            shift = Signal(6, name=f"shift{h}")
            m.d.sync += shift.eq(self.shifts[h])
            terms, mask = registered_terms(m, self.shifts[h], top, width, h)
            m.d.sync += scores[h].eq(round_shift_sat(m, self.halves[h // 2][h % 2], shift, top,
                                                     SCORE_BITS, f"sh{h}", terms=terms,
                                                     mask=mask))
            with m.If(valid & (first | (scores[h] > self.maxima[h]))):
                m.d.sync += self.maxima[h].eq(scores[h])
        m.d.comb += [self.packed[r].eq(Cat(scores[2 * r], scores[2 * r + 1]))
                     for r in range(R)]
        return m


class ScoreTransposer(wiring.Component):
    """QK's scores with ``s_tr``: a position's 2R scores a cycle in, a head slot's word of L
    positions a cycle out (:func:`tinylpu.isa.score_tr_slot`).

    In cycle n (a QK read's c + 4, the score unit's ``packed``), ``valid`` puts the scores
    into lane ``lane`` of the collect buffer (2R x L scores); ``last`` (the group's last
    position) hands the group on with its word ``word``: it is copied into the out buffer
    in n + 1, or when the out buffer's last word is being written, and the out buffer writes
    its 2R words one a cycle from the cycle after the copy: ``w_en``, head slot h to word
    ``word + (h << hs)`` (``hs`` and ``bank`` from ``tr``'s start), lanes ``0 .. lane`` of
    the group (``w_mask``), each score sign-extended to 32 bits (the timing of
    :func:`tinylpu.isa.score_word_writes`). ``busy``: a group waits or words are left.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, L = cfg.rows, cfg.lanes
        super().__init__({
            "tr": In(transposer_start()),
            "valid": In(1), "last": In(1), "lane": In(range(max(L, 2))), "word": In(16),
            "scores": In(32).array(R),
            "w_en": Out(1), "w_bank": Out(2), "w_word": Out(16), "w_mask": Out(L),
            "w_data": Out(L * 32), "busy": Out(1),
            "box_bank": Out(2), "box_lo": Out(16), "box_span": Out(20),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, L, H = cfg.rows, cfg.lanes, 2 * cfg.rows
        hs, bank = Signal(4), Signal(2)
        with m.If(self.tr.start):
            m.d.sync += [hs.eq(self.tr.hs), bank.eq(self.tr.bank), self.box_lo.eq(self.tr.lo),
                         self.box_span.eq(self.tr.span)]
        m.d.comb += self.box_bank.eq(bank)
        # the buffers are data: reset-less (lanes past a group's last are masked off its
        # words, and a word is written only after its group was collected)
        collect = [[Signal(SCORE_BITS, name=f"tc{h}_{l}", reset_less=True) for l in range(L)]
                   for h in range(H)]
        for l in range(L):
            with m.If(self.valid & (self.lane == l)):
                m.d.sync += [collect[h][l].eq(self.scores[h // 2].word_select(h % 2, 16))
                             for h in range(H)]
        pend, p_word, p_mask = Signal(), Signal(16), Signal(L)
        out = [Signal(L * SCORE_BITS, name=f"to{h}", reset_less=True) for h in range(H)]
        left, head, o_word, o_mask = Signal(range(H + 1)), Signal(range(H)), Signal(16), \
            Signal(L)
        copy = pend & (left <= 1)
        with m.If(self.valid & self.last):
            m.d.sync += [pend.eq(1), p_word.eq(self.word),
                         p_mask.eq((Const(2, L + 1) << self.lane) - 1)]
        with m.Elif(copy):
            m.d.sync += pend.eq(0)
        with m.If(copy):
            m.d.sync += [o.eq(Cat(*row)) for o, row in zip(out, collect)]
            m.d.sync += [left.eq(H), head.eq(0), o_word.eq(p_word), o_mask.eq(p_mask)]
        with m.Elif(left != 0):
            m.d.sync += [left.eq(left - 1), head.eq(head + 1),
                         o_word.eq(o_word + (Const(1, 16) << hs))]
        word = Array(out)[head]
        m.d.comb += [
            self.w_en.eq(left != 0), self.w_bank.eq(bank), self.w_word.eq(o_word),
            self.w_mask.eq(o_mask), self.busy.eq(pend | (left != 0)),
        ]
        lanes = [word[SCORE_BITS * l:SCORE_BITS * (l + 1)] for l in range(L)]
        m.d.comb += self.w_data.eq(Cat(*(Cat(v, v[-1].replicate(32 - SCORE_BITS))
                                         for v in lanes)))
        return m


def exp2_neg_unit(m, delta, name):
    """exp2_neg of a 17-bit signed difference: clamp to 0 .. EXP2_MAX, then a 16-entry table
    and a right shift (tinylpu.numerics.exp2_neg)."""
    i = Signal(8, name=f"{name}_i")
    m.d.comb += i.eq(Mux(delta < 0, 0, Mux(delta > EXP2_MAX, EXP2_MAX, delta[:8])))
    table = Array(Const(v, 16) for v in EXP2_TABLE)
    return table[i[:4]] >> i[4:8]


class WeightUnit(wiring.Component):
    """PV's softmax weights: ``e_h = exp2_neg(maxima_h - d_h)`` for the 2R head slots of a
    position's scores (``scores``: the lane group of its score word, which the router picks),
    and their sums per head.

    Timing: ``valid``, ``first`` and ``scores`` in cycle n (the PV token of the V-row read
    in n, whose score word was read in n - 1); ``e`` registered at its end,
    valid in n + 1 (the MAC array's operand); the sums, restarting on ``first``, registered
    at the end of n + 1.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R = cfg.rows
        super().__init__({
            "valid": In(1), "first": In(1), "scores": In(R * 32),
            "maxima": In(signed(SCORE_BITS)).array(2 * R),
            "e": Out(16).array(2 * R),
            "sums": Out(SUM_BITS).array(2 * R),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R = cfg.rows
        valid, first = Signal(), Signal()
        m.d.sync += [valid.eq(self.valid), first.eq(self.first)]
        for h in range(2 * R):
            d = self.scores[16 * h:16 * (h + 1)].as_signed()
            delta = Signal(signed(SCORE_BITS + 1), name=f"delta{h}")
            m.d.comb += delta.eq(self.maxima[h] - d)
            m.d.sync += self.e[h].eq(exp2_neg_unit(m, delta, f"e{h}"))
            with m.If(valid):
                m.d.sync += self.sums[h].eq(Mux(first, 0, self.sums[h]) + self.e[h])
        return m


class Drain(wiring.Component):
    """PV's outputs: after the last position (``last`` in cycle c_last), each head's sum
    goes through the reciprocal pipeline (:class:`rtl.recip.RecipPipeline`), head h in
    c_last + 2 + h, and block j of the R x L accumulators (``sel`` = j) is offered to the
    output unit as ``inject`` (with ``offer`` = j) in cycle c_last + PV_DRAIN + j - 1, to
    enter it the cycle after: ``mult`` and ``exponent`` are head ``(j * R) // (L / 2)``'s reciprocal,
    ``block`` is j, ``busy`` is high from the cycle after ``last`` until the cycle the last
    block enters. The operands ``y_bank``, ``y_addr``, ``d_blocks``, ``shift`` and ``y_bits``
    are taken with ``last``.

    Timing: ``mult``/``exponent``/``sel`` refer to the block entering in the cycle after
    ``inject`` (they are registered with it).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, L = cfg.rows, cfg.lanes
        super().__init__({
            "last": In(1), "sums": In(SUM_BITS).array(2 * R),
            "y_bank": In(2), "y_addr": In(16), "d_blocks": In(8), "shift": In(6),
            "y_bits": In(6),
            "inject": Out(1), "offer": Out(9), "busy": Out(1),
            "sel": Out(range(max(L, 2))), "block": Out(8),
            "mult": Out(16), "exponent": Out(range(SUM_BITS + 1)),
            "o_bank": Out(2), "o_addr": Out(16), "o_shift": Out(6), "o_bits": Out(6),
            "left_first": Out(9), "left_end": Out(9),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, L = cfg.rows, cfg.lanes
        half = max(L // 2, 1)
        m.submodules.recip = recip = RecipPipeline(SUM_BITS)
        assert recip.latency == isa.RECIP_PIPE_LAT
        count = Signal(range(isa.PV_DRAIN + 256 + 1))   # cycles after the last position
        n_blocks = Signal(9)
        m.d.comb += self.busy.eq(count != 0)
        with m.If(self.last):
            m.d.sync += [count.eq(1), n_blocks.eq(Mux(self.d_blocks == 0, 256, self.d_blocks)),
                         self.o_bank.eq(self.y_bank), self.o_addr.eq(self.y_addr),
                         self.o_shift.eq(self.shift), self.o_bits.eq(self.y_bits)]
        with m.Elif(count != 0):
            done = count == isa.PV_DRAIN + n_blocks - 1
            m.d.sync += count.eq(Mux(done, 0, count + 1))
        # the sums into the reciprocal pipeline, head h in c_last + 2 + h
        head_in = count - 2
        m.d.comb += [recip.valid.eq((count >= 2) & (count < 2 + 2 * R)),
                     recip.operand.eq(Array(self.sums)[head_in[:max(1, (2 * R - 1)
                                                                    .bit_length())]])]
        mant = [Signal(16, name=f"m{h}") for h in range(2 * R)]
        expo = [Signal(range(SUM_BITS + 1), name=f"b{h}") for h in range(2 * R)]
        head_out = Signal(8)
        m.d.comb += head_out.eq(count - 2 - isa.RECIP_PIPE_LAT)
        with m.If(recip.out_valid):
            for h in range(2 * R):
                with m.If(head_out == h):
                    m.d.sync += [mant[h].eq(recip.mantissa), expo[h].eq(recip.exponent)]
        # block j enters the output unit in c_last + PV_DRAIN + j: offered a cycle before
        j = Signal(9)
        m.d.comb += j.eq(count + 1 - isa.PV_DRAIN)
        offer = (count != 0) & (count + 1 >= isa.PV_DRAIN) & (j < n_blocks)
        m.d.comb += [self.inject.eq(offer), self.offer.eq(j)]
        # the blocks not offered yet (the one offered in this cycle included), while busy
        m.d.comb += [self.left_first.eq(Mux(count + 1 >= isa.PV_DRAIN, j, 0)),
                     self.left_end.eq(n_blocks)]
        first = (j * R)[:max(1, (R * L - 1).bit_length())]
        with m.If(offer):
            m.d.sync += [self.block.eq(j), self.sel.eq(j % L if L > 1 else 0),
                         self.mult.eq(Array(mant)[first // half]),
                         self.exponent.eq(Array(expo)[first // half])]
        return m
