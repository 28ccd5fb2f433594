"""The read checker: reads of activation lanes whose write is still in flight, as the golden
model refuses or flags them (:class:`tinylpu.golden._RunState`).

- A VOP read (operand A or B, ``a``/``b``) of a lane that a write pending at the VOP's issue
  cycle (landing in that cycle or later) goes to: a MATVEC, QK or PV result in the MXM
  pipeline (``mxm``, the router's ``pending`` list), a PV drain block not yet offered to
  the output unit (``drain_*``), or a vector-unit result (``vu``, from earlier VOPs). The
  golden model executes a VOP on memory as of its issue cycle and refuses such a read even
  when the write lands before it; so the checker compares each read with a snapshot of
  those writes taken in the issue cycle (the VOP's own results are not in it).
- A read of the MXM pipeline (``x``: MATVEC x, QK q and K, PV V; ``s``: PV scores; ``r``:
  RESID's read of the destination) of a lane with a vector-unit write in flight in the
  read's cycle (landing in it or later). RESID reads in c_last + 4, after the MATVEC's issue
  slot: vector-unit entries of elements read in the 3 cycles before (stages s1..s3, a later
  VOP's) are not counted. (The router flags reads of lanes with an MXM write in flight.)

Timing: the reads and the vector unit's writes of cycle c are registered, compared in c+1,
and ``hazard`` is registered: high in c+2 (one cycle per read cycle with a hit).
"""

__all__ = ["ReadChecker"]

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tinylpu.isa import MXM_PENDING

from .registers import staged
from .router import write_layout
from .sram import addr_bits
from .vu import WRITES, write_layout as vu_write_layout

RESID_SKIP = 3      # vector-unit stages s1..s3 hold elements read after a RESID's MATVEC


def _log2(n):
    return n.bit_length() - 1


