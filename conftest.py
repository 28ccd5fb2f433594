"""Test-suite settings shared by tests/ and tb/."""

import os

from hypothesis import settings

# CI runs are reproducible (the same examples every run); local runs keep exploring.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The files whose tests take longest run first: with `make test`'s two workers (pytest-xdist,
# --dist loadfile hands out whole files in collection order) a long file started last would
# run alone at the end.
# (longest first, by `pytest --durations=0` of a fresh clone's suite: docs/verification.md)
FIRST = ("tb/test_tile.py", "tests/test_rtl_host.py", "tb/test_stress.py", "tb/test_board_link.py",
         "tests/test_rtl_vu.py", "tests/test_synth.py")


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(FIRST)))
