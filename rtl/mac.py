"""The MAC array: ``rows`` x ``lanes`` multipliers, fed for MATVEC, QK or PV."""

__all__ = ["MacArray", "MacMode", "LATENCY", "tree_sum"]

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.config import ACT_BITS, X_BITS

LATENCY = 2       # inputs in cycle n, their sums / accumulators valid in n + 2
OPERAND_BITS = 16


class MacMode(enum.Enum, shape=2):
    MATVEC = 0    # row r: weights of weight bank r times the x lanes (low 16 bits)
    QK = 2        # q (weight bank r's word) times the K row in x (packed int16), heads
    #               summed per half row
    PV = 3        # the heads' weights ``e`` times the V row in x, accumulated per MAC


def tree_sum(m, values, name):
    """The sum of ``values`` (signed) as a tree of two-input adders, each a signal that Yosys
    keeps. Without ``keep``, Yosys merges the tree into one multi-operand adder (``$macc``)
    and maps it to a carry-save tree of LUTs; two-input adders map to carry chains: the
    default tile's MAC array 12,254 -> 8,658 LUT4 and 1,488 -> 2,304 CCU2C (``synth_ecp5``)."""
    level = 0
    while len(values) > 1:
        pairs = []
        for i in range(0, len(values) - 1, 2):
            s = Signal(signed(max(len(values[i]), len(values[i + 1])) + 1),
                       name=f"{name}_{level}_{i // 2}", attrs={"keep": 1})
            m.d.comb += s.eq(values[i] + values[i + 1])
            pairs.append(s)
        values = pairs + values[len(values) - len(values) % 2:]
        level += 1
    return values[0]


