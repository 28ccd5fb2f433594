"""Unit tests of rtl/sequencer.py ``Sequencer`` in Amaranth's simulator.

The testbench models the instruction memory (``imem_data`` is the word at the ``imem_addr``
of the previous cycle, as a synchronous SRAM read) and the AGU (a MATVEC of d = n_blocks *
n_chunks reads: ``final`` in the issue cycle when d == 1, else ``busy`` in the next d - 1
cycles with ``final`` in the last of them), and ``pipe_empty`` as the tile derives it (no
AGU read pending and no token in the 4 pipeline stages).

Documented timing: ``start`` fetches the first instruction, which issues in the next cycle;
an instruction issues in the cycle it appears on ``imem_data``; its successor is fetched in
its last cycle and issues the cycle after (no bubbles); HALT stops issue; ``done`` rises once
``pipe_empty``; ``cycles`` counts from the start cycle (= 1) to the first done cycle,
exclusive. The expected timeline below is derived from :func:`tinylpu.isa.execution_order`
and :func:`tinylpu.isa.duration`.
"""

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator

from tinylpu import isa
from tinylpu.config import Config
from tinylpu.rtl.sequencer import Sequencer

CFG = Config(lanes=4, rows=2, wdepth=16, adepth=16, pdepth=16)
MV_FIELDS = [name for name, _ in data.Layout.cast(isa.MatvecArgs)]
PIPE_STAGES = isa.LAT_WRITE


def mv(tag, nb=1, nc=1):
    """A MATVEC with d = nb * nc reads, told apart from the others by ``w_base = tag``."""
    return isa.matvec(w_base=tag, x_bank=tag % 4, x_addr=tag + 1, y_bank=(tag + 1) % 4,
                      y_addr=tag + 2, n_blocks=nb, n_chunks=nc, q_mult=-tag - 1,
                      q_shift=tag % 64)


def _image(cfg, program, at=0):
    words = [0] * cfg.pdepth                 # 0 encodes HALT
    for i, instr in enumerate(program):
        words[(at + i) % cfg.pdepth] = isa.encode(instr)
    return words


def _simulate(cfg, words, *, start_pc=0, starts=(2,), pipe_low_until=0, n_cycles=None):
    """Run the sequencer; ``starts``: cycles with ``start`` high. ``pipe_low_until``: force
    ``pipe_empty`` low before that cycle. Returns a per-cycle trace."""
    dut = Sequencer(cfg)
    trace = []

    async def bench(ctx):
        imem_data = 0
        busy_until = final_at = -1           # AGU: busy in cycles <= busy_until
        token_cycles = set()
        for c in range(n_cycles):
            ctx.set(dut.start, int(c in starts))
            ctx.set(dut.start_pc, start_pc)
            ctx.set(dut.imem_data, imem_data)
            busy = int(c <= busy_until)
            ctx.set(dut.agu_busy, busy)
            ctx.set(dut.agu_final, int(c == final_at))
            pipe_empty = not busy and not any(c - k in token_cycles
                                              for k in range(1, PIPE_STAGES + 1))
            ctx.set(dut.pipe_empty, int(pipe_empty and c >= pipe_low_until))
            args = None
            if ctx.get(dut.issue_matvec):
                view = ctx.get(dut.matvec)
                args = {name: int(getattr(view, name)) for name in MV_FIELDS}
                d = args["n_blocks"] * args["n_chunks"]
                busy_until, final_at = c + d - 1, c + d - 1
                if d == 1:
                    ctx.set(dut.agu_final, 1)
            if busy or args is not None:
                token_cycles.add(c)
            addr, ren = ctx.get(dut.imem_addr), ctx.get(dut.imem_ren)
            trace.append(dict(addr=addr, ren=ren, matvec=args, done=ctx.get(dut.done),
                              running=ctx.get(dut.running), cycles=ctx.get(dut.cycles)))
            if ren:
                imem_data = words[addr]
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
    last_read = max((t + d - 1 for _, i, t, d in order if i["op"] == isa.Opcode.MATVEC),
                    default=-100)
    done = max(t_h + 1, last_read + PIPE_STAGES + 1, pipe_low_until)
    addr = {s: start_pc}
    matvecs = {}
    for (pc, instr, t, d), nxt in zip(order, order[1:] + [None]):
        if nxt is None:                            # HALT: keeps presenting its own pc
            for c in range(t, n_cycles):
                addr[c] = pc
            continue
        for c in range(t, t + d):
            addr[c] = nxt[0] if c == t + d - 1 else pc
        if instr["op"] == isa.Opcode.MATVEC:
            matvecs[t] = instr["args"]["matvec"]
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
    assert all(trace[c]["ren"] for c in range(n_cycles))
    # the instruction on imem_data in each expected issue cycle is the one execution_order
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
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [4]
    # HALT issues the cycle after the final read (cycle 9); done once the last token drained
    assert [t for _, _, t, _ in order] == [4, 10]
    assert done == 9 + PIPE_STAGES + 1 == 14
    assert trace[14]["cycles"] == 11


