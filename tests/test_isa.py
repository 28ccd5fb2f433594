"""Instruction encoding, decoding and sequencing (pure Python)."""

import re

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import data
from hypothesis import given, settings, strategies as st

from tinylpu import isa
from tinylpu.isa import IsaError, Opcode

MATVEC_LAYOUT = data.Layout.cast(isa.MatvecArgs)
# the integer fields isa.matvec takes as they are (m_base, y_index, epi, y_pack, norm,
# y_wbank, y_wcol are mapped)
MATVEC_FIELDS = [name for name, _ in MATVEC_LAYOUT
                 if name not in ("m_rows", "m_base", "y_index", "epi", "y_pack", "norm", "ss",
                                 "ss_init", "y_wbank", "head_shift", "y_wcol", "x_exp",
                                 "x_pos", "y_grp")]


def _field_range(name):
    shape = Shape.cast(MATVEC_LAYOUT[name].shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    if name == "y_bits":
        return 2, 32          # isa.matvec: results saturate to 2..32 signed bits
    lo = 1 if name in ("n_blocks", "n_chunks") else 0
    return lo, (1 << shape.width) - 1


def _matvec_fields(**overrides):
    fields = dict(w_base=0, x_bank=0, x_addr=0, y_bank=0, y_addr=0, n_blocks=1, n_chunks=1,
                  q_mult=1, q_shift=0, y_bits=8, y_shift=0)
    fields.update(overrides)
    return fields


matvec_args = st.fixed_dictionaries(
    {name: st.integers(*_field_range(name)) for name in MATVEC_FIELDS})
matvec_options = st.fixed_dictionaries(
    {"m_base": st.none() | st.integers(0, 0xffff),
     "y_index": st.sampled_from([isa.Index.NONE, isa.Index.POS]),
     "epi": st.sampled_from([isa.Epi.NONE, isa.Epi.ROPE, isa.Epi.SILU_GATE, isa.Epi.ARGMAX]),
     "y_pack": st.booleans(), "norm": st.booleans()})


def test_layout_widths_and_ranges():
    widths = {name: Shape.cast(field.shape).width for name, field in MATVEC_LAYOUT}
    assert widths == dict(w_base=16, x_bank=2, x_addr=16, y_bank=2, y_addr=16, n_blocks=16,
                          n_chunks=12, q_mult=16, q_shift=6, y_bits=6, m_rows=1, m_base=16,
                          y_index=2, y_shift=4, epi=3, rope_base=16, rope_shift=3, y_pack=1,
                          epi_shift=6, norm=1, ss=1, ss_init=24, y_wbank=1, head_shift=64, y_wcol=1,
                          x_exp=1, x_head=4, w_shift=4, x_pos=1, x_shift=3, y_grp=4)
    assert _field_range("q_mult") == (-32768, 32767)
    assert _field_range("n_chunks") == (1, 4095)
    assert _field_range("q_shift") == (0, 63)
    assert MATVEC_LAYOUT.size == sum(widths.values()) == 269
    # the union is as wide as its widest member, the MATVEC operands
    sizes = {name: data.Layout.cast(s).size for name, s in
             [("matvec", isa.MatvecArgs), ("wait", isa.WaitArgs), ("loop", isa.LoopArgs),
              ("vop", isa.VopArgs), ("next", isa.NextArgs), ("qk", isa.QkArgs),
              ("pv", isa.PvArgs)]}
    assert sizes == dict(matvec=269, wait=16, loop=24, vop=259, next=16, qk=150, pv=97)
    assert isa.INSTR_LAYOUT.size == 4 + max(sizes.values()) == 273
    assert isa.INSTR_BITS == 288
    assert isa.LAT_WRITE == len(isa.MXM_STAGES) - 1 == 10
    assert isa.DRAIN == 11
    assert isa.LAT_V == len(isa.V_STAGES) - 1 == 8


def test_encodings_by_hand():
    assert isa.encode(isa.halt()) == 0
    assert isa.encode(isa.wait(5)) == 0x51
    assert isa.encode(isa.wait(0xffff)) == 0xffff1
    assert isa.encode(isa.loop(3, 2)) == 2 | (3 << 4) | (2 << 20)
    fields = dict(w_base=1, x_bank=3, x_addr=2, y_bank=1, y_addr=5, n_blocks=7,
                  n_chunks=4095, q_mult=-32768, q_shift=63, y_bits=32)
    expected = (3 | 1 << 4 | 3 << 20 | 2 << 22 | 1 << 38 | 5 << 40 | 7 << 56 | 4095 << 72
                | 0x8000 << 84 | 63 << 100 | 32 << 106)
    assert isa.encode(isa.matvec(**fields)) == expected
    # the S1 fields follow: m_rows, m_base, y_index, y_shift, epi
    assert isa.encode(isa.matvec(**fields, m_base=0x1234, y_index=isa.Index.POS, y_shift=3,
                                 epi=isa.Epi.RESID)) == \
        expected | 1 << 112 | 0x1234 << 113 | 1 << 129 | 3 << 131 | 1 << 135
    assert isa.encode(isa.matvec(**_matvec_fields(q_mult=-1))) == \
        3 | 1 << 56 | 1 << 72 | 0xffff << 84 | 8 << 106
    # y_bits defaults to 8 (int8 results)
    del fields["y_bits"]
    assert isa.matvec(**fields)["args"]["matvec"]["y_bits"] == 8
    assert isa.encode(isa.matvec(**fields)) == expected & ~(63 << 106) | 8 << 106


@settings(max_examples=200, deadline=None)
@given(matvec_args, matvec_options)
def test_matvec_round_trip(fields, options):
    if options["epi"] == isa.Epi.SILU_GATE:          # one result a lane: never packed
        options = dict(options, y_pack=False)
    if options["epi"] in (isa.Epi.NONE, isa.Epi.RESID) and not options["y_pack"]:
        options = dict(options, ss_init=fields["w_base"] << 8)
    instr = isa.matvec(**fields, **options)
    expected = dict(fields, m_rows=int(options["m_base"] is not None),
                    m_base=options["m_base"] or 0, y_index=options["y_index"].value,
                    epi=options["epi"].value, y_pack=int(options["y_pack"]),
                    norm=int(options["norm"]), ss=int("ss_init" in options),
                    ss_init=options.get("ss_init", 0), y_wbank=0, head_shift=0, y_wcol=0,
                    x_exp=0, x_pos=0, y_grp=0)
    assert instr == {"op": Opcode.MATVEC, "args": {"matvec": expected}}
    word = isa.encode(instr)
    assert 0 <= word < 1 << (4 + MATVEC_LAYOUT.size)
    assert word & 0xf == 3
    assert isa.decode(word) == instr
    assert isa.encode(isa.decode(word)) == word


def _check_weight_write(flag, fields, refused, good=()):
    """A MATVEC writing the weight banks by ``flag`` (y_wbank or y_wcol; ``fields`` and the
    fields ``good``) round-trips; each ``(bad fields, why)`` of ``refused`` is refused by the
    builder, and named by isa.illegal on the word of the bad fields with ``flag`` set by
    hand (the RTL's ILLEGAL_INSTRUCTION), unless the builder alone refuses it (y_bits, or
    both flags)."""
    instr = isa.matvec(**fields, **dict(good), **{flag: True})
    word = isa.encode(instr)
    assert word >> (4 + MATVEC_LAYOUT[flag].offset) & 1
    assert isa.decode(word) == instr and isa.illegal(word) is None
    for bad, why in refused:
        with pytest.raises(IsaError, match=why):
            isa.matvec(**{**fields, **bad, flag: True})
        if not {"y_bits", "y_wbank"} & set(bad):
            plain = isa.encode(isa.matvec(**{**fields, **bad}))
            assert isa.illegal(plain) is None
            assert re.search(why, isa.illegal(plain | 1 << (4 + MATVEC_LAYOUT[flag].offset)))


def test_matvec_into_the_weight_banks():
    """y_wbank: its slot rule, its round trip, and the combinations the builder refuses and
    isa.illegal (the RTL's ILLEGAL_INSTRUCTION) names."""
    # 4 rows x 16 lanes: blocks 0..3 fill bank 0's bytes 0..15, block 4 starts bank 1
    assert [isa.wbank_slot(b, 4, 16) for b in (0, 1, 3, 4, 15, 16)] == \
        [(0, 0), (0, 4), (0, 12), (1, 0), (3, 12), (0, 0)]
    assert isa.wbank_slot(3, 2, 8) == (0, 6) and isa.wbank_slot(4, 2, 8) == (1, 0)
    _check_weight_write("y_wbank", _matvec_fields(), good=dict(epi=isa.Epi.ROPE), refused=[
        (dict(epi=isa.Epi.RESID), "epi NONE or ROPE, not RESID"),
        (dict(epi=isa.Epi.ARGMAX), "not ARGMAX"),
        (dict(y_pack=True), "not with y_pack or ss"),
        (dict(ss_init=1), "not with y_pack or ss"),
        (dict(y_bits=9), "y_bits must be at most 8")])


def test_matvec_columns_into_the_weight_banks():
    """y_wcol: its slot rule, its round trip, the combinations the builder refuses and
    isa.illegal names, and a tile without byte writes (Config.wbytes 0)."""
    # 16 lanes, 4 words a position group: position 17, block 3 -> word (1 << 2) + 3, lane 1
    assert isa.wcol_slot(3, 17, 16, 2) == (7, 1)
    assert [isa.wcol_slot(b, p, 8, 1) for b, p in ((0, 0), (1, 7), (0, 8))] == \
        [(0, 0), (1, 7), (2, 0)]
    fields = dict(_matvec_fields(), n_chunks=2, y_index=isa.Index.POS)
    _check_weight_write("y_wcol", fields, [
        (dict(epi=isa.Epi.ROPE), "y_wcol takes epi NONE, not ROPE"),
        (dict(epi=isa.Epi.RESID), "y_wcol takes epi NONE, not RESID"),
        (dict(y_pack=True), "not with y_pack or ss"),
        (dict(ss_init=1), "not with y_pack or ss"),
        (dict(y_wbank=True), "by words .* or by columns"),
        (dict(y_bits=9), "y_bits must be at most 8")])
    word = isa.encode(isa.matvec(**fields, y_wcol=True))
    assert "byte writes" in isa.illegal(word, wbytes=False)
    assert isa.illegal(isa.encode(isa.matvec(**fields)), wbytes=False) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 0xffff))
