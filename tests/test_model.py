"""llama2.c model input: checkpoint and tokenizer formats, their errors, synthetic models."""

import math
import struct

import numpy as np
import pytest

from tinylpu.model import (HEADER_BYTES, FloatModel, ModelConfig, ModelError, Tokenizer,
                           expected_checkpoint_bytes, load_checkpoint, load_tokenizer,
                           save_checkpoint, save_tokenizer, synthetic_model, tensor_layout)

# The default synthetic config: dim 32, hidden 64, 2 layers, 4 heads, 2 kv heads, vocab 64,
# seq_len 64 -> head_size 8, kv_dim 16. Floats: tok_emb 2048, rms_att 64, wq 2048, wk 1024,
# wv 1024, wo 2048, rms_ffn 64, w1/w2/w3 3 * 4096, rms_final 32, RoPE tables 2 * 64*8/2 = 512:
# 21152 floats = 84608 bytes + 28 header bytes. Unshared adds wcls 2048 floats.
SYNTH_BYTES = 84636
SYNTH_UNSHARED_BYTES = 84636 + 2048 * 4
WEIGHTS = ("tok_emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
           "rms_final", "wcls")


def header_bytes(dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64,
                 seq_len=64):
    return struct.pack("<7i", dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
                       seq_len)


def tensor_offset(config, name):
    """Byte offset of tensor ``name`` in a checkpoint (from the documented layout)."""
    offset = HEADER_BYTES
    for tname, shape in tensor_layout(config):
        if tname == name:
            return offset
        offset += 4 * math.prod(shape)
    raise KeyError(name)


# ------------------------------------------------------------------------------ configuration

def test_config_derived_quantities():
    c = ModelConfig(64, 172, 5, 8, 4, 512, 512)
    assert (c.head_size, c.kv_dim, c.kv_mul, c.shared_classifier) == (8, 32, 2, True)
    assert expected_checkpoint_bytes(c) == 1056540          # stories260K.bin's size
    c = ModelConfig(32, 64, 2, 4, 2, 64, 64)
    assert (c.head_size, c.kv_dim, c.kv_mul) == (8, 16, 2)
    assert expected_checkpoint_bytes(c) == SYNTH_BYTES
    assert expected_checkpoint_bytes(ModelConfig(32, 64, 2, 4, 2, 64, 64, False)) == \
        SYNTH_UNSHARED_BYTES
    assert [n for n, _ in tensor_layout(c)] == list(WEIGHTS[:11]) + ["freq_cis_real",
                                                                     "freq_cis_imag"]


@pytest.mark.parametrize("fields, message", [
    (dict(dim=0), "dim = 0 must be positive"),
    (dict(n_layers=-1), "n_layers = -1 must be positive"),
    (dict(seq_len=(1 << 20) + 1), "seq_len = 1048577 is implausibly large (> 1048576)"),
    (dict(dim=30), "dim = 30 is not divisible by n_heads = 4"),
    (dict(dim=12), "head_size = dim / n_heads = 3 is odd"),
    (dict(n_kv_heads=3), "n_heads = 4 is not divisible by n_kv_heads = 3"),
])
def test_config_rejects(fields, message):
    args = dict(dim=32, hidden_dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64,
                seq_len=64) | fields
    with pytest.raises(ModelError, match="invalid model configuration") as exc:
        ModelConfig(**args)
    assert message in str(exc.value)


def test_float_model_checks_shapes():
    m = synthetic_model(0)
    with pytest.raises(ModelError, match=r"tensor wk has shape \(2, 32, 32\), the configuration "
                                         r"needs \(2, 16, 32\)"):
        FloatModel(**{**m.__dict__, "wk": np.zeros((2, 32, 32), np.float32)})


# ----------------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("shared", [True, False])
def test_checkpoint_round_trip(tmp_path, shared):
    m = synthetic_model(3, shared=shared)
    path = tmp_path / "m.bin"
    save_checkpoint(m, path)
    data = path.read_bytes()
    assert len(data) == (SYNTH_BYTES if shared else SYNTH_UNSHARED_BYTES)
    assert struct.unpack("<7i", data[:28]) == (32, 64, 2, 4, 2, 64 if shared else -64, 64)
    back = load_checkpoint(path)
    assert back.config == m.config
    assert back.config.shared_classifier is shared
    for name in WEIGHTS:
        arr = getattr(back, name)
        assert arr.dtype == np.float32
        np.testing.assert_array_equal(arr, getattr(m, name), err_msg=name)
    if shared:
        np.testing.assert_array_equal(back.wcls, back.tok_emb)
    else:
        assert not np.array_equal(back.wcls, back.tok_emb)
    # The first weight float right after the header is tok_emb[0, 0]; the last one of a shared
    # file is the last RoPE sine, of an unshared file wcls[-1, -1].
    assert struct.unpack("<f", data[28:32])[0] == m.tok_emb[0, 0]
    last = struct.unpack("<f", data[-4:])[0]
    assert last == (np.float32(math.sin(63 * 10000 ** (-6 / 8))) if shared else m.wcls[-1, -1])