def test_wait_occupies_n_cycles():
    words = _image(CFG, [isa.wait(5), mv(1), isa.wait(1), mv(2), isa.wait(2), mv(3),
                         isa.halt()])
    order, done, trace = _check_run(CFG, words)
    # start at 2: WAIT 5 in 3..7, MATVEC 8, WAIT 1 in 9, MATVEC 10, WAIT 2 in 11..12, MATVEC 13
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [8, 10, 13]
    assert [t for _, _, t, _ in order] == [3, 8, 9, 10, 11, 13, 14]
    assert done == 13 + PIPE_STAGES + 1


def test_back_to_back_matvecs_have_no_bubbles():
    words = _image(CFG, [mv(1, 2, 2), mv(2), mv(3, 1, 3), mv(4), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [3, 7, 8, 11]


def test_loop_repeats_body_without_bubbles():
    words = _image(CFG, [isa.loop(3, 1), mv(1, 2, 1), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    # LOOP at 3, the MATVEC (2 cycles) at 4, 6, 8, HALT at 10
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [4, 6, 8]
    assert [pc for pc, *_ in order] == [0, 1, 1, 1, 2]
    assert [t for _, _, t, _ in order] == [3, 4, 6, 8, 10]


def test_loop_with_wait_and_matvec_body():
    words = _image(CFG, [isa.loop(3, 2), isa.wait(2), mv(1, 2, 2), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [6, 12, 18]
    assert [pc for pc, *_ in order] == [0, 1, 2, 1, 2, 1, 2, 3]


def test_loop_single_cycle_body_and_instructions_around():
    words = _image(CFG, [mv(1), isa.loop(4, 1), mv(2), isa.wait(3), isa.loop(2, 3), mv(3),
                         isa.wait(1), mv(4, 1, 2), isa.halt()])
    order, done, trace = _check_run(CFG, words)
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [3, 5, 6, 7, 8, 13, 15, 17, 19]
    assert [pc for pc, *_ in order] == [0, 1, 2, 2, 2, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8]


def test_start_pc_and_wrap_around():
    # program placed at pc 13 of a 16-deep memory: runs 13, 14, 15, 0, 1
    words = _image(CFG, [mv(1), isa.wait(2), mv(2, 1, 2), mv(3), isa.halt()], at=13)
    order, done, trace = _check_run(CFG, words, start_pc=13)
    assert [pc for pc, *_ in order] == [13, 14, 15, 0, 1]
    assert trace[2]["addr"] == 13


def test_done_waits_for_pipe_empty():
    words = _image(CFG, [mv(1), isa.halt()])
    # with the modelled pipe, done would be at 3 + 5 = 8; hold pipe_empty low until 20
    order, done, trace = _check_run(CFG, words, pipe_low_until=20)
    assert done == 20
    assert trace[20]["cycles"] == 18


def test_restart_after_done():
    words = _image(CFG, [mv(1, 1, 2), isa.wait(3), isa.halt()])
    first_done = 2 + 1 + 2 + 3 + 1          # HALT issues at 8, done at 9 (pipe drained)
    s2 = first_done + 3
    trace = _simulate(CFG, words, starts=(2, s2), n_cycles=s2 + 12)
    assert [c for c, e in enumerate(trace) if e["done"]] == [first_done, s2 + first_done - 2]
    assert [c for c, e in enumerate(trace) if e["matvec"]] == [3, s2 + 1]
    assert trace[first_done]["cycles"] == 7
    assert trace[s2 + 7]["cycles"] == 7
    # between the runs the counter holds and running is low
    assert all(trace[c]["cycles"] == 7 and not trace[c]["running"]
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
