"""Simulation drivers behind `make sim`, `make waves` and `make bench` (``tinylpu.sim``)."""
