"""Random programs for the tile, at scale: every instruction, every unit, every status bit.

:func:`random_case` draws one host-stream case (see :func:`tinylpu.flow.rtlsim.run_streams`): fresh
memory contents, a random program, then RUN or GENERATE, perhaps under a cycle budget, after
a bad command, with an illegal word in the program, or with the output not taken during the
run. The golden model runs it *not strict* (``GoldenTile.strict = False``): a program that
breaks a schedule rule is not redrawn but run on, and the status word carries the rule's bit
(the RTL's, docs/isa.md "Schedule rules"). Such a run's data is undefined, so only its status
and cycle count are compared (``check``: the response beats that must match), and the case
then *resynchronizes*: it reloads bank 0, runs a short program that sets every register a
later program may read before writing it (norm register, next token, QK's q latch and
maxima) and compares that run in full. Every other case is compared beat for beat, busy
counters included.

:func:`features` names what a case exercises; :data:`FEATURES` is the whole list, and
``tests/test_fuzz_gen.py`` checks that a few hundred cases cover all of it.
"""

__all__ = ["FEATURES", "random_case", "random_matvec", "random_attention", "random_vop",
           "features", "check_response", "campaign"]

from collections import Counter

import numpy as np
from amaranth.lib import data

from tinylpu import host, isa
from tinylpu.verify.cases import illegal_words
from tinylpu.golden import GoldenError

_STATUS = data.Layout.cast(host.Status)
_STATUS_BITS = {name: 1 << field.offset for name, field in _STATUS if name != "reserved"}
FEATURES = sorted(
    [f"op:{op.name}" for op in isa.Opcode]
    + [f"vop.g:{v.name}" for v in isa.GFunc] + [f"vop.red:{v.name}" for v in isa.Reduce]
    + [f"vop.out:{v.name}" for v in isa.OutFunc] + [f"vop.b:{v.name}" for v in isa.BMode]
    + [f"vop.a:{v.name}" for v in isa.Space] + [f"vop.index:{v.name}" for v in isa.Index]
    + ["vop.s_pos", "vop.n_pos"]
    + [f"matvec.epi:{v.name}" for v in isa.Epi]
    + ["matvec.y_pack", "matvec.m_rows", "matvec.norm", "matvec.ss", "matvec.y_index:POS",
       "matvec.y_wbank", "matvec.y_wcol", "matvec.x_exp"]
    + ["qk.n_pos", "qk.kv_shift", "qk.s_tr", "pv.n_pos", "loop", "generate", "illegal", "budget",
       "bad command", "output not taken", "counters read", "weights read", "schedule rule broken"]
    + [f"status:{name}" for name in _STATUS_BITS])


def _pick(rng, *xs):
    return xs[int(rng.integers(len(xs)))]


