"""Unit tests of rtl/router.py ``Router`` in Amaranth's simulator.

Documented behaviour: read data (``w_data``, ``x_data``, ``a.data``, ``b.data``, ``i.data``,
``tm.rdata``, ``h.rdata``) is valid the cycle after the read request; writes land at the end
of the request cycle. Activation words are ``lanes`` 32-bit lanes; ``y`` writes a lane group,
``c`` one lane. The host's table target goes to the vector unit's table port (``t``).
``conflict``: a port asked for by two users in one cycle; ``hazard``: an ``x`` read of a word
whose ``y`` write is still in the pipeline (an in-flight token with valid & last); both are
reported in the cycle after the requests (registered).
"""

import random

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import memory
from amaranth.sim import Simulator

from tinylpu import host, isa
from tinylpu.config import Config
from tinylpu.isa import INSTR_BITS, TABLE_DEPTH, encode, matvec, next_, wait
from tinylpu.rtl.router import Router

CFG = Config(lanes=8, rows=2, wdepth=16, act_banks=2, adepth=16, pdepth=16, tdepth=16)
CFG1 = Config(lanes=4, rows=4, wdepth=16, act_banks=1, adepth=16, pdepth=16, tdepth=32)
CFG4 = Config(lanes=4, rows=2, wdepth=16, act_banks=4, adepth=16, pdepth=16, tdepth=16)
W = host.TARGET_WBANK
A = host.TARGET_ABANK
P = host.TARGET_PROG
T = host.TARGET_TABLE
K = host.TARGET_TOKENS
ENABLES = ("w_en", "x_en", "y_en", "i_en", "a_en", "b_en", "vw_en", "c_en", "tm_ren", "tm_wen",
           "s_en", "r_en", "m_en", "p_en",
           "h_ren", "h_wen")


