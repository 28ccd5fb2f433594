"""UART, 8N1: a receiver and a transmitter at ``divisor`` clock cycles per bit."""

__all__ = ["UartRx", "UartTx", "check_divisor", "divisor_for"]

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

MIN_DIVISOR = 4


def check_divisor(divisor, owner=None):
    """``divisor`` if it is one, else a ValueError (and ``owner``, an elaboratable being
    constructed, is not reported as unused)."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        if owner is not None:
            owner._MustUse__silence = True
        raise ValueError(f"UART divisor (clock cycles per bit) must be an integer >= "
                         f"{MIN_DIVISOR}, not {divisor!r}")
    return divisor


def divisor_for(clk_hz, baud, tolerance=0.02):
    """The divisor for ``baud`` at ``clk_hz``; an error if the rate is off by more than
    ``tolerance`` (8N1 tolerates about 4% between the two ends in all)."""
    divisor = round(clk_hz / baud)
    error = abs(clk_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud {baud} at clock {clk_hz} Hz: divisor {divisor} is off by "
                         f"{100 * error:.1f}%, more than {100 * tolerance:.1f}%")
    return check_divisor(divisor)


class UartTx(wiring.Component):
    """8N1 transmitter: a start bit (0), 8 data bits LSB first, a stop bit (1), each
    ``divisor`` cycles. ``i`` is ready while idle; a byte taken in cycle c drives its start
    bit on ``tx`` from c+1; the next byte can be taken in the stop bit's last cycle, so
    back-to-back bytes take exactly ``10 * divisor`` cycles each."""

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor, self)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)      # stop, data[7:0], start: bit 0 goes out first
        bits = Signal(range(11))            # bits left to send (including the current)
        timer = Signal(range(self.divisor))
        m.d.comb += [self.tx.eq(shreg[0]),
                     self.i.ready.eq((bits == 0) | ((bits == 1) & (timer == 0)))]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq(Cat(0, self.i.payload, 1)), bits.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), bits.eq(bits - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver: ``rx`` through a 2-flop synchronizer; a falling edge starts a byte, the
    start bit is sampled again at its middle (still 0, else a glitch: ignored), then each data
    bit and the stop bit at theirs. A byte with a good stop bit goes to ``o`` (held until
    taken; a byte that completes while the previous one still waits replaces it and pulses
    ``overrun``); a bad stop bit drops the byte and pulses ``framing_error``, and the receiver
    then waits for the line to go idle (high) before the next start bit, so a held break
    gives one error. ``o.valid`` rises 2 + 9.5 divisors (rounded down) after the start edge."""

    def __init__(self, divisor):
        self.divisor = check_divisor(divisor, self)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1, stages=2)
        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shreg = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"                 # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), bit.eq(bit + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(line):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.d.comb += self.overrun.eq(self.o.valid & ~self.o.ready)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
