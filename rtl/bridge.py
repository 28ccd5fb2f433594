"""The serial host bridge: the frames of :mod:`tinylpu.link` over a byte stream pair, to and
from the tile's 32-bit host streams."""

__all__ = ["Receiver", "Sender", "Bridge", "UartBridge", "crc_byte", "generate_verilog"]

import pathlib

from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from tinylpu import link
from tinylpu.link import FrameHeader, FrameType, Nak

from .uart import UartRx, UartTx, check_divisor

# bytes a receiver counts before it stops (one past the longest good frame)
_MAX_COUNT = link.MIN_FRAME_BYTES + 4 * link.MAX_BEATS + 1


def crc_byte(crc, byte):
    """The CRC register after ``byte`` (Amaranth values; :func:`tinylpu.link.crc_update`)."""
    crc = crc ^ byte
    for _ in range(8):
        crc = crc[1:] ^ Mux(crc[0], link.CRC_POLY, 0)
    return crc[:32]


class Receiver(wiring.Component):
    """Frames from raw bytes: unstuffing, byte count, header, payload beats, CRC.

    ``i`` is always ready. A FLAG closes the frame in progress (the bytes since the previous
    FLAG); so does ``timeout`` cycles without a byte in a frame. A closed frame of fewer than
    :data:`tinylpu.link.MIN_FRAME_BYTES` bytes is dropped without a trace; any other pulses
    ``end`` the cycle after, with ``reason`` 0 (good) or the first :class:`tinylpu.link.Nak`
    reason of FRAMING (``rx_error`` during the frame), TIMEOUT, LENGTH, CRC.

    ``header`` holds the frame's header from the cycle after its fourth byte (``header_done``
    pulses then) until the next frame's fourth byte. ``word`` pulses each payload beat the
    cycle after its fourth byte; bytes past ``header.length`` beats (the CRC, garbage) are not
    beats.
    """

    def __init__(self, timeout):
        if not isinstance(timeout, int) or timeout < 1:
            _refuse(self, f"timeout must be a positive number of cycles, not {timeout!r}")
        self.timeout = timeout
        super().__init__({
            "i": In(stream.Signature(8)), "rx_error": In(1),
            "header": Out(FrameHeader), "header_done": Out(1),
            "word": Out(stream.Signature(32, always_ready=True)),
            "end": Out(1), "reason": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        raw = self.i.payload
        got = self.i.valid
        m.d.comb += self.i.ready.eq(1)
        esc, poisoned = Signal(), Signal()
        count = Signal(range(_MAX_COUNT + 1))
        crc = Signal(32, init=link.CRC_INIT)
        idle = Signal(range(self.timeout + 1))
        byte = Signal(8)
        is_data = Signal()
        m.d.comb += [byte.eq(raw ^ Mux(esc, link.ESC_XOR, 0)),
                     is_data.eq(got & (raw != link.FLAG) & (raw != link.ESC))]
        expired = (count != 0) & ~got & (idle == self.timeout)
        close = (got & (raw == link.FLAG)) | expired

        with m.If(got | (count == 0)):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self.timeout):
            m.d.sync += idle.eq(idle + 1)
        with m.If(got):
            m.d.sync += esc.eq(raw == link.ESC)
        with m.If(self.rx_error):
            m.d.sync += poisoned.eq(1)

        hdr = self.header
        payload_end = link.HEADER_BYTES + 4 * hdr.length
        m.d.sync += [self.header_done.eq(0), self.word.valid.eq(0), self.end.eq(0)]
        with m.If(is_data):
            m.d.sync += [crc.eq(crc_byte(crc, byte)),
                         count.eq(Mux(count == _MAX_COUNT, count, count + 1))]
            with m.If(count < link.HEADER_BYTES):
                m.d.sync += hdr.as_value().eq(Cat(hdr.as_value()[8:], byte))
                m.d.sync += self.header_done.eq(count == link.HEADER_BYTES - 1)
            with m.Elif(count < payload_end):
                m.d.sync += self.word.payload.eq(Cat(self.word.payload[8:], byte))
                m.d.sync += self.word.valid.eq(count[:2] == 3)

        with m.If(close):
            m.d.sync += [count.eq(0), crc.eq(link.CRC_INIT), poisoned.eq(0), esc.eq(0)]
            with m.If(count >= link.MIN_FRAME_BYTES):
                m.d.sync += self.end.eq(1)
                with m.If(poisoned):
                    m.d.sync += self.reason.eq(Nak.FRAMING)
                with m.Elif(expired):
                    m.d.sync += self.reason.eq(Nak.TIMEOUT)
                with m.Elif((hdr.length > link.MAX_BEATS)
                            | (count != payload_end + link.CRC_BYTES)):
                    m.d.sync += self.reason.eq(Nak.LENGTH)
                with m.Elif(crc != link.CRC_RESIDUE):
                    m.d.sync += self.reason.eq(Nak.CRC)
                with m.Else():
                    m.d.sync += self.reason.eq(0)
        return m


class Reply(data.Struct):
    """A reply the bridge owes the host (ACK, NAK with its reason, RESET_DONE)."""
    type: 8
    seq: 8
    reason: 8


class OutFrame(data.Struct):
    """The OUT frame to send: ``length`` beats from ``base`` of the output queue."""
    seq: 8
    base: 16
    length: 16


class Sender(wiring.Component):
    """Frames to raw bytes: FLAG, the stuffed header, payload and CRC, FLAG.

    In its idle state it takes a ``reply`` (first) or an ``out`` request (``ready`` pulses
    in the cycle it takes one); an OUT frame's payload is read from the output queue at
    ``rd_addr`` (a synchronous read port: ``rd_data`` one cycle later). A logical byte is
    registered before it goes to ``o`` (so the queue's read data, the byte choice and the
    escape test are not on one path with the CRC and the UART), three cycles after the
    previous one was taken at the earliest: the sender keeps up with any UART (a byte is ten
    bit times). The reply is sent once; repeating it is the host's job.
    """

    def __init__(self, addr_bits):
        self.addr_bits = addr_bits
        super().__init__({
            "reply": In(stream.Signature(Reply)), "out": In(stream.Signature(OutFrame)),
            "o": Out(stream.Signature(8)),
            "rd_addr": Out(addr_bits), "rd_data": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        hdr = Signal(FrameHeader)
        base = Signal(self.addr_bits)
        from_queue = Signal()
        reason = Signal(8)
        idx = Signal(range(_MAX_COUNT + 1))      # logical byte of the body (header, payload, CRC)
        crc = Signal(32, init=link.CRC_INIT)
        settle = Signal(range(3))            # cycles until the registered byte is this idx's
        esc_sent = Signal()
        payload_end = link.HEADER_BYTES + 4 * hdr.length
        word = Mux(from_queue, self.rd_data, reason)
        byte = Signal(8)
        with m.If(idx < link.HEADER_BYTES):
            m.d.comb += byte.eq(hdr.as_value().word_select(idx[:2], 8))
        with m.Elif(idx < payload_end):
            m.d.comb += byte.eq(word.word_select(idx[:2], 8))
        with m.Else():
            m.d.comb += byte.eq((crc ^ link.CRC_XOROUT).word_select(idx[:2], 8))
        needs_esc = (byte == link.FLAG) | (byte == link.ESC)
        m.d.comb += self.rd_addr.eq(base + ((idx - link.HEADER_BYTES) >> 2))

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.reply.ready.eq(1), self.out.ready.eq(~self.reply.valid)]
                with m.If(self.reply.valid):
                    r = self.reply.payload
                    m.d.sync += [hdr.type.eq(r.type), hdr.seq.eq(r.seq),
                                 hdr.length.eq(r.type == FrameType.NAK),
                                 reason.eq(r.reason), from_queue.eq(0)]
                    m.next = "OPEN"
                with m.Elif(self.out.valid):
                    f = self.out.payload
                    m.d.sync += [hdr.type.eq(FrameType.OUT), hdr.seq.eq(f.seq),
                                 hdr.length.eq(f.length), base.eq(f.base), from_queue.eq(1)]
                    m.next = "OPEN"
            with m.State("OPEN"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(link.FLAG)]
                with m.If(self.o.ready):
                    m.d.sync += [idx.eq(0), crc.eq(link.CRC_INIT), settle.eq(2),
                                 esc_sent.eq(0)]
                    m.next = "BODY"
            with m.State("BODY"):
                # idx's byte: its queue word read in the first settle cycle, the byte
                # registered in the second
                byte_q, esc_q = Signal(8), Signal()
                m.d.sync += [byte_q.eq(byte), esc_q.eq(needs_esc)]
                with m.If(settle != 0):
                    m.d.sync += settle.eq(settle - 1)
                m.d.comb += [self.o.valid.eq(settle == 0),
                             self.o.payload.eq(Mux(esc_sent, byte_q ^ link.ESC_XOR,
                                                   Mux(esc_q, link.ESC, byte_q)))]
                with m.If(self.o.valid & self.o.ready):
                    with m.If(esc_q & ~esc_sent):
                        m.d.sync += esc_sent.eq(1)
                    with m.Else():
                        m.d.sync += [esc_sent.eq(0), idx.eq(idx + 1), settle.eq(2)]
                        with m.If(idx < payload_end):
                            m.d.sync += crc.eq(crc_byte(crc, byte_q))
                        with m.If(idx == payload_end + link.CRC_BYTES - 1):
                            m.next = "CLOSE"
            with m.State("CLOSE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(link.FLAG)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m


def _refuse(owner, message):
    owner._MustUse__silence = True      # not constructed: not "created but never used"
    raise ValueError(message)


def _pow2(owner, name, value, least):
    if not isinstance(value, int) or value < least or value & (value - 1):
        _refuse(owner, f"{name} must be a power of two >= {least}, not {value!r}")
    return value


class Bridge(wiring.Component):
    """The framed link (docs/fpga.md, "Serial link") between raw bytes (``rx``, ``tx``: a
    UART's) and the tile's host streams (``host_in``, ``host_out``).

    Input queue: a ``in_depth``-beat ring (a block RAM). A DATA frame's beats are written as
    they arrive and become visible to ``host_in`` only when the frame ends good and in
    sequence; a frame that does not fit the free space when its header arrives is refused
    with NAK FULL. ``host_in`` offers one beat a cycle while the ring holds any, from a
    register (the block RAM's read is not on the tile's side of the path).

    Output queue: a ``out_depth``-beat ring. ``host_out`` is ready while it is not full; a
    full queue stalls a READ's answer, and drops a GENERATE's emissions (which the tile then
    reports as OVERRUN in the run's status). One OUT frame (up to MAX_BEATS beats) is in
    flight at a time; its beats leave the queue at the host's OUT_ACK.

    A good RESET frame empties both queues, sets both sequence numbers to 0, restarts the
    sender (a frame in progress is cut off) and pulses ``tile_reset`` for one cycle (the cycle
    after; ``host_in`` is not valid then), then RESET_DONE is sent.

    ``timeout``: cycles without a byte after which a frame in progress is closed (NAK
    TIMEOUT). Replies are not queued: a reply still waiting when the next frame ends is
    replaced by the newer one (the host retries on its timeout).
    """

    def __init__(self, *, in_depth=2 * link.MAX_BEATS, out_depth=2 * link.MAX_BEATS,
                 timeout=1 << 16):
        self.in_depth = _pow2(self, "in_depth", in_depth, link.MAX_BEATS)
        self.out_depth = _pow2(self, "out_depth", out_depth, 2)
        if not isinstance(timeout, int) or timeout < 1:
            _refuse(self, f"timeout must be a positive number of cycles, not {timeout!r}")
        self.timeout = timeout
        super().__init__({
            "rx": In(stream.Signature(8)), "rx_error": In(1),
            "tx": Out(stream.Signature(8)),
            "host_in": Out(stream.Signature(32)), "host_out": In(stream.Signature(32)),
            "tile_reset": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rcv = Receiver(self.timeout)
        soft = Signal()                      # a good RESET frame: the bridge's state resets
        out_bits = (self.out_depth - 1).bit_length()
        sender = Sender(max(out_bits, 1))
        m.submodules.sender = ResetInserter(soft)(sender)
        wiring.connect(m, wiring.flipped(self.rx), rcv.i)
        wiring.connect(m, sender.o, wiring.flipped(self.tx))
        m.d.comb += rcv.rx_error.eq(self.rx_error)
        hdr = rcv.header
        expect = Signal(8)                   # the DATA seq expected next

        # input queue: written at in_wr, committed to in_commit at a good frame's end,
        # read at in_rd into host_in
        in_bits = (self.in_depth - 1).bit_length()
        in_wr, in_commit, in_rd = (Signal(in_bits + 1, name=n)
                                   for n in ("in_wr", "in_commit", "in_rd"))
        m.submodules.in_mem = in_mem = memory.Memory(shape=32, depth=self.in_depth, init=[])
        in_w, in_r = in_mem.write_port(), in_mem.read_port()
        take, full = Signal(), Signal()
        used = Signal(in_bits + 1)
        m.d.comb += used.eq(in_commit - in_rd)
        fits = hdr.length <= self.in_depth - used
        in_seq = (hdr.type == FrameType.DATA) & (hdr.seq == expect) \
            & (hdr.length <= link.MAX_BEATS)
        with m.If(rcv.header_done):
            m.d.sync += [take.eq(in_seq & fits), full.eq(in_seq & ~fits)]
        m.d.comb += [in_w.addr.eq(in_wr[:in_bits]), in_w.data.eq(rcv.word.payload),
                     in_w.en.eq(rcv.word.valid & take)]
        with m.If(rcv.word.valid & take):
            m.d.sync += in_wr.eq(in_wr + 1)
        # the read port holds the word at in_rd (its address runs one beat ahead on a load);
        # host_in is a register loaded from it (q_valid, q_data), so the block RAM's read
        # does not reach the tile's host interface in the cycle it is taken
        q_valid, q_data = Signal(), Signal(32)
        load = (in_rd != in_commit) & (~q_valid | self.host_in.ready)
        rd_next = Signal.like(in_rd)
        m.d.comb += [rd_next.eq(in_rd + load), in_r.addr.eq(rd_next[:in_bits]),
                     self.host_in.payload.eq(q_data),
                     self.host_in.valid.eq(q_valid & ~self.tile_reset)]
        m.d.sync += in_rd.eq(rd_next)
        with m.If(load):
            m.d.sync += [q_valid.eq(1), q_data.eq(in_r.data)]
        with m.Elif(self.host_in.ready):
            m.d.sync += q_valid.eq(0)

        # output queue: host_out written at out_wr; the frame in flight starts at out_rd
        out_wr, out_rd = Signal(out_bits + 1), Signal(out_bits + 1)
        out_seq = Signal(8)
        in_flight, resend = Signal(), Signal()
        n_flight = Signal(range(link.MAX_BEATS + 1))
        m.submodules.out_mem = out_mem = memory.Memory(shape=32, depth=self.out_depth,
                                                       init=[])
        out_w, out_r = out_mem.write_port(), out_mem.read_port()
        avail = Signal(out_bits + 1)
        m.d.comb += [avail.eq(out_wr - out_rd),
                     self.host_out.ready.eq((avail != self.out_depth) & ~self.tile_reset),
                     out_w.addr.eq(out_wr[:out_bits]), out_w.data.eq(self.host_out.payload),
                     out_w.en.eq(self.host_out.valid & self.host_out.ready),
                     out_r.addr.eq(sender.rd_addr), sender.rd_data.eq(out_r.data)]
        with m.If(self.host_out.valid & self.host_out.ready):
            m.d.sync += out_wr.eq(out_wr + 1)
        req = sender.out.payload
        m.d.comb += [sender.out.valid.eq(Mux(in_flight, resend, avail != 0)),
                     req.seq.eq(out_seq), req.base.eq(out_rd[:out_bits]),
                     req.length.eq(Mux(in_flight, n_flight,
                                       Mux(avail > link.MAX_BEATS, link.MAX_BEATS, avail)))]
        with m.If(sender.out.valid & sender.out.ready):
            m.d.sync += [in_flight.eq(1), n_flight.eq(req.length), resend.eq(0)]

        # replies, and what a frame's end does
        reply = Signal(Reply)
        reply_pending = Signal()
        m.d.comb += [sender.reply.valid.eq(reply_pending), sender.reply.payload.eq(reply)]
        with m.If(sender.reply.ready):
            m.d.sync += reply_pending.eq(0)

        def answer(ftype, seq, reason=0):
            m.d.sync += [reply_pending.eq(1), reply.type.eq(ftype), reply.seq.eq(seq),
                         reply.reason.eq(reason)]

        with m.If(rcv.end):
            m.d.sync += in_wr.eq(in_commit)        # an uncommitted frame's beats are dropped
            with m.If(rcv.reason != 0):
                answer(FrameType.NAK, expect, rcv.reason)
            with m.Elif(hdr.type == FrameType.DATA):
                with m.If(hdr.seq == expect):
                    with m.If(full):
                        answer(FrameType.NAK, expect, Nak.FULL)
                    with m.Else():
                        m.d.sync += [in_commit.eq(in_wr), in_wr.eq(in_wr),
                                     expect.eq(expect + 1)]
                        answer(FrameType.ACK, hdr.seq)
                with m.Elif(hdr.seq == (expect - 1)[:8]):
                    answer(FrameType.ACK, hdr.seq)     # a retransmission: not delivered again
                with m.Else():
                    answer(FrameType.NAK, expect, Nak.SEQ)
            with m.Elif(hdr.type == FrameType.OUT_ACK):
                with m.If(in_flight & (hdr.seq == (out_seq + 1)[:8])):
                    m.d.sync += [out_rd.eq(out_rd + n_flight), out_seq.eq(out_seq + 1),
                                 in_flight.eq(0), resend.eq(0)]
                with m.Elif(in_flight & (hdr.seq == out_seq)):
                    m.d.sync += resend.eq(1)
            with m.Elif(hdr.type == FrameType.RESET):
                m.d.comb += soft.eq(1)
                answer(FrameType.RESET_DONE, 0)
            with m.Else():
                answer(FrameType.NAK, expect, Nak.TYPE)

        m.d.sync += self.tile_reset.eq(soft)
        with m.If(soft):
            m.d.sync += [r.eq(0) for r in (in_wr, in_commit, in_rd, q_valid, expect, take,
                                           full, out_wr, out_rd, out_seq, in_flight, resend)]
        return m


class UartBridge(wiring.Component):
    """:class:`Bridge` behind a UART at ``divisor`` cycles per bit: pins ``rx``, ``tx``.
    ``timeout_bytes``: the receive timeout, in byte times (10 bits each)."""

    def __init__(self, divisor, *, timeout_bytes=1024, **kw):
        self.divisor = check_divisor(divisor, self)
        if not isinstance(timeout_bytes, int) or timeout_bytes < 1:
            _refuse(self, f"timeout_bytes must be a positive integer, not {timeout_bytes!r}")
        self.bridge_args = dict(kw, timeout=10 * divisor * timeout_bytes)
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "host_in": Out(stream.Signature(32)), "host_out": In(stream.Signature(32)),
            "tile_reset": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UartRx(self.divisor)
        m.submodules.uart_tx = utx = UartTx(self.divisor)
        m.submodules.bridge = br = Bridge(**self.bridge_args)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), br.rx_error.eq(urx.framing_error),
                     self.tile_reset.eq(br.tile_reset)]
        wiring.connect(m, urx.o, br.rx)
        wiring.connect(m, br.tx, utx.i)
        wiring.connect(m, br.host_in, wiring.flipped(self.host_in))
        wiring.connect(m, wiring.flipped(self.host_out), br.host_out)
        return m


def generate_verilog(divisor, path=None, **kw):
    """Verilog of a :class:`UartBridge` (module ``tinylpu_bridge``)."""
    text = verilog.convert(UartBridge(divisor, **kw), name="tinylpu_bridge", emit_src=False)
    if path is not None:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text
