"""The host stream protocol: packing, headers and range checks (pure Python)."""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinylpu import host
from tinylpu.config import Config
from tinylpu.host import HostError

DEFAULT = Config()
CONFIGS = [
    DEFAULT,                                                   # 128-bit words, 4 beats
    Config(lanes=8, rows=2, wdepth=256, act_banks=1, adepth=64),   # 64 bits, 2 beats
    Config(lanes=12, rows=3),                                  # 96 bits, 3 beats
    Config(lanes=5, rows=1, data_bits=6, acc_bits=16),         # 30 bits, 1 beat
    Config(lanes=10, rows=5, data_bits=7, acc_bits=20),        # 70 bits, 3 beats
]


def test_protocol_constants():
    assert (host.CMD_WRITE, host.CMD_READ, host.CMD_RUN) == (1, 2, 3)
    assert (host.TARGET_WBANK, host.TARGET_ABANK, host.TARGET_PROG) == (0x00, 0x40, 0x80)
    assert (host.STATUS_DONE, host.STATUS_PORT_CONFLICT, host.STATUS_RAW_HAZARD,
            host.STATUS_BAD_COMMAND) == (1, 2, 4, 8)


@pytest.mark.parametrize("cfg, data_beats", list(zip(CONFIGS, [4, 2, 3, 1, 3])))
def test_beats(cfg, data_beats):
    assert host.beats(cfg, host.TARGET_WBANK) == data_beats
    assert host.beats(cfg, host.TARGET_ABANK) == data_beats
    assert host.beats(cfg, host.TARGET_PROG) == 4
    assert cfg.beats_per_word == data_beats


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_data_words_round_trip(data):
    cfg = data.draw(st.sampled_from(CONFIGS))
    target = data.draw(st.sampled_from([host.TARGET_WBANK, host.TARGET_ABANK]))
    n = data.draw(st.integers(1, 6))
    lo, hi = -(1 << (cfg.data_bits - 1)), (1 << (cfg.data_bits - 1)) - 1
    values = data.draw(st.lists(st.integers(lo, hi), min_size=n * cfg.lanes,
                                max_size=n * cfg.lanes))
    words = np.array(values, dtype=np.int64).reshape(n, cfg.lanes)
    beats = host.pack_words(cfg, target, words)
    assert len(beats) == n * cfg.beats_per_word
    assert all(isinstance(b, int) and 0 <= b < 1 << 32 for b in beats)
    # independent packing: element l at bits [l*d, l*d+d) of the word, beats LSB first
    for i, row in enumerate(values[k:k + cfg.lanes] for k in range(0, len(values), cfg.lanes)):
        value = sum((v % (1 << cfg.data_bits)) << (lane * cfg.data_bits)
                    for lane, v in enumerate(row))
        chunk = beats[i * cfg.beats_per_word:(i + 1) * cfg.beats_per_word]
        assert sum(b << (32 * j) for j, b in enumerate(chunk)) == value
    back = host.unpack_words(cfg, target, beats)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, words)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, (1 << 128) - 1), min_size=1, max_size=8))
def test_program_words_round_trip(words):
    beats = host.pack_words(DEFAULT, host.TARGET_PROG, words)
    assert len(beats) == 4 * len(words)
    assert beats == [(w >> (32 * j)) & 0xffffffff for w in words for j in range(4)]
    assert host.unpack_words(DEFAULT, host.TARGET_PROG, beats) == words
    # the program word width does not depend on the data word width
    small = CONFIGS[3]
    assert host.pack_words(small, host.TARGET_PROG, words) == beats


def test_beat_order_data():
    word = np.arange(1, 17)
    assert host.pack_words(DEFAULT, host.TARGET_ABANK, [word]) == \
        [0x04030201, 0x08070605, 0x0c0b0a09, 0x100f0e0d]
    word = np.zeros(16, dtype=np.int64)
    word[0], word[5], word[15] = -1, -128, 127
    assert host.pack_words(DEFAULT, host.TARGET_WBANK + 1, [word]) == \
        [0x000000ff, 0x00008000, 0, 0x7f000000]
    two = np.zeros((2, 16), dtype=np.int64)
    two[1, 0] = 1
    assert host.pack_words(DEFAULT, host.TARGET_ABANK, two) == [0, 0, 0, 0, 1, 0, 0, 0]
    # a flat list is taken lanes elements at a time
    assert host.pack_words(DEFAULT, host.TARGET_ABANK, list(range(16)) + [0] * 15 + [-2]) == \
        [0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c, 0, 0, 0, 0xfe000000]


