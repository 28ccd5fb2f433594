"""llama2.c model input: the legacy checkpoint format, the tokenizer, and synthetic models.

Checkpoint (llama2.c "legacy" format, as written by ``export.py --version 0`` and read by ``run.c``):
a header of 7 little-endian int32 ``dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
seq_len`` (a negative ``vocab_size`` means the classifier is not shared with the token embedding),
then little-endian float32 tensors, row-major ``[out, in]``, in the order of :func:`tensor_layout`:
the token embedding, the per-layer weights, the final RMSNorm weight, two legacy RoPE tables
(``freq_cis_real`` and ``freq_cis_imag``, ``seq_len * head_size / 2`` floats each, ignored when
reading) and, for an unshared classifier only, ``wcls [vocab, dim]``.

Tokenizer (llama2.c ``tokenizer.bin`` format): int32 ``max_token_length``, then for each token a
float32 score, an int32 length and that many bytes. :meth:`Tokenizer.encode` and
:meth:`Tokenizer.decode` follow ``run.c``.

Every problem with an input file is reported as a :class:`ModelError` naming the file.
"""

from __future__ import annotations

__all__ = ["ModelError", "ModelConfig", "FloatModel", "Tokenizer", "tensor_layout",
           "expected_checkpoint_bytes", "load_checkpoint", "save_checkpoint", "load_tokenizer",
           "save_tokenizer", "synthetic_model", "HEADER_BYTES", "BOS", "EOS"]

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER_FIELDS = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                 "seq_len")
HEADER_BYTES = 4 * len(HEADER_FIELDS)
FIELD_MAX = 1 << 20          # no plausible llama2.c header field is larger than this
BOS = 1
EOS = 2
BYTE_TOKEN_OFFSET = 3        # ids 3..258 are the byte tokens <0x00>..<0xFF>
SYNTHETIC_RESIDUAL_GAIN = 8.0


class ModelError(ValueError):
    """A model or tokenizer file (or configuration) that cannot be used."""


