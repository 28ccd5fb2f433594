"""Unit tests of rtl/mac.py ``MacArray`` in Amaranth's simulator.

Documented timing: inputs in cycle n; for a ``last`` input, ``result`` holds the block's sums
with ``result_valid`` in cycle n+2; one input per cycle, no bubbles between blocks. Weights are
``data_bits`` signed; ``x`` is an activation word of 32-bit lanes whose low 16 bits (signed)
are the operand: the upper 16 bits of a lane must not matter.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from tinylpu.config import Config
from tinylpu.numerics import wrap
from tinylpu.rtl.mac import MacArray

SMALL = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16)
LATENCY = 2


def _blocks(rng, cfg, chunks, lo=None, hi=None, x_bits=None):
    lo = -(1 << (cfg.data_bits - 1)) if lo is None else lo
    hi = (1 << (cfg.data_bits - 1)) if hi is None else hi
    xlo, xhi = (lo, hi) if x_bits is None else (-(1 << (x_bits - 1)), 1 << (x_bits - 1))
    out = []
    for nc in chunks:
        W = rng.integers(lo, hi, (nc, cfg.rows, cfg.lanes))
        x = rng.integers(xlo, xhi, (nc, cfg.lanes))
        out.append((W, x))
    return out


def _expected(cfg, W, x):
    # W [nc, rows, lanes], x [nc, lanes]: sum over chunks of W[k] @ x[k], wrapped at acc_bits
    return [int(v) for v in wrap(np.einsum("krl,kl->r", W, x), cfg.acc_bits)]


def _word(cfg, lanes):
    """Pack lane values into one weight word (lane l at bits data_bits*l)."""
    mask = (1 << cfg.data_bits) - 1
    return sum((int(v) & mask) << (l * cfg.data_bits) for l, v in enumerate(lanes))


def _act_word(lanes, junk=0):
    """Pack x values into one activation word: lane l at bits 32*l, the low 16 bits the value,
    the high 16 bits ``junk`` (ignored by the MAC)."""
    return sum(((int(v) & 0xffff) | (junk & 0xffff) << 16) << (32 * l)
               for l, v in enumerate(lanes))


def _simulate(cfg, blocks, gaps=(), junk=0):
    """Feed ``blocks`` back to back (a cycle with valid=0 and garbage data before the chunk
    indices in ``gaps``, counted over all chunks); return (last-input cycles, trace)."""
    dut = MacArray(cfg)
    last_cycles, trace = [], []
    garbage = [[(-1) ** (r + l) * 77 for l in range(cfg.lanes)] for r in range(cfg.rows)]

    async def bench(ctx):
        cycle = 0

        async def step(valid, first, last, W, x):
            nonlocal cycle
            ctx.set(dut.valid, valid)
            ctx.set(dut.first, first)
            ctx.set(dut.last, last)
            for r in range(cfg.rows):
                ctx.set(dut.w[r], _word(cfg, W[r]))
            ctx.set(dut.x, _act_word(x, junk))
            trace.append((int(ctx.get(dut.result_valid)),
                          [int(ctx.get(dut.result[r])) for r in range(cfg.rows)]))
            await ctx.tick()
            cycle += 1

        idx = 0
        for W, x in blocks:
            nc = len(x)
            for k in range(nc):
                if idx in gaps:
                    await step(0, 1, 1, garbage, garbage[0])
                if k == nc - 1:
                    last_cycles.append(cycle)
                await step(1, int(k == 0), int(k == nc - 1),
                           [[int(v) for v in row] for row in W[k]], [int(v) for v in x[k]])
                idx += 1
        for _ in range(LATENCY + 2):
            await step(0, 0, 0, garbage, garbage[0])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return last_cycles, trace


def _check(cfg, blocks, last_cycles, trace):
    valid_cycles = [c for c, (v, _) in enumerate(trace) if v]
    assert valid_cycles == [c + LATENCY for c in last_cycles]
    for (W, x), c in zip(blocks, last_cycles):
        assert trace[c + LATENCY][1] == _expected(cfg, W, x)


def test_random_blocks_back_to_back():
    rng = np.random.default_rng(7)
    chunks = [3, 1, 4, 1, 1, 2, 5]
    blocks = _blocks(rng, SMALL, chunks)
    last_cycles, trace = _simulate(SMALL, blocks)
    # no bubbles: the last chunk of block i is cumulative chunk count - 1
    assert last_cycles == list(np.cumsum(chunks) - 1)
    assert last_cycles == [2, 3, 7, 8, 9, 11, 16]
    _check(SMALL, blocks, last_cycles, trace)
    assert [c for c, (v, _) in enumerate(trace) if v] == [4, 5, 9, 10, 11, 13, 18]


def test_result_valid_exactly_once_per_block():
    rng = np.random.default_rng(8)
    chunks = [2, 1, 1, 3]
    blocks = _blocks(rng, SMALL, chunks)
    last_cycles, trace = _simulate(SMALL, blocks)
    assert last_cycles == [1, 2, 3, 6]
    assert [v for v, _ in trace] == [0, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0]
    _check(SMALL, blocks, last_cycles, trace)


def test_idle_cycles_inside_and_between_blocks_do_not_accumulate():
    rng = np.random.default_rng(9)
    chunks = [3, 2, 2]
    blocks = _blocks(rng, SMALL, chunks)
    last_cycles, trace = _simulate(SMALL, blocks, gaps={1, 3, 5})
    _check(SMALL, blocks, last_cycles, trace)


def test_extreme_values_all_minus_128():
    cfg = SMALL
    chunks = [1, 3, 2]
    blocks = [(np.full((nc, cfg.rows, cfg.lanes), -128), np.full((nc, cfg.lanes), -128))
              for nc in chunks]
    last_cycles, trace = _simulate(cfg, blocks)
    _check(cfg, blocks, last_cycles, trace)
    assert [trace[c + LATENCY][1] for c in last_cycles] == [
        [65536, 65536], [196608, 196608], [131072, 131072]]


def test_extreme_mixed_signs():
    cfg = SMALL
    W = np.full((2, cfg.rows, cfg.lanes), -128)
    W[:, 1, :] = 127
    x = np.full((2, cfg.lanes), -128)
    last_cycles, trace = _simulate(cfg, [(W, x)])
    assert trace[last_cycles[0] + LATENCY][1] == [2 * 4 * 16384, 2 * 4 * -16256]


def test_small_acc_bits_wrap():
    chunks = [5, 2, 7]
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, acc_bits=16)
    rng = np.random.default_rng(10)
    blocks = _blocks(rng, cfg, chunks)
    blocks += _blocks(rng, cfg, [4, 6], lo=60, hi=128)      # sums far beyond 16 bits
    blocks.append((np.full((3, cfg.rows, cfg.lanes), -128), np.full((3, cfg.lanes), -128)))
    last_cycles, trace = _simulate(cfg, blocks)
    _check(cfg, blocks, last_cycles, trace)
    # 3 chunks * 4 lanes * 16384 = 196608 wraps to 0 in 16 bits
    assert trace[last_cycles[-1] + LATENCY][1] == [0, 0]
    # the biased random blocks really overflowed 16 bits
    raw = [np.einsum("krl,kl->r", W, x) for W, x in blocks[:-1]]
    assert all(np.all(r > 32767) for r in raw[-2:])


def test_small_acc_bits_concrete_wrap():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, acc_bits=16)
    W = np.full((1, cfg.rows, cfg.lanes), -128)
    W[0, 1, :] = 127
    x = np.full((1, cfg.lanes), -128)
    W2 = np.zeros((2, cfg.rows, cfg.lanes), dtype=np.int64)
    W2[:, :, 0] = 100
    x2 = np.zeros((2, cfg.lanes), dtype=np.int64)
    x2[:, 0] = 100
    last_cycles, trace = _simulate(cfg, [(W, x), (W2, x2)])
    # 4*16384 = 65536 -> 0; 4*-16256 = -65024 -> 512; 2*10000 = 20000 stays
    assert trace[last_cycles[0] + LATENCY][1] == [0, 512]
    assert trace[last_cycles[1] + LATENCY][1] == [20000, 20000]


def test_sixteen_bit_activations_and_lane_high_bits_ignored():
    rng = np.random.default_rng(11)
    chunks = [3, 1, 2]
    blocks = _blocks(rng, SMALL, chunks, x_bits=16)
    last_cycles, trace = _simulate(SMALL, blocks, junk=0xa5c3)
    _check(SMALL, blocks, last_cycles, trace)


def test_sixteen_bit_extremes():
    cfg = SMALL
    W = np.full((2, cfg.rows, cfg.lanes), -128)
    W[:, 1, :] = 127
    x = np.full((2, cfg.lanes), -32768)
    x[1, :] = 32767
    last_cycles, trace = _simulate(cfg, [(W, x)], junk=0xffff)
    # row 0: 4 * (-128 * -32768 + -128 * 32767) = 512; row 1: 4 * (127 * -32768 + 127 * 32767)
    assert trace[last_cycles[0] + LATENCY][1] == [512, -508]


def test_sixteen_bit_products_wrap_small_accumulators():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, acc_bits=16)
    rng = np.random.default_rng(12)
    blocks = _blocks(rng, cfg, [2, 5, 1], x_bits=16)
    last_cycles, trace = _simulate(cfg, blocks, junk=0x1234)
    _check(cfg, blocks, last_cycles, trace)


@pytest.mark.parametrize("rows", [2, 4])
def test_pv_accumulates_per_mac_and_restarts_at_the_next_pv(rows):
    """PV: MAC (r, l) adds ``e`` of its head times its packed value of the V row
    (``isa.att_kv_index``: by ``kv_shift`` with two rows, a half of its own lane with
    four), into its own 40-bit accumulator; the next PV's first row starts it anew
    (the accumulators are cleared as that row comes in). ``pv_out`` is block ``pv_sel``."""
    from tinylpu import isa
    from tinylpu.rtl.mac import MacMode
    cfg = Config(lanes=8, rows=rows, wdepth=16, adepth=16, pdepth=16, pv=1)
    R, L = cfg.rows, cfg.lanes
    rng = np.random.default_rng(12)
    pvs = []
    for n, shift in ((3, 1), (1, 0), (2, 2)):
        e = rng.integers(0, 1 << 15, (n, 2 * R))
        v = rng.integers(-(1 << 15), 1 << 15, (n, 2 * L))
        if shift == 0:
            e[0], v[0] = 32767, -32768                      # extremes
        pvs.append((shift, e, v))
    dut = MacArray(cfg)
    seen = []

    async def bench(ctx):
        def readout():
            blocks = []
            for j in range(L):
                ctx.set(dut.pv_sel, j)
                blocks += [ctx.get(dut.pv_out[r]) for r in range(R)]
            return blocks

        for shift, e, v in pvs:
            ctx.set(dut.mode, MacMode.PV)
            ctx.set(dut.kv_shift, shift)
            for k in range(len(e)):
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, k == 0)
                ctx.set(dut.last, k == len(e) - 1)
                for h in range(2 * R):
                    ctx.set(dut.e[h], int(e[k][h]))
                lanes = isa.pack_halves(v[k])
                ctx.set(dut.x, sum((int(x) & 0xffffffff) << (32 * i) for i, x in enumerate(lanes)))
                await ctx.tick()
            ctx.set(dut.valid, 0)
            for h in range(2 * R):
                ctx.set(dut.e[h], 0)
            await ctx.tick().repeat(LATENCY)
            seen.append(readout())

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for (shift, e, v), got in zip(pvs, seen):
        kv = lambda r, l: isa.att_kv_index(r, l, L, R, shift)
        want = [sum(int(e[k][isa.att_head(r, l, L)]) * int(v[k][kv(r, l)]) for k in range(len(e)))
                for r in range(R) for l in range(L)]
        assert got == [int(x) for x in wrap(np.array(want), isa.ATT_ACC_BITS)]
    assert seen[1] == [32767 * -32768] * (R * L)       # nothing left of the first PV
