"""Fit: how many ECP5 block RAMs (DP16KD) a tile needs, memory by memory, against a device;
and the longest context (KV-cache positions) of a model whose tile fits.

The memory list is not restated here: :func:`tile_memories` elaborates the RTL
(:class:`tinylpu.rtl.top.Tile`) and walks its ``amaranth.lib.memory.Memory`` instances, so a
memory added to the RTL is counted without touching this file.

Block counts follow the rule Yosys' ``synth_ecp5`` applies (``memory_libmap`` with
``lattice/brams_16kd.txt`` and ``lattice/lutrams_trellis.txt``; every candidate costs 128 a
block RAM or 4 a 16x4 LUT RAM, the cheapest wins): see :func:`mapping`.
"""

__all__ = ["DEVICES", "Memory", "mapping", "bram_blocks", "tile_memories", "tile_brams",
           "tile_fit", "longest_context", "model_fit", "ModelFit", "format_table", "FitError",
           "KV_BITS", "narrow_kv_config"]

import dataclasses
import functools

from tinylpu.config import Config, ConfigError

# ECP5 family data sheet (FPGA-DS-02012), table 1.1: sysMEM blocks (18 Kbit EBR, DP16KD),
# 18 x 18 multipliers, LUTs.
DEVICES = {
    "LFE5U-85F": dict(dp16kd=208, mult18=156, lut4=83640),
    "LFE5U-45F": dict(dp16kd=108, mult18=72, lut4=43848),
    "LFE5U-25F": dict(dp16kd=56, mult18=28, lut4=24288),
    "LFE5U-12F": dict(dp16kd=32, mult18=28, lut4=12096),
}
DEFAULT_DEVICE = "LFE5U-85F"

# DP16KD as a true dual-port RAM: data width -> words (the 18 Kbit block: 16K x 1 .. 1K x 18)
DP16KD_MODES = {1: 16384, 2: 8192, 4: 4096, 9: 2048, 18: 1024}
# as a pseudo-dual-port RAM (Yosys' $__PDPW16KD_: one read port, one 36-bit write port)
PDP_MODE = (36, 512)
BYTE = 9                  # a block RAM's write-enable granularity in bits
BRAM_COST, LUTRAM_COST = 128, 4
LUTRAM = (4, 16)          # TRELLIS_DPR16X4: 16 words x 4 bits, asynchronous read
ROM_LOGIC_COST = 1 / 16   # a ROM bit in LUTs (memory_libmap's default)
PORTS = ("sdp", "tdp", "rom")
KV_BITS = (16, 8)         # KV-cache widths model_fit sizes for (8: an estimate, not the RTL)


class FitError(ValueError):
    """The model does not fit the device at any context, or a bad request."""


