"""Quality of the integer decoder against the float reference (llama2.c semantics).

Teacher-forced agreement: the float model's own greedy sequence is fed to both models; at each
position where the float model chose the next token, count whether the integer model's argmax
is the same. Free-running match: the integer model generates greedily from the same prompt;
count the tokens identical to the float sequence before the first difference, and report the
float model's top-2 logit margin where they diverged (a near-tie flips under any error; see
../shared/NUMERICS-STUDY.md).
"""

__all__ = ["PROMPTS", "CALIBRATION_PROMPTS", "PromptReport", "calibration_sequences", "evaluate",
           "report_table"]

import dataclasses

import numpy as np

from tinylpu.model.intmodel import IntDecoder
from tinylpu.model.reference import FloatDecoder

PROMPTS = ["", "Once upon a time", "The little dog", "Lily and Tom went to the park",
           "One day, a big bird"]
# Calibration (activation ranges for the integer formats) uses other prompts than the report.
CALIBRATION_PROMPTS = ["Tom had a red ball", "Sara was sad because", "In the garden there was"]


def calibration_sequences(model, tokenizer, length=256):
    """Float greedy continuations of the calibration prompts: the ranges quantize() sees."""
    from tinylpu.model.reference import generate_greedy
    out = []
    for text in CALIBRATION_PROMPTS:
        ids = tokenizer.encode(text)
        out.append(ids + generate_greedy(model, ids, length, stop_on_bos=False)[len(ids) - 1:])
    return [seq[:length] for seq in out]


@dataclasses.dataclass
class PromptReport:
    prompt: str
    positions: int            # positions compared teacher-forced
    agree: int                # of them, integer argmax == float argmax
    free_run: int             # greedy tokens identical before the first difference
    margin_at_divergence: float   # float top-2 margin where the free run diverged (nan: none)
    min_margin: float         # smallest float top-2 margin over the compared positions


def _float_sequence(model, prompt_ids, length):
    dec = FloatDecoder(model)
    ids, margins = list(prompt_ids), []
    for pos in range(length):
        logits = dec.forward(ids[pos], pos)
        top = np.sort(logits)[-2:]
        margins.append(float(top[1] - top[0]))
        if pos + 1 >= len(ids):
            ids.append(int(np.argmax(logits)))
    return ids, margins


def evaluate(model, qmodel, prompt_ids, length=256):
    """Compare the integer model ``qmodel`` with the float ``model`` on one prompt."""
    length = min(length, model.config.seq_len)
    ids, margins = _float_sequence(model, prompt_ids, length)
    start = len(prompt_ids) - 1          # first position whose next token is generated
    dec = IntDecoder(qmodel)
    agree = 0
    for pos in range(length):
        logits = dec.forward(ids[pos], pos)
        if pos >= start:
            agree += IntDecoder.argmax(logits) == ids[pos + 1]
    dec = IntDecoder(qmodel)
    run, free, diverged_margin = list(prompt_ids), None, float("nan")
    for pos in range(length):
        nxt = IntDecoder.argmax(dec.forward(run[pos], pos))
        if pos + 1 >= len(run):
            run.append(nxt)
            if free is None and nxt != ids[pos + 1]:
                free = pos - start
                diverged_margin = margins[pos]
                break
    if free is None:
        free = length - start
    return PromptReport("", length - start, agree, free, diverged_margin,
                        float(min(margins[start:])))


def report_table(reports):
    lines = ["| prompt | positions | teacher-forced top-1 | free-running match | "
             "float top-2 margin at divergence |", "|---|---|---|---|---|"]
    for r in reports:
        margin = "-" if np.isnan(r.margin_at_divergence) else f"{r.margin_at_divergence:.3f}"
        lines.append(f"| {r.prompt or '(BOS only)'} | {r.positions} | "
                     f"{100 * r.agree / r.positions:.1f}% | {r.free_run} | {margin} |")
    total = sum(r.positions for r in reports)
    agree = sum(r.agree for r in reports)
    lines.append(f"| all | {total} | {100 * agree / total:.1f}% | | |")
    return "\n".join(lines)
