"""Host interface: the command protocol of :mod:`tinylpu.host` over two 32-bit streams."""

__all__ = ["HostInterface", "ScheduleFlags"]

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import host as proto

from .counters import counter_read
from .router import host_bits, host_port
from .sequencer import run_control


class ScheduleFlags(data.Struct):
    """The run's sticky flags from the tile (the schedule checks, the stop at an illegal
    instruction); each goes to the field of the same name in :class:`tinylpu.host.Status`."""
    port_conflict: 1
    raw_hazard: 1
    unit_busy: 1
    illegal: 1
    timeout: 1


class HostInterface(wiring.Component):
    """Parses host commands, moves SRAM words, starts runs and reports their outcome.

    Throughput: a WRITE takes one cycle per beat (each word lands in its memory at the end of
    the cycle after its last beat); a READ emits one beat per cycle the host is ready, plus
    two cycles per word to fetch it. The input stream is not ready during a run.

    A GENERATE without a prompt (count 0) or steps (address 0) is a bad command, as in the
    golden model. Words move through ``mem`` (:func:`rtl.router.host_port`: the router's
    memories), but those of the busy counters' target, which go through ``counters``
    (:func:`rtl.counters.counter_read`); a WRITE to that target (read only) is a bad
    command: its payload is consumed and dropped. Runs go through ``run``
    (:func:`rtl.sequencer.run_control`). While a GENERATE (or any run) runs, the sequencer's
    emissions (``run.emit_valid``, ``run.emit_data``) go out on ``o`` in the cycle they are
    made; one that finds ``o`` not ready is dropped and sets STATUS_OVERRUN in the run's
    status.

    The header and the status word are views of :class:`tinylpu.host.Header` and
    :class:`tinylpu.host.Status`; ``flags`` (:class:`ScheduleFlags`) fills the status
    fields of the same names.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.buf_bits = host_bits(cfg)
        self.buf_beats = -(-self.buf_bits // 32)
        super().__init__({
            "i": In(stream.Signature(32)),
            "o": Out(stream.Signature(32)),
            "mem": Out(host_port(cfg)), "counters": Out(counter_read()),
            "run": Out(run_control()), "flags": In(ScheduleFlags),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        n_all = self.buf_beats
        cmd, count = Signal(8), Signal(16)
        beat = Signal(range(n_all + 1))
        buf = Signal(n_all * 32, reset_less=True)    # data: written only after its beats
        bad, overrun = Signal(), Signal()
        status, cycles = Signal(proto.Status), Signal(32)
        # the control registers (tinylpu.host.Ctrl), here: written and read like a target
        reset = proto.ctrl_reset(cfg)
        ctrl = [Const(reset[r], 32) if r in proto.CTRL_READ_ONLY
                else Signal(32, name=f"ctrl_{r.name.lower()}", init=reset[r]) for r in proto.Ctrl]
        positions = ctrl[proto.Ctrl.POSITIONS]
        m.d.comb += self.run.budget.eq(ctrl[proto.Ctrl.BUDGET])
        mem, t = self.mem, self.mem.target
        # the busy counters answer their target (read only), the router's memories the others
        is_counters = t == proto.TARGET_COUNTERS
        rdata, valid_target = Signal(self.buf_bits), Signal()
        m.d.comb += [
            self.counters.ren.eq(mem.ren & is_counters), self.counters.addr.eq(mem.addr),
            rdata.eq(Mux(is_counters, self.counters.rdata, mem.rdata)),
            valid_target.eq(mem.valid_target | is_counters),
        ]
        # beats per word of the target (an invalid target moves weight-bank words, as the
        # golden model does)
        is_ctrl = t == proto.TARGET_CTRL
        valid = valid_target | is_ctrl
        is_prog = valid & (t == proto.TARGET_PROG)
        is_act = valid & (t >= proto.TARGET_ABANK) & (t < proto.TARGET_ABANK + 4)
        is_one = valid & ((t == proto.TARGET_TABLE) | (t == proto.TARGET_TOKENS)
                          | (t == proto.TARGET_COUNTERS) | is_ctrl)
        is_mm = valid & ((t == proto.TARGET_MMEM) | (t == proto.TARGET_RMEM))
        n_w = proto.beats(cfg, proto.TARGET_WBANK)
        n_a = proto.beats(cfg, proto.TARGET_ABANK)
        n_p = proto.beats(cfg, proto.TARGET_PROG)
        n_m = proto.beats(cfg, proto.TARGET_MMEM)
        last_beat = Signal()
        m.d.comb += last_beat.eq(beat == Mux(is_prog, n_p - 1, Mux(is_act, n_a - 1, Mux(
            is_one, 0, Mux(is_mm, n_m - 1, n_w - 1)))))
        hdr = proto.Header(self.i.payload)
        # a WRITE's word is written the cycle after its last beat, from ``buf``: no choice
        # among the targets' word lengths on the host's wide write data (the address: the
        # word's, kept in ``wr_addr``; nothing else uses the port in that cycle)
        addr, wr_addr, wr_pending = Signal(16), Signal(16), Signal()
        m.d.comb += [mem.addr.eq(Mux(wr_pending, wr_addr, addr)), mem.wdata.eq(buf),
                     mem.wen.eq(wr_pending)]
        m.d.sync += wr_pending.eq(0)

        with m.FSM():
            with m.State("HDR0"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cmd.eq(hdr.cmd), mem.target.eq(hdr.target), count.eq(hdr.count)]
                    m.next = "HDR1"
            with m.State("HDR1"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [addr.eq(self.i.payload[:16]), beat.eq(0),
                                 self.run.steps.eq(self.i.payload), self.run.n_prompt.eq(count)]
                    with m.Switch(cmd):
                        with m.Case(proto.CMD_RUN):
                            m.d.sync += self.run.generate.eq(0)
                            m.next = "START"
                        with m.Case(proto.CMD_GENERATE):
                            # a prompt and at least one step, else a bad command; within
                            # the token memory and Ctrl.POSITIONS, else refused with RANGE
                            n_end = Signal(49)
                            m.d.comb += n_end.eq(count + self.i.payload - 1)
                            with m.If((count == 0) | (self.i.payload == 0)):
                                m.d.sync += bad.eq(1)
                                m.next = "HDR0"
                            with m.Elif((n_end > positions) | (n_end >= cfg.tdepth)):
                                m.d.sync += [status.eq(0), status.range.eq(1),
                                             status.bad_command.eq(bad), cycles.eq(0)]
                                m.next = "STATUS"
                            with m.Else():
                                m.d.sync += [self.run.generate.eq(1), addr.eq(0)]
                                m.next = "START"
                        with m.Case(proto.CMD_WRITE, proto.CMD_READ):
                            with m.If(~valid
                                      | (is_counters & (cmd == proto.CMD_WRITE))):
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
                    # beat k of a word into bits 32k .. 32k + 31: the word sits at bit 0
                    # whatever its length, and is written from the register a cycle later
                    with m.Switch(beat):
                        for k in range(n_all):
                            with m.Case(k):
                                m.d.sync += buf[32 * k:32 * (k + 1)].eq(self.i.payload)
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(last_beat):
                        m.d.sync += [wr_pending.eq(valid_target & ~is_counters),
                                     wr_addr.eq(addr)]
                        for reg in (r for r in proto.Ctrl if r not in proto.CTRL_READ_ONLY):
                            with m.If(is_ctrl & (addr == reg)):
                                m.d.sync += ctrl[reg].eq(self.i.payload)
                        m.d.sync += [beat.eq(0), addr.eq(addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "HDR0"
            with m.State("RADDR"):
                m.d.comb += mem.ren.eq(valid_target)
                m.next = "RDATA"
            with m.State("RDATA"):
                m.d.sync += [buf.eq(rdata & valid_target.replicate(len(rdata))),
                             beat.eq(0)]
                with m.If(is_ctrl):                 # beyond the last register: 0
                    m.d.sync += buf.eq(Array(ctrl + [0])[Mux(addr < len(ctrl), addr,
                                                           len(ctrl))])
                m.next = "RSEND"
            with m.State("RSEND"):
                m.d.comb += [self.o.valid.eq(1),
                             self.o.payload.eq(buf.word_select(beat, 32))]
                with m.If(self.o.ready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(last_beat):
                        m.d.sync += [addr.eq(addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "HDR0"
                        with m.Else():
                            m.next = "RADDR"
            with m.State("START"):
                m.d.comb += [self.run.start.eq(1), self.run.start_pc.eq(addr)]
                m.d.sync += overrun.eq(0)
                m.next = "RUNNING"
            with m.State("RUNNING"):
                # emissions go straight out; one the host is not ready for is lost
                m.d.comb += [self.o.valid.eq(self.run.emit_valid),
                             self.o.payload.eq(self.run.emit_data)]
                with m.If(self.run.emit_valid & ~self.o.ready):
                    m.d.sync += overrun.eq(1)
                with m.If(self.run.done):
                    m.d.sync += [status.eq(0), status.done.eq(1),
                                 status.port_conflict.eq(self.flags.port_conflict),
                                 status.raw_hazard.eq(self.flags.raw_hazard),
                                 status.bad_command.eq(bad),
                                 status.overrun.eq(overrun | (self.run.emit_valid & ~self.o.ready)),
                                 status.unit_busy.eq(self.flags.unit_busy),
                                 status.illegal.eq(self.flags.illegal),
                                 status.timeout.eq(self.flags.timeout),
                                 cycles.eq(self.run.cycles)]
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
