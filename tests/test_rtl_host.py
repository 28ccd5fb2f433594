"""The host interface, tested through the whole ``Tile`` in Amaranth's simulator: response
beats must equal :meth:`tinylpu.golden.GoldenTile.host` for the same stream, exactly."""

import pathlib
import sys

import numpy as np
import pytest
from amaranth.sim import Simulator
from tinylpu.flow.amaranthsim import run_tile_stream, send

from tinylpu import host, isa
from tinylpu.verify.cases import program_case, schedule_cases, with_counters
from tinylpu.compiler import compile_chain, compile_gemv
from tinylpu.config import Config
from tinylpu.golden import GoldenTile
from tinylpu.rtl.top import Tile

CONFIGS = [
    Config(lanes=4, rows=2, wdepth=64, act_banks=2, adepth=16, pdepth=8),
    Config(lanes=4, rows=4, wdepth=64, act_banks=1, adepth=16, pdepth=8),    # lanes == rows
    Config(lanes=8, rows=2, wdepth=64, act_banks=4, adepth=16, pdepth=8),    # 2-beat words
    Config(lanes=8, rows=4, wdepth=64, act_banks=1, adepth=16, pdepth=8,     # 48-bit words
           data_bits=6, acc_bits=16),
]


def _rand(rng, cfg, shape):
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    return rng.integers(lo, hi, shape)


def _gemvs(cfg, seed, n):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        o = int(rng.integers(1, 3 * cfg.rows + 2))
        i = int(rng.integers(1, 3 * cfg.lanes + 2))
        W, x = _rand(rng, cfg, (o, i)), _rand(rng, cfg, i)
        mult, shift = int(rng.integers(-(1 << 15), 1 << 15)), int(rng.integers(0, 20))
        out.append((W, x, compile_gemv(W, x, cfg, mult=mult, shift=shift)))
    return out


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.ident)
def test_random_gemvs_match_golden(cfg):
    for k, (W, x, g) in enumerate(_gemvs(cfg, seed=cfg.lanes * 10 + cfg.rows, n=3)):
        stream = g.host_stream()
        golden = GoldenTile(cfg)
        expected = golden.host(stream)
        got = run_tile_stream(cfg, stream, len(expected))
        assert got == expected, f"gemv {k}: {W.shape}"
        assert got[:2] == [host.STATUS_DONE, g.schedule.cycles]
        np.testing.assert_array_equal(g.result(got), g.reference([W], x))


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3]], ids=lambda c: c.ident)
@pytest.mark.parametrize("shape,value,mult,shift", [
    ((1, 13), None, -20000, 20),      # one output row, several chunks
    ((7, 1), None, 3, 0),             # one input column, several blocks
    ((5, 9), "min", 1, 0),            # all minimum values: saturates
    ((5, 9), "min", -32768, 30),      # all minimum values, negative multiplier
], ids=["1xN", "Nx1", "min-sat", "min-negmult"])
def test_edge_gemvs_match_golden(cfg, shape, value, mult, shift):
    rng = np.random.default_rng(21)
    if value == "min":
        lo = -(1 << (cfg.data_bits - 1))
        W, x = np.full(shape, lo), np.full(shape[1], lo)
    else:
        W, x = _rand(rng, cfg, shape), _rand(rng, cfg, shape[1])
    g = compile_gemv(W, x, cfg, mult=mult, shift=shift)
    stream = g.host_stream()
    expected = GoldenTile(cfg).host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    assert got[:2] == [host.STATUS_DONE, g.schedule.cycles]
    np.testing.assert_array_equal(g.result(got), g.reference([W], x))


def test_raw_race_is_flagged():
    """A hand-written program whose second MATVEC reads a word the first one is still
    writing: STATUS_RAW_HAZARD, and the old word is used (as in the golden model)."""
    cfg = CONFIGS[0]
    rng = np.random.default_rng(22)
    mv = lambda **kw: isa.matvec(**{**dict(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=8,
                                            n_blocks=1, n_chunks=1, q_mult=1, q_shift=6),
                                    **kw})
    program = [mv(y_bank=0, y_addr=1), mv(x_addr=1, y_addr=9), isa.halt()]
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, _rand(rng, cfg, (4, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, _rand(rng, cfg, (4, cfg.lanes)))
    stream += host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_ABANK + 1, 8, 2)
    stream += host.read_cmd(cfg, host.TARGET_ABANK, 0, 2)
    # a clean run afterwards: the sticky flag was cleared by its start
    stream += host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(isa.halt())])
    stream += host.run_cmd(0)
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    assert golden.last_run.status == host.STATUS_DONE
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    assert got[:2] == [host.STATUS_DONE | host.STATUS_RAW_HAZARD, 2 + isa.ISSUE_LAT + isa.DRAIN]
    assert got[-2:] == [host.STATUS_DONE, 2]


