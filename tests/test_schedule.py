"""The scheduler both compilers emit through (tinylpu.compiler.schedule.Scheduler)."""

import pytest

from tinylpu import isa
from tinylpu.config import Config
from tinylpu.compiler.schedule import Scheduler


def _run(cfg, program):
    """The golden model's response to running ``program`` (instruction dicts)."""
    from tinylpu import host
    from tinylpu.golden import GoldenTile
    golden = GoldenTile(cfg)
    return golden.host(host.write_cmd(cfg, host.TARGET_PROG, 0,
                                      [isa.encode(i) for i in program]) + host.run_cmd(0))


@pytest.mark.parametrize("word_timing, wait", [(True, isa.LAT_WRITE - 3),
                                               (False, isa.LAT_WRITE)])
def test_matvec_reading_a_matvec_in_flight(word_timing, wait):
    """Layer 1 writes 4 words (16 blocks of 4 rows, one chunk each); layer 2 reads word k in
    its k-th cycle. Word timing issues it once each word lands before its read (word 3, the
    last, lands 12 cycles after word 0); whole regions wait for the last block."""
    s = Scheduler(Config(), word_timing=word_timing)
    s.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=16, n_chunks=1)
    s.matvec(w_base=16, x_bank=1, x_addr=0, y_bank=0, y_addr=8, n_blocks=1, n_chunks=4)
    assert [i["op"] for i in s.instrs] == [isa.Opcode.MATVEC, isa.Opcode.WAIT,
                                          isa.Opcode.MATVEC]
    assert s.instrs[1]["args"]["wait"]["cycles"] == wait


def test_independent_matvecs_need_no_wait():
    s = Scheduler(Config())
    s.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=16, n_chunks=1)
    s.matvec(w_base=16, x_bank=0, x_addr=0, y_bank=1, y_addr=4, n_blocks=1, n_chunks=4)
    assert [i["op"] for i in s.instrs] == [isa.Opcode.MATVEC, isa.Opcode.MATVEC]


def test_vop_norm_waits_for_a_norm_matvecs_last_read():
    """A VOP NORM right behind a norm MATVEC would have its total in flight while the
    MATVEC's last block reads the norm register (RAW_HAZARD on the RTL, refused by the
    golden model): the scheduler puts it LAT_NORM_READ cycles after the MATVEC's slot."""
    from tinylpu import host
    from tinylpu.golden import GoldenError

    cfg = Config(lanes=8, rows=2, wdepth=64, adepth=32, pdepth=32)
    norm = dict(g=isa.GFunc.PASS, out=isa.OutFunc.NORM, a=dict(bank=0), c=dict(bank=0),
                sat=32)
    s = Scheduler(cfg)
    s.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=1, y_addr=0, n_blocks=2, n_chunks=2,
             norm=True)
    s.vop(**norm)
    s.halt()
    assert [i["op"] for i in s.instrs][:3] == [isa.Opcode.MATVEC, isa.Opcode.WAIT,
                                              isa.Opcode.VOP]
    assert s.instrs[1]["args"]["wait"]["cycles"] == isa.LAT_NORM_READ

    assert _run(cfg, s.instrs)[0] == host.STATUS_DONE
    with pytest.raises(GoldenError, match="norm MATVEC reads the norm register"):
        _run(cfg, [s.instrs[0]] + s.instrs[2:])


def test_transposed_qk_is_placed_clear_of_the_transposer():
    """QK s_tr, a MATVEC right behind it (its results share the transposer's write port), a
    second QK s_tr (the transposer must be done with the first) and a VOP reading the scores:
    the golden model runs the scheduler's program; without its WAITs it refuses it."""
    from tinylpu import host
    from tinylpu.golden import GoldenError

    cfg = Config()
    L = cfg.lanes
    s = Scheduler(cfg)
    qk = dict(q_addr=0, k_bank=0, k_addr=0, s_bank=1, shift=9, n=L + 1, s_tr=True, s_hs=1)
    s.qk(s_addr=0, **qk)
    s.matvec(w_base=0, x_bank=0, x_addr=0, y_bank=0, y_addr=40, n_blocks=1, n_chunks=1)
    s.qk(s_addr=20, **qk)
    s.vop(g=isa.GFunc.PASS, a=dict(bank=1, base=20 * L), c=dict(bank=0, base=50 * L),
          sat=32)
    s.halt()
    ops = [i["op"] for i in s.instrs]
    assert ops.count(isa.Opcode.WAIT) == 3

    assert _run(cfg, s.instrs)[0] == host.STATUS_DONE
    with pytest.raises(GoldenError, match="score transposer"):
        _run(cfg, [i for i in s.instrs if i["op"] != isa.Opcode.WAIT])
