"""The vector unit: element-serial VOPs (:class:`tinylpu.isa.VopArgs`), one element per cycle.

The exact semantics are those of :meth:`tinylpu.golden.GoldenTile._vop`; the stage names
are :data:`tinylpu.isa.V_STAGES`.
"""

__all__ = ["VectorUnit", "STAGES", "WRITES", "write_layout"]

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.isa import BMode, GFunc, Index, OutFunc, Reduce, Space, VopArgs

from .registers import staged
from .rounding import saturation_mask, saturation_top, shift_sat
from .router import lane_write, operand_read, table_port, weight_read
from .scalar import ScalarOp, ScalarUnit
from .sequencer import issue_port

ACC_BITS = isa.SCALAR_WIDTH      # reduction accumulator (wraps) and scalar-unit operand: 48
G_BITS = 48                      # an element's value G: A * sext16(B) needs 48 bits
PROD_BITS = 64                   # R * mult, and (R * mult + round) wraps at 64 bits (as golden)
TABLE_HALF = isa.TABLE_DEPTH // 2

# Stage registers after the read of element (j, k) in cycle c: si holds in cycle c+i.
STAGES = ("s1: element control; SRAM words on a.data/b.data/w_data (c+1)",
          "s2: A, B, SCALE exponent (c+2)",
          "s3: A*sext16(B) / A+B / A; table words on the table ports (c+3)",
          "s4: t0, t1 - t0, frac (c+4)",
          "s5: G, SILU's (t1 - t0) * frac made in c+4 (c+5)",
          "s6: segment result R in the accumulator (c+6)",
          "s7: R * mult, s (c+7)",
          "s8: the write: a MULSHR result or the scalar unit's, registered (c+8)")
assert len(STAGES) == isa.LAT_V
PIPE = isa.LAT_V - 1             # s1..s7 carry elements and segment results; s8 is the write
WRITES = isa.LAT_V + 1           # writes in flight: one per stage s1..s8, the scalar unit's


def _log2(n):
    return n.bit_length() - 1


def write_layout(cfg):
    """A vector-unit write in flight: its bank, word (modulo the bank depth) and lane."""
    return data.StructLayout({"valid": 1, "bank": 2, "word": 16,
                              "lane": range(max(cfg.lanes, 2))})


def _stage_fields(cfg):
    """(name, shape, first stage, last stage) of what travels down the element pipeline.
    Stage i holds the fields with first <= i <= last (stage 0 is the read cycle)."""
    ll, lr = _log2(cfg.lanes), _log2(cfg.rows)
    ew = 16 + ll
    return [
        ("valid", 1, 1, 7),          # s1..s5: an element; s6, s7: a segment result
        ("first", 1, 1, 5),          # k == 0
        ("last", 1, 1, 5),           # k == N - 1
        ("final", 1, 1, 7),          # last element of the instruction (sets next_token)
        ("g", GFunc, 1, 4),
        ("bmode", BMode, 1, 1),
        ("space", Space, 1, 1),
        ("w_bank", max(lr, 1), 1, 1),
        ("a_lane", max(ll, 1), 1, 1),
        ("imm", signed(16), 1, 1),
        ("red", Reduce, 1, 7),
        ("out", OutFunc, 1, 6),
        ("init", signed(24), 1, 5),
        ("mult", signed(16), 1, 6),
        ("shift", signed(7), 1, 6),
        ("sat", 6, 1, 6),
        ("c_bank", 2, 1, 7),
        ("c_e", ew, 1, 7),           # element address of the result (mod 2**ew)
        # values computed on the way
        ("a", signed(32), 2, 2),
        ("b", signed(32), 2, 2),
        ("exp", 6, 2, 6),            # SCALE exponent B[21:16] (else 0)
        ("val", signed(G_BITS), 3, 4),
        ("frac", 8, 3, 4),
        ("odd", 1, 3, 3),            # table address of t0 is odd
        ("t0", signed(16), 4, 4),
        ("dt", signed(17), 4, 4),    # t1 - t0
        ("gv", signed(G_BITS), 5, 5),
        ("prod", signed(PROD_BITS), 7, 7),
        ("sh", range(64), 7, 7),
        ("rnd", PROD_BITS, 7, 7),    # 2**(sh-1), 0 for sh = 0
        ("top", range(64), 7, 7),    # the clamp to sat bits: sat - 1 (sat 0: 64 bits)
        ("mask", PROD_BITS - 1, 7, 7),   # rtl.rounding.saturation_mask of sh and top
        ("idx", 16, 7, 7),
    ]


