"""Instruction encoding, decoding and sequencing (pure Python)."""

import re

import pytest
from amaranth.hdl import Shape
from amaranth.lib import data
from hypothesis import given, settings, strategies as st

from tinylpu import isa
from tinylpu.isa import IsaError, Opcode

MATVEC_LAYOUT = data.Layout.cast(isa.MatvecArgs)
MATVEC_FIELDS = [name for name, _ in MATVEC_LAYOUT]


def _field_range(name):
    shape = Shape.cast(MATVEC_LAYOUT[name].shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    lo = 1 if name in ("n_blocks", "n_chunks") else 0
    return lo, (1 << shape.width) - 1


def _matvec_fields(**overrides):
    fields = dict(w_base=0, x_bank=0, x_addr=0, y_bank=0, y_addr=0, n_blocks=1, n_chunks=1,
                  q_mult=1, q_shift=0)
    fields.update(overrides)
    return fields


matvec_args = st.fixed_dictionaries(
    {name: st.integers(*_field_range(name)) for name in MATVEC_FIELDS})


def test_layout_widths_and_ranges():
    widths = {name: Shape.cast(field.shape).width for name, field in MATVEC_LAYOUT}
    assert widths == dict(w_base=16, x_bank=2, x_addr=16, y_bank=2, y_addr=16, n_blocks=16,
                          n_chunks=12, q_mult=16, q_shift=6)
    assert _field_range("q_mult") == (-32768, 32767)
    assert _field_range("n_chunks") == (1, 4095)
    assert _field_range("q_shift") == (0, 63)
    assert isa.INSTR_LAYOUT.size == 4 + sum(widths.values()) == 106
    assert isa.INSTR_BITS == 128
    assert isa.LAT_WRITE == 4
    assert isa.DRAIN == 5


def test_encodings_by_hand():
    assert isa.encode(isa.halt()) == 0
    assert isa.encode(isa.wait(5)) == 0x51
    assert isa.encode(isa.wait(0xffff)) == 0xffff1
    assert isa.encode(isa.loop(3, 2)) == 2 | (3 << 4) | (2 << 20)
    fields = dict(w_base=1, x_bank=3, x_addr=2, y_bank=1, y_addr=5, n_blocks=7,
                  n_chunks=4095, q_mult=-32768, q_shift=63)
    expected = (3 | 1 << 4 | 3 << 20 | 2 << 22 | 1 << 38 | 5 << 40 | 7 << 56 | 4095 << 72
                | 0x8000 << 84 | 63 << 100)
    assert isa.encode(isa.matvec(**fields)) == expected
    assert isa.encode(isa.matvec(**_matvec_fields(q_mult=-1))) == \
        3 | 1 << 56 | 1 << 72 | 0xffff << 84


@settings(max_examples=200, deadline=None)
@given(matvec_args)
def test_matvec_round_trip(fields):
    instr = isa.matvec(**fields)
    assert instr == {"op": Opcode.MATVEC, "args": {"matvec": fields}}
    word = isa.encode(instr)
    assert 0 <= word < 1 << 106
    assert word & 0xf == 3
    assert isa.decode(word) == instr
    assert isa.encode(isa.decode(word)) == word


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


@pytest.mark.parametrize("name", MATVEC_FIELDS)
def test_matvec_out_of_range_names_the_field(name):
    lo, hi = _field_range(name)
    for bad in (lo - 1, hi + 1):
        with pytest.raises(IsaError,
                           match=re.escape(f"MATVEC {name} must be an integer in [{lo}, {hi}], "
                                           f"not {bad}")):
            isa.encode(isa.matvec(**_matvec_fields(**{name: bad})))
    with pytest.raises(IsaError, match=f"MATVEC {name} must be an integer"):
        isa.matvec(**_matvec_fields(**{name: 1.0}))


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
    with pytest.raises(IsaError, match="has bits set above bit 105"):
        isa.decode(1 << 106 | 0x51)
    with pytest.raises(IsaError, match="has bits set above bit 105"):
        isa.decode(1 << 127)
    with pytest.raises(IsaError, match="must fit in 128 bits"):
        isa.decode(1 << 128)
    with pytest.raises(IsaError, match="must fit in 128 bits"):
        isa.decode(-1)


@settings(max_examples=100, deadline=None)
@given(matvec_args, st.integers(1, (1 << 22) - 1))
def test_decode_rejects_any_high_bits(fields, high):
    word = isa.encode(isa.matvec(**fields))
    with pytest.raises(IsaError, match="above bit 105"):
        isa.decode(word | high << 106)


@pytest.mark.parametrize("op", range(4, 16))
def test_decode_rejects_unknown_opcode(op):
    with pytest.raises(IsaError, match=f"unknown opcode {op}$"):
        isa.decode(op)
    with pytest.raises(IsaError, match=f"unknown opcode {op}$"):
        isa.decode(op | 0x1234 << 4)


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
    with pytest.raises(IsaError, match="unknown opcode 9"):
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
