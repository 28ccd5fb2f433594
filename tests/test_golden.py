"""The golden model against independent NumPy math, its timing and its host protocol."""

import numpy as np
from pyref import requant_int8
import pytest
from hypothesis import given, settings, strategies as st

from tinylpu import host, isa
from tinylpu.compiler import ScheduleError, analyze, compile_chain, compile_gemv
from tinylpu.config import Config
from tinylpu.golden import GoldenError, GoldenTile

DEFAULT = Config()
SMALL = Config(lanes=8, rows=2, wdepth=256, act_banks=1, adepth=64)
CONFIGS = [DEFAULT, SMALL]




@st.composite
def gemv_problems(draw):
    cfg = draw(st.sampled_from(CONFIGS))
    out = draw(st.integers(1, 80))
    nb = -(-out // cfg.rows)
    # keep the weights inside one weight bank (the small config holds 256 words)
    max_in = min(100, cfg.lanes * (cfg.wdepth // nb))
    inp = draw(st.integers(1, max_in))
    seed = draw(st.integers(0, 2**32 - 1))
    mode = draw(st.sampled_from(["uniform", "uniform", "extremes", "small"]))
    rng = np.random.default_rng(seed)
    if mode == "uniform":
        W, x = rng.integers(-128, 128, (out, inp)), rng.integers(-128, 128, inp)
    elif mode == "extremes":
        W, x = rng.choice([-128, 127], (out, inp)), rng.choice([-128, 127], inp)
    else:
        W, x = rng.integers(-3, 4, (out, inp)), rng.integers(-3, 4, inp)
    mult = draw(st.integers(-(1 << 15), (1 << 15) - 1))
    shift = draw(st.one_of(st.integers(0, 63), st.integers(8, 28)))
    return cfg, W.astype(np.int8), x.astype(np.int8), mult, shift


@settings(max_examples=40, deadline=None)
@given(gemv_problems())
def test_golden_gemv_matches_numpy(problem):
    cfg, W, x, mult, shift = problem
    out, inp = W.shape
    nb, nc = -(-out // cfg.rows), -(-inp // cfg.lanes)
    acc = W.astype(np.int64) @ x.astype(np.int64)
    expected = requant_int8(acc, mult, shift)

    g = compile_gemv(W, x, cfg, mult=mult, shift=shift)
    tile = GoldenTile(cfg)
    response = tile.host(g.host_stream())
    y_words = -(-nb * cfg.rows // cfg.lanes)
    assert len(response) == 2 + y_words * host.beats(cfg, host.TARGET_ABANK)
    assert g.result(response).tolist() == expected
    assert response[0] == host.STATUS_DONE
    # cycles: the golden model, the compiler's prediction and the closed form agree
    assert response[1] == tile.last_run.cycles == g.schedule.cycles == isa.ISSUE_LAT + nb * nc + isa.DRAIN
    assert tile.last_run.hazards == []
    assert tile.last_run.instructions == 2


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "small"])
def test_golden_gemv_all_extremes(cfg):
    # -128 * -128 * in accumulates to the largest positive value; exact with shift 14
    inp = 3 * cfg.lanes + 1
    W = np.full((cfg.rows + 1, inp), -128, dtype=np.int8)
    x = np.full(inp, -128, dtype=np.int8)
    g = compile_gemv(W, x, cfg, mult=1, shift=14)
    tile = GoldenTile(cfg)
    y = g.result(tile.host(g.host_stream()))
    assert y.tolist() == [inp] * (cfg.rows + 1)      # 16384 * inp / 16384
    g = compile_gemv(W, x, cfg, mult=-1, shift=0)
    y = g.result(GoldenTile(cfg).host(g.host_stream()))
    assert y.tolist() == [-128] * (cfg.rows + 1)


def _mv(**kw):
    args = dict(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=1, n_chunks=1,
                q_mult=1, q_shift=0)
    args.update(kw)
    return isa.matvec(**args)


def _race_tile(program):
    """Default config; weight word 0 of row r is all r+1, word 1 all ones; x = ones."""
    cfg = DEFAULT
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0,
                                 np.stack([np.full(16, r + 1), np.ones(16, dtype=int)]))
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, np.ones((1, 16), dtype=int))
    stream += host.run_cmd(0)
    stream += host.read_cmd(cfg, host.TARGET_ABANK + 1, 0, 1)
    stream += host.read_cmd(cfg, host.TARGET_ABANK, 4, 1)
    tile = GoldenTile(cfg)
    response = tile.host(stream)
    return tile, response[:2], host.unpack_words(cfg, host.TARGET_ABANK, response[2:])


def test_row_multipliers_position_index_and_residual_add():
    # acc_r = 16 (r + 1) (weights r + 1, x ones); multipliers [1, -2, 3, 4] from MMEM word 3,
    # shift 1: y = 8 (r + 1) M_r = [8, -32, 72, 128]. NEXT under RUN advances pos to 1, so
    # y goes to word 2 + (1 << 1) = 4 of bank 1, added to its old lanes, saturating to int16.
    cfg = DEFAULT
    program = [isa.next_(0),
               _mv(m_base=3, q_shift=1, y_bits=16, y_addr=2, y_index=isa.Index.POS, y_shift=1,
                   epi=isa.Epi.RESID), isa.halt()]
    old = np.zeros((1, 16), dtype=int)
    old[0, :4] = [32767, -5, 0, -32768]
    old[0, 4] = 99                                   # not a lane of the block: untouched
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, np.full((1, 16), r + 1))
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, np.ones((1, 16), dtype=int))
    stream += host.write_cmd(cfg, host.TARGET_ABANK + 1, 4, old)
    stream += host.write_cmd(cfg, host.TARGET_MMEM, 3, [[1, -2, 3, 4]])
    stream += host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_ABANK + 1, 4, 1)
    tile = GoldenTile(cfg)
    response = tile.host(stream)
    # NEXT (2 cycles) at 1, MATVEC issued at 3 (reads in 4), its write lands at 4 + LAT_WRITE
    assert response[:2] == [host.STATUS_DONE, 3 + isa.ISSUE_LAT + isa.DRAIN]
    got = host.unpack_words(cfg, host.TARGET_ABANK, response[2:])[0]
    assert got[:5].tolist() == [32767, -37, 72, -32640, 99]


