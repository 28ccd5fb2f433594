"""The integer decoder: its primitives, its agreement with the float reference."""

from pathlib import Path

import numpy as np
import pytest

from tinylpu.compiler import CompileError
from tinylpu.compiler.decoder import compile_decoder
from tinylpu.model.intmodel import (IntDecoder, isqrt, kv_store, mulshr, norm_recip,
                              quantize)
from tinylpu.numerics import EXP2_MAX, EXP2_TABLE, exp2_neg
from tinylpu.model import load_checkpoint, load_tokenizer, synthetic_model
from tinylpu.model.quality import calibration_sequences, evaluate
from tinylpu.model.reference import generate_greedy

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
NEEDS_MODEL = pytest.mark.skipif(
    not (MODELS / "stories260K.bin").exists(),
    reason="../shared/models/stories260K.bin not found: the stories260K tests need "
           "llama2.c's checkpoint there")


def test_mulshr_rounds_half_up_and_saturates():
    assert mulshr([3, -3, 5, -5], 1, 1).tolist() == [2, -1, 3, -2]
    assert mulshr(30000, 30000, 0).item() == 32767
    assert mulshr(-30000, 30000, 0).item() == -32768
    assert mulshr(1 << 40, 1, 10, bits=32).item() == 1 << 30
    assert mulshr(7, 3, 0).item() == 21


@pytest.mark.parametrize("v", [1, 2, 3, 4, 15, 16, 17, 1 << 20, (1 << 40) - 1, 123456789])
def test_isqrt_and_norm_recip(v):
    r = isqrt(v)
    assert r * r <= v < (r + 1) * (r + 1)
    m, b = norm_recip(v)
    assert 1 << 14 <= m < 1 << 15
    assert b == v.bit_length()
    # m * 2**-(b+14) is 1/v, from below, within one unit of m
    assert m * v < 1 << (b + 14) <= (m + 1) * v + v


def test_norm_recip_rejects_zero():
    with pytest.raises(ValueError, match="positive"):
        norm_recip(0)


@pytest.fixture(scope="module")
def synthetic():
    model = synthetic_model(seed=3)
    seqs = [[1] + generate_greedy(model, [1, t], 40, stop_on_bos=False) for t in (5, 9)]
    return model, quantize(model, seqs, q_bits=16)          # the int16 reference


def test_folded_rmsnorm_tracks_float(synthetic):
    # W rmsnorm(x): the gains are in the weights, 1/rms in the requantization
    model, qm = synthetic
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, model.config.dim)
    xq = np.round(x * 2.0 ** qm.fmt.x).astype(np.int64)
    dec = IntDecoder(qm)
    xf = xq / 2.0 ** qm.fmt.x
    u = xf / np.sqrt(np.mean(xf * xf) + 1e-5)
    for w, gain, qmat, f in ((model.w1[0], model.rms_ffn[0], qm.layers[0].w1, qm.fmt.h1),
                             (model.wv[0], model.rms_att[0], qm.layers[0].wv, qm.fmt.v)):
        assert qmat.norm
        got = qmat.apply(xq, dec.norm_scale(xq)) / 2.0 ** f
        want = w @ (gain * u)
        np.testing.assert_allclose(got, want, atol=4 * 2.0 ** -f + 2e-2 * np.abs(want).max())


def test_silu_table_tracks_float(synthetic):
    _, qm = synthetic
    f = qm.fmt.h1
    h = np.arange(-(1 << 15), 1 << 15, 97)
    got = IntDecoder(qm).silu(h) / 2.0 ** f
    x = h / 2.0 ** f
    want = x / (1 + np.exp(-x))
    step = 2.0 ** (16 - f) / 256
    # linear interpolation error of silu over one step (|silu''| <= 0.5) plus rounding
    assert np.abs(got - want).max() <= step * step / 16 + 2 * 2.0 ** -f


