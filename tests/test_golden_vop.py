"""The golden model's vector unit (VOP), token loop (NEXT, GENERATE) and the new host targets.

Every expected value below is written by hand or computed by plain Python/NumPy in this
file from the semantics in ``tinylpu/isa.py``; nothing calls the golden model's helpers.
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest

from tinylpu import host, isa
from tinylpu.config import Config
from tinylpu.golden import GoldenError, GoldenTile
from tinylpu.isa import BMode, GFunc, Index, OutFunc, Reduce, Space

# 8 lanes, 2 MAC rows, 2 activation banks of 64 words (512 elements each)
CFG = Config(lanes=8, rows=2, wdepth=64, act_banks=2, adepth=64, pdepth=32, tdepth=16)
L, R = CFG.lanes, CFG.rows
ELEMS = CFG.adepth * CFG.lanes
DONE = host.STATUS_DONE
I32_MIN, I32_MAX = -2**31, 2**31 - 1

# cycles from the read of a segment's last element to the end of the cycle its result lands
# in: stages c+1 .. c+7 for MULSHR; the scalar unit after the reduction (c+5): 6 + 16 for
# RECIP, 6 + 25 + 16 for RSQRT
LATENCY = {OutFunc.MULSHR: 8, OutFunc.RECIP: 23, OutFunc.RSQRT: 48}

C_BASE = 300          # where the helpers put the results (element address in bank 1)


def _tile(acts=None, table=None, tokens=None, cfg=CFG):
    """A tile with activation elements ``acts = {bank: {element: value}}`` (others 0)."""
    tile = GoldenTile(cfg)
    for bank, values in (acts or {}).items():
        image = np.zeros(cfg.adepth * cfg.lanes, dtype=np.int64)
        for e, v in values.items():
            image[e] = v
        tile.write(host.TARGET_ABANK + bank, 0, image.reshape(cfg.adepth, cfg.lanes))
    if table is not None:
        tile.write(host.TARGET_TABLE, 0, np.asarray(table).reshape(-1, 1))
    if tokens is not None:
        tile.write(host.TARGET_TOKENS, 0, np.asarray(tokens).reshape(-1, 1))
    return tile


def _run(tile, program, **kw):
    tile.write(host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    return tile.run(0, **kw)


def _elems(tile, bank, start, count):
    flat = tile.read(host.TARGET_ABANK + bank, 0, tile.cfg.adepth).reshape(-1)
    return flat[start:start + count].tolist()


def _one_vop(A, B=None, *, s=1, n=None, table=None, b=None, **kw):
    """One VOP over ``A`` (bank 0 from element 0) and ``B`` (bank 1 from element 0, unless
    ``b`` is given), S segments of N consecutive elements; results to bank 1 from C_BASE.
    Checks the run's status and cycles; returns the S results."""
    n = len(A) // s if n is None else n
    tile = _tile({0: dict(enumerate(A)), 1: dict(enumerate(B or []))}, table=table)
    if b is None and B is not None:
        b = dict(mode=BMode.MEM, bank=1, ks=1, js=n)
    instr = isa.vop(s=s, n=n, a=dict(bank=0, ks=1, js=n), b=b, c=dict(bank=1, base=C_BASE, js=1),
                    **kw)
    run = _run(tile, [instr, isa.halt()])
    assert run.status == DONE
    # issued in 1, reads from 1 + ISSUE_LAT: the last lands LATENCY after the last read
    assert run.cycles == isa.ISSUE_LAT + s * n + LATENCY[OutFunc(kw.get("out", OutFunc.MULSHR))] + 1
    return _elems(tile, 1, C_BASE, s)


def _round_half_up(value):
    return math.floor(Fraction(value) + Fraction(1, 2))


def _mulshr(r, mult, shift, sat):
    """The MULSHR definition by exact rational arithmetic: round half up, then saturate."""
    s = min(max(shift, 0), 63)
    y = _round_half_up(Fraction(r * mult, 2**s))
    return min(max(y, -2**(sat - 1)), 2**(sat - 1) - 1)


def _packed_scale(v):
    """(b << 16) | m with b = v.bit_length(), m = (2**(b+14) - 1) // v; v = 0: 0x7fff."""
    if v == 0:
        return 0x7fff
    b = v.bit_length()
    return b << 16 | (2**(b + 14) - 1) // v


# GFunc ---------------------------------------------------------------------------------------

def test_mul_from_memory_uses_the_low_16_bits_of_b_signed():
    A = [3, -7, 100000, I32_MIN, 12345]
    B = [0x12345, 0x1fffe, -3, 1, -32768]
    # sext16(0x12345) = 0x2345 = 9029, sext16(0x1fffe) = -2
    assert _one_vop(A, B, s=5, g=GFunc.MUL, sat=32) == \
        [3 * 9029, 14, -300000, I32_MIN, 12345 * -32768]


@pytest.mark.parametrize("base, value", [(0x3fff9, -7), (0x07fff, 32767), (0x18000, -32768),
                                         (0x00005, 5), (0x2ffff, -1)])
def test_mul_immediate_is_sign_extended_base_15_0(base, value):
    A = [3, -1000, 70000]
    expected = np.clip(np.array(A, dtype=np.int64) * value, I32_MIN, I32_MAX).tolist()
    assert _one_vop(A, s=3, g=GFunc.MUL, b=dict(mode=BMode.IMM, base=base), sat=32) == expected


def test_add():
    # B from memory is the whole 32-bit lane; the sum is not wrapped to 32 bits
    A = [I32_MAX, -5, 100, I32_MIN]
    B = [1, I32_MIN, 0x10000, -1]
    assert _one_vop(A, B, s=4, g=GFunc.ADD, sat=32) == [I32_MAX, I32_MIN, 65636, I32_MIN]
    # two sums of 2**31 make R = 2**32: >> 2 is 2**30 (a 32-bit G would give -2**30)
    assert _one_vop([I32_MAX, I32_MAX], [1, 1], s=1, g=GFunc.ADD, shift=2, sat=32) == [2**30]
    # immediate: A + sext16(base)
    assert _one_vop([10, -10], s=2, g=GFunc.ADD, b=dict(mode=BMode.IMM, base=0xfffd)) == [7, -13]


def _exp_table():
    table = np.zeros(isa.TABLE_DEPTH, dtype=np.int64)
    table[:256] = 20000 - 150 * np.arange(256)            # 20000 .. -18250
    table[256] = 12345                                    # not part of the exp table
    return table