def test_rope_epilogue():
    # y = acc_r = 16 (r + 1) = [16, 32, 48, 64] (multiplier 1); block 0 at position 1 uses
    # RoPE-table word 2 + (1 << 1) + 0 = 4: pair 0 by (cos, sin) = (0, 16384) (90 degrees),
    # pair 1 by (16384, 0): (16, 32) -> (-32, 16), (48, 64) unchanged
    cfg = DEFAULT
    program = [isa.next_(0), _mv(y_bits=16, epi=isa.Epi.ROPE, rope_base=2, rope_shift=1),
               isa.halt()]
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(cfg.rows):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, np.full((1, 16), r + 1))
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, np.ones((1, 16), dtype=int))
    stream += host.write_cmd(cfg, host.TARGET_RMEM, 4, [[0, 16384, 16384, 0]])
    stream += host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_ABANK + 1, 0, 1)
    response = GoldenTile(cfg).host(stream)
    assert response[0] == host.STATUS_DONE
    got = host.unpack_words(cfg, host.TARGET_ABANK, response[2:])[0]
    assert got[:4].tolist() == [-32, 16, 48, 64]


def test_residual_read_port_conflict():
    # RESID reads its destination bank LAT_RESID_READ cycles after a block's last read: with
    # x in the same bank, that read meets the next block's x read
    program = [_mv(n_blocks=2, n_chunks=4, y_bank=0, y_addr=8, epi=isa.Epi.RESID), isa.halt()]
    tile, (status, _), _ = _race_tile(program)
    assert status == host.STATUS_DONE | host.STATUS_PORT_CONFLICT
    program[0] = _mv(n_blocks=2, n_chunks=4, y_bank=1, y_addr=8, epi=isa.Epi.RESID)
    assert _race_tile(program)[1][0] == host.STATUS_DONE


