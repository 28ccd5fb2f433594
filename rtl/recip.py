"""Pipelined normalized reciprocal: one operand per cycle, fixed latency."""

__all__ = ["RecipPipeline", "latency", "LATENCY", "STEPS_PER_STAGE", "MANTISSA_BITS"]

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .rounding import bit_length, smear_down

MANTISSA_BITS = 15      # the mantissa m: 2**14 <= m < 2**15
STEPS_PER_STAGE = 2     # default: two width-bit subtract-and-select steps per stage
_DIVIDED_BITS = MANTISSA_BITS - 1   # the leading quotient bit is always 1; the rest are divided


def _stage_steps(steps_per_stage):
    """Quotient bits computed by each division stage, first stage first."""
    whole, rest = divmod(_DIVIDED_BITS, steps_per_stage)
    return [steps_per_stage] * whole + ([rest] if rest else [])


def _register(m, value, name, reset_less=True):
    """A register of ``value``'s width, loaded with it every cycle (data registers are not
    reset)."""
    reg = Signal(len(value), name=name, reset_less=reset_less)
    m.d.sync += reg.eq(value)
    return reg


def latency(steps_per_stage=STEPS_PER_STAGE):
    """Cycles from an operand's cycle to its result's: the normalisation stage, then
    ``ceil(14 / steps_per_stage)`` division stages. Independent of ``width`` and of the
    operand value."""
    if steps_per_stage < 1:
        raise ValueError(f"steps_per_stage must be at least 1, not {steps_per_stage}")
    return 1 + len(_stage_steps(steps_per_stage))


LATENCY = latency()     # 8 with the default 2 steps per stage


class RecipPipeline(wiring.Component):
    """Fully pipelined normalized reciprocal, bit-exact with
    :func:`tinylpu.model.intmodel.norm_recip`: for every unsigned ``width``-bit ``operand`` v >= 1,
    ``mantissa = (2**(b+14) - 1) // v`` (15 bits, ``2**14 <= mantissa < 2**15``) and
    ``exponent = b = v.bit_length()``. Operand 0 (which ``norm_recip`` rejects) gives the
    defined result ``mantissa = 0x7fff``, ``exponent = 0``, as the sequential ``ScalarUnit``
    does; there is no error output.

    Timing: ``valid`` and ``operand`` in cycle c; ``out_valid`` (= that ``valid``),
    ``mantissa`` and ``exponent`` of that operand in cycle c + ``LATENCY``, where ``LATENCY =
    latency(steps_per_stage) = 1 + ceil(14 / steps_per_stage)`` (8 with the default 2, for
    every ``width``; also the instance's ``latency`` attribute): mantissa valid LATENCY
    cycles after valid. A new operand may come in every cycle, back to back, with no stall
    and no bubble. The data path has no enables: in a cycle without ``out_valid``,
    ``mantissa`` and ``exponent`` are those of whatever ``operand`` was present LATENCY
    cycles before. Only the ``valid`` pipeline is reset, so ``out_valid`` is 0 in the
    LATENCY cycles after reset.

    Stages, each ending in registers (the outputs come straight from the last ones):

    * Normalisation (from the input ports): the leading one of v smeared down gives
      ``2**b - 1`` (a log-depth OR, no carry chain); b (the one-hot position of the leading
      one, OR-reduced to b's binary bits) is formed from the registered v in the first
      division stage. The dividend ``2**(b+14) - 1`` is ``b + 14`` ones; its top
      ``b`` bits, ``2**b - 1``, are at least v and below 2v, so the first quotient bit is
      always 1 and the partial remainder after it is ``2**b - 1 - v``, i.e. the smear with v's
      bits cleared (v's bits are a subset of it).
    * ``ceil(14 / steps_per_stage)`` division stages of ``steps_per_stage`` restoring steps
      (the last one takes the rest): each step shifts a 1 into the partial remainder r
      (``2r + 1 < 2v``, ``width + 1`` bits), subtracts v (the divisor is never shifted or
      normalized) and keeps the difference when it is not negative, which is the next quotient
      bit. The critical path of a stage is ``steps_per_stage`` chained ``width + 1``-bit
      subtracts, each followed by a 2:1 select. The last step needs only the comparison.

    The normalisation logic is fed by the input ports directly (drive them from registers);
    every other path starts and ends at a register of this block. Place and route of the
    block between registers on an ECP5-25F, speed grade 6 (nextpnr, one seed), gave with the
    default 2 steps per stage about 108 MHz at width 24, 102 at 32, 97 at 40 and 87 at 48;
    with 3 steps 78 MHz at width 24; with 1 step (LATENCY 15) 144 MHz at width 24 and 121 at
    48, where the normalisation is the longest path. So for 100 MHz above width 32, use
    ``steps_per_stage=1``.

    With v = 0 the smear and the remainder are 0 and every trial subtraction of 0 fits, so
    every quotient bit is 1 and b is 0: the defined result above.
    """

    def __init__(self, width=24, steps_per_stage=STEPS_PER_STAGE):
        if width < 1:
            raise ValueError(f"width must be at least 1, not {width}")
        self.width = width
        self.steps_per_stage = steps_per_stage
        self.latency = latency(steps_per_stage)
        super().__init__({
            "valid": In(1),
            "operand": In(width),
            "out_valid": Out(1),
            "mantissa": Out(MANTISSA_BITS),
            "exponent": Out(range(width + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width

        # normalisation stage: 2**b - 1 by smearing the leading one down (rtl.rounding); b =
        # v.bit_length(), a priority encoder, is taken from the registered divisor in stage
        # 1 (the input's path is the smear alone)
        smear = smear_down(self.operand)

        # registers at the end of stage k are named *_k (stage 0: the normalisation)
        valid = _register(m, self.valid, "valid_0", reset_less=False)
        divisor = _register(m, self.operand, "divisor_0")
        rem = _register(m, smear & ~self.operand, "rem_0")
        exponent = bit_length(m, divisor, "b")

        # division stages; `quotient` holds the bits below the leading 1, newest at bit 0
        quotient = Cat()
        stage_steps = _stage_steps(self.steps_per_stage)
        for stage, steps in enumerate(stage_steps, start=1):
            for _ in range(steps):
                bit = _DIVIDED_BITS - 1 - len(quotient)        # mantissa bit of this step
                shifted = Cat(Const(1, 1), rem)                 # 2r + 1
                fits = Signal(name=f"q{bit}")                  # the quotient bit
                if bit == 0:                    # the last step: no remainder after it
                    m.d.comb += fits.eq(shifted >= divisor)
                else:
                    diff = Signal(signed(w + 2), name=f"q{bit}_diff")
                    rem = Signal(w, name=f"q{bit}_rem")
                    m.d.comb += [
                        diff.eq(shifted - divisor),
                        fits.eq(~diff[-1]),
                        rem.eq(Mux(fits, diff, shifted)),
                    ]
                quotient = Cat(fits, quotient)
            valid = _register(m, valid, f"valid_{stage}", reset_less=False)
            quotient = _register(m, quotient, f"quotient_{stage}")
            exponent = _register(m, exponent, f"exponent_{stage}")
            if stage < len(stage_steps):        # no divisor or remainder after the last stage
                divisor = _register(m, divisor, f"divisor_{stage}")
                rem = _register(m, rem, f"rem_{stage}")

        m.d.comb += [
            self.out_valid.eq(valid),
            self.mantissa.eq(Cat(quotient, Const(1, 1))),
            self.exponent.eq(exponent),
        ]
        return m
