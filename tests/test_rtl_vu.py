"""Unit tests of rtl/vu.py ``VectorUnit`` in Amaranth's simulator, against the golden model.

The harness models the activation and weight banks in Python (read data one cycle after
the request; a write lands at the end of its cycle, so a read in the same cycle sees the
old word), issues VOPs at chosen cycles, and compares every write (cycle, bank, word, lane,
value), ``next_token`` in every cycle, the ``busy``/``final``/``idle`` traces and the read
enables with :meth:`tinylpu.golden.GoldenTile._vop` run at the same issue cycles. The unit's
schedule flags (``write_clash``, ``scalar_busy``, ``self_overlap``) and the read checker's
``hazard`` (:class:`rtl.checker.ReadChecker` on the unit's reads and writes) stay low for
every sequence the golden model accepts, and the rule's flag is raised for one it refuses.
"""

import dataclasses
import math
import random

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import data
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from tinylpu import golden, isa
from tinylpu.config import Config
from tinylpu.isa import BMode, GFunc, Index, OutFunc, Reduce, Space
from tinylpu.rtl.checker import ReadChecker
from tinylpu.rtl.vu import VectorUnit

CFG = Config(lanes=4, rows=2, wdepth=64, act_banks=4, adepth=16, pdepth=16, tdepth=16)
CFG2 = Config(lanes=8, rows=4, wdepth=32, act_banks=2, adepth=8, pdepth=16, tdepth=16)
VOP_LAYOUT = data.Layout.cast(isa.VopArgs)
TABLE_USED = isa.SILU_TABLE + 257          # entries a VOP can read


@dataclasses.dataclass
class Item:
    args: dict           # decoded VOP operands (as isa.decode gives them)
    pos: int = 0
    tok: int = 0
    gap: int = 0         # idle cycles between the previous instruction's final read and issue


def vop_args(**kw):
    """Decoded operands of ``isa.vop(**kw)``. Two words ``isa.vop`` refuses are made by
    patching its result: ``sat=0`` (64 bits) and ARGMAX with RSQRT/RECIP (the RTL writes the
    index at the scalar latency, as the golden model does)."""
    patch = {}
    if kw.get("sat") == 0:
        patch["sat"], kw["sat"] = 0, 16
    if kw.get("red") == Reduce.ARGMAX and kw.get("out", OutFunc.MULSHR) != OutFunc.MULSHR:
        patch["out"], kw["out"] = OutFunc(kw["out"]).value, OutFunc.MULSHR
    args = isa.decode(isa.encode(isa.vop(**kw)))["args"]["vop"]
    args.update(patch)
    return args


def random_mems(cfg, rng):
    amem = np.array([[[rng.choice([rng.randrange(-2**31, 2**31), rng.randrange(-300, 300),
                                    rng.randrange(-2**15, 2**15)])
                       for _ in range(cfg.lanes)] for _ in range(cfg.adepth)]
                     for _ in range(cfg.act_banks)], dtype=np.int64)
    half = 1 << (cfg.data_bits - 1)
    wmem = np.array([[[rng.randrange(-half, half) for _ in range(cfg.lanes)]
                      for _ in range(cfg.wdepth)] for _ in range(cfg.rows)], dtype=np.int64)
    table = np.zeros(isa.TABLE_DEPTH, dtype=np.int64)
    table[:TABLE_USED] = [rng.randrange(-2**15, 2**15) for _ in range(TABLE_USED)]
    return amem, wmem, table


def run_golden(cfg, mems, items, t0):
    """Issue cycles, writes [(cycle, bank, word, lane, value u32)], next-token updates
    [(cycle, token)] and the final activation memory of the golden model."""
    tile = golden.GoldenTile(cfg)
    tile.amem[:], tile.wmem[:], tile.table[:] = mems
    rs = golden._RunState()
    writes, nexts = [], []
    push, push_next = rs.push, rs.push_next

    def log_push(cycle, unit, bank, word, lanes, values):
        writes.append((cycle, bank, word, int(lanes[0]), int(values[0]) & 0xffffffff))
        push(cycle, unit, bank, word, lanes, values)

    def log_next(cycle, token):
        nexts.append((cycle, token))
        push_next(cycle, token)

    rs.push, rs.push_next = log_push, log_next
    t, issues = t0, []
    for pc, it in enumerate(items):
        t += it.gap
        issues.append(t)
        tile._vop(it.args, t, it.pos, it.tok, rs, pc)
        s, n = isa.vop_dims(it.args, it.pos)
        t += s * n
    rs.land_before(math.inf, tile)
    assert not rs.conflict
    return issues, sorted(writes), sorted(nexts), tile.amem