def test_exp_reads_the_table_at_clamped_b_minus_a():
    A = [10, 10, 10, 10, 0, I32_MIN]
    B = [10, 7, 15, 400, -300, I32_MAX]
    # B - A = 0, -3 -> 0, 5, 390 -> 255, -300 -> 0, 2**32 - 1 -> 255
    assert _one_vop(A, B, s=6, g=GFunc.EXP, table=_exp_table()) == \
        [20000, 20000, 19250, -18250, 20000, -18250]
    # a softmax denominator: sum of table[5 - a] over a segment (16-bit saturated result)
    assert _one_vop([1, 2, 3], s=1, g=GFunc.EXP, b=dict(mode=BMode.IMM, base=5),
                    table=_exp_table(), sat=32) == [19400 + 19550 + 19700]
    assert _one_vop([1, 2, 3], s=1, g=GFunc.EXP, b=dict(mode=BMode.IMM, base=5),
                    table=_exp_table()) == [32767]


def test_exp_table_written_through_the_host():
    tile = GoldenTile(CFG)
    table = _exp_table()
    stream = host.write_cmd(CFG, host.TARGET_TABLE, 0, table[:300].reshape(-1, 1))
    assert stream[2:5] == [20000, 19850, 19700]
    assert stream[2 + 255] == (-18250) & 0xffff               # one beat per 16-bit entry
    tile.host(stream)
    tile.write(host.TARGET_ABANK, 0, [[0, 1, 2, 3, 0, 0, 0, 0]])
    instr = isa.vop(g=GFunc.EXP, s=4, n=1, a=dict(bank=0, js=1),
                    b=dict(mode=BMode.IMM, base=3), c=dict(bank=1, base=8, js=1))
    _run(tile, [instr, isa.halt()])
    assert _elems(tile, 1, 8, 4) == [19550, 19700, 19850, 20000]      # table[3 - a]


# the SiLU table: 257 points at 256..512, G = t[i] + round_half_up((t[i+1] - t[i]) * f / 256)
# with i, f = divmod(A + 2**15, 256)
SILU_POINTS = {0: -7, 10: 100, 11: -1, 20: 100, 21: 201, 128: 4321, 129: 4321 + 256,
               255: 1000, 256: 2000}
SILU_CASES = [
    (-32768, -7),                    # i 0, f 0
    (0, 4321),                       # i 128, f 0
    (10 * 256 + 128 - 32768, 50),    # t 100 -> -1, f 128: 100 - 50.5 -> 100 - 50
    (10 * 256 + 129 - 32768, 49),    # -50.89 -> -51
    (10 * 256 + 127 - 32768, 50),    # -50.11 -> -50
    (20 * 256 + 128 - 32768, 151),   # t 100 -> 201, f 128: 50.5 -> 51
    (20 * 256 + 1 - 32768, 100),     # 0.39 -> 0
    (20 * 256 + 2 - 32768, 101),     # 0.79 -> 1
    (100, 4321 + 100),               # i 128, f 100, slope 1
    (32767, 1996),                   # i 255, f 255: 1000 + 996.09 -> 1996
]


def test_silu_interpolates_between_table_points():
    table = np.zeros(isa.TABLE_DEPTH, dtype=np.int64)
    for i, v in SILU_POINTS.items():
        table[isa.SILU_TABLE + i] = v
    table[isa.SILU_TABLE - 1] = 9999                      # the last exp entry: never read
    A = [a for a, _ in SILU_CASES]
    expected = [y for _, y in SILU_CASES]
    # the same by the formula, from the table points
    t = [SILU_POINTS.get(i, 0) for i in range(257)]
    for a, y in SILU_CASES:
        i, f = divmod(a + 2**15, 256)
        assert y == t[i] + _round_half_up(Fraction((t[i + 1] - t[i]) * f, 256))
    assert _one_vop(A, s=len(A), g=GFunc.SILU, table=table) == expected


def test_pass_and_max():
    A = [-5, -3, -9, 7, 7, 2, I32_MIN, 5, I32_MAX]
    assert _one_vop(A, s=3, g=GFunc.PASS, red=Reduce.MAX, sat=32) == [-3, 7, I32_MAX]
    # MAX of products (B ignored by PASS, used by MUL)
    assert _one_vop([2, -3, 4, -5], [-1, -1, -1, -1], s=2, g=GFunc.MUL, red=Reduce.MAX) == \
        [3, 5]


# Reduce --------------------------------------------------------------------------------------

def test_sum_starts_from_init_in_every_segment():
    A = [1000, -2000, 30000, 7]
    init = -5000000
    assert _one_vop(A, s=1, g=GFunc.PASS, init=init, sat=32) == [init + 29007]
    assert _one_vop(A, s=2, g=GFunc.PASS, init=init, sat=32) == [init - 1000, init + 30007]
    assert _one_vop([5], s=1, g=GFunc.PASS, init=-2**23, sat=32) == [-2**23 + 5]
    assert _one_vop([5], s=1, g=GFunc.PASS, init=2**23 - 1, sat=32) == [2**23 + 4]


def test_sum_wraps_at_48_bits():
    # G = 2**46, 2**46, 5 * 2**16: R = 2**47 + 5 * 2**16 wraps to -2**47 + 5 * 2**16;
    # >> 16 (round half up) gives -2**31 + 5 (without the wrap: 2**31 + 5, saturated)
    A = [I32_MIN, I32_MIN, 5 << 16]
    B = [-32768, -32768, 1]
    assert _one_vop(A, B, s=1, g=GFunc.MUL, shift=16, sat=32) == [I32_MIN + 5]
    # init takes part in the wrap: 2**47 + 2**20 wraps to -2**47 + 2**20
    assert _one_vop([I32_MIN, I32_MIN], [-32768, -32768], s=1, g=GFunc.MUL, shift=16, sat=32,
                    init=2**20) == [I32_MIN + 16]
    # and can bring the sum back: 2**47 - 2**20 does not wrap
    assert _one_vop([I32_MIN, I32_MIN], [-32768, -32768], s=1, g=GFunc.MUL, shift=16, sat=32,
                    init=-2**20) == [2**31 - 16]
    assert _one_vop([I32_MIN, I32_MIN, 2**20], [-32768, -32768, 1], s=1, g=GFunc.MUL,
                    shift=16, sat=32, init=-2**20) == [I32_MIN]


