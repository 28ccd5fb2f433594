"""The TinyLPU instruction set, defined once.

The compiler/assembler, the golden model, the RTL and the testbenches all import the layouts
below; nothing else encodes or decodes an instruction. docs/isa.md describes the semantics.

An instruction is ``INSTR_BITS`` wide: a 4-bit opcode, then the operands of that opcode
(a union). Unused high bits are zero.

Two units execute instructions, one instruction at a time, in program order: the MAC array
(MATVEC) and the vector unit (VOP). An instruction holds the issue slot for its
:func:`duration`; its pipeline drains while later instructions issue. The compiler keeps
dependent instructions apart with WAIT (see docs/isa.md, "Timing").
"""

__all__ = ["illegal", "illegal_expr", "stored_word", "ILLEGAL_BIT", "IllegalInstruction", 
    "INSTR_BITS", "Opcode", "MatvecArgs", "WaitArgs", "LoopArgs", "Instr", "INSTR_LAYOUT",
    "MXM_STAGES", "LAT_WRITE", "DRAIN", "LAT_RESID_READ", "Epi",
    "encode", "decode", "matvec", "wait", "loop", "halt", "IsaError", "execution_order",
    "duration", "matvec_dims", "VopArgs", "NextArgs", "Space", "Index", "BMode", "GFunc",
    "Reduce", "OutFunc", "vop", "next_", "LAT_V", "V_RESULT", "SCALAR_WRITE", "vop_latency", "vop_dims", "V_STAGES",
    "SCALAR_WIDTH", "ISQRT_LAT", "RECIP_LAT", "NEXT_CYCLES", "TABLE_DEPTH", "EXP_TABLE",
    "SILU_TABLE", "SILU_SIZE", "EXP_SIZE", "QkArgs", "PvArgs", "qk", "pv", "positions", "att_head",
    "lane_local", "att_kv_index", "kv_slot", "score_slot", "halves", "pack_halves", "pack_block",
    "rope_entries", "rope_block", "LAT_QK_MAX", "RECIP_PIPE_LAT", "LAT_SCORE_WORD",
    "score_tr_slot", "score_word_writes", "score_word_lat", "score_box",
    "PV_DRAIN", "LAT_RESULT", "LAT_OUT", "ATT_ACC_BITS", "LAT_ARGMAX", "SS_BITS",
    "NORM_LAT", "LAT_SS_NORM", "LAT_NORM_READ", "ISSUE_LAT",
]

import functools

import numpy as np
from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from tinylpu.config import ELEM_ADDR_BITS
from tinylpu import numerics

INSTR_BITS = 288

# The issue is registered: an instruction issued in cycle t reaches its unit (MATVEC and QK/PV
# address generators, vector unit) in t + ISSUE_LAT, the cycle of its first read; every unit
# time below (reads, writes, landings) counts from that first read. The issue slot, WAIT,
# NEXT and the emission stay in issue time, so the issue cadence (:func:`duration`) is as
# without the register, and the units' reads are still back to back.
ISSUE_LAT = 1

# The MATVEC pipeline: what happens to the token of an SRAM read issued in cycle c. A row
# block's results are written (land) at the end of cycle c_last + LAT_WRITE, c_last being the
# read of its last chunk; every MATVEC has this one latency, whatever its epilogue.
MXM_STAGES = ("c: weight words of every weight bank and activation word x read",
              "c+1: SRAM data into the MAC array; products registered; last chunk: the "
              "block's row-multiplier word is read",
              "c+2: row sums added into the accumulators (first chunk: from 0); last chunk: "
              "the multipliers (norm: times the norm register's mantissa, norm_mult) "
              "registered with the norm register's exponent",
              "c+3: last chunk: the R sums times their multipliers (registered)",
              "c+4: round, shift (norm: + the exponent), saturate to y_bits (registered); "
              "RESID reads the "
              "destination word, ROPE the block's RoPE-table word",
              "c+5: RESID adds the old lane values and saturates; ROPE forms its products; "
              "SILU_GATE reads the SiLU table; ARGMAX finds the block's largest result",
              "c+6: ROPE rounds and saturates; SILU_GATE registers its two table entries in "
              "order and their difference; ARGMAX updates the instruction's running best "
              "(the next-token register after the last block)",
              "c+7: SILU_GATE interpolates",
              "c+8: SILU_GATE multiplies by the gate",
              "c+9: SILU_GATE rounds, shifts and saturates; the write is registered",
              "c+10: the results are written (the banks' write data straight from a register)")
LAT_WRITE = len(MXM_STAGES) - 1   # = 10
DRAIN = LAT_WRITE + 1   # the last write lands at the end of c_last + 10; idle from c_last + 11
LAT_ARGMAX = 6          # ARGMAX: the next-token register is written at the end of c_final + 6
LAT_RESID_READ = 4      # RESID reads the destination word in cycle c_last + 4
LAT_RESULT = 3          # a block result enters the output unit (requantizer) in c_last + 3
LAT_OUT = LAT_WRITE - LAT_RESULT   # ... and is written LAT_OUT cycles later

# Attention on the MAC array (QK, PV). A K or V row is one activation word of 2L packed
# int16 (value i: lane i // 2, low half for even i); row r of the array serves head slots 2r
# and 2r + 1, each on half of its L lanes (head size L / 2), a MAC multiplies a half of its
# own lane (4 or more rows), and a score word holds L / R positions of 2R head slots
# (isa.att_kv_index, isa.kv_slot, isa.score_slot).
LAT_QK_MAX = 4          # a QK read in c updates the running maxima at the end of c + 4
RECIP_PIPE_LAT = 8      # rtl.recip with 2 quotient bits a stage: 1 + ceil(14 / 2)
# QK with s_tr (the score transposer): the scores of a group of L positions (p // L) are
# collected and written as 2R head-slot words, one a cycle; a group's word 0 is written at
# the end of c_g + LAT_SCORE_WORD (c_g: the read of its last position) or, if the words of
# the group before are still being written, right after them (score_word_writes)
LAT_SCORE_WORD = 7
# PV: the weights of position p are formed in the cycle its V row is read (from the score
# word read the cycle before); its sums of weights are final at the end of c_last + 1, its
# accumulators at the end of c_last + 2; head h's sum enters the reciprocal pipeline in
# c_last + 2 + h, its reciprocal is registered RECIP_PIPE_LAT cycles later; drain block j
# (R outputs) enters the output unit in c_last + PV_DRAIN + j and is written LAT_OUT cycles
# later. The next PV's first V read must come after the last block entered.
PV_DRAIN = 4 + RECIP_PIPE_LAT
# A PV pass (MATVEC x_exp): its exp outputs are registered before the MAC array (c+1), where
# they meet the weight words, read PASS_W_LAT after the token's x read (so no choice between
# a registered and a fresh weight word sits at the multipliers); the exp outputs are summed
# (c+2) and accumulated over the block's chunks (c+3), and its row sums wait for the
# reciprocal of the block's sum of weights: a block's result enters the output unit
# LAT_EXP_RESULT after its last read (its x read; the last weight read is the issue slot's
# extra cycle)
PASS_W_LAT = 1
EXP_SUM_LAT = 2         # the block's sum of weights enters the reciprocal in c_last + 2 + 2
LAT_EXP_RESULT = LAT_RESULT + EXP_SUM_LAT + RECIP_PIPE_LAT
# the stages whose writes a read can meet: the MATVEC pipeline's (c+1 .. the write), then a
# PV pass's delay line (c+3 .. c+11)
MXM_PENDING = LAT_WRITE + LAT_EXP_RESULT - LAT_RESULT
ATT_ACC_BITS = 40       # PV accumulators (and QK's head sums) wrap at 40 bits
SUM_BITS = 32           # a head's sum of softmax weights (PV, PV passes) wraps at 32 bits