def _pack(values, bits):
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & ((1 << bits) - 1)) << (bits * i)
    return out


FLAGS = ("write_clash", "scalar_busy", "self_overlap", "hazard")


def _harness(cfg):
    """The unit and a read checker watching its reads and writes (no MXM writes)."""
    dut, checker = VectorUnit(cfg), ReadChecker(cfg)
    m = Module()
    m.submodules.vu, m.submodules.checker = dut, checker
    m.d.comb += [checker.vop_issue.eq(dut.op.issue)]
    m.d.comb += [c.eq(w) for c, w in zip(checker.vu_writes, dut.writes)]
    for port in ("a", "b"):
        m.d.comb += [getattr(checker, f"{port}_{f}").eq(getattr(getattr(dut, port), f))
                     for f in ("en", "bank", "word", "lane")]
    return m, dut, checker


def run_rtl(cfg, mems, items, issues, end, load_table=True):
    """Simulate; return per-cycle observations and the writes."""
    amem, wmem, table = (x.copy() for x in mems)
    top, dut, checker = _harness(cfg)
    ll = cfg.lanes.bit_length() - 1
    by_cycle = dict(zip(issues, items))
    trace, writes = [], []
    garbage = random.Random(1)

    async def bench(ctx):
        if load_table:
            ctx.set(dut.t.wen, 1)
            for addr in range(TABLE_USED):
                ctx.set(dut.t.waddr, addr)
                ctx.set(dut.t.wdata, int(table[addr]) & 0xffff)
                await ctx.tick()
            ctx.set(dut.t.wen, 0)
        a_next = b_next = w_next = None
        for cycle in range(end):
            it = by_cycle.get(cycle)
            if it is not None:
                ctx.set(dut.op.issue, 1)
                ctx.set(dut.op.args, VOP_LAYOUT.const(it.args))
                ctx.set(dut.op.pos, it.pos)
                ctx.set(dut.op.tok, it.tok)
            else:       # operands are valid in the issue cycle only
                ctx.set(dut.op.issue, 0)
                ctx.set(dut.op.args.as_value(), garbage.getrandbits(VOP_LAYOUT.size))
                ctx.set(dut.op.pos, garbage.getrandbits(16))
                ctx.set(dut.op.tok, garbage.getrandbits(16))
            # ... and the early ones in the cycle before it only
            early = by_cycle.get(cycle + 1)
            if early is not None:
                ctx.set(dut.op.early_args, VOP_LAYOUT.const(early.args))
                ctx.set(dut.op.early_pos, early.pos)
                ctx.set(dut.op.early_tok, early.tok)
            else:
                ctx.set(dut.op.early_args.as_value(), garbage.getrandbits(VOP_LAYOUT.size))
                ctx.set(dut.op.early_pos, garbage.getrandbits(16))
                ctx.set(dut.op.early_tok, garbage.getrandbits(16))
            if a_next is not None:
                ctx.set(dut.a.data, a_next)
            if b_next is not None:
                ctx.set(dut.b.data, b_next)
            if w_next is not None:
                for r in range(cfg.rows):
                    ctx.set(dut.w_data[r], w_next[r])
            obs = dict(
                busy=ctx.get(dut.op.busy), final=ctx.get(dut.op.final), idle=ctx.get(dut.idle),
                a_en=ctx.get(dut.a.en), a_bank=ctx.get(dut.a.bank), a_word=ctx.get(dut.a.word),
                a_lane=ctx.get(dut.a.lane) if ll else 0,
                b_en=ctx.get(dut.b.en), b_bank=ctx.get(dut.b.bank), b_word=ctx.get(dut.b.word),
                b_lane=ctx.get(dut.b.lane) if ll else 0,
                w_en=ctx.get(dut.w.en), w_word=ctx.get(dut.w.word),
                next_token=ctx.get(dut.next_token), hazard=ctx.get(checker.hazard),
                **{f: ctx.get(getattr(dut, f)) for f in FLAGS[:3]})
            trace.append(obs)
            # reads: the lane as of this cycle (before this cycle's write lands)
            a_next = (int(amem[obs["a_bank"] % cfg.act_banks, obs["a_word"], obs["a_lane"]])
                      & 0xffffffff if obs["a_en"] else garbage.getrandbits(32))
            b_next = (int(amem[obs["b_bank"] % cfg.act_banks, obs["b_word"], obs["b_lane"]])
                      & 0xffffffff if obs["b_en"] else garbage.getrandbits(32))
            w_next = ([_pack(wmem[r, obs["w_word"]], cfg.data_bits) for r in range(cfg.rows)]
                      if obs["w_en"] else [garbage.getrandbits(cfg.word_bits)
                                           for _ in range(cfg.rows)])
            if ctx.get(dut.c.en):
                bank, word = ctx.get(dut.c.bank), ctx.get(dut.c.word)
                lane, value = ctx.get(dut.c.lane) if ll else 0, ctx.get(dut.c.data)
                writes.append((cycle, bank, word, lane, value))
                amem[bank % cfg.act_banks, word, lane] = value - (value >> 31 << 32)
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace, writes, amem



