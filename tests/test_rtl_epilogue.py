"""Unit tests of rtl/epilogue.py ``Epilogue`` in Amaranth's simulator.

Documented timing: ``y`` and the controls in cycle n, the destination word and the RoPE-table
word in n+1, ``out`` in n+4, ``next_valid``/``next_token`` in n+2; one block per cycle, back
to back. The arithmetic is the golden model's: RESID ``sat(old + y)``, ROPE
:func:`tinylpu.numerics.rope_rotate`, SILU_GATE :func:`tinylpu.numerics.silu_gate`, ARGMAX
:func:`tinylpu.numerics.argmax` over an instruction's blocks.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from tinylpu import isa
from tinylpu.config import ACT_BITS, Config
from tinylpu.isa import Epi
from tinylpu.numerics import argmax, rope_rotate, saturate, silu_gate, wrap
from tinylpu.rtl.epilogue import LATENCY, Epilogue

NEXT_LATENCY = isa.LAT_ARGMAX - isa.LAT_RESID_READ


def _expected(epi, y, old, rope, bits, table, shift, pack=False, block=0):
    if epi == Epi.RESID:
        return wrap(saturate(old + y, bits or 64), ACT_BITS)
    n = len(y) // 2 * 2
    out = y.copy()
    if epi == Epi.ROPE:
        e = np.array(isa.rope_entries(len(y), pack, block), dtype=np.int64)[:n // 2]
        # epi_shift's low bits: the block's head_shift entry, rounded off too
        out[0:n:2], out[1:n:2] = rope_rotate(y[0:n:2], y[1:n:2], rope[2 * e], rope[2 * e + 1],
                                             bits or 64, shift % (1 << isa.HEAD_SHIFT_BITS))
    elif epi == Epi.SILU_GATE:
        out[:n // 2] = silu_gate(y[0:n:2], y[1:n:2], table, shift, bits or 64)
        return wrap(out, ACT_BITS)[:n // 2]
    return wrap(out, ACT_BITS)


@pytest.mark.parametrize("cfg", [Config(lanes=8, rows=2), Config(lanes=16, rows=4),
                                 Config(lanes=16, rows=8), Config(lanes=4, rows=1)],
                         ids=lambda c: c.ident)
def test_random_blocks_back_to_back(cfg):
    R = cfg.rows
    rng = np.random.default_rng(cfg.rows)
    table = rng.integers(-(1 << 15), 1 << 15, isa.SILU_SIZE)
    cases = []
    for i in range(80):
        # cases 40 .. 59 are two ARGMAX instructions of 7 and 13 blocks, back to back
        epi = Epi.ARGMAX if 40 <= i < 60 else Epi(i % 5)
        # (33, 34, 63: RESID's 33-bit sum at and past its own range: rtl/epilogue.py clamps
        # the bounds there)
        bits = int(rng.choice([16, 16, 32, 0, 12, 33, 34, 63]))
        y = rng.integers(-(1 << 31), 1 << 31, R) if i % 4 == 0 else \
            rng.integers(-(1 << 16), 1 << 16, R)
        cases.append(dict(epi=epi, bits=bits, y=y, shift=int(rng.integers(0, 40)),
                          old=rng.integers(-(1 << 31), 1 << 31, R),
                          rope=rng.integers(-(1 << 15), 1 << 15, R),
                          head=i in (40, 47), final=i in (46, 59),
                          # a packed ROPE block (4 or more rows) picks its half of the word
                          # by the block's parity (isa.rope_entries)
                          pack=bool(rng.integers(0, 2)),
                          block=max(0, i - (47 if i >= 47 else 40)) if 40 <= i < 60 else
                          int(rng.integers(0, 16))))
    dut = Epilogue(cfg)
    got, tokens = {}, {}

    async def bench(ctx):
        for k, v in enumerate(table):                   # the SiLU table, as the host writes
            ctx.set(dut.t_wen, 1)
            ctx.set(dut.t_waddr, isa.SILU_TABLE + k)
            ctx.set(dut.t_wdata, int(v) & 0xffff)
            await ctx.tick()
        ctx.set(dut.t_wen, 0)
        for n in range(len(cases) + LATENCY):
            if n < len(cases):
                c = cases[n]
                for name in ("epi", "head", "final", "block", "pack"):
                    ctx.set(getattr(dut, name), c[name])
                ctx.set(dut.y_bits, c["bits"])
                ctx.set(dut.epi_shift, c["shift"])
                for r in range(R):
                    ctx.set(dut.y[r], int(c["y"][r]))
            if 1 <= n <= len(cases):            # the words read in cycle n - 1
                c = cases[n - 1]
                ctx.set(dut.old, sum((int(v) & 0xffffffff) << (32 * l)
                                          for l, v in enumerate(c["old"])))
                ctx.set(dut.rope_word, sum((int(v) & 0xffff) << (16 * r)
                                           for r, v in enumerate(c["rope"])))
            if n >= LATENCY:
                got[n - LATENCY] = [ctx.get(dut.out[r]) for r in range(R)]
            if ctx.get(dut.next_valid):
                tokens[n - NEXT_LATENCY] = ctx.get(dut.next_token)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    best = None
    for i, c in enumerate(cases):
        want = _expected(c["epi"], wrap(c["y"], ACT_BITS), c["old"], c["rope"], c["bits"], table,
                         c["shift"], c["pack"], c["block"])
        assert got[i][:len(want)] == [int(v) for v in want], (i, c["epi"], c["bits"])
        if c["epi"] == Epi.ARGMAX:           # the running best over the ARGMAX blocks
            y = wrap(c["y"], ACT_BITS)
            lane = argmax(y)
            if c["head"] or best is None or y[lane] > best[0]:
                best = (y[lane], c["block"] * R + lane)
            if c["final"]:
                assert tokens.pop(i) == best[1]
    assert tokens == {} and best is not None
