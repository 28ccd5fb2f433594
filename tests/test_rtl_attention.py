"""QK and PV on the whole ``Tile`` in Amaranth's simulator: scores, maxima, weights, sums,
reciprocals and the drain, against the golden model beat for beat; and the schedule rules of
the attention units, flagged by the RTL where the golden model refuses the program."""

import numpy as np
import pytest
from tinylpu.flow.amaranthsim import run_tile_stream

from tinylpu import host, isa
from tinylpu.config import Config
from tinylpu.golden import GoldenError, GoldenTile
from tinylpu.numerics import RECIP_FRAC
from tinylpu.rtl.top import Tile

CONFIGS = [Config(lanes=8, rows=2, wdepth=16, adepth=32, pdepth=16, mdepth=16, rdepth=16,
                  tdepth=16, pv=1),
           Config(lanes=16, rows=4, wdepth=16, adepth=32, pdepth=16, mdepth=16, rdepth=16,
                  tdepth=16, pv=1)]
QW = 3                                                        # q: a weight word
K, V, S, Y = (0, 8), (1, 8), (0, 24), (1, 4)                  # (bank, word) of each operand
HEAD_SHIFT = [2, 0, 5, 1, 3, 0, 4, 7]            # q's per-head-slot shifts, taken back by QK


def _program(cfg, n, kv_shift, gap=isa.LAT_WRITE, shift=14, extra=(), head_shift=HEAD_SHIFT):
    R, L = cfg.rows, cfg.lanes
    return [isa.qk(q_addr=QW, k_bank=K[0], k_addr=K[1], s_bank=S[0], s_addr=S[1],
                   shift=shift, n=n, kv_shift=kv_shift, head_shift=head_shift[:2 * R]),
            isa.wait(gap),
            isa.pv(v_bank=V[0], v_addr=V[1], s_bank=S[0], s_addr=S[1], y_bank=Y[0],
                   y_addr=Y[1], d_blocks=L, shift=RECIP_FRAC, n=n,
                   kv_shift=kv_shift), *extra, isa.halt()]


def _stream(cfg, program, rng, n, scale=3000):
    R, L = cfg.rows, cfg.lanes
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r, row in enumerate(rng.integers(-128, 128, (R, L))):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, QW, row[None])
    for bank, word in (K, V):
        stream += host.write_cmd(cfg, host.TARGET_ABANK + bank, word, isa.pack_halves(
            rng.integers(-scale, scale, (n, 2 * L))))
    stream += host.run_cmd(0)
    stream += host.read_cmd(cfg, host.TARGET_ABANK + S[0], S[1], -(-n // (L // R)))
    stream += host.read_cmd(cfg, host.TARGET_ABANK + Y[0], Y[1], R)
    return stream


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.ident)
@pytest.mark.parametrize("n, kv_shift", [(1, 1), (5, 1), (9, 0), (12, 2)])
def test_qk_pv_match_golden(cfg, n, kv_shift):
    rng = np.random.default_rng(n * 7 + kv_shift)
    stream = _stream(cfg, _program(cfg, n, kv_shift), rng, n)
    golden = GoldenTile(cfg)
    expected = golden.host(stream)
    assert expected[0] == host.STATUS_DONE
    assert run_tile_stream(cfg, stream, len(expected)) == expected
    # the scores are not all saturated or equal: the weights and the division matter
    scores = isa.halves(host.unpack_words(cfg, host.TARGET_ABANK, expected[2:-cfg.rows *
                                                                           cfg.lanes]))
    assert len(set(scores.ravel().tolist())) > n


def test_scores_and_outputs_by_hand():
    """One position, two heads per row: each head's single weight is 2**14, its sum 2**14, so
    the output is its V values; score = q.k >> (shift - the head slot's head_shift)."""
    cfg = CONFIGS[0]
    R, L = cfg.rows, cfg.lanes                     # heads of L/2 = 4 lanes, 2R = 4 heads
    q = np.zeros((R, L), dtype=np.int64)
    q[0, :4] = [1, 2, 3, 4]                        # head 0
    k = np.arange(2 * L)                            # K head g = values 4g .. 4g+3
    v = np.arange(2 * L) * 10 - 100
    program = _program(cfg, 1, 1, shift=3, head_shift=[2, 0, 7, 0])
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(R):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, QW, q[r][None])
    stream += host.write_cmd(cfg, host.TARGET_ABANK + K[0], K[1], isa.pack_halves(k[None]))
    stream += host.write_cmd(cfg, host.TARGET_ABANK + V[0], V[1], isa.pack_halves(v[None]))
    stream += host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_ABANK + S[0], S[1], 1)
    stream += host.read_cmd(cfg, host.TARGET_ABANK + Y[0], Y[1], R)
    response = GoldenTile(cfg).host(stream)
    scores = isa.halves(host.unpack_words(cfg, host.TARGET_ABANK, response[2:2 + L]))[0]
    # head 0 (K head 0): (1*0 + 2*1 + 3*2 + 4*3) = 20 >> (3 - 2) = 10; the others have q = 0
    assert scores[:2 * R].tolist() == [10, 0, 0, 0]
    out = host.unpack_words(cfg, host.TARGET_ABANK, response[2 + L:]).ravel()
    # head h reads V head h >> 1: values 4 (h >> 1) .. +3
    assert out.tolist() == [v[4 * (h >> 1) + d] for h in range(2 * R) for d in range(4)]
    assert run_tile_stream(cfg, stream, len(response)) == response


@pytest.mark.parametrize("rule", ["maxima in flight", "pv while draining", "output unit"])
def test_attention_schedule_rules_are_flagged(rule):
    """The golden model refuses each of these schedules; the RTL finishes and reports the
    violation in its status (the values are undefined)."""
    cfg = CONFIGS[0]
    L = cfg.lanes
    n = 3
    if rule == "maxima in flight":          # PV forms weights while QK's maxima are written
        program, bit = _program(cfg, n, 1, gap=1), host.STATUS_RAW_HAZARD
    elif rule == "pv while draining":       # a second PV while the first one drains
        again = isa.pv(v_bank=V[0], v_addr=V[1], s_bank=S[0], s_addr=S[1], y_bank=Y[0],
                       y_addr=Y[1] + 2, d_blocks=L, shift=RECIP_FRAC, n=n, kv_shift=1)
        program, bit = _program(cfg, n, 1, extra=(again,)), host.STATUS_UNIT_BUSY
    else:                                   # a MATVEC result meets a drain block
        mv = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=20, n_blocks=8,
                        n_chunks=2)
        program, bit = _program(cfg, n, 1, extra=(mv,)), host.STATUS_UNIT_BUSY
    stream = _stream(cfg, program, np.random.default_rng(3), n)[:-4]     # no read-backs
    with pytest.raises(GoldenError):
        GoldenTile(cfg).host(stream)
    status, _ = run_tile_stream(cfg, stream, 2)
    assert status & bit and status & host.STATUS_DONE
