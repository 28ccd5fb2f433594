"""Per-unit profile of one decode step, from the compiler's schedule (no simulation).

The tile has one issue slot: the instructions of a step (pc 0 up to and including NEXT)
issue back to back, each holding the slot for :func:`tinylpu.isa.duration` cycles, while
the pipelines behind it drain. :func:`schedule` places every instruction of the step at its
issue cycle and derives, from the latencies in :mod:`tinylpu.isa`, when each unit works on
it:

* MAC array: MATVEC, QK and PV for their issue slot, ``ISSUE_LAT`` later (one read a cycle;
  every unit's times count from its first read, the cycle after the issue);
* epilogue / write-back (the output unit, requantizer to write port): each result (a MATVEC
  row block, a QK position's scores, a PV drain block) from the cycle it enters the unit
  (``LAT_RESULT`` after its last read; PV: ``PV_DRAIN + j`` after its last V read) to the
  cycle it is written (``LAT_OUT`` later);
* PV drain: the head sums through the reciprocal pipeline, from the cycle after the last V
  read until the last block enters the output unit;
* vector unit: VOP for its issue slot, ``ISSUE_LAT`` later;
* scalar unit: a VOP's RSQRT / RECIP output, from its start (``V_RESULT`` after the last
  element's read) to the landing of its result (:func:`tinylpu.isa.vop_latency`);
* norm unit: the RMSNorm scale of a MATVEC with ``ss`` or of a NORM VOP, from its total's
  entry to the norm register's write (``NORM_LAT`` cycles; an ``ss`` MATVEC's lands
  ``LAT_SS_NORM`` after its last read); the per-block squares are not shown;
* sequencer WAIT (and LOOP): issue slots in which nothing issues work;
* NEXT: the token step.

:func:`run_profile` prints each unit's busy cycles and share of the step and draws a Gantt
chart (``tinylpu profile``, ``make bench``).

The tile counts the same busy cycles (the busy counters, :class:`tinylpu.host.Counter`;
all but the norm and scalar units): :meth:`Profile.counters` is a step's prediction of them,
equal to the difference of the golden model's counters at the end of the step's NEXT and of
the previous one's (``RunResult.next_counters``).
"""

__all__ = ["UNITS", "COUNTED", "ProfileError", "Slot", "Profile", "schedule", "attention_macs",
           "parse_positions", "default_positions", "format_tables", "plot", "run_profile"]

import dataclasses
import pathlib

from tinylpu import host, isa
from tinylpu.compiler import CompileError

MAC, EPI, DRAIN, NORM, VU, SCALAR, WAIT, NEXT = UNITS = (
    "MAC array", "epilogue / write-back", "PV drain (reciprocals)", "norm unit (RMSNorm)",
    "vector unit", "scalar unit", "sequencer WAIT", "NEXT")
# the busy counter that counts each unit's busy cycles (the norm and scalar units have none)
COUNTED = {MAC: host.Counter.MAC, EPI: host.Counter.OUT, DRAIN: host.Counter.DRAIN,
           VU: host.Counter.VU, WAIT: host.Counter.WAIT, NEXT: host.Counter.NEXT}


class ProfileError(CompileError):
    """A position the program was not compiled for, or a schedule that disagrees with the
    cycle model."""


@dataclasses.dataclass
class Slot:
    pc: int
    kind: str              # e.g. "MATVEC ROPE", "QK", "VOP NORM", "WAIT"
    issue: int             # cycle of the step (0: the step's first issue)
    duration: int
    busy: dict             # unit -> [(start, end)], half-open, merged


@dataclasses.dataclass
class Profile:
    pos: int
    cycles: int            # of the step: = DecoderProgram.step_cycles(pos)
    slots: list
    busy: dict             # unit -> [(start, end)] of all slots, merged
    macs: int              # useful MACs of the step (matrices and attention)
    mac_units: int

    def busy_cycles(self, unit):
        return sum(min(e, self.cycles) - max(s, 0) for s, e in self.busy[unit]
                   if s < self.cycles and e > 0)

    def counters(self):
        """The step's busy cycles as the tile's busy counters count them (a dict by
        :data:`tinylpu.host.COUNTERS` name; ``cycles``: the step's cycles)."""
        out = {name: 0 for name in host.COUNTERS}
        out["cycles"] = self.cycles
        for unit, counter in COUNTED.items():
            out[counter.name.lower()] = self.busy_cycles(unit)
        return out

    def share(self, unit):
        return self.busy_cycles(unit) / self.cycles

    @property
    def utilization(self):
        """Useful MACs / (step cycles x MAC units)."""
        return self.macs / (self.cycles * self.mac_units)


