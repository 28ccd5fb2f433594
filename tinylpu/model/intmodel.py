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

The KV cache holds int16 K (after RoPE) and V, or, with ``quantize(..., kv_bits=8)`` (both
8-bit) or ``kv_bits=(16, 8)`` (K int16, V 8-bit), narrower values with static shifts chosen
on the calibration sequences, read back as ``stored << s``: K (after RoPE) is stored as
``sat8(round(k >> s))`` with s per layer (and per kv head); V is wv's product requantized
straight to 8 bits, its shift s more than the int16 V's (s per layer: one MATVEC shift).
The tile implements only the int16 cache; the narrow ones are measured options of this
specification (docs/numerics.md, "8-bit KV cache: measured").
"""

__all__ = ["Formats", "QLayer", "QModel", "quantize", "IntDecoder", "mulshr", "sat",
           "isqrt", "norm_recip", "SCORE_SCALE", "KV_SHIFT_RULES", "kv_store", "kv_shifts",
           "q_shifts"]

import dataclasses
import math

import numpy as np

from tinylpu.numerics import (EXP2_STEPS, RECIP_FRAC, ROPE_FRAC, argmax, exp2_neg, isqrt,
                       norm_recip, norm_requantize, rope_rotate, rsqrt_scale, saturate,
                       silu_gate, silu_interp)
from tinylpu.model import WEIGHT_NAMES, ModelError

SCORE_SCALE = math.log2(math.e)   # q is stored times log2(e) / sqrt(head_size): scores in bits
SILU_POINTS = 256      # SiLU table intervals over the h1 range
MULT_FRAC_MAX = 15     # requantization multipliers are int16 (|M| < 2**15)
# how a narrow KV cache's static shifts are chosen: one per layer or one per layer and kv head
# (for K and for V each), the smallest that keeps the calibration maximum in range ("max") or
# the one with the least squared error over the calibration values, so that outliers may
# saturate ("mse")
KV_SHIFT_RULES = ("layer-max", "head-max", "layer-mse", "head-mse")


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


def kv_store(x, shift, bits):
    """The KV cache's stored value of int16 ``x``: ``sat((x + 2**(shift-1)) >> shift, bits)``
    per element (``shift`` broadcasts; shift 0: ``x`` itself, saturated). Read back as
    ``stored << shift``."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), 0)
    return sat((x + half) >> shift, bits)


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
    xg: int         # the final RMSNorm's x * gain (the classifier's input)
    q: int
    k: int
    v: int          # also the attention output (p is Q15)
    h1: int         # w1 output = SiLU table input
    h3: int
    g: int          # silu(h1) * h3 (w2 input)
    logits: int     # classifier output (int32)
    gain: int       # the final RMSNorm's gains (the layers' gains are folded into weights)


@dataclasses.dataclass
class QMatrix:
    """int8 ``w [out, in]``; row r of ``W x`` (x in format ``f_in``) is requantized to format
    ``f_out`` as ``mulshr(acc_r, mult[r], shift, bits)``. A ``norm`` matrix is applied to an
    RMSNorm's input: its gains are folded into ``w``, and row r is requantized with the
    norm's scale ``(m, b)`` as ``norm_requantize(acc_r, mult[r], shift, m, b, bits)``."""
    w: np.ndarray
    mult: np.ndarray
    shift: int
    bits: int = 16
    norm: bool = False

    def apply(self, x, scale=None):
        acc = self.w.astype(np.int64) @ np.asarray(x, dtype=np.int64)
        if self.norm:
            return norm_requantize(acc, self.mult, self.shift, *scale, self.bits)
        return mulshr(acc, self.mult, self.shift, self.bits)


