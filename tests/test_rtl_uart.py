"""The UART (rtl/uart.py) in Amaranth's simulator: loopback, timing, framing errors, glitches."""

import random
import zlib

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tinylpu.rtl.uart import UartRx, UartTx, divisor_for


class Loopback(wiring.Component):
    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "framing_error": Out(1), "line": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UartTx(self.divisor)
        m.submodules.rx = rx = UartRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += [rx.rx.eq(tx.tx), self.framing_error.eq(rx.framing_error)]
        return m


@pytest.mark.parametrize("divisor", [4, 5, 7, 16])
def test_loopback_random_bytes(divisor):
    seed = zlib.crc32(f"uart-loopback-{divisor}".encode())
    rng = random.Random(seed)
    data = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0x7E, 0x7D]
    gaps = [rng.choice([0, 0, 0, 1, rng.randrange(2, 3 * divisor)]) for _ in data]
    dut = Loopback(divisor)
    got, errors = [], []

    async def producer(ctx):
        for byte, gap in zip(data, gaps):
            await ctx.tick().repeat(gap + 1)
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(got) < len(data):
            _, _, payload, valid, err = await ctx.tick().sample(
                dut.o.payload, dut.o.valid, dut.framing_error)
            cycle += 1
            if valid:
                got.append(payload)
            if err:
                errors.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == data, f"seed {seed}"
    assert errors == [], f"seed {seed}"


@pytest.mark.parametrize("divisor", [4, 7])
def test_tx_bits_and_back_to_back_timing(divisor):
    data = [0x96, 0x00, 0xFF]
    dut = UartTx(divisor)
    line, taken = [], []          # the line in each cycle; the cycles that took a byte

    async def bench(ctx):
        pending = list(data)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, pending[0])
        while not taken or len(line) < taken[-1] + 12 * divisor:
            line.append(ctx.get(dut.tx))
            take = bool(pending) and ctx.get(dut.i.ready)
            if take:
                taken.append(len(line) - 1)
                pending.pop(0)
            await ctx.tick()
            ctx.set(dut.i.valid, bool(pending))
            if take and pending:
                ctx.set(dut.i.payload, pending[0])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [b - a for a, b in zip(taken, taken[1:])] == [10 * divisor] * 2
    for byte, t in zip(data, taken):
        bits = [line[t + 1 + divisor * k + divisor // 2] for k in range(10)]
        assert bits == [0] + [(byte >> i) & 1 for i in range(8)] + [1], hex(byte)
    assert set(line[taken[-1] + 1 + 10 * divisor:]) == {1}        # idle high after


def _drive_rx(divisor, script):
    """Drive UartRx's pin with ``script``: (level, cycles) pairs; return the bytes, framing
    error pulses and the cycle each byte became valid."""
    dut = UartRx(divisor)
    got, errors = [], []
    total = sum(c for _, c in script) + 4 * divisor

    async def drive(ctx):
        for level, cycles in script:
            ctx.set(dut.rx, level)
            await ctx.tick().repeat(cycles)

    async def watch(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(total):
            _, _, payload, valid, err = await ctx.tick().sample(dut.o.payload, dut.o.valid,
                                                                dut.framing_error)
            if valid:
                got.append((payload, cycle))
            if err:
                errors.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(watch)
    sim.run()
    return got, errors


def _byte(value, divisor, stop=1):
    bits = [0] + [(value >> i) & 1 for i in range(8)] + [stop]
    return [(b, divisor) for b in bits]


@pytest.mark.parametrize("divisor", [4, 9])
def test_rx_latency(divisor):
    got, errors = _drive_rx(divisor, [(1, 5)] + _byte(0xA6, divisor) + [(1, 3 * divisor)])
    # sampled at the middle of the stop bit (start edge + d//2 + 9d on the pin), after the
    # 2-flop synchronizer and the state register: valid 3 cycles later
    assert got == [(0xA6, 5 + divisor // 2 + 9 * divisor + 3)]
    assert errors == []


def test_bad_stop_bit_is_a_framing_error_and_the_byte_is_dropped():
    d = 6
    got, errors = _drive_rx(d, [(1, 3)] + _byte(0x55, d, stop=0) + [(1, 2 * d)]
                            + _byte(0x3C, d) + [(1, 2 * d)])
    assert [b for b, _ in got] == [0x3C]
    assert len(errors) == 1


def test_a_held_break_is_one_framing_error():
    d = 5
    got, errors = _drive_rx(d, [(1, 3), (0, 40 * d), (1, 3 * d)] + _byte(0x81, d)
                            + [(1, 2 * d)])
    assert [b for b, _ in got] == [0x81]
    assert len(errors) == 1


def test_a_short_glitch_is_not_a_start_bit():
    d = 8
    got, errors = _drive_rx(d, [(1, 3), (0, d // 2 - 1), (1, 3 * d)] + _byte(0x42, d)
                            + [(1, 2 * d)])
    assert [b for b, _ in got] == [0x42]
    assert errors == []


@pytest.mark.parametrize("cls", [UartRx, UartTx])
@pytest.mark.parametrize("bad", [3, 0, 4.0, "8"])
def test_divisor_below_four_is_refused(cls, bad):
    with pytest.raises(ValueError, match=r"^UART divisor \(clock cycles per bit\) must be an "
                                         rf"integer >= 4, not {bad!r}$".replace("'", ".")):
        cls(bad)


def test_divisor_for_a_clock_and_baud():
    assert divisor_for(48_000_000, 3_000_000) == 16
    assert divisor_for(75_000_000, 3_000_000) == 25
    with pytest.raises(ValueError, match="divisor 8 is off by 4.2%"):
        divisor_for(25_000_000, 3_000_000)
    with pytest.raises(ValueError, match="must be an integer >= 4, not 3"):
        divisor_for(10_000_000, 3_000_000, tolerance=0.2)
