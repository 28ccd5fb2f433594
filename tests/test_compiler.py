"""Compiler: cycle prediction, WAIT insertion, schedule checks and error messages."""

import re

import numpy as np
from pyref import requant_int8
import pytest

from tinylpu import host, isa
from tinylpu.compiler import CompileError, Placement, ScheduleError, analyze, compile_chain, \
    compile_gemv
from tinylpu.config import Config
from tinylpu.golden import GoldenTile

DEFAULT = Config()
SMALL = Config(lanes=8, rows=2, wdepth=256, act_banks=1, adepth=64)


def _requant(acc, mult, shift):
    return np.array(requant_int8(acc, mult, shift), dtype=np.int64)


def _chain_reference(Ws, x, quant):
    for W, (mult, shift) in zip(Ws, quant):
        x = _requant(np.asarray(W, np.int64) @ np.asarray(x, np.int64), mult, shift)
    return x.tolist()


def _ops(program):
    return [isa.decode(w)["op"] for w in program]


def _run(g):
    tile = GoldenTile(g.cfg)
    response = tile.host(g.host_stream())
    return tile.last_run, response, g.result(response).tolist()


@pytest.mark.parametrize("out", [64, 172])
def test_predicted_cycles_and_utilization(out):
    rng = np.random.default_rng(out)
    W, x = rng.integers(-128, 128, (out, 64)), rng.integers(-128, 128, 64)
    g = compile_gemv(W, x, DEFAULT, mult=1, shift=10)
    n_blocks, n_chunks = out // 4, 4
    cycles = isa.ISSUE_LAT + n_blocks * n_chunks + isa.DRAIN
    util = out / cycles
    assert g.schedule.cycles == cycles
    assert g.schedule.issued == 2
    assert g.schedule.reads == n_blocks * n_chunks
    assert g.schedule.writes == n_blocks
    assert g.schedule.macs == n_blocks * n_chunks * 64
    utilization = out * 64 / (g.schedule.cycles * DEFAULT.macs)
    assert utilization == pytest.approx(util)
    assert utilization == n_blocks * n_chunks / (isa.ISSUE_LAT + n_blocks * n_chunks + isa.DRAIN)
    run, response, y = _run(g)
    assert response[:2] == [host.STATUS_DONE, cycles]
    assert run.hazards == []
    assert y == _chain_reference([W], x, [(1, 10)])


def test_program_and_memory_layout():
    W = np.arange(8 * 32).reshape(8, 32) % 200 - 100
    x = np.arange(32) - 10
    g = compile_gemv(W, x, DEFAULT, mult=3, shift=7)
    assert _ops(g.program) == [isa.Opcode.MATVEC, isa.Opcode.HALT]
    assert isa.decode(g.program[0])["args"]["matvec"] == dict(
        w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=2, n_chunks=2,
        q_mult=3, q_shift=7, y_bits=DEFAULT.data_bits, m_rows=0, m_base=0, y_index=0,
        y_shift=0, epi=0, rope_base=0, rope_shift=0, y_pack=0, epi_shift=0,
        norm=0, ss=0, ss_init=0, y_wbank=0, head_shift=0, y_wcol=0, x_exp=0,
        x_head=0, w_shift=0, x_pos=0, x_shift=0, y_grp=0)
    assert g.weights.shape == (4, 4, 16)
    for r in range(4):
        for b in range(2):
            for k in range(2):
                np.testing.assert_array_equal(g.weights[r, b * 2 + k],
                                              W[b * 4 + r, k * 16:(k + 1) * 16])
    (bank, addr, words), = g.acts
    assert (bank, addr) == (0, 0)
    assert words.tolist() == [list(range(-10, 6)), list(range(6, 22))]
    assert g.x == Placement(0, 0, 2)
    assert g.y == Placement(1, 0, 1)
    assert g.out == 8
    assert g.layers == [(3, 7)]


def test_single_bank_layout_uses_two_halves():
    W1, W2 = np.ones((6, 8), dtype=np.int64), np.ones((2, 6), dtype=np.int64)
    g = compile_chain([W1, W2], np.ones(8, dtype=np.int64), SMALL, mults=[1, 1],
                      shifts=[0, 0])
    mv = [isa.decode(w)["args"]["matvec"] for w in g.program if w & 0xf == 3]
    assert [(a["x_bank"], a["x_addr"], a["y_bank"], a["y_addr"]) for a in mv] == \
        [(0, 0, 0, 32), (0, 32, 0, 0)]
    assert g.y == Placement(0, 0, 1)
    run, _, y = _run(g)
    assert run.hazards == []
    assert y == [48, 48]


def test_default_scale_and_explicit_scale():
    W, x = np.ones((4, 16), dtype=np.int64), np.ones(16, dtype=np.int64)
    # bound = 16 * 128 = 2048; scale 127/2048 = 0.9921875 * 2**-4 -> (32512, 19)
    assert compile_gemv(W, x, DEFAULT).layers == [(32512, 19)]
    assert compile_gemv(W, x, DEFAULT, scale=0.5).layers == [(16384, 15)]
    # an all-zero W: bound 1, scale 127 = 0.9921875 * 2**7 -> (32512, 8)
    assert compile_gemv(np.zeros((4, 16), np.int64), x, DEFAULT).layers == [(32512, 8)]


