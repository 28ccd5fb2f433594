"""tinylpu.flow.coverage on a hand-written Verilator coverage sample (no simulation): merging,
the per-block summary, the way back to the Amaranth source, the report's files and errors;
and rtlsim's coverage build mode (flags and directory) with a stand-in cocotb runner."""

import json
import pathlib
import zlib

import pytest

from tinylpu.flow import coverage as cov

VERILOG = r"""module tinylpu_tile(clk, rst, a);
  (* src = "/w/tinylpu/rtl/top.py:10" *)
  input clk;
  reg [1:0] \$3 ;
  (* src = "/w/tinylpu/rtl/top.py:12" *)
  reg [1:0] count = 2'h0;
  always @(posedge clk)
    count <= \$3 ;
  always @* begin
    if (\$auto$verilog_backend.cc:2355:dump_module$1 ) begin end
    \$3 = count;
    if (rst) begin
      \$3 = 2'h0;
    end
  end
  assign a = rst ? (* src = "/w/tinylpu/rtl/top.py:20" *) 1'h0 : count[0];
endmodule
module \tinylpu_tile.seq (clk, en);
  (* src = "/w/tinylpu/rtl/sequencer.py:40" *)
  reg [3:0] pc = 4'h0;
  always @(posedge clk)
    if (en) begin
      pc <= 4'h1;
    end
endmodule
"""


def key(f, line, kind, hier, comment, span=None):
    column = str(zlib.crc32(comment.encode()) % 997)   # a column per point, as Verilator has
    items = [("f", f), ("l", str(line)), ("n", column), ("t", kind), ("page", f"v_{kind}/{hier}"),
             ("o", comment)] + ([("S", span)] if span else []) + [("h", hier)]
    return "".join(f"\x01{k}\x02{v}" for k, v in items)


def sample(tmp_path):
    """Two runs of one design: ``(dat_dir, verilog_path)``."""
    design = tmp_path / "l8r2-test" / "tinylpu_tile.cov.v"
    design.parent.mkdir()
    design.write_text(VERILOG)
    f = str(design)
    top, seq, epi = "tinylpu_tile", "tinylpu_tile.seq", "tinylpu_tile.epi$393"
    trigger = "__024auto__024verilog_backend__02ecc__03a2355__03adump_module__0241"
    a = {key(f, 9, "line", top, "block", "9-15"): 5,
         key(f, 12, "line", top, "if", "12-13"): 0,
         key(f, 10, "branch", top, "if", "10"): 0,            # Yosys' trigger: left out
         key(f, 10, "branch", top, "else"): 5,
         key(f, 12, "branch", top, "if", "12-13"): 0,
         key(f, 12, "branch", top, "else"): 5,
         key(f, 16, "branch", top, "cond_then"): 2,
         key(f, 16, "branch", top, "cond_else"): 0,
         key(f, 5, "toggle", top, f"{trigger}:0->1"): 0,     # left out
         key(f, 6, "toggle", top, "count[0]:0->1"): 3,
         key(f, 6, "toggle", top, "count[0]:1->0"): 2,
         key(f, 6, "toggle", top, "count[1]:0->1"): 0,
         key(f, 6, "toggle", top, "count[1]:1->0"): 0,
         key(f, 4, "toggle", top, "__0243[0]:0->1"): 1,
         key(f, 4, "toggle", top, "__0243[0]:1->0"): 0,
         key(f, 22, "line", seq, "if", "22-23"): 7,
         key(f, 20, "toggle", seq, "pc[0]:0->1"): 1,
         key(f, 20, "toggle", seq, "pc[0]:1->0"): 1,
         key(f, 20, "toggle", seq, "pc[3]:0->1"): 0,
         key(f, 20, "toggle", seq, "pc[3]:1->0"): 0,
         key(f, 20, "toggle", seq + ".sub", "x:0->1"): 1,
         key(f, 20, "toggle", seq + ".sub", "x:1->0"): 0,
         **{key(f, 20, "toggle", seq, f"q{r}_1:{d}"): 0 for r in (0, 1) for d in ("0->1", "1->0")},
         key(f, 3, "toggle", epi, "halves___05F0___05F1[0]:0->1"): 2}
    b = {key(f, 9, "line", top, "block", "9-15"): 4,
         key(f, 12, "line", top, "if", "12-13"): 0,
         key(f, 20, "toggle", seq, "pc[3]:0->1"): 1}
    dat = tmp_path / "dat"
    cov.write_dat(a, dat / "a.dat")
    cov.write_dat(b, dat / "b.dat")
    return dat, design


def test_merge_adds_equal_points_and_keeps_the_rest(tmp_path):
    dat, design = sample(tmp_path)
    counts = cov.merge(sorted(dat.glob("*.dat")))
    assert len(counts) == 27
    assert counts[key(str(design), 9, "line", "tinylpu_tile", "block", "9-15")] == 9
    assert counts[key(str(design), 20, "toggle", "tinylpu_tile.seq", "pc[3]:0->1")] == 1
    cov.write_dat(counts, tmp_path / "merged.dat")           # round trip
    assert cov.read_dat(tmp_path / "merged.dat") == counts
    assert (tmp_path / "merged.dat").read_text().startswith("# SystemC::Coverage-3\nC '\x01f")


