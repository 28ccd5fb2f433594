"""Unit tests of rtl/epilogue.py ``Epilogue`` in Amaranth's simulator.

Documented timing: ``y`` and the controls in cycle n, the destination word and the RoPE-table
word in n+1, ``out`` in n+2; one block per cycle, back to back. The arithmetic is the golden
model's: RESID ``sat(old + y)``, ROPE :func:`tinylpu.numerics.rope_rotate`.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from tinylpu.config import ACT_BITS, Config
from tinylpu.isa import Epi
from tinylpu.numerics import rope_rotate, saturate, wrap
from tinylpu.rtl.epilogue import LATENCY, Epilogue


def _expected(epi, y, old, rope, bits):
    if epi == Epi.RESID:
        return wrap(saturate(old + y, bits or 64), ACT_BITS)
    if epi == Epi.ROPE:
        out = y.copy()
        n = len(y) // 2 * 2
        out[0:n:2], out[1:n:2] = rope_rotate(y[0:n:2], y[1:n:2], rope[0:n:2], rope[1:n:2],
                                             bits or 64)
        return wrap(out, ACT_BITS)
    return y


@pytest.mark.parametrize("cfg", [Config(lanes=8, rows=2), Config(lanes=16, rows=4),
                                 Config(lanes=4, rows=1)], ids=lambda c: c.ident)
def test_random_blocks_back_to_back(cfg):
    R, groups = cfg.rows, cfg.lanes // cfg.rows
    rng = np.random.default_rng(cfg.rows)
    cases = []
    for i in range(60):
        epi = Epi(i % 3)
        bits = int(rng.choice([16, 16, 32, 0, 12]))
        y = rng.integers(-(1 << 31), 1 << 31, R) if i % 4 == 0 else \
            rng.integers(-(1 << 16), 1 << 16, R)
        old = rng.integers(-(1 << 31), 1 << 31, cfg.lanes)
        rope = rng.integers(-(1 << 15), 1 << 15, R)
        group = int(rng.integers(groups))
        cases.append((epi, bits, y, old, rope, group))
    dut = Epilogue(cfg)
    got = {}

    async def bench(ctx):
        for n in range(len(cases) + LATENCY):
            if n < len(cases):
                epi, bits, y, *_, group = cases[n]
                ctx.set(dut.epi, epi)
                ctx.set(dut.y_bits, bits)
                ctx.set(dut.group, group)
                for r in range(R):
                    ctx.set(dut.y[r], int(y[r]))
            if 1 <= n <= len(cases):            # the words read in cycle n - 1
                _, _, _, old, rope, _ = cases[n - 1]
                ctx.set(dut.old_word, sum((int(v) & 0xffffffff) << (32 * l)
                                          for l, v in enumerate(old)))
                ctx.set(dut.rope_word, sum((int(v) & 0xffff) << (16 * r)
                                           for r, v in enumerate(rope)))
            if n >= LATENCY:
                got[n - LATENCY] = [ctx.get(dut.out[r]) for r in range(R)]
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for i, (epi, bits, y, old, rope, group) in enumerate(cases):
        lanes = old[group * R:(group + 1) * R]
        want = _expected(epi, wrap(y, ACT_BITS), lanes, rope, bits)
        assert got[i] == [int(v) for v in want], (i, epi, bits)