# RMSNorm's sum of squares, taken as a MATVEC with ``ss`` writes the residual: in
# c + LAT_WRITE (as they land) the squares of a block's written values (their low 16 bits,
# signed) are summed into a SS_BITS-bit accumulator (the instruction's first block: from
# ss_init); the final total enters the norm unit in c_final + LAT_WRITE + 1. The norm unit (rtl.norm: numerics.rsqrt_scale, an
# even normalisation, a table read and an interpolation) is fully pipelined: a total that
# enters in cycle s lands in the norm register at the end of s + NORM_LAT, so an ss MATVEC's
# scale lands at the end of c_final + LAT_SS_NORM. A VOP with out NORM feeds its result R
# (low SS_BITS bits) to the same unit in c+6 (c: its last element's read). Two totals in one
# cycle are a port conflict. A MATVEC with ``norm`` reads the norm register for each block in
# c_last + LAT_NORM_READ (c_last: the block's last chunk); a write landing in that cycle or
# later is not seen.
SS_BITS = numerics.SS_BITS
NORM_LAT = 5
LAT_SS_NORM = LAT_WRITE + 1 + NORM_LAT   # = 16
LAT_NORM_READ = 2


class IsaError(ValueError):
    """An operand that does not fit its field."""


class IllegalInstruction(IsaError):
    """An instruction word :func:`illegal` refuses (the tile's ILLEGAL_INSTRUCTION status)."""


# Vector unit: an element read in cycle c is processed by these stages; a MULSHR result is
# written (lands) at the end of cycle c + LAT_V. A segment's result R is in c + V_RESULT:
# NORM's total enters the norm unit then, RSQRT/RECIP start the scalar unit, whose result
# is registered for the write in its done cycle (as MULSHR's in c+7) and lands in the next.
V_STAGES = ("c: addresses, SRAM reads", "c+1: operand A, B registered",
            "c+2: product / sum / table address", "c+3: table data, interpolation product",
            "c+4: G (the element's value)", "c+5: reduction accumulator",
            "c+6: R * mult", "c+7: round, shift, saturate; the write registered",
            "c+8: the write lands (the banks' write data straight from a register)")
LAT_V = len(V_STAGES) - 1            # = 8
V_RESULT = 6
SCALAR_WRITE = 1                     # the scalar unit's done cycle to its result's landing
SCALAR_WIDTH = 48                     # vector-unit accumulators and the scalar unit's operand
ISQRT_LAT = (SCALAR_WIDTH + 1) // 2 + 1   # rtl.scalar latency of ISQRT at width 48 (= 25)
RECIP_LAT = 15 + 1                        # of RECIP (= 16)
NEXT_CYCLES = 2
TABLE_DEPTH = 1024                    # vector-unit table memory, int16 entries
EXP_TABLE = 0                         # exp table: entries 0..255
EXP_SIZE = 256
SILU_TABLE = 256                      # SiLU table: entries 256..512 (257 points)
SILU_SIZE = 257


class Opcode(enum.Enum, shape=4):
    HALT = 0     # stop issuing; done once every write in flight has landed
    WAIT = 1     # issue nothing for `cycles` cycles
    LOOP = 2     # repeat the next `body` instructions `count` times (zero overhead)
    MATVEC = 3   # y = requant(W x), streamed through the MAC array
    VOP = 4      # vector unit: S segments of N elements, one element per cycle
    NEXT = 5     # token step: emit/record the argmax, pos += 1, loop back while positions remain
    QK = 6       # attention scores: q (latched) against a K row per cycle, all heads at once
    PV = 7       # attention output: softmax weights (from the scores) times a V row per cycle


class Space(enum.Enum, shape=1):
    ACT = 0      # an activation bank, addressed by element
    WROW = 1     # a row of a MATVEC-layout weight matrix (int8), e.g. the embedding


class Index(enum.Enum, shape=2):
    NONE = 0
    POS = 1      # the position register
    TOK = 2      # the current token (token memory at pos)


class BMode(enum.Enum, shape=2):
    MEM = 0      # B is read from memory like A
    IMM = 1      # B is the constant sext(base[15:0])
    SQUARE = 2   # B = A (one read serves both)
    SCALE = 3    # B is read from memory as a packed scale: mantissa [15:0], exponent [21:16]


class GFunc(enum.Enum, shape=3):
    MUL = 0      # G = A * sext16(B)
    ADD = 1      # G = A + B
    EXP = 2      # G = table[EXP_TABLE + clamp(B - A, 0, 255)]
    SILU = 3     # G = interpolated table[SILU_TABLE ..] at A + 2**15 (see docs/isa.md)
    PASS = 4     # G = A


class Reduce(enum.Enum, shape=2):
    SUM = 0      # R = init + sum of G over the segment (N = 1: init + G)
    MAX = 1      # R = max of G
    ARGMAX = 2   # R = the first k with the largest G; also sets the next-token register


class OutFunc(enum.Enum, shape=2):
    MULSHR = 0   # y = sat((R * mult + 2**(s-1)) >> s, sat), s = clamp(shift (+ exponent), 0, 63)
    RSQRT = 1    # y = scale(norm_recip(isqrt(R))): the scalar unit; S must be 1
    RECIP = 2    # y = scale(norm_recip(R))
    NORM = 3     # rsqrt_scale(R mod 2**40) by the norm unit into the norm register (not c)


class AOperand(data.Struct):
    space: Space
    bank: 2
    base: ELEM_ADDR_BITS   # ACT: element address; WROW: word address of the matrix
    index: Index
    istride: 12            # ACT: elements per index step; WROW: words per R rows (n_chunks)
    js: 12                 # per segment
    ks: 12                 # per element of a segment


class BOperand(data.Struct):
    mode: BMode
    bank: 2
    base: ELEM_ADDR_BITS
    index: Index
    istride: 12
    js: 12
    ks: 12


class COperand(data.Struct):
    bank: 2
    base: ELEM_ADDR_BITS
    index: Index
    istride: 12
    js: 12


class VopArgs(data.Struct):
    """Operands of VOP: for segment j < S and element k < N, with ``idx`` the register the
    operand's ``index`` names,

        A(j, k) = a[a.base + idx*a.istride + j*a.js + k*a.ks]         (ACT space)
        B(j, k) likewise (or per ``b.mode``)
        G(j, k) = gfunc(A, B);  R(j) = reduce over k;  c[c.base + idx*c.istride + j*c.js] = out(R)

    ``s_pos`` / ``n_pos``: S / N is ``pos + 1`` instead of the field.
    """
    g: GFunc
    red: Reduce
    out: OutFunc
    s: 16
    n: 16
    s_pos: 1
    n_pos: 1
    a: AOperand
    b: BOperand
    c: COperand
    mult: signed(16)
    shift: signed(7)
    sat: 6                 # saturation width of MULSHR (1..63; 0 counts as 64)
    init: signed(24)       # accumulator start of Reduce.SUM


class NextArgs(data.Struct):
    target: 16             # pc to continue at while positions remain


class Epi(enum.Enum, shape=3):
    """What a MATVEC does to its requantized results before writing them."""
    NONE = 0       # write y
    RESID = 1      # write sat_{y_bits}(old + y), old = the destination lane's value (residual)
    ROPE = 2       # rotate the pairs (y[2j], y[2j+1]) by the block's RoPE-table word
    SILU_GATE = 3  # write silu_gate(y[2j], y[2j+1]): R/2 results a block (SwiGLU's gate)
    ARGMAX = 4     # write y; the index of the largest y of the instruction: next token