def test_beat_order_odd_widths():
    cfg = CONFIGS[3]          # 5 lanes of 6 bits: one 30-bit beat
    assert host.pack_words(cfg, host.TARGET_ABANK, [[1, 2, 3, -1, -32]]) == \
        [1 | 2 << 6 | 3 << 12 | 0x3f << 18 | 0x20 << 24]
    cfg = CONFIGS[4]          # 10 lanes of 7 bits: 70 bits in 3 beats; lane 9 = bits 63..69
    word = [0] * 9 + [-1]
    assert host.pack_words(cfg, host.TARGET_ABANK, [word]) == [0, 0x80000000, 0x3f]


def test_beat_order_program():
    word = 0x0123456789abcdef_fedcba9876543210
    assert host.pack_words(DEFAULT, host.TARGET_PROG, [word]) == \
        [0x76543210, 0xfedcba98, 0x89abcdef, 0x01234567]


def test_unpack_sign_extends():
    assert host.unpack_words(DEFAULT, host.TARGET_ABANK, [0xff807f01, 0, 0, 0x80000000])\
        .tolist() == [[1, 127, -128, -1] + [0] * 11 + [-128]]


def test_headers_and_commands():
    assert host.header(host.CMD_WRITE, 0x41, 7, 3) == [0x00030000 | 0x4100 | 1, 7]
    assert host.run_cmd() == [3, 0]
    assert host.run_cmd(5) == [3, 5]
    assert host.read_cmd(DEFAULT, host.TARGET_PROG, 2, 3) == [0x00038002, 2]
    assert host.read_cmd(DEFAULT, host.TARGET_WBANK + 3, 1000, 24) == [0x00180302, 1000]
    words = np.zeros((2, 16), dtype=np.int64)
    words[0, 0], words[1, 15] = 5, -1
    assert host.write_cmd(DEFAULT, host.TARGET_ABANK + 1, 254, words) == \
        [0x00024101, 254, 5, 0, 0, 0, 0, 0, 0, 0xff000000]
    assert host.write_cmd(DEFAULT, host.TARGET_PROG, 63, [0x51]) == \
        [0x00018001, 63, 0x51, 0, 0, 0]


@pytest.mark.parametrize("cfg, target, depth", [
    (DEFAULT, host.TARGET_WBANK, 1024),
    (DEFAULT, host.TARGET_WBANK + 3, 1024),
    (DEFAULT, host.TARGET_ABANK, 256),
    (DEFAULT, host.TARGET_ABANK + 1, 256),
    (DEFAULT, host.TARGET_PROG, 64),
    (CONFIGS[1], host.TARGET_WBANK + 1, 256),
    (CONFIGS[1], host.TARGET_ABANK, 64),
    (Config(act_banks=4, pdepth=512), host.TARGET_ABANK + 3, 256),
    (Config(act_banks=4, pdepth=512), host.TARGET_PROG, 512),
])
def test_target_depth(cfg, target, depth):
    assert host.target_depth(cfg, target) == depth


@pytest.mark.parametrize("cfg, target", [
    (DEFAULT, host.TARGET_WBANK + 4),
    (DEFAULT, 0x3f),
    (DEFAULT, host.TARGET_ABANK + 2),
    (DEFAULT, 0x7f),
    (DEFAULT, 0x81),
    (DEFAULT, 0xff),
    (CONFIGS[1], host.TARGET_WBANK + 2),
    (CONFIGS[1], host.TARGET_ABANK + 1),
])
def test_unknown_targets(cfg, target):
    message = f"target {target:#x} does not exist in config {cfg.ident}"
    with pytest.raises(HostError, match=re.escape(message)):
        host.target_depth(cfg, target)
    with pytest.raises(HostError, match=re.escape(message)):
        host.read_cmd(cfg, target, 0, 1)
    with pytest.raises(HostError, match=re.escape(message)):
        host.write_cmd(cfg, target, 0, np.zeros((1, cfg.lanes), dtype=np.int64))


