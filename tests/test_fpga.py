"""The board build (tinylpu.flow.fpga, `tinylpu fpga`): Amaranth's build plan for the board run
with stand-ins for Yosys, nextpnr and ecppack (the flow, the files, the report, no
bitstream when timing fails), and (slow) one real build of the small board tile."""

import json
import sys
import time

import pytest

import tinylpu.flow.fpga
from tinylpu import Config
from tinylpu.cli import main
from tinylpu.flow.fpga import BOARD_CONFIG, BOARDS, FpgaError, build, check_request, format_report
from tinylpu.rtl.sram import YOSYS_NO_RW_CHECK

TINY = Config.parse(BOARD_CONFIG)

# a stand-in for each tool: writes the files the next step reads, records its arguments
FAKE = r'''#!{python}
import json, pathlib, sys
tool, args = {tool!r}, sys.argv[1:]
pathlib.Path(tool + ".args").write_text(json.dumps(args))
def arg(name):
    return args[args.index(name) + 1]
if tool == "yosys":
    pathlib.Path("tinylpu_board.json").write_text("{{}}")
elif tool == "nextpnr-ecp5":
    fmax = json.loads(pathlib.Path("fake-fmax.json").read_text())
    pathlib.Path(arg("--report")).write_text(json.dumps({{
        "fmax": fmax,
        "utilization": {{"TRELLIS_COMB": {{"used": 23772, "available": 83640}},
                         "TRELLIS_FF": {{"used": 7937, "available": 83640}},
                         "MULT18X18D": {{"used": 43, "available": 156}},
                         "DP16KD": {{"used": 9, "available": 208}},
                         "EHXPLLL": {{"used": 1, "available": 4}},
                         "TRELLIS_IO": {{"used": 10, "available": 365}}}},
        "critical_paths": []}}))
    pathlib.Path(arg("--log")).write_text("Info: HeAP Placer Time: 10.50s\n"
                                          "Info: SA placement time 20.25s\n"
                                          "Info: Router1 time 30.00s\n")
    pathlib.Path(arg("--textcfg")).write_text("")
    if pathlib.Path("hang").exists():
        pathlib.Path(arg("--log")).write_text("Info: Routing..\n"
            "Info:       1000 |       82        917 |   82   917 |    122102|\n")
        import time
        time.sleep(60)
elif tool == "ecppack":
    pathlib.Path(arg("--bit")).write_bytes(b"\xff\x00")
'''


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    paths = {}
    for tool, wheel in tinylpu.flow.fpga.TOOLS.items():
        path = tools / wheel
        path.write_text(FAKE.format(python=sys.executable, tool=tool))
        path.chmod(0o755)
        paths[wheel] = str(path)
    monkeypatch.setattr(tinylpu.flow.fpga, "find_tool", lambda name: paths.get(name))
    out = tmp_path / "out"
    out.mkdir()

    def fmax(**clocks):
        (out / "fake-fmax.json").write_text(json.dumps(
            {clock: {"achieved": a, "constraint": c} for clock, (a, c) in clocks.items()}))
    return out, fmax


def test_a_build_that_meets_timing_writes_the_bitstream_and_report(fake_tools):
    out, fmax = fake_tools
    fmax(**{"$glbnet$bridge.bridge.clk": (41.0, 30.0), "$glbnet$clk25_0__io": (250.0, 25.0)})
    result = build("ulx3s-85f", TINY, 30, out=out)
    assert result.meets_timing and result.bitstream == out / "tinylpu_board.bit"
    assert result.bitstream.read_bytes() == b"\xff\x00"
    assert (result.pll.clki_div, result.pll.clkfb_div, result.pll.clkop_div) == (5, 6, 20)
    assert result.divisor == 10
    # Amaranth's build plan: the LPF has the board's pins and the oscillator's frequency
    lpf = (out / "tinylpu_board.lpf").read_text()
    for site in ('"clk25_0__io" SITE "G2"', '"uart_0__rx__io" SITE "M1"',
                 '"uart_0__tx__io" SITE "L4"', '"button_pwr_0__io" SITE "D6"',
                 '"led_0__io" SITE "B2"', '"led_3__io" SITE "D2"'):
        assert f"LOCATE COMP {site};" in lpf
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    assert "EHXPLLL" in (out / "tinylpu_board.il").read_text()
    # the host-only memories' collisions are undefined in the RTLIL flow too
    ys = (out / "tinylpu_board.ys").read_text().splitlines()
    assert ys[ys.index("read_rtlil tinylpu_board.il") + 1] == YOSYS_NO_RW_CHECK
    assert 'attribute \\no_rw_check' in (out / "tinylpu_board.il").read_text()
    args = json.loads((out / "nextpnr-ecp5.args").read_text())
    assert args[:5] == ["--report", "tinylpu_board-report.json", "--timing-allow-fail",
                        "--placer", "static"]
    assert "--quiet" not in args and "--85k" in args and "CABGA381" in args
    assert "--compress" in json.loads((out / "ecppack.args").read_text())
    text = (out / "report.txt").read_text()
    assert text == "\n".join(format_report(result)) + "\n"
    assert "tile clock 30 MHz (EHXPLLL from 25 MHz: CLKI_DIV 5, CLKFB_DIV 6, CLKOP_DIV 20" in text
    assert "UART 3000000 baud (10 cycles per bit)" in text
    assert "LEDs: running led 0, done led 1, error led 2, heartbeat led 3" in text
    assert "Fmax (post-route) of $glbnet$bridge.bridge.clk: 41.00 MHz; meets the 30 MHz" in text
    assert "LUT4   23772 /  83640  28.4%  (TRELLIS_COMB)" in text
    assert "PLL       1 /      4  25.0%  (EHXPLLL)" in text
    assert "of which placement 30.8 s, routing 30.0 s, pack" in text
    assert f"bitstream: {out / 'tinylpu_board.bit'}" in text


