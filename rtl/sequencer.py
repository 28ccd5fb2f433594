"""The instruction sequencer: program counter, one-level hardware loop, WAIT, issue, the token
loop (NEXT, GENERATE), done."""

__all__ = ["run_control", "issue_port", "attention_issue", "field_count", "positions",
           "Sequencer", "EMIT_CYCLE_OFFSET"]

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.isa import (INSTR_LAYOUT, ISSUE_LAT, NEXT_CYCLES, MatvecArgs, Opcode, PvArgs,
                         QkArgs, VopArgs, ILLEGAL_BIT)

from .router import fetch_port, token_port

# The cycle beat of an emission: NEXT's issue cycle, counted from the start cycle (= cycle 0).
# In NEXT's second cycle the cycle counter holds issue + 1.
EMIT_CYCLE_OFFSET = -1
POS_BITS = 33          # n_prompt (16 bits) + steps (32 bits) - 1 fits


def run_control():
    """The host's control of a run, as the host interface sees it: it starts a run (``start``
    for one cycle with the rest), the sequencer answers ``emit_*`` and ``done`` with the
    run's ``cycles``. ``budget`` is all ones (no limit) when nobody drives it; it holds from
    the start cycle to the end of the run (the host's control registers do not change while
    a run runs)."""
    return wiring.Signature({
        "start": Out(1), "start_pc": Out(16),
        "generate": Out(1), "n_prompt": Out(16), "steps": Out(32),
        "budget": Out(32, init=(1 << 32) - 1),
        "emit_valid": In(1), "emit_data": In(32), "done": In(1), "cycles": In(32),
    })


def issue_port(args, *, tok=False, early=False):
    """An execution unit's issue port, as the sequencer sees it: ``issue`` for one cycle (the
    cycle after the instruction issued, :data:`tinylpu.isa.ISSUE_LAT`: the unit's first read)
    with the instruction's ``args`` and the token loop's position ``pos`` (and, with ``tok``,
    its token ``tok``) as of the issue, valid in that cycle only; the unit answers ``busy``
    (it has a read to make in this cycle from an earlier issue) and ``final`` (this cycle's
    read is the instruction's last: for waveforms and the unit's tests; the sequencer counts
    the instruction's duration itself).

    With ``early``: ``early_args``, ``early_pos`` (and ``early_tok``) are the same values a
    cycle before, in the sequencer's issue cycle (the instruction word as it is read), for
    any instruction; so a unit can form and register what its first read needs (the vector
    unit's first addresses, products of the position or the token) before ``issue``."""
    members = {"issue": Out(1), "args": Out(args), "pos": Out(16)}
    if tok:
        members["tok"] = Out(16)
    if early:
        members |= {"early_args": Out(args), "early_pos": Out(16)}
        if tok:
            members["early_tok"] = Out(16)
    return wiring.Signature({**members, "busy": In(1), "final": In(1)})


def field_count(field, width=16):
    """A count field's value as an expression: 0 counts as ``2**width`` (tinylpu.isa)."""
    return Mux(field == 0, 1 << width, field)


def positions(args, pos_1):
    """:func:`tinylpu.isa.positions` of QK or PV ``args`` as an expression, ``pos_1`` being
    the position + 1: ``pos_1`` with ``n_pos``, else ``n``."""
    return Mux(args.n_pos, pos_1, field_count(args.n))


def attention_issue():
    """The attention address generator's issue port: as :func:`issue_port`, for QK
    (``issue_qk``, ``qk``) and PV (``issue_pv``, ``pv``), with early args (``early_qk``,
    ``early_pv``, ``early_pos``: a cycle before, as ``issue_port``'s ``early``)."""
    return wiring.Signature({"issue_qk": Out(1), "qk": Out(QkArgs),
                             "issue_pv": Out(1), "pv": Out(PvArgs), "pos": Out(16),
                             "early_qk": Out(QkArgs), "early_pv": Out(PvArgs),
                             "early_pos": Out(16),
                             "busy": In(1), "final": In(1)})


