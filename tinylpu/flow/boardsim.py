"""The board path without a board: the whole board top (bridge and tile) on Verilator behind
a pseudo-terminal, driven by the same host code as a real board's serial port.

``tb/board_pty.cpp`` is the harness: it simulates ``tinylpu_board`` (rtl/board.py's
:class:`~tinylpu.rtl.board.BoardTop` without the PLL: the simulator's clock is the tile clock)
and models the serial line between the pty and the UART pins at the board's divisor (clock
cycles per bit). :func:`board_sim` builds it, starts it and opens the pty with pyserial:
from there on a :class:`~tinylpu.link.Link` sees what it would see on ``/dev/ttyUSB0``, and
:func:`tinylpu.link.run_link` (which ``tinylpu generate`` uses for ``--device`` and for
``--sim verilator --board``) is the one routine that loads the tile and runs a GENERATE
through the link.

Simulated time is slower than a board's: the link's timeouts are stretched
(:data:`SIM_TIMEOUT`, :data:`SIM_BYTE_TIME`).
"""

__all__ = ["BoardSimError", "board_sim", "BoardSim", "build_board", "start_board",
           "finish_board",
           "SIM_TIMEOUT", "SIM_BYTE_TIME"]

import contextlib
import hashlib
import os
import pathlib
import subprocess

from tinylpu.link import Link
from tinylpu.flow.rtlsim import ROOT, TB_DIR, SimError, build_lock, prepare_env, replace_text

HARNESS = TB_DIR / "board_pty.cpp"
TOP = "tinylpu_board"
# the link's answer timeout and time per byte on the wire, in wall seconds, under simulation
# (a byte is 10 * divisor cycles; the harness runs at 10^4 .. 10^5 cycles/s)
SIM_TIMEOUT = 2.0
SIM_BYTE_TIME = 0.01


class BoardSimError(SimError):
    """The board simulation could not be built, started, or it stopped."""


def build_board(cfg, *, root=None, **board_kw):
    """Build the board top of ``cfg`` (``BoardTop(cfg, use_pll=False, **board_kw)``) with the
    pty harness; returns ``(executable, divisor)``. Rebuilt only when the Verilog changes."""
    from tinylpu.rtl.board import DEFAULT_BAUD, DEFAULT_TILE_HZ, generate_verilog
    from tinylpu.rtl.uart import divisor_for
    kw = {"clk_hz": DEFAULT_TILE_HZ, "tile_hz": DEFAULT_TILE_HZ, **board_kw, "use_pll": False}
    divisor = divisor_for(kw["tile_hz"], kw.get("baud", DEFAULT_BAUD))
    prepare_env("verilator")
    work = cfg.build_dir(root or ROOT / "build") / f"board-{divisor}"
    work.mkdir(parents=True, exist_ok=True)
    vfile = work / f"{TOP}.v"
    text = generate_verilog(cfg, **kw)
    exe = work / "obj" / "board_pty"
    stamp = work / "obj" / "built-from.txt"
    key = hashlib.sha256((text + HARNESS.read_text()).encode()).hexdigest()
    with build_lock(work):
        replace_text(vfile, text)
        if exe.exists() and stamp.exists() and stamp.read_text() == key:
            return exe, divisor
        _build(work, vfile, exe)
        stamp.write_text(key)
    return exe, divisor


def _build(work, vfile, exe):
    """Verilator's build of ``vfile`` with the pty harness into ``exe`` (``work/obj``)."""
    cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
           "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "-Wno-style",
           "--top-module", TOP, "-Mdir", str(work / "obj"), "-o", "board_pty",
           "-j", str(min(4, os.cpu_count() or 1)), str(vfile), str(HARNESS)]
    log = work / "build.log"
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode or not exe.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BoardSimError(f"verilator build of the board top failed (exit "
                            f"{proc.returncode}); log: {log}\n{tail}")


class _SimPort:
    """The pyserial port of the pty, checking on every read that the simulation still runs
    (a dead simulation would otherwise look like a silent board)."""

    def __init__(self, serial, proc):
        self.serial, self.proc = serial, proc

    @property
    def in_waiting(self):
        return self.serial.in_waiting

    def read(self, n):
        if self.proc.poll() is not None:
            raise BoardSimError(f"the board simulation stopped (exit {self.proc.returncode})")
        return self.serial.read(n)

    def write(self, data):
        return self.serial.write(data)


class BoardSim:
    """A running board simulation: ``link`` (a :class:`Link` on its pty, through a port
    wrapper that notices a dead simulation), ``divisor``; after it ends,
    ``stats`` (the harness's counts: CYCLES, BYTES_IN, BYTES_OUT, FRAMING_ERRORS)."""

    def __init__(self, proc, serial, divisor, link):
        self.proc, self.serial, self.divisor, self.link = proc, serial, divisor, link
        self.stats = {}


def start_board(cfg, *, root=None, max_cycles=0, **board_kw):
    """Build and start the board simulation of ``cfg`` without opening its pty; returns
    ``(process, pty_path, divisor)``. Whoever opens the pty and closes it again ends the
    simulation (or terminate the process)."""
    exe, divisor = build_board(cfg, root=root, **board_kw)
    proc = subprocess.Popen([str(exe), str(divisor), str(max_cycles)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PTY "):
        proc.kill()
        raise BoardSimError(f"the board simulation did not start: {line!r} "
                            f"{proc.stderr.read()[-300:]}")
    return proc, line.split()[1], divisor


def finish_board(proc, timeout=10):
    """Wait for a board simulation to end (kill it after ``timeout`` s); returns its counts
    (CYCLES, BYTES_IN, BYTES_OUT, FRAMING_ERRORS)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    stats = {}
    for line in out.splitlines():
        name, _, value = line.partition(" ")
        if value.isdigit():
            stats[name] = int(value)
    return stats


@contextlib.contextmanager
def board_sim(cfg, *, root=None, max_cycles=0, link_kw=None, **board_kw):
    """Build and start the board simulation of ``cfg``; yields a :class:`BoardSim`. On exit
    the pty is closed, the harness ends and reports its counts into ``stats``."""
    try:
        import serial
    except ImportError:
        raise BoardSimError("pyserial is not installed: run `make setup`") from None
    proc, path, divisor = start_board(cfg, root=root, max_cycles=max_cycles, **board_kw)
    sim = None
    try:
        port = serial.Serial(path, timeout=0.002)
        kw = {"timeout": SIM_TIMEOUT, "byte_time": SIM_BYTE_TIME, **(link_kw or {})}
        sim = BoardSim(proc, port, divisor, Link(_SimPort(port, proc), **kw))
        yield sim
    finally:
        if sim is not None:
            sim.serial.close()      # the harness sees the pty closed and stops
        else:
            proc.terminate()
        stats = finish_board(proc)
        if sim is not None:
            sim.stats = stats