def _property(fast, slow):
    """A Hypothesis property over ``st.data()`` as two tests: ``fast`` examples in the default
    suite (each is a simulation of about a second) and ``slow`` in ``make test-slow``."""
    def wrap(body):
        make = lambda n: settings(max_examples=n, deadline=None,
                                  suppress_health_check=list(HealthCheck))(given(st.data())(body))
        return make(fast), pytest.mark.slow(make(slow))
    return wrap

def check(cfg, items, seed=0, mems=None, t0=3):
    """Run ``items`` on the RTL and the golden model; compare everything."""
    rng = random.Random(seed)
    mems = mems or random_mems(cfg, rng)
    issues, g_writes, g_nexts, g_amem = run_golden(cfg, mems, items, t0)
    load = any(GFunc(it.args["g"]) in (GFunc.EXP, GFunc.SILU) for it in items)
    end = max([issues[-1] + math.prod(isa.vop_dims(items[-1].args, items[-1].pos))]
              + [w[0] for w in g_writes]) + 3
    trace, writes, amem = run_rtl(cfg, mems, items, issues, end, load_table=load)
    for flag in FLAGS:
        assert not any(obs[flag] for obs in trace), f"{flag} raised"
    assert writes == g_writes
    assert (amem == g_amem).all()
    # next_token: the golden value from the cycle after its landing cycle
    for cycle, obs in enumerate(trace):
        want = 0
        for c, tok in g_nexts:
            if c < cycle:
                want = tok
        assert obs["next_token"] == want, f"cycle {cycle}"
    # busy / final / idle / read enables
    last_land = {}
    for i, (t, it) in enumerate(zip(issues, items)):
        s, n = isa.vop_dims(it.args, it.pos)
        lands = [t + j * n + n - 1 + isa.vop_latency(it.args) for j in range(s)]
        last_land[i] = max(lands)
    reads = {}
    for t, it in zip(issues, items):
        s, n = isa.vop_dims(it.args, it.pos)
        for c in range(t, t + s * n):
            reads[c] = (t, it, c == t + s * n - 1)
    for cycle, obs in enumerate(trace):
        busy = any(t < cycle < t + math.prod(isa.vop_dims(it.args, it.pos))
                   for t, it in zip(issues, items))
        idle = not any(t < cycle <= last_land[i] for i, t in enumerate(issues))
        r = reads.get(cycle)
        want = dict(busy=int(busy), final=int(bool(r and r[2])), idle=int(idle))
        if r:
            a, b = r[1].args["a"], r[1].args["b"]
            act = a["space"] == Space.ACT.value
            want.update(a_en=int(act), w_en=int(not act),
                        b_en=int(b["mode"] in (BMode.MEM.value, BMode.SCALE.value)))
            if act:
                assert obs["a_bank"] % cfg.act_banks == a["bank"] % cfg.act_banks
            if want["b_en"]:
                assert obs["b_bank"] % cfg.act_banks == b["bank"] % cfg.act_banks
        else:
            want.update(a_en=0, w_en=0, b_en=0)
        got = {key: obs[key] for key in want}
        assert got == want, f"cycle {cycle}"
    return g_writes, g_nexts, trace


# the flag raised for each schedule error the golden model reports (by its message)
RULE_FLAGS = (("two vector-unit writes", "write_clash"), ("scalar unit started", "scalar_busy"),
              ("after its own write landed", "self_overlap"), ("in flight", "hazard"))


def check_refused(cfg, items, seed=0, t0=3):
    """``items`` that the golden model refuses: the RTL raises the flag of the rule named in
    the golden model's error. Returns that flag."""
    mems = random_mems(cfg, random.Random(seed))
    with pytest.raises(golden.GoldenError) as error:
        run_golden(cfg, mems, items, t0)
    flag = next(f for key, f in RULE_FLAGS if key in str(error.value))
    issues, t = [], t0
    for it in items:
        t += it.gap
        issues.append(t)
        t += math.prod(isa.vop_dims(it.args, it.pos))
    end = t + max(isa.vop_latency(it.args) for it in items) + 8
    trace, _, _ = run_rtl(cfg, mems, items, issues, end, load_table=False)
    assert any(obs[flag] for obs in trace), f"{flag} not raised: {error.value}"
    return flag