def test_wait_round_trip(cycles):
    instr = isa.wait(cycles)
    word = isa.encode(instr)
    assert word == 1 | cycles << 4
    assert isa.decode(word) == {"op": Opcode.WAIT, "args": {"wait": {"cycles": cycles}}}


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 0xffff), st.integers(1, 0xff))
def test_loop_round_trip(count, body):
    word = isa.encode(isa.loop(count, body))
    assert word == 2 | count << 4 | body << 20
    assert isa.decode(word) == {"op": Opcode.LOOP,
                                "args": {"loop": {"count": count, "body": body}}}


def test_halt_round_trip():
    assert isa.decode(isa.encode(isa.halt())) == isa.halt()
    assert isa.halt() == {"op": Opcode.HALT, "args": {"wait": {"cycles": 0}}}


@pytest.mark.parametrize("name", [f for f in MATVEC_FIELDS if f != "y_bits"])
def test_matvec_out_of_range_names_the_field(name):
    lo, hi = _field_range(name)
    for bad in (lo - 1, hi + 1):
        with pytest.raises(IsaError,
                           match=re.escape(f"MATVEC {name} must be an integer in [{lo}, {hi}], "
                                           f"not {bad}")):
            isa.encode(isa.matvec(**_matvec_fields(**{name: bad})))
    with pytest.raises(IsaError, match=f"MATVEC {name} must be an integer"):
        isa.matvec(**_matvec_fields(**{name: 1.0}))