@pytest.mark.parametrize("case", ["hazard", "conflict", "clean", "later write"])
def test_residual_read_is_checked(case):
    """RESID reads its destination LAT_RESID_READ cycles after a block's last read. "hazard":
    the previous MATVEC's write to the same lanes is still in flight (RAW_HAZARD, the old
    value is read, exactly as in the golden model); "conflict": x comes from the same bank,
    whose read port the next block's x read needs in that cycle (PORT_CONFLICT); "clean":
    a WAIT makes the first case safe; "later write": the next MATVEC's block to the same
    lanes is in the pipeline at the RESID read, but it is a later instruction's write, after
    the read in program order (no hazard, as in the golden model). Row multipliers come from
    the row-multiplier memory, which is also read back."""
    cfg = CONFIGS[0]
    rng = np.random.default_rng(9)
    mv = lambda **kw: isa.matvec(**{**dict(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=2,
                                            n_blocks=1, n_chunks=1, q_shift=3, y_bits=16,
                                            m_base=1), **kw})
    resid = mv(w_base=1, epi=isa.Epi.RESID, m_base=0)
    program = {"hazard": [mv(), resid],
               "conflict": [mv(y_bank=0, n_blocks=6, epi=isa.Epi.RESID)],
               "clean": [mv(), isa.wait(isa.LAT_WRITE - isa.LAT_RESID_READ), resid],
               "later write": [resid, mv()]}[case]
    program = program + [isa.halt()]
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, _rand(rng, cfg, (4, cfg.lanes)))
    for a in range(cfg.act_banks):
        stream += host.write_cmd(cfg, host.TARGET_ABANK + a, 0, _rand(rng, cfg, (4, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_MMEM, 0, rng.integers(-999, 999, (4, cfg.rows)))
    stream += host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_MMEM, 0, 4)
    if case != "conflict":                       # after a conflict memory is undefined
        stream += host.read_cmd(cfg, host.TARGET_ABANK + 1, 2, 1)
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    status = {"hazard": host.STATUS_RAW_HAZARD, "conflict": host.STATUS_PORT_CONFLICT,
              "clean": 0, "later write": 0}[case] | host.STATUS_DONE
    assert expected[0] == status
    assert run_tile_stream(cfg, stream, len(expected)) == expected


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[2]], ids=lambda c: c.ident)
def test_chain_and_readback_match_golden(cfg):
    """A two-layer chain (WAITs between dependent MATVECs), then read back every target."""
    rng = np.random.default_rng(5)
    Ws = [_rand(rng, cfg, (7, 9)), _rand(rng, cfg, (5, 7))]
    x = _rand(rng, cfg, 9)
    g = compile_chain(Ws, x, cfg)
    assert any(isa.decode(w)["op"] == isa.Opcode.WAIT for w in g.program)
    stream = g.host_stream()
    stream += host.read_cmd(cfg, host.TARGET_PROG, 0, len(g.program))
    for r in range(cfg.rows):
        stream += host.read_cmd(cfg, host.TARGET_WBANK + r, 0, 3)
    for a in range(cfg.act_banks):
        stream += host.read_cmd(cfg, host.TARGET_ABANK + a, 0, 2)
    expected = GoldenTile(cfg).host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    assert got[0] == host.STATUS_DONE
    y_beats = g.y.words * host.beats(cfg, host.TARGET_ABANK)
    np.testing.assert_array_equal(g.result(got[:2 + y_beats]),
                                  g.reference(Ws, x))


def test_invalid_target_reads_zeros_and_sets_bad_command():
    cfg = CONFIGS[0]                  # rows=2, act_banks=2, 1 beat per word
    stream = host.write_cmd(cfg, host.TARGET_WBANK, 0, np.full((2, cfg.lanes), -3))
    stream += host.header(host.CMD_READ, host.TARGET_WBANK + cfg.rows, 0, 2)   # no such row
    stream += host.read_cmd(cfg, host.TARGET_WBANK, 0, 2)
    stream += host.header(host.CMD_READ, host.TARGET_ABANK + cfg.act_banks, 0, 1)
    stream += host.run_cmd(0)             # instruction memory is all HALT
    stream += host.run_cmd(0)             # the flag was reported once; it is clear now
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    fd = 0xfdfdfdfd
    assert got == [0, 0, fd, fd, 0,
                   host.STATUS_DONE | host.STATUS_BAD_COMMAND, 2,
                   host.STATUS_DONE, 2]


def test_unknown_command_and_invalid_write_set_bad_command():
    cfg = CONFIGS[2]                      # 2 beats per word
    stream = host.header(0x7f, 0, 0, 0)
    stream += host.run_cmd(0)
    stream += host.header(host.CMD_WRITE, 0x3f, 0, 1) + [0x11111111, 0x22222222]
    stream += host.read_cmd(cfg, host.TARGET_PROG, 0, 1)
    stream += host.run_cmd(0)
    stream += host.run_cmd(0)
    expected = GoldenTile(cfg).host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    bad = host.STATUS_DONE | host.STATUS_BAD_COMMAND
    assert got == [bad, 2] + [0] * host.beats(cfg, host.TARGET_PROG) + [bad, 2,
                                                                      host.STATUS_DONE, 2]