def test_argmax_takes_the_first_of_equal_maxima():
    A = [3, 9, 1, 9, 9,   -4, -4, -4, -4, -4,   0, 0, 0, 0, 1,   I32_MIN, 2, I32_MAX, 2, 0]
    tile = _tile({0: dict(enumerate(A))})
    instr = isa.vop(g=GFunc.PASS, red=Reduce.ARGMAX, s=4, n=5, a=dict(bank=0, ks=1, js=5),
                    c=dict(bank=1, base=C_BASE, js=1))
    run = _run(tile, [instr, isa.halt()])
    assert run.status == DONE and run.cycles == 1 + 20 + 8 + 1     # reads 2..21
    assert _elems(tile, 1, C_BASE, 4) == [1, 0, 4, 2]
    # the next-token register holds the last segment's index
    assert tile.next_token == 2


def test_argmax_of_negated_values_is_the_first_minimum():
    # G = A * -1
    A = [5, -3, 8, -3, 0]
    assert _one_vop(A, s=1, g=GFunc.MUL, red=Reduce.ARGMAX,
                    b=dict(mode=BMode.IMM, base=0xffff)) == [1]


def test_argmax_writes_the_index_itself():
    # "ARGMAX writes the index": mult, shift and sat do not apply to it
    A = [0, 0, 0, 0, 0, 0, 9, 0]
    assert _one_vop(A, s=1, g=GFunc.PASS, red=Reduce.ARGMAX, mult=3, shift=2, sat=2) == [6]


# OutFunc -------------------------------------------------------------------------------------

MULSHR_CASES = [
    # R, mult, shift, sat, expected (by hand)
    (7, 1, 1, 16, 4),               # 3.5 -> 4
    (5, 1, 1, 16, 3),               # 2.5 -> 3
    (-5, 1, 1, 16, -2),             # -2.5 -> -2 (half up, not away from zero)
    (-7, 1, 1, 16, -3),             # -3.5 -> -3
    (-6, 1, 2, 16, -1),             # -1.5 -> -1
    (-7, 1, 2, 16, -2),             # -1.75 -> -2
    (6, 1, 2, 16, 2),               # 1.5 -> 2
    (12345, 3, 4, 16, 2315),        # 37035 / 16 = 2314.69
    (100, -3, 0, 16, -300),
    (-100, -32768, 10, 16, 3200),
    (40000, 1, 0, 16, 32767),
    (-40000, 1, 0, 16, -32768),
    (70000, 3, 1, 16, 32767),
    (2**30, 4, 0, 32, I32_MAX),
    (I32_MIN, 2, 0, 32, I32_MIN),
    (I32_MIN, -1, 0, 32, I32_MAX),
    (I32_MAX, -1, 0, 32, -I32_MAX),
    (I32_MAX, 32767, 46, 32, 1),    # (2**31 - 1) * 32767 / 2**46 = 0.99998
    (I32_MAX, 32767, 40, 32, 64),   # 63.998
    (200, 1, 0, 8, 127),
    (-200, 1, 0, 8, -128),
    (5, 1, 0, 1, 0),                # sat 1: [-1, 0]
    (-5, 1, 0, 1, -1),
    (5, 7, -3, 16, 35),             # a negative shift counts as 0
    (5, 7, -64, 16, 35),
    (-5, 7, -1, 16, -35),
    (1, 1, 63, 16, 0),
]


@pytest.mark.parametrize("r, mult, shift, sat, expected", MULSHR_CASES)
def test_mulshr(r, mult, shift, sat, expected):
    assert _mulshr(r, mult, shift, sat) == expected
    assert _one_vop([r], s=1, g=GFunc.PASS, mult=mult, shift=shift, sat=sat) == [expected]


def test_mulshr_rounding_sum_wraps_at_64_bits():
    # R = 2**46 + 2**46 wraps to -2**47; R * mult = 2**62; the rounding constant 2**62 makes
    # the 64-bit sum wrap to -2**63: the defined result is -1 (docs/isa.md; the RTL agrees),
    # where exact arithmetic would round 0.5 up to 1. No compiled program comes near this.
    assert _one_vop([I32_MIN, I32_MIN], [-32768, -32768], s=1, g=GFunc.MUL, mult=-32768,
                    shift=63, sat=32) == [-1]


def test_mulshr_of_the_largest_product_at_shift_62():
    # 2**62 / 2**62 = 1 (exact); the rounding constant 2**61 does not overflow
    assert _one_vop([I32_MIN, I32_MIN], [-32768, -32768], s=1, g=GFunc.MUL, mult=-32768,
                    shift=62, sat=32) == [1]
    assert _one_vop([I32_MIN, I32_MIN], [-32768, -32768], s=1, g=GFunc.MUL, mult=-32767,
                    shift=61, sat=32) == [_mulshr(-2**47, -32767, 61, 32)] == [2]


SCALE_CASES = [
    # A, B (packed scale), shift field, expected
    (3, 3 << 16 | 21845, 2, 2048),                 # 65535 / 2**5 = 2047.97
    (1000, 5 << 16 | 16384, 9, 1000),              # 16384000 / 2**14
    (-77, 1 << 22 | 2 << 16 | 100, 0, -1925),      # bits above 21 are not the exponent
    (9, 6 << 16 | 10, -4, 23),                     # s = -4 + 6 = 2: 22.5 -> 23
    (9, 0 << 16 | 10, -4, 90),                     # s = clamp(-4) = 0
    (-9, 1 << 16 | 10, 0, -45),                    # -45
    (-9, 2 << 16 | 10, 0, -22),                    # -22.5 -> -22
    (I32_MAX, 63 << 16 | 32767, 63, 0),            # s = clamp(126) = 63
]


@pytest.mark.parametrize("a, b, shift, expected", SCALE_CASES)
def test_scale_adds_the_exponent_to_the_shift(a, b, shift, expected):
    m, e = b & 0xffff, (b >> 16) & 63
    assert expected == _mulshr(a * m, 1, shift + e, 32)
    assert _one_vop([a], [b], s=1, g=GFunc.MUL, shift=shift, sat=32,
                    b=dict(mode=BMode.SCALE, bank=1)) == [expected]


def test_scale_per_segment_exponents():
    # G = A * mantissa; s = shift + the exponent of the segment's B
    A = [10, 10, 3, 5]
    B = [1 << 16 | 3, 3 << 16 | 3, 4 << 16 | 100, 4 << 16 | 200]
    out = _one_vop(A, B, s=2, n=1, g=GFunc.MUL, sat=32,
                   b=dict(mode=BMode.SCALE, bank=1, js=1))
    assert out == [15, 4]                          # 30 / 2, 30 / 8 = 3.75
    # one segment of two elements with the same exponent: (300 + 1000) / 16 = 81.25
    assert _one_vop(A[2:], B[2:], s=1, g=GFunc.MUL, sat=32,
                    b=dict(mode=BMode.SCALE, bank=1, ks=1)) == [81]


