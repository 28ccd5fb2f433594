"""The MATVEC epilogue: what happens to a row block's requantized results before the write."""

__all__ = ["Epilogue", "LATENCY"]

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.config import ACT_BITS
from tinylpu.isa import Epi
from tinylpu.numerics import MULT_BITS, ROPE_FRAC

from .requant import Y_BITS_FIELD
from .rounding import rounding_constant, saturation_mask, saturation_top, shift_sat

LATENCY = 5     # from y in cycle n to out in cycle n + 5
SILU_HALF = (isa.SILU_SIZE + 1) // 2     # entries in each of the even/odd table halves


def _saturation_bounds(m, y_bits, width, name):
    """(hi, lo) of the signed ``y_bits``-bit range (``y_bits`` 0 counts as 64) for a
    ``width``-bit signed value, registered (valid the cycle after ``y_bits``): a range of
    ``width + 1`` bits or more saturates nothing, so the bounds are clamped there and are
    ``width + 1`` bits wide."""
    top = saturation_top(y_bits)
    hi_n = Mux(top >= width, (1 << width) - 1, ((Const(1, width + 1) << top) - 1)[:width])
    hi = Signal(signed(width + 1), name=f"{name}_hi", reset_less=True)
    lo = Signal(signed(width + 1), name=f"{name}_lo", reset_less=True)
    m.d.sync += [hi.eq(hi_n), lo.eq(-hi_n - 1)]
    return hi, lo


def _sat(value, bounds):
    hi, lo = bounds
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


def _delayed(m, value, n, name):
    """``value`` through ``n`` registers."""
    for i in range(n):
        reg = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value