class ReadChecker(wiring.Component):
    """See the module docstring. ``drain_first``/``drain_end``: the PV drain blocks not yet
    offered (``first`` .. ``end - 1``) of the output at word ``drain_addr`` of bank
    ``drain_bank``; block j is lanes ``(j*R) mod (R*L)`` .. + R - 1 from lane 0 of that
    word, on (wrapping modulo the bank depth)."""

    def __init__(self, cfg):
        self.cfg = cfg
        L = cfg.lanes
        lane = range(max(L, 2))
        super().__init__({
            "vop_issue": In(1),
            "a_en": In(1), "a_bank": In(2), "a_word": In(16), "a_lane": In(lane),
            "b_en": In(1), "b_bank": In(2), "b_word": In(16), "b_lane": In(lane),
            "x_en": In(1), "x_bank": In(2), "x_addr": In(16),
            "s_en": In(1), "s_bank": In(2), "s_word": In(16), "s_mask": In(L),
            "r_en": In(1), "r_bank": In(2), "r_word": In(16), "r_mask": In(L),
            "mxm": In(write_layout(cfg)).array(MXM_PENDING),
            "vu_writes": In(vu_write_layout(cfg)).array(WRITES),
            "drain_busy": In(1), "drain_bank": In(2), "drain_addr": In(16),
            "drain_first": In(9), "drain_end": In(9),
            "hazard": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        R, L = cfg.rows, cfg.lanes
        ll, bb, aw = _log2(L), _log2(cfg.act_banks), addr_bits(cfg.adepth)
        mb = _log2(cfg.adepth) + ll                # element address bits of a bank
        P = min(R * L, 1 << mb)                    # drain: the output's elements repeat after P
        pb = _log2(P)

        def bank_eq(a, b):
            return (a[:bb] == b[:bb]) if bb else Const(1, 1)

        def word_eq(a, b):
            return a[:aw] == b[:aw]

        def lane_of(mask, lane):
            return mask.bit_select(lane[:ll], 1) if ll else mask[0]

        def lane_eq(a, b):
            return (a[:ll] == b[:ll]) if ll else Const(1, 1)

        # c: snapshot at a VOP's issue; the reads and this cycle's vector-unit writes
        # (only the valid and enable bits reset: every other field is used under one)
        snap_mxm = staged(data.ArrayLayout(write_layout(cfg), MXM_PENDING), "snap_mxm")
        snap_vu = staged(data.ArrayLayout(vu_write_layout(cfg), WRITES), "snap_vu")
        vu_q = staged(data.ArrayLayout(vu_write_layout(cfg), WRITES), "vu_q")
        d_valid, d_bank = Signal(), Signal(2, reset_less=True)
        d_base, d_lo = Signal(max(mb, 1), reset_less=True), Signal(max(pb, 1), reset_less=True)
        d_len = Signal(pb + 1, reset_less=True)
        first, end = self.drain_first, self.drain_end
        count = Signal(10)
        m.d.comb += count.eq(Mux(end > first, end - first, 0))
        with m.If(self.vop_issue):
            m.d.sync += [
                snap_mxm.eq(Cat(*self.mxm)), snap_vu.eq(Cat(*self.vu_writes)),
                d_valid.eq(self.drain_busy & (count != 0)), d_bank.eq(self.drain_bank),
                d_base.eq((self.drain_addr << ll)[:max(mb, 1)]),
                d_lo.eq((first * R)[:max(pb, 1)]),
                d_len.eq(Mux(count * R >= P, P, count * R)),
            ]
        m.d.sync += vu_q.eq(Cat(*self.vu_writes))
        reads = {}
        for name, fields in (("a", ("en", "bank", "word", "lane")),
                             ("b", ("en", "bank", "word", "lane")),
                             ("x", ("en", "bank", "addr")),
                             ("s", ("en", "bank", "word", "mask")),
                             ("r", ("en", "bank", "word", "mask"))):
            regs = {}
            for f in fields:
                port = getattr(self, f"{name}_{f}")
                reg = Signal.like(port, name=f"{name}_{f}_q", reset_less=f != "en")
                m.d.sync += reg.eq(port)
                regs[f] = reg
            reads[name] = regs

        # c+1: compare
        hits = []
        for name in ("a", "b"):
            rd = reads[name]
            e = Signal(max(mb, 1), name=f"{name}_elem")
            m.d.comb += e.eq(Cat(rd["lane"][:ll], rd["word"][:aw]) if ll else rd["word"][:aw])
            for w in snap_mxm:
                hits.append(rd["en"] & w.valid & ~w.wbank & bank_eq(w.bank, rd["bank"])
                            & word_eq(w.word, rd["word"]) & lane_of(w.mask, rd["lane"]))
            for w in snap_vu:
                hits.append(rd["en"] & w.valid & bank_eq(w.bank, rd["bank"])
                            & word_eq(w.word, rd["word"]) & lane_eq(w.lane, rd["lane"]))
            off, rel = Signal(max(mb, 1), name=f"{name}_off"), Signal(max(pb, 1),
                                                                   name=f"{name}_rel")
            m.d.comb += [off.eq(e - d_base), rel.eq(off[:max(pb, 1)] - d_lo)]
            inside = (off < P) if P < (1 << mb) else Const(1, 1)
            hits.append(rd["en"] & d_valid & bank_eq(d_bank, rd["bank"]) & inside
                        & ((rel if pb else 0) < d_len))
        for name in ("x", "s", "r"):
            rd = reads[name]
            word = rd["addr"] if name == "x" else rd["word"]
            for i, w in enumerate(vu_q):
                if name == "r" and i < RESID_SKIP:
                    continue
                hit = rd["en"] & w.valid & bank_eq(w.bank, rd["bank"]) & word_eq(w.word, word)
                if name != "x":
                    hit &= lane_of(rd["mask"], w.lane)
                hits.append(hit)
        m.d.sync += self.hazard.eq(Cat(*hits).any())
        return m