RECIP_CASES = [
    # R, packed 1/R by hand
    (100, 7 << 16 | 20971),              # (2**21 - 1) // 100
    (1, 1 << 16 | 32767),
    (3, 2 << 16 | 21845),                # (2**16 - 1) // 3
    (0, 0x7fff),
    (I32_MAX, 31 << 16 | 16384),         # (2**45 - 1) // (2**31 - 1)
]


@pytest.mark.parametrize("r, expected", RECIP_CASES)
def test_recip(r, expected):
    assert _packed_scale(r) == expected
    assert _one_vop([r], s=1, g=GFunc.PASS, out=OutFunc.RECIP) == [expected]


RSQRT_CASES = [
    # R, packed 1/isqrt(R) by hand
    (100, 4 << 16 | 26214),              # isqrt 10: (2**18 - 1) // 10
    (99, 4 << 16 | 29127),               # isqrt 9: (2**18 - 1) // 9 (exact)
    (1, 1 << 16 | 32767),
    (3, 1 << 16 | 32767),                # isqrt 1
    (0, 0x7fff),
]


@pytest.mark.parametrize("r, expected", RSQRT_CASES)
def test_rsqrt(r, expected):
    assert _packed_scale(math.isqrt(r)) == expected
    assert _one_vop([r], s=1, g=GFunc.PASS, out=OutFunc.RSQRT) == [expected]


def test_rsqrt_and_recip_of_wide_sums():
    # the scalar unit sees the whole 48-bit R: G = -2**31 * -32768 = 2**46
    big = dict(g=GFunc.MUL, b=dict(mode=BMode.IMM, base=0x8000))
    assert _one_vop([I32_MIN], s=1, out=OutFunc.RECIP, **big) == [47 << 16 | 32767]
    assert _one_vop([I32_MIN], s=1, out=OutFunc.RSQRT, **big) == [24 << 16 | 32767]
    # an RMS norm: sum of squares (+ init) -> 1/isqrt
    sq = dict(g=GFunc.MUL, b=dict(mode=BMode.SQUARE), out=OutFunc.RSQRT)
    assert _one_vop([-300, 200, 7], s=1, **sq) == [9 << 16 | 23301]       # isqrt(130049) = 360
    assert _one_vop([-300, 200, 7], s=1, init=1000, **sq) == [9 << 16 | 23172]   # 362


# BMode ---------------------------------------------------------------------------------------

def test_square_is_a_times_sext16_of_a():
    A = [-300, 200, 32767, -32768, 70000]
    # 70000: sext16(70000) = 4464
    assert _one_vop(A, s=5, g=GFunc.MUL, b=dict(mode=BMode.SQUARE, bank=0), sat=32) == \
        [90000, 40000, 32767**2, 2**30, 70000 * 4464]


def test_square_and_immediate_ignore_b_bank_and_address():
    # B's bank, base and strides do not matter for SQUARE; IMM uses base[15:0] only
    A = [4, 5]
    assert _one_vop(A, s=2, g=GFunc.MUL,
                    b=dict(mode=BMode.SQUARE, bank=0, base=77, js=3, ks=1)) == [16, 25]
    assert _one_vop(A, s=2, g=GFunc.MUL,
                    b=dict(mode=BMode.IMM, bank=0, base=0x10003, js=3, ks=1)) == [12, 15]


# Addressing ----------------------------------------------------------------------------------

def test_strides_and_two_operands():
    acts = {0: {e: e for e in range(ELEMS)}, 1: {e: e + 100 for e in range(ELEMS)}}
    tile = _tile(acts)
    instr = isa.vop(g=GFunc.MUL, s=2, n=3, a=dict(bank=0, base=5, js=10, ks=2),
                    b=dict(mode=BMode.MEM, bank=1, base=1, js=4, ks=1),
                    c=dict(bank=0, base=300, js=3), sat=32)
    run = _run(tile, [instr, isa.halt()])
    assert run.status == DONE
    # segment 0: A 5, 7, 9 and B 101, 102, 103; segment 1: A 15, 17, 19 and B 105, 106, 107
    assert _elems(tile, 0, 300, 4) == [5 * 101 + 7 * 102 + 9 * 103, 301, 302,
                                       15 * 105 + 17 * 106 + 19 * 107]


def test_element_addresses_wrap_at_the_bank():
    # element 512 + 3 of a 512-element bank is element 3; c wraps the same way
    tile = _tile({0: {3: 42, 4: 43}})
    instr = isa.vop(g=GFunc.PASS, s=2, n=1, a=dict(bank=0, base=ELEMS + 3, js=1),
                    c=dict(bank=1, base=2 * ELEMS - 1, js=1))
    _run(tile, [instr, isa.halt()])
    assert _elems(tile, 1, ELEMS - 1, 1) == [42]
    assert _elems(tile, 1, 0, 1) == [43]


