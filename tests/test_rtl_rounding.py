"""rtl/rounding.py ``round_shift`` against the wide form it replaces in the score unit, the
requantizer and the epilogue's SILU_GATE: ``(x + (Const(1, 64) << (s - 1) if s else 0)) >> s``
computed 66 bits wide, for every shift 0 .. 63 and edge and random values, in Amaranth's
simulator (both forms side by side, combinational)."""

import random

import pytest
from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.sim import Simulator

from tinylpu.rtl.rounding import round_shift


def _reference(x, s):
    return x if s == 0 else (x + (1 << (s - 1))) >> s


@pytest.mark.parametrize("width", [40, 50, 56])
def test_round_shift_equals_the_wide_form(width):
    m = Module()
    x, shift = Signal(signed(width)), Signal(6)
    narrow = round_shift(m, x, shift, "narrow")
    shm1 = Signal(6)
    wide = Signal(signed(width + 1))           # the units' old result signals
    m.d.comb += [shm1.eq(shift - 1),
                 wide.eq((x + Mux(shift == 0, 0, Const(1, 64) << shm1)) >> shift)]
    assert len(narrow) == width
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    rng = random.Random(width)
    values = [lo, lo + 1, -1, 0, 1, hi - 1, hi]
    values += [(1 << k) + d for k in range(width - 1) for d in (-1, 0, 1)]
    values += [-(1 << k) + d for k in range(width) for d in (-1, 0, 1)]
    values += [rng.randint(lo, hi) for _ in range(200)]
    values = [v for v in dict.fromkeys(values) if lo <= v <= hi]
    checked = []

    async def bench(ctx):
        for s in range(64):
            ctx.set(shift, s)
            for v in values:
                ctx.set(x, v)
                expect = _reference(v, s)
                assert ctx.get(wide) == expect, (v, s)
                assert ctx.get(narrow) == expect, (v, s)
                checked.append((v, s))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) == 64 * len(values)
