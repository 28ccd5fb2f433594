"""tinylpu.compiler.profile: the per-unit schedule of a decode step agrees with the cycle model and
with the golden model's output-unit and scalar-unit cycles and busy counters; chart, tables
and CLI."""

import pathlib
import re

import numpy as np
import pytest

from tinylpu import golden, host, isa
from tinylpu.cli import main
from tinylpu.compiler.decoder import compile_decoder, config_for
from tinylpu.model.intmodel import quantize
from tinylpu.model import save_checkpoint, synthetic_model
from tinylpu.compiler.profile import (COUNTED, DRAIN, EPI, MAC, NEXT, NORM, SCALAR, UNITS, VU, WAIT,
                             ProfileError, _merge, run_profile, schedule)

MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"
SEQ = 32


def _model():
    m = synthetic_model(seed=1, seq_len=SEQ)
    rng = np.random.default_rng(1)
    calib = [list(rng.integers(0, m.config.vocab_size, SEQ)) for _ in range(2)]
    return m, quantize(m, calib)


@pytest.fixture(scope="module")
def prog():
    _, qm = _model()
    return compile_decoder(qm, config_for(qm, SEQ), SEQ)


@pytest.mark.parametrize("pos", [0, SEQ - 1])
def test_schedule_agrees_with_the_cycle_model(prog, pos):
    p = schedule(prog, pos)
    assert p.cycles == prog.step_cycles(pos)
    assert [s.issue for s in p.slots] == list(np.cumsum([0] + [s.duration for s in p.slots])[:-1])
    assert p.slots[-1].kind == "NEXT"

    def slot_cycles(*kinds):
        return sum(s.duration for s in p.slots if s.kind.split()[0] in kinds)

    assert p.busy_cycles(MAC) == slot_cycles("MATVEC", "QK", "PV")
    assert p.busy_cycles(VU) == slot_cycles("VOP")
    assert p.busy_cycles(WAIT) == slot_cycles("WAIT", "LOOP")
    assert p.busy_cycles(NEXT) == isa.NEXT_CYCLES
    # the issue slot is fully accounted for: MAC array, vector unit, WAIT, NEXT
    assert sum(p.busy_cycles(u) for u in (MAC, VU, WAIT, NEXT)) == p.cycles
    assert all(0 <= p.share(u) <= 1 for u in UNITS)
    assert all(p.busy_cycles(u) > 0 for u in (EPI, DRAIN, NORM))
    assert p.busy_cycles(SCALAR) == 0             # the decoder's norms use the norm unit
    mc = prog.qm.config
    assert p.macs == prog.macs_useful + mc.n_heads * mc.head_size * 2 * (pos + 1) * mc.n_layers
    assert p.utilization == p.macs / (p.cycles * prog.cfg.macs)


def test_output_and_scalar_units_match_the_golden_model(prog, monkeypatch):
    """Every result entering the output unit, every scalar-unit and norm-unit operation, at
    the cycles the golden model (the executable semantics) has them."""
    def spy(name):
        calls, method = [], getattr(golden._RunState, name)

        def recorded(st, *args):
            calls.append(args)
            return method(st, *args)
        monkeypatch.setattr(golden._RunState, name, recorded)
        return calls

    entered, scalar, norm = spy("result"), spy("scalar"), spy("push_norm")
    tile = golden.GoldenTile(prog.cfg)
    tile.host(prog.load_stream())
    steps = SEQ - 1
    prog.parse(tile.host(prog.generate_stream([1], steps)), steps)
    start = 1                                     # position 0's first issue
    for pos in range(steps):
        p = schedule(prog, pos)
        if pos in (0, 1, steps - 1):
            window = [c - start for c, *_ in entered if start <= c < start + p.cycles]
            assert p.busy[EPI] == _merge((c, c + isa.LAT_OUT + 1) for c in window)
            assert p.busy[SCALAR] == _merge((a - start, b - start) for a, b in scalar
                                            if start <= a < start + p.cycles)
            lands = [c - start for c, _ in norm if start <= c - isa.NORM_LAT < start + p.cycles]
            assert len(lands) == 2 * prog.qm.config.n_layers + 1      # + the NORM VOP
            assert p.busy[NORM] == _merge((c - isa.NORM_LAT, c) for c in lands)
        start += p.cycles