def _matvec_layout(W, w_base):
    """W (rows x cols) in MATVEC layout: row t in weight bank t % R at word
    w_base + (t // R) * n_chunks + i // L, lane i % L. Returns (banks, n_chunks, n_blocks)."""
    rows, cols = W.shape
    n_chunks, n_blocks = -(-cols // L), -(-rows // R)
    banks = np.zeros((R, CFG.wdepth, L), dtype=np.int64)
    for t in range(rows):
        for i in range(cols):
            banks[t % R, w_base + (t // R) * n_chunks + i // L, i % L] = W[t, i]
    return banks, n_chunks, n_blocks


def test_wrow_reads_rows_of_a_matvec_matrix_by_token():
    rng = np.random.default_rng(7)
    W = rng.integers(-128, 128, (5, 20))
    w_base = 3
    banks, n_chunks, n_blocks = _matvec_layout(W, w_base)
    assert (n_chunks, n_blocks) == (3, 3)
    x = rng.integers(-100, 100, 20)
    for t in range(5):
        tile = _tile({0: dict(enumerate(x))}, tokens=[t])
        for r in range(R):
            tile.write(host.TARGET_WBANK + r, 0, banks[r])
        program = [
            # the layout is the MATVEC layout: y = W x
            isa.matvec(w_base=w_base, x_bank=0, x_addr=0, y_bank=1, y_addr=0,
                       n_blocks=n_blocks, n_chunks=n_chunks, q_mult=1, q_shift=0, y_bits=32),
            isa.wait(isa.LAT_WRITE),          # its writes land before the VOP's (one port)
            # row `tok`, element by element (i = j * js)
            isa.vop(g=GFunc.PASS, s=20, n=1, c=dict(bank=1, base=100, js=1),
                    a=dict(space=Space.WROW, base=w_base, index=Index.TOK, istride=n_chunks,
                           js=1)),
            # segment sums of row `tok` (i = j * js + k * ks), times 2 by B
            isa.vop(g=GFunc.MUL, s=4, n=5, c=dict(bank=0, base=200, js=1),
                    b=dict(mode=BMode.IMM, base=2),
                    a=dict(space=Space.WROW, base=w_base, index=Index.TOK, istride=n_chunks,
                           js=5, ks=1)),
            isa.halt()]
        run = _run(tile, program)
        assert run.status == DONE
        assert _elems(tile, 1, 0, 5) == (W @ x).tolist()
        assert _elems(tile, 1, 100, 20) == W[t].tolist()
        assert _elems(tile, 0, 200, 4) == (2 * W[t].reshape(4, 5).sum(axis=1)).tolist()


def test_wrow_index_none_and_pos_and_no_port_conflict():
    W = np.arange(4 * 8).reshape(4, 8) - 10         # rows 0..3, one word each
    banks, n_chunks, _ = _matvec_layout(W, 0)
    tile = _tile({1: {k: 1 for k in range(8)}})
    for r in range(R):
        tile.write(host.TARGET_WBANK + r, 0, banks[r])
    wrow = lambda index, base=0: dict(space=Space.WROW, bank=1, base=base, index=index,
                                      istride=n_chunks, ks=1)
    program = [
        # Index.NONE: row 0 of the matrix at `base`: base 1 is word 1 = row 2 (bank 0)
        isa.vop(g=GFunc.PASS, red=Reduce.MAX, n=8, a=wrow(Index.NONE), c=dict(bank=0, base=0)),
        isa.vop(g=GFunc.PASS, red=Reduce.MAX, n=8, a=wrow(Index.NONE, base=1),
                c=dict(bank=0, base=1)),
        isa.next_(0), isa.next_(0), isa.next_(0),     # pos = 3
        # Index.POS: row 3; B from bank 1 while A (a weight row) names bank 1: no conflict
        isa.vop(g=GFunc.MUL, n=8, a=wrow(Index.POS), b=dict(mode=BMode.MEM, bank=1, ks=1),
                c=dict(bank=0, base=2)),
        isa.halt()]
    run = _run(tile, program)
    assert run.status == DONE
    assert _elems(tile, 0, 0, 3) == [W[0].max(), W[2].max(), W[3].sum()]


def test_index_pos_and_tok_with_s_pos_and_n_pos():
    tile = _tile({0: {e: e for e in range(ELEMS)}}, tokens=[0, 0, 4])
    program = [
        isa.next_(0), isa.next_(0),                   # RUN: NEXT only advances pos (to 2)
        # S = N = pos + 1 = 3; A element 2 * 10 + 3j + k, c element 100 + 2 * 20 + j
        isa.vop(g=GFunc.PASS, s_pos=True, n_pos=True,
                a=dict(bank=0, index=Index.POS, istride=10, js=3, ks=1),
                c=dict(bank=1, base=100, index=Index.POS, istride=20, js=1)),
        # Index.TOK: tok = token memory at pos 2 = 4; N = pos + 1 = 3
        isa.vop(g=GFunc.PASS, s=1, n_pos=True, a=dict(bank=0, base=1, index=Index.TOK,
                                                      istride=100, ks=1),
                c=dict(bank=1, base=3, index=Index.TOK, istride=2)),
        isa.halt()]
    run = _run(tile, program)
    assert run.status == DONE
    assert run.instructions == 5
    # segment j: sum(20 + 3j + k for k < 3) = 63 + 9j
    assert _elems(tile, 1, 140, 3) == [63, 72, 81]
    assert _elems(tile, 1, 11, 1) == [401 + 402 + 403]
    # NEXT 1..2, NEXT 3..4, VOP 5..13, VOP 14..16 (reads 15..17), HALT 17; last write 17 + 8
    assert run.cycles == 26
    assert tile.read(host.TARGET_TOKENS, 0, 4).ravel().tolist() == [0, 0, 4, 0]  # RUN: no ids


# Timing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("s, n, out, cycles", [
    (1, 1, OutFunc.MULSHR, 11),         # VOP issued in 1, read in 2, lands 2 + 8 = 10
    (3, 4, OutFunc.MULSHR, 22),         # reads 2..13, the last lands 13 + 8 = 21
    (1, 5, OutFunc.RECIP, 30),          # 6 + 23 = 29
    (1, 5, OutFunc.RSQRT, 55),          # 6 + 48 = 54
])
def test_vop_run_cycles(s, n, out, cycles):
    tile = _tile()
    instr = isa.vop(s=s, n=n, out=out, a=dict(bank=0, ks=1, js=n), c=dict(bank=1, js=1))
    run = _run(tile, [instr, isa.halt()])
    assert (run.status, run.cycles, run.instructions) == (DONE, cycles, 2)
    # a HALT after the last write: the count is HALT's cycle + 1
    run = _run(tile, [instr, isa.wait(60), isa.halt()])
    assert run.cycles == 1 + s * n + 60 + 1


def _reader_program(j, wait):
    """VOP 1: S 3 of N 2 issued in cycle 1 (reads 2..7); segment j lands at 2 + 2j + 1 + 8.
    WAIT; VOP 2 reads segment j's result (issued in cycle 7 + wait, reads in 8 + wait)."""
    write = isa.vop(g=GFunc.PASS, s=3, n=2, a=dict(bank=0, ks=1, js=2),
                    c=dict(bank=1, base=40, js=1))
    read = isa.vop(g=GFunc.PASS, a=dict(bank=1, base=40 + j), c=dict(bank=0, base=100))
    return [write] + ([isa.wait(wait)] if wait else []) + [read, isa.halt()]


@pytest.mark.parametrize("j", [0, 2])
def test_vop_result_lands_at_t_plus_segment_end_plus_latency(j):
    A = {0: 1, 1: 2, 2: 30, 3: 40, 4: 500, 5: 600}
    # segment j lands at the end of cycle 11 + 2j: a read in 12 + 2j sees it
    tile = _tile({0: A})
    run = _run(tile, _reader_program(j, 4 + 2 * j))
    assert run.status == DONE
    assert _elems(tile, 1, 40, 3) == [3, 70, 1100]
    assert _elems(tile, 0, 100, 1) == [[3, 70, 1100][j]]
    assert run.cycles == 12 + 2 * j + 9
    # one cycle earlier the read would see the old value: a schedule error
    with pytest.raises(GoldenError, match=r"VOP at pc 2 reads A from bank 1 word 5 .*"
                                          r"\bcycle %d\)" % (11 + 2 * j)):
        _run(_tile({0: A}), _reader_program(j, 3 + 2 * j))


def test_reads_of_in_flight_vop_writes_are_errors():
    # directly after the writer (no WAIT)
    with pytest.raises(GoldenError, match=r"VOP at pc 1 reads A from bank 1 word 5 .*\bcycle 11\)"):
        _run(_tile(), _reader_program(0, 0))
    # a MATVEC reading an activation word whose vector-unit write is in flight
    write = isa.vop(g=GFunc.PASS, a=dict(bank=0), c=dict(bank=1, base=3))
    mv = isa.matvec(w_base=0, x_bank=1, x_addr=0, y_bank=0, y_addr=4, n_blocks=1, n_chunks=1,
                    q_mult=1, q_shift=0)
    for wait in (6, 7):                             # MATVEC reads in 9, 10: the write lands 10
        with pytest.raises(GoldenError, match="while a vector-unit write to it is in flight"):
            _run(_tile(), [write, isa.wait(wait), mv, isa.halt()])
    assert _run(_tile(), [write, isa.wait(8), mv, isa.halt()]).status == DONE
    # a VOP reading a MATVEC result in flight (read in 2, lands 2 + LAT_WRITE)
    mv = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=1, n_chunks=1,
                    q_mult=1, q_shift=0)
    read = isa.vop(g=GFunc.PASS, a=dict(bank=1, base=1), c=dict(bank=0, base=100))
    lat = isa.LAT_WRITE
    with pytest.raises(GoldenError, match=rf"VOP at pc 2 reads A from bank 1 word 0 .*\bcycle "
                                          rf"{2 + lat}\)"):
        _run(_tile(), [mv, isa.wait(lat - 1), read, isa.halt()])      # VOP reads in 2 + lat
    assert _run(_tile(), [mv, isa.wait(lat), read, isa.halt()]).status == DONE