def _cdiv(a, b):
    return -(-a // b)


def _blocks(width, depth, granularity, mode_width, mode_depth):
    """Blocks of ``mode_width x mode_depth`` for one memory: byte-enabled modes (9 bits and
    wider) put each write-enable group of ``granularity`` bits in whole 9-bit bytes."""
    if granularity < width and mode_width >= BYTE:
        width = (width // granularity) * _cdiv(granularity, BYTE) * BYTE
    return _cdiv(width, mode_width) * _cdiv(depth, mode_depth)


def mapping(width, depth, ports="sdp", granularity=None):
    """How Yosys' ``synth_ecp5`` implements one memory: ``(cell, count)`` with cell
    ``"DP16KD"`` (block RAM), ``"TRELLIS_DPR16X4"`` (LUT RAM) or ``"logic"`` (a ROM in
    LUTs; count 0).

    ``ports``: ``"sdp"``, one synchronous read port and one write port (every memory of the
    tile); ``"tdp"``, two read/write ports; ``"rom"``, one read port and an initial value.
    ``granularity``: bits per write-enable bit (default: the whole word).

    The rule (``memory_libmap``): a block RAM holds ``16384 x 1``, ``8192 x 2``,
    ``4096 x 4``, ``2048 x 9`` or ``1024 x 18`` with two ports, and ``512 x 36`` with one read
    and one write port (pseudo-dual-port; Yosys maps it to a DP16KD too). A memory takes
    ``ceil(width / w) * ceil(depth / d)`` blocks of the cheapest mode ``w x d``; in the 9-, 18-
    and 36-bit modes each write-enable group is padded to whole 9-bit bytes (32-bit lanes
    take 36 bits). A RAM also may go to LUT RAM, ``ceil(width / 4) * ceil(depth / 16)`` 16x4
    cells at cost 4 each against 128 a block RAM, whichever is cheaper (ROMs never do). A
    ROM goes to LUTs when its bits / 16 are at most 128 per block RAM it would take (measured:
    16 x 128 in LUTs, 16 x 144 in one block; 16 x 129 went to LUTs too, one word past this
    rule's boundary).
    """
    if ports not in PORTS:
        raise ValueError(f"ports must be one of {', '.join(PORTS)}, not {ports!r}")
    if width < 1 or depth < 1:
        raise ValueError(f"a memory needs a positive width and depth, not {width} x {depth}")
    granularity = granularity or width
    modes = list(DP16KD_MODES.items()) + ([PDP_MODE] if ports != "tdp" else [])
    brams = min(_blocks(width, depth, granularity, w, d) for w, d in modes)
    if ports == "sdp":
        luts = _cdiv(width, LUTRAM[0]) * _cdiv(depth, LUTRAM[1])
        if luts * LUTRAM_COST < brams * BRAM_COST:
            return "TRELLIS_DPR16X4", luts
    if ports == "rom" and width * depth * ROM_LOGIC_COST <= brams * BRAM_COST:
        return "logic", 0
    return "DP16KD", brams


def bram_blocks(width, depth, ports="sdp", granularity=None):
    """DP16KD blocks Yosys infers for one memory (0 when it goes to LUT RAM); see
    :func:`mapping` for the rule."""
    cell, count = mapping(width, depth, ports, granularity)
    return count if cell == "DP16KD" else 0


@dataclasses.dataclass(frozen=True)
class Memory:
    """One memory of the elaborated tile."""
    name: str             # hierarchical path, e.g. router.wbank0.mem
    width: int
    depth: int
    ports: str            # "sdp", "tdp" or "rom"
    granularity: int      # bits per write-enable bit

    @property
    def cell(self):
        return mapping(self.width, self.depth, self.ports, self.granularity)[0]

    @property
    def count(self):
        return mapping(self.width, self.depth, self.ports, self.granularity)[1]

    @property
    def blocks(self):
        return self.count if self.cell == "DP16KD" else 0


@functools.lru_cache(maxsize=64)
def tile_memories(cfg):
    """Every memory of a tile of configuration ``cfg``, found by elaborating the RTL and
    walking its memory instances: a list of :class:`Memory` in hierarchy order."""
    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._mem import MemoryInstance
    from tinylpu.rtl.top import Tile

    found = []

    def walk(fragment, path):
        for sub, name, _ in fragment.subfragments:
            here = path + (name if isinstance(name, str) else f"U{len(found)}",)
            if isinstance(sub, MemoryInstance):
                reads, writes = len(sub._read_ports), len(sub._write_ports)
                width = Shape.cast(sub._data.shape).width
                if writes == 0:
                    ports = "rom"
                # two read/write ports or more read ports: counted as true dual-port (no
                # tile memory has them; Yosys may also duplicate a memory per read port)
                elif reads <= 1 and writes == 1:
                    ports = "sdp"
                else:
                    ports = "tdp"
                gran = min((width // len(p._en) for p in sub._write_ports), default=width)
                found.append(Memory(".".join(here), width, sub._data.depth, ports, gran))
            walk(sub, here)

    walk(Fragment.get(Tile(cfg), None), ())
    return tuple(found)


def tile_brams(cfg):
    """``[(memory name, width, depth, DP16KD blocks)]`` for every memory of the tile (0
    blocks: Yosys puts it in LUT RAM or LUTs)."""
    return [(m.name, m.width, m.depth, m.blocks) for m in tile_memories(cfg)]


def device(name):
    """The resources of device ``name`` (a key of :data:`DEVICES`)."""
    if name not in DEVICES:
        raise FitError(f"unknown device {name!r}: one of {', '.join(DEVICES)}")
    return DEVICES[name]


def tile_fit(cfg, device_name=DEFAULT_DEVICE):
    """``(blocks used, blocks the device has)``."""
    return sum(m.blocks for m in tile_memories(cfg)), device(device_name)["dp16kd"]


def longest_context(cfg_for, max_positions, device_name=DEFAULT_DEVICE):
    """The most positions ``p <= max_positions`` whose tile ``cfg_for(p)`` fits the device's
    block RAMs, with its config and block count: ``(p, cfg, blocks)``; None if none fits.

    Block use does not fall as positions grow (depths are powers of two that only grow with
    the KV cache), so a binary search over ``p`` finds the largest."""
    limit = device(device_name)["dp16kd"]

    @functools.lru_cache(maxsize=None)
    def blocks(p):
        cfg = cfg_for(p)
        return cfg, tile_fit(cfg, device_name)[0]

    if blocks(1)[1] > limit:
        return None
    lo, hi = 1, max_positions            # blocks(lo) fits; the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if blocks(mid)[1] <= limit:
            lo = mid
        else:
            hi = mid - 1
    cfg, used = blocks(lo)
    return lo, cfg, used


def format_table(cfg, device_name=DEFAULT_DEVICE):
    """Lines of the per-memory table and the total against the device."""
    mems = tile_memories(cfg)
    used, have = tile_fit(cfg, device_name)
    name_w = max(len(m.name) for m in mems)
    lines = [f"{'memory':<{name_w}}  {'width x depth':>14}  {'DP16KD':>6}  mapping"]
    for m in mems:
        how = {"DP16KD": None, "logic": "LUTs (a small ROM)"}.get(
            m.cell, f"{m.count} LUT RAM 16x4") or _mode(m)
        lines.append(f"{m.name:<{name_w}}  {f'{m.width} x {m.depth}':>14}  {m.blocks:>6}  {how}")
    lines.append(f"{'total':<{name_w}}  {'':>14}  {used:>6}  of {have} on {device_name} "
                 f"({100 * used / have:.0f}%)")
    return lines


def _mode(m):
    """The cheapest block-RAM mode of a memory, as ``w x d``."""
    modes = list(DP16KD_MODES.items()) + ([PDP_MODE] if m.ports != "tdp" else [])
    w, d = min(modes, key=lambda wd: (_blocks(m.width, m.depth, m.granularity, *wd),
                                      wd == PDP_MODE, -wd[0]))
    return f"{d} x {w}" + (" (pseudo-dual-port)" if (w, d) == PDP_MODE else "")


def narrow_kv_config(qm, cfg, positions, kv_bits=8):
    """An estimate, not the RTL (whose KV cache is int16): the tile ``cfg`` that
    :func:`tinylpu.compiler.decoder.config_for` sizes for ``positions``, with its activation banks
    as deep as they would be if the K and V caches held ``kv_bits`` (8) a value, two
    positions a word instead of one, and nothing else changed."""
    from tinylpu.compiler.decoder import _pow2, compile_decoder
    if kv_bits == 16:
        return cfg
    if kv_bits not in KV_BITS:
        raise FitError(f"kv_bits must be one of {', '.join(map(str, KV_BITS))}, not "
                       f"{kv_bits!r}")
    used = compile_decoder(qm, cfg, positions, check=False).footprint()
    per_word = 16 // kv_bits
    saved = qm.config.n_layers * (positions - -(-positions // per_word))   # per bank
    words = max(used[f"activation bank {b} words"][0] for b in range(2)) - saved
    return dataclasses.replace(cfg, adepth=_pow2(words))


@dataclasses.dataclass
class ModelFit:
    """A model's tile on a device: its context, config and block RAMs."""
    positions: int
    cfg: Config
    blocks: int
    next_blocks: int = None   # the blocks one more position would need (None at seq_len)


def model_fit(model, positions=None, device_name=DEFAULT_DEVICE, overrides=None, kv_bits=16,
              passes=True):
    """The tile for a llama2.c ``model`` (:class:`tinylpu.model.FloatModel`), sized by
    :func:`tinylpu.compiler.decoder.config_for` (calibrated as ``tinylpu generate`` does without a
    tokenizer): with ``positions``, for that KV cache; else for the longest one (at most the
    model's seq_len) whose tile fits the device's block RAMs. Returns a :class:`ModelFit`.
    ``kv_bits`` 8: an estimate for an 8-bit KV cache the RTL does not have
    (:func:`narrow_kv_config`), for PV's program. ``passes`` (the default): the program with
    PV passes (its V^T 8-bit, in the weight banks; ``tinylpu generate``'s default), with the
    int16 K cache; False: PV's, int16 K and V.

    Raises :class:`FitError` when the model does not fit at any context, or ``positions``
    is outside [1, seq_len]."""
    from tinylpu.compiler.decoder import config_for
    from tinylpu.generate import calibration
    from tinylpu.model.intmodel import quantize
    overrides = dict(overrides or {})
    have = device(device_name)["dp16kd"]
    seq_len = model.config.seq_len
    if kv_bits not in KV_BITS:
        raise FitError(f"kv_bits must be one of {', '.join(map(str, KV_BITS))}, not "
                       f"{kv_bits!r}")
    if positions is not None and not 1 <= positions <= seq_len:
        raise FitError(f"--positions must be in [1, {seq_len}] (the model's seq_len), "
                       f"not {positions}")
    if passes and kv_bits != 16:
        raise FitError("the 8-bit KV-cache estimate is PV's: --kv-bits 8 needs --attention "
                       "pv (PV passes, the default, already read an 8-bit V^T and keep K "
                       "int16)")
    qm = quantize(model, calibration(model, None), kv_bits=(16, 8) if passes else 16)

    def cfg_for(p):
        cfg = config_for(qm, p, passes=passes, **overrides)
        return cfg if "adepth" in overrides else narrow_kv_config(qm, cfg, p, kv_bits)

    def blocks_at(p):
        return tile_fit(cfg_for(p), device_name)[0] if p <= seq_len else None

    if positions is not None:
        cfg = cfg_for(positions)
        return ModelFit(positions, cfg, tile_fit(cfg, device_name)[0], blocks_at(positions + 1))
    best = longest_context(cfg_for, seq_len, device_name)
    if best is None:
        cfg = cfg_for(1)
        used = tile_fit(cfg, device_name)[0]
        worst = max(tile_memories(cfg), key=lambda m: m.blocks)
        raise FitError(f"the model does not fit {device_name} at any context: even 1 position "
                       f"needs {used} block RAMs (DP16KD) of {have} (the largest memory, "
                       f"{worst.name} {worst.width} x {worst.depth}, takes {worst.blocks})")
    p, cfg, used = best
    return ModelFit(p, cfg, used, blocks_at(p + 1))