@pytest.mark.parametrize("target, address, count, message", [
    (host.TARGET_ABANK, 255, 2, "words 255..256 are outside target 0x40 (depth 256)"),
    (host.TARGET_ABANK + 1, 256, 1, "words 256..256 are outside target 0x41 (depth 256)"),
    (host.TARGET_ABANK, -1, 1, "words -1..-1 are outside target 0x40 (depth 256)"),
    (host.TARGET_WBANK + 2, 1000, 25, "words 1000..1024 are outside target 0x2 (depth 1024)"),
    (host.TARGET_PROG, 0, 65, "words 0..64 are outside target 0x80 (depth 64)"),
    (host.TARGET_PROG, 10, 0, "words 10..9 are outside target 0x80 (depth 64)"),
])
def test_out_of_range_addresses(target, address, count, message):
    with pytest.raises(HostError, match=re.escape(message)):
        host.read_cmd(DEFAULT, target, address, count)
    if count:
        words = [0] * count if target == host.TARGET_PROG else np.zeros((count, 16), np.int64)
        with pytest.raises(HostError, match=re.escape(message)):
            host.write_cmd(DEFAULT, target, address, words)


def test_in_range_edges_are_accepted():
    assert host.read_cmd(DEFAULT, host.TARGET_ABANK, 255, 1) == [0x00014002, 255]
    assert host.read_cmd(DEFAULT, host.TARGET_PROG, 0, 64) == [0x00408002, 0]


def test_count_limited_to_16_bits():
    cfg = Config(wdepth=65536)
    assert host.read_cmd(cfg, host.TARGET_WBANK, 0, 0xffff) == [0xffff0002, 0]
    with pytest.raises(HostError, match=re.escape("words 0..65535 are outside target 0x0")):
        host.read_cmd(cfg, host.TARGET_WBANK, 0, 0x10000)


def test_empty_write_is_rejected():
    with pytest.raises(HostError, match=re.escape("words 3..2 are outside target 0x80")):
        host.write_cmd(DEFAULT, host.TARGET_PROG, 3, [])


@pytest.mark.parametrize("cfg, bad, message", [
    (DEFAULT, 128, "SRAM values must be in [-128, 127]"),
    (DEFAULT, -129, "SRAM values must be in [-128, 127]"),
    (CONFIGS[3], 32, "SRAM values must be in [-32, 31]"),
    (CONFIGS[3], -33, "SRAM values must be in [-32, 31]"),
])
def test_out_of_range_values(cfg, bad, message):
    words = np.zeros((2, cfg.lanes), dtype=np.int64)
    words[1, -1] = bad
    with pytest.raises(HostError, match=re.escape(message)):
        host.pack_words(cfg, host.TARGET_ABANK, words)
    with pytest.raises(HostError, match=re.escape(message)):
        host.write_cmd(cfg, host.TARGET_WBANK, 0, words)


@pytest.mark.parametrize("bad", [1 << 128, -1], ids=["2**128", "-1"])
def test_out_of_range_program_words(bad):
    with pytest.raises(HostError):
        host.pack_words(DEFAULT, host.TARGET_PROG, [bad])


def test_unpack_rejects_partial_words():
    with pytest.raises(HostError, match=re.escape("3 beats is not a whole number of 4-beat words")):
        host.unpack_words(DEFAULT, host.TARGET_ABANK, [0, 0, 0])
    with pytest.raises(HostError, match=re.escape("5 beats is not a whole number of 4-beat words")):
        host.unpack_words(DEFAULT, host.TARGET_PROG, [0] * 5)
    with pytest.raises(HostError, match=re.escape("3 beats is not a whole number of 2-beat words")):
        host.unpack_words(CONFIGS[1], host.TARGET_ABANK, [0] * 3)
