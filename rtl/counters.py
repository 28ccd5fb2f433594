"""Busy counters: per-unit cycle counts of a run, read back by the host (TARGET_COUNTERS).

The counters, their order and meaning are :class:`tinylpu.host.Counter`; the golden model
(:class:`tinylpu.golden.GoldenTile`) computes the same values.
"""

__all__ = ["Counters", "EVENTS", "counter_read"]

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tinylpu.host import COUNTERS, Counter

WIDTH = 32
# one event bit per counter, named as the counters (tinylpu.host.COUNTERS)
EVENTS = data.StructLayout({name: 1 for name in COUNTERS})


def counter_read():
    """The host's read port of the counters, as the host interface sees it."""
    return wiring.Signature({"ren": Out(1), "addr": Out(16), "rdata": In(WIDTH)})


class Counters(wiring.Component):
    """``len(Counter)`` counters of ``WIDTH`` bits (wrapping).

    ``clear`` (the start cycle of a run) zeroes them all; in every other cycle each counter
    adds its bit of ``events``. ``values`` are the counts. The host read port ``host``
    (:func:`counter_read`): with ``ren`` in cycle n, ``rdata`` in n+1 (holding until the next
    ``ren``) is counter ``addr``, or 0 for an address at or above ``len(Counter)``.
    """

    def __init__(self):
        super().__init__({
            "clear": In(1),
            "events": In(EVENTS),
            "values": Out(data.ArrayLayout(unsigned(WIDTH), len(Counter))),
            "host": In(counter_read()),
        })

    def elaborate(self, platform):
        m = Module()
        for c in Counter:
            value = self.values[c]
            with m.If(self.clear):
                m.d.sync += value.eq(0)
            with m.Elif(getattr(self.events, c.name.lower())):
                m.d.sync += value.eq(value + 1)
        words = Array(self.values[c] for c in Counter)
        host = self.host
        with m.If(host.ren):
            m.d.sync += host.rdata.eq(Mux(host.addr < len(Counter),
                                          words[host.addr[:(len(Counter) - 1).bit_length()]],
                                          0))
        return m
