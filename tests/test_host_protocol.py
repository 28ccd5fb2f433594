"""The host stream protocol: packing, headers and range checks (pure Python)."""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinylpu import host, isa
from tinylpu.config import Config
from tinylpu.host import HostError

DEFAULT = Config()
CONFIGS = [
    DEFAULT,                                                   # 128-bit words, 4 beats
    Config(lanes=8, rows=2, wdepth=256, act_banks=1, adepth=64),   # 64 bits, 2 beats
    Config(lanes=32, rows=4),                                  # 256 bits, 8 beats
    Config(lanes=4, rows=1, data_bits=6, acc_bits=16),         # 24 bits, 1 beat
    Config(lanes=16, rows=8, data_bits=7, acc_bits=20),        # 112 bits, 4 beats
]
PROG_BEATS = -(-isa.INSTR_BITS // 32)                          # 9


def test_protocol_constants():
    assert (host.CMD_WRITE, host.CMD_READ, host.CMD_RUN, host.CMD_GENERATE) == (1, 2, 3, 4)
    assert (host.TARGET_WBANK, host.TARGET_ABANK, host.TARGET_PROG, host.TARGET_TABLE,
            host.TARGET_MMEM, host.TARGET_RMEM, host.TARGET_TOKENS) == \
        (0x00, 0x40, 0x80, 0xA0, 0xB0, 0xB1, 0xC0)
    assert (host.STATUS_DONE, host.STATUS_PORT_CONFLICT, host.STATUS_RAW_HAZARD,
            host.STATUS_BAD_COMMAND, host.STATUS_OVERRUN) == (1, 2, 4, 8, 16)
    assert PROG_BEATS == 9


def test_header_and_status_layouts():
    """The header word and the status bits come from the layouts (host.Header, host.Status)."""
    fields = host.Header.from_bits(host.header(host.CMD_READ, 0x41, 7, 300)[0])
    assert (fields.cmd, fields.target, fields.count) == (host.CMD_READ, 0x41, 300)
    status = host.Status.from_bits(host.STATUS_DONE | host.STATUS_UNIT_BUSY)
    assert (status.done, status.unit_busy, status.port_conflict, status.reserved) == (1, 1, 0, 0)
    assert host.STATUS_UNIT_BUSY == 32


@pytest.mark.parametrize("cfg, data_beats", list(zip(CONFIGS, [4, 2, 8, 1, 4])))
def test_beats(cfg, data_beats):
    assert host.beats(cfg, host.TARGET_WBANK) == data_beats
    assert host.beats(cfg, host.TARGET_ABANK) == cfg.lanes          # one 32-bit lane a beat
    assert host.beats(cfg, host.TARGET_PROG) == PROG_BEATS
    assert host.beats(cfg, host.TARGET_TABLE) == host.beats(cfg, host.TARGET_TOKENS) == 1
    assert cfg.beats_per_word == data_beats


def _pack_ref(values, lanes, bits):
    """Independent packing: element l at bits [l*bits, l*bits+bits) of the word."""
    return sum((v % (1 << bits)) << (lane * bits) for lane, v in enumerate(values[:lanes]))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_weight_words_round_trip(data):
    cfg = data.draw(st.sampled_from(CONFIGS))
    n = data.draw(st.integers(1, 6))
    lo, hi = -(1 << (cfg.data_bits - 1)), (1 << (cfg.data_bits - 1)) - 1
    values = data.draw(st.lists(st.integers(lo, hi), min_size=n * cfg.lanes,
                                max_size=n * cfg.lanes))
    words = np.array(values, dtype=np.int64).reshape(n, cfg.lanes)
    beats = host.pack_words(cfg, host.TARGET_WBANK, words)
    assert len(beats) == n * cfg.beats_per_word
    assert all(isinstance(b, int) and 0 <= b < 1 << 32 for b in beats)
    # element l at bits [l*d, l*d+d) of the word, beats LSB first
    for i in range(n):
        value = _pack_ref(values[i * cfg.lanes:], cfg.lanes, cfg.data_bits)
        chunk = beats[i * cfg.beats_per_word:(i + 1) * cfg.beats_per_word]
        assert sum(b << (32 * j) for j, b in enumerate(chunk)) == value
    back = host.unpack_words(cfg, host.TARGET_WBANK, beats)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, words)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_activation_words_round_trip(data):
    cfg = data.draw(st.sampled_from(CONFIGS))
    n = data.draw(st.integers(1, 4))
    values = data.draw(st.lists(st.integers(-(1 << 31), (1 << 31) - 1),
                                min_size=n * cfg.lanes, max_size=n * cfg.lanes))
    words = np.array(values, dtype=np.int64).reshape(n, cfg.lanes)
    target = host.TARGET_ABANK + data.draw(st.integers(0, cfg.act_banks - 1))
    beats = host.pack_words(cfg, target, words)
    # lane l is beat l of its word, two's complement
    assert beats == [v & 0xffffffff for v in values]
    np.testing.assert_array_equal(host.unpack_words(cfg, target, beats), words)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, (1 << isa.INSTR_BITS) - 1), min_size=1, max_size=8))