def test_matvec_y_bits_range():
    # the 6-bit field holds 2..63; the assembler accepts 2..32 (a 32-bit activation lane)
    for bad in (0, 1, 64):
        with pytest.raises(IsaError, match=re.escape(
                f"MATVEC y_bits must be an integer in [2, 63], not {bad}")):
            isa.matvec(**_matvec_fields(y_bits=bad))
    for bad in (33, 63):
        with pytest.raises(IsaError, match=re.escape(
                f"MATVEC y_bits must be in [2, 32], not {bad}")):
            isa.matvec(**_matvec_fields(y_bits=bad))
    with pytest.raises(IsaError, match="MATVEC y_bits must be an integer"):
        isa.matvec(**_matvec_fields(y_bits=8.0))
    for good in (2, 8, 16, 32):
        assert isa.decode(isa.encode(isa.matvec(**_matvec_fields(y_bits=good)))) == \
            isa.matvec(**_matvec_fields(y_bits=good))


@pytest.mark.parametrize("make, message", [
    (lambda: isa.wait(0), "WAIT cycles must be an integer in [1, 65535], not 0"),
    (lambda: isa.wait(65536), "WAIT cycles must be an integer in [1, 65535], not 65536"),
    (lambda: isa.wait(2.0), "WAIT cycles must be an integer in [1, 65535], not 2.0"),
    (lambda: isa.loop(0, 1), "LOOP count must be an integer in [1, 65535], not 0"),
    (lambda: isa.loop(65536, 1), "LOOP count must be an integer in [1, 65535], not 65536"),
    (lambda: isa.loop(1, 0), "LOOP body must be an integer in [1, 255], not 0"),
    (lambda: isa.loop(1, 256), "LOOP body must be an integer in [1, 255], not 256"),
])
def test_wait_loop_out_of_range(make, message):
    with pytest.raises(IsaError, match=re.escape(message)):
        isa.encode(make())


