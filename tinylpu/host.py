"""The host stream protocol, defined once (32-bit words in both directions).

A command is a header of two words, then its payload:

    word 0: :class:`Header` (cmd, target, count)
    word 1: address

- WRITE target, address, count: ``count`` SRAM (or program) words follow, each as
  ``beats(target)`` 32-bit beats, least significant beat first. In a weight-bank word,
  element ``l`` occupies bits ``[l*data_bits + data_bits-1 : l*data_bits]``; in an
  activation-bank word, lane ``l`` is beat ``l`` (32 bits); a table or token-memory entry
  is one beat; a row-multiplier or RoPE-table word is ``rows`` int16, entry r at bits
  ``[16r+15:16r]`` (two's complement throughout).
- READ target, address, count: the tile answers with ``count`` words as above.
- RUN address=start pc (count = 0): the tile runs until HALT has retired and every write has
  landed, then answers two words: ``status`` (:class:`Status`; STATUS_* are its bits) and
  ``cycles``, the cycles from the start cycle to the first idle cycle (see docs/isa.md,
  "Timing").

- GENERATE count=n_prompt, address=steps: the token loop. The prompt's ids are in the token
  memory at 0..n_prompt-1; the program at pc 0 runs position 0, 1, ... and its NEXT
  instructions emit ``steps`` generated ids, each as two beats: the id and the cycle (from
  the start cycle, which is cycle 0) of the NEXT that emitted it. Then status and cycles as
  for RUN. A GENERATE with n_prompt 0 or steps 0 does not run; it sets BAD_COMMAND. A
  GENERATE with ``n_prompt + steps - 1`` above ``Ctrl.POSITIONS`` or not below ``tdepth``
  (past the compiled KV cache or the token memory) does not run either: it answers status
  RANGE (with BAD_COMMAND if pending) and cycles 0 at once.

- WRITE/READ TARGET_CTRL: the control registers (:class:`Ctrl`, 32-bit words). A run
  issues no instruction in a cycle >= ``Ctrl.BUDGET`` (counted like ``cycles``): it stops
  there as at a HALT, with TIMEOUT, so no program holds the host out longer than its budget
  plus one instruction and the drain.

- READ TARGET_COUNTERS, address, count: the busy counters of the last RUN or GENERATE
  (:class:`Counter`; one 32-bit word each, wrapping), cleared in every run's start cycle.
  The target is read-only: a WRITE to it sets BAD_COMMAND (its payload is consumed).
  Addresses at or above ``len(Counter)`` read 0. There is no read while a run is going: the
  READ header waits like any command, and the words it answers are the finished run's totals.

Commands are accepted only while the tile is idle: the input stream is not ready during a run,
so the host never touches a bank port the schedule owns.
"""

__all__ = ["CMD_WRITE", "CMD_READ", "CMD_RUN", "CMD_GENERATE", "TARGET_WBANK", "TARGET_ABANK",
           "TARGET_PROG", "TARGET_TABLE", "TARGET_TOKENS", "TARGET_MMEM", "TARGET_RMEM", "STATUS_DONE",
           "CTRL_READ_ONLY", "config_id",
           "STATUS_PORT_CONFLICT", "STATUS_RAW_HAZARD", "STATUS_BAD_COMMAND",
           "STATUS_OVERRUN", "STATUS_UNIT_BUSY", "STATUS_ILLEGAL", "STATUS_TIMEOUT", "STATUS_RANGE", "TARGET_CTRL", "Ctrl",
           "ctrl_reset", "ctrl_cmd", "HostError", "header", "write_cmd",
           "read_cmd", "run_cmd", "Header", "Status", "generate_cmd", "pack_words", "unpack_words",
           "beats", "target_depth", "element_bits", "TARGET_COUNTERS", "Counter", "COUNTERS",
           "COUNTER_HELP", "counters_cmd", "parse_counters", "format_counters"]

import enum
import zlib

import numpy as np
from amaranth.lib import data

from tinylpu.config import ACT_BITS
from tinylpu.isa import INSTR_BITS, TABLE_DEPTH

CMD_WRITE = 1
CMD_READ = 2
CMD_RUN = 3
CMD_GENERATE = 4

