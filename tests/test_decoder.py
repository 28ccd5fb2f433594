"""The decoder compiler on the golden tile: bit-exact with the integer spec, cycle-exact with
its own prediction, and clear errors for what does not fit."""

import dataclasses
import pathlib

import numpy as np
import pytest

from tinylpu import host
from tinylpu.cli import main
from tinylpu.compiler import CompileError
from tinylpu.config import Config
from tinylpu.compiler.decoder import compile_decoder, config_for
from tinylpu.golden import GoldenTile
from tinylpu.model.intmodel import IntDecoder, quantize
from tinylpu.model import save_checkpoint, synthetic_model

MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"


def _qmodel(seed=1, shared=True, seq_len=32, kv_bits=16, **kw):
    m = synthetic_model(seed=seed, seq_len=seq_len, shared=shared, **kw)
    rng = np.random.default_rng(seed)
    calib = [list(rng.integers(0, m.config.vocab_size, seq_len)) for _ in range(2)]
    return m, quantize(m, calib, kv_bits=kv_bits)


def _spec_run(qm, prompt, steps):
    """Greedy generation and the last logits by the integer spec (IntDecoder)."""
    dec, toks, out, logits = IntDecoder(qm), list(prompt), [], None
    for pos in range(len(prompt) + steps - 1):
        logits = dec.forward(toks[pos], pos)
        if pos + 1 >= len(prompt):
            toks.append(IntDecoder.argmax(logits))
            out.append(toks[-1])
    return out, logits


def _golden(prog):
    tile = GoldenTile(prog.cfg)
    assert tile.host(prog.load_stream()) == []
    return tile


@pytest.mark.parametrize("shared", [True, False])
def test_synthetic_tokens_logits_and_cycles(shared):
    _, qm = _qmodel(seed=3, shared=shared)
    prog = compile_decoder(qm, config_for(qm, 32), 32)
    tile = _golden(prog)
    prompt, steps = [1, 7, 30], 10
    result = prog.parse(tile.host(prog.generate_stream(prompt, steps)), steps)
    tokens, logits = _spec_run(qm, prompt, steps)
    assert result.tokens == tokens
    assert result.status == host.STATUS_DONE
    stamps, cycles = prog.predict(len(prompt), steps)
    assert result.stamps == stamps and result.cycles == cycles
    # every value the host can read back: the last position's logits, the token memory
    got = prog.read_values("logits", tile.host(prog.read_stream("logits")))
    np.testing.assert_array_equal(got, logits)
    assert tile.tmem[:len(prompt) + steps].tolist() == prompt + tokens


@pytest.mark.parametrize("heads, kv_heads", [(8, 2), (4, 4), (8, 1), (2, 1)])
def test_head_slots_for_each_kv_sharing(heads, kv_heads):
    """On 4 rows each lane's K/V halves feed its own MACs (isa.att_kv_index), so the compiler
    places the heads in slots: K/V heads shared by more heads than a slot serves (kv_mul 4,
    8) are held twice or four times, kv_mul 1 leaves half the slots' rows idle, and fewer
    heads than slots leave zero rows. Tokens and logits stay the integer spec's."""
    _, qm = _qmodel(seed=5, dim=8 * heads, n_heads=heads, n_kv_heads=kv_heads)
    prog = compile_decoder(qm, config_for(qm, 32), 32)
    assert prog.cfg.rows == 4
    tile = _golden(prog)
    prompt, steps = [2, 9], 6
    result = prog.parse(tile.host(prog.generate_stream(prompt, steps)), steps)
    tokens, logits = _spec_run(qm, prompt, steps)
    assert result.tokens == tokens and result.status == host.STATUS_DONE
    got = prog.read_values("logits", tile.host(prog.read_stream("logits")))
    np.testing.assert_array_equal(got, logits)