def random_matvec(cfg, rng, depth):
    """A MATVEC with random operands at random addresses and banks (overlapping, racing and
    wrapping ones included): per-row or instruction multipliers, every epilogue, packed or
    not, y indexed by the position or not, scaled by the norm register or not, setting it
    from the sum of squares or not, into the weight banks (y_wbank, or y_wcol: a byte a
    result) or not; ROPE with per-head-slot shifts; a PV pass (x_exp) now and then."""
    epi = isa.Epi(int(rng.choice([0, 0, 1, 2, 3, 4])))
    resid = epi == isa.Epi.RESID
    y_pack = epi not in (isa.Epi.RESID, isa.Epi.SILU_GATE) and rng.random() < 0.2
    ss = epi in (isa.Epi.NONE, isa.Epi.RESID) and not y_pack and rng.random() < 0.25
    pick = lambda hi: int(rng.integers(0, hi))
    wbank = epi in (isa.Epi.NONE, isa.Epi.ROPE) and not (y_pack or ss) and rng.random() < 0.3
    wcol = wbank and epi == isa.Epi.NONE and rng.random() < 0.5 and cfg.wbytes
    wbank = wbank and not wcol
    instr = isa.matvec(
        w_base=pick(1 << cfg.waddr_bits), x_bank=pick(4), x_addr=pick(depth), y_bank=pick(4),
        y_addr=pick(1 << cfg.waddr_bits if wbank or wcol else depth),
        n_blocks=pick(2 * cfg.lanes // cfg.rows + 1) + 1 if wbank else pick(3) + 1,
        n_chunks=pick(3) + 1,
        q_mult=int(rng.integers(-(1 << 15), 1 << 15)), q_shift=pick(20),
        y_bits=int(cfg.data_bits if wbank or wcol else rng.choice([16, 16, 32]) if resid
                   else rng.choice([cfg.data_bits, 16, 32])), y_wbank=wbank, y_wcol=wcol,
        head_shift=[pick(16) for _ in range(isa.HEAD_SLOTS)] if rng.random() < 0.5 else 0,
        m_base=pick(cfg.mdepth) if rng.random() < 0.4 else None,
        y_index=isa.Index.POS if rng.random() < 0.3 else isa.Index.NONE, y_shift=pick(3),
        epi=epi, rope_base=pick(cfg.rdepth), rope_shift=pick(3), y_pack=y_pack,
        epi_shift=pick(12), norm=rng.random() < 0.3,
        ss_init=pick(1 << 24) if ss else None)
    if epi in (isa.Epi.RESID, isa.Epi.SILU_GATE) and rng.random() < 0.2:
        instr["args"]["matvec"]["y_pack"] = 1            # ignored by both (isa.matvec refuses)
    if cfg.attention and rng.random() < 0.12:           # a PV pass instead
        a = instr["args"]["matvec"]
        instr = isa.matvec(
            w_base=a["w_base"], x_bank=a["x_bank"], x_addr=a["x_addr"], y_bank=a["y_bank"],
            y_addr=pick(depth), n_blocks=pick(3) + 1, n_chunks=pick(3) + 1,
            q_shift=pick(24), y_bits=int(rng.choice([cfg.data_bits, 16, 32])),
            y_index=isa.Index.POS if rng.random() < 0.3 else isa.Index.NONE, y_shift=pick(3),
            x_exp=True, x_head=pick(2 * cfg.rows), w_shift=pick(4), x_pos=rng.random() < 0.5,
            x_shift=pick(4), y_grp=pick(16) if rng.random() < 0.5 else 0)
    return instr


def random_attention(cfg, rng, depth):
    """QK, a WAIT that mostly (not always) covers its latency, then PV over the same scores:
    random banks, addresses (wrapping ones included), positions, shifts and K/V sharing;
    some QKs transpose their scores (``s_tr``, with up to 2L + 3 positions)."""
    pick = lambda hi: int(rng.integers(0, hi))
    s_tr = rng.random() < 0.35
    n = dict(n=pick(2 * cfg.lanes + 3 if s_tr and rng.random() < 0.5 else 5) + 1) \
        if rng.random() < 0.7 else dict(n_pos=True)
    kv_shift, s_bank = pick(3), pick(4)
    qk = isa.qk(q_addr=pick(1 << cfg.waddr_bits), k_bank=pick(4), k_addr=pick(depth),
                k_shift=pick(3), s_bank=s_bank, s_addr=pick(depth), shift=pick(20),
                kv_shift=kv_shift, head_shift=[pick(16) for _ in range(isa.HEAD_SLOTS)],
                s_tr=s_tr, s_hs=pick(4), **n)
    pv = isa.pv(v_bank=pick(4), v_addr=pick(depth), v_shift=pick(3), s_bank=s_bank,
                s_addr=qk["args"]["qk"]["s_addr"], y_bank=pick(4), y_addr=pick(depth),
                d_blocks=pick(cfg.lanes) + 1, shift=pick(20),
                y_bits=int(rng.choice([8, 16, 16, 32])), kv_shift=kv_shift, **n)
    gap = isa.LAT_WRITE + pick(3) if rng.random() < 0.9 else pick(isa.LAT_WRITE) + 1
    return [qk, isa.wait(gap), pv]


def random_vop(cfg, rng):
    """A random VOP over small shapes: any G, reduction and output function, any index
    register, ACT or WROW operands, every B mode."""
    L = cfg.lanes
    elems = cfg.adepth * L
    red = _pick(rng, *isa.Reduce)
    out = isa.OutFunc.MULSHR if red == isa.Reduce.ARGMAX else _pick(
        rng, isa.OutFunc.MULSHR, isa.OutFunc.MULSHR, isa.OutFunc.RSQRT, isa.OutFunc.RECIP,
        isa.OutFunc.NORM)
    scalar = out != isa.OutFunc.MULSHR
    s_pos = not scalar and rng.random() < 0.25
    n_pos = rng.random() < 0.25
    a_bank = int(rng.integers(cfg.act_banks))
    stride = lambda: int(_pick(rng, 0, 1, 1, 2, 3, L, L + 1))
    index = lambda: _pick(rng, isa.Index.NONE, isa.Index.NONE, isa.Index.POS, isa.Index.TOK)
    if rng.random() < 0.2:
        a = dict(space=isa.Space.WROW, base=int(rng.integers(1 << cfg.waddr_bits)), index=index(),
                 istride=int(rng.integers(0, 3)), js=stride(), ks=stride())
    else:
        a = dict(bank=a_bank, base=int(rng.integers(elems)), index=index(),
                 istride=stride(), js=stride(), ks=stride())
    # B from memory needs a second bank (one read port per bank), or A from the weights
    mode = _pick(rng, *isa.BMode) if cfg.act_banks > 1 or a.get("space") == isa.Space.WROW \
        else _pick(rng, isa.BMode.IMM, isa.BMode.SQUARE)
    b = dict(mode=mode)
    if mode in (isa.BMode.MEM, isa.BMode.SCALE):
        b.update(bank=(a_bank + 1) % cfg.act_banks, base=int(rng.integers(elems)),
                 index=index(), istride=stride(), js=stride(), ks=stride())
    elif mode == isa.BMode.IMM:
        b.update(base=int(rng.integers(1 << 16)))
    c = dict(bank=int(rng.integers(cfg.act_banks)), base=int(rng.integers(elems)),
             index=index(), istride=stride(), js=int(_pick(rng, 1, 1, 2, L)))
    return isa.vop(g=_pick(rng, *isa.GFunc), red=red, out=out,
                   s=1 if scalar else int(rng.integers(1, 4)), n=int(rng.integers(1, 5)),
                   s_pos=s_pos, n_pos=n_pos, a=a, b=b, c=c,
                   mult=int(rng.integers(-(1 << 15), 1 << 15)), shift=int(rng.integers(-8, 40)),
                   sat=int(rng.integers(1, 64)), init=int(rng.integers(-(1 << 23), 1 << 23)))


def _drain(cfg, instr, pos):
    """Cycles after an instruction's issue slot until its last write has landed: a WAIT this
    long keeps every later instruction clear of it."""
    op = instr["op"]
    args = next(iter(instr["args"].values()), None) if instr["args"] else None
    if op == isa.Opcode.MATVEC and args["x_exp"]:      # a PV pass's block waits for 1/S
        return isa.LAT_EXP_RESULT + isa.LAT_OUT
    if op == isa.Opcode.MATVEC:
        return isa.LAT_SS_NORM if args["ss"] else isa.LAT_WRITE
    if op == isa.Opcode.VOP:
        return isa.vop_latency(args)
    if op == isa.Opcode.QK and args["s_tr"]:           # the transposer's last word
        n = isa.positions(args, pos)
        return isa.score_word_lat(n, cfg.lanes, cfg.rows)
    if op == isa.Opcode.QK:
        return isa.LAT_WRITE
    if op == isa.Opcode.PV:
        return isa.PV_DRAIN + args["d_blocks"] - 1 + isa.LAT_OUT
    return 0


def _body(cfg, rng, depth, pos_max):
    """Instructions with WAITs that mostly cover the one before (a full drain plus a little),
    sometimes not: the schedule rules are then broken now and then."""
    body = []
    for _ in range(int(rng.integers(1, 7))):
        draw = rng.random()
        if draw < 0.4:
            instrs = [random_vop(cfg, rng)]
        elif draw < (0.55 if cfg.attention else 0.42):     # else QK and PV are illegal
            instrs = random_attention(cfg, rng, depth)
        else:
            instrs = [random_matvec(cfg, rng, depth)]
        body += instrs
        drain = _drain(cfg, instrs[-1], pos_max)
        draw = rng.random()
        if draw < 0.8:
            body.append(isa.wait(drain + int(rng.integers(0, 3))))
        elif draw < 0.93:
            body.append(isa.wait(int(rng.integers(1, drain + 1))))
    return body


def _program(cfg, rng, depth, generate, pos_max):
    body = _body(cfg, rng, depth, pos_max)
    if rng.random() < 0.3:
        start = int(rng.integers(0, len(body)))
        span = int(rng.integers(1, len(body) - start + 1))
        body = body[:start] + [isa.loop(int(rng.integers(1, 4)), span)] + body[start:]
    program = [isa.encode(i) for i in body]
    if generate:
        program.append(isa.encode(isa.next_(0)))
    if rng.random() < 0.04:
        word = _pick(rng, *[w for _, w in illegal_words()])
        program.insert(int(rng.integers(0, len(program) + 1)), word)
    return program + [isa.encode(isa.halt())]


def _loads(cfg, rng, first):
    """Host writes of fresh activations (mostly int16-sized values) and tokens, and now and
    then (always in the first case) of weights, multipliers, RoPE table and the table."""
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    stream = []
    for a in range(cfg.act_banks):
        words = rng.integers(-(1 << 31), 1 << 31, (cfg.adepth, cfg.lanes))
        small = rng.random((cfg.adepth, cfg.lanes)) < 0.7
        words[small] = rng.integers(-(1 << 15), 1 << 15, int(small.sum()))
        stream += host.write_cmd(cfg, host.TARGET_ABANK + a, 0, words)
    stream += host.write_cmd(cfg, host.TARGET_TOKENS, 0,
                             rng.integers(0, 4 * cfg.wdepth, (cfg.tdepth, 1)))
    if first or rng.random() < 0.2:
        for r in range(cfg.rows):
            stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0,
                                     rng.integers(lo, hi, (cfg.wwords, cfg.lanes)))
        for target, depth in ((host.TARGET_MMEM, cfg.mdepth), (host.TARGET_RMEM, cfg.rdepth)):
            stream += host.write_cmd(cfg, target, 0,
                                     rng.integers(-(1 << 15), 1 << 15, (depth, cfg.rows)))
    if first or rng.random() < 0.05:
        stream += host.write_cmd(cfg, host.TARGET_TABLE, 0,
                                 rng.integers(-(1 << 15), 1 << 15, (isa.TABLE_DEPTH, 1)))
    return stream


