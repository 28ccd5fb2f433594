"""The host streams under a hostile host, on the generated Verilog (Icarus and Verilator).

The cocotb side is ``tb/stress_tb.py`` (it drives and records); the expectations are the
golden model's, and the checks are here. Every random choice comes from a seed printed by
each test and named in every failure message: ``zlib.crc32`` of the test's name (the same on
both simulators), and for each phase ``zlib.crc32(f"{seed}:{phase name}")``.

1. Random input gaps (``host_in.valid`` low for 0..3 cycles between beats, junk on the
   payload) and random ``host_out.ready`` while receiving: the standard cases, token loops
   and VOP programs answer exactly the golden beats, with unchanged cycle counts. A
   GENERATE's emissions are not flow-controlled (docs/isa.md, "Host protocol"): ready low
   through the run loses every id (status DONE | OVERRUN, cycles unchanged); ready low in a
   window of the run loses exactly the emission beats offered in the window.
2. ``rst`` at a random cycle of a GENERATE, then a rerun: it answers as a clean run.
3. Truncated and misframed command streams: the tile frames them as the golden model does
   (docs/isa.md, "Misframed streams"); a reset restores framing and keeps every memory.
"""

import copy
import zlib

import numpy as np
import pytest

from tinylpu import Config, host, isa
from tinylpu.verify.cases import schedule_cases, standard_cases
from tinylpu.golden import GoldenTile
from tinylpu.flow.rtlsim import run_streams

# small, yet big enough for tinylpu.verify.cases.standard_cases (172x64 fits 1024 weight words)
CFG = Config(lanes=8, rows=2, wdepth=1024, adepth=64, pdepth=32, tdepth=16)
CLOCK_NS = 10
SIMS = ["icarus", "verilator"]
# the compiled decoder's hostile host takes Icarus 76 s (Verilator's build and run: 10):
# Icarus runs it in ``make test-slow``
SIMS_LONG = [pytest.param("icarus", marks=pytest.mark.slow), "verilator"]
OVERRUN = host.STATUS_OVERRUN


def seed_of(text):
    return zlib.crc32(text.encode())


# framing and the golden model, command by command -------------------------------------------

def _valid(cfg, target):
    try:
        host.target_depth(cfg, target)
        return True
    except host.HostError:
        return False


def word_beats(cfg, target):
    """Beats per payload word of a WRITE to ``target`` as the tile counts them (an invalid
    target moves weight-bank words)."""
    return host.beats(cfg, target if _valid(cfg, target) else host.TARGET_WBANK)


def frame(cfg, beats):
    """The commands of a host stream as the tile frames them (``rtl/host.py``; the golden
    model's ``host`` frames alike): dicts with ``at`` (index of header word 0), ``cmd``,
    ``target``, ``address``, ``count``, ``end`` (index after the payload, at most the
    stream's end), ``need`` (the same, were the stream long enough), ``run`` (it starts a
    run: RUN, or GENERATE with a prompt and steps) and ``complete`` (False for a command the
    stream cuts short)."""
    out, i = [], 0
    while i < len(beats):
        if i + 1 == len(beats):                 # one header word: the tile waits for more
            out.append(dict(at=i, cmd=None, target=None, address=None, count=None,
                            end=i + 1, need=i + 2, run=False, complete=False))
            break
        w0, address = int(beats[i]), int(beats[i + 1])
        cmd, target, count = w0 & 0xff, (w0 >> 8) & 0xff, w0 >> 16
        end = i + 2 + (count * word_beats(cfg, target) if cmd == host.CMD_WRITE else 0)
        run = cmd == host.CMD_RUN or (cmd == host.CMD_GENERATE and count != 0 and address != 0)
        out.append(dict(at=i, cmd=cmd, target=target, address=address, count=count,
                        end=min(end, len(beats)), need=end, run=run,
                        complete=end <= len(beats)))
        i = end
    return out


