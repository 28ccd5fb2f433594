"""TinyLPU: Verilog, lint, synthesis, simulation, waveforms, coverage and benchmarks of the tile.

The tile subcommands take ``--config`` as ``name=value`` pairs over the defaults of
:class:`tinylpu.Config` (e.g. ``--config lanes=8,rows=2``; ``bench`` measures fixed
configurations, ``generate`` picks the smallest that fits unless given one). Errors are printed as one line
naming the problem, with exit status 2; no tracebacks.
"""

import argparse
import pathlib
import shutil
import sys

from tinylpu.config import Config, ConfigError


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
    from tinylpu.flow.rtlsim import write_verilog
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
    from tinylpu.flow.rtlsim import lint, write_verilog
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
    from tinylpu.flow.rtlsim import write_verilog
    from tinylpu.flow.synth import SynthError, synthesize
    if args.paths and args.target != "ecp5":
        raise SynthError(f"--paths estimates ECP5 paths: add --target ecp5 "
                         f"(not {args.target})")
    path = write_verilog(args.config)
    netlist = f"synth-{args.target}.json" if args.paths else None
    cells = synthesize(path, "tinylpu_tile", args.target, netlist=netlist)
    print(f"{args.target} synthesis of {args.config.ident}: no latches, no logic loops")
    for name, count in sorted(cells.items()):
        print(f"  {count:7d}  {name}")
    if args.paths:
        from tinylpu.flow.paths import estimate, format_paths, load_netlist
        for line in format_paths(estimate(load_netlist(path.parent / netlist))):
            print(line)
    return 0


def _placer_option(p):
    from tinylpu.flow.pnr import DEFAULT_PLACER, PLACERS
    p.add_argument("--placer", choices=PLACERS, default=DEFAULT_PLACER,
                   help="nextpnr's placer: static (electrostatic, the default) or heap "
                        "(analytic; docs/fpga.md measures both)")


def cmd_pnr(args):
    from tinylpu.flow.pnr import PnrError, check_request, format_result, place_and_route
    from tinylpu.flow.rtlsim import write_verilog
    check_request(args.target, args.freq, args.timeout_min, args.placer)
    if args.route_placed and (args.place_only or args.seed is not None):
        raise PnrError("--route-placed routes a placement made before: not with "
                       + ("--place-only" if args.place_only else "--seed"))
    path = write_verilog(args.config)
    result = place_and_route(path, "tinylpu_tile", args.target, args.freq, args.timeout_min,
                             args.placer, route=not args.place_only, seed=args.seed,
                             placed_only=args.route_placed)
    what = ("routing of the placement" if args.route_placed else
            "placement" if args.place_only else "place and route")
    print(f"{args.target} {what} of {args.config.ident} on {result.device.name}, "
          f"out of context:")
    for line in format_result(result):
        print(line)
    if args.place_only:
        from tinylpu.flow.congestion import format_congestion, load_placed, plot, rudy
        cong = rudy(load_placed(result.placed))
        for line in format_congestion(cong):
            print(line)
        image = result.placed.with_name(f"pnr-{args.target}-congestion.png")
        plot(cong, image, f"{args.config.ident}: wire demand after placement")
        print(f"  congestion map: {image}")
    return 0 if result.meets_timing else 1


def cmd_fpga(args):
    from tinylpu.flow.fpga import BOARD_CONFIG, build, check_request, format_report
    check_request(args.board, args.tile_mhz, args.baud, args.timeout_min)
    cfg = Config.parse(args.config_text or BOARD_CONFIG)
    result = build(args.board, cfg, args.tile_mhz, args.baud, args.out, args.timeout_min,
                   args.seed, progress=lambda text: print(f"# {text}", flush=True),
                   placer=args.placer)
    for line in format_report(result):
        print(line)
    print(f"  summary: {result.out / 'report.txt'}")
    if not result.meets_timing:
        failing = [f"{clock} {achieved:.2f} MHz < {target:g} MHz"
                   for clock, (achieved, target) in result.pnr.fmax.items()
                   if achieved < target]
        print(f"tinylpu fpga: error: timing fails ({'; '.join(failing)}); no bitstream",
              file=sys.stderr)
        return 1
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
    from tinylpu.sim.decode_bench import run_decode_bench
    if args.part in ("all", "gemv"):
        run_bench(sims=args.sims, out_dir=args.output)
    if args.part in ("all", "decode"):
        run_decode_bench(out_dir=args.output, positions=args.positions)
    return 0


