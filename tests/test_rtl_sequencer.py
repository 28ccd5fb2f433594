"""Unit tests of rtl/sequencer.py ``Sequencer`` in Amaranth's simulator.

The testbench models the instruction memory (``imem.data`` is the word at the ``imem.addr``
of the previous cycle, as a synchronous SRAM read) and the AGU (a MATVEC of d = n_blocks *
n_chunks reads from the cycle its issue port's ``issue`` is high: ``final`` in that cycle
when d == 1, else ``busy`` in the next d - 1 cycles with ``final`` in the last of them), and
``pipe_empty`` as the tile derives it (no AGU read pending and no token in the pipeline
stages).

Documented timing: ``start`` fetches the first instruction, which issues in the next cycle;
an instruction issues in the cycle it appears on ``imem.data`` and reaches its unit's issue
port ``isa.ISSUE_LAT`` (1) cycle later; its successor is fetched in its issue cycle and issues
``duration`` cycles later (no bubbles); HALT stops issue; ``done`` rises once
``pipe_empty``; ``cycles`` counts from the start cycle (= 1) to the first done cycle,
exclusive. The expected timeline below is derived from :func:`tinylpu.isa.execution_order`
and :func:`tinylpu.isa.duration`.
"""

import numpy as np
import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from tinylpu import isa
from tinylpu.config import Config
from tinylpu.rtl.sequencer import Sequencer

CFG = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16)
MV_FIELDS = [name for name, _ in data.Layout.cast(isa.MatvecArgs)]
PIPE_STAGES = isa.LAT_WRITE
U = isa.ISSUE_LAT              # a unit's first read is this many cycles after the issue


def mv(tag, nb=1, nc=1):
    """A MATVEC with d = nb * nc reads, told apart from the others by ``w_base = tag``."""
    return isa.matvec(w_base=tag, x_bank=tag % 4, x_addr=tag + 1, y_bank=(tag + 1) % 4,
                      y_addr=tag + 2, n_blocks=nb, n_chunks=nc, q_mult=-tag - 1,
                      q_shift=tag % 64)


def _image(cfg, program, at=0):
    words = [0] * cfg.pdepth                 # 0 encodes HALT
    for i, instr in enumerate(program):
        # as the program memory holds it (with its legality bit: isa.stored_word)
        words[(at + i) % cfg.pdepth] = isa.stored_word(isa.encode(instr), cfg.attention,
                                                       cfg.wbytes, cfg.pv)
    return words


