"""The integer decoder: quantization of a llama2.c model and its exact integer forward pass.

This is the executable specification of the tile's decoder numerics (docs/numerics.md):
every value is an integer and every operation is defined bit for bit, so the RTL can be
compared with it exactly. Floats appear only in :func:`quantize`, which turns a
:class:`tinylpu.model.FloatModel` into integer tensors, tables and shifts once, before any
token is generated.

Formats. Activations are int16 in a static fixed-point format per tensor class: a value v is
stored as ``round(v * 2**F)``; F (fractional bits) is chosen by calibration on the float model
with one bit of headroom. Weights are int8 with one scale per output row; a matrix-vector
product accumulates int8 x int16 products exactly and requantizes each row with its own int16
multiplier and a shared shift (:func:`mulshr`).
"""

__all__ = ["Formats", "QLayer", "QModel", "quantize", "IntDecoder", "mulshr", "sat",
           "isqrt", "norm_recip", "UNIT_FRAC", "SCORE_SCALE"]

import dataclasses
import math

import numpy as np

from .numerics import (EXP2_STEPS, RECIP_FRAC, ROPE_FRAC, argmax, exp2_neg, norm_recip,
                       rope_rotate, saturate, silu_gate, silu_interp)

UNIT_FRAC = 14         # RMSNorm's x / (sqrt(n) rms): |u| <= 1, Q14
SCORE_SCALE = math.log2(math.e)   # q is stored times log2(e) / sqrt(head_size): scores in bits
SILU_POINTS = 256      # SiLU table intervals over the h1 range
MULT_FRAC_MAX = 15     # requantization multipliers are int16 (|M| < 2**15)


# The integer operations ----------------------------------------------------------------------

def sat(values, bits=16):
    """Clamp to the signed ``bits`` range (int16 by default)."""
    return saturate(values, bits)


