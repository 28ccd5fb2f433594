"""Host interface: the command protocol of :mod:`tinylpu.host` over two 32-bit streams."""

__all__ = ["HostInterface"]

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import host as proto
from tinylpu.isa import INSTR_BITS


class HostInterface(wiring.Component):
    """Parses host commands, moves SRAM words, starts runs and reports their outcome.

    Throughput: a WRITE takes one cycle per beat; a READ emits one beat per cycle the host is
    ready, plus two cycles per word to fetch it. The input stream is not ready during a run.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.buf_bits = max(cfg.word_bits, INSTR_BITS)
        self.buf_beats = -(-self.buf_bits // 32)
        super().__init__({
            "i": In(stream.Signature(32)),
            "o": Out(stream.Signature(32)),
            "ren": Out(1), "wen": Out(1), "target": Out(8), "addr": Out(16),
            "wdata": Out(self.buf_beats * 32), "rdata": In(max(cfg.word_bits, INSTR_BITS)),
            "valid_target": In(1),
            "start": Out(1), "start_pc": Out(16),
            "done": In(1), "flags": In(2), "cycles": In(32),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        n_all = self.buf_beats
        cmd, count = Signal(8), Signal(16)
        beat = Signal(range(n_all + 1))
        buf = Signal(n_all * 32)
        bad = Signal()
        status, cycles = Signal(32), Signal(32)
        is_prog = self.target == proto.TARGET_PROG
        n_word = -(-cfg.word_bits // 32)
        last_beat = Signal()
        m.d.comb += last_beat.eq(
            beat == is_prog.as_unsigned() * (proto.beats(cfg, proto.TARGET_PROG) - n_word)
            + n_word - 1)
        shifted_in = Cat(buf[32:], self.i.payload)

        with m.FSM():
            with m.State("HDR0"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cmd.eq(self.i.payload[0:8]), self.target.eq(self.i.payload[8:16]),
                                 count.eq(self.i.payload[16:32])]
                    m.next = "HDR1"
            with m.State("HDR1"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [self.addr.eq(self.i.payload[:16]), beat.eq(0)]
                    with m.Switch(cmd):
                        with m.Case(proto.CMD_RUN):
                            m.next = "START"
                        with m.Case(proto.CMD_WRITE, proto.CMD_READ):
                            with m.If(~self.valid_target):
                                m.d.sync += bad.eq(1)
                            with m.If(count == 0):
                                m.next = "HDR0"
                            with m.Elif(cmd == proto.CMD_WRITE):
                                m.next = "WDATA"
                            with m.Else():
                                m.next = "RADDR"
                        with m.Default():
                            m.d.sync += bad.eq(1)
                            m.next = "HDR0"
            with m.State("WDATA"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [buf.eq(shifted_in), beat.eq(beat + 1)]
                    with m.If(last_beat):
                        # the word sits in the top beats of the shift register
                        with m.If(is_prog):
                            m.d.comb += self.wdata.eq(shifted_in >> (32 * (n_all - 4)))
                        with m.Else():
                            m.d.comb += self.wdata.eq(shifted_in >> (32 * (n_all - n_word)))
                        m.d.comb += self.wen.eq(self.valid_target)
                        m.d.sync += [beat.eq(0), self.addr.eq(self.addr + 1),
                                     count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "HDR0"
            with m.State("RADDR"):
                m.d.comb += self.ren.eq(self.valid_target)
                m.next = "RDATA"
            with m.State("RDATA"):
                m.d.sync += [buf.eq(self.rdata & self.valid_target.replicate(len(self.rdata))),
                             beat.eq(0)]
                m.next = "RSEND"
            with m.State("RSEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(buf[:32])]
                with m.If(self.o.ready):
                    m.d.sync += [buf.eq(buf >> 32), beat.eq(beat + 1)]
                    with m.If(last_beat):
                        m.d.sync += [self.addr.eq(self.addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "HDR0"
                        with m.Else():
                            m.next = "RADDR"
            with m.State("START"):
                m.d.comb += [self.start.eq(1), self.start_pc.eq(self.addr)]
                m.next = "RUNNING"
            with m.State("RUNNING"):
                with m.If(self.done):
                    m.d.sync += [status.eq(Cat(1, self.flags, bad)), cycles.eq(self.cycles)]
                    m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(status)]
                with m.If(self.o.ready):
                    m.next = "CYCLES"
            with m.State("CYCLES"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(cycles)]
                with m.If(self.o.ready):
                    m.d.sync += bad.eq(0)
                    m.next = "HDR0"
        return m
