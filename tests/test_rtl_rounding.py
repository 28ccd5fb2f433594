"""rtl/rounding.py's ``round_shift_sat`` (the score unit's, the requantizer's and the
epilogue's SILU_GATE's rounding shift and saturation) and ``shift_sat`` (the vector unit's
shift and saturation of its 64-bit rounded sum) against Python's integers, at the units'
widths, for every shift 0 .. 63, several saturation widths, and for each the values at its
rounding and saturation edges and random ones, in Amaranth's simulator (combinational)."""

import random

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from tinylpu.rtl.rounding import round_shift_sat, saturation_mask, shift_sat


def _reference(x, s):
    return x if s == 0 else (x + (1 << (s - 1))) >> s


def _saturated_low(v, top, n):
    """``v`` saturated to ``top + 1`` signed bits, its low ``n`` bits."""
    return max(-(1 << top), min((1 << top) - 1, v)) & ((1 << n) - 1)


def _values(width, shift, top, rng, n_random):
    """Values of ``width`` bits for a shift and a saturation top: the extremes, the powers of
    two (+-1) around the rounding bit and the saturation bound (also the exact boundary
    ``2**(top + shift) - 2**(shift - 1)``, +-1, either sign), and random ones."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [lo, lo + 1, -1, 0, 1, hi - 1, hi]
    near = {shift - 1, shift, shift + 1, top + shift - 1, top + shift, top + shift + 1}
    bound = (1 << (top + shift)) - ((1 << (shift - 1)) if shift else 0)
    values += [sg * (1 << k) + d for k in near if 0 <= k < width - 1
               for d in (-1, 0, 1) for sg in (1, -1)]
    values += [sg * bound + d for d in (-1, 0, 1) for sg in (1, -1)]
    values += [rng.randint(lo, hi) >> rng.randrange(width) for _ in range(n_random)]
    return [v for v in dict.fromkeys(values) if lo <= v <= hi]


def _mask(m, shift, top, width, given):
    """The saturation mask a unit forms a cycle early and registers (``given``), as a signal of
    its own here, or None (``shift_sat`` forms it)."""
    if not given:
        return None
    mask = Signal(width - 1)
    m.d.comb += mask.eq(saturation_mask(shift, top, width))
    return mask


# (value width, top: an int, or the tops a signal takes, output bits): the score unit's
# 40-bit head sums to 16-bit scores; the requantizer's 56-bit products and SILU_GATE's 50-bit
# ones to a y_bits saturation (0 .. 63) and a 32-bit lane; with the saturation mask given
# (the requantizer's and SILU_GATE's, registered with their sums) or formed inside
@pytest.mark.parametrize("width,tops,n,given", [
    (40, 15, 16, False),
    (56, (0, 7, 31, 32, 55, 63), 32, False),
    (56, (0, 7, 31, 32, 55, 63), 32, True),
    (50, (15, 31, 49), 32, True),
])
def test_round_shift_sat_is_the_saturated_low_bits(width, tops, n, given):
    m = Module()
    x, shift = Signal(signed(width)), Signal(6)
    top = tops if isinstance(tops, int) else Signal(6)
    out = round_shift_sat(m, x, shift, top, n, "out",
                          mask=_mask(m, shift, top, width + 1, given))
    assert len(out) == n
    rng = random.Random(width)
    checked = []

    async def bench(ctx):
        for t in ([tops] if isinstance(tops, int) else tops):
            if not isinstance(tops, int):
                ctx.set(top, t)
            for s in range(64):
                ctx.set(shift, s)
                for v in _values(width, s, t, rng, 12):
                    ctx.set(x, v)
                    rounded = 0 if s >= width else _reference(v, s)
                    assert ctx.get(out) == _saturated_low(rounded, t, n), (v, s, t)
                    checked.append((s, t))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(set(checked)) == 64 * (1 if isinstance(tops, int) else len(tops))


@pytest.mark.parametrize("given", [False, True])
def test_shift_sat_is_the_saturated_low_bits(given):
    """The vector unit's c+7: a 64-bit sum (it wraps before the shift), shifts 0 .. 63,
    saturation to sat bits (top = sat - 1, 0 .. 63), the 32-bit lane; its saturation mask
    given (registered a cycle early, as the unit does) or formed inside."""
    m = Module()
    total, shift, top = Signal(signed(64)), Signal(6), Signal(6)
    out = shift_sat(m, total, shift, top, 32, "out", mask=_mask(m, shift, top, 64, given))
    rng = random.Random(64)
    tops = (0, 15, 31, 32, 63)
    checked = []

    async def bench(ctx):
        for t in tops:
            ctx.set(top, t)
            for s in range(64):
                ctx.set(shift, s)
                for v in _values(64, s, t, rng, 12):
                    ctx.set(total, v)
                    assert ctx.get(out) == _saturated_low(v >> s, t, 32), (v, s, t)
                    checked.append((s, t))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(set(checked)) == 64 * len(tops)
