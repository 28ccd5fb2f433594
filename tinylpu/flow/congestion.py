"""Where a placed design asks for wires: a RUDY map of nextpnr's placement, by block.

RUDY (rectangular uniform wire density; Spindler and Johannes, DATE 2007) spreads each net's
expected wirelength, the half perimeter of the box around its cells, evenly over that box:
a net of ``w`` x ``h`` tiles adds ``(w + h) / (w * h)`` to each tile it covers. The sum over
all nets is a map of routing demand that needs no router: where it is high, the router has
to detour or fails to converge. It takes seconds on a placement that takes minutes and
routes in hours (docs/fpga.md, "Where the wires go: a congestion map after placement"),
so RTL changes can be compared by it.

Each net is counted for the block of the signal it carries (its name up to the first two
levels of hierarchy: ``mac``, ``router.abank0``; names Yosys made up count as ``?``).
"""

__all__ = ["CongestionError", "Congestion", "rudy", "load_placed", "format_congestion",
           "plot"]

import collections
import dataclasses
import json
import pathlib
import re

import numpy as np

from tinylpu.flow.pnr import signal_name


class CongestionError(ValueError):
    """The placed design cannot be read; the message names the file and the problem."""


_BEL = re.compile(r"X(\d+)/Y(\d+)/")
_INSTANCE = re.compile(r"\$\d+(?=\.)")     # Yosys' number of an unnamed instance: epi$664.x
HOT_SHARE = 0.05        # the hot tiles: the top 5% by demand


@dataclasses.dataclass
class Congestion:
    """A placement's wire demand per tile (``demand[y, x]``), the same split by block, and
    the tiles of its DSP and block-RAM cells."""
    demand: np.ndarray
    blocks: dict            # block -> array like demand
    nets: int               # nets that span more than one tile
    dsp: list               # (x, y) of each MULT18X18D
    bram: list              # (x, y) of each DP16KD

    def stats(self):
        """Total demand, its maximum, 99th percentile and mean over the tiles in use."""
        used = self.demand[self.demand > 0]
        return {"total": float(self.demand.sum()), "max": float(used.max()),
                "p99": float(np.percentile(used, 99)), "mean": float(used.mean()),
                "tiles": int(used.size)}

    def hot(self):
        """The mask of the hot tiles: demand at or above the top :data:`HOT_SHARE`'s."""
        used = self.demand[self.demand > 0]
        return self.demand >= np.percentile(used, 100 * (1 - HOT_SHARE))

    def shares(self):
        """(block, share of the hot tiles' demand, share of all demand), largest hot share
        first."""
        hot, total = self.hot(), self.demand.sum()
        hot_total = self.demand[hot].sum()
        rows = [(name, float(grid[hot].sum() / hot_total), float(grid.sum() / total))
                for name, grid in self.blocks.items()]
        return sorted(rows, key=lambda row: (-row[1], row[0]))


def block_of(net):
    """The block a net's name belongs to: the instance path of its signal, at most two
    levels (``router.abank0.mem`` -> ``router.abank0``, ``mac.p3_1`` -> ``mac``; ``top``
    for the tile's own signals), without what synthesis appended; ``?`` for names Yosys
    made up."""
    name = signal_name(_INSTANCE.sub("", net.lstrip("\\"))).split("[")[0]
    if not name:
        return "?"
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0] if len(parts) > 1 else "top"


def load_placed(path):
    """The top module of nextpnr's ``--write`` JSON at ``path``."""
    try:
        design = json.loads(pathlib.Path(path).read_text())
        modules = design["modules"]
        return modules[next(iter(modules))]
    except (OSError, ValueError, KeyError, StopIteration, TypeError) as error:
        raise CongestionError(f"{path}: not a placed design from nextpnr's --write "
                              f"({type(error).__name__}: {error})")


def rudy(module):
    """The :class:`Congestion` of a placed top module (a dict, as :func:`load_placed` gives)."""
    try:
        return _rudy(module)
    except (KeyError, TypeError, AttributeError) as error:
        raise CongestionError(f"the placed design is not in the expected form "
                              f"({type(error).__name__}: {error})")


def _rudy(module):
    where, kind = {}, {}
    for name, cell in module["cells"].items():
        bel = _BEL.match(cell.get("attributes", {}).get("NEXTPNR_BEL", ""))
        if bel:
            where[name] = (int(bel.group(1)), int(bel.group(2)))
            kind[name] = cell["type"]
    if not where:
        raise CongestionError("the design has no placed cells (run nextpnr's placer first)")
    pins = collections.defaultdict(set)       # net bit -> the placed cells on it
    for name, cell in module["cells"].items():
        if name in where:
            for bits in cell["connections"].values():
                for bit in bits:
                    if not isinstance(bit, str):
                        pins[bit].add(where[name])
    names = {}                                # net bit -> the most telling name of it
    for net, info in module["netnames"].items():
        for bit in info["bits"]:
            if not isinstance(bit, str) and (bit not in names or
                                             names[bit].startswith("$") > net.startswith("$")):
                names[bit] = net
    width = max(x for x, _ in where.values()) + 1
    height = max(y for _, y in where.values()) + 1
    demand = np.zeros((height, width))
    blocks = collections.defaultdict(lambda: np.zeros((height, width)))
    nets = 0
    for bit, points in pins.items():
        xs, ys = [x for x, _ in points], [y for _, y in points]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        w, h = x1 - x0 + 1, y1 - y0 + 1
        if w * h == 1:
            continue
        density = (w + h) / (w * h)
        demand[y0:y1 + 1, x0:x1 + 1] += density
        blocks[block_of(names.get(bit, "$"))][y0:y1 + 1, x0:x1 + 1] += density
        nets += 1
    tiles = lambda t: [xy for c, xy in where.items() if kind[c] == t]
    return Congestion(demand, dict(blocks), nets, tiles("MULT18X18D"), tiles("DP16KD"))


def format_congestion(cong, top=12):
    """The lines that report ``cong``: its statistics and the ``top`` blocks by their share
    of the hot tiles' demand."""
    s = cong.stats()
    lines = [f"  wire demand (RUDY, {cong.nets} nets over {s['tiles']} tiles): total "
             f"{s['total']:,.0f}, mean {s['mean']:.1f}, 99th percentile {s['p99']:.1f}, "
             f"max {s['max']:.1f}",
             f"  {'block':<24} {'hot tiles':>9} {'all':>7}   (share of the demand; hot: "
             f"the top {HOT_SHARE:.0%} of tiles)"]
    for name, hot, total in cong.shares()[:top]:
        lines.append(f"  {name:<24} {hot:9.1%} {total:7.1%}")
    return lines


def plot(cong, path, title):
    """Draw ``cong``'s map, its DSP and block-RAM sites marked, to the image ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    used = cong.demand[cong.demand > 0]
    fig, ax = plt.subplots(figsize=(9, 7))
    image = ax.imshow(cong.demand, cmap="inferno", vmax=np.percentile(used, 99.5))
    for sites, colour, label in ((cong.dsp, "c", "MULT18X18D"), (cong.bram, "lime", "DP16KD")):
        if sites:
            ax.scatter(*zip(*sites), s=4, c=colour, label=label)
    ax.set_xlabel("tile x")
    ax.set_ylabel("tile y")
    ax.set_title(title)
    if cong.dsp or cong.bram:
        ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(image, label="wire demand per tile (RUDY)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
