"""Token generation on the RTL: every beat that leaves the tile equals the golden model's, and
every emission cycle equals the compiler's prediction (Icarus and Verilator, cocotb)."""

import pathlib

import numpy as np
import pytest

from tinylpu import host
from tinylpu.cli import main
from tinylpu.compiler.decoder import compile_decoder, config_for
from tinylpu.golden import GoldenTile
from tinylpu.model.intmodel import quantize
from tinylpu.model import save_checkpoint, synthetic_model
from tinylpu.flow.rtlsim import run_streams

MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"
STORIES = MODELS / "stories260K.bin"


def _synthetic(seq_len, seed=3, kv_bits=16):
    m = synthetic_model(seed=seed, seq_len=seq_len)
    rng = np.random.default_rng(seed)
    qm = quantize(m, [list(rng.integers(0, m.config.vocab_size, seq_len)) for _ in range(2)],
                  kv_bits=kv_bits)
    return compile_decoder(qm, config_for(qm, seq_len), seq_len)


def _stories():
    from tinylpu.generate import prepare
    return prepare(STORIES, MODELS / "tok512.bin").program


def _check(prog, sim, prompt, steps):
    """Run a request on the RTL and the golden model; read back the last logits, the
    residual stream and the token memory. Returns the generated ids."""
    cfg = prog.cfg
    golden = GoldenTile(cfg)
    stream = (prog.load_stream() + prog.generate_stream(prompt, steps)
              + prog.read_stream("logits") + prog.read_stream("x")
              + host.read_cmd(cfg, host.TARGET_TOKENS, 0, len(prompt) + steps))
    expected = golden.host(stream)
    stamps, cycles = prog.predict(len(prompt), steps)
    assert [t for _, t in golden.emitted] == stamps and golden.last_run.cycles == cycles
    assert golden.last_run.status == host.STATUS_DONE
    case = {"name": f"decoder {len(prompt)}+{steps}", "stream": stream, "expected": expected,
            "cycles": cycles, "run_at": golden.last_run_at, "emissions": steps}
    (m,) = run_streams(cfg, sim, [case], name="decoder")
    assert m["response"] == expected            # ids, stamps, status, cycles, read-backs
    assert m["cycles"] == m["ext_cycles"] == cycles
    assert m["beat_cycles"][0:2 * steps:2] == stamps   # each id left in its stamped cycle
    return [t for t, _ in golden.emitted]


# (Icarus: 16 s for 3 positions, most of them the 7,806-beat load; ``make bench`` runs
# stories260K on it)
@pytest.mark.parametrize("sim,seq_len,prompt,steps,kv_bits", [
    ("icarus", 32, [1, 7], 2, 16),         # prompt, generation
    ("verilator", 32, [1], 32, 16),        # positions 0..31: the whole KV cache
    ("verilator", 32, [1, 5], 12, (16, 8)),    # an 8-bit V cache (docs/numerics.md)
])
def test_synthetic_decoder_rtl_equals_golden(sim, seq_len, prompt, steps, kv_bits):
    from test_tile import DECODER_CFGS
    prog = _synthetic(seq_len, kv_bits=kv_bits)
    assert prog.cfg == DECODER_CFGS[0], "update DECODER_CFGS: its build serves this test"
    tokens = _check(prog, sim, prompt, steps)
    assert len(tokens) == steps


@pytest.mark.skipif(not STORIES.exists(), reason="../shared/models/stories260K.bin is not present")
def test_stories260k_rtl_equals_golden_and_llama2c():
    steps = 32
    tokens = _check(_stories(), "verilator", [1], steps)
    reference = (MODELS / "README.md").read_text().split("256 steps:")[1].split()
    assert tokens == [int(t) for t in reference[:steps]]


@pytest.mark.slow     # a minute and a half; tb/test_waves.py writes Icarus waves in the default suite
def test_cli_generate_icarus_writes_waves(tmp_path, capsys):
    path = tmp_path / "m.bin"
    save_checkpoint(synthetic_model(seed=2, seq_len=32), path)   # the config above
    waves = tmp_path / "gen.fst"
    assert main(["generate", "--model", str(path), "--prompt", "1", "--steps", "2",
                 "--sim", "icarus", "--waves", str(waves)]) == 0
    out = capsys.readouterr()
    assert len(out.out.strip().split(",")) == 3
    assert "emission cycles == compiler prediction" in out.err
    assert waves.stat().st_size > 1000 and waves.read_bytes()[:1] != b""