def _run_with_backpressure(dut, beats, n_response, ready_pattern, valid_pattern=None):
    """Like run_tile_stream, with host_out.ready following ``ready_pattern(cycle)`` and, if
    given, host_in.valid following ``valid_pattern(cycle)``. Also records whether host_in
    was ever ready while the tile ran."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {"ready_while_running": 0, "stalled": 0}

    async def producer(ctx):
        if valid_pattern is None:
            await send(ctx, dut.host_in, beats)
            return
        i, cycle = 0, 0
        while i < len(beats):
            v = valid_pattern(cycle)
            ctx.set(dut.host_in.valid, v)
            ctx.set(dut.host_in.payload, beats[i] if v else 0xdeadbeef)
            _, _, ready = await ctx.tick().sample(dut.host_in.ready)
            if v and ready:
                i += 1
            cycle += 1
        ctx.set(dut.host_in.valid, 0)

    async def consumer(ctx):
        out, cycle = [], 0
        while len(out) < n_response:
            assert cycle < 20000, f"only {len(out)} of {n_response} beats"
            r = ready_pattern(cycle)
            ctx.set(dut.host_out.ready, r)
            _, _, payload, valid = await ctx.tick().sample(dut.host_out.payload,
                                                           dut.host_out.valid)
            if valid and r:
                out.append(payload)
            elif valid:
                result["stalled"] += 1
            cycle += 1
        ctx.set(dut.host_out.ready, 0)
        result["beats"] = out

    async def monitor(ctx):
        async for _, _, ready, running in ctx.tick().sample(dut.host_in.ready, dut.running):
            if ready and running:
                result["ready_while_running"] += 1

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return result


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2]], ids=lambda c: c.ident)
def test_output_backpressure_gives_identical_beats(cfg):
    rng = np.random.default_rng(11)
    W, x = _rand(rng, cfg, (5, 3 * cfg.lanes - 1)), _rand(rng, cfg, 3 * cfg.lanes - 1)
    g = compile_gemv(W, x, cfg, mult=1234, shift=12)
    stream = g.host_stream() + host.read_cmd(cfg, host.TARGET_PROG, 0, len(g.program))
    stream += host.read_cmd(cfg, host.TARGET_WBANK + 1, 0, 4)
    expected = GoldenTile(cfg).host(stream)
    pattern = np.random.default_rng(12).random(4000) < 0.4
    ready = lambda c: int((c // 7) % 3 != 0 and not pattern[c])     # long and short stalls
    res = _run_with_backpressure(Tile(cfg), stream, len(expected), ready)
    assert res["beats"] == expected
    assert res["stalled"] > 10            # the stalls really happened while data was offered
    assert res["ready_while_running"] == 0
    assert run_tile_stream(cfg, stream, len(expected)) == expected


def test_input_bubbles_and_output_backpressure():
    cfg = CONFIGS[1]
    rng = np.random.default_rng(13)
    W, x = _rand(rng, cfg, (9, 6)), _rand(rng, cfg, 6)
    g = compile_gemv(W, x, cfg, mult=-777, shift=9)
    stream = g.host_stream()
    expected = GoldenTile(cfg).host(stream)
    vpat = np.random.default_rng(14).random(4000) < 0.3
    rpat = np.random.default_rng(15).random(4000) < 0.5
    res = _run_with_backpressure(Tile(cfg), stream, len(expected),
                                 lambda c: int(not rpat[c]), lambda c: int(not vpat[c]))
    assert res["beats"] == expected
    assert res["ready_while_running"] == 0
    np.testing.assert_array_equal(g.result(res["beats"]), g.reference([W], x))


def test_host_interface_throughput():
    """HostInterface docstring: a WRITE takes one cycle per beat; a READ emits one beat per
    cycle the host is ready, plus two cycles per word to fetch it; the input is not ready
    during a run (RUN: start in the cycle after its header, status the cycle after done)."""
    cfg = CONFIGS[2]                              # 2 beats per word
    words = np.arange(-12, 12).reshape(3, cfg.lanes)
    stream = host.write_cmd(cfg, host.TARGET_WBANK, 0, words)      # beats 0..7
    stream += host.read_cmd(cfg, host.TARGET_WBANK, 0, 3)          # beats 8, 9
    stream += host.run_cmd(0)                                      # beats 10, 11 (all HALT)
    stream += host.read_cmd(cfg, host.TARGET_WBANK, 2, 1)          # beats 12, 13
    expected = GoldenTile(cfg).host(stream)
    assert len(expected) == 6 + 2 + 2
    dut = Tile(cfg)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = {"in": [], "out": [], "start": None}

    async def producer(ctx):
        cycle = 0
        ctx.set(dut.host_in.valid, 1)
        for beat in stream:
            ctx.set(dut.host_in.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(dut.host_in.ready)
                cycle += 1
                if ready:
                    got["in"].append(cycle - 1)
                    break
        ctx.set(dut.host_in.valid, 0)

    async def consumer(ctx):
        cycle = 0
        ctx.set(dut.host_out.ready, 1)
        while len(got["out"]) < len(expected):
            _, _, payload, valid, running = await ctx.tick().sample(
                dut.host_out.payload, dut.host_out.valid, dut.running)
            if running and got["start"] is None:
                got["start"] = cycle - 1
            if valid:
                got["out"].append((cycle, payload))
            cycle += 1

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert [p for _, p in got["out"]] == expected
    out_cycles = [c for c, _ in got["out"]]
    # WRITE header and 6 payload beats, READ header: one beat per cycle
    assert got["in"][:10] == list(range(10))
    # READ: per word RADDR, RDATA, then 2 beats
    assert out_cycles[:6] == [12, 13, 16, 17, 20, 21]
    # RUN header accepted right after the READ finished; start the cycle after it
    run_hdr = got["in"][11]
    assert got["in"][10:12] == [22, 23] and got["start"] == run_hdr + 1 == 24
    # HALT-only run: done 2 cycles after start, status and cycles beats the next two cycles
    assert out_cycles[6:8] == [27, 28] and expected[6:8] == [host.STATUS_DONE, 2]
    # no input accepted during the run; the next header the cycle after the cycles beat
    assert got["in"][12:] == [29, 30]
    assert out_cycles[8:] == [33, 34]


# The decoder's targets and GENERATE -------------------------------------------------------

GEN_CFG = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32, tdepth=16, pv=1)


def test_table_tokens_and_32_bit_lanes_round_trip():
    """Full-range activation lanes, table entries (low 16 bits of a beat, signed) and token
    ids (unsigned) written and read back as the golden model does; an invalid write to a
    neighbouring target sets BAD_COMMAND and changes nothing."""
    cfg = CONFIGS[0]
    rng = np.random.default_rng(40)
    acts = rng.integers(-(1 << 31), 1 << 31, (3, cfg.lanes))
    acts[0, :2] = [-(1 << 31), (1 << 31) - 1]
    table = rng.integers(-(1 << 15), 1 << 15, (6, 1))
    ids = rng.integers(0, 1 << 16, (4, 1))
    stream = host.write_cmd(cfg, host.TARGET_ABANK + 1, 13, acts)
    stream += host.write_cmd(cfg, host.TARGET_TABLE, 1020, table[:4])
    stream += host.header(host.CMD_WRITE, host.TARGET_TABLE, 0, 2) + [0xffff8001, 0x12347fff]
    stream += host.write_cmd(cfg, host.TARGET_TOKENS, cfg.tdepth - 4, ids)
    stream += host.header(host.CMD_WRITE, host.TARGET_TOKENS + 1, 0, 1) + [5]
    stream += host.read_cmd(cfg, host.TARGET_ABANK + 1, 13, 3)
    stream += host.read_cmd(cfg, host.TARGET_TABLE, 1020, 4)
    stream += host.read_cmd(cfg, host.TARGET_TABLE, 0, 2)
    stream += host.read_cmd(cfg, host.TARGET_TOKENS, cfg.tdepth - 4, 4)
    stream += host.run_cmd(0)
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    assert got[3 * cfg.lanes + 4:3 * cfg.lanes + 6] == [0x8001, 0x7fff]
    assert got[-2] == host.STATUS_DONE | host.STATUS_BAD_COMMAND


def _generate_case(n_prompt, steps, seed=41):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tb"))
    from token_loop import token_loop_case

    golden = GoldenTile(GEN_CFG)
    case = token_loop_case(golden, "gen", np.random.default_rng(seed), n_prompt=n_prompt,
                           steps=steps)
    return golden, case


def test_generate_matches_golden():
    golden, case = _generate_case(2, 3)
    got = run_tile_stream(GEN_CFG, case["stream"], len(case["expected"]))
    assert got == case["expected"]
    assert case["emissions"] == 3 and case["run_at"] == 6
    assert got[case["run_at"]] == host.STATUS_DONE
    assert [(got[i], got[i + 1]) for i in range(0, 6, 2)] == golden.emitted


def test_generate_then_run_and_generate_without_steps():
    """A second GENERATE reuses the loaded program and starts over at position 0; RUN emits
    nothing (NEXT only steps pos); a GENERATE without steps or without a prompt is a bad
    command that starts nothing."""
    golden, case = _generate_case(1, 2, seed=42)
    stream = case["stream"] + host.run_cmd(0) + host.header(host.CMD_GENERATE, 0, 0, 1)
    stream += host.header(host.CMD_GENERATE, 0, 5, 0) + host.generate_cmd(3, 2)
    stream += host.read_cmd(GEN_CFG, host.TARGET_TOKENS, 0, 5)
    expected = GoldenTile(GEN_CFG).host(stream)
    got = run_tile_stream(GEN_CFG, stream, len(expected))
    assert got == expected
    tail = expected[len(case["expected"]):]
    assert tail[0] == host.STATUS_DONE                                   # RUN: no emissions
    assert tail[6] == host.STATUS_DONE | host.STATUS_BAD_COMMAND        # after 2 ids
    assert len(tail) == 2 + 2 * 2 + 2 + 5


def _run_generate_with_ready(dut, beats, n_response, drop):
    """Send ``beats``; ``host_out.ready`` is low in the cycles ``drop(cycle)`` names, counted
    from the start cycle (= 0) of the run in progress, and high otherwise."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {"beats": []}

    async def producer(ctx):
        await send(ctx, dut.host_in, beats)

    async def consumer(ctx):
        start = None
        cycle = 0
        ctx.set(dut.host_out.ready, 1)
        while len(result["beats"]) < n_response:
            assert cycle < 50000
            running = ctx.get(dut.running)
            if running and start is None:
                start = cycle - 1
            if not running:
                start = None
            ready = int(start is None or not drop(cycle - start))
            ctx.set(dut.host_out.ready, ready)
            _, _, payload, valid = await ctx.tick().sample(dut.host_out.payload,
                                                           dut.host_out.valid)
            if valid and ready:
                result["beats"].append(payload)
            cycle += 1

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return result["beats"]


