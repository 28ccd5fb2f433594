"""The compiler: places tensors in SRAM, emits programs (scheduled by
:class:`tinylpu.compiler.schedule.Scheduler`) and predicts cycles.

The cycle prediction is static: each instruction occupies the issue slot for a known number
of cycles (:func:`tinylpu.isa.duration`) and every MATVEC token writes its result a fixed
``LAT_WRITE`` cycles after its last read. :func:`analyze` derives from that alone, without
executing any data, the cycle count and every SRAM port use, and rejects schedule conflicts:
a read of a word whose write is still in flight, or a port used twice in one cycle.
"""

__all__ = ["CompileError", "ScheduleError", "Schedule", "analyze", "Placement", "Gemv",
           "compile_gemv", "compile_chain", "weight_blocks"]

import dataclasses

import numpy as np

from tinylpu import host, isa
from tinylpu.numerics import gemv_reference, quantize_multiplier
from tinylpu.compiler.schedule import Scheduler


class CompileError(ValueError):
    """Input the compiler cannot place or encode; the message names the limit."""


class ScheduleError(CompileError):
    """Two users of one SRAM port in one cycle, or a read racing a write in flight."""


@dataclasses.dataclass
class Schedule:
    cycles: int                      # start cycle .. first idle cycle
    issued: int                      # instructions issued, HALT included
    reads: int                       # activation words read
    writes: int                      # activation words written
    macs: int                        # multiply-accumulates the MAC array performs


