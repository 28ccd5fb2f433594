"""The serial bridge (rtl/bridge.py) behind a UART in Amaranth's simulator, driven by the host
codec (tinylpu.link) through a simulated line, with a fake tile that echoes each beat XOR
ECHO_XOR (tests/serial_sim.py): delivery exactly once and in order, NAKs and retries,
resynchronization, lost ACKs and OUT frames, reset, a full input queue."""

import random
import struct
import zlib

import pytest
import numpy as np
from serial_sim import ECHO_XOR, Harness, SimSerial, TileHarness

from tinylpu import host, link
from tinylpu.compiler import compile_gemv
from tinylpu.config import Config
from tinylpu.golden import GoldenTile
from tinylpu.link import Decoder, FrameType, Link, Nak, encode
from tinylpu.rtl.bridge import Bridge, UartBridge

DIVISOR = 4
BYTE_TIME = 10 * DIVISOR * 1e-8     # seconds of simulated time per byte on the line
TIMEOUT_BYTES = 32                  # the bridge's receive timeout
LINK_TIMEOUT = 150e-6               # the host's: longer than a reply behind a 16-beat OUT frame


def _setup(**kw):
    h = Harness(DIVISOR, in_depth=256, out_depth=16, timeout_bytes=TIMEOUT_BYTES, **kw)
    port = SimSerial(h, DIVISOR, probes=("taken", "resets"))
    return port, Link(port, timeout=LINK_TIMEOUT, clock=port.now, byte_time=BYTE_TIME)


def _seeded(name):
    seed = zlib.crc32(name.encode())
    return seed, random.Random(seed)


def _beats(rng, n):
    return [rng.getrandbits(32) for _ in range(n)]


def _echo(beats):
    return [b ^ ECHO_XOR for b in beats]


def _frames(port, seconds):
    """Every good frame from the bridge in the next ``seconds`` of simulated time."""
    dec, out, end = Decoder(), [], port.now() + seconds
    while port.now() < end:
        out += dec.feed(port.read(64))
    return out


def _settle(port, ln, seconds=60e-6):
    """Let the line go quiet (answering OUT frames), then the beats the tile has taken."""
    ln._idle(seconds)
    return port.probes["taken"]


def test_frames_are_delivered_in_order_exactly_once():
    seed, rng = _seeded("in-order")
    port, ln = _setup()
    chunks = [_beats(rng, n) for n in (1, 17, 40, 0, 5)]
    for chunk in chunks:
        ln.send(chunk)
    sent = [b for chunk in chunks for b in chunk]
    assert ln.receive(len(sent)) == _echo(sent), f"seed {seed}"
    assert _settle(port, ln) == len(sent) and ln.beats == [], f"seed {seed}"
    assert ln.seq == 4 and ln.stats["retransmits"] == 0     # an empty send sends no frame
    assert ln.stats["naks"] == {} and ln.bad_frames == 0


def _flip(index, mask):
    def mangle(data):
        data = bytearray(data)
        data[index] ^= mask
        return bytes(data)
    return mangle


def test_a_corrupted_byte_gets_nak_crc_and_the_retry_succeeds():
    port, ln = _setup()
    beats = [0x04030201, 0x08070605, 0x0C0B0A09]
    port.mangle_out = _flip(5, 0x10)       # the first payload byte, 0x01 -> 0x11
    ln.send(beats)
    assert ln.stats["naks"] == {Nak.CRC: 1} and ln.stats["retransmits"] == 1
    assert ln.receive(3) == _echo(beats)
    assert _settle(port, ln) == 3