def test_a_vop_never_reads_a_stale_element():
    # VOP 1 (read in cycle 2) writes element 100 of bank 1, landing at the end of 10; VOP 2
    # (reads 3..12) reads elements 91..100, element 100 in cycle 12, after the write landed. The
    # model must not give the value of memory at VOP 2's issue (0): it rejects a VOP that
    # reads an element whose write is in flight when the VOP issues.
    tile = _tile({0: {0: 42}})
    program = [isa.vop(g=GFunc.PASS, a=dict(bank=0), c=dict(bank=1, base=100)),
               isa.vop(g=GFunc.PASS, n=10, a=dict(bank=1, base=91, ks=1),
                       c=dict(bank=0, base=200)),
               isa.halt()]
    with pytest.raises(GoldenError, match=r"VOP at pc 1 reads A from bank 1 word 12 .*\bcycle 10\)"):
        _run(tile, program)
    # issued after the write landed, it reads 42
    tile = _tile({0: {0: 42}})
    program.insert(1, isa.wait(8))                   # VOP 2 issued in 10, reads from 11
    assert _run(tile, program).status == DONE
    assert _elems(tile, 0, 200, 1) == [42]


def test_in_place_vop_and_its_own_writes():
    # segment j reads element j in cycle 2 + j; its write lands at the end of 2 + j + 8
    A = {e: 10 + e for e in range(30)}
    tile = _tile({0: A})
    instr = lambda c_base: isa.vop(g=GFunc.PASS, s=20, n=1, a=dict(bank=0, js=1),
                                   c=dict(bank=0, base=c_base, js=1))
    run = _run(tile, [instr(7), isa.halt()])          # element 7 + j is read in 9 + j: old
    assert run.status == DONE
    assert _elems(tile, 0, 0, 27) == [10 + e for e in range(7)] + [10 + j for j in range(20)]
    tile = _tile({0: A})
    _run(tile, [instr(0), isa.halt()])               # element-wise in place
    assert _elems(tile, 0, 0, 21) == [10 + e for e in range(21)]
    with pytest.raises(GoldenError, match="after its own write landed"):
        _run(_tile({0: A}), [instr(9), isa.halt()])   # element 9 is written at 10, read at 11


# Ports ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [BMode.MEM, BMode.SCALE])
def test_a_and_b_in_one_bank_is_a_port_conflict(mode):
    with pytest.raises(isa.IsaError, match="same activation bank 0"):
        isa.vop(a=dict(bank=0), b=dict(mode=mode, bank=0), c=dict(bank=1))
    # the word by hand: a VOP with A and B in bank 0
    args = dict(g=GFunc.MUL.value, red=Reduce.SUM.value, out=OutFunc.MULSHR.value, s=1, n=4,
                s_pos=0, n_pos=0, mult=1, shift=0, sat=16, init=0,
                a=dict(space=0, bank=0, base=0, index=0, istride=0, js=0, ks=1),
                b=dict(mode=mode.value, bank=0, base=4, index=0, istride=0, js=0, ks=1),
                c=dict(bank=1, base=0, index=0, istride=0, js=0))
    tile = _tile()
    tile.write(host.TARGET_PROG, 0, [isa.encode({"op": isa.Opcode.VOP, "args": {"vop": args}}),
                                     isa.encode(isa.halt())])
    response = tile.host(host.run_cmd(0))
    assert response == [DONE | host.STATUS_PORT_CONFLICT, 1 + 4 + 8 + 1]   # reads 2..5
    # the flag is per run
    tile.write(host.TARGET_PROG, 0, [isa.encode(isa.halt())])
    assert tile.host(host.run_cmd(0)) == [DONE, 2]


def test_matvec_and_vop_writes_to_one_bank_in_one_cycle_are_a_port_conflict():
    # MATVEC of d blocks reading from cycle 1 + ISSUE_LAT: its last block (read in d + 1) lands
    # at d + 1 + LAT_WRITE; the VOP reads in d + 2 and lands at d + 2 + LAT_V: the same cycle
    # for d = LAT_WRITE - LAT_V + 1
    blocks = isa.LAT_WRITE - isa.LAT_V + 1
    land = blocks + isa.ISSUE_LAT + isa.LAT_WRITE
    for y_bank, status in ((1, DONE | host.STATUS_PORT_CONFLICT), (0, DONE)):
        vop = isa.vop(g=GFunc.PASS, a=dict(bank=0), c=dict(bank=1, base=200))
        mv = isa.matvec(w_base=0, x_bank=0, x_addr=1, y_bank=y_bank, y_addr=8, n_blocks=blocks,
                        n_chunks=1, q_mult=1, q_shift=0)
        run = _run(_tile(), [mv, vop, isa.halt()])
        assert (run.status, run.cycles) == (status, land + 1)


