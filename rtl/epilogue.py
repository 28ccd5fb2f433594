"""The MATVEC epilogue: what happens to a row block's requantized results before the write."""

__all__ = ["Epilogue"]

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.config import ACT_BITS
from tinylpu.isa import Epi

from .requant import Y_BITS_FIELD


class Epilogue(wiring.Component):
    """Applies ``epi`` to the R results of a row block (:class:`tinylpu.isa.Epi`).

    * NONE: ``out[r] = y[r]``.
    * RESID: ``out[r] = sat_{y_bits}(old[r] + y[r])`` (a 33-bit sum; ``y_bits`` 0 counts as
      64), ``old[r]`` the destination lane read in the previous cycle.

    Timing: ``y`` and the control inputs in cycle n are registered at its end; ``old`` (the
    read data of the destination word, lane group ``group``) arrives in n+1, when ``out`` is
    valid (combinational).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "y": In(signed(ACT_BITS)).array(cfg.rows),
            "epi": In(Epi), "y_bits": In(Y_BITS_FIELD), "group": In(range(max(
                cfg.lanes // cfg.rows, 2))),
            "old_word": In(cfg.act_word_bits),
            "out": Out(signed(ACT_BITS)).array(cfg.rows),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, groups = cfg.rows, cfg.lanes // cfg.rows
        y = [Signal(signed(ACT_BITS), name=f"y{r}") for r in range(R)]
        epi, y_bits = Signal(Epi), Signal(Y_BITS_FIELD)
        group = Signal.like(self.group)
        m.d.sync += [epi.eq(self.epi), y_bits.eq(self.y_bits), group.eq(self.group)]
        m.d.sync += [y[r].eq(self.y[r]) for r in range(R)]
        top = Signal(range(64))
        m.d.comb += top.eq(Mux(y_bits == 0, 63, y_bits - 1))
        hi = Signal(unsigned(64))
        m.d.comb += hi.eq((Const(1, 64) << top) - 1)
        lo = Signal(signed(65))
        m.d.comb += lo.eq(-hi - 1)
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
            m.d.comb += self.out[r].eq(Mux(epi == Epi.RESID, resid, y[r]))
        return m
