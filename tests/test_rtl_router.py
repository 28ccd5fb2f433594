"""Unit tests of rtl/router.py ``Router`` in Amaranth's simulator.

Documented behaviour: read data (``x_data``, ``w_data``, ``i_data``, ``h_rdata``) is valid the
cycle after the read request; writes land at the end of the request cycle. ``conflict``: a
port asked for by the host and the schedule in one cycle; ``hazard``: an ``x`` read of a word
whose ``y`` write is still in the pipeline (an in-flight token with valid & last).
"""

import random

import pytest
from amaranth.sim import Simulator

from tinylpu import host
from tinylpu.config import Config
from tinylpu.isa import encode, matvec, wait
from tinylpu.rtl.router import Router

CFG = Config(lanes=8, rows=2, wdepth=16, act_banks=2, adepth=16, pdepth=16)   # 4 lane groups
CFG1 = Config(lanes=4, rows=4, wdepth=16, act_banks=1, adepth=16, pdepth=16)  # 1 group, 1 bank
W = host.TARGET_WBANK
A = host.TARGET_ABANK
P = host.TARGET_PROG


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _pack(cfg, lanes):
    return sum((v & ((1 << cfg.data_bits) - 1)) << (l * cfg.data_bits)
               for l, v in enumerate(lanes))


def _unpack(cfg, word):
    return [(word >> (l * cfg.data_bits)) & ((1 << cfg.data_bits) - 1) for l in range(cfg.lanes)]


async def h_write(ctx, dut, target, addr, value):
    ctx.set(dut.h_target, target)
    ctx.set(dut.h_addr, addr)
    ctx.set(dut.h_wdata, value)
    ctx.set(dut.h_wen, 1)
    await ctx.tick()
    ctx.set(dut.h_wen, 0)


async def h_read(ctx, dut, target, addr):
    ctx.set(dut.h_target, target)
    ctx.set(dut.h_addr, addr)
    ctx.set(dut.h_ren, 1)
    await ctx.tick()
    ctx.set(dut.h_ren, 0)
    ctx.set(dut.h_target, 0xff)      # the data belongs to the target of the request cycle
    return ctx.get(dut.h_rdata)


def _clear_schedule(ctx, dut):
    for name in ("w_en", "x_en", "y_en", "i_en", "h_ren", "h_wen"):
        ctx.set(getattr(dut, name), 0)
    ctx.set(dut.inflight, [{}] * 4)


# Host side --------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_host_write_and_read_back_every_target(cfg):
    rng = random.Random(3)
    dut = Router(cfg)
    targets = ([W + r for r in range(cfg.rows)] + [A + a for a in range(cfg.act_banks)] + [P])
    images = {}
    for t in targets:
        bits = 128 if t == P else cfg.word_bits
        images[t] = {addr: rng.getrandbits(bits) for addr in (0, 1, 7, 15)}
    got = {}
    valid = {}

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for t in targets:
            for addr, value in images[t].items():
                await h_write(ctx, dut, t, addr, value)
        for t in targets:
            for addr in images[t]:
                got[(t, addr)] = await h_read(ctx, dut, t, addr)
        for t in targets + [W + cfg.rows, A + cfg.act_banks, P + 1, 0x3f, 0xff]:
            ctx.set(dut.h_target, t)
            valid[t] = ctx.get(dut.h_valid_target)

    _run(dut, bench)
    assert got == {(t, addr): v for t in targets for addr, v in images[t].items()}
    assert valid == {**{t: 1 for t in targets},
                     W + cfg.rows: 0, A + cfg.act_banks: 0, P + 1: 0, 0x3f: 0, 0xff: 0}


