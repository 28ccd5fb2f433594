"""The RTL against the golden model, on Icarus and Verilator (cocotb on generated Verilog)."""

import pytest

from tinylpu import Config
from tinylpu.cases import standard_cases
from tinylpu.golden import GoldenTile
from tinylpu.rtlsim import run_streams

CONFIGS = {
    "icarus": [Config()],
    "verilator": [Config(), Config(lanes=8, rows=8, wdepth=256, act_banks=1, adepth=64)],
}


@pytest.mark.parametrize("sim,cfg", [(sim, cfg) for sim, cfgs in CONFIGS.items()
                                     for cfg in cfgs], ids=lambda v: getattr(v, "ident", v))
def test_rtl_matches_golden(sim, cfg):
    cases = standard_cases(GoldenTile(cfg), seed=hash(cfg.ident) % 1000,
                           n_random=4 if sim == "icarus" else 12)
    measured = run_streams(cfg, sim, cases, name="test")
    assert [m["name"] for m in measured] == [c["name"] for c in cases]
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]


def test_harness_reports_a_wrong_expectation():
    """The comparison can fail: a flipped bit and a wrong prediction are both reported."""
    import numpy as np

    from tinylpu.cases import gemv_case
    from tinylpu.rtlsim import SimError

    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=16)
    case = gemv_case("3x3 ones", GoldenTile(cfg), [np.ones((3, 3), int)], np.ones(3, int))
    case["expected"][2] ^= 1
    case["cycles"] += 1
    with pytest.raises(SimError, match=r"(?s)differs from golden at beats \[2\].*"
                                       r"predicted 8 cycles, tile counted 7"):
        run_streams(cfg, "icarus", [case], name="negative")


@pytest.mark.parametrize("sim,count", [("icarus", 6), ("verilator", 40)])
def test_random_programs_match_golden(sim, count):
    """Random programs (loops, waits, racing and overlapping MATVECs) on random memory:
    status flags, cycle counts and every activation word after the run match the golden
    model."""
    import numpy as np

    from tinylpu.cases import random_program_case

    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32)
    golden, rng = GoldenTile(cfg), np.random.default_rng(7)
    cases = [random_program_case(f"random program {i}", golden, rng) for i in range(count)]
    flagged = sum(c["expected"][c["run_at"]] & 4 != 0 for c in cases)
    assert 0 < flagged < count          # both racing and clean programs are exercised
    measured = run_streams(cfg, sim, cases, name="random")
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]
