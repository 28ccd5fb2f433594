"""A tile's host streams in Amaranth's own simulator: the unit tests' driver, and the third
simulator of `make bench`'s speed table.

Amaranth's simulator runs the Python model of the RTL, not the Verilog: no build step, but
every cycle is Python (a few hundred to a thousand cycles a second for a 4 x 16 tile), and
building the simulator (elaborating the tile, compiling its Python) takes seconds, more
than most unit tests' streams run. :func:`run_tile_stream` builds one simulator per
configuration and process, and resets it for each stream: signals, memories and
testbenches back to their start, the same as a new tile (docs/verification.md).
"""

__all__ = ["send", "receive", "HostSim", "run_tile_stream"]

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


class HostSim:
    """One tile's simulator, built once; :meth:`run` replays a host stream from reset.
    ``setup``: the seconds it took to elaborate the tile and build the simulator; ``walls``:
    after a run, the seconds of each RUN or GENERATE in it (``running`` high)."""

    def __init__(self, dut):
        t0 = time.perf_counter()
        self.dut = dut
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-8)
        self.setup = time.perf_counter() - t0
        self._job, self._used, self.walls = None, False, []
        self.sim.add_process(self._runs)
        self.sim.add_testbench(self._producer)
        self.sim.add_testbench(self._consumer)

    async def _runs(self, ctx):
        while True:
            await ctx.posedge(self.dut.running)
            start = time.perf_counter()
            await ctx.negedge(self.dut.running)
            self.walls.append(time.perf_counter() - start)

    async def _producer(self, ctx):
        if self._job is not None:
            await send(ctx, self.dut.host_in, self._job["beats"])

    async def _consumer(self, ctx):
        if self._job is not None:
            self._job["result"] = await receive(ctx, self.dut.host_out, self._job["n"])

    def run(self, beats, n_response):
        """``n_response`` beats from ``host_out`` for ``beats`` sent to ``host_in``, from the
        tile's reset state (every signal and memory at its initial value)."""
        self._job, self.walls = {"beats": list(beats), "n": n_response}, []
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
    """``n_response`` beats from ``Tile(cfg)`` for the host stream ``beats``, on a simulator
    kept for ``cfg`` (built at the first call in this process, reset at each)."""
    return _host_sim(cfg).run(beats, n_response)