# Second layer of a chain whose first layer is out1 x 16 (one chunk per row block): its last
# input word is written by the last block of layer 1.
# WAIT = LAT_WRITE - (words of layer-1 output - 1) if positive
@pytest.mark.parametrize("out1", [4, 16, 32, 48, 64, 68, 80, 96, 112])
def test_compile_chain_waits_exactly_when_needed(out1):
    wait = isa.LAT_WRITE - (-(-out1 // 16) - 1)
    wait = wait if wait > 0 else None
    rng = np.random.default_rng(out1)
    W1, W2 = rng.integers(-128, 128, (out1, 16)), rng.integers(-128, 128, (7, out1))
    x = rng.integers(-128, 128, 16)
    quant = [(1, 8), (3, 12)]
    g = compile_chain([W1, W2], x, DEFAULT, mults=[1, 3], shifts=[8, 12])
    M, W, H = isa.Opcode.MATVEC, isa.Opcode.WAIT, isa.Opcode.HALT
    if wait is None:
        assert _ops(g.program) == [M, M, H]
    else:
        assert _ops(g.program) == [M, W, M, H]
        assert isa.decode(g.program[1])["args"]["wait"]["cycles"] == wait
    run, response, y = _run(g)
    assert run.hazards == []
    assert response[0] == host.STATUS_DONE
    assert response[1] == g.schedule.cycles
    assert y == _chain_reference([W1, W2], x, quant)
    assert y != [0] * 7          # the data actually flowed through both layers
    if wait is not None:
        # the WAIT is minimal: one cycle less races, in the analysis and in the golden model
        shorter = list(g.program)
        if wait == 1:
            del shorter[1]
        else:
            shorter[1] = isa.encode(isa.wait(wait - 1))
        # layer 2 reads a layer-1 word in the cycle its write lands; the golden model flags
        # the same read
        with pytest.raises(ScheduleError) as error:
            analyze(shorter, DEFAULT)
        match = re.match(r"cycle (\d+): read of bank 1 word (\d+) races its write in flight "
                         r"\(lands at the end of cycle \1\)", str(error.value))
        assert match, str(error.value)
        tile = GoldenTile(DEFAULT)
        tile.write(host.TARGET_PROG, 0, shorter)
        bad = tile.run(0)
        assert bad.status == host.STATUS_DONE | host.STATUS_RAW_HAZARD
        assert bad.hazards[0] == (int(match[1]), 1, int(match[2]))


def test_three_layer_chain_matches_reference():
    rng = np.random.default_rng(7)
    Ws = [rng.integers(-128, 128, s) for s in [(24, 40), (9, 24), (30, 9)]]
    x = rng.integers(-128, 128, 40)
    g = compile_chain(Ws, x, DEFAULT, mults=[5, 7, 11], shifts=[12, 10, 9])
    run, response, y = _run(g)
    assert run.hazards == []
    assert response[1] == g.schedule.cycles
    assert y == _chain_reference(Ws, x, [(5, 12), (7, 10), (11, 9)])
    assert g.weights.shape == (4, 6 * 3 + 3 * 2 + 8 * 1, 16)


def test_analyze_rejects_a_race():
    mv = lambda **kw: isa.matvec(**{**dict(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0,
                                            n_blocks=1, n_chunks=1, q_mult=1, q_shift=0), **kw})
    program = [isa.encode(i) for i in (mv(), mv(x_bank=1, y_bank=0, y_addr=4), isa.halt())]
    # cycles of the reads: the second MATVEC (issued in 2) reads in 3
    message = (f"cycle 3: read of bank 1 word 0 races its write in flight "
               f"(lands at the end of cycle {2 + isa.LAT_WRITE}); wait {isa.LAT_WRITE} more "
               f"cycles")
    with pytest.raises(ScheduleError, match=re.escape(message)):
        analyze(program, DEFAULT)
    assert issubclass(ScheduleError, CompileError)
    # in-place: block 1 of a MATVEC reads the word block 0 is still writing
    inplace = [isa.encode(mv(x_bank=1, y_bank=1, n_blocks=2, n_chunks=1)), isa.encode(isa.halt())]
    with pytest.raises(ScheduleError, match=re.escape("cycle 3: read of bank 1 word 0 races")):
        analyze(inplace, DEFAULT)
    # the same with enough WAIT is accepted, with its cycles
    ok = [program[0], isa.encode(isa.wait(isa.LAT_WRITE))] + program[1:]
    assert analyze(ok, DEFAULT).cycles == 2 + isa.LAT_WRITE + isa.ISSUE_LAT + isa.DRAIN


def _w(out, inp):
    return np.ones((out, inp), dtype=np.int64)


@pytest.mark.parametrize("make, message", [
    (lambda: compile_gemv(_w(6, 48), np.ones(48, int), Config(lanes=8, rows=2, wdepth=16)),
     "weights need 18 words per weight bank, config has 16 (wdepth)"),
    (lambda: compile_chain([_w(2, 48), _w(6, 2)], np.ones(48, int),
                           Config(lanes=8, rows=2, wdepth=8)),
     "weights need 9 words per weight bank, config has 8 (wdepth)"),      # 6 + 3
    (lambda: compile_gemv(_w(4, 16 * 257), np.ones(16 * 257, int), DEFAULT),
     "layer 0 x needs 257 activation words, a slot has 256 (adepth 256)"),
    (lambda: compile_gemv(_w(2, 8 * 33), np.ones(8 * 33, int), SMALL),
     "layer 0 x needs 33 activation words, a slot has 32 (adepth 64)"),
    (lambda: compile_gemv(_w(8 * 33, 1), np.ones(1, int), SMALL),
     "layer 0 y needs 33 activation words, a slot has 32 (adepth 64)"),
    (lambda: compile_gemv(_w(3, 6), np.ones(5, int), DEFAULT),
     "x has 5 elements, W[0] has 6 columns"),
    (lambda: compile_chain([_w(4, 6), _w(2, 3)], np.ones(6, int), DEFAULT),
     "W[1] has 3 columns, W[0] has 4 rows"),
    (lambda: compile_gemv(np.ones((2, 2)), np.ones(2, int), DEFAULT),
     "W[0] must hold integers, not float64"),
    (lambda: compile_gemv(_w(2, 2), np.ones(2, np.float32), DEFAULT),
     "x must hold integers, not float32"),
    (lambda: compile_gemv([[1.5, 2.0]], [1, 2], DEFAULT),
     "W[0] must hold integers, not float64"),
    (lambda: compile_gemv(np.array([[-3, 128]]), np.ones(2, int), DEFAULT),
     "W[0] values must be in [-128, 127] (data_bits), found [-3, 128]"),
    (lambda: compile_gemv(_w(1, 2), np.array([-129, 0]), DEFAULT),
     "x values must be in [-128, 127] (data_bits), found [-129, 0]"),
    (lambda: compile_gemv(np.full((2, 2), 8), np.ones(2, int), Config(data_bits=4, acc_bits=16)),
     "W[0] values must be in [-8, 7] (data_bits), found [8, 8]"),
    (lambda: compile_gemv(np.zeros((0, 4), int), np.ones(4, int), DEFAULT),
     "W[0] must be a non-empty 2-d array, not shape (0, 4)"),
    (lambda: compile_gemv(np.zeros((3, 0), int), np.zeros(0, int), DEFAULT),
     "W[0] must be a non-empty 2-d array, not shape (3, 0)"),
    (lambda: compile_gemv(_w(2, 4), np.zeros(0, int), DEFAULT),
     "x must be a non-empty 1-d array, not shape (0,)"),
    (lambda: compile_gemv(np.ones(4, int), np.ones(4, int), DEFAULT),
     "W[0] must be a non-empty 2-d array, not shape (4,)"),
    (lambda: compile_chain([_w(80, 80)] * 4, np.ones(80, int), Config(pdepth=4)),
     "program needs more than 4 instructions (config pdepth)"),
    (lambda: compile_chain([_w(4, 16), _w(4, 4), _w(4, 4)], np.ones(16, int), Config(pdepth=4)),
     "program needs more than 4 instructions (config pdepth)"),
    (lambda: compile_gemv(_w(2, 2), np.ones(2, int), DEFAULT, mult=3),
     "give both mult and shift, or a scale"),
    (lambda: compile_gemv(_w(2, 2), np.ones(2, int), DEFAULT, mult=40000, shift=3),
     "layer 0: MATVEC q_mult must be an integer in [-32768, 32767], not 40000"),
    (lambda: compile_gemv(_w(2, 2), np.ones(2, int), DEFAULT, mult=1, shift=64),
     "layer 0: MATVEC q_shift must be an integer in [0, 63], not 64"),
    (lambda: compile_gemv(_w(2, 2), np.ones(2, int), DEFAULT, scale=40000.0),
     "requantization scale 40000.0 is too large"),
    (lambda: compile_gemv(_w(2, 2), np.ones(2, int), DEFAULT, scale=-1.0),
     "requantization scale must be a finite positive number, not -1.0"),
])
def test_compile_errors(make, message):
    with pytest.raises(CompileError, match=re.escape(message)):
        make()


def test_limits_that_just_fit():
    # 16 words per bank exactly, 32-word slot exactly, pdepth exactly
    g = compile_gemv(_w(4, 64), np.ones(64, int), Config(lanes=8, rows=2, wdepth=16))
    assert g.weights.shape == (2, 16, 8)
    g = compile_gemv(_w(2, 8 * 32), np.ones(8 * 32, int), SMALL)
    assert g.x == Placement(0, 0, 32)
    # no WAIT: a MATVEC's last x word (chunk n_chunks - 1) is read the cycle after the
    # previous one's last write landed (its last read + LAT_WRITE)
    n = 16 * isa.LAT_WRITE + 8
    g = compile_chain([_w(n, n)] * 3, np.ones(n, int), Config(pdepth=4, wdepth=2048))
    assert len(g.program) == 4
