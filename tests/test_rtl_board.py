"""The board top (rtl/board.py): the ECP5 PLL's dividers, the Verilog lint of the whole top
(with a stand-in for the PLL primitive), and, in Amaranth's simulator with the PLL bypassed,
a GEMV through the UART pins from tinylpu.link frames with the LEDs watched every cycle."""

import zlib

import numpy as np
import pytest
from serial_sim import PERIOD, SimSerial

from tinylpu import host
from tinylpu.compiler import compile_gemv
from tinylpu.config import Config
from tinylpu.golden import GoldenTile
from tinylpu.link import Link
from tinylpu.rtl.board import (BoardTop, PLL_LIMITS, PLL_STUB, generate_verilog, pll_params)
from tinylpu.flow.rtlsim import lint

# the small tile that places and routes on the ECP5-85F (docs/fpga.md, "Board build")
TINY = Config.parse("lanes=4,rows=2,wdepth=64,adepth=16,pdepth=16,tdepth=16,mdepth=16,"
                    "rdepth=16")


@pytest.mark.parametrize("clk, out, dividers", [
    (25e6, 30e6, (5, 6, 20)),        # ULX3S: ecppll -i 25 -o 30 gives the same
    (25e6, 50e6, (1, 2, 12)),
    (25e6, 75e6, (1, 3, 8)),
    (25e6, 37.5e6, (2, 3, 16)),
    (100e6, 30e6, (10, 3, 20)),      # ECPIX-5
    (25e6, 10e6, (5, 2, 60)),
])
def test_pll_dividers(clk, out, dividers):
    p = pll_params(clk, out)
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == dividers
    assert p.out_hz == out == p.clk_hz * p.clkfb_div / p.clki_div
    assert PLL_LIMITS["pfd"][0] <= p.pfd_hz <= PLL_LIMITS["pfd"][1]
    assert PLL_LIMITS["vco"][0] <= p.vco_hz <= PLL_LIMITS["vco"][1]


@pytest.mark.parametrize("clk, out, message", [
    (25e6, 48e6, "cannot make 48 MHz from 25 MHz .* the nearest are 46.875 MHz and 50 MHz"),
    (25e6, 36e6, "cannot make 36 MHz from 25 MHz .* the nearest are 35.7143 MHz and 37.5 MHz"),
    (25e6, 5e6, "the ECP5 PLL's output must be 10 .. 400 MHz, not 5 MHz"),
    (25e6, 500e6, "the ECP5 PLL's output must be 10 .. 400 MHz, not 500 MHz"),
    (4e6, 30e6, "the ECP5 PLL's input must be 8 .. 400 MHz, not 4 MHz"),
    (25e6, 30.5e6 + 0.25, "output frequency must be a whole number of Hz"),
])
def test_impossible_pll_frequencies_are_refused(clk, out, message):
    with pytest.raises(ValueError, match=message):
        pll_params(clk, out)


def test_board_refuses_a_clock_the_uart_cannot_use():
    with pytest.raises(ValueError, match="baud 3000000 at clock 25000000 Hz: divisor 8 is off "
                                         "by 4.2%"):
        BoardTop(TINY, clk_hz=25_000_000, tile_hz=25_000_000)
    with pytest.raises(ValueError, match="without the PLL the tile runs at the oscillator's "
                                         "25 MHz, not 30 MHz"):
        BoardTop(TINY, use_pll=False)


def test_board_verilog_is_lint_clean(tmp_path):
    path = tmp_path / "tinylpu_board.v"
    text = generate_verilog(TINY, path)
    assert "EHXPLLL #(" in text and ".CLKI_DIV(32'd5)" in text and ".CLKFB_DIV(32'd6)" in text
    stub = tmp_path / "ecp5_stub.v"
    stub.write_text(PLL_STUB)
    assert lint(path, top="tinylpu_board", extra=[stub]) == []
    # without the stand-in, the PLL is a missing module: the lint does look at it
    assert any("EHXPLLL" in line for line in lint(path, top="tinylpu_board"))


DIVISOR = 4
BYTE_TIME = 10 * DIVISOR * PERIOD
HEARTBEAT = 50          # cycles per heartbeat half-period in the simulation


