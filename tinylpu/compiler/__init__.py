"""The compilers: GEMV programs (:mod:`.gemv`, re-exported here), the decoder compiler that
turns a quantized Llama-style model into one tile program (:mod:`.decoder`), the one
scheduler both use (:mod:`.schedule`) and the per-unit profile of a decode step
(:mod:`.profile`)."""

from tinylpu.compiler.gemv import *  # noqa: F401,F403
from tinylpu.compiler.gemv import __all__  # noqa: F401
