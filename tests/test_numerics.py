"""Integer semantics: wrap, requantize, quantize_multiplier, gemv_reference."""

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinylpu.numerics import MULT_BITS, SHIFT_MAX, gemv_reference, quantize_multiplier, \
    requantize, wrap


def test_constants():
    assert (MULT_BITS, SHIFT_MAX) == (16, 63)


@pytest.mark.parametrize("acc, mult, shift, expected", [
    (3, 1, 1, 2),          # 1.5 -> 2: half rounds up
    (-3, 1, 1, -1),        # -1.5 -> -1: half rounds up (towards +inf)
    (1, 1, 1, 1),          # 0.5 -> 1
    (-1, 1, 1, 0),         # -0.5 -> 0
    (5, 1, 2, 1),          # 1.25 -> 1
    (6, 1, 2, 2),          # 1.5 -> 2
    (-5, 1, 2, -1),        # -1.25 -> -1
    (-6, 1, 2, -1),        # -1.5 -> -1
    (-7, 1, 2, -2),        # -1.75 -> -2
    (100, 3, 4, 19),       # 300 / 16 = 18.75 -> 19
    (100, -3, 4, -19),     # -18.75 -> -19
    (8, -1, 4, 0),         # -0.5 -> 0
    (24, -1, 4, -1),       # -1.5 -> -1
    (42, 1, 0, 42),        # shift 0: the product itself
    (-42, 2, 0, -84),
    (127, 1, 0, 127),
    (128, 1, 0, 127),      # saturate high
    (-128, 1, 0, -128),
    (-129, 1, 0, -128),    # saturate low
    (10**6, 32767, 0, 127),
    (10**6, -32768, 0, -128),
    (-(2**31), -32768, 63, 0),    # +2**46 / 2**63 rounds to 0
    (2**31 - 1, 32767, 40, 64),   # (2**31-1)*32767 / 2**40 = 63.99... -> 64
    (255, 1, 1, 127),      # 127.5 -> 128 -> saturate to 127
    (-257, 1, 1, -128),    # -128.5 -> -128
    (-259, 1, 1, -128),    # -129.5 -> -129 -> saturate to -128
])
def test_requantize_scalars(acc, mult, shift, expected):
    assert int(requantize(acc, mult, shift)) == expected


def test_requantize_arrays_and_bits():
    acc = np.array([-100, -9, -8, -7, 0, 7, 8, 9, 100])
    np.testing.assert_array_equal(requantize(acc, 1, 1, bits=4),
                                  [-8, -4, -4, -3, 0, 4, 4, 5, 7])
    np.testing.assert_array_equal(requantize(acc, -1, 0, bits=4),
                                  [7, 7, 7, 7, 0, -7, -8, -8, -8])
    assert requantize(acc, 1, 0).dtype == np.int64


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**15), 2**15 - 1),
       st.integers(0, 63), st.integers(2, 8))
def test_requantize_matches_exact_rounding(acc, mult, shift, bits):
    # independent: floor(p / 2**s + 1/2) in exact integer arithmetic, then clamp
    prod = acc * mult
    value = prod if shift == 0 else (2 * prod + 2 ** shift) // 2 ** (shift + 1)
    value = max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, value))
    assert int(requantize(acc, mult, shift, bits)) == value


@pytest.mark.parametrize("value, bits, expected", [
    (2**31 - 1, 32, 2**31 - 1),
    (2**31, 32, -(2**31)),
    (-(2**31), 32, -(2**31)),
    (-(2**31) - 1, 32, 2**31 - 1),
    (2**32, 32, 0),
    (2**32 + 5, 32, 5),
    (3 * 2**32 - 7, 32, -7),
    (0, 32, 0),
    (-1, 32, -1),
    (128, 8, -128),
    (255, 8, -1),
    (-129, 8, 127),
    (2**39, 40, -(2**39)),
])
def test_wrap(value, bits, expected):
    assert int(wrap(value, bits)) == expected