def test_encode_checks_raw_dicts():
    with pytest.raises(IsaError, match="WAIT cycles"):
        isa.encode({"op": Opcode.WAIT, "args": {"wait": {"cycles": 70000}}})
    good = isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=1,
                      n_chunks=1, q_mult=1, q_shift=0)
    good["args"]["matvec"]["q_mult"] = 1 << 15
    with pytest.raises(IsaError, match="MATVEC q_mult"):
        isa.encode(good)
    with pytest.raises(IsaError, match="takes 'loop' operands"):
        isa.encode({"op": Opcode.LOOP, "args": {"wait": {"cycles": 1}}})
    with pytest.raises(IsaError, match="operands must be"):
        isa.encode({"op": Opcode.LOOP, "args": {"loop": {"count": 1}}})


def test_execution_order_rejects_programs_that_never_halt():
    words = [isa.encode(isa.wait(1))] * 4
    with pytest.raises(IsaError, match="never reaches HALT"):
        list(isa.execution_order(words))


def test_decode_rejects_bits_above_layout():
    with pytest.raises(IsaError, match="bits set above bit 272"):
        isa.decode(1 << 273 | 0x51)
    with pytest.raises(IsaError, match="bits set above bit 272"):
        isa.decode(1 << 287)
    with pytest.raises(IsaError, match="must fit in 288 bits"):
        isa.decode(1 << 288)
    with pytest.raises(IsaError, match="must fit in 288 bits"):
        isa.decode(-1)
    # the top bit of the VOP operands (init's sign)
    assert isa.decode(1 << 262 | 4)["args"]["vop"]["init"] == -(1 << 23)


@settings(max_examples=100, deadline=None)
@given(matvec_args, st.integers(1, (1 << 15) - 1))
def test_decode_rejects_any_high_bits(fields, high):
    word = isa.encode(isa.matvec(**fields))
    with pytest.raises(IsaError, match="above bit 272"):
        isa.decode(word | high << 273)


@pytest.mark.parametrize("op", range(8, 16))
def test_decode_rejects_unknown_opcode(op):
    with pytest.raises(isa.IllegalInstruction, match=f"undefined opcode {op}$"):
        isa.decode(op)
    with pytest.raises(isa.IllegalInstruction, match=f"undefined opcode {op}$"):
        isa.decode(op | 0x1234 << 4)


def test_illegal_words_and_their_reasons():
    """isa.illegal names every kind (the RTL's check is built from the same tables):
    operand bits above an opcode's own, reserved enum values; legal words give None."""
    from tinylpu.verify.cases import illegal_words
    reasons = [isa.illegal(w) for _, w in illegal_words()]
    assert all(reasons) and len(set(reasons)) == len(reasons)
    assert "WAIT has bits set above its operands" in reasons[2]
    assert "HALT has bits set above its operands" in reasons[3]
    assert "VOP field g has the undefined value 7" in reasons[4]
    assert "MATVEC field epi has the undefined value 7" in reasons[5]
    for instr in (isa.halt(), isa.wait(65535), isa.loop(3, 2), isa.next_(7),
                  isa.vop(g=isa.GFunc.SILU, red=isa.Reduce.ARGMAX, a={"bank": 1},
                          c={"bank": 0, "index": isa.Index.TOK.value})):
        assert isa.illegal(isa.encode(instr)) is None
    with pytest.raises(isa.IllegalInstruction):
        list(isa.execution_order([isa.encode(isa.wait(1)), 9 | 1 << 20]))
    order = list(isa.execution_order([isa.encode(isa.wait(1)), 9, isa.encode(isa.halt())],
                                     illegal_stops=True))
    assert [pc for pc, _ in order] == [0, 1] and order[1][1]["op"] is None


def _order(program, **kwargs):
    return [pc for pc, _ in isa.execution_order([isa.encode(i) for i in program], **kwargs)]


