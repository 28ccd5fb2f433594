"""The serial link, defined once: frames that carry the host protocol of :mod:`tinylpu.host`
over a byte stream (a UART), and the host side of it.

The RTL bridge (``rtl/bridge.py``) and this codec import the same constants; docs/fpga.md
("Serial link") describes the rules.

Frame on the wire::

    FLAG | stuffed( header | payload | crc ) | FLAG

- ``header``: one 32-bit word, :class:`FrameHeader` (type, seq, length), little-endian.
- ``payload``: ``length`` 32-bit beats, each little-endian (0 .. :data:`MAX_BEATS`).
- ``crc``: CRC-32 (:data:`CRC_POLY` reflected, init and final XOR :data:`CRC_INIT` /
  :data:`CRC_XOROUT`: zlib's ``crc32``) of header and payload, little-endian.
- stuffing: a :data:`FLAG` or :data:`ESC` byte inside the frame is sent as ``ESC, byte ^
  ESC_XOR``, so :data:`FLAG` only ever delimits frames and a receiver resynchronizes at the
  next one after any garbage.

Retry rules (stop-and-wait in each direction, 8-bit sequence numbers):

- DATA(seq) carries beats for the tile's ``host_in``. The bridge answers ACK(seq) once the
  frame's CRC checked and its beats are queued for the tile; a DATA frame with the previous
  seq (a retransmission after a lost ACK) is ACKed again and not delivered a second time.
  A bad frame gets NAK(expected seq, reason); NAK.seq one past the frame the host waits for
  means that frame was accepted (its ACK was lost).
- OUT(seq) carries beats from the tile's ``host_out``. The bridge sends one OUT frame at a
  time and keeps its beats until the host sends OUT_ACK(seq + 1) (the next seq it expects);
  OUT_ACK(seq) (the seq of the frame in flight) asks for that frame again.
- RESET resets the tile and the bridge (queues emptied, both sequence numbers 0) and is
  answered by RESET_DONE.
"""

__all__ = ["FLAG", "ESC", "ESC_XOR", "CRC_POLY", "CRC_INIT", "CRC_XOROUT", "CRC_RESIDUE",
           "MAX_BEATS", "HEADER_BYTES", "CRC_BYTES", "MIN_FRAME_BYTES", "SEQ_MOD",
           "FrameType", "Nak", "FrameHeader", "Frame", "LinkError", "crc32", "crc_update",
           "encode", "stuff", "Decoder", "Link", "open_serial", "check_config", "run_link"]

import enum
import struct
import time
import zlib
from dataclasses import dataclass, field

from amaranth.lib import data

FLAG = 0x7E         # delimits frames; never inside one
ESC = 0x7D          # escapes FLAG or ESC inside a frame: ESC, byte ^ ESC_XOR
ESC_XOR = 0x20

# CRC-32/ISO-HDLC (Ethernet, zlib): LSB-first (reflected) with this polynomial, register
# initialised to CRC_INIT, result XORed with CRC_XOROUT and sent least significant byte first.
CRC_POLY = 0xEDB88320          # x^32 + x^26 + ... + 1 (0x04C11DB7) bit-reversed
CRC_INIT = 0xFFFFFFFF
CRC_XOROUT = 0xFFFFFFFF

MAX_BEATS = 256       # payload beats of one frame (a DATA frame must fit the bridge's queue)
HEADER_BYTES = 4
CRC_BYTES = 4
MIN_FRAME_BYTES = HEADER_BYTES + CRC_BYTES   # shorter frames are dropped without a reply
SEQ_MOD = 256         # sequence numbers are 8 bits


class FrameType(enum.IntEnum):
    """The frame types; bit 7 set: from the bridge to the host."""
    DATA = 0x01         # host -> tile: beats for host_in (seq: the host's DATA seq)
    OUT_ACK = 0x02      # host -> tile: seq = the next OUT seq the host expects; no payload
    RESET = 0x03        # host -> tile: reset the tile and the bridge; no payload
    ACK = 0x81          # tile -> host: DATA(seq) is accepted (now or before); no payload
    NAK = 0x82          # tile -> host: a bad frame; seq = the DATA seq the bridge expects;
                        # one beat: the reason (class Nak) in bits 7:0
    OUT = 0x83          # tile -> host: beats from host_out (seq: the bridge's OUT seq)
    RESET_DONE = 0x84   # tile -> host: a RESET was carried out (seq 0, no payload)


