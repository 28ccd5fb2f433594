"""Unit tests of rtl/scalar.py ``ScalarUnit`` in Amaranth's simulator.

Documented behaviour: ``start`` in cycle s is accepted unless ``busy``; ``done`` is high in
exactly cycle s + ``latency(op, width)`` (operand-independent); ``busy`` from s+1 to the
cycle before ``done``; ``result``/``exponent``/``error`` are valid in the ``done`` cycle and
hold through the next accepted start cycle. Values equal :func:`tinylpu.model.intmodel.isqrt` and
:func:`tinylpu.model.intmodel.norm_recip` bit for bit; RECIP of 0 gives (0x7fff, 0, error=1).
"""

import random
import re

import pytest
from amaranth.back import rtlil, verilog
from amaranth.sim import Simulator

from tinylpu.model.intmodel import isqrt, norm_recip
from tinylpu.rtl.scalar import (ISQRT_LATENCY, RECIP_LATENCY, ScalarOp, ScalarUnit,
                                latency)

ISQRT, RECIP = ScalarOp.ISQRT, ScalarOp.RECIP
W = 40


def _spec(op, v):
    """(result, exponent, error) the unit must produce."""
    if op == ISQRT:
        return isqrt(v), 0, 0
    if v == 0:
        return 0x7FFF, 0, 1
    m, b = norm_recip(v)
    return m, b, 0