def test_execution_order_loop():
    program = [isa.loop(3, 2), isa.wait(1), isa.wait(2), isa.halt()]
    assert _order(program) == [0, 1, 2, 1, 2, 1, 2, 3]
    ops = [i["op"] for _, i in isa.execution_order([isa.encode(i) for i in program])]
    assert ops == [Opcode.LOOP] + [Opcode.WAIT] * 6 + [Opcode.HALT]


def test_execution_order_more_loops():
    # count 1: the body runs once
    assert _order([isa.loop(1, 1), isa.wait(1), isa.halt()]) == [0, 1, 2]
    # body of one instruction, run 4 times, then straight-line code
    assert _order([isa.wait(1), isa.loop(4, 1), isa.wait(3), isa.wait(4), isa.halt()]) == \
        [0, 1, 2, 2, 2, 2, 3, 4]
    # a LOOP inside a body replaces the outer loop (one loop level)
    program = [isa.loop(2, 2), isa.wait(1), isa.loop(2, 1), isa.wait(2), isa.halt()]
    assert _order(program) == [0, 1, 2, 1, 2, 3, 3, 4]
    # straight line, and a start pc with wrap-around
    assert _order([isa.wait(1), isa.wait(1), isa.halt()]) == [0, 1, 2]
    assert _order([isa.wait(1), isa.halt(), isa.wait(2)], start_pc=2) == [2, 0, 1]


def test_execution_order_without_halt():
    program = [isa.encode(isa.loop(1000, 1)), isa.encode(isa.wait(2))]
    seen = []
    with pytest.raises(IsaError, match="program issued 10 instructions without reaching HALT"):
        for pc, _ in isa.execution_order(program, limit=10):
            seen.append(pc)
    assert seen == [0] + [1] * 9


def test_execution_order_propagates_decode_errors():
    with pytest.raises(IsaError, match="undefined opcode 9"):
        list(isa.execution_order([isa.encode(isa.wait(1)), 9]))


def test_duration():
    assert isa.duration(isa.matvec(**_matvec_fields(n_blocks=3, n_chunks=5))) == 15
    assert isa.duration(isa.matvec(**_matvec_fields(n_blocks=65535, n_chunks=4095))) == \
        65535 * 4095
    assert isa.duration(isa.wait(7)) == 7
    assert isa.duration(isa.wait(65535)) == 65535
    assert isa.duration(isa.loop(100, 3)) == 1
    assert isa.duration(isa.halt()) == 1
    # zero-sized fields of a raw word count as 2**width, like the hardware counters
    raw = isa.decode(3 | 0 << 56 | 2 << 72)
    assert isa.matvec_dims(raw["args"]["matvec"]) == (65536, 2)
    assert isa.duration(raw) == 131072
    raw = isa.decode(3 | 3 << 56 | 0 << 72)
    assert isa.matvec_dims(raw["args"]["matvec"]) == (3, 4096)
    assert isa.duration(isa.decode(1)) == 1      # WAIT 0 from a raw word occupies one cycle


# VOP and NEXT ----------------------------------------------------------------------------

def test_vop_and_next_encodings_by_hand():
    # field offsets (LSB first) from the layout in isa.py: opcode 4 | g 3 | red 2 | out 2 |
    # s 16 | n 16 | s_pos | n_pos | a 59 | b 60 | c 46 | mult s16 | shift s7 | sat 6 | init s24
    instr = isa.vop(g=isa.GFunc.SILU, red=isa.Reduce.MAX, out=isa.OutFunc.RECIP, s=1, n=9,
                    n_pos=True,
                    a=dict(space=isa.Space.WROW, bank=2, base=0x3ffff, index=isa.Index.TOK,
                           istride=0xfff, js=1, ks=2),
                    b=dict(mode=isa.BMode.SCALE, bank=3, base=5, index=isa.Index.POS,
                           istride=6, js=7, ks=8),
                    c=dict(bank=1, base=11, index=isa.Index.POS, istride=12, js=13),
                    mult=-1, shift=-64, sat=63, init=-2)
    a = 1 | 2 << 1 | 0x3ffff << 3 | 2 << 21 | 0xfff << 23 | 1 << 35 | 2 << 47
    b = 3 | 3 << 2 | 5 << 4 | 1 << 22 | 6 << 24 | 7 << 36 | 8 << 48
    c = 1 | 11 << 2 | 1 << 20 | 12 << 22 | 13 << 34
    expected = (4 | 3 << 4 | 1 << 7 | 2 << 9 | 1 << 11 | 9 << 27 | 0 << 43 | 1 << 44
                | a << 45 | b << 104 | c << 164 | 0xffff << 210 | 0x40 << 226 | 63 << 233
                | 0xfffffe << 239)
    word = isa.encode(instr)
    assert word == expected
    assert isa.decode(word) == instr
    assert isa.encode(isa.next_(0x1234)) == 5 | 0x1234 << 4
    assert isa.decode(5 | 0xffff << 4) == isa.next_(0xffff)
    assert isa.next_(7) == {"op": Opcode.NEXT, "args": {"next": {"target": 7}}}


