"""Integer semantics shared by the golden model and the compiler: the one definition.

Requantization of an accumulator ``acc`` with multiplier ``M`` (int16) and shift ``S`` (0..63):

    y = saturate(floor((acc * M + 2**(S-1)) / 2**S))      (S > 0: round half up)
    y = saturate(acc * M)                                  (S = 0)

where ``saturate`` clamps to the signed ``data_bits`` range. In hardware the product is
``acc_bits + 16`` bits wide, the rounding constant is added, and the sum is shifted right
arithmetically, so no intermediate value is ever truncated.
"""

__all__ = ["wrap", "saturate", "requantize", "quantize_multiplier", "gemv_reference", "MULT_BITS",
           "SHIFT_MAX", "ROPE_FRAC", "rope_rotate", "EXP2_FRAC", "EXP2_STEPS", "EXP2_TABLE",
           "EXP2_MAX", "exp2_neg", "RECIP_FRAC", "norm_recip", "silu_interp", "silu_gate",
           "argmax", "isqrt", "interp", "SS_BITS", "RSQRT_INDEX_BITS", "RSQRT_TABLE", "rsqrt_scale",
           "norm_mult", "norm_requantize"]

import math

import numpy as np

MULT_BITS = 16
SHIFT_MAX = 63
ROPE_FRAC = 14         # RoPE cos/sin tables: Q1.14
EXP2_FRAC = 14         # softmax weights: Q14 (2**0 = 16384)
EXP2_STEPS = 16        # score units per halving: a score step is 1/16 of a bit
EXP2_TABLE = tuple(round(2 ** EXP2_FRAC * 2 ** (-f / EXP2_STEPS)) for f in range(EXP2_STEPS))
EXP2_MAX = 255         # differences from the maximum are clamped here (2**-16: 0 in Q14)
RECIP_FRAC = 14        # norm_recip: 1/v ~ m * 2**-(b + RECIP_FRAC), 2**14 <= m < 2**15
SS_BITS = 40           # rsqrt_scale's operand: an unsigned sum of squares
RSQRT_INDEX_BITS = 6   # rsqrt_scale's table: 2**6 intervals per unit of f in [1, 4)
# 2**15 / sqrt(f) at f = 1 + i / 64, i = 0 .. 192 (f = 4), rounded; f = 1 capped below 2**15
RSQRT_TABLE = tuple(min(round(2 ** 15 / math.sqrt(1 + i / 2 ** RSQRT_INDEX_BITS)), 2 ** 15 - 1)
                    for i in range(3 * 2 ** RSQRT_INDEX_BITS + 1))


def wrap(values, bits):
    """Two's-complement wrap of integers to ``bits`` bits (what a ``bits``-wide register does)."""
    values = np.asarray(values, dtype=np.int64)
    half = np.int64(1) << np.int64(bits - 1)
    return ((values + half) & ((half << 1) - 1)) - half


def saturate(values, bits):
    """Clamp integers to the signed ``bits``-bit range."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(values, lo, hi)


def rope_rotate(a, b, cos, sin, bits=16, shift=0):
    """Rotate the pairs (a, b) by the Q1.14 ``cos``/``sin``: ``(a c - b s, a s + b c)``,
    each rounded half up from the exact product sums (``shift`` more bits, broadcast, for a
    narrowed result) and saturated to ``bits``."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    total = ROPE_FRAC + np.asarray(shift, dtype=np.int64)
    half = np.int64(1) << (total - 1)
    return (saturate((a * cos - b * sin + half) >> total, bits),
            saturate((a * sin + b * cos + half) >> total, bits))


def exp2_neg(delta):
    """The softmax weight of a score ``delta`` steps below the maximum:
    ``EXP2_TABLE[i % 16] >> (i // 16)`` with ``i = clamp(delta, 0, EXP2_MAX)``, i.e.
    ``2**14 * 2**(-i/16)`` rounded, then halved by integer shifts. Exact integers, no
    multiplier: a 16-entry table and a shifter."""
    i = np.clip(np.asarray(delta, dtype=np.int64), 0, EXP2_MAX)
    return np.asarray(EXP2_TABLE, dtype=np.int64)[i & (EXP2_STEPS - 1)] >> (i >> 4)


def norm_recip(v):
    """A normalized reciprocal of a positive integer: ``(m, b)`` with
    ``m = (2**(b+14) - 1) // v`` and ``b = v.bit_length()``, so ``1/v ~ m * 2**-(b+14)`` and
    ``2**14 <= m < 2**15`` (the scalar unit's and the reciprocal pipeline's divider)."""
    v = int(v)
    if v <= 0:
        raise ValueError(f"norm_recip needs a positive integer, not {v}")
    b = v.bit_length()
    return ((1 << (b + RECIP_FRAC)) - 1) // v, b


def isqrt(v):
    """floor(sqrt(v)) of a non-negative integer (the scalar unit's square root)."""
    return math.isqrt(int(v))


def interp(table, idx, frac):
    """Linear interpolation between ``table[idx]`` and ``table[idx + 1]`` by an 8-bit
    fraction: ``T[i] + (((T[i+1] - T[i]) * frac + 128) >> 8)`` (SiLU's table and the RMSNorm
    scale's; the one rule)."""
    t = np.asarray(table, dtype=np.int64)
    idx, frac = np.asarray(idx, dtype=np.int64), np.asarray(frac, dtype=np.int64)
    return t[idx] + (((t[idx + 1] - t[idx]) * frac + 128) >> 8)


def rsqrt_scale(ss):
    """RMSNorm's scale from an unsigned ``SS_BITS``-bit sum of squares: ``(m, b)`` with
    ``1/sqrt(ss) ~ m * 2**-(b+14)`` and ``2**14 <= m < 2**15``.

    ``ss`` is normalized by an even shift, ``u = ss << 2j`` with ``2**38 <= u < 2**40``
    (``j = (40 - bit_length(ss)) // 2``), so ``u = f * 2**38`` with f in [1, 4) and
    ``1/sqrt(ss) = 2**(j - 19) / sqrt(f)``. The top 16 bits of u are ``f`` with 14 fraction
    bits: the high 8 bits index ``RSQRT_TABLE`` (``i = (u >> 32) - 64``), the low 8 are the
    interpolation fraction: ``m = interp(RSQRT_TABLE, i, (u >> 24) & 255)``, ``b = 20 - j``
    (1 .. 20). ``ss = 0`` gives ``(2**15 - 1, 0)``, the defined result. Relative error below
    2**-13 (tests/test_numerics.py)."""
    ss = int(ss)
    if not 0 <= ss < 1 << SS_BITS:
        raise ValueError(f"rsqrt_scale needs an unsigned {SS_BITS}-bit integer, not {ss}")
    if ss == 0:
        return (1 << (RECIP_FRAC + 1)) - 1, 0
    j = (SS_BITS - ss.bit_length()) // 2
    top = (ss << (2 * j)) >> (SS_BITS - 2 - RSQRT_INDEX_BITS - 8)      # 16 bits: f in Q2.14
    m = interp(RSQRT_TABLE, (top >> 8) - (1 << RSQRT_INDEX_BITS), top & 255)
    return int(m), SS_BITS // 2 - j


def norm_mult(mult, m):
    """A row multiplier scaled by RMSNorm's mantissa ``m``: ``(mult * m + 2**14) >> 15``.
    For an int16 ``mult`` and ``0 <= m < 2**15`` the result is an int16 again."""
    mult = np.asarray(mult, dtype=np.int64)
    return (mult * np.int64(m) + (1 << RECIP_FRAC)) >> (RECIP_FRAC + 1)


def norm_requantize(acc, mult, shift, m, b, bits=16):
    """A MATVEC row normalized by RMSNorm's scale ``(m, b)`` (:func:`rsqrt_scale`):
    ``requantize(acc, norm_mult(mult, m), min(shift + b, 63), bits)``, i.e.
    ``acc * mult * 2**-shift / sqrt(ss) / 2`` rounded."""
    return requantize(acc, norm_mult(mult, m), min(int(shift) + int(b), SHIFT_MAX), bits)


def silu_interp(table, h):
    """SiLU of int16 ``h`` by linear interpolation (:func:`interp`) in a 257-entry table over
    the int16 range: ``u = (h + 2**15) mod 2**16``, ``interp(table, u >> 8, u & 255)``."""
    u = (np.asarray(h, dtype=np.int64) + (1 << 15)) & 0xffff
    return interp(table, u >> 8, u & 255)


def silu_gate(h1, h3, table, shift, bits=16):
    """SwiGLU's gate: ``sat((silu(h1) * h3 + 2**(shift-1)) >> shift)`` (round half up)."""
    prod = silu_interp(table, h1) * np.asarray(h3, dtype=np.int64)
    if shift:
        prod = (prod + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    return saturate(prod, bits)


def argmax(values):
    """The index of the largest value, the lowest index on ties."""
    return int(np.argmax(np.asarray(values, dtype=np.int64)))


def requantize(acc, mult, shift, bits=8):
    """Requantize int accumulators to signed ``bits``-bit integers (see module docstring)."""
    acc = np.asarray(acc, dtype=np.int64)
    prod = acc * np.int64(mult)
    if shift:
        prod = (prod + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    return saturate(prod, bits)


def quantize_multiplier(scale):
    """Return ``(M, S)`` with ``M * 2**-S`` closest to ``scale`` and M a positive int16.

    Raises ``ValueError`` for a scale that is not finite and positive or not representable
    (rounding to 0 at the largest shift, i.e. below ``2**-(SHIFT_MAX+1)``, or at least
    ``2**15``).
    """
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"requantization scale must be a finite positive number, not {scale!r}")
    mant, exp = math.frexp(scale)            # scale = mant * 2**exp, 0.5 <= mant < 1
    shift = (MULT_BITS - 1) - exp            # M = mant * 2**15 -> 16384..32767
    mult = round(mant * (1 << (MULT_BITS - 1)))
    if mult == 1 << (MULT_BITS - 1):
        mult //= 2
        shift -= 1
    if shift > SHIFT_MAX:                    # very small scales: fewer mantissa bits
        shift = SHIFT_MAX
        mult = round(math.ldexp(scale, SHIFT_MAX))
        if mult == 0:
            raise ValueError(f"requantization scale {scale} is too small "
                             f"(limit 2**-{SHIFT_MAX + 1})")
    if shift < 0:
        raise ValueError(f"requantization scale {scale} is too large (limit {2**15 - 1})")
    return mult, shift


def gemv_reference(W, x, mult, shift, *, data_bits=8, acc_bits=32):
    """Plain NumPy of the GEMV math: ``requantize(W @ x)`` with ``acc_bits`` accumulators."""
    acc = wrap(np.asarray(W, dtype=np.int64) @ np.asarray(x, dtype=np.int64), acc_bits)
    return requantize(acc, mult, shift, data_bits)
