"""Round-half-up arithmetic right shift of a signed value, as narrow as its result.

``round_shift(x, s) = (x + 2**(s-1)) >> s`` (``x`` for ``s == 0``), for a signed ``W``-bit
``x`` and an unsigned variable shift ``s`` (any range). The units wrote it with a 64-bit
rounding constant (``Const(1, 64) << (s - 1)``), which makes Yosys build a 66-bit adder and a
66-bit barrel shifter per value, though the result always fits ``W`` bits:

- for ``s >= W`` the result is 0: ``x + 2**(s-1)`` lies in ``[0, 2**s)`` when
  ``-2**(W-1) <= x < 2**(W-1) <= 2**(s-1)``;
- for ``1 <= s < W`` the sum lies in ``[-2**(W-1), 2**(W-1) + 2**(W-2))`` (``W + 1`` bits)
  and the shifted value in ``[-2**(W-2), 2**(W-2)]``.

So the sum is ``W + 1`` bits wide and the shifter ``W + 1`` bits, and the result is bit for bit
the wide expression's (tests/test_rtl_rounding.py checks it against the wide form).
"""

__all__ = ["round_shift"]

from amaranth.hdl import Const, Mux, Signal, signed


def round_shift(m, value, shift, name):
    """A ``signed(W)`` signal (``W = len(value)``, ``value`` signed) holding
    ``(value + (2**(shift-1) if shift else 0)) >> shift``, combinational."""
    width = len(value)
    assert value.shape().signed
    rnd = Signal(width, name=f"{name}_rnd")
    # 2**(shift-1) for 1 <= shift <= W, else 0 (bit 0 of 1 << shift dropped)
    m.d.comb += rnd.eq((Const(1, width + 1) << shift)[1:width + 1])
    total = Signal(signed(width + 1), name=f"{name}_sum")
    m.d.comb += total.eq(value + rnd)
    out = Signal(signed(width), name=name)
    m.d.comb += out.eq(Mux(shift >= width, 0, total >> shift))
    return out