def test_raw_race_is_flagged():
    # the second MATVEC reads bank 1 word 0 in cycle 3 (issued in 2); the first writes it at
    # the end of 2 + LAT_WRITE
    program = [_mv(), _mv(w_base=1, x_bank=1, y_bank=0, y_addr=4, q_shift=2), isa.halt()]
    tile, (status, cycles), (y1, y2) = _race_tile(program)
    assert status == host.STATUS_DONE | host.STATUS_RAW_HAZARD
    assert tile.last_run.hazards == [(3, 1, 0)]
    assert cycles == 2 + isa.ISSUE_LAT + isa.DRAIN
    assert y1.tolist() == [16, 32, 48, 64] + [0] * 12
    assert y2.tolist() == [0] * 16          # it read the stale zeros
    with pytest.raises(ScheduleError, match="races its write in flight"):
        analyze([isa.encode(i) for i in program], DEFAULT)


def test_raw_race_with_wait_is_clean():
    lat = isa.LAT_WRITE
    program = [_mv(), isa.wait(lat), _mv(w_base=1, x_bank=1, y_bank=0, y_addr=4, q_shift=2),
               isa.halt()]
    tile, (status, cycles), (y1, y2) = _race_tile(program)
    assert status == host.STATUS_DONE
    assert tile.last_run.hazards == []
    assert cycles == 2 + lat + isa.ISSUE_LAT + isa.DRAIN == analyze([isa.encode(i) for i in program],
                                                    DEFAULT).cycles
    assert y2.tolist() == [40] * 4 + [0] * 12       # (16+32+48+64) / 4
    # one cycle less is still a race
    program[1] = isa.wait(lat - 1)
    tile, (status, _), _ = _race_tile(program)
    assert status == host.STATUS_DONE | host.STATUS_RAW_HAZARD
    assert tile.last_run.hazards == [(1 + lat + isa.ISSUE_LAT, 1, 0)]


def test_same_work_through_compile_chain_has_no_hazard():
    W1 = np.repeat(np.arange(1, 5)[:, None], 16, axis=1)
    W2 = np.ones((4, 4), dtype=np.int64)
    x = np.ones(16, dtype=np.int64)
    g = compile_chain([W1, W2], x, DEFAULT, mults=[1, 1], shifts=[0, 2])
    assert [isa.decode(w)["op"] for w in g.program] == \
        [isa.Opcode.MATVEC, isa.Opcode.WAIT, isa.Opcode.MATVEC, isa.Opcode.HALT]
    assert isa.decode(g.program[1])["args"]["wait"]["cycles"] == isa.LAT_WRITE
    tile = GoldenTile(DEFAULT)
    response = tile.host(g.host_stream())
    cycles = 2 + isa.LAT_WRITE + isa.ISSUE_LAT + isa.DRAIN
    assert response[:2] == [host.STATUS_DONE, cycles]
    assert g.schedule.cycles == cycles
    assert tile.last_run.hazards == []
    assert g.result(response).tolist() == [40, 40, 40, 40]


def test_loop_program_timing_matches_analyze():
    program = [isa.loop(3, 2), isa.wait(2), _mv(n_blocks=2, n_chunks=2, y_addr=8), isa.halt()]
    words = [isa.encode(i) for i in program]
    tile = GoldenTile(DEFAULT)
    tile.write(host.TARGET_PROG, 0, words)
    run = tile.run(0)
    # LOOP@1, (WAIT 2 + MATVEC 4) x 3 -> HALT@20; the last MATVEC reads 17..20, its last
    # write lands at 20 + LAT_WRITE
    assert run.cycles == 21 + isa.LAT_WRITE == analyze(words, DEFAULT).cycles
    assert run.instructions == 1 + 3 * 2 + 1
    assert run.status == host.STATUS_DONE
    assert run.hazards == []