def test_an_8bit_v_cache_runs_on_the_tile():
    """kv_bits=(16, 8): wv's MATVEC saturates to 8 bits with its shift raised by V's, and
    PV's output shift lowers by it: tokens and logits are the integer spec's, the cycles
    the int16 cache's. A narrow K cache is refused."""
    _, qm16 = _qmodel(seed=3)
    _, qm = _qmodel(seed=3, kv_bits=(16, 8))
    assert qm.kv_shifts()[1].max() > 0
    progs = [compile_decoder(m, config_for(m, 32), 32) for m in (qm, qm16)]
    prompt, steps = [1, 7], 8
    peaks = []
    for m, prog in zip((qm, qm16), progs):
        tile = _golden(prog)
        result = prog.parse(tile.host(prog.generate_stream(prompt, steps)), steps)
        tokens, logits = _spec_run(m, prompt, steps)
        assert result.tokens == tokens and result.status == host.STATUS_DONE
        np.testing.assert_array_equal(
            prog.read_values("logits", tile.host(prog.read_stream("logits"))), logits)
        # the V cache's lanes hold two values each (isa.halves)
        lanes = np.concatenate([prog.read_values(f"v{l}", tile.host(prog.read_stream(f"v{l}")))
                                for l in range(m.config.n_layers)]).astype(np.int64)
        halves = np.concatenate([lanes & 0xffff, (lanes >> 16) & 0xffff])
        peaks.append(int(np.abs((halves ^ 0x8000) - 0x8000).max()))
    assert 64 <= peaks[0] <= 128 < peaks[1]          # V in 8 bits, not in int16
    assert progs[0].step_cycles(5) == progs[1].step_cycles(5)
    _, qm8 = _qmodel(seed=3, kv_bits=8)
    with pytest.raises(CompileError, match="the tile's K cache is int16"):
        compile_decoder(qm8, config_for(qm8, 32), 32)