def _merge(intervals):
    out = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _results(entries):
    """Output-unit intervals of results entering in the cycles ``entries``."""
    return [(c, c + isa.LAT_OUT + 1) for c in entries]


def _kind(instr):
    op = instr["op"]
    if op == isa.Opcode.MATVEC:
        epi = isa.Epi(instr["args"]["matvec"]["epi"])
        return "MATVEC" if epi == isa.Epi.NONE else f"MATVEC {epi.name}"
    if op == isa.Opcode.VOP:
        out = isa.OutFunc(instr["args"]["vop"]["out"])
        return "VOP" if out == isa.OutFunc.MULSHR else f"VOP {out.name}"
    return op.name


def _busy(instr, t, d, pos):
    """unit -> intervals of an instruction issued in cycle t holding the slot d cycles."""
    op = instr["op"]
    if op == isa.Opcode.NEXT:
        return {NEXT: [(t, t + d)]}
    if op not in (isa.Opcode.MATVEC, isa.Opcode.QK, isa.Opcode.PV, isa.Opcode.VOP):
        return {WAIT: [(t, t + d)]}            # WAIT, LOOP
    t += isa.ISSUE_LAT                         # the unit's first read (registered issue)
    last = t + d - 1                           # the cycle of its last read
    if op == isa.Opcode.MATVEC:
        args = instr["args"]["matvec"]
        nb, nc = isa.matvec_dims(args)
        busy = {MAC: [(t, t + d)],
                EPI: _results(t + (b + 1) * nc - 1 + isa.LAT_RESULT for b in range(nb))}
        if args.get("ss"):                     # RMSNorm's scale into the norm register
            done = last + isa.LAT_SS_NORM
            busy[NORM] = [(done - isa.NORM_LAT, done)]
        return busy
    if op == isa.Opcode.QK:
        n = isa.positions(instr["args"]["qk"], pos)
        first = t + d - n                      # the first K read, after latching q
        return {MAC: [(t, t + d)],
                EPI: _results(first + p + isa.LAT_RESULT for p in range(n))}
    if op == isa.Opcode.PV:
        blocks = instr["args"]["pv"]["d_blocks"] or 256
        drained = last + isa.PV_DRAIN           # block 0 enters the output unit
        return {MAC: [(t, t + d)], DRAIN: [(last + 1, drained + blocks)],
                EPI: _results(drained + j for j in range(blocks))}
    if op == isa.Opcode.VOP:
        args = instr["args"]["vop"]
        lat = isa.vop_latency(args)
        busy = {VU: [(t, t + d)]}
        out = isa.OutFunc(args["out"])
        if out in (isa.OutFunc.NORM, isa.OutFunc.RSQRT, isa.OutFunc.RECIP):
            # through the norm unit or the scalar unit
            unit = NORM if out == isa.OutFunc.NORM else SCALAR
            busy[unit] = [(last + isa.V_RESULT, last + lat)]
    return busy


def attention_macs(mc, pos):
    """MACs of QK and PV at position ``pos``: every head's q.k and p.v over pos + 1 keys."""
    return mc.n_heads * mc.head_size * 2 * (pos + 1) * mc.n_layers


def schedule(program, pos):
    """The :class:`Profile` of the decode step at position ``pos`` of a
    :class:`tinylpu.compiler.decoder.DecoderProgram`."""
    if not 0 <= pos < program.positions:
        raise ProfileError(f"position {pos} is outside the compiled range "
                           f"0..{program.positions - 1}")
    slots, t = [], 0
    for pc, instr in isa.execution_order(program.program):
        if instr["op"] == isa.Opcode.HALT:
            raise ProfileError("the program reaches HALT without a NEXT: no decode step")
        d = isa.duration(instr, pos)
        busy = {unit: _merge(iv) for unit, iv in _busy(instr, t, d, pos).items()}
        slots.append(Slot(pc, _kind(instr), t, d, busy))
        t += d
        if instr["op"] == isa.Opcode.NEXT:
            break
    if t != program.step_cycles(pos):
        raise ProfileError(f"the schedule of position {pos} takes {t} cycles, the cycle model "
                           f"says {program.step_cycles(pos)}")
    busy = {unit: _merge(iv for s in slots for iv in s.busy.get(unit, ())) for unit in UNITS}
    macs = program.macs_useful + attention_macs(program.qm.config, pos)
    return Profile(pos, t, slots, busy, macs, program.cfg.macs)


