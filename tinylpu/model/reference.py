"""The float reference: llama2.c's run.c forward pass in NumPy float32.

Every step mirrors run.c (RMSNorm with eps 1e-5, RoPE computed from the position, GQA attention
over a KV cache, SwiGLU FFN, final RMSNorm, classifier) in float32 arithmetic; only the
accumulation order of the matrix-vector products differs (about 1e-5 relative).
"""

from __future__ import annotations

__all__ = ["FloatDecoder", "generate_greedy", "teacher_forced", "rmsnorm", "rope_cos_sin"]

import numpy as np

from tinylpu.model import BOS, FloatModel

F32 = np.float32


def rmsnorm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """run.c: ss = sum(x*x)/n + 1e-5; ss = 1/sqrt(ss); o = w * (ss * x)."""
    ss = np.dot(x, x) / F32(x.shape[-1]) + F32(1e-5)
    ss = F32(1.0) / np.sqrt(ss, dtype=F32)
    return weight * (ss * x)


def rope_cos_sin(pos: int, dim: int, head_size: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of run.c's angle for each even index i in 0..dim-2 (one entry per pair)."""
    head_dim = (np.arange(0, dim, 2) % head_size).astype(F32)
    freq = F32(1.0) / np.power(F32(10000.0), head_dim / F32(head_size), dtype=F32)
    val = F32(pos) * freq
    return np.cos(val, dtype=F32), np.sin(val, dtype=F32)


def _rotate(vec: np.ndarray, fcr: np.ndarray, fci: np.ndarray) -> np.ndarray:
    v0, v1 = vec[0::2], vec[1::2]
    out = np.empty_like(vec)
    out[0::2] = v0 * fcr - v1 * fci
    out[1::2] = v0 * fci + v1 * fcr
    return out


def _silu(x: np.ndarray) -> np.ndarray:
    return x * (F32(1.0) / (F32(1.0) + np.exp(-x, dtype=F32)))


class FloatDecoder:
    """One decoding stream with a KV cache: ``forward(token, pos)`` returns the logits."""

    def __init__(self, model: FloatModel, record: dict | None = None):
        """``record``: if given, the largest |value| seen of each activation class is kept in
        it (keys x, xn, q, k, v, h1, h3, g, logits), for calibrating integer formats."""
        self.model = model
        self.record = record
        c = model.config
        self.config = c
        self.key_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), dtype=F32)
        self.value_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), dtype=F32)
        self._kv_head = np.arange(c.n_heads) // c.kv_mul     # head h reads kv head h // kv_mul
        self._scale = np.sqrt(F32(c.head_size), dtype=F32)

    def forward(self, token: int, pos: int) -> np.ndarray:
        """Logits after ``token`` at ``pos``. A float overflow gives inf/nan values (which
        the quantizer reports), not warnings."""
        with np.errstate(all="ignore"):
            return self._forward(token, pos)

    def _forward(self, token: int, pos: int) -> np.ndarray:
        m, c = self.model, self.config
        if not 0 <= token < c.vocab_size:
            raise ValueError(f"token {token} outside 0..{c.vocab_size - 1}")
        if not 0 <= pos < c.seq_len:
            raise ValueError(f"position {pos} outside 0..{c.seq_len - 1}")
        hs, nh, nkv, kv_dim = c.head_size, c.n_heads, c.n_kv_heads, c.kv_dim
        fcr, fci = rope_cos_sin(pos, c.dim, hs)
        x = m.tok_emb[token].copy()
        for layer in range(c.n_layers):
            xb = rmsnorm(x, m.rms_att[layer])
            q = m.wq[layer] @ xb
            k = m.wk[layer] @ xb
            v = m.wv[layer] @ xb
            q = _rotate(q, fcr, fci)
            k = _rotate(k, fcr[:kv_dim // 2], fci[:kv_dim // 2])   # k rotated where i < kv_dim
            self._note(x=x, xn=xb, q=q, k=k, v=v)
            self.key_cache[layer, pos] = k
            self.value_cache[layer, pos] = v
            keys = self.key_cache[layer, :pos + 1].reshape(pos + 1, nkv, hs)[:, self._kv_head]
            vals = self.value_cache[layer, :pos + 1].reshape(pos + 1, nkv, hs)[:, self._kv_head]
            scores = np.einsum("thd,hd->ht", keys, q.reshape(nh, hs)) / self._scale
            scores = np.exp(scores - scores.max(axis=1, keepdims=True), dtype=F32)
            att = scores / scores.sum(axis=1, keepdims=True, dtype=F32)
            xb = np.einsum("ht,thd->hd", att, vals).reshape(c.dim)
            x = x + m.wo[layer] @ xb
            xb = rmsnorm(x, m.rms_ffn[layer])
            h1, h3 = m.w1[layer] @ xb, m.w3[layer] @ xb
            hb = _silu(h1) * h3
            self._note(x=x, xn=xb, h1=h1, h3=h3, g=hb)
            x = x + m.w2[layer] @ hb
        x = rmsnorm(x, m.rms_final)
        logits = m.wcls @ x
        self._note(x=x, xn=x, logits=logits)
        return logits

    def _note(self, **tensors):
        if self.record is not None:
            for name, value in tensors.items():
                self.record[name] = max(self.record.get(name, 0.0), float(np.abs(value).max()))


def generate_greedy(model: FloatModel, prompt_ids, steps: int, stop_on_bos: bool = True
                    ) -> list[int]:
    """llama2.c's generate loop with argmax sampling.

    Returns the token chosen after each position ``0 .. steps-1``: while ``pos <
    len(prompt_ids) - 1`` it is forced to ``prompt_ids[pos + 1]``, afterwards it is the argmax
    of the logits (first index on ties, like run.c). As in run.c, generation stops (without
    the BOS) when BOS is chosen, if ``stop_on_bos``.
    """
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise ValueError("the prompt needs at least one token (llama2.c starts from BOS)")
    if not 0 <= steps <= model.config.seq_len:
        raise ValueError(f"steps = {steps} outside 0..seq_len = {model.config.seq_len}")
    dec = FloatDecoder(model)
    out = []
    token = prompt[0]
    for pos in range(steps):
        logits = dec.forward(token, pos)
        nxt = prompt[pos + 1] if pos < len(prompt) - 1 else int(np.argmax(logits))
        if nxt == BOS and stop_on_bos:
            break
        out.append(nxt)
        token = nxt
    return out


def teacher_forced(model: FloatModel, ids) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``ids`` (position p gets ids[p]); per position, the argmax of the logits and the
    margin between the largest and second-largest logit."""
    ids = [int(t) for t in ids]
    if len(ids) > model.config.seq_len:
        raise ValueError(f"{len(ids)} tokens exceed seq_len = {model.config.seq_len}")
    dec = FloatDecoder(model)
    top = np.empty(len(ids), dtype=np.int64)
    margin = np.empty(len(ids), dtype=F32)
    for pos, tok in enumerate(ids):
        logits = dec.forward(tok, pos)
        top[pos] = int(np.argmax(logits))
        two = np.partition(logits, -2)[-2:]
        margin[pos] = two[1] - two[0]
    return top, margin