class Epilogue(wiring.Component):
    """Applies ``epi`` to the R results of a row block (:class:`tinylpu.isa.Epi`).

    * NONE, ARGMAX: ``out[r] = y[r]``.
    * RESID: ``out[r] = sat_{y_bits}(old[r] + y[r])`` (a 33-bit sum; ``y_bits`` 0 counts as
      64), ``old[r]`` lane r of ``old`` (the destination's lane group, which the router
      picks from the word).
    * ROPE: pair j, ``(a, b) = (y[2j], y[2j+1])``, rotated by ``(c, s)`` = entries 2e, 2e+1
      of ``rope_word`` (:func:`tinylpu.numerics.rope_rotate`, rounded ``epi_shift`` more
      bits: the block's head_shift entry, which the address generator puts there), e = j, or with ``pack`` (a
      packed block, 4 or more rows) the e of :func:`tinylpu.isa.rope_entries` for ``block``:
      pair j's entry or the one R/4 pairs away. With one row, nothing rotates.
    * SILU_GATE: ``out[j] = silu_gate(y[2j], y[2j+1], table, epi_shift)`` for j < R/2
      (:func:`tinylpu.numerics.silu_gate`), from the SiLU table (one copy per pair, each in
      even and odd halves so that an interpolation reads two entries a cycle).
    * ARGMAX also keeps the instruction's running best: the largest ``y`` of a block
      (lowest lane on ties) replaces it on ``head`` (the instruction's first block) or when
      larger; on ``final`` its row ``block * R + lane`` goes to ``next_token``.

    Timing: ``y`` and the controls in cycle n are registered at its end; ``old`` and
    ``rope_word`` (read in n) arrive in n + 1; ``out`` is valid in n + 5
    (:data:`LATENCY`); ``next_valid``/``next_token`` in n + 2 (one cycle, with ``final``).

    Table port (while the tile is idle): ``t_wen``, ``t_waddr``, ``t_wdata`` write entry
    ``t_waddr - SILU_TABLE`` of every copy when it is a SiLU entry.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R = cfg.rows
        super().__init__({
            "y": In(signed(ACT_BITS)).array(R),
            "epi": In(Epi), "y_bits": In(Y_BITS_FIELD), "epi_shift": In(6),
            "head": In(1), "final": In(1), "block": In(16), "pack": In(1),
            "old": In(R * ACT_BITS),
            "rope_word": In(MULT_BITS * R),
            "out": Out(signed(ACT_BITS)).array(R),
            "next_valid": Out(1), "next_token": Out(16),
            "t_wen": In(1), "t_waddr": In(10), "t_wdata": In(16),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R = cfg.rows
        # n -> n+1: the block and its controls
        y = [Signal(signed(ACT_BITS), name=f"y{r}", reset_less=True) for r in range(R)]
        epi1, bits1 = Signal(Epi), Signal(Y_BITS_FIELD, reset_less=True)
        m.d.sync += [epi1.eq(self.epi), bits1.eq(self.y_bits)]
        m.d.sync += [y[r].eq(self.y[r]) for r in range(R)]
        epi = [epi1] + [_delayed(m, epi1, i, f"epi{i + 1}") for i in range(1, LATENCY)]
        bits = [bits1] + [_delayed(m, bits1, i, f"bits{i + 1}") for i in range(1, 4)]
        shift4 = _delayed(m, self.epi_shift, 4, "shift")

        plain = self._plain(m, y, epi1)                         # valid n+2
        pack1, odd1 = Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [pack1.eq(self.pack), odd1.eq(self.block[0])]
        extra2 = _delayed(m, self.epi_shift[:isa.HEAD_SHIFT_BITS], 2, "rope_extra")
        rotated = self._rope(m, y, bits[1], pack1, odd1, extra2)   # valid n+3
        gated = self._silu_gate(m, y, bits[3], shift4)           # valid n+5
        out3 = [Mux((epi[2] == Epi.ROPE) & (r < R // 2 * 2), rotated[r],
                    _delayed(m, plain[r], 1, f"plain{r}"))
                for r in range(R)]
        out5 = [_delayed(m, v, LATENCY - 3, f"out{r}") for r, v in enumerate(out3)]
        for r in range(R):
            gate = gated[r] if r < R // 2 else 0
            m.d.comb += self.out[r].eq(Mux(epi[LATENCY - 1] == Epi.SILU_GATE, gate, out5[r]))
        self._argmax(m, y, epi1)
        return m

    def _plain(self, m, y, epi):
        """NONE, ARGMAX: y; RESID: old + y, saturated (the bounds registered from ``y_bits``
        in n, as ``y``). Registered at the end of n + 1."""
        cfg = self.cfg
        bounds = _saturation_bounds(m, self.y_bits, ACT_BITS + 1, "resid")
        out = []
        for r in range(cfg.rows):
            old = self.old[r * ACT_BITS:(r + 1) * ACT_BITS].as_signed()
            total = Signal(signed(ACT_BITS + 1), name=f"sum{r}")
            m.d.comb += total.eq(old + y[r])
            reg = Signal(signed(ACT_BITS), name=f"plain{r}", reset_less=True)
            m.d.sync += reg.eq(Mux(epi == Epi.RESID, _sat(total, bounds), y[r]))
            out.append(reg)
        return out

    def _rope(self, m, y, bits2, pack, odd, extra):
        """The four products of each pair (registered at the end of n + 1); in n + 2 the
        rounding constant of a shift by ``ROPE_FRAC + extra`` bits added (``extra``: the
        block's head_shift entry, in n + 2; registered); in n + 3 shifted and saturated to
        ``y_bits`` (``bits2``: in n + 2) (combinational: valid in n + 3). A packed block's
        pair j takes the entries of pair ``j ± R/4`` when :func:`tinylpu.isa.rope_entries`
        says so (``pack``, ``odd``: the block's, in n + 1)."""
        R = self.cfg.rows
        q = R // 4
        entry = lambda i: self.rope_word[MULT_BITS * i:MULT_BITS * (i + 1)].as_signed()
        sums = [Signal(signed(2 * ACT_BITS + 2), name=f"rot{r}", reset_less=True) for r in range(R)]
        for j in range(R // 2):
            a, b = y[2 * j], y[2 * j + 1]
            c, s = entry(2 * j), entry(2 * j + 1)
            if isa.lane_local(R):
                # pairs 0 .. q-1 take q .. 2q-1 in an odd packed block; q .. 2q-1 take
                # 0 .. q-1 in an even one
                e = j + q if j < q else j - q
                other = pack & (odd if j < q else ~odd)
                c = Mux(other, entry(2 * e), c)
                s = Mux(other, entry(2 * e + 1), s)
            m.d.sync += [sums[2 * j].eq(a * c - b * s), sums[2 * j + 1].eq(a * s + b * c)]
        shift3 = Signal(range(ROPE_FRAC + (1 << len(extra))), name="rope_shift", reset_less=True)
        top3 = Signal(range(64), name="rope_top", reset_less=True)
        width = len(sums[0]) + 1
        mask3 = Signal(width - 1, name="rope_mask", reset_less=True)
        shift2, top2 = extra + ROPE_FRAC, saturation_top(bits2)
        m.d.sync += [shift3.eq(shift2), top3.eq(top2),
                     mask3.eq(saturation_mask(shift2, top2, width))]
        out = []
        for r in range(R):
            total = Signal(signed(width), name=f"rope_sum{r}", reset_less=True)
            half = Const(1, len(sums[r])) << (extra + (ROPE_FRAC - 1))
            m.d.sync += total.eq(sums[r] + half.as_signed())
            rot = Signal(signed(ACT_BITS), name=f"rope{r}")
            m.d.comb += rot.eq(shift_sat(m, total, shift3, top3, ACT_BITS, f"rope_sat{r}",
                                         mask=mask3))
            out.append(rot)
        return out

    def _silu_gate(self, m, y, bits4, shift4):
        """n+1: the table addresses of ``silu(h1)``, the reads; n+2: the two entries t0, t1
        in order and their difference, registered (the block RAMs' read data meets no
        multiplier); n+3: the interpolation ``t0 + ((t1 - t0) * frac + 128) >> 8``; n+4:
        times the gate h3 plus the rounding constant of the shift (``shift4``: valid in n+4),
        and the saturation bound from ``y_bits`` (``bits4``), registered; n+5: shifted and
        saturated (combinational, into the write: rtl.rounding's round_shift_sat in two
        stages)."""
        out = []
        width = 18 + ACT_BITS                            # silu (18 bits) times a lane
        shift5 = Signal.like(shift4, name="gate_shift", reset_less=True)
        top = Signal(range(64), name="gate_top", reset_less=True)
        rnd_value, zero_value = rounding_constant(shift4, width)
        rnd, zero = Signal(width, name="gate_rnd"), Signal(name="gate_zero", reset_less=True)
        m.d.comb += rnd.eq(rnd_value)
        mask = Signal(width, name="gate_mask", reset_less=True)        # the sum is width + 1 bits
        top4 = saturation_top(bits4)
        m.d.sync += [shift5.eq(shift4), top.eq(top4), zero.eq(zero_value),
                     mask.eq(saturation_mask(shift4, top4, width + 1))]
        for j in range(self.cfg.rows // 2):
            h1, h3 = y[2 * j], y[2 * j + 1]
            even = memory.Memory(shape=signed(16), depth=SILU_HALF, init=[])
            odd = memory.Memory(shape=signed(16), depth=SILU_HALF, init=[])
            m.submodules[f"silu_even{j}"], m.submodules[f"silu_odd{j}"] = even, odd
            k = Signal(range(isa.TABLE_DEPTH), name=f"silu_k{j}")
            m.d.comb += k.eq(self.t_waddr - isa.SILU_TABLE)
            in_table = (self.t_waddr >= isa.SILU_TABLE) & (
                self.t_waddr < isa.SILU_TABLE + isa.SILU_SIZE)
            for half, mem in ((0, even), (1, odd)):
                wr = mem.write_port()
                m.d.comb += [wr.addr.eq(k >> 1), wr.data.eq(self.t_wdata),
                             wr.en.eq(self.t_wen & in_table & (k[0] == half))]
            u = Signal(16, name=f"silu_u{j}")
            m.d.comb += u.eq(h1[:16] + (1 << 15))
            i = u[8:]
            rd_e, rd_o = even.read_port(), odd.read_port()
            m.d.comb += [rd_e.addr.eq((i + 1) >> 1), rd_o.addr.eq(i >> 1)]
            odd_i = _delayed(m, i[0], 1, f"oddi{j}")
            frac = _delayed(m, u[:8], 2, f"frac{j}")
            t0 = Signal(signed(16), name=f"silu_t0_{j}", reset_less=True)
            diff = Signal(signed(17), name=f"silu_d{j}", reset_less=True)
            m.d.sync += [t0.eq(Mux(odd_i, rd_o.data, rd_e.data)),
                         diff.eq(Mux(odd_i, rd_e.data - rd_o.data, rd_o.data - rd_e.data))]
            silu = Signal(signed(18), name=f"silu{j}", reset_less=True)
            m.d.sync += silu.eq(t0 + ((diff * frac + 128) >> 8))
            gate4 = _delayed(m, h3, 3, f"gate{j}")
            total = Signal(signed(width + 1), name=f"gprod{j}", reset_less=True)     # does not wrap
            m.d.sync += total.eq(silu * gate4 + rnd)
            # shifted and saturated; the lane is its low 32 bits (rtl.rounding)
            val = Signal(signed(ACT_BITS), name=f"gate_out{j}")
            m.d.comb += val.eq(Mux(zero, 0, shift_sat(m, total, shift5, top, ACT_BITS,
                                                      f"gshift{j}", mask=mask)))
            out.append(val)
        return out

    def _argmax(self, m, y, epi1):
        """n+1: the block's best (value, lane), registered; n+2: the running best."""
        R = self.cfg.rows
        first1, final1 = _delayed(m, self.head, 1, "am_head"), _delayed(m, self.final, 1,
                                                                         "am_final")
        block1 = _delayed(m, self.block, 1, "am_block")
        # a knockout of pairs (log2 R compares deep, not R - 1): the upper lane of a pair wins
        # only when strictly larger, so the lowest lane wins ties
        entrants = [(y[r], Const(r, range(max(R, 2)))) for r in range(R)]
        level = 0
        while len(entrants) > 1:
            winners = []
            for k in range(0, len(entrants) - 1, 2):
                (lo_v, lo_i), (hi_v, hi_i) = entrants[k], entrants[k + 1]
                v = Signal(signed(ACT_BITS), name=f"am_v{level}_{k // 2}")
                i = Signal(range(max(R, 2)), name=f"am_i{level}_{k // 2}")
                take = hi_v > lo_v
                m.d.comb += [v.eq(Mux(take, hi_v, lo_v)), i.eq(Mux(take, hi_i, lo_i))]
                winners.append((v, i))
            entrants = winners + entrants[len(entrants) - len(entrants) % 2:]
            level += 1
        best_v, best_i = entrants[0]
        bv = Signal(signed(ACT_BITS), name="am_block_v", reset_less=True)
        bi = Signal(16, name="am_block_i", reset_less=True)
        on2, first2, final2 = Signal(), Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [bv.eq(best_v), bi.eq(block1 * R + best_i), on2.eq(epi1 == Epi.ARGMAX),
                     first2.eq(first1), final2.eq(final1)]
        run_v = Signal(signed(ACT_BITS), name="am_run_v", reset_less=True)
        run_i = Signal(16, name="am_run_i", reset_less=True)
        take = first2 | (bv > run_v)
        new_i = Mux(take, bi, run_i)
        with m.If(on2):
            m.d.sync += [run_v.eq(Mux(take, bv, run_v)), run_i.eq(new_i)]
        m.d.comb += [self.next_valid.eq(on2 & final2), self.next_token.eq(new_i)]
