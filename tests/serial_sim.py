"""A UART line in Amaranth's simulator behind a byte transport (``read``/``write``, as
pyserial's ``Serial``), so that :class:`tinylpu.link.Link` drives simulated RTL.

Python wakes only while a byte is on the line (and once per bit time while the line is
idle); the fake tile (:class:`EchoTile`) is hardware. The background testbenches wait with
plain ``await ctx.tick()`` (no ``repeat``: an async generator left suspended when the test
ends is reported as an unraisable exception).
"""

import collections

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tinylpu.rtl.bridge import UartBridge

PERIOD = 1e-8
ECHO_XOR = 0xA5A5A5A5


class EchoTile(wiring.Component):
    """A fake tile: every beat taken on ``host_in`` comes back on ``host_out`` XOR
    ``ECHO_XOR``, through an 8-beat FIFO; ``hold`` keeps ``host_in`` not ready; ``taken``
    counts the beats taken since reset."""

    def __init__(self):
        super().__init__({"host_in": In(stream.Signature(32)),
                          "host_out": Out(stream.Signature(32)),
                          "hold": In(1), "taken": Out(32)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=32, depth=8)
        m.d.comb += [q.w_data.eq(self.host_in.payload ^ ECHO_XOR),
                     q.w_en.eq(self.host_in.valid & ~self.hold),
                     self.host_in.ready.eq(q.w_rdy & ~self.hold),
                     self.host_out.payload.eq(q.r_data), self.host_out.valid.eq(q.r_rdy),
                     q.r_en.eq(self.host_out.ready)]
        with m.If(self.host_in.valid & self.host_in.ready):
            m.d.sync += self.taken.eq(self.taken + 1)
        return m


class Harness(wiring.Component):
    """A :class:`UartBridge` and an :class:`EchoTile` reset by its ``tile_reset``."""

    def __init__(self, divisor, **kw):
        self.divisor = divisor
        self.bridge = UartBridge(divisor, **kw)
        self.tile = EchoTile()
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "hold": In(1),
                          "taken": Out(32), "resets": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = br = self.bridge
        m.submodules.tile = ResetInserter(br.tile_reset)(self.tile)
        wiring.connect(m, br.host_in, self.tile.host_in)
        wiring.connect(m, self.tile.host_out, br.host_out)
        m.d.comb += [br.rx.eq(self.rx), self.tx.eq(br.tx), self.tile.hold.eq(self.hold),
                     self.taken.eq(self.tile.taken)]
        with m.If(br.tile_reset):
            m.d.sync += self.resets.eq(self.resets + 1)
        return m


async def _ticks(ctx, n):
    for _ in range(n):
        await ctx.tick()


class TileHarness(wiring.Component):
    """A :class:`UartBridge` and the real tile of ``cfg``, reset by its ``tile_reset`` (as the
    board top is meant to)."""

    def __init__(self, cfg, divisor, **kw):
        from tinylpu.rtl.top import Tile
        self.bridge = UartBridge(divisor, **kw)
        self.tile = Tile(cfg)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = br = self.bridge
        m.submodules.tile = ResetInserter(br.tile_reset)(self.tile)
        wiring.connect(m, br.host_in, self.tile.host_in)
        wiring.connect(m, self.tile.host_out, br.host_out)
        m.d.comb += [br.rx.eq(self.rx), self.tx.eq(br.tx)]
        return m


class SimSerial:
    """``dut`` (with 1-bit ``rx``/``tx`` pins) at ``divisor`` cycles per bit, as a serial
    port: :meth:`write` queues bytes for ``rx``, :meth:`read` runs the simulation until a byte
    came out of ``tx`` or ``timeout`` simulated seconds passed. :meth:`now` is the simulated
    time (pass it to ``Link`` as its clock).

    Faults: ``mangle_out`` (bytes -> bytes, applied to each write, then cleared) corrupts
    what the host sends; ``mangle_in`` (index, byte -> byte or None) what it receives, by the
    index of the byte from ``tx``. ``line`` items may also be ``(byte, stop_bit)`` pairs, for
    a bad stop bit. ``at(time, fn)`` runs ``fn(ctx)`` at a simulated time (e.g. set ``hold``); ``probes``
    names ports of ``dut`` whose values :attr:`probes` holds (sampled at least once a bit
    time).
    """

    def __init__(self, dut, divisor, timeout=2e-6, probes=()):
        self.dut, self.divisor, self.timeout = dut, divisor, timeout
        self.probe_names = tuple(probes)
        self.probes = {}
        self.line = collections.deque()
        self.received = collections.deque()
        self.framing_errors = 0
        self.count_in = 0
        self.mangle_out = None
        self.mangle_in = None
        self.events = []
        self.t = 0.0
        self.sim = Simulator(dut)
        self.sim.add_clock(PERIOD)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._watch, background=True)

    # the transport
    def write(self, data):
        data = bytes(data)
        if self.mangle_out is not None:
            data, self.mangle_out = self.mangle_out(data), None
        self.line.extend(data)
        return len(data)

    def read(self, n=1):
        deadline = self.t + self.timeout
        while not self.received and self.t < deadline:
            self.run(10 * self.divisor * PERIOD)
        out = bytes(self.received.popleft() for _ in range(min(n, len(self.received))))
        return out

    def now(self):
        return self.t

    def run(self, seconds):
        self.t += seconds
        self.sim.run_until(self.t)

    def at(self, time, fn):
        self.events.append((time, fn))

    def set(self, name, value, time=0.0):
        """Set port ``name`` of the dut at simulated ``time`` (at once by default)."""
        self.at(time, lambda ctx: ctx.set(getattr(self.dut, name), value))

    # the line
    async def _drive(self, ctx):
        rx, div = self.dut.rx, self.divisor
        while True:
            self.probes = {name: ctx.get(getattr(self.dut, name)) for name in self.probe_names}
            for when, fn in list(self.events):
                if when <= self.t:
                    fn(ctx)
                    self.events.remove((when, fn))
            if not self.line:
                await _ticks(ctx, div)
                continue
            item = self.line.popleft()
            byte, stop = item if isinstance(item, tuple) else (item, 1)
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
                ctx.set(rx, bit)
                await _ticks(ctx, div)
            ctx.set(rx, 1)
            if not stop:
                await _ticks(ctx, div)            # the line idles again before the next

    async def _watch(self, ctx):
        tx, div = self.dut.tx, self.divisor
        while True:
            await ctx.negedge(tx)
            await _ticks(ctx, div // 2)
            bits = []
            for _ in range(9):
                await _ticks(ctx, div)
                bits.append(ctx.get(tx))
            byte = sum(b << i for i, b in enumerate(bits[:8]))
            if not bits[8]:
                self.framing_errors += 1
                continue
            index, self.count_in = self.count_in, self.count_in + 1
            if self.mangle_in is not None:
                byte = self.mangle_in(index, byte)
            if byte is not None:
                self.received.append(byte)
