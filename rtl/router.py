"""The stream router: every SRAM port's mux, set by the program, and the schedule checker.

There is no arbitration. While the tile runs, the schedule owns the SRAM ports: the AGU's
read streams (weights of all rows, activations ``x`` from the bank the MATVEC names) and the
requantizer's write stream ``y`` (into the bank and lane group its token names). While the
tile is idle, the host interface owns them. The checker flags, in the same cycle:

- ``conflict``: a port asked for by two users in one cycle (host and schedule);
- ``hazard``: an ``x`` read of a word whose ``y`` write is still in the pipeline (it would
  read the old value; the compiler inserts WAITs so this never happens).
"""

__all__ = ["Router"]

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tinylpu.host import TARGET_ABANK, TARGET_PROG, TARGET_WBANK
from tinylpu.isa import INSTR_BITS

from .agu import token_layout
from .sram import Bank, addr_bits


class Router(wiring.Component):
    """Owns the SRAM banks of the tile and routes their ports.

    Timing: read data (``x_data``, ``w_data``, ``i_data``, ``h_rdata``) is valid the cycle
    after the read request; writes land at the end of the request cycle.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, db = cfg.rows, cfg.data_bits
        self.host_bits = max(cfg.word_bits, INSTR_BITS)
        super().__init__({
            "tile_owns": In(1),
            # schedule side
            "w_en": In(1), "w_addr": In(16),
            "w_data": Out(cfg.word_bits).array(R),        # one port per weight bank
            "x_en": In(1), "x_bank": In(2), "x_addr": In(16), "x_data": Out(cfg.word_bits),
            "y_en": In(1), "y_bank": In(2), "y_word": In(16), "y_group": In(8),
            "y_data": In(db).array(R),
            "inflight": In(data.ArrayLayout(token_layout(cfg), 4)),
            "i_en": In(1), "i_addr": In(16), "i_data": Out(INSTR_BITS),
            # host side
            "h_ren": In(1), "h_wen": In(1), "h_target": In(8), "h_addr": In(16),
            "h_wdata": In(self.host_bits), "h_rdata": Out(self.host_bits),
            "h_valid_target": Out(1),
            # checker
            "conflict": Out(1), "hazard": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, L = cfg.rows, cfg.lanes
        groups = L // R
        wbanks = [Bank(width=cfg.word_bits, depth=cfg.wdepth) for _ in range(R)]
        abanks = [Bank(width=cfg.word_bits, depth=cfg.adepth, granularity=cfg.data_bits)
                  for _ in range(cfg.act_banks)]
        imem = Bank(width=INSTR_BITS, depth=cfg.pdepth)
        for r, bank in enumerate(wbanks):
            m.submodules[f"wbank{r}"] = bank
        for a, bank in enumerate(abanks):
            m.submodules[f"abank{a}"] = bank
        m.submodules.imem = imem

        bank_bits = (cfg.act_banks - 1).bit_length()
        aw = addr_bits(cfg.adepth)
        t = self.h_target
        is_w = [t == TARGET_WBANK + r for r in range(R)]
        is_a = [t == TARGET_ABANK + a for a in range(cfg.act_banks)]
        is_i = t == TARGET_PROG
        m.d.comb += self.h_valid_target.eq(Cat(*is_w, *is_a, is_i).any())

        conflicts = []
        # weight banks: read by the schedule (all rows at once) or the host; written by the host
        for r, bank in enumerate(wbanks):
            h_rd = self.h_ren & is_w[r]
            conflicts.append(self.w_en & h_rd)
            m.d.comb += [
                bank.ren.eq(self.w_en | h_rd),
                bank.raddr.eq(Mux(self.tile_owns, self.w_addr, self.h_addr)),
                bank.waddr.eq(self.h_addr), bank.wdata.eq(self.h_wdata),
                bank.wen.eq(self.h_wen & is_w[r]),
                self.w_data[r].eq(bank.rdata),
            ]
        # activation banks: x reads and y writes of the schedule, or host reads and writes
        x_bank_q = Signal(2)
        m.d.sync += x_bank_q.eq(self.x_bank)
        word = Cat(*([Cat(*self.y_data)] * groups))
        mask = Cat(*[(self.y_group == g).replicate(R) for g in range(groups)])
        for a, bank in enumerate(abanks):
            x_rd = self.x_en & (self.x_bank[:bank_bits] == a)
            y_wr = self.y_en & (self.y_bank[:bank_bits] == a)
            h_rd, h_wr = self.h_ren & is_a[a], self.h_wen & is_a[a]
            conflicts += [x_rd & h_rd, y_wr & h_wr]
            m.d.comb += [
                bank.ren.eq(x_rd | h_rd),
                bank.raddr.eq(Mux(self.tile_owns, self.x_addr, self.h_addr)),
            ]
            with m.If(self.tile_owns):
                m.d.comb += [bank.waddr.eq(self.y_word), bank.wdata.eq(word),
                             bank.wen.eq(mask & y_wr.replicate(L))]
            with m.Else():
                m.d.comb += [bank.waddr.eq(self.h_addr), bank.wdata.eq(self.h_wdata),
                             bank.wen.eq(h_wr.replicate(L))]
        if cfg.act_banks == 1:
            m.d.comb += self.x_data.eq(abanks[0].rdata)
        else:
            m.d.comb += self.x_data.eq(Array([b.rdata for b in abanks])[x_bank_q[:bank_bits]])
        # instruction memory: read by the sequencer, or the host; written by the host
        h_ird = self.h_ren & is_i
        conflicts.append(self.i_en & h_ird)
        m.d.comb += [
            imem.ren.eq(self.i_en | h_ird),
            imem.raddr.eq(Mux(self.tile_owns, self.i_addr, self.h_addr)),
            imem.waddr.eq(self.h_addr), imem.wdata.eq(self.h_wdata),
            imem.wen.eq(self.h_wen & is_i),
            self.i_data.eq(imem.rdata),
        ]
        # host read data: from the target named in the request cycle
        sel = Signal(8)
        with m.If(self.h_ren):
            m.d.sync += sel.eq(t)
        with m.Switch(sel):
            for r, bank in enumerate(wbanks):
                with m.Case(TARGET_WBANK + r):
                    m.d.comb += self.h_rdata.eq(bank.rdata)
            for a, bank in enumerate(abanks):
                with m.Case(TARGET_ABANK + a):
                    m.d.comb += self.h_rdata.eq(bank.rdata)
            with m.Case(TARGET_PROG):
                m.d.comb += self.h_rdata.eq(imem.rdata)

        m.d.comb += self.conflict.eq(Cat(*conflicts).any())
        hits = []
        for tok in self.inflight:
            hits.append(tok.valid & tok.last
                        & (tok.y_bank[:bank_bits] == self.x_bank[:bank_bits])
                        & (tok.y_word[:aw] == self.x_addr[:aw]))
        m.d.comb += self.hazard.eq(self.x_en & Cat(*hits).any())
        return m

