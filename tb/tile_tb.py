"""cocotb testbench of the tile: replay host streams, compare every response beat.

The cases come from the JSON file named by ``TINYLPU_CASES`` (written by
:func:`tinylpu.rtlsim.run_streams`): host beats to send, the golden model's response beats,
and the compiler's predicted cycle count of the run. Python wakes only per host beat and on
edges of ``running``; the tile runs free between them.
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

    async def receive(self, count):
        dut = self.dut
        out = []
        dut.host_out__ready.value = 1
        while len(out) < count:
            await ReadOnly()
            if dut.host_out__valid.value:
                out.append(int(dut.host_out__payload.value))
                await RisingEdge(dut.clk)
            else:
                await RisingEdge(dut.host_out__valid)
        dut.host_out__ready.value = 0
        return out

    async def _watch_runs(self):
        """Cycles of each run, counted from the ``running`` output: it rises at the end of
        the start cycle and falls at the end of the done cycle, so the time between the two
        edges is the cycle count the tile's own counter reports."""
        while True:
            await RisingEdge(self.dut.running)
            t0, wall0 = get_sim_time(unit="ns"), time.perf_counter()
            await FallingEdge(self.dut.running)
            t1, wall1 = get_sim_time(unit="ns"), time.perf_counter()
            self.runs.append((round((t1 - t0) / CLOCK_NS), wall1 - wall0))


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


@cocotb.test()
async def replay_cases(dut):
    """Every case's responses equal the golden model's; its RUN's cycles equal the
    compiler's prediction, as reported by the tile and as counted outside it."""
    with open(os.environ["TINYLPU_CASES"]) as f:
        cases = json.load(f)
    if os.environ.get("TINYLPU_SIGNALS"):   # the waveform save file's signals must exist
        missing = _missing_signals(dut, os.environ["TINYLPU_SIGNALS"].split())
        assert not missing, f"signals not in the design: {missing}"
    tb = TB(dut)
    await tb.reset()
    measured, failures = [], []
    for case in cases:
        runs_before = len(tb.runs)
        receiver = cocotb.start_soon(tb.receive(len(case["expected"])))
        await tb.send(case["stream"])
        response = await receiver
        new_runs = tb.runs[runs_before:]
        entry = {"name": case["name"], "response": response,
                 "cycles": response[case["run_at"] + 1] if case["cycles"] is not None else None,
                 "ext_cycles": new_runs[0][0] if new_runs else None,
                 "wall": new_runs[0][1] if new_runs else None}
        measured.append(entry)
        if response != case["expected"]:
            diff = [i for i, (a, b) in enumerate(zip(response, case["expected"])) if a != b]
            failures.append(f"{case['name']}: response differs from golden at beats {diff[:8]}")
        if case["cycles"] is not None:
            if entry["cycles"] != case["cycles"] or entry["ext_cycles"] != case["cycles"]:
                failures.append(f"{case['name']}: predicted {case['cycles']} cycles, tile "
                                f"counted {entry['cycles']}, running was high for "
                                f"{entry['ext_cycles']}")
    with open(os.environ["TINYLPU_MEASURED"], "w") as f:
        json.dump(measured, f)
    assert not failures, "\n".join(failures)
