"""A hand-written token loop for the RTL tests: a toy decoder step (VOPs, a MATVEC, NEXT) run
under GENERATE, as a host-stream case with the golden model's expected response.

Per position (``V`` = 16 ids, ``D`` = lanes, weights in MATVEC layout):

    pc 0  VOP   x = E[tok]                    embedding row (WROW, indexed by TOK) -> bank 0
    pc 1  VOP   cache[pos] = E[tok] + 3       (ADD, immediate B; C indexed by POS) -> bank 0
    pc 2  MATVEC logits = Wout x              (int32 results, y_bits = 32) -> bank 1 words 0..
    pc 3  VOP   score[j] = sum_k cache[j][k]^2 >> 2, j <= pos    (SQUARE, S = pos + 1)
          WAIT  LAT_WRITE - D, if D < LAT_WRITE: at position 0 pc 3 reads only D elements, and
                the logits' last block lands LAT_WRITE after the MATVEC's last read
    pc 4  VOP   ARGMAX over the logits        -> next_token (and bank 0)
    pc 5  VOP   SiLU (table) of each logit    (element-wise, MULSHR)
    pc 6  NEXT  0
    pc 7  HALT

(pc: without the WAIT.) Otherwise no WAIT is needed: each read comes after the write it
depends on has landed, and no two writes hit one activation bank in one cycle (the golden
model checks both).
"""

import numpy as np

from tinylpu import host, isa
from tinylpu.verify.cases import restore, snapshot
from tinylpu.verify.fuzz import random_attention, random_matvec, random_vop
from tinylpu.golden import GoldenError

V = 16


def _program(cfg):
    R, L = cfg.rows, cfg.lanes
    D = L
    B, G, I, S = isa.BMode, isa.GFunc, isa.Index, isa.Space
    cache = 4 * L                                 # element address of cache row 0
    out = 3 * L * 8                               # SiLU outputs
    return [
        isa.vop(g=G.PASS, s=D, n=1, a=dict(space=S.WROW, base=0, index=I.TOK, istride=1, js=1),
                c=dict(bank=0, base=0, js=1), sat=16),
        isa.vop(g=G.ADD, s=D, n=1, a=dict(space=S.WROW, base=0, index=I.TOK, istride=1, js=1),
                b=dict(mode=B.IMM, base=3), c=dict(bank=0, base=cache, index=I.POS,
                                                    istride=D, js=1), sat=16),
        isa.matvec(w_base=V // R, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=V // R,
                   n_chunks=1, q_mult=1, q_shift=6, y_bits=32),
        isa.vop(g=G.MUL, s_pos=True, n=D, a=dict(bank=0, base=cache, js=D, ks=1),
                b=dict(mode=B.SQUARE), c=dict(bank=1, base=2 * L * 2, js=1), shift=2, sat=24),
        *([isa.wait(isa.LAT_WRITE - D)] if D < isa.LAT_WRITE else []),
        isa.vop(g=G.PASS, red=isa.Reduce.ARGMAX, s=1, n=V, a=dict(bank=1, base=0, ks=1),
                c=dict(bank=0, base=L), sat=16),
        isa.vop(g=G.SILU, s=V, n=1, a=dict(bank=1, base=0, js=1), c=dict(bank=0, base=out, js=1),
                mult=3, shift=1, sat=16),
        isa.next_(0),
        isa.halt(),
    ]