def test_host_read_latency_and_invalid_target():
    dut = Router(CFG)
    seen = {}

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        await h_write(ctx, dut, W + 1, 3, 0x1122334455667788)
        await h_write(ctx, dut, A + 0, 3, 0x0102030405060708)
        # request in cycle n: data in n+1, not in n
        ctx.set(dut.h_target, W + 1)
        ctx.set(dut.h_addr, 3)
        ctx.set(dut.h_ren, 1)
        seen["request cycle"] = ctx.get(dut.h_rdata)
        await ctx.tick()
        ctx.set(dut.h_ren, 0)
        seen["next cycle"] = ctx.get(dut.h_rdata)
        # holds while no read is requested, whatever the target and address say
        ctx.set(dut.h_target, A + 0)
        ctx.set(dut.h_addr, 0)
        await ctx.tick()
        seen["held"] = ctx.get(dut.h_rdata)
        # a read of a target that does not exist returns 0 and writes nothing
        await h_write(ctx, dut, W + 2, 3, 0xffffffffffffffff)
        seen["invalid"] = await h_read(ctx, dut, W + 2, 3)
        seen["wbank 1 after"] = await h_read(ctx, dut, W + 1, 3)
        seen["abank 0"] = await h_read(ctx, dut, A + 0, 3)

    _run(dut, bench)
    assert seen == {"request cycle": 0, "next cycle": 0x1122334455667788,
                    "held": 0x1122334455667788, "invalid": 0,
                    "wbank 1 after": 0x1122334455667788, "abank 0": 0x0102030405060708}


# Schedule side ----------------------------------------------------------------------------

def test_schedule_reads_have_one_cycle_latency():
    cfg = CFG
    rng = random.Random(4)
    dut = Router(cfg)
    wimg = [[rng.getrandbits(cfg.word_bits) for _ in range(4)] for _ in range(cfg.rows)]
    aimg = [[rng.getrandbits(cfg.word_bits) for _ in range(4)] for _ in range(cfg.act_banks)]
    prog = [encode(matvec(w_base=i, x_bank=0, x_addr=i, y_bank=1, y_addr=i, n_blocks=1,
                          n_chunks=1, q_mult=i, q_shift=i)) for i in range(3)] + [encode(wait(9))]
    reads = [(0, 0, 1, 3), (3, 1, 2, 0), (1, 1, 0, 2), (2, 0, 3, 1)]   # (w, xbank, x, i)
    got = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for r in range(cfg.rows):
            for addr, v in enumerate(wimg[r]):
                await h_write(ctx, dut, W + r, addr, v)
        for a in range(cfg.act_banks):
            for addr, v in enumerate(aimg[a]):
                await h_write(ctx, dut, A + a, addr, v)
        for addr, v in enumerate(prog):
            await h_write(ctx, dut, P, addr, v)
        ctx.set(dut.tile_owns, 1)
        ctx.set(dut.h_addr, 0)            # the host address must not matter now
        ctx.set(dut.w_en, 1)
        ctx.set(dut.x_en, 1)
        ctx.set(dut.i_en, 1)
        for w, xb, x, i in reads:         # back to back, one per cycle
            ctx.set(dut.w_addr, w)
            ctx.set(dut.x_bank, xb)
            ctx.set(dut.x_addr, x)
            ctx.set(dut.i_addr, i)
            await ctx.tick()
            got.append(([ctx.get(dut.w_data[r]) for r in range(cfg.rows)],
                        ctx.get(dut.x_data), ctx.get(dut.i_data)))
            assert ctx.get(dut.conflict) == 0 and ctx.get(dut.hazard) == 0

    _run(dut, bench)
    assert got == [([wimg[r][w] for r in range(cfg.rows)], aimg[xb][x], prog[i])
                   for w, xb, x, i in reads]