class Leds:
    """Every cycle's LEDs of the board top, as runs of equal values."""

    def __init__(self, dut, sim):
        self.dut, self.cycle, self.runs = dut, 0, []
        self.names = ("led_running", "led_done", "led_error", "led_heartbeat")
        sim.add_testbench(self._watch, background=True)

    async def _watch(self, ctx):
        while True:
            now = tuple(ctx.get(getattr(self.dut, n)) for n in self.names)
            if not self.runs or self.runs[-1][1] != now:
                self.runs.append((self.cycle, now))
            await ctx.tick()
            self.cycle += 1

    def now(self):
        return dict(zip(self.names, self.runs[-1][1]))

    def since(self, cycle, name):
        """The lengths of the stretches with ``name`` lit since ``cycle``."""
        i = self.names.index(name)
        ends = [c for c, _ in self.runs[1:]] + [self.cycle]
        lit = [(max(start, cycle), end) for (start, v), end in zip(self.runs, ends)
               if v[i] and end > cycle]
        merged = []
        for start, end in lit:
            if merged and merged[-1][1] == start:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return [end - start for start, end in merged]


def test_a_gemv_through_the_board_pins_and_its_leds():
    seed = zlib.crc32(b"board")
    rng = np.random.default_rng(seed)
    W, x = rng.integers(-128, 128, (5, 7)), rng.integers(-128, 128, 7)
    g = compile_gemv(W, x, TINY)
    stream = g.host_stream()
    expected = GoldenTile(TINY).host(stream)
    hz = 4_000_000
    dut = BoardTop(TINY, clk_hz=hz, tile_hz=hz, baud=hz // DIVISOR, use_pll=False,
                   heartbeat_hz=hz / (2 * HEARTBEAT),
                   bridge=dict(in_depth=256, out_depth=16, timeout_bytes=32))
    port = SimSerial(dut, DIVISOR)
    leds = Leds(dut, port.sim)
    ln = Link(port, timeout=150e-6, clock=port.now, byte_time=BYTE_TIME)
    ln.reset()
    assert leds.now() | {"led_heartbeat": 0} == dict.fromkeys(leds.names, 0)
    start = leds.cycle
    got = ln.transact(stream, len(expected))
    assert got == expected, f"seed {seed}"
    assert got[:2] == [host.STATUS_DONE, g.schedule.cycles]
    np.testing.assert_array_equal(g.result(got), g.reference([W], x))
    # running: one stretch as long as the run's cycles (from the cycle after the start cycle
    # to the done cycle, inclusive); then done lit, no error
    assert leds.since(start, "led_running") == [g.schedule.cycles]
    assert leds.now()["led_done"] == 1 and leds.now()["led_error"] == 0
    assert leds.since(start, "led_done") and leds.since(start, "led_error") == []
    # the heartbeat toggles every HEARTBEAT cycles
    beats = leds.since(start, "led_heartbeat")
    assert len(beats) > 5 and set(beats[1:-1]) == {HEARTBEAT}

    # a run stopped by its cycle budget: done and error
    start = leds.cycle
    status = ln.transact(host.ctrl_cmd(TINY, budget=3) + host.run_cmd(), 2)[0]
    assert status == host.STATUS_DONE | host.STATUS_TIMEOUT
    assert leds.since(start, "led_running") and leds.since(start, "led_done")
    assert leds.now()["led_done"] == 1 and leds.now()["led_error"] == 1
    # the next run's start clears both; a good run leaves done alone lit
    ln.send(host.ctrl_cmd(TINY, budget=(1 << 32) - 1))
    start = leds.cycle
    assert ln.transact(host.run_cmd(), 2) == [host.STATUS_DONE, g.schedule.cycles]
    assert leds.now()["led_done"] == 1 and leds.now()["led_error"] == 0
    assert len(leds.since(start, "led_error")) == 1         # lit until the run's start
    # RESET from the host clears done (and error) with the tile
    ln.reset()
    assert leds.now()["led_done"] == 0 and leds.now()["led_error"] == 0
