"""The board top: the tile behind the serial host bridge on an ECP5 board, clocked by a PLL.

    board oscillator (clk_in) --EHXPLLL--> sync (tile_hz) ----------------------------.
    PLL lock, reset button --ResetSynchronizer--> sync reset                           |
    UART rx/tx pins <--> UartBridge <--host_in/host_out--> Tile + RunMonitor           |
                         tile_reset (the host's RESET frame) resets the tile and the   |
                         monitor; the bridge itself keeps its state                    |
    LEDs: running, done, error (RunMonitor), heartbeat -------------------------------'

One clock domain (``sync``) for everything. Without a platform (simulation, Verilog, lint)
the pins are the component's ports; with one (``platform.build``), :class:`BoardTop` requests
them itself (the resources named by :class:`Pins`).
"""

__all__ = ["BoardTop", "Pins", "PllParams", "pll_params", "PLL_LIMITS", "PLL_STUB",
           "DEFAULT_TILE_HZ", "DEFAULT_BAUD", "generate_verilog"]

import dataclasses
import pathlib

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, ResetInserter, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from tinylpu import host as proto

from .bridge import UartBridge
from .top import Tile
from .uart import divisor_for

# 30 MHz: the PLL makes it exactly from 25 MHz (ULX3S: 25 / 5 * 6) and from 100 MHz (ECPIX-5:
# 100 / 10 * 3); 3 Mbaud is 10 cycles per bit, exact; the small board tile meets it
# (docs/fpga.md, "Board build")
DEFAULT_TILE_HZ = 30_000_000
DEFAULT_BAUD = 3_000_000


# ECP5 sysCLOCK PLL (EHXPLLL) limits, as Project Trellis' ecppll uses them (the ECP5 family
# data sheet, "sysCLOCK PLL Timing"): input, output, phase-detector and VCO frequencies in
# Hz, and the divider ranges
PLL_LIMITS = {
    "input": (8e6, 400e6), "output": (10e6, 400e6),
    "pfd": (3.125e6, 400e6), "vco": (400e6, 800e6),
    "clki_div": (1, 128), "clkfb_div": (1, 80), "clkop_div": (1, 128),
}


@dataclasses.dataclass(frozen=True)
class PllParams:
    """EHXPLLL dividers with feedback from CLKOP:

        f_pfd = f_in / CLKI_DIV                  (3.125 .. 400 MHz)
        f_out = f_pfd * CLKFB_DIV = f_in * CLKFB_DIV / CLKI_DIV
        f_vco = f_out * CLKOP_DIV                (400 .. 800 MHz)

    and CLKOP_CPHASE = CLKOP_DIV - 1 for a 0 degree output (ecppll's choice)."""
    clk_hz: int
    out_hz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def pfd_hz(self):
        return self.clk_hz / self.clki_div

    @property
    def vco_hz(self):
        return self.out_hz * self.clkop_div


def _candidates(clk_hz):
    """Every legal (CLKI_DIV, CLKFB_DIV, CLKOP_DIV) from ``clk_hz``, with its output."""
    lim = PLL_LIMITS
    for ci in range(lim["clki_div"][0], lim["clki_div"][1] + 1):
        pfd = clk_hz / ci
        if not lim["pfd"][0] <= pfd <= lim["pfd"][1]:
            continue
        for fb in range(lim["clkfb_div"][0], lim["clkfb_div"][1] + 1):
            out = pfd * fb
            if not lim["output"][0] <= out <= lim["output"][1]:
                continue
            for op in range(lim["clkop_div"][0], lim["clkop_div"][1] + 1):
                if lim["vco"][0] <= out * op <= lim["vco"][1]:
                    yield ci, fb, op, out


def pll_params(clk_hz, out_hz):
    """The EHXPLLL dividers that make exactly ``out_hz`` from ``clk_hz`` (both in Hz,
    integers): the ones with the VCO nearest 600 MHz, then the smallest CLKI_DIV. A
    ValueError names the nearest frequencies the PLL can make when none is exact, or the
    limit an input or output breaks."""
    for name, value in (("input", clk_hz), ("output", out_hz)):
        if not (isinstance(value, (int, float)) and value == int(value)):
            raise ValueError(f"PLL {name} frequency must be a whole number of Hz, not {value!r}")
    clk_hz, out_hz = int(clk_hz), int(out_hz)
    for name, value in (("input", clk_hz), ("output", out_hz)):
        low, high = PLL_LIMITS[name]
        if not low <= value <= high:
            raise ValueError(f"the ECP5 PLL's {name} must be {low / 1e6:g} .. {high / 1e6:g} "
                             f"MHz, not {value / 1e6:g} MHz")
    exact, below, above = [], None, None
    for ci, fb, op, out in _candidates(clk_hz):
        if clk_hz * fb == out_hz * ci:
            exact.append((abs(out * op - 600e6), ci, fb, op))
        elif out < out_hz:
            below = out if below is None else max(below, out)
        else:
            above = out if above is None else min(above, out)
    if not exact:
        near = " and ".join(f"{f / 1e6:.6g} MHz" for f in (below, above) if f is not None)
        raise ValueError(f"the ECP5 PLL cannot make {out_hz / 1e6:g} MHz from "
                         f"{clk_hz / 1e6:g} MHz (f_in * CLKFB_DIV / CLKI_DIV with a phase "
                         f"detector of at least 3.125 MHz); the nearest are {near}")
    _, ci, fb, op = min(exact)
    return PllParams(clk_hz, clk_hz * fb / ci, ci, fb, op)