def analyze(program, cfg, start_pc=0):
    """Statically schedule ``program`` (instruction words): cycle count and conflict check.

    Raises :class:`ScheduleError` naming the cycle, bank and word of the first conflict.
    """
    R, L = cfg.rows, cfg.lanes
    t, issued, macs = 1 + isa.ISSUE_LAT, 0, 0      # the first MATVEC's first read
    reads = {}                      # cycle -> (bank, word) of the activation read port
    writes = {}                     # cycle -> (bank, word, token's last read cycle)
    try:
        for pc, instr in isa.execution_order(list(program), start_pc):
            issued += 1
            if instr["op"] == isa.Opcode.HALT:
                break
            if instr["op"] == isa.Opcode.MATVEC:
                a = instr["args"]["matvec"]
                nb, nc = isa.matvec_dims(a)
                xb, yb = a["x_bank"] % cfg.act_banks, a["y_bank"] % cfg.act_banks
                for j in range(nb * nc):
                    reads[t + j] = (xb, (a["x_addr"] + j % nc) % cfg.adepth)
                for b in range(nb):
                    last_read = t + b * nc + nc - 1
                    cycle = last_read + isa.LAT_WRITE
                    if cycle in writes:
                        raise ScheduleError(f"cycle {cycle}: two writes to the activation "
                                            f"write port (pc {pc})")
                    writes[cycle] = (yb, (a["y_addr"] + b * R // L) % cfg.adepth, last_read)
                macs += nb * nc * R * L
            t += isa.duration(instr)
    except isa.IsaError as error:
        raise ScheduleError(str(error)) from None
    for cycle, (bank, word, last_read) in writes.items():
        for c in range(last_read + 1, cycle + 1):
            if reads.get(c) == (bank, word):
                raise ScheduleError(
                    f"cycle {c}: read of bank {bank} word {word} races its write in flight "
                    f"(lands at the end of cycle {cycle}); wait {cycle - c + 1} more cycles")
    last_write = max(writes, default=-1)
    # HALT issues in t - ISSUE_LAT; done the cycle after it, or after the last write lands
    return Schedule(cycles=max(t - isa.ISSUE_LAT + 1, last_write + 1), issued=issued,
                    reads=len(reads),
                    writes=len(writes), macs=macs)


def weight_blocks(W, cfg):
    """``W [out, in]`` in MATVEC layout: ``[rows, n_blocks * n_chunks, lanes]``, zero-padded;
    word ``b*n_chunks + k`` of bank r is ``W[b*R + r, k*L : k*L + L]``."""
    R, L = cfg.rows, cfg.lanes
    out, inp = W.shape
    nb, nc = -(-out // R), -(-inp // L)
    padded = np.zeros((nb * R, nc * L), dtype=np.int64)
    padded[:out, :inp] = W
    return padded.reshape(nb, R, nc, L).transpose(1, 0, 2, 3).reshape(R, nb * nc, L)


@dataclasses.dataclass
class Placement:
    """Where a tensor lives: ``words`` SRAM words from ``addr`` in a bank."""
    bank: int
    addr: int
    words: int


@dataclasses.dataclass
class Gemv:
    """A compiled program with the memory images it needs and its predicted timing."""
    cfg: object
    program: list                    # instruction words
    weights: np.ndarray              # [rows, n, lanes]: weight words from address 0
    acts: list                       # (bank, addr, words[n, lanes]) to load
    x: Placement
    y: Placement
    out: int                         # elements of the final result
    schedule: Schedule
    layers: list                     # (mult, shift) per layer

    def host_stream(self, start_pc=0):
        """Host beats that load everything, run, and read back the result."""
        cfg, beats = self.cfg, []
        beats += host.write_cmd(cfg, host.TARGET_PROG, 0, self.program)
        for r in range(cfg.rows):
            if len(self.weights[r]):
                beats += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, self.weights[r])
        for bank, addr, words in self.acts:
            beats += host.write_cmd(cfg, host.TARGET_ABANK + bank, addr, words)
        beats += host.run_cmd(start_pc)
        beats += host.read_cmd(cfg, host.TARGET_ABANK + self.y.bank, self.y.addr, self.y.words)
        return beats

    def result(self, response):
        """The result vector from the response beats of :meth:`host_stream`."""
        words = host.unpack_words(self.cfg, host.TARGET_ABANK, response[2:])
        return words.reshape(-1)[:self.out]

    def reference(self, Ws, x):
        """Plain NumPy of the same math (see :func:`tinylpu.numerics.gemv_reference`)."""
        for W, (mult, shift) in zip(Ws, self.layers):
            x = gemv_reference(W, x, mult, shift, data_bits=self.cfg.data_bits,
                               acc_bits=self.cfg.acc_bits)
        return x


def _check_int_tensor(name, value, ndim, data_bits):
    arr = np.asarray(value)
    if arr.ndim != ndim or 0 in arr.shape:
        raise CompileError(f"{name} must be a non-empty {ndim}-d array, not shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise CompileError(f"{name} must hold integers, not {arr.dtype}")
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    if arr.min() < lo or arr.max() > hi:
        raise CompileError(f"{name} values must be in [{lo}, {hi}] (data_bits), "
                           f"found [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def _layer_quant(W, cfg, scale, mult, shift):
    if mult is not None or shift is not None:
        if mult is None or shift is None:
            raise CompileError("give both mult and shift, or a scale")
        return int(mult), int(shift)
    if scale is None:   # map the largest possible |acc| of this W onto the output range
        bound = max(int(np.abs(W).sum(axis=1).max()) << (cfg.data_bits - 1), 1)
        scale = ((1 << (cfg.data_bits - 1)) - 1) / bound
    try:
        return quantize_multiplier(scale)
    except ValueError as error:
        raise CompileError(str(error)) from None


def _check_pdepth(cfg, n):
    if n > cfg.pdepth:
        raise CompileError(f"program needs more than {cfg.pdepth} instructions (config pdepth)")


def compile_chain(Ws, x, cfg, *, scales=None, mults=None, shifts=None, repeat=1):
    """Compile ``x_{i+1} = requant_i(W_i x_i)`` for a list of int matrices.

    ``repeat > 1`` wraps the program in a hardware LOOP that runs it ``repeat`` times
    (benchmarks use it for long runs; :func:`analyze` rejects a loop whose iterations race).

    Weights of layer i follow those of layer i-1 in every weight bank; activations alternate
    between the two halves of the activation space (banks 0 and 1, or the two halves of bank
    0 when the config has one bank). The scheduler (:class:`tinylpu.compiler.schedule.Scheduler`)
    inserts the WAITs that data dependencies between layers need; :func:`analyze` checks the
    result and predicts its cycles.
    """
    R, L = cfg.rows, cfg.lanes
    Ws = [_check_int_tensor(f"W[{i}]", W, 2, cfg.data_bits) for i, W in enumerate(Ws)]
    x = _check_int_tensor("x", x, 1, cfg.data_bits)
    n = len(Ws)
    scales = scales if scales is not None else [None] * n
    mults = mults if mults is not None else [None] * n
    shifts = shifts if shifts is not None else [None] * n
    if len(x) != Ws[0].shape[1]:
        raise CompileError(f"x has {len(x)} elements, W[0] has {Ws[0].shape[1]} columns")
    for i in range(1, n):
        if Ws[i].shape[1] != Ws[i - 1].shape[0]:
            raise CompileError(f"W[{i}] has {Ws[i].shape[1]} columns, W[{i - 1}] has "
                               f"{Ws[i - 1].shape[0]} rows")
    if cfg.act_banks > 1:
        slots = [(0, 0), (1, 0)]
        slot_words = cfg.adepth
    else:
        slots = [(0, 0), (0, cfg.adepth // 2)]
        slot_words = cfg.adepth // 2

    sched = Scheduler(cfg)
    bank_words = [[] for _ in range(R)]
    w_base, layers = 0, []
    first_x = x_place = None
    for i, W in enumerate(Ws):
        out, inp = W.shape
        nb, nc = -(-out // R), -(-inp // L)
        if nc > (1 << 12) - 1 or nb > (1 << 16) - 1:
            raise CompileError(f"W[{i}] is {out}x{inp}: at most {((1 << 12) - 1) * L} columns "
                               f"and {((1 << 16) - 1) * R} rows")
        if w_base + nb * nc > cfg.wdepth:
            raise CompileError(f"weights need {w_base + nb * nc} words per weight bank, "
                               f"config has {cfg.wdepth} (wdepth)")
        blocks = weight_blocks(W, cfg)
        for r in range(R):
            bank_words[r].append(blocks[r])
        x_bank, x_addr = slots[i % 2]
        y_bank, y_addr = slots[(i + 1) % 2]
        y_words = -(-nb * R // L)
        for name, words in (("x", nc), ("y", y_words)):
            if words > slot_words:
                raise CompileError(f"layer {i} {name} needs {words} activation words, "
                                   f"a slot has {slot_words} (adepth {cfg.adepth})")
        mult, shift = _layer_quant(W, cfg, scales[i], mults[i], shifts[i])
        layers.append((mult, shift))
        if first_x is None:
            first_x = Placement(x_bank, x_addr, nc)
        try:
            sched.matvec(w_base=w_base, x_bank=x_bank, x_addr=x_addr, y_bank=y_bank,
                         y_addr=y_addr, n_blocks=nb, n_chunks=nc, q_mult=mult, q_shift=shift,
                         y_bits=cfg.data_bits)
        except isa.IsaError as error:
            raise CompileError(f"layer {i}: {error}") from None
        _check_pdepth(cfg, len(sched.instrs))
        x_place = Placement(y_bank, y_addr, y_words)
        w_base += nb * nc
    body = sched.instrs
    if repeat > 1:
        if len(body) > 255:
            raise CompileError(f"a repeated program body has at most 255 instructions, "
                               f"not {len(body)}")
        body = [isa.loop(repeat, len(body))] + body
    instrs = body + [isa.halt()]
    _check_pdepth(cfg, len(instrs))
    program = [isa.encode(instr) for instr in instrs]
    x_words = np.zeros((first_x.words, L), dtype=np.int64)
    x_words.reshape(-1)[:len(x)] = x
    weights = np.stack([np.concatenate(b) for b in bank_words])
    return Gemv(cfg=cfg, program=program, weights=weights,
                acts=[(first_x.bank, first_x.addr, x_words)], x=first_x, y=x_place,
                out=Ws[-1].shape[0], schedule=analyze(program, cfg), layers=layers)


def compile_gemv(W, x, cfg, *, scale=None, mult=None, shift=None, repeat=1):
    """Compile ``y = requant(W @ x)`` for int8 ``W [out, in]`` and ``x [in]``.

    The requantization is ``(M, S)`` = (``mult``, ``shift``) if given, else the int16
    multiplier nearest ``scale`` (:func:`tinylpu.numerics.quantize_multiplier`), else a scale
    that maps the largest possible accumulator of this ``W`` onto the int8 range.
    """
    return compile_chain([W], x, cfg, scales=[scale], mults=[mult], shifts=[shift],
                         repeat=repeat)