def _resync(cfg, rng):
    """Host beats that reload the weight banks and bank 0's first words and run a program
    that sets the norm register, the next-token register, QK's maxima and the weight-word
    buffer (a y_wbank MATVEC filling every lane group of weight word wdepth - 1) from them
    (q: weight word 0). After a broken rule the weights a MATVEC wrote (y_wbank, y_wcol)
    are undefined, and the fuzz cases do not read the weight banks back."""
    L, R = cfg.lanes, cfg.rows
    G, O = isa.GFunc, isa.OutFunc
    s_bank = 1 % cfg.act_banks
    lo, hi = -(1 << (cfg.data_bits - 1)), 1 << (cfg.data_bits - 1)
    stream = []
    for r in range(R):
        stream += host.write_cmd(cfg, host.TARGET_WBANK + r, 0,
                                 rng.integers(lo, hi, (cfg.wdepth, L)))
    prog = [isa.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=0, y_addr=cfg.wdepth - 1,
                       n_blocks=max(L // R, 1) * R, n_chunks=1, q_shift=8, y_wbank=True),
            isa.wait(isa.LAT_WRITE),
            isa.vop(g=G.PASS, out=O.NORM, a=dict(bank=0), c=dict(bank=0), sat=32),
            isa.wait(isa.V_RESULT + isa.NORM_LAT),
            isa.vop(g=G.PASS, red=isa.Reduce.ARGMAX, n=L, a=dict(bank=0, ks=1),
                    c=dict(bank=s_bank, base=(cfg.adepth - 1) * L), sat=16),
            isa.wait(isa.LAT_V),
            isa.qk(q_addr=0, k_bank=0, k_addr=R, s_bank=s_bank, s_addr=cfg.adepth - 2,
                   shift=8, n=1),
            isa.wait(isa.LAT_WRITE), isa.halt()]
    stream += host.write_cmd(cfg, host.TARGET_ABANK, 0,
                             rng.integers(-(1 << 15), 1 << 15, (R + 1, L)))
    stream += host.write_cmd(cfg, host.TARGET_ABANK + s_bank, cfg.adepth - 2,
                             rng.integers(-(1 << 15), 1 << 15, (2, L)))
    stream += host.write_cmd(cfg, host.TARGET_PROG, 0, [isa.encode(i) for i in prog])
    return stream + host.run_cmd(0) + host.read_cmd(cfg, host.TARGET_ABANK + s_bank,
                                                    cfg.adepth - 2, 2)


def _writes_weights(program):
    """Some MATVEC of ``program`` writes the weight banks (y_wbank, y_wcol)."""
    for word in program:
        try:
            d = isa.decode(word)
        except isa.IsaError:
            continue
        if d["op"] == isa.Opcode.MATVEC and (d["args"]["matvec"]["y_wbank"]
                                            or d["args"]["matvec"]["y_wcol"]):
            return True
    return False


def random_case(golden, rng, name, *, depth=None, first=False, tries=50):
    """One random case on ``golden`` (which keeps the state the tile will have after it).
    ``depth``: the activation words the operands address (default: all); ``first``: load
    every memory (the first case of a simulation)."""
    cfg = golden.cfg
    depth = depth or cfg.adepth
    golden.strict = False
    for _ in range(tries):
        generate = rng.random() < 0.35
        n_prompt, steps = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        n_prompt, steps = min(n_prompt, cfg.tdepth - 2), min(steps, cfg.tdepth - 2)
        pos_max = n_prompt + steps - 2 if generate else 0
        program = _program(cfg, rng, depth, generate, pos_max)
        if len(program) > cfg.pdepth:
            continue
        feats = set()
        stream = _loads(cfg, rng, first) + host.write_cmd(cfg, host.TARGET_PROG, 0, program)
        if rng.random() < 0.04:
            stream += host.header(_pick(rng, 0, 5, 6, 7), host.TARGET_ABANK, 0, 0)
            feats.add("bad command")
        budget = positions = None
        if rng.random() < 0.06:
            budget = int(rng.integers(1, 80))
        if generate and rng.random() < 0.08:
            positions = int(rng.integers(0, n_prompt + steps))
        if budget is not None or positions is not None:
            stream += host.ctrl_cmd(cfg, budget=budget, positions=positions)
        deaf = generate and rng.random() < 0.1
        stream += host.generate_cmd(n_prompt, steps) if generate else host.run_cmd(0)
        saved = _snapshot(golden)
        try:
            response = golden.host(stream)
        except (GoldenError, isa.IsaError):
            _restore(golden, saved)
            continue
        run = golden.last_run
        run_at = golden.last_run_at
        emissions = len(golden.emitted) if generate and run is not None else 0
        undefined = run is not None and (run.refusals or run.status & host.STATUS_PORT_CONFLICT)
        tail = []
        if budget is not None or positions is not None:
            tail += host.ctrl_cmd(cfg, *host.ctrl_reset(cfg)[:2])
        if undefined:
            tail += _resync(cfg, rng)
            feats.add("schedule rule broken")
        else:
            for a in range(cfg.act_banks):
                tail += host.read_cmd(cfg, host.TARGET_ABANK + a, 0, cfg.adepth)
            tail += host.read_cmd(cfg, host.TARGET_TOKENS, 0, cfg.tdepth)
            if _writes_weights(program):       # every weight word, the tail's too
                for r in range(cfg.rows):
                    tail += host.read_cmd(cfg, host.TARGET_WBANK + r, 0, cfg.wwords)
                feats.add("weights read")
            if rng.random() < 0.5 and run is not None:
                tail += host.counters_cmd(cfg)
                feats.add("counters read")
        golden.strict = True
        try:
            response += golden.host(tail)
        finally:
            golden.strict = False
        if deaf and emissions:                 # every emission lost: OVERRUN
            response = response[:run_at - 2 * emissions] + response[run_at:]
            run_at -= 2 * emissions
            response[run_at] |= host.STATUS_OVERRUN
            feats.add("output not taken")
            emissions = 0
        else:
            deaf = False
        check = ([[0, run_at], [run_at, run_at + 2], [run_at + 2, len(response)]]
                 if undefined else [[0, len(response)]])
        if undefined and emissions:           # the emitted ids are undefined too
            check[0] = [0, run_at - 2 * emissions]
        status = response[run_at] if run_at is not None else 0
        feats |= features(program, status, generate=generate, budget=budget,
                          attention=cfg.attention, wbytes=bool(cfg.wbytes),
                          pv=bool(cfg.pv))
        # after a port conflict one user had the port: what the other read (or wrote) is
        # undefined, and so is whether that read met a write in flight
        ignore = host.STATUS_RAW_HAZARD if status & host.STATUS_PORT_CONFLICT else 0
        return {"name": name, "stream": stream + tail, "expected": None, "soft": True,
                "ignore_bits": ignore,
                "n_response": len(response), "golden": response, "check": check,
                "cycles": run.cycles if run is not None else None,
                "run_at": run_at, "emissions": emissions, "deaf_run": deaf,
                "features": sorted(feats), "program": program,
                "refusals": list(run.refusals) if run is not None else []}
    raise RuntimeError(f"no random program the golden model runs in {tries} tries")


def _snapshot(golden):
    from tinylpu.verify.cases import snapshot
    return snapshot(golden), golden.bad_command, list(golden.ctrl)


def _restore(golden, state):
    from tinylpu.verify.cases import restore
    restore(golden, state[0])
    golden.bad_command, golden.ctrl = state[1], list(state[2])


def features(program, status, *, generate=False, budget=None, attention=True, wbytes=True,
             pv=True):
    """The :data:`FEATURES` a program (instruction words) and its run's status word show
    (``attention``, ``wbytes``: ``Config``'s, see :func:`tinylpu.isa.illegal`)."""
    out = set()
    for word in program:
        if isa.illegal(word, attention, wbytes, pv):
            out.add("illegal")
            continue
        instr = isa.decode(word)
        op = isa.Opcode(instr["op"])
        out.add(f"op:{op.name}")
        if op == isa.Opcode.LOOP:
            out.add("loop")
        elif op == isa.Opcode.VOP:
            v = instr["args"]["vop"]
            out |= {f"vop.g:{isa.GFunc(v['g']).name}", f"vop.red:{isa.Reduce(v['red']).name}",
                    f"vop.out:{isa.OutFunc(v['out']).name}",
                    f"vop.b:{isa.BMode(v['b']['mode']).name}",
                    f"vop.a:{isa.Space(v['a']['space']).name}"}
            out |= {f"vop.index:{isa.Index(v[k]['index']).name}" for k in "abc"}
            out |= {f"vop.{k}" for k in ("s_pos", "n_pos") if v[k]}
        elif op == isa.Opcode.MATVEC:
            m = instr["args"]["matvec"]
            out.add(f"matvec.epi:{isa.Epi(m['epi']).name}")
            out |= {f"matvec.{k}" for k in ("y_pack", "m_rows", "norm", "ss", "y_wbank",
                                            "y_wcol", "x_exp")
                    if m[k]}
            if m["y_index"] == isa.Index.POS.value:
                out.add("matvec.y_index:POS")
        elif op in (isa.Opcode.QK, isa.Opcode.PV):
            a = next(iter(instr["args"].values()))
            if a["n_pos"]:
                out.add(f"{op.name.lower()}.n_pos")
            if op == isa.Opcode.QK and a["kv_shift"]:
                out.add("qk.kv_shift")
            if op == isa.Opcode.QK and a["s_tr"]:
                out.add("qk.s_tr")
    if generate:
        out.add("generate")
    if budget is not None:
        out.add("budget")
    out |= {f"status:{name}" for name, bit in _STATUS_BITS.items() if status & bit}
    return out


def check_response(case, measured):
    """What differs between the tile's run of ``case`` (``measured``, as
    :func:`tinylpu.flow.rtlsim.run_streams` returns it) and the golden model, in the beats the
    case compares, its cycle count (from the tile's counter and from ``running``) and the
    arrival cycle of every emitted id; None when nothing does."""
    golden, response = case["golden"], measured["response"]
    if len(response) != len(golden):
        return f"{len(response)} beats, golden {len(golden)}"
    run_at, ignore = case["run_at"], case.get("ignore_bits", 0)
    for lo, hi in case["check"]:
        for i in range(lo, hi):
            mask = ~ignore if i == run_at else -1
            if response[i] & mask != golden[i] & mask:
                return f"beat {i}: {response[i]:#x}, golden {golden[i]:#x}"
    if case["cycles"] is not None:
        got = (response[run_at + 1], measured["ext_cycles"])
        if got != (case["cycles"],) * 2:
            return f"predicted {case['cycles']} cycles, tile counted {got[0]}, running " \
                   f"was high for {got[1]}"
    first = run_at - 2 * case["emissions"] if run_at is not None else 0
    for k in range(case["emissions"]):
        got = measured["beat_cycles"][first + 2 * k:first + 2 * k + 2]
        stamp = response[first + 2 * k + 1]
        if got != [stamp, stamp + 1]:
            return f"id {k} arrived in cycles {got}, its stamp says {stamp}"
    return None


def campaign(cfg, sim, seed, n, batch=500):
    """``n`` random cases (:func:`random_case`, names ``<seed>:<index>``) on simulator
    ``sim``, ``batch`` to a simulation: returns (the cases that differed, with what
    differed; the features covered, counted; the cases by kind)."""
    from tinylpu.golden import GoldenTile
    from tinylpu.flow.rtlsim import run_streams
    rng = np.random.default_rng(seed)
    failures, covered, kinds = [], Counter(), Counter()
    for start in range(0, n, batch):
        golden = GoldenTile(cfg)          # each simulation starts from a reset tile
        cases = [random_case(golden, rng, f"{seed}:{i}", first=i == start)
                 for i in range(start, min(n, start + batch))]
        measured = run_streams(cfg, sim, cases, name=f"fuzz-{seed}")
        for case, m in zip(cases, measured):
            covered.update(case["features"])
            kinds["rule broken" if "schedule rule broken" in case["features"]
                  else "compared in full"] += 1
            error = check_response(case, m)
            if error:
                failures.append(f"{case['name']}: {error}")
    return failures, covered, kinds