def test_wrap_array():
    np.testing.assert_array_equal(wrap([2**31, 2**31 - 1, -(2**31) - 2, 2**33 + 1], 32),
                                  [-(2**31), 2**31 - 1, 2**31 - 2, 1])


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-12, max_value=3e4, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_accuracy(scale):
    mult, shift = quantize_multiplier(scale)
    assert isinstance(mult, int) and isinstance(shift, int)
    assert 1 << 14 <= mult < 1 << 15
    assert 0 <= shift <= SHIFT_MAX
    assert abs(mult * 2.0 ** -shift - scale) <= scale * 2.0 ** -15


@pytest.mark.parametrize("scale, expected", [
    (1.0, (16384, 14)),
    (0.5, (16384, 15)),
    (3, (24576, 13)),
    (0.75, (24576, 15)),
    (3e4, (30000, 0)),
    (32767.0, (32767, 0)),
    (2.0 ** -48, (16384, 62)),
    (2.0 ** -63, (1, 63)),
    (1 / 3, (21845, 16)),
])
def test_quantize_multiplier_values(scale, expected):
    assert quantize_multiplier(scale) == expected


@pytest.mark.parametrize("scale, message", [
    (0, "must be a finite positive number, not 0"),
    (0.0, "must be a finite positive number, not 0.0"),
    (-1.0, "must be a finite positive number, not -1.0"),
    (-1e-9, "must be a finite positive number"),
    (math.inf, "must be a finite positive number, not inf"),
    (-math.inf, "must be a finite positive number, not -inf"),
    (math.nan, "must be a finite positive number, not nan"),
    ("1.0", "must be a finite positive number, not '1.0'"),
    (None, "must be a finite positive number, not None"),
    (32768.0, "too large"),
    (32767.9, "too large"),
    (1e6, "too large"),
    (2.0 ** -64, "too small"),
    (1e-30, "too small"),
])
def test_quantize_multiplier_errors(scale, message):
    with pytest.raises(ValueError, match=message):
        quantize_multiplier(scale)


def test_quantize_multiplier_nearest_for_tiny_scales():
    # scale = 16385 * 2**-65: with S = 63 the exact multiplier is 4096.25, so M must be 4096
    assert quantize_multiplier(16385 * 2.0 ** -65) == (4096, 63)


def _py_gemv(W, x, mult, shift, data_bits, acc_bits):
    out = []
    for row in W:
        acc = sum(w * v for w, v in zip(row, x))
        acc = (acc + (1 << (acc_bits - 1))) % (1 << acc_bits) - (1 << (acc_bits - 1))
        p = acc * mult
        if shift:
            p = (p + (1 << (shift - 1))) // (1 << shift)
        out.append(max(-(1 << (data_bits - 1)), min((1 << (data_bits - 1)) - 1, p)))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_gemv_reference_matches_python_ints(seed):
    rnd = random.Random(seed)
    data_bits = rnd.choice([8, 8, 6, 4])
    acc_bits = rnd.choice([32, 2 * data_bits, 16, 40]) if data_bits < 8 else \
        rnd.choice([32, 16, 24])
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    rows, cols = rnd.randint(1, 12), rnd.randint(1, 40)
    W = [[rnd.randint(lo, hi) for _ in range(cols)] for _ in range(rows)]
    x = [rnd.randint(lo, hi) for _ in range(cols)]
    mult, shift = rnd.randint(-(2**15), 2**15 - 1), rnd.randint(0, 24)
    got = gemv_reference(W, x, mult, shift, data_bits=data_bits, acc_bits=acc_bits)
    assert got.tolist() == _py_gemv(W, x, mult, shift, data_bits, acc_bits)


def test_gemv_reference_accumulator_wraps():
    # 4 * 127 * 127 = 64516 wraps at 16 bits to -1020; * 1 >> 2 = -255 -> saturate -128
    W, x = [[127] * 4], [127] * 4
    assert gemv_reference(W, x, 1, 2, acc_bits=16).tolist() == [-128]
    assert gemv_reference(W, x, 1, 10, acc_bits=16).tolist() == [-1]    # -1020/1024 -> -1
    assert gemv_reference(W, x, 1, 10, acc_bits=32).tolist() == [63]    # 64516/1024 = 63.0