def test_names_and_blocks():
    assert cov.decode_name("__024101") == "$101"
    assert cov.decode_name("halves___05F0___05F1[0]:0->1") == "halves__0__1[0]:0->1"
    assert cov.decode_name("qk__02468__02ekv_shift") == "qk$68.kv_shift"
    assert cov.block_of("tinylpu_tile") == "tinylpu_tile"
    assert cov.block_of("tinylpu_tile.router.abank0") == "router"
    assert cov.block_of("tinylpu_tile.epi$393") == "epi"
    assert cov._ranges({0, 1, 2, 5, 7, 8}) == "8:7,5,2:0"
    assert cov._instance("tinylpu_tile.epi$393.sub$7") == "tinylpu_tile.epi.sub"
    assert cov._family("q12_3") == "q*_*" and cov._family("$17") == "$*"
    assert cov.short_src("/a/b/tinylpu/rtl/mac.py:4|/a/b/tinylpu/rtl/mac.py:4") == "rtl/mac.py:4"


def test_summary_per_block(tmp_path):
    dat, design = sample(tmp_path)
    every = cov.points(cov.merge(sorted(dat.glob("*.dat"))))
    sources = {str(design): cov.VerilogSource(VERILOG)}
    pts = [p for p in every if not cov.artifact(p, sources)]
    assert len(every) - len(pts) == 3
    s = cov.summarize(pts)
    assert list(s["blocks"]) == ["tinylpu_tile", "epi", "seq"]       # the top first

    def numbers(r):
        return {k: (v["covered"], v["total"]) for k, v in r.items()}

    assert numbers(s["blocks"]["tinylpu_tile"]) == {"line": (1, 2), "branch": (2, 4),
                                                    "toggle": (3, 6), "toggle_named": (2, 4)}
    assert numbers(s["blocks"]["seq"]) == {"line": (1, 1), "branch": (0, 0),
                                           "toggle": (4, 10), "toggle_named": (4, 10)}
    assert numbers(s["blocks"]["epi"]) == {"line": (0, 0), "branch": (0, 0), "toggle": (1, 1),
                                           "toggle_named": (1, 1)}
    assert numbers(s["total"]) == {"line": (2, 3), "branch": (2, 4), "toggle": (8, 17),
                                   "toggle_named": (7, 15)}
    assert s["total"]["toggle"]["percent"] == 47.06
    assert list(s["configs"]) == ["l8r2-test"]
    table = cov.format_table(s)
    assert table[0].startswith("| block") and table[1].startswith("|---")
    assert "| seq " in table[4] and "1/1 100.0%" in table[4] and "4/10 40.0%" in table[4]
    assert "| epi " in table[3] and " - |" in table[3]
    assert table[-1].startswith("| all") and "2/4 50.0%" in table[-1]
    assert "8/17 47.1%" in table[-1]
    assert cov.format_table(s, by="configs", first="configuration")[2].startswith(
        "| l8r2-test ")


def test_uncovered_points_name_their_amaranth_source(tmp_path):
    dat, design = sample(tmp_path)
    pts = cov.points(cov.merge(sorted(dat.glob("*.dat"))))
    src = cov.VerilogSource(VERILOG)
    # the `if (rst)` branch drives $3, which feeds the register `count`
    assert src.driven(12) == ("count", "rtl/top.py:12")
    assert src.driven(22) == ("pc", "rtl/sequencer.py:40")
    assert src.driven(16) == ("a", "rtl/top.py:20")          # ?: names its expression
    sources = {str(design): src}
    pts = [p for p in pts if not cov.artifact(p, sources)]
    lines = cov.uncovered_lines(pts, sources)
    assert list(lines) == ["tinylpu_tile"]
    g, h = lines["tinylpu_tile"]
    assert (g["signal"], g["src"], g["uncovered"], g["total"]) == ("count", "rtl/top.py:12", 2, 4)
    assert sorted(e["what"] for e in g["examples"]) == ["branch if", "line if"]
    assert {(e["verilog_line"], e["text"]) for e in g["examples"]} == {(12, "if (rst) begin")}
    assert (h["signal"], h["src"], h["uncovered"], h["total"]) == ("a", "rtl/top.py:20", 1, 2)
    toggles = cov.uncovered_toggles(pts, sources)
    assert [(s["hier"], s["signal"], s["src"], s["signals"], s["dead"], s["uncovered"],
             s["total"]) for b in ("tinylpu_tile", "seq") for s in toggles[b]] == [
        ("tinylpu_tile", "count", "rtl/top.py:12", 1, 0, 2, 4),
        ("tinylpu_tile.seq", "q*_*", "rtl/sequencer.py:40", 2, 2, 4, 4),     # a family
        ("tinylpu_tile.seq", "pc", "rtl/sequencer.py:40", 1, 0, 1, 4),
        ("tinylpu_tile.seq.sub", "x", "rtl/sequencer.py:40", 1, 0, 1, 2)]
    assert toggles["tinylpu_tile"][0]["examples"] == [{"signal": "tinylpu_tile.count",
                                                       "never_toggled_bits": "1"}]
    assert [e["signal"] for e in toggles["seq"][0]["examples"]] == [
        "tinylpu_tile.seq.q0_1", "tinylpu_tile.seq.q1_1"]
    assert toggles["seq"][1]["examples"][0]["never_toggled_bits"] == ""     # 1->0 only
    assert "$auto" not in str(toggles)