@pytest.mark.parametrize("fault,reasons", [
    ("drop-3", {Nak.LENGTH: 1}),           # three bytes lost mid-frame
    ("garbage-in", {Nak.LENGTH: 1}),       # six noise bytes inside the frame
    ("garbage-before", {Nak.LENGTH: 1}),   # noise between frames: a bad frame of its own
    ("drop-open-flag", {}),                # the previous frame's closing flag opens it
    ("noise-runt", {}),                    # fewer bytes than a frame: dropped silently
], ids=lambda v: v if isinstance(v, str) else "")
def test_resynchronization_after_lost_bytes_and_garbage(fault, reasons):
    seed, rng = _seeded(f"resync-{fault}")
    port, ln = _setup()
    ln.send([1])                                         # a frame before: its closing flag
    noise = bytes(rng.choice([b for b in range(256) if b != link.FLAG]) for _ in range(12))
    mangle = {
        "drop-3": lambda d: d[:10] + d[13:],
        "garbage-in": lambda d: d[:9] + noise[:6] + d[9:],
        "garbage-before": lambda d: noise + d,
        "drop-open-flag": lambda d: d[1:],
        "noise-runt": lambda d: noise[:5] + d,
    }[fault]
    port.mangle_out = mangle
    beats = _beats(rng, 8)
    ln.send(beats)
    assert ln.stats["naks"] == reasons, f"seed {seed}"
    assert ln.receive(9) == _echo([1] + beats), f"seed {seed}"
    assert _settle(port, ln) == 9, f"seed {seed}"


def _drop_next_frame():
    """mangle_in that drops the bytes of the next frame from the bridge (to its second
    FLAG)."""
    flags = [0]

    def mangle(index, byte):
        if flags[0] >= 2:
            return byte
        flags[0] += byte == link.FLAG
        return None
    return mangle


def test_a_lost_ack_makes_a_retransmission_that_is_not_delivered_twice():
    seed, rng = _seeded("lost-ack")
    port, ln = _setup()
    beats = _beats(rng, 6)
    port.mangle_in = _drop_next_frame()
    ln.send(beats)
    assert ln.stats["timeouts"] == 1 and ln.stats["retransmits"] == 1
    ln.send([7])
    assert ln.receive(7) == _echo(beats + [7]), f"seed {seed}"
    assert _settle(port, ln) == 7 and ln.beats == [], f"seed {seed}"


def test_a_duplicate_data_frame_is_acked_again_but_not_delivered():
    port, ln = _setup()
    frame = encode(FrameType.DATA, 0, [11, 12])
    port.write(frame)
    port.write(frame)
    got = [(f.type, f.seq, f.beats) for f in _frames(port, 150 * BYTE_TIME)]
    assert [g for g in got if g[0] != FrameType.OUT] == [(FrameType.ACK, 0, [])] * 2
    # the echo of the one delivery, in one or more OUT frames
    assert [b for t, _, bs in got if t == FrameType.OUT for b in bs] == _echo([11, 12])
    assert port.probes["taken"] == 2


def test_out_frames_are_numbered_kept_until_acknowledged_and_resent_on_request():
    seed, rng = _seeded("out-frames")
    port, ln = _setup()
    beats = _beats(rng, 40)
    ln.send(beats)              # 40 echoed beats, more than the 16-beat output queue
    dec, out, want, first_2 = Decoder(), [], 0, None
    while len(out) < 40:
        for f in _frames_once(port, dec):
            assert f.type == FrameType.OUT and f.seq == want, f"seed {seed}: {f}"
            assert 1 <= len(f.beats) <= 16
            if want == 2 and first_2 is None:   # ask for OUT 2 again before taking it
                first_2 = f.beats
                port.write(encode(FrameType.OUT_ACK, 2))
                continue
            if want == 2:
                assert f.beats == first_2, f"seed {seed}"
            out += f.beats
            want += 1
            port.write(encode(FrameType.OUT_ACK, want))
    assert out == _echo(beats), f"seed {seed}"
    assert first_2 is not None and want >= 3


def _frames_once(port, dec):
    frames = []
    while not frames:
        frames = dec.feed(port.read(64))
    return frames


def test_a_corrupted_out_frame_is_recovered_by_the_link():
    seed, rng = _seeded("lost-out")
    port, ln = _setup()
    beats = _beats(rng, 5)
    start = [None]

    def corrupt_first_out(index, byte):   # flip a bit of the 7th byte of the 2nd frame
        if start[0] is None and index >= 10 and byte == link.FLAG:
            start[0] = index
        return byte ^ 0x01 if start[0] is not None and index == start[0] + 7 else byte
    port.mangle_in = corrupt_first_out
    ln.send(beats)
    assert ln.receive(5) == _echo(beats), f"seed {seed}"
    assert ln.bad_frames == 1 and ln.stats["timeouts"] >= 1, f"seed {seed}"


