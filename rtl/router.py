"""The stream router: every SRAM port's mux, set by the program, and the schedule checker.

There is no arbitration. While the tile runs, the schedule owns the SRAM ports:

- weight banks (one read port each, all read at one word address; one write port): the
  MATVEC AGU's ``w`` stream, or the vector unit's ``vw`` reads (a WROW operand); the write
  port a MATVEC's weight writes (``yw``: y_wbank's word into one bank, y_wcol's byte into
  each; the port has a write enable a byte);
- activation banks (one read and one write port each, 32-bit lanes): the read port serves
  the MATVEC ``x`` stream (a word), PV's score stream ``s`` (a lane group) and the vector
  unit's ``a`` and ``b`` operand streams (a lane each); the write
  port the requantizer's ``y`` stream (a lane group of R lanes) and the vector unit's ``c``
  results (one lane);
- the instruction memory (read by the sequencer), the token memory (read and written by
  the sequencer's NEXT), the row-multiplier memory and the RoPE table (read by the MATVEC
  pipeline, ``m`` and ``p``);
- the MATVEC epilogue's read of a destination lane group (RESID, ``r``) on the activation
  banks' read ports.

While the tile is idle, the host interface owns them, and the host's table target is routed
to the vector unit's table port (``t``). The checker flags, in the cycle after the requests
(each term is registered):

- ``conflict``: a port asked for by two users in one cycle;
- ``hazard``: a read (``x``, the score stream ``s``, RESID's ``r``) of lanes a write in the
  MXM pipeline (``pending``) still has to land in, or a weight read (``w``, ``vw``) of a word
  a y_wbank write still has to land in, (it reads the old value; the compiler
  inserts WAITs so this never happens). ``r`` comes from the result in stage
  ``LAT_RESID_READ``, whose own write is not counted, nor those of the earlier stages that
  ``r_later`` marks (a later instruction's: the golden model executes RESID's read with its
  MATVEC, before the instructions after it). (Reads of lanes a vector-unit write
  still has to land in, and VOP reads, are checked by :mod:`rtl.checker`.)

Two users of one port in one cycle get the port in a fixed order (read ports: ``x``, ``r``,
``a``, ``b``, host; write ports: ``y``, ``c``, host); the others are lost. The run's status
reports the conflict.
"""

__all__ = ["Router", "write_layout", "host_bits", "host_port", "operand_read", "weight_read",
           "lane_write", "table_port", "token_port", "fetch_port"]

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tinylpu.config import ACT_BITS
from tinylpu.host import (TARGET_ABANK, TARGET_MMEM, TARGET_PROG, TARGET_RMEM, TARGET_TABLE,
                          TARGET_TOKENS, TARGET_WBANK)
from tinylpu.isa import (ILLEGAL_BIT, INSTR_BITS, LAT_RESID_READ, MXM_PENDING, TABLE_DEPTH,
                         illegal_expr)
from tinylpu.numerics import MULT_BITS

from .sram import Bank, SplitBank, addr_bits

TOKEN_BITS = 16       # token-memory entries and table entries


def write_layout(cfg):
    """A write in flight in the MXM pipeline: its bank, word and lanes (``wbank``: bytes of
    a weight bank's word, a y_wbank or y_wcol MATVEC's)."""
    return data.StructLayout({"valid": 1, "bank": 2, "word": 16, "mask": cfg.lanes,
                              "wbank": 1})


def host_bits(cfg):
    """The width of a word the host moves: the widest memory word."""
    return max(cfg.word_bits, cfg.act_word_bits, INSTR_BITS)


# The ports between the router and the units that use its memories, as the unit sees them
# (the router's side is flipped): requests in cycle n, read data in n + 1, writes landing at
# the end of n.
def host_port(cfg):
    """The host interface's access to the memories (while the tile is idle): a read
    (``ren``) or a write (``wen``, ``wdata``: the word's low bits) of word ``addr`` of memory
    ``target`` (:data:`tinylpu.host.TARGET_WBANK` ...); ``valid_target``: ``target`` names one
    of the router's memories (combinational)."""
    bits = host_bits(cfg)
    return wiring.Signature({"ren": Out(1), "wen": Out(1), "target": Out(8), "addr": Out(16),
                             "wdata": Out(bits), "rdata": In(bits), "valid_target": In(1)})