def A(bank=0, **kw):
    return dict(bank=bank, **kw)


# Directed tests ----------------------------------------------------------------------------


def test_elaborates_all_configs():
    for cfg in (CFG, CFG2, Config(), Config(lanes=2, rows=1, wdepth=16, act_banks=1,
                                             adepth=16)):
        rtlil.convert(VectorUnit(cfg))


@pytest.mark.parametrize("g", list(GFunc))
def test_gfunc(g):
    b = {"mode": BMode.MEM, "bank": 1, "base": 3, "ks": 1}
    items = [Item(vop_args(g=g, red=Reduce.SUM, s=2, n=5,
                           a=A(0, base=7, ks=1, js=5), b={**b, "js": 5},
                           c=A(2, base=1, js=1), mult=3, shift=2, sat=32, init=-5))]
    check(CFG, items, seed=int(g.value))


def test_exp_clamps_and_silu_ends():
    """EXP: B - A below 0 and above 255; SILU at A = +-2**15 and the table's last point."""
    cfg = CFG
    rng = random.Random(5)
    amem, wmem, table = random_mems(cfg, rng)
    amem[0, 0] = [0, 300, -400, 2**31 - 1]
    amem[0, 1] = [-2**15, 2**15 - 1, 2**15, -2**15 - 1]
    amem[1, 0] = [10, 10, 10, 10]
    items = [Item(vop_args(g=g, red=Reduce.SUM, s=8, n=1, a=A(0, base=0, js=1),
                           b={"mode": BMode.MEM, "bank": 1, "base": 0, "js": 1},
                           c=A(3, base=0, js=1), sat=0))
             for g in (GFunc.EXP, GFunc.SILU)]
    check(cfg, items, mems=(amem, wmem, table))


@pytest.mark.parametrize("red", list(Reduce))
@pytest.mark.parametrize("out", list(OutFunc))
def test_reduce_out(red, out):
    s = 3 if out == OutFunc.MULSHR else 1
    items = [Item(vop_args(g=GFunc.MUL, red=red, out=out, s=s, n=6,
                           a=A(1, base=2, ks=3, js=1), b={"mode": BMode.SQUARE},
                           c=A(2, base=5, js=2), mult=-7, shift=4, sat=20, init=1000))]
    check(CFG, items, seed=10 * red.value + out.value)


@pytest.mark.parametrize("mode", list(BMode))
def test_bmode(mode):
    rng = random.Random(3)
    amem, wmem, table = random_mems(CFG, rng)
    # SCALE words: mantissa, exponents 0..63 (and junk above bit 21)
    amem[1] = [[rng.randrange(2**32) - 2**31 for _ in range(4)] for _ in range(16)]
    items = [Item(vop_args(g=g, red=Reduce.SUM, s=4, n=3,
                           a=A(0, base=1, ks=1, js=3),
                           b={"mode": mode, "bank": 1, "base": 0x2fff5 if mode == BMode.IMM
                              else 9, "ks": 2, "js": 1},
                           c=A(3, base=16 * g.value, js=1), mult=1, shift=-3, sat=32))
             for g in (GFunc.MUL, GFunc.ADD, GFunc.EXP)]
    check(CFG, items, mems=(amem, wmem, table))


def test_scale_exponent_of_last_element():
    """SCALE: the exponent of the segment's last element adds to the shift (clamped)."""
    rng = random.Random(4)
    amem, wmem, table = random_mems(CFG, rng)
    amem[1, 0] = [(63 << 16) | 5, (0 << 16) | 7, (10 << 16) | 0xffff, (1 << 16) | 3]
    amem[0, 0] = [2**31 - 1, -2**31, 12345, -1]
    for shift in (-64, -10, 0, 5, 63):
        items = [Item(vop_args(g=GFunc.MUL, red=Reduce.SUM, s=2, n=2, a=A(0, ks=1, js=2),
                               b={"mode": BMode.SCALE, "bank": 1, "ks": 1, "js": 2},
                               c=A(2, js=1), mult=-32768, shift=shift, sat=sat))
                 for sat in (16, 32, 0)]
        check(CFG, items, mems=(amem, wmem, table))


