"""Helpers for the vector unit's simulator tests: run a pipelined component on a stream of
input vectors (Amaranth's simulator), and the Python forms of the per-instruction settings
(`PostConfig`, saturation masks) the unit derives in hardware."""

from __future__ import annotations

from amaranth.sim import Simulator

from bebert.numerics import out_range


def thermo(width: int, p: int) -> int:
    return ((1 << width) - 1) & ~((1 << min(max(p, 0), width)) - 1) if p < width else 0


def range_cfg(is_signed: bool, bits: int, width: int) -> dict:
    """`arith.range_of` in Python: mask, lo, hi of a signed / unsigned `bits`-bit range."""
    if is_signed:
        return {"signed": 1, "mask2": thermo(width, bits - 1), "lo": -(1 << (bits - 1)), "hi": (1 << (bits - 1)) - 1}
    return {"signed": 0, "mask2": thermo(width, bits), "lo": 0, "hi": (1 << bits) - 1}


def post_cfg(k: int, shift: int, obits: int, osigned: bool) -> dict:
    """The `PostConfig` of `requantize`'s output step (obits 0: int32, 1: +-1, 2..: clamp)."""
    cfg = {"shift": shift, "mask1": thermo(65, shift + k), "force": int(obits == 1)}
    if obits == 0:
        cfg.update(range_cfg(True, 32, k + 1))
    elif obits == 1:
        cfg.update({"signed": 1, "mask2": 0, "lo": -1, "hi": 1})
    else:
        cfg.update(range_cfg(osigned, obits, k + 1))
    return cfg


def post_ref(v: int, shift: int, obits: int, osigned: bool) -> int:
    """`bebert.numerics.requantize` on one Python int (no wrap: |v| < 2^63), int32 cast."""
    if shift > 0:
        v = (v + (1 << (shift - 1))) >> shift
    if obits == 1:
        return 1 if v >= 0 else -1
    lo, hi = out_range(obits, osigned)
    v = min(max(v, lo), hi)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def set_ports(ctx, port, values: dict) -> None:
    for name, x in values.items():
        ctx.set(getattr(port, name), int(x))


def run_pipeline(dut, latency: int, vectors: list[dict], outputs: list[str], setup=None) -> list[dict]:
    """Present one input dict per cycle; collect `outputs` `latency` cycles later."""
    got: list[dict] = []

    async def bench(ctx):
        if setup:
            setup(ctx)
        for t in range(len(vectors) + latency):
            if t < len(vectors):
                for name, x in vectors[t].items():
                    obj = dut
                    for part in name.split("."):
                        obj = getattr(obj, part)
                    ctx.set(obj, int(x))
            await ctx.tick()
            if t >= latency - 1 and len(got) < len(vectors):
                got.append({o: ctx.get(_path(dut, o)) for o in outputs})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def _path(obj, name: str):
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj
