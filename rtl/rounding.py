"""Round-half-up arithmetic right shift of a signed value, saturated, as narrow as its result.

The score unit (16-bit scores), the requantizer and the epilogue's SILU_GATE (32-bit lanes)
take ``sat((x + 2**(s-1)) >> s)`` (``x`` for ``s == 0``) of a signed ``W``-bit ``x``, an
unsigned variable shift ``s`` and a saturation to ``top + 1`` signed bits, and keep the low
bits of the result. :func:`round_shift_sat` computes it as narrow as it can:

- the sum is ``W + 1`` bits wide: for ``1 <= s < W`` it lies in ``[-2**(W-1), 2**(W-1) +
  2**(W-2))``, and for ``s >= W`` the result is 0 (``x + 2**(s-1)`` lies in ``[0, 2**s)``);
- only the bits the result needs are shifted, the largest shift first, each stage narrower;
- saturation is told from the bits of the sum that differ from its sign: ``v`` fits
  ``top + 1`` signed bits exactly when its bits from ``top`` up equal its sign, so no
  comparison with the bounds is needed; ``total >> shift`` fits when ``total``'s bits from
  ``shift + top`` up do, a flat OR over the bits, each with one compare of ``shift + top``
  with a constant (a count of the significant bits, as until 2026-12-06, was a priority
  chain of one LUT a bit: the estimated paths in docs/fpga.md, "Timing").

Written as a full shifter with two comparisons (as the units were until 2026-12), a 40-bit
value with a 6-bit shift and 16 bits out is 874 LUT4 and 54 CCU2C (``synth_ecp5``), this
376 and 28; a 56-bit value to a variable saturation and 32 bits out, 1,138 and 129 against
671 and 88. tests/test_rtl_rounding.py checks it against Python's integers.
"""

__all__ = ["round_shift_sat", "rounding_constant", "registered_terms", "saturation_top", "saturation_mask", "limit_mask",
           "shift_sat", "highest_one", "bit_length", "smear_down"]

from amaranth.hdl import Cat, Const, Mux, Signal, signed


def saturation_top(bits):
    """``top`` for a saturation to ``bits`` signed bits, a 6-bit field in which 0 counts as
    64 (``MatvecArgs.y_bits``, the VOP's ``sat``): ``bits - 1``, modulo 64."""
    assert len(bits) == 6
    return (bits - 1)[:6]


def smear_down(value):
    """``value`` with every bit below its highest one set, ``2**b - 1`` for ``b =
    value.bit_length()``: ``log2`` levels of ORs (an expression)."""
    smear, s = value, 1
    while s < len(value):
        smear = smear | (smear >> s)
        s *= 2
    return smear


def _leading_index(m, value, offset, name, *, smeared=False):
    """The index of ``value``'s highest one plus ``offset`` (``offset`` for none): the smear
    made one-hot and encoded, instead of a priority chain as long as ``value`` (Yosys maps an
    ``If`` per bit to a chain of that many LUTs). ``smeared``: ``value`` is a smear already
    (:func:`smear_down`'s, e.g. registered)."""
    w = len(value)
    smear = value if smeared else smear_down(value)
    leading = Signal(w, name=f"{name}_leading")
    m.d.comb += leading.eq(smear & ~(smear >> 1))
    index = Signal(range(max(w + offset, 2)), name=f"{name}_index")
    m.d.comb += index.eq(Cat(Cat(leading[i] for i in range(w) if (i + offset) >> k & 1).any()
                             for k in range(len(index))))
    return index


def highest_one(m, value, name):
    """``(any, index)``: whether unsigned ``value`` has a one, and the index of its highest one
    (0 when there is none)."""
    smear = smear_down(value)
    return smear[0], _leading_index(m, smear, 0, name, smeared=True)


def bit_length(m, value, name, *, smeared=False):
    """``value.bit_length()`` of unsigned ``value`` (0 for 0), as a signal; ``smeared``:
    ``value`` is ``smear_down`` of the number (the same bit length)."""
    return _leading_index(m, value, 1, name, smeared=smeared)


def _saturated(top, n):
    """The low ``n`` bits of the largest value of ``top + 1`` signed bits, ``2**top - 1``
    (``top``: an int or an unsigned signal); the smallest, ``-2**top``, is its complement."""
    if isinstance(top, int):
        return Const(((1 << top) - 1) & ((1 << n) - 1), n)
    return Cat(*(top > i for i in range(n)))


def saturation_mask(shift, top, width):
    """The bits of a ``width``-bit sum that :func:`shift_sat` checks against its sign: bit q
    (q < ``width - 1``) is one when ``q >= shift + top``. A unit that knows its shift and
    saturation a cycle before the sum registers it (an expression), so that the check is a
    flat AND-OR of the sum's bits with a register, with no adder or compare behind it."""
    return limit_mask(shift + top, width)


def limit_mask(limit, width):
    """:func:`saturation_mask` of a ``limit`` = ``shift + top`` formed (and registered)
    elsewhere: a compare with a constant a bit, each a LUT or two of the limit's 7 bits, where
    registering the whole mask would fan the adder out to every bit's compare in one cycle
    (an expression)."""
    return Cat(*(limit <= q for q in range(width - 1)))