def test_reset_empties_the_queues_resets_the_tile_and_both_sequence_numbers():
    seed, rng = _seeded("reset")
    port, ln = _setup()
    ln.send([1, 2])
    assert ln.receive(2) == _echo([1, 2])
    port.set("hold", 1)                   # the tile takes nothing: beats wait in the queue
    ln.send(_beats(rng, 10))
    assert ln.seq == 2 and ln.out_seq >= 1
    ln.reset()
    port.set("hold", 0)
    assert _settle(port, ln) == 0         # the queued beats were dropped, the tile reset
    assert port.probes["resets"] == 1
    assert ln.seq == ln.out_seq == 0
    beats = _beats(rng, 3)
    ln.send(beats)                        # DATA 0 again: delivered, so the bridge expected 0
    assert ln.receive(3) == _echo(beats), f"seed {seed}"
    assert ln.stats["retransmits"] == 0 and ln.stats["naks"] == {}


def test_a_full_input_queue_gets_nak_full_until_the_tile_takes_beats():
    seed, rng = _seeded("full")
    port, ln = _setup()
    port.set("hold", 1)
    first = _beats(rng, link.MAX_BEATS)   # fills the 256-beat queue
    ln.send(first)
    port.set("hold", 0, time=port.now() + 2 * LINK_TIMEOUT)
    more = _beats(rng, 8)
    ln.send(more)
    assert ln.stats["naks"].get(Nak.FULL, 0) >= 1, f"seed {seed}"
    assert ln.receive(len(first) + 8) == _echo(first + more), f"seed {seed}"


def test_a_gemv_on_the_real_tile_through_the_link_then_reset_keeps_the_srams():
    seed = zlib.crc32(b"real-tile")
    rng = np.random.default_rng(seed)
    cfg = Config(lanes=4, rows=2, wdepth=64, act_banks=2, adepth=16, pdepth=8)
    W, x = rng.integers(-128, 128, (5, 7)), rng.integers(-128, 128, 7)
    g = compile_gemv(W, x, cfg)
    stream = g.host_stream()
    expected = GoldenTile(cfg).host(stream)
    port = SimSerial(TileHarness(cfg, DIVISOR, in_depth=256, out_depth=16,
                                 timeout_bytes=TIMEOUT_BYTES), DIVISOR)
    ln = Link(port, timeout=LINK_TIMEOUT, clock=port.now, byte_time=BYTE_TIME)
    ln.reset()
    port.mangle_out = _flip(20, 0x04)        # a payload byte of the load: NAK, then retry
    got = ln.transact(stream, len(expected))
    assert got == expected, f"seed {seed}"
    assert got[:2] == [host.STATUS_DONE, g.schedule.cycles]
    np.testing.assert_array_equal(g.result(got), g.reference([W], x))
    assert ln.stats["retransmits"] == 1 and len(ln.stats["naks"]) == 1
    # RESET is the abort: the control registers return to their reset values, the SRAMs
    # (here the weights) keep the model
    golden = GoldenTile(cfg)
    golden.host(stream)
    ln.send(host.ctrl_cmd(cfg, budget=1000))
    ln.reset()
    read_ctrl = host.read_cmd(cfg, host.TARGET_CTRL, 0, len(host.Ctrl))
    assert ln.transact(read_ctrl, len(host.Ctrl)) == host.ctrl_reset(cfg)
    read_w = host.read_cmd(cfg, host.TARGET_WBANK, 0, 4)
    weights = golden.host(read_w)
    assert any(weights)
    assert ln.transact(read_w, 4 * host.beats(cfg, host.TARGET_WBANK)) == weights


def _raw_frame(ftype, seq, beats, length=None):
    """A frame whose header may lie about its length (the CRC is right)."""
    n = len(beats) if length is None else length
    body = struct.pack(f"<BBH{len(beats)}I", ftype, seq, n, *beats)
    body += struct.pack("<I", link.crc32(body))
    return bytes([link.FLAG]) + link.stuff(body) + bytes([link.FLAG])


