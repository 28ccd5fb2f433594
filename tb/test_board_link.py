"""The board path without a board: the whole board top (UART bridge and tile, PLL bypassed) on
Verilator behind a pseudo-terminal (tb/board_pty.cpp, tinylpu/flow/boardsim.py), driven by the
host code that drives a real board's serial port. Ids, emission cycles, status, cycle count
and busy counters equal the golden model's; a line that corrupts, drops and injects bytes in
both directions costs retries, never a wrong or lost beat."""

import dataclasses
import pathlib
import re

import pytest

from tinylpu.flow.boardsim import board_sim, finish_board, start_board
from tinylpu.cli import main
from tinylpu.generate import generate, prepare
from tinylpu.link import ESC, FLAG, FrameType, Nak, run_link
from tinylpu.model import save_checkpoint, synthetic_model

PROMPT, STEPS = [1, 5, 9], 10


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("board") / "synthetic.bin"
    # one layer, GQA (2 heads on 1 KV head): its load is 2,600 beats over the simulated UART
    # (7,900 for the two-layer default), which sets these tests' time
    save_checkpoint(synthetic_model(seed=1, dim=16, hidden_dim=32, n_layers=1, n_heads=2,
                                    n_kv_heads=1, vocab_size=32, seq_len=16), path)
    return path


@pytest.fixture(scope="module")
def prep(model):
    return prepare(model)


@pytest.fixture(scope="module")
def golden(prep):
    return generate(prep, PROMPT, STEPS, "golden", counters=True)


