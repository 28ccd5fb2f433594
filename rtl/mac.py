"""The vector MAC array: ``rows`` dot products of ``lanes`` (weight, activation) pairs per cycle."""

__all__ = ["MacArray"]

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tinylpu.config import ACT_BITS, X_BITS


def _tree_sum(values):
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


class MacArray(wiring.Component):
    """``rows`` x ``lanes`` multiply-accumulate array.

    Each cycle with ``valid``, row r forms ``sum_l w[r][l] * x[l]`` and adds it to its
    accumulator (``first``: start from zero instead). ``w[r]`` packs ``lanes`` signed
    ``data_bits`` weights (lane l at bits ``l*data_bits``); ``x`` is an activation-bank word of
    ``lanes`` 32-bit lanes, of which the MAC uses the low ``X_BITS`` (16) bits, signed (lane l
    at bits ``32*l``). Accumulators are ``acc_bits`` wide and wrap. A cycle with
    ``valid & last`` closes a row block.

    Timing: inputs in cycle n; products registered at the end of n; row sums added at the end
    of n+1; for a ``last`` input, ``result`` holds the block's sums with ``result_valid`` in
    cycle n+2. Throughput: one input per cycle, no bubbles between blocks.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        # One port per row (not one R*L-element view): simulators re-evaluate every slice of a
        # vector when any bit of it changes, so a single 2048-bit port costs O((R*L)^2).
        super().__init__({
            "w": In(cfg.word_bits).array(cfg.rows),     # row r: lanes of W, lane l at bits 8l
            "x": In(cfg.act_word_bits),                  # lane l: bits 32l .. 32l+15 used
            "valid": In(1), "first": In(1), "last": In(1),
            "result": Out(signed(cfg.acc_bits)).array(cfg.rows),
            "result_valid": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        db = cfg.data_bits
        w_lane = lambda word, l: word[l * db:(l + 1) * db].as_signed()
        x_lane = lambda word, l: word[l * ACT_BITS:l * ACT_BITS + X_BITS].as_signed()
        valid, first, last = Signal(), Signal(), Signal()
        m.d.sync += [valid.eq(self.valid), first.eq(self.first), last.eq(self.last)]
        m.d.sync += self.result_valid.eq(valid & last)
        for r in range(cfg.rows):
            prod = [Signal(signed(db + X_BITS), name=f"p{r}_{l}", reset_less=True)
                    for l in range(cfg.lanes)]
            m.d.sync += [prod[l].eq(w_lane(self.w[r], l) * x_lane(self.x, l))
                         for l in range(cfg.lanes)]
            acc = Signal(signed(cfg.acc_bits), name=f"acc{r}")
            total = Signal(signed(cfg.acc_bits), name=f"sum{r}")
            m.d.comb += total.eq(_tree_sum(prod) + (acc & ~first.replicate(cfg.acc_bits)))
            with m.If(valid):
                m.d.sync += acc.eq(total)
                with m.If(last):
                    m.d.sync += self.result[r].eq(total)
        return m