def test_emission_the_host_is_not_ready_for_is_dropped_and_flagged():
    golden, case = _generate_case(2, 3)
    expected = case["expected"]
    run_at = case["run_at"]
    (_, t1), (_, t2) = golden.emitted[:2]
    # drop the stamp of the first id and the second id itself
    got = _run_generate_with_ready(Tile(GEN_CFG), case["stream"], len(expected) - 2,
                                   lambda c: c in (t1 + 1, t2))
    want = expected[:1] + expected[3:]
    want[run_at - 2] |= host.STATUS_OVERRUN
    assert got == want
    # a later run's status is clean again
    stream = case["stream"] + host.run_cmd(0)
    expected = GoldenTile(GEN_CFG).host(stream)
    got = _run_generate_with_ready(Tile(GEN_CFG), stream, len(expected) - 6,
                                   lambda c: c in {t for _, t in golden.emitted}
                                   or c - 1 in {t for _, t in golden.emitted})
    want = expected[6:]
    want[0] |= host.STATUS_OVERRUN
    assert got == want
    assert got[-2] == host.STATUS_DONE


def _vop_same_bank_ab(**kw):
    """A VOP reading A and B from bank 0 (isa.vop refuses it: one read port per bank)."""
    instr = isa.vop(b={"mode": isa.BMode.MEM, "bank": 1, "ks": 1}, **kw)
    instr["args"]["vop"]["b"]["bank"] = 0
    return instr


@pytest.mark.parametrize("what", ["write port", "read port"])
def test_port_conflicts_between_units_are_flagged(what):
    """Two users of one activation-bank port in one cycle: a vector-unit result and a MATVEC
    block landing in bank 1 together, or a VOP reading A and B from one bank. The status
    carries PORT_CONFLICT as in the golden model (the data of the losing user differs: one
    port serves one user), and the next run is clean."""
    cfg = GEN_CFG
    L = cfg.lanes
    if what == "write port":
        # the block read in 1, 2 lands at 2 + LAT_WRITE; the VOP reads its S elements from
        # 3 on, its last lands at 3 + S - 1 + LAT_V: the same cycle
        s = isa.LAT_WRITE - isa.LAT_V
        program = [isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=2, n_blocks=1,
                              n_chunks=2, q_mult=1, q_shift=0, y_bits=16),
                   isa.vop(g=isa.GFunc.PASS, s=s, a={"bank": 0, "js": 1},
                           c={"bank": 1, "base": 5 * L + 3, "js": 1}),
                   isa.halt()]
    else:
        program = [_vop_same_bank_ab(g=isa.GFunc.ADD, n=4, a={"bank": 0, "ks": 1},
                                     c={"bank": 1, "base": 9}), isa.halt()]
    rng = np.random.default_rng(44)
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, rng.integers(-999, 999, (4, L)))
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, _rand(rng, cfg, (4, L)))
    stream += host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_ABANK, 0, 4) + host.run_cmd(7)
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert expected[0] == host.STATUS_DONE | host.STATUS_PORT_CONFLICT
    assert got == expected


