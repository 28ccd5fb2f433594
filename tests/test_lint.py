"""`make lint`: the generated Verilog is clean under verilator -Wall with the listed waivers."""

import pytest

from tinylpu import Config
from tinylpu.flow.rtlsim import lint, write_verilog


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