def _simulate(cfg, words, *, start_pc=0, starts=(2,), pipe_low_until=0, n_cycles=None,
              generate=None, tmem=None, next_token=lambda c: 0, host_ready=None):
    """Run the sequencer; ``starts``: cycles with ``start`` high. ``pipe_low_until``: force
    ``pipe_empty`` low before that cycle. ``generate``: (n_prompt, steps) of a GENERATE start
    (else RUN). ``tmem``: the token memory (a list, modelled as a synchronous SRAM; updated in
    place). ``next_token(cycle)``: the vector unit's next-token register in each cycle.
    Returns a per-cycle trace."""
    dut = Sequencer(cfg)
    trace = []
    tmem = tmem if tmem is not None else [0] * cfg.tdepth

    async def bench(ctx):
        imem_data = tm_rdata = 0
        busy_until = final_at = -1           # AGU: busy in cycles <= busy_until
        vu_busy_until = vu_final_at = -1     # vector unit, likewise
        token_cycles, vu_cycles = set(), set()
        for c in range(n_cycles):
            ctx.set(dut.run.start, int(c in starts))
            ctx.set(dut.run.start_pc, start_pc)
            ctx.set(dut.run.generate, int(generate is not None))
            ctx.set(dut.run.n_prompt, generate[0] if generate else 0xffff)
            ctx.set(dut.run.steps, generate[1] if generate else 0x12345)
            ctx.set(dut.imem.data, imem_data)
            ctx.set(dut.tm.rdata, tm_rdata)
            ctx.set(dut.next_token, next_token(c))
            busy = int(c <= busy_until)
            ctx.set(dut.matvec.busy, busy)
            ctx.set(dut.matvec.final, int(c == final_at))
            vu_busy = int(c <= vu_busy_until)
            ctx.set(dut.vop.busy, vu_busy)
            ctx.set(dut.vop.final, int(c == vu_final_at))
            pipe_empty = not busy and not any(c - k in token_cycles
                                              for k in range(1, PIPE_STAGES + 1))
            pipe_empty = pipe_empty and not vu_busy and not any(
                c - k in vu_cycles for k in range(1, isa.LAT_V + 1))
            ctx.set(dut.pipe_empty, int(pipe_empty and c >= pipe_low_until))
            args = vop = None
            if ctx.get(dut.matvec.issue):
                view = ctx.get(dut.matvec.args)
                args = {name: int(getattr(getattr(view, name), "value", getattr(view, name)))
                        for name in MV_FIELDS}
                nb, nc = isa.matvec_dims(args, ctx.get(dut.matvec.pos))
                d = nb * nc + args["x_exp"]
                busy_until, final_at = c + d - 1, c + d - 1
                if d == 1:
                    ctx.set(dut.matvec.final, 1)
            if ctx.get(dut.vop.issue):
                view = ctx.get(dut.vop.args)
                vop = dict(tag=int(view.mult), pos=ctx.get(dut.vop.pos), tok=ctx.get(dut.vop.tok))
                sv, nv = isa.vop_dims({"s": int(view.s), "n": int(view.n),
                                       "s_pos": int(view.s_pos), "n_pos": int(view.n_pos)},
                                      vop["pos"])
                d = sv * nv
                vu_busy_until, vu_final_at = c + d - 1, c + d - 1
                if d == 1:
                    ctx.set(dut.vop.final, 1)
            if busy or args is not None:
                token_cycles.add(c)
            if vu_busy or vop is not None:
                vu_cycles.add(c)
            addr, ren = ctx.get(dut.imem.addr), ctx.get(dut.imem.en)
            # every issue port carries the position
            assert ctx.get(dut.matvec.pos) == ctx.get(dut.attention.pos) == ctx.get(dut.vop.pos)
            emit = ctx.get(dut.run.emit_data) if ctx.get(dut.run.emit_valid) else None
            trace.append(dict(addr=addr, ren=ren, matvec=args, vop=vop, emit=emit,
                              done=ctx.get(dut.run.done), running=ctx.get(dut.running),
                              cycles=ctx.get(dut.run.cycles), pos=ctx.get(dut.vop.pos),
                              tok=ctx.get(dut.vop.tok)))
            if ren:
                imem_data = words[addr]
            if ctx.get(dut.tm.ren):
                tm_rdata = tmem[ctx.get(dut.tm.raddr) % cfg.tdepth]
            if ctx.get(dut.tm.wen):
                tmem[ctx.get(dut.tm.waddr) % cfg.tdepth] = ctx.get(dut.tm.wdata)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace


def _timeline(cfg, words, start_pc, s):
    """Issue cycles (pc, instr, cycle, duration) from execution_order; HALT last."""
    t, out = s + 1, []
    for pc, instr in isa.execution_order(words, start_pc):
        d = isa.duration(instr)
        out.append((pc, instr, t, d))
        t += d
    return out


def _expected_trace(cfg, words, start_pc, s, n_cycles, pipe_low_until=0):
    order = _timeline(cfg, words, start_pc, s)
    pc_h, _, t_h, _ = order[-1]
    last_read = max((t + U + d - 1 for _, i, t, d in order if i["op"] == isa.Opcode.MATVEC),
                    default=-100)
    done = max(t_h + 1, last_read + PIPE_STAGES + 1, pipe_low_until)
    addr = {s: start_pc}
    matvecs = {}
    for (pc, instr, t, d), nxt in zip(order, order[1:] + [None]):
        if nxt is None:                            # HALT: fetches pc + 1 as it issues
            for c in range(t, n_cycles):
                addr[c] = (pc + 1) % cfg.pdepth
            continue
        for c in range(t, t + d):                  # the successor, from the issue cycle on
            addr[c] = nxt[0]
        if instr["op"] == isa.Opcode.MATVEC:       # at the unit: the registered issue
            matvecs[t + U] = instr["args"]["matvec"]
    return order, done, addr, matvecs


