"""The serial link's host codec (tinylpu.link): CRC, stuffing, frames, resynchronization."""

import random
import struct
import zlib

import pytest

from tinylpu import link
from tinylpu.link import ESC, FLAG, Decoder, FrameType, Nak, encode


def _seed(name):
    return zlib.crc32(name.encode())


def test_crc_is_zlibs_crc32_bit_by_bit():
    rng = random.Random(_seed("crc"))
    for n in (0, 1, 4, 37, 1031):
        body = bytes(rng.randrange(256) for _ in range(n))
        reg = link.CRC_INIT
        for byte in body:
            reg = link.crc_update(reg, byte)
        assert reg ^ link.CRC_XOROUT == link.crc32(body) == zlib.crc32(body), n
    assert link.crc32(b"123456789") == 0xCBF43926      # the CRC-32/ISO-HDLC check value


def test_residue_is_the_register_after_any_good_body_and_its_crc():
    assert link.CRC_RESIDUE == 0xDEBB20E3
    rng = random.Random(_seed("residue"))
    for n in (1, 8, 100):
        body = bytes(rng.randrange(256) for _ in range(n))
        reg = link.CRC_INIT
        for byte in body + struct.pack("<I", link.crc32(body)):
            reg = link.crc_update(reg, byte)
        assert reg == link.CRC_RESIDUE


def test_frame_layout_on_the_wire():
    wire = encode(FrameType.DATA, 5, [0x11223344])
    body = bytes([1, 5, 1, 0, 0x44, 0x33, 0x22, 0x11])
    assert wire == bytes([FLAG]) + body + struct.pack("<I", zlib.crc32(body)) + bytes([FLAG])


def test_flag_and_escape_bytes_are_stuffed():
    wire = encode(FrameType.OUT, FLAG, [0x7D7E7E7D])
    inner = wire[1:-1]
    assert FLAG not in inner
    assert inner[:4] == bytes([FrameType.OUT, ESC, FLAG ^ 0x20, 1])
    frames = Decoder().feed(wire)
    assert [(f.type, f.seq, f.beats) for f in frames] == [(FrameType.OUT, FLAG, [0x7D7E7E7D])]


def test_random_frames_round_trip_in_any_chunks():
    seed = _seed("roundtrip")
    rng = random.Random(seed)
    sent, stream = [], b""
    for _ in range(50):
        beats = [rng.choice([0x7E7E7E7E, 0x7D7D7D7D, rng.getrandbits(32)])
                 for _ in range(rng.randrange(0, 20))]
        ftype, seq = rng.choice(list(FrameType)), rng.randrange(256)
        sent.append((int(ftype), seq, beats))
        stream += encode(ftype, seq, beats)
    dec, got, i = Decoder(), [], 0
    while i < len(stream):
        n = rng.randrange(1, 40)
        got += [(f.type, f.seq, f.beats) for f in dec.feed(stream[i:i + n])]
        i += n
    assert got == sent, f"seed {seed}"
    assert dec.bad == 0


def test_decoder_resynchronizes_after_garbage_and_drops_bad_frames():
    good = encode(FrameType.ACK, 3)
    corrupt = bytearray(encode(FrameType.OUT, 1, [1, 2, 3]))
    corrupt[6] ^= 0x01                               # a payload bit: CRC
    truncated = encode(FrameType.OUT, 2, [4, 5])[:-6] # lost tail, no closing flag
    noise = bytes([0x00, 0x13, ESC, 0x55, 0xFF])      # shorter than a frame: ignored
    frames = Decoder()
    got = frames.feed(noise + good + bytes(corrupt) + truncated + good + noise + good)
    assert [(f.type, f.seq) for f in got] == [(FrameType.ACK, 3)] * 3
    assert frames.bad == 2                            # the corrupt and the truncated one


def test_nak_reason_and_limits():
    nak = Decoder().feed(encode(FrameType.NAK, 7, [Nak.CRC]))[0]
    assert nak.reason is Nak.CRC and nak.seq == 7
    with pytest.raises(link.LinkError, match="at most 256 beats, not 257"):
        encode(FrameType.DATA, 0, [0] * 257)


def test_open_serial_names_the_missing_package(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kw):
        if name == "serial":
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(link.LinkError, match="pyserial is not installed"):
        link.open_serial("/dev/ttyUSB0")


def test_link_over_pyserial_loopback_takes_out_frames_and_acknowledges_them():
    pytest.importorskip("serial")
    ln = link.open_serial("loop://", timeout=0.2)
    ln.port.write(encode(FrameType.OUT, 0, [1, 2]) + encode(FrameType.OUT, 1, [3]))
    assert ln.receive(3, timeout=2) == [1, 2, 3]
    assert ln.out_seq == 2
    # its OUT_ACKs went out on the (looped-back) line: 1, then 2
    acks = Decoder().feed(ln.port.read(ln.port.in_waiting))
    assert [(f.type, f.seq) for f in acks] == [(FrameType.OUT_ACK, 1), (FrameType.OUT_ACK, 2)]


def test_open_serial_error_is_one_line():
    pytest.importorskip("serial")
    with pytest.raises(link.LinkError, match="^cannot open /nonexistent/tty: "):
        link.open_serial("/nonexistent/tty")