def test_report_writes_its_files(tmp_path):
    dat, _ = sample(tmp_path)
    printed = []
    out = tmp_path / "out"
    summary = cov.report(dat, out, annotate=False, out=printed.append)
    assert summary["runs"] == 2 and summary["check"] is None
    assert summary["excluded"] == {"line": 0, "branch": 2, "toggle": 1}
    assert json.loads((out / "summary.json").read_text())["total"]["line"]["covered"] == 2
    assert (out / "summary.txt").read_text().splitlines() == printed
    assert len(cov.read_dat(out / "merged.dat")) == 27
    assert any(l.startswith("| seq") for l in printed)
    assert any("tinylpu_tile.count (rtl/top.py:12; 1 signal) in 1 of 1 configs" in l
               for l in printed)
    assert any("tinylpu_tile.seq.q*_* (rtl/sequencer.py:40; 2 signals, 2 never toggled at all)"
               in l for l in printed)


@pytest.mark.skipif(cov._verilator_coverage() is None, reason="no verilator_coverage on PATH")
def test_covered_count_equals_verilator_coverage(tmp_path):
    """verilator_coverage reads the merged file back and counts the same covered points; it
    annotates the Verilog."""
    dat, _ = sample(tmp_path)
    out = tmp_path / "out"
    summary = cov.report(dat, out, out=lambda line: None)
    assert summary["check"] == ("covered points == verilator_coverage --rank (13, before "
                                "exclusions)")
    annotated = (out / "annotated" / "l8r2-test" / "tinylpu_tile.cov.v").read_text()
    assert "%000000" in annotated


def test_errors(tmp_path):
    with pytest.raises(cov.CoverageError, match="no coverage files"):
        cov.report(tmp_path / "none", tmp_path / "out", out=print)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.dat").write_text("# SystemC::Coverage-3\nC 'nonsense' 1x\n")
    with pytest.raises(cov.CoverageError, match=r"x\.dat:2: not a Verilator coverage point"):
        cov.report(bad, tmp_path / "out", out=print)
    assert not (tmp_path / "out").exists()


def test_rtlsim_coverage_build_mode(tmp_path, monkeypatch):
    """TINYLPU_COVERAGE=1: the Verilator build keeps its flags, adds line and toggle coverage,
    builds from the Verilog with src attributes into verilator-cov/; Icarus is unchanged."""
    import cocotb_tools.runner

    from tinylpu import Config

    from tinylpu.flow import rtlsim

    built = []

    class Runner:
        def build(self, **kwargs):
            built.append(kwargs)

    monkeypatch.setattr(cocotb_tools.runner, "get_runner", lambda sim: Runner())
    monkeypatch.setattr(rtlsim, "write_verilog", lambda cfg, root, src=False:
                        pathlib.Path(root) / ("src.v" if src else "plain.v"))
    cfg = Config(lanes=8, rows=2)
    for value, enabled in (("", False), ("0", False), ("1", True)):
        monkeypatch.setenv("TINYLPU_COVERAGE", value)
        assert rtlsim.coverage_enabled() == enabled
        rtlsim.build(cfg, "verilator", root=tmp_path)
    plain, _, instrumented = built
    watch = rtlsim.TB_DIR / "watch.vlt"         # the signals tests read inside the tile
    assert plain["sources"] == [watch, tmp_path / "plain.v"]
    assert plain["build_dir"] == tmp_path / "verilator"
    assert "--coverage-line" not in plain["build_args"]
    assert instrumented["sources"] == [watch, tmp_path / "src.v"]
    assert instrumented["build_dir"] == tmp_path / "verilator-cov"
    assert instrumented["build_args"] == plain["build_args"] + ["--coverage-line",
                                                                "--coverage-toggle"]
    assert {"-O3", "--no-public-flat-rw"} <= set(instrumented["build_args"])
    rtlsim.build(cfg, "icarus", root=tmp_path)
    assert built[-1]["sources"] == [tmp_path / "plain.v"]
    assert built[-1]["build_dir"] == tmp_path / "icarus"
    assert rtlsim.coverage_dat_dir(tmp_path) == tmp_path / "coverage" / "dat"