def test_failing_timing_writes_no_bitstream_and_exits_1(fake_tools, capsys):
    out, fmax = fake_tools
    fmax(**{"$glbnet$bridge.bridge.clk": (27.5, 30.0)})
    status = main(["fpga", "--config", BOARD_CONFIG, "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err == ("tinylpu fpga: error: timing fails ($glbnet$bridge.bridge.clk "
                            "27.50 MHz < 30 MHz); no bitstream\n")
    assert "FAILS the 30 MHz target" in captured.out
    assert "bitstream: none (timing fails)" in captured.out
    assert not (out / "ecppack.args").exists() and not (out / "tinylpu_board.bit").exists()


def test_a_report_without_the_tile_clock_is_an_error(fake_tools):
    out, fmax = fake_tools
    fmax(**{"$glbnet$clk25_0__io": (250.0, 25.0)})
    with pytest.raises(FpgaError, match="nextpnr constrained no clock to the tile's 30 MHz"):
        build("ulx3s-85f", TINY, 30, out=out)


def test_the_second_board_has_its_pins_and_pll(fake_tools):
    out, fmax = fake_tools
    fmax(**{"$glbnet$bridge.bridge.clk": (41.0, 30.0)})
    result = build("ecpix5-85f", TINY, 30, out=out)
    assert (result.pll.clki_div, result.pll.clkfb_div, result.pll.clkop_div) == (10, 3, 20)
    lpf = (out / "tinylpu_board.lpf").read_text()
    assert 'LOCATE COMP "uart_0__rx__io" SITE "R26";' in lpf
    assert 'LOCATE COMP "rst_0__io" SITE "AB1";' in lpf
    assert 'FREQUENCY PORT "clk100_0__io" 100000000.0 HZ;' in lpf
    assert "--um5g-85k" in json.loads((out / "nextpnr-ecp5.args").read_text())


@pytest.mark.parametrize("board, mhz, baud, message", [
    ("arty", 30, 3_000_000, "unknown board 'arty': one of ulx3s-85f, ecpix5-85f"),
    ("ulx3s-85f", 48, 3_000_000, "ulx3s-85f: the ECP5 PLL cannot make 48 MHz from 25 MHz"),
    ("ulx3s-85f", 25, 3_000_000, "ulx3s-85f: baud 3000000 at clock 25000000 Hz: divisor 8"),
    ("ecpix5-85f", 30, 4_000_000, "divisor 8 is off by 6.2%"),
    ("ulx3s-85f", float("nan"), 3_000_000, "tile clock must be a positive number of MHz"),
])
def test_impossible_requests(board, mhz, baud, message):
    with pytest.raises(FpgaError, match=message):
        check_request(board, mhz, baud, 60)


def test_boards_name_four_leds():
    for board in BOARDS.values():
        assert len(board.leds) == len(board.led_names) == 4


@pytest.mark.slow
def test_small_board_tile_builds_for_the_ulx3s(tmp_path):
    result = build("ulx3s-85f", TINY, 30, out=tmp_path, timeout_min=60)
    assert result.meets_timing, "\n".join(format_report(result))
    assert result.bitstream.stat().st_size > 100_000
    used = {cell: result.pnr.utilisation[cell][0] for cell in ("TRELLIS_COMB", "TRELLIS_FF",
                                                               "MULT18X18D", "DP16KD",
                                                               "EHXPLLL")}
    assert all(used.values()), used


def test_the_critical_path_names_its_amaranth_source_lines():
    seg = lambda delay, *sources: {"delay": delay, "type": "routing", "net": "n",
                                   "from": {"cell": "a", "port": "Q"},
                                   "to": {"cell": "b", "port": "D"}, "sources": list(sources)}
    report = {"critical_paths": [
        {"path": [seg(1.0, "/x/tinylpu/rtl/uart.py:47")]},
        {"path": [seg(1.0, "/work/b/tinylpu/rtl/top.py:185"),
                  seg(2.0, "/work/b/tinylpu/rtl/epilogue.py:179",
                      "/share/lattice/arith_map_ccu2c.v:74.7-80.4"),
                  seg(0.5, "/v/site-packages/amaranth/lib/wiring.py:171",
                      "/work/b/tinylpu/rtl/top.py:185")]}]}
    assert tinylpu.flow.fpga._python_lines(report) == ["rtl/top.py:185", "rtl/epilogue.py:179"]
    assert tinylpu.flow.fpga._python_lines({"critical_paths": []}) == []


def test_the_time_limit_stops_nextpnr_and_says_where_it_was(fake_tools):
    out, fmax = fake_tools
    fmax(**{"$glbnet$bridge.bridge.clk": (41.0, 30.0)})
    (out / "hang").write_text("")
    # the step a build runs (its deadline counts from the build's start, before the
    # elaboration: here 3 s from now, time for the stand-in to write its log, then hang)
    nextpnr = tinylpu.flow.fpga.find_tool(tinylpu.flow.fpga.TOOLS["nextpnr-ecp5"])
    argv = [nextpnr, "--log", "tinylpu_board.tim", "--report", "report.json", "--textcfg", "x"]
    start = time.monotonic()
    with pytest.raises(FpgaError, match=r"place and route did not finish within the build's "
                                        r"time limit of 0.5 min \(it was routing, 122102 "
                                        r"arcs left\); stopped it; log: .*tinylpu_board.tim"):
        tinylpu.flow.fpga._run("place and route", argv, out, out / "nextpnr.log", start + 3,
                               0.5, out / "tinylpu_board.tim")
    assert time.monotonic() - start < 30         # stopped, not left to sleep its 60 s
