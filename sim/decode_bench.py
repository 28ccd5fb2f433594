"""`make bench` (decode part): token generation on the tile, measured.

The reference model (stories260K, from ``../shared/models``; a synthetic model if it is
absent) generates greedily from BOS. Measured per position from the tile's own emission
stamps on Verilator (``positions`` positions) and Icarus (a few): cycles per token, MAC-array
utilization (weight and attention MACs; summed over the run and per position; also
weight-only), and simulated tokens per wall-clock second; each measured
figure is checked against the compiler's prediction and the golden model's ids. Writes
``decode.json``, ``decode.md`` and ``decode.png`` (cycles per token against position).
"""

__all__ = ["run_decode_bench"]

import json
import pathlib

MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"


def _prepare():
    from tinylpu.generate import prepare
    if (MODELS / "stories260K.bin").exists():
        return "stories260K", prepare(MODELS / "stories260K.bin", MODELS / "tok512.bin")
    from tinylpu.model import synthetic_model
    m = synthetic_model(seed=1, seq_len=256)
    return "synthetic (../shared/models absent)", prepare(None, None, model=m)


def _per_position(stamps):
    """Cycles of position p from the emission stamps of a BOS-only prompt: NEXT of position p
    issues at stamps[p] and the position ends 2 cycles later; position 0 starts in cycle 1."""
    ends = [s + 2 for s in stamps]
    return [ends[0] - 1] + [b - a for a, b in zip(ends, ends[1:])]


def run_decode_bench(out_dir="build/bench", positions=256, icarus_positions=4, out=print):
    from tinylpu.generate import generate
    from tinylpu.host import STATUS_DONE
    from tinylpu.compiler.profile import attention_macs
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name, prep = _prepare()
    prog = prep.program
    positions = min(positions, prog.positions - 1)
    runs = {}
    for sim, steps in (("golden", positions), ("verilator", positions),
                       ("icarus", icarus_positions)):
        run = generate(prep, [1], steps, sim)
        stamps, cycles = prog.predict(1, steps)
        if run.status != STATUS_DONE or run.stamps != stamps or run.cycles != cycles:
            raise AssertionError(f"{sim}: status {run.status:#x} or cycles differ from the "
                                 f"compiler's prediction")
        runs[sim] = run
        out(f"  decode on {sim}: {steps} tokens, {run.cycles:,} cycles, {run.seconds:.1f} s")
    for sim in ("verilator", "icarus"):
        n = len(runs[sim].tokens)
        if runs[sim].tokens != runs["golden"].tokens[:n]:
            raise AssertionError(f"{sim} ids differ from the golden model's")
    per_pos = _per_position(runs["verilator"].stamps)
    macs = prog.macs_useful
    R_L = prog.cfg.macs
    mc = prog.qm.config

    def util(p, c):
        return (macs + attention_macs(mc, p)) / (R_L * c)

    total = sum(per_pos)
    overall = {"mac_utilization": sum(macs + attention_macs(mc, p) for p in range(len(per_pos)))
               / (R_L * total),
               "weight_utilization": macs * len(per_pos) / (R_L * total),
               "cycles_per_token": total / len(per_pos)}
    pick = [p for p in (0, 1, 63, 127, 255) if p < len(per_pos)]
    rows = [{"position": p, "cycles": per_pos[p], "predicted": prog.step_cycles(p),
             "mac_utilization": util(p, per_pos[p])} for p in pick]
    speed = {sim: {"tokens": len(r.tokens), "cycles": r.cycles, "seconds": r.seconds,
                   "tokens_per_s": len(r.tokens) / r.seconds,
                   "cycles_per_s": r.cycles / r.seconds} for sim, r in runs.items()}
    result = {"model": name, "config": prog.cfg.ident, "instructions": len(prog.program),
              "step_cycles": f"{prog.step_cycles(0)} at position 0, "
                             f"{prog.step_cycles(len(per_pos) - 1)} at {len(per_pos) - 1} "
                             f"(the compiler's sum of issue slots)",
              "macs_per_token": macs, "mac_units": R_L, "rows": rows, "speed": speed,
              "overall": overall,
              "per_position": per_pos}
    (out_dir / "decode.json").write_text(json.dumps(result, indent=1))
    lines = [f"Decode, {name}, tile {prog.cfg.ident} ({len(prog.program)} instructions), "
             f"greedy from BOS. Cycles per position: {result['step_cycles']}.", "",
             "| position | cycles/token (Verilator) | predicted | MAC-array utilization |",
             "|---|---|---|---|"]
    lines += [f"| {r['position']} | {r['cycles']:,} | {r['predicted']:,} | "
              f"{100 * r['mac_utilization']:.1f}% |" for r in rows]
    lines += [f"| all {len(per_pos)} | {overall['cycles_per_token']:,.0f} on average | | "
              f"{100 * overall['mac_utilization']:.1f}% (weight-only "
              f"{100 * overall['weight_utilization']:.1f}%) |"]
    lines += ["", "| simulator | tokens | cycles | wall s | tokens/s | cycles/s |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {sim} | {s['tokens']} | {s['cycles']:,} | {s['seconds']:.1f} | "
              f"{s['tokens_per_s']:.2f} | {s['cycles_per_s']:,.0f} |" for sim, s in speed.items()]
    lines += ["", f"MAC-array utilization = ({macs:,} weight MACs + "
                  f"{attention_macs(mc, 0):,} * (pos + 1) attention MACs) per token / (cycles x "
                  f"{R_L} MAC units); over the run: both summed over the positions. "
                  f"Weight-only: the weight MACs alone (the share of weight-SRAM bandwidth "
                  f"used)."]
    table = "\n".join(lines)
    (out_dir / "decode.md").write_text(table + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(range(len(per_pos)), per_pos, ".", ms=3, label="measured (Verilator)")
        ax.plot(range(len(per_pos)), [prog.step_cycles(p) for p in range(len(per_pos))], "-",
                lw=1, label="compiler prediction")
        ax.set_xlabel("position")
        ax.set_ylabel("cycles per token")
        ax.set_title(f"TinyLPU decode, {name}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "decode.png", dpi=120)
    except ImportError:
        pass
    out(table)
    return result
