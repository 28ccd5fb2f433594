"""The random-program generator (tinylpu.verify.fuzz), on the golden model alone: it covers every
instruction, unit and status bit, its cases are reproducible, and the golden model's
not-strict mode reports a broken schedule rule by the RTL's status bit."""

import numpy as np
import pytest

from tinylpu import Config, host, isa
from tinylpu.verify.cases import schedule_cases
from tinylpu.verify.fuzz import FEATURES, check_response, features, random_case
from tinylpu.golden import GoldenError, GoldenTile

CFG = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32, tdepth=16, pv=1)


def _cases(cfg, seed, n):
    golden, rng = GoldenTile(cfg), np.random.default_rng(seed)
    return [random_case(golden, rng, f"{seed}:{i}", first=i == 0) for i in range(n)]


def test_every_feature_is_covered():
    covered = set()
    for case in _cases(CFG, 1, 400):
        covered |= set(case["features"])
    assert [f for f in FEATURES if f not in covered] == []


def test_features_name_every_opcode_enum_value_and_status_bit():
    assert {f"op:{op.name}" for op in isa.Opcode} <= set(FEATURES)
    assert {f"matvec.epi:{e.name}" for e in isa.Epi} <= set(FEATURES)
    assert {f"status:{name}" for name, _ in host.Status.__annotations__.items()
            if name != "reserved"} <= set(FEATURES)
    word = isa.encode(isa.vop(g=isa.GFunc.EXP, red=isa.Reduce.MAX, a=dict(bank=0),
                              c=dict(bank=1)))
    assert {"op:VOP", "vop.g:EXP", "vop.red:MAX", "status:done", "status:timeout"} <= \
        features([word], host.STATUS_DONE | host.STATUS_TIMEOUT)


def test_cases_are_reproducible():
    a, b = _cases(CFG, 5, 20), _cases(CFG, 5, 20)
    assert [c["stream"] for c in a] == [c["stream"] for c in b]
    assert [c["golden"] for c in a] == [c["golden"] for c in b]


def test_attention_is_illegal_where_lanes_are_fewer_than_twice_the_rows():
    cfg = Config(lanes=4, rows=4, wdepth=64, act_banks=1, adepth=64, pdepth=32, tdepth=8)
    assert not cfg.attention and CFG.attention
    covered = set().union(*(c["features"] for c in _cases(cfg, 2, 200)))
    assert "status:illegal" in covered and not {"op:QK", "op:PV"} & covered
    qk = isa.encode(isa.qk(q_addr=0, k_bank=0, k_addr=0, s_bank=0, s_addr=0, shift=0, n=1))
    assert isa.illegal(qk) is None and "lanes >= 2 * rows" in isa.illegal(qk, attention=False)
    golden = GoldenTile(cfg)
    assert golden.host(host.write_cmd(cfg, host.TARGET_PROG, 0, [qk, isa.encode(isa.halt())])
                       + host.run_cmd(0)) == [host.STATUS_DONE | host.STATUS_ILLEGAL, 2]


@pytest.mark.parametrize("case", schedule_cases(GoldenTile(CFG)), ids=lambda c: c["name"])
def test_not_strict_golden_flags_each_rule_like_the_rtl(case):
    """Every hand-written rule breaker (refused by the strict golden model) runs to the end
    not strict, with the rule's status bit and the timing model's cycles."""
    golden = GoldenTile(CFG)
    with pytest.raises(GoldenError):
        golden.host(case["stream"])
    golden = GoldenTile(CFG)
    golden.strict = False
    response = golden.host(case["stream"])
    assert response[0] & case["bit"] and response[0] & host.STATUS_DONE
    assert response[1] == case["cycles"]
    assert golden.last_run.refusals


def test_check_response_finds_each_kind_of_difference():
    case = _cases(CFG, 3, 1)[0]
    good = {"response": list(case["golden"]), "ext_cycles": case["cycles"],
            "beat_cycles": [None] * len(case["golden"])}
    if case["emissions"]:
        first = case["run_at"] - 2 * case["emissions"]
        for k in range(case["emissions"]):
            stamp = case["golden"][first + 2 * k + 1]
            good["beat_cycles"][first + 2 * k:first + 2 * k + 2] = [stamp, stamp + 1]
    assert check_response(case, good) is None
    bad = dict(good, response=good["response"][:-1])
    assert "beats" in check_response(case, bad)
    flipped = list(good["response"])
    flipped[case["run_at"]] ^= host.STATUS_UNIT_BUSY
    assert check_response(case, dict(good, response=flipped)).startswith(f"beat {case['run_at']}")
    if case["cycles"] is not None:
        assert "cycles" in check_response(case, dict(good, ext_cycles=case["cycles"] + 1))
