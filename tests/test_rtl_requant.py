"""Unit tests of rtl/requant.py ``Requantizer`` in Amaranth's simulator.

Documented timing: ``acc``, ``mult``, ``shift`` and ``y_bits`` in cycle n; ``y`` valid in
cycle n+1. Values must equal :func:`tinylpu.numerics.requantize` at ``y_bits`` (0 counts as
64) bit for bit, wrapped to the 32-bit lane (as the golden model's MATVEC).
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from tinylpu.config import Config
from tinylpu.numerics import MULT_BITS, SHIFT_MAX, requantize, wrap
from tinylpu.rtl.requant import Requantizer

CFG = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16)


def _simulate(cfg, cases, y_bits=None):
    """Apply one (acc[rows], mult, shift) per cycle back to back (``mult`` one for all rows or
    one per row); return y of every cycle, from the first input cycle to one cycle after the
    last. ``y_bits``: one per case (default ``cfg.data_bits``)."""
    dut = Requantizer(cfg)
    ys = []
    y_bits = y_bits or [cfg.data_bits] * len(cases)

    async def bench(ctx):
        for (acc, mult, shift), yb in zip(cases, y_bits):
            for r, (a, mr) in enumerate(zip(acc, np.broadcast_to(mult, len(acc)))):
                ctx.set(dut.acc[r], int(a))
                ctx.set(dut.mult[r], int(mr))
            ctx.set(dut.shift, int(shift))
            ctx.set(dut.y_bits, yb)
            ys.append([int(ctx.get(v)) for v in dut.y])
            await ctx.tick()
        # inputs change after the edge: y must not (it is registered)
        for r in range(cfg.rows):
            ctx.set(dut.acc[r], 0)
            ctx.set(dut.mult[r], 0)
        ctx.set(dut.shift, 0)
        ctx.set(dut.y_bits, 3)
        ys.append([int(ctx.get(v)) for v in dut.y])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return ys


def _expected(cfg, cases, y_bits=None):
    y_bits = y_bits or [cfg.data_bits] * len(cases)
    return [[int(v) for v in wrap(requantize(acc, np.asarray(mult), shift, yb or 64), 32)]
            for (acc, mult, shift), yb in zip(cases, y_bits)]


def _random_cases(rng, cfg, n):
    amax = 1 << (cfg.acc_bits - 1)
    mmax = 1 << (MULT_BITS - 1)
    cases = []
    for i in range(n):
        # mix full-range accumulators with small ones (that do not always saturate)
        if i % 2:
            acc = rng.integers(-amax, amax, cfg.rows)
        else:
            acc = rng.integers(-5000, 5000, cfg.rows)
        # one multiplier for all rows, or one per row (MATVEC's row-multiplier words)
        mult = (int(rng.integers(-mmax, mmax)) if i % 4 else
                rng.integers(-mmax, mmax, cfg.rows))
        shift = int(rng.integers(0, SHIFT_MAX + 1)) if i % 3 else int(rng.integers(8, 40))
        cases.append((acc, mult, shift))
    return cases


@pytest.mark.parametrize("cfg", [CFG, Config(lanes=4, rows=4, acc_bits=40, wdepth=16,
                                              adepth=16, pdepth=16),
                                 Config(lanes=8, rows=2, data_bits=6, acc_bits=16, wdepth=16,
                                        adepth=16, pdepth=16)],
                         ids=lambda c: c.ident)
def test_random_matches_numerics_with_one_cycle_latency(cfg):
    rng = np.random.default_rng(cfg.rows * 31 + cfg.acc_bits)
    cases = _random_cases(rng, cfg, 60)
    ys = _simulate(cfg, cases)
    expected = _expected(cfg, cases)
    # cycle n+1 holds the result of the inputs of cycle n
    assert ys[1:] == expected
    assert ys[0] == [0] * cfg.rows          # nothing was registered before the first input
    # the random cases exercise saturation at both ends and non-saturated values
    flat = [v for row in expected for v in row]
    lo, hi = -(1 << (cfg.data_bits - 1)), (1 << (cfg.data_bits - 1)) - 1
    assert lo in flat and hi in flat and any(lo < v < hi for v in flat)


def test_edge_cases():
    amax = (1 << 31) - 1
    amin = -(1 << 31)
    cases = [
        # shift 0: plain product, saturated
        ([5, -3], 7, 0),
        ([100, -100], 1, 0),
        ([127, -128], 1, 0),
        ([128, -129], 1, 0),
        # shift 63: everything rounds to 0 (|acc * M| < 2**62), even the extremes
        ([amax, amin], -32768, 63),
        ([amax, amin], 32767, 63),
        ([-1, 1], 1, 63),
        # rounding half up: (acc*M + 2**(S-1)) >> S
        ([3, -3], 1, 1),        # 1.5 -> 2, -1.5 -> -1
        ([5, -5], 1, 2),        # 1.25 -> 1, -1.25 -> -1
        ([6, -6], 1, 2),        # 1.5 -> 2, -1.5 -> -1
        ([7, -7], 1, 2),        # 1.75 -> 2, -1.75 -> -2
        # negative multiplier
        ([1000, -1000], -3, 5),     # -93.75 -> -94, 93.75 -> 94
        ([1, -1], -32768, 8),       # -128, 128 -> saturates to 127
        # saturation with a large multiplier and the most negative products
        ([amin, amax], -32768, 46),  # 2**46 / 2**46 = 1, (-2**46 + 2**15) / 2**46 -> -1
        ([amin, amin], -32768, 0),   # 2**46: saturates high
        ([amin, amax], 32767, 36),   # about -+1024: saturates both ways
    ]
    ys = _simulate(CFG, cases)
    assert ys[1:] == _expected(CFG, cases)
    assert ys[1:] == [
        [35, -21], [100, -100], [127, -128], [127, -128],
        [0, 0], [0, 0], [0, 0],
        [2, -1], [1, -1], [2, -1], [2, -2],
        [-94, 94], [-128, 127],
        [1, -1], [127, 127], [-128, 127],
    ]


@pytest.mark.parametrize("y_bits", [2, 8, 12, 16, 24, 31, 32])
def test_y_bits_saturation(y_bits):
    cfg = Config(lanes=4, rows=4, acc_bits=40, wdepth=16, adepth=16, pdepth=16)
    rng = np.random.default_rng(y_bits)
    cases = _random_cases(rng, cfg, 40)
    ys = _simulate(cfg, cases, [y_bits] * len(cases))
    expected = _expected(cfg, cases, [y_bits] * len(cases))
    assert ys[1:] == expected
    flat = [v for row in expected for v in row]
    lo, hi = -(1 << (y_bits - 1)), (1 << (y_bits - 1)) - 1
    assert lo in flat and hi in flat and any(lo < v < hi for v in flat)


def test_y_bits_changes_every_cycle_and_outside_the_isa_range():
    """The saturation width travels with each input (back to back, different widths); the
    encodable values outside 2..32 behave as the golden model: 0 counts as 64, and widths
    above 32 saturate there and wrap to the 32-bit lane."""
    cfg = Config(lanes=4, rows=2, acc_bits=40, wdepth=16, adepth=16, pdepth=16)
    big, small = (1 << 39) - 1, -(1 << 39)
    cases = [([big, small], 32767, 0), ([big, small], 32767, 0), ([big, small], 32767, 0),
             ([big, small], 32767, 0), ([big, small], 1, 0), ([5, -6], 1, 0),
             ([3, -3], 1, 1), ([100000, -100000], 300, 2)]
    y_bits = [0, 40, 63, 1, 33, 1, 2, 16]
    ys = _simulate(cfg, cases, y_bits)
    assert ys[1:] == _expected(cfg, cases, y_bits)
    assert ys[5] == [-1, 0]          # 2**39 - 1 saturated to 33 bits, wrapped to 32: -1
    assert ys[4] == [0, -1]          # y_bits 1: [-1, 0]