def cmd_profile(args):
    from tinylpu.generate import prepare
    from tinylpu.compiler.profile import parse_positions, run_profile
    positions = None if args.positions is None else parse_positions(args.positions)
    prep = prepare(args.model, args.tokenizer)
    run_profile(prep.program, positions, args.out, name=args.model.name)
    return 0


def cmd_quality(args):
    import time

    from tinylpu.model.intmodel import quantize
    from tinylpu.model import ModelError, load_checkpoint, load_tokenizer
    from tinylpu.model.quality import PROMPTS, calibration_sequences, evaluate, report_table
    if args.kv_shift is not None and args.kv_bits == (16, 16):
        raise ModelError("--kv-shift needs --kv-bits 8 or 16,8 (the int16 KV cache has no "
                         "shifts)")
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.tokenizer, model.config.vocab_size)
    if args.positions > model.config.seq_len:
        raise ModelError(f"--positions {args.positions} is more than the model's seq_len "
                         f"({model.config.seq_len})")
    texts = args.prompt or PROMPTS
    lengths = [len(tok.encode(text)) if text else 1 for text in texts]
    if max(lengths) >= args.positions:
        n, text = max(zip(lengths, texts))
        what = f"--prompt {text!r}" if args.prompt else f"the default prompt {text!r}"
        raise ModelError(f"{what} has {n} tokens: --positions {args.positions} leaves no "
                         f"position to evaluate (use at least {n + 1})")
    t0 = time.perf_counter()
    qm = quantize(model, calibration_sequences(model, tok, args.positions),
                  kv_bits=args.kv_bits, kv_shift=args.kv_shift or "layer-max",
                  q_bits=args.q_bits)
    print(f"integer model of {args.model}: int8 weights (per-row scales), int16 activations; "
          f"formats (fractional bits) {qm.fmt}")
    if qm.kv_bits != (16, 16):
        k, v = qm.kv_shifts()
        whose = ("the default program's, PV passes" if qm.kv_bits == (16, 8) else
                 "the integer model only; the tile's K is int16")
        print(f"{qm.k_bits}-bit K and {qm.v_bits}-bit V cache ({whose}), shifts by "
              f"{args.kv_shift or 'layer-max'} (layer x kv head): K {k.tolist()}, "
              f"V {v.tolist()}")
    if qm.q_bits != 16:
        tile = "the tile's" if qm.q_bits == 8 else "the integer model only; the tile's is 8"
        print(f"{qm.q_bits}-bit q ({tile}), RoPE's extra shifts (layer x head): "
              f"{qm.q_shift.tolist()}")
    reports = []
    for text in texts:
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


