"""Fuzz of the checkpoint and tokenizer readers, and of the CLI on what they accept: random
truncations, bit flips, byte runs and header values. A reader returns a model (tokenizer) or
raises ModelError naming the file; the CLI answers 0 or a one-line error with status 2. No
other exception, ever. (Hypothesis prints the failing file's recipe; CI runs derandomized.)"""

import functools
import pathlib
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinylpu.cli import main
from tinylpu.model import (HEADER_BYTES, ModelError, Tokenizer, load_checkpoint, load_tokenizer,
                           save_checkpoint, save_tokenizer, synthetic_model)

SEQ = 8


@functools.cache
def _originals():
    """The checkpoint and tokenizer bytes every example mutates (not a fixture, so that a
    failing example prints its mutations, not 10 kB of file)."""
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        # llama2.c's layout: <unk>, <s>, </s>, the 256 byte tokens, then merges
        pieces = ([b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)]
                  + [b" ", b" a", b"ab", b" ab"])
        m = synthetic_model(seq_len=SEQ, vocab_size=len(pieces), dim=16, hidden_dim=32,
                            n_heads=2, n_kv_heads=1, n_layers=1)
        save_checkpoint(m, d / "m.bin")
        save_tokenizer(Tokenizer(pieces, [float(i) for i in range(len(pieces))]), d / "t.bin")
        return (d / "m.bin").read_bytes(), (d / "t.bin").read_bytes()


def _mutate(data, ops):
    """Apply (kind, position, value) mutations: truncate, flip a bit, overwrite a run of
    bytes, or set one of the 7 header ints."""
    data = bytearray(data)
    for kind, pos, value in ops:
        if not data:
            break
        i = pos % len(data)
        if kind == "truncate":
            del data[i:]
        elif kind == "flip":
            data[i] ^= 1 << (value % 8)
        elif kind == "bytes":
            run = value.to_bytes(8, "little", signed=True)
            data[i:i + 8] = run[:max(0, len(data) - i)]
        elif kind == "header" and len(data) >= HEADER_BYTES:
            struct.pack_into("<i", data, 4 * (pos % 7), value)
    return bytes(data)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["truncate", "flip", "bytes", "header"]),
                               st.integers(0, 1 << 20),
                               st.integers(-(1 << 31), (1 << 31) - 1)),
                     min_size=1, max_size=4)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(ops=MUTATIONS)
def test_checkpoint_reader(tmp_path, ops):
    path = tmp_path / "c.bin"
    path.write_bytes(_mutate(_originals()[0], ops))
    try:
        model = load_checkpoint(path)
    except ModelError as error:
        assert str(path) in str(error)
    else:
        assert all(np.all(np.isfinite(t)) for t in model.tensors().values())


@FUZZ
@given(ops=MUTATIONS, vocab=st.sampled_from([263, 262, 264, 1, 0, -1]))
def test_tokenizer_reader(tmp_path, ops, vocab):
    path = tmp_path / "t.bin"
    path.write_bytes(_mutate(_originals()[1], ops))
    try:
        tok = load_tokenizer(path, vocab)
    except ModelError as error:
        assert str(path) in str(error)
    else:
        assert tok.vocab_size == vocab
        try:                       # encodes, or names what the vocabulary lacks
            tok.encode("a fuzzed tokenizer: ab, zz!")
        except ModelError as error:
            assert "tokenizer" in str(error)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=MUTATIONS, which=st.sampled_from(["model", "tokenizer"]))
def test_cli_on_mutated_files(tmp_path, capsys, ops, which):
    """The golden-model generate path end to end: status 0 with a cycle-exact run, or 2
    with one line."""
    model, tok = tmp_path / "m.bin", tmp_path / "t.bin"
    model.write_bytes(_mutate(_originals()[0], ops) if which == "model" else _originals()[0])
    tok.write_bytes(_mutate(_originals()[1], ops) if which == "tokenizer" else _originals()[1])
    status = main(["generate", "--model", str(model), "--tokenizer", str(tok), "--sim",
                   "golden", "--steps", "2", "--prompt", "ab", "--positions", str(SEQ)])
    err = capsys.readouterr().err
    assert status in (0, 2), err
    if status == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "error: " in lines[0]
    else:
        assert "emission cycles == compiler prediction" in err