def test_program_without_halt():
    tile = GoldenTile(DEFAULT)
    tile.write(host.TARGET_PROG, 0, [isa.encode(isa.wait(1))] * DEFAULT.pdepth)
    with pytest.raises(GoldenError, match="program issued 20 instructions without reaching HALT"):
        tile.run(0, max_instructions=20)
    with pytest.raises(GoldenError, match="program never reaches HALT: pc 0 repeats"):
        tile.run(0)


def _targets(cfg):
    return ([host.TARGET_WBANK + r for r in range(cfg.rows)]
            + [host.TARGET_ABANK + a for a in range(cfg.act_banks)]
            + [host.TARGET_PROG, host.TARGET_TABLE, host.TARGET_TOKENS])


def _memory_of(tile, target):
    if target == host.TARGET_TABLE:
        return tile.table
    if target == host.TARGET_TOKENS:
        return tile.tmem
    return tile.wmem if target < host.TARGET_ABANK else tile.amem


def _random_words(cfg, target, rng, n):
    """Words over the full element range of a target."""
    if target == host.TARGET_PROG:
        return [int(v) << 192 | int(u) << 96 | int(w) for v, u, w in
                zip(rng.integers(0, 2**62, n), rng.integers(0, 2**62, n),
                    rng.integers(0, 2**62, n))]
    if target == host.TARGET_TABLE:
        return rng.integers(-2**15, 2**15, (n, 1))
    if target == host.TARGET_TOKENS:
        return rng.integers(0, 2**16, (n, 1))
    if target >= host.TARGET_ABANK:               # 32-bit activation lanes
        return rng.integers(-2**31, 2**31, (n, cfg.lanes))
    return rng.integers(-128, 128, (n, cfg.lanes))


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "small"])
def test_host_write_read_round_trip(cfg):
    rng = np.random.default_rng(1)
    for target in _targets(cfg):
        tile = GoldenTile(cfg)
        depth = host.target_depth(cfg, target)
        address, n = depth - 5, 5
        words = _random_words(cfg, target, rng, n)
        # a program word reads back with its legality bit (isa.stored_word): set for these
        # random words, most of them illegal
        stored = ([isa.stored_word(w, cfg.attention, cfg.wbytes, cfg.pv) for w in words]
                  if target == host.TARGET_PROG else words)
        payload = host.pack_words(cfg, target, stored)
        stream = (host.write_cmd(cfg, target, address, words)
                  + host.read_cmd(cfg, target, address, n)
                  + host.read_cmd(cfg, target, 0, 2))
        response = tile.host(stream)
        nbeats = host.beats(cfg, target)
        assert response[:n * nbeats] == payload
        assert response[n * nbeats:] == [0] * (2 * nbeats)
        back = host.unpack_words(cfg, target, response[:n * nbeats])
        if target == host.TARGET_PROG:
            assert back == stored and stored != words
            assert tile.pmem[address:] == stored
            assert tile.pmem[:address] == [0] * address
        else:
            np.testing.assert_array_equal(back, words)
            np.testing.assert_array_equal(tile.read(target, address, n), words)
            # nothing else changed
            mem = _memory_of(tile, target)
            assert int(np.count_nonzero(mem)) == int(np.count_nonzero(words))
        assert tile.bad_command is False


def test_fresh_tile_runs_halt():
    tile = GoldenTile(DEFAULT)
    assert tile.host(host.run_cmd(0)) == [host.STATUS_DONE, 2]
    assert tile.host(host.run_cmd(17)) == [host.STATUS_DONE, 2]


@pytest.mark.parametrize("cmd", [0, 5, 0x7f, 0xff])
def test_unknown_command_sets_bad_command_once(cmd):
    tile = GoldenTile(DEFAULT)
    response = tile.host(host.header(cmd, 0, 0, 0) + host.run_cmd(0))
    assert response == [host.STATUS_DONE | host.STATUS_BAD_COMMAND, 2]
    assert tile.host(host.run_cmd(0)) == [host.STATUS_DONE, 2]


