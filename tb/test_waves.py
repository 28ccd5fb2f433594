"""`make waves`: the FST is written and every signal of the GTKWave save file exists."""

import pytest

from tinylpu import Config
from tinylpu.flow.rtlsim import SimError
from tinylpu.sim import waves

SMALL = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=16)


def test_waves_writes_fst_and_grouped_save_file(tmp_path):
    fst, gtkw = waves.make_waves(SMALL, tmp_path, shape=(4, 20), out=lambda *a: None)
    assert fst.read_bytes()[:1] == b"\x00" and fst.stat().st_size > 1000   # FST header block
    text = gtkw.read_text()
    assert f'[dumpfile] "{fst}"' in text
    for group, _ in waves.SIGNAL_GROUPS:
        assert f"-{group}" in text
    assert "tinylpu_tile.seq.pc[3:0]" in text and "tinylpu_tile.mac.acc0[31:0]" in text


def test_waves_rejects_a_signal_the_design_lacks(tmp_path, monkeypatch):
    monkeypatch.setattr(waves, "SIGNAL_GROUPS", [("Bogus", ["seq.no_such_signal"])])
    with pytest.raises(SimError, match="no_such_signal"):
        waves.make_waves(SMALL, tmp_path, shape=(4, 20), out=lambda *a: None)


def test_generate_waves_and_streamed_ids(tmp_path):
    """rtlsim.run_generate on Icarus: the ids arrive through the callback during the run, in
    emission order, equal to the golden model's; the FST lands where asked."""
    import numpy as np

    from tinylpu.golden import GoldenTile
    from tinylpu.flow.rtlsim import run_generate
    from token_loop import token_loop_case

    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32, tdepth=16)
    golden = GoldenTile(cfg)
    case = token_loop_case(golden, "waves", np.random.default_rng(5), n_prompt=2, steps=3)
    arrived = []
    fst = tmp_path / "gen" / "tile.fst"
    response, seconds = run_generate(cfg, "icarus", case["load"], case["request"], n_emit=3,
                                     on_beat_pair=lambda *pair: arrived.append(pair),
                                     waves=fst)
    run_at = case["run_at"]
    assert response == case["expected"][:run_at + 2]
    assert arrived == golden.emitted and seconds > 0
    assert fst.read_bytes()[:1] == b"\x00" and fst.stat().st_size > 1000
