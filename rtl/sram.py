"""One SRAM bank: one synchronous read port and one write port, inferred as block RAM."""

__all__ = ["Bank", "addr_bits"]

from amaranth.hdl import Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out


def addr_bits(depth):
    """Address bits of a ``depth``-word memory (at least 1)."""
    return max((depth - 1).bit_length(), 1)


class Bank(wiring.Component):
    """A ``depth`` x ``width`` SRAM bank with byte-style write enables.

    Timing: ``rdata`` holds the word at ``raddr`` one cycle after a cycle with ``ren``
    (and keeps it while ``ren`` is low). A write with ``wen`` lands at the end of the
    cycle; a read in the same cycle returns the old word (not transparent).

    Parameters
    ----------
    width : int
        Bits per word.
    depth : int
        Words.
    granularity : int
        Bits per write-enable lane; ``wen`` has ``width // granularity`` bits.
    """

    def __init__(self, *, width, depth, granularity=None):
        self.width, self.depth = width, depth
        self.granularity = granularity or width
        assert width % self.granularity == 0
        abits = addr_bits(depth)
        super().__init__({
            "raddr": In(abits), "ren": In(1), "rdata": Out(width),
            "waddr": In(abits), "wen": In(width // self.granularity), "wdata": In(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.depth,
                                               init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=self.granularity if self.granularity < self.width
                            else None)
        m.d.comb += [
            rd.addr.eq(self.raddr), rd.en.eq(self.ren), self.rdata.eq(rd.data),
            wr.addr.eq(self.waddr), wr.en.eq(self.wen), wr.data.eq(self.wdata),
        ]
        return m
