"""One SRAM bank: one synchronous read port and one write port, inferred as block RAM."""

__all__ = ["Bank", "SplitBank", "addr_bits", "YOSYS_NO_RW_CHECK"]

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

# Yosys honours ``no_rw_check`` where it turns a read into a synchronous port (memory_dff:
# the Verilog flow). Amaranth's RTLIL already has synchronous read ports, so a flow that
# reads RTLIL (the board build) marks their collisions undefined itself, with this command
# after reading the design: the read ports of every module with such a memory (a Bank).
YOSYS_NO_RW_CHECK = "setparam -set COLLISION_X_MASK 1'1 a:no_rw_check %m t:$memrd_v2 %i"


def addr_bits(depth):
    """Address bits of a ``depth``-word memory (at least 1)."""
    return max((depth - 1).bit_length(), 1)


class Bank(wiring.Component):
    """A ``depth`` x ``width`` SRAM bank with byte-style write enables.

    Timing: ``rdata`` holds the word at ``raddr`` one cycle after a cycle with ``ren``
    (and keeps it while ``ren`` is low). A write with ``wen`` lands at the end of the
    cycle; a read in the same cycle returns the old word (not transparent).

    With ``hold_on_write``, a cycle with a write reads nothing: ``rdata`` keeps its word,
    as if ``ren`` were low. For memories whose reads and writes never meet (the ones only
    the host writes, while the tile is idle). It makes the memory block RAM with no
    collision logic: a DP16KD cannot give a read the old word in its other port's write
    cycle, so Yosys otherwise emulates that with 2 x ``width`` flip-flops and a
    ``width``-bit multiplexer. The memory carries ``no_rw_check`` (Yosys: a read and a
    write of one address in one cycle need not be emulated), which is safe because the
    read enable already excludes that cycle.

    With ``flagged_collisions``, reads in a write's cycle do happen, but never of a lane
    (a ``granularity`` group) the write changes: the tile flags such a read as a schedule
    violation (``RAW_HAZARD``: a read of a write in flight, docs/isa.md "Schedule rules"), so
    only schedules that already report a broken rule could meet one. The memory carries
    ``no_rw_check`` too, and reads of the other lanes are still exact in block RAM: a DP16KD
    holds the bits of one write-enable group only (a 32-bit lane is one 512 x 36 block or
    two 1024 x 18), so a write of one lane and a read of another never meet in one block.
    In simulation the read returns the old word, as without it. For the activation banks.

    Parameters
    ----------
    width : int
        Bits per word.
    depth : int
        Words.
    granularity : int
        Bits per write-enable lane; ``wen`` has ``width // granularity`` bits.
    hold_on_write : bool
        No read in a write's cycle (above).
    flagged_collisions : bool
        No read of a lane in its write's cycle; the tile flags one (above).
    """

    def __init__(self, *, width, depth, granularity=None, hold_on_write=False,
                 flagged_collisions=False):
        self.width, self.depth = width, depth
        self.hold_on_write = hold_on_write
        self.flagged_collisions = flagged_collisions
        self.granularity = granularity or width
        assert width % self.granularity == 0
        abits = addr_bits(depth)
        super().__init__({
            "raddr": In(abits), "ren": In(1), "rdata": Out(width),
            "waddr": In(abits), "wen": In(width // self.granularity), "wdata": In(width),
        })

    def elaborate(self, platform):
        m = Module()
        no_rw_check = self.hold_on_write or self.flagged_collisions
        attrs = {"no_rw_check": 1} if no_rw_check else None
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.depth,
                                               init=[], attrs=attrs)
        rd = mem.read_port()
        wr = mem.write_port(granularity=self.granularity if self.granularity < self.width
                            else None)
        m.d.comb += [
            rd.addr.eq(self.raddr), self.rdata.eq(rd.data),
            rd.en.eq(self.ren & ~self.wen.any() if self.hold_on_write else self.ren),
            wr.addr.eq(self.waddr), wr.en.eq(self.wen), wr.data.eq(self.wdata),
        ]
        return m


class SplitBank(wiring.Component):
    """A bank of ``depth + tail`` words in two memories: ``depth`` words at addresses
    ``0 .. depth - 1`` and ``tail`` words (a power of two, at most ``depth``) past them, so
    a depth that is not a power of two takes the block RAMs of its two parts
    (``Config.wtail``, docs/fpga.md "Fit").

    The address has ``log2(depth) + 1`` bits; its top bit picks the tail, whose word is the
    address's low ``log2(tail)`` bits: addresses ``depth + tail .. 2 * depth - 1`` reach the
    tail again (``Config.wphys`` is the rule). Ports, timing and the other parameters as
    :class:`Bank`'s; ``rdata`` is the word of the memory the last read named (a register of
    one bit, set with ``ren``, picks it)."""

    def __init__(self, *, width, depth, tail, granularity=None, flagged_collisions=False):
        assert tail and tail & (tail - 1) == 0 and tail <= depth
        self.width, self.depth, self.tail = width, depth, tail
        self.main = Bank(width=width, depth=depth, granularity=granularity,
                         flagged_collisions=flagged_collisions)
        self.rest = Bank(width=width, depth=tail, granularity=granularity,
                         flagged_collisions=flagged_collisions)
        abits = addr_bits(depth) + 1
        super().__init__({
            "raddr": In(abits), "ren": In(1), "rdata": Out(width),
            "waddr": In(abits), "wen": In(len(self.main.wen)), "wdata": In(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.main, m.submodules.tail = self.main, self.rest
        top = addr_bits(self.depth)
        r_tail, w_tail = self.raddr[top], self.waddr[top]
        tail_q = Signal()                      # the last read's memory
        with m.If(self.ren):
            m.d.sync += tail_q.eq(r_tail)
        for bank, here_r, here_w in ((self.main, ~r_tail, ~w_tail), (self.rest, r_tail, w_tail)):
            m.d.comb += [
                bank.raddr.eq(self.raddr), bank.ren.eq(self.ren & here_r),
                bank.waddr.eq(self.waddr), bank.wdata.eq(self.wdata),
                bank.wen.eq(self.wen & here_w.replicate(len(self.wen))),
            ]
        m.d.comb += self.rdata.eq(Mux(tail_q, self.rest.rdata, self.main.rdata))
        return m