# A behavioural stand-in for the EHXPLLL primitive, for `verilator --lint-only` only (the
# real one comes from Yosys' and nextpnr's ECP5 cell library): CLKOP follows CLKI, locked.
PLL_STUB = """\
// Lint-only stand-in for the ECP5 EHXPLLL primitive (rtl/board.py, PLL_STUB)
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module EHXPLLL #(
    parameter PLLRST_ENA = "DISABLED", parameter INTFB_WAKE = "DISABLED",
    parameter STDBY_ENABLE = "DISABLED", parameter DPHASE_SOURCE = "DISABLED",
    parameter OUTDIVIDER_MUXA = "DIVA", parameter OUTDIVIDER_MUXB = "DIVB",
    parameter OUTDIVIDER_MUXC = "DIVC", parameter OUTDIVIDER_MUXD = "DIVD",
    parameter integer CLKI_DIV = 1, parameter CLKOP_ENABLE = "ENABLED",
    parameter integer CLKOP_DIV = 8, parameter integer CLKOP_CPHASE = 0,
    parameter integer CLKOP_FPHASE = 0, parameter FEEDBK_PATH = "CLKOP",
    parameter integer CLKFB_DIV = 1
) (
    input CLKI, input CLKFB, input RST, input STDBY, input PHASESEL0, input PHASESEL1,
    input PHASEDIR, input PHASESTEP, input PHASELOADREG, input PLLWAKESYNC, input ENCLKOP,
    output CLKOP, output LOCK
);
    assign CLKOP = CLKI;
    assign LOCK = 1'b1;
endmodule
"""


@dataclasses.dataclass(frozen=True)
class Pins:
    """The platform resources :class:`BoardTop` requests: ``clock`` (None: the platform's
    default clock), ``reset`` (a button, pressed = 1; None: none), ``uart`` (rx, tx), and the
    four LEDs running, done, error, heartbeat, each ``(name, number)`` or ``(name, number,
    subsignal)`` (one colour of an RGB LED)."""
    clock: str = None
    reset: str = None
    uart: tuple = ("uart", 0)
    leds: tuple = (("led", 0), ("led", 1), ("led", 2), ("led", 3))


