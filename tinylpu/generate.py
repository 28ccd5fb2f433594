"""Token generation on the tile: model in, tokens out, on the golden model or the RTL.

:func:`prepare` reads a llama2.c checkpoint (and tokenizer), quantizes it
(:mod:`tinylpu.model.intmodel`) and compiles it (:mod:`tinylpu.compiler.decoder`); :func:`generate` loads
the tile, sends the prompt and the step count once and streams the ids the tile emits, each
with the cycle the tile emitted it in.
"""

__all__ = ["Prepared", "prepare", "parse_prompt", "generate", "CountedResult", "SIM_CHOICES"]

import dataclasses
import time

from tinylpu import host
from tinylpu.compiler import CompileError
from tinylpu.compiler.decoder import GenerateResult, compile_decoder, config_for
from tinylpu.model.intmodel import quantize
from tinylpu.model import BOS, ModelError, load_checkpoint, load_tokenizer

SIM_CHOICES = ("golden", "verilator", "icarus")
# seconds a board may take to answer any one beat of a GENERATE (a token takes milliseconds)
DEVICE_TIMEOUT = 60.0


@dataclasses.dataclass
class Prepared:
    model: object
    tokenizer: object          # None when ids are given
    qm: object
    program: object            # tinylpu.compiler.decoder.DecoderProgram


@dataclasses.dataclass
class CountedResult(GenerateResult):
    counters: dict = None      # the busy counters of the run (host.COUNTERS names), if read
    link: dict = None          # through a serial link: its Link.stats (and the simulated
                               # board's CYCLES, BYTES_IN, BYTES_OUT, FRAMING_ERRORS)


def calibration(model, tokenizer, length=256):
    """Token sequences whose float activations fix the integer formats."""
    from tinylpu.model.quality import calibration_sequences
    from tinylpu.model.reference import generate_greedy
    length = min(length, model.config.seq_len)
    if tokenizer is not None:
        return calibration_sequences(model, tokenizer, length)
    return [generate_greedy(model, [BOS], length, stop_on_bos=False)[:length]]


def prepare(model_path, tokenizer_path=None, positions=None, config=None, model=None,
            passes=True):
    """Load, quantize and compile. ``config=None`` picks the smallest config that fits.
    ``passes`` (the default): attention as PV passes over V^T (:func:`tinylpu.compiler.
    decoder.compile_decoder`), with the 8-bit V cache they read (``kv_bits=(16, 8)``);
    False: as PV, with an int16 V cache."""
    model = model or load_checkpoint(model_path)
    tokenizer = None
    if tokenizer_path is not None:
        tokenizer = load_tokenizer(tokenizer_path, model.config.vocab_size)
    positions = positions or model.config.seq_len
    if not 1 <= positions <= model.config.seq_len:
        raise CompileError(f"--positions must be in [1, {model.config.seq_len}] (the model's "
                           f"seq_len), not {positions}")
    qm = quantize(model, calibration(model, tokenizer), kv_bits=(16, 8) if passes else 16)
    cfg = config or config_for(qm, positions, passes=passes)
    return Prepared(model, tokenizer, qm, compile_decoder(qm, cfg, positions, passes=passes))


def parse_prompt(text, tokenizer, vocab_size):
    """Text (with a tokenizer) or comma-separated ids; BOS is prepended to text. No prompt:
    BOS alone."""
    if text is None:
        return [BOS]
    if tokenizer is not None:
        return tokenizer.encode(text)
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ModelError(f"--prompt {text!r}: without --tokenizer the prompt must be "
                         f"comma-separated token ids, e.g. 1,403,261")
    if not ids:
        raise ModelError("--prompt is empty: give at least one token id (1 is BOS)")
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ModelError(f"--prompt: token id {bad[0]} is outside the vocabulary "
                         f"(0..{vocab_size - 1})")
    return ids


def generate(prep, prompt, steps, sim="golden", on_token=None, waves=None, counters=False,
             board=None, device=None, baud=3_000_000):
    """Run one GENERATE request; ``on_token(id, cycle)`` is called as ids arrive. Returns a
    :class:`CountedResult` with the request's wall time and, with ``counters``, the run's
    busy counters (read from the tile after the run).

    ``device``: a serial port (or pyserial URL, or an open :class:`~tinylpu.link.Link`, which
    is closed after the run) of a board running the tile of ``prep.program.cfg``; the request goes through the framed serial link at ``baud``
    (:mod:`tinylpu.link`). ``board`` (with ``sim="verilator"``): the same host code drives the
    simulated board top, bridge and tile, through a pseudo-terminal
    (:mod:`tinylpu.flow.boardsim`)."""
    prog = prep.program
    request = prog.generate_stream(prompt, steps)
    n_after = len(host.Counter) if counters else 0
    link_stats = None
    if counters:
        request += host.counters_cmd(prog.cfg)
    if sim == "golden":
        from tinylpu.golden import GoldenTile
        tile = GoldenTile(prog.cfg)
        tile.host(prog.load_stream())
        tile.on_emit = on_token
        t0 = time.perf_counter()
        response = tile.host(request)
        seconds = time.perf_counter() - t0
    elif device is not None:
        from tinylpu.link import Link, open_serial, run_link
        link = device if isinstance(device, Link) else open_serial(device, baud)
        try:
            response, seconds = run_link(link, prog.load_stream(), request, n_emit=steps,
                                         n_after=n_after, on_beat_pair=on_token,
                                         timeout=DEVICE_TIMEOUT, cfg=prog.cfg)
        finally:
            link.port.close()
        link_stats = dict(link.stats, bad_frames=link.bad_frames)
    elif board is not None:
        if sim != "verilator":
            raise ValueError(f"the board top is simulated on Verilator, not {sim}")
        from tinylpu.flow.boardsim import board_sim
        from tinylpu.link import run_link
        with board_sim(prog.cfg) as bsim:
            response, seconds = run_link(bsim.link, prog.load_stream(), request, n_emit=steps,
                                         n_after=n_after, on_beat_pair=on_token, cfg=prog.cfg)
        link_stats = dict(bsim.link.stats, bad_frames=bsim.link.bad_frames, **bsim.stats)
    else:
        from tinylpu.flow.rtlsim import run_generate
        response, seconds = run_generate(prog.cfg, sim, prog.load_stream(), request,
                                         n_emit=steps, on_beat_pair=on_token, waves=waves,
                                         n_after=n_after)
    after = response[len(response) - n_after:]
    result = prog.parse(response[:len(response) - n_after], steps)
    return CountedResult(**dataclasses.asdict(result) | {"seconds": seconds},
                         counters=host.parse_counters(after) if counters else None,
                         link=link_stats)


def measured_steps(prog, n_prompt, stamps):
    """``(pos, cycles)`` of each emitted token after the first: the difference of two
    consecutive emission cycles is the cycles of one whole position."""
    return [(n_prompt - 1 + i, stamps[i] - stamps[i - 1]) for i in range(1, len(stamps))]
