"""The TinyLPU instruction set, defined once.

The compiler/assembler, the golden model, the RTL and the testbenches all import the layouts
below; nothing else encodes or decodes an instruction. docs/isa.md describes the semantics.

An instruction is ``INSTR_BITS`` wide: a 4-bit opcode, then the operands of that opcode
(a union). Unused high bits are zero.
"""

__all__ = [
    "INSTR_BITS", "Opcode", "MatvecArgs", "WaitArgs", "LoopArgs", "Instr", "INSTR_LAYOUT",
    "LAT_READ", "LAT_MUL", "LAT_ACC", "LAT_REQ", "LAT_WRITE", "DRAIN",
    "encode", "decode", "matvec", "wait", "loop", "halt", "IsaError", "execution_order",
    "duration", "matvec_dims",
]

from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

INSTR_BITS = 128

# Pipeline latencies of a MATVEC token, in cycles after the SRAM read is issued in cycle c.
LAT_READ = 1     # weights and activations leave the SRAM read ports in c+1
LAT_MUL = 1      # products registered: c+2
LAT_ACC = 1      # row sums added into the accumulators: result register valid in c+3
LAT_REQ = 1      # acc * multiplier registered: c+4
LAT_WRITE = LAT_READ + LAT_MUL + LAT_ACC + LAT_REQ   # = 4: round/shift/saturate and write in c+4
DRAIN = LAT_WRITE + 1   # the last write lands at the end of c+4; the tile is idle from c+5


class IsaError(ValueError):
    """An operand that does not fit its field."""


class Opcode(enum.Enum, shape=4):
    HALT = 0     # stop issuing; done once every write in flight has landed
    WAIT = 1     # issue nothing for `cycles` cycles
    LOOP = 2     # repeat the next `body` instructions `count` times (zero overhead)
    MATVEC = 3   # y = requant(W x), streamed through the MAC array


class MatvecArgs(data.Struct):
    """Operands of MATVEC.

    Row block b (rows ``b*R .. b*R+R-1``) and chunk k (elements ``k*L .. k*L+L-1``) read
    weight word ``w_base + b*n_chunks + k`` of every weight bank and activation word
    ``x_addr + k`` of bank ``x_bank``. The R requantized results of block b are written to
    lanes ``(b*R) % L ..`` of word ``y_addr + (b*R) // L`` of bank ``y_bank``.
    """
    w_base: 16
    x_bank: 2
    x_addr: 16
    y_bank: 2
    y_addr: 16
    n_blocks: 16     # row blocks, >= 1
    n_chunks: 12     # activation words per row, >= 1
    q_mult: signed(16)
    q_shift: 6


class WaitArgs(data.Struct):
    cycles: 16       # >= 1


class LoopArgs(data.Struct):
    count: 16        # >= 1: the body runs `count` times
    body: 8          # >= 1 instructions following the LOOP


class Instr(data.Struct):
    op: Opcode
    args: data.UnionLayout({"matvec": MatvecArgs, "wait": WaitArgs, "loop": LoopArgs})


INSTR_LAYOUT = data.Layout.cast(Instr)
assert INSTR_LAYOUT.size <= INSTR_BITS


def _check(name, value, bits, lo=0, is_signed=False):
    if is_signed:
        lo_lim, hi_lim = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo_lim, hi_lim = lo, (1 << bits) - 1
    if not isinstance(value, int) or not lo_lim <= value <= hi_lim:
        raise IsaError(f"{name} must be an integer in [{lo_lim}, {hi_lim}], not {value!r}")


def matvec(*, w_base, x_bank, x_addr, y_bank, y_addr, n_blocks, n_chunks, q_mult, q_shift):
    """The operand dict of a MATVEC, range-checked."""
    args = dict(w_base=w_base, x_bank=x_bank, x_addr=x_addr, y_bank=y_bank, y_addr=y_addr,
                n_blocks=n_blocks, n_chunks=n_chunks, q_mult=q_mult, q_shift=q_shift)
    layout = data.Layout.cast(MatvecArgs)
    for name, field in layout:
        shape = Shape.cast(field.shape)
        lo = 1 if name in ("n_blocks", "n_chunks") else 0
        _check(f"MATVEC {name}", args[name], shape.width, lo, shape.signed)
    return {"op": Opcode.MATVEC, "args": {"matvec": args}}


def wait(cycles):
    _check("WAIT cycles", cycles, 16, lo=1)
    return {"op": Opcode.WAIT, "args": {"wait": {"cycles": cycles}}}


def loop(count, body):
    _check("LOOP count", count, 16, lo=1)
    _check("LOOP body", body, 8, lo=1)
    return {"op": Opcode.LOOP, "args": {"loop": {"count": count, "body": body}}}


def halt():
    return {"op": Opcode.HALT, "args": {"wait": {"cycles": 0}}}


