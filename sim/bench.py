"""`make bench`: GEMV cycles, MAC utilization and simulation speed on both simulators.

For every array size and GEMV shape, the compiler's predicted cycles are checked against
both simulators (they must agree exactly) and utilization = MACs / (cycles x MAC units) is
tabulated. Simulation speed is measured on a long run (the largest GEMV repeated by a
hardware LOOP) as simulated cycles per wall-clock second while the tile runs; also for
Amaranth's simulator, which runs the unit tests (a smaller GEMV: its weights load at a few
hundred beats a second), with the time it takes to elaborate the tile and build the
simulator. A slower simulation shows here before it shows as a slower test suite.
"""

__all__ = ["ARRAYS", "SHAPES", "run_bench"]

import json
import time

import numpy as np

from tinylpu import Config
from tinylpu.verify.cases import gemv_case
from tinylpu.golden import GoldenTile

ARRAYS = [Config(lanes=16, rows=4, wdepth=1024), Config(lanes=32, rows=8, wdepth=512)]
SHAPES = [(64, 64), (172, 64), (64, 172), (256, 256), (512, 64), (1, 64)]
SPEED_SHAPE = {"icarus": (256, 256), "verilator": (256, 256), "amaranth": (64, 64)}
SPEED_CYCLES = {"icarus": 20_000, "verilator": 1_000_000, "amaranth": 3_000}