def test_legacy_rope_tables_written(tmp_path):
    m = synthetic_model(0)
    path = tmp_path / "m.bin"
    save_checkpoint(m, path)
    data = path.read_bytes()
    real = np.frombuffer(data, "<f4", 256, tensor_offset(m.config, "freq_cis_real"))
    imag = np.frombuffer(data, "<f4", 256, tensor_offset(m.config, "freq_cis_imag"))
    # [seq_len=64, head_size/2=4]: entry (pos, i) is cos/sin(pos * 10000^(-2i/8)).
    assert real[0] == 1.0 and imag[0] == 0.0
    assert real[5 * 4 + 1] == np.float32(math.cos(5 * 10000 ** (-2 / 8)))
    assert imag[5 * 4 + 1] == np.float32(math.sin(5 * 10000 ** (-2 / 8)))
    assert imag[10 * 4 + 3] == np.float32(math.sin(10 * 10000 ** (-6 / 8)))


def test_rope_tables_are_ignored_when_reading(tmp_path):
    m = synthetic_model(0)
    path = tmp_path / "m.bin"
    save_checkpoint(m, path)
    data = bytearray(path.read_bytes())
    off = tensor_offset(m.config, "freq_cis_imag")
    data[off:off + 8] = struct.pack("<2f", math.nan, math.inf)
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(load_checkpoint(path).w3, m.w3)


def test_save_rejects_shared_model_with_distinct_classifier(tmp_path):
    m = synthetic_model(0)
    m.wcls = m.wcls + 1
    with pytest.raises(ModelError, match="shared-classifier model whose wcls differs"):
        save_checkpoint(m, tmp_path / "m.bin")


# ----------------------------------------------------------------------------------- errors

