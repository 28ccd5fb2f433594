"""cocotb testbench of the tile: replay host streams, compare every response beat.

The cases come from the JSON file named by ``TINYLPU_CASES`` (written by
:func:`tinylpu.flow.rtlsim.run_streams`): host beats to send, the golden model's response beats,
and the compiler's predicted cycle count of the run. Python wakes only per host beat and on
edges of ``running``; the tile runs free between them.

A GENERATE answers while it runs: each generated id is two beats (the id, then the cycle of
the NEXT that emitted it, counted from the start cycle = 0), sent in that cycle and the next
with nobody waiting for the host; the receiver keeps ``host_out.ready`` high from before the
command until the last expected beat, so none is lost (a lost one would set
STATUS_OVERRUN). Besides comparing every beat, the testbench checks that each id arrived in
the very cycle its second beat names. A case with ``soft`` is only measured: the caller
compares (``tinylpu.verify.fuzz.check_response``); one with ``deaf_run`` keeps ``host_out.ready``
low until its run ended.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

CLOCK_NS = 10


class TB:
    """Owns the clock, reset and the two host stream drivers of a tile."""

    def __init__(self, dut):
        self.dut = dut
        self.runs = []
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())

    async def reset(self):
        dut = self.dut
        dut.rst.value = 1
        dut.host_in__valid.value = 0
        dut.host_out__ready.value = 0
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        cocotb.start_soon(self._watch_runs())

    async def send(self, beats):
        dut = self.dut
        dut.host_in__valid.value = 1
        for beat in beats:
            dut.host_in__payload.value = beat
            await ReadOnly()
            while not dut.host_in__ready.value:
                await RisingEdge(dut.host_in__ready)   # sleeps through a run
                await ReadOnly()
            await RisingEdge(dut.clk)
        dut.host_in__valid.value = 0

    async def receive(self, count, on_beat=None, deaf_run=False):
        """``count`` beats, and the simulation time (ns) each was taken at; ``on_beat(i,
        beats)`` after beat i arrived. ``deaf_run``: ``host_out.ready`` stays low until the
        first run has ended (a GENERATE's emissions are lost)."""
        dut = self.dut
        out, times = [], []
        if deaf_run:
            dut.host_out__ready.value = 0
            await RisingEdge(dut.running)
            await FallingEdge(dut.running)
        dut.host_out__ready.value = 1
        while len(out) < count:
            await ReadOnly()
            if dut.host_out__valid.value:
                out.append(int(dut.host_out__payload.value))
                times.append(get_sim_time(unit="ns"))
                if on_beat is not None:
                    on_beat(len(out) - 1, out)
                await RisingEdge(dut.clk)
            else:
                await RisingEdge(dut.host_out__valid)
        dut.host_out__ready.value = 0
        return out, times

    async def _watch_runs(self):
        """Cycles of each run, counted from the ``running`` output: it rises at the end of
        the start cycle and falls at the end of the done cycle, so the time between the two
        edges is the cycle count the tile's own counter reports."""
        while True:
            await RisingEdge(self.dut.running)
            t0, wall0 = get_sim_time(unit="ns"), time.perf_counter()
            await FallingEdge(self.dut.running)
            t1, wall1 = get_sim_time(unit="ns"), time.perf_counter()
            self.runs.append((round((t1 - t0) / CLOCK_NS), wall1 - wall0, t0, t1))


def _missing_signals(dut, names):
    """Names (``tinylpu_tile.seq.pc[5:0]``) that do not resolve to a handle of the design."""
    missing = []
    for name in names:
        handle = dut
        for part in name.split("[")[0].split(".")[1:]:
            try:
                handle = handle._id(part, extended=False)
            except (AttributeError, KeyError):
                missing.append(name)
                break
    return missing


def _beat_cycles(times, runs):
    """For each response beat, its cycle counted from the start cycle (= 0) of the run it
    arrived during (``running`` rises at the end of the start cycle), else None."""
    out = []
    for t in times:
        run = [r for r in runs if r[2] <= t < r[3]]
        out.append(round((t - run[0][2]) / CLOCK_NS) + 1 if run else None)
    return out


@cocotb.test()
async def replay_cases(dut):
    """Every case's responses equal the golden model's (cases without ``expected`` only
    collect ``n_response`` beats); its RUN's or GENERATE's cycles equal the prediction, as
    reported by the tile and as counted outside it; every id a GENERATE emits arrives in the
    cycle its stamp names (and, with ``TINYLPU_EMITTED``, is appended to that file as it
    arrives: ``id cycle`` lines)."""
    with open(os.environ["TINYLPU_CASES"]) as f:
        cases = json.load(f)
    if os.environ.get("TINYLPU_SIGNALS"):   # the waveform save file's signals must exist
        missing = _missing_signals(dut, os.environ["TINYLPU_SIGNALS"].split())
        assert not missing, f"signals not in the design: {missing}"
    tb = TB(dut)
    await tb.reset()
    measured, failures = [], []
    emitted = open(os.environ["TINYLPU_EMITTED"], "a") if os.environ.get("TINYLPU_EMITTED") \
        else None
    for case in cases:
        runs_before = len(tb.runs)
        emissions = case.get("emissions", 0)
        first = case["run_at"] - 2 * emissions

        def on_beat(i, beats):      # each (id, stamp) pair as it arrives
            if emitted and first < i < first + 2 * emissions and (i - first) % 2:
                emitted.write(f"{beats[i - 1]} {beats[i]}\n")
                emitted.flush()

        expected = case["expected"]
        n_response = len(expected) if expected is not None else case["n_response"]
        receiver = cocotb.start_soon(tb.receive(n_response, on_beat, case.get("deaf_run")))
        await tb.send(case["stream"])
        response, times = await receiver
        new_runs = tb.runs[runs_before:]
        entry = {"name": case["name"], "response": response,
                 "cycles": response[case["run_at"] + 1] if case["cycles"] is not None else None,
                 "ext_cycles": new_runs[0][0] if new_runs else None,
                 "wall": new_runs[0][1] if new_runs else None,
                 "beat_cycles": _beat_cycles(times, new_runs)}
        measured.append(entry)
        if expected is not None and response != expected:
            diff = [i for i, (a, b) in enumerate(zip(response, expected)) if a != b]
            failures.append(f"{case['name']}: response differs from golden at beats {diff[:8]}")
        for k in range(0 if case.get("soft") else emissions):
            got = entry["beat_cycles"][first + 2 * k:first + 2 * k + 2]
            stamp = response[first + 2 * k + 1]
            if got != [stamp, stamp + 1]:
                failures.append(f"{case['name']}: id {k} arrived in cycles {got}, its stamp "
                                f"says {stamp}")
                break
        if case.get("soft"):          # the caller compares what was measured
            continue
        if case["cycles"] is not None:
            if entry["cycles"] != case["cycles"] or entry["ext_cycles"] != case["cycles"]:
                failures.append(f"{case['name']}: predicted {case['cycles']} cycles, tile "
                                f"counted {entry['cycles']}, running was high for "
                                f"{entry['ext_cycles']}")
    if emitted:
        emitted.close()
    with open(os.environ["TINYLPU_MEASURED"], "w") as f:
        json.dump(measured, f)
    assert not failures, "\n".join(failures)
