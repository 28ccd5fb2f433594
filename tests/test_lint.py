"""`make lint`: the generated Verilog is clean under verilator -Wall with the listed waivers."""

import pytest

from tinylpu import Config
from tinylpu.flow.rtlsim import assembled_nets, lint, write_verilog


@pytest.mark.parametrize("cfg", [Config(), Config(lanes=4, rows=1, act_banks=4, adepth=16,
                                                  data_bits=6, acc_bits=20, wtail=64)],
                         ids=lambda c: c.ident)
def test_generated_verilog_is_lint_clean(cfg, tmp_path):
    assert lint(write_verilog(cfg, root=tmp_path)) == []


def test_waivers_do_not_hide_other_problems(tmp_path):
    # a file named like the generated one, with a blocking assignment in a clocked block
    path = tmp_path / "tinylpu_tile.v"
    path.write_text("module tinylpu_tile(input clk, input d, output reg q);\n"
                    "  always @(posedge clk) q = d;\nendmodule\n")
    warnings = lint(path)
    assert any("BLKSEQ" in line for line in warnings), warnings


@pytest.mark.parametrize("divisor,depths", [(16, {}), (4, {"in_depth": 256, "out_depth": 2})],
                         ids=["d16-default", "d4-small"])
def test_bridge_verilog_is_lint_clean(divisor, depths, tmp_path):
    from tinylpu.rtl.bridge import generate_verilog
    path = tmp_path / "tinylpu_bridge.v"
    generate_verilog(divisor, path, **depths)
    assert lint(path, top="tinylpu_bridge") == []


def test_bridge_waivers_do_not_hide_other_problems(tmp_path):
    path = tmp_path / "tinylpu_bridge.v"
    path.write_text("module tinylpu_bridge(input clk, input d, output reg q);\n"
                    "  always @(posedge clk) q = d;\nendmodule\n")
    assert any("BLKSEQ" in line for line in lint(path, top="tinylpu_bridge"))


# Icarus's cost of a net assembled from pieces: its width for each reader, on every change of
# a piece (tinylpu.flow.rtlsim.assembled_nets). 720 x 1,002 made the tile 50x slower; the
# largest left on the default tile is 36 x 49 (a write in flight, one port each).
ASSEMBLED_NET_LIMIT = 4096


@pytest.mark.parametrize("cfg", [Config(), Config(lanes=8, rows=2, wdepth=256, adepth=64, pdepth=32)],
                         ids=lambda c: c.ident)
def test_no_wide_net_is_assembled_from_pieces_for_many_readers(cfg, tmp_path):
    costly = [row for row in assembled_nets(write_verilog(cfg, root=tmp_path).read_text())
              if row[0] > ASSEMBLED_NET_LIMIT]
    assert costly == []


def test_assembled_nets_counts_width_times_readers_across_ports():
    text = ("module top(clk, a, b, y);\n  input [7:0] a;\n  input [7:0] b;\n  wire [15:0] w;\n"
            "  assign w[7:0] = a;\n  assign w[15:8] = b;\n  assign \\$3  = { a, b };\n"
            "  wire [15:0] \\$3 ;\n  sub s (\n    .w(w)\n  );\n"
            "  assign y = w[3] & \\$3 [2];\nendmodule\n"
            "module sub(w);\n  input [15:0] w;\n  wire [15:0] w;\n"
            + "".join(f"  assign x{i} = w[{i}];\n" for i in range(5)) + "endmodule\n")
    rows = assembled_nets(text)
    assert rows == [(16 * 6, "top", "w", 16, 2, 6), (16 * 1, "top", "\\$3", 16, 2, 1)]