def test_bad_command_is_reported_across_host_calls():
    tile = GoldenTile(DEFAULT)
    assert tile.host(host.header(0x7f, 0, 0, 0)) == []
    assert tile.host(host.run_cmd(0)) == [host.STATUS_DONE | host.STATUS_BAD_COMMAND, 2]
    assert tile.host(host.run_cmd(0)) == [host.STATUS_DONE, 2]


def test_unknown_targets_set_bad_command_and_keep_the_stream_in_step():
    cfg = DEFAULT
    tile = GoldenTile(cfg)
    stream = (host.header(host.CMD_READ, 0x3f, 0, 2)            # answered with zeros
              + host.header(host.CMD_WRITE, 0x42, 0, 1) + [1, 2, 3, 4]   # payload skipped
              + host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(isa.wait(3))])
              + host.read_cmd(cfg, host.TARGET_PROG, 0, 1)
              + host.run_cmd(1))
    response = tile.host(stream)
    prog_beats = host.beats(cfg, host.TARGET_PROG)
    assert response == [0] * 8 + [0x31] + [0] * (prog_beats - 1) + \
        [host.STATUS_DONE | host.STATUS_BAD_COMMAND, 2]
    assert int(np.count_nonzero(tile.amem)) == 0
    assert tile.host(host.run_cmd(0)) == [host.STATUS_DONE, 5]    # WAIT 3 @1, HALT @4


def test_host_beats_per_word():
    # activation lanes are 32 bits, one beat each; table and token entries one beat;
    # instructions INSTR_BITS = 288 bits, nine beats
    for cfg in CONFIGS:
        assert host.beats(cfg, host.TARGET_ABANK) == cfg.lanes
        assert host.beats(cfg, host.TARGET_WBANK) == cfg.lanes * 8 // 32
        assert host.beats(cfg, host.TARGET_TABLE) == host.beats(cfg, host.TARGET_TOKENS) == 1
        assert host.beats(cfg, host.TARGET_PROG) == 9


