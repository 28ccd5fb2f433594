"""The host stream protocol, defined once (32-bit words in both directions).

A command is a header of two words, then its payload:

    word 0: cmd[7:0] | target[15:8] | count[31:16]
    word 1: address

- WRITE target, address, count: ``count`` SRAM (or program) words follow, each as
  ``beats(target)`` 32-bit beats, least significant beat first. In an SRAM word, element
  ``l`` occupies bits ``[l*data_bits + data_bits-1 : l*data_bits]`` (two's complement).
- READ target, address, count: the tile answers with ``count`` words as above.
- RUN address=start pc (count = 0): the tile runs until HALT has retired and every write has
  landed, then answers two words: ``status`` (STATUS_* bits) and ``cycles``, the cycles from
  the start cycle to the first idle cycle (see docs/isa.md, "Timing").

Commands are accepted only while the tile is idle: the input stream is not ready during a run,
so the host never touches a bank port the schedule owns.
"""

__all__ = ["CMD_WRITE", "CMD_READ", "CMD_RUN", "TARGET_WBANK", "TARGET_ABANK", "TARGET_PROG",
           "STATUS_DONE", "STATUS_PORT_CONFLICT", "STATUS_RAW_HAZARD", "STATUS_BAD_COMMAND",
           "HostError", "header", "write_cmd", "read_cmd", "run_cmd", "pack_words",
           "unpack_words", "beats", "target_depth"]

import numpy as np

from .isa import INSTR_BITS

CMD_WRITE = 1
CMD_READ = 2
CMD_RUN = 3

TARGET_WBANK = 0x00   # + row: weight bank of MAC row r
TARGET_ABANK = 0x40   # + bank: activation bank a
TARGET_PROG = 0x80    # instruction memory

STATUS_DONE = 1 << 0
STATUS_PORT_CONFLICT = 1 << 1   # two users of one SRAM port in one cycle (sticky during a run)
STATUS_RAW_HAZARD = 1 << 2      # a read of a word whose write was still in flight
STATUS_BAD_COMMAND = 1 << 3     # unknown command or target since the last RUN


class HostError(ValueError):
    """A host command that the tile cannot carry out."""


def beats(cfg, target):
    bits = INSTR_BITS if target == TARGET_PROG else cfg.word_bits
    return -(-bits // 32)


def target_depth(cfg, target):
    if target == TARGET_PROG:
        return cfg.pdepth
    if TARGET_WBANK <= target < TARGET_WBANK + cfg.rows:
        return cfg.wdepth
    if TARGET_ABANK <= target < TARGET_ABANK + cfg.act_banks:
        return cfg.adepth
    raise HostError(f"target {target:#x} does not exist in config {cfg.ident}")


def header(cmd, target, address, count):
    return [cmd | (target << 8) | (count << 16), address]


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
        arr = np.asarray(words, dtype=np.int64).reshape(-1, cfg.lanes)
        lo, hi = -(1 << (cfg.data_bits - 1)), (1 << (cfg.data_bits - 1)) - 1
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise HostError(f"SRAM values must be in [{lo}, {hi}]")
        mask = (1 << cfg.data_bits) - 1
        ints = []
        for row in arr.tolist():
            value = 0
            for lane, element in enumerate(row):
                value |= (element & mask) << (lane * cfg.data_bits)
            ints.append(value)
        width = cfg.word_bits
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
    mask, sign = (1 << cfg.data_bits) - 1, 1 << (cfg.data_bits - 1)
    out = np.zeros((len(ints), cfg.lanes), dtype=np.int64)
    for i, value in enumerate(ints):
        for lane in range(cfg.lanes):
            element = (value >> (lane * cfg.data_bits)) & mask
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