def test_opcodes_4_and_5_decode():
    assert isa.decode(5)["op"] == Opcode.NEXT
    assert isa.decode(5 | 0x1234 << 4) == isa.next_(0x1234)
    raw = isa.decode(4)
    assert raw["op"] == Opcode.VOP
    args = raw["args"]["vop"]
    assert (args["g"], args["red"], args["out"], args["s"], args["n"]) == (0, 0, 0, 0, 0)
    assert args["a"] == dict(space=0, bank=0, base=0, index=0, istride=0, js=0, ks=0)
    assert args["c"] == dict(bank=0, base=0, index=0, istride=0, js=0)


@pytest.mark.parametrize("word", [4 | 5 << 4, 4 | 3 << 7])
def test_decode_rejects_undefined_vop_codes_with_isa_error(word):
    with pytest.raises(IsaError):
        isa.decode(word)


vop_operands = st.fixed_dictionaries(dict(
    g=st.sampled_from(list(isa.GFunc)), red=st.sampled_from(list(isa.Reduce)),
    s=st.integers(1, 0xffff), n=st.integers(1, 0xffff), n_pos=st.booleans(),
    a=st.fixed_dictionaries(dict(space=st.sampled_from([0, 1]), bank=st.integers(0, 1),
                                 base=st.integers(0, (1 << 18) - 1), index=st.integers(0, 2),
                                 istride=st.integers(0, 4095), js=st.integers(0, 4095),
                                 ks=st.integers(0, 4095))),
    b=st.fixed_dictionaries(dict(mode=st.sampled_from([1, 2]), bank=st.integers(0, 3),
                                 base=st.integers(0, (1 << 18) - 1), index=st.integers(0, 2),
                                 istride=st.integers(0, 4095), js=st.integers(0, 4095),
                                 ks=st.integers(0, 4095))),
    c=st.fixed_dictionaries(dict(bank=st.integers(0, 3), base=st.integers(0, (1 << 18) - 1),
                                 index=st.integers(0, 2), istride=st.integers(0, 4095),
                                 js=st.integers(0, 4095))),
    mult=st.integers(-(1 << 15), (1 << 15) - 1), shift=st.integers(-64, 63),
    sat=st.integers(1, 63), init=st.integers(-(1 << 23), (1 << 23) - 1)))


@settings(max_examples=100, deadline=None)
@given(vop_operands)
def test_vop_round_trip(fields):
    instr = isa.vop(**fields)
    word = isa.encode(instr)
    assert 0 <= word < 1 << 273
    assert word & 0xf == 4
    assert isa.decode(word) == instr
    assert isa.encode(isa.decode(word)) == word
    args = instr["args"]["vop"]
    assert args["g"] == fields["g"].value and args["s"] == fields["s"]
    assert args["a"] == fields["a"] and args["c"] == fields["c"]


def test_vop_field_ranges():
    c = dict(bank=1)
    for kw, name in [(dict(mult=1 << 15), "mult"), (dict(shift=64), "shift"),
                     (dict(shift=-65), "shift"), (dict(init=1 << 23), "init"),
                     (dict(s=1 << 16), "s"), (dict(n=-1), "n")]:
        with pytest.raises(IsaError, match=f"VOP {name} must be an integer"):
            isa.vop(a=dict(bank=0), c=c, **kw)
    with pytest.raises(IsaError, match="VOP a base must be an integer"):
        isa.vop(a=dict(base=1 << 18), c=c)
    with pytest.raises(IsaError, match="VOP c js must be an integer"):
        isa.vop(a={}, c=dict(js=4096))
    with pytest.raises(IsaError, match="operand a has no field 'mode'"):
        isa.vop(a=dict(mode=0), c=c)
    with pytest.raises(IsaError, match=re.escape("NEXT target must be an integer in [0, 65535]")):
        isa.next_(1 << 16)


