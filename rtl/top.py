"""The TinyLPU tile: sequencer, AGU, router with its SRAM banks, MAC array, requantizer,
vector unit and host interface, and the pipeline that joins them."""

__all__ = ["Tile", "generate_verilog", "PIPELINE"]

import pathlib

from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import isa

from .agu import MatvecAgu, token_layout
from .epilogue import LATENCY as EPI_LATENCY, Epilogue
from .host import HostInterface
from .mac import MacArray
from .requant import Requantizer
from .router import Router
from .sequencer import Sequencer
from .vu import VectorUnit

# Stage registers of a MATVEC token after its read in cycle c (see tinylpu.isa.MXM_STAGES).
PIPELINE = ("s1: SRAM data (c+1)", "s2: products; row-multiplier read (c+2)",
            "s3: block result into the requantizer (c+3)",
            "s4: requantized; RESID reads the destination, ROPE its table word (c+4)",
            "s5: epilogue sums and products (c+5)", "s6: epilogue out, written (c+6)")
assert len(PIPELINE) == isa.LAT_WRITE == isa.LAT_RESID_READ + EPI_LATENCY


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
        wiring.connect(m, wiring.flipped(self.host_in), hif.i)
        wiring.connect(m, hif.o, wiring.flipped(self.host_out))

        # host interface <-> router and sequencer
        m.d.comb += [
            rt.h_ren.eq(hif.ren), rt.h_wen.eq(hif.wen), rt.h_target.eq(hif.target),
            rt.h_addr.eq(hif.addr), rt.h_wdata.eq(hif.wdata), hif.rdata.eq(rt.h_rdata),
            hif.valid_target.eq(rt.h_valid_target),
            seq.start.eq(hif.start), seq.start_pc.eq(hif.start_pc),
            seq.generate.eq(hif.generate), seq.n_prompt.eq(hif.n_prompt),
            seq.steps.eq(hif.steps),
            hif.done.eq(seq.done), hif.cycles.eq(seq.cycles),
            hif.emit_valid.eq(seq.emit_valid), hif.emit_data.eq(seq.emit_data),
            self.running.eq(seq.running),
        ]
        # sequencer <-> instruction memory, AGU
        m.d.comb += [
            rt.i_en.eq(seq.running | hif.start), rt.i_addr.eq(seq.imem_addr),
            seq.imem_data.eq(rt.i_data),
            agu.issue.eq(seq.issue_matvec), agu.args.eq(seq.matvec), agu.pos.eq(seq.pos),
            seq.agu_busy.eq(agu.busy), seq.agu_final.eq(agu.final),
        ]
        # sequencer <-> token memory
        m.d.comb += [
            rt.tm_ren.eq(seq.tm_ren), rt.tm_raddr.eq(seq.tm_raddr), seq.tm_rdata.eq(rt.tm_rdata),
            rt.tm_wen.eq(seq.tm_wen), rt.tm_waddr.eq(seq.tm_waddr), rt.tm_wdata.eq(seq.tm_wdata),
        ]
        # sequencer <-> vector unit <-> router
        m.d.comb += [
            vu.issue.eq(seq.issue_vop), vu.args.eq(seq.vop), vu.pos.eq(seq.pos),
            vu.tok.eq(seq.tok), seq.vu_busy.eq(vu.busy), seq.vu_final.eq(vu.final),
            seq.next_token.eq(vu.next_token),
            rt.a_en.eq(vu.a_en), rt.a_bank.eq(vu.a_bank), rt.a_word.eq(vu.a_word),
            vu.a_data.eq(rt.a_data),
            rt.b_en.eq(vu.b_en), rt.b_bank.eq(vu.b_bank), rt.b_word.eq(vu.b_word),
            vu.b_data.eq(rt.b_data),
            rt.vw_en.eq(vu.w_en), rt.vw_word.eq(vu.w_word),
            rt.c_en.eq(vu.c_en), rt.c_bank.eq(vu.c_bank), rt.c_word.eq(vu.c_word),
            rt.c_lane.eq(vu.c_lane), rt.c_data.eq(vu.c_data),
            vu.t_wen.eq(rt.t_wen), vu.t_waddr.eq(rt.t_waddr), vu.t_wdata.eq(rt.t_wdata),
            vu.t_ren.eq(rt.t_ren), vu.t_raddr.eq(rt.t_raddr), rt.t_rdata.eq(vu.t_rdata),
        ]
        m.d.comb += [vu.w_data[r].eq(rt.w_data[r]) for r in range(cfg.rows)]
        # cycle c: the AGU's reads
        t0 = agu.token
        m.d.comb += [
            rt.w_en.eq(t0.valid), rt.w_addr.eq(agu.w_addr),
            rt.x_en.eq(t0.valid), rt.x_bank.eq(agu.x_bank), rt.x_addr.eq(agu.x_addr),
        ]
        stages = [Signal(token_layout(cfg), name=f"s{i + 1}") for i in range(isa.LAT_WRITE)]
        m.d.sync += stages[0].eq(t0)
        for prev, cur in zip(stages, stages[1:]):
            m.d.sync += cur.eq(prev)
        s1, s2, s3, s4, s5, s6 = stages
        # c+1: SRAM data into the MAC array; c+2: a block's row multipliers are read;
        # c+3: block result into the requantizer
        m.d.comb += [mac.w[r].eq(rt.w_data[r]) for r in range(cfg.rows)]
        m.d.comb += [rq.acc[r].eq(mac.result[r]) for r in range(cfg.rows)]
        m.d.comb += [
            mac.x.eq(rt.x_data),
            mac.valid.eq(s1.valid), mac.first.eq(s1.first), mac.last.eq(s1.last),
            rt.m_en.eq(s2.valid & s2.last & s2.m_rows), rt.m_addr.eq(s2.m_addr),
            rq.shift.eq(s3.shift), rq.y_bits.eq(s3.y_bits),
        ]
        for r in range(cfg.rows):
            row_mult = rt.m_data[16 * r:16 * (r + 1)].as_signed()
            m.d.comb += rq.mult[r].eq(Mux(s3.m_rows, row_mult, s3.mult))
        # c+4: the requantized block into the epilogue; RESID reads the destination word
        resid4 = s4.valid & s4.last & (s4.epi == isa.Epi.RESID)
        m.d.comb += [
            rt.r_en.eq(resid4), rt.r_bank.eq(s4.y_bank), rt.r_word.eq(s4.y_word),
            rt.r_group.eq(s4.y_group),
            rt.p_en.eq(s4.valid & s4.last & (s4.epi == isa.Epi.ROPE)),
            rt.p_addr.eq(s4.rope_addr),
            epi.epi.eq(s4.epi), epi.y_bits.eq(s4.y_bits), epi.group.eq(s4.y_group),
            epi.old_word.eq(rt.r_data), epi.rope_word.eq(rt.p_data),
        ]
        m.d.comb += [epi.y[r].eq(rq.y[r]) for r in range(cfg.rows)]
        # c+6: the block's results go to their activation bank
        m.d.comb += [rt.y_data[r].eq(epi.out[r]) for r in range(cfg.rows)]
        m.d.comb += [
            rt.y_en.eq(s6.valid & s6.last), rt.y_bank.eq(s6.y_bank), rt.y_word.eq(s6.y_word),
            rt.y_group.eq(s6.y_group),
        ]
        for i, stage in enumerate(stages):
            m.d.comb += rt.inflight[i].eq(stage)
        m.d.comb += seq.pipe_empty.eq(~agu.busy & ~Cat(*(s.valid for s in stages)).any()
                                      & vu.idle)

        # sticky schedule-checker flags of the current run
        conflict, hazard = Signal(), Signal()
        with m.If(hif.start):
            m.d.sync += [conflict.eq(0), hazard.eq(0)]
        with m.Else():
            with m.If(rt.conflict):
                m.d.sync += conflict.eq(1)
            with m.If(rt.hazard & seq.running):
                m.d.sync += hazard.eq(1)
        m.d.comb += hif.flags.eq(Cat(conflict, hazard))
        return m


def generate_verilog(cfg, path=None):
    """Verilog of a tile of configuration ``cfg``; written to ``path`` if given."""
    text = verilog.convert(Tile(cfg), name="tinylpu_tile", emit_src=False)
    if path is not None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text
