"""The norm unit: RMSNorm's scale of a sum of squares, for the norm register."""

__all__ = ["NormUnit", "ROM"]

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.numerics import RECIP_FRAC, RSQRT_INDEX_BITS, RSQRT_TABLE, SS_BITS

from .rounding import highest_one

_PAIRS = SS_BITS // 2
_TOP = 2 + RSQRT_INDEX_BITS + 8          # the bits of the normalized total used: f in Q2.14
_DIFF_BITS = 10                          # T[i+1] - T[i]: -256 .. 0, signed
# ROM word i: T[i] (15 bits) and T[i+1] - T[i] (signed, _DIFF_BITS) above it
ROM = tuple(t | ((n - t) & ((1 << _DIFF_BITS) - 1)) << 15
            for t, n in zip(RSQRT_TABLE, RSQRT_TABLE[1:]))
assert all(-(1 << (_DIFF_BITS - 1)) <= n - t <= 0 for t, n in zip(RSQRT_TABLE, RSQRT_TABLE[1:]))


class NormUnit(wiring.Component):
    """``rsqrt_scale(ss)`` (:func:`tinylpu.numerics.rsqrt_scale`) of an unsigned
    ``SS_BITS``-bit total, fully pipelined: one total a cycle, no busy state.

    Timing: ``valid`` and ``ss`` in cycle s; ``out_valid`` and ``data`` (``b << 16 | m``, the
    norm register's format) in s + ``isa.NORM_LAT`` (5), straight from registers. ``pending``
    is high from s until the ``out_valid`` cycle.

    Stages, each ending in registers:

    * s: the even normalisation shift ``j = (40 - bit_length(ss)) // 2``, a priority encoder
      over the 20 bit pairs of ss; registered with ss.
    * s+1: the top 16 bits of ``ss << 2j`` (f in Q2.14: a 20-way select), and ``b = 20 - j``.
    * s+2: the ROM (192 words, block RAM or LUTs) is read at ``i = (f >> 8) - 64``: the word
      holds ``T[i]`` and ``T[i+1] - T[i]``.
    * s+3: ``(T[i+1] - T[i]) * frac`` (a 10 x 8-bit product).
    * s+4: ``m = T[i] + ((product + 128) >> 8)``: registered as the output.

    ``ss = 0`` gives ``m = 2**15 - 1, b = 0`` (the defined result).
    """

    def __init__(self):
        super().__init__({
            "valid": In(1), "ss": In(SS_BITS),
            "out_valid": Out(1), "data": Out(22), "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rom = rom = Memory(shape=15 + _DIFF_BITS, depth=len(ROM), init=ROM)
        rd = rom.read_port(domain="sync")
        valid = [Signal(name=f"valid{i}") for i in range(1, isa.NORM_LAT + 1)]
        m.d.sync += [valid[0].eq(self.valid)] + [b.eq(a) for a, b in zip(valid, valid[1:])]

        # s: the highest non-zero bit pair
        ss1 = Signal(SS_BITS, reset_less=True)
        j1 = Signal(range(_PAIRS), reset_less=True)
        zero1 = Signal(reset_less=True)
        highest = Signal(range(_PAIRS))           # 0 when ss is 0
        _, pair = highest_one(m, Cat(*(self.ss[2 * p:2 * p + 2].any() for p in range(_PAIRS))),
                              "pair")
        m.d.comb += highest.eq(pair)
        m.d.sync += [ss1.eq(self.ss), j1.eq(_PAIRS - 1 - highest), zero1.eq(self.ss == 0)]

        # s+1: f = the top 16 bits of ss << 2j; b = 20 - j
        top2 = Signal(_TOP, reset_less=True)
        b2 = Signal(6, reset_less=True)
        zero2 = Signal(reset_less=True)
        shifted = Signal(SS_BITS)
        m.d.comb += shifted.eq(ss1 << Cat(Const(0, 1), j1))
        m.d.sync += [top2.eq(shifted[SS_BITS - _TOP:]), b2.eq(_PAIRS - j1), zero2.eq(zero1)]

        # s+2: the ROM read
        m.d.comb += rd.addr.eq(top2[8:] - (1 << RSQRT_INDEX_BITS))
        frac3 = Signal(8, reset_less=True)
        b3 = Signal(6, reset_less=True)
        zero3 = Signal(reset_less=True)
        m.d.sync += [frac3.eq(top2[:8]), b3.eq(b2), zero3.eq(zero2)]

        # s+3: the interpolation product
        t4 = Signal(15, reset_less=True)
        prod4 = Signal(signed(_DIFF_BITS + 9), reset_less=True)
        b4 = Signal(6, reset_less=True)
        zero4 = Signal(reset_less=True)
        diff = rd.data[15:].as_signed()
        m.d.sync += [t4.eq(rd.data[:15]), prod4.eq(diff * frac3), b4.eq(b3), zero4.eq(zero3)]

        # s+4: m = T[i] + ((product + 128) >> 8)
        out5 = Signal(22, reset_less=True)
        mant = Signal(signed(17))
        m.d.comb += mant.eq(t4 + ((prod4 + 128) >> 8))
        with m.If(zero4):
            m.d.sync += out5.eq((1 << (RECIP_FRAC + 1)) - 1)
        with m.Else():
            m.d.sync += out5.eq(Cat(mant[:15], Const(0, 1), b4))

        m.d.comb += [
            self.out_valid.eq(valid[-1]),
            self.data.eq(out5),
            self.pending.eq(self.valid | Cat(*valid).any()),
        ]
        return m