def _load_and_run(cfg, rng, program):
    """The host stream that writes ``program``, four random words of every weight bank, of
    activation bank 0 and of the multipliers, then runs from pc 0."""
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, _rand(rng, cfg, (4, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, rng.integers(-3000, 3000, (4, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_MMEM, 0, rng.integers(-32768, 32768, (4, cfg.rows)))
    return stream + host.run_cmd(0)


@pytest.mark.parametrize("case", ["clean", "early"])
def test_norm_register(case):
    """A VOP NORM (RMSNorm's scale of a vector into the norm register), then a MATVEC with
    ``norm`` that applies it. "clean": the MATVEC issues after the NORM landed, and the RTL
    equals the golden model; "early": it issues before, which the golden model refuses and
    the RTL flags (RAW_HAZARD)."""
    cfg = CONFIGS[0]
    rng = np.random.default_rng(12)
    norm = isa.vop(g=isa.GFunc.MUL, n=4, a=dict(bank=0, base=0, ks=1),
                   b=dict(mode=isa.BMode.SQUARE), c=dict(bank=1, base=0),
                   out=isa.OutFunc.NORM, init=77, sat=32)
    mv = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=2, n_blocks=2, n_chunks=1,
                    q_shift=2, y_bits=16, m_base=1, norm=True)
    lat = isa.vop_latency(norm["args"]["vop"])
    program = [norm] + ([isa.wait(lat)] if case == "clean" else []) + [mv, isa.halt()]
    stream = _load_and_run(cfg, rng, program)
    reads = host.read_cmd(cfg, host.TARGET_ABANK + 1, 0, 3)
    if case == "clean":
        golden = GoldenTile(cfg)
        expected = golden.host(stream + reads)
        assert expected[0] == host.STATUS_DONE
        got = run_tile_stream(cfg, stream + reads, len(expected))
        assert got == expected
        y = np.array(got[-3 * cfg.lanes:]).reshape(3, cfg.lanes)
        assert y[0, 0] == 0 and np.any(y[2] != 0)           # c is not written; y is
    else:
        with pytest.raises(Exception, match="reads the norm register in cycle"):
            GoldenTile(cfg).host(stream)
        got = run_tile_stream(cfg, stream, 2)
        assert got[0] == host.STATUS_DONE | host.STATUS_RAW_HAZARD


@pytest.mark.parametrize("case", ["clean", "early"])
def test_sum_of_squares_sets_the_norm_register(case):
    """A RESID MATVEC with ``ss`` sums the squares of the values it writes (plus ss_init)
    into the norm unit; a norm MATVEC applies the scale. "clean": its first block reads the
    norm register (LAT_NORM_READ after its read) the cycle after the scale landed
    (LAT_SS_NORM after the resid's last read), and the RTL equals the golden model; "early":
    one cycle before, which the golden model refuses and the RTL flags (RAW_HAZARD). Two
    totals into the norm unit in one cycle: tinylpu.verify.cases.schedule_cases."""
    cfg = CONFIGS[0]
    rng = np.random.default_rng(13)
    resid = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=2,
                       n_chunks=1, q_shift=9, y_bits=16, m_base=0, epi=isa.Epi.RESID,
                       ss_init=1000)
    norm = isa.matvec(w_base=2, x_bank=1, x_addr=0, y_bank=0, y_addr=2, n_blocks=2,
                      n_chunks=1, q_shift=2, y_bits=16, m_base=1, norm=True)
    # resid: c_final = 2, the scale lands at the end of 2 + LAT_SS_NORM; norm issues in
    # 3 + wait and reads the register in 3 + wait + LAT_NORM_READ
    wait = isa.wait(isa.LAT_SS_NORM - isa.LAT_NORM_READ - (1 if case == "early" else 0))
    program = [resid, wait, norm, isa.halt()]
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, _rand(rng, cfg, (4, cfg.lanes)))
    for a in range(cfg.act_banks):
        stream += host.write_cmd(cfg, host.TARGET_ABANK + a, 0,
                                 rng.integers(-3000, 3000, (4, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_MMEM, 0, rng.integers(1, 32768, (4, cfg.rows)))
    stream += host.run_cmd(0)
    reads = host.read_cmd(cfg, host.TARGET_ABANK, 2, 1)
    if case == "clean":
        golden = GoldenTile(cfg)
        expected = golden.host(stream + reads)
        assert expected[0] == host.STATUS_DONE
        assert golden.norm >> 16 > 0                   # a scale was computed and applied
        got = run_tile_stream(cfg, stream + reads, len(expected))
        assert got == expected
    else:
        with pytest.raises(Exception, match="reads the norm register in cycle"):
            GoldenTile(cfg).host(stream)
        got = run_tile_stream(cfg, stream, 2)
        assert got[0] == host.STATUS_DONE | host.STATUS_RAW_HAZARD


def test_qk_started_while_the_transposer_writes_flags_its_own_reads_too():
    """A QK (s_tr) issued while the previous one's scores are still being written (UNIT_BUSY)
    that reads K inside its own score range: the RTL's range is the new QK's from its issue
    and the transposer is still active, so its first K read is a RAW_HAZARD as well; the
    golden model says so too (found by a random campaign on a pv=0 tile)."""
    cfg = GEN_CFG
    golden = GoldenTile(cfg)
    golden.strict = False
    qk = isa.qk(q_addr=0, k_bank=1, k_addr=8, s_bank=1, s_addr=8, shift=9, n=1, s_tr=True)
    rng = np.random.default_rng(5)
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in (qk, qk,
                                                                              isa.halt())])
    stream += host.write_cmd(cfg, host.TARGET_ABANK + 1, 0, rng.integers(-999, 999, (32, 8)))
    stream += host.run_cmd(0)
    expected = golden.host(stream)
    assert expected[0] == host.STATUS_DONE | host.STATUS_UNIT_BUSY | host.STATUS_RAW_HAZARD
    assert run_tile_stream(cfg, stream, len(expected)) == expected


