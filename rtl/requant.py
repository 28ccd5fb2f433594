"""Requantizer: int32 accumulators -> int8, ``saturate((acc * M + 2**(S-1)) >> S)``."""

__all__ = ["Requantizer"]

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.numerics import MULT_BITS, SHIFT_MAX


class Requantizer(wiring.Component):
    """Requantizes ``rows`` accumulators (see :mod:`tinylpu.numerics` for the exact rule).

    Timing: ``acc``, ``mult`` and ``shift`` in cycle n; the product is registered at the end
    of n; ``y`` (combinational from that register) is valid in cycle n+1.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "acc": In(signed(cfg.acc_bits)).array(cfg.rows),
            "mult": In(signed(MULT_BITS)),
            "shift": In(range(SHIFT_MAX + 1)),
            "y": Out(signed(cfg.data_bits)).array(cfg.rows),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        pbits = cfg.acc_bits + MULT_BITS
        shift = Signal.like(self.shift)
        m.d.sync += shift.eq(self.shift)
        # 2**(shift-1) for shift >= 1, 0 for shift == 0
        half = Signal(SHIFT_MAX)
        m.d.comb += half.eq((Const(1, SHIFT_MAX + 1) << shift)[1:])
        hi, lo = (1 << (cfg.data_bits - 1)) - 1, -(1 << (cfg.data_bits - 1))
        for r in range(cfg.rows):
            prod = Signal(signed(pbits), name=f"prod{r}", reset_less=True)
            m.d.sync += prod.eq(self.acc[r] * self.mult)
            rounded = Signal(signed(max(pbits, SHIFT_MAX) + 2), name=f"rounded{r}")
            m.d.comb += rounded.eq((prod + half) >> shift)
            m.d.comb += self.y[r].eq(Mux(rounded > hi, hi, Mux(rounded < lo, lo, rounded)))
        return m