def operand_read(cfg):
    """A vector-unit operand read (``a``, ``b``): lane ``lane`` of a word of an activation
    bank (the router picks the lane: one 32-bit lane, not the whole word, leaves it)."""
    return wiring.Signature({"en": Out(1), "bank": Out(2), "word": Out(16),
                             "lane": Out(range(max(cfg.lanes, 2))), "data": In(ACT_BITS)})


def weight_read():
    """A read of all R weight banks at one word: the MATVEC address generator's (``w``) or
    the vector unit's (WROW operands, ``vw``). The data comes on the router's ``w_data``,
    which the MAC array and the vector unit both take."""
    return wiring.Signature({"en": Out(1), "word": Out(16)})


def lane_write(cfg):
    """A vector-unit result: one 32-bit lane of a word of an activation bank."""
    return wiring.Signature({"en": Out(1), "bank": Out(2), "word": Out(16),
                             "lane": Out(range(cfg.lanes)), "data": Out(ACT_BITS)})


def table_port():
    """The host's access to the vector unit's table (the router drives it while idle)."""
    tbits = addr_bits(TABLE_DEPTH)
    return wiring.Signature({"wen": Out(1), "waddr": Out(tbits), "wdata": Out(TOKEN_BITS),
                             "raddr": Out(tbits), "rdata": In(TOKEN_BITS)})


def fetch_port(cfg):
    """The sequencer's instruction fetch: the word at ``addr`` of the instruction memory."""
    return wiring.Signature({"en": Out(1), "addr": Out(addr_bits(cfg.pdepth)),
                             "data": In(INSTR_BITS)})


def token_port():
    """The sequencer's token memory port: NEXT's read and write."""
    return wiring.Signature({"ren": Out(1), "raddr": Out(16), "rdata": In(TOKEN_BITS),
                             "wen": Out(1), "waddr": Out(16), "wdata": Out(TOKEN_BITS)})


def wphys(cfg, word):
    """The weight-bank word that address ``word`` reaches (``Config.wphys``): its low
    ``waddr_bits`` bits, and in the tail only the tail's word bits and the tail bit."""
    top = addr_bits(cfg.wdepth)
    if not cfg.wtail:
        return word[:top]
    tail_word = Cat(word[:addr_bits(cfg.wtail)], Const(0, top - addr_bits(cfg.wtail)))
    return Cat(Mux(word[top], tail_word, word[:top]), word[top])


def _two_or_more(users):
    """High when at least two of ``users`` (1-bit values) are high."""
    pairs = [a & b for i, a in enumerate(users) for b in users[i + 1:]]
    return Cat(*pairs).any() if pairs else Const(0, 1)