def test_wrow_tok_and_pos_dims():
    """Space.WROW with Index.TOK (the embedding lookup) and s_pos / n_pos with Index.POS."""
    items = [
        Item(vop_args(g=GFunc.PASS, n=1, s=8,
                      a={"space": Space.WROW, "base": 3, "index": Index.TOK, "istride": 5,
                         "js": 1},
                      c={"bank": 2, "base": 4, "js": 1}, sat=32), pos=2, tok=7),
        Item(vop_args(g=GFunc.MUL, n=3, s=2, n_pos=True, s_pos=False,
                      a={"space": Space.WROW, "base": 60, "index": Index.TOK, "istride": 9,
                         "ks": 3, "js": 17},
                      b={"mode": BMode.MEM, "bank": 1, "index": Index.POS, "istride": 3,
                         "ks": 1}, c={"bank": 3, "index": Index.POS, "istride": 2, "js": 1},
                      sat=32), pos=3, tok=5),
        Item(vop_args(g=GFunc.ADD, red=Reduce.MAX, s_pos=True, n_pos=True,
                      a={"bank": 0, "base": 0x3ffff, "index": Index.POS, "istride": 4095,
                         "ks": 4095, "js": 1},
                      b={"mode": BMode.IMM, "base": 0x8001},
                      c={"bank": 2, "base": 20, "index": Index.POS, "istride": 1, "js": 7},
                      sat=32), pos=4, tok=9),
    ]
    check(CFG, items)


def test_zero_strides_and_bank_modulo():
    """js = ks = 0 (the same element every cycle); bank fields above act_banks wrap."""
    items = [Item(vop_args(g=GFunc.MUL, s=3, n=4, a=A(2, base=9),
                           b={"mode": BMode.MEM, "bank": 3, "base": 17},
                           c=A(0, base=3, js=0), sat=32)),
             Item(vop_args(g=GFunc.ADD, s=2, n=2, a=A(0, base=1, js=0, ks=0),
                           b={"mode": BMode.MEM, "bank": 1, "base": 2, "js": 0, "ks": 0},
                           c=A(2, base=60, js=0), sat=32))]
    check(CFG2, items)


@pytest.mark.parametrize("sat", [16, 32, 0, 1, 63])
def test_saturation_and_negative_shift(sat):
    items = [Item(vop_args(g=GFunc.MUL, s=4, n=2, a=A(0, ks=1, js=2),
                           b={"mode": BMode.MEM, "bank": 1, "ks": 1, "js": 2},
                           c=A(2, js=1), mult=m, shift=sh, sat=sat))
             for m, sh in ((32767, -5), (-32768, 0), (-1, 40), (12345, 63))]
    check(CFG, items, seed=sat)


def test_argmax_ties_first_wins():
    rng = random.Random(6)
    amem, wmem, table = random_mems(CFG, rng)
    amem[0, 0] = [5, 9, 9, 2]
    amem[0, 1] = [-3, -3, -3, -3]
    amem[0, 2] = [7, 1, 7, 7]
    items = [Item(vop_args(g=GFunc.PASS, red=Reduce.ARGMAX, s=3, n=4, a=A(0, ks=1, js=4),
                           c=A(2, js=1))),
             Item(vop_args(g=GFunc.PASS, red=Reduce.MAX, s=3, n=4, a=A(0, ks=1, js=4),
                           c=A(2, base=8, js=1), sat=32))]
    writes, nexts, _ = check(CFG, items, mems=(amem, wmem, table))
    assert [w[-1] for w in writes[:3]] == [1, 0, 0]
    assert nexts == [(writes[2][0], 0)]


def test_accumulator_wraps_at_48_bits():
    amem, wmem, table = random_mems(CFG, random.Random(7))
    amem[0, :] = 2**31 - 1
    amem[1, :] = -2**15
    items = [Item(vop_args(g=GFunc.MUL, red=Reduce.SUM, s=1, n=64, a=A(0, ks=1),
                           b={"mode": BMode.MEM, "bank": 1, "ks": 1}, c=A(2),
                           mult=-1, shift=20, sat=0, init=-2**23)),
             Item(vop_args(g=GFunc.MUL, red=Reduce.SUM, out=OutFunc.RECIP, n=40, a=A(0, ks=1),
                           b={"mode": BMode.MEM, "bank": 1, "ks": 1}, c=A(3)), gap=0)]
    check(CFG, items, mems=(amem, wmem, table))


