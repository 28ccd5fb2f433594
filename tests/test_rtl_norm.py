"""Unit tests of rtl/norm.py ``NormUnit`` in Amaranth's simulator, and of the numerics it
implements (:func:`tinylpu.numerics.rsqrt_scale`).

Documented behaviour: ``valid`` and ``ss`` in cycle s give ``out_valid`` and ``data``
(``b << 16 | m`` of ``rsqrt_scale(ss)``) in exactly s + ``isa.NORM_LAT``, one total a cycle
with no busy state; ``pending`` is high from s to that cycle; ss = 0 gives 0x7fff.
"""

import math
import random
import re

from amaranth.back import verilog
from amaranth.sim import Simulator

from tinylpu import isa
from tinylpu.numerics import RSQRT_TABLE, SS_BITS, rsqrt_scale
from tinylpu.rtl.norm import NormUnit
from tinylpu.flow.rtlsim import lint


def _packed(ss):
    m, b = rsqrt_scale(ss)
    return b << 16 | m


def _simulate(inputs):
    """``(out_valid, data, pending)`` of every cycle while ``inputs`` (``(valid, ss)`` a
    cycle) are applied, from the first cycle after reset."""
    dut, outs = NormUnit(), []

    async def bench(ctx):
        for valid, ss in inputs:
            ctx.set(dut.valid, valid)
            ctx.set(dut.ss, ss)
            outs.append((ctx.get(dut.out_valid), ctx.get(dut.data), ctx.get(dut.pending)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outs


def _edge_values():
    """Every normalisation shift at its ends, and table-interval boundaries."""
    vals = {0, 1, 2, 3, (1 << SS_BITS) - 1}
    for k in range(1, SS_BITS + 1):
        vals |= {1 << (k - 1), (1 << k) - 1}
    for i in range(len(RSQRT_TABLE)):
        f = (1 << 14) + i * (1 << 8)                     # Q2.14, the interval starts
        vals |= {f << 24, (f << 24) - 1, f << 2, f}
    return sorted(v for v in vals if 0 <= v < 1 << SS_BITS)


def test_values_back_to_back_at_fixed_latency():
    rng = random.Random(5)
    vals = _edge_values() + [rng.randrange(1 << rng.randrange(1, SS_BITS + 1))
                             for _ in range(1500)]
    outs = _simulate([(1, v) for v in vals] + [(0, 0)] * (isa.NORM_LAT + 1))
    assert [o[0] for o in outs] == [0] * isa.NORM_LAT + [1] * len(vals) + [0]
    got = [d for valid, d, _ in outs if valid]
    assert got == [_packed(v) for v in vals]
    assert _packed(0) == 0x7fff


def test_latency_and_pending_of_one_total():
    outs = _simulate([(0, 0), (1, 123456789)] + [(0, 0)] * 8)
    assert [o[0] for o in outs] == [int(c == 1 + isa.NORM_LAT) for c in range(10)]
    assert [o[2] for o in outs] == [int(1 <= c <= 1 + isa.NORM_LAT) for c in range(10)]
    assert outs[1 + isa.NORM_LAT][1] == _packed(123456789)


def test_rsqrt_scale_accuracy_and_range():
    """m * 2**-(b+14) is 1/sqrt(ss) within 2**-13 relative, 2**14 <= m < 2**15."""
    rng = random.Random(9)
    for ss in _edge_values()[1:] + [rng.randrange(1, 1 << SS_BITS) for _ in range(20000)]:
        m, b = rsqrt_scale(ss)
        assert 1 << 14 <= m < 1 << 15 and 1 <= b <= SS_BITS // 2
        exact = 2 ** (b + 14) / math.sqrt(ss)
        assert abs(m - exact) < exact * 2 ** -13, ss


def test_verilog_lints_clean(tmp_path):
    """Lint-clean, and the ROM is a memory (block RAM or LUTs), not a case statement."""
    text = verilog.convert(NormUnit(), name="norm_unit")
    assert re.search(r"reg \[24:0\] \w+ \[191:0\]", text)
    path = tmp_path / "tinylpu_tile.v"      # rtl/lint.vlt's waivers apply to this name
    path.write_text(text)
    assert lint(path, top="norm_unit") == []