def cmd_generate(args):
    import time

    from tinylpu.compiler.decoder import check_positions
    from tinylpu.generate import generate, measured_steps, parse_prompt, prepare
    from tinylpu.host import STATUS_DONE
    from tinylpu.model import ModelError, load_checkpoint, load_tokenizer
    out = sys.stdout
    if args.device is not None:
        if args.sim is not None or args.board is not None:
            raise ConfigError(f"--device runs on the board at {args.device}: leave out "
                              f"{'--sim' if args.sim is not None else '--board'}")
    elif args.board is not None and args.sim not in (None, "verilator"):
        raise ConfigError(f"--board simulates the board top (UART bridge and tile) on "
                          f"Verilator: use --sim verilator, not --sim {args.sim}")
    if args.device is None and args.sim is None:
        args.sim = "verilator"
    device = args.device
    if device is not None:       # a port that cannot be opened fails before anything else
        from tinylpu.link import open_serial
        device = open_serial(device, args.baud)
    if args.waves and args.sim != "icarus":
        raise ConfigError(f"--waves needs --sim icarus (waveforms come from Icarus runs; "
                          f"Verilator and the golden model write none), not --sim {args.sim}")
    t0 = time.perf_counter()
    config = args.config_text and Config.parse(args.config_text)
    # the request is checked before the (slower) quantization and compilation
    model = load_checkpoint(args.model)
    mc = model.config
    tok = args.tokenizer and load_tokenizer(args.tokenizer, mc.vocab_size)
    prompt = parse_prompt(args.prompt, tok or None, mc.vocab_size)
    if args.positions is not None and args.positions > mc.seq_len:
        raise ModelError(f"--positions {args.positions} is more than the model's seq_len "
                         f"({mc.seq_len})")
    check_positions(len(prompt), args.steps, args.positions or mc.seq_len)
    prep = prepare(args.model, args.tokenizer, args.positions, config, model=model,
                   passes=args.attention == "passes")
    prog, tok = prep.program, prep.tokenizer
    prog.check_request(len(prompt), args.steps)
    stamps, _ = prog.predict(len(prompt), args.steps)
    if args.device is not None:
        where = f"device {args.device} at {args.baud} baud (serial link)"
    elif args.board is not None:
        where = f"sim verilator, board top {args.board} (UART bridge and tile, via a pty)"
    else:
        where = f"sim {args.sim}"
    print(f"# {args.model}: dim {mc.dim}, {mc.n_layers} layers, vocab {mc.vocab_size}; "
          f"tile {prog.cfg.ident}, KV cache {prog.positions} positions; "
          f"{len(prog.program)} instructions; {where} "
          f"(prepared in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    print(f"# predicted: {prog.step_cycles(0)} cycles at position 0, "
          f"{prog.step_cycles(prog.positions - 1)} at position {prog.positions - 1}",
          file=sys.stderr)
    show_progress = sys.stderr.isatty()
    state = {"n": 0, "prev": prompt[-1], "t0": time.perf_counter()}
    if tok is not None:
        shown = prompt[1:] if prompt[0] == 1 else prompt
        out.write(tok.decode_all(shown).decode("utf-8", "replace"))
    else:
        out.write(",".join(str(i) for i in prompt))
    out.flush()

    def on_token(token, cycle):
        n = state["n"]
        if tok is not None:
            out.write(tok.decode(state["prev"], token).decode("utf-8", "replace"))
        else:
            out.write(f",{token}")
        out.flush()
        state["prev"], state["n"] = token, n + 1
        if show_progress:
            el = time.perf_counter() - state["t0"]
            sys.stderr.write(f"\r\x1b[K# {n + 1}/{args.steps} tokens, cycle {cycle:,}, "
                             f"{el:.1f} s\r")
            sys.stderr.flush()

    run = generate(prep, prompt, args.steps, args.sim, on_token=on_token, waves=args.waves,
                   counters=args.counters, board=args.board, device=device,
                   baud=args.baud)
    out.write("\n")
    if show_progress:
        sys.stderr.write("\x1b[K")
    ok = run.status == STATUS_DONE and run.stamps == stamps
    steps = measured_steps(prog, len(prompt), run.stamps)
    per_tok = [c for _, c in steps]
    print(f"# {len(run.tokens)} tokens, {run.cycles:,} cycles; status {run.status:#x}; "
          f"emission cycles {'==' if run.stamps == stamps else '!='} compiler prediction",
          file=sys.stderr)
    if per_tok:
        print(f"# cycles/token measured: {per_tok[0]:,} (pos {steps[0][0]}) .. {per_tok[-1]:,} "
              f"(pos {steps[-1][0]}); {run.seconds:.1f} s wall, "
              f"{len(run.tokens) / run.seconds:.2f} tokens/s, "
              f"{run.cycles / run.seconds:,.0f} cycles/s", file=sys.stderr)
    if run.link is not None:
        st = run.link
        naks = ", ".join(f"{getattr(k, 'name', k)} {v}" for k, v in st["naks"].items()) or "none"
        line = (f"# serial link: {st['sent']} frames sent, {st['retransmits']} sent again, "
                f"{st['timeouts']} timeouts, NAKs: {naks}, {st['bad_frames']} bad frames "
                f"received")
        if "CYCLES" in st:
            line += (f"; the simulated board ran {st['CYCLES']:,} cycles, {st['BYTES_IN']:,} "
                     f"bytes in, {st['BYTES_OUT']:,} out")
        print(line, file=sys.stderr)
    if args.waves and args.sim == "icarus":
        print(f"# waves: {args.waves}", file=sys.stderr)
    if args.counters:
        from tinylpu.host import format_counters
        print("# busy counters of the run (READ TARGET_COUNTERS):\n" + format_counters(
            run.counters), file=sys.stderr)
    if not ok:
        print("tinylpu generate: error: the run's status or emission cycles differ from the "
              "prediction", file=sys.stderr)
        return 1
    return 0


