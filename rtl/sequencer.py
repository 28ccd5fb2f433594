"""The instruction sequencer: program counter, one-level hardware loop, WAIT, issue, done."""

__all__ = ["Sequencer"]

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.isa import INSTR_BITS, INSTR_LAYOUT, MatvecArgs, Opcode

from .sram import addr_bits


class Sequencer(wiring.Component):
    """Fetches and issues instructions with no bubbles.

    ``start`` (one cycle, with ``start_pc``) fetches the first instruction; it issues in the
    next cycle. An instruction issues in the cycle it appears on ``imem_data``; the sequencer
    fetches its successor in the instruction's last cycle (MATVEC: the AGU's ``final`` read;
    WAIT n: its n-th cycle; LOOP: its only cycle), so the successor issues the cycle after.
    HALT stops issue; ``done`` is high for one cycle, the first with ``pipe_empty`` after
    HALT, and ``running`` falls at its end. ``cycles`` counts from the start cycle to the
    ``done`` cycle, exclusive (the start cycle counts as 1), and holds until the next start.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        abits = addr_bits(cfg.pdepth)
        super().__init__({
            "start": In(1), "start_pc": In(abits),
            "imem_addr": Out(abits), "imem_ren": Out(1), "imem_data": In(INSTR_BITS),
            "issue_matvec": Out(1), "matvec": Out(MatvecArgs),
            "agu_busy": In(1), "agu_final": In(1), "pipe_empty": In(1),
            "running": Out(1), "done": Out(1), "cycles": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        instr = INSTR_LAYOUT(self.imem_data[:INSTR_LAYOUT.size])
        pc = Signal.like(self.imem_addr)
        halted = Signal()
        wait_left = Signal(16)
        loop_start, loop_end = Signal.like(pc), Signal.like(pc)
        loop_left = Signal(16)

        issuing = Signal()
        m.d.comb += issuing.eq(self.running & ~halted & ~self.agu_busy & (wait_left == 0))
        op = instr.op
        m.d.comb += [
            self.issue_matvec.eq(issuing & (op == Opcode.MATVEC)),
            self.matvec.eq(instr.args.matvec),
        ]
        wait_cycles = instr.args.wait.cycles
        last_cycle = Signal()
        m.d.comb += last_cycle.eq(
            self.agu_final
            | (issuing & (op == Opcode.LOOP))
            | (issuing & (op == Opcode.WAIT) & (wait_cycles <= 1))
            | (wait_left == 1))
        with m.If(wait_left != 0):
            m.d.sync += wait_left.eq(wait_left - 1)
        with m.If(issuing & (op == Opcode.WAIT) & (wait_cycles > 1)):
            m.d.sync += wait_left.eq(wait_cycles - 1)

        take_loop = (pc == loop_end) & (loop_left != 0)
        next_pc = Mux(take_loop, loop_start, pc + 1)
        m.d.comb += self.imem_ren.eq(1)
        with m.If(self.start):
            m.d.comb += self.imem_addr.eq(self.start_pc)
            m.d.sync += pc.eq(self.start_pc)
        with m.Elif(last_cycle):
            m.d.comb += self.imem_addr.eq(next_pc)
            m.d.sync += pc.eq(next_pc)
            with m.If(take_loop):
                m.d.sync += loop_left.eq(loop_left - 1)
        with m.Else():
            m.d.comb += self.imem_addr.eq(pc)
        with m.If(issuing & (op == Opcode.LOOP)):
            body, count = instr.args.loop.body, instr.args.loop.count
            m.d.sync += [
                loop_start.eq(pc + 1),
                loop_end.eq(pc + Mux(body == 0, 1, body)),
                loop_left.eq(Mux(count == 0, 0, count - 1)),
            ]
        with m.If(issuing & (op == Opcode.HALT)):
            m.d.sync += halted.eq(1)

        m.d.comb += self.done.eq(self.running & halted & self.pipe_empty)
        with m.If(self.start):
            m.d.sync += [self.running.eq(1), halted.eq(0), self.cycles.eq(1),
                         wait_left.eq(0), loop_left.eq(0), loop_end.eq(0), loop_start.eq(0)]
        with m.Elif(self.done):
            m.d.sync += self.running.eq(0)
        with m.Elif(self.running):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m