_ARGS = {Opcode.MATVEC: ("matvec", MatvecArgs), Opcode.WAIT: ("wait", WaitArgs),
         Opcode.LOOP: ("loop", LoopArgs), Opcode.HALT: ("wait", WaitArgs)}


def encode(instr):
    """Encode an instruction dict (as made by :func:`matvec` etc.) into an integer.

    Raises :class:`IsaError` for an unknown opcode, a missing or unknown operand, or an
    operand that does not fit its field.
    """
    try:
        op = Opcode(instr["op"])
        (name, struct), = instr["args"].items()
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IsaError(f"not an instruction: {instr!r}")
    if name != _ARGS[op][0]:
        raise IsaError(f"{op.name} takes '{_ARGS[op][0]}' operands, not '{name}'")
    layout = data.Layout.cast(_ARGS[op][1])
    given, fields = set(instr["args"][name]), {field for field, _ in layout}
    if given != fields and op != Opcode.HALT:
        raise IsaError(f"{op.name} operands must be {sorted(fields)}, not {sorted(given)}")
    for field, value in instr["args"][name].items():
        if field not in fields:
            raise IsaError(f"{op.name} has no operand {field!r}")
        shape = Shape.cast(layout[field].shape)
        _check(f"{op.name} {field}", value, shape.width, 0, shape.signed)
    return INSTR_LAYOUT.const(instr).as_value().value


def decode(word):
    """Decode an integer into an instruction dict of the same shape :func:`encode` takes."""
    if not 0 <= word < (1 << INSTR_BITS):
        raise IsaError(f"instruction word must fit in {INSTR_BITS} bits, not {word:#x}")
    if word >> INSTR_LAYOUT.size:
        raise IsaError(f"instruction word {word:#x} has bits set above bit "
                       f"{INSTR_LAYOUT.size - 1}")
    view = INSTR_LAYOUT.from_bits(word)
    try:
        op = Opcode(view.op)
    except ValueError:
        raise IsaError(f"instruction word {word:#x} has unknown opcode {word & 0xf}")
    if op == Opcode.MATVEC:
        args = data.Layout.cast(MatvecArgs)
        fields = {name: int(getattr(view.args.matvec, name)) for name, _ in args}
        return {"op": op, "args": {"matvec": fields}}
    if op == Opcode.WAIT:
        return {"op": op, "args": {"wait": {"cycles": int(view.args.wait.cycles)}}}
    if op == Opcode.LOOP:
        return {"op": op, "args": {"loop": {"count": int(view.args.loop.count),
                                            "body": int(view.args.loop.body)}}}
    return halt()


def execution_order(program, start_pc=0, limit=1 << 24):
    """Yield ``(pc, instr)`` in the order the sequencer issues them, HALT included.

    ``program`` is a list of instruction words (ints). Sequencing rules, as the RTL does them:
    the next pc is ``loop_start`` when the finishing instruction sits at ``loop_end`` and
    repeats remain (the repeat counter drops by one), else ``pc + 1`` modulo the memory
    depth. A LOOP at pc sets ``loop_start = pc + 1``, ``loop_end = pc + body`` and
    ``count - 1`` repeats after computing its own next pc. One loop level: a LOOP inside a
    loop body replaces the outer loop.
    """
    depth = len(program)
    pc, loop_start, loop_end, repeats = start_pc % depth, 0, 0, 0
    seen = set()
    for _ in range(limit):
        if not repeats:
            if (pc, loop_start, loop_end) in seen:
                raise IsaError(f"program never reaches HALT: pc {pc} repeats with no loop "
                               f"count left")
            seen.add((pc, loop_start, loop_end))
        instr = decode(program[pc])
        yield pc, instr
        if instr["op"] == Opcode.HALT:
            return
        if pc == loop_end and repeats:
            next_pc, repeats = loop_start, repeats - 1
        else:
            next_pc = (pc + 1) % depth
        if instr["op"] == Opcode.LOOP:
            args = instr["args"]["loop"]
            loop_start, loop_end = (pc + 1) % depth, (pc + max(args["body"], 1)) % depth
            repeats = max(args["count"], 1) - 1
        pc = next_pc
    raise IsaError(f"program issued {limit} instructions without reaching HALT")


def matvec_dims(args):
    """``(n_blocks, n_chunks)`` of MATVEC operands; a zero field counts as 2**width, as the
    hardware's wrapping counters do (the assembler never emits one)."""
    return args["n_blocks"] or 1 << 16, args["n_chunks"] or 1 << 12


def duration(instr):
    """Cycles an instruction occupies the issue slot (HALT: 1)."""
    op = instr["op"]
    if op == Opcode.MATVEC:
        n_blocks, n_chunks = matvec_dims(instr["args"]["matvec"])
        return n_blocks * n_chunks
    if op == Opcode.WAIT:
        return max(instr["args"]["wait"]["cycles"], 1)
    return 1
