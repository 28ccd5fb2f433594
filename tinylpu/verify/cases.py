"""Test and benchmark cases: host streams with the golden model's expected responses."""

__all__ = ["gemv_case", "compiled_case", "program_case", "standard_cases", "schedule_cases",
           "snapshot", "restore", "with_counters"]

import re

import numpy as np
from amaranth.lib import data

from tinylpu import host, isa
from tinylpu.compiler import compile_chain
from tinylpu.golden import GoldenError


def _case(name, stream, golden, predicted):
    expected = golden.host(stream)
    if predicted is not None and golden.last_run.cycles != predicted:
        raise AssertionError(f"{name}: golden model ran {golden.last_run.cycles} cycles, "
                             f"compiler predicted {predicted}")
    return {"name": name, "stream": stream, "expected": expected, "cycles": predicted,
            "run_at": golden.last_run_at}


def gemv_case(name, golden, Ws, x, **quant):
    """Compile a GEMV (one W) or chain (several); check the golden model against plain NumPy;
    return the case with the golden model's responses (``golden`` keeps its memory state)."""
    return compiled_case(name, golden, compile_chain(Ws, x, golden.cfg, **quant), Ws, x)


def compiled_case(name, golden, g, Ws, x):
    """The case of an already compiled :class:`tinylpu.compiler.Gemv` of ``Ws`` and ``x``."""
    case = _case(name, g.host_stream(), golden, g.schedule.cycles)
    np.testing.assert_array_equal(g.result(case["expected"]), g.reference(Ws, x),
                                  err_msg=f"{name}: golden model != NumPy reference")
    case.update(shape=[list(np.shape(W)) for W in Ws], macs=sum(int(np.size(W)) for W in Ws))
    return case


def program_case(name, golden, program, loads, reads):
    """A hand-assembled program (instruction dicts, or raw words as ints): ``loads`` are
    (target, addr, words), ``reads`` (target, addr, count) after the run. The cycle
    prediction is the golden model's own."""
    cfg = golden.cfg
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0,
                            [i if isinstance(i, int) else isa.encode(i) for i in program])
    for target, addr, words in loads:
        stream += host.write_cmd(cfg, target, addr, words)
    stream += host.run_cmd(0)
    for target, addr, count in reads:
        stream += host.read_cmd(cfg, target, addr, count)
    case = _case(name, stream, golden, None)
    case["cycles"] = golden.last_run.cycles
    return case


def weight_bank_cases(golden, rng, loads, mv):
    """A MATVEC writes bytes into the weight banks (``y_wbank``: two instructions, one with
    RoPE, filling all lane groups of word 2 and of word 3 of the R banks), then a MATVEC
    and a VOP (WROW) use them as weights; the banks and results are read back. Then each
    reader (and QK, taking word 3 as q) right after the write, without the WAIT: a flagged
    race (RAW_HAZARD)."""
    cfg = golden.cfg
    R, L = cfg.rows, cfg.lanes
    other = 1 % cfg.act_banks
    nb = L                       # L blocks: R results into each bank's L bytes
    rope = rng.integers(-(1 << 14), 1 << 14, (2, R))
    program = [mv(w_base=4, n_blocks=nb, n_chunks=2, y_addr=2, q_shift=9, y_bits=8,
                  y_wbank=True),
               mv(w_base=4 + 2 * nb, n_blocks=nb, n_chunks=2, y_addr=3, q_shift=8, y_bits=7,
                  y_wbank=True, epi=isa.Epi.ROPE, rope_base=0, rope_shift=1),
               isa.wait(isa.LAT_WRITE + 1),
               mv(w_base=2, y_bank=other, y_addr=8, n_blocks=2, n_chunks=1, q_shift=6,
                  y_bits=16),
               isa.vop(g=isa.GFunc.MUL, a={"space": isa.Space.WROW, "base": 3, "istride": 1,
                                           "index": isa.Index.NONE, "ks": 1},
                       b={"mode": isa.BMode.MEM, "bank": 0, "ks": 1}, n=L,
                       c={"bank": other, "base": 12 * L}, sat=32),
               isa.halt()]
    reads = ([(host.TARGET_WBANK + r, 2, 2) for r in range(R)]
             + [(host.TARGET_ABANK + other, 8, 1), (host.TARGET_ABANK + other, 12, 1)])
    cases = [program_case("MATVEC into the weight banks, then MATVEC and VOP on them", golden,
                          program, loads + [(host.TARGET_RMEM, 0, rope)], reads)]
    # without the WAIT the MATVEC, the VOP and QK (q: the weight word) read bytes still in
    # flight: the old ones, flagged
    users = [("MATVEC", program[3]), ("VOP", program[4])]
    if cfg.attention:
        users.append(("QK", isa.qk(q_addr=3, k_bank=0, k_addr=0, s_bank=other, s_addr=14,
                                   shift=6, n=3, head_shift=[1, 0, 2, 3])))
        reads.append((host.TARGET_ABANK + other, 14, 1))
    for name, use in users:
        case = program_case(f"weight-bank race flagged ({name})", golden,
                            [program[1], use, isa.halt()], loads, reads)
        assert case["expected"][0] == host.STATUS_DONE | host.STATUS_RAW_HAZARD, name
        cases.append(case)
    return cases + (weight_column_cases(golden, loads, mv) if cfg.wbytes else [])


