"""Requantizer: accumulators -> ``y_bits``-bit results, ``sat((acc * M + 2**(S-1)) >> S)``."""

__all__ = ["Requantizer", "Y_BITS_FIELD"]

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.config import ACT_BITS
from tinylpu.isa import ATT_ACC_BITS
from tinylpu.numerics import MULT_BITS, SHIFT_MAX

from .rounding import registered_terms, round_shift_sat, saturation_top

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
        # the rounding constant and the saturation's limit (shift + top; top = b - 1, b =
        # y_bits or 64) formed from cycle n's shift and y_bits and registered with the
        # product; cycle n+1 compares the limit with each bit's index beside the rounding add
        # (rtl.rounding.registered_terms), then the flat sign check (rtl.rounding)
        top = Signal(range(64))
        top_n = saturation_top(self.y_bits)
        m.d.sync += top.eq(top_n)
        terms, mask = registered_terms(m, self.shift, top_n, pbits)
        for r in range(cfg.rows):
            prod = Signal(signed(pbits), name=f"prod{r}", reset_less=True)
            m.d.sync += prod.eq(self.acc[r] * self.mult[r])
            # (prod + 2**(shift-1)) >> shift, no rounding for shift 0, saturated; its low 32
            # bits are the lane, which wraps a wider saturation as the golden model does
            # (rtl.rounding)
            m.d.comb += self.y[r].eq(round_shift_sat(m, prod, shift, top, ACT_BITS,
                                                     f"rounded{r}", terms=terms,
                                                     mask=mask))
        return m
