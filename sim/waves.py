"""`make waves`: a short GEMV on Icarus that writes an FST and a GTKWave save file."""

__all__ = ["make_waves", "SIGNAL_GROUPS"]

import math
import shutil

import numpy as np

from tinylpu.verify.cases import gemv_case
from tinylpu.golden import GoldenTile
from tinylpu.flow.gtkw import write_gtkw
from tinylpu.isa import INSTR_BITS

# (group, [signal path below the top, as Icarus names it in the FST])
SIGNAL_GROUPS = [
    ("Host interface", ["clk", "rst", "host_in__valid", "host_in__ready",
                        "host_in__payload[31:0]", "host_out__valid", "host_out__ready",
                        "host_out__payload[31:0]", "running"]),
    ("Sequencer", ["seq.pc[{pc}:0]", "seq.imem__data[{instr}:0]", "seq.matvec__issue",
                   "seq.vop__issue", "seq.halted", "seq.free", "seq.left[33:0]",
                   "seq.loop_left[15:0]",
                   "seq.run__done", "seq.run__cycles[31:0]"]),
    ("Token loop", ["seq.in_next", "seq.pos_count[32:0]", "seq.generating", "seq.n_end[32:0]",
                    "seq.run__emit_valid", "seq.run__emit_data[31:0]", "vu.next_token[15:0]"]),
    ("Address generator", ["agu.op__busy", "agu.op__final", "agu.w__word[15:0]",
                           "agu.x_bank[1:0]", "agu.x_addr[15:0]", "agu.chunk[11:0]",
                           "agu.blocks_left[15:0]"]),
    ("Attention", ["aagu.op__busy", "aagu.op__final", "aagu.x_addr[15:0]", "aagu.s_en",
                   "aagu.s_addr[15:0]", "drain.busy", "drain.inject"]),
    ("Pipeline tokens", ["s1[{tok}:0]", "s2[{tok}:0]", "r3[{tok}:0]", "r4[{tok}:0]",
                         "r5[{tok}:0]", "r6[{tok}:0]"]),
    ("Router", ["router.x_en", "router.x_data[{act}:0]", "router.y_en", "router.y_word[15:0]",
                "router.y_mask[{lanes}:0]", "router.conflict", "router.hazard"]),
    ("MAC array", ["mac.valid", "mac.first", "mac.last", "mac.acc0[{acc}:0]",
                   "mac.result_valid"]),
    ("Requantizer", ["requant.prod0[{prod}:0]", "requant.y__0[31:0]"]),
    ("Vector unit", ["vu.op__busy", "vu.op__final", "vu.idle", "vu.a__en", "vu.a__word[15:0]",
                     "vu.c__en", "vu.c__word[15:0]", "vu.c__data[31:0]"]),
]


def make_waves(cfg, out_dir, shape=(2 * 4, 40), seed=0, out=print):
    from tinylpu.rtl.agu import token_layout
    from tinylpu.rtl.sram import addr_bits
    from tinylpu.flow.rtlsim import fst_path, run_streams
    rng = np.random.default_rng(seed)
    rows, cols = shape
    W, x = rng.integers(-128, 128, (rows, cols)), rng.integers(-128, 128, cols)
    case = gemv_case(f"waves {rows}x{cols}", GoldenTile(cfg), [W], x)
    widths = dict(pc=addr_bits(cfg.pdepth) - 1, instr=INSTR_BITS - 1,
                  tok=token_layout(cfg).size - 1, act=cfg.act_word_bits - 1,
                  lanes=cfg.lanes - 1,
                  acc=cfg.acc_bits - 1, prod=cfg.acc_bits + 16 - 1)
    groups = [(name, [f"tinylpu_tile.{s.format(**widths)}" for s in signals])
              for name, signals in SIGNAL_GROUPS]
    run_streams(cfg, "icarus", [case], waves=True, name="waves",
                signals=[s for _, names in groups for s in names])
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / "tinylpu.fst"
    shutil.copyfile(fst_path(cfg, "icarus"), dest)
    # open on the whole simulation: about one host beat or tile cycle per 10 ns clock, 1 ps
    # time unit, across the ~900 pixels of the wave pane (GTKWave: 200 px per 2**-zoom units)
    span_ps = (len(case["stream"]) + len(case["expected"]) + case["cycles"] + 20) * 10_000
    gtkw = write_gtkw(out_dir / "tinylpu.flow.gtkw", dest, groups,
                      zoom=-math.log2(span_ps * 200 / 900))
    out(f"wrote {dest} ({dest.stat().st_size} bytes) and {gtkw}")
    out(f"view with: gtkwave {gtkw}")
    return dest, gtkw