def _text(cfg):
    """``--config`` text of ``cfg``."""
    return ",".join(f"{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(cfg))


def _same_run(run, golden):
    assert run.tokens == golden.tokens and len(run.tokens) == STEPS
    assert run.stamps == golden.stamps
    assert (run.status, run.cycles) == (golden.status, golden.cycles)


def test_generate_through_the_simulated_board_equals_golden(prep, golden):
    """`generate(..., board=)`: load, prompt, GENERATE and a READ of the busy counters, all
    through frames on the simulated UART pins."""
    stamps, cycles = prep.program.predict(len(PROMPT), STEPS)
    run = generate(prep, PROMPT, STEPS, "verilator", counters=True, board="ulx3s-85f")
    _same_run(run, golden)
    assert run.stamps == stamps and run.cycles == cycles
    assert run.counters == golden.counters
    st = run.link
    # a clean line: nothing sent twice, no NAK, every byte framed right
    assert (st["retransmits"], st["naks"], st["bad_frames"], st["FRAMING_ERRORS"]) == (0, {}, 0, 0)
    assert st["BYTES_IN"] > 4 * len(prep.program.load_stream())    # the load went over the pins
    assert st["CYCLES"] >= 10 * 10 * st["BYTES_IN"]                # 10 bits of 10 cycles each


class FaultyLine:
    """A port wrapper that damages the line: drops whole frames the host writes, flips a bit
    of some, cuts bytes out of others, puts garbage before another, and flips a bit of the
    first OUT frame the bridge sends. ``plan``: write index -> action."""

    def __init__(self, port, plan):
        self.port, self.plan, self.writes = port, plan, 0
        self.out_damaged, self.prev = False, None   # False, bytes seen, or True
        self.done = []

    @property
    def in_waiting(self):
        return self.port.in_waiting

    def write(self, frame):
        action, self.writes = self.plan.get(self.writes), self.writes + 1
        if action == "drop":
            self.done.append(action)
            return len(frame)
        frame = bytearray(frame)
        if action == "flip":
            i = len(frame) // 2
            frame[i] ^= 0x01 if frame[i] ^ 0x01 not in (FLAG, ESC) else 0x02
        elif action == "cut":
            del frame[len(frame) // 3:len(frame) // 3 + 7]
        elif action == "garbage":
            frame[:0] = b"\x00\x55\xaa\x7d\xff"
        if action:
            self.done.append(action)
        return self.port.write(bytes(frame))

    def read(self, n):
        data = bytearray(self.port.read(n))
        for i, byte in enumerate(data):
            # the type byte of an OUT frame follows its opening flag; damage the 6th byte
            # after it (in the payload: reads come in chunks of any size)
            if self.out_damaged is False and self.prev == FLAG and byte == FrameType.OUT:
                self.out_damaged = 0
            elif self.out_damaged is not True and self.out_damaged is not False:
                self.out_damaged += 1
                if self.out_damaged >= 6 and byte not in (FLAG, ESC) \
                        and byte ^ 0x10 not in (FLAG, ESC):
                    data[i] ^= 0x10
                    self.out_damaged = True
                    self.done.append("out-flip")
            self.prev = byte
        return bytes(data)


def test_a_damaged_line_costs_retries_not_beats(prep, golden):
    plan = {0: "drop",         # the first RESET is lost: the host times out and sends it again
            3: "flip",         # a DATA frame with a bad CRC: NAK(CRC), sent again
            5: "cut",          # a DATA frame missing 7 bytes: NAK(LENGTH or CRC), sent again
            7: "garbage"}      # garbage before a frame: the bridge resynchronizes at the flag
    with board_sim(prep.program.cfg) as sim:
        line = FaultyLine(sim.link.port, plan)
        sim.link.port = line
        prog = prep.program
        response, _ = run_link(sim.link, prog.load_stream(), prog.generate_stream(PROMPT, STEPS),
                               n_emit=STEPS)
    _same_run(prog.parse(response, STEPS), golden)
    assert sorted(line.done) == sorted(["drop", "flip", "cut", "garbage", "out-flip"])
    st = sim.link.stats
    naks = st["naks"]
    assert naks.get(Nak.CRC, 0) + naks.get(Nak.LENGTH, 0) >= 2, naks
    assert st["retransmits"] >= 3          # the RESET, the flipped and the cut frame
    assert st["timeouts"] >= 2             # the lost RESET; the damaged OUT frame's wait
    assert sim.link.bad_frames == 1        # the damaged OUT frame, asked for again
    assert sim.stats["FRAMING_ERRORS"] == 0


def test_cli_device_drives_a_board_over_its_serial_port(model, prep, golden, capsys):
    """`tinylpu generate --device PORT`: the very command for a board, here on the pty of a
    simulated board (``--baud 2400``: the pace of the simulated line in wall-clock time sets
    the link's timeouts)."""
    cfg = prep.program.cfg
    proc, pty, _ = start_board(cfg)
    try:
        code = main(["generate", "--model", str(model), "--device", pty, "--baud", "2400",
                     "--steps", str(STEPS), "--prompt", ",".join(map(str, PROMPT)),
                     "--config", _text(cfg)])
    finally:
        proc.terminate()
        finish_board(proc)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == ",".join(map(str, PROMPT + golden.tokens))
    assert f"device {pty} at 2400 baud" in err
    assert "emission cycles == compiler prediction" in err
    assert re.search(r"# serial link: \d+ frames sent", err)


def test_cli_device_refuses_a_tile_built_for_another_configuration(model, prep, capsys):
    """The program's configuration must be the bitstream's: the host reads the tile's
    read-only ``Ctrl.CONFIG`` first and stops with a one-line error, loading nothing."""
    cfg = prep.program.cfg
    other = dataclasses.replace(cfg, wdepth=2 * cfg.wdepth)
    proc, pty, _ = start_board(cfg)
    try:
        code = main(["generate", "--model", str(model), "--device", pty, "--baud", "2400",
                     "--steps", "2", "--config", _text(other)])
    finally:
        proc.terminate()
        stats = finish_board(proc)
    out, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines()[-1].startswith("tinylpu generate: error: the tile on the link was "
                                           "built for another configuration")
    assert f"not {other.ident} " in err and "give --config the CONFIG of its `make fpga`" in err
    assert stats["BYTES_IN"] < 100          # a RESET and a READ: nothing was loaded


MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"
STORIES = MODELS / "stories260K.bin"


@pytest.mark.slow
@pytest.mark.skipif(not STORIES.exists(), reason=f"stories260K checkpoint not found at {STORIES}")
def test_stories260k_through_the_simulated_board():
    """stories260K compiled (PV passes, the default) for the 137-position KV cache that fits
    one LFE5U-85F (`tinylpu fit`), 64 tokens from BOS through the board top's UART pins at
    the board's divisor: ids, emission cycles, status and cycles equal the golden model's and
    the compiler's."""
    import time
    prep = prepare(STORIES, MODELS / "tok512.bin", positions=137)
    steps = 64
    golden = generate(prep, [1], steps, "golden")
    t0 = time.perf_counter()
    run = generate(prep, [1], steps, "verilator", board="ulx3s-85f")
    wall = time.perf_counter() - t0
    stamps, cycles = prep.program.predict(1, steps)
    assert run.tokens == golden.tokens and run.stamps == golden.stamps == stamps
    assert (run.status, run.cycles) == (golden.status, cycles)
    st = run.link
    assert (st["retransmits"], st["naks"], st["bad_frames"], st["FRAMING_ERRORS"]) == (0, {}, 0, 0)
    print(f"stories260K on the simulated board ({prep.program.cfg.ident}): {steps} tokens, "
          f"{run.cycles:,} tile cycles; {st['BYTES_IN']:,} bytes in, {st['BYTES_OUT']:,} out, "
          f"{st['CYCLES']:,} simulated cycles, {wall:.0f} s wall")
