"""Registers whose data fields have no reset.

The tile's synchronous reset reaches every flip-flop that has one: on an ECP5 that is the
LSR input of the flip-flop's slice, and the reset a net to every such slice across the die
(docs/fpga.md, "Why the larger tiles do not route"). A register that only carries data,
whose every use is qualified by a valid bit that *is* reset, needs none: after a reset its
stale value is never used. :func:`staged` builds such a register of a structure: its
control fields reset, the rest reset-less. Plain data registers are
``Signal(..., reset_less=True)`` where they are declared.

Simulation starts every register at its ``init`` value either way; the tile's reset-in-a-run
tests (tb/test_stress.py) check that nothing of a run cut short by a reset reaches the next.
"""

__all__ = ["staged", "by_field"]

from amaranth.hdl import Cat, Shape, ShapeCastable, Signal
from amaranth.lib import data


def staged(layout, name, control=("valid",)):
    """A register of the structure ``layout`` named ``name``: a view of one signal a field
    (``<name>__<field>``), the fields in ``control`` reset with the tile, the others
    reset-less. ``layout``: a :class:`amaranth.lib.data.StructLayout`, or an
    :class:`~amaranth.lib.data.ArrayLayout` of them (element i's fields
    ``<name>__<i>__<field>``)."""
    return _staged(layout, name, control, depth=2)


def by_field(layout, name):
    """A combinational value of the structure ``layout``: :func:`staged`'s one signal a field,
    so that a field assigned or read alone is that signal. A plain ``Signal(layout)`` whose
    fields are assigned one by one is, in Verilog, a concatenation of its fields that every
    reader of a field selects from, and Icarus converts the whole concatenation for each
    reader whenever one field changes (docs/architecture.md, "Simulation speed")."""
    return _staged(layout, name, tuple(layout.members) if isinstance(layout, data.StructLayout)
                   else tuple(layout.elem_shape.members), depth=2)


class _Staged(data.View):
    """A view of the concatenation of ``parts`` (field name or element index -> its signal or
    element view) whose fields are those parts themselves: the same value as a plain view's
    slice of the concatenation, but Amaranth's simulator reads and writes one field's signal
    instead of evaluating the whole concatenation (five times faster on the vector unit)."""

    def __init__(self, layout, parts):
        self._signals = [s for p in parts.values()
                         for s in (p._signals if isinstance(p, _Staged) else [p])]
        super().__init__(layout, Cat(*self._signals))
        self._parts = parts

    def __getitem__(self, key):
        if isinstance(key, int) and key < 0:
            key += len(self._parts)
        if not isinstance(key, (str, int)) or key not in self._parts:
            return super().__getitem__(key)     # a slice or a dynamic index: the plain view's
        part = self._parts[key]
        shape = self.shape().elem_shape if isinstance(key, int) else self.shape()[key].shape
        if isinstance(part, _Staged) or not isinstance(shape, ShapeCastable):
            return part
        return shape(part)


def _staged(layout, name, control, depth):
    # depth: the frames between the Signal and the caller of staged (its source location)
    if isinstance(layout, data.ArrayLayout):
        assert isinstance(layout.elem_shape, data.StructLayout), layout
        return _Staged(layout, {i: _staged(layout.elem_shape, f"{name}__{i}", control, depth + 1)
                                for i in range(layout.length)})
    assert isinstance(layout, data.StructLayout), layout
    assert all(c in layout.members for c in control), (control, layout)
    parts, at = {}, 0
    for field_name, field in sorted(layout, key=lambda item: item[1].offset):
        assert field.offset == at, "a structure's fields are contiguous"
        parts[field_name] = Signal(Shape.cast(field.shape), name=f"{name}__{field_name}",
                                   reset_less=field_name not in control, src_loc_at=depth)
        at += field.width
    return _Staged(layout, parts)
