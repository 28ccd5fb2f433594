"""MATVEC address generator: the blocks x chunks hardware loop that streams SRAM reads."""

__all__ = ["token_layout", "MatvecAgu", "MATVEC_FIELDS", "ATTENTION_FIELDS"]

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.isa import Epi, Index, MatvecArgs
from tinylpu.numerics import MULT_BITS, SHIFT_MAX

from .mac import MacMode
from .registers import staged
from .router import weight_read
from .sequencer import issue_port


def token_layout(cfg, fields=None):
    """What travels down the pipeline with every read of a MATVEC, QK or PV (and with every
    block result through the output unit); ``fields``: only these (an address generator's
    own)."""
    layout = {
        "valid": 1,
        "kind": MacMode,
        "first": 1,                                 # first chunk of a row block / position
        "last": 1,                                  # a result follows (MATVEC: last chunk)
        "y_bank": 2,
        "y_word": 16,
        "y_group": range(max(2 * cfg.lanes // cfg.rows, 2)),   # lanes y_group*R .. +R-1,
        "y_half": 1,                                # ... or R/2 lanes y_group*R/2 ..
        "y_pack": 1,                                # R/2 lanes of int16 pairs (K, V rows)
        "y_wbank": 1,                               # bytes into weight bank block*R // L
        "y_wcol": 1,                                # ... or a byte into each (lane y_lane)
        "y_lane": range(max(cfg.lanes, 2)),
        "s_tr": 1,                                  # QK: transposed scores (lane y_lane of
        "g_last": 1,                                # ... word y_word); a group's last position
        "x_exp": 1,                                 # a PV pass: x through the exp units ...
        "x_head": 4,                                # ... from this head slot's maximum,
        "x_left": signed(20),                       # ... lanes l > x_left weigh 0
        "kv_shift": 2,                              # QK, PV: heads a K/V head serves
        "d_blocks": 8,                              # PV: output blocks
        "mult": signed(MULT_BITS),
        "shift": range(SHIFT_MAX + 1),
        "y_bits": 6,                                # saturation width of the results
        "m_rows": 1,                                # per-row multipliers ...
        "m_addr": 16,                               # ... from this row-multiplier word
        "epi": Epi,
        "rope_addr": 16,                            # ROPE: the block's RoPE-table word
        "epi_shift": 6,                             # SILU_GATE's shift
        "norm": 1,                                  # scaled by the norm register
        "ss": 1,                                    # squares of the written values ...
        "ss_init": 24,                              # ... summed from this
        "head": 1,                                  # the instruction's first row block
        "final": 1,                                 # its last read
        "block": 16,                                # the row block
    }
    return data.StructLayout({k: v for k, v in layout.items() if fields is None or k in fields})


def _data(width):
    """A data register (reset-less), named for the variable it is assigned to."""
    return Signal(width, reset_less=True, src_loc_at=1)


# The fields each address generator drives (the tile merges them into one token).
MATVEC_FIELDS = ("valid", "first", "last", "y_bank", "y_word", "y_group", "y_half", "y_pack",
                 "y_wbank", "y_wcol", "y_lane", "x_exp", "x_head", "x_left",
                 "mult", "shift", "y_bits", "m_rows", "m_addr", "epi", "rope_addr",
                 "epi_shift", "head", "final", "block", "norm", "ss", "ss_init")
ATTENTION_FIELDS = ("valid", "kind", "first", "last", "y_bank", "y_word", "y_group",
                    "y_lane", "s_tr", "g_last", "kv_shift", "d_blocks", "shift", "y_bits")


class MatvecAgu(wiring.Component):
    """Walks a MATVEC: one read per cycle, chunk by chunk within row blocks.

    Its issue port is ``op`` (:func:`rtl.sequencer.issue_port`). In the cycle ``issue`` is
    high (with ``args`` and ``pos``) it emits read 0 combinationally; it then emits one read
    per cycle, ``busy`` high, until the read with ``final``. Read j (block b = j // n_chunks,
    chunk k = j % n_chunks) reads weight word ``w.word = w_base + j`` (``w``:
    :func:`rtl.router.weight_read`), drives ``x_addr = x_addr + k`` on bank ``x_bank``, and
    ``token`` (first = k == 0, last = k == n_chunks - 1, the y word ``y_addr + (pos << y_shift) +
    (b*R) // L`` (POS index; with ``y_wbank`` without the last term, the weight bank's index)
    and lane group of block b, its row-multiplier word
    ``m_base + b`` (with ``y_wcol`` the y word is
    :func:`tinylpu.isa.wcol_slot`'s, ``y_addr + ((idx >> log2 L) << y_shift) + b``, and
    ``y_lane`` its lane ``idx % L``; a PV pass's blocks start at lane group ``y_grp``),
    its RoPE-table word ``rope_base + (pos << rope_shift) + b %
    2**rope_shift``, and the requantization ``mult``, ``shift``, ``y_bits``, ``epi``).
    A PV pass (``x_exp``) reads its weight word a cycle after its token's x read
    (:data:`tinylpu.isa.PASS_W_LAT`): its last in the cycle after its last token, the
    slot's tail.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "op": In(issue_port(MatvecArgs)),
            "w": Out(weight_read()),
            "x_bank": Out(2),
            "x_addr": Out(16),
            "token": Out(token_layout(cfg, MATVEC_FIELDS)),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        groups = cfg.lanes // cfg.rows
        tok = self.token
        # registered state of the read pending for the next cycle
        # (the walk's state is data, used while busy, which is reset: reset-less)
        w_addr, x_base, chunk = _data(16), _data(16), _data(12)
        word = Signal(16, name="w_word")            # the token's weight word
        nc_m1, blocks_left = _data(12), _data(16)
        # a PV pass (x_exp): its weight base and stride, the position and x_shift, and the
        # cycle after its last read (its issue slot's last: no read)
        w_base, w_shift, x_shift, pos, x_all, tail = (_data(16), _data(4), _data(3),
                                                       _data(16), _data(1), Signal())
        every = (1 << 17) - 1                       # x_left of a pass without x_pos
        st = staged(token_layout(cfg, MATVEC_FIELDS), "st")
        x_bank = _data(2)
        rope0, rope_mask, block = _data(16), _data(8), _data(16)
        head_shift, cur_head_shift = _data(64), Signal(64)
        cur_rope0, cur_mask, cur_block = Signal(16), Signal(8), Signal(16)

        cur_chunk, cur_nc_m1, cur_blocks = Signal(12), Signal(12), Signal(16)
        a = self.op.args
        idx = Mux(a.y_index == Index.POS, self.op.pos, 0)
        # y_wcol: the word of idx's group of L positions, and its lane (isa.wcol_slot)
        lb = cfg.lanes.bit_length() - 1
        y_pos = Mux(a.y_wcol, (idx >> lb) << a.y_shift, idx << a.y_shift)
        # RESID and SILU_GATE ignore y_pack (isa.MatvecArgs)
        packed = a.y_pack & (a.epi != Epi.RESID) & (a.epi != Epi.SILU_GATE)
        with m.If(self.op.issue):
            m.d.comb += [
                cur_chunk.eq(0), cur_blocks.eq(a.n_blocks),
                cur_nc_m1.eq(Mux(a.x_exp & a.x_pos, self.op.pos >> a.x_shift, a.n_chunks - 1)),
                word.eq(a.w_base), self.x_bank.eq(a.x_bank), self.x_addr.eq(a.x_addr),
                tok.y_bank.eq(a.y_bank), tok.y_word.eq(a.y_addr + y_pos),
                # a PV pass's first lane group (isa.MatvecArgs y_grp, modulo L/R)
                tok.y_group.eq(a.y_grp[:(groups - 1).bit_length()] if groups > 1 else 0),
                tok.mult.eq(a.q_mult), tok.shift.eq(a.q_shift), tok.y_bits.eq(a.y_bits),
                tok.m_rows.eq(a.m_rows), tok.m_addr.eq(a.m_base), tok.epi.eq(a.epi),
                tok.y_pack.eq(packed), tok.y_half.eq(packed | (a.epi == Epi.SILU_GATE)),
                tok.norm.eq(a.norm), tok.ss.eq(a.ss),
                tok.ss_init.eq(a.ss_init), tok.y_wbank.eq(a.y_wbank),
                tok.y_wcol.eq(a.y_wcol), tok.y_lane.eq(idx[:lb] if lb else 0),
                tok.x_exp.eq(a.x_exp), tok.x_head.eq(a.x_head),
                tok.x_left.eq(Mux(a.x_pos, self.op.pos, every)),
                cur_rope0.eq(a.rope_base + (self.op.pos << a.rope_shift)),
                cur_mask.eq((1 << a.rope_shift) - 1), cur_block.eq(0),
                cur_head_shift.eq(a.head_shift),
            ]
        with m.Else():
            m.d.comb += [
                cur_chunk.eq(chunk), cur_nc_m1.eq(nc_m1), cur_blocks.eq(blocks_left),
                word.eq(Mux(st.x_exp, w_base + cur_block + (cur_chunk << w_shift), w_addr)),
                self.x_bank.eq(x_bank), self.x_addr.eq(x_base + chunk),
                tok.y_bank.eq(st.y_bank), tok.y_word.eq(st.y_word), tok.y_group.eq(st.y_group),
                tok.mult.eq(st.mult), tok.shift.eq(st.shift), tok.y_bits.eq(st.y_bits),
                tok.m_rows.eq(st.m_rows), tok.m_addr.eq(st.m_addr), tok.epi.eq(st.epi),
                tok.y_pack.eq(st.y_pack), tok.y_half.eq(st.y_half),
                tok.norm.eq(st.norm), tok.ss.eq(st.ss),
                tok.ss_init.eq(st.ss_init), tok.y_wbank.eq(st.y_wbank),
                tok.y_wcol.eq(st.y_wcol), tok.y_lane.eq(st.y_lane),
                tok.x_exp.eq(st.x_exp), tok.x_head.eq(st.x_head),
                tok.x_left.eq(Mux(x_all, every, pos - (cur_chunk << x_shift))),
                cur_rope0.eq(rope0), cur_mask.eq(rope_mask), cur_block.eq(block),
                cur_head_shift.eq(head_shift),
            ]
        # a packed block's pairs come from the word of block // 2 (isa.rope_block)
        y_pack = Mux(self.op.issue, packed, st.y_pack)
        rope_block = Mux(y_pack, isa.rope_block(cfg.rows, True, cur_block), cur_block)
        # ROPE: the block's head_shift entry (its head slot's, isa.block_head_slot) rounds
        # its pairs further, carried as epi_shift
        slot = ((cur_block << (2 * cfg.rows).bit_length() - 1) >> cfg.lanes.bit_length() - 1)
        entries = Array(cur_head_shift.word_select(i, isa.HEAD_SHIFT_BITS)
                        for i in range(isa.HEAD_SLOTS))
        # (each field from the sources, not from the token's other fields: a path from one
        # field to another is a combinational loop through the token to Verilator, which
        # then evaluates it until it settles, every cycle)
        epi = Mux(self.op.issue, a.epi, st.epi)
        m.d.comb += tok.epi_shift.eq(Mux(epi == Epi.ROPE,
                                         entries[slot[:(isa.HEAD_SLOTS - 1).bit_length()]],
                                         Mux(self.op.issue, a.epi_shift, st.epi_shift)))
        last_read, valid, last = Signal(), Signal(), Signal()
        x_exp = Mux(self.op.issue, a.x_exp, st.x_exp)
        m.d.comb += [
            tok.rope_addr.eq(cur_rope0 + (rope_block & cur_mask)),
            tok.head.eq(cur_block == 0), tok.final.eq(last_read), tok.block.eq(cur_block),
            valid.eq((self.op.issue | self.op.busy) & ~tail), tok.valid.eq(valid),
            tok.first.eq(cur_chunk == 0),
            last.eq(cur_chunk == cur_nc_m1), tok.last.eq(last),
            last_read.eq(valid & last & (cur_blocks == 1)),
            # a PV pass's slot ends the cycle after its last read (isa.duration)
            self.op.final.eq(tail | (last_read & ~x_exp)),
        ]
        m.d.sync += tail.eq(last_read & x_exp)
        # the weight read: a PV pass's a cycle after its token's (its weights meet the exp
        # outputs formed from the x read in the MAC array, c+2; the last in the slot's tail)
        late_en, late_word = Signal(), _data(16)
        m.d.sync += [late_en.eq(tok.valid & x_exp), late_word.eq(word)]
        m.d.comb += [self.w.en.eq((tok.valid & ~x_exp) | late_en),
                     self.w.word.eq(Mux(late_en, late_word, word))]
        with m.If(self.op.issue):
            m.d.sync += [w_base.eq(a.w_base), w_shift.eq(a.w_shift), x_shift.eq(a.x_shift),
                         pos.eq(self.op.pos), x_all.eq(~a.x_pos)]
        with m.If(tok.valid & ~self.op.final):
            m.d.sync += [
                self.op.busy.eq(1), w_addr.eq(word + 1), nc_m1.eq(cur_nc_m1),
                x_bank.eq(self.x_bank), st.mult.eq(tok.mult), st.shift.eq(tok.shift),
                st.y_bits.eq(tok.y_bits), st.y_bank.eq(tok.y_bank),
                st.m_rows.eq(tok.m_rows), st.epi.eq(tok.epi), st.y_pack.eq(tok.y_pack),
                st.y_half.eq(tok.y_half), st.epi_shift.eq(tok.epi_shift),
                st.norm.eq(tok.norm), st.ss.eq(tok.ss), st.ss_init.eq(tok.ss_init),
                st.y_wbank.eq(tok.y_wbank), st.y_wcol.eq(tok.y_wcol), st.y_lane.eq(tok.y_lane),
                st.x_exp.eq(tok.x_exp), st.x_head.eq(tok.x_head),
                rope0.eq(cur_rope0), rope_mask.eq(cur_mask),
                head_shift.eq(cur_head_shift),
            ]
            with m.If(self.op.issue):
                m.d.sync += x_base.eq(a.x_addr)
            with m.If(tok.last):
                last_group = tok.y_group == Mux(tok.y_half, 2 * groups - 1, groups - 1)
                m.d.sync += [
                    chunk.eq(0), blocks_left.eq(cur_blocks - 1),
                    st.y_group.eq(Mux(last_group, 0, tok.y_group + 1)),
                    # y_wbank: the next bank, the same word (isa.wbank_slot); y_wcol:
                    # the next word (isa.wcol_slot)
                    st.y_word.eq(tok.y_word + Mux(tok.y_wcol, 1, last_group & ~tok.y_wbank)),
                    st.m_addr.eq(tok.m_addr + 1), block.eq(cur_block + 1),
                ]
            with m.Else():
                m.d.sync += [chunk.eq(cur_chunk + 1), blocks_left.eq(cur_blocks),
                             st.y_group.eq(tok.y_group), st.y_word.eq(tok.y_word),
                             st.m_addr.eq(tok.m_addr), block.eq(cur_block)]
        with m.Else():
            m.d.sync += self.op.busy.eq(0)
        return m