def mulshr(a, b, shift, bits=16):
    """``sat((a * b + 2**(shift-1)) >> shift)``: the vector unit's multiply, round half up,
    arithmetic shift and saturate (shift 0: no rounding). Exact on int64."""
    prod = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    shift = int(shift)
    if shift > 0:
        prod = (prod + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    elif shift < 0:
        prod = prod << np.int64(-shift)
    return sat(prod, bits)


def isqrt(v):
    """floor(sqrt(v)) of a non-negative integer (the scalar unit's square root)."""
    return math.isqrt(int(v))


def _frac_bits(max_abs, headroom=2.0, bits=16):
    """Fractional bits so that ``max_abs * headroom`` fits the signed ``bits`` range."""
    if max_abs <= 0:
        return bits - 1
    return int(max(0, min(bits - 1, math.floor(bits - 1 - math.log2(max_abs * headroom)))))


# The quantized model -------------------------------------------------------------------------

@dataclasses.dataclass
class Formats:
    """Fractional bits of each activation class (int16 unless noted)."""
    x: int          # residual stream
    xn: int         # RMSNorm output (matmul input)
    q: int
    k: int
    v: int          # also the attention output (p is Q15)
    h1: int         # w1 output = SiLU table input
    h3: int
    g: int          # silu(h1) * h3 (w2 input)
    logits: int     # classifier output (int32)
    gain: list      # RMSNorm gains * sqrt(dim), per norm (2 per layer + final)


@dataclasses.dataclass
class QMatrix:
    """int8 ``w [out, in]``; row r of ``W x`` (x in format ``f_in``) is requantized to format
    ``f_out`` as ``mulshr(acc_r, mult[r], shift, bits)``."""
    w: np.ndarray
    mult: np.ndarray
    shift: int
    bits: int = 16

    def apply(self, x):
        acc = self.w.astype(np.int64) @ np.asarray(x, dtype=np.int64)
        return mulshr(acc, self.mult, self.shift, self.bits)


@dataclasses.dataclass
class QLayer:
    att_gain: np.ndarray      # int16 [dim]
    wq: QMatrix
    wk: QMatrix
    wv: QMatrix
    wo: QMatrix
    ffn_gain: np.ndarray
    w1: QMatrix
    w3: QMatrix
    w2: QMatrix


@dataclasses.dataclass
class QModel:
    config: object            # tinylpu.model.ModelConfig
    fmt: Formats
    emb: np.ndarray           # int8 [vocab, dim]
    emb_mult: np.ndarray      # int16 [vocab]: row t -> x format with emb_shift
    emb_shift: int
    layers: list
    final_gain: np.ndarray
    cls: QMatrix              # int32 logits
    rope_cos: np.ndarray      # int16 [seq_len, head_size // 2], Q1.14
    rope_sin: np.ndarray
    att_shift: list           # per layer: q.k >> att_shift = the score in 1/16 bit steps
    silu_table: np.ndarray    # int16 [257]: silu over the h1 range, in h1's format
    eps: int                  # RMSNorm epsilon in the squared x format, times dim

    def footprint(self, positions=None):
        """Bytes of on-chip storage by kind: int8 weights, int16 per-row multipliers and
        RMSNorm gains, int16 tables (RoPE, exp, SiLU), and the int16 KV cache for
        ``positions`` (default ``seq_len``)."""
        cfg = self.config
        positions = cfg.seq_len if positions is None else positions
        mats = [m for layer in self.layers
                for m in (layer.wq, layer.wk, layer.wv, layer.wo, layer.w1, layer.w3, layer.w2)]
        shared = self.cls.w is self.emb or np.array_equal(self.cls.w, self.emb)
        weights = self.emb.size + sum(m.w.size for m in mats) + (0 if shared else self.cls.w.size)
        rows = len(self.emb_mult) + sum(len(m.mult) for m in mats) + len(self.cls.mult)
        gains = sum(l.att_gain.size + l.ffn_gain.size for l in self.layers) + self.final_gain.size
        tables = self.rope_cos.size + self.rope_sin.size + self.silu_table.size
        kv = 2 * cfg.n_layers * positions * cfg.kv_dim
        return {"weights (int8)": weights, "multipliers and gains (int16)": 2 * (rows + gains),
                "tables (int16)": 2 * tables, f"KV cache, {positions} positions (int16)": 2 * kv}


def _quantize_rows(w):
    """int8 symmetric per-row: ``w ~ q * scale[:, None]``."""
    w = np.asarray(w, dtype=np.float64)
    scale = np.abs(w).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int64)
    return q, scale


def _multipliers(factor):
    """int16 multipliers and one shift with ``mult * 2**-shift ~ factor`` (per element)."""
    factor = np.asarray(factor, dtype=np.float64)
    shift = MULT_FRAC_MAX - 1 - math.ceil(math.log2(factor.max()))
    shift = max(0, min(62, shift))
    mult = np.round(factor * 2.0 ** shift).astype(np.int64)
    if mult.max() >= 1 << 15:
        raise ValueError("requantization multiplier does not fit int16")
    return mult, shift


def _qmatrix(w, f_in, f_out, bits=16):
    return _qmatrices([w], f_in, [f_out], bits)[0]


def _qmatrices(ws, f_in, f_outs, bits=16):
    """Matrices that one MATVEC computes together (w1 and w3, interleaved by rows): one
    requantization shift for all their rows."""
    qs, factors = [], []
    for w, f_out in zip(ws, f_outs):
        q, scale = _quantize_rows(w)
        qs.append(q)
        # real y_r = acc_r * scale_r * 2**-f_in; stored y = y_r * 2**f_out
        factors.append(scale * 2.0 ** (f_out - f_in))
    mult, shift = _multipliers(np.concatenate(factors))
    parts = np.split(mult, np.cumsum([len(q) for q in qs])[:-1])
    return [QMatrix(q, m, shift, bits) for q, m in zip(qs, parts)]


def _silu(x):
    return x / (1.0 + np.exp(-x))


