"""Requantizer: accumulators -> ``y_bits``-bit results, ``sat((acc * M + 2**(S-1)) >> S)``."""

__all__ = ["Requantizer", "Y_BITS_FIELD"]

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.config import ACT_BITS
from tinylpu.isa import ATT_ACC_BITS
from tinylpu.numerics import MULT_BITS, SHIFT_MAX

from .rounding import round_shift

Y_BITS_FIELD = 6        # MatvecArgs.y_bits: 0 counts as 64 (no saturation before the lane)


class Requantizer(wiring.Component):
    """Requantizes ``rows`` accumulators (see :mod:`tinylpu.numerics` for the exact rule), of
    ``acc_bits`` (a MATVEC) or up to ``ATT_ACC_BITS`` (a PV drain block).

    The result saturates to ``y_bits`` signed bits (a zero ``y_bits`` counts as 64) and is
    output as a 32-bit activation lane: the low 32 bits of the saturated value, i.e. its sign
    extension for ``y_bits <= 32`` (as :meth:`tinylpu.golden.GoldenTile._matvec` does).

    Row r uses multiplier ``mult[r]``.

    Timing: ``acc``, ``mult``, ``shift`` and ``y_bits`` in cycle n; the product is registered
    at the end of n; ``y`` (combinational from that register) is valid in cycle n+1.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "acc": In(signed(max(cfg.acc_bits, ATT_ACC_BITS))).array(cfg.rows),
            "mult": In(signed(MULT_BITS)).array(cfg.rows),
            "shift": In(range(SHIFT_MAX + 1)),
            "y_bits": In(Y_BITS_FIELD),
            "y": Out(signed(ACT_BITS)).array(cfg.rows),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        pbits = max(cfg.acc_bits, ATT_ACC_BITS) + MULT_BITS
        shift = Signal.like(self.shift)
        m.d.sync += shift.eq(self.shift)
        # saturation bounds of the registered y_bits: hi = 2**(b-1) - 1, lo = -hi - 1
        y_bits = Signal(Y_BITS_FIELD)
        m.d.sync += y_bits.eq(self.y_bits)
        top = Signal(range(64))                       # b - 1, b = y_bits or 64
        m.d.comb += top.eq(Mux(y_bits == 0, 63, y_bits - 1))
        hi = Signal(unsigned(64))
        m.d.comb += hi.eq((Const(1, 64) << top) - 1)
        lo = Signal(signed(65))
        m.d.comb += lo.eq(-hi - 1)
        for r in range(cfg.rows):
            prod = Signal(signed(pbits), name=f"prod{r}", reset_less=True)
            m.d.sync += prod.eq(self.acc[r] * self.mult[r])
            # (prod + 2**(shift-1)) >> shift, no rounding for shift 0 (rtl.rounding)
            rounded = round_shift(m, prod, shift, f"rounded{r}")
            # truncating the saturated value to the 32-bit lane wraps it, as the golden model
            m.d.comb += self.y[r].eq(Mux(rounded > hi, hi, Mux(rounded < lo, lo, rounded)))
        return m