class Nak(enum.IntEnum):
    """Why a frame was refused (the NAK's payload), in the order the bridge checks."""
    FRAMING = 1     # a UART byte of the frame had a bad stop bit
    TIMEOUT = 2     # the frame stopped mid-way: no byte for the bridge's timeout
    LENGTH = 3      # byte count is not 8 + 4 * length, or length > MAX_BEATS
    CRC = 4         # CRC mismatch
    TYPE = 5        # not a host -> tile frame type
    SEQ = 6         # DATA seq neither the expected one nor the previous one
    FULL = 7        # DATA does not fit the bridge's input queue now: retry later


class FrameHeader(data.Struct):
    """The header word of a frame."""
    type: 8
    seq: 8
    length: 16      # payload beats


assert data.Layout.cast(FrameHeader).size == 8 * HEADER_BYTES


def crc_update(crc, byte):
    """One byte into the CRC register (bit by bit, as the RTL does it)."""
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ (CRC_POLY if crc & 1 else 0)
    return crc


def crc32(body):
    """The CRC of a frame's header and payload (zlib computes the same function)."""
    return zlib.crc32(bytes(body)) & 0xFFFFFFFF


def _residue():
    reg = CRC_INIT
    for byte in struct.pack("<I", CRC_INIT ^ CRC_XOROUT):    # the CRC of the empty body
        reg = crc_update(reg, byte)
    return reg


# The CRC register after a good frame's body *and* its CRC bytes (before the final XOR): the
# bridge checks a frame by comparing its register with this constant.
CRC_RESIDUE = _residue()


class LinkError(RuntimeError):
    """The link gave up: no good answer after the retries, or the two ends disagree."""


@dataclass
class Frame:
    type: int
    seq: int
    beats: list = field(default_factory=list)

    @property
    def reason(self):
        """A NAK's reason (:class:`Nak`), else None."""
        if self.type == FrameType.NAK and self.beats:
            code = self.beats[0] & 0xFF
            return Nak(code) if code in Nak._value2member_map_ else code
        return None


def stuff(body):
    out = bytearray()
    for byte in body:
        if byte in (FLAG, ESC):
            out += bytes((ESC, byte ^ ESC_XOR))
        else:
            out.append(byte)
    return bytes(out)


def encode(ftype, seq, beats=()):
    """The bytes on the wire of one frame, both flags included."""
    beats = [int(b) for b in beats]
    if len(beats) > MAX_BEATS:
        raise LinkError(f"a frame carries at most {MAX_BEATS} beats, not {len(beats)}")
    hdr = FrameHeader.const({"type": int(ftype), "seq": seq % SEQ_MOD, "length": len(beats)})
    body = struct.pack(f"<I{len(beats)}I", hdr.as_value().value,
                       *(b & 0xFFFFFFFF for b in beats))
    body += struct.pack("<I", crc32(body))
    return bytes((FLAG,)) + stuff(body) + bytes((FLAG,))


class Decoder:
    """Bytes in (any chunks), frames out: :meth:`feed` returns the good frames completed by
    the bytes given. Bad frames (CRC, length) are counted in ``bad`` and dropped; frames
    shorter than :data:`MIN_FRAME_BYTES` (noise, the gap between two flags) are ignored."""

    def __init__(self):
        self.body, self.esc, self.bad = bytearray(), False, 0

    def feed(self, chunk):
        frames = []
        for byte in chunk:
            if byte == FLAG:
                frame = self._close()
                if frame is not None:
                    frames.append(frame)
            elif byte == ESC:
                self.esc = True
            else:
                self.body.append(byte ^ ESC_XOR if self.esc else byte)
                self.esc = False
        return frames

    def _close(self):
        body, self.body, self.esc = bytes(self.body), bytearray(), False
        if len(body) < MIN_FRAME_BYTES:
            return None
        word, = struct.unpack_from("<I", body)
        hdr = FrameHeader.from_bits(word)
        n = int(hdr.length)
        if n > MAX_BEATS or len(body) != MIN_FRAME_BYTES + 4 * n \
                or crc32(body[:-CRC_BYTES]) != struct.unpack_from("<I", body, len(body) - 4)[0]:
            self.bad += 1
            return None
        return Frame(int(hdr.type), int(hdr.seq), list(struct.unpack_from(f"<{n}I", body, 4)))