def quantize(model, calibration, headroom=2.0):
    """Quantize a :class:`tinylpu.model.FloatModel`.

    ``calibration`` is a list of token-id sequences; the float reference runs on them
    (teacher forced) to find each activation class's range, which fixes the formats.
    """
    from .reference import FloatDecoder
    cfg = model.config
    stats = {}
    for ids in calibration:
        dec = FloatDecoder(model, record=stats)
        for pos, tok in enumerate(ids[:cfg.seq_len]):
            dec.forward(tok, pos)
    amax = {k: float(v) for k, v in stats.items()}
    gains = [model.rms_att[l] for l in range(cfg.n_layers)]
    gains += [model.rms_ffn[l] for l in range(cfg.n_layers)] + [model.rms_final]
    sqrt_n = math.sqrt(cfg.dim)
    # q is stored pre-scaled so that q.k, shifted, is the score in 1/16-bit steps
    q_scale = SCORE_SCALE / math.sqrt(cfg.head_size)
    fmt = Formats(
        x=_frac_bits(amax["x"], headroom), xn=_frac_bits(amax["xn"], headroom),
        q=_frac_bits(amax["q"] * q_scale, headroom), k=_frac_bits(amax["k"], headroom),
        v=_frac_bits(amax["v"], headroom), h1=_frac_bits(amax["h1"], headroom),
        h3=_frac_bits(amax["h3"], headroom), g=_frac_bits(amax["g"], headroom),
        logits=_frac_bits(amax["logits"], headroom, bits=32),
        gain=[_frac_bits(float(np.abs(g).max()) * sqrt_n, 1.0) for g in gains])

    def gain_q(g, f):
        return sat(np.round(np.asarray(g, np.float64) * sqrt_n * 2.0 ** f)).astype(np.int64)

    L = cfg.n_layers
    layers = []
    for l in range(L):
        w1, w3 = _qmatrices([model.w1[l], model.w3[l]], fmt.xn, [fmt.h1, fmt.h3])
        layers.append(QLayer(
            att_gain=gain_q(model.rms_att[l], fmt.gain[l]),
            wq=_qmatrix(model.wq[l] * q_scale, fmt.xn, fmt.q),
            wk=_qmatrix(model.wk[l], fmt.xn, fmt.k),
            wv=_qmatrix(model.wv[l], fmt.xn, fmt.v), wo=_qmatrix(model.wo[l], fmt.v, fmt.x),
            ffn_gain=gain_q(model.rms_ffn[l], fmt.gain[L + l]),
            w1=w1, w3=w3,
            w2=_qmatrix(model.w2[l], fmt.g, fmt.x)))
    emb_q, emb_scale = _quantize_rows(model.tok_emb)
    emb_mult, emb_shift = _multipliers(emb_scale * 2.0 ** fmt.x)
    cls = _qmatrix(model.wcls, fmt.xn, fmt.logits, bits=32)

    hs = cfg.head_size
    pos = np.arange(cfg.seq_len)[:, None]
    freq = 1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs)
    angle = pos * freq[None, :]
    rope_cos = np.round(np.cos(angle) * 2 ** ROPE_FRAC).astype(np.int64)
    rope_sin = np.round(np.sin(angle) * 2 ** ROPE_FRAC).astype(np.int64)
    # scores: q.k in format fq + fk; a step is 1/16 of a bit (2**(1/16))
    att_shift = fmt.q + fmt.k - (EXP2_STEPS.bit_length() - 1)
    if att_shift < 0:
        raise ValueError(f"q and k formats ({fmt.q}, {fmt.k}) leave no room for 1/16-bit "
                         f"score steps")
    lo = -2.0 ** (15 - fmt.h1)
    grid = lo + np.arange(SILU_POINTS + 1) * (-2 * lo / SILU_POINTS)
    silu_table = sat(np.round(_silu(grid) * 2.0 ** fmt.h1)).astype(np.int64)
    eps = max(1, round(1e-5 * cfg.dim * 2.0 ** (2 * fmt.x)))
    return QModel(cfg, fmt, emb_q, emb_mult, emb_shift, layers,
                  gain_q(model.rms_final, fmt.gain[-1]), cls, rope_cos, rope_sin,
                  [att_shift] * L, silu_table, eps)


