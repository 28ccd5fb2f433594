"""Every subcommand over a table of bad inputs: a one-line error naming the problem on
stderr, exit status 2, no traceback, nothing on stdout; and degenerate models (an all-zero
checkpoint, one huge weight) give a documented result or a clear error."""

import array
import pathlib
import shlex
import subprocess

import numpy as np
import pytest

from tinylpu.cli import main
from tinylpu.model import Tokenizer, save_checkpoint, save_tokenizer, synthetic_model

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small synthetic checkpoint, its tokenizer, and broken or degenerate variants."""
    d = tmp_path_factory.mktemp("cli")
    m = synthetic_model(seq_len=16)
    good = d / "m.bin"
    save_checkpoint(m, good)
    raw = good.read_bytes()
    header, body = raw[:28], array.array("f", raw[28:])
    paths = {"good": good}

    def variant(name, data):
        paths[name] = d / f"{name}.bin"
        paths[name].write_bytes(data)

    variant("truncated", raw[:len(raw) // 2])
    variant("zero", header + bytes(len(raw) - 28))
    huge = array.array("f", body)
    huge[5] = 1e30                                     # tok_emb row 0
    variant("huge", header + huge.tobytes())
    nan = array.array("f", body)
    nan[7] = float("nan")
    variant("nan", header + nan.tobytes())
    variant("badheader", (-4).to_bytes(4, "little", signed=True) + raw[4:])
    pieces = [b"<unk>", b"<s>", b"</s>"] + [bytes([65 + i % 26]) * (1 + i // 26)
                                            for i in range(m.config.vocab_size - 3)]
    paths["tok"] = d / "tok.bin"
    save_tokenizer(Tokenizer(pieces, [0.0] * len(pieces)), paths["tok"])
    paths["tok_small"] = d / "tok_small.bin"
    save_tokenizer(Tokenizer(pieces[:-5], [0.0] * (len(pieces) - 5)), paths["tok_small"])
    paths["baddat"] = d / "baddat"                     # a coverage file that is not one
    paths["baddat"].mkdir()
    (paths["baddat"] / "run.dat").write_text("# SystemC::Coverage-3\nC 'no fields' 1\n")
    paths["empty"] = d / "empty"
    paths["empty"].mkdir()
    return paths


# (argv with {name} placeholders for the files, a phrase the one-line error must contain)
CASES = [
    (["verilog", "--config", "lanes=3"], "lanes must be a power of two"),
    (["verilog", "--config", "lanes=1"], "lanes must be in [2, 64]"),
    (["lint", "--config", "lanes=8,lanes=16"], "config item lanes is given twice"),
    (["lint", "--config", "bogus=1"], "bad config item 'bogus=1'"),
    (["synth", "--config", "rows=abc"], "rows must be an integer"),
    (["synth", "--target", "xilinx"], "invalid choice: 'xilinx'"),
    (["pnr", "--freq", "0"], "target frequency must be a positive number"),
    (["pnr", "--timeout-min", "-1"], "timeout must be a positive number"),
    (["fpga", "--board", "arty"], "unknown board 'arty': one of ulx3s-85f, ecpix5-85f"),
    (["fpga", "--tile-mhz", "48"], "the ECP5 PLL cannot make 48 MHz from 25 MHz"),
    (["fpga", "--tile-mhz", "25"], "baud 3000000 at clock 25000000 Hz: divisor 8 is off"),
    (["fpga", "--tile-mhz", "0"], "tile clock must be a positive number of MHz, not 0"),
    (["fpga", "--tile-mhz", "1000"], "the ECP5 PLL's output must be 10 .. 400 MHz"),
    (["fpga", "--baud", "0"], "must be a positive integer, not 0"),
    (["fpga", "--timeout-min", "-1"], "timeout must be a positive number of minutes"),
    (["fpga", "--config", "lanes=3"], "lanes must be a power of two"),
    (["sim", "--shape", "0x64"], "shape"),
    (["sim", "--sim", "modelsim"], "invalid choice: 'modelsim'"),
    (["waves", "--config", "adepth=3"], "adepth must be a power of two"),
    (["bench", "--config", "lanes=8"], "unrecognized arguments: --config"),
    (["bench", "--positions", "0"], "must be a positive integer, not 0"),
    (["bench", "--sims", "modelsim"], "simulators must be icarus and/or verilator"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--positions", "0"],
     "must be a positive integer, not 0"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--positions", "-5"],
     "must be a positive integer, not -5"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--positions", "100000"],
     "--positions 100000 is more than the model's seq_len (16)"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--positions", "3",
      "--prompt", "ABCABC"], "leaves no position to evaluate"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok_small}"],
     "the file holds 59 tokens, the model's vocab_size is 64"),
    (["quality", "--model", "{truncated}", "--tokenizer", "{tok}"], "truncated"),
    (["quality", "--model", "/nonexistent.bin", "--tokenizer", "{tok}"], "nonexistent.bin"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--kv-bits", "4"],
     "argument --kv-bits: must be one of 16, 8, 16,8 (K and V, or K,V), not '4'"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--q-bits", "4"],
     "argument --q-bits: invalid choice: 4 (choose from 8, 16)"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--kv-bits", "8,16"],
     "argument --kv-bits: must be one of 16, 8, 16,8 (K and V, or K,V), not '8,16'"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--kv-bits", "8", "--kv-shift",
      "layer"], "argument --kv-shift: invalid choice: 'layer'"),
    (["quality", "--model", "{good}", "--tokenizer", "{tok}", "--kv-bits", "16",
      "--kv-shift", "head-max"], "--kv-shift needs --kv-bits 8"),
    (["generate", "--model", "{good}", "--sim", "golden", "--steps", "0"],
     "must be a positive integer, not 0"),
    (["generate", "--model", "{good}", "--sim", "golden", "--positions", "0"],
     "must be a positive integer, not 0"),
    (["generate", "--model", "{good}", "--sim", "golden", "--positions", "99"],
     "--positions 99 is more than the model's seq_len (16)"),
    (["generate", "--model", "{good}", "--sim", "golden", "--steps", "40"],
     "needs 40 positions; the program has a KV cache of 16"),
    (["generate", "--model", "{good}", "--sim", "golden", "--prompt", "1,64"],
     "token id 64 is outside the vocabulary"),
    (["generate", "--model", "{good}", "--sim", "golden", "--prompt", "he said"],
     "must be comma-separated token ids"),
    (["generate", "--model", "{good}", "--tokenizer", "{tok_small}", "--sim", "golden"],
     "tokenizer and model do not match"),
    (["generate", "--model", "{good}", "--sim", "golden", "--config", "lanes=3"],
     "lanes must be a power of two"),
    (["generate", "--model", "{good}", "--sim", "verilator", "--waves", "x.fst"],
     "--waves needs --sim icarus"),
    (["generate", "--model", "{good}", "--device", "/dev/tinylpu-none", "--steps", "2"],
     "cannot open /dev/tinylpu-none"),
    (["generate", "--model", "{good}", "--device", "/dev/ttyUSB0", "--sim", "golden"],
     "--device runs on the board at /dev/ttyUSB0: leave out --sim"),
    (["generate", "--model", "{good}", "--device", "/dev/ttyUSB0", "--board", "ulx3s-85f"],
     "leave out --board"),
    (["generate", "--model", "{good}", "--board", "ulx3s-85f", "--sim", "golden"],
     "--board simulates the board top (UART bridge and tile) on Verilator: use --sim "
     "verilator, not --sim golden"),
    (["generate", "--model", "{good}", "--board", "ulx3s-12f"], "invalid choice: 'ulx3s-12f'"),
    (["generate", "--model", "{good}", "--device", "/dev/ttyUSB0", "--baud", "0"],
     "must be a positive integer, not 0"),
    (["generate", "--model", "{truncated}", "--sim", "golden"], "truncated by"),
    (["generate", "--model", "{badheader}", "--sim", "golden"], "dim"),
    (["generate", "--model", "{nan}", "--sim", "golden"], "non-finite value"),
    (["generate", "--model", "{huge}", "--sim", "golden", "--steps", "4"],
     "tok_emb: requantization factor"),
    (["profile", "--model", "{good}", "--positions", "99"], "position 99 is outside"),
    (["profile", "--model", "{good}", "--positions", "a,b"], "positions"),
    (["coverage", "--dat", "{empty}", "-o", "{empty}"], "no coverage files (*.dat) in"),
    (["coverage", "--dat", "{baddat}", "-o", "{baddat}"],
     "run.dat:2: not a Verilator coverage point"),
    (["coverage", "--top", "0"], "must be a positive integer, not 0"),
    (["fit", "--device", "XC7A35T"], "unknown device 'XC7A35T'"),
    (["fit", "--config", "lanes=3"], "lanes must be a power of two"),
    (["fit", "--positions", "8"], "--positions needs --model"),
    (["fit", "--kv-bits", "8"], "--kv-bits needs --model"),
    (["fit", "--attention", "pv"], "--attention needs --model"),
    (["fit", "--model", "{good}", "--kv-bits", "8"], "--kv-bits 8 needs --attention pv"),
    (["fit", "--model", "{good}", "--config", "wtail=3"], "wtail must be 0 or a power of two"),
    (["fit", "--model", "{good}", "--kv-bits", "12"],
     "argument --kv-bits: invalid choice: 12 (choose from 8, 16)"),
    (["fit", "--model", "{good}", "--positions", "0"], "must be a positive integer, not 0"),
    (["fit", "--model", "{good}", "--positions", "99"],
     "--positions must be in [1, 16] (the model's seq_len), not 99"),
    (["fit", "--model", "{good}", "--device", "LFE5U-12F"],
     "the model does not fit LFE5U-12F at any context: even 1 position needs 33 block RAMs"),
    (["fit", "--model", "{good}", "--config", "rows=3"], "rows must be a power of two"),
    (["fit", "--model", "{truncated}"], "truncated by"),
    (["fit", "--model", "/nonexistent.bin"], "nonexistent.bin"),
    ([], "the following arguments are required: command"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_with_status_2(files, capsys, argv, message):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    try:
        status = main(argv)
    except SystemExit as exit_:          # argparse: after printing its one line
        status = exit_.code
    out = capsys.readouterr()
    assert status == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("tinylpu") and ": error: " in lines[0]
    assert message in lines[0]
    assert "Traceback" not in out.err and out.out == ""


def test_all_zero_checkpoint_generates_token_zero(files, capsys):
    """Documented result: every logit is 0, so the argmax (lowest index on ties) is id 0,
    and the run is cycle-exact as any other."""
    assert main(["generate", "--model", str(files["zero"]), "--sim", "golden",
                 "--prompt", "1", "--steps", "3"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "1,0,0,0"
    assert "emission cycles == compiler prediction" in out.err


def test_quality_with_an_8bit_kv_cache(files, capsys, monkeypatch):
    """--kv-bits 8 names its shifts and halves the KV cache's footprint (calibration prompts
    that the synthetic tokenizer, A..Z only, can encode)."""
    from tinylpu.model import quality
    monkeypatch.setattr(quality, "CALIBRATION_PROMPTS", ["ABC", "CAB"])
    argv = ["quality", "--model", str(files["good"]), "--tokenizer", str(files["tok"]),
            "--positions", "16", "--prompt", "AB"]
    assert main(argv + ["--kv-bits", "8", "--kv-shift", "head-mse"]) == 0
    out = capsys.readouterr().out
    assert "8-bit K and 8-bit V cache (the integer model only; the tile's K is int16), " \
        "shifts by head-mse" in out
    assert "KV cache, 16 positions (int8) 1.0 KiB" in out
    assert main(argv + ["--kv-bits", "16,8"]) == 0
    out = capsys.readouterr().out
    assert "16-bit K and 8-bit V cache (the default program's, PV passes)" in out
    assert "shifts by layer-max" in out
    assert "KV cache, 16 positions (K int16, V int8) 1.5 KiB" in out
    assert main(argv + ["--q-bits", "16", "--kv-bits", "16"]) == 0
    out = capsys.readouterr().out
    assert "KV cache" in out and "8-bit" not in out and "(int16) 2.0 KiB" in out
    assert main(argv + ["--kv-bits", "16"]) == 0     # PV's numerics: 8-bit q, int16 K and V
    out = capsys.readouterr().out
    assert "8-bit q (the tile's), RoPE's extra shifts (layer x head): [[" in out
    assert "8-bit K" not in out and "8-bit V" not in out and "(int16) 2.0 KiB" in out
    assert main(argv) == 0          # the default program's: 8-bit q, int16 K, 8-bit V
    out = capsys.readouterr().out
    assert "16-bit K and 8-bit V cache (the default program's, PV passes)" in out
    assert "8-bit q (the tile's)" in out and "(K int16, V int8) 1.5 KiB" in out


def test_make_sim_passes_the_prompt_exactly():
    """`make sim PROMPT=...` hands the prompt to the CLI as typed: quotes, $(...) and
    backquotes are neither expanded by make nor by the shell."""
    prompt = """he said "hi" $(whoami) `id` and Tom's $$HOME"""
    proc = subprocess.run(["make", "-n", "sim", f"PROMPT={prompt}"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    line = next(l for l in proc.stdout.splitlines() if " generate " in l)
    words = shlex.split(line)
    assert words[words.index("--prompt") + 1] == prompt
    assert np.all([w != "" for w in words])
