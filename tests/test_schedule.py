"""The scheduler both compilers emit through (tinylpu.schedule.Scheduler)."""

import pytest

from tinylpu import isa
from tinylpu.config import Config
from tinylpu.schedule import Scheduler


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