def test_rsqrt_recip_values():
    """The scalar path, including R = 0 (RECIP 0x7fff) and R negative (unsigned 48-bit)."""
    amem, wmem, table = random_mems(CFG, random.Random(8))
    amem[0, 0] = [0, 1, 2, 3]
    amem[0, 1] = [-1, 2**31 - 1, 1 << 20, 12345]
    items, gap = [], 0
    for e in range(8):
        for out in (OutFunc.RSQRT, OutFunc.RECIP):
            items.append(Item(vop_args(g=GFunc.PASS, red=Reduce.SUM, out=out, n=1,
                                       a=A(0, base=e), c=A(2, base=e + 8 * out.value)),
                              gap=gap))
            gap = isa.vop_latency({"out": out.value}) - 7      # start in the done cycle
    check(CFG, items)


def test_scalar_back_to_back_start_in_done_cycle():
    """A second RECIP whose scalar start falls in the first's done cycle."""
    items = [Item(vop_args(g=GFunc.PASS, out=OutFunc.RECIP, n=1, a=A(0, base=1), c=A(2))),
             Item(vop_args(g=GFunc.PASS, out=OutFunc.RECIP, n=1, a=A(0, base=2), c=A(2,
                  base=1)), gap=isa.RECIP_LAT - 1),
             Item(vop_args(g=GFunc.PASS, red=Reduce.ARGMAX, out=OutFunc.RSQRT, n=5,
                           a=A(1, base=0, ks=1), c=A(3)), gap=isa.RECIP_LAT - 5)]
    check(CFG, items)


@pytest.mark.parametrize("rule", ["write clash", "scalar busy", "scalar chain", "read in flight",
                                  "read after landing", "self overlap", "self overlap js"])
def test_schedule_errors_are_flagged(rule):
    """Each schedule rule of the unit, broken by two VOPs (or one): the golden model refuses
    the sequence, the unit (or the read checker) raises the rule's flag. RECIP issued at t
    lands in t + 23, a one-element MULSHR in t + 8."""
    recip = vop_args(g=GFunc.PASS, out=OutFunc.RECIP, n=1, a=A(0), c=A(1, base=3))
    items = {
        "write clash": [Item(recip), Item(vop_args(g=GFunc.PASS, n=1, a=A(0, base=1),
                                                   c=A(1, base=9)), gap=23 - 8 - 1)],
        "scalar busy": [Item(recip), Item(recip, gap=isa.RECIP_LAT - 2)],
        "scalar chain": [Item(vop_args(g=GFunc.PASS, out=OutFunc.RSQRT, n=1, a=A(0), c=A(1))),
                         Item(recip, gap=isa.ISQRT_LAT - 1)],
        "read in flight": [Item(vop_args(g=GFunc.PASS, n=1, a=A(0), c=A(1, base=5))),
                           Item(vop_args(g=GFunc.PASS, n=1, a=A(1, base=5), c=A(0, base=9)),
                                gap=6)],
        # the write lands (issue + 8) before the read of element 5 (issue + 1 + 8)
        "read after landing": [Item(vop_args(g=GFunc.PASS, n=1, a=A(0), c=A(1, base=5))),
                               Item(vop_args(g=GFunc.PASS, red=Reduce.MAX, n=12,
                                             a=A(1, base=2**18 - 3, ks=1), c=A(0, base=9),
                                             sat=32))],
        # element 0 is rewritten from t + LAT_V on and read up to t + LAT_V + 1
        "self overlap": [Item(vop_args(g=GFunc.PASS, s=isa.LAT_V + 2, n=1, a=A(1, js=0),
                                       c=A(1, js=0), sat=32))],
        # result j to element 4 + 3j lands in t + 8 + j, element e is read in t + e:
        # element 13 (j = 3) lands in t + 11, read in t + 13 (an odd stride)
        "self overlap js": [Item(vop_args(g=GFunc.ADD, s=14, n=1, a=A(1, js=1),
                                          b={"mode": BMode.IMM, "base": 1},
                                          c=A(1, base=4, js=3), sat=32))],
    }[rule]
    flag = check_refused(CFG2, items)
    assert flag == {"write clash": "write_clash", "scalar busy": "scalar_busy",
                    "scalar chain": "scalar_busy", "self overlap": "self_overlap",
                    "self overlap js": "self_overlap"}.get(rule, "hazard")


