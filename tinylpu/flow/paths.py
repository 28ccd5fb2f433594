"""Register-to-register paths of a synthesized ECP5 netlist, estimated without place and route.

Every path from a flip-flop or block-RAM output (or an input) through LUTs, carry chains,
wide multiplexers and combinational multipliers to a flip-flop or memory input gets an
estimated delay: each cell's logic delay plus :data:`NET` for each net it crosses (a carry
chain's own links cost :data:`CARRY` and no net). Placement and routing decide the real
delay; this model only ranks the paths and counts those too long for a clock, in seconds
where nextpnr takes minutes (docs/fpga.md, "Timing: the paths that are too long").
Calibrated on the small board tile: its post-route critical path (26.72 ns, 9.29 of them
logic, at main's 6ebd010) is the path this model puts first (28.0 ns).

Paths are grouped by the block of the register they start at and the block of the one they
end at (:func:`tinylpu.flow.congestion.block_of`).
"""

__all__ = ["PathError", "Endpoint", "estimate", "load_netlist", "summarize", "format_paths",
           "NET", "THRESHOLDS"]

import collections
import dataclasses
import json
import pathlib
import re

from tinylpu.flow.congestion import block_of
from tinylpu.flow.pnr import signal_name

NET = 0.9           # ns a net adds (routing; nextpnr's post-route average on the small tile)
CARRY = 0.07        # ns a carry chain's CIN -> COUT adds (two bits)
SETUP = 0.1
THRESHOLDS = (25, 20, 15, 12, 10, 8)          # ns: the counts printed (10 ns: 100 MHz)

# (cell type: clock-to-output delay of its registered outputs; a block RAM's read data
# without its output register, as the tile's memories are, 5.8 ns in nextpnr's ECP5 speed-6
# model, as its combinational 18 x 18 multiply is 3.9 ns)
_REGISTERED = {"TRELLIS_FF": 0.5, "DP16KD": 5.8, "TRELLIS_DPR16X4": 0.5}
_CLOCKS = {"CLK", "CLKA", "CLKB", "WCK"}


def _arcs(cell):
    """(input port, output port, delay in ns) of a combinational cell's arcs; ports may name a
    bus (``A`` for ``A0 .. A17``)."""
    kind = cell["type"]
    if kind == "LUT4":
        return [(p, "Z", 0.25) for p in "ABCD"]
    if kind in ("PFUMX", "L6MUX21"):
        return [(p, "Z", 0.2) for p in ("ALUT", "BLUT", "C0", "D0", "D1", "SD")]
    if kind == "CCU2C":
        arcs = [("CIN", "COUT", CARRY), ("CIN", "S0", 0.25), ("CIN", "S1", 0.3)]
        for k in "01":
            for p in "ABCD":
                arcs += [(p + k, "S" + k, 0.45), (p + k, "COUT", 0.45)]
                if k == "0":
                    arcs.append((p + k, "S1", 0.5))
        return arcs
    if kind == "MULT18X18D":          # unregistered (as Yosys maps Amaranth's products)
        return [("A", "P", 3.9), ("B", "P", 3.9)]
    if kind == "TRELLIS_DPR16X4":     # LUT RAM: asynchronous read
        return [("RAD", "DO", 0.5)]
    return []


def _ports(cell, name):
    return [p for p in cell["connections"]
            if p == name or (re.fullmatch(re.escape(name) + r"\d+", p)
                             and cell["type"] in ("MULT18X18D", "TRELLIS_DPR16X4"))]


@dataclasses.dataclass
class Endpoint:
    """A register or memory input and the longest path into it."""
    delay: float           # estimated ns, from the clock edge to the input's setup
    cell: str              # the cell the path ends at ...
    port: str              # ... and its input
    start: str             # the cell it starts at ('' for a primary input or a constant)
    nets: list             # the nets it crosses, in order

    @property
    def blocks(self):
        return (block_of(self.start) if self.start else "(input)", block_of(self.cell))


class PathError(ValueError):
    """The netlist cannot be read; the message names the file and the problem."""


def load_netlist(path):
    """The top module of a Yosys ``write_json`` netlist at ``path``."""
    try:
        design = json.loads(pathlib.Path(path).read_text())
        modules = design["modules"]
        return next(m for m in modules.values() if m.get("attributes", {}).get("top"))
    except (OSError, ValueError, KeyError, StopIteration, TypeError) as error:
        raise PathError(f"{path}: not a Yosys JSON netlist with a top module "
                        f"({type(error).__name__}: {error})")


