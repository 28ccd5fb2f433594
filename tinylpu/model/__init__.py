"""The model side: llama2.c checkpoints and tokenizers (:mod:`.checkpoint`, re-exported here),
the float reference forward pass (:mod:`.reference`), the integer decoder that defines the
tile's numerics (:mod:`.intmodel`) and its quality against the float model (:mod:`.quality`)."""

from tinylpu.model.checkpoint import *  # noqa: F401,F403
from tinylpu.model.checkpoint import WEIGHT_NAMES, __all__  # noqa: F401