def default_positions(program):
    """0 and 255, or the last compiled position if that is smaller."""
    return sorted({0, min(255, program.positions - 1)})


def parse_positions(text):
    """``"0,255"`` -> [0, 255]."""
    try:
        out = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        out = []
    if not out:
        raise ProfileError(f"--positions must be comma-separated positions like 0,255, "
                           f"not {text!r}")
    return out


def format_tables(profiles):
    """Markdown: each unit's busy cycles and share, and the issue slot by instruction kind."""
    head = "".join(f" pos {p.pos}: busy cycles | share |" for p in profiles)
    lines = ["| unit |" + head, "|---|" + "---|---|" * len(profiles)]
    for unit in UNITS:
        lines.append(f"| {unit} |" + "".join(f" {p.busy_cycles(unit):,} | "
                                             f"{100 * p.share(unit):.1f}% |" for p in profiles))
    lines.append("| **step** |" + "".join(f" **{p.cycles:,}** | 100% |" for p in profiles))
    kinds = list(dict.fromkeys(s.kind for p in profiles for s in p.slots))
    head = "".join(f" pos {p.pos}: n | cycles | share |" for p in profiles)
    lines += ["", "| issue slot |" + head, "|---|" + "---|---|---|" * len(profiles)]
    for kind in kinds:
        cells = ""
        for p in profiles:
            mine = [s.duration for s in p.slots if s.kind == kind]
            cells += f" {len(mine)} | {sum(mine):,} | {100 * sum(mine) / p.cycles:.1f}% |"
        lines.append(f"| {kind} |" + cells)
    lines.append("")
    lines += [f"Position {p.pos}: {p.cycles:,} cycles; MAC-array utilization "
              f"{100 * p.utilization:.1f}% = {p.macs:,} useful MACs / ({p.cycles:,} cycles x "
              f"{p.mac_units} MACs)." for p in profiles]
    return "\n".join(lines)


def plot(profiles, path, title=""):
    """A Gantt chart, one panel a position, one row a unit, bars colored by instruction
    kind; written to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    kinds = list(dict.fromkeys(s.kind for p in profiles for s in p.slots))
    cmap = plt.get_cmap("tab20")
    others = [k for k in kinds if k not in ("WAIT", "NEXT")]
    colors = {k: cmap(i % 20) for i, k in enumerate(others)}
    colors.update(WAIT="lightgrey", NEXT="black")
    fig, axes = plt.subplots(len(profiles), 1, figsize=(14, 1 + 2.6 * len(profiles)),
                             sharex=True, squeeze=False)
    for ax, p in zip(axes[:, 0], profiles):
        for y, unit in enumerate(UNITS):
            for kind in kinds:
                bars = [(s, e - s) for slot in p.slots if slot.kind == kind
                        for s, e in slot.busy.get(unit, ())]
                if bars:
                    # an edge keeps a bar of a few cycles visible (NEXT, short WAITs)
                    ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=colors[kind],
                                   edgecolors=colors[kind], linewidth=0.6)
        ax.set_yticks(range(len(UNITS)), UNITS)
        ax.set_ylim(len(UNITS) - 0.5, -0.5)
        ax.set_title(f"position {p.pos}: {p.cycles:,} cycles, MAC-array utilization "
                     f"{100 * p.utilization:.1f}%", fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("cycle of the decode step")
    axes[-1, 0].set_xlim(0, 1.01 * max(p.cycles for p in profiles))
    fig.legend(handles=[Patch(color=colors[k], label=k) for k in kinds], loc="center right",
               fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_profile(program, positions=None, out_dir="build/profile", name="", out=print):
    """Profile ``positions`` (default: :func:`default_positions`); print the tables, write
    ``profile.md`` and ``profile.png`` to ``out_dir``. Returns the profiles."""
    positions = default_positions(program) if positions is None else positions
    profiles = [schedule(program, pos) for pos in positions]
    title = (f"TinyLPU decode step{', ' + name if name else ''}: tile {program.cfg.ident}, "
             f"{program.cfg.rows}x{program.cfg.lanes} MAC array")
    table = format_tables(profiles)
    out(title + "\n\n" + table)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.md").write_text(title + "\n\n" + table + "\n")
    try:
        png = plot(profiles, out_dir / "profile.png", title)
    except ImportError:
        out(f"wrote {out_dir}/profile.md (no chart: matplotlib is not installed)")
    else:
        out(f"wrote {out_dir}/profile.md, {png}")
    return profiles