@dataclass(frozen=True)
class ModelConfig:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool = True

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ModelError("invalid model configuration: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Why this configuration is unusable (empty when it is fine)."""
        out = []
        for name in HEADER_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                out.append(f"{name} must be an integer, got {value!r}")
            elif value <= 0:
                out.append(f"{name} = {value} must be positive")
            elif value > FIELD_MAX:
                out.append(f"{name} = {value} is implausibly large (> {FIELD_MAX})")
        if out:
            return out
        if self.dim % self.n_heads:
            out.append(f"dim = {self.dim} is not divisible by n_heads = {self.n_heads}")
        elif (self.dim // self.n_heads) % 2:
            out.append(f"head_size = dim / n_heads = {self.dim // self.n_heads} is odd "
                       "(RoPE rotates pairs)")
        if self.n_heads % self.n_kv_heads:
            out.append(f"n_heads = {self.n_heads} is not divisible by n_kv_heads = "
                       f"{self.n_kv_heads}")
        return out

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.dim * self.n_kv_heads // self.n_heads

    @property
    def kv_mul(self) -> int:
        return self.n_heads // self.n_kv_heads

    def header(self) -> tuple[int, ...]:
        """The 7 int32 header values as stored (negative vocab_size when unshared)."""
        vocab = self.vocab_size if self.shared_classifier else -self.vocab_size
        return (self.dim, self.hidden_dim, self.n_layers, self.n_heads, self.n_kv_heads, vocab,
                self.seq_len)


def tensor_layout(config: ModelConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every float32 tensor of a checkpoint, in file order.

    The two RoPE tables are ``freq_cis_real`` and ``freq_cis_imag``; ``wcls`` is present only
    when the classifier is unshared.
    """
    c = config
    L, d, h, kv, v = c.n_layers, c.dim, c.hidden_dim, c.kv_dim, c.vocab_size
    half = c.seq_len * c.head_size // 2
    layout = [("tok_emb", (v, d)), ("rms_att", (L, d)), ("wq", (L, d, d)), ("wk", (L, kv, d)),
              ("wv", (L, kv, d)), ("wo", (L, d, d)), ("rms_ffn", (L, d)), ("w1", (L, h, d)),
              ("w2", (L, d, h)), ("w3", (L, h, d)), ("rms_final", (d,)),
              ("freq_cis_real", (half,)), ("freq_cis_imag", (half,))]
    if not c.shared_classifier:
        layout.append(("wcls", (v, d)))
    return layout


WEIGHT_NAMES = ("tok_emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
                "rms_final", "wcls")


def expected_checkpoint_bytes(config: ModelConfig) -> int:
    return HEADER_BYTES + 4 * sum(int(np.prod(shape)) for _, shape in tensor_layout(config))


@dataclass
class FloatModel:
    """A llama2.c model as float32 NumPy arrays, rows are outputs (``[out, in]``)."""
    config: ModelConfig
    tok_emb: np.ndarray
    rms_att: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    rms_ffn: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    rms_final: np.ndarray
    wcls: np.ndarray

    def __post_init__(self):
        shapes = dict(tensor_layout(ModelConfig(**{**_config_fields(self.config),
                                                   "shared_classifier": False})))
        for name in WEIGHT_NAMES:
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if arr.shape != shapes[name]:
                raise ModelError(f"tensor {name} has shape {arr.shape}, the configuration "
                                 f"needs {shapes[name]}")
            setattr(self, name, arr)

    def tensors(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in WEIGHT_NAMES}


def _config_fields(config: ModelConfig) -> dict:
    return {name: getattr(config, name) for name in HEADER_FIELDS + ("shared_classifier",)}


def _rope_tables(config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The legacy freq_cis_real / freq_cis_imag tables, [seq_len, head_size/2] flattened."""
    hs = config.head_size
    inv = 10000.0 ** (-np.arange(0, hs, 2, dtype=np.float64) / hs)
    angles = np.outer(np.arange(config.seq_len, dtype=np.float64), inv)
    return (np.cos(angles).astype(np.float32).ravel(), np.sin(angles).astype(np.float32).ravel())


def _read(path, kind):
    """The bytes of a model input file, or a ModelError naming the file and the problem."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such {kind} file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a {kind} file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read {kind}: {exc.strerror or exc}") from None


def load_checkpoint(path) -> FloatModel:
    """Read a llama2.c legacy checkpoint; raise ModelError naming the file on any problem."""
    name = str(path)
    data = _read(path, "checkpoint")
    if len(data) < HEADER_BYTES:
        raise ModelError(f"{name}: file is {len(data)} bytes, shorter than the "
                         f"{HEADER_BYTES}-byte header")
    header = struct.unpack("<7i", data[:HEADER_BYTES])
    fields = dict(zip(HEADER_FIELDS, header))
    shared = fields["vocab_size"] > 0
    fields["vocab_size"] = abs(fields["vocab_size"])
    try:
        config = ModelConfig(**fields, shared_classifier=shared)
    except ModelError as exc:
        detail = str(exc).removeprefix("invalid model configuration: ")
        raise ModelError(f"{name}: implausible header ({detail})") from None
    expected = expected_checkpoint_bytes(config)
    if len(data) < expected:
        raise ModelError(f"{name}: expected {expected} bytes for this header, found {len(data)} "
                         f"(truncated by {expected - len(data)} bytes)")
    if len(data) > expected:
        raise ModelError(f"{name}: expected {expected} bytes for this header, found {len(data)} "
                         f"({len(data) - expected} trailing bytes)")
    floats = np.frombuffer(data, dtype="<f4", offset=HEADER_BYTES)
    tensors = {}
    offset = 0
    for tname, shape in tensor_layout(config):
        count = int(np.prod(shape))
        arr = floats[offset:offset + count].reshape(shape).astype(np.float32)
        offset += count
        if tname.startswith("freq_cis"):
            continue                    # legacy RoPE tables: skipped, as run.c does
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ModelError(f"{name}: tensor {tname} has {bad} non-finite value"
                             f"{'s' if bad != 1 else ''}")
        tensors[tname] = arr
    if shared:
        tensors["wcls"] = tensors["tok_emb"]
    return FloatModel(config=config, **tensors)


def save_checkpoint(model: FloatModel, path) -> None:
    """Write ``model`` in the llama2.c legacy format (negative vocab_size when unshared)."""
    config = model.config
    if config.shared_classifier and not np.array_equal(model.wcls, model.tok_emb):
        raise ModelError("cannot save a shared-classifier model whose wcls differs from tok_emb")
    real, imag = _rope_tables(config)
    extra = {"freq_cis_real": real, "freq_cis_imag": imag}
    parts = [struct.pack("<7i", *config.header())]
    for tname, shape in tensor_layout(config):
        arr = extra[tname] if tname in extra else getattr(model, tname)
        parts.append(np.ascontiguousarray(arr, dtype="<f4").tobytes())
    Path(path).write_bytes(b"".join(parts))


# ----------------------------------------------------------------------------------- tokenizer

_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")


class Tokenizer:
    """llama2.c's tokenizer: pieces (bytes), float32 scores, and run.c's encode/decode."""

    def __init__(self, pieces, scores, max_token_length=None):
        self.pieces = [bytes(p) for p in pieces]
        self.scores = np.asarray(scores, dtype=np.float32)
        if len(self.pieces) != len(self.scores):
            raise ModelError(f"tokenizer has {len(self.pieces)} pieces but "
                             f"{len(self.scores)} scores")
        longest = max((len(p) for p in self.pieces), default=0)
        self.max_token_length = longest if max_token_length is None else int(max_token_length)
        if longest > self.max_token_length:
            raise ModelError(f"tokenizer piece of {longest} bytes exceeds max_token_length "
                             f"{self.max_token_length}")
        self._lookup = {}
        for i, piece in enumerate(self.pieces):
            self._lookup.setdefault(piece, i)     # first id wins for a duplicated piece

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def lookup(self, piece: bytes) -> int:
        """The id of ``piece``, or -1 (run.c's str_lookup)."""
        return self._lookup.get(bytes(piece), -1)

    def decode(self, prev_id: int, id: int) -> bytes:
        """The bytes of token ``id`` following ``prev_id`` (run.c's decode)."""
        piece = self.pieces[id]
        if prev_id == BOS and piece[:1] == b" ":
            piece = piece[1:]
        m = _BYTE_PIECE.fullmatch(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece

    def decode_all(self, ids, prev_id: int = BOS) -> bytes:
        """Concatenated decode of a token sequence that follows ``prev_id``."""
        out = []
        for tok in ids:
            out.append(self.decode(prev_id, tok))
            prev_id = tok
        return b"".join(out)

    def _byte_token(self, b: int) -> int:
        tok = b + BYTE_TOKEN_OFFSET
        if tok >= self.vocab_size:
            raise ModelError(f"tokenizer has no byte token for 0x{b:02X} (id {tok} >= vocab "
                             f"size {self.vocab_size})")
        return tok

    def encode(self, text, bos: bool = True, eos: bool = False) -> list[int]:
        """run.c's BPE encoder: dummy-prefix space, codepoint lookup with byte fallback, then
        repeated merging of the adjacent pair whose concatenation has the highest score."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        tokens = []
        if bos:
            tokens.append(BOS)
        if data:
            space = self.lookup(b" ")
            tokens.append(space if space != -1 else self._byte_token(0x20))
        buf = bytearray()
        for i, c in enumerate(data):
            if (c & 0xC0) != 0x80:
                buf.clear()               # a lead byte starts a new codepoint
            buf.append(c)
            nxt = data[i + 1] if i + 1 < len(data) else 0
            if (nxt & 0xC0) == 0x80 and len(buf) < 4:
                continue                  # more continuation bytes of this codepoint follow
            tok = self.lookup(bytes(buf))
            if tok != -1:
                tokens.append(tok)
            else:
                tokens.extend(self._byte_token(b) for b in buf)
            buf.clear()
        while True:
            best_score, best_id, best_idx = -1e10, -1, -1
            for i in range(len(tokens) - 1):
                tok = self.lookup(self.pieces[tokens[i]] + self.pieces[tokens[i + 1]])
                if tok != -1 and self.scores[tok] > best_score:
                    best_score, best_id, best_idx = float(self.scores[tok]), tok, i
            if best_idx == -1:
                break
            tokens[best_idx:best_idx + 2] = [best_id]
        if eos:
            tokens.append(EOS)
        return tokens


def load_tokenizer(path, vocab_size: int) -> Tokenizer:
    """Read a llama2.c tokenizer file holding exactly ``vocab_size`` tokens."""
    name = str(path)
    data = _read(path, "tokenizer")
    if vocab_size <= 0:
        raise ModelError(f"{name}: vocab_size must be positive, got {vocab_size}")
    if len(data) < 4:
        raise ModelError(f"{name}: file is {len(data)} bytes, shorter than the 4-byte header")
    (max_len,) = struct.unpack_from("<i", data, 0)
    if not 0 < max_len <= FIELD_MAX:
        raise ModelError(f"{name}: implausible max_token_length {max_len}")
    pieces, scores = [], []
    offset = 4
    for i in range(vocab_size):
        if offset == len(data):
            raise ModelError(f"{name}: the file holds {i} tokens, the model's vocab_size is "
                             f"{vocab_size}: tokenizer and model do not match")
        if offset + 8 > len(data):
            raise ModelError(f"{name}: truncated at token {i} of {vocab_size} (offset {offset}, "
                             f"file is {len(data)} bytes)")
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        if not 0 <= length <= max_len:
            raise ModelError(f"{name}: token {i} has length {length}, outside 0.."
                             f"{max_len} (max_token_length)")
        if offset + length > len(data):
            raise ModelError(f"{name}: truncated in the bytes of token {i} of {vocab_size} "
                             f"(needs {length} bytes at offset {offset}, file is {len(data)} "
                             "bytes)")
        if not np.isfinite(score):
            raise ModelError(f"{name}: token {i} has a non-finite score {score}")
        pieces.append(data[offset:offset + length])
        scores.append(score)
        offset += length
    if offset != len(data):
        raise ModelError(f"{name}: {len(data) - offset} bytes left after {vocab_size} tokens: "
                         "the file's vocabulary is larger than the model's vocab_size "
                         f"{vocab_size}")
    return Tokenizer(pieces, scores, max_len)


def save_tokenizer(tok: Tokenizer, path) -> None:
    """Write ``tok`` in llama2.c's tokenizer format."""
    parts = [struct.pack("<i", tok.max_token_length)]
    for piece, score in zip(tok.pieces, tok.scores):
        parts.append(struct.pack("<fi", float(score), len(piece)) + piece)
    Path(path).write_bytes(b"".join(parts))


# ------------------------------------------------------------------------------ synthetic model

def synthetic_model(seed=0, dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                    vocab_size=64, seq_len=64, shared=True) -> FloatModel:
    """A seeded random model with weights of realistic scale (not a trained model).

    Matrices are normal with std 1/sqrt(fan_in), embeddings (and an unshared classifier) std 1,
    RMSNorm weights 1 + 0.1 * normal. The residual-writing projections ``wo`` and ``w2`` get an
    extra gain of ``SYNTHETIC_RESIDUAL_GAIN``: with unit-scale blocks the token's own embedding
    dominates the residual stream, and a tied classifier then predicts the input token forever.
    """
    config = ModelConfig(dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len,
                         shared_classifier=shared)
    rng = np.random.default_rng(seed)
    L, kv = n_layers, config.kv_dim

    def mat(*shape, gain=1.0):
        return gain * rng.standard_normal(shape) / np.sqrt(shape[-1])

    def rms(*shape):
        return 1.0 + 0.1 * rng.standard_normal(shape)

    g = SYNTHETIC_RESIDUAL_GAIN
    tensors = dict(tok_emb=rng.standard_normal((vocab_size, dim)), rms_att=rms(L, dim),
                   wq=mat(L, dim, dim), wk=mat(L, kv, dim), wv=mat(L, kv, dim),
                   wo=mat(L, dim, dim, gain=g), rms_ffn=rms(L, dim), w1=mat(L, hidden_dim, dim),
                   w2=mat(L, dim, hidden_dim, gain=g), w3=mat(L, hidden_dim, dim),
                   rms_final=rms(dim))
    tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    wcls = (tensors["tok_emb"] if shared
            else rng.standard_normal((vocab_size, dim)).astype(np.float32))
    return FloatModel(config=config, wcls=wcls, **tensors)
