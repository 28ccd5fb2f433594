"""A tile's host streams in Amaranth's own simulator: the unit tests' driver, and the third
simulator of `make bench`'s speed table.

Amaranth's simulator runs the Python model of the RTL, not the Verilog: no build step, but
every cycle is Python (a few hundred to a thousand cycles a second for a 4 x 16 tile), and
building the simulator (elaborating the tile, compiling its Python) takes seconds, more
than most unit tests' streams run. :func:`run_tile_stream` builds one simulator per
configuration and process, and resets it for each stream: signals, memories and
testbenches back to their start, the same as a new tile (docs/verification.md).
"""

__all__ = ["send", "receive", "run_host_stream", "HostSim", "run_tile_stream", "run_cases"]

import functools
import time

from amaranth.sim import Simulator


async def send(ctx, port, beats):
    """Drive ``beats`` into a stream ``port``, one per cycle it is ready."""
    ctx.set(port.valid, 1)
    for beat in beats:
        ctx.set(port.payload, beat)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive(ctx, port, count):
    """``count`` beats from a stream ``port``, ready throughout."""
    out = []
    ctx.set(port.ready, 1)
    while len(out) < count:
        payload, valid = (await ctx.tick().sample(port.payload, port.valid))[2:]
        if valid:
            out.append(payload)
    ctx.set(port.ready, 0)
    return out


def run_host_stream(dut, beats, n_response, vcd=None):
    """Send ``beats`` to ``dut.host_in`` and collect ``n_response`` beats from ``host_out``."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {}

    async def producer(ctx):
        await send(ctx, dut.host_in, beats)

    async def consumer(ctx):
        result["beats"] = await receive(ctx, dut.host_out, n_response)

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result["beats"]


class HostSim:
    """One tile's simulator, built once; :meth:`run` replays a host stream from reset."""

    def __init__(self, dut):
        self.dut = dut
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-8)
        self._job, self._used = None, False
        self.sim.add_testbench(self._producer)
        self.sim.add_testbench(self._consumer)

    async def _producer(self, ctx):
        if self._job is not None:
            await send(ctx, self.dut.host_in, self._job["beats"])

    async def _consumer(self, ctx):
        if self._job is not None:
            self._job["result"] = await receive(ctx, self.dut.host_out, self._job["n"])

    def run(self, beats, n_response):
        """``n_response`` beats from ``host_out`` for ``beats`` sent to ``host_in``, from the
        tile's reset state (every signal and memory at its initial value)."""
        self._job = {"beats": list(beats), "n": n_response}
        try:
            if self._used:          # (a new simulator's testbenches have not started yet)
                self.sim.reset()
            self._used = True
            self.sim.run()
            return self._job["result"]
        finally:
            self._job = None


@functools.lru_cache(maxsize=8)
def _host_sim(cfg):
    from tinylpu.rtl.top import Tile
    return HostSim(Tile(cfg))


def run_tile_stream(cfg, beats, n_response):
    """:func:`run_host_stream` on ``Tile(cfg)``, on a simulator kept for ``cfg`` (built at
    the first call in this process, reset at each)."""
    return _host_sim(cfg).run(beats, n_response)


def run_cases(cfg, cases):
    """Replay host-stream cases (:mod:`tinylpu.verify.cases`) on ``Tile(cfg)`` in one
    simulation, as :func:`tinylpu.flow.rtlsim.run_streams` does on Icarus and Verilator:
    for each, ``response``, ``cycles`` (the count the tile reports), ``wall`` (seconds
    while ``running`` was high) and ``setup`` (seconds to elaborate the tile and build the
    simulator, for the whole call)."""
    from tinylpu.rtl.top import Tile

    t0 = time.perf_counter()
    dut = Tile(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    setup = time.perf_counter() - t0
    measured, walls = [], []

    async def runs(ctx):                  # the wall time of each run
        while True:
            await ctx.posedge(dut.running)
            start = time.perf_counter()
            await ctx.negedge(dut.running)
            walls.append(time.perf_counter() - start)

    counts = [len(c["expected"]) if c["expected"] is not None else c["n_response"]
              for c in cases]
    responses = []

    async def producer(ctx):
        for i, case in enumerate(cases):
            await send(ctx, dut.host_in, case["stream"])
            while len(responses) <= i:      # the next case once this one's answer is in
                await ctx.tick()

    async def consumer(ctx):
        for case, n in zip(cases, counts):
            before = len(walls)
            response = await receive(ctx, dut.host_out, n)
            responses.append(response)
            measured.append({"name": case["name"], "response": response,
                             "cycles": response[case["run_at"] + 1]
                             if case["cycles"] is not None else None,
                             "wall": walls[before] if len(walls) > before else None,
                             "setup": setup})

    sim.add_process(runs)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return measured
