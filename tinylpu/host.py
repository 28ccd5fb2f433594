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
  for RUN. A GENERATE with n_prompt 0 or steps 0 does not run; it sets BAD_COMMAND.

Commands are accepted only while the tile is idle: the input stream is not ready during a run,
so the host never touches a bank port the schedule owns.
"""

__all__ = ["CMD_WRITE", "CMD_READ", "CMD_RUN", "CMD_GENERATE", "TARGET_WBANK", "TARGET_ABANK",
           "TARGET_PROG", "TARGET_TABLE", "TARGET_TOKENS", "TARGET_MMEM", "TARGET_RMEM", "STATUS_DONE",
           "STATUS_PORT_CONFLICT", "STATUS_RAW_HAZARD", "STATUS_BAD_COMMAND",
           "STATUS_OVERRUN", "STATUS_UNIT_BUSY", "HostError", "header", "write_cmd", "read_cmd", "run_cmd",
           "Header", "Status", "generate_cmd", "pack_words", "unpack_words", "beats", "target_depth",
           "element_bits"]

import numpy as np
from amaranth.lib import data

from .config import ACT_BITS
from .isa import INSTR_BITS, TABLE_DEPTH

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
    reserved: 26       # zero


_STATUS = data.Layout.cast(Status)
assert data.Layout.cast(Header).size == _STATUS.size == 32

STATUS_DONE = 1 << _STATUS["done"].offset
STATUS_PORT_CONFLICT = 1 << _STATUS["port_conflict"].offset
STATUS_RAW_HAZARD = 1 << _STATUS["raw_hazard"].offset
STATUS_BAD_COMMAND = 1 << _STATUS["bad_command"].offset
STATUS_OVERRUN = 1 << _STATUS["overrun"].offset
STATUS_UNIT_BUSY = 1 << _STATUS["unit_busy"].offset


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
    return cfg.data_bits


def _lanes(cfg, target):
    if target in (TARGET_MMEM, TARGET_RMEM):
        return cfg.rows
    return 1 if target in (TARGET_TABLE, TARGET_TOKENS) else cfg.lanes


def beats(cfg, target):
    if target == TARGET_PROG:
        return -(-INSTR_BITS // 32)
    if target in (TARGET_TABLE, TARGET_TOKENS):
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
    if TARGET_WBANK <= target < TARGET_WBANK + cfg.rows:
        return cfg.wdepth
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
        if target == TARGET_TOKENS:
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
    if target == TARGET_TOKENS:
        sign = 1 << 64
    out = np.zeros((len(ints), lanes), dtype=np.int64)
    for i, value in enumerate(ints):
        for lane in range(lanes):
            element = (value >> (lane * bits)) & mask
            out[i, lane] = element - (mask + 1) if element & sign else element
    return out


def write_cmd(cfg, target, address, words):
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
