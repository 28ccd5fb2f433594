"""Test programs for the RTL against the golden model: hand-written cases (:mod:`.cases`) and
random programs (:mod:`.fuzz`)."""
