"""TinyLPU: Verilog, lint, synthesis, simulation, waveforms and benchmarks of the tile.

Every subcommand takes ``--config`` as ``name=value`` pairs over the defaults of
:class:`tinylpu.Config` (e.g. ``--config lanes=8,rows=2``). Errors are printed as one line
naming the problem, with exit status 2; no tracebacks.
"""

import argparse
import pathlib
import shutil
import sys

from .config import Config, ConfigError


def _config(text):
    try:
        return Config.parse(text or "")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error))


def _shape(text):
    from tinylpu.sim.gemv import parse_shape
    try:
        return parse_shape(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def cmd_verilog(args):
    from .rtlsim import write_verilog
    path = write_verilog(args.config)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, args.output)
        path = args.output
    print(f"wrote {path} ({args.config.ident}: {args.config.rows} rows x "
          f"{args.config.lanes} lanes, {args.config.weight_bytes // 1024} KiB weights, "
          f"{args.config.act_bytes // 1024} KiB activations)")
    return 0


def cmd_lint(args):
    from .rtlsim import lint, write_verilog
    path = write_verilog(args.config)
    warnings = lint(path)
    for line in warnings:
        print(line)
    if warnings:
        print(f"lint: {len(warnings)} warnings or errors in {path}")
        return 1
    print(f"lint: {path} is clean under `verilator --lint-only -Wall` "
          f"(waivers, each with its reason: rtl/lint.vlt)")
    return 0


def cmd_synth(args):
    from .rtlsim import write_verilog
    from .synth import synthesize
    path = write_verilog(args.config)
    cells = synthesize(path, "tinylpu_tile", args.target)
    print(f"{args.target} synthesis of {args.config.ident}: no latches, no logic loops")
    for name, count in sorted(cells.items()):
        print(f"  {count:7d}  {name}")
    return 0


def cmd_sim(args):
    from tinylpu.sim.gemv import run_gemv
    ok = run_gemv(args.config, args.sim, args.shape, seed=args.seed)
    return 0 if ok else 1


def cmd_waves(args):
    from tinylpu.sim.waves import make_waves
    out = args.output or args.config.build_dir() / "waves"
    make_waves(args.config, out)
    return 0


def cmd_bench(args):
    from tinylpu.sim.bench import run_bench
    run_bench(sims=args.sims, out_dir=args.output)
    return 0


def cmd_quality(args):
    import time

    from .intmodel import quantize
    from .model import load_checkpoint, load_tokenizer
    from .quality import PROMPTS, calibration_sequences, evaluate, report_table
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.tokenizer, model.config.vocab_size)
    t0 = time.perf_counter()
    qm = quantize(model, calibration_sequences(model, tok, args.positions))
    print(f"integer model of {args.model}: int8 weights (per-row scales), int16 activations; "
          f"formats (fractional bits) {qm.fmt}")
    reports = []
    for text in args.prompt or PROMPTS:
        report = evaluate(model, qm, tok.encode(text) if text else [1], args.positions)
        report.prompt = text
        reports.append(report)
    print(report_table(reports))
    sizes = qm.footprint()
    print("on-chip footprint: " + ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in sizes.items())
          + f"; total {sum(sizes.values()) / 1024:.1f} KiB")
    print(f"({time.perf_counter() - t0:.1f} s; teacher-forced: the float model's greedy "
          f"sequence fed to both; free-running: tokens equal to the float greedy run)")
    return 0


def _sims(text):
    sims = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in sims if s not in ("icarus", "verilator")]
    if bad or not sims:
        raise argparse.ArgumentTypeError(f"simulators must be icarus and/or verilator, "
                                         f"not {text!r}")
    return sims


def build_parser():
    parser = argparse.ArgumentParser(prog="tinylpu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--config", type=_config, default=Config(),
                       help="tile parameters as name=value,... (default: the defaults of "
                            "tinylpu.Config)")
        p.set_defaults(func=func)
        return p

    p = add("verilog", cmd_verilog, "generate the tile's Verilog under build/<config>/")
    p.add_argument("-o", "--output", type=pathlib.Path, help="also copy it to this path")
    add("lint", cmd_lint, "verilator --lint-only -Wall on the generated Verilog")
    p = add("synth", cmd_synth, "Yosys synthesis: fail on latches, loops, unmapped memories")
    p.add_argument("--target", choices=("generic", "ice40", "ecp5"), default="ice40")
    p = add("sim", cmd_sim, "run a random int8 GEMV on the RTL and compare it with the golden "
                            "model")
    p.add_argument("--sim", choices=("icarus", "verilator", "golden"), default="verilator")
    p.add_argument("--shape", type=_shape, default=(64, 64), help="rows x columns, e.g. 172x64")
    p.add_argument("--seed", type=int, default=0)
    p = add("waves", cmd_waves, "simulate a short GEMV on Icarus; write an FST and a GTKWave "
                                "save file")
    p.add_argument("-o", "--output", type=pathlib.Path,
                   help="directory for tinylpu.fst and tinylpu.gtkw (default build/<config>/waves)")
    p = add("bench", cmd_bench, "GEMV cycles, MAC utilization and simulation speed table")
    p.add_argument("--sims", type=_sims, default=("icarus", "verilator"),
                   help="comma-separated simulators (default icarus,verilator)")
    p.add_argument("-o", "--output", type=pathlib.Path, default=pathlib.Path("build/bench"))
    p = sub.add_parser("quality", help="integer decoder vs the float reference: teacher-forced "
                                        "top-1 agreement and free-running match",
                       description="integer decoder vs the float reference (llama2.c)")
    p.add_argument("--model", type=pathlib.Path, required=True, help="llama2.c checkpoint")
    p.add_argument("--tokenizer", type=pathlib.Path, required=True, help="llama2.c tokenizer")
    p.add_argument("--positions", type=int, default=256, help="positions per prompt")
    p.add_argument("--prompt", action="append",
                   help="a prompt (repeatable; default: a fixed set, BOS only first)")
    p.set_defaults(func=cmd_quality)
    return parser


def main(argv=None):
    from .compiler import CompileError
    from .host import HostError
    from .isa import IsaError
    from .model import ModelError
    from .rtlsim import SimError
    from .synth import SynthError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CompileError, HostError, IsaError, ModelError, SimError, SynthError,
            OSError) as error:
        print(f"tinylpu {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