class Link:
    """The host end of the link over any byte transport with ``read(n)`` (returns what arrived,
    possibly nothing, after the transport's own timeout) and ``write(bytes)``: a pyserial
    ``Serial``, or a test's fake.

    ``timeout`` (seconds of ``clock``) is how long to wait for an answer, after the frame
    has had time to go out (``byte_time`` seconds a byte: by default 10 / the port's
    ``baudrate``, 0 without one), before sending it again; ``retries`` how many times a
    frame is sent before :class:`LinkError`.
    ``stats`` counts what recovery took: retransmissions, NAKs by reason, timeouts, bad
    frames received, duplicate OUT frames.
    """

    def __init__(self, port, *, timeout=0.05, retries=16, clock=time.monotonic,
                 byte_time=None):
        self.port, self.timeout, self.retries, self.clock = port, timeout, retries, clock
        if byte_time is None:
            baud = getattr(port, "baudrate", None)
            byte_time = 10 / baud if baud else 0.0
        self.byte_time = byte_time
        self.decoder = Decoder()
        self.seq = 0             # seq of the next DATA frame
        self.out_seq = 0         # seq of the next OUT frame expected
        self.beats = []          # tile beats received, not yet taken by receive()
        self.stats = {"sent": 0, "retransmits": 0, "timeouts": 0, "naks": {}, "dup_out": 0}

    @property
    def bad_frames(self):
        return self.decoder.bad

    # -- the transport ------------------------------------------------------------------
    def _write(self, frame):
        self.port.write(frame)
        self.stats["sent"] += 1

    def _pump(self):
        """Read what arrived; handle OUT frames (keep their beats, acknowledge them); return
        the other frames."""
        waiting = getattr(self.port, "in_waiting", 0) or 1
        others = []
        for frame in self.decoder.feed(self.port.read(waiting)):
            if frame.type == FrameType.OUT:
                self._take_out(frame)
            else:
                others.append(frame)
        return others

    def _take_out(self, frame):
        if frame.seq == self.out_seq:
            self.beats.extend(frame.beats)
            self.out_seq = (self.out_seq + 1) % SEQ_MOD
        elif frame.seq == (self.out_seq - 1) % SEQ_MOD:
            self.stats["dup_out"] += 1      # our OUT_ACK was lost: it is sent again below
        else:
            raise LinkError(f"OUT frame {frame.seq} while expecting {self.out_seq}: "
                            f"the bridge lost its state; reset the link")
        self._write(encode(FrameType.OUT_ACK, self.out_seq))

    def _await(self, accept, sent=0):
        """Pump until ``accept(frame)`` returns True or False (done / send again) or the
        timeout passes after the ``sent`` bytes went out (send again: False)."""
        deadline = self.clock() + self.timeout + sent * self.byte_time
        while self.clock() < deadline:
            for frame in self._pump():
                verdict = accept(frame)
                if verdict is not None:
                    return verdict
        self.stats["timeouts"] += 1
        return False

    # -- the protocol -------------------------------------------------------------------
    def reset(self):
        """Reset the tile and the bridge; both sequence numbers restart at 0 and beats not
        yet received are dropped."""
        for attempt in range(self.retries):
            if attempt:
                self.stats["retransmits"] += 1
            frame = encode(FrameType.RESET, 0)
            self._write(frame)
            if self._await(lambda f: True if f.type == FrameType.RESET_DONE else None,
                           len(frame)):
                self.seq = self.out_seq = 0
                self.beats = []
                return
        raise LinkError(f"no RESET_DONE after {self.retries} RESET frames")

    def send(self, beats):
        """Send beats to the tile's ``host_in``, in frames of up to :data:`MAX_BEATS`, each
        delivered exactly once (retransmitted on NAK or timeout)."""
        beats = list(beats)
        for i in range(0, len(beats), MAX_BEATS):
            self._send_frame(beats[i:i + MAX_BEATS])

    def _send_frame(self, beats):
        frame = encode(FrameType.DATA, self.seq, beats)
        seq, following = self.seq, (self.seq + 1) % SEQ_MOD

        def accept(f):
            if f.type == FrameType.ACK and f.seq == seq:
                return True
            if f.type == FrameType.NAK:
                self.stats["naks"][f.reason] = self.stats["naks"].get(f.reason, 0) + 1
                if f.seq == following:      # accepted before: its ACK was lost
                    return True
                if f.reason == Nak.SEQ:
                    raise LinkError(f"the bridge expects DATA {f.seq}, not {seq}: reset the "
                                    f"link")
                if f.reason == Nak.FULL:    # the tile is busy: give its queue time
                    self._idle(self.timeout)
                return False
            return None                     # a stale ACK or an unsolicited frame

        for attempt in range(self.retries):
            if attempt:
                self.stats["retransmits"] += 1
            self._write(frame)
            if self._await(accept, len(frame)):
                self.seq = following
                return
        raise LinkError(f"DATA frame {seq} ({len(beats)} beats) not acknowledged after "
                        f"{self.retries} attempts")

    def _idle(self, seconds):
        deadline = self.clock() + seconds
        while self.clock() < deadline:
            self._pump()

    def receive(self, count, timeout=None):
        """The next ``count`` beats from the tile's ``host_out``. An OUT frame that does not
        come within ``self.timeout`` is asked for again (OUT_ACK); after ``timeout`` seconds
        in all (None: no limit, for long runs) :class:`LinkError`."""
        end = None if timeout is None else self.clock() + timeout
        while len(self.beats) < count:
            have = len(self.beats)
            deadline = self.clock() + self.timeout
            while len(self.beats) == have and self.clock() < deadline:
                self._pump()
            if len(self.beats) == have:
                if end is not None and self.clock() >= end:
                    raise LinkError(f"{have} of {count} beats from the tile after "
                                    f"{timeout} s")
                self.stats["timeouts"] += 1
                self._write(encode(FrameType.OUT_ACK, self.out_seq))   # resend, if lost
        out, self.beats = self.beats[:count], self.beats[count:]
        return out

    def transact(self, beats, count, timeout=None):
        """Send a host stream and return the tile's ``count`` answer beats."""
        self.send(beats)
        return self.receive(count, timeout)


