"""Draw the TinyLPU tile block diagram (docs/architecture.svg) with matplotlib.

Usage: python docs/diagram.py [out.svg]

The output is deterministic byte for byte: fixed hash salt, text kept as text, no date.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams.update({
    "svg.hashsalt": "tinylpu-architecture",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Verdana", "Arial", "Helvetica"],
})

import matplotlib.pyplot as plt                          # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.path import Path as MPath                # noqa: E402

W, H = 15.0, 9.2          # figure size in inches; data units are inches too

# Unit types: (fill, edge)
STYLE = {
    "host": ("#eceff1", "#546e7a"),
    "control": ("#e3f2fd", "#1e88e5"),
    "memory": ("#fff8e1", "#f9a825"),
    "router": ("#f3e5f5", "#8e24aa"),
    "compute": ("#e8f5e9", "#43a047"),
}
TYPE_NAMES = [("host", "host I/O"), ("control", "control"), ("memory", "SRAM"),
              ("router", "interconnect"), ("compute", "datapath")]
INK = "#263238"
CTRL_INK = "#546e7a"
TITLE_PT, DETAIL_PT, LABEL_PT = 10.5, 8.5, 8


class Box:
    def __init__(self, x0, y0, x1, y1):
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1

    @property
    def cx(self):
        return (self.x0 + self.x1) / 2

    @property
    def cy(self):
        return (self.y0 + self.y1) / 2


def box(ax, x0, y0, x1, y1, kind, title, details=()):
    fill, edge = STYLE[kind]
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0,
                                boxstyle="round,pad=0,rounding_size=0.12",
                                facecolor=fill, edgecolor=edge, linewidth=1.4, zorder=2))
    lines = [(title, TITLE_PT, "bold")] + [(d, DETAIL_PT, "normal") for d in details]
    step = 0.2
    top = (y0 + y1) / 2 + step * (len(lines) - 1) / 2
    for i, (text, size, weight) in enumerate(lines):
        ax.text((x0 + x1) / 2, top - i * step - (0.02 if i else 0), text, fontsize=size,
                fontweight=weight, color=INK, ha="center", va="center", zorder=3)
    return Box(x0, y0, x1, y1)


def arrow(ax, *points, both=False, data=True, color=None):
    style = "<|-|>" if both else "-|>"
    ax.add_patch(FancyArrowPatch(path=MPath(points), arrowstyle=style, mutation_scale=13,
                                 color=color or (INK if data else CTRL_INK),
                                 linewidth=1.8 if data else 1.2,
                                 linestyle="-" if data else (0, (4, 2)),
                                 shrinkA=0, shrinkB=0, zorder=1))


def label(ax, x, y, text, ha="center", va="center", color=INK, style="normal"):
    ax.text(x, y, text, fontsize=LABEL_PT, ha=ha, va=va, color=color, fontstyle=style,
            linespacing=1.25, zorder=3)


def draw(out):
    fig = plt.figure(figsize=(W, H))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(0, H)
    ax.set_aspect("equal")
    ax.axis("off")

    ax.text(W / 2, H - 0.35, "TinyLPU tile (default config: 4 rows x 16 lanes)",
            fontsize=15, fontweight="bold", color=INK, ha="center", va="center")

    # Rows (y) and columns (x) of the layout.
    top, mid, bot, low = (7.3, 8.3), (5.2, 6.2), (3.0, 4.0), (1.5, 2.3)
    colB, colC, colD = (3.1, 5.9), (6.9, 9.9), (11.7, 14.3)

    host = box(ax, 0.3, 4.1, 2.3, top[1], "host", "Host interface",
               ["amaranth.lib.stream", "32-bit in / out", "control registers:",
                "cycle budget, positions", "busy counters (read)"])
    imem = box(ax, colB[0], top[0], colB[1], top[1], "memory", "Instruction memory",
               ["pdepth x 288 bit"])
    seq = box(ax, colC[0], top[0], colC[1], top[1], "control", "Sequencer",
              ["issue slot, WAIT, LOOP, HALT", "NEXT: token loop, pos, next token",
               "stops at an illegal word or the budget"])
    agen = box(ax, colC[0], mid[0], colC[1], mid[1], "control", "Address generators",
               ["MATVEC (PV passes): blocks x chunks", "QK / PV: one K or V row a cycle"])
    vu = box(ax, colB[0], mid[0], colB[1], mid[1], "compute", "Vector unit",
             ["element-serial VOPs: embedding,", "first norm's total, final gain"])
    wbank = box(ax, colD[0], mid[0], colD[1], mid[1], "memory", "Weight banks 0..R-1",
                ["wdepth x L bytes each", "weights, q, V^T (PV passes)"])
    abank = box(ax, colB[0], bot[0], colB[1], bot[1], "memory", "Activation banks 0..A-1",
                ["adepth x L x 32-bit lanes, 1R+1W", "x, packed KV cache, scores"])
    router = box(ax, colC[0], bot[0], colC[1], bot[1], "router", "Router",
                 ["program-set muxes", "conflict, hazard, read checkers"])
    mac = box(ax, colD[0], bot[0], colD[1], bot[1], "compute", "MAC array R x L",
              ["int8 x int16 -> int32; QK, PV passes", "(scores, transposer, maxima,",
               "exp2 per lane; PV drain if pv)"])
    req = box(ax, colD[0], 1.3, colD[1], 2.5, "compute",
              "Requantizer + epilogue",
              ["x M (x norm) >> S, saturate", "RESID, ROPE, SILU_GATE, ARGMAX"])
    consts = box(ax, colC[0], 1.1, colC[1], 1.6, "memory",
                 "Row multipliers, RoPE table", [])
    norm = box(ax, colB[0], 1.1, colB[1], 1.6, "compute",
               "Norm unit", ["sum x^2 -> table + interp"])

    # Host <-> the tile.
    y = 7.95
    arrow(ax, (host.x1, y), (imem.x0, y), data=False)
    label(ax, (host.x1 + imem.x0) / 2, y + 0.16, "program\nload", va="bottom")
    y = 6.85
    x = seq.x0 + 0.45
    arrow(ax, (x, seq.y0), (x, y), (host.x1, y), both=True, data=False)
    label(ax, (host.x1 + x) / 2 - 0.2, y - 0.1, "start / done, status, cycles", va="top")
    y = 4.6
    x = router.x0 + 0.45
    arrow(ax, (host.x1, y), (x, y), (x, router.y1), both=True)
    label(ax, host.x1 + 0.15, y + 0.1, "SRAM load / read-back", ha="left", va="bottom")

    # Control.
    arrow(ax, (imem.x1, imem.cy), (seq.x0, seq.cy), data=False)
    label(ax, (imem.x1 + seq.x0) / 2, imem.cy + 0.1, "instr", va="bottom")
    x = seq.cx + 0.3
    arrow(ax, (x, seq.y0), (x, agen.y1), data=False)
    label(ax, x + 0.12, (seq.y0 + agen.y1) / 2, "issue MATVEC / QK / PV", ha="left")
    x = vu.cx
    arrow(ax, (seq.x0 + 0.2, seq.y0), (seq.x0 + 0.2, vu.y1 + 0.3), (x, vu.y1 + 0.3), (x, vu.y1),
          data=False)
    label(ax, x + 0.12, vu.y1 + 0.15, "issue VOP", ha="left")
    arrow(ax, (vu.cx, vu.y0), (vu.cx, abank.y1), both=True)
    label(ax, vu.cx + 0.12, vu.y0 - 0.2, "a, b, c (one lane)", ha="left")
    arrow(ax, (agen.x1, agen.cy), (wbank.x0, wbank.cy), data=False)
    label(ax, (agen.x1 + wbank.x0) / 2, agen.cy + 0.1, "w addr", va="bottom")
    x = agen.cx + 0.3
    arrow(ax, (x, agen.y0), (x, router.y1), data=False)
    label(ax, x + 0.12, (agen.y0 + router.y1) / 2, "x bank/addr\ny bank/addr", ha="left")

    # Data streams.
    arrow(ax, (wbank.cx, wbank.y0), (wbank.cx, mac.y1))
    label(ax, wbank.cx + 0.12, (wbank.y0 + mac.y1) / 2, "W stream:\nR x L x int8 / cycle",
          ha="left")
    y = router.cy + 0.22
    arrow(ax, (abank.x1, y), (router.x0, y))
    label(ax, (abank.x1 + router.x0) / 2, y + 0.08, "x stream", va="bottom")
    y = router.cy - 0.22
    arrow(ax, (router.x0, y), (abank.x1, y))
    label(ax, (abank.x1 + router.x0) / 2, y - 0.08, "y stream", va="top")
    arrow(ax, (router.x1, router.cy), (mac.x0, mac.cy))
    label(ax, (router.x1 + mac.x0) / 2, router.cy + 0.1,
          "x stream: L x int16 / cycle\n(broadcast to R rows)", va="bottom")
    arrow(ax, (mac.cx, mac.y0), (mac.cx, req.y1))
    label(ax, mac.cx + 0.12, (mac.y0 + req.y1) / 2, "R x int32 per row block", ha="left")
    x = router.cx + 0.3
    arrow(ax, (req.x0, req.cy), (x, req.cy), (x, router.y0))
    label(ax, (x + req.x0) / 2 + 0.25, req.cy + 0.1, "y stream: R lanes\n(lane-enabled write)",
          va="bottom")
    arrow(ax, (consts.x1, consts.cy), (req.x0, consts.cy), data=False)
    arrow(ax, (norm.x1, norm.cy), (consts.x0 - 0.2, norm.cy), (consts.x0 - 0.2, 1.75),
          (req.x0, 1.75), data=False)
    label(ax, consts.x1 + 0.1, 1.62, "norm register", ha="left", va="top")

    # Key of unit types and arrow kinds.
    kx, ky = 10.9, 8.3
    ax.text(kx, ky, "Key", fontsize=DETAIL_PT, fontweight="bold", color=INK, va="center")
    for i, (kind, name) in enumerate(TYPE_NAMES):
        fill, edge = STYLE[kind]
        yy = ky - 0.3 - i * 0.27
        ax.add_patch(FancyBboxPatch((kx, yy - 0.08), 0.32, 0.16,
                                    boxstyle="round,pad=0,rounding_size=0.04",
                                    facecolor=fill, edgecolor=edge, linewidth=1.1))
        label(ax, kx + 0.45, yy, name, ha="left")
    ax2 = kx + 1.5
    arrow(ax, (ax2, ky - 0.3), (ax2 + 0.5, ky - 0.3))
    label(ax, ax2 + 0.62, ky - 0.3, "data stream", ha="left")
    arrow(ax, (ax2, ky - 0.57), (ax2 + 0.5, ky - 0.57), data=False)
    label(ax, ax2 + 0.62, ky - 0.57, "control / address", ha="left")

    # Pipeline strip.
    stages = ["cycle c: SRAM read", "c+1: multiply", "c+2: accumulate", "c+3: x M",
              "c+4: round, shift, saturate", "c+5..c+7: epilogue", "c+8: write"]
    ax.text(0.3, 0.95, "MATVEC pipeline (one token)", fontsize=DETAIL_PT, fontweight="bold",
            color=INK, va="center")
    x0, x1, gap = 0.3, W - 0.3, 0.35
    width = (x1 - x0 - gap * (len(stages) - 1)) / len(stages)
    for i, text in enumerate(stages):
        sx = x0 + i * (width + gap)
        ax.add_patch(FancyBboxPatch((sx, 0.3), width, 0.4,
                                    boxstyle="round,pad=0,rounding_size=0.08",
                                    facecolor="#fafafa", edgecolor="#90a4ae", linewidth=1.1))
        ax.text(sx + width / 2, 0.5, text, fontsize=DETAIL_PT, color=INK, ha="center",
                va="center")
        if i:
            arrow(ax, (sx - gap + 0.06, 0.5), (sx - 0.06, 0.5), color="#90a4ae")

    fig.savefig(out, format="svg", metadata={"Date": None})
    return fig


def main(argv):
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "architecture.svg"
    fig = draw(out)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv)