def test_program_words_round_trip(words):
    beats = host.pack_words(DEFAULT, host.TARGET_PROG, words)
    assert len(beats) == PROG_BEATS * len(words)
    assert beats == [(w >> (32 * j)) & 0xffffffff for w in words for j in range(PROG_BEATS)]
    assert host.unpack_words(DEFAULT, host.TARGET_PROG, beats) == words
    # the program word width does not depend on the data word width
    small = CONFIGS[3]
    assert host.pack_words(small, host.TARGET_PROG, words) == beats


def test_table_and_token_entries():
    table = np.array([[0], [1], [-1], [32767], [-32768]])
    beats = host.pack_words(DEFAULT, host.TARGET_TABLE, table)
    assert beats == [0, 1, 0xffff, 0x7fff, 0x8000]           # low 16 bits, one beat each
    np.testing.assert_array_equal(host.unpack_words(DEFAULT, host.TARGET_TABLE, beats), table)
    # the high half of a beat is ignored
    assert host.unpack_words(DEFAULT, host.TARGET_TABLE, [0xabcd8001]).tolist() == [[-32767]]
    ids = np.array([[0], [1], [65535], [511]])
    beats = host.pack_words(DEFAULT, host.TARGET_TOKENS, ids)
    assert beats == [0, 1, 0xffff, 511]                       # ids are unsigned
    np.testing.assert_array_equal(host.unpack_words(DEFAULT, host.TARGET_TOKENS, beats), ids)
    with pytest.raises(HostError, match=re.escape("SRAM values must be in [0, 65535]")):
        host.pack_words(DEFAULT, host.TARGET_TOKENS, [[-1]])
    with pytest.raises(HostError, match=re.escape("SRAM values must be in [-32768, 32767]")):
        host.pack_words(DEFAULT, host.TARGET_TABLE, [[32768]])


def test_row_multiplier_words():
    # a word is `rows` int16 multipliers, entry r at bits 16r..16r+15, two to a beat
    words = np.array([[1, -1, 32767, -32768], [0, 2, -3, 4]])
    beats = host.pack_words(DEFAULT, host.TARGET_MMEM, words)
    assert beats == [0xffff0001, 0x80007fff, 0x00020000, 0x0004fffd]
    assert host.beats(DEFAULT, host.TARGET_MMEM) == 2
    np.testing.assert_array_equal(host.unpack_words(DEFAULT, host.TARGET_MMEM, beats), words)
    assert host.beats(Config(lanes=8, rows=1), host.TARGET_MMEM) == 1      # 16 bits
    assert host.target_depth(Config(mdepth=64), host.TARGET_MMEM) == 64
    # RoPE-table words: (cos, sin) pairs, packed the same way
    assert host.pack_words(DEFAULT, host.TARGET_RMEM, words) == beats
    assert host.target_depth(Config(rdepth=32), host.TARGET_RMEM) == 32
    with pytest.raises(HostError, match=re.escape("SRAM values must be in [-32768, 32767]")):
        host.pack_words(DEFAULT, host.TARGET_MMEM, [[0, 0, 0, 32768]])


def test_beat_order_data():
    word = np.zeros(16, dtype=np.int64)
    word[0], word[5], word[15] = -1, -128, 127
    assert host.pack_words(DEFAULT, host.TARGET_WBANK + 1, [word]) == \
        [0x000000ff, 0x00008000, 0, 0x7f000000]
    word = np.arange(1, 17)
    assert host.pack_words(DEFAULT, host.TARGET_WBANK, [word]) == \
        [0x04030201, 0x08070605, 0x0c0b0a09, 0x100f0e0d]
    assert host.pack_words(DEFAULT, host.TARGET_ABANK, [word]) == list(range(1, 17))
    two = np.zeros((2, 16), dtype=np.int64)
    two[1, 0] = -2
    assert host.pack_words(DEFAULT, host.TARGET_ABANK, two) == [0] * 16 + [0xfffffffe] + [0] * 15
    # a flat list is taken lanes elements at a time
    assert host.pack_words(DEFAULT, host.TARGET_WBANK, list(range(16)) + [0] * 15 + [-2]) == \
        [0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c, 0, 0, 0, 0xfe000000]