class MatvecArgs(data.Struct):
    """Operands of MATVEC.

    Row block b (rows ``b*R .. b*R+R-1``) and chunk k (elements ``k*L .. k*L+L-1``) read
    weight word ``w_base + b*n_chunks + k`` of every weight bank and activation word
    ``x_addr + k`` of bank ``x_bank``. Row r of block b is requantized with multiplier
    ``q_mult`` or, with ``m_rows``, lane r of row-multiplier word ``m_base + b``. The R
    results of block b are written to lanes ``(b*R) % L ..`` of word
    ``y_addr + (idx << y_shift) + (b*R) // L`` of bank ``y_bank`` (``idx``: the position
    with ``y_index`` POS, else 0), after the epilogue ``epi``. ROPE rotates pair j of block
    b by (cos, sin) = entries 2j, 2j+1 of RoPE-table word
    ``rope_base + (pos << rope_shift) + b % 2**rope_shift`` (a packed block, 4 or more rows:
    the word of ``b // 2``, entries :func:`rope_entries`). With ``y_pack`` the R results
    go to lanes ``(b*R/2) % L ..`` of word ``... + (b*R/2) // L`` as R/2 int16 pairs
    (:func:`pack_block`; RESID ignores ``y_pack``, and :func:`matvec` refuses the pair).
    SILU_GATE writes its R/2 results to those same lanes, one a lane, with ``epi_shift``
    the gate product's shift; ARGMAX sets the next-token register to the row of the largest
    result (:func:`tinylpu.numerics.argmax`). With ``norm`` the rows are requantized by
    :func:`tinylpu.numerics.norm_requantize` with the norm register's scale ``(m, b)``
    (``b << 16 | m``, set by a VOP with out NORM or an ``ss`` MATVEC), read for each block
    in ``c_last + LAT_NORM_READ``: an earlier write must have landed by then. With ``ss`` the sum of the squares of the written values
    (low 16 bits, signed) plus ``ss_init`` goes through the norm unit into the norm register
    (:func:`tinylpu.numerics.rsqrt_scale`; ``LAT_SS_NORM`` after the last read). With
    ``head_shift`` ROPE rounds block b's pairs ``ROPE_FRAC + e`` bits, e the 4-bit entry of
    its head slot ``(2*b*R) // L`` (:func:`head_shifts`; a narrow q's per-head shift), and
    the requantizer saturates a ROPE block to 16 bits when ``y_bits`` is narrower (the
    rotation takes int16 pairs; its result saturates to ``y_bits``). With
    ``y_wbank`` the results go into the weight banks instead, as weight lanes (their low
    ``data_bits`` bits): block b's R results fill lanes ``(b*R) % L ..`` of the output unit's
    weight-word buffer, and the block that fills its last lanes (``(b*R) % L == L - R``)
    writes the whole buffer to word ``y_addr + (idx << y_shift)`` of weight bank
    ``((b*R) // L) % R`` (:func:`wbank_slot`), where a later MATVEC or QK reads it as
    weights; L/R consecutive blocks make a word (the buffer keeps its lanes between
    instructions). epi NONE or ROPE only, not packed, no ``ss`` (:func:`illegal`).
    With ``y_wcol`` each result is one byte of a weight word instead, a column of a
    transposed vector (V^T: weight lane = position): result r of block b goes to weight
    bank r, word ``y_addr + ((idx >> log2 L) << y_shift) + b``, lane ``idx % L``
    (:func:`wcol_slot`); the word's other lanes keep their bytes (the weight banks have a
    write enable a byte). epi NONE only, not packed, no ``ss``, not with ``y_wbank``
    (:func:`illegal`).

    With ``x_exp`` the MATVEC is a **PV pass** (attention's p.V on the MAC array; its
    weights are V^T as ``y_wcol`` writes it): chunk k of block b reads weight word
    ``w_base + b + (k << w_shift)`` and activation word ``x_addr + k``, whose lanes' low 16
    bits are scores d; lane l of chunk k stands for position ``p = (k << x_shift) + l`` and
    its MAC operand is ``e = exp2_neg(max_h - d)`` (h = ``x_head``, the running maximum of
    the last QK), or 0 with ``x_pos`` when ``p > pos``; with ``x_pos`` a block has
    ``(pos >> x_shift) + 1`` chunks instead of ``n_chunks``. Each block also sums its e's,
    S; its row sums are requantized as PV's drain does, ``sat_{y_bits}((acc * m + 2**(s-1))
    >> s)``, ``(m, b) = norm_recip(S)`` (``(0x7fff, 0)`` for S = 0), ``s = min(b +
    q_shift, 63)``, and written like a MATVEC block's, entering the output unit
    :data:`LAT_EXP_RESULT` after its last read. The pass takes one cycle more than its
    reads (:func:`duration`). epi NONE, no ``m_base``, ``norm``, ``ss``, ``y_pack``,
    ``y_wbank`` or ``y_wcol`` (:func:`illegal`). Its block b is written to lane group
    ``(y_grp + b) % (L/R)`` of word ``y_addr + (y_grp + b) // (L/R)`` (``y_grp`` modulo
    L/R: a head's outputs where the heads before it end; 0 for every other MATVEC).
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
    y_bits: 6        # results saturate to y_bits signed bits (2..32)
    m_rows: 1        # per-row multipliers from the row-multiplier memory
    m_base: 16       # its word of row block 0
    y_index: Index   # NONE or POS (TOK is reserved)
    y_shift: 4       # log2 of the words per position step of y
    epi: Epi
    rope_base: 16    # RoPE-table word of position 0, block 0
    rope_shift: 3    # log2 of the RoPE-table words per position
    y_pack: 1        # write the R results as int16 pairs in R / 2 lanes (a K or V row)
    epi_shift: 6     # SILU_GATE: shift of silu(h1) * h3
    norm: 1          # scale the multipliers by the norm register (RMSNorm, norm_requantize)
    ss: 1            # the sum of squares of the written values + ss_init -> norm register
    ss_init: 24      # ... (RMSNorm's epsilon)
    y_wbank: 1       # write the results as bytes into the weight banks (:func:`wbank_slot`)
    head_shift: 64   # ROPE: head slot h's blocks round entry h more bits (:func:`head_shifts`)
    y_wcol: 1        # write each result as one byte of a weight word (:func:`wcol_slot`)
    x_exp: 1         # a PV pass: x through exp2_neg from head x_head's maximum
    x_head: 4        # ... the head slot of the maximum
    w_shift: 4       # ... weights of chunk k, block b: w_base + b + (k << w_shift)
    x_pos: 1         # ... (pos >> x_shift) + 1 chunks, lanes past pos are 0
    x_shift: 3       # ... log2 of the positions a chunk
    y_grp: 4         # ... block b's results into lane group y_grp + b of the y words


class QkArgs(data.Struct):
    """Operands of QK: q is weight word ``q_addr`` (row r of the array takes bank r's weight
    lanes, MAC (r, l) lane l: as a MATVEC takes its weights, every cycle); for each position
    p < N (N = pos + 1 with ``n_pos``, else ``n``) the K row at word ``k_addr + (p <<
    k_shift)`` of ``k_bank`` is read and every head slot's score
    ``sat16((q_h . k_{p, h} + 2**(s_h-1)) >> s_h)``, ``s_h = max(shift - e_h, 0)`` with e_h
    the entry of ``head_shift`` (:func:`qk_shifts`; q's per-head narrowing shift), (MAC
    (r, l) takes packed value :func:`att_kv_index` of the K row; ``kv_shift`` with 2 rows)
    is written to the score word of p (:func:`score_slot`) and folded into the running
    maximum of its head."""
    q_addr: 16       # a weight word
    k_bank: 2
    k_addr: 16
    k_shift: 4
    s_bank: 2
    s_addr: 16
    n: 16
    n_pos: 1
    shift: 6
    kv_shift: 2      # log2 of the heads that share a K/V head
    head_shift: 64   # head slot h's score shift is shift less entry h (:func:`head_shifts`)
    s_tr: 1          # scores transposed: a word a head slot of L positions (score_tr_slot)
    s_hs: 4          # ... head slot h's words from s_addr + (h << s_hs)


class PvArgs(data.Struct):
    """Operands of PV: for each position p < N the score word of p (at ``s_addr``) and the
    V row at word ``v_addr + (p << v_shift)`` of ``v_bank`` are read; each head's weight
    ``e = exp2_neg(max_h - score)`` (the maxima of the QK before) multiplies the V values of
    its K/V head, summed over p per output (one accumulator per MAC), and the weights are
    summed per head. Then the R x L outputs, ``d_blocks`` blocks of R, are written like a
    MATVEC's row blocks to ``y_bank``/``y_addr``:
    ``sat_{y_bits}((acc * m_h + 2**(s-1)) >> s)``, ``(m_h, b_h) = norm_recip(sum_h)``,
    ``s = b_h + shift`` (clamped to 63)."""
    v_bank: 2
    v_addr: 16
    v_shift: 4
    s_bank: 2
    s_addr: 16
    n: 16
    n_pos: 1
    kv_shift: 2
    y_bank: 2
    y_addr: 16
    d_blocks: 8      # output blocks of R, 1 .. lanes
    shift: 6
    y_bits: 6


class WaitArgs(data.Struct):
    cycles: 16       # >= 1


class LoopArgs(data.Struct):
    count: 16        # >= 1: the body runs `count` times
    body: 8          # >= 1 instructions following the LOOP


class Instr(data.Struct):
    op: Opcode
    args: data.UnionLayout({"matvec": MatvecArgs, "wait": WaitArgs, "loop": LoopArgs,
                            "vop": VopArgs, "next": NextArgs, "qk": QkArgs, "pv": PvArgs})


INSTR_LAYOUT = data.Layout.cast(Instr)
assert INSTR_LAYOUT.size <= INSTR_BITS


def _check(name, value, bits, lo=0, is_signed=False):
    if is_signed:
        lo_lim, hi_lim = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo_lim, hi_lim = lo, (1 << bits) - 1
    if not isinstance(value, int) or not lo_lim <= value <= hi_lim:
        raise IsaError(f"{name} must be an integer in [{lo_lim}, {hi_lim}], not {value!r}")


def matvec(*, w_base, x_bank, x_addr, y_bank, y_addr, n_blocks, n_chunks, q_mult=1, q_shift=0,
           y_bits=8, m_base=None, y_index=Index.NONE, y_shift=0, epi=Epi.NONE, rope_base=0,
           rope_shift=0, y_pack=False, epi_shift=0, norm=False, ss_init=None, y_wbank=False,
           head_shift=(), y_wcol=False, x_exp=False, x_head=0, w_shift=0, x_pos=False,
           x_shift=0, y_grp=0):
    """The operand dict of a MATVEC, range-checked. ``m_base`` (a row-multiplier word)
    requantizes per row instead of by ``q_mult``; ``norm`` scales by the norm register;
    ``ss_init`` (RMSNorm's epsilon) sets the norm register from the written values;
    ``y_wbank`` writes 8-bit results into the weight banks (``y_bank`` unused), ``y_wcol``
    each as one byte of a weight word (a transposed vector's column); ``x_exp`` makes it a
    PV pass (``x_head``, ``w_shift``, ``x_pos``, ``x_shift``, ``y_grp``);
    ``head_shift`` (:func:`head_shifts`) narrows ROPE's results per head slot."""
    y_index, epi = Index(y_index), Epi(epi)
    if y_index == Index.TOK:
        raise IsaError("MATVEC y_index must be NONE or POS, not TOK")
    if y_pack and epi == Epi.RESID:
        raise IsaError("MATVEC RESID adds 32-bit lanes: it cannot write packed (y_pack)")
    if y_pack and epi == Epi.SILU_GATE:
        raise IsaError("MATVEC SILU_GATE writes one result a lane: it cannot write packed "
                       "(y_pack)")
    args = dict(w_base=w_base, x_bank=x_bank, x_addr=x_addr, y_bank=y_bank, y_addr=y_addr,
                n_blocks=n_blocks, n_chunks=n_chunks, q_mult=q_mult, q_shift=q_shift,
                y_bits=y_bits, m_rows=int(m_base is not None), m_base=m_base or 0,
                y_index=y_index.value, y_shift=y_shift, epi=epi.value, rope_base=rope_base,
                rope_shift=rope_shift, y_pack=int(bool(y_pack)), epi_shift=epi_shift,
                norm=int(bool(norm)), ss=int(ss_init is not None), ss_init=ss_init or 0,
                y_wbank=int(bool(y_wbank)), head_shift=head_shifts(head_shift),
                y_wcol=int(bool(y_wcol)), x_exp=int(bool(x_exp)), x_head=x_head,
                w_shift=w_shift, x_pos=int(bool(x_pos)), x_shift=x_shift, y_grp=y_grp)
    if y_wbank or y_wcol or x_exp or y_grp:
        why = wbank_illegal(args)
        if why:
            raise IsaError(why)
        if y_bits > 8 and not x_exp:
            name = "y_wbank" if y_wbank else "y_wcol"
            raise IsaError(f"MATVEC {name} writes bytes: y_bits must be at most 8, not {y_bits}")
    if ss_init is not None and (y_pack or epi not in (Epi.NONE, Epi.RESID)):
        raise IsaError("MATVEC ss sums the squares of R unpacked lanes a block: epi must be "
                       "NONE or RESID, without y_pack")
    layout = data.Layout.cast(MatvecArgs)
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, type) and issubclass(shape, enum.Enum):
            continue
        shape = Shape.cast(shape)
        lo = 1 if name in ("n_blocks", "n_chunks") else 2 if name == "y_bits" else 0
        _check(f"MATVEC {name}", args[name], shape.width, lo, shape.signed)
    if y_bits > 32:
        raise IsaError(f"MATVEC y_bits must be in [2, 32], not {y_bits}")
    return {"op": Opcode.MATVEC, "args": {"matvec": args}}


def _operand(kind, fields, given):
    out = {}
    for name, value in given.items():
        if name not in fields:
            raise IsaError(f"VOP operand {kind} has no field {name!r}")
        out[name] = value.value if isinstance(value, enum.Enum) else value
    return {name: out.get(name, 0) for name in fields}


def vop(*, g=GFunc.MUL, red=Reduce.SUM, out=OutFunc.MULSHR, s=1, n=1, s_pos=False,
        n_pos=False, a, b=None, c, mult=1, shift=0, sat=16, init=0):
    """The operand dict of a VOP, range-checked. ``a``, ``b``, ``c`` are dicts of operand
    fields (missing fields are 0; ``b=None`` is the immediate 0)."""
    b = {"mode": BMode.IMM} if b is None else b
    ops = {}
    for kind, struct, given in (("a", AOperand, a), ("b", BOperand, b), ("c", COperand, c)):
        fields = [name for name, _ in data.Layout.cast(struct)]
        ops[kind] = _operand(kind, fields, given)
    args = dict(g=GFunc(g).value, red=Reduce(red).value, out=OutFunc(out).value, s=s, n=n,
                s_pos=int(bool(s_pos)), n_pos=int(bool(n_pos)), mult=mult, shift=shift,
                sat=sat, init=init, **ops)
    instr = {"op": Opcode.VOP, "args": {"vop": args}}
    encode(instr)                      # field ranges
    if not s_pos and s < 1 or not n_pos and n < 1:
        raise IsaError(f"VOP needs S >= 1 and N >= 1, not S={s}, N={n}")
    if not 1 <= sat <= 63:
        raise IsaError(f"VOP sat must be in [1, 63], not {sat}")
    if args["out"] != OutFunc.MULSHR.value and (s_pos or s != 1):
        raise IsaError("VOP RSQRT/RECIP/NORM (scalar or norm unit) needs exactly one segment "
                       "(S = 1)")
    if args["red"] == Reduce.ARGMAX.value and args["out"] != OutFunc.MULSHR.value:
        raise IsaError("VOP ARGMAX writes the index: out must be MULSHR")
    bmode = BMode(ops["b"]["mode"])
    if (bmode in (BMode.MEM, BMode.SCALE) and ops["a"]["space"] == Space.ACT.value
            and ops["a"]["bank"] == ops["b"]["bank"]):
        raise IsaError(f"VOP reads A and B from the same activation bank "
                       f"{ops['a']['bank']}: each bank has one read port")
    return instr


def _fields(op, struct, given):
    layout = data.Layout.cast(struct)
    args = {name: 0 for name, _ in layout}
    args.update(given)
    for name, field in layout:
        shape = Shape.cast(field.shape)
        _check(f"{op} {name}", args[name], shape.width, 0, shape.signed)
    return args


def qk(*, q_addr, k_bank, k_addr, s_bank, s_addr, shift, k_shift=0, n=0, n_pos=False,
       kv_shift=0, head_shift=(), s_tr=False, s_hs=0):
    """QK (see :class:`QkArgs`), range-checked; ``n_pos``: N = pos + 1; ``head_shift``: the
    per-head-slot entries (:func:`head_shifts`); ``s_tr``: transposed scores, head slot h's
    from word ``s_addr + (h << s_hs)`` (:func:`score_tr_slot`)."""
    if not n_pos and n < 1:
        raise IsaError(f"QK needs N >= 1 positions, not {n}")
    args = _fields("QK", QkArgs, dict(q_addr=q_addr, k_bank=k_bank, k_addr=k_addr,
                                      k_shift=k_shift, s_bank=s_bank, s_addr=s_addr, n=n,
                                      n_pos=int(n_pos), shift=shift, kv_shift=kv_shift,
                                      head_shift=head_shifts(head_shift, "QK"),
                                      s_tr=int(s_tr), s_hs=s_hs))
    return {"op": Opcode.QK, "args": {"qk": args}}


HEAD_SLOTS = 16          # entries of a head_shift field
HEAD_SHIFT_BITS = 4


def head_shifts(entries, what="MATVEC"):
    """The ``head_shift`` field of ``entries``, one per head slot (at most
    :data:`HEAD_SLOTS`, each 0..15; head slot h at bits ``4h``): a narrow q's per-head
    shift, which ROPE rounds off and QK's scores take back. An int is the field itself."""
    if isinstance(entries, (int, np.integer)):
        return int(entries)
    entries = [int(e) for e in entries]
    if len(entries) > HEAD_SLOTS or any(not 0 <= e < 1 << HEAD_SHIFT_BITS for e in entries):
        raise IsaError(f"{what} head_shift takes at most {HEAD_SLOTS} entries of 0..15, not "
                       f"{entries}")
    return sum(e << (HEAD_SHIFT_BITS * h) for h, e in enumerate(entries))


def head_shift_entry(field, slot):
    """Entry ``slot % HEAD_SLOTS`` of a ``head_shift`` field."""
    return (field >> (HEAD_SHIFT_BITS * (slot % HEAD_SLOTS))) & ((1 << HEAD_SHIFT_BITS) - 1)


def block_head_slot(block, rows, lanes):
    """The head slot of a MATVEC row block's lanes (q laid out as activation words: word k
    holds head slots 2k and 2k + 1, L/2 lanes each)."""
    return (2 * block * rows) // lanes


def qk_shifts(args, slots):
    """The score shift of each of ``slots`` head slots of QK operands ``args``:
    ``max(shift - entry, 0)``."""
    return [max(args["shift"] - head_shift_entry(args["head_shift"], h), 0)
            for h in range(slots)]


def pv(*, v_bank, v_addr, s_bank, s_addr, y_bank, y_addr, d_blocks, shift, y_bits=16,
       v_shift=0, n=0, n_pos=False, kv_shift=0):
    """PV (see :class:`PvArgs`), range-checked; ``n_pos``: N = pos + 1."""
    if not n_pos and n < 1:
        raise IsaError(f"PV needs N >= 1 positions, not {n}")
    if not 1 <= d_blocks <= 255 or not 2 <= y_bits <= 32:
        raise IsaError(f"PV needs d_blocks in [1, 255] and y_bits in [2, 32], not "
                       f"{d_blocks}, {y_bits}")
    args = _fields("PV", PvArgs, dict(v_bank=v_bank, v_addr=v_addr, v_shift=v_shift,
                                      s_bank=s_bank, s_addr=s_addr, n=n, n_pos=int(n_pos),
                                      kv_shift=kv_shift, y_bank=y_bank, y_addr=y_addr,
                                      d_blocks=d_blocks, shift=shift, y_bits=y_bits))
    return {"op": Opcode.PV, "args": {"pv": args}}


def wbank_slot(block, rows, lanes):
    """Where a ``y_wbank`` MATVEC puts row block ``block``'s R results: ``(bank, lane)``,
    result r in weight lane ``lane + r`` of the word it writes to weight bank ``bank``
    (:class:`MatvecArgs`; the block with ``lane == lanes - rows`` writes the word). A vector
    laid out as activation words (word k, lane l) lands as bank k's weight lane l."""
    return ((block * rows) // lanes) % rows, (block * rows) % lanes


def wcol_slot(block, idx, lanes, y_shift):
    """Where a ``y_wcol`` MATVEC puts row block ``block``'s R results: ``(word, lane)``,
    result r in lane ``lane`` of word ``y_addr + word`` of weight bank r
    (:class:`MatvecArgs`; ``idx`` the position with ``y_index`` POS, else 0). Element e of
    a vector written at position p lands in bank ``e % R``, lane ``p % L`` of word
    ``((p // L) << y_shift) + e // R``: with ``2**y_shift`` >= the blocks, the words of L
    positions of one block of elements follow each other ``2**y_shift`` apart."""
    return ((idx // lanes) << y_shift) + block, idx % lanes


WBANK_FIELDS = ("y_wbank", "y_wcol", "epi", "y_pack", "ss", "x_exp", "m_rows", "norm",
                "y_grp")


def wbank_illegal(args):
    """Why MATVEC operands (a dict with the :data:`WBANK_FIELDS` of :class:`MatvecArgs`)
    that write the weight banks are illegal, or None: ``y_wbank`` takes plain or rotated
    bytes, one per result; ``y_wcol`` plain bytes."""
    if args["y_wbank"] and args["y_wcol"]:
        return "MATVEC writes the weight banks by words (y_wbank) or by columns (y_wcol), not both"
    if args["y_wbank"] and args["epi"] not in (Epi.NONE.value, Epi.ROPE.value):
        return f"MATVEC y_wbank takes epi NONE or ROPE, not {Epi(args['epi']).name}"
    if args["x_exp"] and (args["epi"] != Epi.NONE.value or args["m_rows"] or args["norm"]
                          or args["ss"] or args["y_pack"] or args["y_wbank"]
                          or args["y_wcol"]):
        return ("MATVEC x_exp (a PV pass) takes epi NONE and the instruction's own scale: not "
                "with m_base, norm, ss, y_pack, y_wbank or y_wcol")
    if args["y_grp"] and not args["x_exp"]:
        return "MATVEC y_grp (the first block's lane group) is a PV pass's (x_exp) only"
    if args["y_wcol"] and args["epi"] != Epi.NONE.value:
        return f"MATVEC y_wcol takes epi NONE, not {Epi(args['epi']).name}"
    if (args["y_wbank"] or args["y_wcol"]) and (args["y_pack"] or args["ss"]):
        name = "y_wbank" if args["y_wbank"] else "y_wcol"
        return f"MATVEC {name} writes one byte a result: not with y_pack or ss"
    return None


def att_head(r, l, lanes):
    """The head that MAC (row r, lane l) serves in QK and PV: rows hold two heads of
    ``lanes // 2`` lanes each."""
    return 2 * r + l // (lanes // 2)


def lane_local(rows):
    """Whether a tile of ``rows`` rows takes attention's K/V operand from each MAC's own lane
    (:func:`att_kv_index`) and so packs K/V blocks for it (:func:`pack_block`,
    :func:`rope_entries`): 4 or more rows; a two-row block is one lane, a RoPE pair."""
    return rows >= 4


def att_kv_index(r, l, lanes, rows, kv_shift):
    """The packed K/V value (0 .. 2*lanes - 1) MAC (r, l) multiplies.

    With 4 or more rows, a value of its own lane: the low half for rows ``0 .. R/2 - 1``,
    the high half for the others (``2l + (r >= R/2)``; ``kv_shift`` is not used): no MAC
    takes its operand from another lane's wires, and the compiler lays the K and V rows
    out so that each lane's halves hold what its rows need (:func:`kv_slot`). With 2 rows,
    element ``l % (lanes // 2)`` of K/V head ``att_head >> kv_shift``, wrapped to the row
    (a 4:1 choice per MAC, in the K/V row's natural order)."""
    if lane_local(rows):
        return 2 * l + (r >= rows // 2)
    half = lanes // 2
    return ((att_head(r, l, lanes) >> kv_shift) * half + l % half) % (2 * lanes)


def kv_slot(r, l, lanes, rows):
    """With 4 or more rows, the K/V slot MAC (r, l) reads, ``(s, t)``: lane half ``s`` (lanes
    ``s * L/2 ..``) and 16-bit half ``t``. Rows ``t * R/2 .. t * R/2 + R/2 - 1`` in lane
    half ``s`` (R/2 head slots) share slot (s, t), so each of the four slots holds one K/V
    head, element i in lane ``s * L/2 + i``."""
    return l // (lanes // 2), int(r >= rows // 2)


def score_slot(p, h, lanes, rows):
    """Where the score of position p, head h lives: ``(word offset, lane, half)``; a score
    word holds ``lanes // rows`` positions of ``2 * rows`` head slots."""
    per_word = lanes // rows
    return p // per_word, (p % per_word) * rows + h // 2, h % 2


def score_tr_slot(p, h, lanes, s_hs):
    """Where QK with ``s_tr`` writes the score of position p, head slot h: ``(word offset,
    lane)``; head slot h's words start ``h << s_hs`` words after ``s_addr``, a word of
    ``lanes`` positions (lane p % lanes), each score sign-extended to the lane's 32 bits."""
    return (h << s_hs) + p // lanes, p % lanes


def score_word_writes(n, lanes, rows, free=None, copy=None):
    """The writes of QK ``s_tr`` over ``n`` positions: per group g of positions ``g * L ..``
    (the last may be shorter), ``(g, w, n_g)``: its head-slot word h (lanes ``0 .. n_g -
    1``) is written at the end of ``s + w + h`` (s: the cycle of the first K read). A
    group's words follow its last read by :data:`LAT_SCORE_WORD` cycles (it is in the
    collect buffer 2 cycles before, and copied to the out buffer the cycle before), or the
    group before's 2R words if those are later (only a short last group waits: lanes >= 2
    rows). After an earlier QK (a broken rule unless its words are written, RTL-exact all
    the same), relative to s: ``free``, the transposer's first free write cycle; ``copy``,
    the cycle its waiting group is copied: a group complete before that takes the waiting
    one's place and has no writes of its own (it is left out)."""
    out = []
    for g in range(-(-n // lanes)):
        n_g = min(lanes, n - g * lanes)
        done = g * lanes + n_g - 1 + LAT_SCORE_WORD - 2     # complete in the collect buffer
        if copy is not None and done < copy:
            continue
        w = done + 2 if free is None else max(done + 2, free)
        out.append((g, w, n_g))
        free, copy = w + 2 * rows, w - 1
    return out


def score_word_lat(n, lanes, rows):
    """QK ``s_tr`` over ``n`` positions (and nothing in the transposer before it): its last
    word is written at the end of its last read's cycle + this."""
    return score_word_writes(n, lanes, rows)[-1][1] + 2 * rows - n


def score_box(args, n, lanes, rows):
    """``(lo, span)``: the words QK ``s_tr`` over ``n`` positions writes lie in ``s_addr +
    (0 .. span)`` (modulo the bank's depth); a read there while they are in flight is a
    hazard (the RTL compares the read's word with this range)."""
    return args["s_addr"], ((2 * rows - 1) << args["s_hs"]) + (n - 1) // lanes


def halves(words):
    """The packed int16 values of activation words (int arrays [..., L] of 32-bit lanes):
    [..., 2L], value 2i the low half of lane i, 2i + 1 the high half, sign-extended."""
    words = np.asarray(words, dtype=np.int64) & 0xffffffff
    lo, hi = words & 0xffff, words >> 16
    out = np.stack([lo, hi], axis=-1).reshape(*words.shape[:-1], 2 * words.shape[-1])
    return out - ((out & 0x8000) << 1)


def pack_block(values):
    """A MATVEC block's R results as ``y_pack`` writes them, into R/2 signed 32-bit lanes:
    lane j holds results j (low half) and j + R/2 (high half), so the low halves of a
    block's lanes take its first R/2 results, the high halves the others (a RoPE pair,
    results 2j and 2j + 1, stays in one half; :func:`rope_entries`)."""
    v = np.asarray(values, dtype=np.int64)
    half = v.shape[-1] // 2
    pairs = np.stack([v[..., :half], v[..., half:]], axis=-1)
    return pack_halves(pairs.reshape(v.shape))


def rope_block(rows, packed, block):
    """The block number that picks a ROPE block's table word (``block % 2**rope_shift``): a
    packed block's (lane-local tiles) is ``block // 2`` (:func:`rope_entries`)."""
    return block >> 1 if packed and lane_local(rows) else block


def rope_entries(rows, packed, block):
    """The RoPE-table word's pairs that rotate the R/2 pairs of a block, in order: pair j
    takes (cos, sin) entries ``2e, 2e + 1`` for ``e`` in the list. Unpacked, ``e = j``. A
    packed block (``y_pack``, 4 or more rows) holds R/2 elements of two K/V slots
    (:func:`pack_block`): its pairs are R/4 angles twice, entries ``(block % 2) * R/4 ..``
    of the word of ``block // 2`` (:class:`MatvecArgs`)."""
    if not packed or not lane_local(rows):
        return list(range(rows // 2))
    q = rows // 4
    return [(block % 2) * q + j % q for j in range(rows // 2)]


def pack_halves(values):
    """Inverse of :func:`halves`: int16 values [..., 2n] into signed 32-bit lanes [..., n]."""
    v = np.asarray(values, dtype=np.int64) & 0xffff
    lanes = v[..., 0::2] | (v[..., 1::2] << 16)
    return lanes - ((lanes & 0x80000000) << 1)


def next_(target):
    """NEXT: the token step; while positions remain, continue at ``target``."""
    _check("NEXT target", target, 16)
    return {"op": Opcode.NEXT, "args": {"next": {"target": target}}}


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
         Opcode.LOOP: ("loop", LoopArgs), Opcode.HALT: ("wait", WaitArgs),
         Opcode.VOP: ("vop", VopArgs), Opcode.NEXT: ("next", NextArgs),
         Opcode.QK: ("qk", QkArgs), Opcode.PV: ("pv", PvArgs)}


_ARGS_OFFSET = INSTR_LAYOUT["args"].offset
_ARGS_BITS = {op: 0 if op == Opcode.HALT else data.Layout.cast(_ARGS[op][1]).size
              for op in Opcode}            # HALT has no operands: its operand bits are 0


def _enum_fields(layout, offset=0):
    """``(name, offset, width, enum class)`` of every enum-shaped field of ``layout``,
    nested structs included (offsets in bits from the layout's bit 0)."""
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.Layout) or isinstance(shape, type) and \
                issubclass(shape, data.Struct):
            yield from ((f"{name}.{n}", o, w, e) for n, o, w, e in
                        _enum_fields(data.Layout.cast(shape), offset + field.offset))
        elif isinstance(shape, type) and issubclass(shape, enum.Enum):
            yield name, offset + field.offset, Shape.cast(shape).width, shape


_ENUM_FIELDS = {op: [] if op == Opcode.HALT else
                [(n, _ARGS_OFFSET + o, w, e) for n, o, w, e in
                 _enum_fields(data.Layout.cast(_ARGS[op][1]))] for op in Opcode}


ATTENTION_OPS = (Opcode.QK, Opcode.PV)


def illegal(word, attention=True, wbytes=True, pv=True):
    """Why an instruction word is illegal (the ILLEGAL_INSTRUCTION status), or None: bits
    set above the instruction layout, an undefined opcode, bits set above the opcode's own
    operands (HALT has none), or an undefined value of an enum field; without
    ``attention`` (a tile with lanes < 2 * rows, ``Config.attention``) QK and PV too;
    without ``wbytes`` (``Config.wbytes`` 0) a MATVEC with ``y_wcol``; without ``pv``
    (``Config.pv`` 0: no PV datapath) PV. The RTL's check is :func:`illegal_expr`, built
    from the same tables."""
    word = int(word)
    if word >> INSTR_LAYOUT.size:
        return f"bits set above bit {INSTR_LAYOUT.size - 1}"
    try:
        op = Opcode(word & ((1 << _ARGS_OFFSET) - 1))
    except ValueError:
        return f"undefined opcode {word & ((1 << _ARGS_OFFSET) - 1)}"
    if word >> (_ARGS_OFFSET + _ARGS_BITS[op]):
        return f"{op.name} has bits set above its operands (bit {_ARGS_OFFSET + _ARGS_BITS[op]} up)"
    for name, offset, width, cls in _ENUM_FIELDS[op]:
        value = (word >> offset) & ((1 << width) - 1)
        if value not in {e.value for e in cls}:
            return f"{op.name} field {name} has the undefined value {value}"
    if not attention and op in ATTENTION_OPS:
        return f"{op.name} needs a tile with lanes >= 2 * rows (attention)"
    if not pv and op == Opcode.PV:
        return "PV needs a tile with PV's datapath (pv; this one runs p.V as PV passes)"
    if op == Opcode.MATVEC:
        mv = data.Layout.cast(MatvecArgs)
        args = {name: (word >> (_ARGS_OFFSET + mv[name].offset))
                & ((1 << Shape.cast(mv[name].shape).width) - 1) for name in WBANK_FIELDS}
        if args["y_wcol"] and not wbytes:
            return "MATVEC y_wcol needs a tile whose weight banks take byte writes (wbytes)"
        if args["x_exp"] and not attention:
            return "MATVEC x_exp (a PV pass) needs a tile with lanes >= 2 * rows (attention)"
        return wbank_illegal(args)
    return None


# The program memory keeps each word's legality beside it: the host's write stores
# ``illegal(word) is not None`` in the word's last bit, ILLEGAL_BIT (one of the bits above the
# layout, which a legal word has 0), so the sequencer reads the check with the word instead of
# decoding the word in its issue cycle (the decode is on the host's write path, while the tile
# is idle). A legal word reads back as written, an illegal one with that bit set.
ILLEGAL_BIT = INSTR_BITS - 1
assert ILLEGAL_BIT >= INSTR_LAYOUT.size


def stored_word(word, attention=True, wbytes=True, pv=True):
    """``word`` as the program memory holds it: with :data:`ILLEGAL_BIT` set when it is
    illegal (:func:`illegal`, the same arguments)."""
    word = int(word)
    return word | (int(illegal(word, attention, wbytes, pv) is not None) << ILLEGAL_BIT)


def illegal_expr(word, attention=True, wbytes=True, pv=True):
    """The Amaranth expression of :func:`illegal` on an ``INSTR_BITS``-wide value ``word``."""
    op = word[:_ARGS_OFFSET]
    bad = word[INSTR_LAYOUT.size:].any() | ~op.matches(*(o.value for o in Opcode))
    if not attention:
        bad = bad | op.matches(*(o.value for o in ATTENTION_OPS))
    if not pv:
        bad = bad | (op == Opcode.PV.value)
    for code in Opcode:
        wrong = word[_ARGS_OFFSET + _ARGS_BITS[code]:INSTR_LAYOUT.size].any()
        for _, offset, width, cls in _ENUM_FIELDS[code]:
            wrong = wrong | ~word[offset:offset + width].matches(*(e.value for e in cls))
        bad = bad | ((op == code.value) & wrong)
    mv = data.Layout.cast(MatvecArgs)
    field = lambda name: word[_ARGS_OFFSET + mv[name].offset:][:Shape.cast(mv[name].shape).width]
    wbank, wcol, xexp = field("y_wbank")[0], field("y_wcol")[0], field("x_exp")[0]
    wbank_bad = ((wbank & wcol)
                 | (xexp & ((field("epi") != Epi.NONE.value) | field("m_rows")[0]
                            | field("norm")[0] | field("ss")[0] | field("y_pack")[0]
                            | wbank | wcol))
                 | (xexp if not attention else 0)
                 | (wbank & ~field("epi").matches(Epi.NONE.value, Epi.ROPE.value))
                 | (wcol & (field("epi") != Epi.NONE.value))
                 | ((wbank | wcol) & (field("y_pack")[0] | field("ss")[0]))
                 | (wcol if not wbytes else 0)
                 | (field("y_grp").any() & ~xexp))
    return bad | ((op == Opcode.MATVEC.value) & wbank_bad)


def _check_fields(where, layout, values, partial=False):
    given, fields = set(values), {field for field, _ in layout}
    if given - fields:
        raise IsaError(f"{where} has no operand {sorted(given - fields)[0]!r}")
    if given != fields and not partial:
        raise IsaError(f"{where} operands must be {sorted(fields)}, not {sorted(given)}")
    for field, value in values.items():
        shape = layout[field].shape
        if isinstance(shape, data.Layout) or isinstance(shape, type) and \
                issubclass(shape, data.Struct):
            if not isinstance(value, dict):
                raise IsaError(f"{where} {field} must be a dict of fields, not {value!r}")
            _check_fields(f"{where} {field}", data.Layout.cast(shape), value)
            continue
        if isinstance(value, enum.Enum):
            value = value.value
        shape = Shape.cast(shape)
        _check(f"{where} {field}", value, shape.width, 0, shape.signed)


def _to_dict(layout, view):
    out = {}
    for name, field in layout:
        value = getattr(view, name)
        shape = field.shape
        if isinstance(shape, data.Layout) or isinstance(shape, type) and \
                issubclass(shape, data.Struct):
            out[name] = _to_dict(data.Layout.cast(shape), value)
        elif isinstance(value, enum.Enum) or hasattr(value, "value") and not isinstance(value, int):
            out[name] = int(value.value)
        else:
            out[name] = int(value)
    return out


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
    _check_fields(op.name, layout, instr["args"][name], partial=op == Opcode.HALT)
    return INSTR_LAYOUT.const(instr).as_value().value


def decode(word):
    """Decode an integer into an instruction dict of the same shape :func:`encode` takes.
    Decoded words are cached: treat the dict as read-only."""
    return _decode(int(word))


@functools.lru_cache(maxsize=1 << 14)
def _decode(word):
    if not 0 <= word < (1 << INSTR_BITS):
        raise IsaError(f"instruction word must fit in {INSTR_BITS} bits, not {word:#x}")
    reason = illegal(word)
    if reason:
        raise IllegalInstruction(f"illegal instruction word {word:#x}: {reason}")
    view = INSTR_LAYOUT.from_bits(word)
    op = Opcode(view.op)
    if op in (Opcode.MATVEC, Opcode.VOP, Opcode.NEXT, Opcode.QK, Opcode.PV):
        name, struct = _ARGS[op]
        try:
            fields = _to_dict(data.Layout.cast(struct), getattr(view.args, name))
        except ValueError as error:
            raise IsaError(f"instruction word {word:#x}: {op.name} has an undefined field "
                           f"value ({error})") from None
        return {"op": op, "args": {name: fields}}
    if op == Opcode.WAIT:
        return {"op": op, "args": {"wait": {"cycles": int(view.args.wait.cycles)}}}
    if op == Opcode.LOOP:
        return {"op": op, "args": {"loop": {"count": int(view.args.loop.count),
                                            "body": int(view.args.loop.body)}}}
    return halt()


def execution_order(program, start_pc=0, limit=1 << 24, on_next=None, illegal_stops=False,
                    detect_loops=True, attention=True, wbytes=True, pv=True):
    """Yield ``(pc, instr)`` in the order the sequencer issues them, HALT included. An
    illegal word raises :class:`IllegalInstruction`; with ``illegal_stops`` it is yielded
    as ``{"op": None, "illegal": reason}`` and ends the order, as HALT does (the tile). A
    state that repeats (a program that never halts) raises, unless ``detect_loops`` is
    false (the caller stops it: a cycle budget); ``limit`` instructions raise in any case.
    ``attention``, ``wbytes``, ``pv``: as for :func:`illegal`.

    ``program`` is a list of instruction words (ints). Sequencing rules, as the RTL does them:
    the next pc is ``loop_start`` when the finishing instruction sits at ``loop_end`` and
    repeats remain (the repeat counter drops by one), else ``pc + 1`` modulo the memory
    depth. A LOOP at pc sets ``loop_start = pc + 1``, ``loop_end = pc + body`` and
    ``count - 1`` repeats after computing its own next pc. One loop level: a LOOP inside a
    loop body replaces the outer loop. NEXT continues at its target when ``on_next(pc,
    instr)`` returns true (the token loop; without ``on_next`` it falls through).
    """
    depth = len(program)
    pc, loop_start, loop_end, repeats = start_pc % depth, 0, 0, 0
    seen = set()
    for _ in range(limit):
        if not repeats and detect_loops:
            if (pc, loop_start, loop_end) in seen:
                raise IsaError(f"program never reaches HALT: pc {pc} repeats with no loop "
                               f"count left")
            seen.add((pc, loop_start, loop_end))
        try:
            instr = decode(program[pc])
            why = None if attention and wbytes and pv else \
                illegal(program[pc], attention, wbytes, pv)
            if why:
                raise IllegalInstruction(f"illegal instruction word {program[pc]:#x}: " + why)
        except IllegalInstruction as error:
            if not illegal_stops:
                raise
            yield pc, {"op": None, "illegal": str(error)}
            return
        yield pc, instr
        if instr["op"] == Opcode.HALT:
            return
        if pc == loop_end and repeats:
            next_pc, repeats = loop_start, repeats - 1
        else:
            next_pc = (pc + 1) % depth
        if instr["op"] == Opcode.NEXT and on_next is not None and on_next(pc, instr):
            next_pc = instr["args"]["next"]["target"] % depth
            seen.clear()
        if instr["op"] == Opcode.LOOP:
            args = instr["args"]["loop"]
            loop_start, loop_end = (pc + 1) % depth, (pc + max(args["body"], 1)) % depth
            repeats = max(args["count"], 1) - 1
        pc = next_pc
    raise IsaError(f"program issued {limit} instructions without reaching HALT")


def matvec_dims(args, pos=0):
    """``(n_blocks, n_chunks)`` of MATVEC operands at position ``pos``; a zero field counts
    as 2**width, as the hardware's wrapping counters do (the assembler never emits one). A
    PV pass with ``x_pos`` has ``(pos >> x_shift) + 1`` chunks."""
    if args.get("x_exp") and args.get("x_pos"):
        return args["n_blocks"] or 1 << 16, (pos >> args["x_shift"]) + 1
    return args["n_blocks"] or 1 << 16, args["n_chunks"] or 1 << 12


def vop_dims(args, pos=0):
    """``(S, N)`` of VOP operands at position ``pos``; a zero field counts as 2**16."""
    s = pos + 1 if args["s_pos"] else args["s"] or 1 << 16
    n = pos + 1 if args["n_pos"] else args["n"] or 1 << 16
    return s, n


def vop_latency(args):
    """Cycles from the read of a segment's last element to the end of the cycle its result
    lands in."""
    out = OutFunc(args["out"])
    if out == OutFunc.NORM:
        return V_RESULT + NORM_LAT
    if out == OutFunc.RSQRT:
        return V_RESULT + ISQRT_LAT + RECIP_LAT + SCALAR_WRITE
    if out == OutFunc.RECIP:
        return V_RESULT + RECIP_LAT + SCALAR_WRITE
    return LAT_V


def positions(args, pos=0):
    """N of a QK or PV at position ``pos``: ``pos + 1`` with ``n_pos``, else ``n`` (0 counts
    as 2**16)."""
    return pos + 1 if args["n_pos"] else args["n"] or 1 << 16


def duration(instr, pos=0):
    """Cycles an instruction occupies the issue slot at position ``pos`` (HALT: 1)."""
    op = instr["op"]
    if op == Opcode.QK:
        return positions(instr["args"]["qk"], pos)
    if op == Opcode.PV:
        return 1 + positions(instr["args"]["pv"], pos)
    if op == Opcode.VOP:
        s, n = vop_dims(instr["args"]["vop"], pos)
        return s * n
    if op == Opcode.NEXT:
        return NEXT_CYCLES
    if op == Opcode.MATVEC:
        a = instr["args"]["matvec"]
        n_blocks, n_chunks = matvec_dims(a, pos)
        return n_blocks * n_chunks + bool(a.get("x_exp"))
    if op == Opcode.WAIT:
        return max(instr["args"]["wait"]["cycles"], 1)
    return 1
