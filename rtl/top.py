"""The TinyLPU tile: sequencer, AGU, router with its SRAM banks, MAC array, requantizer,
vector unit, busy counters and host interface, and the pipeline that joins them."""

__all__ = ["Tile", "generate_verilog", "PIPELINE"]

import pathlib

from amaranth.back import verilog
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.data import ArrayLayout, StructLayout
from amaranth.lib.wiring import In, Out

from tinylpu import isa
from tinylpu.config import ACT_BITS
from tinylpu.numerics import RECIP_FRAC

from .agu import ATTENTION_FIELDS, MATVEC_FIELDS, MatvecAgu, token_layout
from .attention import (AttentionAgu, Drain, ScoreTransposer, ScoreUnit, WeightUnit,
                        exp2_neg_unit)
from .checker import ReadChecker
from .counters import Counters
from .epilogue import LATENCY as EPI_LATENCY, Epilogue
from .host import HostInterface, ScheduleFlags
from .mac import MacArray, MacMode, tree_sum
from .norm import NormUnit
from .recip import RecipPipeline
from .registers import by_field, staged
from .requant import Requantizer
from .router import Router
from .sequencer import Sequencer
from .vu import VectorUnit

# Stage registers after a read in cycle c (see tinylpu.isa.MXM_STAGES): the front (the MAC
# array) holds every read's token, the result chain one block result a cycle.
PIPELINE = ("s1: SRAM data into the MAC array; row-multiplier read (c+1)",
            "s2: sums, accumulators; multipliers (times the norm mantissa) registered (c+2)",
            "r3: a block result into the requantizer or the score unit (c+3)",
            "r4: requantized; RESID reads the destination, ROPE its table word (c+4)",
            "r5 .. r8: the epilogue (c+5 .. c+8)",
            "r9: epilogue out; the write (lanes, data, address) registered (c+9)",
            "r10: the write lands, from those registers (c+10)")
RESULT_STAGES = isa.LAT_WRITE - 2        # r3 .. r10
assert isa.LAT_WRITE == isa.LAT_RESID_READ + EPI_LATENCY + 1
assert isa.LAT_RESULT == 3