@pytest.mark.parametrize("kw, message", [
    (dict(s=0), "VOP needs S >= 1 and N >= 1, not S=0, N=1"),
    (dict(n=0), "VOP needs S >= 1 and N >= 1, not S=1, N=0"),
    (dict(s=2, out=OutFunc.RSQRT), "needs exactly one segment (S = 1)"),
    (dict(s=2, out=OutFunc.RECIP), "needs exactly one segment (S = 1)"),
    (dict(s_pos=True, out=OutFunc.RSQRT), "needs exactly one segment (S = 1)"),
    (dict(red=Reduce.ARGMAX, out=OutFunc.RECIP), "ARGMAX writes the index"),
    (dict(sat=0), "VOP sat must be in [1, 63], not 0"),
    (dict(sat=64), "VOP sat must be an integer in [0, 63], not 64"),
    (dict(b=dict(mode=BMode.MEM, bank=0)), "VOP reads A and B from the same activation bank 0"),
    (dict(b=dict(mode=BMode.SCALE, bank=0)), "VOP reads A and B from the same activation bank"),
])
def test_vop_argument_errors(kw, message):
    with pytest.raises(isa.IsaError, match=re.escape(message)):
        isa.vop(**{"a": dict(bank=0), "c": dict(bank=1), **kw})


def test_vop_arguments_that_are_fine():
    # N from pos needs no n; a WROW A may name B's bank; SQUARE/IMM never read B's bank
    isa.vop(n=0, n_pos=True, a=dict(bank=0), c=dict(bank=0))
    isa.vop(a=dict(space=Space.WROW, bank=1), b=dict(mode=BMode.MEM, bank=1), c=dict(bank=0))
    isa.vop(a=dict(bank=1), b=dict(mode=BMode.SQUARE, bank=1), c=dict(bank=1))
    isa.vop(out=OutFunc.RSQRT, n=100, a=dict(bank=1), c=dict(bank=1))


# The token loop ------------------------------------------------------------------------------

V = 8        # vocabulary: next id after id t is argmax of row t = (3t + 1) % 8


def _next_id(t):
    return (3 * t + 1) % V