def test_self_overlap_boundaries():
    """In-place and strided VOPs that read each element before their own write to it lands
    (as the decoder's ``x = x + tmp``), or in the write's own cycle: accepted, no flag."""
    items = [Item(vop_args(g=GFunc.ADD, s=20, n=1, a=A(1, js=1), b={"mode": BMode.IMM,
                                                                  "base": 3},
                           c=A(1, js=1), sat=32)),
             # element 0 read up to t + LAT_V, the cycle its first write lands
             Item(vop_args(g=GFunc.PASS, s=isa.LAT_V + 1, n=1, a=A(0, js=0), c=A(0, js=0),
                           sat=32)),
             Item(vop_args(g=GFunc.ADD, s=6, n=2, a=A(1, base=40, ks=1, js=2),
                           b={"mode": BMode.IMM, "base": 3}, c=A(1, base=40, js=2), sat=32),
                  gap=3)]
    check(CFG2, items)


@_property(20, 200)
def _self_overlap_matches_golden(data_):
    """One VOP whose A (or B) reads the bank it writes, random strides, sizes and bases (the
    modular arithmetic of ``self_overlap``): the golden model refuses it exactly when the
    unit flags it."""
    stride = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 31, 32, 63, 64, 65, 96, 4095])
    use_b = data_.draw(st.booleans())
    a = A(0 if use_b else 1, base=data_.draw(st.integers(0, 2**18 - 1)), js=data_.draw(stride),
          ks=data_.draw(stride))
    b = ({"mode": BMode.MEM, "bank": 1, "base": data_.draw(st.integers(0, 2**18 - 1)),
          "js": data_.draw(stride), "ks": data_.draw(stride)} if use_b
         else {"mode": BMode.IMM, "base": 1})
    items = [Item(vop_args(g=GFunc.ADD, s=data_.draw(st.integers(1, 24)),
                           n=data_.draw(st.integers(1, 3)), a=a, b=b,
                           c=A(1, base=data_.draw(st.integers(0, 2**18 - 1)),
                               js=data_.draw(stride)), sat=32))]
    try:
        check(CFG2, items)
    except golden.GoldenError:
        assert check_refused(CFG2, items) == "self_overlap"


test_self_overlap_matches_golden, test_self_overlap_matches_golden_long = \
    _self_overlap_matches_golden


def test_back_to_back_and_idle():
    """VOPs issued the cycle after the previous final read, then after a gap; one reads the
    results of an earlier one (after they landed)."""
    items = [Item(vop_args(g=GFunc.ADD, s=3, n=2, a=A(0, ks=1, js=2),
                           b={"mode": BMode.IMM, "base": 0xffff}, c=A(2, js=1), sat=32)),
             Item(vop_args(g=GFunc.PASS, s=1, n=1, a=A(1, base=3), c=A(3, base=3),
                           sat=32), gap=0),
             Item(vop_args(g=GFunc.PASS, red=Reduce.ARGMAX, s=2, n=3, a=A(2, ks=1, js=0),
                           c=A(3, base=40, js=1)), gap=20),
             Item(vop_args(g=GFunc.MUL, s=1, n=2, a=A(0), b={"mode": BMode.SQUARE},
                           c=A(3, base=50), sat=32), gap=0)]
    _, _, trace = check(CFG, items)
    idle = [o["idle"] for o in trace]
    assert idle[:4] == [1, 1, 1, 1]          # issue at cycle 3: idle until its next cycle
    assert idle[4] == 0 and idle[-1] == 1


def test_table_host_port():
    cfg = CFG
    dut = VectorUnit(cfg)
    rng = random.Random(9)
    values = [rng.randrange(2**16) for _ in range(isa.TABLE_DEPTH)]
    got = []

    async def bench(ctx):
        ctx.set(dut.t.wen, 1)
        for addr, v in enumerate(values):
            ctx.set(dut.t.waddr, addr)
            ctx.set(dut.t.wdata, v)
            await ctx.tick()
        ctx.set(dut.t.wen, 0)
        for addr in order[:200] + [None]:
            ctx.set(dut.t.raddr, addr or 0)
            await ctx.tick()
            got.append(ctx.get(dut.t.rdata))

    order = list(range(isa.TABLE_DEPTH))
    rng.shuffle(order)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[:200] == [values[a] for a in order[:200]]


# Random VOP sequences ------------------------------------------------------------------------


