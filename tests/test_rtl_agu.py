"""Unit tests of rtl/agu.py ``MatvecAgu`` in Amaranth's simulator.

Documented behaviour: in the cycle ``op.issue`` is high (with ``args``) read 0 is emitted
combinationally; then one read per cycle with ``busy`` high until the read with ``final``.
Read j (block b = j // n_chunks, chunk k = j % n_chunks): ``w.word = w_base + j``,
``x_addr = x_addr + k`` on ``x_bank``, token first = (k == 0), last = (k == n_chunks - 1),
y word / lane group of block b.
"""

import pytest
from amaranth.sim import Simulator

from tinylpu.config import Config
from tinylpu.rtl.agu import MatvecAgu

GARBAGE = dict(w_base=0xffff, x_bank=3, x_addr=0xffff, y_bank=3, y_addr=0xffff,
               n_blocks=0xffff, n_chunks=0xfff, q_mult=-1, q_shift=63, y_bits=63)


def _args(**kw):
    base = dict(w_base=0, x_bank=0, x_addr=0, y_bank=0, y_addr=0, n_blocks=1, n_chunks=1,
                q_mult=1, q_shift=0, y_bits=8)
    base.update(kw)
    return base


def _observe(ctx, dut):
    tok = ctx.get(dut.token)
    assert ctx.get(dut.w.en) == tok.valid          # the weight read goes with every read
    return dict(valid=int(tok.valid), busy=int(ctx.get(dut.op.busy)),
                final=int(ctx.get(dut.op.final)),
                w_addr=int(ctx.get(dut.w.word)), x_bank=int(ctx.get(dut.x_bank)),
                x_addr=int(ctx.get(dut.x_addr)), first=int(tok.first), last=int(tok.last),
                y_bank=int(tok.y_bank), y_word=int(tok.y_word), y_group=int(tok.y_group),
                mult=int(tok.mult), shift=int(tok.shift), y_bits=int(tok.y_bits))


def _simulate(cfg, program, idle_before=2, idle_after=3, max_cycles=1000):
    """``program``: list of (cycle offset after the previous issue, args); an offset of
    None issues in the cycle after the previous instruction's ``final`` (back to back).
    Returns (issue cycles, per-cycle observations)."""
    dut = MatvecAgu(cfg)
    trace, issues = [], []

    async def bench(ctx):
        cycle = 0
        ctx.set(dut.op.args, GARBAGE)
        for _ in range(idle_before):
            trace.append(_observe(ctx, dut))
            await ctx.tick()
            cycle += 1
        for gap, args in program:
            for _ in range(gap or 0):
                trace.append(_observe(ctx, dut))
                await ctx.tick()
                cycle += 1
            ctx.set(dut.op.issue, 1)
            ctx.set(dut.op.args, args)
            issues.append(cycle)
            while True:
                obs = _observe(ctx, dut)
                trace.append(obs)
                await ctx.tick()
                cycle += 1
                ctx.set(dut.op.issue, 0)
                ctx.set(dut.op.args, GARBAGE)     # the AGU must have registered what it needs
                if obs["final"] or cycle > max_cycles:
                    break
        for _ in range(idle_after):
            trace.append(_observe(ctx, dut))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return issues, trace


def _expected_reads(cfg, a):
    groups = cfg.lanes // cfg.rows
    nb, nc = a["n_blocks"], a["n_chunks"]
    out = []
    for j in range(nb * nc):
        b, k = divmod(j, nc)
        out.append(dict(valid=1, busy=int(j > 0), final=int(j == nb * nc - 1),
                        w_addr=a["w_base"] + j, x_bank=a["x_bank"], x_addr=a["x_addr"] + k,
                        first=int(k == 0), last=int(k == nc - 1), y_bank=a["y_bank"],
                        y_word=a["y_addr"] + b // groups, y_group=b % groups,
                        mult=a["q_mult"], shift=a["q_shift"], y_bits=a["y_bits"]))
    return out


def _idle(obs):
    return obs["valid"] == 0 and obs["busy"] == 0 and obs["final"] == 0


@pytest.mark.parametrize("cfg,nb,nc", [
    (Config(lanes=8, rows=2, wdepth=64, adepth=16, pdepth=16), 6, 3),   # 4 lane groups
    (Config(lanes=4, rows=4, wdepth=64, adepth=16, pdepth=16), 3, 2),   # lanes == rows
    (Config(lanes=4, rows=2, wdepth=64, adepth=16, pdepth=16), 5, 1),   # single-chunk blocks
    (Config(lanes=4, rows=2, wdepth=64, adepth=16, pdepth=16), 1, 7),   # one block
], ids=["l8r2-6x3", "l4r4-3x2", "l4r2-5x1", "l4r2-1x7"])
def test_matvec_reads(cfg, nb, nc):
    a = _args(w_base=10, x_bank=1, x_addr=5, y_bank=2, y_addr=9, n_blocks=nb, n_chunks=nc,
              q_mult=-1234, q_shift=17, y_bits=19)
    issues, trace = _simulate(cfg, [(0, a)])
    assert issues == [2]
    n = nb * nc
    assert all(_idle(o) for o in trace[:2])
    assert trace[2:2 + n] == _expected_reads(cfg, a)
    assert all(_idle(o) for o in trace[2 + n:])
    assert len(trace) == 2 + n + 3


