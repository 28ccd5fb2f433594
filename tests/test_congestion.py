"""The wire-demand map of a placed design (RUDY): the arithmetic on a hand-made placement,
the block names, bad input, and `tinylpu pnr --place-only` on a counter with real nextpnr."""

import json

import numpy as np
import pytest

from tinylpu.flow.congestion import (CongestionError, block_of, format_congestion,
                                     load_placed, plot, rudy)
from tinylpu.flow.pnr import PnrError, format_result, parse_log_estimate, place_and_route


def _cell(kind, bel, **connections):
    return {"type": kind, "attributes": {"NEXTPNR_BEL": bel} if bel else {},
            "port_directions": {}, "connections": connections}


# three placed cells and one that is not; nets 2 (a -> b), 3 (a -> c), 4 (b, c: one tile),
# 5 (a -> the unplaced cell: one placed pin)
MODULE = {
    "cells": {
        "a": _cell("TRELLIS_FF", "X1/Y1/SLICEA", Q=[2, 3, 5]),
        "b": _cell("MULT18X18D", "X4/Y1/MULT18_R13C5", A0=[2], B0=[4]),
        "c": _cell("DP16KD", "X4/Y1/DP16KD", DI0=[3, 4]),
        "d": _cell("TRELLIS_COMB", None, A=[5]),
    },
    "netnames": {
        "$abc$1$n2": {"bits": [2]}, "mac.p0_1[3]": {"bits": [2]},
        "router.abank0.mem.0.8_DI_1": {"bits": [3]},
        "$auto$4": {"bits": [4]}, "v9_0[1]": {"bits": [5]},
    },
}


def test_rudy_spreads_each_net_over_its_box():
    cong = rudy(MODULE)
    # nets 2 and 3 each span x 1..4 of row 1: (4 + 1) / (4 * 1) on each of those tiles
    expected = np.zeros((2, 5))
    expected[1, 1:5] = 2 * 5 / 4
    assert np.array_equal(cong.demand, expected)
    assert cong.nets == 2
    assert set(cong.blocks) == {"mac", "router.abank0"}
    assert np.array_equal(cong.blocks["mac"], expected / 2)
    assert cong.dsp == [(4, 1)] and cong.bram == [(4, 1)]
    stats = cong.stats()
    assert stats == {"total": 10.0, "max": 2.5, "p99": 2.5, "mean": 2.5, "tiles": 4}
    assert cong.shares() == [("mac", 0.5, 0.5), ("router.abank0", 0.5, 0.5)]
    text = "\n".join(format_congestion(cong))
    assert "2 nets over 4 tiles): total 10, mean 2.5, 99th percentile 2.5, max 2.5" in text
    assert "  mac                          50.0%   50.0%" in text


@pytest.mark.parametrize("net, block", [
    ("mac.p3_1[4]", "mac"),
    ("router.abank0.mem.0.1_DI", "router.abank0"),
    ("epi$664.silu_even0_TRELLIS_FF_Q", "epi"),     # Yosys' number of an unnamed instance
    ("\\vu.s7.red_LUT4_D_Z", "vu.s7"),
    ("v9_0[3]", "top"),
    ("$abc$123$n4", "?"),
])
def test_block_of_a_net(net, block):
    assert block_of(net) == block


def test_bad_placements_are_errors(tmp_path):
    unplaced = {"cells": {"d": MODULE["cells"]["d"]}, "netnames": {}}
    with pytest.raises(CongestionError, match="no placed cells"):
        rudy(unplaced)
    with pytest.raises(CongestionError, match="not in the expected form"):
        rudy({"cells": MODULE["cells"]})
    bad = tmp_path / "placed.json"
    bad.write_text('{"modules": {}}')
    with pytest.raises(CongestionError, match="placed.json: not a placed design"):
        load_placed(bad)


def test_log_estimate():
    text = ("Info: Max frequency for clock 'clk': 21.05 MHz (PASS at 12.00 MHz)\n"
            "Info: Max frequency for clock 'clk': 25.63 MHz (FAIL at 30.00 MHz)\n")
    assert parse_log_estimate(text) == {"clk": (25.63, 30.0)}
    with pytest.raises(PnrError, match="no Fmax estimate"):
        parse_log_estimate("Info: Placing..\n")


def test_counter_places_only_and_maps(tmp_path):
    path = tmp_path / "count.v"
    path.write_text("module count(input clk, output reg [15:0] q);\n"
                    "always @(posedge clk) q <= q + 1;\nendmodule\n")
    result = place_and_route(path, "count", "ecp5", freq=100, timeout_min=5, route=False)
    assert not result.routed and result.placed.exists()
    assert result.fmax["clk"][0] > 100 and result.fmax["clk"][1] == 100
    assert "after placement, nextpnr's estimate" in "\n".join(format_result(result))
    assert "Routing" not in result.log.read_text()
    module = load_placed(result.placed)
    cong = rudy(module)
    placed = sum("NEXTPNR_BEL" in c["attributes"] for c in module["cells"].values())
    assert placed >= 16 and cong.nets > 0 and cong.stats()["total"] > 0
    assert set(cong.blocks) <= {"top", "?"}
    plot(cong, tmp_path / "map.png", "count")
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