def estimate(module):
    """Every register or memory input of ``module`` (a Yosys JSON top module) with its longest
    estimated path: a list of :class:`Endpoint`, longest first."""
    cells = module["cells"]
    names = {}
    for net, info in module["netnames"].items():
        for bit in info["bits"]:
            if isinstance(bit, int):
                known = names.get(bit)
                if known is None or (not info.get("hide_name") and len(net) < len(known)):
                    names[bit] = net
    arrival, pred, start = {}, {}, {}
    for name, cell in cells.items():
        t_co = _REGISTERED.get(cell["type"])
        if t_co is None:
            continue
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "output" and \
                    not (cell["type"] == "TRELLIS_DPR16X4"):
                for bit in bits:
                    if isinstance(bit, int):
                        arrival[bit], pred[bit], start[bit] = t_co, None, name
    fanout = collections.defaultdict(list)
    indegree = collections.Counter()
    for name, cell in cells.items():
        conn = cell["connections"]
        for in_port, out_port, delay in _arcs(cell):
            outs = [b for p in _ports(cell, out_port) for b in conn[p] if isinstance(b, int)]
            for p in _ports(cell, in_port):
                step = delay + (0.0 if p == "CIN" else NET)
                for bit in conn[p]:
                    if isinstance(bit, int):
                        for out in outs:
                            fanout[bit].append((out, step))
                            indegree[out] += 1
    ready = collections.deque(b for b in arrival if indegree[b] == 0)
    for bit in list(fanout):           # inputs, constants, the PLL: time 0
        if indegree[bit] == 0 and bit not in arrival:
            arrival[bit], pred[bit], start[bit] = 0.0, None, ""
            ready.append(bit)
    while ready:
        bit = ready.popleft()
        for out, step in fanout.get(bit, ()):
            if arrival[bit] + step > arrival.get(out, -1.0):
                arrival[out], pred[out] = arrival[bit] + step, bit
            indegree[out] -= 1
            if indegree[out] == 0:
                ready.append(out)
    ends = []
    for name, cell in cells.items():
        if cell["type"] not in _REGISTERED:
            continue
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "input" or port in _CLOCKS:
                continue
            for bit in bits:
                if isinstance(bit, int) and bit in arrival:
                    nets, b = [], bit
                    while pred.get(b) is not None:
                        nets.append(names.get(b, str(b)))
                        b = pred[b]
                    nets.append(names.get(b, str(b)))
                    ends.append(Endpoint(arrival[bit] + NET + SETUP, name, port,
                                         start.get(b, ""), nets[::-1]))
    ends.sort(key=lambda e: -e.delay)
    return ends


def summarize(ends, threshold=10.0):
    """Counts of endpoints over each of :data:`THRESHOLDS`, and the groups (start block, end
    block) of the endpoints over ``threshold`` ns: (blocks, endpoints, worst Endpoint), worst
    first."""
    counts = {t: sum(1 for e in ends if e.delay > t) for t in THRESHOLDS}
    groups = {}
    for e in ends:
        if e.delay <= threshold:
            break
        n, worst = groups.get(e.blocks, (0, e))
        groups[e.blocks] = (n + 1, worst)
    rows = sorted(((k, n, w) for k, (n, w) in groups.items()), key=lambda r: -r[2].delay)
    return counts, rows


def _short(nets):
    out = []
    for net in nets:
        name = signal_name(net.lstrip("\\")) or net
        if not out or out[-1] != name:
            out.append(name)
    return out


def format_paths(ends, threshold=10.0, top=20):
    """Report lines: the worst estimate, the counts over each threshold, and the worst
    ``top`` groups by (start block -> end block) with their worst path's signals."""
    counts, rows = summarize(ends, threshold)
    worst = ends[0].delay if ends else 0.0
    lines = [f"  estimated register-to-register paths ({len(ends)} register and memory "
             f"inputs; model: docs/fpga.md): worst {worst:.1f} ns "
             f"({1000 / worst if worst else 0:.0f} MHz)",
             "  inputs slower than " + ", ".join(f"{t} ns: {counts[t]}" for t in THRESHOLDS)]
    lines.append(f"  {'worst':>6} {'inputs':>6}  from -> to (over {threshold:g} ns)")
    for (src, dst), n, w in rows[:top]:
        lines.append(f"  {w.delay:6.1f} {n:6d}  {src} -> {dst}: "
                     + " > ".join(_short(w.nets))[:160])
    return lines