TARGET_WBANK = 0x00   # + row: weight bank of MAC row r
TARGET_ABANK = 0x40   # + bank: activation bank a
TARGET_PROG = 0x80    # instruction memory
TARGET_TABLE = 0xA0   # vector-unit table memory (int16 entries)
TARGET_MMEM = 0xB0    # row-multiplier memory: a word is ``rows`` int16 multipliers
TARGET_RMEM = 0xB1    # RoPE table: a word is ``rows // 2`` int16 (cos, sin) pairs
TARGET_TOKENS = 0xC0  # token memory (16-bit ids)
TARGET_COUNTERS = 0xD0   # the busy counters of the last run (read-only, 32-bit words)
TARGET_CTRL = 0xD1       # the control registers (class Ctrl; 32-bit words)


class Ctrl(enum.IntEnum):
    """The control registers, defined once: the word address of each in TARGET_CTRL.
    Addresses at or above ``len(Ctrl)`` read 0 and ignore writes."""
    BUDGET = 0      # cycles: no instruction issues in a run's cycle >= BUDGET; the run
                    # stops there as at a HALT, with TIMEOUT (reset: 2**32 - 1, the cycle
                    # counter's range)
    POSITIONS = 1   # a GENERATE may use positions 0 .. POSITIONS - 1: n_prompt + steps - 1
                    # <= POSITIONS (and < tdepth), else it is refused with RANGE (reset:
                    # tdepth - 1; a compiled decoder writes its KV-cache length)
    CONFIG = 2      # read-only: config_id(cfg), which configuration the tile was built
                    # for; the serial-link host checks it before it loads a board


# control registers that ignore writes
CTRL_READ_ONLY = frozenset({Ctrl.CONFIG})


def config_id(cfg):
    """The tile's configuration as one word: CRC-32 of its name (``Config.ident``)."""
    return zlib.crc32(cfg.ident.encode())


def ctrl_reset(cfg):
    """The control registers' values after reset, in address order."""
    return [(1 << 32) - 1, cfg.tdepth - 1, config_id(cfg)]


class Header(data.Struct):
    """Header word 0 of a command (word 1 is the address)."""
    cmd: 8
    target: 8
    count: 16


class Status(data.Struct):
    """The status word that ends the answer to RUN and GENERATE."""
    done: 1
    port_conflict: 1   # two users of one SRAM port in one cycle (sticky during a run)
    raw_hazard: 1      # a read of a word whose write was still in flight
    bad_command: 1     # unknown command or target since the last RUN
    overrun: 1         # a generated id was emitted while host_out was not ready
    unit_busy: 1       # a unit given a second job while busy (sticky during a run)
    illegal: 1         # the run stopped at an illegal instruction (isa.illegal)
    timeout: 1         # the run stopped at its cycle budget (Ctrl.BUDGET)
    range: 1           # a GENERATE past the token memory or Ctrl.POSITIONS: not started
    reserved: 23       # zero


_STATUS = data.Layout.cast(Status)
assert data.Layout.cast(Header).size == _STATUS.size == 32

STATUS_DONE = 1 << _STATUS["done"].offset
STATUS_PORT_CONFLICT = 1 << _STATUS["port_conflict"].offset
STATUS_RAW_HAZARD = 1 << _STATUS["raw_hazard"].offset
STATUS_BAD_COMMAND = 1 << _STATUS["bad_command"].offset
STATUS_OVERRUN = 1 << _STATUS["overrun"].offset
STATUS_UNIT_BUSY = 1 << _STATUS["unit_busy"].offset
STATUS_ILLEGAL = 1 << _STATUS["illegal"].offset
STATUS_TIMEOUT = 1 << _STATUS["timeout"].offset
STATUS_RANGE = 1 << _STATUS["range"].offset