@pytest.mark.parametrize("case,frame,reason", [
    ("type", _raw_frame(0x55, 0, []), Nak.TYPE),
    ("type-reply", _raw_frame(FrameType.ACK, 0, []), Nak.TYPE),
    ("seq", _raw_frame(FrameType.DATA, 5, [1]), Nak.SEQ),
    ("length-short", _raw_frame(FrameType.DATA, 0, [1, 2], length=3), Nak.LENGTH),
    ("length-max", _raw_frame(FrameType.DATA, 0, [], length=link.MAX_BEATS + 1), Nak.LENGTH),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_frames_get_a_nak_with_the_reason(case, frame, reason):
    port, ln = _setup()
    port.write(frame)
    got = [(f.type, f.seq, f.reason) for f in _frames(port, 40 * BYTE_TIME)]
    assert got == [(FrameType.NAK, 0, reason)]
    ln.send([3])                      # the bridge still expects DATA 0
    assert ln.receive(1) == _echo([3]) and ln.stats["naks"] == {}


def test_a_bad_stop_bit_in_a_frame_gets_nak_framing():
    port, ln = _setup()
    frame = encode(FrameType.DATA, 0, [0x12345678])
    port.line.extend(frame[:6])
    port.line.append((frame[6], 0))
    port.line.extend(frame[7:])
    got = [(f.type, f.seq, f.reason) for f in _frames(port, 40 * BYTE_TIME)]
    assert got == [(FrameType.NAK, 0, Nak.FRAMING)]
    ln.send([4])
    assert ln.receive(1) == _echo([4])


def test_a_truncated_frame_is_closed_by_the_timeout():
    port, ln = _setup()
    port.write(encode(FrameType.DATA, 0, [1, 2, 3])[:12])
    got = _frames(port, (12 + TIMEOUT_BYTES + 20) * BYTE_TIME)
    assert [(f.type, f.seq, f.reason) for f in got] == [(FrameType.NAK, 0, Nak.TIMEOUT)]
    ln.send([5])
    assert ln.receive(1) == _echo([5])
    assert port.probes["taken"] == 1


def test_host_in_delivers_a_beat_a_cycle_and_follows_ready():
    """The Bridge alone, bytes straight into ``rx``: once a frame is committed, ``host_in``
    offers its beats in order, one a cycle while the tile is ready, and keeps a beat through
    cycles the tile is not (here: not ready every third cycle after the first 40 beats)."""
    from amaranth.sim import Simulator
    seed, rng = _seeded("host-in-rate")
    beats = _beats(rng, 100)
    wire = encode(FrameType.DATA, 0, beats)
    dut = Bridge(timeout=1000)
    got, cycles = [], []

    async def bench(ctx):
        for byte in wire:
            ctx.set(dut.rx.payload, byte)
            ctx.set(dut.rx.valid, 1)
            await ctx.tick()
        ctx.set(dut.rx.valid, 0)
        for cycle in range(400):
            ready = len(got) < 40 or cycle % 3 != 0
            ctx.set(dut.host_in.ready, ready)
            if ready and ctx.get(dut.host_in.valid):
                got.append(ctx.get(dut.host_in.payload))
                cycles.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == beats, f"seed {seed}"
    first = cycles[:40]
    assert first == list(range(first[0], first[0] + 40)), "not one beat a cycle"


@pytest.mark.parametrize("make,message", [
    (lambda: Bridge(in_depth=100), "in_depth must be a power of two >= 256, not 100"),
    (lambda: Bridge(out_depth=1), "out_depth must be a power of two >= 2, not 1"),
    (lambda: Bridge(timeout=0), "timeout must be a positive number of cycles, not 0"),
    (lambda: UartBridge(3), r"UART divisor \(clock cycles per bit\) must be an integer >= 4"),
    (lambda: UartBridge(8, timeout_bytes=0), "timeout_bytes must be a positive integer, not 0"),
])
def test_bad_parameters_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