class _Tile(Elaboratable):
    """The router with a model of the vector unit's table port: a synchronous 1024 x 16
    memory read every cycle (as the vector unit's): read data of the cycle before's address."""

    def __init__(self, cfg):
        self.router = Router(cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = rt = self.router
        m.submodules.table = table = memory.Memory(shape=16, depth=TABLE_DEPTH, init=[])
        rd, wr = table.read_port(), table.write_port()
        m.d.comb += [rd.addr.eq(rt.t.raddr), rt.t.rdata.eq(rd.data),
                     wr.addr.eq(rt.t.waddr), wr.en.eq(rt.t.wen), wr.data.eq(rt.t.wdata)]
        return m


# ports with a signature: "a_en" is dut.a.en
GROUPED = ("a", "b", "c", "w", "vw", "t", "tm", "h", "i")


def _port(dut, name):
    """The router's port ``name``, flat (``x_en``) or a member of a grouped port (``a_en``)."""
    group, _, member = name.rpartition("_")
    if group in GROUPED:
        return getattr(getattr(dut, group), member)
    return getattr(dut, name)


def _set(ctx, dut, **ports):
    """Drive several of the router's ports in one step."""
    for name, value in ports.items():
        ctx.set(_port(dut, name), value)


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _pack(cfg, lanes):
    """An activation word: lane l at bits 32*l."""
    return sum((v & 0xffffffff) << (32 * l) for l, v in enumerate(lanes))


def _unpack(cfg, word):
    return [(word >> (32 * l)) & 0xffffffff for l in range(cfg.lanes)]


def _bits(cfg, target):
    if target == P:
        return INSTR_BITS
    if target in (T, K):
        return 16
    if A <= target < A + 4:
        return cfg.act_word_bits
    return cfg.word_bits


async def h_write(ctx, dut, target, addr, value):
    _set(ctx, dut, h_target=target, h_addr=addr, h_wdata=value, h_wen=1)
    await ctx.tick()
    ctx.set(dut.h.wen, 0)


async def h_read(ctx, dut, target, addr):
    _set(ctx, dut, h_target=target, h_addr=addr, h_ren=1)
    await ctx.tick()
    ctx.set(dut.h.ren, 0)
    ctx.set(dut.h.target, 0xff)      # the data belongs to the target of the request cycle
    return ctx.get(dut.h.rdata)


def _clear_schedule(ctx, dut):
    for name in ENABLES + ("x_bank", "y_bank", "a_bank", "b_bank", "c_bank"):
        ctx.set(_port(dut, name), 0)
    _set_pending(ctx, dut, [])


def _set_pending(ctx, dut, writes):
    """The writes in flight (one port an entry): ``writes``, the rest empty."""
    for i, port in enumerate(dut.pending):
        ctx.set(port, writes[i] if i < len(writes) else {})


def _y_write(ctx, dut, cfg, bank, word, group, values):
    """Drive the y port: ``values`` (R lanes) into lane group ``group`` of a word."""
    R = cfg.rows
    mask = ((1 << R) - 1) << (group * R)
    data = sum((v % (1 << 32)) << (32 * (group * R + r)) for r, v in enumerate(values))
    _set(ctx, dut, y_en=1, y_bank=bank, y_word=word, y_mask=mask, y_data=data)


# Host side --------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_host_write_and_read_back_every_target(cfg):
    rng = random.Random(3)
    tile = _Tile(cfg)
    dut = tile.router
    targets = ([W + r for r in range(cfg.rows)] + [A + a for a in range(cfg.act_banks)]
               + [P, T, K])
    images = {}
    for t in targets:
        addrs = (0, 1, 7, 15, 1023) if t == T else (0, 1, 7, 15)
        images[t] = {addr: rng.getrandbits(_bits(cfg, t)) for addr in addrs}
    images[P][0] &= ~(1 << isa.ILLEGAL_BIT)      # an illegal word with its legality bit clear
    got = {}
    valid = {}

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for t in targets:
            for addr, value in images[t].items():
                # bits above the target's word are ignored
                await h_write(ctx, dut, t, addr, value | rng.getrandbits(8) << _bits(cfg, t))
        for t in targets:
            for addr in images[t]:
                got[(t, addr)] = await h_read(ctx, dut, t, addr)
        for t in targets + [W + cfg.rows, A + cfg.act_banks, P + 1, T + 1, K + 1, 0x3f, 0xff]:
            ctx.set(dut.h.target, t)
            valid[t] = ctx.get(dut.h.valid_target)

    _run(tile, bench)
    # a program word comes back with its legality bit (isa.stored_word; these random words
    # are illegal, so it is set)
    stored = {t: ({a: isa.stored_word(v, cfg.attention, cfg.wbytes, cfg.pv)
                   for a, v in images[t].items()} if t == P else images[t]) for t in targets}
    assert stored[P][0] == images[P][0] | 1 << isa.ILLEGAL_BIT
    assert got == {(t, addr): v for t in targets for addr, v in stored[t].items()}
    assert valid == {**{t: 1 for t in targets}, W + cfg.rows: 0, A + cfg.act_banks: 0,
                     P + 1: 0, T + 1: 0, K + 1: 0, 0x3f: 0, 0xff: 0}


def test_host_read_latency_and_invalid_target():
    tile = _Tile(CFG)
    dut = tile.router
    seen = {}

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        await h_write(ctx, dut, W + 1, 3, 0x1122334455667788)
        await h_write(ctx, dut, A + 0, 3, 0x0102030405060708)
        # request in cycle n: data in n+1, not in n
        _set(ctx, dut, h_target=W + 1, h_addr=3, h_ren=1)
        seen["request cycle"] = ctx.get(dut.h.rdata)
        await ctx.tick()
        ctx.set(dut.h.ren, 0)
        seen["next cycle"] = ctx.get(dut.h.rdata)
        # holds while no read is requested, whatever the target and address say
        ctx.set(dut.h.target, A + 0)
        ctx.set(dut.h.addr, 0)
        await ctx.tick()
        seen["held"] = ctx.get(dut.h.rdata)
        # a read of a target that does not exist returns 0 and writes nothing
        await h_write(ctx, dut, W + 2, 3, 0xffffffffffffffff)
        seen["invalid"] = await h_read(ctx, dut, W + 2, 3)
        seen["wbank 1 after"] = await h_read(ctx, dut, W + 1, 3)
        seen["abank 0"] = await h_read(ctx, dut, A + 0, 3)
        await h_write(ctx, dut, K, 3, 0xabcd1234)
        seen["token 3"] = await h_read(ctx, dut, K, 3)
        await h_write(ctx, dut, T, 1000, 0x5678fedc)
        seen["table 1000"] = await h_read(ctx, dut, T, 1000)

    _run(tile, bench)
    assert seen == {"request cycle": 0, "next cycle": 0x1122334455667788,
                    "held": 0x1122334455667788, "invalid": 0,
                    "wbank 1 after": 0x1122334455667788, "abank 0": 0x0102030405060708,
                    "token 3": 0x1234, "table 1000": 0xfedc}


# Schedule side ----------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [CFG, CFG4], ids=lambda c: c.ident)
def test_schedule_reads_have_one_cycle_latency(cfg):
    rng = random.Random(4)
    tile = _Tile(cfg)
    dut = tile.router
    nb = cfg.act_banks
    wimg = [[rng.getrandbits(cfg.word_bits) for _ in range(4)] for _ in range(cfg.rows)]
    aimg = [[rng.getrandbits(cfg.act_word_bits) for _ in range(4)] for _ in range(nb)]
    timg = [rng.getrandbits(16) for _ in range(4)]
    prog = [encode(matvec(w_base=i, x_bank=0, x_addr=i, y_bank=1, y_addr=i, n_blocks=1,
                          n_chunks=1, q_mult=i, q_shift=i)) for i in range(3)] + [encode(wait(9))]
    # per cycle: MATVEC (w, x bank, x) or vector unit (w, a bank, a, b bank, b), i, tm
    reads = [("mv", 0, 0, 1, None, None, 3, 2), ("vu", 3, 1, 2, 0, 3, 0, 1),
             ("mv", 1, 1, 0, None, None, 2, 0), ("vu", 2, 0, 3, nb - 1, 1, 1, 3),
             ("vu", None, nb - 1, 0, 0, 2, 3, 3), ("mv", 2, nb - 1, 3, None, None, 0, 0)]
    got, want = [], []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for r in range(cfg.rows):
            for addr, v in enumerate(wimg[r]):
                await h_write(ctx, dut, W + r, addr, v)
        for a in range(nb):
            for addr, v in enumerate(aimg[a]):
                await h_write(ctx, dut, A + a, addr, v)
        for addr, v in enumerate(prog):
            await h_write(ctx, dut, P, addr, v)
        for addr, v in enumerate(timg):
            await h_write(ctx, dut, K, addr, v)
        ctx.set(dut.h.addr, 0)            # the host address must not matter now
        ctx.set(dut.i.en, 1)
        ctx.set(dut.tm.ren, 1)
        for unit, w, xa_bank, xa, b_bank, b, i, tm in reads:     # back to back
            mv = unit == "mv"
            _set(ctx, dut,
                 w_en=int(mv), x_en=int(mv), vw_en=int(not mv and w is not None),
                 a_en=int(not mv), b_en=int(not mv and b_bank != xa_bank))
            ctx.set(dut.w.word if mv else dut.vw.word, 0 if w is None else w)
            ctx.set(dut.x_bank if mv else dut.a.bank, xa_bank)
            ctx.set(dut.x_addr if mv else dut.a.word, xa)
            a_lane, b_lane = (xa + 1) % cfg.lanes, ((b or 0) + 2) % cfg.lanes
            _set(ctx, dut, b_bank=b_bank or 0, b_word=b or 0, a_lane=a_lane, b_lane=b_lane,
                 i_addr=i, tm_raddr=tm)
            assert ctx.get(dut.conflict) == 0 and ctx.get(dut.hazard) == 0
            await ctx.tick()
            entry = dict(i=ctx.get(dut.i.data), tm=ctx.get(dut.tm.rdata))
            expect = dict(i=prog[i], tm=timg[tm])
            if w is not None:
                entry["w"] = [ctx.get(dut.w_data[r]) for r in range(cfg.rows)]
                expect["w"] = [wimg[r][w] for r in range(cfg.rows)]
            # x: the word; a, b: the lane each asked for
            entry["xa"] = ctx.get(dut.x_data if mv else dut.a.data)
            expect["xa"] = aimg[xa_bank][xa] if mv else _unpack(cfg, aimg[xa_bank][xa])[a_lane]
            if not mv and b_bank != xa_bank:
                entry["b"] = ctx.get(dut.b.data)
                expect["b"] = _unpack(cfg, aimg[b_bank][b])[b_lane]
            got.append(entry)
            want.append(expect)

    _run(tile, bench)
    assert got == want


def test_read_data_holds_and_follows_each_users_bank():
    """Each user's data comes from the bank its own last read named, and holds: x the word,
    s and r the lane group, a and b the lane each named with it."""
    cfg = CFG4
    R = cfg.rows
    tile = _Tile(cfg)
    dut = tile.router
    img = {(a, w): _pack(cfg, [(a << 12) | (w << 8) | l for l in range(cfg.lanes)])
           for a in range(4) for w in range(4)}
    got = []

    def group(word, g):
        return _pack(cfg, _unpack(cfg, word)[g * R:(g + 1) * R])

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for (a, w), v in img.items():
            await h_write(ctx, dut, A + a, w, v)
        # four users on four banks, then b on r's bank (a bank's data changes with its
        # next read, whoever makes it)
        for user, b, w, part in (("x", 3, 1, None), ("s", 0, 3, 1), ("r", 2, 0, 1),
                                 ("a", 1, 2, 3), ("b", 2, 3, 0)):
            word = "addr" if user == "x" else "word"
            _set(ctx, dut, **{f"{user}_en": 1, f"{user}_bank": b, f"{user}_{word}": w})
            if part is not None:
                _set(ctx, dut, **{f"{user}_{'lane' if user in 'ab' else 'group'}": part})
            await ctx.tick()
            _set(ctx, dut, **{f"{user}_en": 0, f"{user}_bank": 0})
            if user == "a":
                await ctx.tick()
                got.append([ctx.get(d) for d in (dut.x_data, dut.s_data, dut.r_data,
                                                 dut.a.data)])
        got.append(ctx.get(dut.b.data))

    _run(tile, bench)
    assert got == [[img[(3, 1)], group(img[(0, 3)], 1), group(img[(2, 0)], 1),
                    _unpack(cfg, img[(1, 2)])[3]], _unpack(cfg, img[(2, 3)])[0]]


@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_y_write_touches_only_its_lane_group(cfg):
    R, L = cfg.rows, cfg.lanes
    groups = L // R
    tile = _Tile(cfg)
    dut = tile.router
    base = [[(16 * a + l + 1) for l in range(L)] for a in range(cfg.act_banks)]
    writes = [(g % cfg.act_banks, 5, g, [(-(g + 1) * 100000 - r) % (1 << 32) for r in range(R)])
              for g in range(groups)]
    after = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for a in range(cfg.act_banks):
            for addr in (4, 5, 6):
                await h_write(ctx, dut, A + a, addr, _pack(cfg, base[a]))
        for bank, word, g, values in writes:
            _y_write(ctx, dut, cfg, bank, word, g, values)
            ctx.set(dut.h.wen, 0)
            await ctx.tick()
            ctx.set(dut.y_en, 0)
            after.append({(a, addr): _unpack(cfg, await h_read(ctx, dut, A + a, addr))
                          for a in range(cfg.act_banks) for addr in (4, 5, 6)})

    _run(tile, bench)
    model = {(a, addr): list(base[a]) for a in range(cfg.act_banks) for addr in (4, 5, 6)}
    for (bank, word, g, values), snap in zip(writes, after):
        model[(bank, word)][g * R:(g + 1) * R] = values
        assert snap == model
    m = lambda v: v % (1 << 32)
    if cfg is CFG:   # 4 groups of 2 lanes over 2 banks: groups 0, 2 in bank 0, 1, 3 in bank 1
        assert after[-1][(0, 5)] == [m(-100000), m(-100001), 3, 4, m(-300000), m(-300001), 7, 8]
        assert after[-1][(1, 5)] == [17, 18, m(-200000), m(-200001), 21, 22, m(-400000),
                                     m(-400001)]
    else:            # one group: the whole word
        assert after[-1][(0, 5)] == [m(-100000 - r) for r in range(4)]


@pytest.mark.parametrize("cfg", [CFG, CFG4], ids=lambda c: c.ident)
def test_c_write_touches_only_its_lane(cfg):
    L = cfg.lanes
    tile = _Tile(cfg)
    dut = tile.router
    rng = random.Random(9)
    base = {(a, w): [rng.getrandbits(32) for _ in range(L)]
            for a in range(cfg.act_banks) for w in (2, 3)}
    writes = [(rng.randrange(cfg.act_banks), rng.choice((2, 3)), rng.randrange(L),
               rng.getrandbits(32)) for _ in range(12)]
    writes.append((0, 2, L - 1, 0xffffffff))
    got = {}

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for (a, w), lanes in base.items():
            await h_write(ctx, dut, A + a, w, _pack(cfg, lanes))
        for bank, word, lane, value in writes:        # back to back
            _set(ctx, dut, c_en=1, c_bank=bank, c_word=word, c_lane=lane, c_data=value)
            await ctx.tick()
        ctx.set(dut.c.en, 0)
        for a, w in base:
            got[(a, w)] = _unpack(cfg, await h_read(ctx, dut, A + a, w))

    _run(tile, bench)
    for bank, word, lane, value in writes:
        base[(bank, word)][lane] = value
    assert got == base


def test_writes_land_at_end_of_cycle_and_reads_see_the_old_word():
    cfg = CFG
    tile = _Tile(cfg)
    dut = tile.router
    got = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        await h_write(ctx, dut, A + 1, 2, _pack(cfg, range(8)))
        # same cycle: y write to bank 1 word 2, group 1, and x read of the same word
        _y_write(ctx, dut, cfg, 1, 2, 1, [100, 101])
        _set(ctx, dut, x_en=1, x_bank=1, x_addr=2)
        await ctx.tick()
        ctx.set(dut.y_en, 0)
        ctx.set(dut.x_en, 0)
        got.append(_unpack(cfg, ctx.get(dut.x_data)))
        # a c write of lane 7 and an a read of the same word's lanes 7, then 2
        _set(ctx, dut, c_en=1, c_bank=1, c_word=2, c_lane=7, c_data=0xdeadbeef,
             a_en=1, a_bank=1, a_word=2, a_lane=7)
        await ctx.tick()
        ctx.set(dut.c.en, 0)
        got.append(ctx.get(dut.a.data))
        await ctx.tick()
        ctx.set(dut.a.lane, 2)
        got.append(ctx.get(dut.a.data))
        await ctx.tick()
        got.append(ctx.get(dut.a.data))

    _run(tile, bench)
    assert got == [[0, 1, 2, 3, 4, 5, 6, 7], 7, 0xdeadbeef, 100]


def test_token_memory_sequencer_ports():
    cfg = CFG
    tile = _Tile(cfg)
    dut = tile.router
    got = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        await h_write(ctx, dut, K, 5, 0x1111)
        # the sequencer writes 6 and reads 5 in one cycle, then reads 6 the cycle after
        _set(ctx, dut, tm_wen=1, tm_waddr=6, tm_wdata=0xbeef, tm_ren=1, tm_raddr=5)
        await ctx.tick()
        ctx.set(dut.tm.wen, 0)
        got.append(ctx.get(dut.tm.rdata))
        ctx.set(dut.tm.raddr, 6 + cfg.tdepth)        # modulo the depth
        await ctx.tick()
        ctx.set(dut.tm.ren, 0)
        got.append(ctx.get(dut.tm.rdata))
        await ctx.tick()
        got.append(ctx.get(dut.tm.rdata))             # holds
        got.append(await h_read(ctx, dut, K, 6))

    _run(tile, bench)
    assert got == [0x1111, 0xbeef, 0xbeef, 0xbeef]


# The checker ------------------------------------------------------------------------------

def _conflict_cases(cfg):
    """(settings, expected conflict)."""
    last_a = cfg.act_banks - 1
    cases = []
    for r in range(cfg.rows):
        cases.append((dict(w_en=1, h_ren=1, h_target=W + r), 1))       # weight bank read
        cases.append((dict(vw_en=1, h_ren=1, h_target=W + r), 1))
        cases.append((dict(w_en=1, h_wen=1, h_target=W + r), 0))       # its write port
    cases.append((dict(w_en=1, vw_en=1), 1))                             # MATVEC and VU
    for a in range(cfg.act_banks):
        reads = [dict(x_en=1, x_bank=a), dict(s_en=1, s_bank=a), dict(r_en=1, r_bank=a),
                 dict(a_en=1, a_bank=a), dict(b_en=1, b_bank=a), dict(h_ren=1, h_target=A + a)]
        writes = [dict(y_en=1, y_bank=a), dict(c_en=1, c_bank=a), dict(h_wen=1, h_target=A + a)]
        for port in (reads, writes):
            for i, u in enumerate(port):
                for v in port[i + 1:]:
                    cases.append(({**u, **v}, 1))       # any two users of one port
        cases += [({**reads[0], **reads[1], **reads[2]}, 1)]
        for u in reads:                                  # a read and a write: two ports
            for v in writes:
                if not ("h_ren" in u and "h_wen" in v):
                    cases.append(({**u, **v}, 0))
    cases += [
        (dict(i_en=1, h_ren=1, h_target=P), 1),                  # instruction memory read
        (dict(i_en=1, h_wen=1, h_target=P), 0),
        (dict(i_en=1, h_ren=1, h_target=W), 0),
        (dict(tm_ren=1, h_ren=1, h_target=K), 1),                # token memory
        (dict(tm_wen=1, h_wen=1, h_target=K), 1),
        (dict(tm_ren=1, tm_wen=1), 0),
        (dict(tm_ren=1, h_wen=1, h_target=K), 0),
        (dict(tm_ren=1, h_ren=1, h_target=T), 0),
        (dict(w_en=1, h_ren=1, h_target=A), 0),
        (dict(w_en=1, h_ren=1, h_target=P), 0),
        (dict(x_en=1, x_bank=0, h_ren=1, h_target=W), 0),
        (dict(w_en=1, x_en=1, i_en=1, y_en=1, c_en=1, c_bank=1 % cfg.act_banks, tm_ren=1,
              tm_wen=1), int(cfg.act_banks == 1)),               # schedule alone
        (dict(h_ren=1, h_target=W), 0),                          # host alone
        (dict(h_wen=1, h_target=A), 0),
        (dict(h_ren=1, h_target=P), 0),
        (dict(w_en=1, h_ren=1, h_target=W + cfg.rows), 0),      # no such target
    ]
    if cfg.act_banks > 1:
        cases += [
            (dict(x_en=1, x_bank=0, h_ren=1, h_target=A + last_a), 0),   # other bank
            (dict(y_en=1, y_bank=last_a, h_wen=1, h_target=A), 0),
            (dict(a_en=1, a_bank=0, b_en=1, b_bank=last_a), 0),
            (dict(y_en=1, y_bank=0, c_en=1, c_bank=last_a), 0),
            (dict(x_en=1, x_bank=last_a, a_en=1, a_bank=0, c_en=1, c_bank=last_a), 0),
        ]
    # bank numbers compare modulo the bank count, as the golden model does
    cases.append((dict(a_en=1, a_bank=cfg.act_banks % 4, b_en=1, b_bank=0), 1))
    return cases


@pytest.mark.parametrize("cfg", [CFG, CFG1, CFG4], ids=lambda c: c.ident)
def test_conflict_flag(cfg):
    tile = _Tile(cfg)
    dut = tile.router
    cases = _conflict_cases(cfg)
    got = []

    async def bench(ctx):
        for settings, _ in cases:
            _clear_schedule(ctx, dut)
            for k, v in settings.items():
                ctx.set(_port(dut, k), v)
            await ctx.tick()                      # registered: reported the cycle after
            got.append(ctx.get(dut.conflict))
            assert ctx.get(dut.hazard) == 0

    _run(tile, bench)
    assert [(s, g) for (s, _), g in zip(cases, got)] == [(s, c) for s, c in cases]


def _write(**kw):
    return {"valid": 1, "bank": 0, "word": 0, "mask": 0b11, **kw}


@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_hazard_flag(cfg):
    """A read of lanes a pending write (any pipeline stage) still has to land in. The x
    stream reads whole words; the score stream and RESID's read their masks; RESID's own
    write (stage LAT_RESID_READ) does not count."""
    tile = _Tile(cfg)
    dut = tile.router
    b, n = cfg.act_banks - 1, isa.LAT_WRITE
    hit = _write(bank=b, word=7)
    idle = [_write(valid=0)] * n
    cases = []
    for stage in range(n):                    # a matching write in any pipeline stage
        writes = list(idle)
        writes[stage] = hit
        cases.append((dict(x_en=1, x_bank=b, x_addr=7), writes, 1))
    own = list(idle)
    own[isa.LAT_RESID_READ - 1] = hit
    cases += [
        (dict(x_en=1, x_bank=b, x_addr=7), [_write(bank=b, word=7, valid=0)] * n, 0),
        (dict(x_en=1, x_bank=b, x_addr=6), [hit] + idle[1:], 0),
        (dict(x_en=0, x_bank=b, x_addr=7), [hit] * n, 0),
        # vector-unit reads are not checked here (the golden model rejects such a program)
        (dict(a_en=1, a_bank=b, a_word=7), [hit] * n, 0),
        # the word compares modulo the bank depth, as the golden model does
        (dict(x_en=1, x_bank=b, x_addr=7 + cfg.adepth), [hit] + idle[1:], 1),
        (dict(x_en=1, x_bank=b, x_addr=7), [_write(bank=b, word=7 + 3 * cfg.adepth)]
         + idle[1:], 1),
        # lanes: the score stream and RESID read only their masks
        (dict(s_en=1, s_bank=b, s_word=7, s_mask=0b1100), [hit] * n, 0),
        (dict(s_en=1, s_bank=b, s_word=7, s_mask=0b0110), [hit] + idle[1:], 1),
        (dict(r_en=1, r_bank=b, r_word=7, r_mask=0b0010), own, 0),
        (dict(r_en=1, r_bank=b, r_word=7, r_mask=0b0010), [hit] + idle[1:], 1),
        (dict(r_en=1, r_bank=b, r_word=7, r_mask=0b0100), [hit] * n, 0),
    ]
    if cfg.act_banks > 1:
        cases.append((dict(x_en=1, x_bank=0, x_addr=7), [hit] * n, 0))       # other bank
    got = []

    async def bench(ctx):
        for sched, writes, _ in cases:
            _clear_schedule(ctx, dut)
            for k, v in sched.items():
                ctx.set(_port(dut, k), v)
            _set_pending(ctx, dut, writes)
            await ctx.tick()                      # registered: reported the cycle after
            got.append(ctx.get(dut.hazard))
            assert ctx.get(dut.conflict) == 0

    _run(tile, bench)
    assert got == [h for *_, h in cases]


def test_instruction_memory_holds_full_width_words():
    """The instruction memory is INSTR_BITS wide: a NEXT word survives a host round trip."""
    tile = _Tile(CFG)
    dut = tile.router
    word = encode(next_(0xbeef)) | 1 << (INSTR_BITS - 1)
    got = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        await h_write(ctx, dut, P, 9, word)
        got.append(await h_read(ctx, dut, P, 9))

    _run(tile, bench)
    assert got == [word]