def cmd_coverage(args):
    from tinylpu.flow.coverage import report
    report(args.dat, args.output, limit=args.top, annotate=not args.no_annotate)


def cmd_fit(args):
    from tinylpu.flow.fit import DEVICES, FitError, format_table, model_fit, tile_fit
    from tinylpu.model import load_checkpoint
    if args.device not in DEVICES:
        raise FitError(f"unknown device {args.device!r}: one of {', '.join(DEVICES)}")
    have = DEVICES[args.device]["dp16kd"]
    if args.model is None:
        if args.positions is not None:
            raise FitError("--positions needs --model (the KV cache is sized for a model)")
        if args.kv_bits is not None:
            raise FitError("--kv-bits needs --model (the KV cache is sized for a model)")
        if args.attention != "passes":
            raise FitError("--attention needs --model (the program decides the memories)")
        cfg = Config.parse(args.config_text)
        print(f"tile {cfg.ident} on {args.device}:")
        print("\n".join(format_table(cfg, args.device)))
        used = tile_fit(cfg, args.device)[0]
        if used > have:
            print(f"does not fit: {used} block RAMs needed, {args.device} has {have}")
            return 1
        return 0
    overrides = {}
    if args.config_text:
        given = Config.parse(args.config_text)
        names = [item.partition("=")[0].strip() for item in args.config_text.split(",")
                 if item.strip()]
        overrides = {name: getattr(given, name) for name in names}
    model = load_checkpoint(args.model)
    mc = model.config
    kv_bits = args.kv_bits or 16
    passes = args.attention == "passes"
    fit = model_fit(model, args.positions, args.device, overrides, kv_bits, passes=passes)
    positions, cfg, used = fit.positions, fit.cfg, fit.blocks
    what = ("the longest context that fits" if args.positions is None
            else "the requested context")
    kv = ("K int16, V^T 8-bit in the weight banks (PV passes)" if passes else
          "int16 KV cache" if kv_bits == 16 else
          f"{kv_bits}-bit KV cache: an ESTIMATE, the RTL's cache is int16; the activation "
          f"banks sized for two positions a word")
    print(f"{args.model}: dim {mc.dim}, {mc.n_layers} layers, vocab {mc.vocab_size}, "
          f"seq_len {mc.seq_len}; {what}: {positions} positions ({kv}); "
          f"tile {cfg.ident}")
    print("\n".join(format_table(cfg, args.device)))
    if used > have:
        print(f"does not fit: {positions} positions need {used} block RAMs, {args.device} "
              f"has {have} (without --positions: the longest context that fits)")
        return 1
    if args.positions is None:
        print(f"longest context on {args.device}: {positions} positions"
              + (" (the model's seq_len)" if fit.next_blocks is None else
                 f"; {positions + 1} positions would need {fit.next_blocks} block RAMs")
              + ("" if kv_bits == 16 else f" (estimated for an {kv_bits}-bit KV cache)"))
    return 0


KV_BITS_CHOICES = {"16": (16, 16), "8": (8, 8), "16,8": (16, 8)}


