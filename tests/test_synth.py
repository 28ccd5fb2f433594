"""Yosys synthesis of a small tile: no latches, no logic loops, memories in block RAM."""

import pytest

from tinylpu import Config
from tinylpu.flow.rtlsim import write_verilog
from tinylpu.flow.synth import MAP_LUTS, SynthError, synthesize

SMALL = Config(lanes=8, rows=2, wdepth=256, act_banks=2, adepth=64, pdepth=32)


def _ecp5_blocks(cells):
    # the large SRAMs became ECP5 block RAM (a DP16KD is at most 36 bits wide): 2 weight
    # banks 256 x 64 (2 each), 2 activation banks 64 x 256 with 32-bit lane enables (one
    # 36-bit block a lane: 8 each), the 32 x 288 instruction memory (8)
    assert cells.get("DP16KD", 0) >= 2 * 2 + 2 * 8 + 8
    # the 16 MACs' products (int8 x int16) each fit one 18 x 18 multiplier
    assert cells.get("MULT18X18D", 0) >= SMALL.rows * SMALL.lanes


def test_small_tile_maps_memories_and_multipliers_for_ecp5(tmp_path):
    """synth_ecp5 up to its LUT mapping (40 s against 110 for the whole flow, which is
    ``make test-slow``'s): no latch, no loop, every memory and multiplier mapped."""
    path = write_verilog(SMALL, root=tmp_path)
    cells = synthesize(path, "tinylpu_tile", "ecp5", until=MAP_LUTS)
    _ecp5_blocks(cells)
    assert not any(name.startswith(("$mem", "$mul", "$dff", "$sdff", "$dlatch"))
                   for name in cells), cells
    assert cells["TRELLIS_FF"] > 0 and "LUT4" not in cells     # logic still generic gates


@pytest.mark.slow
def test_small_tile_synthesizes_for_ecp5(tmp_path):
    path = write_verilog(SMALL, root=tmp_path)
    cells = synthesize(path, "tinylpu_tile", "ecp5")
    _ecp5_blocks(cells)
    assert not any(name.startswith("$") for name in cells), cells
    assert cells["LUT4"] > 0


@pytest.mark.slow
def test_small_tile_synthesizes_for_ice40(tmp_path):
    # slow: iCE40 has no multipliers synth_ice40 uses by default, so the MACs become LUTs
    # (about 3 minutes, against 1 for ECP5)
    path = write_verilog(SMALL, root=tmp_path)
    cells = synthesize(path, "tinylpu_tile", "ice40")
    # every SRAM became iCE40 block RAM (at most 16 bits wide each): 2 weight banks 256x64
    # (4 each), 2 activation banks 64x256 with 32-bit lane enables (16 each), the 32x288
    # instruction memory (18), the 512x16 token memory (2), the vector unit's table as two
    # 512x16 halves (2 each)
    assert cells.get("SB_RAM40_4K", 0) >= 2 * 4 + 2 * 16 + 18 + 2 + 2 * 2
    assert not any(name.startswith("$") for name in cells), cells
    assert cells["SB_LUT4"] > 0


def _module(tmp_path, name, body):
    path = tmp_path / f"{name}.v"
    path.write_text(f"module {name}(input a, input b, output reg q, output y);\n{body}\nendmodule\n")
    return path


def test_latch_is_rejected(tmp_path):
    path = _module(tmp_path, "latchy", "always @* if (a) q = b;\nassign y = 0;")
    with pytest.raises(SynthError, match="Latch inferred for signal .*latchy"):
        synthesize(path, "latchy", "generic")


def test_logic_loop_is_rejected(tmp_path):
    path = _module(tmp_path, "loopy", "wire w;\nassign w = ~(w & a);\nassign y = w;\n"
                                      "always @* q = b;")
    with pytest.raises(SynthError, match="found logic loop in module loopy"):
        synthesize(path, "loopy", "generic")


@pytest.mark.parametrize("target,until", [("generic", MAP_LUTS), ("ecp5", "fine")])
def test_a_stop_label_the_target_lacks_is_refused(tmp_path, target, until):
    path = _module(tmp_path, "plain", "always @* q = b;\nassign y = a;")
    with pytest.raises(SynthError, match=f"until must be 'map_luts' with an FPGA target, "
                                         f"not '{until}' with '{target}'"):
        synthesize(path, "plain", target, until=until)