@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_y_write_touches_only_its_lane_group(cfg):
    R, L = cfg.rows, cfg.lanes
    groups = L // R
    dut = Router(cfg)
    base = [[(16 * a + l + 1) for l in range(L)] for a in range(cfg.act_banks)]
    writes = [(g % cfg.act_banks, 5, g, [(-(g + 1) * 10 - r) % 256 for r in range(R)])
              for g in range(groups)]
    after = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        for a in range(cfg.act_banks):
            for addr in (4, 5, 6):
                await h_write(ctx, dut, A + a, addr, _pack(cfg, base[a]))
        for bank, word, g, values in writes:
            ctx.set(dut.tile_owns, 1)
            ctx.set(dut.y_en, 1)
            ctx.set(dut.y_bank, bank)
            ctx.set(dut.y_word, word)
            ctx.set(dut.y_group, g)
            [ctx.set(dut.y_data[r], v) for r, v in enumerate(values)]
            ctx.set(dut.h_wen, 0)
            await ctx.tick()
            ctx.set(dut.y_en, 0)
            ctx.set(dut.tile_owns, 0)
            after.append({(a, addr): _unpack(cfg, await h_read(ctx, dut, A + a, addr))
                          for a in range(cfg.act_banks) for addr in (4, 5, 6)})

    _run(dut, bench)
    model = {(a, addr): list(base[a]) for a in range(cfg.act_banks) for addr in (4, 5, 6)}
    for (bank, word, g, values), snap in zip(writes, after):
        model[(bank, word)][g * R:(g + 1) * R] = values
        assert snap == model
    if cfg is CFG:   # 4 groups of 2 lanes over 2 banks: groups 0, 2 in bank 0, 1, 3 in bank 1
        assert after[-1][(0, 5)] == [246, 245, 3, 4, 226, 225, 7, 8]
        assert after[-1][(1, 5)] == [17, 18, 236, 235, 21, 22, 216, 215]
    else:            # one group: the whole word
        assert after[-1][(0, 5)] == [246, 245, 244, 243]


def test_y_write_lands_at_end_of_cycle_and_x_read_sees_old_word():
    cfg = CFG
    dut = Router(cfg)
    got = []

    async def bench(ctx):
        _clear_schedule(ctx, dut)
        await h_write(ctx, dut, A + 1, 2, _pack(cfg, range(8)))
        ctx.set(dut.tile_owns, 1)
        # same cycle: y write to bank 1 word 2, group 1, and x read of the same word
        ctx.set(dut.y_en, 1)
        ctx.set(dut.y_bank, 1)
        ctx.set(dut.y_word, 2)
        ctx.set(dut.y_group, 1)
        [ctx.set(dut.y_data[r], v) for r, v in enumerate([100, 101])]
        ctx.set(dut.x_en, 1)
        ctx.set(dut.x_bank, 1)
        ctx.set(dut.x_addr, 2)
        await ctx.tick()
        ctx.set(dut.y_en, 0)
        got.append(_unpack(cfg, ctx.get(dut.x_data)))
        await ctx.tick()
        got.append(_unpack(cfg, ctx.get(dut.x_data)))

    _run(dut, bench)
    assert got == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 100, 101, 4, 5, 6, 7]]


# The checker ------------------------------------------------------------------------------

def _conflict_cases(cfg):
    """(schedule settings, host settings, expected conflict)."""
    last_a = cfg.act_banks - 1
    cases = []
    for r in range(cfg.rows):
        cases.append((dict(w_en=1), dict(h_ren=1, h_target=W + r), 1))   # weight bank read
        cases.append((dict(w_en=1), dict(h_wen=1, h_target=W + r), 0))   # its write port
    for a in range(cfg.act_banks):
        cases.append((dict(x_en=1, x_bank=a), dict(h_ren=1, h_target=A + a), 1))   # x read
        cases.append((dict(y_en=1, y_bank=a), dict(h_wen=1, h_target=A + a), 1))   # y write
        cases.append((dict(x_en=1, x_bank=a), dict(h_wen=1, h_target=A + a), 0))
        cases.append((dict(y_en=1, y_bank=a), dict(h_ren=1, h_target=A + a), 0))
    cases += [
        (dict(i_en=1), dict(h_ren=1, h_target=P), 1),                 # instruction memory read
        (dict(i_en=1), dict(h_wen=1, h_target=P), 0),
        (dict(i_en=1), dict(h_ren=1, h_target=W), 0),
        (dict(w_en=1), dict(h_ren=1, h_target=A), 0),
        (dict(w_en=1), dict(h_ren=1, h_target=P), 0),
        (dict(x_en=1, x_bank=0), dict(h_ren=1, h_target=W), 0),
        (dict(w_en=1, x_en=1, i_en=1, y_en=1), dict(), 0),            # schedule alone
        (dict(), dict(h_ren=1, h_target=W), 0),                        # host alone
        (dict(), dict(h_wen=1, h_target=A), 0),
        (dict(), dict(h_ren=1, h_target=P), 0),
        (dict(w_en=1), dict(h_ren=1, h_target=W + cfg.rows), 0),      # no such target
    ]
    if cfg.act_banks > 1:
        cases += [
            (dict(x_en=1, x_bank=0), dict(h_ren=1, h_target=A + last_a), 0),   # other bank
            (dict(y_en=1, y_bank=last_a), dict(h_wen=1, h_target=A), 0),
        ]
    return cases