def _simulate(width, inputs):
    """Apply ``inputs`` (one ``(start, op, operand)`` or ``(start, op, operand, chain)`` per
    cycle) and return the outputs ``(busy, done, result, exponent, error)`` of every one of
    those cycles."""
    dut = ScalarUnit(width)
    outs = []

    async def bench(ctx):
        for start, op, operand, *chain in inputs:
            ctx.set(dut.start, start)
            ctx.set(dut.op, op)
            ctx.set(dut.operand, operand)
            ctx.set(dut.chain, chain[0] if chain else 0)
            outs.append((ctx.get(dut.busy), ctx.get(dut.done), ctx.get(dut.result),
                         ctx.get(dut.exponent), ctx.get(dut.error)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outs


def _check(width, inputs, outs):
    """Check ``outs`` against the documented protocol; return the accepted
    ``(start cycle, op, operand)``s."""
    accepted = []
    free = 0                        # first cycle a start is accepted in
    for c, (start, op, operand) in enumerate(inputs):
        if start and c >= free:
            accepted.append((c, op, operand))
            free = c + latency(op, width)
    done_at = {s + latency(op, width): (op, v) for s, op, v in accepted}
    busy_at = {c for s, op, _ in accepted for c in range(s + 1, s + latency(op, width))}
    holding = None                  # the op whose results the outputs must hold
    next_start = iter([s for s, _, _ in accepted[1:]] + [None])
    upcoming = next(next_start) if accepted else None
    for c, (busy, done, result, exponent, error) in enumerate(outs):
        assert done == (c in done_at), f"cycle {c}: done={done}"
        assert busy == (c in busy_at), f"cycle {c}: busy={busy}"
        if c in done_at:
            holding = done_at[c]
        if holding is not None:
            op, v = holding
            assert (result, exponent, error) == _spec(op, v), \
                f"cycle {c}: {op.name}({v}) gave {(result, exponent, error)}"
        if upcoming is not None and c == upcoming:
            holding = None          # valid through the start cycle, not after
            upcoming = next(next_start)
    return accepted


def _sequence(ops, gap, width=W, junk=None):
    """Inputs running ``ops`` one after another, each start ``gap`` cycles after the previous
    ``done`` (0: in the ``done`` cycle itself), then enough idle cycles to see the last
    ``done`` and the hold after it. Idle cycles carry ``junk()`` ``(op, operand)`` if given."""
    idle = (lambda: (0, *junk())) if junk else (lambda: (0, ISQRT, 0))
    inputs = []
    for op, v in ops:
        inputs.append((1, op, v))
        inputs += [idle() for _ in range(latency(op, width) - 1 + gap)]
    return inputs + [idle() for _ in range(latency(ops[-1][0], width) + 2)]


def _run(ops, gap=0, width=W, junk=None):
    inputs = _sequence(ops, gap, width, junk)
    accepted = _check(width, inputs, _simulate(width, inputs))
    assert [(op, v) for _, op, v in accepted] == list(ops)


def _edge_operands(width=W):
    top = (1 << width) - 1
    vals = {0, 1, 2, 3, 4, 5, top, top - 1, 1 << (width - 1)}
    for k in range(1, width + 1):
        vals |= {(1 << k) - 1, 1 << k, (1 << k) + 1, (1 << k) - 2}
    r = isqrt(top)                          # perfect squares and their neighbours
    for n in [2, 3, 255, 256, 4095, r - 1, r]:
        vals |= {n * n - 1, n * n, n * n + 1}
    return sorted(v for v in vals if 0 <= v <= top)


# --------------------------------------------------------------------------------------------

def test_latency_constants():
    assert ISQRT_LATENCY == latency(ISQRT) == latency(ISQRT, 40) == 21
    assert RECIP_LATENCY == latency(RECIP) == latency(RECIP, 40) == 16
    assert latency(ISQRT, 7) == latency(ISQRT, 8) == 5
    assert latency(RECIP, 8) == 16


@pytest.mark.parametrize("op", [ISQRT, RECIP], ids=lambda o: o.name)
def test_edge_operands_back_to_back(op):
    # start asserted in each done cycle: no idle cycle between operations
    ops = [(op, v) for v in _edge_operands() if not (op == RECIP and v == 0)]
    _run(ops, gap=0)


@pytest.mark.parametrize("op", [ISQRT, RECIP], ids=lambda o: o.name)
def test_random_full_range_start_after_done(op):
    # start in the cycle right after done; idle inputs wiggle (results must hold regardless)
    rng = random.Random(40 + op.value)
    ops = []
    for i in range(400):
        bits = rng.randint(1, W) if i % 2 else W         # all magnitudes, and full-width
        ops.append((op, rng.getrandbits(bits) or 1))
    junk = lambda: (rng.choice([ISQRT, RECIP]), rng.getrandbits(W))
    _run(ops, gap=1, junk=junk)


def test_mixed_ops_with_gaps():
    rng = random.Random(7)
    ops = [(rng.choice([ISQRT, RECIP]), rng.getrandbits(rng.randint(1, W)) or 1)
           for _ in range(150)]
    for gap in (0, 1, 3):
        _run(ops, gap=gap)


def test_latency_is_operand_independent():
    """Measured directly (not through the protocol model): done after exactly the constant
    number of cycles for the smallest and largest operands alike."""
    dut = ScalarUnit(W)
    cases = [(ISQRT, 0), (ISQRT, 1), (ISQRT, (1 << W) - 1), (ISQRT, 1 << 20),
             (RECIP, 1), (RECIP, 2), (RECIP, (1 << W) - 1), (RECIP, 1 << (W - 1)), (RECIP, 0)]
    measured = []

    async def bench(ctx):
        for op, v in cases:
            ctx.set(dut.start, 1)
            ctx.set(dut.op, op)
            ctx.set(dut.operand, v)
            await ctx.tick()
            ctx.set(dut.start, 0)
            n = 1
            while not ctx.get(dut.done):
                assert n < 100
                await ctx.tick()
                n += 1
            measured.append(n)
            await ctx.tick()
            assert not ctx.get(dut.done)        # a one-cycle pulse

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert measured == [ISQRT_LATENCY] * 4 + [RECIP_LATENCY] * 5


def test_recip_of_zero_is_defined_and_flagged():
    ops = [(RECIP, 5), (RECIP, 0), (RECIP, 0), (ISQRT, 0), (RECIP, 0), (RECIP, 1)]
    for gap in (0, 2):
        _run(ops, gap=gap)          # (0x7fff, 0, error=1) held; error clears on the next op
    assert _spec(RECIP, 0) == (0x7FFF, 0, 1) and _spec(ISQRT, 0) == (0, 0, 0)


def test_start_while_busy_is_ignored():
    rng = random.Random(3)
    inputs = []
    expected = []
    for i in range(60):
        op = rng.choice([ISQRT, RECIP])
        v = rng.getrandbits(W) or 1
        expected.append((op, v))
        inputs.append((1, op, v))
        for _ in range(latency(op, W) - 1):          # busy cycles: random (ignored) starts
            inputs.append((rng.getrandbits(1), rng.choice([ISQRT, RECIP]),
                           rng.getrandbits(W)))
        inputs += [(0, ISQRT, 0)] * rng.randint(0, 2)     # next start: in done, or later
    inputs += [(0, ISQRT, 0)] * (RECIP_LATENCY + ISQRT_LATENCY)
    outs = _simulate(W, inputs)
    accepted = _check(W, inputs, outs)
    assert [(op, v) for _, op, v in accepted] == expected
    assert sum(o[1] for o in outs) == len(expected)      # no extra done from ignored starts


def test_start_held_high_runs_back_to_back():
    # start stays high: one op accepted per done cycle, the inputs seen in that cycle
    rng = random.Random(11)
    inputs = [(1, rng.choice([ISQRT, RECIP]), rng.getrandbits(W)) for _ in range(400)]
    accepted = _check(W, inputs, _simulate(W, inputs))
    starts = [s for s, _, _ in accepted]
    assert starts[0] == 0
    assert all(b - a == latency(op, W) for (a, op, _), b in zip(accepted, starts[1:]))
    assert len(accepted) >= 400 // ISQRT_LATENCY


@pytest.mark.parametrize("width", [2, 3, 7, 8], ids=lambda w: f"w{w}")
def test_small_widths_exhaustive(width):
    ops = [(op, v) for v in range(1 << width) for op in (ISQRT, RECIP)]
    _run(ops, gap=0, width=width)


def test_elaborates_to_verilog_without_multipliers_or_dividers():
    dut = ScalarUnit(W)
    text = verilog.convert(dut, name="scalar_unit")
    assert "module scalar_unit" in text
    for port in ("start", "op", "operand", "busy", "done", "result", "exponent", "error"):
        assert re.search(rf"\b{port}\b", text)
    il = rtlil.convert(ScalarUnit(W), name="scalar_unit")
    assert not re.search(r"cell \$(mul|div|mod|divfloor|modfloor|pow)\b", il)


@pytest.mark.parametrize("width", [40, 48])
def test_chain_starts_the_reciprocal_of_the_root_in_the_done_cycle(width):
    """``start`` with ``chain`` in an ISQRT's ``done`` cycle: a RECIP of the root (``op`` and
    ``operand`` ignored, here set to an ISQRT of another value), done RECIP_LATENCY later
    with ``norm_recip(isqrt(v))``; the root of 0 gives RECIP's error."""
    rng = random.Random(width)
    values = [0, 1, 3, (1 << width) - 1] + [rng.randrange(1 << rng.randrange(1, width + 1))
                                            for _ in range(12)]
    li = latency(ISQRT, width)
    per_value = ([(1, ISQRT, None, 0)] + [(0, ISQRT, 12345, 0)] * (li - 1)
                 + [(1, ISQRT, 12345, 1)] + [(0, ISQRT, 12345, 0)] * RECIP_LATENCY)
    inputs = [(st, op, v if x is None else x, ch) for v in values
              for st, op, x, ch in per_value]
    outs = _simulate(width, inputs)
    got = []
    for k, v in enumerate(values):
        s0 = k * len(per_value)
        assert outs[s0 + li][1] and outs[s0 + li][2] == isqrt(v)
        assert not any(o[1] for o in outs[s0 + li + 1:s0 + li + RECIP_LATENCY])
        assert outs[s0 + li + RECIP_LATENCY][1]
        got.append(outs[s0 + li + RECIP_LATENCY][2:])
    assert got == [_spec(RECIP, isqrt(v)) for v in values]
    assert got[0] == (0x7FFF, 0, 1)