class Sequencer(wiring.Component):
    """Fetches and issues instructions with no bubbles.

    The host's port is ``run`` (:func:`run_control`). ``start`` (one cycle, with
    ``start_pc``, and for GENERATE ``generate``, ``n_prompt`` and
    ``steps``) fetches the first instruction; it issues in the next cycle. The instruction
    memory's port is ``imem`` (:func:`rtl.router.fetch_port`), enabled in the start cycle and
    while ``running``. An instruction issues in the cycle it appears on ``imem.data`` (if the
    issue slot is free), and its successor is fetched in that same cycle, so it waits on
    ``imem.data`` for the slot. The issue is registered: the unit's issue port
    (:func:`issue_port`: ``matvec`` to the MATVEC address generator, ``attention``
    (:func:`attention_issue`) to the QK/PV one, ``vop`` to the vector unit) carries it, with
    the instruction's ``args``, ``pos`` and ``tok`` as of the issue cycle, in the cycle after
    (``tinylpu.isa.ISSUE_LAT``), the unit's first read. The slot is free again
    ``isa.duration`` cycles after the issue: in the cycle of the unit's final read (MATVEC,
    QK, PV, VOP), after a WAIT n's n cycles, NEXT's two and LOOP's one, so the successor
    issues then: no bubbles, the units' reads back to back. The sequencer counts that
    duration from the instruction word as it issues (a product of two registered factors,
    made the cycle after), so the next fetch waits on a register of its own, not on the units'
    counters. HALT stops issue; ``done`` is high for one cycle,
    the first with ``pipe_empty`` after HALT, and ``running`` falls at its end.
    An illegal word (:func:`tinylpu.isa.illegal`) in the issue slot issues nothing and stops
    the run as HALT does (``illegal`` high in that cycle: the ILLEGAL_INSTRUCTION status).
    Nothing issues in a cycle whose count (``cycles``) is at least ``budget``: the run stops
    there as at a HALT (``timeout`` high in that cycle: the TIMEOUT status); the comparison is
    registered (made for the next cycle's count), so it is not on the issue path. ``cycles`` counts
    from the start cycle to the ``done`` cycle, exclusive (the start cycle counts as 1), and
    holds until the next start.

    The token loop. ``pos`` is 0 from the cycle after the start; ``tok`` is the token memory
    at ``pos`` (read at 0 in the start cycle and at the new ``pos`` in NEXT's second cycle, so
    it is on the read port's data from the first issue cycle on); the issue ports carry both
    as of the issue. NEXT (two cycles, the issue cycle c and c+1), whose successor is fetched
    in c: NEXT's ``target`` when generating and ``pos + 1`` is below ``n_prompt + steps -
    1``, else as for any instruction (pc + 1 or the loop):

    - in c, when generating (GENERATE with ``steps`` > 0) and ``pos + 1 >= n_prompt``: emit
      beat 0, ``next_token``, and write it to the token memory at ``pos + 1``; ``pos`` becomes
      ``pos + 1`` at the end of c (under RUN too);
    - in c+1, after an emission in c: emit beat 1, the cycle c counted from the start cycle
      (cycle 0).

    An emission is one cycle of ``emit_valid`` with ``emit_data``; nothing waits for it.

    For the busy counters: ``wait_slot`` is high in the issue slot of a WAIT (all its
    cycles) or a LOOP, ``next_slot`` in both cycles of a NEXT.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "run": In(run_control()),
            "imem": Out(fetch_port(cfg)),
            "matvec": Out(issue_port(MatvecArgs)), "attention": Out(attention_issue()),
            "vop": Out(issue_port(VopArgs, tok=True, early=True)),
            "pipe_empty": In(1),
            # the token loop
            "next_token": In(16),
            "tm": Out(token_port()),
            "issue_next": Out(1),
            "wait_slot": Out(1), "next_slot": Out(1), "illegal": Out(1),
            "timeout": Out(1), "running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        instr = INSTR_LAYOUT(self.imem.data[:INSTR_LAYOUT.size])
        pc = Signal.like(self.imem.addr)
        halted = Signal()
        waiting = Signal()             # the slot's instruction is a WAIT
        loop_start, loop_end = Signal.like(pc), Signal.like(pc)
        loop_left = Signal(16)
        in_next = Signal()             # NEXT's second cycle
        emitted = Signal()             # ... after an emission in its first
        pos = Signal(POS_BITS, name="pos_count")     # the position, wide enough for n_end
        n_prompt, n_end = Signal(16), Signal(POS_BITS)
        generating = Signal()

        # an illegal word (isa.illegal) in the issue slot stops the run as HALT does, without
        # issuing anything; ``illegal`` is high in that cycle. The program memory holds each
        # word's legality in its last bit, decoded as the host wrote it (isa.stored_word)
        bad = Signal()
        m.d.comb += bad.eq(self.imem.data[ILLEGAL_BIT])
        # an instruction holds the slot for its duration (isa.duration: a unit's reads up to
        # its final one, WAIT's cycles, NEXT's two), counted here from the instruction word
        # as it issues, so that the next fetch waits on a register (``free``), not on the
        # units' final reads (their counters, compares and the position: the issue loop)
        free = Signal(init=1)
        left = Signal(34)
        slot = Signal()
        m.d.comb += slot.eq(self.running & ~halted & free)
        # the cycle budget is spent: nothing issues from this cycle on (the stop of a HALT)
        # (registered: compared with the count the next cycle will have, which keeps the 32-bit
        # comparison off the path from the instruction word to the units' first reads)
        over = Signal()
        issuing = Signal()
        m.d.comb += [issuing.eq(slot & ~bad & ~over), self.illegal.eq(slot & bad & ~over),
                     self.timeout.eq(slot & over)]
        op = instr.op
        # the registered issue (isa.ISSUE_LAT): a unit sees its instruction, the position and
        # the token as of the issue cycle, in the next cycle
        assert ISSUE_LAT == 1
        args = Signal.like(instr.args, reset_less=True)    # data: used with an issue
        m.d.sync += [
            args.eq(instr.args),
            self.matvec.issue.eq(issuing & (op == Opcode.MATVEC)),
            self.vop.issue.eq(issuing & (op == Opcode.VOP)),
            self.attention.issue_qk.eq(issuing & (op == Opcode.QK)),
            self.attention.issue_pv.eq(issuing & (op == Opcode.PV)),
        ]
        m.d.comb += [self.matvec.args.eq(args.matvec), self.vop.args.eq(args.vop),
                     self.attention.qk.eq(args.qk), self.attention.pv.eq(args.pv)]
        # the duration d = a * b + x (isa.duration; a, b >= 1): ``left`` is the slot's cycles
        # left, counting this one, and ``free`` is ``left <= 1``. The factors are registered
        # in the issue cycle c; ``left`` holds d - 1 from c+2 (the product made in c+1 from
        # the registered factors), and ``free`` in c+1 and c+2 (d <= 1, d <= 2) is told from
        # the factors, so no product, and no compare behind one, is on a path to the fetch
        dur_a, dur_b, dur_x = self._duration_terms(m, instr, pos)
        fa, fb, fx, fresh = Signal(17), Signal(17), Signal(), Signal()
        m.d.sync += fresh.eq(issuing)
        with m.If(issuing):
            m.d.sync += [fa.eq(dur_a), fb.eq(dur_b), fx.eq(dur_x),
                         free.eq((dur_a == 1) & (dur_b == 1) & ~dur_x)]
        with m.Elif(fresh):
            ones = (fa == 1) & (fb == 1)
            twos = ((fa == 1) & (fb == 2)) | ((fa == 2) & (fb == 1))
            m.d.sync += [left.eq(fa * fb + fx - 1), free.eq(ones | (twos & ~fx))]
        with m.Elif(left > 1):
            m.d.sync += [left.eq(left - 1), free.eq(left == 2)]
        with m.If(issuing):
            m.d.sync += waiting.eq(op == Opcode.WAIT)

        # NEXT, first cycle: emit and record the token, step the position
        issue_next = issuing & (op == Opcode.NEXT)
        m.d.comb += [
            self.issue_next.eq(issue_next), self.next_slot.eq(issue_next | in_next),
            self.wait_slot.eq((issuing & ((op == Opcode.WAIT) | (op == Opcode.LOOP)))
                              | (waiting & ~free)),
        ]
        pos_1, pos_2 = Signal(POS_BITS), Signal(POS_BITS)
        m.d.comb += [pos_1.eq(pos + 1), pos_2.eq(pos_1 + 1)]
        # pos_1 compared with the prompt's length and the run's end a NEXT ahead (registered:
        # the compares are not on the path from the instruction word to the next fetch)
        prompt_done, more = Signal(), Signal()
        emit = Signal()
        m.d.comb += emit.eq(issue_next & generating & prompt_done)
        m.d.sync += [in_next.eq(issue_next), emitted.eq(emit)]
        with m.If(issue_next):
            m.d.sync += [pos.eq(pos_1), prompt_done.eq(pos_2 >= n_prompt),
                         more.eq(pos_2 < n_end)]
        m.d.comb += [
            self.tm.wen.eq(emit), self.tm.waddr.eq(pos_1), self.tm.wdata.eq(self.next_token),
            self.run.emit_valid.eq(emit | (in_next & emitted)),
            self.run.emit_data.eq(Mux(in_next, self.run.cycles + EMIT_CYCLE_OFFSET,
                                      self.next_token)),
        ]
        # NEXT, second cycle: read the token at the new position
        m.d.comb += self.tm.ren.eq(self.run.start | in_next)
        m.d.comb += self.tm.raddr.eq(Mux(self.run.start, 0, pos))
        m.d.sync += [self.vop.tok.eq(self.tm.rdata),
                     self.matvec.pos.eq(pos), self.attention.pos.eq(pos), self.vop.pos.eq(pos)]
        m.d.comb += [self.vop.early_args.eq(instr.args.vop), self.vop.early_pos.eq(pos),
                     self.vop.early_tok.eq(self.tm.rdata),
                     self.attention.early_qk.eq(instr.args.qk),
                     self.attention.early_pv.eq(instr.args.pv),
                     self.attention.early_pos.eq(pos)]
        # NEXT loops back while positions remain (its successor is fetched as it issues, with
        # the position it makes)
        # The fetch follows the slot whether or not its word is legal: an illegal word stops
        # the run (halted), so what is fetched after it is never issued, and the fetch address
        # does not wait for the word's legality check (isa.illegal_expr)
        advance = Signal()
        m.d.comb += advance.eq(slot & ~over)
        jump = Signal()
        m.d.comb += jump.eq(advance & (op == Opcode.NEXT) & generating & more)

        take_loop = (pc == loop_end) & (loop_left != 0)
        next_pc = Mux(jump, instr.args.next.target, Mux(take_loop, loop_start, pc + 1))
        m.d.comb += self.imem.en.eq(self.running | self.run.start)
        with m.If(self.run.start):
            m.d.comb += self.imem.addr.eq(self.run.start_pc)
            m.d.sync += pc.eq(self.run.start_pc)
        with m.Elif(advance):
            m.d.comb += self.imem.addr.eq(next_pc)
            m.d.sync += pc.eq(next_pc)
            with m.If(take_loop):
                m.d.sync += loop_left.eq(loop_left - 1)
        with m.Else():
            m.d.comb += self.imem.addr.eq(pc)
        with m.If(issuing & (op == Opcode.LOOP)):
            body, count = instr.args.loop.body, instr.args.loop.count
            m.d.sync += [
                loop_start.eq(pc + 1),
                loop_end.eq(pc + Mux(body == 0, 1, body)),
                loop_left.eq(Mux(count == 0, 0, count - 1)),
            ]
        with m.If((issuing & (op == Opcode.HALT)) | self.illegal | self.timeout):
            m.d.sync += halted.eq(1)

        m.d.comb += self.run.done.eq(self.running & halted & self.pipe_empty)
        run_end = Signal(POS_BITS)              # the run's last position
        m.d.comb += run_end.eq(self.run.n_prompt + self.run.steps - 1)
        with m.If(self.run.start):
            m.d.sync += [self.running.eq(1), halted.eq(0), self.run.cycles.eq(1),
                         free.eq(1), left.eq(0), fresh.eq(0),
                         over.eq(self.run.budget <= 1),
                         waiting.eq(0), loop_left.eq(0), loop_end.eq(0), loop_start.eq(0),
                         in_next.eq(0), emitted.eq(0), pos.eq(0),
                         prompt_done.eq(self.run.n_prompt <= 1),
                         more.eq(run_end > 1),
                         generating.eq(self.run.generate & (self.run.steps != 0)),
                         n_prompt.eq(self.run.n_prompt),
                         n_end.eq(run_end)]
        with m.Elif(self.run.done):
            m.d.sync += self.running.eq(0)
        with m.Elif(self.running):
            cycles_1 = (self.run.cycles + 1)[:32]
            m.d.sync += [self.run.cycles.eq(cycles_1), over.eq(cycles_1 >= self.run.budget)]
        return m

    @staticmethod
    def _duration_terms(m, instr, pos):
        """``(a, b, extra)``, ``isa.duration(instr, pos) == a * b + extra`` with ``a, b >= 1``
        (a zero count field is 2**16, or 2**12 for ``n_chunks``, as in tinylpu.isa)."""
        op, args = instr.op, instr.args
        p16 = pos[:16]
        p1 = Signal(17, name="dur_pos1")
        m.d.comb += p1.eq(p16 + 1)

        vop, mv = args.vop, args.matvec
        qk_n, pv_n = positions(args.qk, p1), positions(args.pv, p1)
        chunks = Mux(mv.x_exp & mv.x_pos, (p16 >> mv.x_shift) + 1, field_count(mv.n_chunks, 12))
        a, b, extra = Signal(17, name="dur_a"), Signal(17, name="dur_b"), Signal(name="dur_x")
        with m.Switch(op):
            with m.Case(Opcode.VOP):
                m.d.comb += [a.eq(Mux(vop.s_pos, p1, field_count(vop.s))),
                             b.eq(Mux(vop.n_pos, p1, field_count(vop.n)))]
            with m.Case(Opcode.MATVEC):
                m.d.comb += [a.eq(field_count(mv.n_blocks)), b.eq(chunks), extra.eq(mv.x_exp)]
            with m.Case(Opcode.QK):
                m.d.comb += [a.eq(1), b.eq(qk_n)]
            with m.Case(Opcode.PV):
                m.d.comb += [a.eq(1), b.eq(pv_n), extra.eq(1)]
            with m.Case(Opcode.WAIT):
                m.d.comb += [a.eq(1), b.eq(Mux(args.wait.cycles == 0, 1, args.wait.cycles))]
            with m.Case(Opcode.NEXT):
                m.d.comb += [a.eq(1), b.eq(NEXT_CYCLES)]
            with m.Default():
                m.d.comb += [a.eq(1), b.eq(1)]
        return a, b, extra
