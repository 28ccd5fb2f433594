"""PV passes (MATVEC x_exp) in the golden model: the same integers as PV, from V^T on the
weight side and one score word a head and L positions (docs/fpga.md, "Attention on the
weight side")."""

import numpy as np
import pytest

from tinylpu import Config, isa
from tinylpu.golden import GoldenTile
from tinylpu.host import TARGET_ABANK, TARGET_PROG, TARGET_WBANK

CFG = Config(pv=1)                  # PV, to compare the passes with
R, L = CFG.rows, CFG.lanes
HALF = L // 2                    # head size: a head slot is half a row's lanes
VT, XS, YS, SHIFT = 100, 200, 300, 5     # V^T words, head score words, outputs; w_shift


def _run(tile, program):
    tile.write(TARGET_PROG, 0, [isa.encode(i) for i in program + [isa.halt()]])
    run = tile.run()
    assert run.refusals == [] and run.status == 1
    return run


def _halves(words):
    """Packed int16 values of activation words: [n, 2L], value i in lane i // 2."""
    w = np.asarray(words, dtype=np.int64)
    low, high = w & 0xffff, (w >> 16) & 0xffff
    out = np.stack([low, high], axis=-1).reshape(len(w), 2 * L)
    return np.where(out >= 1 << 15, out - (1 << 16), out)