def test_missing_file(tmp_path):
    path = tmp_path / "nothere.bin"
    with pytest.raises(ModelError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: no such checkpoint file"


def test_file_shorter_than_header(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(header_bytes()[:10])
    with pytest.raises(ModelError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: file is 10 bytes, shorter than the 28-byte header"


@pytest.mark.parametrize("fields, message", [
    (dict(dim=0), "dim = 0 must be positive"),
    (dict(hidden_dim=-5), "hidden_dim = -5 must be positive"),
    (dict(vocab_size=0), "vocab_size = 0 must be positive"),
    (dict(n_kv_heads=0), "n_kv_heads = 0 must be positive"),
    (dict(n_layers=1 << 24), "n_layers = 16777216 is implausibly large (> 1048576)"),
    (dict(vocab_size=-(1 << 21)), "vocab_size = 2097152 is implausibly large"),
    (dict(dim=30), "dim = 30 is not divisible by n_heads = 4"),
    (dict(dim=12), "head_size = dim / n_heads = 3 is odd"),
    (dict(n_heads=4, n_kv_heads=8), "n_heads = 4 is not divisible by n_kv_heads = 8"),
])
def test_implausible_header(tmp_path, fields, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(header_bytes(**fields) + bytes(4000))
    with pytest.raises(ModelError) as exc:
        load_checkpoint(path)
    assert str(exc.value).startswith(f"{path}: implausible header (")
    assert message in str(exc.value)


@pytest.mark.parametrize("shared", [True, False])
def test_truncated_checkpoint(tmp_path, shared):
    path = tmp_path / "trunc.bin"
    save_checkpoint(synthetic_model(0, shared=shared), path)
    full = SYNTH_BYTES if shared else SYNTH_UNSHARED_BYTES
    path.write_bytes(path.read_bytes()[:full - 100])
    with pytest.raises(ModelError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == (f"{path}: expected {full} bytes for this header, found "
                              f"{full - 100} (truncated by 100 bytes)")


def test_header_only_checkpoint(tmp_path):
    path = tmp_path / "hdr.bin"
    path.write_bytes(header_bytes())
    with pytest.raises(ModelError, match=f"expected {SYNTH_BYTES} bytes for this header, "
                                         f"found 28"):
        load_checkpoint(path)


def test_shared_file_read_as_unshared_is_truncated(tmp_path):
    # Flipping the vocab sign of a shared file makes the reader expect a wcls that is not there.
    path = tmp_path / "flip.bin"
    save_checkpoint(synthetic_model(0), path)
    data = bytearray(path.read_bytes())
    data[20:24] = struct.pack("<i", -64)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"expected {SYNTH_UNSHARED_BYTES} bytes for this "
                                         f"header, found {SYNTH_BYTES}"):
        load_checkpoint(path)


def test_trailing_garbage(tmp_path):
    path = tmp_path / "long.bin"
    save_checkpoint(synthetic_model(0), path)
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(ModelError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == (f"{path}: expected {SYNTH_BYTES} bytes for this header, found "
                              f"{SYNTH_BYTES + 4} (4 trailing bytes)")


@pytest.mark.parametrize("name, values, message", [
    ("wk", [math.nan, math.inf, -math.inf], "tensor wk has 3 non-finite values"),
    ("rms_final", [math.nan], "tensor rms_final has 1 non-finite value"),
    ("tok_emb", [math.inf] * 5, "tensor tok_emb has 5 non-finite values"),
])
def test_non_finite_weights(tmp_path, name, values, message):
    m = synthetic_model(0)
    path = tmp_path / "nan.bin"
    save_checkpoint(m, path)
    data = bytearray(path.read_bytes())
    off = tensor_offset(m.config, name) + 8      # skip two floats into the tensor
    data[off:off + 4 * len(values)] = struct.pack(f"<{len(values)}f", *values)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: {message}"


def test_non_finite_unshared_classifier(tmp_path):
    m = synthetic_model(0, shared=False)
    path = tmp_path / "nan.bin"
    save_checkpoint(m, path)
    data = bytearray(path.read_bytes())
    data[-8:] = struct.pack("<2f", math.nan, math.nan)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="tensor wcls has 2 non-finite values"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------- synthetic model

def test_synthetic_model_is_seeded_and_realistic():
    a, b, c = synthetic_model(0), synthetic_model(0), synthetic_model(1)
    for name in WEIGHTS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.wq, c.wq)
    assert a.wcls is a.tok_emb
    assert 0.9 < a.tok_emb.std() < 1.1
    assert 0.9 / math.sqrt(32) < a.wq.std() < 1.1 / math.sqrt(32)
    assert 0.9 / math.sqrt(32) < a.w1.std() < 1.1 / math.sqrt(32)
    assert 0.05 < a.rms_att.std() < 0.15 and abs(a.rms_att.mean() - 1) < 0.05
    u = synthetic_model(0, shared=False, dim=16, hidden_dim=40, n_layers=1, n_heads=2,
                        n_kv_heads=1, vocab_size=20, seq_len=8)
    assert u.config == ModelConfig(16, 40, 1, 2, 1, 20, 8, shared_classifier=False)
    assert u.wcls.shape == (20, 16) and not np.array_equal(u.wcls, u.tok_emb)


# ---------------------------------------------------------------------------------- tokenizer

def make_tokenizer():
    """<unk>, BOS, EOS, the 256 byte tokens, then a few pieces with merge scores."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    scores = [0.0] * len(pieces)
    extra = [(b" ", -100.0), (b"a", -50.0), (b"b", -51.0), (b"c", -52.0),
             ("ü".encode(), -60.0),
             (b" a", -5.0), (b"ab", -1.0), (b"bc", -2.0), (b"abc", -3.0), (b" abc", -4.0),
             (b" ab", -1e10)]           # never merged: run.c only takes scores > -1e10
    for piece, score in extra:
        pieces.append(piece)
        scores.append(score)
    return Tokenizer(pieces, scores)


T_SPACE, T_A, T_B, T_C, T_UE, T_SA, T_AB, T_BC, T_ABC, T_SABC, T_SAB = range(259, 270)


def test_tokenizer_encode_merges_highest_score_first():
    tok = make_tokenizer()
    assert tok.vocab_size == 270 and tok.max_token_length == 6
    # [BOS, ' ', a, b, c]: 'ab' (-1) beats 'bc' (-2) and ' a' (-5); then 'abc' (-3); then ' abc'.
    assert tok.encode("abc") == [1, T_SABC]
    assert tok.encode("abc", bos=False, eos=True) == [T_SABC, 2]
    # [' ', b, c, a, b]: 'ab' (-1) first, then 'bc' (-2); ' b', 'bcab' do not exist.
    assert tok.encode("bcab") == [1, T_SPACE, T_BC, T_AB]
    # ' a' + 'b' = ' ab' exists but has score -1e10, which run.c never merges.
    assert tok.encode("a") == [1, T_SA]
    assert tok.encode("") == [1]                     # no dummy prefix for empty text
    assert tok.encode("", bos=False) == []


def test_tokenizer_encode_codepoints_and_byte_fallback():
    tok = make_tokenizer()
    # 'ü' is a 2-byte codepoint with its own token; 'é' (C3 A9) and '\n' have none -> bytes + 3.
    assert tok.encode("ü") == [1, T_SPACE, T_UE]
    assert tok.encode("é") == [1, T_SPACE, 0xC3 + 3, 0xA9 + 3]
    assert tok.encode("a\nb") == [1, T_SA, 0x0A + 3, T_B]
    # A 4-byte codepoint (U+1F600) falls back to its 4 bytes.
    assert tok.encode("😀", bos=False) == [T_SPACE, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3]


def test_tokenizer_decode():
    tok = make_tokenizer()
    assert tok.decode(1, T_SABC) == b"abc"           # after BOS the leading space goes
    assert tok.decode(T_A, T_SABC) == b" abc"
    assert tok.decode(1, T_AB) == b"ab"
    assert tok.decode(T_A, 0x0A + 3) == b"\n"        # <0x0A> -> the byte itself
    assert tok.decode(1, 0x41 + 3) == b"A"
    assert tok.decode(1, 0xC3 + 3) == b"\xc3"
    assert tok.decode(T_A, 1) == b"\n<s>\n"
    ids = tok.encode("abc bcab é")
    assert tok.decode_all(ids[1:]) == "abc bcab é".encode()
    assert tok.decode_all(ids[1:], prev_id=T_A) == " abc bcab é".encode()


def test_tokenizer_file_round_trip(tmp_path):
    tok = make_tokenizer()
    path = tmp_path / "tok.bin"
    save_tokenizer(tok, path)
    data = path.read_bytes()
    assert struct.unpack("<i", data[:4]) == (6,)
    assert struct.unpack("<fi5s", data[4:17]) == (0.0, 5, b"<unk>")
    back = load_tokenizer(path, 270)
    assert back.pieces == tok.pieces
    np.testing.assert_array_equal(back.scores, tok.scores)
    assert back.max_token_length == 6
    assert back.encode("abc bcab") == tok.encode("abc bcab")


def _tok_file(tmp_path):
    path = tmp_path / "tok.bin"
    save_tokenizer(make_tokenizer(), path)
    return path, bytearray(path.read_bytes())


def test_tokenizer_errors(tmp_path):
    path, data = _tok_file(tmp_path)
    with pytest.raises(ModelError) as exc:
        load_tokenizer(tmp_path / "none.bin", 270)
    assert str(exc.value) == f"{tmp_path / 'none.bin'}: no such tokenizer file"

    path.write_bytes(bytes(data[:2]))
    with pytest.raises(ModelError, match="file is 2 bytes, shorter than the 4-byte header"):
        load_tokenizer(path, 270)

    path.write_bytes(struct.pack("<i", 0) + bytes(data[4:]))
    with pytest.raises(ModelError, match="implausible max_token_length 0"):
        load_tokenizer(path, 270)

    # Token 0's length field (offset 8) out of range.
    for bad in (7, -1):
        path.write_bytes(bytes(data[:8]) + struct.pack("<i", bad) + bytes(data[12:]))
        with pytest.raises(ModelError) as exc:
            load_tokenizer(path, 270)
        assert str(exc.value) == (f"{path}: token 0 has length {bad}, outside 0..6 "
                                  "(max_token_length)")

    path.write_bytes(bytes(data[:-3]))               # cut inside the last piece (" ab")
    with pytest.raises(ModelError, match="truncated in the bytes of token 269 of 270"):
        load_tokenizer(path, 270)

    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"the file holds 270 tokens, the model's vocab_size "
                                         r"is 271: tokenizer and model do not match"):
        load_tokenizer(path, 271)                    # vocab larger than the file's
    path.write_bytes(bytes(data) + b"\0\0\0")
    with pytest.raises(ModelError, match=r"truncated at token 270 of 271 \(offset "
                                         f"{len(data)}, file is {len(data) + 3} bytes\\)"):
        load_tokenizer(path, 271)                    # a partial record after the last
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as exc:
        load_tokenizer(path, 269)                    # vocab smaller than the file's: 11 bytes
    assert str(exc.value) == (f"{path}: 11 bytes left after 269 tokens: the file's vocabulary "
                              "is larger than the model's vocab_size 269")

    data[4:8] = struct.pack("<f", math.nan)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="token 0 has a non-finite score nan"):
        load_tokenizer(path, 270)


def test_tokenizer_without_byte_tokens_reports_missing_fallback():
    tok = Tokenizer([b"<unk>", b"<s>", b"</s>", b" ", b"a"], [0, 0, 0, 0, 0])
    assert tok.encode("a") == [1, 3, 4]
    with pytest.raises(ModelError, match=r"no byte token for 0x7A \(id 125 >= vocab size 5\)"):
        tok.encode("z")