def weight_column_cases(golden, loads, mv):
    """A MATVEC writes one byte a result into the weight banks (``y_wcol``, indexed by the
    position) at each of L + 2 positions of a GENERATE: lane p % L of words 5 + ((p // L)
    << 2) + b, the word's other bytes kept; a second one, unindexed, lane 0 of word 30 and
    31; then the banks are read back. Its read on a MATVEC's next cycles, without the WAIT:
    a flagged race (RAW_HAZARD)."""
    cfg = golden.cfg
    R, L = cfg.rows, cfg.lanes
    other = 1 % cfg.act_banks
    steps = L + 2
    # x: two words that a RESID MATVEC adds to at every position (with two activation
    # banks; RESID's read would meet its own x stream in one), so each position's bytes differ
    grow = []
    if cfg.act_banks > 1:
        grow = [mv(w_base=0, y_bank=other, y_addr=24, n_blocks=2 * L // R, n_chunks=1,
                   q_shift=10, y_bits=16, epi=isa.Epi.RESID), isa.wait(isa.LAT_WRITE + 1)]
    col = mv(w_base=1, x_bank=other if grow else 0, x_addr=24 if grow else 0, n_blocks=2,
             n_chunks=2, y_addr=5, q_shift=12, y_bits=8, y_wcol=True, y_index=isa.Index.POS,
             y_shift=2)
    # the next id: the largest of R results (an ARGMAX MATVEC), landing before the NEXT
    argmax = mv(w_base=0, y_bank=other, y_addr=20, n_blocks=1, n_chunks=1, q_shift=4,
                y_bits=16, epi=isa.Epi.ARGMAX)
    program = grow + [col, mv(w_base=1, n_blocks=2, n_chunks=2, y_addr=30, q_shift=5,
                              y_bits=6, y_wcol=True),
                      argmax, isa.wait(isa.LAT_ARGMAX + 1), isa.next_(0), isa.halt()]
    words = 5 + (((steps - 1) // L) << 2) + 2
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for target, addr, values in loads:
        stream += host.write_cmd(cfg, target, addr, values)
    stream += host.ctrl_cmd(cfg, positions=steps + 1) + host.generate_cmd(1, steps)
    for r in range(R):
        stream += host.read_cmd(cfg, host.TARGET_WBANK + r, 0, max(words, 32))
    stream += host.ctrl_cmd(cfg, *host.ctrl_reset(cfg)[:2])
    case = _case("MATVEC columns into the weight banks over L + 2 positions", stream, golden,
                 None)
    case.update(cycles=golden.last_run.cycles, emissions=len(golden.emitted))
    assert case["expected"][case["run_at"]] == host.STATUS_DONE, case["name"]
    cases = [case]
    race = program_case("weight-column race flagged (MATVEC)", golden,
                        [program[-5], mv(w_base=30, y_bank=other, y_addr=8), isa.halt()],
                        loads, [(host.TARGET_WBANK + r, 30, 1) for r in range(R)])
    assert race["expected"][0] == host.STATUS_DONE | host.STATUS_RAW_HAZARD
    return cases + [race]


def pv_pass_cases(golden, rng):
    """PV passes (MATVEC ``x_exp``) on host-loaded V^T words and head score words, after a
    QK (its running maxima): two heads, several blocks and chunks, one with ``x_pos``; then
    a read of a pass's output in flight (RAW_HAZARD). (A pass's result meeting another in
    the output unit, and a pass during QK's maxima: :func:`schedule_cases`.)"""
    cfg = golden.cfg
    R, L = cfg.rows, cfg.lanes
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    loads = [(host.TARGET_WBANK + r, 0, rng.integers(lo, hi, (40, L))) for r in range(R)]
    loads.append((host.TARGET_ABANK, 0, rng.integers(-(1 << 15), 1 << 15, (16, L))))
    passes = [isa.matvec(w_base=8, x_bank=0, x_addr=8, y_bank=1, y_addr=40, n_blocks=2,
                         n_chunks=3, q_shift=6, y_bits=16, x_exp=True, x_head=0, w_shift=3),
              isa.matvec(w_base=9, x_bank=0, x_addr=12, y_bank=1, y_addr=41, n_blocks=1,
                         n_chunks=7, q_shift=9, y_bits=12, x_exp=True, x_head=2 * R - 1,
                         x_pos=True, x_shift=2, y_grp=L // R - 1)]   # from the last group
    qk = isa.qk(q_addr=3, k_bank=0, k_addr=0, s_bank=1, s_addr=0, shift=9, n=5)
    reads = [(host.TARGET_ABANK + 1, 40, 3)]
    cases = [program_case("PV passes after a QK", golden,
                          [qk, isa.wait(isa.LAT_WRITE + 1)] + passes + [isa.halt()], loads,
                          reads)]
    race = isa.matvec(w_base=0, x_bank=1, x_addr=40, y_bank=0, y_addr=30, n_blocks=1,
                      n_chunks=1, q_shift=8, y_bits=16)
    case = program_case("read of a PV pass's output in flight flagged", golden,
                        [passes[0], race, isa.halt()], loads, reads)
    assert case["expected"][0] == host.STATUS_DONE | host.STATUS_RAW_HAZARD, case["name"]
    return cases + [case] + (pass_weight_read_cases(golden, loads) if cfg.wbytes else [])


def pass_weight_read_cases(golden, loads):
    """A PV pass reads its weight words ``PASS_W_LAT`` after its x words: behind a MATVEC
    writing a byte of the word it reads (``y_wcol``), the WAIT that lets the write land just
    before the weight read reads the new byte; one cycle less is a flagged race."""
    R = golden.cfg.rows
    col = isa.matvec(w_base=1, x_bank=0, x_addr=0, y_bank=0, y_addr=30, n_blocks=1,
                     n_chunks=1, q_shift=12, y_bits=8, y_wcol=True)
    xp = isa.matvec(w_base=30, x_bank=0, x_addr=8, y_bank=1, y_addr=44, n_blocks=1,
                    n_chunks=1, q_shift=6, y_bits=16, x_exp=True, x_head=0)
    reads = [(host.TARGET_ABANK + 1, 44, 1)] + [(host.TARGET_WBANK + r, 30, 1)
                                                for r in range(R)]
    landed = isa.LAT_WRITE - isa.PASS_W_LAT       # the write lands in the cycle before
    cases = []
    for wait, status, name in ((landed, host.STATUS_DONE, ""),
                               (landed - 1, host.STATUS_DONE | host.STATUS_RAW_HAZARD,
                                " flagged")):
        case = program_case(f"PV pass reading a weight column {wait} cycles behind its "
                            f"write{name}", golden, [col, isa.wait(wait), xp, isa.halt()],
                            loads, reads)
        assert case["expected"][0] == status, case["name"]
        cases.append(case)
    return cases


def transposer_cases(golden, rng):
    """QK with ``s_tr`` (the score transposer): L + 1 positions (a short last group that
    waits for the group before), then 2L + 3 positions, into words whose other lanes hold
    host-loaded values, and a PV pass reading the second QK's words; then a read of the
    transposed scores in flight (RAW_HAZARD). (A QK starting while the transposer writes,
    its words meeting a result's write, a VOP read in flight: :func:`schedule_cases`.)"""
    cfg = golden.cfg
    R, L = cfg.rows, cfg.lanes
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    n1, n2 = L + 1, 2 * L + 3
    a1, a2 = 2, 2 + ((2 * R - 1) << 1) + 2          # the two QKs' words: 2 .. a2 + 30
    depth = min(cfg.adepth, 64)
    loads = [(host.TARGET_WBANK + r, 0, rng.integers(lo, hi, (8, L))) for r in range(R)]
    loads += [(host.TARGET_ABANK, 0, rng.integers(-(1 << 31), 1 << 31, (n2, L))),
              (host.TARGET_ABANK + 1, 0, rng.integers(-(1 << 31), 1 << 31, (depth, L)))]
    qk = lambda n, addr, hs: isa.qk(q_addr=3, k_bank=0, k_addr=0, s_bank=1, s_addr=addr,
                                    shift=9, n=n, s_tr=True, s_hs=hs)
    gap = lambda n: isa.score_word_lat(n, L, R)
    head = 2 * R - 1
    xp = isa.matvec(w_base=0, x_bank=1, x_addr=a2 + (head << 2), y_bank=0, y_addr=n2,
                    n_blocks=2, n_chunks=3, q_shift=6, y_bits=16, x_exp=True, x_head=head,
                    w_shift=1)
    program = [qk(n1, a1, 1), isa.wait(gap(n1)), qk(n2, a2, 2), isa.wait(gap(n2)), xp,
               isa.halt()]
    reads = [(host.TARGET_ABANK + 1, 0, depth), (host.TARGET_ABANK, n2, 1)]
    cases = [program_case("QK transposed scores, a PV pass on them", golden, program, loads,
                          reads)]
    # read in the cycle of the QK's first word (read + 6), written after its last
    race = isa.matvec(w_base=0, x_bank=1, x_addr=a1, y_bank=0, y_addr=n2, n_blocks=1,
                      n_chunks=1, q_shift=6, y_bits=16)
    case = program_case("read of transposed scores in flight flagged", golden,
                        [qk(1, a1, 1), isa.wait(isa.LAT_SCORE_WORD - 1), race, isa.halt()],
                        loads, reads)
    assert case["expected"][0] == host.STATUS_DONE | host.STATUS_RAW_HAZARD, case["name"]
    return cases + [case]


def illegal_words():
    """``(name, word)``: one instruction word per kind of :func:`tinylpu.isa.illegal` word."""
    vop = isa.encode(isa.vop(g=isa.GFunc.PASS, a={"bank": 0}, c={"bank": 0, "base": 3}))
    mvw = isa.encode(isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=0, y_addr=0, n_blocks=1,
                                n_chunks=1))
    epi = isa.INSTR_LAYOUT["args"].offset + data_offset(isa.MatvecArgs, "epi")
    g = isa.INSTR_LAYOUT["args"].offset + data_offset(isa.VopArgs, "g")
    wbank, pack, wcol, grp = (isa.INSTR_LAYOUT["args"].offset
                              + data_offset(isa.MatvecArgs, name)
                              for name in ("y_wbank", "y_pack", "y_wcol", "y_grp"))
    return [("undefined opcode 9", 9), ("undefined opcode 15", 15 | 1 << 8),
            ("WAIT with a bit above its operands", isa.encode(isa.wait(3)) | 1 << 30),
            ("HALT with an operand bit", isa.encode(isa.halt()) | 1 << 4),
            ("VOP with the reserved g = 7", vop | 7 << g),
            ("MATVEC with the reserved epi = 7", mvw | 7 << epi),
            ("MATVEC y_wbank with RESID", mvw | isa.Epi.RESID.value << epi | 1 << wbank),
            ("MATVEC y_wbank with y_pack", mvw | 1 << pack | 1 << wbank),
            ("MATVEC y_wcol and y_wbank", mvw | 1 << wcol | 1 << wbank),
            ("MATVEC y_wcol with ROPE", mvw | isa.Epi.ROPE.value << epi | 1 << wcol),
            ("MATVEC y_grp without x_exp", mvw | 1 << grp),
            ("a bit above the instruction layout", isa.encode(isa.wait(2))
             | 1 << isa.INSTR_LAYOUT.size)]


def data_offset(struct, name):
    """The bit offset of field ``name`` in an ``amaranth.lib.data`` struct."""
    return data.Layout.cast(struct)[name].offset


def illegal_cases(golden, loads, mv):
    """Each illegal word after a MATVEC and before another: the run stops at it with
    ILLEGAL_INSTRUCTION (the first MATVEC's result lands, the second never issues)."""
    cfg = golden.cfg
    other = 1 % cfg.act_banks
    cases = []
    words = illegal_words()
    if not cfg.attention:               # QK and PV are illegal words on this tile
        words.append(("QK with lanes < 2 * rows", isa.encode(isa.qk(
            q_addr=0, k_bank=0, k_addr=0, s_bank=other, s_addr=0,
            shift=0, n=1))))
    if not cfg.wbytes:                  # ... and y_wcol on this one
        words.append(("MATVEC y_wcol on whole-word weight banks", isa.encode(mv(y_wcol=True))))
    if cfg.attention and not cfg.pv:    # ... and PV on a tile without its datapath
        words.append(("PV on a tile without PV's datapath", isa.encode(isa.pv(
            v_bank=0, v_addr=0, s_bank=other, s_addr=0, y_bank=other, y_addr=0, d_blocks=1,
            shift=0, n=1))))
    for name, word in words:
        assert isa.illegal(word, cfg.attention, cfg.wbytes, cfg.pv), name
        cases.append(program_case(
            f"illegal: {name}", golden,
            [mv(y_bank=other, y_addr=8, n_blocks=1, n_chunks=1), word,
             mv(y_bank=other, y_addr=9), isa.halt()], loads,
            [(host.TARGET_ABANK + other, 8, 2)]))
        assert cases[-1]["expected"][0] == host.STATUS_DONE | host.STATUS_ILLEGAL, name
    return cases


def ctrl_cases(golden):
    """The control registers (host.Ctrl): a cycle budget stops a program without HALT and a
    run whose HALT comes too late (TIMEOUT; the budget is checked at each issue, so a long
    instruction in the slot ends first), a GENERATE past the token memory or
    Ctrl.POSITIONS is refused at once (RANGE, cycles 0, BAD_COMMAND if pending), the
    registers read back (0 beyond the last; the read-only Ctrl.CONFIG unchanged by a
    WRITE); each case restores the reset values."""
    cfg = golden.cfg
    budget, positions, _ = host.ctrl_reset(cfg)
    reset = host.ctrl_cmd(cfg, budget, positions)
    prog = lambda instrs: host.write_cmd(cfg, host.TARGET_PROG, 0,
                                         [isa.encode(i) for i in instrs])
    cases = []

    def add(name, stream, status, ran=True):
        case = _case(name, stream + reset, golden, None)
        case["cycles"] = golden.last_run.cycles if ran else None
        assert case["expected"][case["run_at"]] == status, (name, case["expected"])
        cases.append(case)

    # WAITs all through the program memory: the pc wraps, no HALT ever issues
    add("budget: a program without HALT", prog([isa.wait(7)] * cfg.pdepth)
        + host.ctrl_cmd(cfg, budget=60) + host.run_cmd(0)
        + host.write_cmd(cfg, host.TARGET_CTRL, host.Ctrl.CONFIG, [[0]])   # read-only
        + host.header(host.CMD_READ, host.TARGET_CTRL, 0, len(host.Ctrl) + 1),
        host.STATUS_DONE | host.STATUS_TIMEOUT)
    add("budget: a HALT after a long WAIT", prog([isa.wait(100), isa.halt()])
        + host.ctrl_cmd(cfg, budget=20) + host.run_cmd(0),
        host.STATUS_DONE | host.STATUS_TIMEOUT)
    add("budget: met", prog([isa.wait(3), isa.halt()]) + host.ctrl_cmd(cfg, budget=5)
        + host.run_cmd(0), host.STATUS_DONE)
    gen = lambda n, steps: host.header(host.CMD_GENERATE, 0, steps, n)
    add("range: past the token memory", gen(2, cfg.tdepth - 1), host.STATUS_RANGE, ran=False)
    add("range: past Ctrl.POSITIONS, a bad command pending",
        host.ctrl_cmd(cfg, positions=3) + gen(0, 1) + gen(2, 3),
        host.STATUS_RANGE | host.STATUS_BAD_COMMAND, ran=False)
    return cases


def standard_cases(golden, seed=0, n_random=6, max_dim=None):
    """The suite the RTL is checked on: the acceptance shapes, edge shapes (1xN, Nx1, not
    multiples of the lane count), extreme values, chains with WAITs, loops, a deliberate
    read-after-write race and bad host commands, then ``n_random`` random GEMVs."""
    cfg = golden.cfg
    L, R = cfg.lanes, cfg.rows
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    mat = lambda o, i: rng.integers(lo, hi, (o, i))
    vec = lambda n: rng.integers(lo, hi, n)
    cases = [
        gemv_case("gemv 64x64", golden, [mat(64, 64)], vec(64), mults=[1], shifts=[10]),
        gemv_case("gemv 172x64", golden, [mat(172, 64)], vec(64)),
        gemv_case("gemv 1xN", golden, [mat(1, 3 * L + 5)], vec(3 * L + 5),
                  mults=[-20000], shifts=[20]),
        gemv_case("gemv Nx1", golden, [mat(2 * R * 3 + 1, 1)], vec(1), mults=[3], shifts=[0]),
        gemv_case("gemv 13x29", golden, [mat(13, 29)], vec(29), mults=[12345], shifts=[19]),
        gemv_case("all -128, saturating", golden, [np.full((R + 3, 2 * L + 1), lo)],
                  np.full(2 * L + 1, lo), mults=[1], shifts=[0]),
        gemv_case("all -128, exact", golden, [np.full((R + 3, 2 * L + 1), lo)],
                  np.full(2 * L + 1, lo), mults=[1], shifts=[15]),
        gemv_case("all -128, negative multiplier", golden, [np.full((5, 3), lo)],
                  np.full(3, lo), mults=[-32768], shifts=[30]),
        gemv_case("chain 40->24->9->30", golden,
                  [mat(24, 40), mat(9, 24), mat(30, 9)], vec(40)),
    ]
    # a loop repeating WAIT + MATVEC, and a race the compiler would have refused
    w_words = rng.integers(lo, hi, (4, L))
    x_words = rng.integers(lo, hi, (4, L))
    mv = lambda **kw: isa.matvec(**{**dict(w_base=0, x_bank=0, x_addr=0, y_bank=1 % cfg.act_banks,
                                            y_addr=8, n_blocks=1, n_chunks=1, q_mult=1,
                                            q_shift=6, y_bits=cfg.data_bits), **kw})
    loads = [(host.TARGET_WBANK + r, 0, w_words) for r in range(R)]
    loads.append((host.TARGET_ABANK, 0, x_words))
    cases.append(program_case("loop 3x (wait 2, matvec 2x2)", golden,
                              [isa.loop(3, 2), isa.wait(2), mv(n_blocks=2, n_chunks=2),
                               isa.halt()], loads,
                              [(host.TARGET_ABANK + 1 % cfg.act_banks, 8, 1)]))
    cases.append(program_case("raw race flagged", golden,
                              [mv(y_bank=0, y_addr=1), mv(x_addr=1, y_addr=9), isa.halt()],
                              loads, [(host.TARGET_ABANK + 1 % cfg.act_banks, 8, 2)]))
    # row multipliers, then a residual add onto that result (y += W x, saturating to 16 bits)
    mults = rng.integers(-(1 << 15), 1 << 15, (4, R))
    other = 1 % cfg.act_banks
    # (RESID reads the destination's bank: with one bank it would meet the x stream)
    rope = rng.integers(-(1 << 14), 1 << 14, (4, R))
    resid = [mv(w_base=1, y_bank=other, n_blocks=3, m_base=0, q_shift=2, y_bits=16,
                epi=isa.Epi.RESID)] if cfg.act_banks > 1 else []
    cases.append(program_case(
        "row multipliers, residual add, RoPE", golden,
        [mv(y_bank=other, n_blocks=3, n_chunks=2, m_base=1, q_shift=4, y_bits=16),
         isa.wait(isa.LAT_WRITE)] + resid +
        [mv(w_base=2, y_bank=other, y_addr=12, n_blocks=3, m_base=2, q_shift=1, y_bits=16,
            epi=isa.Epi.ROPE, rope_base=1, rope_shift=1), isa.halt()],
        loads + [(host.TARGET_MMEM, 0, mults), (host.TARGET_RMEM, 0, rope)],
        [(host.TARGET_ABANK + other, 8, 2), (host.TARGET_ABANK + other, 12, 2)]))
    cases += weight_bank_cases(golden, rng, loads, mv)
    if cfg.attention:
        cases += pv_pass_cases(golden, rng)
        cases += transposer_cases(golden, rng)
    cases += illegal_cases(golden, loads, mv)
    cases += ctrl_cases(golden)
    bad = host.header(0x7f, 0, 0, 0) + host.read_cmd(cfg, host.TARGET_PROG, 0, 2)
    bad += host.header(host.CMD_READ, 0x3f, 0, 1) + host.run_cmd(0)
    cases.append(_case("bad commands, program read-back", bad, golden, None))
    cases[-1]["cycles"] = golden.last_run.cycles
    max_dim = max_dim or 6 * L
    for i in range(n_random):
        o, n = (int(v) for v in rng.integers(1, max_dim + 1, 2))
        cases.append(gemv_case(f"random {o}x{n}", golden, [mat(o, n)], vec(n),
                               mults=[int(rng.integers(-(1 << 15), 1 << 15))],
                               shifts=[int(rng.integers(0, 24))]))
    for case in cases:            # after a port conflict memory is undefined: no such case
        status = case["expected"][case["run_at"]]
        assert not status & host.STATUS_PORT_CONFLICT, f"{case['name']}: a port conflict"
    return cases


def _timing_cycles(program, cfg):
    """The cycle count of a straight-line program of MATVEC (PV passes too), VOP, QK, PV,
    WAIT and NEXT, ended by HALT, by the timing model: ``max(t_halt + 1, last_write + 1)``
    (a unit's last read is ``ISSUE_LAT`` after its issue slot's last cycle)."""
    t, last, tr_end = 1, -1, -1
    for instr in program:
        op, d = instr["op"], isa.duration(instr)
        args = next(iter(instr["args"].values()), None) if instr["args"] else None
        if op == isa.Opcode.HALT:
            return max(t + 1, last + 1)
        c_last = t + isa.ISSUE_LAT + d - 1
        if op == isa.Opcode.MATVEC and args["x_exp"]:     # its slot ends a cycle after
            last = max(last, c_last - 1 + isa.LAT_EXP_RESULT + isa.LAT_OUT)
        elif op == isa.Opcode.MATVEC:
            last = max(last, c_last + (isa.LAT_SS_NORM if args["ss"] else isa.LAT_WRITE))
        elif op == isa.Opcode.VOP:
            last = max(last, c_last + isa.vop_latency(args))
        elif op == isa.Opcode.PV:
            last = max(last, c_last + isa.PV_DRAIN + args["d_blocks"] - 1 + isa.LAT_OUT)
        elif op == isa.Opcode.QK and args["s_tr"]:        # its transposer's words
            first = c_last - d + 1
            w = isa.score_word_writes(d, cfg.lanes, cfg.rows, tr_end + 1 - first)[-1][1]
            tr_end = first + w + 2 * cfg.rows - 1
            last = max(last, tr_end)
        elif op == isa.Opcode.QK:
            last = max(last, c_last + isa.LAT_WRITE)
        t += d
    raise ValueError("no HALT")


def schedule_cases(golden):
    """Hand-written programs that each break one schedule rule (docs/isa.md, "Schedule
    rules") that the RTL reports by a status bit: the golden model refuses every one (checked:
    a GoldenError naming that rule); the RTL runs it to the end and answers DONE with the
    rule's bit and the timing model's cycle count (none of them changes when a write lands;
    the one start the scalar unit ignores would have landed before the RSQRT in flight).
    Nothing is read back: the data of such a run is stale or lost where the rule says so.
    ``golden`` keeps its memory state; the RTL's may differ afterwards, so run these after
    cases that read back memory they did not write."""
    cfg = golden.cfg
    L, R = cfg.lanes, cfg.rows
    G, O = isa.GFunc, isa.OutFunc
    b0, b1 = 0, 1 % cfg.act_banks
    far = (cfg.adepth // 2) * L                       # an element nothing else touches
    emask = (1 << 18) - 1
    mv = lambda **kw: isa.matvec(**{**dict(w_base=0, x_bank=b0, x_addr=0, y_bank=b1, y_addr=0,
                                            n_blocks=1, n_chunks=1, q_shift=6, y_bits=16),
                                    **kw})
    pas = lambda a, c, **kw: isa.vop(g=G.PASS, a=a, c=c, **{"sat": 32, **kw})
    recip = pas(dict(bank=b0), dict(bank=b0, base=far), out=O.RECIP)
    rsqrt = pas(dict(bank=b0), dict(bank=b1, base=far), out=O.RSQRT)
    raw, busy, clash = host.STATUS_RAW_HAZARD, host.STATUS_UNIT_BUSY, host.STATUS_PORT_CONFLICT
    norm = pas(dict(bank=b0, base=2), dict(bank=b1, base=far), out=O.NORM)
    landing = pas(dict(bank=b0), dict(bank=b1, base=3 * L))
    rules = []
    if cfg.attention:
        qk_tr = lambda addr: isa.qk(q_addr=0, k_bank=b0, k_addr=0, s_bank=b1, s_addr=addr,
                                    shift=9, n=1, s_tr=True)
        xp = isa.matvec(w_base=0, x_bank=b0, x_addr=0, y_bank=b1, y_addr=4, n_blocks=1,
                        n_chunks=2, q_shift=6, y_bits=16, x_exp=True, x_head=1, w_shift=1)
        rules += [
            # the pass's block enters the output unit in its last read + 12, the MATVEC's
            # in its read + 3: the pass's is lost
            ("PV pass and MATVEC results in the output unit together", busy,
             "two results enter the output unit",
             [xp, isa.wait(isa.LAT_EXP_RESULT - isa.LAT_RESULT - 2), mv(y_addr=6)]),
            ("PV pass weights while QK's maxima are written", raw, "PV pass forms weights",
             [isa.qk(q_addr=0, k_bank=b0, k_addr=0, s_bank=b1, s_addr=8, shift=9, n=2), xp]),
            # the first QK's words are written in its read + 7 .. + 7 + 2R - 1
            ("QK (s_tr) while the score transposer writes", busy, "while the score transposer",
             [qk_tr(8), qk_tr(8 + L)]),
            # ... and a MATVEC's result in its read + LAT_WRITE, the QK's first word in that
            # cycle: the QK reads LAT_WRITE - LAT_SCORE_WORD after the MATVEC
            ("score transposer and a result writing together", busy,
             "the score transposer and a result",
             [mv(y_addr=40), isa.wait(isa.LAT_WRITE - isa.LAT_SCORE_WORD - 1), qk_tr(8)]),
            ("VOP read of transposed scores in flight", raw, "transposed scores",
             [qk_tr(8), pas(dict(bank=b1, base=8 * L), dict(bank=b0, base=far))]),
        ]
    rules += [
        # a RECIP result (its read + 23) and a MULSHR result (its read + 8) land together
        ("vector-unit write clash", clash, "two vector-unit writes",
         [recip, isa.wait(isa.vop_latency(recip["args"]["vop"]) - isa.LAT_V - 1),
          pas(dict(bank=b0, base=1), dict(bank=b1, base=far + 1))]),
        # a RECIP's operand reaches the scalar unit while the RSQRT before it runs
        ("scalar unit busy", busy, "scalar unit started",
         [rsqrt, pas(dict(bank=b0, base=1), dict(bank=b1, base=far + 1), out=O.RECIP)]),
        # the MATVEC's block (lanes 0 .. R-1 of word 0) lands in cycle 2 + LAT_WRITE, read
        # in 3 (the VOP's one write lands in 3 + LAT_V, before it: with one bank, a second
        # element's write would meet the MATVEC's at the port)
        ("VOP read of a MATVEC write in flight", raw, "reads A .* in flight",
         [mv(), pas(dict(bank=b1, base=1), dict(bank=b0, base=far))]),
        # ... and read in cycle 3 + LAT_WRITE, after it landed but with the write pending at
        # the issue
        ("VOP read of a write landing after its issue", raw, "reads A .* in flight",
         [mv(), pas(dict(bank=b1, base=(1 - isa.LAT_WRITE) & emask, ks=1),
                    dict(bank=b0, base=far),
                    red=isa.Reduce.SUM, n=12)]),
        ("VOP read of a vector-unit write in flight", raw, "reads A .* in flight",
         [pas(dict(bank=b0), dict(bank=b1, base=5)),
          pas(dict(bank=b1, base=5), dict(bank=b0, base=far), n=2)]),
        ("MATVEC read of a vector-unit write in flight", raw, "MATVEC read .* vector-unit",
         [pas(dict(bank=b1, base=3 * L), dict(bank=b0, base=2)), mv(y_addr=8)]),
        # the PASS result (element 3L: word 3, lane 0) lands at the end of 2 + its latency,
        # the very cycle the MATVEC reads word 3: a read in a write's landing cycle (the
        # activation banks' block RAM has no collision logic for it: docs/isa.md)
        ("MATVEC read in a vector-unit write's landing cycle", raw, "MATVEC read .* vector-unit",
         [landing, isa.wait(isa.vop_latency(landing["args"]["vop"]) - 1),
          mv(x_bank=b1, x_addr=3, y_bank=b0, y_addr=8)]),
        ("RESID read of a vector-unit write in flight", raw, "MATVEC read .* vector-unit",
         [pas(dict(bank=b0, base=3 * L), dict(bank=b1, base=2 * L)),
          mv(y_addr=2, epi=isa.Epi.RESID)]),
        # element 7 is rewritten every cycle from its first read + LAT_V and read (every
        # segment reads it) up to that + 1
        ("VOP read after its own write landed", raw, "after its own write landed",
         [pas(dict(bank=b1, base=7), dict(bank=b1, base=7), s=isa.LAT_V + 2)]),
        # the MATVEC's total enters the norm unit in 1 + LAT_WRITE + 1, the NORM VOP's in its
        # read + V_RESULT
        ("two totals into the norm unit", clash, "two totals enter the norm unit",
         [mv(y_addr=2, epi=isa.Epi.RESID, ss_init=5),
          isa.wait(isa.LAT_SS_NORM - isa.NORM_LAT - isa.V_RESULT - 1), norm]),
        # the NORM lands at the end of 1 + 11; the MATVEC reads the norm register in 2 + 2
        ("norm MATVEC read before the norm register lands", raw, "reads the norm register",
         [norm, mv(y_addr=3, norm=True)]),
        ("NEXT before the ARGMAX lands", raw, "before the argmax",
         [pas(dict(bank=b0, ks=1), dict(bank=b1, base=far), red=isa.Reduce.ARGMAX, n=3,
              sat=16), isa.next_(0)]),
        # NEXT issues in the cycle of the MATVEC's final read (found by the random programs:
        # the RTL looked for the final token from the cycle after it only)
        ("NEXT right behind an ARGMAX MATVEC", raw, "before the argmax",
         [mv(n_blocks=2, n_chunks=2, epi=isa.Epi.ARGMAX), isa.next_(0)]),
        # ... and right behind a one-element ARGMAX VOP: in the cycle of its only read
        # (found by the random programs: the RTL looked from its issue slot's busy on)
        ("NEXT right behind a one-element ARGMAX VOP", raw, "before the argmax",
         [pas(dict(bank=b0), dict(bank=b1, base=far), red=isa.Reduce.ARGMAX, n=1, sat=16),
          isa.next_(0)]),
    ]
    if cfg.act_banks > 1 and L >= 2 * R and cfg.pv:
        # PV's drain block 1 (lanes R .. 2R-1 of word 4) is offered to the output unit in
        # cycle 15 and lands in 21; the VOP reads it in 4
        rules.append(("VOP read of a PV output still draining", raw, "reads A .* in flight",
                      [isa.pv(v_bank=b0, v_addr=0, s_bank=b1, s_addr=1, y_bank=b1, y_addr=4,
                              d_blocks=2, shift=14, n=1),
                       pas(dict(bank=b1, base=4 * L + R), dict(bank=b0, base=far))]))
    rng = np.random.default_rng(77)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    cases = []
    for name, bit, refusal, body in rules:
        program = body + [isa.halt()]
        stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
        for r in range(R):
            stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, rng.integers(lo, hi, (2, L)))
        for a in range(cfg.act_banks):
            stream += host.write_cmd(cfg, host.TARGET_ABANK + a, 0,
                                     rng.integers(-(1 << 15), 1 << 15, (10, L)))
        stream += host.run_cmd(0)
        state = snapshot(golden)
        try:
            golden.host(stream)
            raise AssertionError(f"{name}: the golden model runs the program")
        except GoldenError as error:
            if not re.search(refusal, str(error)):
                raise AssertionError(f"{name}: the golden model refuses it for another "
                                     f"reason: {error}") from None
        restore(golden, state)
        cycles = _timing_cycles(program, cfg)
        cases.append({"name": f"{name} flagged", "stream": stream,
                      "expected": [host.STATUS_DONE | bit, cycles], "cycles": cycles,
                      "run_at": 0, "bit": bit})
    return cases


def with_counters(golden, case):
    """``case`` (just built on ``golden``) followed by a READ of the busy counters: the
    expected answer is the golden model's counters of the case's last run."""
    read = host.counters_cmd(golden.cfg)
    last = golden.last_run, getattr(golden, "last_run_at", None)
    answer = golden.host(read)
    golden.last_run, golden.last_run_at = last          # still the case's run
    return {**case, "stream": case["stream"] + read, "expected": case["expected"] + answer}


def snapshot(golden):
    """The golden model's memories and registers, to undo a run with :func:`restore`."""
    return (golden.amem.copy(), golden.wmem.copy(), golden.tmem.copy(), golden.table.copy(),
            golden.mmem.copy(), golden.rmem.copy(), golden.wbuf.copy(),
            golden.maxima.copy(), list(golden.pmem), golden.next_token, golden.norm)


def restore(golden, state):
    (golden.amem, golden.wmem, golden.tmem, golden.table, golden.mmem, golden.rmem,
     golden.wbuf, golden.maxima, golden.pmem, golden.next_token, golden.norm) = state