def golden_replay(golden, beats):
    """The golden model's answer to ``beats``, command by command: ``(response, runs)``,
    each run a dict: ``first`` (response index of its first beat), ``status_at``,
    ``cycles``, ``status``, ``emitted`` ([id, stamp] per emission). A command cut short at
    the stream's end does what the tile does before a reset: a WRITE writes its whole words
    (each is written when its last beat arrives), the rest is dropped."""
    cfg = golden.cfg
    out, runs = [], []
    for c in frame(cfg, beats):
        seg = [int(b) for b in beats[c["at"]:c["end"]]]
        if not c["complete"]:
            if c["cmd"] != host.CMD_WRITE or len(seg) < 2:
                continue                         # a header cut short: nothing happened yet
            n = word_beats(cfg, c["target"])
            seg = seg[:2 + (len(seg) - 2) // n * n]
            seg[0] = (seg[0] & 0xffff) | ((len(seg) - 2) // n) << 16
            if len(seg) == 2:                   # no whole word: only the header's effect
                golden.bad_command |= not _valid(cfg, c["target"]) or \
                    c["target"] == host.TARGET_COUNTERS
                continue
        first = len(out)
        out += golden.host(seg)
        if c["run"]:
            emitted = [list(e) for e in golden.emitted] if c["cmd"] == host.CMD_GENERATE else []
            runs.append(dict(first=first, status_at=first + 2 * len(emitted),
                             cycles=golden.last_run.cycles, status=golden.last_run.status,
                             emitted=emitted))
    return out, runs


def golden_reset(golden):
    """What ``rst`` does to the state the golden model keeps: BAD_COMMAND and the busy
    counters are cleared (memories are kept)."""
    golden.bad_command = False
    golden.counters = [0] * len(host.Counter)


# phases (see tb/stress_tb.py) --------------------------------------------------------------

def make_phase(name, seed, stream, expected, runs, *, gap_max=3, ready_p=0.5,
               run_policy=None, reset=None, quiet=16, beat_cycles=None, dropped=0, cfg=CFG):
    """A phase of the cocotb harness with its expectations: ``expected`` (response beats),
    ``runs`` (as :func:`golden_replay`'s: each run's cycles and status position are
    checked), ``beat_cycles`` (per expected beat its run cycle, or None: not checked),
    ``dropped`` (emission beats the tile offers that the host does not take)."""
    stream = [int(b) for b in stream]
    starts = [c["at"] + 1 for c in frame(cfg, stream) if c["run"]]
    assert len(starts) == len(runs), f"{name}: {len(starts)} runs framed, {len(runs)} expected"
    seed = seed_of(f"{seed}:{name}")
    total = sum(r["cycles"] for r in runs)
    budget = 4 * len(stream) * (gap_max + 1) + total + 8 * len(expected) / ready_p + 5000
    return dict(name=name, seed=seed, stream=stream, runs=starts, gap_max=gap_max,
                ready_p=ready_p, run_policy=run_policy or [{"ready": "high"} for _ in starts],
                reset=reset, quiet=quiet, n_response=len(expected), max_cycles=int(budget),
                expected=[int(b) for b in expected], run_checks=runs,
                beat_cycles=beat_cycles, dropped=dropped)


def run(sim, phases, name, cfg=CFG):
    return run_streams(cfg, sim, phases, name=name, test_module="stress_tb")


def cycles_of(m):
    """Per beat taken, its cycle counted from the start cycle (= 0) of the latest run started
    before it (None before the first)."""
    out = []
    for _, t in m["beats"]:
        starts = [s for s in m["starts"] if s <= t]
        out.append(round((t - starts[-1]) / CLOCK_NS) if starts else None)
    return out


def no_timeout(phase, m, what):
    if m.get("timeout"):
        got = [b for b, _ in m["beats"]]
        diff = [i for i, (a, b) in enumerate(zip(got, phase["expected"])) if a != b]
        raise AssertionError(f"{what}: {m['timeout']}: {len(got)} of {len(phase['expected'])}"
                             f" beats arrived, differing from the expected at {diff[:8]}")


def check(phase, m, where):
    """Everything a phase promises: no hang, no stream-rule violation, the response beat for
    beat (nothing lost, nothing extra), each run's cycles (as the tile counted them and as
    ``running`` was high), each expected beat's cycle, and every id in its stamp's cycle."""
    what = f"{phase['name']} ({where}, phase seed {phase['seed']})"
    no_timeout(phase, m, what)
    assert not m["violations"], f"{what}: stream rule broken: {m['violations'][:3]}"
    assert m["dropped"] == phase["dropped"], (f"{what}: {m['dropped']} emission beats offered "
                                              f"and not taken, {phase['dropped']} expected")
    response = [b for b, _ in m["beats"]]
    expected = phase["expected"]
    diff = [i for i, (a, b) in enumerate(zip(response, expected)) if a != b]
    assert response == expected, (f"{what}: {len(response)} beats, {len(expected)} expected; "
                                  f"first differences at {diff[:8]}")
    got_cycles = cycles_of(m)
    ran = phase["run_checks"]
    assert len(m["runs"]) == len(ran), f"{what}: {len(m['runs'])} runs, {len(ran)} expected"
    for k, (r, (rise, fall)) in enumerate(zip(ran, m["runs"])):
        counted, ext = response[r["status_at"] + 1], round((fall - rise) / CLOCK_NS)
        assert counted == ext == r["cycles"], (f"{what}: run {k} predicted {r['cycles']} "
                                               f"cycles, tile counted {counted}, running was "
                                               f"high for {ext}")
        received = response[r["first"]:r["status_at"]]
        for j in range(0, len(received) - 1, 2):
            if [response[r["first"] + j], response[r["first"] + j + 1]] in r["emitted"]:
                stamp = response[r["first"] + j + 1]
                assert got_cycles[r["first"] + j:r["first"] + j + 2] == [stamp, stamp + 1], \
                    f"{what}: id {j // 2} arrived in cycles " \
                    f"{got_cycles[r['first'] + j:r['first'] + j + 2]}, its stamp says {stamp}"
    if phase.get("beat_cycles"):
        for i, (want, got) in enumerate(zip(phase["beat_cycles"], got_cycles)):
            assert want is None or want == got, f"{what}: beat {i} in cycle {got}, not {want}"


def check_aborted(phase, m, where, C):
    """A GENERATE of ``C`` cycles reset in its cycle r (``phase["reset"]``): exactly the beats
    offered before r arrived, each in its cycle; ``running`` rose at the end of the start
    cycle unless rst was high in it, and fell at the end of the first reset cycle (or of the
    done cycle, if earlier)."""
    r = phase["reset"]["at"]
    what = f"{phase['name']} ({where}, phase seed {phase['seed']})"
    no_timeout(phase, m, what)
    got = [b for b, _ in m["beats"]]
    assert got == phase["expected"], f"{what}: got {got}, expected {phase['expected']}"
    assert cycles_of(m) == phase["beat_cycles"], what
    assert m["violations"] == [] and m["dropped"] == 0, what
    fall = [round((f - m["starts"][0]) / CLOCK_NS) for _, f in m["runs"]]
    assert fall == ([] if r == 0 else [min(r + 1, C + 1)]), f"{what}: {fall}"


def run_and_check(sim, phases, name, seed, cfg=CFG):
    """Run the phases; check each (:func:`check`, or :func:`check_aborted` for a run cut by
    rst)."""
    print(f"seed {seed} ({name}, {sim})")
    measured = run(sim, phases, name, cfg)
    where = f"{name} on {sim}, seed {seed}"
    for phase, m in zip(phases, measured):
        if phase.get("aborted"):
            check_aborted(phase, m, where, phase["aborted"])
        else:
            check(phase, m, where)
    return measured


# 1. random gaps and random ready -----------------------------------------------------------

def _token_loop(golden, rng, name, n_prompt, steps):
    from token_loop import token_loop_case
    return token_loop_case(golden, name, rng, n_prompt=n_prompt, steps=steps)


# (on Icarus, a minute: in ``make test-slow``; Verilator replays the same cases and more)
@pytest.mark.parametrize("sim", SIMS)
def test_replay_with_gaps_and_random_ready(sim):
    """The standard cases (WRITE / READ / RUN, GEMVs and chains, loops, a flagged race, row
    multipliers, RoPE, bad commands, random GEMVs), token loops under GENERATE (VOPs, a
    MATVEC, NEXT), [Verilator: random token programs] and the schedule-rule VOP programs,
    each replayed with random input gaps of 0..3 cycles and ``host_out.ready`` random per
    cycle (a random probability per phase) outside runs, high through each GENERATE: every
    response beat equals the golden model's, nothing is lost or duplicated, every run's
    cycles equal the prediction, every id arrives in its stamped cycle."""
    seed = seed_of("test_replay_with_gaps_and_random_ready")
    rng = np.random.default_rng(seed)
    golden = GoldenTile(CFG)
    # (without the GENERATEs the tile refuses with RANGE: this harness frames every GENERATE
    # with a prompt and steps as a run; tb/test_tile.py replays those cases)
    cases = [c for c in standard_cases(golden, seed=seed % 1000,
                                       n_random=2 if sim == "icarus" else 6)
             if not c["name"].startswith("range:")]
    cases += [_token_loop(golden, rng, "token loop 2+4", 2, 4),
              _token_loop(golden, rng, "token loop 1+3", 1, 3)]
    if sim == "verilator":
        from token_loop import random_token_program_case
        cases += [random_token_program_case(golden, f"token program {i}", rng)
                  for i in range(3)]
    cases += schedule_cases(golden)        # last: memory is undefined after some of them
    phases = []
    for case in cases:
        emitted = case.get("emissions", 0)
        first = case["run_at"] - 2 * emitted
        stamps = case["expected"][first + 1:case["run_at"]:2]
        runs = [dict(first=first, status_at=case["run_at"], cycles=case["cycles"],
                     emitted=[[case["expected"][first + 2 * k], s] for k, s in enumerate(stamps)])]
        rs = np.random.default_rng(seed_of(f"{seed}:{case['name']}"))
        policy = [{"ready": "high" if emitted or rs.random() < 0.5 else "low"}]
        phases.append(make_phase(case["name"], seed, case["stream"], case["expected"], runs,
                                 ready_p=float(rs.uniform(0.2, 0.9)), run_policy=policy))
    measured = run_and_check(sim, phases, "gaps", seed)
    # the host was hostile: it paused between beats, and left beats of every long answer
    # waiting; commands waited for runs
    total = {k: sum(m[k] for m in measured) for k in ("stalls", "gaps", "waits")}
    print(f"host: {total}")
    assert all(m["gaps"] > 0 for m in measured), [m["name"] for m in measured if not m["gaps"]]
    assert total["stalls"] > sum(len(p["expected"]) for p in phases) // 10, total
    assert total["waits"] >= len(cases) // 2, total


TOKEN_STEPS = (2, 6)        # prompt, steps of the GENERATE tests


def _generate_setup(seed):
    """A tile loaded with the token loop (tb/token_loop.py), its GENERATE and the golden
    model's clean answer to it."""
    rng = np.random.default_rng(seed)
    case = _token_loop(GoldenTile(CFG), rng, "scratch", *TOKEN_STEPS)
    golden = GoldenTile(CFG)
    assert golden_replay(golden, case["load"])[0] == []
    _, (clean,) = golden_replay(golden, case["request"])
    assert clean["status"] == host.STATUS_DONE and len(clean["emitted"]) == TOKEN_STEPS[1]
    return case, golden, clean


def _window_expectation(clean, window):
    """The beats a GENERATE answers when ready is low in run cycles ``window`` [a, b) and
    high in the rest of the run: every emission beat offered outside the window (beat 0 of
    an id in its stamp's cycle t, beat 1 in t + 1), then status (OVERRUN if a beat was
    lost) and cycles; and the run cycle of each beat (None: not checked)."""
    a, b = window
    beats, when, lost = [], [], 0
    for token, t in clean["emitted"]:
        for value, c in ((token, t), (t, t + 1)):
            if a <= c < b:
                lost += 1
            else:
                beats.append(value)
                when.append(c)
    status = clean["status"] | (OVERRUN if lost else 0)
    return beats + [status, clean["cycles"]], when + [None, None], lost


@pytest.mark.parametrize("sim", SIMS)
def test_generate_emissions_are_not_flow_controlled(sim):
    """A GENERATE's emissions do not wait for the host (the tile cannot stall): with ready
    low through the whole run no id arrives, the status is DONE | OVERRUN and the cycles
    equal the prediction; with ready high through the run (random before and after) the ids
    and stamps equal the golden model's; with ready low in a window of run cycles [a, b),
    exactly the emission beats offered outside the window arrive (either beat of an id can
    be lost alone), OVERRUN iff one was offered inside it. Each run's cycles are unchanged;
    afterwards the token memory holds every generated id, lost or not, and the activation
    banks and busy counters equal the golden model's; the next run's status has no OVERRUN
    (it is per run)."""
    seed = seed_of("test_generate_emissions_are_not_flow_controlled")
    case, golden, clean = _generate_setup(seed)
    C, stamps = clean["cycles"], [t for _, t in clean["emitted"]]
    rng = np.random.default_rng(seed)
    windows = [(stamps[1] + 1, stamps[1] + 2),          # id 1's stamp beat lost, its id not
               (stamps[2], stamps[2] + 1),              # id 2 lost, its stamp beat not
               (stamps[0] + 2, stamps[1]),              # between two emissions: nothing lost
               (1, C)]                                  # the whole run but its start cycle
    n_random = 3 if sim == "icarus" else 24
    for _ in range(n_random):
        a = int(rng.integers(1, C))
        windows.append((a, int(rng.integers(a + 1, min(C, a + C // 3) + 1))))
    phases = [make_phase("load", seed, case["load"], [], [])]
    low = dict(clean, status=clean["status"] | OVERRUN)
    phases.append(make_phase("ready low through the run", seed, case["request"],
                             [low["status"], C], [dict(low, emitted=[], status_at=0)],
                             run_policy=[{"ready": "low"}], dropped=2 * TOKEN_STEPS[1]))
    phases.append(make_phase("ready high in the run, random outside", seed, case["request"],
                             golden_replay(golden, case["request"])[0], [clean],
                             ready_p=0.3))
    lost_any = []
    for a, b in windows:
        beats, when, lost = _window_expectation(clean, (a, b))
        lost_any.append(lost)
        phases.append(make_phase(f"ready low in cycles {a}..{b - 1}", seed, case["request"],
                                 beats, [dict(clean, emitted=[], status_at=len(beats) - 2)],
                                 run_policy=[{"ready": "high", "window": [a, b]}],
                                 beat_cycles=when, dropped=lost))
        golden_replay(golden, case["request"])
    assert lost_any[:4] == [1, 1, 0, 2 * TOKEN_STEPS[1]]
    n = sum(TOKEN_STEPS)
    reads = host.read_cmd(CFG, host.TARGET_TOKENS, 0, n) + host.counters_cmd(CFG)
    reads += [b for a in range(CFG.act_banks)
              for b in host.read_cmd(CFG, host.TARGET_ABANK + a, 0, CFG.adepth)]
    expected, _ = golden_replay(golden, reads)
    assert expected[TOKEN_STEPS[0]:n] == [t for t, _ in clean["emitted"]]
    phases.append(make_phase("token memory, counters and activation banks read back", seed,
                             reads, expected, []))
    phases.append(make_phase("the next GENERATE has no OVERRUN", seed, case["request"],
                             golden_replay(golden, case["request"])[0], [clean]))
    run_and_check(sim, phases, "emissions", seed)


# 2. reset in the middle of a GENERATE ------------------------------------------------------

def _clean_beat_cycles(clean):
    """Run cycles of a clean GENERATE's answer with ready high throughout: each id in its
    stamp's cycle and the next, status in C + 1, cycles in C + 2."""
    out = []
    for _, t in clean["emitted"]:
        out += [t, t + 1]
    return out + [clean["cycles"] + 1, clean["cycles"] + 2]


@pytest.mark.parametrize("sim", SIMS)
def test_reset_during_generate_then_rerun(sim):
    """``rst`` (1..3 cycles) from a random cycle r of a GENERATE (start cycle 0 .. the cycle
    its last beat is offered; several seeds, edge cycles included): the beats offered before
    r arrive, nothing after; then a rerun (the prompt's token WRITE and the GENERATE again;
    one seed resends only the GENERATE: the prompt survives too) answers exactly as a clean
    run: ids, stamps, status, cycles, and afterwards both activation banks, the token memory
    and the busy counters equal the golden model's. Nothing else is reloaded: program,
    weights and table survive a reset (memories are not reset)."""
    seed = seed_of("test_reset_during_generate_then_rerun")
    case, golden, clean = _generate_setup(seed)
    C, stamps = clean["cycles"], [t for _, t in clean["emitted"]]
    clean_cycles = _clean_beat_cycles(clean)
    clean_answer = golden_replay(GoldenTile(CFG), case["load"] + case["request"])[0]
    rng = np.random.default_rng(seed)
    at = [0, stamps[1] + 1, C + 1] if sim == "icarus" else \
        [0, 1, stamps[0], stamps[0] + 1, stamps[3] + 1, C, C + 1, C + 2]
    at += [int(rng.integers(0, C + 3)) for _ in range(2 if sim == "icarus" else 16)]
    n = sum(TOKEN_STEPS)
    prompt_write = case["load"][-(2 + TOKEN_STEPS[0]):]     # the token memory's WRITE
    assert frame(CFG, prompt_write)[0]["target"] == host.TARGET_TOKENS
    reads = [b for a in range(CFG.act_banks)
             for b in host.read_cmd(CFG, host.TARGET_ABANK + a, 0, CFG.adepth)]
    reads += host.read_cmd(CFG, host.TARGET_TOKENS, 0, n) + host.counters_cmd(CFG)
    # a clean run on a freshly loaded tile, and what it leaves in memory
    clean_full = golden_replay(GoldenTile(CFG), case["load"] + case["request"] + reads)[0]
    phases = [make_phase("load", seed, case["load"], [], [])]
    for k, r in enumerate(at):
        length = int(rng.integers(1, 4))
        prefix = [b for b, c in zip(clean_answer, clean_cycles) if c < r]
        phases.append(make_phase(f"reset {k} in cycle {r} for {length}", seed,
                                 case["request"], prefix, [clean], ready_p=1.0,
                                 reset={"run": 0, "at": r, "len": length},
                                 beat_cycles=clean_cycles[:len(prefix)]))
        phases[-1]["aborted"] = C                       # the run is cut short
        golden_reset(golden)
        rerun = (prompt_write if k != 1 else []) + case["request"] + reads
        expected, runs = golden_replay(golden, rerun)
        assert expected == clean_full
        phases.append(make_phase(f"rerun after reset {k}" + (" (GENERATE only)" if k == 1
                                                            else ""),
                                 seed, rerun, expected, runs))
    print(f"reset cycles {at} (run of {C} cycles, ids stamped {stamps})")
    run_and_check(sim, phases, "reset", seed)


def _decoder_case(prog, prompt, steps):
    """A compiled decoder's streams (``load``, ``request``: its GENERATE, ``reads``: the last
    logits, the token memory and the counters), a ``golden`` model that has run the load,
    the request's clean ``answer`` and run (``clean``), its ``stamps`` and ``cycles`` (checked
    against the compiler's prediction), and ``full``: the answer to load, request and reads
    on a fresh tile."""
    cfg = prog.cfg
    load, request = prog.load_stream(), prog.generate_stream(prompt, steps)
    reads = (prog.read_stream("logits") + host.read_cmd(cfg, host.TARGET_TOKENS, 0,
                                                        len(prompt) + steps)
             + host.counters_cmd(cfg))
    golden = GoldenTile(cfg)
    assert golden_replay(golden, load)[0] == []
    answer, (clean,) = golden_replay(golden, request)
    stamps, cycles = prog.predict(len(prompt), steps)
    assert [t for _, t in clean["emitted"]] == stamps and clean["cycles"] == cycles
    full = golden_replay(GoldenTile(cfg), load + request + reads)[0]
    return dict(load=load, request=request, reads=reads, golden=golden, answer=answer,
                clean=clean, stamps=stamps, cycles=cycles, full=full)


@pytest.mark.parametrize("sim", SIMS_LONG)
def test_compiled_decoder_under_a_hostile_host(sim):
    """The decoder compiler's program for a small synthetic Llama (``tb/test_decoder_rtl.py``'s,
    3 prompt ids, 4 steps), loaded with random gaps and random ready: a request with ready
    low in a random window around an emission (the ids outside it arrive, OVERRUN), one with
    ready low through the run (no id, DONE | OVERRUN), one with ready high in the run (the
    compiler's stamps); then rst at random cycles of the GENERATE, each followed by the
    request sent again (the prompt's WRITE and the GENERATE): ids, stamps, status and cycles
    equal the compiler's prediction, and the last logits, the token memory and the busy
    counters read back equal a clean run's. Verilator (Icarus: slow)."""
    from test_decoder_rtl import _synthetic

    seed = seed_of("test_compiled_decoder_under_a_hostile_host")
    rng = np.random.default_rng(seed)
    prog = _synthetic(32)
    cfg, prompt, steps = prog.cfg, [1, 7, 30], 4
    d = _decoder_case(prog, prompt, steps)
    load, request, reads, golden = d["load"], d["request"], d["reads"], d["golden"]
    clean_answer, clean, stamps, C = d["answer"], d["clean"], d["stamps"], d["cycles"]
    clean_full = d["full"]
    phase = lambda *a, **kw: make_phase(*a, cfg=cfg, **kw)
    phases = [phase("load", seed, load, [], [])]
    k = int(rng.integers(steps))
    window = (max(1, stamps[k] - int(rng.integers(0, 200))), stamps[k] + int(rng.integers(1, 300)))
    beats, when, lost = _window_expectation(clean, window)
    phases.append(phase(f"ready low in cycles {window[0]}..{window[1] - 1}", seed, request,
                        beats, [dict(clean, emitted=[], status_at=len(beats) - 2)],
                        run_policy=[{"ready": "high", "window": list(window)}],
                        beat_cycles=when, dropped=lost))
    phases.append(phase("ready low through the run", seed, request,
                        [clean["status"] | OVERRUN, C],
                        [dict(clean, emitted=[], status_at=0)],
                        run_policy=[{"ready": "low"}], dropped=2 * steps))
    phases.append(phase("ready high in the run", seed, request, clean_answer, [clean]))
    clean_cycles = _clean_beat_cycles(clean)
    for j, r in enumerate([stamps[1] + 1] + [int(rng.integers(0, C + 3)) for _ in range(2)]):
        prefix = [b for b, c in zip(clean_answer, clean_cycles) if c < r]
        phases.append(phase(f"reset {j} in cycle {r}", seed, request, prefix, [clean],
                            ready_p=1.0, reset={"run": 0, "at": r, "len": 2},
                            beat_cycles=clean_cycles[:len(prefix)]))
        phases[-1]["aborted"] = C
        golden_reset(golden)
        expected, runs = golden_replay(golden, request + reads)
        assert expected == clean_full
        phases.append(phase(f"rerun after reset {j}", seed, request + reads, expected, runs))
    print(f"window {window}, ids stamped {stamps}, {C} cycles")
    run_and_check(sim, phases, "decoder", seed, cfg)


# The signals a reset must leave quiet from the cycle after it (inside the tile: Icarus shows
# them, the Verilator build makes them public, tb/watch.vlt): no unit busy and no result or
# write in flight (the sequencer's
# ``pipe_empty``: the address generators, the vector unit, the transposer, the drain, every
# token of the pipeline, the norm unit), and no write enable of any memory. The tile's data
# registers have no reset (rtl/registers.py): only their valid and enable bits do, and these
# are what this watches.
QUIET = {"running": 0, "seq.pipe_empty": 1, "router.y_en": 0, "router.yw_en": 0,
         "router.c__en": 0, "router.tm__wen": 0, "router.t__wen": 0, "router.h__wen": 0}


def test_a_reset_stops_every_unit_at_once():
    """rst (one cycle) in the middle of each unit's longest busy stretch, and at random cycles,
    of a GENERATE of the compiled decoder on the tile with attention as PV passes (the default
    datapath: the transposer, the passes' exp units and delay line, RoPE, SiLU): from the next
    cycle on, for 32 cycles, nothing runs or is in flight and no memory is written
    (``QUIET``); the beats offered before the reset arrive, nothing after; then the request
    sent again answers as a clean run, and the logits, the token memory and the counters read
    back equal it. Verilator (the watched signals are public in its build: tb/watch.vlt)."""
    from test_tile import decoder_program

    from tinylpu.compiler import profile

    seed = seed_of("test_a_reset_stops_every_unit_at_once")
    rng = np.random.default_rng(seed)
    _, prog = decoder_program(passes=True)
    cfg, prompt, steps = prog.cfg, [1, 7], 2
    assert not cfg.pv
    d = _decoder_case(prog, prompt, steps)
    load, request, reads, golden = d["load"], d["request"], d["reads"], d["golden"]
    clean_answer, clean, stamps, C = d["answer"], d["clean"], d["stamps"], d["cycles"]
    clean_full = d["full"]
    clean_cycles = _clean_beat_cycles(clean)
    phase = lambda *a, **kw: make_phase(*a, cfg=cfg, gap_max=0, **kw)
    phases = [phase("load", seed, load, [], [])]
    # a reset in the middle of each unit's longest busy stretch of the first step (the
    # compiler's schedule: tinylpu.compiler.profile; the step starts at the run's cycle 0),
    # and at random cycles of the run
    step = profile.schedule(prog, 0)
    units = (profile.MAC, profile.EPI, profile.VU, profile.NORM, profile.SCALAR)
    assert all(step.busy[unit] for unit in units[:4]), step.busy     # (no RSQRT, RECIP)
    at = [sum(max(step.busy[unit], key=lambda iv: iv[1] - iv[0])) // 2
          for unit in units if step.busy[unit]]
    at += [int(rng.integers(0, C)) for _ in range(5)]
    for j, r in enumerate(at):
        prefix = [b for b, c in zip(clean_answer, clean_cycles) if c < r]
        watch = {"signals": QUIET, "cycles": 32}
        phases.append(phase(f"reset {j} in cycle {r}", seed, request, prefix, [clean],
                            ready_p=1.0, reset={"run": 0, "at": r, "len": 1, "watch": watch},
                            beat_cycles=clean_cycles[:len(prefix)]))
        phases[-1]["aborted"] = C
    golden_reset(golden)
    expected, runs = golden_replay(golden, request + reads)
    assert expected == clean_full
    phases.append(phase("rerun after the resets", seed, request + reads, expected, runs))
    print(f"reset cycles {at} (run of {C} cycles, ids stamped {stamps})")
    measured = run_and_check("verilator", phases, "quiet reset", seed, cfg)
    noise = [(p["name"], n) for p, m in zip(phases, measured) for n in m["reset_noise"]]
    assert noise == [], f"signals that moved after a reset: {noise[:12]}"
    # (and each reset was watched, every signal for 32 cycles)
    assert [m["reset_watched"] for m in measured[1:-1]] == [32 * len(QUIET)] * len(at)


# 3. truncated and misframed command streams -------------------------------------------------

def _setup_stream(rng):
    """A program (a MATVEC, a VOP, HALT), weights, both activation banks, the table and the
    token memory."""
    L = CFG.lanes
    prog = [isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=8, n_blocks=2,
                       n_chunks=2, q_mult=1, q_shift=6, y_bits=16),
            isa.vop(g=isa.GFunc.ADD, s=L, n=1, a=dict(bank=0, base=0, js=1),
                    b=dict(mode=isa.BMode.IMM, base=5), c=dict(bank=0, base=16 * L, js=1),
                    sat=20),
            isa.halt()]
    stream = host.write_cmd(CFG, host.TARGET_PROG, 0, [isa.encode(i) for i in prog])
    for r in range(CFG.rows):
        stream += host.write_cmd(CFG, host.TARGET_WBANK + r, 0, rng.integers(-128, 128, (4, L)))
    for a in range(CFG.act_banks):
        stream += host.write_cmd(CFG, host.TARGET_ABANK + a, 0,
                                 rng.integers(-(1 << 15), 1 << 15, (24, L)))
    stream += host.write_cmd(CFG, host.TARGET_TOKENS, 0, rng.integers(0, 1 << 16, (16, 1)))
    return stream


def _check_tail():
    """Well-formed commands: a WRITE and READ of the token memory, a RUN, a READ of its
    result words."""
    return (host.write_cmd(CFG, host.TARGET_TOKENS, 8, [[0x1234], [0xfedc]])
            + host.read_cmd(CFG, host.TARGET_TOKENS, 6, 4) + host.run_cmd(0)
            + host.read_cmd(CFG, host.TARGET_ABANK + 1, 8, 1)
            + host.read_cmd(CFG, host.TARGET_ABANK, 16, 1))


def _mutate(rng, stream):
    """1..3 random framing faults: a beat dropped, a stray beat (random, or a header-like word
    of a random command and small count), a beat repeated, a WRITE's payload cut short.
    Returns the beats and a description of the faults."""
    beats, faults = list(stream), []
    for _ in range(int(rng.integers(1, 4))):
        kind, i = int(rng.integers(4)), int(rng.integers(len(beats)))
        if kind == 0:
            faults.append(f"beat {i} dropped")
            del beats[i]
        elif kind == 1:
            stray = int(rng.integers(1 << 32)) if rng.random() < 0.5 else \
                int(rng.integers(0, 8)) | int(rng.choice([0, 0xA0, 0xC0, 0x41, 0x3f])) << 8 | \
                int(rng.integers(0, 4)) << 16
            faults.append(f"stray {stray:#x} before beat {i}")
            beats.insert(i, stray)
        elif kind == 2:
            faults.append(f"beat {i} repeated")
            beats.insert(i, beats[i])
        else:
            cmds = [c for c in frame(CFG, beats) if c["cmd"] == host.CMD_WRITE
                    and c["end"] - c["at"] > 2]
            if cmds:
                c = cmds[int(rng.integers(len(cmds)))]
                cut = int(rng.integers(1, c["end"] - c["at"] - 1))
                faults.append(f"WRITE at beat {c['at']} cut by {cut}")
                del beats[c["end"] - cut:c["end"]]
    return beats, ", ".join(faults)


def _acceptable(golden, stream):
    """A misframed stream the golden model can follow: it writes no program word (the
    program has no NEXT, so a GENERATE of any length runs it once, as a RUN from pc 0), and
    it answers at most 300 beats."""
    for c in frame(CFG, stream):
        if c["cmd"] == host.CMD_WRITE and c["target"] == host.TARGET_PROG:
            return False
        if c["cmd"] == host.CMD_READ and c["count"] * word_beats(CFG, c["target"]) > 300:
            return False
    try:
        golden_replay(copy.deepcopy(golden), stream)
    except Exception:       # noqa: BLE001 (a run the golden model refuses)
        return False
    return True


@pytest.mark.parametrize("sim", SIMS)
def test_misframed_streams(sim):
    """Truncated and misframed command streams (docs/isa.md, "Misframed streams"), with
    random gaps and random ready: the tile frames every beat as the golden model does; each
    documented consequence is checked on its own; a stream cut short leaves the tile waiting
    for the rest (input ready, nothing answered) until ``rst``, which drops the partial
    command, keeps every memory (whole words of a cut WRITE included), clears BAD_COMMAND
    and the busy counters; well-formed commands after it, or after the misframed beats are
    consumed, work."""
    seed = seed_of("test_misframed_streams")
    rng = np.random.default_rng(seed)
    golden = GoldenTile(CFG)
    phases = []

    def add(name, stream, reset=None, **kw):
        expected, runs = golden_replay(golden, stream)
        phases.append(make_phase(name, seed, stream, expected, runs, reset=reset, **kw))
        if reset:
            golden_reset(golden)
        return expected, runs

    T, tok = host.TARGET_TOKENS, lambda values: [[v] for v in values]
    add("setup", _setup_stream(rng))
    add("well-formed", _check_tail())
    # a WRITE whose payload is cut short takes the next command's beats as its payload
    read = host.read_cmd(CFG, T, 0, 4)
    stream = host.header(host.CMD_WRITE, T, 0, 4) + [5, 6] + read + read
    expected, _ = add("short WRITE eats the next READ", stream)
    assert expected == [5, 6, read[0] & 0xffff, read[1]]    # one READ answered, not two
    # an unknown command is two beats: what follows is framed as commands
    stream = []
    for cmd in (0, 5, 0x7f, 0xff):
        stream += host.header(cmd, T, 0, 3) + host.read_cmd(CFG, T, 0, 1)
    stream += host.run_cmd(0) + host.run_cmd(0)
    expected, runs = add("unknown commands", stream)
    assert len(expected) == 4 + 4 and [r["status"] for r in runs] == \
        [host.STATUS_DONE | host.STATUS_BAD_COMMAND, host.STATUS_DONE]
    # invalid targets: a WRITE's payload is consumed as weight-bank words and dropped, a
    # READ answers zeros in weight-bank words; a WRITE to the counters is consumed, dropped
    nw = host.beats(CFG, host.TARGET_WBANK)
    stream = (host.header(host.CMD_WRITE, 0x3f, 0, 2) + list(range(1, 2 * nw + 1))
              + host.header(host.CMD_READ, host.TARGET_ABANK + 2, 0, 2)
              + host.header(host.CMD_WRITE, host.TARGET_COUNTERS, 0, 2) + [7, 8]
              + host.read_cmd(CFG, T, 0, 4) + host.run_cmd(0))
    expected, runs = add("invalid targets", stream)
    assert expected[:2 * nw] == [0] * 2 * nw and expected[2 * nw:2 * nw + 4] == [5, 6,
                                                                                read[0] & 0xffff,
                                                                                read[1]]
    assert runs[0]["status"] == host.STATUS_DONE | host.STATUS_BAD_COMMAND
    # count 0: a READ answers nothing, a WRITE takes no payload (not bad); a GENERATE without
    # prompt or steps starts nothing (bad)
    stream = (host.header(host.CMD_READ, T, 0, 0) + host.header(host.CMD_WRITE, T, 0, 0)
              + host.read_cmd(CFG, T, 2, 1) + host.run_cmd(0)
              + host.header(host.CMD_GENERATE, 0, 3, 0) + host.header(host.CMD_GENERATE, 0, 0, 2)
              + host.run_cmd(0))
    expected, runs = add("count 0", stream)
    assert expected[0] == read[0] & 0xffff and [r["status"] for r in runs] == \
        [host.STATUS_DONE, host.STATUS_DONE | host.STATUS_BAD_COMMAND]
    # a stray beat before a command shifts the framing until a command boundary meets it
    stray = [0] + host.write_cmd(CFG, T, 0, tok([1, 2])) + _check_tail()
    last = frame(CFG, stray)[-1]
    assert not last["complete"]             # the framing is off to the end, by one beat ...
    stray += [0] * (last["need"] - len(stray))        # ... until the host completes it
    assert frame(CFG, stray)[-1]["complete"]
    add("stray beat", stray)
    add("well-formed after the stray beat", _check_tail())
    # a stream cut short: the tile waits (input ready, nothing answered) until rst
    stream = host.header(0x7f, 0, 0, 0) + host.write_cmd(CFG, T, 0, tok(range(40, 48)))[:7]
    add("WRITE cut short, then rst", stream, reset={"after_send": 40, "len": 2})
    expected, runs = add("after rst: BAD_COMMAND and counters cleared",
                         host.read_cmd(CFG, T, 0, 8) + host.counters_cmd(CFG)
                         + host.run_cmd(0) + host.read_cmd(CFG, host.TARGET_PROG, 0, 1))
    assert expected[:5] == [40, 41, 42, 43, 44] and expected[8:8 + len(host.Counter)] == \
        [0] * len(host.Counter) and runs[0]["status"] == host.STATUS_DONE
    add("a lone header word, then rst", host.read_cmd(CFG, T, 0, 2)[:1],
        reset={"after_send": 20, "len": 1})
    # a WRITE cut inside a word: its whole words are written, the partial one is dropped
    A1, L = host.TARGET_ABANK + 1, CFG.lanes
    new = rng.integers(-(1 << 31), 1 << 31, (3, L))
    add("WRITE cut inside its third word, then rst",
        host.write_cmd(CFG, A1, 30, new)[:2 + 2 * L + 3], reset={"after_send": 25, "len": 3})
    expected, _ = add("whole words written", host.read_cmd(CFG, A1, 29, 4))
    assert expected[L:3 * L] == [int(v) & 0xffffffff for v in new[:2].ravel()]
    # addresses wrap at the target's depth (the address bits above it are ignored), a RUN's
    # start pc at the program memory's; a RUN's target and count are ignored
    wrap = CFG.tdepth - 2
    stream = (host.header(host.CMD_WRITE, T, (7 << 16) + wrap, 4) + [21, 22, 23, 24]
              + host.header(host.CMD_READ, T, wrap, 4) + host.header(host.CMD_READ, T, 0, 2)
              + host.header(host.CMD_RUN, 0x55, 3 * CFG.pdepth, 7) + host.run_cmd(0))
    expected, runs = add("addresses wrap", stream)
    assert expected[:6] == [21, 22, 23, 24, 23, 24] and runs[0]["cycles"] == runs[1]["cycles"]
    add("well-formed after rst", _check_tail())
    # rst while a READ's answer is offered, the host slow to take it: the rest is dropped
    stream = host.read_cmd(CFG, host.TARGET_ABANK, 0, 16)
    full, _ = golden_replay(copy.deepcopy(golden), stream)
    phases.append(make_phase("rst during a READ answer", seed, stream, [], [], ready_p=0.25,
                             reset={"after_send": 30, "len": 2}))
    phases[-1]["prefix_of"] = full
    golden_reset(golden)
    add("well-formed after rst during a READ", _check_tail())
    # random framing faults, then rst and well-formed commands
    base = (host.write_cmd(CFG, T, 0, tok(rng.integers(0, 1 << 16, 6)))
            + host.read_cmd(CFG, T, 0, 6) + host.run_cmd(0)
            + host.write_cmd(CFG, host.TARGET_ABANK, 2, rng.integers(-99, 99, (2, CFG.lanes)))
            + host.read_cmd(CFG, host.TARGET_ABANK, 1, 3) + host.run_cmd(0)
            + host.write_cmd(CFG, host.TARGET_TABLE, 0, tok(rng.integers(-99, 99, 3)))
            + host.read_cmd(CFG, host.TARGET_TABLE, 0, 3))
    n_fuzz = 3 if sim == "icarus" else 30
    while sum(p["name"].startswith("random faults") for p in phases) < n_fuzz:
        stream, faults = _mutate(rng, base)
        if not _acceptable(golden, stream):
            continue
        k = sum(p["name"].startswith("random faults") for p in phases)
        add(f"random faults {k} ({faults}), then rst", stream,
            reset={"after_send": 30, "len": 2})
        add(f"well-formed after random faults {k}", _check_tail())
    print(f"seed {seed} (misframed, {sim})")
    measured = run(sim, phases, "misframed")
    where = f"misframed on {sim}, seed {seed}"
    for phase, m in zip(phases, measured):
        what = f"{phase['name']} ({where}, phase seed {phase['seed']})"
        if "prefix_of" in phase:
            got = [b for b, _ in m["beats"]]
            no_timeout(phase, m, what)
            assert not m["violations"], what
            assert 0 < len(got) < 16 * CFG.lanes and got == phase["prefix_of"][:len(got)], \
                f"{what}: {len(got)} beats"
            continue
        check(phase, m, where)
        if phase["reset"]:
            # before rst the tile waits for the rest of the command, input ready
            waiting = frame(CFG, phase["stream"])[-1]["complete"] is False
            assert m["in_ready_at_reset"] == 1 or not waiting, what


def test_stress_checks_can_fail():
    """The checks report what they promise to catch (Icarus, one short simulation): an id
    lost in another cycle than expected, a wrong beat in an answer taken under random ready,
    a wrong cycle prediction, and a reset prefix claiming the beat offered in the reset
    cycle. Each failure names the phase and the seed."""
    seed = seed_of("test_stress_checks_can_fail")
    case, golden, clean = _generate_setup(seed)
    C, stamps = clean["cycles"], [t for _, t in clean["emitted"]]
    t = stamps[0]
    beats, when, lost = _window_expectation(clean, (t + 1, t + 2))     # the stamp beat lost ...
    phases = [make_phase("load", seed, case["load"], [], []),
              make_phase("wrong window", seed, case["request"], beats,
                         [dict(clean, emitted=[], status_at=len(beats) - 2)],
                         run_policy=[{"ready": "high", "window": [t, t + 1]}],   # ... the id is
                         beat_cycles=when, dropped=lost)]
    reads = host.read_cmd(CFG, host.TARGET_TOKENS, 0, 8) + host.run_cmd(7)
    expected, runs = golden_replay(golden, reads)
    expected[5] ^= 1 << 3
    phases.append(make_phase("wrong beat", seed, reads, expected, runs, ready_p=0.3))
    phases.append(make_phase("wrong cycles", seed, reads, golden_replay(golden, reads)[0],
                             [dict(runs[0], cycles=runs[0]["cycles"] + 1)]))
    clean_answer = golden_replay(GoldenTile(CFG), case["load"] + case["request"])[0]
    prefix = [b for b, c in zip(clean_answer, _clean_beat_cycles(clean)) if c <= t]
    phases.append(make_phase("wrong reset prefix", seed, case["request"], prefix, [clean],
                             ready_p=1.0, reset={"run": 0, "at": t, "len": 1},
                             beat_cycles=_clean_beat_cycles(clean)[:len(prefix)]))
    phases[-1]["aborted"] = C
    measured = run("icarus", phases, "negative")
    where = f"negative, seed {seed}"
    check(phases[0], measured[0], where)
    with pytest.raises(AssertionError, match=rf"wrong window .*seed {seed}.*differences at \[0\]"):
        check(phases[1], measured[1], where)
    with pytest.raises(AssertionError, match=r"wrong beat .*differences at \[5\]"):
        check(phases[2], measured[2], where)
    with pytest.raises(AssertionError, match=rf"wrong cycles .*predicted {runs[0]['cycles'] + 1}"
                                             rf" cycles, tile counted {runs[0]['cycles']}"):
        check(phases[3], measured[3], where)
    with pytest.raises(AssertionError, match=r"wrong reset prefix .*SimTimeoutError"):
        check_aborted(phases[4], measured[4], where, C)
