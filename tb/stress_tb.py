"""cocotb testbench of the tile under a hostile host: random input gaps, random output ready,
ready held low through (a window of) a GENERATE, resets in the middle of a run or of a
command. The pytest driver is ``tb/test_stress.py``; it builds the phases and the golden
model's expectations, this module only drives and records (``tinylpu.flow.rtlsim.run_streams``
with ``test_module="stress_tb"``).

``TINYLPU_CASES`` is a JSON list of *phases*, run one after the other in one simulation:

- ``name``, ``seed`` (every random choice of the phase comes from ``random.Random(seed)``);
- ``stream``: host beats to send. Between two beats ``host_in.valid`` drops for a random
  ``0 .. gap_max`` cycles (with random junk on the payload); a beat the tile is not ready
  for is held, payload stable, until it is taken;
- ``ready_p``: outside runs ``host_out.ready`` is high with this probability, drawn anew
  every cycle (1: always high);
- ``runs``: indices of the stream beats whose acceptance starts a run (the second header
  word of a RUN or of a GENERATE that runs); ``run_policy``, one per run: ``ready`` "high"
  or "low" from the run's start cycle (cycle 0) to its done cycle, and optionally
  ``window`` [a, b]: ready low in run cycles a .. b-1 instead;
- ``reset``: none, or ``{"run": k, "at": r, "len": n}`` (``rst`` high from cycle r of the
  phase's k-th run, counted from its start cycle = 0, for n cycles), or ``{"after_send": w,
  "len": n}`` (w cycles after the last beat was sent); with ``"watch": {"signals": {name:
  value}, "cycles": q}``, each signal (a hierarchical name below the top, e.g.
  ``"router.y_en"``: Icarus shows every signal, Verilator only the ports) must hold its
  value in the q cycles from the one after ``rst`` falls;
- ``n_response``: beats to wait for (after the phase's runs, unless one is reset); then an
  ``after_send`` reset; then ``quiet`` more cycles with ready high, in which nothing more may
  arrive (an extra beat is recorded like any other);
- ``max_cycles``: the phase's budget (a hang is recorded as ``timeout``, and ends the
  simulation).

Python wakes per input beat, per output cycle outside runs, and a few times per run (its
start, the edges of a ready window, its end): never per cycle while the tile runs.

Written to ``TINYLPU_MEASURED``, one dict per phase: ``beats`` ([payload, time ns] of every
beat taken, in order), ``starts`` (per run: the time its start cycle began), ``runs``
([rise, fall] times of ``running`` that began in the phase), ``violations`` (an output beat
offered outside a run, not taken, and then changed or withdrawn, without a reset),
``in_ready_at_reset`` (``host_in.ready`` in the cycle before an ``after_send`` reset),
``reset_noise`` ([name, cycle after the reset, value] of every watched signal that did not
hold its value) and ``reset_watched`` (the samples taken),
``timeout``, and how hostile the host was: ``stalls`` (cycles an output beat was offered
outside a run and not taken), ``dropped`` (the same in a run: emission beats lost), ``gaps``
(idle input cycles), ``waits`` (input beats the tile was not ready for at first).
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (ClockCycles, Event, FallingEdge, First, ReadOnly, RisingEdge,
                             with_timeout)
from cocotb.utils import get_sim_time

CLOCK_NS = 10


class StressTB:
    def __init__(self, dut):
        self.dut = dut
        self.beats = []             # [payload, time] of every output beat taken
        self.violations = []
        self.runs = []              # [rise, fall] of running
        self.run_next = None        # the policy of a run starting in the next cycle
        self.ready_p = 1.0
        self.rng = random.Random(0)
        self.resets = 0
        self.reset_done = Event()
        self.noise = []             # watched signals that moved after a reset
        self.watched = 0            # ... and the samples taken
        self.beat_event, self.run_event = Event(), Event()   # a beat taken, a run ended
        # how hostile the host was: output beats offered and not taken (outside runs:
        # stalls; in a run: dropped), idle input cycles, input beats the tile was not ready for
        self.stats = dict(stalls=0, dropped=0, gaps=0, waits=0)
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())

    async def reset(self, cycles=2):
        dut = self.dut
        dut.rst.value = 1
        dut.host_in__valid.value = 0
        dut.host_in__payload.value = 0
        dut.host_out__ready.value = 0
        await ClockCycles(dut.clk, cycles)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        for coro in (self._monitor(), self._watch_runs(), self._ready_driver()):
            cocotb.start_soon(coro)

    # output side ------------------------------------------------------------------------

    async def _monitor(self):
        """Every handshake on ``host_out`` (sampled in ReadOnly), and the stream rule outside
        runs: a beat offered and not taken stays offered, unchanged, in the next cycle."""
        dut = self.dut
        stalled = None
        while True:
            await ReadOnly()
            valid, ready = bool(dut.host_out__valid.value), bool(dut.host_out__ready.value)
            payload = int(dut.host_out__payload.value) if valid else None
            now = get_sim_time(unit="ns")
            if dut.rst.value:
                stalled = None
            else:
                if stalled is not None and payload != stalled:
                    then = "withdrawn" if payload is None else hex(payload)
                    self.violations.append(f"t={now}: beat {stalled:#x} offered, not taken, "
                                           f"then {then}")
                stalled = payload if valid and not ready and not dut.running.value else None
                if valid and not ready:
                    self.stats["dropped" if dut.running.value else "stalls"] += 1
                if valid and ready:
                    self.beats.append([payload, now])
                    self.beat_event.set()
            if valid or stalled is not None:
                await RisingEdge(dut.clk)
            else:
                await RisingEdge(dut.host_out__valid)

    async def _watch_runs(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.running)
            rise = get_sim_time(unit="ns")
            await FallingEdge(dut.running)
            self.runs.append([rise, get_sim_time(unit="ns")])
            self.run_event.set()

    async def _ready_driver(self):
        """``host_out.ready``: random per cycle outside runs; a run's policy from its start
        cycle (announced by the sender in the cycle before) until it ends or is reset."""
        dut = self.dut
        while True:
            if self.run_next is not None:
                policy, self.run_next = self.run_next, None
                await self._run_ready(policy)        # returns in the cycle after the run
            dut.host_out__ready.value = int(self.rng.random() < self.ready_p)
            await RisingEdge(dut.clk)

    async def _run_ready(self, policy):
        dut = self.dut
        self.reset_done.clear()
        base = 0 if policy.get("ready") == "low" else 1
        dut.host_out__ready.value = base
        window = policy.get("window")
        if window:
            a, b = window
            await ClockCycles(dut.clk, a)
            dut.host_out__ready.value = 0
            await ClockCycles(dut.clk, b - a)
            dut.host_out__ready.value = base
        await First(FallingEdge(dut.running), self.reset_done.wait())

    # input side -------------------------------------------------------------------------

    async def send(self, phase, rng, starts):
        dut = self.dut
        runs = {index: k for k, index in enumerate(phase.get("runs", []))}
        policies = phase.get("run_policy") or [{} for _ in runs]
        reset = phase.get("reset")
        gap_max = phase.get("gap_max", 0)
        for i, beat in enumerate(phase["stream"]):
            dut.host_in__valid.value = 1
            dut.host_in__payload.value = beat
            await ReadOnly()
            if not dut.host_in__ready.value:
                self.stats["waits"] += 1
            while not dut.host_in__ready.value:
                await RisingEdge(dut.host_in__ready)       # sleeps through a run
                await ReadOnly()
            if i in runs:             # accepted now: the next cycle is the run's start cycle
                k = runs[i]
                self.run_next = policies[k]
                starts.append(get_sim_time(unit="ns") + CLOCK_NS)
                if reset and reset.get("run") == k:
                    cocotb.start_soon(self._pulse_reset(reset["at"] + 1, reset["len"],
                                                        reset.get("watch")))
            await RisingEdge(dut.clk)
            gap = rng.randint(0, gap_max)
            if gap:
                self.stats["gaps"] += gap
                dut.host_in__valid.value = 0
                dut.host_in__payload.value = rng.getrandbits(32)
                await ClockCycles(dut.clk, gap)
        dut.host_in__valid.value = 0

    async def _pulse_reset(self, delay, cycles, watch=None):
        """``rst`` high for ``cycles`` cycles, from ``delay`` clock edges on; then the
        ``watch`` (the phase's ``reset["watch"]``) is checked."""
        dut = self.dut
        if delay:
            await ClockCycles(dut.clk, delay)
        dut.rst.value = 1
        await ClockCycles(dut.clk, cycles)
        dut.rst.value = 0
        if watch:
            await self._check_quiet(watch["signals"], watch["cycles"])
        self.resets += 1
        self.reset_done.set()

    async def _check_quiet(self, signals, cycles):
        """Each of ``signals`` ({hierarchical name: value}) holds its value in the ``cycles``
        cycles from this one (the first after a reset); else [name, cycle, value] to
        ``self.noise``."""
        handles = {}
        for name in signals:
            handle = self.dut
            for part in name.split("."):
                handle = getattr(handle, part)
            handles[name] = handle
        for k in range(cycles):
            await ReadOnly()
            for name, want in signals.items():
                got = handles[name].value
                if not got.is_resolvable or int(got) != want:
                    self.noise.append([name, k, str(got)])
                self.watched += 1
            await RisingEdge(self.dut.clk)

    # one phase --------------------------------------------------------------------------

    async def phase(self, phase):
        dut = self.dut
        rng = random.Random(phase["seed"])
        self.rng = random.Random(rng.getrandbits(64))
        self.ready_p = phase.get("ready_p", 1.0)
        first_beat, first_run, resets = len(self.beats), len(self.runs), self.resets
        self.phase_start = first_beat, first_run
        stats = dict(self.stats)
        starts, result = [], {"name": phase["name"]}
        await self.send(phase, rng, starts)
        reset = phase.get("reset")
        n_runs = len(phase.get("runs", []))
        while len(self.runs) - first_run < n_runs and not (reset and "run" in reset):
            self.run_event.clear()
            await self.run_event.wait()
        while len(self.beats) - first_beat < phase.get("n_response", 0):
            self.beat_event.clear()
            await self.beat_event.wait()
        await RisingEdge(dut.clk)
        if reset and "after_send" in reset:
            await ClockCycles(dut.clk, reset["after_send"])
            await ReadOnly()
            result["in_ready_at_reset"] = int(dut.host_in__ready.value)
            await RisingEdge(dut.clk)
            await self._pulse_reset(0, reset["len"])
        while reset and self.resets == resets:
            await self.reset_done.wait()
        self.ready_p = 1.0
        await ClockCycles(dut.clk, phase.get("quiet", 16))
        result.update(beats=self.beats[first_beat:], starts=starts,
                      runs=self.runs[first_run:], violations=list(self.violations),
                      reset_noise=list(self.noise), reset_watched=self.watched,
                      **{k: v - stats[k] for k, v in self.stats.items()})
        self.violations.clear()
        self.noise.clear()
        self.watched = 0
        return result


@cocotb.test()
async def stress(dut):
    """Runs the phases of ``TINYLPU_CASES``; the pytest driver checks what was recorded."""
    with open(os.environ["TINYLPU_CASES"]) as f:
        phases = json.load(f)
    tb = StressTB(dut)
    await tb.reset()
    measured = []
    for phase in phases:
        try:
            result = await with_timeout(tb.phase(phase), phase.get("max_cycles", 200_000)
                                        * CLOCK_NS, "ns")
        except Exception as error:    # SimTimeoutError: the tile (or the harness) hung
            first_beat, first_run = tb.phase_start
            measured.append({"name": phase["name"], "timeout": repr(error),
                             "beats": tb.beats[first_beat:], "runs": tb.runs[first_run:],
                             "starts": [], "violations": tb.violations})
            break
        measured.append(result)
    for phase in phases[len(measured):]:      # after a hang: not run
        measured.append({"name": phase["name"], "timeout": "not run: an earlier phase hung",
                         "beats": [], "runs": [], "starts": [], "violations": []})
    # every phase has an entry: a hung one (with what it received) and those after it say so
    with open(os.environ["TINYLPU_MEASURED"], "w") as f:
        json.dump(measured, f)
