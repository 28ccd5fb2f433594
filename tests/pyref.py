"""Independent references for the tests, in plain Python ints (no tinylpu code)."""


def requant_int8(acc, mult, shift):
    """Round half up, saturate to int8: the documented requantization rule."""
    out = []
    for a in list(acc):
        p = int(a) * mult
        if shift:
            p = (p + (1 << (shift - 1))) >> shift
        out.append(max(-128, min(127, p)))
    return out
