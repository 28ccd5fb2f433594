"""`make sim`: one GEMV on the RTL (or the golden model), compared with the golden model."""

__all__ = ["run_gemv", "parse_shape"]

import time

import numpy as np

from tinylpu.verify.cases import compiled_case
from tinylpu.golden import GoldenTile
from tinylpu.compiler import compile_gemv


def parse_shape(text):
    """``"172x64"`` -> (172, 64)."""
    try:
        out, inp = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape must look like 172x64 (rows x columns), not {text!r}")
    if out < 1 or inp < 1:
        raise ValueError(f"shape dimensions must be >= 1, not {text!r}")
    return out, inp


def _fmt(values, n=16):
    head = " ".join(f"{int(v):4d}" for v in values[:n])
    return head + (" ..." if len(values) > n else "")


def run_gemv(cfg, sim, shape, seed=0, out=print):
    """Run a random int8 GEMV of ``shape`` on ``sim``; print the comparison; return True if
    every value and the cycle count match."""
    from tinylpu.flow.rtlsim import run_streams
    rows, cols = shape
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    W, x = rng.integers(lo, hi, (rows, cols)), rng.integers(lo, hi, cols)
    golden = GoldenTile(cfg)
    g = compile_gemv(W, x, cfg)
    case = compiled_case(f"gemv {rows}x{cols}", golden, g, [W], x)
    y_ref = g.reference([W], x)
    y_gold = g.result(case["expected"])
    mult, shift = g.layers[0]
    out(f"TinyLPU: GEMV {rows}x{cols} (int8, seed {seed}) on {cfg.ident}: "
        f"{cfg.rows} rows x {cfg.lanes} lanes = {cfg.macs} MACs")
    out(f"  requantization: y = sat8((acc * {mult} + 2^{shift - 1}) >> {shift})")
    out(f"  numpy  y = {_fmt(y_ref)}")
    out(f"  golden y = {_fmt(y_gold)}")
    ok = bool(np.array_equal(y_gold, y_ref))
    cycles = case["cycles"]
    if sim == "golden":
        measured, wall = golden.last_run.cycles, None
    else:
        t0 = time.perf_counter()
        m = run_streams(cfg, sim, [case], name="sim")[0]
        total = time.perf_counter() - t0
        y_rtl = g.result(m["response"])
        out(f"  {sim:6s} y = {_fmt(y_rtl)}")
        equal = int(np.sum(y_rtl == y_gold))
        ok = ok and m["response"] == case["expected"]
        out(f"  values: {equal}/{len(y_gold)} equal to the golden model "
            f"({'bit-exact' if ok else 'MISMATCH'})")
        measured, wall = m["cycles"], m["wall"]
        out(f"  wall time: {total:.1f} s including build and load, run {wall * 1e3:.2f} ms")
    util = rows * cols / (measured * cfg.macs)
    out(f"  cycles: predicted {cycles}, measured {measured} "
        f"({'exact' if cycles == measured else 'DIFFERENT'})")
    out(f"  MAC utilization: {rows * cols} MACs / ({measured} cycles x {cfg.macs}) "
        f"= {100 * util:.1f}%")
    return ok and cycles == measured