@pytest.mark.parametrize("cfg", [GEN_CFG, CONFIGS[1]], ids=lambda c: c.ident)
def test_schedule_rules_are_flagged(cfg):
    """Every schedule rule the golden model refuses and the RTL reports by a status bit
    (tinylpu.verify.cases.schedule_cases: a vector-unit write clash, a busy scalar unit, reads of
    writes in flight from the MATVEC pipeline, the vector unit or a PV drain, a VOP reading
    its own landed write, two totals into the norm unit, a norm MATVEC before the norm
    register lands, NEXT before the ARGMAX lands, NEXT right behind an ARGMAX MATVEC or a
    one-element ARGMAX VOP; with attention a PV pass's result meeting a MATVEC's in the
    output unit, a PV pass during QK's maxima, and the score transposer's three rules), one
    hand-written program each, in one simulation: the golden model refuses each
    program (checked by schedule_cases), the RTL finishes with DONE, the rule's bit and the
    timing model's cycles; then a clean run."""
    golden = GoldenTile(cfg)
    cases = schedule_cases(golden)
    # + the PV pass's and the transposer's rules
    assert len(cases) == 14 + (cfg.act_banks > 1 and cfg.attention and cfg.pv) + 5 * cfg.attention
    stream = [beat for case in cases for beat in case["stream"]] + host.run_cmd(7)
    expected = [beat for case in cases for beat in case["expected"]]
    expected += golden.host(host.run_cmd(7))
    assert expected[-2:] == [host.STATUS_DONE, 2]
    got = run_tile_stream(cfg, stream, len(expected))
    for i, case in enumerate(cases):
        assert got[2 * i:2 * i + 2] == case["expected"], case["name"]
    assert got[-2:] == expected[-2:]


@pytest.mark.parametrize("unit", ["matvec", "vop"])
def test_next_waits_for_the_argmax(unit):
    """NEXT reads the next-token register: an ARGMAX MATVEC writes it at the end of
    c_final + LAT_ARGMAX, an ARGMAX VOP with its last result (c_final + LAT_V), c_final being
    ISSUE_LAT after the issue slot's last cycle. A NEXT in the cycle after is clean and equals
    the golden model; one cycle earlier the golden model refuses it and the RTL flags
    RAW_HAZARD."""
    cfg = GEN_CFG
    if unit == "matvec":
        first = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=2,
                           n_chunks=1, epi=isa.Epi.ARGMAX, y_bits=16)
        lat = isa.ISSUE_LAT + isa.LAT_ARGMAX
    else:
        first = isa.vop(g=isa.GFunc.PASS, red=isa.Reduce.ARGMAX, n=3, a=dict(bank=0, ks=1),
                        c=dict(bank=1, base=5))
        lat = isa.ISSUE_LAT + isa.LAT_V
    rng = np.random.default_rng(45)
    stream = []
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, _rand(rng, cfg, (4, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, rng.integers(-999, 999, (2, cfg.lanes)))
    stream += host.write_cmd(cfg, host.TARGET_TOKENS, 0, [[3]])
    for gap in (lat - 1, lat):      # the NEXT issues gap + 1 cycles after the slot's last
        program = [first, isa.wait(gap), isa.next_(0), isa.halt()]
        stream += host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
        stream += host.generate_cmd(1, 1)
        if gap == lat - 1:
            with pytest.raises(Exception, match="before the argmax result lands"):
                GoldenTile(cfg).host(stream)
            got = run_tile_stream(cfg, stream, 4)
            assert got[2] == host.STATUS_DONE | host.STATUS_RAW_HAZARD
            stream = stream[:-len(host.generate_cmd(1, 1))]
    expected = GoldenTile(cfg).host(stream)
    assert expected[2] == host.STATUS_DONE
    assert run_tile_stream(cfg, stream, len(expected)) == expected


# Busy counters ------------------------------------------------------------------------------

def _counters(beats):
    return host.parse_counters(beats[-len(host.Counter):])


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2]], ids=lambda c: c.ident)
def test_busy_counters_of_gemvs_match_golden(cfg):
    """A GEMV, then a chain with WAITs: the busy counters read back after each run equal the
    golden model's, and the values worked out by hand from the schedule."""
    rng = np.random.default_rng(50)
    W, x = _rand(rng, cfg, (3 * cfg.rows + 1, 2 * cfg.lanes + 1)), _rand(rng, cfg, 2 * cfg.lanes + 1)
    gemv = compile_gemv(W, x, cfg, mult=77, shift=9)
    chain = compile_chain([_rand(rng, cfg, (7, 9)), _rand(rng, cfg, (5, 7))],
                          _rand(rng, cfg, 9), cfg)
    golden = GoldenTile(cfg)
    expected = []
    for g in (gemv, chain):
        expected += golden.host(g.host_stream() + host.counters_cmd(cfg))
    stream = gemv.host_stream() + host.counters_cmd(cfg) + chain.host_stream() \
        + host.counters_cmd(cfg)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    n_gemv = len(expected) - len(golden.host(host.counters_cmd(cfg))) - 2 - \
        chain.y.words * host.beats(cfg, host.TARGET_ABANK)
    first, second = _counters(got[:n_gemv]), _counters(got)
    nb, nc = 4, 3                                  # blocks of R rows, chunks of L lanes
    # block b's result enters the output unit in 1 + (b + 1) * nc - 1 + LAT_RESULT and is
    # in it for LAT_OUT + 1 cycles; with nc < LAT_OUT + 1 they overlap
    out = (nb - 1) * min(nc, isa.LAT_OUT + 1) + isa.LAT_OUT + 1
    assert first == {"cycles": gemv.schedule.cycles, "mac": nb * nc, "vu": 0, "out": out,
                     "drain": 0, "wait": 0, "next": 0}
    mv = [isa.decode(w) for w in chain.program]
    assert second["cycles"] == chain.schedule.cycles          # cleared by the second start
    assert second["mac"] == sum(isa.duration(i) for i in mv if i["op"] == isa.Opcode.MATVEC)
    assert second["wait"] == sum(isa.duration(i) for i in mv if i["op"] == isa.Opcode.WAIT) > 0