def shift_sat(m, total, shift, top, n, name, *, mask=None):
    """The low ``n`` bits of ``total >> shift`` (arithmetic; ``shift`` below ``len(total)``)
    saturated to ``top + 1`` signed bits (``top``: an int or an unsigned signal), as an
    ``n``-bit signal (``n <= len(total)``): ``Mux(v > hi, hi, Mux(v < lo, lo, v))[:n]``
    with ``hi = 2**top - 1`` and ``lo = -2**top``. ``mask``: :func:`saturation_mask` of the
    same ``shift`` and ``top``, formed (and registered) elsewhere. Without a shift the two
    comparisons are the cheaper saturation (carry chains)."""
    width = len(total)
    assert total.shape().signed and n <= width
    # bits 0 .. n-1 of total >> shift: the largest shift first; after the stage of 2**k only
    # the n + 2**k - 1 low bits can still reach the result
    cur = total
    for k in reversed(range(len(shift))):
        step = 1 << k
        need = min(n + step - 1, width)
        shifted = (Cat(cur[step:], cur[-1].replicate(step)) if step < len(cur)
                   else cur[-1].replicate(len(cur)))
        stage = Signal(need, name=f"{name}_s{k}")
        m.d.comb += stage.eq(Mux(shift[k], shifted[:need], cur[:need]))
        cur = stage
    # total >> shift fits top + 1 bits when total's bits from shift + top up equal its sign
    # (any bit from shift + top up that differs from the sign: a flat OR of one compare with
    # a constant a bit, where the significant bits' count and one compare with it are a
    # priority chain as long as total)
    if mask is None:
        mask = Signal(width - 1, name=f"{name}_mask")
        m.d.comb += mask.eq(saturation_mask(shift, top, width))
    assert len(mask) == width - 1
    over = Signal(name=f"{name}_over")
    sign = total[-1]
    m.d.comb += over.eq(((total[:width - 1] ^ sign.replicate(width - 1)) & mask).any())
    hi = _saturated(top, n)
    out = Signal(n, name=name)
    m.d.comb += out.eq(Mux(over, Mux(total[-1], ~hi, hi), cur[:n]))
    return out


def rounding_constant(shift, width):
    """``(rnd, zero)`` of a round-half-up shift of a ``width``-bit value by ``shift``: ``rnd``
    = ``2**(shift-1)`` (0 for shift 0) as ``width`` bits, ``zero``: the result is 0 (``shift
    >= width``). A unit that knows the shift a cycle early registers them (rtl/epilogue.py)."""
    return (Const(1, width + 1) << shift)[1:width + 1], shift >= width


def registered_terms(m, shift, top, width, suffix=""):
    """``(terms, mask)`` for :func:`round_shift_sat` of a ``width``-bit value in the cycle
    after ``shift`` and ``top`` (an int or a signal) are known: the rounding constant, the
    zero bit (``rnd``, ``zero``) and the saturation's 7-bit limit ``shift + top``
    (``sat_limit``) registered from them, the limit compared with each bit's index
    (:func:`limit_mask`, ``sat_mask``) in that next cycle, beside the rounding add."""
    assert len(shift) <= 6
    rnd_value, zero_value = rounding_constant(shift, width)
    rnd, zero = Signal(width, name=f"rnd{suffix}"), Signal(name=f"zero{suffix}")
    limit = Signal(range(128), name=f"sat_limit{suffix}")
    m.d.sync += [rnd.eq(rnd_value), zero.eq(zero_value), limit.eq(shift + top)]
    mask = Signal(width, name=f"sat_mask{suffix}")
    m.d.comb += mask.eq(limit_mask(limit, width + 1))
    return (rnd, zero), mask


def round_shift_sat(m, value, shift, top, n, name, *, terms=None, mask=None):
    """The low ``n`` bits of ``v = (value + 2**(shift-1)) >> shift`` (``value`` for shift 0,
    0 for a shift of ``len(value)`` or more) saturated to ``top + 1`` signed bits, as
    :func:`shift_sat`; the sum is one bit wider than ``value`` and does not wrap.
    ``terms``: :func:`rounding_constant` of ``shift``, ``mask``: :func:`saturation_mask` of
    ``shift`` and ``top`` for the sum's ``len(value) + 1`` bits, formed (and registered)
    elsewhere."""
    width = len(value)
    assert value.shape().signed and n <= width
    rnd_value, zero_value = terms if terms is not None else rounding_constant(shift, width)
    rnd = Signal(width, name=f"{name}_rnd")
    zero = Signal(name=f"{name}_zero")
    m.d.comb += [rnd.eq(rnd_value), zero.eq(zero_value)]
    total = Signal(signed(width + 1), name=f"{name}_sum")
    m.d.comb += total.eq(value + rnd)
    out = Signal(n, name=name)
    m.d.comb += out.eq(Mux(zero, 0, shift_sat(m, total, shift, top, n, f"{name}_sat",
                                              mask=mask)))
    return out
