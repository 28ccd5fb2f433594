"""Longer random-program campaigns on Verilator (marked slow: `make test-slow`, a few
minutes): GEMV programs (MATVEC, WAIT, LOOP) and token-loop programs (VOP, MATVEC, NEXT
under GENERATE)."""

import numpy as np
import pytest

from tinylpu import Config
from tinylpu.cases import random_program_case
from tinylpu.golden import GoldenTile
from tinylpu.rtlsim import run_streams

CONFIGS = [
    (Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32), 11),
    (Config(lanes=4, rows=4, wdepth=64, act_banks=1, adepth=16, pdepth=32), 12),
    (Config(lanes=16, rows=2, wdepth=64, act_banks=4, adepth=16, pdepth=32, acc_bits=20), 13),
]


@pytest.mark.slow
@pytest.mark.parametrize("cfg,seed", CONFIGS, ids=lambda v: getattr(v, "ident", str(v)))
def test_random_program_campaign(cfg, seed):
    golden, rng = GoldenTile(cfg), np.random.default_rng(seed)
    cases = [random_program_case(f"program {i}", golden, rng,
                                 n_instr=int(rng.integers(2, 14))) for i in range(300)]
    measured = run_streams(cfg, "verilator", cases, name="fuzz")
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]


TOKEN_CONFIGS = [
    (Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32, tdepth=16), 21),
    (Config(lanes=4, rows=4, wdepth=64, act_banks=1, adepth=64, pdepth=32, tdepth=8), 22),
    (Config(lanes=16, rows=2, wdepth=64, act_banks=4, adepth=16, pdepth=32, acc_bits=20,
            tdepth=8), 23),
]


@pytest.mark.slow
@pytest.mark.parametrize("cfg,seed", TOKEN_CONFIGS, ids=lambda v: getattr(v, "ident", str(v)))
def test_random_token_program_campaign(cfg, seed):
    from token_loop import random_token_program_case

    golden, rng = GoldenTile(cfg), np.random.default_rng(seed)
    cases = [random_token_program_case(golden, f"token program {i}", rng) for i in range(200)]
    measured = run_streams(cfg, "verilator", cases, name="token-fuzz")
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]
