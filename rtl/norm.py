"""The norm unit: RMSNorm's scale of a sum of squares, for the norm register."""

__all__ = ["NormUnit"]

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa

from .recip import RecipPipeline
from .scalar import ScalarOp, ScalarUnit


class NormUnit(wiring.Component):
    """``rsqrt_scale(ss)`` (:func:`tinylpu.numerics.rsqrt_scale`) of an unsigned
    ``isa.SS_BITS``-bit sum of squares: the sequential ISQRT of :class:`rtl.scalar.ScalarUnit`,
    then the root through the reciprocal pipeline (:class:`rtl.recip.RecipPipeline`).

    Timing: ``valid`` and ``ss`` in cycle s; ``out_valid`` and ``data`` (``b << 16 | m``, the
    norm register's format) in s + ``isa.NORM_ISQRT_LAT + isa.RECIP_PIPE_LAT``. A ``valid``
    while the square root is busy (before s + ``NORM_ISQRT_LAT``) is ignored: ``overrun`` is
    high in that cycle. ``pending`` is high from s until the ``out_valid`` cycle.
    """

    def __init__(self):
        super().__init__({
            "valid": In(1), "ss": In(isa.SS_BITS),
            "out_valid": Out(1), "data": Out(22),
            "overrun": Out(1), "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.isqrt = sq = ScalarUnit(isa.SS_BITS)
        m.submodules.recip = rc = RecipPipeline(len(sq.result))
        assert rc.latency == isa.RECIP_PIPE_LAT
        running = Signal()                 # an ISQRT started and not done yet
        with m.If(self.valid & ~sq.busy):
            m.d.sync += running.eq(1)
        with m.Elif(sq.done):
            m.d.sync += running.eq(0)
        in_recip = Signal(isa.RECIP_PIPE_LAT)      # done cycles on their way through the pipeline
        m.d.sync += in_recip.eq(Cat(sq.done & running, in_recip[:-1]))
        m.d.comb += [
            sq.start.eq(self.valid), sq.op.eq(ScalarOp.ISQRT), sq.operand.eq(self.ss),
            rc.valid.eq(sq.done & running), rc.operand.eq(sq.result),
            self.out_valid.eq(rc.out_valid),
            self.data.eq(Cat(rc.mantissa, Const(0, 1), rc.exponent)),
            self.overrun.eq(self.valid & sq.busy),
            self.pending.eq(self.valid | running | in_recip.any()),
        ]
        return m