@st.composite
def vop_items(draw, cfg, count, c_banks=(2, 3)):
    items = []
    scalar_free = 0                  # fewest idle cycles before the next item (see below)
    for _ in range(count):
        g = draw(st.sampled_from(list(GFunc)))
        red = draw(st.sampled_from(list(Reduce)))
        out = draw(st.sampled_from([OutFunc.MULSHR] * 4 + [OutFunc.RSQRT, OutFunc.RECIP]))
        if red == Reduce.ARGMAX:
            out = OutFunc.MULSHR
        pos = draw(st.integers(0, 4))
        tok = draw(st.integers(0, 2 * cfg.rows + 3))
        s_pos = out == OutFunc.MULSHR and draw(st.booleans()) and draw(st.booleans())
        n_pos = draw(st.booleans()) and draw(st.booleans())
        s = 1 if out != OutFunc.MULSHR else draw(st.integers(1, 3))
        n = draw(st.integers(1, 6))
        stride = st.sampled_from([0, 1, 1, 2, 3, 5, 4095])
        ab = draw(st.integers(0, 1))
        if draw(st.integers(0, 4)) == 0:
            a = {"space": Space.WROW, "base": draw(st.integers(0, 2**18 - 1)),
                 "index": Index.TOK, "istride": draw(st.integers(0, 40)),
                 "js": draw(stride), "ks": draw(stride)}
        else:
            a = {"space": Space.ACT, "bank": ab, "base": draw(st.integers(0, 2**18 - 1)),
                 "index": draw(st.integers(0, 2)), "istride": draw(st.integers(0, 4095)),
                 "js": draw(stride), "ks": draw(stride)}
        b = {"mode": draw(st.sampled_from(list(BMode))), "bank": 1 - ab,
             "base": draw(st.integers(0, 2**18 - 1)), "index": draw(st.integers(0, 2)),
             "istride": draw(st.integers(0, 4095)), "js": draw(stride), "ks": draw(stride)}
        c = {"bank": draw(st.sampled_from(c_banks)), "base": draw(st.integers(0, 2**18 - 1)),
             "index": draw(st.integers(0, 2)), "istride": draw(st.integers(0, 4095)),
             "js": draw(stride)}
        args = vop_args(g=g, red=red, out=out, s=s, n=n, s_pos=s_pos, n_pos=n_pos, a=a, b=b,
                        c=c, mult=draw(st.integers(-2**15, 2**15 - 1)),
                        shift=draw(st.integers(-64, 63)), sat=draw(st.sampled_from(
                            [0, 1, 8, 16, 31, 32, 33, 48, 63])),
                        init=draw(st.integers(-2**23, 2**23 - 1)))
        gap = draw(st.sampled_from([0, 0, 0, 1, 3, 12]))
        # one scalar operation at a time, one write per cycle (see rtl/vu.py): issue no
        # earlier than 6 cycles before the previous scalar write lands
        gap = max(gap, scalar_free)
        items.append(Item(args, pos, tok, gap))
        scalar_free = isa.vop_latency(args) - 7
    return items


@_property(30, 300)
def _random_sequences(data_):
    items = data_.draw(vop_items(CFG, 3))
    check(CFG, items, seed=data_.draw(st.integers(0, 2**16)))


test_random_sequences, test_random_sequences_long = _random_sequences


def test_silu_interpolation_rounding():
    """SILU at every interesting fraction, (t1 - t0) * frac hitting the rounding half."""
    rng = random.Random(11)
    amem, wmem, table = random_mems(CFG, rng)
    for i in range(257):
        table[isa.SILU_TABLE + i] = rng.choice([3 * i - 400, rng.randrange(-2**15, 2**15)])
    fracs = [0, 1, 127, 128, 129, 255]
    amem[0] = np.array([-2**15 + rng.randrange(256) * 256
                        + (fracs[e] if e < len(fracs) else rng.choice(fracs + [rng.randrange(256)]))
                        + rng.choice([0, 0, 1 << 16, -1 << 20])
                        for e in range(64)]).reshape(16, 4)
    items = [Item(vop_args(g=GFunc.SILU, s=64, n=1, a=A(0, js=1), c=A(2, js=1), sat=32)),
             Item(vop_args(g=GFunc.SILU, red=Reduce.MAX, s=4, n=16, a=A(0, ks=1, js=16),
                           c=A(3, js=1), sat=32))]
    check(CFG, items, mems=(amem, wmem, table))


@_property(20, 200)
def _random_sequences_shared_banks(data_):
    """Two activation banks: results share a bank with operands, later VOPs read them
    (sequences the golden model rejects as schedule errors: the RTL flags the rule)."""
    items = data_.draw(vop_items(CFG2, 3, c_banks=(0, 1, 2, 3)))
    seed = data_.draw(st.integers(0, 2**16))
    try:
        check(CFG2, items, seed=seed)
    except golden.GoldenError:
        check_refused(CFG2, items, seed=seed)


test_random_sequences_shared_banks, test_random_sequences_shared_banks_long = \
    _random_sequences_shared_banks
