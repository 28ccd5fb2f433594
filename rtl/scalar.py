"""The scalar unit: bit-serial integer square root and normalized reciprocal, fixed latency."""

__all__ = ["ScalarOp", "ScalarUnit", "latency", "ISQRT_LATENCY", "RECIP_LATENCY",
           "RECIP_BITS"]

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from .rounding import bit_length, smear_down

RECIP_BITS = 15     # the RECIP mantissa m: 2**14 <= m < 2**15


class ScalarOp(enum.Enum, shape=1):
    ISQRT = 0
    RECIP = 1


def _root_bits(width):
    return (width + 1) // 2


def latency(op, width=40):
    """Cycles from the (accepted) ``start`` cycle to the ``done`` cycle of ``op``.

    One cycle to load the operand, then one per result bit: ISQRT ``ceil(width/2) + 1``,
    RECIP ``15 + 1``. Independent of the operand value.
    """
    op = ScalarOp(op)
    if op == ScalarOp.ISQRT:
        return _root_bits(width) + 1
    return RECIP_BITS + 1


ISQRT_LATENCY = latency(ScalarOp.ISQRT)     # 21 at width 40
RECIP_LATENCY = latency(ScalarOp.RECIP)     # 16


class ScalarUnit(wiring.Component):
    """Sequential ISQRT / RECIP unit, bit-exact with :func:`tinylpu.model.intmodel.isqrt` and
    :func:`tinylpu.model.intmodel.norm_recip` for every unsigned ``width``-bit ``operand``.

    * ISQRT: ``result = floor(sqrt(operand))`` (``ceil(width/2)`` bits), ``exponent = 0``.
      Restoring digit-by-digit square root, one root bit per cycle from two operand bits.
    * RECIP: ``result = m = (2**(b+14) - 1) // operand`` (15 bits), ``exponent = b =
      operand.bit_length()`` (priority encoder). ``2**(b+14) - 1`` is ``b + 14`` ones, so its
      top ``b - 1`` bits (``2**(b-1) - 1``, below ``operand``) seed the partial remainder and
      each of the 15 restoring division steps shifts in a 1: the registers are ``width`` bits,
      the divisor is never shifted or normalized.
    * RECIP of operand 0 (which the spec rejects) is defined: ``result = 0x7fff``,
      ``exponent = 0``, ``error = 1``. ``error`` is 0 for every other operation.

    Timing (fixed, independent of the operand; see :func:`latency`): ``start`` with ``op`` and
    ``operand`` in cycle s; ``done`` is high for exactly one cycle, s + ``ISQRT_LATENCY``
    (``ceil(width/2) + 1``, 21 at width 40) or s + ``RECIP_LATENCY`` (16). ``busy`` is high
    from s+1 to the cycle before ``done``. ``result``, ``exponent`` and ``error`` are valid
    in the ``done`` cycle and hold until the end of the next accepted start cycle (they are
    meaningless while ``busy``).

    ``start`` while ``busy`` is ignored (the operation in flight finishes undisturbed).
    ``start`` is accepted in the ``done`` cycle, so operations can run back to back with no
    idle cycle: throughput is one operation per latency cycles. ``start`` with ``chain``
    starts a RECIP of the unit's own ``result`` (``op`` and ``operand`` are not used): in the
    ``done`` cycle of an ISQRT, the reciprocal of the root. The start only registers the
    operand and the division's seed (an OR smear, registered too); the exponent is encoded
    from the registered smear while busy (the encoder behind the operand's choice, in the
    start cycle, and then behind a smear of the divisor register, were among the tile
    clock's longest paths).
    """

    def __init__(self, width=40):
        if width < 2:
            raise ValueError(f"width must be at least 2, not {width}")
        self.width = width
        super().__init__({
            "start": In(1),
            "op": In(ScalarOp),
            "operand": In(width),
            "chain": In(1),
            "busy": Out(1),
            "done": Out(1),
            "result": Out(max(_root_bits(width), RECIP_BITS)),
            "exponent": Out(range(width + 1)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        rbits = _root_bits(w)
        abits = 2 * rbits                   # operand register, padded to whole bit pairs

        a = Signal(abits)                   # ISQRT: operand, shifted 2 bits a step; RECIP: divisor
        rem = Signal(w)                     # partial remainder
        q = self.result                     # root / quotient, one bit shifted in per step

        # the seed 2**(b-1) - 1, b = operand.bit_length(): 2**b - 1 by smearing the leading
        # one down, shifted (rtl.rounding); with ``chain``, of the result instead. The smear
        # is registered too (``smeared``), and the exponent b encoded from that register
        # while busy: neither the smear nor the encoder is on a path into the exponent
        own = q[:w]
        smear = Mux(self.chain, smear_down(own), smear_down(self.operand))
        smeared = Signal(w)
        op = Signal(ScalarOp)
        left = Signal(range(max(rbits, RECIP_BITS) + 1))
        is_sqrt = op == ScalarOp.ISQRT

        # one restoring step, the subtractor shared by both ops
        r_next = Signal(w + 2)
        trial = Signal(max(abits, rbits + 2))
        diff = Signal(signed(w + 3))
        m.d.comb += [
            r_next.eq(Mux(is_sqrt, Cat(a[-2:], rem), Cat(Const(1, 1), rem))),
            trial.eq(Mux(is_sqrt, Cat(Const(1, 2), q[:rbits]), a)),
            diff.eq(r_next - trial),
        ]
        fits = ~diff[-1]

        m.d.sync += self.done.eq(0)
        with m.If(self.busy):
            m.d.sync += [
                a.eq(Mux(is_sqrt, a << 2, a)),
                rem.eq(Mux(fits, diff, r_next)),
                q.eq(Cat(fits, q)),
                left.eq(left - 1),
                self.exponent.eq(Mux(is_sqrt, 0, bit_length(m, smeared, "bit_length",
                                                            smeared=True))),
            ]
            with m.If(left == 1):
                m.d.sync += [
                    self.busy.eq(0),
                    self.done.eq(1),
                    self.error.eq(~is_sqrt & (a[:w] == 0)),
                ]
        with m.Elif(self.start):
            recip = (self.op == ScalarOp.RECIP) | self.chain
            m.d.sync += [
                op.eq(Mux(self.chain, ScalarOp.RECIP, self.op)),
                a.eq(Mux(self.chain, own, self.operand)),
                rem.eq(Mux(recip, smear >> 1, 0)), smeared.eq(smear),
                q.eq(0),
                self.error.eq(0),
                left.eq(Mux(recip, RECIP_BITS, rbits)),
                self.busy.eq(1),
            ]
        return m