def test_vop_and_next_duration_and_latency():
    a, c = dict(bank=0), dict(bank=1)
    assert isa.duration(isa.vop(s=3, n=5, a=a, c=c)) == 15
    assert isa.duration(isa.vop(s=3, n=5, a=a, c=c), pos=9) == 15
    # s_pos / n_pos: S / N is pos + 1
    assert isa.duration(isa.vop(s=3, n_pos=True, a=a, c=c), pos=4) == 15
    assert isa.duration(isa.vop(s_pos=True, n=2, a=a, c=c), pos=0) == 2
    assert isa.duration(isa.vop(s_pos=True, n_pos=True, a=a, c=c), pos=6) == 49
    assert isa.vop_dims(isa.vop(s=3, n_pos=True, a=a, c=c)["args"]["vop"], 4) == (3, 5)
    # zero fields of a raw word count as 2**16
    assert isa.vop_dims(isa.decode(4)["args"]["vop"]) == (65536, 65536)
    assert isa.duration(isa.decode(4 | 2 << 11)) == 2 * 65536
    assert isa.duration(isa.next_(0)) == isa.NEXT_CYCLES == 2
    # stages c .. c+8: MULSHR lands 8 cycles after the element's read (registered in c+7);
    # the scalar unit adds its latency after the reduction (stage c+5): 6 + 25 (isqrt) + 16
    # (recip), and its result lands the cycle after its done cycle (+ 1); NORM's total enters
    # the norm unit in c+6 and lands NORM_LAT later
    assert isa.LAT_V == 8 and isa.ISQRT_LAT == 25 and isa.RECIP_LAT == 16
    assert isa.vop_latency(isa.vop(a=a, c=c)["args"]["vop"]) == 8
    assert isa.vop_latency(isa.vop(out=isa.OutFunc.RECIP, a=a, c=c)["args"]["vop"]) == 23
    assert isa.vop_latency(isa.vop(out=isa.OutFunc.RSQRT, a=a, c=c)["args"]["vop"]) == 48
    assert isa.vop_latency(isa.vop(out=isa.OutFunc.NORM, a=a, c=c)["args"]["vop"]) == 11


def test_execution_order_next():
    program = [isa.wait(1), isa.next_(0), isa.halt()]
    assert _order(program) == [0, 1, 2]           # no token loop: NEXT falls through
    calls = []

    def on_next(pc, instr):
        calls.append((pc, instr["args"]["next"]["target"]))
        return len(calls) < 3

    assert _order(program, on_next=on_next) == [0, 1, 0, 1, 0, 1, 2]
    assert calls == [(1, 0)] * 3
    # the target wraps modulo the program depth: target 5 of a 3-word program is pc 2
    program = [isa.next_(5), isa.wait(1), isa.halt()]
    assert _order(program, on_next=lambda pc, instr: True) == [0, 2]
    # a token loop that never stops is cut off at the instruction limit
    program = [isa.wait(1), isa.next_(0), isa.halt()]
    with pytest.raises(IsaError, match="program issued 50 instructions without reaching HALT"):
        _order(program, on_next=lambda pc, instr: True, limit=50)


def test_qk_and_pv_round_trip_and_durations():
    qk = isa.qk(q_addr=3, k_bank=0, k_addr=5, s_bank=1, s_addr=9, shift=14, n_pos=True,
                kv_shift=1, head_shift=[3, 0, 15])
    pv = isa.pv(v_bank=1, v_addr=7, s_bank=0, s_addr=9, y_bank=1, y_addr=2, d_blocks=16,
                shift=14, n=5, kv_shift=2)
    for instr in (qk, pv):
        assert isa.decode(isa.encode(instr)) == instr
    assert isa.encode(qk) & 0xf == isa.Opcode.QK.value == 6
    assert isa.encode(pv) & 0xf == isa.Opcode.PV.value == 7
    # QK: one K row a position (q is a weight word); PV: a score read ahead, then a V row each
    assert [isa.duration(qk, p) for p in (0, 9)] == [1, 10]
    assert [isa.duration(pv, p) for p in (0, 9)] == [1 + 5, 1 + 5]
    # head slot h's score shift: shift less its entry, at least 0 (slots past 16 wrap)
    assert isa.qk_shifts(qk["args"]["qk"], 4) == [11, 14, 0, 14]
    assert isa.head_shifts([1, 2]) == 0x21 and isa.head_shift_entry(0x21, 17) == 2
    with pytest.raises(IsaError, match="at most 16 entries of 0..15"):
        isa.qk(q_addr=0, k_bank=0, k_addr=0, s_bank=0, s_addr=0, shift=0, n=1,
               head_shift=[16])
    assert [isa.block_head_slot(b, 4, 16) for b in (0, 1, 2, 3, 15)] == [0, 0, 1, 1, 7]
    with pytest.raises(IsaError, match="PV needs N >= 1 positions, not 0"):
        isa.pv(v_bank=0, v_addr=0, s_bank=1, s_addr=0, y_bank=0, y_addr=0, d_blocks=1,
               shift=0)
    with pytest.raises(IsaError, match=r"QK k_shift must be an integer in \[0, 15\], not 16"):
        isa.qk(q_addr=0, k_bank=0, k_addr=0, k_shift=16, s_bank=0, s_addr=0, shift=0, n=1)


