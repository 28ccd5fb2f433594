"""The RTL against the golden model, on Icarus and Verilator (cocotb on generated Verilog)."""

import zlib

import pytest

from tinylpu import Config, host, isa
from tinylpu.verify.cases import schedule_cases, standard_cases
from tinylpu.golden import GoldenTile
from tinylpu.flow.rtlsim import run_streams


def _case(sim, cfg, *marks):
    return pytest.param(sim, cfg, id=f"{sim}-{cfg.ident}", marks=marks)


# The decoder tests' two 16 x 4 tiles (test_compiled_decoder_matches_golden's, passes False
# and True; tb/test_decoder_rtl.py and tb/test_stress.py run the first): a PV datapath and
# whole-word weight banks; no PV datapath (pv=0: PV is an illegal word, attention runs as QK
# and PV passes) and a weight-bank tail. The default suite runs the standard cases on them:
# each Verilator build (a minute) serves every file.
DECODER_CFGS = (
    Config(lanes=16, rows=4, wdepth=512, adepth=128, pdepth=64, tdepth=64, rdepth=64, wbytes=0,
           pv=1),
    Config(lanes=16, rows=4, wdepth=512, wtail=32, adepth=64, pdepth=64, tdepth=64, rdepth=64),
)

# In ``make test-slow``, kept out of the default suite's 15 minutes: the default tile on
# Verilator, with and without PV (their builds, a minute each), and the 8 x 8 tile (no
# attention, whole-word weight banks). The default tile on Icarus: 25 s.
CASES = [
    _case("icarus", Config()),
    _case("verilator", Config(), pytest.mark.slow),
    _case("verilator", Config(pv=1), pytest.mark.slow),
    *(_case("verilator", cfg) for cfg in DECODER_CFGS),
    _case("verilator", Config(lanes=8, rows=8, wdepth=256, act_banks=1, adepth=64, wbytes=0,
                              pv=1), pytest.mark.slow),
]


# the small tile of the random, token-loop and counter cases (one build for them all)
TOKEN_CFG = Config(lanes=8, rows=2, wdepth=64, wtail=16, adepth=32, pdepth=32, tdepth=16, pv=1)


@pytest.mark.parametrize("sim,cfg", CASES)
def test_rtl_matches_golden(sim, cfg):
    """The standard cases, then the schedule-rule cases: programs the golden model refuses,
    which the RTL runs to the end with the rule's status bit (after them, memory is not
    compared: their data is stale or lost where the rules say so)."""
    golden = GoldenTile(cfg)
    seed = zlib.crc32(cfg.ident.encode()) % 1000      # the same in every process
    cases = standard_cases(golden, seed=seed, n_random=4 if sim == "icarus" else 12)
    flagged = schedule_cases(golden)
    assert {c["bit"] for c in flagged} == {host.STATUS_PORT_CONFLICT, host.STATUS_RAW_HAZARD,
                                          host.STATUS_UNIT_BUSY}
    cases += flagged
    measured = run_streams(cfg, sim, cases, name="test")
    assert [m["name"] for m in measured] == [c["name"] for c in cases]
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], f"{case['name']} (seed {seed})"
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], f"{case['name']} (seed {seed})"


def test_verilator_model_evaluates_little_logic_per_input_change():
    """Verilator evaluates the logic driven by a signal the testbench may write (a port, or
    any signal public for writing) again on every call of the model's eval, twice a cycle
    (its 'ico' region, besides the 'nba' region after each clock edge). Only the tile's
    ports are writable (tb/watch.vlt): the 'ico' code is a small part of the model. With
    every signal public for writing (--public-depth 1, before 2026-12-07) it was half the
    size of the 'nba' code, and stories260K ran 3x slower."""
    import re

    from tinylpu.flow.rtlsim import build, write_verilog

    cfg = DECODER_CFGS[1]
    build(cfg, "verilator")
    lines = {"ico": 0, "nba": 0}
    sources = sorted((write_verilog(cfg).parent / "verilator").glob("Vtop___024root__*.cpp"))
    for path in sources:
        if "Slow" in path.name:      # run once, at the start
            continue
        text = path.read_text()
        for m in re.finditer(r"\nvoid Vtop___024root___(ico|nba)_sequent\w*\(", text):
            lines[m.group(1)] += text.count("\n", m.start(), text.index("\n}\n", m.start()))
    assert lines["nba"] > 10_000, (lines, [p.name for p in sources])
    assert lines["ico"] < 0.2 * lines["nba"], lines