@dataclasses.dataclass
class QLayer:
    wq: QMatrix               # wq, wk, wv, w1 and w3 are norm matrices (gains folded in)
    wk: QMatrix
    wv: QMatrix
    wo: QMatrix
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
    final_gain: np.ndarray    # int16 [dim]: x * gain = mulshr(x, final_gain, final_shift)
    final_shift: int
    cls: QMatrix              # int32 logits, a norm matrix applied to x * gain
    rope_cos: np.ndarray      # int16 [seq_len, head_size // 2], Q1.14
    rope_sin: np.ndarray
    att_shift: list           # per layer: q.k >> att_shift = the score in 1/16 bit steps
    silu_table: np.ndarray    # int16 [257]: silu over the h1 range, in h1's format
    eps: int                  # RMSNorm epsilon in the squared x format, times dim
    k_bits: int = 16          # K-cache element width (the tile: 16)
    v_bits: int = 16          # V-cache element width (the tile: 16)
    kv_shift: np.ndarray = None   # [2, n_layers, n_kv_heads]: K (0) and V (1) are stored as
    #                               kv_store(x, shift, k_bits / v_bits); None: all 0
    q_bits: int = 16          # q's width after RoPE (the tile: 8, quantize's default)
    q_shift: np.ndarray = None    # [n_layers, n_heads]: RoPE's extra shift of a narrow q

    @property
    def kv_bits(self):
        """``(k_bits, v_bits)``: the tile's cache is ``(16, 16)``."""
        return self.k_bits, self.v_bits

    def kv_shifts(self):
        """The KV cache's shifts, ``[2, n_layers, n_kv_heads]`` (zeros for the int16 cache)."""
        cfg = self.config
        if self.kv_shift is None:
            return np.zeros((2, cfg.n_layers, cfg.n_kv_heads), dtype=np.int64)
        return np.asarray(self.kv_shift, dtype=np.int64)

    def footprint(self, positions=None):
        """Bytes of on-chip storage by kind: int8 weights, int16 per-row multipliers and
        RMSNorm gains, int16 tables (RoPE, exp, SiLU), and the KV cache (``k_bits`` and
        ``v_bits`` an element) for ``positions`` (default ``seq_len``)."""
        cfg = self.config
        positions = cfg.seq_len if positions is None else positions
        mats = [m for layer in self.layers
                for m in (layer.wq, layer.wk, layer.wv, layer.wo, layer.w1, layer.w3, layer.w2)]
        shared = self.cls.w is self.emb or np.array_equal(self.cls.w, self.emb)
        weights = self.emb.size + sum(m.w.size for m in mats) + (0 if shared else self.cls.w.size)
        rows = len(self.emb_mult) + sum(len(m.mult) for m in mats) + len(self.cls.mult)
        gains = self.final_gain.size
        tables = self.rope_cos.size + self.rope_sin.size + self.silu_table.size
        kv = cfg.n_layers * positions * cfg.kv_dim
        width = (f"int{self.k_bits}" if self.k_bits == self.v_bits else
                 f"K int{self.k_bits}, V int{self.v_bits}")
        return {"weights (int8)": weights, "multipliers and gains (int16)": 2 * (rows + gains),
                "tables (int16)": 2 * tables,
                f"KV cache, {positions} positions ({width})":
                    -(-kv * (self.k_bits + self.v_bits) // 8)}


def _quantize_rows(w):
    """int8 symmetric per-row: ``w ~ q * scale[:, None]``; an all-zero row has scale 0 (its
    int8 row and its multiplier are 0)."""
    w = np.asarray(w, dtype=np.float64)
    scale = np.abs(w).max(axis=1) / 127.0
    q = np.clip(np.round(w / np.where(scale == 0, 1.0, scale)[:, None]), -127, 127)
    return q.astype(np.int64), scale


def _multipliers(factor, name):
    """int16 multipliers and one shift with ``mult * 2**-shift ~ factor`` (per element).
    All factors 0 (an all-zero tensor): multipliers 0. A factor of 2**15 or more cannot be
    represented: a :class:`~tinylpu.model.ModelError` naming the tensor."""
    factor = np.asarray(factor, dtype=np.float64)
    top = float(factor.max())
    if not np.all(np.isfinite(factor)):
        raise ModelError(f"{name}: a requantization factor is not finite (the tensor's values "
                         f"or the activation formats are out of range)")
    if top <= 0:
        return np.zeros(len(factor), dtype=np.int64), 0
    shift = MULT_FRAC_MAX - 1 - math.ceil(math.log2(top))
    shift = max(0, min(62, shift))
    if round(top * 2.0 ** shift) >= 1 << 15:
        raise ModelError(f"{name}: requantization factor {top:.3g} does not fit an int16 "
                         f"multiplier (limit 32767): the tensor's values are too large for "
                         f"the int16 activation formats")
    return np.round(factor * 2.0 ** shift).astype(np.int64), shift


def _qmatrix(name, w, f_in, f_out, bits=16):
    return _qmatrices(name, [w], f_in, [f_out], bits)[0]


def _qmatrices(name, ws, f_in, f_outs, bits=16, norm=None):
    """Matrices that one MATVEC computes together (w1 and w3, interleaved by rows): one
    requantization shift for all their rows.

    ``norm = (gain, sqrt_n, f_x)``: the matrices are applied to RMSNorm(x) (x in format
    ``f_x``, the MATVEC input ``x * gain`` in ``f_in``, or x itself with ``gain`` folded into
    the weights when ``f_in`` is None). With ``ss = sum(x**2) = n rms**2 2**(2 f_x)``,
    ``W rmsnorm(x) = acc * scale_r * 2**(f_x - f_in) * sqrt(n) / sqrt(ss)``, and
    :func:`~tinylpu.numerics.norm_requantize` takes ``mult * 2**-shift`` = twice the factor
    of ``1/sqrt(ss)``."""
    qs, factors = [], []
    for w, f_out in zip(ws, f_outs):
        w = np.asarray(w, dtype=np.float64)
        if norm is not None:
            gain, sqrt_n, f_x = norm
            if f_in is None:
                w = w * np.asarray(gain, dtype=np.float64)[None, :]
            q, scale = _quantize_rows(w)
            factors.append(2 * scale * sqrt_n * 2.0 ** (f_out + f_x - (f_in or f_x)))
        else:
            q, scale = _quantize_rows(w)
            # real y_r = acc_r * scale_r * 2**-f_in; stored y = y_r * 2**f_out
            factors.append(scale * 2.0 ** (f_out - f_in))
        qs.append(q)
    mult, shift = _multipliers(np.concatenate(factors), name)
    parts = np.split(mult, np.cumsum([len(q) for q in qs])[:-1])
    return [QMatrix(q, m, shift, bits, norm is not None) for q, m in zip(qs, parts)]


def _silu(x):
    return x / (1.0 + np.exp(-x))


def quantize(model, calibration, headroom=2.0, kv_bits=16, kv_shift="layer-max", q_bits=8):
    """Quantize a :class:`tinylpu.model.FloatModel`.

    ``calibration`` is a list of token-id sequences; the float reference runs on them
    (teacher forced) to find each activation class's range, which fixes the formats.

    ``kv_bits``: the KV cache's element width, 16 (the tile's int16 cache) or narrower (8..15:
    not on the tile), for K and V alike or as a pair ``(k_bits, v_bits)``; a narrow cache's
    static shifts are chosen on the same calibration sequences by the rule ``kv_shift``, one
    of :data:`KV_SHIFT_RULES` (see :func:`kv_shifts`). ``q_bits``: q's width after RoPE, 8
    (the tile's: QK reads q from the weight banks), 9..15, with static shifts per layer and
    head (:func:`q_shifts`), or 16 (the integer model only).
    """
    from tinylpu.model.reference import FloatDecoder
    k_bits, v_bits = kv_bits if isinstance(kv_bits, (tuple, list)) else (kv_bits, kv_bits)
    for bits in (k_bits, v_bits):
        if bits not in range(8, 17):
            raise ValueError(f"kv_bits must be in [8, 16], not {bits!r}")
    if kv_shift not in KV_SHIFT_RULES:
        raise ValueError(f"kv_shift must be one of {', '.join(KV_SHIFT_RULES)}, not "
                         f"{kv_shift!r}")
    if q_bits not in range(8, 17):
        raise ValueError(f"q_bits must be in [8, 16], not {q_bits!r}")
    cfg = model.config
    stats = {}
    with np.errstate(all="ignore"):          # an overflow shows up as a non-finite range
        for ids in calibration:
            dec = FloatDecoder(model, record=stats)
            for pos, tok in enumerate(ids[:cfg.seq_len]):
                dec.forward(tok, pos)
    amax = {k: float(v) for k, v in stats.items()}
    bad = sorted(k for k, v in amax.items() if not math.isfinite(v))
    if bad:
        name, value = max(((n, float(np.abs(getattr(model, n)).max())) for n in WEIGHT_NAMES),
                          key=lambda item: item[1])
        raise ModelError(f"the float model overflows on the calibration tokens (activations "
                         f"{', '.join(bad)} not finite); the largest |value| is {value:.3g} in "
                         f"tensor {name}")
    sqrt_n = math.sqrt(cfg.dim)
    g_final = np.asarray(model.rms_final, dtype=np.float64)
    # q is stored pre-scaled so that q.k, shifted, is the score in 1/16-bit steps
    q_scale = SCORE_SCALE / math.sqrt(cfg.head_size)
    fmt = Formats(
        x=_frac_bits(amax["x"], headroom),
        xg=_frac_bits(amax["x"] * max(float(np.abs(g_final).max()), 1e-30), headroom),
        q=_frac_bits(amax["q"] * q_scale, headroom), k=_frac_bits(amax["k"], headroom),
        v=_frac_bits(amax["v"], headroom), h1=_frac_bits(amax["h1"], headroom),
        h3=_frac_bits(amax["h3"], headroom), g=_frac_bits(amax["g"], headroom),
        logits=_frac_bits(amax["logits"], headroom, bits=32),
        gain=_frac_bits(float(np.abs(g_final).max()), 1.0))

    L = cfg.n_layers
    layers = []
    for l in range(L):
        att = (model.rms_att[l], sqrt_n, fmt.x)          # the gains fold into the weights
        ffn = (model.rms_ffn[l], sqrt_n, fmt.x)
        wq, wk, wv = (_qmatrices(f"layer {l} {n}", [w], None, [f], norm=att)[0] for n, w, f in
                      (("wq", model.wq[l] * q_scale, fmt.q), ("wk", model.wk[l], fmt.k),
                       ("wv", model.wv[l], fmt.v)))
        w1, w3 = _qmatrices(f"layer {l} w1/w3", [model.w1[l], model.w3[l]], None,
                            [fmt.h1, fmt.h3], norm=ffn)
        layers.append(QLayer(wq=wq, wk=wk, wv=wv,
                             wo=_qmatrix(f"layer {l} wo", model.wo[l], fmt.v, fmt.x),
                             w1=w1, w3=w3,
                             w2=_qmatrix(f"layer {l} w2", model.w2[l], fmt.g, fmt.x)))
    emb_q, emb_scale = _quantize_rows(model.tok_emb)
    emb_mult, emb_shift = _multipliers(emb_scale * 2.0 ** fmt.x, "tok_emb")
    # the classifier shares the embedding: the final gains are applied to x by the vector
    # unit (x * gain in format xg). The logits' format is lowered until its multipliers fit
    _, cls_scale = _quantize_rows(model.wcls)
    room = math.floor(MULT_FRAC_MAX - 2 - math.log2(
        2 * max(float(cls_scale.max()), 1e-30) * sqrt_n * 2.0 ** (fmt.x - fmt.xg)))
    fmt.logits = min(fmt.logits, room)
    cls = _qmatrices("wcls", [model.wcls], fmt.xg, [fmt.logits], bits=32,
                     norm=(None, sqrt_n, fmt.x))[0]
    final_gain = sat(np.round(g_final * 2.0 ** fmt.gain)).astype(np.int64)
    final_shift = fmt.gain + fmt.x - fmt.xg
    if final_shift < 0:
        raise ModelError(f"rms_final: the final RMSNorm gain's format change needs a left "
                         f"shift ({final_shift})")

    hs = cfg.head_size
    pos = np.arange(cfg.seq_len)[:, None]
    freq = 1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs)
    angle = pos * freq[None, :]
    rope_cos = np.round(np.cos(angle) * 2 ** ROPE_FRAC).astype(np.int64)
    rope_sin = np.round(np.sin(angle) * 2 ** ROPE_FRAC).astype(np.int64)
    # scores: q.k in format fq + fk; a step is 1/16 of a bit (2**(1/16))
    att_shift = fmt.q + fmt.k - (EXP2_STEPS.bit_length() - 1)
    if att_shift < 0:
        raise ModelError(f"wq, wk: q and k formats ({fmt.q}, {fmt.k}) leave no room for "
                         f"1/16-bit score steps")
    lo = -2.0 ** (15 - fmt.h1)
    grid = lo + np.arange(SILU_POINTS + 1) * (-2 * lo / SILU_POINTS)
    silu_table = sat(np.round(_silu(grid) * 2.0 ** fmt.h1)).astype(np.int64)
    eps = max(1, round(1e-5 * cfg.dim * 2.0 ** (2 * fmt.x)))
    qm = QModel(cfg, fmt, emb_q, emb_mult, emb_shift, layers,
                final_gain, final_shift, cls, rope_cos, rope_sin,
                [att_shift] * L, silu_table, eps)
    if (k_bits, v_bits) != (16, 16):
        qm.kv_shift = kv_shifts(qm, calibration, (k_bits, v_bits), kv_shift)
        qm.k_bits, qm.v_bits = k_bits, v_bits
        for layer, v_shift in zip(qm.layers, qm.kv_shift[1, :, 0]):
            layer.wv = dataclasses.replace(layer.wv, bits=v_bits,
                                           shift=layer.wv.shift + int(v_shift))
    if q_bits != 16:
        qm.q_shift, qm.q_bits = q_shifts(qm, calibration, q_bits), q_bits
    return qm


def q_shifts(qm, calibration, bits=8):
    """Static shifts of a ``bits``-wide q, ``[n_layers, n_heads]``: per layer and head the
    smallest ``s`` with ``round(max|q| >> s)`` in range, over the int16 q (after RoPE) that
    ``qm`` computes on the calibration sequences."""
    cfg = qm.config
    wide = dataclasses.replace(qm, q_bits=16, q_shift=None)
    peak = np.zeros((cfg.n_layers, cfg.n_heads), dtype=np.int64)
    for ids in calibration:
        dec = IntDecoder(wide)
        dec.seen_q = peak
        for pos, tok in enumerate(ids[:cfg.seq_len]):
            dec.forward(tok, pos)
    return np.array([[_kv_shift([p], bits, "max") for p in row] for row in peak],
                    dtype=np.int64)


def _kv_shift(values, bits, rule):
    """The shift of one group of int16 cache values (see :func:`kv_shifts`)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    top = (1 << (bits - 1)) - 1
    if rule == "max":
        peak, s = int(np.abs(values).max(initial=0)), 0
        while (peak + ((1 << s) >> 1)) >> s > top:
            s += 1
        return s
    errors = [int(np.sum(((kv_store(values, s, bits) << s) - values) ** 2)) for s in range(16)]
    return int(np.argmin(errors))          # the smallest shift of the least error


def kv_shifts(qm, calibration, bits=8, rule="layer-max"):
    """Static shifts of a ``bits``-wide KV cache (or ``(k_bits, v_bits)``; a 16-bit cache's
    shifts are 0), ``[2, n_layers, n_kv_heads]`` (K, V),
    chosen from the int16 K (after RoPE) and V that the integer model ``qm`` (its int16
    cache) writes on the calibration sequences. ``rule`` (:data:`KV_SHIFT_RULES`): one shift
    per layer or per layer and kv head (V's: per layer under either, as wv's requantization
    has one shift); ``max``, the smallest shift ``s`` with
    ``round(max|x| >> s)`` in range; ``mse``, the ``s`` in 0..15 with the least squared
    error ``sum(((kv_store(x, s) << s) - x)**2)`` (large values may saturate)."""
    cfg = qm.config
    bits = bits if isinstance(bits, (tuple, list)) else (bits, bits)
    wide = dataclasses.replace(qm, k_bits=16, v_bits=16, kv_shift=None)
    seen = [], []
    for ids in calibration:
        ids = ids[:cfg.seq_len]
        dec = IntDecoder(wide)
        for pos, tok in enumerate(ids):
            dec.forward(tok, pos)
        seen[0].append(dec.k_cache[:, :len(ids)])
        seen[1].append(dec.v_cache[:, :len(ids)])
    granularity, how = rule.split("-")
    hs, nkv = cfg.head_size, cfg.n_kv_heads
    out = np.zeros((2, cfg.n_layers, nkv), dtype=np.int64)
    for kind in range(2):
        if bits[kind] == 16:
            continue
        cache = np.concatenate(seen[kind], axis=1)          # [layers, positions, kv_dim]
        for l in range(cfg.n_layers):
            heads = cache[l].reshape(-1, nkv, hs)
            if granularity == "layer" or kind == 1:
                out[kind, l] = _kv_shift(heads, bits[kind], how)
            else:
                out[kind, l] = [_kv_shift(heads[:, h], bits[kind], how) for h in range(nkv)]
    return out


# The integer forward pass --------------------------------------------------------------------

class IntDecoder:
    """Token-by-token integer forward pass of a :class:`QModel` with its KV cache (int16, or
    ``qm.k_bits`` and ``qm.v_bits`` wide: ``k_cache`` and ``v_cache`` hold the stored
    values)."""

    def __init__(self, qm):
        self.qm = qm
        cfg = qm.config
        self.k_cache = np.zeros((cfg.n_layers, cfg.seq_len, cfg.kv_dim), dtype=np.int64)
        self.v_cache = np.zeros((cfg.n_layers, cfg.seq_len, cfg.kv_dim), dtype=np.int64)
        # the shift of each cache element: [2 (K, V), n_layers, kv_dim]
        self.kv_shift = np.repeat(qm.kv_shifts(), cfg.head_size, axis=2)
        self.seen_q = None        # [n_layers, n_heads] running peaks of |q| (q_shifts)

    def norm_scale(self, x):
        """RMSNorm's scale of x: ``rsqrt_scale(sum(x**2) + eps)``; the norm matrices apply it
        as they requantize (the gains are in their weights)."""
        return rsqrt_scale(int(np.sum(np.asarray(x, dtype=np.int64) ** 2)) + self.qm.eps)

    def rope(self, vec, pos, n_heads, shift=None, bits=16):
        """RoPE of ``n_heads`` heads at ``pos``; ``shift`` per head narrows the result
        (rounded once, saturated to ``bits``)."""
        qm = self.qm
        hs = qm.config.head_size
        v = vec.reshape(n_heads, hs // 2, 2)
        shift = np.zeros((n_heads, 1), dtype=np.int64) if shift is None else \
            np.asarray(shift, dtype=np.int64).reshape(n_heads, 1)
        ra, rb = rope_rotate(v[..., 0], v[..., 1], qm.rope_cos[pos][None, :],
                             qm.rope_sin[pos][None, :], bits, shift)
        return np.stack([ra, rb], axis=-1).reshape(-1)

    def silu(self, h):
        """SiLU by linear interpolation in a 257-point table over the int16 range of h."""
        return silu_interp(self.qm.silu_table, h)

    def attention(self, l, q, pos):
        qm = self.qm
        cfg = qm.config
        hs, kv_mul = cfg.head_size, cfg.kv_mul
        out = np.zeros(cfg.dim, dtype=np.int64)
        keys = self.k_cache[l, :pos + 1] << self.kv_shift[0, l]      # read back: int16
        vals = self.v_cache[l, :pos + 1] << self.kv_shift[1, l]
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
            s = self.norm_scale(x)
            if qm.q_bits == 16:
                q = self.rope(layer.wq.apply(x, s), pos, cfg.n_heads)
                if self.seen_q is not None:         # q_shifts' calibration: |q| peaks
                    peak = np.abs(q).reshape(cfg.n_heads, -1).max(axis=1)
                    self.seen_q[l] = np.maximum(self.seen_q[l], peak)
            else:                                              # read back as q8 << s
                q = self.rope(layer.wq.apply(x, s), pos, cfg.n_heads, qm.q_shift[l],
                              qm.q_bits) << np.repeat(qm.q_shift[l], cfg.head_size)
            k = self.rope(layer.wk.apply(x, s), pos, cfg.n_kv_heads)
            self.k_cache[l, pos] = kv_store(k, self.kv_shift[0, l], qm.k_bits)
            self.v_cache[l, pos] = layer.wv.apply(x, s)       # v_bits wide (quantize)
            att = self.attention(l, q, pos)
            x = sat(x + layer.wo.apply(att))
            s = self.norm_scale(x)
            g = silu_gate(layer.w1.apply(x, s), layer.w3.apply(x, s), qm.silu_table,
                          fmt.h1 + fmt.h3 - fmt.g)
            x = sat(x + layer.w2.apply(g))
        xg = mulshr(x, qm.final_gain, qm.final_shift)
        return qm.cls.apply(xg, self.norm_scale(x))

    @staticmethod
    def argmax(logits):
        """Index of the largest logit, the lowest index on ties."""
        return argmax(logits)