def test_attention_layout_functions():
    # 16 lanes: heads of 8 lanes, two a row; 4 heads share a K/V head with kv_shift 2
    assert [isa.att_head(1, l, 16) for l in (0, 7, 8, 15)] == [2, 2, 3, 3]
    # two rows: element l % 8 of K/V head att_head >> kv_shift, in the row's natural order
    assert [isa.att_kv_index(1, l, 8, 2, 1) for l in (0, 3, 4, 7)] == [4, 7, 4, 7]
    assert [isa.att_kv_index(1, l, 8, 2, 0) for l in (0, 4)] == [(2 * 4) % 16, (3 * 4) % 16]
    # four rows or more: a half of the MAC's own lane, low for rows 0, 1, high for 2, 3
    assert [isa.att_kv_index(r, 5, 16, 4, 1) for r in range(4)] == [10, 10, 11, 11]
    assert [isa.att_kv_index(r, 5, 16, 4, 3) for r in range(4)] == [10, 10, 11, 11]
    assert [isa.kv_slot(r, l, 16, 4) for r, l in ((0, 0), (1, 7), (2, 8), (3, 15))] == \
        [(0, 0), (0, 0), (1, 1), (1, 1)]
    # y_pack: lane j of a block takes results j and j + R/2
    assert isa.halves(isa.pack_block([1, 2, 3, 4])).tolist() == [1, 3, 2, 4]
    assert isa.halves(isa.pack_block([-1, 2])).tolist() == [-1, 2]
    # RoPE of a packed block: R/4 angles twice, from the half of the word the block picks
    assert isa.rope_entries(4, False, 1) == [0, 1]
    assert isa.rope_entries(4, True, 0) == [0, 0] and isa.rope_entries(4, True, 1) == [1, 1]
    assert isa.rope_entries(8, True, 3) == [2, 3, 2, 3]
    assert isa.rope_entries(2, True, 1) == [0]
    # a score word: L / R = 4 positions of 2R = 8 heads
    assert isa.score_slot(5, 3, 16, 4) == (1, 4 + 1, 1)
    words = np.array([[0x7fff8000, -1, 0x00010002]])
    assert isa.halves(words).tolist() == [[-32768, 32767, -1, -1, 2, 1]]
    assert isa.pack_halves(isa.halves(words)).tolist() == [[0x7fff8000, -1, 0x00010002]]


@pytest.mark.parametrize("bad", [dict(epi=isa.Epi.ROPE), dict(epi=isa.Epi.SILU_GATE),
                                 dict(y_pack=True)])
def test_matvec_ss_needs_unpacked_lanes(bad):
    with pytest.raises(IsaError, match="MATVEC ss sums the squares of R unpacked lanes"):
        isa.matvec(**_matvec_fields(), ss_init=5, **bad)


def test_stored_word_keeps_the_legality_in_the_last_bit():
    # the program memory's view of a word (the RTL's sequencer reads the bit, rtl/router.py
    # writes it): a legal word unchanged, an illegal one with ILLEGAL_BIT set, whatever made
    # it illegal; a word with that bit set is illegal already and stays as it is
    legal = isa.encode(isa.wait(3))
    assert isa.stored_word(legal) == legal
    assert isa.ILLEGAL_BIT == isa.INSTR_BITS - 1 >= isa.INSTR_LAYOUT.size
    for word in (9, legal | 1 << isa.INSTR_LAYOUT.size, 1 << isa.ILLEGAL_BIT):
        assert isa.illegal(word) is not None
        assert isa.stored_word(word) == word | 1 << isa.ILLEGAL_BIT
    # the configuration's own rules count: QK is legal with attention, not without
    qk = isa.encode(isa.qk(q_addr=0, k_bank=0, k_addr=0, s_bank=1, s_addr=0, shift=9, n=1))
    assert isa.stored_word(qk) == qk
    assert isa.stored_word(qk, attention=False) == qk | 1 << isa.ILLEGAL_BIT