class RunMonitor(wiring.Component):
    """The done and error LEDs, from the tile's ``running`` and its ``host_out`` beats.

    A run's end (``running`` falls) sets ``done``; the first beat the tile hands to the host
    from then on is the run's status word (rtl/host.py: STATUS, then CYCLES), and ``error``
    is set when it holds any bit besides DONE (a schedule check, an illegal instruction, the
    cycle budget, an overrun, a bad command). A run's start clears both. Reset with the tile
    (a RESET from the host clears both; a run it aborts sets neither)."""

    def __init__(self):
        super().__init__({"running": In(1), "beat": In(32), "beat_taken": In(1),
                          "done": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        was, waiting = Signal(), Signal()
        m.d.sync += was.eq(self.running)
        started, ended = self.running & ~was, was & ~self.running
        status = (waiting | ended) & self.beat_taken
        with m.If(started):
            m.d.sync += [self.done.eq(0), self.error.eq(0), waiting.eq(0)]
        with m.Elif(status):
            m.d.sync += [self.error.eq((self.beat & ~proto.STATUS_DONE) != 0), waiting.eq(0)]
        with m.Elif(ended):
            m.d.sync += waiting.eq(1)
        with m.If(ended):
            m.d.sync += self.done.eq(1)
        return m


class BoardTop(wiring.Component):
    """The tile of ``cfg`` on a board: the oscillator ``clk_in`` at ``clk_hz`` through an
    ECP5 PLL (EHXPLLL) to one ``sync`` domain at ``tile_hz``; its reset from the PLL's lock
    and the ``button`` (pressed = 1) through a reset synchronizer; the serial host bridge
    (:class:`UartBridge`, ``baud`` from ``tile_hz`` by :func:`rtl.uart.divisor_for`) on
    ``rx``/``tx``; the tile, reset also by the bridge's ``tile_reset`` (the host's RESET
    frame: the abort); four LEDs:

    - ``led_running``: the tile runs a RUN or GENERATE;
    - ``led_done``: the last run finished (lit at its end, dark from the next run's start or
      a RESET);
    - ``led_error``: the last run's status word had a bit besides DONE (:class:`RunMonitor`);
    - ``led_heartbeat``: toggles every half second (``heartbeat_hz``) while out of reset:
      the PLL locked and the clock runs.

    ``use_pll=False``: no PLL; on a platform the oscillator clocks ``sync`` directly
    (``tile_hz`` must equal ``clk_hz``), without one the domain comes from outside (a
    simulator's clock and reset) and ``clk_in`` and ``button`` are unused. ``pins``
    (:class:`Pins`) names the resources requested when elaborated for a platform.
    ``bridge`` holds :class:`UartBridge` keywords (queue depths, ``timeout_bytes``).
    """

    def __init__(self, cfg, *, clk_hz=25_000_000, tile_hz=DEFAULT_TILE_HZ, baud=DEFAULT_BAUD,
                 use_pll=True, pins=Pins(), heartbeat_hz=1, bridge=None):
        try:
            self.pll = pll_params(clk_hz, tile_hz) if use_pll else None
            if not use_pll and clk_hz != tile_hz:
                raise ValueError(f"without the PLL the tile runs at the oscillator's "
                                 f"{clk_hz / 1e6:g} MHz, not {tile_hz / 1e6:g} MHz")
            self.divisor = divisor_for(tile_hz, baud)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.cfg, self.clk_hz, self.tile_hz, self.baud = cfg, clk_hz, tile_hz, baud
        self.use_pll, self.pins = use_pll, pins
        self.heartbeat_cycles = max(1, round(tile_hz / (2 * heartbeat_hz)))
        self.bridge_args = dict(bridge or {})
        super().__init__({
            "clk_in": In(1), "button": In(1),
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "led_running": Out(1), "led_done": Out(1), "led_error": Out(1),
            "led_heartbeat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            self._request_pins(m, platform)

        # the clock and its reset
        if self.use_pll:
            p = self.pll
            pll_clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
            m.domains.sync = ClockDomain("sync")
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{p.clk_hz / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{p.out_hz / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED",
                p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
                p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div,
                p_CLKOP_CPHASE=p.clkop_div - 1, p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p.clkfb_div,
                i_CLKI=self.clk_in, i_CLKFB=pll_clk, i_RST=0, i_STDBY=0,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
                i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=pll_clk, o_LOCK=locked)
            m.d.comb += ClockSignal("sync").eq(pll_clk)
            m.submodules.reset_sync = ResetSynchronizer(~locked | self.button, domain="sync")
            # no FREQUENCY NET for pll_clk: Yosys renames the net, and nextpnr derives its
            # constraint from the oscillator port's and the dividers ("Derived frequency
            # constraint of 30.0 MHz for net ...")
        elif platform is not None:
            m.domains.sync = ClockDomain("sync")
            m.d.comb += ClockSignal("sync").eq(self.clk_in)
            m.submodules.reset_sync = ResetSynchronizer(self.button, domain="sync")

        # the bridge, the tile and the LEDs
        m.submodules.bridge = br = UartBridge(self.divisor, **self.bridge_args)
        self.tile = tile = Tile(self.cfg)
        monitor = RunMonitor()
        m.submodules.tile = ResetInserter(br.tile_reset)(tile)
        m.submodules.monitor = ResetInserter(br.tile_reset)(monitor)
        wiring.connect(m, br.host_in, tile.host_in)
        wiring.connect(m, tile.host_out, br.host_out)
        m.d.comb += [
            br.rx.eq(self.rx), self.tx.eq(br.tx),
            monitor.running.eq(tile.running), monitor.beat.eq(tile.host_out.payload),
            monitor.beat_taken.eq(tile.host_out.valid & br.host_out.ready),
            self.led_running.eq(tile.running), self.led_done.eq(monitor.done),
            self.led_error.eq(monitor.error),
        ]
        beat = Signal(range(self.heartbeat_cycles))
        with m.If(beat == self.heartbeat_cycles - 1):
            m.d.sync += [beat.eq(0), self.led_heartbeat.eq(~self.led_heartbeat)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)
        return m

    def _request_pins(self, m, platform):
        """Drive the ports from the platform's pins (and the pins from the ports), through
        I/O buffers."""
        pins = self.pins

        def buffer(direction, port, name):
            m.submodules[name] = buf = io.Buffer(direction, port)
            return buf

        clk = platform.request(pins.clock or platform.default_clk, 0, dir="-")
        uart = platform.request(*pins.uart, dir="-")
        m.d.comb += [self.clk_in.eq(buffer("i", clk, "clk_buf").i),
                     self.rx.eq(buffer("i", uart.rx, "rx_buf").i),
                     buffer("o", uart.tx, "tx_buf").o.eq(self.tx)]
        if pins.reset is not None:
            port = platform.request(pins.reset, 0, dir="-")
            m.d.comb += self.button.eq(buffer("i", port, "reset_buf").i)
        leds = (self.led_running, self.led_done, self.led_error, self.led_heartbeat)
        for i, (port, (name, number, *sub)) in enumerate(zip(leds, pins.leds)):
            res = platform.request(name, number, dir="-")
            res = getattr(res, sub[0]) if sub else res
            m.d.comb += buffer("o", res, f"led{i}_buf").o.eq(port)


def generate_verilog(cfg, path=None, **kw):
    """Verilog of a :class:`BoardTop` (module ``tinylpu_board``; the PLL, if any, is an
    ``EHXPLLL`` instance: :data:`PLL_STUB` stands in for it in lint)."""
    text = verilog.convert(BoardTop(cfg, **kw), name="tinylpu_board", emit_src=False)
    if path is not None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text
