"""The long random-program campaign on Verilator (``make test-slow``): ``tinylpu.verify.fuzz`` cases,
every instruction, unit and status bit, schedule rules broken now and then, against the golden
model. ``FUZZ_CASES`` cases per configuration (3,400 by default: over 10,000 in all); each
configuration prints its count, wall time, kinds of case and least covered features. The
seed of each configuration is fixed; a failure names every case that differed
(``<seed>:<index>``). The default suite's short campaign is in ``tb/test_tile.py``.
"""

import os
import time

import pytest

from tinylpu import Config
from tinylpu.verify.fuzz import FEATURES, campaign

CONFIGS = [
    # (the default pv=0: PV is an illegal word; weight banks with a tail)
    (Config(lanes=8, rows=2, wdepth=64, wtail=16, adepth=32, pdepth=32, tdepth=16), 11),
    # lanes < 2 * rows: no attention (QK and PV are illegal words), one activation bank
    (Config(lanes=4, rows=4, wdepth=64, act_banks=1, adepth=64, pdepth=32, tdepth=8, pv=1),
     12),
    (Config(lanes=16, rows=2, wdepth=64, act_banks=4, adepth=16, pdepth=32, acc_bits=20,
            tdepth=8, pv=1), 13),
]


@pytest.mark.slow
@pytest.mark.parametrize("cfg,seed", CONFIGS, ids=lambda v: getattr(v, "ident", str(v)))
def test_random_program_campaign(cfg, seed):
    n = int(os.environ.get("FUZZ_CASES", 3400))
    t0 = time.perf_counter()
    failures, covered, kinds = campaign(cfg, "verilator", seed, n)
    wall = time.perf_counter() - t0
    print(f"\n{cfg.ident} seed {seed}: {n} random programs in {wall:.0f} s, "
          f"{len(failures)} mismatches; {dict(kinds)}")
    print("least covered: " + ", ".join(f"{f} {covered[f]}" for f in
                                        sorted(FEATURES, key=lambda f: covered[f])[:8]))
    assert not failures, f"seed {seed}: " + "\n".join(failures[:20])
    # QK, PV and PV passes run only where cfg.attention; elsewhere they are illegal words
    attention = ("op:QK", "op:PV", "qk.n_pos", "qk.kv_shift", "qk.s_tr", "pv.n_pos",
                 "matvec.x_exp")
    pv = ("op:PV", "pv.n_pos")            # ... and PV only where cfg.pv
    missing = [f for f in FEATURES if not covered[f] and (cfg.attention or f not in attention)
               and (cfg.pv or f not in pv)]
    assert not missing, f"seed {seed}: not covered: {missing}"