def test_exp2_weights():
    # 2**14 * 2**(-i/16): a 16-entry table, then whole halvings by shifts
    assert EXP2_TABLE[0] == 16384 and EXP2_TABLE[8] == round(16384 / 2 ** 0.5)
    assert exp2_neg([0, 16, 32, 8, 24]).tolist() == [16384, 8192, 4096, 11585, 11585 >> 1]
    i = np.arange(EXP2_MAX + 1)
    np.testing.assert_allclose(exp2_neg(i), 2 ** 14 * 2.0 ** (-i / 16), atol=1.0)
    assert exp2_neg([EXP2_MAX, 10 ** 6]).tolist() == [0, 0]      # clamped at 255: 2**-16
    assert exp2_neg([-5]).tolist() == [16384]                       # below the maximum: 0


def test_attention_is_a_weighted_average_of_v():
    """With all scores equal, each head's output is the mean of its V rows (one rounding)."""
    model = synthetic_model(seed=3)
    qm = quantize(model, [[1, 5, 9]])
    dec = IntDecoder(qm)
    cfg = qm.config
    rng = np.random.default_rng(0)
    dec.k_cache[0, :3] = 0                                   # q.k = 0: equal scores
    dec.v_cache[0, :3] = rng.integers(-3000, 3000, (3, cfg.kv_dim))
    out = dec.attention(0, rng.integers(-999, 999, cfg.dim), 2)
    hs = cfg.head_size
    for h in range(cfg.n_heads):
        g = h // cfg.kv_mul
        mean = dec.v_cache[0, :3, g * hs:(g + 1) * hs].sum(axis=0) / 3
        assert np.abs(out[h * hs:(h + 1) * hs] - mean).max() <= 1