def _check_run(cfg, words, *, start_pc=0, s=2, pipe_low_until=0, extra=4):
    order, done, addr, matvecs = _expected_trace(cfg, words, start_pc, s, 10 ** 6,
                                                 pipe_low_until)
    n_cycles = done + extra
    trace = _simulate(cfg, words, start_pc=start_pc, starts=(s,),
                      pipe_low_until=pipe_low_until, n_cycles=n_cycles)
    # before the start: idle
    for c in range(s):
        assert (trace[c]["running"], trace[c]["done"], trace[c]["matvec"]) == (0, 0, None)
    # the fetch address of every cycle from start to done
    assert [trace[c]["addr"] for c in range(s, done + 1)] == [addr[c]
                                                              for c in range(s, done + 1)]
    # the fetch port is enabled from the start cycle through the done cycle
    assert [trace[c]["ren"] for c in range(n_cycles)] == [int(s <= c <= done)
                                                          for c in range(n_cycles)]
    # the instruction on imem.data in each expected issue cycle is the one execution_order
    # names: it was fetched in the previous cycle
    assert [trace[t - 1]["addr"] for _, _, t, _ in order] == [pc for pc, *_ in order]
    # MATVEC issue cycles and operands, in execution order
    seen = {c: e["matvec"] for c, e in enumerate(trace) if e["matvec"] is not None}
    assert seen == matvecs
    assert [a["w_base"] for _, a in sorted(seen.items())] == [
        i["args"]["matvec"]["w_base"] for _, i in isa.execution_order(words, start_pc)
        if i["op"] == isa.Opcode.MATVEC]
    # running from the cycle after start through the done cycle; done exactly at `done`
    assert [trace[c]["running"] for c in range(n_cycles)] == [
        int(s < c <= done) for c in range(n_cycles)]
    assert trace[done]["done"] == 1
    assert all(trace[c]["done"] == 0 for c in range(done))
    # cycles: start cycle .. done cycle, exclusive; it holds afterwards
    assert trace[done]["cycles"] == done - s
    assert [trace[c]["cycles"] for c in range(s + 1, done + 1)] == list(range(1, done - s + 1))
    assert all(trace[c]["cycles"] == done - s for c in range(done, n_cycles))
    return order, done, trace