def _matvec_tile(weights, x_word, y_bits, y_fill=-7):
    """DEFAULT config: weight word 0 of row r is weights[r]; activation bank 0 word 0 is
    x_word; bank 1 word 0 is y_fill in every lane. Runs MATVEC; HALT, returns bank 1 word 0."""
    cfg = DEFAULT
    tile = GoldenTile(cfg)
    for r in range(cfg.rows):
        tile.write(host.TARGET_WBANK + r, 0, [weights[r]])
    tile.write(host.TARGET_ABANK, 0, [x_word])
    tile.write(host.TARGET_ABANK + 1, 0, [[y_fill] * cfg.lanes])
    program = [_mv(y_bits=y_bits), isa.halt()]
    tile.write(host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    run = tile.run(0)
    assert run.status == host.STATUS_DONE and run.cycles == 1 + isa.ISSUE_LAT + isa.DRAIN
    return tile.read(host.TARGET_ABANK + 1, 0, 1)[0].tolist()


def test_matvec_multiplies_the_low_16_bits_of_a_lane():
    eye = np.eye(4, 16, dtype=np.int64)                      # row r picks lane r
    x = [0x10005, 0x1ffff, 40000, -2**31 + 7] + [0x7fff0000] * 12
    y = _matvec_tile(eye, x, y_bits=32)
    # low 16 bits, signed: 5, -1, 40000 - 65536, 7; lanes 4.. of the y word untouched
    assert y == [5, -1, -25536, 7] + [-7] * 12


@pytest.mark.parametrize("y_bits, expected", [
    (32, [66582544, -67106816, 524272, 0]),       # 127 * 32767 * 16, -128 * 32767 * 16, ...
    (20, [524287, -524288, 524272, 0]),
    (16, [32767, -32768, 32767, 0]),
    (8, [127, -128, 127, 0]),
    (2, [1, -2, 1, 0]),
])
def test_matvec_saturates_to_y_bits(y_bits, expected):
    weights = [[127] * 16, [-128] * 16, [1] * 16, [0] * 16]
    assert _matvec_tile(weights, [32767] * 16, y_bits) == expected + [-7] * 12


# Busy counters ------------------------------------------------------------------------------

def test_busy_counters_of_attention_by_hand():
    """QK, a WAIT, PV under RUN: each counter worked out from the latencies of docs/isa.md,
    read back through TARGET_COUNTERS and in the run's result."""
    cfg = Config(lanes=8, rows=2, wdepth=64, act_banks=2, adepth=32, pv=1)
    n, d_blocks, gap = 3, 3, 8
    program = [isa.qk(q_addr=0, k_bank=0, k_addr=4, s_bank=1, s_addr=0, shift=4, n=n),
               isa.wait(gap),
               isa.pv(v_bank=0, v_addr=8, s_bank=1, s_addr=0, y_bank=0, y_addr=16,
                      d_blocks=d_blocks, shift=2, n=n),
               isa.halt()]
    tile = GoldenTile(cfg)
    rng = np.random.default_rng(60)
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0, rng.integers(-999, 999, (16, 8)))
    stream += host.run_cmd(0) + host.counters_cmd(cfg)
    out = tile.host(stream)
    assert out[0] == host.STATUS_DONE
    busy = isa.LAT_OUT + 1                         # a result's cycles in the output unit
    t_pv = 1 + n + gap                             # PV's issue
    c_last = t_pv + isa.ISSUE_LAT + n              # PV's last V read
    counts = {"cycles": c_last + isa.PV_DRAIN + d_blocks - 1 + isa.LAT_OUT + 1,
              "mac": n + (1 + n),
              "vu": 0,
              "out": 2 * (n - 1 + busy),           # QK's n scores, then PV's blocks, apart
              "drain": isa.PV_DRAIN + d_blocks - 1,
              "wait": gap, "next": 0}
    assert host.parse_counters(out[2:]) == tile.last_run.counters == counts
    assert out[1] == counts["cycles"]


def test_busy_counters_target_is_read_only_and_zero_beyond_the_last():
    cfg = SMALL
    tile = GoldenTile(cfg)
    n = len(host.Counter)
    out = tile.host(host.run_cmd(0) + host.header(host.CMD_WRITE, host.TARGET_COUNTERS, 0, 2)
                    + [5, 6] + host.header(host.CMD_READ, host.TARGET_COUNTERS, 0, n + 2)
                    + host.run_cmd(0))
    assert out == [host.STATUS_DONE, 2, 2] + [0] * (n + 1) + \
        [host.STATUS_DONE | host.STATUS_BAD_COMMAND, 2]
    tile.counters[host.Counter.MAC] = (1 << 32) + 5            # 32-bit counters wrap
    assert tile.host(host.read_cmd(cfg, host.TARGET_COUNTERS, host.Counter.MAC, 1)) == [5]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 12)), max_size=12),
       st.lists(st.integers(0, 80), min_size=1, max_size=4))
def test_coverage_counts_the_union_below_each_cycle(intervals, reads):
    """The golden model's busy-interval counter against a set of cycles. As in a run, an
    interval becomes known before the cycles it covers are read (here: before the read
    preceding its start), and never starts before a cycle already read."""
    from tinylpu.golden import _Coverage

    cov, known = _Coverage(), set()
    pending = sorted((s, s + d) for s, d in intervals)
    reads = sorted(reads)
    for i, r in enumerate(reads):
        horizon = reads[i + 1] if i + 1 < len(reads) else float("inf")
        while pending and pending[0][0] < horizon:
            s, e = pending.pop(0)
            cov.add(s, e)
            known.update(range(s, e))
        assert cov.below(r) == sum(1 for c in known if c < r)