def token_loop_case(golden, name, rng, *, n_prompt, steps):
    """The case (see :func:`tinylpu.flow.rtlsim.run_streams`) of the toy decoder under GENERATE
    with random weights, table and prompt; after the run the activation banks and the token
    memory are read back. ``golden`` keeps its memory state. Also in the case: ``load`` (the
    stream up to the GENERATE) and ``request`` (the GENERATE), for
    :func:`tinylpu.flow.rtlsim.run_generate`."""
    cfg = golden.cfg
    R, L = cfg.rows, cfg.lanes
    assert V % R == 0 and cfg.act_banks >= 2 and cfg.adepth >= 32 and cfg.wdepth >= 2 * V // R
    # positions 0 .. n_prompt + steps - 2: cache rows in words 4 .. (below the SiLU outputs)
    assert n_prompt + steps <= cfg.tdepth and 4 + n_prompt + steps - 1 <= 3 * 8
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    E, Wout = rng.integers(lo, hi, (V, L)), rng.integers(lo, hi, (V, L))
    weights = np.concatenate([E.reshape(V // R, R, L), Wout.reshape(V // R, R, L)])
    program = _program(cfg)
    stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
    for r in range(R):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0, weights[:, r])
    stream += host.write_cmd(cfg, host.TARGET_TABLE, 0,
                             rng.integers(-(1 << 15), 1 << 15, (isa.TABLE_DEPTH, 1)))
    stream += host.write_cmd(cfg, host.TARGET_TOKENS, 0,
                             rng.integers(0, V, (n_prompt, 1)))
    load = list(stream)
    stream += host.generate_cmd(n_prompt, steps)
    for a in range(cfg.act_banks):
        stream += host.read_cmd(cfg, host.TARGET_ABANK + a, 0, cfg.adepth)
    stream += host.read_cmd(cfg, host.TARGET_TOKENS, 0, n_prompt + steps)
    expected = golden.host(stream)
    return {"name": name, "stream": stream, "expected": expected,
            "cycles": golden.last_run.cycles, "run_at": golden.last_run_at,
            "emissions": len(golden.emitted),
            "load": load, "request": host.generate_cmd(n_prompt, steps)}


def random_token_program_case(golden, name, rng, tries=200):
    """A random token-loop program under GENERATE: VOPs (with WAITs that mostly, not always,
    cover their latency), MATVECs (racing ones too: the RAW flag), then NEXT 0 and HALT,
    over random weights, activations (full 32-bit lanes), table and prompt. Programs the
    golden model refuses (a schedule error) or that use one port twice in a cycle (the data
    of the losing user is undefined) are drawn again. Everything is read back."""
    cfg = golden.cfg
    L = cfg.lanes
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    for _ in range(tries):
        body = []
        for _ in range(int(rng.integers(1, 6))):
            if rng.random() < 0.65:
                vop = random_vop(cfg, rng)
                body.append(vop)
                lat = isa.vop_latency(vop["args"]["vop"])
                body.append(isa.wait(int(rng.integers(1, lat + 4)) if rng.random() < 0.2
                                     else lat + int(rng.integers(1, 4))))
            elif rng.random() < 0.3 and cfg.attention:
                body += random_attention(cfg, rng, cfg.adepth)
            else:
                body.append(random_matvec(cfg, rng, cfg.adepth))
                if rng.random() < 0.7:
                    body.append(isa.wait(int(rng.integers(1, 8))))
        program = body + [isa.next_(0), isa.halt()]
        if len(program) > cfg.pdepth:
            continue
        n_prompt, steps = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stream = host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in program])
        for r in range(cfg.rows):
            stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0,
                                     rng.integers(lo, hi, (cfg.wdepth, L)))
        for a in range(cfg.act_banks):
            words = rng.integers(-(1 << 31), 1 << 31, (cfg.adepth, L))
            small = rng.random((cfg.adepth, L)) < 0.7          # mostly int16-sized values
            words[small] = rng.integers(-(1 << 15), 1 << 15, int(small.sum()))
            stream += host.write_cmd(cfg, host.TARGET_ABANK + a, 0, words)
        stream += host.write_cmd(cfg, host.TARGET_TABLE, 0,
                                 rng.integers(-(1 << 15), 1 << 15, (isa.TABLE_DEPTH, 1)))
        for target, depth in ((host.TARGET_MMEM, cfg.mdepth), (host.TARGET_RMEM, cfg.rdepth)):
            stream += host.write_cmd(cfg, target, 0,
                                     rng.integers(-(1 << 15), 1 << 15, (depth, cfg.rows)))
        stream += host.write_cmd(cfg, host.TARGET_TOKENS, 0,
                                 rng.integers(0, 4 * cfg.wdepth, (cfg.tdepth, 1)))
        stream += host.generate_cmd(n_prompt, steps)
        for a in range(cfg.act_banks):
            stream += host.read_cmd(cfg, host.TARGET_ABANK + a, 0, cfg.adepth)
        stream += host.read_cmd(cfg, host.TARGET_TOKENS, 0, cfg.tdepth)
        saved = snapshot(golden)
        try:
            expected = golden.host(stream)
        except GoldenError:
            expected = None
        if expected is None or expected[golden.last_run_at] & host.STATUS_PORT_CONFLICT:
            restore(golden, saved)
            continue
        return {"name": name, "stream": stream, "expected": expected,
                "cycles": golden.last_run.cycles, "run_at": golden.last_run_at,
                "emissions": len(golden.emitted)}
    raise RuntimeError(f"no valid random token program in {tries} tries")
