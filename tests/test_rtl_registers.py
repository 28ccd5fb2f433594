"""rtl.registers.staged: a structure's control fields reset, its data fields keep their value."""

import enum

from amaranth.hdl import Module, ResetInserter, Signal, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from tinylpu.rtl.registers import staged


class Kind(enum.Enum):
    A = 0
    B = 2


LAYOUT = data.StructLayout({"valid": 1, "kind": Kind, "value": signed(12), "last": 1})


def _simulate(reg, source, rst):
    m = Module()
    m.d.sync += reg.eq(source)
    m = ResetInserter(rst)(m)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    seen = {}

    async def bench(ctx):
        ctx.set(source, {"valid": 1, "kind": Kind.B, "value": -5, "last": 1})
        await ctx.tick()
        seen["loaded"] = ctx.get(reg)
        ctx.set(rst, 1)
        await ctx.tick()
        seen["reset"] = ctx.get(reg)

    sim.add_testbench(bench)
    sim.run()
    return seen


def test_only_the_control_fields_reset():
    reg = staged(LAYOUT, "s3", control=("valid", "last"))
    source, rst = Signal(LAYOUT), Signal()
    seen = _simulate(reg, source, rst)
    loaded, after = seen["loaded"], seen["reset"]
    assert (loaded.valid, loaded.kind, loaded.value, loaded.last) == (1, Kind.B.value, -5, 1)
    # the reset cycle: valid and last cleared, kind and value loaded again (no reset)
    assert (after.valid, after.kind, after.value, after.last) == (0, Kind.B.value, -5, 0)
    # a field is its own signal, not a slice of the whole register (the simulator's speed)
    assert reg.value is reg.as_value().parts[2] and reg.value.name == "s3__value"
    assert reg.kind is reg.as_value().parts[1]


def test_an_array_of_structures_resets_each_element_s_control_fields():
    layout = data.ArrayLayout(LAYOUT, 3)
    reg = staged(layout, "snap")
    names = [s.name for s in reg.as_value().parts]
    assert names[:4] == ["snap__0__valid", "snap__0__kind", "snap__0__value", "snap__0__last"]
    assert len(names) == 12
    resets = {s.name: not s.reset_less for s in reg.as_value().parts}
    assert [n for n, r in resets.items() if r] == [f"snap__{i}__valid" for i in range(3)]
    assert reg[1].value is reg[-2].value is reg.as_value().parts[6]
    assert reg[Signal(2)].shape() == LAYOUT            # a dynamic index: a slice, as a view's


def test_a_control_field_the_layout_lacks_is_refused():
    try:
        staged(LAYOUT, "x", control=("enable",))
    except AssertionError:
        return
    raise AssertionError("a missing control field was accepted")