class Counter(enum.IntEnum):
    """The busy counters, defined once: the word address of each in TARGET_COUNTERS, in
    order. Each counts cycles of the last run (RUN or GENERATE) from its start cycle to its
    first idle cycle; ``rtl/counters.py`` counts them, :class:`tinylpu.golden.GoldenTile`
    computes them and :mod:`tinylpu.compiler.profile` predicts them per decode step."""
    CYCLES = 0    # the run's cycles (= the cycles answer of the run)
    MAC = 1       # MAC array: the issue slots of MATVEC, QK and PV (a read token enters it)
    VU = 2        # vector unit: the issue slots of VOP (one element read a cycle)
    OUT = 3       # output unit: some result between entering the requantizer and its write
    DRAIN = 4     # PV drain: from the cycle after PV's last V read to its last block's entry
    WAIT = 5      # sequencer: the issue slots of WAIT and LOOP
    NEXT = 6      # sequencer: the issue slots of NEXT


COUNTERS = tuple(c.name.lower() for c in Counter)     # the names, in address order
COUNTER_HELP = {
    Counter.CYCLES: "run cycles",
    Counter.MAC: "MAC array (MATVEC, QK, PV issue slots)",
    Counter.VU: "vector unit (VOP issue slots)",
    Counter.OUT: "output unit (requantizer to write)",
    Counter.DRAIN: "PV drain (reciprocals)",
    Counter.WAIT: "sequencer WAIT / LOOP",
    Counter.NEXT: "NEXT",
}


class HostError(ValueError):
    """A host command that the tile cannot carry out."""


def element_bits(cfg, target):
    """Bits per element of an SRAM target (weights, activation lanes, table, token ids)."""
    if TARGET_ABANK <= target < TARGET_ABANK + 4:
        return ACT_BITS
    if target == TARGET_TABLE:
        return 16
    if target in (TARGET_TOKENS, TARGET_MMEM, TARGET_RMEM):
        return 16
    if target in (TARGET_COUNTERS, TARGET_CTRL):
        return 32
    return cfg.data_bits


def _lanes(cfg, target):
    if target in (TARGET_MMEM, TARGET_RMEM):
        return cfg.rows
    return 1 if target in (TARGET_TABLE, TARGET_TOKENS, TARGET_COUNTERS, TARGET_CTRL) \
        else cfg.lanes