def _kv_bits(text):
    """--kv-bits of `tinylpu quality`: (K bits, V bits)."""
    if text not in KV_BITS_CHOICES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(KV_BITS_CHOICES)} "
                                         f"(K and V, or K,V), not {text!r}")
    return KV_BITS_CHOICES[text]


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def _sims(text):
    sims = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in sims if s not in ("icarus", "verilator")]
    if bad or not sims:
        raise argparse.ArgumentTypeError(f"simulators must be icarus and/or verilator, "
                                         f"not {text!r}")
    return sims


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line naming the problem (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    from tinylpu.flow.fpga import BOARDS
    parser = _Parser(prog="tinylpu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def add(name, func, help, config=True):
        p = sub.add_parser(name, help=help, description=help)
        if config:
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
    p.add_argument("--paths", action="store_true",
                   help="with --target ecp5: estimate every register-to-register path's "
                        "delay and print the slow ones by block (docs/fpga.md, Timing)")
    p = add("pnr", cmd_pnr, "Yosys and nextpnr place and route: post-route Fmax, utilisation, "
                            "critical path; exit status 1 if timing fails")
    p.add_argument("--target", choices=("ecp5",), default="ecp5",
                   help="ecp5: LFE5U-85F, speed grade 6, out of context (default)")
    p.add_argument("--freq", type=float, default=100.0, help="target clock in MHz (default 100)")
    p.add_argument("--timeout-min", type=float, default=60.0,
                   help="stop synthesis and place and route after this many minutes "
                        "(default 60)")
    p.add_argument("--place-only", action="store_true",
                   help="stop after placement: nextpnr's Fmax estimate, the wire demand by "
                        "block and a congestion map (docs/fpga.md)")
    p.add_argument("--route-placed", action="store_true",
                   help="route the placement an earlier --place-only run of the same --config "
                        "wrote (build/<config>/pnr-ecp5-placed.json): no synthesis or placement")
    p.add_argument("--seed", type=int, help="nextpnr's placement seed")
    _placer_option(p)
    p = sub.add_parser("fpga", help="the board build: Yosys, nextpnr-ecp5 and ecppack of the "
                                     "tile behind the serial bridge, with the board's pins, "
                                     "PLL and clock constraint; exit status 1 if timing fails",
                       description="build a bitstream of the board top (rtl/board.py) for an "
                                   "ECP5 board and report post-route Fmax, the critical path "
                                   "and LUT/FF/DSP/BRAM use (docs/fpga.md, Board build)")
    p.add_argument("--board", default="ulx3s-85f", help="ulx3s-85f (default) or ecpix5-85f")
    p.add_argument("--config", dest="config_text", default="",
                   help="tile parameters name=value,... (default: the small board tile "
                        "lanes=4,rows=2,wdepth=64,adepth=16,pdepth=16,tdepth=16,mdepth=16,"
                        "rdepth=16; the default tile does not route yet)")
    p.add_argument("--tile-mhz", type=float, default=30.0,
                   help="tile clock in MHz, made by the PLL from the board's oscillator "
                        "(default 30)")
    p.add_argument("--baud", type=_positive, default=3_000_000,
                   help="UART baud rate (default 3000000); the tile clock must divide it "
                        "within 2%%")
    p.add_argument("--out", type=pathlib.Path,
                   help="directory for the build (default build/fpga/<board>/<config>)")
    p.add_argument("--timeout-min", type=float, default=60.0,
                   help="stop the build after this many minutes (default 60)")
    p.add_argument("--seed", type=int, help="nextpnr's placement seed")
    _placer_option(p)
    p.set_defaults(func=cmd_fpga)
    p = add("sim", cmd_sim, "run a random int8 GEMV on the RTL and compare it with the golden "
                            "model")
    p.add_argument("--sim", choices=("icarus", "verilator", "golden"), default="verilator")
    p.add_argument("--shape", type=_shape, default=(64, 64), help="rows x columns, e.g. 172x64")
    p.add_argument("--seed", type=int, default=0)
    p = add("waves", cmd_waves, "simulate a short GEMV on Icarus; write an FST and a GTKWave "
                                "save file")
    p.add_argument("-o", "--output", type=pathlib.Path,
                   help="directory for tinylpu.fst and tinylpu.flow.gtkw (default build/<config>/waves)")
    p = add("bench", cmd_bench, "GEMV and decode cycles, MAC utilization and simulation "
                                "speed tables (fixed tile configurations: no --config)",
            config=False)
    p.add_argument("--sims", type=_sims, default=("icarus", "verilator"),
                   help="comma-separated simulators for the GEMV part (default icarus,verilator)")
    p.add_argument("--part", choices=("all", "gemv", "decode"), default="all")
    p.add_argument("--positions", type=_positive, default=256,
                   help="decode positions measured on Verilator (default 256)")
    p.add_argument("-o", "--output", type=pathlib.Path, default=pathlib.Path("build/bench"))
    from tinylpu.model.intmodel import KV_SHIFT_RULES
    p = sub.add_parser("quality", help="integer decoder vs the float reference: teacher-forced "
                                        "top-1 agreement and free-running match",
                       description="integer decoder vs the float reference (llama2.c)")
    p.add_argument("--model", type=pathlib.Path, required=True, help="llama2.c checkpoint")
    p.add_argument("--tokenizer", type=pathlib.Path, required=True, help="llama2.c tokenizer")
    p.add_argument("--positions", type=_positive, default=256,
                   help="positions per prompt (at most the model's seq_len)")
    p.add_argument("--prompt", action="append",
                   help="a prompt (repeatable; default: a fixed set, BOS only first)")
    p.add_argument("--kv-bits", type=_kv_bits, default=(16, 8), metavar="BITS",
                   help="KV-cache element width: 16,8 (K int16, V 8-bit: the default "
                        "program's, PV passes), 16 (K and V: PV's) or 8 (K and V: the "
                        "integer model only); a narrow cache's static shifts come from "
                        "calibration")
    p.add_argument("--q-bits", type=int, choices=(8, 16), default=8,
                   help="q's width after RoPE: 8 (the tile's, default: static shifts per "
                        "layer and head from calibration) or 16 (the integer model only)")
    p.add_argument("--kv-shift", choices=KV_SHIFT_RULES,
                   help="with a narrow cache: one shift per layer or per layer and kv head, "
                        "keeping the calibration maximum (max) or of least squared error "
                        "(mse); default layer-max")
    p.set_defaults(func=cmd_quality)
    p = sub.add_parser("generate", help="generate tokens with the decoder on the tile (RTL "
                                         "simulation or the golden model)",
                       description="compile a llama2.c model for the tile and generate "
                                   "greedily: the tile runs prefill and generation itself")
    p.add_argument("--model", type=pathlib.Path, required=True, help="llama2.c checkpoint")
    p.add_argument("--tokenizer", type=pathlib.Path,
                   help="llama2.c tokenizer: the prompt is text (else comma-separated ids)")
    p.add_argument("--prompt", help='text, or ids like "1,403,261" (default: BOS alone)')
    p.add_argument("--steps", type=_positive, default=32, help="tokens to generate")
    p.add_argument("--sim", choices=("verilator", "icarus", "golden"),
                   help="simulator (default verilator; not with --device)")
    p.add_argument("--board", choices=tuple(BOARDS),
                   help="with --sim verilator: simulate the whole board top (UART bridge and "
                        "tile) and drive it through the serial-link host code over a pty")
    p.add_argument("--device", help="run on a board: its serial port (e.g. /dev/ttyUSB0) or "
                                    "a pyserial URL; the tile must be built with --config")
    p.add_argument("--baud", type=_positive, default=3_000_000,
                   help="the serial link's baud rate with --device (default 3000000)")
    p.add_argument("--positions", type=_positive,
                   help="KV-cache positions to compile for (default: the model's seq_len)")
    p.add_argument("--config", dest="config_text", default="",
                   help="tile parameters name=value,... (default: the smallest that fits)")
    p.add_argument("--waves", type=pathlib.Path, help="write an FST waveform (icarus only)")
    p.add_argument("--counters", action="store_true",
                   help="read the tile's busy counters after the run and print them")
    p.add_argument("--attention", choices=("pv", "passes"), default="passes",
                   help="p.V as PV passes over V^T in the weight banks (an 8-bit V cache; "
                        "the default) or as PV (an int16 V cache in an activation bank, on a "
                        "tile with PV's datapath)")
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("profile", help="per-unit timeline (Gantt chart) and busy shares of a "
                                        "decode step, from the compiler's schedule",
                       description="compile a llama2.c model for the tile and chart what "
                                   "each unit does in the decode step at given positions")
    p.add_argument("--model", type=pathlib.Path, required=True, help="llama2.c checkpoint")
    p.add_argument("--tokenizer", type=pathlib.Path, help="llama2.c tokenizer (calibration)")
    p.add_argument("--positions", help="comma-separated positions (default: 0,255, or 0 and "
                                       "the last compiled position)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("build/profile"),
                   help="directory for profile.png and profile.md (default build/profile)")
    p.set_defaults(func=cmd_profile)
    p = sub.add_parser("coverage", help="merge the Verilator coverage files of `make coverage` "
                                         "and print line, branch and toggle coverage per block",
                       description="merge the coverage files the Verilator runs left under "
                                   "TINYLPU_COVERAGE=1 and summarize line, branch and toggle "
                                   "coverage per block, with the uncovered lines and signals")
    p.add_argument("--dat", type=pathlib.Path, default=pathlib.Path("build/coverage/dat"),
                   help="directory of the runs' .dat files (default build/coverage/dat)")
    p.add_argument("-o", "--output", type=pathlib.Path, default=pathlib.Path("build/coverage"),
                   help="directory for merged.dat, summary.json, summary.txt and annotated/ "
                        "(default build/coverage)")
    p.add_argument("--top", type=_positive, default=10,
                   help="uncovered signals listed per block (default 10)")
    p.add_argument("--no-annotate", action="store_true",
                   help="skip verilator_coverage (annotated sources and the cross-check)")
    p.set_defaults(func=cmd_coverage)
    p = sub.add_parser("fit", help="block RAMs (DP16KD) per memory against an ECP5 device, "
                                    "and the longest context of a model that fits",
                       description="count the block RAMs the tile needs, memory by memory, "
                                   "before synthesis; with --model, size the tile for the "
                                   "model and pick the longest context (KV-cache positions) "
                                   "that fits the device")
    p.add_argument("--model", type=pathlib.Path, help="llama2.c checkpoint")
    p.add_argument("--device", default="LFE5U-85F",
                   help="LFE5U-85F (default), LFE5U-45F, LFE5U-25F or LFE5U-12F")
    p.add_argument("--positions", type=_positive,
                   help="KV-cache positions to size the tile for (default: the longest that "
                        "fits)")
    p.add_argument("--config", dest="config_text", default="",
                   help="tile parameters name=value,...; with --model, the fields fixed "
                        "over the sizes the model needs (e.g. lanes=16,rows=4)")
    p.add_argument("--kv-bits", type=int, choices=(8, 16),
                   help="with --model: KV-cache width, 16 (the RTL's, default) or 8 (an "
                        "estimate: the RTL has no 8-bit cache)")
    p.add_argument("--attention", choices=("pv", "passes"), default="passes",
                   help="with --model: the program's attention, as for generate: PV passes "
                        "(the default: V^T, 8-bit, in the weight banks' tail; K over both "
                        "activation banks) or PV (int16 K and V caches)")
    p.set_defaults(func=cmd_fit)
    return parser


def main(argv=None):
    from tinylpu.compiler import CompileError
    from tinylpu.flow.congestion import CongestionError
    from tinylpu.flow.coverage import CoverageError
    from tinylpu.flow.fit import FitError
    from tinylpu.flow.fpga import FpgaError
    from tinylpu.host import HostError
    from tinylpu.isa import IsaError
    from tinylpu.link import LinkError
    from tinylpu.model import ModelError
    from tinylpu.flow.paths import PathError
    from tinylpu.flow.pnr import PnrError
    from tinylpu.flow.rtlsim import SimError
    from tinylpu.flow.synth import SynthError
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CompileError, CongestionError, CoverageError, FitError, FpgaError,
            HostError, IsaError, LinkError, ModelError, PathError, PnrError, SimError,
            SynthError, OSError) as error:
        print(f"tinylpu {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