# The integer forward pass --------------------------------------------------------------------

class IntDecoder:
    """Token-by-token integer forward pass of a :class:`QModel` with an int16 KV cache."""

    def __init__(self, qm):
        self.qm = qm
        cfg = qm.config
        self.k_cache = np.zeros((cfg.n_layers, cfg.seq_len, cfg.kv_dim), dtype=np.int64)
        self.v_cache = np.zeros((cfg.n_layers, cfg.seq_len, cfg.kv_dim), dtype=np.int64)

    def rmsnorm(self, x, gain, gain_frac):
        """x (format fx) -> x / rms * gain (format xn), in two vector-unit multiplies."""
        qm = self.qm
        ss = int(np.sum(x * x)) + qm.eps
        m, b = norm_recip(isqrt(ss))
        u = mulshr(x, m, b + 14 - UNIT_FRAC)                 # x / (sqrt(n) rms), Q14
        return mulshr(u, gain, UNIT_FRAC + gain_frac - qm.fmt.xn)

    def rope(self, vec, pos, n_heads):
        qm = self.qm
        hs = qm.config.head_size
        v = vec.reshape(n_heads, hs // 2, 2)
        ra, rb = rope_rotate(v[..., 0], v[..., 1], qm.rope_cos[pos][None, :],
                             qm.rope_sin[pos][None, :])
        return np.stack([ra, rb], axis=-1).reshape(-1)

    def silu(self, h):
        """SiLU by linear interpolation in a 257-point table over the int16 range of h."""
        return silu_interp(self.qm.silu_table, h)

    def attention(self, l, q, pos):
        qm = self.qm
        cfg = qm.config
        hs, kv_mul = cfg.head_size, cfg.kv_mul
        out = np.zeros(cfg.dim, dtype=np.int64)
        keys = self.k_cache[l, :pos + 1]
        vals = self.v_cache[l, :pos + 1]
        for h in range(cfg.n_heads):
            kvh = h // kv_mul
            qh = q[h * hs:(h + 1) * hs]
            kh = keys[:, kvh * hs:(kvh + 1) * hs]
            d = mulshr(kh @ qh, 1, qm.att_shift[l])           # q.k exact; int16 scores
            e = exp2_neg(d.max() - d)                         # Q14 weights, 2**14 at the max
            m, b = norm_recip(int(e.sum()))
            acc = e @ vals[:, kvh * hs:(kvh + 1) * hs]        # exact int64
            out[h * hs:(h + 1) * hs] = mulshr(acc, m, b + RECIP_FRAC)   # acc / sum(e)
        return out

    def forward(self, token, pos):
        """Logits (int32 values in format ``fmt.logits``) after ``token`` at ``pos``."""
        qm = self.qm
        cfg, fmt = qm.config, qm.fmt
        L = cfg.n_layers
        x = mulshr(qm.emb[token], qm.emb_mult[token], qm.emb_shift)
        for l, layer in enumerate(qm.layers):
            xn = self.rmsnorm(x, layer.att_gain, fmt.gain[l])
            q = self.rope(layer.wq.apply(xn), pos, cfg.n_heads)
            self.k_cache[l, pos] = self.rope(layer.wk.apply(xn), pos, cfg.n_kv_heads)
            self.v_cache[l, pos] = layer.wv.apply(xn)
            att = self.attention(l, q, pos)
            x = sat(x + layer.wo.apply(att))
            xn = self.rmsnorm(x, layer.ffn_gain, fmt.gain[L + l])
            g = silu_gate(layer.w1.apply(xn), layer.w3.apply(xn), qm.silu_table,
                          fmt.h1 + fmt.h3 - fmt.g)
            x = sat(x + layer.w2.apply(g))
        xn = self.rmsnorm(x, qm.final_gain, fmt.gain[-1])
        return qm.cls.apply(xn)

    @staticmethod
    def argmax(logits):
        """Index of the largest logit, the lowest index on ties."""
        return argmax(logits)