class Router(wiring.Component):
    """Owns the SRAM banks of the tile (all but the vector unit's table) and routes their ports.

    Timing: read data (``w_data``, ``x_data``, ``a.data``, ``b.data``, ``i.data``, ``tm.rdata``,
    ``h.rdata``) is valid the cycle after the read request and holds until the next read of
    that port; writes land at the end of the request cycle.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, L = cfg.rows, cfg.lanes
        super().__init__({
            # MATVEC: AGU reads and requantizer writes
            "w": In(weight_read()),
            "w_data": Out(cfg.word_bits).array(R),        # one port per weight bank
            "x_en": In(1), "x_bank": In(2), "x_addr": In(16), "x_data": Out(cfg.act_word_bits),
            "y_en": In(1), "y_bank": In(2), "y_word": In(16), "y_mask": In(L),
            "y_data": In(cfg.act_word_bits),
            # ... or its bytes into the weight banks (MATVEC y_wbank, y_wcol): the bytes
            # ``yw_lanes`` of word ``yw_word`` of the banks ``yw_en``
            "yw_en": In(R), "yw_word": In(16), "yw_lanes": In(L),
            "yw_data": In(cfg.word_bits).array(R),
            "pending": In(write_layout(cfg)).array(MXM_PENDING),
            # the score stream of PV
            "s_en": In(1), "s_bank": In(2), "s_word": In(16), "s_mask": In(L),
            "s_group": In(range(max(L // R, 2))), "s_data": Out(R * ACT_BITS),
            # MATVEC: row multipliers, RESID's read of the destination lane group
            "m_en": In(1), "m_addr": In(16), "m_data": Out(MULT_BITS * R),
            "p_en": In(1), "p_addr": In(16), "p_data": Out(MULT_BITS * R),
            "r_en": In(1), "r_bank": In(2), "r_word": In(16), "r_mask": In(L),
            "r_group": In(range(max(L // R, 2))), "r_later": In(LAT_RESID_READ - 1),
            "r_data": Out(R * ACT_BITS),
            # vector unit: operand reads, weight reads, result writes, table port
            "a": In(operand_read(cfg)), "b": In(operand_read(cfg)),
            "vw": In(weight_read()), "c": In(lane_write(cfg)), "t": Out(table_port()),
            # sequencer: instruction fetch, token memory
            "i": In(fetch_port(cfg)),
            "tm": In(token_port()),
            # host side
            "h": In(host_port(cfg)),
            # checker
            "conflict": Out(1), "hazard": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, L = cfg.rows, cfg.lanes
        groups = L // R
        # written by the host while idle, or by a y_wbank (a word) or y_wcol (a byte)
        # MATVEC: with ``wbytes`` a write enable a byte (docs/fpga.md "Fit"); a read of a
        # word with a write in flight is flagged (``hazard``), so a read never meets a
        # write to another byte of its block
        # (with ``wtail`` a bank is two memories, rtl.sram.SplitBank)
        wkw = dict(width=cfg.word_bits, depth=cfg.wdepth, flagged_collisions=True,
                   granularity=cfg.data_bits if cfg.wbytes else None)
        wbanks = [SplitBank(tail=cfg.wtail, **wkw) if cfg.wtail else Bank(**wkw)
                  for _ in range(R)]
        # a read of a lane in the cycle its write lands is flagged (``hazard`` and
        # rtl.checker): no collision logic
        abanks = [Bank(width=cfg.act_word_bits, depth=cfg.adepth, granularity=ACT_BITS,
                       flagged_collisions=True)
                  for _ in range(cfg.act_banks)]
        imem = Bank(width=INSTR_BITS, depth=cfg.pdepth, hold_on_write=True)
        tmem = Bank(width=TOKEN_BITS, depth=cfg.tdepth)
        mmem = Bank(width=MULT_BITS * R, depth=cfg.mdepth, hold_on_write=True)
        rmem = Bank(width=MULT_BITS * R, depth=cfg.rdepth, hold_on_write=True)
        for r, bank in enumerate(wbanks):
            m.submodules[f"wbank{r}"] = bank
        for a, bank in enumerate(abanks):
            m.submodules[f"abank{a}"] = bank
        m.submodules.imem = imem
        m.submodules.tmem = tmem
        m.submodules.mmem = mmem
        m.submodules.rmem = rmem

        bank_bits = (cfg.act_banks - 1).bit_length()
        aw = addr_bits(cfg.adepth)
        h = self.h
        t = h.target
        is_w = [t == TARGET_WBANK + r for r in range(R)]
        is_a = [t == TARGET_ABANK + a for a in range(cfg.act_banks)]
        is_i, is_t, is_tm = t == TARGET_PROG, t == TARGET_TABLE, t == TARGET_TOKENS
        is_m, is_r = t == TARGET_MMEM, t == TARGET_RMEM
        m.d.comb += h.valid_target.eq(Cat(*is_w, *is_a, is_i, is_t, is_tm, is_m,
                                               is_r).any())

        conflicts = []
        # weight banks: read by MATVEC or the vector unit (all rows at once) or the host;
        # written by a y_wbank MATVEC (its lane group of one bank) or the host
        for r, bank in enumerate(wbanks):
            h_rd, h_wr = h.ren & is_w[r], h.wen & is_w[r]
            yw_wr = self.yw_en[r]
            conflicts += [_two_or_more([self.w.en, self.vw.en, h_rd]),
                          _two_or_more([yw_wr, h_wr])]
            m.d.comb += [
                bank.ren.eq(self.w.en | self.vw.en | h_rd),
                bank.raddr.eq(Mux(self.w.en, self.w.word,
                                  Mux(self.vw.en, self.vw.word, h.addr))),
                bank.waddr.eq(Mux(yw_wr, self.yw_word, h.addr)),
                bank.wdata.eq(Mux(yw_wr, self.yw_data[r], h.wdata)),
                bank.wen.eq(Mux(yw_wr, self.yw_lanes, h_wr.replicate(L)) if cfg.wbytes
                            else yw_wr | h_wr),
                self.w_data[r].eq(bank.rdata),
            ]
        # activation banks: x, a, b reads and y, c writes of the schedule, or the host's
        y_word, y_mask = self.y_data, self.y_mask
        c_word = Cat(*([self.c.data] * L))
        c_mask = Cat(*[self.c.lane == l for l in range(L)])
        for a, bank in enumerate(abanks):
            here = lambda en, sel: en & (sel[:bank_bits] == a)
            x_rd, r_rd, s_rd = (here(self.x_en, self.x_bank), here(self.r_en, self.r_bank),
                                here(self.s_en, self.s_bank))
            a_rd, b_rd = here(self.a.en, self.a.bank), here(self.b.en, self.b.bank)
            y_wr, c_wr = here(self.y_en, self.y_bank), here(self.c.en, self.c.bank)
            h_rd, h_wr = h.ren & is_a[a], h.wen & is_a[a]
            conflicts += [_two_or_more([x_rd, s_rd, r_rd, a_rd, b_rd, h_rd]),
                          _two_or_more([y_wr, c_wr, h_wr])]
            m.d.comb += [
                bank.ren.eq(x_rd | s_rd | r_rd | a_rd | b_rd | h_rd),
                bank.raddr.eq(Mux(x_rd, self.x_addr, Mux(s_rd, self.s_word, Mux(
                    r_rd, self.r_word, Mux(a_rd, self.a.word, Mux(b_rd, self.b.word,
                                                                   h.addr)))))),
            ]
            with m.If(y_wr):
                m.d.comb += [bank.waddr.eq(self.y_word), bank.wdata.eq(y_word),
                             bank.wen.eq(y_mask)]
            with m.Elif(c_wr):
                m.d.comb += [bank.waddr.eq(self.c.word), bank.wdata.eq(c_word),
                             bank.wen.eq(c_mask)]
            with m.Else():
                m.d.comb += [bank.waddr.eq(h.addr), bank.wdata.eq(h.wdata),
                             bank.wen.eq(h_wr.replicate(L))]
        # read data: from the bank (and for s, r, a, b the part of its word) named in the
        # request cycle. Each user gets only the bits it takes (x: the word; s, r: a lane
        # group; a, b: a lane), chosen from the banks' read words in one step, so no other
        # word-wide choice sits between the banks and the units.
        words = Cat(*[b.rdata for b in abanks])
        for en, sel, part, width, out in (
                (self.x_en, self.x_bank, None, cfg.act_word_bits, self.x_data),
                (self.s_en, self.s_bank, self.s_group, R * ACT_BITS, self.s_data),
                (self.r_en, self.r_bank, self.r_group, R * ACT_BITS, self.r_data),
                (self.a.en, self.a.bank, self.a.lane, ACT_BITS, self.a.data),
                (self.b.en, self.b.bank, self.b.lane, ACT_BITS, self.b.data)):
            parts = cfg.act_word_bits // width
            index = Cat(*([part[:(parts - 1).bit_length()]] if parts > 1 else []),
                        sel[:bank_bits])
            if len(index) == 0:
                m.d.comb += out.eq(words)
                continue
            index_q = Signal(len(index), name=f"{out.name}_sel")
            with m.If(en):
                m.d.sync += index_q.eq(index)
            m.d.comb += out.eq(words.word_select(index_q, width))
        # instruction memory: read by the sequencer, or the host; written by the host
        h_ird = h.ren & is_i
        conflicts.append(self.i.en & h_ird)
        m.d.comb += [
            imem.ren.eq(self.i.en | h_ird),
            imem.raddr.eq(Mux(self.i.en, self.i.addr, h.addr)),
            # the word with its legality in its last bit (isa.stored_word): the sequencer reads
            # the check with the word
            imem.waddr.eq(h.addr),
            imem.wdata.eq(Cat(h.wdata[:ILLEGAL_BIT],
                              illegal_expr(h.wdata[:INSTR_BITS], cfg.attention, cfg.wbytes,
                                           cfg.pv))),
            imem.wen.eq(h.wen & is_i),
            self.i.data.eq(imem.rdata),
        ]
        # token memory: read and written by the sequencer (NEXT) or the host
        h_trd, h_twr = h.ren & is_tm, h.wen & is_tm
        conflicts += [self.tm.ren & h_trd, self.tm.wen & h_twr]
        m.d.comb += [
            tmem.ren.eq(self.tm.ren | h_trd),
            tmem.raddr.eq(Mux(self.tm.ren, self.tm.raddr, h.addr)),
            tmem.wen.eq(self.tm.wen | h_twr),
            tmem.waddr.eq(Mux(self.tm.wen, self.tm.waddr, h.addr)),
            tmem.wdata.eq(Mux(self.tm.wen, self.tm.wdata, h.wdata[:TOKEN_BITS])),
            self.tm.rdata.eq(tmem.rdata),
        ]
        # row-multiplier memory and RoPE table: read by the MATVEC pipeline or the host;
        # written by the host
        for mem, en, addr, rdata, is_mem in ((mmem, self.m_en, self.m_addr, self.m_data, is_m),
                                             (rmem, self.p_en, self.p_addr, self.p_data, is_r)):
            h_rd = h.ren & is_mem
            conflicts.append(en & h_rd)
            m.d.comb += [
                mem.ren.eq(en | h_rd), mem.raddr.eq(Mux(en, addr, h.addr)),
                mem.waddr.eq(h.addr), mem.wdata.eq(h.wdata),
                mem.wen.eq(h.wen & is_mem),
                rdata.eq(mem.rdata),
            ]
        # the vector unit's table: the host's port
        m.d.comb += [
            self.t.wen.eq(h.wen & is_t), self.t.waddr.eq(h.addr),
            self.t.wdata.eq(h.wdata[:TOKEN_BITS]),
            self.t.raddr.eq(h.addr),
        ]
        # host read data: from the target named in the request cycle
        sel = Signal(8)
        with m.If(h.ren):
            m.d.sync += sel.eq(t)
        with m.Switch(sel):
            for r, bank in enumerate(wbanks):
                with m.Case(TARGET_WBANK + r):
                    m.d.comb += h.rdata.eq(bank.rdata)
            for a, bank in enumerate(abanks):
                with m.Case(TARGET_ABANK + a):
                    m.d.comb += h.rdata.eq(bank.rdata)
            with m.Case(TARGET_PROG):
                m.d.comb += h.rdata.eq(imem.rdata)
            with m.Case(TARGET_TABLE):
                m.d.comb += h.rdata.eq(self.t.rdata)
            with m.Case(TARGET_TOKENS):
                m.d.comb += h.rdata.eq(tmem.rdata)
            with m.Case(TARGET_MMEM):
                m.d.comb += h.rdata.eq(mmem.rdata)
            with m.Case(TARGET_RMEM):
                m.d.comb += h.rdata.eq(rmem.rdata)

        def hits(en, bank, word, mask, skip=None, later=None):
            out = []
            for i, w in enumerate(self.pending):
                if i + 1 == skip:
                    continue
                same_bank = w.bank[:bank_bits] == bank[:bank_bits] if bank_bits else 1
                hit = (w.valid & ~w.wbank & same_bank & (w.word[:aw] == word[:aw])
                       & (w.mask & mask).any())
                if later is not None and i < len(later):
                    hit &= ~later[i]
                out.append(en & hit)
            return out

        def weight_hits(port):
            """A weight read (all banks, all lanes) of a word with a y_wbank or y_wcol write
            in flight."""
            word = wphys(cfg, port.word)
            return [port.en & w.valid & w.wbank & (wphys(cfg, w.word) == word)
                    for w in self.pending]

        # reported the cycle after the requests (a register per term): the OR over the
        # terms is not on one path with the requests' address arithmetic and the compares
        checks = {
            "conflict": conflicts,
            "hazard": (weight_hits(self.w) + weight_hits(self.vw)
                       + hits(self.x_en, self.x_bank, self.x_addr, Const(-1, L))
                       + hits(self.s_en, self.s_bank, self.s_word, self.s_mask)
                       + hits(self.r_en, self.r_bank, self.r_word, self.r_mask,
                              skip=LAT_RESID_READ, later=self.r_later)),
        }
        for name, terms in checks.items():
            late = Signal(len(terms), name=f"{name}_terms")
            m.d.sync += late.eq(Cat(*terms))
            m.d.comb += getattr(self, name).eq(late.any())
        return m