def test_harness_reports_a_wrong_expectation():
    """The comparison can fail: a flipped bit and a wrong prediction are both reported."""
    import numpy as np

    from tinylpu.verify.cases import gemv_case
    from tinylpu.flow.rtlsim import SimError

    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=16)
    case = gemv_case("3x3 ones", GoldenTile(cfg), [np.ones((3, 3), int)], np.ones(3, int))
    case["expected"][2] ^= 1
    case["cycles"] += 1
    counted = 2 + isa.ISSUE_LAT + isa.DRAIN         # one MATVEC (read in 2), HALT
    with pytest.raises(SimError, match=rf"(?s)differs from golden at beats \[2\].*"
                                       rf"predicted {counted + 1} cycles, tile counted {counted}"):
        run_streams(cfg, "icarus", [case], name="negative")


@pytest.mark.parametrize("sim,count", [("icarus", 8), ("verilator", 150)])
def test_random_programs_match_golden(sim, count):
    """Random programs (tinylpu.verify.fuzz: every instruction, loops, races, broken schedule
    rules, illegal words, budgets, bad commands, lost emissions) on random memory: every
    response beat the case compares, the status flags and the cycle counts match the golden
    model. The long campaign is ``make test-slow`` (tb/test_fuzz.py)."""
    from tinylpu.verify.fuzz import campaign

    # (weight banks of 64 + 16 words: random addresses reach the tail and its aliases)
    failures, covered, kinds = campaign(TOKEN_CFG, sim, 7, count)
    assert not failures, "seed 7: " + "\n".join(failures[:20])
    if sim == "verilator":         # both clean and rule-breaking programs are exercised
        assert kinds["rule broken"] > 10 and kinds["compared in full"] > 80, kinds




@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_token_loop_under_generate_matches_golden(sim):
    """A hand-written decoder step (WROW embedding, ADD, MATVEC, SQUARE with S = pos + 1,
    ARGMAX, SiLU through the table, NEXT) under GENERATE: every emitted id and stamp, the
    status, the cycles, both activation banks and the token memory equal the golden model's;
    each id arrived in the cycle its stamp names."""
    import numpy as np

    from token_loop import token_loop_case

    golden, rng = GoldenTile(TOKEN_CFG), np.random.default_rng(31)
    cases = [token_loop_case(golden, "prompt 2, 4 steps", rng, n_prompt=2, steps=4),
             token_loop_case(golden, "prompt 1, 1 step", rng, n_prompt=1, steps=1),
             token_loop_case(golden, "prompt 3, 6 steps", rng, n_prompt=3, steps=6)]
    assert [c["emissions"] for c in cases] == [4, 1, 6]
    assert all(c["expected"][c["run_at"]] == 1 for c in cases)      # DONE, no flags
    measured = run_streams(TOKEN_CFG, sim, cases, name="tokens")
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]
        first = case["run_at"] - 2 * case["emissions"]
        stamps = case["expected"][first + 1:case["run_at"]:2]
        assert m["beat_cycles"][first:case["run_at"]:2] == stamps


def decoder_program(passes):
    """The quantized synthetic Llama and its program on ``DECODER_CFGS[passes]``.
    ``passes``: attention as QK with transposed scores and PV passes over V^T (an 8-bit V
    cache), the default datapath; else PV over the V cache."""
    import numpy as np

    from tinylpu.compiler.decoder import compile_decoder, config_for
    from tinylpu.model.intmodel import quantize
    from tinylpu.model import synthetic_model

    m = synthetic_model(seed=3, seq_len=32, shared=True)
    rng = np.random.default_rng(3)
    qm = quantize(m, [list(rng.integers(0, m.config.vocab_size, 32)) for _ in range(2)],
                  kv_bits=(16, 8) if passes else 16)
    # (with passes the words the program writes, V^T and q, in the weight banks' tail)
    cfg = config_for(qm, 32, passes=passes, **({"wtail": 32} if passes else {}))
    assert cfg == DECODER_CFGS[passes], "update DECODER_CFGS: its builds serve this test"
    prog = compile_decoder(qm, cfg, 32, passes=passes)
    assert passes == (prog.footprint().get("weight tail words (per bank)", (0,))[0] > 0)
    return qm, prog


