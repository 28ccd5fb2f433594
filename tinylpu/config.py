"""One configuration object for RTL elaboration, the compiler and the golden model."""

__all__ = ["Config", "ConfigError", "DEFAULT", "ACT_BITS", "X_BITS", "ELEM_ADDR_BITS"]

import dataclasses
import pathlib

import numpy as np


ACT_BITS = 32          # bits per activation-bank lane
X_BITS = 16            # MAC activation operand: the low bits of a lane, signed
ELEM_ADDR_BITS = 18    # vector-unit element addresses within one activation bank


class ConfigError(ValueError):
    """An invalid tile configuration; the message names the field and the limit."""


def _is_pow2(n):
    return n > 0 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of one TinyLPU tile.

    Parameters
    ----------
    lanes : int
        Vector width in elements. One SRAM word holds ``lanes`` elements; the MAC array
        consumes one word of activations per cycle.
    rows : int
        MAC rows. Each row owns one weight bank and computes one output per row block;
        the array does ``rows * lanes`` multiply-accumulates per cycle.
    wdepth : int
        Words per weight bank (power of two).
    wtail : int
        0, or words (a power of two, 2 to ``wdepth``) of a second memory in each weight
        bank, at word addresses ``wdepth .. wdepth + wtail - 1``: the words a program writes
        (V^T for PV passes, q) beside ``wdepth`` words of weights, so a bank of, say, 4096 +
        512 words takes block RAMs for that and not for 8192 (docs/fpga.md, "Fit"). Weight
        addresses then have ``log2(wdepth) + 1`` bits and wrap as :meth:`wphys` says.
    act_banks : int
        Activation banks. Each has one read and one write port.
    adepth : int
        Words per activation bank (power of two).
    pdepth : int
        Instruction memory depth in instructions (power of two).
    data_bits : int
        Width of the weights (signed), and the saturation width of GEMV outputs.
    acc_bits : int
        Width of the MAC accumulators (signed, wraps on overflow).
    tdepth : int
        Entries of the token memory (prompt and generated ids; power of two): the most
        positions one GENERATE can run.
    mdepth : int
        Words of the row-multiplier memory (power of two). A word holds ``rows`` int16
        requantization multipliers, one per row of a MATVEC row block.
    rdepth : int
        Words of the RoPE table memory (power of two). A word holds ``rows // 2`` int16
        (cos, sin) pairs: the rotations of one row block's pairs of results.
    wbytes : int
        1: the weight banks take a write a byte (MATVEC ``y_wcol``: a transposed vector's
        column, one byte a word); 0: whole words only (``y_wcol`` is an illegal
        instruction), which packs a bank of 2048 x k words into fewer block RAMs (the
        2048 x 9 mode: 30 instead of 32 for 4096 x 128; other depths cost the same).
    pv : int
        0 (the default): the tile has no PV datapath, PV is an illegal instruction and
        attention's p.V runs as PV passes (MATVEC ``x_exp``; ``compile_decoder(...,
        passes=True)``, the default program of ``tinylpu generate``); 1: the tile has PV's
        datapath (the heads' weights ``e``, a 40-bit accumulator a MAC, the weight unit and
        the drain), for programs that run PV (``--attention pv``).

    Activation banks hold ``ACT_BITS`` (32) bits per lane: int16 activations, int32
    accumulators and scores, and the vector unit's packed scales all fit a lane. The MAC
    array multiplies a weight by the low ``X_BITS`` (16) bits of an activation lane.
    """

    lanes: int = 16
    rows: int = 4
    wdepth: int = 1024
    wtail: int = 0
    act_banks: int = 2
    adepth: int = 256
    pdepth: int = 64
    data_bits: int = 8
    acc_bits: int = 32
    tdepth: int = 512
    mdepth: int = 256
    rdepth: int = 256
    wbytes: int = 1
    pv: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{field.name} must be an integer, not {value!r}")
        self._check_range("lanes", 2, 64)     # attention splits a word's lanes in two halves
        self._check_range("rows", 1, 64)
        for name in ("lanes", "rows"):
            if not _is_pow2(getattr(self, name)):
                raise ConfigError(f"{name} must be a power of two, not {getattr(self, name)}: "
                                  f"the vector unit splits element addresses into word and lane "
                                  f"with bit slices")
        if self.lanes % self.rows:
            raise ConfigError(
                f"lanes ({self.lanes}) must be a multiple of rows ({self.rows}): a row block's "
                f"results are written into one activation word")
        if self.act_banks not in (1, 2, 4):
            raise ConfigError(f"act_banks must be 1, 2 or 4, not {self.act_banks}")
        self._check_range("wbytes", 0, 1)
        self._check_range("pv", 0, 1)
        self._check_range("data_bits", 2, 8)
        self._check_range("acc_bits", 2 * self.data_bits, 40)
        for name, hi in (("wdepth", 65536), ("adepth", 65536), ("pdepth", 4096),
                         ("tdepth", 65536), ("mdepth", 65536), ("rdepth", 65536)):
            self._check_range(name, 2, hi)
            if not _is_pow2(getattr(self, name)):
                raise ConfigError(f"{name} must be a power of two, not {getattr(self, name)}")
        if self.wtail and (not _is_pow2(self.wtail) or not 2 <= self.wtail <= self.wdepth
                           or self.wdepth > 32768):
            raise ConfigError(f"wtail must be 0 or a power of two in [2, wdepth] (wdepth "
                              f"{self.wdepth}, at most 32768 with a tail: weight addresses "
                              f"are 16 bits), not {self.wtail}")
        if self.adepth * self.lanes > 1 << ELEM_ADDR_BITS:
            raise ConfigError(
                f"adepth * lanes ({self.adepth} * {self.lanes}) must be at most "
                f"2**{ELEM_ADDR_BITS}: the vector unit's element addresses are "
                f"{ELEM_ADDR_BITS} bits")

    def _check_range(self, name, lo, hi):
        value = getattr(self, name)
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be in [{lo}, {hi}], not {value}")

    # Derived quantities -------------------------------------------------------------------

    @property
    def macs(self):
        """MAC units in the array."""
        return self.rows * self.lanes

    @property
    def word_bits(self):
        """Bits in one weight-bank word (``lanes`` weights)."""
        return self.lanes * self.data_bits

    @property
    def act_word_bits(self):
        """Bits in one activation-bank word (``lanes`` 32-bit lanes)."""
        return self.lanes * ACT_BITS

    @property
    def beats_per_word(self):
        """32-bit host-stream beats that carry one SRAM word."""
        return -(-self.word_bits // 32)

    @property
    def wwords(self):
        """Words of a weight bank's address space: ``wdepth`` and the tail's ``wtail``."""
        return self.wdepth + self.wtail

    @property
    def waddr_bits(self):
        """Bits of a weight word address: ``log2(wdepth)``, and one more with a tail."""
        return max((self.wdepth - 1).bit_length(), 1) + bool(self.wtail)

    def wphys(self, word):
        """The word of a weight bank that address ``word`` (any integer, or an integer
        array) reaches, in ``0 .. wwords - 1``: the address modulo ``2**waddr_bits``; past
        ``wdepth`` (the tail) modulo ``wtail`` too, so addresses ``wdepth + wtail ..
        2 * wdepth - 1`` reach the tail again, as the RTL's bank (``rtl.sram.SplitBank``)
        decodes them."""
        word = np.asarray(word) % (1 << self.waddr_bits)
        if self.wtail:
            word = np.where(word < self.wdepth, word, self.wdepth + word % self.wtail)
        return int(word) if word.ndim == 0 else word

    @property
    def weight_bytes(self):
        return self.rows * self.wwords * self.word_bits // 8

    @property
    def act_bytes(self):
        return self.act_banks * self.adepth * self.act_word_bits // 8

    @property
    def attention(self):
        """QK and PV run on this tile (else they are illegal): PV's drain needs the
        reciprocal of head ``(j * rows) // (lanes / 2)`` by block j, one head a cycle."""
        return self.lanes >= 2 * self.rows

    @property
    def ident(self):
        """Short name of this configuration; names its build directory."""
        name = (f"l{self.lanes}r{self.rows}-w{self.wdepth}"
                f"{f'+{self.wtail}' if self.wtail else ''}-a{self.act_banks}x{self.adepth}"
                f"-p{self.pdepth}")
        if (self.data_bits, self.acc_bits) != (8, 32):
            name += f"-d{self.data_bits}c{self.acc_bits}"
        if self.tdepth != 512:
            name += f"-t{self.tdepth}"
        if self.mdepth != 256:
            name += f"-m{self.mdepth}"
        if self.rdepth != 256:
            name += f"-r{self.rdepth}"
        if not self.wbytes:
            name += "-wb0"
        if self.pv:
            name += "-pv1"
        return name

    def build_dir(self, root="build"):
        return pathlib.Path(root) / self.ident

    @classmethod
    def parse(cls, text):
        """Build a config from ``"lanes=16,rows=4"`` style text (for CLIs and Makefiles)."""
        kwargs = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ConfigError(
                    f"bad config item {item!r}: expected name=value with name one of "
                    f"{', '.join(sorted(names))}")
            if key in kwargs:
                raise ConfigError(f"config item {key} is given twice ({text!r})")
            try:
                kwargs[key] = int(value, 0)
            except ValueError:
                raise ConfigError(f"config item {key} must be an integer, not {value.strip()!r}")
        return cls(**kwargs)


DEFAULT = Config()
