"""Amaranth RTL of the TinyLPU tile (imported as ``tinylpu.rtl``)."""