@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_conflict_flag(cfg):
    dut = Router(cfg)
    cases = _conflict_cases(cfg)
    got = []

    async def bench(ctx):
        for sched, hst, _ in cases:
            _clear_schedule(ctx, dut)
            ctx.set(dut.tile_owns, 1)
            for k, v in {**sched, **hst}.items():
                ctx.set(getattr(dut, k), v)
            got.append(ctx.get(dut.conflict))     # combinational, same cycle
            assert ctx.get(dut.hazard) == 0
            await ctx.tick()

    _run(dut, bench)
    assert got == [c for *_, c in cases]
    assert sum(got) == cfg.rows + 2 * cfg.act_banks + 1


def _token(**kw):
    return {"valid": 1, "first": 0, "last": 1, "y_bank": 0, "y_word": 0, "y_group": 0,
            "mult": 0, "shift": 0, **kw}


@pytest.mark.parametrize("cfg", [CFG, CFG1], ids=lambda c: c.ident)
def test_hazard_flag(cfg):
    dut = Router(cfg)
    b = cfg.act_banks - 1
    hit = _token(y_bank=b, y_word=7)
    cases = []
    for stage in range(4):                    # a matching token in any pipeline stage
        tokens = [_token(valid=0)] * 4
        tokens[stage] = hit
        cases.append((dict(x_en=1, x_bank=b, x_addr=7), tokens, 1))
    idle = [_token(valid=0)] * 3
    cases += [
        (dict(x_en=1, x_bank=b, x_addr=7), [_token(y_bank=b, y_word=7, last=0)] * 4, 0),
        (dict(x_en=1, x_bank=b, x_addr=7), [_token(y_bank=b, y_word=7, valid=0)] * 4, 0),
        (dict(x_en=1, x_bank=b, x_addr=6), [hit] + idle, 0),
        (dict(x_en=1, x_bank=b, x_addr=8), idle + [hit], 0),
        (dict(x_en=0, x_bank=b, x_addr=7), [hit] * 4, 0),
        # the word compares modulo the bank depth, as the golden model does
        (dict(x_en=1, x_bank=b, x_addr=7 + cfg.adepth), [hit] + idle, 1),
        (dict(x_en=1, x_bank=b, x_addr=7), [_token(y_bank=b, y_word=7 + 3 * cfg.adepth)] + idle,
         1),
        # a token without last, then the same word's last in a later stage
        (dict(x_en=1, x_bank=b, x_addr=7),
         [_token(y_bank=b, y_word=7, last=0), _token(valid=0), hit, _token(valid=0)], 1),
    ]
    if cfg.act_banks > 1:
        cases.append((dict(x_en=1, x_bank=0, x_addr=7), [hit] * 4, 0))       # other bank
    got = []

    async def bench(ctx):
        for sched, tokens, _ in cases:
            _clear_schedule(ctx, dut)
            ctx.set(dut.tile_owns, 1)
            for k, v in sched.items():
                ctx.set(getattr(dut, k), v)
            ctx.set(dut.inflight, tokens)
            got.append(ctx.get(dut.hazard))
            assert ctx.get(dut.conflict) == 0
            await ctx.tick()

    _run(dut, bench)
    assert got == [h for *_, h in cases]
