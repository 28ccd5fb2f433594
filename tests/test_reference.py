"""The float reference against llama2.c's run.c (stories260K) and an uncached recomputation."""

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest

from tinylpu.model import ModelConfig, load_checkpoint, load_tokenizer, synthetic_model
from tinylpu.model.reference import FloatDecoder, generate_greedy, rmsnorm, teacher_forced

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
CHECKPOINT = MODELS / "stories260K.bin"
TOKENIZER = MODELS / "tok512.bin"
README = MODELS / "README.md"


@pytest.fixture(scope="module")
def stories():
    if not CHECKPOINT.exists():
        pytest.skip("../shared/models/stories260K.bin not found: the stories260K tests need "
                    "llama2.c's checkpoint there")
    return load_checkpoint(CHECKPOINT)


@pytest.fixture(scope="module")
def tokenizer(stories):
    if not TOKENIZER.exists():
        pytest.skip("../shared/models/tok512.bin not found: the stories260K tests need "
                    "llama2.c's tokenizer there")
    return load_tokenizer(TOKENIZER, stories.config.vocab_size)


@pytest.fixture(scope="module")
def readme(stories):
    return README.read_text()


@pytest.fixture(scope="module")
def reference_ids(readme):
    """The 256 greedy ids of llama2.c's run.c from BOS, parsed from the README."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if "The token chosen after each position" in line)
    for line in lines[start + 1:]:
        fields = line.split()
        if fields and all(f.isdigit() for f in fields):
            assert len(fields) == 256
            return [int(f) for f in fields]
    raise AssertionError("no line of reference ids in the README")


@pytest.fixture(scope="module")
def greedy(stories):
    return generate_greedy(stories, [1], 256)


def test_header_matches_readme(stories):
    assert stories.config == ModelConfig(dim=64, hidden_dim=172, n_layers=5, n_heads=8,
                                         n_kv_heads=4, vocab_size=512, seq_len=512,
                                         shared_classifier=True)
    assert stories.wcls is stories.tok_emb


@pytest.mark.parametrize("name", ["stories260K.bin", "tok512.bin"])
def test_sha256_matches_readme(readme, name):
    m = re.search(rf"^\| {re.escape(name)} \| (\d+) \| ([0-9a-f]{{64}}) \|", readme, re.M)
    assert m, f"no row for {name} in the README table"
    data = (MODELS / name).read_bytes()
    assert len(data) == int(m.group(1))
    assert hashlib.sha256(data).hexdigest() == m.group(2)


def test_greedy_from_bos_matches_llama2c(greedy, reference_ids):
    assert len(greedy) == 256
    mismatches = [i for i, (a, b) in enumerate(zip(greedy, reference_ids)) if a != b]
    assert mismatches == [], f"first mismatch at step {mismatches[:1]}"


def test_teacher_forced_margins(stories, reference_ids):
    top, margin = teacher_forced(stories, [1] + reference_ids[:255])
    assert top.tolist() == reference_ids
    assert margin.shape == (256,) and margin.dtype == np.float32
    # Measured: the narrowest top-2 margin is about 0.0042 (at position 185), the median a few
    # logits; every choice is still decided well above float32 rounding (~1e-5).
    assert float(margin.min()) > 1e-3
    assert float(np.median(margin)) > 1.0


def test_decoded_story(tokenizer, greedy):
    text = tokenizer.decode_all(greedy[:40]).decode()
    assert text.startswith("Once upon a time, there was a little girl named Lily.")


def test_encode_once_upon_a_time(tokenizer, reference_ids):
    ids = tokenizer.encode("Once upon a time")
    assert ids[0] == 1
    assert ids[1:] == reference_ids[:4]     # the model's own first four tokens
    assert tokenizer.decode_all(ids[1:]) == b"Once upon a time"
    assert tokenizer.encode("Once upon a time", bos=False, eos=True) == ids[1:] + [2]


# ----------------------------------------------------------------- synthetic: uncached check

def uncached_logits(m, ids):
    """Logits at every position of ``ids``, recomputed from scratch for the whole sequence with
    a causal mask (no KV cache), in float64 with RoPE from its textbook definition."""
    c = m.config
    T, hs, nh, nkv = len(ids), c.head_size, c.n_heads, c.n_kv_heads
    w = {k: v.astype(np.float64) for k, v in m.tensors().items()}

    def norm(x, g):
        return g * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)

    # angle for pair (j, j+1) of a head at position p: p * 10000^(-j/head_size), j even
    pos = np.arange(T)[:, None]
    theta = pos * 10000.0 ** (-np.arange(0, hs, 2) / hs)[None, :]      # [T, hs/2]
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]

    def rope(x):                                 # x: [T, heads, hs]
        out = np.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
        out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return out

    mask = np.triu(np.full((T, T), -np.inf), 1)
    x = w["tok_emb"][ids]
    for layer in range(c.n_layers):
        h = norm(x, w["rms_att"][layer])
        q = rope((h @ w["wq"][layer].T).reshape(T, nh, hs))
        k = rope((h @ w["wk"][layer].T).reshape(T, nkv, hs))
        v = (h @ w["wv"][layer].T).reshape(T, nkv, hs)
        heads = []
        for hd in range(nh):
            kv = hd // (nh // nkv)
            s = q[:, hd] @ k[:, kv].T / math.sqrt(hs) + mask
            p = np.exp(s - s.max(axis=1, keepdims=True))
            heads.append((p / p.sum(axis=1, keepdims=True)) @ v[:, kv])
        x = x + np.concatenate(heads, axis=1) @ w["wo"][layer].T
        h = norm(x, w["rms_ffn"][layer])
        a, b = h @ w["w1"][layer].T, h @ w["w3"][layer].T
        x = x + (a / (1 + np.exp(-a)) * b) @ w["w2"][layer].T
    return norm(x, w["rms_final"]) @ w["wcls"].T


@pytest.mark.parametrize("kwargs", [
    dict(),                                            # GQA: 4 heads over 2 kv heads
    dict(n_kv_heads=4),                                # multi-head attention
    dict(n_kv_heads=1, shared=False),                  # multi-query, unshared classifier
    dict(dim=48, hidden_dim=100, n_layers=3, n_heads=3, n_kv_heads=3, vocab_size=50),
])
def test_kv_cache_matches_uncached_recomputation(kwargs):
    m = synthetic_model(7, **kwargs)
    rng = np.random.default_rng(1)
    ids = [1] + rng.integers(0, m.config.vocab_size, 40).tolist()
    expected = uncached_logits(m, ids)
    dec = FloatDecoder(m)
    for pos, tok in enumerate(ids):
        logits = dec.forward(tok, pos)
        assert logits.dtype == np.float32 and logits.shape == (m.config.vocab_size,)
        scale = max(1.0, float(np.abs(expected[pos]).max()))
        np.testing.assert_allclose(logits, expected[pos], rtol=0, atol=1e-5 * scale,
                                   err_msg=f"position {pos}")


def test_rmsnorm_as_run_c():
    x = np.array([3.0, 4.0], dtype=np.float32)
    w = np.array([1.0, 2.0], dtype=np.float32)
    ss = 1 / math.sqrt((9 + 16) / 2 + 1e-5)
    np.testing.assert_allclose(rmsnorm(x, w), [3 * ss, 8 * ss], rtol=1e-7)
    assert rmsnorm(x, w).dtype == np.float32


def test_synthetic_generation_is_not_degenerate():
    out = generate_greedy(synthetic_model(0), [1], 32)
    assert len(out) == 32
    assert len(set(out)) >= 4
    out = generate_greedy(synthetic_model(0, shared=False), [1], 32)
    assert len(out) == 32 and len(set(out)) >= 4


def test_generate_forces_the_prompt():
    m = synthetic_model(0)
    prompt = [1, 10, 20, 30]
    out = generate_greedy(m, prompt, 12)
    assert out[:3] == [10, 20, 30]
    top, _ = teacher_forced(m, prompt + out[3:11])
    assert out[3:] == top[3:].tolist()     # after the prompt, each token is the argmax
    assert generate_greedy(m, prompt, 2) == [10, 20]
    with pytest.raises(ValueError, match="steps = 65 outside 0..seq_len = 64"):
        generate_greedy(m, [1], 65)


def test_forward_rejects_bad_position_and_token():
    dec = FloatDecoder(synthetic_model(0))
    with pytest.raises(ValueError, match=r"position 64 outside 0..63"):
        dec.forward(1, 64)
    with pytest.raises(ValueError, match=r"token 64 outside 0..63"):
        dec.forward(64, 0)