def test_beat_order_odd_widths():
    cfg = CONFIGS[3]          # 4 lanes of 6 bits: one 24-bit beat
    assert host.pack_words(cfg, host.TARGET_WBANK, [[1, 2, 3, -32]]) == \
        [1 | 2 << 6 | 3 << 12 | 0x20 << 18]
    cfg = CONFIGS[4]          # 16 lanes of 7 bits: 112 bits in 4 beats; lane 9 = bits 63..69
    word = [0] * 9 + [-1] + [0] * 6
    assert host.pack_words(cfg, host.TARGET_WBANK, [word]) == [0, 0x80000000, 0x3f, 0]


def test_beat_order_program():
    word = 0x0123456789abcdef_fedcba9876543210 | 0xfeed << 272
    assert host.pack_words(DEFAULT, host.TARGET_PROG, [word]) == \
        [0x76543210, 0xfedcba98, 0x89abcdef, 0x01234567, 0, 0, 0, 0, 0xfeed0000]


def test_unpack_sign_extends():
    assert host.unpack_words(DEFAULT, host.TARGET_WBANK, [0xff807f01, 0, 0, 0x80000000])\
        .tolist() == [[1, 127, -128, -1] + [0] * 11 + [-128]]
    assert host.unpack_words(DEFAULT, host.TARGET_ABANK, [0xffffffff, 0x80000000, 0x7fffffff]
                             + [0] * 13).tolist() == [[-1, -(1 << 31), (1 << 31) - 1] + [0] * 13]


def test_headers_and_commands():
    assert host.header(host.CMD_WRITE, 0x41, 7, 3) == [0x00030000 | 0x4100 | 1, 7]
    assert host.run_cmd() == [3, 0]
    assert host.run_cmd(5) == [3, 5]
    assert host.read_cmd(DEFAULT, host.TARGET_PROG, 2, 3) == [0x00038002, 2]
    assert host.read_cmd(DEFAULT, host.TARGET_WBANK + 3, 1000, 24) == [0x00180302, 1000]
    words = np.zeros((2, 16), dtype=np.int64)
    words[0, 0], words[1, 15] = 5, -1
    assert host.write_cmd(DEFAULT, host.TARGET_WBANK + 1, 254, words) == \
        [0x00020101, 254, 5, 0, 0, 0, 0, 0, 0, 0xff000000]
    assert host.write_cmd(DEFAULT, host.TARGET_ABANK + 1, 254, words) == \
        [0x00024101, 254, 5] + [0] * 30 + [0xffffffff]
    assert host.write_cmd(DEFAULT, host.TARGET_PROG, 63, [0x51]) == \
        [0x00018001, 63, 0x51] + [0] * 8
    assert host.write_cmd(DEFAULT, host.TARGET_TOKENS, 3, [[7], [9]]) == [0x0002c001, 3, 7, 9]
    assert host.write_cmd(DEFAULT, host.TARGET_TABLE, 1023, [[-2]]) == \
        [0x0001a001, 1023, 0xfffe]
    assert host.generate_cmd(3, 70000) == [0x00030004, 70000]
    assert host.generate_cmd(1, (1 << 32) - 1) == [0x00010004, 0xffffffff]
    for n_prompt, steps in ((0, 1), (1, 0), (0x10000, 1), (1, 1 << 32)):
        with pytest.raises(HostError, match="GENERATE needs"):
            host.generate_cmd(n_prompt, steps)


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
    (DEFAULT, host.TARGET_TABLE, isa.TABLE_DEPTH),
    (DEFAULT, host.TARGET_TOKENS, 512),
    (Config(tdepth=64), host.TARGET_TOKENS, 64),
])
def test_target_depth(cfg, target, depth):
    assert host.target_depth(cfg, target) == depth