def open_serial(device, baud=3_000_000, **kw):
    """A :class:`Link` over a serial device or a pyserial URL such as ``loop://`` (pyserial
    is imported here only)."""
    try:
        import serial
    except ImportError:
        raise LinkError("pyserial is not installed: pip install pyserial") from None
    try:
        port = serial.serial_for_url(device, baudrate=baud, timeout=0.002)
    except (serial.SerialException, ValueError) as error:
        raise LinkError(f"cannot open {device}: {error}") from None
    return Link(port, **kw)


def check_config(link, cfg, timeout=None):
    """Read the tile's ``Ctrl.CONFIG`` through ``link``: a :class:`~tinylpu.link.LinkError`
    unless the tile was built for ``cfg`` (a program for another configuration would run
    wrong, silently)."""
    from tinylpu import host     # here: rtl/bridge.py imports this module's constants
    (word,) = link.transact(host.read_cmd(cfg, host.TARGET_CTRL, host.Ctrl.CONFIG, 1), 1,
                            timeout)
    if word != host.config_id(cfg):
        raise LinkError(f"the tile on the link was built for another configuration (id "
                        f"{word:#010x}), not {cfg.ident} (id {host.config_id(cfg):#010x}): "
                        f"give --config the CONFIG of its `make fpga`")


def run_link(link, load, request, *, n_emit, n_after=0, on_beat_pair=None, timeout=None,
             cfg=None):
    """Reset the tile through ``link`` (and with ``cfg``, :func:`check_config`), send
    ``load`` (beats that answer nothing), then
    ``request``, whose last command is a GENERATE emitting ``n_emit`` ids (and ``n_after``
    answer beats of commands after it). Returns ``(response, seconds)`` as
    :func:`tinylpu.flow.rtlsim.run_generate` does: the response beats and the wall time from the
    request sent to the last beat. ``on_beat_pair(id, cycle)`` is called as each id arrives.
    ``timeout``: seconds to wait for each answer (None: no limit)."""
    link.reset()
    if cfg is not None:
        check_config(link, cfg, timeout)
    link.send(load)
    t0 = time.perf_counter()
    link.send(request)
    response = []
    for _ in range(n_emit):
        token, cycle = link.receive(2, timeout)
        response += [token, cycle]
        if on_beat_pair is not None:
            on_beat_pair(token, cycle)
    response += link.receive(2 + n_after, timeout)
    return response, time.perf_counter() - t0