def test_rope_tracks_float(synthetic):
    model, qm = synthetic
    cfg = model.config
    rng = np.random.default_rng(1)
    q = rng.integers(-20000, 20000, cfg.dim)
    pos = 17
    got = IntDecoder(qm).rope(q, pos, cfg.n_heads).reshape(-1, 2)
    v = q.reshape(-1, 2).astype(np.float64)
    i = (np.arange(cfg.dim // 2) * 2) % cfg.head_size
    ang = pos * 10000.0 ** (-i / cfg.head_size)
    want = np.stack([v[:, 0] * np.cos(ang) - v[:, 1] * np.sin(ang),
                     v[:, 0] * np.sin(ang) + v[:, 1] * np.cos(ang)], axis=1)
    assert np.abs(got - want).max() <= 3


def test_synthetic_integer_model_agrees_with_float(synthetic):
    model, qm = synthetic
    report = evaluate(model, qm, [1], length=48)
    assert report.agree / report.positions >= 0.9, report


def test_decoder_is_deterministic(synthetic):
    _, qm = synthetic
    runs = []
    for _ in range(2):
        dec = IntDecoder(qm)
        runs.append([dec.forward(t, p).tolist() for p, t in enumerate([1, 5, 9, 2])])
    assert runs[0] == runs[1]


@pytest.fixture(scope="module")
def stories():
    model = load_checkpoint(MODELS / "stories260K.bin")
    tok = load_tokenizer(MODELS / "tok512.bin", model.config.vocab_size)
    return model, tok, quantize(model, calibration_sequences(model, tok))


@NEEDS_MODEL
def test_stories260k_matches_llama2c_from_bos(stories):
    """>= 98% teacher-forced top-1 over 256 positions and >= 32 free-running tokens equal
    to llama2.c's float greedy ids (the README's reference line)."""
    model, _, qm = stories
    text = (MODELS / "README.md").read_text()
    after = text.split("The token chosen after each position")[1].splitlines()[1:]
    reference = [int(v) for v in next(l for l in after if l.strip()).split()]
    assert len(reference) == 256
    report = evaluate(model, qm, [1], length=256)
    assert report.positions == 256
    assert report.agree / 256 >= 0.98, report
    assert report.free_run >= 32, report
    dec, token, generated = IntDecoder(qm), 1, []
    for pos in range(report.free_run):
        token = IntDecoder.argmax(dec.forward(token, pos))
        generated.append(token)
    assert generated == reference[:report.free_run]


@NEEDS_MODEL
def test_stories260k_formats_have_headroom(stories):
    _, _, qm = stories
    f = qm.fmt
    # |x| <= 12 in the study: the residual format keeps it in range with a bit to spare
    assert 12 * 2 ** f.x < 2 ** 15
    assert f.logits <= 27 and 8 <= f.gain <= 13


def test_footprint_counts_every_tensor(synthetic):
    model, qm = synthetic
    cfg = model.config
    sizes = qm.footprint(positions=10)
    L, d, h, kv = cfg.n_layers, cfg.dim, cfg.hidden_dim, cfg.kv_dim
    per_layer = 2 * d * d + 2 * kv * d + 3 * h * d
    assert sizes["weights (int8)"] == cfg.vocab_size * d + L * per_layer     # shared classifier
    rows = 2 * cfg.vocab_size + L * (d + kv + kv + d + h + h + d)
    assert sizes["multipliers and gains (int16)"] == 2 * (rows + d)    # the final gains
    assert sizes["KV cache, 10 positions (int16)"] == 2 * 2 * L * 10 * kv
    assert sizes["tables (int16)"] == 2 * (2 * cfg.seq_len * cfg.head_size // 2 + 257)


def _layer0_kv(qm, tokens):
    """Layer 0's int16 k (after RoPE) and v at each position: they depend on the token only
    (the embedding), not on the cache, so any KV-cache width sees the same values."""
    dec, layer, nkv = IntDecoder(qm), qm.layers[0], qm.config.n_kv_heads
    ks, vs = [], []
    for pos, t in enumerate(tokens):
        x = mulshr(qm.emb[t], qm.emb_mult[t], qm.emb_shift)
        s = dec.norm_scale(x)
        ks.append(dec.rope(layer.wk.apply(x, s), pos, nkv))
        vs.append(layer.wv.apply(x, s))
    return np.array(ks), np.array(vs)


def test_kv_bits_8_stores_int8_and_16_stores_int16_as_is(synthetic):
    model, qm16 = synthetic
    seqs = [[1] + generate_greedy(model, [1, t], 40, stop_on_bos=False) for t in (5, 9)]
    qm8 = quantize(model, seqs, kv_bits=8, q_bits=16)
    assert (qm16.kv_bits, qm16.kv_shift) == ((16, 16), None) and not qm16.kv_shifts().any()
    cfg = model.config
    shifts = qm8.kv_shifts()
    assert qm8.kv_bits == (8, 8) and shifts.shape == (2, cfg.n_layers, cfg.n_kv_heads)
    assert shifts.min() >= 0 and shifts.max() > 0
    tokens = seqs[0][:24]
    dec16, dec8 = IntDecoder(qm16), IntDecoder(qm8)
    for pos, t in enumerate(tokens):
        dec16.forward(t, pos)
        dec8.forward(t, pos)
    n = len(tokens)
    k16, v16 = dec16.k_cache[:, :n], dec16.v_cache[:, :n]
    k8, v8 = dec8.k_cache[:, :n], dec8.v_cache[:, :n]
    # int16: the values as computed, beyond the int8 range
    k, v = _layer0_kv(qm16, tokens)
    np.testing.assert_array_equal(k16[0], k)
    np.testing.assert_array_equal(v16[0], v)
    assert np.abs(k16).max() > 127 and np.abs(v16).max() > 127
    # 8 bits: every stored value in int8; K sat8(round(k >> shift)) of its kv head's shift,
    # V wv's product requantized to 8 bits with V's shift added (one rounding: within 1 of
    # rounding the int16 V again)
    for cache in (k8, v8):
        assert cache.min() >= -128 and cache.max() <= 127 and np.abs(cache).max() > 64
    hs = cfg.head_size
    np.testing.assert_array_equal(k8[0], kv_store(k, np.repeat(shifts[0, 0], hs), 8))
    assert (shifts[1] == shifts[1][:, :1]).all()
    np.testing.assert_array_equal(v8[0], _layer0_kv(qm8, tokens)[1])
    assert qm8.layers[0].wv.shift == qm16.layers[0].wv.shift + shifts[1, 0, 0]
    assert np.abs(v8[0] - kv_store(v, shifts[1, 0, 0], 8)).max() <= 1
    assert qm8.footprint(10)["KV cache, 10 positions (int8)"] == \
        qm16.footprint(10)["KV cache, 10 positions (int16)"] // 2


def test_an_8bit_v_cache_keeps_k_int16(synthetic):
    """kv_bits=(16, 8): K stored as computed (shift 0), V requantized to 8 bits with the
    shifts an all-8-bit cache picks for V; the footprint counts 3 bytes a K/V pair."""
    model, qm16 = synthetic
    seqs = [[1] + generate_greedy(model, [1, t], 40, stop_on_bos=False) for t in (5, 9)]
    qm8, qmv = (quantize(model, seqs, kv_bits=kv, q_bits=16) for kv in (8, (16, 8)))
    assert qmv.kv_bits == (16, 8)
    shifts = qmv.kv_shifts()
    assert not shifts[0].any()
    np.testing.assert_array_equal(shifts[1], qm8.kv_shifts()[1])
    tokens = seqs[1][:20]
    dec = IntDecoder(qmv)
    for pos, t in enumerate(tokens):
        dec.forward(t, pos)
    k, _ = _layer0_kv(qm16, tokens)
    np.testing.assert_array_equal(dec.k_cache[0, :len(tokens)], k)
    np.testing.assert_array_equal(dec.v_cache[0, :len(tokens)], _layer0_kv(qmv, tokens)[1])
    assert qmv.layers[0].wv.bits == 8 and qmv.layers[0].wk.bits == 16
    assert np.abs(k).max() > 127
    assert qmv.footprint(10)["KV cache, 10 positions (K int16, V int8)"] == \
        qm16.footprint(10)["KV cache, 10 positions (int16)"] * 3 // 4
    with pytest.raises(ValueError, match="kv_bits must be in \\[8, 16\\], not 7"):
        quantize(model, seqs, kv_bits=(16, 7))


def test_an_8bit_q_rounds_rope_once_per_head(synthetic, monkeypatch):
    """q_bits=8: per layer and head the smallest shift that keeps the calibration peak of the
    int16 q in int8; q is RoPE rounded s bits further and saturated to 8 bits, read back as
    q8 << s (within 2**(s-1) of the int16 q where it does not saturate)."""
    model, qm16 = synthetic
    cfg = model.config
    seqs = [[1] + generate_greedy(model, [1, t], 40, stop_on_bos=False) for t in (5, 9)]
    qm = quantize(model, seqs, q_bits=8)
    shifts = qm.q_shift
    assert qm.q_bits == 8 and shifts.shape == (cfg.n_layers, cfg.n_heads)
    peaks = np.zeros_like(shifts)
    for ids in seqs:
        dec = IntDecoder(qm16)
        dec.seen_q = peaks
        for pos, t in enumerate(ids):
            dec.forward(t, pos)
    # the smallest shift: the peak fits at s, not at s - 1
    assert ((peaks + (1 << shifts >> 1)) >> shifts <= 127).all()
    below = np.maximum(shifts - 1, 0)
    assert (((peaks + (1 << below >> 1)) >> below > 127) | (shifts == 0)).all()
    assert shifts.max() > 0
    seen = []
    dec8, dec16 = IntDecoder(qm), IntDecoder(qm16)
    orig = IntDecoder.attention
    monkeypatch.setattr(IntDecoder, "attention", lambda self, l, q, pos:
                        seen.append((self, l, q)) or orig(self, l, q, pos))
    for pos, t in enumerate(seqs[0][:12]):
        dec16.forward(t, pos)
        dec8.forward(t, pos)
    q16s = [(l, q) for d, l, q in seen if d is dec16]
    q8s = [(l, q) for d, l, q in seen if d is dec8]
    assert len(q8s) == len(q16s) == 12 * cfg.n_layers
    for (l, q8), (_, q16) in zip(q8s, q16s):
        s = np.repeat(shifts[l], cfg.head_size)
        assert (q8 % (1 << s) == 0).all() and (np.abs(q8 >> s) <= 128).all()
        if l == 0:          # the same input (the token's embedding): q8 is q16 rounded
            inside = np.abs(q16) < (127 << s)
            assert (np.abs(q8 - q16)[inside] <= (1 << s >> 1)[inside] + 1).all()
    with pytest.raises(ValueError, match="q_bits must be in \\[8, 16\\], not 4"):
        quantize(model, seqs, q_bits=4)
    from tinylpu import Config
    with pytest.raises(CompileError, match="the tile's q is 8-bit"):
        compile_decoder(qm16, Config(), 8)


def test_kv_store_rounds_half_up_and_saturates():
    assert kv_store([319, 320, -320, -321, 20000, -20000, 5], 7, 8).tolist() == \
        [2, 3, -2, -3, 127, -128, 0]
    assert kv_store([300, -300], [0, 0], 8).tolist() == [127, -128]
    assert kv_store([12345, -32768], 0, 16).tolist() == [12345, -32768]


@pytest.mark.parametrize("rule", ["layer-max", "head-max", "layer-mse", "head-mse"])
def test_kv_shift_rules(synthetic, rule):
    """max: the calibration maximum fits (no stored value saturates on the calibration);
    per layer: one shift for all kv heads."""
    model, _ = synthetic
    seqs = [[1] + generate_greedy(model, [1, t], 40, stop_on_bos=False) for t in (5, 9)]
    qm = quantize(model, seqs, kv_bits=8, kv_shift=rule)
    shifts = qm.kv_shifts()
    if rule.startswith("layer"):
        assert (shifts == shifts[..., :1]).all()
    if rule.endswith("max"):
        dec = IntDecoder(qm)
        for pos, t in enumerate(seqs[0]):
            dec.forward(t, pos)
        n = len(seqs[0])
        assert np.abs(dec.k_cache[:, :n]).max() <= 127 and np.abs(dec.v_cache[:, :n]).max() <= 127


def test_kv_bits_is_checked_and_the_tile_refuses_a_narrow_cache(synthetic):
    model, _ = synthetic
    with pytest.raises(ValueError, match="kv_bits must be in \\[8, 16\\], not 4"):
        quantize(model, [[1, 5, 9]], kv_bits=4)
    with pytest.raises(ValueError, match="kv_shift must be one of"):
        quantize(model, [[1, 5, 9]], kv_bits=8, kv_shift="layer")
    qm8 = quantize(model, [[1, 5, 9]], kv_bits=8)
    from tinylpu import Config
    with pytest.raises(CompileError, match="the tile's K cache is int16"):
        compile_decoder(qm8, Config(), 8)


@NEEDS_MODEL
def test_stories260k_8bit_kv_cache_measured(stories):
    """docs/numerics.md, "8-bit KV cache: measured": per-layer shifts from the calibration
    maximum give 96.9% teacher-forced top-1 from BOS (below the 98% the issue asks for) and
    114 free-running tokens; the int16 cache 99.2% and 121 (q int16 in both)."""
    model, tok, _ = stories
    calibration = calibration_sequences(model, tok)
    qm8, qm16 = (quantize(model, calibration, kv_bits=kv, q_bits=16) for kv in (8, 16))
    assert qm8.kv_shifts()[0].tolist() == [[7] * 4] * 5
    report = evaluate(model, qm8, [1], length=256)
    assert (report.agree, report.free_run) == (248, 114), report
    report = evaluate(model, qm16, [1], length=256)
    assert (report.agree, report.free_run) == (254, 121), report


@NEEDS_MODEL
def test_stories260k_8bit_v_cache_measured(stories):
    """docs/numerics.md, "8-bit KV cache: measured": K int16 and V 8-bit (layer-max shifts)
    hold from BOS: 98.8% teacher-forced top-1 and 71 free-running tokens (q int16)."""
    model, tok, _ = stories
    qm = quantize(model, calibration_sequences(model, tok), kv_bits=(16, 8), q_bits=16)
    assert qm.kv_shifts()[1].tolist() == [[6] * 4] * 2 + [[7] * 4] * 3
    report = evaluate(model, qm, [1], length=256)
    assert (report.agree, report.free_run) == (253, 71), report


@NEEDS_MODEL
def test_stories260k_8bit_q_and_v_measured(stories):
    """docs/numerics.md, "8-bit q: measured": q at 8 bits (static shifts per layer and
    head) with the 8-bit V cache holds from BOS: 99.2% teacher-forced top-1, 67 tokens."""
    model, tok, _ = stories
    qm = quantize(model, calibration_sequences(model, tok), kv_bits=(16, 8), q_bits=8)
    assert qm.q_shift.tolist()[0] == [6, 5, 6, 6, 6, 6, 6, 5]
    report = evaluate(model, qm, [1], length=256)
    assert (report.agree, report.free_run) == (254, 67), report