def _lane(word, lane, width, ll):
    """Lane ``lane`` (``width`` bits) of ``word``."""
    if ll == 0:
        return word[:width]
    return word.word_select(lane[:ll], width)


class VectorUnit(wiring.Component):
    """Streams a VOP: S segments of N elements, one element read per cycle, no stalls.

    Issue and reads (as :class:`rtl.agu.MatvecAgu`), on the issue port ``op``
    (:func:`rtl.sequencer.issue_port`): in the cycle ``issue`` is high (with
    ``args``, ``pos``, ``tok``, valid in that cycle only) the read of element (0, 0) is
    emitted combinationally, from its address ``base + index * istride`` formed in the cycle
    before from ``early_args``, ``early_pos`` and ``early_tok`` and registered; then one read
    per cycle with ``busy`` high, element (j, k) in cycle t + j*N + k, until the read with
    ``final``. A reads use ``a`` (``en``, ``bank``,
    ``word``, ``lane``: :func:`rtl.router.operand_read`) (Space.ACT) or ``w`` (``en``,
    ``word``; Space.WROW: all R weight banks at one word); B reads
    (BMode.MEM, SCALE) use ``b``. Read data arrives the next cycle: the lane on
    ``a.data``/``b.data`` (the router picks it), the R banks' words on ``w_data`` (the unit
    selects bank and lane).

    Element (j, k) read in cycle c moves through the stage registers (isa.V_STAGES):

    * c: addresses, SRAM reads; the element's control is registered into s1.
    * c+1: bank and lane select of ``w_data``; A, B (and the SCALE exponent)
      registered into s2.
    * c+2: A * sext16(B), A + B, and the table address (EXP: clamp(B - A, 0, 255); SILU:
      256 + ((A + 2**15) & 0xffff) >> 8) presented to the two table halves (even/odd
      entries, so t[a] and t[a+1] are read in one cycle); product/sum registered into s3.
    * c+3: table data; t0 and t1 - t0 registered into s4 (the block RAM's read is followed
      by a subtract only, not the interpolation's multiply).
    * c+4: G = t0 + (((t1 - t0) * frac + 128) >> 8) (SILU), t0 (EXP), or the s3 value;
      registered into s5.
    * c+5: reduction: the 48-bit accumulator (SUM wraps; MAX; ARGMAX keeps the value and the
      first index of the maximum) updated at the end of c+5. For the segment's last
      element the result R is valid in c+6 (stage s6).
    * c+6: R * mult (64-bit) and s = clamp(shift + exponent, 0, 63) registered into s7,
      with c+7's rounding constant 2**(s-1) and saturation width (off c+7's path).
      RSQRT/RECIP: the scalar unit starts here with R (unsigned 48-bit): ISQRT, then RECIP
      of the root started in ISQRT's done cycle (c+6+25), or RECIP directly. NORM:
      ``norm_valid`` and ``norm_total`` (R's low SS_BITS bits) for the tile's norm unit.
    * c+7 (MULSHR, and ARGMAX with MULSHR): round, shift, saturate; the write registered
      (s8), or in the scalar unit's done cycle its result.
    * c+8: ``c.en`` with the registered write (its data straight from a register into the
      activation banks): a MULSHR result lands at the end of c+8 = c + isa.LAT_V, RECIP's
      at the end of c+6+16+1, RSQRT's of c+6+25+16+1: the cycle after the scalar unit's
      done cycle; = c + isa.vop_latency. ARGMAX with RSQRT/RECIP writes the index at that
      same (scalar) latency.

    ``next_valid`` is high in the cycle ``next_token`` takes a new value; ``argmax_pending``
    while an ARGMAX is issuing (from its first read's cycle) or its index is not written
    yet.
    ``next_token`` takes the ARGMAX index at the end of the cycle the write of the
    instruction's last segment lands. ``idle`` is a function of registers only (it does
    not see ``issue`` in the same cycle): low from the cycle after an issue until the
    cycle after the last write (the tile's first idle cycle, as the golden model counts).

    Table host port (use while the tile is idle): ``t.wen/t.waddr/t.wdata`` write one
    entry at the end of the cycle; ``t.rdata`` holds entry ``t.raddr`` of the cycle before
    (the ports read every cycle; in a cycle the unit reads the table, its own read takes
    them).

    Structural limits, which the golden model refuses and the unit reports (the tile's
    sticky status): one scalar operation at a time (``scalar_busy``: a RSQRT/RECIP
    result reaches c+6 while the scalar unit is busy, or in the cycle its ISQRT chains into
    RECIP; that start is ignored), and one write per cycle (``write_clash``: a MULSHR write
    and a scalar write land in the same cycle; the MULSHR write wins). Both are functions of
    registers, high in the cycle it happens.

    ``writes``: the unit's writes in flight, a function of registers: entry i < 8 the result
    of the segment whose element is in stage s(i+1) (s1..s5: the segment's last element;
    s8: the registered write), entry 8 the scalar unit's until its done cycle (a NORM is not
    a memory write).

    ``self_overlap`` (registered, in c+4 for the read in c): a read of an element in the
    result bank after this same VOP's write to it has landed (the golden model refuses it:
    it executes a VOP on memory as of its issue). The VOP's results go to the elements
    ``c0 + j*js`` (mod 2**m, m = log2(adepth * lanes)), segment j's landing before segment
    j+1's, so with L of them landed before the read of element e, that read is one iff
    ``e - c0 = j*js`` for some j < L: with ``js = u * 2**v`` (u odd), iff ``e - c0`` is a
    multiple of 2**v and ``(e - c0) * u**-1 mod 2**m < L * 2**v``. ``u**-1 mod 2**m`` is
    computed by two Newton steps in the cycles after the issue (no own write lands before
    c+8 of the first read); one port is checked, A if it reads the result bank, else B
    (both in one bank is a port conflict anyway).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "op": In(issue_port(VopArgs, tok=True, early=True)),
            "idle": Out(1),
            "a": Out(operand_read(cfg)), "b": Out(operand_read(cfg)),
            "w": Out(weight_read()), "w_data": In(cfg.word_bits).array(cfg.rows),
            "c": Out(lane_write(cfg)),
            "next_token": Out(16), "next_valid": Out(1), "argmax_pending": Out(1),
            "norm_valid": Out(1), "norm_total": Out(isa.SS_BITS), "norm_pending": Out(1),
            "writes": Out(write_layout(cfg)).array(WRITES),
            "write_clash": Out(1), "scalar_busy": Out(1), "self_overlap": Out(1),
            "t": In(table_port()),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        L, R = cfg.lanes, cfg.rows
        ll, lr = _log2(L), _log2(R)
        ew = 16 + ll
        bmask = cfg.act_banks - 1
        fields = _stage_fields(cfg)
        # the stages: only their valid bits reset (every use of a stage is qualified by it)
        st = [None] + [
            staged(data.StructLayout({n: s for n, s, lo, hi in fields if lo <= i <= hi}),
                   f"s{i}")
            for i in range(1, PIPE + 1)]
        for i in range(2, PIPE + 1):
            for n, _, lo, hi in fields:
                if lo < i <= hi and n != "valid":
                    m.d.sync += getattr(st[i], n).eq(getattr(st[i - 1], n))

        # ---- c: issue and address generation ---------------------------------------------
        cfgl = data.StructLayout({
            "space": Space, "bmode": BMode, "w_bank": max(lr, 1), "imm": signed(16),
            "g": GFunc, "red": Reduce, "out": OutFunc, "init": signed(24),
            "mult": signed(16), "shift": signed(7), "sat": 6,
            "a_bank": 2, "b_bank": 2, "c_bank": 2,
            "a_ks": 12, "a_js": 12, "b_ks": 12, "b_js": 12, "c_js": 12,
            "nm1": 16, "sm1": 16,
        })
        a = self.op.args
        # the instruction and its walk's state, kept while busy (reset), and the first
        # addresses: data (reset-less)
        cur, cfg_q = Signal(cfgl), Signal(cfgl, reset_less=True)
        k_q, j_q = Signal(16, reset_less=True), Signal(16, reset_less=True)
        ea_q, sa_q, eb_q, sb_q, ec_q = (Signal(ew, name=n, reset_less=True) for n in
                                        ("ea_q", "sa_q", "eb_q", "sb_q", "ec_q"))
        k, j, ea, sa, eb, sb, ec = (Signal(16, name="k"), Signal(16, name="j"),
                                    *(Signal(ew, name=n) for n in ("ea", "sa", "eb", "sb",
                                                                   "ec")))

        def index(operand, pos, tok):
            return Mux(operand.index == Index.POS, pos,
                       Mux(operand.index == Index.TOK, tok, 0))

        # the first addresses, base + index * istride, formed from the early args (the cycle
        # before the issue) and registered: no multiplier between the issue and the first read
        e = self.op.early_args
        ie = [index(o, self.op.early_pos, self.op.early_tok) for o in (e.a, e.b, e.c)]
        wword0, ea0, eb0, ec0 = (Signal(16, name="wword0", reset_less=True),
                                 *(Signal(ew, name=n, reset_less=True)
                                   for n in ("ea0", "eb0", "ec0")))
        m.d.sync += [
            wword0.eq(e.a.base + (ie[0] >> lr) * e.a.istride),
            ea0.eq(e.a.base + ie[0] * e.a.istride),
            eb0.eq(e.b.base + ie[1] * e.b.istride),
            ec0.eq(e.c.base + ie[2] * e.c.istride),
        ]
        ia = index(a.a, self.op.pos, self.op.tok)
        first_a = Mux(a.a.space == Space.WROW, Cat(Const(0, ll), wword0), ea0)

        with m.If(self.op.issue):
            m.d.comb += [
                cur.space.eq(a.a.space), cur.bmode.eq(a.b.mode), cur.w_bank.eq(ia[:lr]),
                cur.imm.eq(a.b.base[:16]), cur.g.eq(a.g), cur.red.eq(a.red),
                cur.out.eq(a.out), cur.init.eq(a.init), cur.mult.eq(a.mult),
                cur.shift.eq(a.shift), cur.sat.eq(a.sat),
                cur.a_bank.eq(a.a.bank & bmask), cur.b_bank.eq(a.b.bank & bmask),
                cur.c_bank.eq(a.c.bank & bmask),
                cur.a_ks.eq(a.a.ks), cur.a_js.eq(a.a.js), cur.b_ks.eq(a.b.ks),
                cur.b_js.eq(a.b.js), cur.c_js.eq(a.c.js),
                cur.nm1.eq(Mux(a.n_pos, self.op.pos, a.n - 1)),
                cur.sm1.eq(Mux(a.s_pos, self.op.pos, a.s - 1)),
                k.eq(0), j.eq(0), ea.eq(first_a), sa.eq(first_a), eb.eq(eb0), sb.eq(eb0),
                ec.eq(ec0),
            ]
            m.d.sync += cfg_q.eq(cur)
        with m.Else():
            m.d.comb += [cur.eq(cfg_q), k.eq(k_q), j.eq(j_q), ea.eq(ea_q), sa.eq(sa_q),
                         eb.eq(eb_q), sb.eq(sb_q), ec.eq(ec_q)]

        valid = Signal()
        last = Signal()
        breads = (cur.bmode == BMode.MEM) | (cur.bmode == BMode.SCALE)
        wrow = cur.space == Space.WROW
        m.d.comb += [
            valid.eq(self.op.issue | self.op.busy),
            last.eq(k == cur.nm1),
            self.op.final.eq(valid & last & (j == cur.sm1)),
            self.a.en.eq(valid & ~wrow), self.a.bank.eq(cur.a_bank),
            self.a.word.eq(ea[ll:] & (cfg.adepth - 1)),
            self.w.en.eq(valid & wrow),
            self.w.word.eq(ea[ll:] & ((1 << cfg.waddr_bits) - 1)),
            self.b.en.eq(valid & breads), self.b.bank.eq(cur.b_bank),
            self.b.word.eq(eb[ll:] & (cfg.adepth - 1)),
        ]
        if ll:
            m.d.comb += [self.a.lane.eq(ea[:ll]), self.b.lane.eq(eb[:ll])]
        s1 = st[1]
        m.d.sync += [
            s1.valid.eq(valid), s1.first.eq(k == 0), s1.last.eq(last),
            s1.final.eq(self.op.final), s1.g.eq(cur.g), s1.bmode.eq(cur.bmode),
            s1.space.eq(cur.space), s1.w_bank.eq(cur.w_bank),
            s1.a_lane.eq(ea[:max(ll, 1)] if ll else 0),
            s1.imm.eq(cur.imm), s1.red.eq(cur.red), s1.out.eq(cur.out),
            s1.init.eq(cur.init), s1.mult.eq(cur.mult), s1.shift.eq(cur.shift),
            s1.sat.eq(cur.sat), s1.c_bank.eq(cur.c_bank), s1.c_e.eq(ec),
        ]
        with m.If(valid & ~self.op.final):
            m.d.sync += self.op.busy.eq(1)
            with m.If(last):
                m.d.sync += [
                    k_q.eq(0), j_q.eq(j + 1),
                    ea_q.eq(sa + cur.a_js), sa_q.eq(sa + cur.a_js),
                    eb_q.eq(sb + cur.b_js), sb_q.eq(sb + cur.b_js),
                    ec_q.eq(ec + cur.c_js),
                ]
            with m.Else():
                m.d.sync += [
                    k_q.eq(k + 1), j_q.eq(j),
                    ea_q.eq(ea + cur.a_ks), sa_q.eq(sa),
                    eb_q.eq(eb + cur.b_ks), sb_q.eq(sb),
                    ec_q.eq(ec),
                ]
        with m.Else():
            m.d.sync += self.op.busy.eq(0)

        # ---- c+1: operands ----------------------------------------------------------------
        s2 = st[2]
        a_act = self.a.data.as_signed()
        wword = self.w_data[0] if lr == 0 else Array(self.w_data)[s1.w_bank[:lr]]
        a_w = _lane(wword, s1.a_lane, cfg.data_bits, ll).as_signed()
        a_val = Signal(signed(32))
        m.d.comb += a_val.eq(Mux(s1.space == Space.WROW, a_w, a_act))
        b_raw = self.b.data
        m.d.sync += [s2.valid.eq(s1.valid), s2.a.eq(a_val), s2.exp.eq(0)]
        with m.Switch(s1.bmode):
            with m.Case(BMode.IMM):
                m.d.sync += s2.b.eq(s1.imm)
            with m.Case(BMode.SQUARE):
                m.d.sync += s2.b.eq(a_val)
            with m.Case(BMode.SCALE):
                m.d.sync += [s2.b.eq(b_raw[:16]), s2.exp.eq(b_raw[16:22])]
            with m.Default():
                m.d.sync += s2.b.eq(b_raw.as_signed())

        # ---- c+2: product / sum / table address --------------------------------------------
        s3 = st[3]
        m.submodules.t_even = t_even = memory.Memory(shape=16, depth=TABLE_HALF, init=[])
        m.submodules.t_odd = t_odd = memory.Memory(shape=16, depth=TABLE_HALF, init=[])
        rd_e, rd_o = t_even.read_port(), t_odd.read_port()
        wr_e, wr_o = t_even.write_port(), t_odd.write_port()
        m.d.comb += [
            wr_e.addr.eq(self.t.waddr[1:]), wr_e.data.eq(self.t.wdata),
            wr_e.en.eq(self.t.wen & ~self.t.waddr[0]),
            wr_o.addr.eq(self.t.waddr[1:]), wr_o.data.eq(self.t.wdata),
            wr_o.en.eq(self.t.wen & self.t.waddr[0]),
        ]
        b16 = s2.b[:16].as_signed()
        diff = Signal(signed(33))
        clamped = Signal(8)
        u = Signal(16)
        taddr = Signal(10)
        m.d.comb += [
            diff.eq(s2.b - s2.a),
            clamped.eq(Mux(diff < 0, 0, Mux(diff > isa.EXP_SIZE - 1, isa.EXP_SIZE - 1,
                                             diff[:8]))),
            u.eq(s2.a[:16] + (1 << 15)),
            taddr.eq(Mux(s2.g == GFunc.EXP, isa.EXP_TABLE + clamped,
                         isa.SILU_TABLE + u[8:])),
        ]
        taddr_e = (taddr + 1)[1:]          # even entry t[a] or t[a+1]
        taddr_o = taddr[1:]
        # the unit's own reads choose the address (a register of its pipeline, s2.valid);
        # else the host's: the host interface's decode is on no path into the table's ports
        # (the ports read every cycle)
        with m.If(s2.valid):
            m.d.comb += [rd_e.addr.eq(taddr_e), rd_o.addr.eq(taddr_o)]
        with m.Else():
            m.d.comb += [rd_e.addr.eq(self.t.raddr[1:]), rd_o.addr.eq(self.t.raddr[1:])]
        t_sel = Signal()
        m.d.sync += t_sel.eq(self.t.raddr[0])
        m.d.comb += self.t.rdata.eq(Mux(t_sel, rd_o.data, rd_e.data))

        m.d.sync += [s3.valid.eq(s2.valid), s3.frac.eq(u[:8]), s3.odd.eq(taddr[0])]
        with m.Switch(s2.g):
            with m.Case(GFunc.MUL):
                m.d.sync += s3.val.eq(s2.a * b16)
            with m.Case(GFunc.ADD):
                m.d.sync += s3.val.eq(s2.a + s2.b)
            with m.Default():
                m.d.sync += s3.val.eq(s2.a)

        # ---- c+3: table data, interpolation product ----------------------------------------
        s4 = st[4]
        te, to = rd_e.data.as_signed(), rd_o.data.as_signed()
        t0, t1 = Signal(signed(16)), Signal(signed(16))
        m.d.comb += [t0.eq(Mux(s3.odd, to, te)), t1.eq(Mux(s3.odd, te, to))]
        m.d.sync += [s4.valid.eq(s3.valid), s4.t0.eq(t0), s4.dt.eq(t1 - t0)]

        # ---- c+4: G ------------------------------------------------------------------------
        s5 = st[5]
        m.d.sync += s5.valid.eq(s4.valid)
        with m.Switch(s4.g):
            with m.Case(GFunc.SILU):
                m.d.sync += s5.gv.eq(s4.t0 + ((s4.dt * s4.frac + 128) >> 8))
            with m.Case(GFunc.EXP):
                m.d.sync += s5.gv.eq(s4.t0)
            with m.Default():
                m.d.sync += s5.gv.eq(s4.val)

        # ---- c+5: reduction ----------------------------------------------------------------
        s6 = st[6]
        # (data, reset-less: a reduction's first element sets them)
        # acc: SUM's running sum, or MAX's and ARGMAX's maximum; best: ARGMAX's index of the
        # first maximum; kk: the index of the element in s5
        acc = Signal(signed(ACC_BITS), reset_less=True)
        best = Signal(16, reset_less=True)
        kk = Signal(16, reset_less=True)
        kcur = Mux(s5.first, 0, kk + 1)
        take = s5.first | (s5.gv > acc)
        m.d.sync += s6.valid.eq(s5.valid & s5.last)
        with m.If(s5.valid):
            m.d.sync += kk.eq(kcur)
            with m.If(s5.red == Reduce.SUM):
                m.d.sync += acc.eq(Mux(s5.first, s5.init, acc) + s5.gv)
            with m.Elif(take):
                m.d.sync += [acc.eq(s5.gv), best.eq(kcur)]

        # ---- c+6: R * mult; scalar unit start ----------------------------------------------
        s7 = st[7]
        sh_raw = Signal(signed(9))
        m.d.comb += sh_raw.eq(s6.shift + s6.exp)
        scalar_out = (s6.out == OutFunc.RSQRT) | (s6.out == OutFunc.RECIP)
        sqrt_first = s6.out == OutFunc.RSQRT
        sh6 = Signal(range(64))
        m.d.comb += sh6.eq(Mux(sh_raw < 0, 0, Mux(sh_raw > 63, 63, sh_raw[:6])))
        # the rounding constant and the clamp of c+7, here: off c+7's critical path
        m.d.sync += [
            s7.valid.eq(s6.valid & (s6.out == OutFunc.MULSHR)),
            s7.prod.eq(acc * s6.mult),
            s7.sh.eq(sh6),
            s7.rnd.eq((Const(1, PROD_BITS + 1) << sh6)[1:]),
            s7.top.eq(saturation_top(s6.sat)),
            s7.mask.eq(saturation_mask(sh6, saturation_top(s6.sat), PROD_BITS)),
            s7.idx.eq(best),
        ]

        m.submodules.scalar = sc = ScalarUnit(isa.SCALAR_WIDTH)
        sc_phase = Signal(2)          # 0: none, 1: ISQRT running (RECIP follows), 2: RECIP
        # (what its write needs: data, used while sc_phase is not 0)
        sc_bank, sc_e = Signal(2, reset_less=True), Signal(ew, reset_less=True)
        sc_argmax, sc_final = Signal(reset_less=True), Signal(reset_less=True)
        sc_idx = Signal(16, reset_less=True)
        chain = sc.done & (sc_phase == 1)
        sc_write = sc.done & (sc_phase == 2)
        new = s6.valid & scalar_out
        with m.If(chain):
            m.d.comb += [sc.start.eq(1), sc.chain.eq(1)]     # RECIP of the root
            m.d.sync += sc_phase.eq(2)
        with m.Else():
            m.d.comb += [sc.start.eq(new),
                         sc.op.eq(Mux(sqrt_first, ScalarOp.ISQRT, ScalarOp.RECIP)),
                         sc.operand.eq(acc[:ACC_BITS])]
            with m.If(sc_write):
                m.d.sync += sc_phase.eq(0)
            with m.If(new & ~sc.busy):
                m.d.sync += [
                    sc_phase.eq(Mux(sqrt_first, 1, 2)),
                    sc_bank.eq(s6.c_bank), sc_e.eq(s6.c_e),
                    sc_argmax.eq(s6.red == Reduce.ARGMAX), sc_final.eq(s6.final),
                    sc_idx.eq(best),
                ]

        # ---- c+7: round, shift, saturate; the write registered ------------------------------
        # (prod + rnd, wrapping at 64 bits) >> sh, clamped to sat bits: its low 32 bits are
        # the lane (rtl.rounding.shift_sat)
        total = Signal(signed(PROD_BITS))
        m.d.comb += total.eq(s7.prod + s7.rnd)
        y = shift_sat(m, total, s7.sh, s7.top, 32, "y", mask=s7.mask)
        argmax7 = s7.red == Reduce.ARGMAX
        scale = Cat(sc.result[:15], Const(0, 1), sc.exponent)
        s8 = staged(data.StructLayout({"valid": 1, "mulshr": 1, "bank": 2, "e": ew,
                                       "data": 32, "next": 1}), "s8")
        m.d.sync += [s8.valid.eq(s7.valid | sc_write), s8.mulshr.eq(s7.valid)]
        with m.If(s7.valid):
            m.d.sync += [s8.bank.eq(s7.c_bank), s8.e.eq(s7.c_e),
                         s8.data.eq(Mux(argmax7, s7.idx, y[:32])),
                         s8.next.eq(argmax7 & s7.final)]
        with m.Else():
            m.d.sync += [s8.bank.eq(sc_bank), s8.e.eq(sc_e),
                         s8.data.eq(Mux(sc_argmax, sc_idx, scale)),
                         s8.next.eq(sc_write & sc_argmax & sc_final)]

        # ---- c+8: the write lands --------------------------------------------------------
        m.d.comb += [
            self.c.en.eq(s8.valid), self.c.bank.eq(s8.bank),
            self.c.word.eq(s8.e[ll:] & (cfg.adepth - 1)), self.c.data.eq(s8.data),
        ]
        if ll:
            m.d.comb += self.c.lane.eq(s8.e[:ll])
        with m.If(s8.valid & s8.next):
            # (an ARGMAX writes its index: the write's data)
            m.d.sync += self.next_token.eq(s8.data[:16])
            m.d.comb += self.next_valid.eq(1)

        # an ARGMAX whose next token is not written yet (NEXT must not read it)
        m.d.comb += self.argmax_pending.eq(
            Cat(*(st[i].valid & (st[i].red == Reduce.ARGMAX) & st[i].final
                  for i in range(1, PIPE + 1))).any()
            | (s8.valid & s8.next)
            | ((sc_phase != 0) & sc_argmax & sc_final)
            | (self.op.busy & (cfg_q.red == Reduce.ARGMAX))
            # (and in its first read's cycle: a NEXT issued right behind a one-element VOP)
            | (self.op.issue & (self.op.args.red == Reduce.ARGMAX)))
        # NORM: the total R (its low SS_BITS bits) goes to the tile's norm unit in c+6
        m.d.comb += [self.norm_valid.eq(s6.valid & (s6.out == OutFunc.NORM)),
                     self.norm_total.eq(acc[:isa.SS_BITS])]
        # a NORM whose total has not reached the norm unit yet
        m.d.comb += self.norm_pending.eq(
            Cat(*(st[i].valid & (st[i].out == OutFunc.NORM) for i in range(1, 7))).any()
            | (self.op.busy & (cfg_q.out == OutFunc.NORM)))
        m.d.comb += self.idle.eq(~self.op.busy & ~Cat(*(st[i].valid for i in range(1, PIPE + 1))).any()
                                 & ~s8.valid & (sc_phase == 0))

        # ---- schedule checks ---------------------------------------------------------------
        m.d.comb += [self.write_clash.eq(s7.valid & sc_write),
                     self.scalar_busy.eq(new & (sc.busy | chain))]
        for i in range(1, PIPE + 1):
            pend = st[i].valid
            if i <= 5:
                pend &= st[i].last
            if i <= 6:
                pend &= st[i].out != OutFunc.NORM
            self._write(m, self.writes[i - 1], pend, st[i].c_bank, st[i].c_e)
        self._write(m, self.writes[PIPE], s8.valid, s8.bank, s8.e)
        self._write(m, self.writes[PIPE + 1], sc_phase != 0, sc_bank, sc_e)
        self._self_overlap(m, cur, cfg_q, ea, eb, ec0, valid, wrow, breads, s8)
        return m

    def _write(self, m, entry, valid, bank, e):
        ll = _log2(self.cfg.lanes)
        m.d.comb += [entry.valid.eq(valid), entry.bank.eq(bank),
                     entry.word.eq(e[ll:] & (self.cfg.adepth - 1))]
        if ll:
            m.d.comb += entry.lane.eq(e[:ll])

    def _self_overlap(self, m, cur, cfg_q, ea, eb, ec0, valid, wrow, breads, s8):
        """``self_overlap``: see the class docstring."""
        cfg = self.cfg
        mb = _log2(cfg.adepth) + _log2(cfg.lanes)       # element address bits of a bank
        top = 1 << mb
        width = max(mb, 1)
        # the VOP's constants: c0 at the issue; v, u, 1/u in the cycles after
        c0, vmask, vstep = Signal(width), Signal(width), Signal(mb + 1)
        u, x, p, inv = (Signal(width, name=f"ov_{n}") for n in ("u", "x", "p", "inv"))
        step = Signal(range(6))
        with m.If(self.op.issue):
            m.d.sync += [c0.eq(ec0[:width]), step.eq(1)]
        with m.Elif(step != 0):
            m.d.sync += step.eq(Mux(step == 5, 0, step + 1))
        d = Signal(width)
        m.d.comb += d.eq(cfg_q.c_js[:min(12, width)] if mb else 0)
        v = Signal(range(mb + 1))
        m.d.comb += v.eq(mb)
        for b in reversed(range(mb)):               # trailing zeros of d (mb if d = 0)
            with m.If(d[b]):
                m.d.comb += v.eq(b)
        odd = (d >> v)[:width]
        with m.Switch(step):
            with m.Case(1):          # x0 = 3u ^ 2: 1/u mod 32
                m.d.sync += [u.eq(odd), x.eq((odd * 3)[:width] ^ 2),
                             vmask.eq((Const(1, mb + 1) << v) - 1),
                             vstep.eq(Const(1, mb + 1) << v)]
            with m.Case(2, 4):
                m.d.sync += p.eq((u * x)[:width])
            with m.Case(3):          # x (2 - u x): 1/u mod 2**10, then mod 2**20
                m.d.sync += x.eq((x * (2 - p))[:width])
            with m.Case(5):
                m.d.sync += inv.eq((x * (2 - p))[:width])
        assert mb <= 20
        # L * 2**v (saturating at 2**mb) for the L results of this VOP landed so far: its
        # MULSHR writes are the ones from c+8 of its first read (issue t) on
        age = Signal(range(isa.LAT_V + 1))
        landed = Signal(mb + 1)
        with m.If(self.op.issue):
            m.d.sync += [age.eq(1), landed.eq(0)]
        with m.Else():
            with m.If(age != isa.LAT_V):
                m.d.sync += age.eq(age + 1)
            with m.If(s8.valid & s8.mulshr & (age == isa.LAT_V)):
                m.d.sync += landed.eq(Mux(landed + vstep > top, top, landed + vstep))
        # the read (c), e - c0 and the multiple-of-2**v test (c+1), times 1/u (c+2),
        # compared with L * 2**v (c+3), registered
        use_a = ~wrow & (cur.a_bank == cur.c_bank)
        use_b = breads & (cur.b_bank == cur.c_bank) & ~use_a
        chk1, chk2, chk3 = Signal(), Signal(), Signal()
        e1, delta2, prod3 = Signal(width), Signal(width), Signal(width)
        lv1, lv2, lv3 = Signal(mb + 1), Signal(mb + 1), Signal(mb + 1)
        delta = Signal(width)
        m.d.comb += delta.eq(e1 - c0)
        m.d.sync += [
            chk1.eq(valid & (use_a | use_b)), e1.eq(Mux(use_a, ea, eb)[:width]),
            lv1.eq(Mux(self.op.issue, 0, landed)),
            chk2.eq(chk1 & ((delta & vmask) == 0) & (lv1 != 0)), delta2.eq(delta),
            lv2.eq(lv1),
            chk3.eq(chk2), prod3.eq((delta2 * inv)[:width]), lv3.eq(lv2),
            self.self_overlap.eq(chk3 & (prod3 < lv3)),
        ]
