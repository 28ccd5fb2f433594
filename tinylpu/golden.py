"""The golden model: a cycle-accurate instruction-level simulator of the tile, in NumPy.

It is the executable specification. It keeps the tile's memories, executes the host
protocol (:mod:`tinylpu.host`) and the ISA (:mod:`tinylpu.isa`) with the RTL's timing: a
read issued in cycle c sees every write that landed at the end of a cycle before c, and the
result of a row block is written ``LAT_WRITE`` cycles after its last read. Values and
status words leaving the RTL must equal the ones leaving this model, bit for bit.
"""

__all__ = ["GoldenTile", "RunResult", "GoldenError"]

import dataclasses

import numpy as np

from . import host, isa
from .numerics import requantize, wrap


class GoldenError(RuntimeError):
    """A program the golden model cannot finish (no HALT)."""


@dataclasses.dataclass
class RunResult:
    cycles: int            # start cycle .. first idle cycle, as the RTL's cycle counter
    status: int            # host.STATUS_* bits
    hazards: list          # (cycle, bank, word) of every read of a word with a write in flight
    instructions: int      # instructions issued, HALT included


class GoldenTile:
    """Memories and execution of one tile of configuration ``cfg``."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.wmem = np.zeros((cfg.rows, cfg.wdepth, cfg.lanes), dtype=np.int64)
        self.amem = np.zeros((cfg.act_banks, cfg.adepth, cfg.lanes), dtype=np.int64)
        self.pmem = [0] * cfg.pdepth
        self.bad_command = False

    # Memory access by host target ---------------------------------------------------------

    def _memory(self, target):
        cfg = self.cfg
        if host.TARGET_WBANK <= target < host.TARGET_WBANK + cfg.rows:
            return self.wmem[target - host.TARGET_WBANK]
        if host.TARGET_ABANK <= target < host.TARGET_ABANK + cfg.act_banks:
            return self.amem[target - host.TARGET_ABANK]
        raise host.HostError(f"target {target:#x} does not exist in config {cfg.ident}")

    def write(self, target, address, words):
        if target == host.TARGET_PROG:
            for i, word in enumerate(words):
                self.pmem[(address + i) % self.cfg.pdepth] = int(word)
            return
        mem = self._memory(target)
        words = np.asarray(words, dtype=np.int64).reshape(-1, self.cfg.lanes)
        rows = (address + np.arange(len(words))) % len(mem)
        mem[rows] = words

    def read(self, target, address, count):
        if target == host.TARGET_PROG:
            return [self.pmem[(address + i) % self.cfg.pdepth] for i in range(count)]
        mem = self._memory(target)
        return mem[(address + np.arange(count)) % len(mem)].copy()

    # The host stream ----------------------------------------------------------------------

    def host(self, beats):
        """Execute a stream of host beats; return the response beats (as the RTL would)."""
        cfg, out, i = self.cfg, [], 0
        self.last_run = None
        while i + 1 < len(beats):
            word0, address = beats[i], beats[i + 1]
            cmd, target, count = word0 & 0xff, (word0 >> 8) & 0xff, word0 >> 16
            i += 2
            if cmd == host.CMD_RUN:
                self.last_run = self.run(address)
                self.last_run_at = len(out)      # where its status beat is in the response
                out +=  [self.last_run.status, self.last_run.cycles & 0xffffffff]
                continue
            if cmd not in (host.CMD_WRITE, host.CMD_READ):
                self.bad_command = True
                continue
            try:
                host.target_depth(cfg, target)
                valid = True
            except host.HostError:
                valid, self.bad_command = False, True
            n = host.beats(cfg, target) if valid else host.beats(cfg, 0)
            if cmd == host.CMD_WRITE:
                payload = beats[i:i + count * n]
                i += count * n
                if valid:
                    self.write(target, address, host.unpack_words(cfg, target, payload))
            else:
                if valid:
                    out += host.pack_words(cfg, target, self.read(target, address, count))
                else:
                    out += [0] * (count * n)
        return out

    # Execution ----------------------------------------------------------------------------

    def run(self, start_pc=0, max_instructions=1 << 20):
        cfg = self.cfg
        R, L = cfg.rows, cfg.lanes
        pending = []       # (cycle the write lands at the end of, bank, word, lane, values)
        hazards = []
        t = 1              # cycle 0 fetches the first instruction
        last_write = -1
        issued = 0

        def land_before(cycle):
            while pending and pending[0][0] < cycle:
                _, bank, word, lane, values = pending.pop(0)
                self.amem[bank, word, lane:lane + R] = values

        try:
            for pc, instr in isa.execution_order(self.pmem, start_pc, max_instructions):
                issued += 1
                op = instr["op"]
                if op == isa.Opcode.HALT:
                    land_before(float("inf"))
                    status = host.STATUS_DONE
                    if hazards:
                        status |= host.STATUS_RAW_HAZARD
                    if self.bad_command:
                        status |= host.STATUS_BAD_COMMAND
                        self.bad_command = False
                    return RunResult(max(t + 1, last_write + 1), status, hazards, issued)
                if op == isa.Opcode.MATVEC:
                    a = instr["args"]["matvec"]
                    nb, nc = isa.matvec_dims(a)
                    for b in range(nb):
                        acc = np.zeros(R, dtype=np.int64)
                        for k in range(nc):
                            c = t + b * nc + k
                            land_before(c)
                            bank, word = a["x_bank"] % cfg.act_banks, (a["x_addr"] + k) % cfg.adepth
                            if any(p[1] == bank and p[2] == word for p in pending):
                                hazards.append((c, bank, word))
                            x = self.amem[bank, word]
                            w = self.wmem[:, (a["w_base"] + b * nc + k) % cfg.wdepth]
                            acc = wrap(acc + w @ x, cfg.acc_bits)
                        y = requantize(acc, a["q_mult"], a["q_shift"], cfg.data_bits)
                        last_write = t + b * nc + nc - 1 + isa.LAT_WRITE
                        word = (a["y_addr"] + (b * R) // L) % cfg.adepth
                        pending.append((last_write, a["y_bank"] % cfg.act_banks, word,
                                        (b * R) % L, y))
                t += isa.duration(instr)
        except isa.IsaError as error:
            raise GoldenError(str(error)) from None

