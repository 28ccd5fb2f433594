"""Unit tests of rtl/recip.py ``RecipPipeline`` in Amaranth's simulator.

Documented behaviour: ``valid`` and ``operand`` in cycle c give ``out_valid`` (= that
``valid``), ``mantissa`` and ``exponent`` of that operand in exactly cycle c + ``LATENCY``
(``1 + ceil(14 / steps_per_stage)``), one operand per cycle with no stall; the values equal
:func:`tinylpu.model.intmodel.norm_recip` bit for bit, operand 0 gives (0x7fff, 0), and results
are computed for every cycle's operand, valid or not. ``out_valid`` is 0 in the LATENCY
cycles after reset.
"""

import random
import re

import pytest
from amaranth.back import rtlil, verilog
from amaranth.sim import Simulator

from tinylpu.model.intmodel import norm_recip
from tinylpu.rtl.recip import LATENCY, STEPS_PER_STAGE, RecipPipeline, latency
from tinylpu.flow.rtlsim import lint


def _spec(v):
    """(mantissa, exponent) the pipeline must produce for operand ``v``."""
    return norm_recip(v) if v else (0x7FFF, 0)


def _simulate(dut, inputs):
    """Apply ``inputs`` (one ``(valid, operand)`` per cycle, from the first cycle after
    reset) and return ``(out_valid, mantissa, exponent)`` of every one of those cycles."""
    outs = []

    async def bench(ctx):
        for valid, operand in inputs:
            ctx.set(dut.valid, valid)
            ctx.set(dut.operand, operand)
            outs.append((ctx.get(dut.out_valid), ctx.get(dut.mantissa),
                         ctx.get(dut.exponent)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outs


def _run(width, steps_per_stage, inputs):
    """Simulate ``inputs`` followed by LATENCY idle cycles and check every output cycle:
    cycle c carries ``inputs[c - LATENCY]``'s valid and result."""
    dut = RecipPipeline(width, steps_per_stage)
    assert dut.latency == latency(steps_per_stage)
    inputs = list(inputs) + [(0, 0)] * dut.latency
    outs = _simulate(dut, inputs)
    for c, (out_valid, mantissa, exponent) in enumerate(outs):
        if c < dut.latency:
            assert out_valid == 0, f"cycle {c}: out_valid before any operand got through"
            continue
        valid, v = inputs[c - dut.latency]
        assert out_valid == valid, f"cycle {c}: out_valid={out_valid}"
        assert (mantissa, exponent) == _spec(v), \
            f"cycle {c}: operand {v} gave {(mantissa, exponent)}, not {_spec(v)}"


def _exact_divisors(width):
    """Operands that divide their dividend ``2**(b+14) - 1`` exactly (zero final remainder),
    e.g. 3, 7, 127, 2**14 - 1."""
    vals = []
    for b in range(1, width + 1):
        dividend = (1 << (b + 14)) - 1
        vals += [dividend // m for m in range(1 << 14, 1 << 15)
                 if dividend % m == 0 and (dividend // m).bit_length() == b]
    return vals


def _edge_operands(width):
    top = (1 << width) - 1
    vals = {0, 1, 2, 3, 5, top, top - 1}
    for k in range(1, width + 1):       # powers of two (mantissa 0x7fff) and neighbours
        vals |= {(1 << k) - 2, (1 << k) - 1, 1 << k, (1 << k) + 1, (3 << k) >> 1}
    vals |= set(_exact_divisors(width))
    return sorted(v for v in vals if 0 <= v <= top)


def _random_operands(width, per_length, rng):
    """``per_length`` random operands of every bit length 1..``width``, shuffled."""
    vals = [rng.randrange(1 << (b - 1), 1 << b)
            for b in range(1, width + 1) for _ in range(per_length)]
    rng.shuffle(vals)
    return vals


# --------------------------------------------------------------------------------------------

def test_latency_formula():
    assert STEPS_PER_STAGE == 2 and LATENCY == latency() == latency(2) == 8
    assert [latency(s) for s in (1, 3, 4, 5, 7, 13, 14, 15)] == [15, 6, 5, 4, 3, 3, 2, 2]
    with pytest.raises(ValueError):
        latency(0)


def test_edge_operands_cover_exact_quotients_and_extremes():
    assert {3, 127, (1 << 14) - 1} <= set(_exact_divisors(24))
    assert all(_spec(v)[0] == 0x7FFF for v in (1, 2, 1 << 23))


@pytest.mark.parametrize("width,steps_per_stage,per_length", [
    (24, 2, 40), (24, 3, 40), (40, 2, 25), (40, 1, 25),
], ids=str)
def test_back_to_back_stream_is_exact_and_on_time(width, steps_per_stage, per_length):
    # one operand every cycle from the first cycle after reset, no bubble
    rng = random.Random(width * 100 + steps_per_stage)
    operands = _edge_operands(width) + _random_operands(width, per_length, rng)
    _run(width, steps_per_stage, [(1, v) for v in operands])


@pytest.mark.parametrize("steps_per_stage", [1, 14], ids=lambda s: f"s{s}")
def test_bubbles_and_junk_between_operands(steps_per_stage):
    # valid toggles at random; the operands of invalid cycles are junk, and their results
    # still come out (with out_valid low) LATENCY cycles later
    width = 24
    rng = random.Random(steps_per_stage)
    inputs = [(rng.getrandbits(1), rng.getrandbits(rng.randint(1, width)))
              for _ in range(300)]
    _run(width, steps_per_stage, inputs)


@pytest.mark.parametrize("width,steps_per_stage",
                         [(1, 1), (2, 14), (5, 3), (8, 2), (8, 4)], ids=str)
def test_small_widths_exhaustive(width, steps_per_stage):
    _run(width, steps_per_stage, [(1, v) for v in range(1 << width)])


def test_latency_measured_directly():
    """Not through the checking model: a lone valid pulse comes out as a lone out_valid
    pulse exactly LATENCY cycles later, for the smallest and largest operands alike."""
    width = 24
    dut = RecipPipeline(width)
    gap = 2 * LATENCY
    operands = [0, 1, (1 << width) - 1, 1 << (width - 1), 3]
    seen = []

    async def bench(ctx):
        for c in range(gap * (len(operands) + 1)):
            pulse = c % gap == 0 and c // gap < len(operands)
            ctx.set(dut.valid, pulse)
            ctx.set(dut.operand, operands[c // gap] if pulse else 0)
            if ctx.get(dut.out_valid):
                seen.append((c, ctx.get(dut.mantissa), ctx.get(dut.exponent)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(i * gap + LATENCY, *_spec(v)) for i, v in enumerate(operands)]


def test_verilog_converts_and_lints_clean(tmp_path):
    text = verilog.convert(RecipPipeline(24), name="recip_pipeline")
    assert "module recip_pipeline" in text
    for port in ("clk", "rst", "valid", "operand", "out_valid", "mantissa", "exponent"):
        assert re.search(rf"\b{port}\b", text)
    il = rtlil.convert(RecipPipeline(24), name="recip_pipeline")
    assert not re.search(r"cell \$(mul|div|mod|divfloor|modfloor|pow|dlatch)\b", il)
    # rtl/lint.vlt scopes its waivers of the generator's style to the tile's Verilog file,
    # tinylpu_tile.v, which this block's Verilog becomes part of: lint it under that name
    path = tmp_path / "tinylpu_tile.v"
    path.write_text(text)
    assert lint(path, top="recip_pipeline") == []