def beats(cfg, target):
    if target == TARGET_PROG:
        return -(-INSTR_BITS // 32)
    if target in (TARGET_TABLE, TARGET_TOKENS, TARGET_COUNTERS, TARGET_CTRL):
        return 1
    return -(-(_lanes(cfg, target) * element_bits(cfg, target)) // 32)


def target_depth(cfg, target):
    if target == TARGET_PROG:
        return cfg.pdepth
    if target == TARGET_TABLE:
        return TABLE_DEPTH
    if target == TARGET_TOKENS:
        return cfg.tdepth
    if target == TARGET_MMEM:
        return cfg.mdepth
    if target == TARGET_RMEM:
        return cfg.rdepth
    if target == TARGET_COUNTERS:
        return len(Counter)
    if target == TARGET_CTRL:
        return len(Ctrl)
    if TARGET_WBANK <= target < TARGET_WBANK + cfg.rows:
        return cfg.wwords
    if TARGET_ABANK <= target < TARGET_ABANK + cfg.act_banks:
        return cfg.adepth
    raise HostError(f"target {target:#x} does not exist in config {cfg.ident}")


def header(cmd, target, address, count):
    """The two header words of a command: :class:`Header` and the address."""
    word0 = Header.const({"cmd": cmd, "target": target, "count": count})
    return [word0.as_value().value, address]


def _check_range(cfg, target, address, count):
    depth = target_depth(cfg, target)
    if not 1 <= count <= 0xffff or address < 0 or address + count > depth:
        raise HostError(f"words {address}..{address + count - 1} are outside target "
                        f"{target:#x} (depth {depth})")


def pack_words(cfg, target, words):
    """Beats for SRAM words (an int array [n, lanes]) or program words (a list of ints)."""
    if target == TARGET_PROG:
        ints = [int(w) for w in words]
        width = INSTR_BITS
        if any(not 0 <= w < 1 << INSTR_BITS for w in ints):
            raise HostError(f"program words must be in [0, 2**{INSTR_BITS})")
    else:
        lanes, bits = _lanes(cfg, target), element_bits(cfg, target)
        arr = np.asarray(words, dtype=np.int64).reshape(-1, lanes)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if target in (TARGET_TOKENS, TARGET_COUNTERS, TARGET_CTRL):
            lo, hi = 0, (1 << bits) - 1
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise HostError(f"SRAM values must be in [{lo}, {hi}]")
        mask = (1 << bits) - 1
        ints = []
        for row in arr.tolist():
            value = 0
            for lane, element in enumerate(row):
                value |= (element & mask) << (lane * bits)
            ints.append(value)
        width = 32 * beats(cfg, target)
    out = []
    for value in ints:
        out.extend((value >> (32 * j)) & 0xffffffff for j in range(-(-width // 32)))
    return out


def unpack_words(cfg, target, beat_list):
    """Inverse of :func:`pack_words`."""
    n = beats(cfg, target)
    if len(beat_list) % n:
        raise HostError(f"{len(beat_list)} beats is not a whole number of {n}-beat words")
    ints = [sum(int(b) << (32 * j) for j, b in enumerate(beat_list[i:i + n]))
            for i in range(0, len(beat_list), n)]
    if target == TARGET_PROG:
        return ints
    lanes, bits = _lanes(cfg, target), element_bits(cfg, target)
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    if target in (TARGET_TOKENS, TARGET_COUNTERS, TARGET_CTRL):
        sign = 1 << 64
    out = np.zeros((len(ints), lanes), dtype=np.int64)
    for i, value in enumerate(ints):
        for lane in range(lanes):
            element = (value >> (lane * bits)) & mask
            out[i, lane] = element - (mask + 1) if element & sign else element
    return out


def write_cmd(cfg, target, address, words):
    if target == TARGET_COUNTERS:
        raise HostError(f"target {target:#x} (the busy counters) is read-only")
    payload = pack_words(cfg, target, words)
    count = len(payload) // beats(cfg, target)
    _check_range(cfg, target, address, count)
    return header(CMD_WRITE, target, address, count) + payload


def read_cmd(cfg, target, address, count):
    _check_range(cfg, target, address, count)
    return header(CMD_READ, target, address, count)


def run_cmd(start_pc=0):
    return header(CMD_RUN, 0, start_pc, 0)


def generate_cmd(n_prompt, steps):
    """GENERATE: run the token loop over a prompt of ``n_prompt`` ids (already in the token
    memory) and emit ``steps`` ids."""
    if not 1 <= n_prompt <= 0xffff or not 1 <= steps < 1 << 32:
        raise HostError(f"GENERATE needs 1 <= n_prompt <= 65535 and steps >= 1, not "
                        f"n_prompt={n_prompt}, steps={steps}")
    return header(CMD_GENERATE, 0, steps, n_prompt)


def ctrl_cmd(cfg, budget=None, positions=None):
    """WRITEs of the control registers given (None: left as they are)."""
    out = []
    for reg, value in ((Ctrl.BUDGET, budget), (Ctrl.POSITIONS, positions)):
        if value is not None:
            out += write_cmd(cfg, TARGET_CTRL, int(reg), [[int(value)]])
    return out


def counters_cmd(cfg):
    """READ of every busy counter (answered by ``len(Counter)`` beats)."""
    return read_cmd(cfg, TARGET_COUNTERS, 0, len(Counter))


def parse_counters(beat_list):
    """The answer to :func:`counters_cmd` (or any ``len(Counter)`` beats read from address 0)
    as a dict name -> count (see :data:`COUNTERS`)."""
    if len(beat_list) != len(Counter):
        raise HostError(f"{len(beat_list)} beats are not the {len(Counter)} busy counters")
    return {name: int(b) & 0xffffffff for name, b in zip(COUNTERS, beat_list)}


def format_counters(counters):
    """A table of counter dict ``counters``: each count and its share of the run's cycles."""
    total = counters["cycles"] or 1
    lines = ["| counter | cycles | share |", "|---|---|---|"]
    for c in Counter:
        value = counters[c.name.lower()]
        lines.append(f"| {c.name.lower()}: {COUNTER_HELP[c]} | {value:,} | "
                     f"{100 * value / total:.1f}% |")
    return "\n".join(lines)