def _lm_tile(prompt, *, wait=isa.LAT_V + 1, embed="wrow"):
    """Row t of an 8 x 8 "logit" matrix has its maximum 5 at (3t + 1) % 8 and 2 at t (a
    second, smaller peak). Program: VOP ARGMAX of row tok (cycles 1..8 of an iteration),
    c = the id at element pos of bank 1; WAIT ``wait`` (None: no WAIT); NEXT 0; HALT."""
    logits = np.zeros((V, V), dtype=np.int64)
    for t in range(V):
        logits[t, t] = 2
        logits[t, _next_id(t)] = 5
    tile = _tile(tokens=prompt)
    if embed == "wrow":
        banks, n_chunks, _ = _matvec_layout(logits, 0)
        for r in range(R):
            tile.write(host.TARGET_WBANK + r, 0, banks[r])
        a = dict(space=Space.WROW, base=0, index=Index.TOK, istride=n_chunks, ks=1)
    else:                                         # the same rows in activation bank 0
        tile.write(host.TARGET_ABANK, 16, logits)
        a = dict(bank=0, base=16 * L, index=Index.TOK, istride=L, ks=1)
    program = [isa.vop(g=GFunc.PASS, red=Reduce.ARGMAX, n=V, a=a,
                       c=dict(bank=1, base=0, index=Index.POS, istride=1)),
               isa.next_(0), isa.halt()]
    if wait is not None:
        program.insert(1, isa.wait(wait))
    tile.write(host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    return tile


@pytest.mark.parametrize("embed", ["wrow", "act"])
def test_generate_from_a_one_token_prompt(embed):
    tile = _lm_tile([2], embed=embed)
    response = tile.host(host.generate_cmd(1, 3))
    # iteration p: VOP issued 1 + 19p (reads 2 + 19p .. 9 + 19p), argmax lands 17 + 19p, WAIT
    # 9, NEXT 18 + 19p; ids: 2 -> 7 -> 6 -> 3; the last NEXT falls through to HALT in 58
    assert (_next_id(2), _next_id(7), _next_id(6)) == (7, 6, 3)
    assert response == [7, 18, 6, 37, 3, 56, DONE, 59]
    assert tile.last_run.cycles == 59
    assert tile.read(host.TARGET_TOKENS, 0, 16).ravel().tolist() == [2, 7, 6, 3] + [0] * 12
    assert _elems(tile, 1, 0, 4) == [7, 6, 3, 0]          # c at element pos


def test_generate_emits_only_after_the_prompt():
    tile = _lm_tile([2, 5, 1])
    stream = host.generate_cmd(3, 2) + host.read_cmd(CFG, host.TARGET_TOKENS, 0, 6)
    response = tile.host(stream)
    # positions 0..3 (n_prompt + steps - 2); NEXTs in 18, 37, 56, 75; ids emitted by the
    # NEXTs of positions 2 and 3 (pos + 1 >= n_prompt): row 1 -> 4, row 4 -> 5; the prompt
    # ids at 1 and 2 are not overwritten
    assert response == [4, 56, 5, 75, DONE, 78] + [2, 5, 1, 4, 5, 0]
    assert _elems(tile, 1, 0, 5) == [7, 0, 4, 5, 0]       # rows 2, 5, 1, 4
    assert tile.last_run.instructions == 4 * 3 + 1


def test_generate_one_step():
    tile = _lm_tile([6])
    assert tile.host(host.generate_cmd(1, 1)) == [3, 18, DONE, 21]     # HALT in 20
    # a second GENERATE starts again at position 0 and overwrites the generated ids
    tile.write(host.TARGET_TOKENS, 0, [[1]])
    assert tile.host(host.generate_cmd(1, 2)) == [4, 18, 5, 37, DONE, 40]
    assert tile.read(host.TARGET_TOKENS, 0, 4).ravel().tolist() == [1, 4, 5, 0]


def test_run_does_not_loop_or_emit():
    tile = _lm_tile([2])
    # one pass: NEXT only advances pos and falls through; HALT in 20
    assert tile.host(host.run_cmd(0)) == [DONE, 21]
    assert tile.read(host.TARGET_TOKENS, 0, 3).ravel().tolist() == [2, 0, 0]
    assert _elems(tile, 1, 0, 2) == [7, 0]


@pytest.mark.parametrize("header", [host.header(host.CMD_GENERATE, 0, 0, 1),     # steps 0
                                    host.header(host.CMD_GENERATE, 0, 3, 0),     # no prompt
                                    host.header(host.CMD_GENERATE, 0, 0, 0)])
def test_generate_without_steps_or_prompt_is_a_bad_command(header):
    tile = _lm_tile([2])
    assert tile.host(header) == []                        # not run, nothing emitted
    assert tile.read(host.TARGET_TOKENS, 0, 2).ravel().tolist() == [2, 0]
    # reported by the next run (RUN or GENERATE), once
    assert tile.host(host.generate_cmd(1, 1)) == [7, 18, DONE | host.STATUS_BAD_COMMAND, 21]
    assert tile.host(host.generate_cmd(1, 1)) == [7, 18, DONE, 21]
    tile.host(header)
    assert tile.host(host.run_cmd(0)) == [DONE | host.STATUS_BAD_COMMAND, 21]


def test_generate_cmd_checks_its_arguments():
    assert host.generate_cmd(3, 2) == [host.CMD_GENERATE | 3 << 16, 2]
    for n_prompt, steps in ((0, 1), (1, 0), (1 << 16, 1)):
        with pytest.raises(host.HostError, match="GENERATE needs"):
            host.generate_cmd(n_prompt, steps)


@pytest.mark.parametrize("wait", [None, 1, 7, 8])
def test_next_before_the_argmax_lands_is_an_error(wait):
    # argmax lands at the end of 17 (reads 2..9); NEXT issues in 9 + wait (<= 17)
    tile = _lm_tile([2], wait=wait)
    issue = 9 + (wait or 0)
    with pytest.raises(GoldenError, match=re.escape(f"NEXT at pc {1 if wait is None else 2} "
                                                    f"(cycle {issue}) issues before the "
                                                    f"argmax result lands")):
        tile.host(host.generate_cmd(1, 2))


def test_next_right_after_the_argmax_lands():
    # WAIT 9: NEXT in 18, the argmax landed at the end of 17
    tile = _lm_tile([2], wait=9)
    assert tile.host(host.generate_cmd(1, 1)) == [7, 18, DONE, 21]


# Host protocol of the new targets --------------------------------------------------------------

def test_host_table_round_trip():
    tile = GoldenTile(CFG)
    values = [-32768, -1, 0, 1, 32767]
    address = isa.TABLE_DEPTH - 5
    stream = host.write_cmd(CFG, host.TARGET_TABLE, address, np.array(values).reshape(-1, 1))
    assert stream == [host.CMD_WRITE | 0xA0 << 8 | 5 << 16, address,
                      0x8000, 0xffff, 0, 1, 0x7fff]
    response = tile.host(stream + host.read_cmd(CFG, host.TARGET_TABLE, address, 5)
                         + host.read_cmd(CFG, host.TARGET_TABLE, 0, 1))
    assert response == [0x8000, 0xffff, 0, 1, 0x7fff, 0]
    assert host.unpack_words(CFG, host.TARGET_TABLE, response[:5]).ravel().tolist() == values
    assert tile.table[address:].tolist() == values
    assert host.target_depth(CFG, host.TARGET_TABLE) == isa.TABLE_DEPTH == 1024
    for bad in (32768, -32769):
        with pytest.raises(host.HostError, match=re.escape("SRAM values must be in "
                                                           "[-32768, 32767]")):
            host.write_cmd(CFG, host.TARGET_TABLE, 0, [[bad]])
    with pytest.raises(host.HostError, match="outside target 0xa0"):
        host.write_cmd(CFG, host.TARGET_TABLE, isa.TABLE_DEPTH - 1, [[1], [2]])
    assert tile.bad_command is False


def test_host_token_memory_round_trip():
    tile = GoldenTile(CFG)
    ids = [0, 1, 65535, 40000]
    stream = host.write_cmd(CFG, host.TARGET_TOKENS, 12, np.array(ids).reshape(-1, 1))
    assert stream == [host.CMD_WRITE | 0xC0 << 8 | 4 << 16, 12] + ids   # unsigned ids
    response = tile.host(stream + host.read_cmd(CFG, host.TARGET_TOKENS, 12, 4))
    assert response == ids
    assert host.unpack_words(CFG, host.TARGET_TOKENS, response).ravel().tolist() == ids
    assert tile.tmem.tolist() == [0] * 12 + ids
    assert host.target_depth(CFG, host.TARGET_TOKENS) == CFG.tdepth == 16
    for bad in (-1, 65536):
        with pytest.raises(host.HostError, match=re.escape("SRAM values must be in [0, 65535]")):
            host.write_cmd(CFG, host.TARGET_TOKENS, 0, [[bad]])
    with pytest.raises(host.HostError, match="outside target 0xc0"):
        host.read_cmd(CFG, host.TARGET_TOKENS, 15, 2)


def test_host_activation_words_are_32_bit_lanes():
    tile = GoldenTile(CFG)
    word = [-1, I32_MIN, I32_MAX, 0, 1, 0x12345678, -0x12345678, 7]
    beats = [0xffffffff, 0x80000000, 0x7fffffff, 0, 1, 0x12345678, 0xedcba988, 7]
    stream = host.write_cmd(CFG, host.TARGET_ABANK + 1, 63, [word])
    assert stream == [host.CMD_WRITE | 0x41 << 8 | 1 << 16, 63] + beats
    response = tile.host(stream + host.read_cmd(CFG, host.TARGET_ABANK + 1, 63, 1)
                         + host.read_cmd(CFG, host.TARGET_ABANK, 63, 1))
    assert response == beats + [0] * L
    assert host.unpack_words(CFG, host.TARGET_ABANK, response[:L]).tolist() == [word]
    assert tile.amem[1, 63].tolist() == word
    assert int(np.count_nonzero(tile.amem)) == 7
    for bad in (2**31, -2**31 - 1):
        with pytest.raises(host.HostError, match="SRAM values must be in"):
            host.write_cmd(CFG, host.TARGET_ABANK, 0, [[bad] + [0] * (L - 1)])