class Tile(wiring.Component):
    """One TinyLPU tile.

    Ports: ``host_in`` / ``host_out``, 32-bit streams carrying the protocol of
    :mod:`tinylpu.host`; ``running`` (high from the cycle after a RUN's or GENERATE's start
    until done), for waveform viewers and testbenches.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "host_in": In(stream.Signature(32)),
            "host_out": Out(stream.Signature(32)),
            "running": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        m.submodules.host = hif = HostInterface(cfg)
        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.agu = agu = MatvecAgu(cfg)
        m.submodules.router = rt = Router(cfg)
        m.submodules.mac = mac = MacArray(cfg)
        m.submodules.requant = rq = Requantizer(cfg)
        m.submodules.vu = vu = VectorUnit(cfg)
        m.submodules.epi = epi = Epilogue(cfg)
        m.submodules.aagu = aagu = AttentionAgu(cfg)
        m.submodules.score = score = ScoreUnit(cfg)
        m.submodules.transposer = tr = ScoreTransposer(cfg)
        m.submodules.weight = weight = WeightUnit(cfg)
        m.submodules.drain = drain = Drain(cfg)
        m.submodules.checker = checker = ReadChecker(cfg)
        m.submodules.counters = counters = Counters()
        wiring.connect(m, wiring.flipped(self.host_in), hif.i)
        wiring.connect(m, hif.o, wiring.flipped(self.host_out))
        # The control and memory ports are typed (wiring.Signature) and joined with
        # wiring.connect. The .eq lines below select between units (the two address
        # generators), take fields of the pipeline's tokens, compute, fan a unit's outputs out
        # to several units (read data, the table's writes, the read checker's taps), or carry
        # the datapath's value arrays (MAC array, score, weight and drain units, requantizer,
        # epilogue).

        # host interface <-> router (the SRAMs), busy counters and sequencer
        wiring.connect(m, hif.mem, rt.h)
        wiring.connect(m, hif.counters, counters.host)
        wiring.connect(m, hif.run, seq.run)
        m.d.comb += self.running.eq(seq.running)
        # sequencer <-> instruction and token memories, the units it issues to
        wiring.connect(m, seq.imem, rt.i)
        wiring.connect(m, seq.tm, rt.tm)
        wiring.connect(m, seq.matvec, agu.op)
        wiring.connect(m, seq.attention, aagu.op)
        wiring.connect(m, aagu.tr, tr.tr)
        wiring.connect(m, seq.vop, vu.op)
        # vector unit <-> router
        for vu_port, rt_port in ((vu.a, rt.a), (vu.b, rt.b), (vu.w, rt.vw), (vu.c, rt.c)):
            wiring.connect(m, vu_port, rt_port)
        wiring.connect(m, rt.t, vu.t)
        # the weight banks' read data: the vector unit's WROW operands, the MAC array (c+1)
        m.d.comb += [vu.w_data[r].eq(rt.w_data[r]) for r in range(cfg.rows)]
        # cycle c: the reads of the MATVEC or attention address generator (one is active):
        # MATVEC's weights; the x stream of either (selected by hand); PV's score words, with
        # the lanes of the score group
        # the weight banks: MATVEC's weights, or QK's q (the AGUs are never active together)
        m.d.comb += [rt.w.en.eq(agu.w.en | aagu.w.en),
                     rt.w.word.eq(Mux(aagu.w.en, aagu.w.word, agu.w.word))]
        mv, at = agu.token, aagu.token
        t0 = by_field(token_layout(cfg), "t0")
        for name in MATVEC_FIELDS:      # an attention token has 0 in the MATVEC-only fields
            mine = getattr(mv, name)
            m.d.comb += getattr(t0, name).eq(Mux(at.valid, getattr(at, name)
                                                 if name in ATTENTION_FIELDS else 0, mine))
        m.d.comb += [getattr(t0, name).eq(getattr(at, name)) for name in ATTENTION_FIELDS
                     if name not in MATVEC_FIELDS and name != "kind"]
        m.d.comb += [
            t0.kind.eq(Mux(at.valid, at.kind, MacMode.MATVEC)),
            rt.x_en.eq(mv.valid | aagu.x_en),
            rt.x_bank.eq(Mux(aagu.x_en, aagu.x_bank, agu.x_bank)),
            rt.x_addr.eq(Mux(aagu.x_en, aagu.x_addr, agu.x_addr)),
            rt.s_en.eq(aagu.s_en), rt.s_bank.eq(aagu.s_bank), rt.s_word.eq(aagu.s_addr),
            rt.s_mask.eq(_group_mask(cfg, aagu.s_group, 0)), rt.s_group.eq(aagu.s_group),
        ]
        front = [Signal(token_layout(cfg), name=f"s{i + 1}") for i in range(2)]
        m.d.sync += [front[0].eq(t0), front[1].eq(front[0])]
        s1, s2 = front
        # c (PV): the weights of the position whose V row is read, from its score word
        m.d.comb += [
            weight.valid.eq(t0.valid & (t0.kind == MacMode.PV) if cfg.pv else 0),
            weight.first.eq(t0.first),
            weight.scores.eq(rt.s_data),
        ]
        m.d.comb += [weight.maxima[h].eq(score.maxima[h]) for h in range(2 * cfg.rows)]
        # c+1: SRAM data into the MAC array, a block's row multipliers are read. A PV pass
        # (x_exp) forms its weights from the x lanes here, e_l = exp2_neg(max_h - x_l) (0
        # for l > x_left), and registers them: they enter the MAC array in c+2 with the
        # weight words, read in c+1 (isa.PASS_W_LAT; the cycle after its last read is its
        # issue slot's, so no other read's c+1 meets it)
        L, R = cfg.lanes, cfg.rows
        maxima = Signal(signed(16))
        head_bits = max(1, (2 * R - 1).bit_length())
        m.d.comb += maxima.eq(Array(score.maxima)[s1.x_head[:head_bits]])
        e_reg = [Signal(16, name=f"e2_{l}", reset_less=True) for l in range(L)]
        e_sum = Signal(range(L * (1 << 15)), reset_less=True)   # c+3: the sum of c+2's e_reg
        es = []
        for l in range(L):
            delta = Signal(signed(18), name=f"xdelta{l}")
            m.d.comb += delta.eq(maxima - rt.x_data[l * ACT_BITS:l * ACT_BITS + 16].as_signed())
            e = Signal(16, name=f"xe{l}")
            m.d.comb += e.eq(Mux(s1.x_left < l, 0, exp2_neg_unit(m, delta, f"xe{l}")))
            es.append(e)
        with m.If(s1.valid & s1.x_exp):
            m.d.sync += [reg.eq(e) for reg, e in zip(e_reg, es)]
        exp2 = s2.valid & s2.x_exp                  # a pass's operands enter the array
        with m.If(exp2):
            m.d.sync += e_sum.eq(tree_sum(m, e_reg, "e_sum"))
        m.d.comb += [mac.w[r].eq(rt.w_data[r]) for r in range(R)]
        m.d.comb += [mac.e[h].eq(weight.e[h]) for h in range(2 * cfg.rows)]
        m.d.comb += [
            mac.x.eq(Mux(exp2, Cat(*(Cat(e, Const(0, ACT_BITS - 16)) for e in e_reg)),
                         rt.x_data)),
            mac.mode.eq(Mux(exp2, MacMode.MATVEC, s1.kind)),
            mac.kv_shift.eq(s1.kv_shift),
            mac.valid.eq(Mux(exp2, 1, s1.valid & ~s1.x_exp)),
            mac.first.eq(Mux(exp2, s2.first, s1.first)),
            mac.last.eq(Mux(exp2, s2.last, s1.last)),
            rt.m_en.eq(s1.valid & s1.last & s1.m_rows & (s1.kind == MacMode.MATVEC)),
            rt.m_addr.eq(s1.m_addr),
        ]
        # c+2: the block's multipliers, with norm times the norm register's mantissa
        # (numerics.norm_mult), registered with its exponent
        norm = Signal(22)                     # the norm register: b << 16 | m
        m.submodules.norm_unit = nu = NormUnit()
        with m.If(nu.out_valid):
            m.d.sync += norm.eq(nu.data)
        assert isa.LAT_NORM_READ == 2          # read in c+2 of a block's last chunk
        mults = [Signal(signed(16), name=f"mult3_{r}", reset_less=True)
                 for r in range(cfg.rows)]
        norm_b = Signal(6, reset_less=True)
        for r in range(cfg.rows):
            src = Mux(s2.m_rows, rt.m_data[16 * r:16 * (r + 1)].as_signed(), s2.mult)
            scaled = (src * norm[:15] + (1 << RECIP_FRAC)) >> (RECIP_FRAC + 1)
            m.d.sync += mults[r].eq(Mux(s2.norm, scaled, src))
        m.d.sync += norm_b.eq(Mux(s2.norm, norm[16:22], 0))
        # PV's drain, after the last position
        m.d.comb += [
            drain.last.eq(t0.valid & (t0.kind == MacMode.PV) & t0.last if cfg.pv else 0),
            drain.y_bank.eq(t0.y_bank), drain.y_addr.eq(t0.y_word),
            drain.d_blocks.eq(t0.d_blocks), drain.shift.eq(t0.shift),
            drain.y_bits.eq(t0.y_bits),
        ]
        m.d.comb += [drain.sums[h].eq(weight.sums[h]) for h in range(2 * cfg.rows)]
        # the result chain: from c+3 a block result (a MATVEC row block, a QK position's
        # scores or a PV drain block) goes through the output unit, one a cycle
        results = [Signal(token_layout(cfg), name=f"r{i + 3}") for i in range(RESULT_STAGES)]
        r3, r4, req = results[0], results[1], results[-2]
        s2_result = (s2.valid & s2.last & ~s2.x_exp
                     & ((s2.kind == MacMode.MATVEC) | (s2.kind == MacMode.QK)))
        # a PV pass's block: its sum of weights (the exp outputs summed in c+2, accumulated
        # over its chunks in c+3) into the reciprocal pipeline in c+4, its row sums (in the
        # MAC array's result from c+4) and token down a delay line, into the output unit in
        # c + LAT_EXP_RESULT with the reciprocal (registered in c+12)
        assert isa.EXP_SUM_LAT == 2
        exp3, first3, last3 = Signal(), Signal(), Signal()
        m.d.sync += [exp3.eq(exp2), first3.eq(s2.first), last3.eq(s2.last)]
        e_acc, rin = Signal(isa.SUM_BITS, reset_less=True), Signal(isa.SUM_BITS, reset_less=True)
        rin_valid = Signal()
        with m.If(exp3):
            m.d.sync += e_acc.eq(Mux(first3, 0, e_acc) + e_sum)
        m.d.sync += [rin.eq(Mux(first3, 0, e_acc) + e_sum), rin_valid.eq(exp3 & last3)]
        m.submodules.exp_recip = erecip = RecipPipeline(isa.SUM_BITS)
        m.d.comb += [erecip.valid.eq(rin_valid), erecip.operand.eq(rin)]
        exp_m = Signal(16, reset_less=True)
        exp_b = Signal(range(isa.SUM_BITS + 1), reset_less=True)
        with m.If(erecip.out_valid):
            m.d.sync += [exp_m.eq(erecip.mantissa), exp_b.eq(erecip.exponent)]
        # (a pass's block carries only what its write needs: epi NONE, an activation bank's
        # lane group, the instruction's own scale: isa.wbank_illegal)
        n_delay = isa.LAT_EXP_RESULT - isa.LAT_RESULT          # x3 (c+3) .. x12
        delay = [staged(token_layout(cfg, PASS_FIELDS), f"x{i + 3}") for i in range(n_delay)]
        m.d.sync += [getattr(delay[0], f).eq(getattr(s2, f)) for f in PASS_FIELDS]
        m.d.sync += delay[0].valid.eq(exp2 & s2.last)
        m.d.sync += [cur.eq(prev) for prev, cur in zip(delay, delay[1:])]
        passed = by_field(token_layout(cfg), "passed")     # kind MATVEC, epi NONE: 0
        m.d.comb += [getattr(passed, f).eq(getattr(delay[-1], f)) for f in PASS_FIELDS]
        m.d.comb += [passed.last.eq(1), passed.x_exp.eq(1)]
        acc_line = [[Signal(signed(cfg.acc_bits), name=f"xa{i + 5}_{r}", reset_less=True)
                     for r in range(R)]
                    for i in range(n_delay - 2)]               # c+5 .. c+12
        m.d.sync += [acc_line[0][r].eq(mac.result[r]) for r in range(R)]
        for prev, cur in zip(acc_line, acc_line[1:]):
            m.d.sync += [c.eq(p) for c, p in zip(cur, prev)]
        exp_acc = [Signal(signed(cfg.acc_bits), name=f"xacc_{r}", reset_less=True)
                   for r in range(R)]
        exp_inject = delay[-1].valid
        m.d.sync += [exp_acc[r].eq(acc_line[-1][r]) for r in range(R)]
        drained = by_field(token_layout(cfg), "drained")
        groups = max(cfg.lanes // cfg.rows, 1)
        offer_first = drain.offer * cfg.rows
        m.d.comb += [
            drained.valid.eq(1), drained.kind.eq(MacMode.PV), drained.last.eq(1),
            drained.y_bank.eq(drain.o_bank),
            drained.y_word.eq(drain.o_addr + offer_first // cfg.lanes),
            drained.y_group.eq(drain.offer % groups), drained.y_bits.eq(drain.o_bits),
            drained.shift.eq(drain.o_shift), drained.epi.eq(isa.Epi.NONE),
        ]
        with m.If(s2_result):
            m.d.sync += r3.eq(s2)
        with m.Elif(exp_inject):
            m.d.sync += r3.eq(passed)
        with m.Elif(drain.inject):
            m.d.sync += r3.eq(drained)
        with m.Else():
            m.d.sync += r3.eq(0)
        m.d.sync += [cur.eq(prev) for prev, cur in zip(results, results[1:])]
        m.d.comb += mac.pv_sel.eq(drain.sel)
        # c+3: the result into the requantizer (MATVEC, PV) or the score unit (QK)
        # (a tile without PV's datapath has no PV block here: no choice for it)
        is_pv3 = r3.kind == MacMode.PV if cfg.pv else Const(0)
        is_exp3 = r3.x_exp
        sh_raw = Signal(range(64 + 64))
        m.d.comb += sh_raw.eq(Mux(is_pv3, drain.exponent, Mux(is_exp3, exp_b, norm_b))
                              + r3.shift)
        m.d.comb += [
            rq.shift.eq(Mux(sh_raw > 63, 63, sh_raw)),
            # ROPE rotates int16 pairs: a narrower y_bits saturates only the rotation
            rq.y_bits.eq(Mux((r3.epi == isa.Epi.ROPE) & (r3.kind == MacMode.MATVEC)
                             & (r3.y_bits != 0) & (r3.y_bits < 16), 16, r3.y_bits)),
            score.valid.eq(r3.valid & (r3.kind == MacMode.QK)), score.first.eq(r3.first),
        ]
        # QK's head-slot score shifts, from the read (c) to the score unit (c+2, a cycle
        # before the result: it registers them with their rounding terms)
        shifts = [aagu.shifts[h] for h in range(2 * cfg.rows)]
        for i in range(isa.LAT_RESULT - 1):
            regs = [Signal(6, name=f"qk_shift{i + 1}_{h}", reset_less=True)
                    for h in range(2 * cfg.rows)]
            m.d.sync += [reg.eq(v) for reg, v in zip(regs, shifts)]
            shifts = regs
        m.d.comb += [score.shifts[h].eq(shifts[h]) for h in range(2 * cfg.rows)]
        for r in range(cfg.rows):
            m.d.comb += [
                rq.acc[r].eq(Mux(is_pv3, mac.pv_out[r],
                                 Mux(is_exp3, exp_acc[r], mac.result[r]))),
                rq.mult[r].eq(Mux(is_pv3, drain.mult, Mux(is_exp3, exp_m, mults[r]))),
                score.halves[r][0].eq(mac.halves[r][0]), score.halves[r][1].eq(mac.halves[r][1]),
            ]
        # c+4: the requantized block into the epilogue; RESID reads the destination lane group,
        # ROPE its table word; the scores go on towards the write
        resid4 = r4.valid & (r4.epi == isa.Epi.RESID) & (r4.kind == MacMode.MATVEC)
        m.d.comb += [
            rt.r_en.eq(resid4), rt.r_bank.eq(r4.y_bank), rt.r_word.eq(r4.y_word),
            rt.r_mask.eq(_group_mask(cfg, r4.y_group, 0)), rt.r_group.eq(r4.y_group),
            rt.r_later.eq(_later(front + results, isa.LAT_RESID_READ)),
            rt.p_en.eq(r4.valid & (r4.epi == isa.Epi.ROPE) & (r4.kind == MacMode.MATVEC)),
            rt.p_addr.eq(r4.rope_addr),
            epi.epi.eq(Mux(r4.kind == MacMode.MATVEC, r4.epi, isa.Epi.NONE)),
            epi.y_bits.eq(r4.y_bits), epi.epi_shift.eq(r4.epi_shift),
            epi.head.eq(r4.head), epi.final.eq(r4.final), epi.block.eq(r4.block),
            epi.pack.eq(r4.y_pack),
            epi.old.eq(rt.r_data), epi.rope_word.eq(rt.p_data),
            # the epilogue's SiLU copies take the table's writes too
            epi.t_wen.eq(rt.t.wen), epi.t_waddr.eq(rt.t.waddr), epi.t_wdata.eq(rt.t.wdata),
        ]
        # the next-token register: the last ARGMAX of the vector unit or the epilogue
        from_epi, next_tok = Signal(), Signal(16)
        with m.If(epi.next_valid):
            m.d.sync += [next_tok.eq(epi.next_token), from_epi.eq(1)]
        with m.Elif(vu.next_valid):
            m.d.sync += from_epi.eq(0)
        m.d.comb += seq.next_token.eq(Mux(from_epi, next_tok, vu.next_token))
        m.d.comb += [epi.y[r].eq(rq.y[r]) for r in range(cfg.rows)]
        # c+4: a QK (s_tr) position's scores into the transposer
        m.d.comb += [
            tr.valid.eq(r4.valid & (r4.kind == MacMode.QK) & r4.s_tr), tr.last.eq(r4.g_last),
            tr.lane.eq(r4.y_lane), tr.word.eq(r4.y_word),
        ]
        m.d.comb += [tr.scores[r].eq(score.packed[r]) for r in range(cfg.rows)]
        scores = [score.packed[r] for r in range(cfg.rows)]
        for i in range(isa.LAT_WRITE - 5):                  # c+4 .. the write's register
            regs = [Signal(32, name=f"scores{i + 5}_{r}", reset_less=True)
                    for r in range(cfg.rows)]
            m.d.sync += [reg.eq(v) for reg, v in zip(regs, scores)]
            scores = regs
        # c + LAT_WRITE - 1: the write, registered (c + LAT_WRITE: it lands; the router's
        # ports take it from the registers: no logic between them and the banks' data)
        mask, data = _write_lanes(m, cfg, req, [epi.out[r] for r in range(cfg.rows)], scores)
        # an ARGMAX MATVEC's next token is written at the end of c_final + LAT_ARGMAX: its
        # final token in stages c .. c+LAT_ARGMAX (c: a NEXT issued in the cycle of the
        # final read, right behind the MATVEC)
        argmax_pending = Cat(*(st.valid & st.final & (st.kind == MacMode.MATVEC)
                               & (st.epi == isa.Epi.ARGMAX)
                               for st in ([t0] + front + results)[:isa.LAT_ARGMAX + 1])).any()
        # the write port: a result, or else a word of the transposer (both: UNIT_BUSY)
        res_write = req.valid & ~req.y_wbank & ~req.y_wcol & ~req.s_tr
        tr_landing = Signal()                   # the transposer's word in the registers
        # (the registers: the enable reset, what it writes reset-less data)
        y = staged(StructLayout({"en": 1, "bank": 2, "word": 16, "mask": cfg.lanes,
                                 "data": cfg.act_word_bits}), "y", control=("en",))
        m.d.sync += [
            y.en.eq(res_write | tr.w_en), tr_landing.eq(tr.w_en & ~res_write),
            y.bank.eq(Mux(res_write, req.y_bank, tr.w_bank)),
            y.word.eq(Mux(res_write, req.y_word, tr.w_word)),
            y.mask.eq(Mux(res_write, mask, tr.w_mask)),
            y.data.eq(Mux(res_write, data, tr.w_data)),
        ]
        m.d.comb += [rt.y_en.eq(y.en), rt.y_bank.eq(y.bank), rt.y_word.eq(y.word),
                     rt.y_mask.eq(y.mask), rt.y_data.eq(y.data)]
        # ... or a y_wbank MATVEC's block: its R results' low weight bits into lane group
        # block % (L/R) of the weight-word buffer; the last group's block writes the word to
        # weight bank block // (L/R) (isa.wbank_slot)
        lg, lr = groups.bit_length() - 1, cfg.rows.bit_length() - 1
        block_bits = Cat(*(epi.out[r][:cfg.data_bits] for r in range(cfg.rows)))
        wbuf = [Signal(len(block_bits), name=f"wbuf{g}", reset_less=True)
                for g in range(groups - 1)]
        for g, buf in enumerate(wbuf):
            with m.If(req.valid & req.y_wbank & (req.y_group == g)):
                m.d.sync += buf.eq(block_bits)
        word_bank = req.block[lg:lg + lr] if lr else 0
        word_write = req.valid & req.y_wbank & (req.y_group == groups - 1)
        # ... or a y_wcol MATVEC's block: result r into byte y_lane of its word in weight bank
        # r (isa.wcol_slot; the banks' write enables are a byte each)
        db = cfg.data_bits
        column = req.valid & req.y_wcol
        yw = staged(StructLayout({"en": cfg.rows, "word": 16, "lanes": cfg.lanes,
                                  "data": ArrayLayout(cfg.word_bits, cfg.rows)}),
                    "yw", control=("en",))
        m.d.sync += yw.lanes.eq(Mux(column, 1 << req.y_lane, (1 << cfg.lanes) - 1))
        for r in range(cfg.rows):
            m.d.sync += [
                yw.en[r].eq((word_write & (word_bank == r)) | column),
                yw.data[r].eq(Mux(column, epi.out[r][:db].replicate(cfg.lanes),
                                  Cat(*wbuf, block_bits))),
            ]
        m.d.sync += yw.word.eq(req.y_word)
        m.d.comb += [rt.yw_en.eq(yw.en), rt.yw_word.eq(yw.word), rt.yw_lanes.eq(yw.lanes)]
        m.d.comb += [rt.yw_data[r].eq(yw.data[r]) for r in range(cfg.rows)]
        # c + LAT_WRITE: the squares of the values landing (ss), summed into the RMSNorm
        # total (the values registered as the write is: the epilogue's rounding and the
        # squarer's multiplier in one cycle were once the tile clock's critical path);
        # c + LAT_WRITE + 1: the instruction's total into the norm unit (v9, ss9, ss10:
        # named for the stage they are formed from, r9)
        v9 = [Signal(signed(16), name=f"v9_{r}", reset_less=True) for r in range(cfg.rows)]
        ss9 = Signal()
        head9, final9, init9 = Signal(reset_less=True), Signal(reset_less=True), \
            Signal(24, reset_less=True)
        m.d.sync += [v9[r].eq(epi.out[r][:16]) for r in range(cfg.rows)]
        m.d.sync += [ss9.eq(req.valid & req.ss & (req.kind == MacMode.MATVEC)),
                     head9.eq(req.head), final9.eq(req.final), init9.eq(req.ss_init)]
        squares = [(v * v).as_unsigned() for v in v9]        # each < 2^31
        ss_acc, ss10 = Signal(isa.SS_BITS, reset_less=True), Signal()
        with m.If(ss9):
            m.d.sync += ss_acc.eq(Mux(head9, init9, ss_acc) + sum(squares))
        m.d.sync += ss10.eq(ss9 & final9)
        # the norm unit's one input: an ss MATVEC's total or a NORM VOP's (c+6)
        m.d.comb += [nu.valid.eq(ss10 | vu.norm_valid),
                     nu.ss.eq(Mux(vu.norm_valid, vu.norm_total, ss_acc))]
        # an ss MATVEC whose norm register write has not landed
        ss_pending = Cat(*(st.valid & st.ss & (st.kind == MacMode.MATVEC)
                           for st in front + results)).any() | ss9 | nu.pending
        assert isa.LAT_SS_NORM == isa.LAT_WRITE + 1 + isa.NORM_LAT
        # a norm-register write of an earlier instruction still to land: an ss MATVEC's final
        # token in the result chain or its total on the way, or a NORM VOP's
        norm_inflight = (Cat(*(st.valid & st.ss & st.final & (st.kind == MacMode.MATVEC)
                               for st in results)).any()
                         | (ss9 & final9) | nu.pending | vu.norm_pending)
        # the writes in flight, for the hazard check: results on their way, and the MATVEC
        # and QK tokens that will produce one
        assert len(front + results + delay) == isa.MXM_PENDING
        for i, stage in enumerate(front + results + delay):
            write = rt.pending[i]
            m.d.comb += checker.mxm[i].eq(write)
            if i >= len(front + results):       # a PV pass's block: its R lanes, y_group's
                m.d.comb += [write.valid.eq(stage.valid), write.bank.eq(stage.y_bank),
                             write.word.eq(stage.y_word), write.wbank.eq(0),
                             write.mask.eq(_group_mask(cfg, stage.y_group, 0))]
                continue
            makes = stage.valid & stage.last & (stage.kind != MacMode.PV) if i < 2 \
                else stage.valid
            makes &= ~stage.s_tr                    # the transposer's writes: below
            # a y_wbank block writes only with the word's last lane group
            makes &= ~stage.y_wbank | (stage.y_group == groups - 1)
            m.d.comb += [write.valid.eq(makes), write.bank.eq(stage.y_bank),
                         write.word.eq(stage.y_word),
                         write.wbank.eq(stage.y_wbank | stage.y_wcol),
                         write.mask.eq(_group_mask(cfg, stage.y_group, stage.y_half))]
        # reads of lanes with a write in flight that the router does not see (rtl.checker)
        m.d.comb += [getattr(checker, f"{p}_{f}").eq(getattr(getattr(vu, p), f))
                     for p in "ab" for f in ("en", "bank", "word", "lane")]
        _tap(m, checker, rt, ["x_en", "x_bank", "x_addr"] + [f"{p}_{f}" for p in "sr"
                                                            for f in ("en", "bank", "word", "mask")])
        m.d.comb += [c.eq(w) for c, w in zip(checker.vu_writes, vu.writes)]
        m.d.comb += [
            checker.vop_issue.eq(seq.vop.issue),
            checker.drain_busy.eq(drain.busy), checker.drain_bank.eq(drain.o_bank),
            checker.drain_addr.eq(drain.o_addr), checker.drain_first.eq(drain.left_first),
            checker.drain_end.eq(drain.left_end),
        ]
        m.d.comb += seq.pipe_empty.eq(~agu.op.busy & ~aagu.op.busy & ~drain.busy & ~tr.busy
                                      & ~tr_landing
                                      & ~Cat(*(st.valid for st in front + results + delay)).any()
                                      & vu.idle & ~ss_pending)

        # the busy counters (tinylpu.host.Counter), cleared by a run's start, counting while
        # it runs: issue slots (MAC array: a MATVEC/QK/PV read token enters it; vector
        # unit: a VOP element read; WAIT/LOOP; NEXT), a result in the output unit (r3 .. the
        # write), the PV drain
        events = counters.events
        m.d.comb += [
            counters.clear.eq(hif.run.start),
            events.cycles.eq(seq.running),
            events.mac.eq(seq.running & (seq.matvec.issue | agu.op.busy
                                         | seq.attention.issue_qk | seq.attention.issue_pv
                                         | aagu.op.busy)),
            events.vu.eq(seq.running & (seq.vop.issue | vu.op.busy)),
            events.out.eq(seq.running & Cat(*(st.valid for st in results)).any()),
            events.drain.eq(seq.running & drain.busy),
            events.wait.eq(seq.running & seq.wait_slot),
            events.next.eq(seq.running & seq.next_slot),
        ]

        # sticky schedule-checker flags of the current run, for its status (rtl.host.ScheduleFlags)
        flags = Signal(ScheduleFlags)
        # a result and a drain block for the output unit in one cycle; a PV while the
        # previous one drains; a scalar-unit start while it is busy. PV weights
        # formed while QK's maxima are still being written
        # The transposer's words in flight: from the cycle after its QK's first read (s_tr
        # tokens in the pipeline, a group waiting, words left) to its last write; a read in
        # their range then is a hazard, a QK (s_tr) starting then finds it busy
        tr_active = (tr.busy | tr_landing
                     | Cat(*(st.valid & st.s_tr for st in (s1, s2, r3, r4))).any())
        aw, bw = (cfg.adepth - 1).bit_length(), (cfg.act_banks - 1).bit_length()

        def late(value, name):
            reg = Signal.like(value, name=name)
            m.d.sync += reg.eq(value)
            return reg

        # the reads and the box registered: checked in the cycle after the read, off the path
        # of the reads' address arithmetic
        box_active, box_bank = late(tr_active, "box_active"), late(tr.box_bank, "box_bank")
        box_lo, box_span = late(tr.box_lo, "box_lo"), late(tr.box_span, "box_span")

        def in_box(name, en, bank, word):  # banks modulo act_banks, words modulo adepth
            en, bank, word = (late(en, f"{name}_box_en"), late(bank, f"{name}_box_bank"),
                              late(word, f"{name}_box_word"))
            same = (bank[:bw] == box_bank[:bw]) if bw else 1
            return en & box_active & same & ((word - box_lo)[:aw] <= box_span)

        tr_read = Cat(in_box("x", rt.x_en, rt.x_bank, rt.x_addr),
                      in_box("s", rt.s_en, rt.s_bank, rt.s_word),
                      in_box("r", rt.r_en, rt.r_bank, rt.r_word),
                      *(in_box(n, p.en, p.bank, p.word) for n, p in (("a", vu.a),
                                                                     ("b", vu.b)))).any()
        busy_now = ((s2_result & drain.inject) | (weight.valid & t0.first & drain.busy)
                    | (exp_inject & (s2_result | drain.inject)) | vu.scalar_busy
                    | (tr.w_en & res_write) | (aagu.tr.start & tr_active))
        maxima_pending = Cat(*((st.valid & (st.kind == MacMode.QK)) for st in
                               (s1, s2, r3, r4))).any()
        # NEXT reads the next-token register while an ARGMAX still has to write it
        next_early = seq.issue_next & (argmax_pending | vu.argmax_pending)
        # a norm MATVEC's block reads the norm register (c+2) before an earlier write landed
        norm_early = (s2.valid & s2.last & s2.norm & (s2.kind == MacMode.MATVEC)
                      & norm_inflight)
        hazard_now = (rt.hazard | (weight.valid & maxima_pending)
                      | (s1.valid & s1.x_exp & maxima_pending) | next_early | norm_early
                      | checker.hazard | vu.self_overlap | tr_read)
        # two users of a port; the vector unit's one write port; the norm unit's input
        conflict_now = rt.conflict | vu.write_clash | (ss10 & vu.norm_valid)
        raw_now = hazard_now & seq.running
        with m.If(hif.run.start):
            m.d.sync += flags.eq(0)
        with m.Else():
            with m.If(conflict_now):
                m.d.sync += flags.port_conflict.eq(1)
            with m.If(raw_now):
                m.d.sync += flags.raw_hazard.eq(1)
            with m.If(busy_now):
                m.d.sync += flags.unit_busy.eq(1)
            with m.If(seq.illegal):             # the run stopped at an illegal word
                m.d.sync += flags.illegal.eq(1)
            with m.If(seq.timeout):             # ... or at its cycle budget
                m.d.sync += flags.timeout.eq(1)
        # the status the run ends with takes this cycle's findings too: the checks report a
        # request a cycle or two after it (the router's, in_box), so a write of the last
        # result's cycle is found in the cycle the run is done
        m.d.comb += [hif.flags.eq(flags),
                     hif.flags.port_conflict.eq(flags.port_conflict | conflict_now),
                     hif.flags.raw_hazard.eq(flags.raw_hazard | raw_now),
                     hif.flags.unit_busy.eq(flags.unit_busy | busy_now)]
        return m


def _later(stages, n):
    """Per stage c+1 .. c+n-1 (``stages[i]`` is c+i+1): whether its token is a later
    instruction's than the MATVEC token in stage c+n, i.e. a final token lies between them
    (that one included). A PV drain block (an earlier PV's) never is."""
    marks = []
    for i in range(n - 1):
        between = [stages[j].final & stages[j].valid for j in range(i + 1, n)]
        marks.append(Cat(*between).any() & (stages[i].kind != MacMode.PV))
    return Cat(*marks)


def _tap(m, dst, src, names):
    """``dst.<name>`` follows ``src.<name>`` for each of ``names`` (a unit watching another's
    ports)."""
    m.d.comb += [getattr(dst, n).eq(getattr(src, n)) for n in names]


# what a PV pass's block (MATVEC x_exp) takes down its delay line to the output unit
PASS_FIELDS = ("valid", "y_bank", "y_word", "y_group", "shift", "y_bits")


def _group_mask(cfg, group, pack):
    """The lanes of lane group ``group``: R lanes (``group * R ..``), or with ``pack`` R/2
    (``group * R/2 ..``)."""
    R, L = cfg.rows, cfg.lanes
    full = Cat(*[(group == g).replicate(R) for g in range(max(L // R, 1))])[:L]
    half = max(R // 2, 1)
    packed = Cat(*[(group == g).replicate(half) for g in range(max(L // half, 1))])[:L]
    return Mux(pack, packed, full) if R > 1 else full


def _write_lanes(m, cfg, res, out, scores):
    """Lane mask and data of a result's write: the R outputs in lane group ``y_group``, or
    R/2 lanes (``y_half``) of outputs packed two to a lane (``y_pack``: lane j holds outputs
    j and j + R/2, :func:`tinylpu.isa.pack_block`) or of SILU_GATE's R/2
    outputs, or a QK position's packed scores."""
    R, L = cfg.rows, cfg.lanes
    groups, half = max(L // R, 1), max(R // 2, 1)
    plain = Cat(*(out * groups))[:L * ACT_BITS]
    packed_lanes = [Cat(out[i][:16], out[i + R // 2][:16]) for i in range(R // 2)] or \
        [Cat(*out)[:ACT_BITS]]
    packed = Cat(*(packed_lanes * (L // len(packed_lanes))))[:L * ACT_BITS]
    halves = Cat(*(out[:half] * (L // half)))[:L * ACT_BITS]
    qk = Cat(*(scores * groups))[:L * ACT_BITS]
    data = Signal(L * ACT_BITS)
    with m.If(res.kind == MacMode.QK):
        m.d.comb += data.eq(qk)
    with m.Elif(res.y_pack):
        m.d.comb += data.eq(packed)
    with m.Elif(res.y_half):
        m.d.comb += data.eq(halves)
    with m.Else():
        m.d.comb += data.eq(plain)
    return _group_mask(cfg, res.y_group, res.y_half & (res.kind == MacMode.MATVEC)), data


def generate_verilog(cfg, path=None):
    """Verilog of a tile of configuration ``cfg``; written to ``path`` if given."""
    text = verilog.convert(Tile(cfg), name="tinylpu_tile", emit_src=False)
    if path is not None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text