def _cases(cfg, sims, seed):
    rng = np.random.default_rng(seed)
    golden = GoldenTile(cfg)
    cases = []
    for out, inp in SHAPES:
        W, x = rng.integers(-128, 128, (out, inp)), rng.integers(-128, 128, inp)
        cases.append(gemv_case(f"{out}x{inp}", golden, [W], x))
    speed = {}
    for sim in sims:
        out, inp = SPEED_SHAPE[sim]
        W, x = rng.integers(-128, 128, (out, inp)), rng.integers(-128, 128, inp)
        per_pass = cases[SHAPES.index(SPEED_SHAPE[sim])]["cycles"]
        repeat = max(1, min(SPEED_CYCLES[sim] // per_pass, 65535))
        speed[sim] = gemv_case(f"speed {out}x{inp} x{repeat}", GoldenTile(cfg), [W], x,
                               repeat=repeat)
    return cases, speed


def _speed_row(cfg, sim, case, m):
    if m["cycles"] != case["cycles"] or m["response"] != case["expected"]:
        raise AssertionError(f"{sim} speed run on {cfg.ident} differs from the golden model")
    return {"array": f"{cfg.rows}x{cfg.lanes}", "config": cfg.ident, "sim": sim,
            "run": case["name"][len("speed "):], "cycles": m["cycles"], "wall_s": m["wall"],
            "cycles_per_s": m["cycles"] / m["wall"], "setup_s": m.get("setup")}


def run_bench(sims=("icarus", "verilator"), out_dir="build/bench", seed=0, out=print,
              amaranth=True):
    """The GEMV table on ``sims``; the speed table on them and, with ``amaranth``, on
    Amaranth's simulator."""
    from tinylpu.flow.amaranthsim import HostSim
    from tinylpu.rtl.top import Tile
    from tinylpu.flow.rtlsim import run_streams
    import pathlib
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, speeds = [], []
    for cfg in ARRAYS:
        cases, speed = _cases(cfg, list(sims) + ["amaranth"] * amaranth, seed)
        measured = {}
        for sim in sims:
            t0 = time.perf_counter()
            measured[sim] = run_streams(cfg, sim, cases + [speed[sim]], name="bench")
            out(f"  {cfg.ident}: {sim} done in {time.perf_counter() - t0:.1f} s")
            speeds.append(_speed_row(cfg, sim, speed[sim], measured[sim][-1]))
        if amaranth:
            t0, case = time.perf_counter(), speed["amaranth"]
            tile = HostSim(Tile(cfg))
            response = tile.run(case["stream"], len(case["expected"]))
            out(f"  {cfg.ident}: amaranth done in {time.perf_counter() - t0:.1f} s")
            speeds.append(_speed_row(cfg, "amaranth", case, {
                "response": response, "cycles": response[case["run_at"] + 1],
                "wall": tile.walls[0], "setup": tile.setup}))
        for i, case in enumerate(cases):
            got = {sim: measured[sim][i] for sim in sims}
            for sim, m in got.items():
                if m["response"] != case["expected"] or m["cycles"] != case["cycles"]:
                    raise AssertionError(f"{sim} {case['name']} on {cfg.ident}: RTL differs "
                                         f"from the golden model or the prediction")
            rows.append({"array": f"{cfg.rows}x{cfg.lanes}", "config": cfg.ident,
                         "shape": case["name"], "macs": case["macs"],
                         "predicted": case["cycles"],
                         **{f"{sim}_cycles": got[sim]["cycles"] for sim in sims},
                         "utilization": case["macs"] / (case["cycles"] * cfg.macs)})
    table = _tables(rows, speeds, sims)
    out(table)
    (out_dir / "bench.md").write_text(table + "\n")
    (out_dir / "bench.json").write_text(json.dumps({"gemv": rows, "speed": speeds}, indent=1))
    _plots(rows, speeds, out_dir)
    out(f"wrote {out_dir}/bench.md, bench.json, utilization.png, sim_speed.png")
    return rows, speeds


def _tables(rows, speeds, sims):
    head = ["array", "GEMV", "MACs", "predicted cycles"] + [f"{s} cycles" for s in sims]
    lines = ["| " + " | ".join(head + ["MAC utilization"]) + " |",
             "|" + "---|" * (len(head) + 1)]
    for r in rows:
        cells = [r["array"], r["shape"], str(r["macs"]), str(r["predicted"])]
        cells += [str(r[f"{s}_cycles"]) for s in sims]
        lines.append("| " + " | ".join(cells + [f"{100 * r['utilization']:.1f}%"]) + " |")
    lines += ["", "| array | simulator | run (GEMV x LOOP count) | cycles | wall (s) | cycles/s "
                  "| set-up (s) |", "|---|---|---|---|---|---|---|"]
    for s in speeds:
        setup = "" if s["setup_s"] is None else f"{s['setup_s']:.1f}"
        lines.append(f"| {s['array']} | {s['sim']} | {s['run']} | {s['cycles']} | "
                     f"{s['wall_s']:.2f} | {s['cycles_per_s']:,.0f} | {setup} |")
    lines += ["", "(set-up: elaborating the tile and building Amaranth's simulator; the "
                  "Verilog simulators' builds are cached and not timed here)"]
    for array in dict.fromkeys(s["array"] for s in speeds):
        v = {s["sim"]: s["cycles_per_s"] for s in speeds if s["array"] == array}
        for a, b in (("verilator", "icarus"), ("verilator", "amaranth")):
            if a in v and b in v:
                lines.append(f"{a} / {b} speed ratio, {array} array: {v[a] / v[b]:,.0f}x")
    return "\n".join(lines)


def _plots(rows, speeds, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    arrays = list(dict.fromkeys(r["array"] for r in rows))
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(arrays)
    for k, array in enumerate(arrays):
        util = [next(100 * r["utilization"] for r in rows
                     if r["array"] == array and r["shape"] == s) for s in shapes]
        ax.bar(np.arange(len(shapes)) + k * width, util, width, label=f"{array} array")
    ax.axhline(90, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(np.arange(len(shapes)) + width * (len(arrays) - 1) / 2, shapes)
    ax.set_ylabel("MAC utilization (%)")
    ax.set_xlabel("GEMV (rows x columns)")
    ax.set_ylim(0, 105)
    ax.legend()
    ax.set_title("TinyLPU GEMV MAC utilization (measured on the RTL)")
    fig.tight_layout()
    fig.savefig(out_dir / "utilization.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{s['array']}\n{s['sim']}" for s in speeds]
    ax.bar(labels, [s["cycles_per_s"] for s in speeds], color="tab:green")
    ax.set_yscale("log")
    ax.set_ylabel("simulated cycles / wall second")
    ax.set_title("RTL simulation speed")
    fig.tight_layout()
    fig.savefig(out_dir / "sim_speed.png", dpi=120)
    plt.close(fig)