@pytest.mark.parametrize("sim,passes", [("verilator", False), ("verilator", True)])
def test_compiled_decoder_matches_golden(sim, passes):
    """The decoder compiler's program for a small synthetic Llama (tinylpu.compiler.decoder) under
    GENERATE: ids, stamps, status and cycles equal the golden model's and the compiler's
    prediction; the last logits and the token memory read back equal. ``passes``: attention
    as QK with transposed scores and PV passes over V^T (an 8-bit V cache; 18 positions:
    two groups of L)."""
    qm, prog = decoder_program(passes)
    cfg, golden = prog.cfg, GoldenTile(prog.cfg)
    prompt, steps = [1, 7, 30], 16 if passes else 4
    stream = (prog.load_stream() + prog.generate_stream(prompt, steps)
              + prog.read_stream("logits")
              + host.read_cmd(cfg, host.TARGET_TOKENS, 0, len(prompt) + steps))
    expected = golden.host(stream)
    stamps, cycles = prog.predict(len(prompt), steps)
    assert golden.last_run.cycles == cycles and [t for _, t in golden.emitted] == stamps
    case = {"name": "decoder", "stream": stream, "expected": expected, "cycles": cycles,
            "run_at": golden.last_run_at, "emissions": steps}
    (m,) = run_streams(cfg, sim, [case], name="decoder")
    assert m["response"] == expected
    assert m["cycles"] == m["ext_cycles"] == cycles
    # the same request through tinylpu.generate (rtlsim.run_generate): ids stream out of the
    # simulation as the tile emits them
    from tinylpu.generate import Prepared, generate

    arrived = []
    run = generate(Prepared(None, None, qm, prog), prompt, steps, sim, on_token=lambda *p:
                   arrived.append(p), counters=True)
    assert arrived == golden.emitted
    assert run.counters == golden.last_run.counters           # busy counters read after it
    assert (run.tokens, run.stamps) == ([t for t, _ in golden.emitted], stamps)
    assert (run.status, run.cycles) == (host.STATUS_DONE, cycles) and run.seconds > 0


@pytest.mark.parametrize("sim,count", [("icarus", 6), ("verilator", 40)])
def test_random_token_programs_match_golden(sim, count):
    """Random token-loop programs under GENERATE (VOPs of every kind, MATVECs, racing ones
    too, NEXT): ids, stamps, status, cycles, both activation banks and the token memory
    match the golden model."""
    import numpy as np

    from token_loop import random_token_program_case

    golden, rng = GoldenTile(TOKEN_CFG), np.random.default_rng(17)
    cases = [random_token_program_case(golden, f"token program {i}", rng) for i in range(count)]
    assert sum(c["expected"][c["run_at"]] & host.STATUS_RAW_HAZARD != 0 for c in cases) \
        < count
    measured = run_streams(TOKEN_CFG, sim, cases, name="random-tokens")
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_busy_counters_match_golden(sim):
    """The busy counters (READ TARGET_COUNTERS after each run) equal the golden model's: a
    GEMV, QK / WAIT / PV, the hand-written token loop under GENERATE (VOPs, NEXT) and a
    random token program (VOPs, WAITs, MATVECs)."""
    import numpy as np

    from tinylpu.verify.cases import gemv_case, program_case, with_counters
    from token_loop import random_token_program_case, token_loop_case

    cfg, rng = TOKEN_CFG, np.random.default_rng(61)
    golden = GoldenTile(cfg)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    attention = [isa.qk(q_addr=0, k_bank=0, k_addr=4, s_bank=1, s_addr=0, shift=4, n=3,
                        head_shift=[1, 2, 3, 0]), isa.wait(isa.LAT_WRITE),
                 isa.pv(v_bank=0, v_addr=8, s_bank=1, s_addr=0, y_bank=0, y_addr=16,
                        d_blocks=3, shift=2, n=3), isa.halt()]
    makers = [
        lambda: gemv_case("gemv 5x13", golden, [rng.integers(lo, hi, (5, 13))],
                          rng.integers(lo, hi, 13)),
        lambda: program_case("qk, wait, pv", golden, attention,
                             [(host.TARGET_ABANK, 0, rng.integers(-999, 999, (16, cfg.lanes)))],
                             [(host.TARGET_ABANK, 16, 2)]),
        lambda: token_loop_case(golden, "token loop", rng, n_prompt=2, steps=2),
        lambda: random_token_program_case(golden, "random token program", rng),
    ]
    cases = [with_counters(golden, make()) for make in makers]    # each after its own run
    n = len(host.Counter)
    counts = [host.parse_counters(c["expected"][-n:]) for c in cases]
    assert all(any(c[name] for c in counts) for name in host.COUNTERS)
    measured = run_streams(cfg, sim, cases, name="counters")
    for case, m in zip(cases, measured):
        assert m["response"] == case["expected"], case["name"]
        assert m["cycles"] == m["ext_cycles"] == case["cycles"], case["name"]
