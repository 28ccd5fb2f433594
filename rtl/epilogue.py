"""The MATVEC epilogue: what happens to a row block's requantized results before the write."""

__all__ = ["Epilogue", "LATENCY"]

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.config import ACT_BITS
from tinylpu.isa import Epi
from tinylpu.numerics import MULT_BITS, ROPE_FRAC

from .requant import Y_BITS_FIELD

LATENCY = 2     # from y in cycle n to out in cycle n + 2


def _saturation_bounds(m, y_bits):
    """(hi, lo) of the signed ``y_bits``-bit range (``y_bits`` 0 counts as 64)."""
    top = Signal(range(64))
    m.d.comb += top.eq(Mux(y_bits == 0, 63, y_bits - 1))
    hi = Signal(unsigned(64))
    m.d.comb += hi.eq((Const(1, 64) << top) - 1)
    lo = Signal(signed(65))
    m.d.comb += lo.eq(-hi - 1)
    return hi, lo


class Epilogue(wiring.Component):
    """Applies ``epi`` to the R results of a row block (:class:`tinylpu.isa.Epi`).

    * NONE: ``out[r] = y[r]``.
    * RESID: ``out[r] = sat_{y_bits}(old[r] + y[r])`` (a 33-bit sum; ``y_bits`` 0 counts as
      64), ``old[r]`` lane ``group * R + r`` of ``old_word``.
    * ROPE: pair j, ``(a, b) = (y[2j], y[2j+1])``, rotated by ``(c, s)`` = entries 2j, 2j+1
      of ``rope_word``: ``sat((a c - b s + 2**13) >> 14)``, ``sat((a s + b c + 2**13) >> 14)``
      (:func:`tinylpu.numerics.rope_rotate`). With one row, nothing is rotated.

    Timing: ``y`` and the control inputs in cycle n are registered at its end; ``old_word``
    (the destination word, read in cycle n) and ``rope_word`` (read in cycle n) arrive in
    n+1, when the sums and products are registered; ``out`` is valid in n+2 (combinational
    from those registers): :data:`LATENCY` = 2.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "y": In(signed(ACT_BITS)).array(cfg.rows),
            "epi": In(Epi), "y_bits": In(Y_BITS_FIELD),
            "group": In(range(max(cfg.lanes // cfg.rows, 2))),
            "old_word": In(cfg.act_word_bits),
            "rope_word": In(MULT_BITS * cfg.rows),
            "out": Out(signed(ACT_BITS)).array(cfg.rows),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, groups = cfg.rows, cfg.lanes // cfg.rows
        # cycle n -> n+1 registers
        y = [Signal(signed(ACT_BITS), name=f"y{r}") for r in range(R)]
        epi, y_bits = Signal(Epi), Signal(Y_BITS_FIELD)
        group = Signal.like(self.group)
        m.d.sync += [epi.eq(self.epi), y_bits.eq(self.y_bits), group.eq(self.group)]
        m.d.sync += [y[r].eq(self.y[r]) for r in range(R)]
        # cycle n+1 -> n+2 registers
        epi2, y_bits2 = Signal(Epi), Signal(Y_BITS_FIELD)
        m.d.sync += [epi2.eq(epi), y_bits2.eq(y_bits)]
        plain = [Signal(signed(ACT_BITS), name=f"plain{r}") for r in range(R)]
        sums = [Signal(signed(2 * ACT_BITS + 2), name=f"rot{r}") for r in range(R)]

        # RESID: old + y, saturated (NONE: y)
        hi, lo = _saturation_bounds(m, y_bits)
        lane_bits = R * ACT_BITS
        group_word = Signal(lane_bits)
        if groups > 1:
            m.d.comb += group_word.eq(self.old_word.word_select(group, lane_bits))
        else:
            m.d.comb += group_word.eq(self.old_word[:lane_bits])
        for r in range(R):
            old = group_word[r * ACT_BITS:(r + 1) * ACT_BITS].as_signed()
            total = Signal(signed(ACT_BITS + 1), name=f"sum{r}")
            m.d.comb += total.eq(old + y[r])
            resid = Mux(total > hi, hi, Mux(total < lo, lo, total))
            m.d.sync += plain[r].eq(Mux(epi == Epi.RESID, resid, y[r]))

        # ROPE: the four products of each pair, summed (registered), then rounded
        entry = lambda i: self.rope_word[MULT_BITS * i:MULT_BITS * (i + 1)].as_signed()
        for j in range(R // 2):
            a, b = y[2 * j], y[2 * j + 1]
            c, s = entry(2 * j), entry(2 * j + 1)
            m.d.sync += [sums[2 * j].eq(a * c - b * s), sums[2 * j + 1].eq(a * s + b * c)]
        hi2, lo2 = _saturation_bounds(m, y_bits2)
        for r in range(R):
            rounded = Signal(signed(2 * ACT_BITS + 2), name=f"rounded{r}")
            m.d.comb += rounded.eq((sums[r] + (1 << (ROPE_FRAC - 1))) >> ROPE_FRAC)
            rot = Mux(rounded > hi2, hi2, Mux(rounded < lo2, lo2, rounded))
            rotates = (epi2 == Epi.ROPE) if r < R // 2 * 2 else 0
            m.d.comb += self.out[r].eq(Mux(rotates, rot, plain[r]))
        return m