def test_halt_only():
    words = _image(CFG, [isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [t for _, _, t, _ in order] == [3]
    assert done == 4 and trace[4]["cycles"] == 2


def test_first_instruction_issues_the_cycle_after_start():
    words = _image(CFG, [mv(1, 2, 3), isa.halt()])
    order, done, trace = _check_run(CFG, words, s=3)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [5]      # issued in 4
    # HALT issues in the cycle of the final read (cycle 10); done once the last token drained
    assert [t for _, _, t, _ in order] == [4, 10]
    assert done == 10 + PIPE_STAGES + 1
    assert trace[done - 1]["cycles"] == done - 1 - 3


def test_wait_occupies_n_cycles():
    words = _image(CFG, [isa.wait(5), mv(1), isa.wait(1), mv(2), isa.wait(2), mv(3),
                         isa.halt()])
    order, done, trace = _check_run(CFG, words)
    # start at 2: WAIT 5 in 3..7, MATVEC 8, WAIT 1 in 9, MATVEC 10, WAIT 2 in 11..12, MATVEC 13
    # (the unit reads in 9, 11, 14)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [9, 11, 14]
    assert [t for _, _, t, _ in order] == [3, 8, 9, 10, 11, 13, 14]
    assert done == 14 + PIPE_STAGES + 1


def test_back_to_back_matvecs_have_no_bubbles():
    words = _image(CFG, [mv(1, 2, 2), mv(2), mv(3, 1, 3), mv(4), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [4, 8, 9, 12]


def test_loop_repeats_body_without_bubbles():
    words = _image(CFG, [isa.loop(3, 1), mv(1, 2, 1), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    # LOOP at 3, the MATVEC (2 cycles) at 4, 6, 8 (reads from 5, 7, 9), HALT at 10
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [5, 7, 9]
    assert [pc for pc, *_ in order] == [0, 1, 1, 1, 2]
    assert [t for _, _, t, _ in order] == [3, 4, 6, 8, 10]


def test_loop_with_wait_and_matvec_body():
    words = _image(CFG, [isa.loop(3, 2), isa.wait(2), mv(1, 2, 2), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [7, 13, 19]
    assert [pc for pc, *_ in order] == [0, 1, 2, 1, 2, 1, 2, 3]


def test_loop_single_cycle_body_and_instructions_around():
    words = _image(CFG, [mv(1), isa.loop(4, 1), mv(2), isa.wait(3), isa.loop(2, 3), mv(3),
                         isa.wait(1), mv(4, 1, 2), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [4, 6, 7, 8, 9, 14, 16, 18, 20]
    assert [pc for pc, *_ in order] == [0, 1, 2, 2, 2, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8]


def test_start_pc_and_wrap_around():
    # program placed at pc 13 of a 16-deep memory: runs 13, 14, 15, 0, 1
    words = _image(CFG, [mv(1), isa.wait(2), mv(2, 1, 2), mv(3), isa.halt()], at=13)
    order, done, trace = _check_run(CFG, words, start_pc=13)
    assert [pc for pc, *_ in order] == [13, 14, 15, 0, 1]
    assert trace[2]["addr"] == 13


def test_done_waits_for_pipe_empty():
    words = _image(CFG, [mv(1), isa.halt()])
    # with the modelled pipe, done would be at 3 + 6 = 9; hold pipe_empty low until 20
    order, done, trace = _check_run(CFG, words, pipe_low_until=20)
    assert done == 20
    assert trace[20]["cycles"] == 18


def test_restart_after_done():
    words = _image(CFG, [mv(1, 1, 2), isa.wait(3), isa.halt()])
    # HALT issues at 8; done once the last token (read at 5) drained
    first_done = max(2 + 1 + 2 + 3 + 1, 5 + isa.DRAIN)
    s2 = first_done + 3
    trace = _simulate(CFG, words, starts=(2, s2), n_cycles=s2 + first_done)
    assert [c for c, e in enumerate(trace) if e["done"]] == [first_done, s2 + first_done - 2]
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [4, s2 + 2]
    cycles = first_done - 2
    assert trace[first_done]["cycles"] == cycles
    assert trace[s2 + cycles]["cycles"] == cycles
    # between the runs the counter holds and running is low
    assert all(trace[c]["cycles"] == cycles and not trace[c]["running"]
               for c in range(first_done + 1, s2 + 1))


def test_done_is_a_one_cycle_pulse():
    words = _image(CFG, [isa.halt()])
    trace = _simulate(CFG, words, starts=(2,), n_cycles=12)
    assert [e["done"] for e in trace[2:]] == [0, 0, 1] + [0] * 7


def test_nested_loop_and_wait_at_loop_end():
    # the inner LOOP replaces the outer one; a WAIT n > 1 closes a loop body
    words = _image(CFG, [isa.loop(2, 2), mv(1), isa.wait(3), isa.loop(3, 2), mv(2, 1, 2),
                         isa.loop(2, 1), mv(3), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    # LOOP 5 closes the body 4..5 of LOOP 3: its first issue takes an outer repeat back to 4
    # and installs the loop 6..6 (one repeat), which replaces the outer loop for good
    assert [pc for pc, *_ in order] == [0, 1, 2, 1, 2, 3, 4, 5, 4, 5, 6, 6, 7]


def _random_program(rng, n):
    prog = []
    for _ in range(n):
        kind = rng.choice(["mv", "mv", "wait", "loop"])
        if kind == "mv":
            prog.append(mv(len(prog), int(rng.integers(1, 3)), int(rng.integers(1, 4))))
        elif kind == "wait":
            prog.append(isa.wait(int(rng.integers(1, 5))))
        else:
            prog.append(isa.loop(int(rng.integers(1, 4)), int(rng.integers(1, 4))))
    return prog + [isa.halt()]


def test_random_programs_follow_execution_order():
    rng = np.random.default_rng(2024)
    checked = 0
    while checked < 8:
        words = _image(CFG, _random_program(rng, int(rng.integers(3, 10))))
        try:
            order = list(isa.execution_order(words, 0, limit=300))
        except isa.IsaError:                 # a loop that never ends: not a test program
            continue
        _check_run(CFG, words)
        checked += 1
        assert order[-1][1]["op"] == isa.Opcode.HALT


# The token loop: NEXT, pos, tok, emissions ------------------------------------------------

def vop(tag, s=1, n=1, s_pos=False, n_pos=False):
    """A VOP told apart from the others by ``mult = tag``; S*N (or pos+1) cycles."""
    return isa.vop(g=isa.GFunc.PASS, s=s, n=n, s_pos=s_pos, n_pos=n_pos, a={"bank": 0},
                   c={"bank": 1}, mult=tag)


def _token_reference(cfg, words, *, s, generate, tmem, next_token, start_pc=0):
    """What the sequencer must do, from execution_order and the NEXT rules: issue cycles
    [(pc, op, t)], VOP issues {t: (tag, pos, tok)}, emissions {cycle: beat}, the token memory
    afterwards and the done cycle."""
    n_prompt, steps = generate or (0, 0)
    gen = steps > 0
    n_end = n_prompt + steps - 1
    tm = list(tmem)
    st = dict(pos=0, t=s + 1, issue=None)
    emits, vops, order = {}, {}, []
    last_mv = last_vu = -100

    def on_next(pc, instr):
        c, p1 = st["issue"], st["pos"] + 1
        if gen and p1 >= n_prompt:
            emits[c] = next_token(c)
            emits[c + 1] = c - s               # NEXT's issue cycle, the start cycle is 0
            tm[p1 % cfg.tdepth] = next_token(c)
        st["pos"] = p1
        return gen and p1 < n_end

    for pc, instr in isa.execution_order(words, start_pc, on_next=on_next):
        t = st["issue"] = st["t"]
        d = isa.duration(instr, st["pos"])
        order.append((pc, instr["op"], t))
        if instr["op"] == isa.Opcode.VOP:      # at the unit's issue port ISSUE_LAT later
            vops[t + U] = dict(tag=instr["args"]["vop"]["mult"], pos=st["pos"] & 0xffff,
                               tok=tm[st["pos"] % cfg.tdepth])
            last_vu = t + U + d - 1
        if instr["op"] == isa.Opcode.MATVEC:
            last_mv = t + U + d - 1
        st["t"] = t + d
    done = max(order[-1][2] + 1, last_mv + PIPE_STAGES + 1, last_vu + isa.LAT_V + 1)
    return order, vops, emits, tm, done


def _check_token_run(cfg, program, *, generate=None, prompt=(), s=2, next_token=None):
    words = _image(cfg, program)
    tmem = [0] * cfg.tdepth
    tmem[:len(prompt)] = prompt
    next_token = next_token or (lambda c: (1000 + 37 * c) & 0xffff)
    order, vops, emits, tm, done = _token_reference(cfg, words, s=s, generate=generate,
                                                    tmem=tmem, next_token=next_token)
    trace = _simulate(cfg, words, starts=(s,), n_cycles=done + 4, generate=generate,
                      tmem=tmem, next_token=next_token)
    assert [trace[t - 1]["addr"] for _, _, t in order] == [pc for pc, _, _ in order]
    assert {c: e["vop"] for c, e in enumerate(trace) if e["vop"]} == vops
    assert {c: e["emit"] for c, e in enumerate(trace) if e["emit"] is not None} == emits
    assert tmem == tm
    assert [c for c, e in enumerate(trace) if e["done"]] == [done]
    assert trace[done]["cycles"] == done - s
    return order, vops, emits, trace


def test_next_under_run_steps_pos_and_falls_through():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=16)
    program = [vop(1, n_pos=True), isa.next_(0), vop(2, s_pos=True), isa.next_(0),
               vop(3, n=2, n_pos=True), isa.next_(1), isa.halt()]
    order, vops, emits, trace = _check_token_run(cfg, program, prompt=[7, 8, 9, 10])
    assert emits == {}
    # pos 0, 1, 2 at the three VOPs, tok = the token memory there; NEXT takes 2 cycles
    assert [(v["tag"], v["pos"], v["tok"]) for _, v in sorted(vops.items())] == [
        (1, 0, 7), (2, 1, 8), (3, 2, 9)]
    assert [t for *_, t in order] == [3, 4, 6, 8, 10, 13, 15]
    assert [pc for pc, *_ in order] == list(range(7))


def test_generate_emits_records_and_loops_back():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=16)
    program = [vop(1, n_pos=True), isa.wait(2), vop(2), isa.next_(0), isa.halt()]
    order, vops, emits, trace = _check_token_run(cfg, program, generate=(3, 4),
                                                 prompt=[11, 22, 33])
    # positions 0..5: NEXT issues 6 times and emits from position 3 on: 4 ids, 2 beats each
    assert sum(op == isa.Opcode.NEXT for _, op, _ in order) == 6
    assert len(emits) == 8
    nexts = [t for _, op, t in order if op == isa.Opcode.NEXT]
    assert [emits[t + 1] for t in nexts[2:]] == [t - 2 for t in nexts[2:]]
    # the VOPs after a generated position see its id as tok
    toks = [v["tok"] for _, v in sorted(vops.items()) if v["tag"] == 1]
    assert toks == [11, 22, 33] + [emits[t] for t in nexts[2:5]]


@pytest.mark.parametrize("n_prompt,steps", [(1, 1), (2, 1), (1, 3), (0, 2), (5, 0), (3, 9)])
def test_generate_counts(n_prompt, steps):
    """steps ids are emitted (steps = 0: a plain run from pc 0; n_prompt = 0, which the host
    library refuses, as the rules say: NEXT emits from the first position)."""
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=8)
    program = [vop(1, n_pos=True), vop(2, s=2, s_pos=True), isa.next_(0), isa.wait(1),
               isa.halt()]
    _, _, emits, _ = _check_token_run(cfg, program, generate=(n_prompt, steps),
                                      prompt=[5, 6, 7, 8, 9])
    if n_prompt:
        assert len(emits) == 2 * steps


def test_token_memory_wraps_at_tdepth():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=4)
    program = [vop(1), isa.next_(0), isa.halt()]
    _, vops, emits, _ = _check_token_run(cfg, program, generate=(3, 6), prompt=[1, 2, 3])
    assert len(emits) == 12
    assert [v["pos"] for _, v in sorted(vops.items())] == list(range(8))


def test_next_inside_a_loop_and_a_nonzero_target():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=16)
    # NEXT closes the body of LOOP 3: the loop counter drops, then NEXT's target wins
    program = [isa.wait(1), vop(1), isa.loop(3, 2), vop(2, n_pos=True), isa.next_(1),
               mv(5), isa.halt()]
    order, _, emits, _ = _check_token_run(cfg, program, generate=(2, 3), prompt=[4, 5])
    # the last NEXT falls through into the loop's remaining repeats, whose NEXTs emit too
    assert len(emits) == 2 * 5
    assert [pc for pc, *_ in order][-10:] == [1, 2, 3, 4, 3, 4, 3, 4, 5, 6]
    # under RUN the same program takes the loop
    order, *_ = _check_token_run(cfg, program, prompt=[4, 5])
    assert [pc for pc, *_ in order] == [0, 1, 2, 3, 4, 3, 4, 3, 4, 5, 6]


def test_emission_beats_follow_next_token_of_the_issue_cycle():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=16)
    program = [isa.wait(3), isa.next_(0), isa.halt()]
    _, _, emits, trace = _check_token_run(cfg, program, generate=(1, 2), s=5,
                                          next_token=lambda c: 40000 + c)
    # start 5: WAIT 6..8, NEXT 9 (emits at 9, 10), WAIT 11..13, NEXT 14 (15), HALT 16
    assert emits == {9: 40009, 10: 4, 14: 40014, 15: 9}
    assert [c for c, e in enumerate(trace) if e["done"]] == [17]


def test_restart_reads_token_zero_and_clears_pos():
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=16)
    words = _image(cfg, [vop(1), isa.next_(0), isa.next_(0), vop(2), isa.halt()])
    tmem = [50 + i for i in range(16)]
    s2 = 20
    trace = _simulate(cfg, words, starts=(2, s2), n_cycles=s2 + 12, tmem=tmem)
    got = [(c, e["vop"]) for c, e in enumerate(trace) if e["vop"]]
    assert got == [(4, dict(tag=1, pos=0, tok=50)), (9, dict(tag=2, pos=2, tok=52)),
                   (s2 + 2, dict(tag=1, pos=0, tok=50)), (s2 + 7, dict(tag=2, pos=2, tok=52))]


def _durations_program(x):
    return [x, isa.next_(0), isa.halt()]


def _pass(nb, x_shift, x_pos=True):
    """A PV pass (MATVEC ``x_exp``): n_blocks * chunks + 1 cycles, (pos >> x_shift) + 1
    chunks with ``x_pos``."""
    return isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=nb,
                      n_chunks=2, x_exp=True, x_pos=x_pos, x_shift=x_shift)


@pytest.mark.parametrize("x", [
    vop(1, s=3, n=2), vop(2, s=2, n_pos=True), vop(3, s_pos=True, n=3),
    vop(4, s_pos=True, n_pos=True), mv(5, nb=3, nc=2), _pass(2, 1), _pass(3, 0),
    _pass(1, 2, x_pos=False),
    isa.qk(q_addr=0, k_bank=0, k_addr=0, s_bank=1, s_addr=0, shift=0, n_pos=True),
    isa.qk(q_addr=0, k_bank=0, k_addr=0, s_bank=1, s_addr=0, shift=0, n=3),
    isa.pv(v_bank=0, v_addr=0, s_bank=1, s_addr=0, y_bank=1, y_addr=0, d_blocks=1, shift=0,
           n_pos=True),
    isa.pv(v_bank=0, v_addr=0, s_bank=1, s_addr=0, y_bank=1, y_addr=0, d_blocks=1, shift=0,
           n=2),
    isa.wait(4),
], ids=lambda x: x["op"].name)
def test_the_slot_is_held_for_the_duration_at_every_position(x):
    """The sequencer counts each instruction's duration itself (from its word and the
    position, not from the units' final reads): every kind, with counts from its fields and
    from the position, at positions 0 .. 5; the fetch addresses and issue cycles follow
    isa.duration (the token-run reference)."""
    cfg = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16, tdepth=16, pv=1)
    order, *_ = _check_token_run(cfg, _durations_program(x), generate=(2, 5), prompt=[3, 4])
    issues = [t for _, op, t in order]
    firsts = [i for i, (_, op, _) in enumerate(order) if op == x["op"] and i % 2 == 0]
    assert len(firsts) == 6
    # X at position p, then NEXT: the gap is duration(X, p)
    assert [issues[i + 1] - issues[i] for i in firsts] == [isa.duration(x, p) for p in range(6)]