def test_profile_predicts_the_busy_counters(prog):
    """Every decode step of a GENERATE: the golden model's busy counters at the end of the
    step's NEXT minus those at the end of the previous NEXT (for position 0: the first issue
    cycle) equal the profile's busy cycles of that step; after the last NEXT only HALT's
    cycle is left."""
    tile = golden.GoldenTile(prog.cfg)
    tile.host(prog.load_stream())
    steps = SEQ - 1
    tile.host(prog.generate_stream([1], steps))
    run = tile.last_run
    assert len(run.next_counters) == steps
    prev = dict.fromkeys(host.COUNTERS, 0) | {"cycles": 1}
    for pos, at_next in enumerate(run.next_counters):
        step = {name: at_next[name] - prev[name] for name in host.COUNTERS}
        predicted = schedule(prog, pos).counters()
        assert step == predicted, pos
        assert all(predicted.values())
        prev = at_next
    assert run.counters == prev | {"cycles": prev["cycles"] + 1}
    assert set(COUNTED) == set(UNITS) - {NORM, SCALAR}
    assert sorted(COUNTED.values()) == [c for c in host.Counter if c != host.Counter.CYCLES]


def test_positions_outside_the_compiled_range(prog):
    with pytest.raises(ProfileError, match=rf"position {SEQ} is outside the compiled range "
                                           rf"0..{SEQ - 1}"):
        schedule(prog, SEQ)
    with pytest.raises(ProfileError, match="outside"):
        schedule(prog, -1)


def test_run_profile_writes_chart_and_tables(prog, tmp_path):
    lines = []
    profiles = run_profile(prog, None, tmp_path, out=lines.append)
    assert [p.pos for p in profiles] == [0, SEQ - 1]
    png = (tmp_path / "profile.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    text = "\n".join(lines)
    assert (tmp_path / "profile.md").read_text().strip() in text
    for unit in UNITS:
        assert f"| {unit} |" in text


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "m.bin"
    save_checkpoint(_model()[0], path)
    return path


def test_cli_profile(checkpoint, tmp_path, capsys):
    assert main(["profile", "--model", str(checkpoint), "--positions", "3",
                 "--out", str(tmp_path / "p")]) == 0
    assert "Position 3:" in capsys.readouterr().out
    assert (tmp_path / "p" / "profile.png").exists()


def test_cli_generate_prints_the_busy_counters(checkpoint, capsys):
    """``tinylpu generate --counters``: the table of the run's busy counters, whose values
    are the profile's predictions summed over the decode steps (plus HALT's cycle)."""
    from tinylpu.generate import generate, prepare

    prompt, steps = [1, 5], 3
    prep = prepare(checkpoint, positions=16)
    run = generate(prep, prompt, steps, "golden", counters=True)
    assert generate(prep, prompt, steps, "golden").counters is None
    want = {name: sum(schedule(prep.program, pos).counters()[name]
                      for pos in range(len(prompt) + steps - 1)) for name in host.COUNTERS}
    assert run.counters == want | {"cycles": run.cycles} and want["cycles"] + 2 == run.cycles
    assert main(["generate", "--model", str(checkpoint), "--prompt", "1,5", "--steps", "3",
                 "--sim", "golden", "--positions", "16", "--counters"]) == 0
    err = capsys.readouterr().err
    assert f"| mac: MAC array (MATVEC, QK, PV issue slots) | {want['mac']:,} |" in err
    assert f"| cycles: run cycles | {run.cycles:,} | 100.0% |" in err


@pytest.mark.parametrize("positions, message", [
    ("0,99", f"position 99 is outside the compiled range 0..{SEQ - 1}"),
    ("x", "--positions must be comma-separated positions like 0,255"),
    ("", "--positions must be comma-separated positions"),
])
def test_cli_profile_errors(checkpoint, tmp_path, capsys, positions, message):
    assert main(["profile", "--model", str(checkpoint), "--positions", positions,
                 "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()


def test_cli_profile_missing_model(capsys):
    assert main(["profile", "--model", "/nonexistent.bin"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nonexistent.bin" in err


@pytest.mark.skipif(not (MODELS / "stories260K.bin").exists(),
                    reason="../shared/models/stories260K.bin is not present")
def test_stories260k_profile(tmp_path, capsys):
    assert main(["profile", "--model", str(MODELS / "stories260K.bin"), "--tokenizer",
                 str(MODELS / "tok512.bin"), "--positions", "0,255", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    found = re.findall(r"Position (\d+): ([\d,]+) cycles; MAC-array utilization ([\d.]+)%", out)
    assert [int(p) for p, _, _ in found] == [0, 255]
    for pos, cycles, util in found:
        cycles = int(cycles.replace(",", ""))
        assert util == f"{100 * (259328 + 640 * (int(pos) + 1)) / (cycles * 64):.1f}"
    assert (tmp_path / "profile.png").exists()
