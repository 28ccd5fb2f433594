"""The register-to-register path estimate (tinylpu.flow.paths) on hand-made and synthesized
netlists."""

import json

import pytest

from tinylpu.cli import main
from tinylpu.flow import paths
from tinylpu.flow.synth import synthesize


def _cell(kind, conns, outputs):
    return {"type": kind, "connections": conns,
            "port_directions": {p: "output" if p in outputs else "input" for p in conns}}


def _ff(d, q):
    return _cell("TRELLIS_FF", {"CLK": [1], "DI": [d], "Q": [q]}, {"Q"})


def _lut(inputs, z):
    conns = {p: [b] for p, b in zip("ABCD", inputs)}
    conns["Z"] = [z]
    return _cell("LUT4", conns, {"Z"})


def test_two_luts_between_registers():
    # a.q (10) -> LUT -> 11 -> LUT (with b.q, 12) -> 13 -> c.DI; and a single LUT to d
    module = {
        "cells": {"a": _ff(2, 10), "b": _ff(3, 12), "l1": _lut([10], 11),
                  "l2": _lut([11, 12], 13), "c": _ff(13, 20), "l3": _lut([12], 14),
                  "d": _ff(14, 21)},
        "netnames": {"a.q": {"bits": [10]}, "b.q": {"bits": [12]}, "mid": {"bits": [11]},
                     "c.d": {"bits": [13]}, "x": {"bits": [14]}},
    }
    ends = paths.estimate(module)
    worst = ends[0]
    assert (worst.cell, worst.port, worst.start) == ("c", "DI", "a")
    # clock to output, two LUTs each behind a net, the last net, setup
    expected = 0.5 + 2 * (0.25 + paths.NET) + paths.NET + 0.1
    assert worst.delay == pytest.approx(expected)
    assert worst.nets == ["a.q", "mid", "c.d"]
    assert ends[1].cell == "d" and ends[1].delay == pytest.approx(0.5 + 0.25 + 2 * paths.NET
                                                                + 0.1)
    counts, rows = paths.summarize(ends, threshold=3.0)
    assert counts[8] == 0 and len(rows) == 1 and rows[0][1] == 1
    lines = paths.format_paths(ends, threshold=3.0)
    assert "worst 3.8 ns" in lines[0] and "inputs slower than 25 ns: 0" in lines[1]


def test_carry_chain_links_cost_no_net():
    # a 4-bit carry chain: two CCU2C, CIN -> COUT -> CIN, the sum of the second into c
    ccu = lambda a0, cin, s1, cout: _cell(
        "CCU2C", {"A0": [a0], "CIN": [cin], "S1": [s1], "COUT": [cout]}, {"S1", "COUT"})
    module = {"cells": {"a": _ff(2, 10), "c0": ccu(10, "0", 30, 11), "c1": ccu("0", 11, 12, 31),
                        "c": _ff(12, 20)},
              "netnames": {}}
    worst = paths.estimate(module)[0]
    # net into A0, A0 -> COUT, COUT -> CIN (no net), CIN -> S1, the net into c
    assert worst.delay == pytest.approx(0.5 + paths.NET + 0.45 + 0.3 + paths.NET + 0.1)


def test_synthesized_adder_is_slower_than_an_and(tmp_path):
    src = tmp_path / "two.v"
    src.write_text("""module two(input clk, input [31:0] a, input [31:0] b,
                                 output reg [31:0] s, output reg t);
  reg [31:0] ra, rb;
  always @(posedge clk) begin ra <= a; rb <= b; s <= ra + rb; t <= ra[0] & rb[0]; end
endmodule
""")
    synthesize(src, "two", "ecp5", netlist="two.json")
    ends = paths.estimate(paths.load_netlist(tmp_path / "two.json"))
    (t,) = [e for e in ends if e.cell.startswith("t_")]
    # the sum's carry chain through 32 bits against one LUT
    assert ends[0].cell.startswith("s_") and ends[0].start.startswith("ra")
    assert ends[0].delay > t.delay + 1.0


def test_unreadable_netlist_is_named(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"modules": {}}))
    with pytest.raises(paths.PathError, match="x.json: not a Yosys JSON netlist"):
        paths.load_netlist(bad)


def test_cli_paths_needs_ecp5(capsys):
    assert main(["synth", "--target", "ice40", "--paths"]) == 2
    assert "--paths estimates ECP5 paths: add --target ecp5" in capsys.readouterr().err
