"""Drive a tile's host streams in Amaranth's simulator (shared by the unit tests)."""

from amaranth.sim import Simulator


async def send(ctx, port, beats):
    ctx.set(port.valid, 1)
    for beat in beats:
        ctx.set(port.payload, beat)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive(ctx, port, count):
    out = []
    ctx.set(port.ready, 1)
    while len(out) < count:
        payload, valid = (await ctx.tick().sample(port.payload, port.valid))[2:]
        if valid:
            out.append(payload)
    ctx.set(port.ready, 0)
    return out


def run_host_stream(dut, beats, n_response, vcd=None):
    """Send ``beats`` to ``dut.host_in`` and collect ``n_response`` beats from ``host_out``."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    result = {}

    async def producer(ctx):
        await send(ctx, dut.host_in, beats)

    async def consumer(ctx):
        result["beats"] = await receive(ctx, dut.host_out, n_response)

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result["beats"]
