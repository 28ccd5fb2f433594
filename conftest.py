"""Test-suite settings shared by tests/ and tb/."""

import os

from hypothesis import settings

# CI runs are reproducible (the same examples every run); local runs keep exploring.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