class MacArray(wiring.Component):
    """``rows`` x ``lanes`` multiply-accumulate array, 16 x 16-bit signed multipliers.

    Each cycle with ``valid``, by ``mode`` (:class:`MacMode`):

    * MATVEC: row r forms ``sum_l w[r][l] * x[l]`` (``w[r]``: ``lanes`` signed
      ``data_bits`` weights, lane l at bits ``l*data_bits``; ``x``: an activation word, the
      low ``X_BITS`` of lane l, signed) and adds it to its ``acc_bits`` accumulator, which
      wraps (``first``: starts from zero). ``result[r]`` holds the block's sum after a
      ``last`` input.
    * QK: MAC (r, l) multiplies weight lane l of ``w[r]`` (q, 8 bits) by packed value
      :func:`tinylpu.isa.att_kv_index` ``(r, l, L, R, kv_shift)`` of ``x`` (a K row: with
      4 or more rows a half of lane l, so no MAC reads another lane's wires); ``halves[r]``
      are the sums of lanes ``0 .. L/2 - 1`` and ``L/2 .. L - 1``: the scores of heads 2r and
      2r + 1.
    * PV: MAC (r, l) multiplies ``e`` of its head (:func:`tinylpu.isa.att_head`) by the same
      packed value of ``x`` (a V row) and adds it to its own ``ATT_ACC_BITS`` accumulator
      (``first``: starts from the product; the accumulators are cleared in the cycle a
      ``first`` PV input comes in, so they read 0 from then until its product is added).
      ``pv_out`` is accumulators
      ``pv_sel * R .. pv_sel * R + R - 1`` (row-major), combinationally. A tile without
      PV's datapath (``cfg.pv`` 0) has no ``e`` path and no accumulators (``pv_out`` 0).

    Timing: inputs in cycle n; products registered at the end of n; sums and accumulators
    registered at the end of n + 1: ``result``, ``halves`` and the accumulators
    behind ``pv_out`` are valid in n + 2 (:data:`LATENCY`). One input per cycle, no bubbles.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, L = cfg.rows, cfg.lanes
        # One port per row (not one R x L view): simulators re-evaluate every slice of a
        # vector when any bit of it changes, so a single 2048-bit port costs O((R*L)^2).
        super().__init__({
            "w": In(cfg.word_bits).array(R),     # row r: lanes of W, lane l at bits 8l
            "x": In(cfg.act_word_bits),           # lane l: bits 32l .. 32l+31
            "e": In(OPERAND_BITS).array(2 * R),   # PV: the weight of each head
            "mode": In(MacMode), "kv_shift": In(2),
            "valid": In(1), "first": In(1), "last": In(1),
            "result": Out(signed(cfg.acc_bits)).array(R),
            "result_valid": Out(1),
            "halves": Out(signed(isa.ATT_ACC_BITS)).array(R, 2),
            "pv_sel": In(range(max(L, 2))),
            "pv_out": Out(signed(isa.ATT_ACC_BITS)).array(R),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, L, db = cfg.rows, cfg.lanes, cfg.data_bits
        half = L // 2
        w_lane = lambda r, l: self.w[r][l * db:(l + 1) * db].as_signed()
        x_lane = lambda l: self.x[l * ACT_BITS:l * ACT_BITS + X_BITS].as_signed()
        packed = lambda i: self.x[16 * i:16 * (i + 1)].as_signed()     # isa.halves
        mode = self.mode
        att = (mode == MacMode.QK) | (mode == MacMode.PV)

        valid, first, last, mode1 = Signal(), Signal(), Signal(), Signal(MacMode)
        m.d.sync += [valid.eq(self.valid), first.eq(self.first), last.eq(self.last),
                     mode1.eq(mode)]
        m.d.sync += self.result_valid.eq(valid & last & (mode1 == MacMode.MATVEC))

        pv_acc = []
        for r in range(R):
            prod = []
            for l in range(L):
                p = Signal(signed(2 * OPERAND_BITS), name=f"p{r}_{l}", reset_less=True)
                if isa.lane_local(R):   # a half of its own lane: the low half is x_lane's
                    kv = packed(isa.att_kv_index(r, l, L, R, 0))
                else:
                    kv = Array([packed(isa.att_kv_index(r, l, L, R, s)) for s in range(4)])
                    kv = kv[self.kv_shift]
                # the weight side: MATVEC's weights or QK's q (or PV's weights)
                a = Mux(mode == MacMode.PV, self.e[isa.att_head(r, l, L)], w_lane(r, l)) \
                    if cfg.pv else w_lane(r, l)
                b = Mux(att, kv, x_lane(l))
                m.d.sync += p.eq(a.as_signed() * b)
                prod.append(p)
                if not cfg.pv:          # no PV datapath (cfg.pv): no accumulators
                    continue
                acc = Signal(signed(isa.ATT_ACC_BITS), name=f"pv{r}_{l}")
                # cleared as PV's first V row comes in (the previous PV's drain is over),
                # so a product is always added: the flip-flops' synchronous reset instead
                # of a 2:1 choice per bit (2,558 LUT4 fewer on the default tile)
                with m.If(self.valid & self.first & (mode == MacMode.PV)):
                    m.d.sync += acc.eq(0)
                with m.Elif(valid & (mode1 == MacMode.PV)):
                    m.d.sync += acc.eq(acc + p)
                pv_acc.append(acc)
            sums = [Signal(signed(isa.ATT_ACC_BITS), name=f"h{r}_{s}") for s in range(2)]
            m.d.comb += [sums[0].eq(tree_sum(m, prod[:half], f"t{r}_0")),
                         sums[1].eq(tree_sum(m, prod[half:], f"t{r}_1"))]
            acc = Signal(signed(cfg.acc_bits), name=f"acc{r}")
            total = Signal(signed(cfg.acc_bits), name=f"sum{r}")
            m.d.comb += total.eq(sums[0] + sums[1] + (acc & ~first.replicate(cfg.acc_bits)))
            with m.If(valid & (mode1 == MacMode.MATVEC)):
                m.d.sync += acc.eq(total)
                with m.If(last):
                    m.d.sync += self.result[r].eq(total)
            with m.If(valid & (mode1 == MacMode.QK)):
                m.d.sync += [self.halves[r][s].eq(sums[s]) for s in range(2)]
        if not cfg.pv:
            return m
        blocks = [Cat(*pv_acc[j * R:(j + 1) * R]) for j in range(L)]
        chosen = Array(blocks)[self.pv_sel] if L > 1 else blocks[0]
        m.d.comb += [self.pv_out[r].eq(chosen[r * isa.ATT_ACC_BITS:(r + 1) * isa.ATT_ACC_BITS])
                     for r in range(R)]
        return m