def test_busy_counters_of_vops_waits_and_loops_match_golden():
    """A hand-written program (VOPs, WAIT, a LOOP of VOP + WAIT, a MATVEC) with its counts
    worked out by hand, then random token-loop programs under GENERATE (VOPs of every
    kind, WAITs, MATVECs, QK/PV, NEXT): the counters read back equal the golden model's."""
    cfg = GEN_CFG
    G = isa.GFunc
    add = isa.vop(g=G.ADD, s=8, n=1, a=dict(bank=0, js=1), b=dict(mode=isa.BMode.IMM, base=5),
                  c=dict(bank=1, js=1), sat=16)
    total = isa.vop(g=G.PASS, red=isa.Reduce.SUM, s=1, n=8, a=dict(bank=1, ks=1),
                    c=dict(bank=0, base=64), sat=24)
    mv = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=4, n_blocks=2, n_chunks=1,
                    q_mult=1, q_shift=4)
    program = [add, isa.wait(8), isa.loop(3, 2), total, isa.wait(2), mv, isa.halt()]
    rng = np.random.default_rng(51)
    golden = GoldenTile(cfg)
    case = program_case("vops", golden, program,
                        [(host.TARGET_WBANK + r, 0, _rand(rng, cfg, (2, cfg.lanes)))
                         for r in range(cfg.rows)]
                        + [(host.TARGET_ABANK, 0, rng.integers(-99, 99, (2, cfg.lanes)))], [])
    cases = [with_counters(golden, case)]
    assert _counters(cases[0]["expected"]) == {
        "cycles": golden.last_run.cycles, "mac": 2, "vu": 8 + 3 * 8, "out": isa.LAT_OUT + 2,
        "drain": 0, "wait": 8 + 1 + 3 * 2, "next": 0}
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tb"))
    from token_loop import random_token_program_case, token_loop_case

    cases.append(with_counters(golden, token_loop_case(golden, "token loop", rng, n_prompt=2,
                                                       steps=2)))
    cases += [with_counters(golden, random_token_program_case(golden, f"random {i}", rng))
              for i in range(3)]
    for c in cases[1:]:
        counts = _counters(c["expected"])
        # NEXT at positions 0 .. n_prompt + steps - 2, emitting from n_prompt - 1 on
        assert counts["next"] % isa.NEXT_CYCLES == 0
        assert counts["next"] >= isa.NEXT_CYCLES * c["emissions"] > 0
        assert counts["cycles"] == c["cycles"] and counts["vu"] > 0
    assert any(_counters(c["expected"])["wait"] for c in cases[2:])
    stream = [beat for c in cases for beat in c["stream"]]
    expected = [beat for c in cases for beat in c["expected"]]
    got = run_tile_stream(cfg, stream, len(expected))
    at = 0
    for c in cases:
        n = len(c["expected"])
        assert got[at:at + n] == c["expected"], c["name"]
        at += n


def test_busy_counters_of_a_decoder_match_golden_and_profile():
    """A tiny synthetic Llama compiled by tinylpu.compiler.decoder (MATVECs with every epilogue, QK,
    PV, VOPs, WAITs, NEXT) under GENERATE: the counters read back equal the golden model's,
    each is busy, and each decode step's share (the golden model's counters at the end of
    its NEXT minus those at the end of the previous one) is what tinylpu.compiler.profile predicts."""
    from tinylpu.compiler.decoder import compile_decoder, config_for
    from tinylpu.model.intmodel import quantize
    from tinylpu.model import synthetic_model
    from tinylpu.compiler.profile import schedule

    m = synthetic_model(seed=3, dim=16, hidden_dim=32, n_layers=1, n_heads=2, n_kv_heads=1,
                        vocab_size=16, seq_len=8)
    rng = np.random.default_rng(3)
    qm = quantize(m, [list(rng.integers(0, 16, 8)) for _ in range(2)])
    prog = compile_decoder(qm, config_for(qm, 8), 8)
    cfg, golden = prog.cfg, GoldenTile(prog.cfg)
    prompt, steps = [1, 5], 2
    stream = prog.load_stream() + prog.generate_stream(prompt, steps) + host.counters_cmd(cfg)
    expected = golden.host(stream)
    run = golden.last_run
    counts = _counters(expected)
    assert counts == run.counters and counts["cycles"] == run.cycles
    assert all(counts.values())
    prev = dict.fromkeys(host.COUNTERS, 0) | {"cycles": 1}      # the first issue cycle
    assert len(run.next_counters) == len(prompt) + steps - 1
    for pos, at_next in enumerate(run.next_counters):
        step = {k: at_next[k] - prev[k] for k in host.COUNTERS}
        assert step == schedule(prog, pos).counters(), pos
        prev = at_next
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected


def test_busy_counters_are_cleared_read_only_and_zero_beyond_the_last():
    """Counters hold after a run and are cleared by the next start (a HALT-only RUN counts
    its 2 cycles and nothing else); a WRITE to them is a bad command whose payload is
    dropped; addresses past the last counter read 0."""
    cfg = CONFIGS[0]
    rng = np.random.default_rng(52)
    program = [isa.wait(3), isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0,
                                       n_blocks=1, n_chunks=2, q_mult=1, q_shift=3),
               isa.halt()]
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, _rand(rng, cfg, (2, cfg.lanes)))
    stream += host.run_cmd(0) + host.counters_cmd(cfg)
    stream += host.header(host.CMD_WRITE, host.TARGET_COUNTERS, 1, 2) + [7, 7]
    n = len(host.Counter)
    stream += host.header(host.CMD_READ, host.TARGET_COUNTERS, n - 2, 4)
    stream += host.run_cmd(2) + host.counters_cmd(cfg)           # pc 2: HALT
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    got = run_tile_stream(cfg, stream, len(expected))
    assert got == expected
    # the MATVEC (issued in 4) reads in 5 and 6; the tile is idle from 6 + DRAIN
    first = {"cycles": 3 + 2 + isa.ISSUE_LAT + isa.DRAIN, "mac": 2, "vu": 0, "out": isa.LAT_OUT + 1,
             "drain": 0, "wait": 3, "next": 0}
    assert got[:2] == [host.STATUS_DONE, first["cycles"]]
    assert host.parse_counters(got[2:2 + n]) == first
    assert got[2 + n:2 + n + 4] == [first["wait"], first["next"], 0, 0]
    assert got[2 + n + 4:2 + n + 6] == [host.STATUS_DONE | host.STATUS_BAD_COMMAND, 2]
    assert host.parse_counters(got[-n:]) == dict.fromkeys(host.COUNTERS, 0) | {"cycles": 2}


def test_illegal_instructions_stop_the_run():
    """Every kind of illegal word (tinylpu.verify.cases.illegal_words) stops the run where it
    stands, with DONE | ILLEGAL_INSTRUCTION, the golden model's cycle count and memory: the
    MATVEC before it lands, the one after it never issues. Then a legal run is clean."""
    from tinylpu.verify.cases import illegal_cases
    cfg = CONFIGS[0]
    golden = GoldenTile(cfg)
    rng = np.random.default_rng(61)
    loads = [(host.TARGET_WBANK + r, 0, _rand(rng, cfg, (2, cfg.lanes))) for r in range(cfg.rows)]
    loads.append((host.TARGET_ABANK, 0, rng.integers(-99, 99, (2, cfg.lanes))))
    mv = lambda **kw: isa.matvec(**{**dict(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=8,
                                            n_blocks=1, n_chunks=1, q_mult=1, q_shift=3,
                                            y_bits=16), **kw})
    cases = illegal_cases(golden, loads, mv)
    clean = program_case("clean", golden, [mv(), isa.halt()], loads, [])
    stream = [b for c in cases + [clean] for b in c["stream"]]
    expected = [b for c in cases + [clean] for b in c["expected"]]
    assert len(cases) == 12 + (cfg.attention and not cfg.pv)    # + PV without its datapath
    assert all(c["expected"][0] == host.STATUS_DONE | host.STATUS_ILLEGAL for c in cases)
    assert clean["expected"][0] == host.STATUS_DONE
    assert run_tile_stream(cfg, stream, len(expected)) == expected


@pytest.mark.parametrize("cfg", [GEN_CFG, CONFIGS[0]], ids=lambda c: c.ident)
def test_control_registers(cfg):
    """tinylpu.verify.cases.ctrl_cases on the RTL: TIMEOUT at the cycle budget (a program without
    HALT ends), RANGE for a GENERATE past the token memory or Ctrl.POSITIONS, read-back;
    beat for beat the golden model's, then a clean run."""
    from tinylpu.verify.cases import ctrl_cases
    golden = GoldenTile(cfg)
    cases = ctrl_cases(golden)
    clean = program_case("clean", golden, [isa.wait(2), isa.halt()], [], [])
    stream = [b for c in cases + [clean] for b in c["stream"]]
    expected = [b for c in cases + [clean] for b in c["expected"]]
    assert [c["expected"][0] & ~host.STATUS_BAD_COMMAND for c in cases] == [
        host.STATUS_DONE | host.STATUS_TIMEOUT] * 2 + [host.STATUS_DONE] + [host.STATUS_RANGE] * 2
    assert run_tile_stream(cfg, stream, len(expected)) == expected


def test_a_kept_simulator_starts_each_stream_from_reset():
    """run_tile_stream keeps one simulator per configuration and resets it for each stream:
    after a stream that writes the program, weights, activations and multipliers and runs,
    the next stream reads every one of them back as a new tile would (zeros; the golden
    model's fresh tile), and the status of a run is not left over either."""
    cfg = CONFIGS[2]
    rng = np.random.default_rng(5)
    program = [isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=2, n_blocks=2,
                          n_chunks=1, q_shift=2, y_bits=16, m_base=1), isa.halt()]
    writes = _load_and_run(cfg, rng, program)
    reads = (host.read_cmd(cfg, host.TARGET_WBANK, 0, 4) + host.read_cmd(cfg, host.TARGET_ABANK, 0, 4)
             + host.read_cmd(cfg, host.TARGET_ABANK + 1, 0, 4))
    written = GoldenTile(cfg).host(writes + reads)
    assert run_tile_stream(cfg, writes + reads, len(written)) == written
    fresh = GoldenTile(cfg).host(reads)
    assert fresh != written[-len(fresh):] and not any(fresh)
    assert run_tile_stream(cfg, reads, len(fresh)) == fresh
    assert run_tile_stream(cfg, writes, 2) == written[:2]
