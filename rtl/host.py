"""Host interface: the command protocol of :mod:`tinylpu.host` over two 32-bit streams."""

__all__ = ["HostInterface", "ScheduleFlags"]

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
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

    Throughput: a WRITE takes one cycle per beat; a READ emits one beat per cycle the host is
    ready, plus two cycles per word to fetch it. The input stream is not ready during a run.

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
        buf = Signal(n_all * 32)
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
        shifted_in = Cat(buf[32:], self.i.payload)
        hdr = proto.Header(self.i.payload)

        with m.FSM():
            with m.State("HDR0"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cmd.eq(hdr.cmd), mem.target.eq(hdr.target), count.eq(hdr.count)]
                    m.next = "HDR1"
            with m.State("HDR1"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [mem.addr.eq(self.i.payload[:16]), beat.eq(0),
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
                                m.d.sync += [self.run.generate.eq(1), mem.addr.eq(0)]
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
                    m.d.sync += [buf.eq(shifted_in), beat.eq(beat + 1)]
                    with m.If(last_beat):
                        # the word sits in the top beats of the shift register
                        with m.If(is_prog):
                            m.d.comb += mem.wdata.eq(shifted_in >> (32 * (n_all - n_p)))
                        with m.Elif(is_act):
                            m.d.comb += mem.wdata.eq(shifted_in >> (32 * (n_all - n_a)))
                        with m.Elif(is_one):
                            m.d.comb += mem.wdata.eq(shifted_in >> (32 * (n_all - 1)))
                        with m.Elif(is_mm):
                            m.d.comb += mem.wdata.eq(shifted_in >> (32 * (n_all - n_m)))
                        with m.Else():
                            m.d.comb += mem.wdata.eq(shifted_in >> (32 * (n_all - n_w)))
                        m.d.comb += mem.wen.eq(valid_target & ~is_counters)
                        for reg in (r for r in proto.Ctrl if r not in proto.CTRL_READ_ONLY):
                            with m.If(is_ctrl & (mem.addr == reg)):
                                m.d.sync += ctrl[reg].eq(shifted_in[-32:])
                        m.d.sync += [beat.eq(0), mem.addr.eq(mem.addr + 1),
                                     count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "HDR0"
            with m.State("RADDR"):
                m.d.comb += mem.ren.eq(valid_target)
                m.next = "RDATA"
            with m.State("RDATA"):
                m.d.sync += [buf.eq(rdata & valid_target.replicate(len(rdata))),
                             beat.eq(0)]
                with m.If(is_ctrl):                 # beyond the last register: 0
                    m.d.sync += buf.eq(Array(ctrl + [0])[Mux(mem.addr < len(ctrl), mem.addr,
                                                           len(ctrl))])
                m.next = "RSEND"
            with m.State("RSEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(buf[:32])]
                with m.If(self.o.ready):
                    m.d.sync += [buf.eq(buf >> 32), beat.eq(beat + 1)]
                    with m.If(last_beat):
                        m.d.sync += [mem.addr.eq(mem.addr + 1), count.eq(count - 1)]
                        with m.If(count == 1):
                            m.next = "HDR0"
                        with m.Else():
                            m.next = "RADDR"
            with m.State("START"):
                m.d.comb += [self.run.start.eq(1), self.run.start_pc.eq(mem.addr)]
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