def test_group_and_word_progression_concrete():
    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=16, pdepth=16)     # 4 groups
    a = _args(y_addr=3, n_blocks=6, n_chunks=2)
    _, trace = _simulate(cfg, [(0, a)], idle_before=0, idle_after=0)
    assert [(o["y_word"], o["y_group"]) for o in trace] == [
        (3, 0), (3, 0), (3, 1), (3, 1), (3, 2), (3, 2), (3, 3), (3, 3),
        (4, 0), (4, 0), (4, 1), (4, 1)]
    assert [o["first"] for o in trace] == [1, 0] * 6
    assert [o["last"] for o in trace] == [0, 1] * 6
    assert [o["final"] for o in trace] == [0] * 11 + [1]
    assert [o["busy"] for o in trace] == [0] + [1] * 11
    assert [o["w_addr"] for o in trace] == list(range(12))
    assert [o["x_addr"] for o in trace] == [0, 1] * 6


def test_single_read():
    cfg = Config(lanes=4, rows=2, wdepth=64, adepth=16, pdepth=16)
    a = _args(w_base=7, x_bank=3, x_addr=11, y_bank=1, y_addr=4, q_mult=32767, q_shift=63,
              y_bits=32)
    issues, trace = _simulate(cfg, [(0, a)])
    assert issues == [2]
    assert trace[2] == dict(valid=1, busy=0, final=1, w_addr=7, x_bank=3, x_addr=11, first=1,
                            last=1, y_bank=1, y_word=4, y_group=0, mult=32767, shift=63,
                            y_bits=32)
    assert all(_idle(o) for o in trace[:2] + trace[3:])


def test_back_to_back_and_later_issues():
    cfg = Config(lanes=4, rows=2, wdepth=64, adepth=16, pdepth=16)
    a1 = _args(w_base=0, x_bank=0, x_addr=2, y_bank=1, y_addr=0, n_blocks=3, n_chunks=2,
               q_mult=5, q_shift=3, y_bits=16)
    a2 = _args(w_base=6, x_bank=1, x_addr=0, y_bank=0, y_addr=8, n_blocks=1, n_chunks=1,
               q_mult=-7, q_shift=0, y_bits=2)
    a3 = _args(w_base=7, x_bank=2, x_addr=1, y_bank=3, y_addr=2, n_blocks=2, n_chunks=3,
               q_mult=300, q_shift=9)
    # a2 the cycle after a1's final, a3 the cycle after a2's, a1 again after 4 idle cycles
    issues, trace = _simulate(cfg, [(0, a1), (None, a2), (None, a3), (4, a1)])
    assert issues == [2, 8, 9, 19]
    expected = ([None] * 2 + _expected_reads(cfg, a1) + _expected_reads(cfg, a2)
                + _expected_reads(cfg, a3) + [None] * 4 + _expected_reads(cfg, a1) + [None] * 3)
    assert len(trace) == len(expected)
    for cycle, (obs, exp) in enumerate(zip(trace, expected)):
        if exp is None:
            assert _idle(obs), cycle
        else:
            assert obs == exp, cycle


def test_zero_n_chunks_wraps_to_4096():
    """isa.matvec_dims: a zero field counts as 2**width, as the hardware counters wrap."""
    cfg = Config(lanes=4, rows=2, wdepth=64, adepth=16, pdepth=16)
    a = _args(w_base=3, x_addr=2, y_addr=1, n_blocks=1, n_chunks=0, q_mult=9, q_shift=4)
    issues, trace = _simulate(cfg, [(0, a)], max_cycles=5000)
    assert issues == [2]
    assert trace[2:2 + 4096] == _expected_reads(cfg, {**a, "n_chunks": 4096})
    assert all(_idle(o) for o in trace[:2] + trace[2 + 4096:])


def test_pv_pass_reads_its_weights_a_cycle_after_its_x_words():
    """A PV pass (x_exp): the x read of chunk k of block b in its token's cycle, the weight
    word ``w_base + b + (k << w_shift)`` in the next (isa.PASS_W_LAT), the last in the slot's
    tail (``final``); no weight read otherwise. A MATVEC right behind it reads in step."""
    from tinylpu import isa

    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=16, pdepth=16)
    nb, nc, shift = 2, 3, 2
    dut = MatvecAgu(cfg)
    seen = []

    async def bench(ctx):
        for args in (_args(w_base=5, x_addr=3, n_blocks=nb, n_chunks=nc, x_exp=1,
                           w_shift=shift), _args(w_base=40, n_blocks=1, n_chunks=2)):
            ctx.set(dut.op.issue, 1)
            ctx.set(dut.op.args, args)
            while True:
                tok = ctx.get(dut.token)
                final = ctx.get(dut.op.final)
                seen.append((int(tok.valid), int(ctx.get(dut.x_addr)), int(ctx.get(dut.w.en)),
                             int(ctx.get(dut.w.word)), int(final)))
                await ctx.tick()
                ctx.set(dut.op.issue, 0)
                ctx.set(dut.op.args, GARBAGE)
                if final:
                    break
        for _ in range(2):
            seen.append((int(ctx.get(dut.token).valid), 0, int(ctx.get(dut.w.en)),
                         int(ctx.get(dut.w.word)), 0))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert isa.PASS_W_LAT == 1
    reads = [(3 + k, 5 + b + (k << shift)) for b in range(nb) for k in range(nc)]
    n = len(reads)
    assert [(v, x) for v, x, _, _, _ in seen[:n]] == [(1, x) for x, _ in reads]
    assert [(en, w) for _, _, en, w, _ in seen[1:n + 1]] == [(1, w) for _, w in reads]
    assert seen[0][2] == 0                          # nothing in the token's own cycle
    assert seen[n][0] == 0 and seen[n][4] == 1       # the tail: a weight read, no token
    assert [s[:4] for s in seen[n + 1:n + 3]] == [(1, 0, 1, 40), (1, 1, 1, 41)]
    assert [s[2] for s in seen[n + 3:]] == [0, 0]