@pytest.mark.parametrize("cfg, target", [
    (DEFAULT, host.TARGET_WBANK + 4),
    (DEFAULT, 0x3f),
    (DEFAULT, host.TARGET_ABANK + 2),
    (DEFAULT, 0x7f),
    (DEFAULT, 0x81),
    (DEFAULT, 0xa1),
    (DEFAULT, 0xb2),
    (DEFAULT, 0xc1),
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
    (host.TARGET_TOKENS, 510, 3, "words 510..512 are outside target 0xc0 (depth 512)"),
    (host.TARGET_TABLE, 1024, 1, "words 1024..1024 are outside target 0xa0 (depth 1024)"),
])
def test_out_of_range_addresses(target, address, count, message):
    with pytest.raises(HostError, match=re.escape(message)):
        host.read_cmd(DEFAULT, target, address, count)
    if count:
        lanes = 1 if target in (host.TARGET_TABLE, host.TARGET_TOKENS) else 16
        words = [0] * count if target == host.TARGET_PROG else np.zeros((count, lanes), np.int64)
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
        host.pack_words(cfg, host.TARGET_WBANK, words)
    with pytest.raises(HostError, match=re.escape(message)):
        host.write_cmd(cfg, host.TARGET_WBANK, 0, words)
    # activation lanes are 32 bits, whatever data_bits is
    words[1, -1] = 1 << 31
    with pytest.raises(HostError, match=re.escape("SRAM values must be in [-2147483648, "
                                                  "2147483647]")):
        host.pack_words(cfg, host.TARGET_ABANK, words)


@pytest.mark.parametrize("bad", [1 << isa.INSTR_BITS, -1], ids=["2**288", "-1"])
def test_out_of_range_program_words(bad):
    with pytest.raises(HostError):
        host.pack_words(DEFAULT, host.TARGET_PROG, [bad])


def test_unpack_rejects_partial_words():
    with pytest.raises(HostError, match=re.escape("3 beats is not a whole number of 4-beat words")):
        host.unpack_words(DEFAULT, host.TARGET_WBANK, [0, 0, 0])
    with pytest.raises(HostError, match=re.escape("5 beats is not a whole number of 9-beat words")):
        host.unpack_words(DEFAULT, host.TARGET_PROG, [0] * 5)
    with pytest.raises(HostError, match=re.escape("3 beats is not a whole number of 8-beat words")):
        host.unpack_words(CONFIGS[1], host.TARGET_ABANK, [0] * 3)


def test_busy_counter_target():
    """TARGET_COUNTERS: one unsigned 32-bit beat per counter, in host.Counter order,
    read-only; parse_counters names them."""
    assert host.TARGET_COUNTERS == 0xD0
    assert host.COUNTERS == ("cycles", "mac", "vu", "out", "drain", "wait", "next")
    assert [int(c) for c in host.Counter] == list(range(len(host.COUNTERS)))
    assert set(host.COUNTER_HELP) == set(host.Counter)
    for cfg in CONFIGS:
        assert host.target_depth(cfg, host.TARGET_COUNTERS) == len(host.Counter)
        assert host.beats(cfg, host.TARGET_COUNTERS) == 1
        assert host.counters_cmd(cfg) == [0x0007D002, 0]     # READ 0xD0, 7 words at 0
    with pytest.raises(HostError, match="words 6..7 are outside target 0xd0 .depth 7."):
        host.read_cmd(DEFAULT, host.TARGET_COUNTERS, 6, 2)
    with pytest.raises(HostError, match="0xd0 .the busy counters. is read-only"):
        host.write_cmd(DEFAULT, host.TARGET_COUNTERS, 0, [[1]])
    words = [[0], [1], [(1 << 31) + 3], [(1 << 32) - 1]]
    beats = host.pack_words(DEFAULT, host.TARGET_COUNTERS, words)
    assert beats == [0, 1, (1 << 31) + 3, (1 << 32) - 1]
    np.testing.assert_array_equal(host.unpack_words(DEFAULT, host.TARGET_COUNTERS, beats), words)
    counts = host.parse_counters([100, 60, 20, 70, 0, 15, 4])
    assert counts == {"cycles": 100, "mac": 60, "vu": 20, "out": 70, "drain": 0, "wait": 15,
                      "next": 4}
    table = host.format_counters(counts)
    assert "| mac: MAC array (MATVEC, QK, PV issue slots) | 60 | 60.0% |" in table
    with pytest.raises(HostError, match="6 beats are not the 7 busy counters"):
        host.parse_counters([0] * 6)