@pytest.mark.parametrize("n", [1, 16, 37])
def test_pv_passes_equal_pv(n):
    """QK then PV over n positions; then, from the same scores (laid out a head a word) and
    V (as V^T bytes), one PV pass a head (2 blocks of R elements): the outputs are equal."""
    rng = np.random.default_rng(n)
    tile = GoldenTile(CFG)
    q = rng.integers(-128, 128, (R, L))
    k_rows = rng.integers(-(1 << 15), 1 << 15, (n, L))
    v_vals = rng.integers(-128, 128, (n, 2 * L))               # 8-bit V, packed int16
    v_rows = (v_vals[:, 0::2] & 0xffff) | ((v_vals[:, 1::2] & 0xffff) << 16)
    for r in range(R):
        tile.write(TARGET_WBANK + r, 3, q[r:r + 1])
    tile.write(TARGET_ABANK, 0, k_rows)
    tile.write(TARGET_ABANK, 64, v_rows)
    _run(tile, [isa.qk(q_addr=3, k_bank=0, k_addr=0, s_bank=1, s_addr=0, shift=9, n=n),
                isa.wait(isa.LAT_WRITE + 1),
                isa.pv(v_bank=0, v_addr=64, s_bank=1, s_addr=0, y_bank=1, y_addr=100,
                       d_blocks=L, shift=6, n=n)])
    pv_out = tile.read(TARGET_ABANK + 1, 100, R)            # [R words, L lanes]: flat r*L + l
    per_word = L // R
    scores = _halves(tile.read(TARGET_ABANK + 1, 0, -(-n // per_word)))   # [., 2L]
    # the PV passes' operands: head h's scores of positions g*L .. g*L + L-1 in word
    # XS + h*G + g (-32768 past n: a weight of 0), V^T of head h, element block j, group g
    # in weight word VT + 2h + j + (g << SHIFT), bank r holding element j*R + r
    groups = -(-n // L)
    head_words = np.full((2 * R, groups * L), -(1 << 15), dtype=np.int64)
    vt = np.zeros((R, VT + 2 * 2 * R + (groups << SHIFT), L), dtype=np.int64)
    for p in range(n):
        for h in range(2 * R):
            head_words[h, p] = scores[p // per_word, 2 * ((p % per_word) * R + h // 2) + h % 2]
    for h in range(2 * R):
        for i in range(HALF):
            r, l = h // 2, (h % 2) * HALF + i                    # the MAC PV runs it on
            v = v_vals[:, isa.att_kv_index(r, l, L, R, 0)]
            j, row = divmod(i, R)
            for p in range(n):
                vt[row, VT + 2 * h + j + ((p // L) << SHIFT), p % L] = v[p]
        tile.write(TARGET_ABANK, XS + h * groups,
                   (head_words[h] & 0xffff).reshape(groups, L))
    for r in range(R):
        tile.write(TARGET_WBANK + r, VT, vt[r, VT:])
    _run(tile, [isa.matvec(w_base=VT + 2 * h, x_bank=0, x_addr=XS + h * groups, y_bank=1,
                           y_addr=YS + h, n_blocks=2, n_chunks=groups, q_shift=6, y_bits=16,
                           x_exp=True, x_head=h, w_shift=SHIFT)
                for h in range(2 * R)])
    passes = tile.read(TARGET_ABANK + 1, YS, 2 * R)[:, :HALF]    # [head, element]
    for h in range(2 * R):       # PV's output of MAC (r, l) is lane l of word r
        expect = pv_out[h // 2, (h % 2) * HALF:(h % 2 + 1) * HALF]
        np.testing.assert_array_equal(passes[h], expect, err_msg=f"head {h}")


def test_pv_pass_lanes_past_pos_weigh_nothing():
    """With x_pos at position 0 one chunk is read, and only its lane 0 counts: the output is
    that position's V (times 2^14 / 2^14, exactly), whatever the other lanes hold."""
    tile = GoldenTile(CFG)
    scores = -7 * np.arange(L)                      # the maximum is 0 (no QK ran): lane 0
    tile.write(TARGET_ABANK, 0, scores[None, :] & 0xffff)   # weighs 2^14, the others less
    v = np.random.default_rng(1).integers(-128, 128, (R, L))
    for r in range(R):
        tile.write(TARGET_WBANK + r, 10, v[r:r + 1])
    run = _run(tile, [isa.matvec(w_base=10, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=1,
                                 n_chunks=5, q_shift=14, y_bits=16, x_exp=True,
                                 x_head=0, x_pos=True, x_shift=4)])
    # acc = v * 2^14, S = 2^14, norm_recip(S) = (2^15 - 1, 15), s = 15 + 14:
    # y = round(v * 2^14 * 32767 / 2^29) = v
    out = tile.read(TARGET_ABANK + 1, 0, 1)[0, :R]
    assert [int(x) - (1 << 32) * (x >= 1 << 31) for x in out] == v[:, 0].tolist()
    # issued in cycle 1, read in 1 + ISSUE_LAT, written LAT_EXP_RESULT + LAT_OUT later
    assert run.cycles == 1 + isa.ISSUE_LAT + isa.LAT_EXP_RESULT + isa.LAT_OUT + 1


@pytest.mark.parametrize("n", [1, L - 1, L, L + 1, 2 * L + 3])
def test_transposed_scores(n):
    """QK with s_tr writes the scores QK writes in its own layout, one word a head slot and
    L positions (isa.score_tr_slot, sign-extended), only the group's lanes, and takes the
    cycles isa.score_word_writes gives."""
    rng = np.random.default_rng(100 + n)
    tile = GoldenTile(CFG)
    for r in range(R):
        tile.write(TARGET_WBANK + r, 3, rng.integers(-128, 128, (1, L)))
    tile.write(TARGET_ABANK, 0, rng.integers(-(1 << 15), 1 << 15, (n, L)))
    old = rng.integers(0, 1 << 32, (64, L))
    tile.write(TARGET_ABANK + 1, 0, old)
    _run(tile, [isa.qk(q_addr=3, k_bank=0, k_addr=0, s_bank=1, s_addr=100, shift=9, n=n)])
    scores = _halves(tile.read(TARGET_ABANK + 1, 100, -(-n // (L // R))))
    run = _run(tile, [isa.qk(q_addr=3, k_bank=0, k_addr=0, s_bank=1, s_addr=0, shift=9, n=n,
                             s_tr=True, s_hs=2)])
    words = tile.read(TARGET_ABANK + 1, 0, 64)
    expect = old.copy()
    for p in range(n):
        for h in range(2 * R):
            word, lane = isa.score_tr_slot(p, h, L, 2)
            per_word = L // R
            score = scores[p // per_word, 2 * ((p % per_word) * R + h // 2) + h % 2]
            expect[word, lane] = score & 0xffffffff
    np.testing.assert_array_equal(words & 0xffffffff, expect)
    w_last = isa.score_word_writes(n, L, R)[-1][1]
    assert run.cycles == 1 + isa.ISSUE_LAT + w_last + 2 * R - 1 + 1