@pytest.mark.parametrize("passes", [False, True])
def test_cycles_with_position(passes):
    """Each position's cycles are the compiler's sum of issue slots: with PV they grow by
    the same count a position (QK and PV, one cycle a key each), with PV passes by QK's
    cycle a key and a step of a chunk a pass and block every L positions."""
    _, qm = _qmodel(kv_bits=(16, 8) if passes else 16)
    prog = compile_decoder(qm, config_for(qm, 32, passes=passes), 32, passes=passes)
    tile = _golden(prog)
    result = prog.parse(tile.host(prog.generate_stream([1], 20)), 20)
    steps = np.diff(result.stamps)
    assert (steps == [prog.step_cycles(p) for p in range(1, 20)]).all()
    growth = np.diff([prog.step_cycles(p) for p in range(32)])
    layers, L = qm.config.n_layers, prog.cfg.lanes
    if not passes:
        assert (growth == growth[0]).all() and growth[0] == 2 * layers
    else:       # QK: a cycle a position; the 8 passes of 1 block: a chunk every L positions
        blocks = qm.config.n_heads * (qm.config.head_size // prog.cfg.rows)
        assert (growth == layers * (1 + blocks * (np.arange(1, 32) % L == 0))).all()


def test_passes_put_vt_in_the_weight_tail_and_k_in_both_banks():
    """config_for gives the written words (V^T, q) a tail of their own where beside the
    weights they would double the banks (Config.wtail), and with passes each layer's K goes
    to the activation bank with fewer words used. The tokens, logits and cycles are those of
    the same program on banks of one memory."""
    _, qm = _qmodel(seed=3, seq_len=512, kv_bits=(16, 8))
    cfg = config_for(qm, 512, passes=True)
    assert (cfg.wdepth, cfg.wtail) == (512, 512)
    prog = compile_decoder(qm, cfg, 512, passes=True)
    used = prog.footprint()
    assert used["weight words (per bank)"] == (336, 512)
    assert used["weight tail words (per bank)"] == (257, 512)
    assert {prog.bufs[f"k{l}"].bank for l in range(qm.config.n_layers)} == {0, 1}
    flat = compile_decoder(qm, dataclasses.replace(cfg, wdepth=1024, wtail=0), 512, passes=True)
    assert "weight tail words (per bank)" not in flat.footprint()
    prompt, steps = [1, 7, 30], 18
    runs = []
    for p in (prog, flat):
        tile = _golden(p)
        result = p.parse(tile.host(p.generate_stream(prompt, steps)), steps)
        assert result.status == host.STATUS_DONE
        assert (result.stamps, result.cycles) == p.predict(len(prompt), steps)
        runs.append((result.tokens, result.stamps,
                     p.read_values("logits", tile.host(p.read_stream("logits"))).tolist()))
    assert runs[0] == runs[1]
    # a tail too small for the written words is named
    with pytest.raises(CompileError, match=r"weight tail words \(per bank\): needs 257, the "
                                           r"config has 256"):
        compile_decoder(qm, dataclasses.replace(cfg, wtail=256), 512, passes=True)


def test_two_requests_reuse_the_loaded_program():
    _, qm = _qmodel(seed=5)
    prog = compile_decoder(qm, config_for(qm, 32), 32)
    tile = _golden(prog)
    for prompt in ([1], [1, 2, 3, 4]):
        result = prog.parse(tile.host(prog.generate_stream(prompt, 6)), 6)
        assert result.tokens == _spec_run(qm, prompt, 6)[0]


def test_model_too_big_names_needed_and_available():
    _, qm = _qmodel()
    with pytest.raises(CompileError, match=r"weight words \(per bank\): needs 353, the config "
                                           r"has 64"):
        compile_decoder(qm, Config(wdepth=64, adepth=256, pdepth=256), 32)
    with pytest.raises(CompileError, match=r"activation bank 0 words: needs \d+, the config "
                                           r"has 16"):
        compile_decoder(qm, Config(wdepth=512, adepth=16, pdepth=256), 32)
    with pytest.raises(CompileError, match=r"program: needs \d+, the config has 16"):
        compile_decoder(qm, Config(wdepth=512, adepth=256, pdepth=16), 32)
    with pytest.raises(CompileError, match=r"row-multiplier words: needs \d+, the config has "
                                           r"16"):
        compile_decoder(qm, Config(wdepth=512, adepth=256, pdepth=256, mdepth=16), 32)
    with pytest.raises(CompileError, match=r"RoPE-table words: needs 64, the config has 32"):
        compile_decoder(qm, Config(wdepth=512, adepth=256, pdepth=256, rdepth=32), 32)
    with pytest.raises(CompileError, match="needs 2 activation banks"):
        compile_decoder(qm, Config(act_banks=1), 32)
    with pytest.raises(CompileError, match=r"positions must be in \[1, 32\]"):
        compile_decoder(qm, config_for(qm, 32), 33)


def test_requests_beyond_the_kv_cache_or_vocabulary_are_refused():
    _, qm = _qmodel()
    prog = compile_decoder(qm, config_for(qm, 16), 16)
    with pytest.raises(CompileError, match="needs 17 positions; the program has a KV cache "
                                           "of 16"):
        prog.generate_stream([1, 2], 16)
    with pytest.raises(CompileError, match="token id 64 is outside"):
        prog.generate_stream([1, 64], 2)
    with pytest.raises(CompileError, match="at least one token"):
        prog.predict(0, 3)


def test_cli_generate_golden_with_ids(tmp_path, capsys):
    m, _ = _qmodel()
    path = tmp_path / "m.bin"
    save_checkpoint(m, path)
    assert main(["generate", "--model", str(path), "--prompt", "1,5", "--steps", "4",
                 "--sim", "golden", "--positions", "16"]) == 0
    out = capsys.readouterr()
    ids = [int(i) for i in out.out.strip().split(",")]
    assert ids[:2] == [1, 5] and len(ids) == 6
    assert "emission cycles == compiler prediction" in out.err


@pytest.mark.parametrize("argv, message", [
    (["--prompt", "1,x"], "must be comma-separated token ids"),
    (["--prompt", "1,999"], "token id 999 is outside the vocabulary"),
    (["--steps", "40", "--positions", "16"], "needs 40 positions; the program has a KV cache of 16"),
    (["--config", "lanes=3"], "lanes must be a power of two"),
    (["--config", "wdepth=64"], "the config has 64"),
    (["--waves", "x.fst"], "--waves needs --sim icarus"),
])
def test_cli_generate_errors(tmp_path, capsys, argv, message):
    m, _ = _qmodel()
    path = tmp_path / "m.bin"
    save_checkpoint(m, path)
    assert main(["generate", "--model", str(path), "--sim", "golden"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_generate_missing_model(capsys):
    assert main(["generate", "--model", "/nonexistent.bin", "--sim", "golden"]) == 2
    assert "nonexistent.bin" in capsys.readouterr().err


@pytest.mark.skipif(not (MODELS / "stories260K.bin").exists(),
                    reason="../shared/models/stories260K.bin is not present")
def test_stories260k_golden_tile_matches_llama2c_from_bos():
    from tinylpu.generate import prepare
    prep = prepare(MODELS / "stories260K.bin", MODELS / "tok512.bin")
    prog = prep.program
    tile = _golden(prog)
    steps = 32
    result = prog.parse(tile.host(prog.generate_stream([1], steps)), steps)
    text = (MODELS / "README.md").read_text().split("256 steps:")[1].split()
    assert result.tokens == [int(t) for t in text[:steps]]
    assert result.tokens == _spec_run(prep.qm, [1], steps)[0]
    assert (result.stamps, result.cycles) == prog.predict(1, steps)
