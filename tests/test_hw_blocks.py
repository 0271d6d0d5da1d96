"""Unit benches of the RTL blocks against Python references (Amaranth simulator, seeded stimulus)."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from bebert.config import AccelConfig
from bebert.numerics import requantize
from bebert.hw.bitserial_accumulator import BitserialAccumulator
from bebert.hw.popcount_array import PopcountArray
from bebert.hw.post import PostUnit

SMALL = AccelConfig(name="unit", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                    pbuf_bytes=1024, obuf_bytes=1024, dram_bytes_per_cycle=8, dram_latency_cycles=3,
                    queue_depth=4)


def run(dut, bench, *, clock=True):
    sim = Simulator(dut)
    if clock:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_popcount_array_dot_products():
    """XNOR: the +-1 dot product over a's active bits; AND: popcount(a & s); the mode may
    change every cycle (it is a per-instruction mux after the shared popcounts)."""
    R, C, W = 3, 4, 16
    rng = np.random.default_rng(2)
    dut = PopcountArray(R, C, W)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for i in range(60):
            a = rng.integers(0, 2, (R, W))
            s = rng.integers(0, 2, (C, W))
            and_mode = int(rng.integers(2)) if i >= 4 else i % 2
            if i == 2:
                a[:], s[:] = 1, 1  # the largest AND count
            ctx.set(dut.a, int("".join(str(b) for b in a.reshape(-1)[::-1]), 2))
            ctx.set(dut.s, int("".join(str(b) for b in s.reshape(-1)[::-1]), 2))
            ctx.set(dut.and_mode, and_mode)
            await ctx.tick()
            dot = ctx.get(dut.dot)
            for r in range(R):
                for c in range(C):
                    want = int((a[r] & s[c]).sum()) if and_mode else int((a[r] * (2 * s[c] - 1)).sum())
                    assert dot[r][c] == want

    run(dut, bench)


def wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


@pytest.mark.parametrize("DB", [8, 27])  # 27: terms past 2^31 exercise the 32-bit wrap
def test_bitserial_accumulator_shift_accumulate(DB):
    R, C = 2, 3
    rng = random.Random(3)
    dut = BitserialAccumulator(R, C, DB)
    model = [[0] * C for _ in range(R)]

    async def bench(ctx):
        for _ in range(150):
            en, clear, neg, shift = rng.random() < 0.8, rng.random() < 0.1, rng.random() < 0.3, rng.randrange(15)
            dots = [[rng.randrange(-(1 << (DB - 1)), 1 << (DB - 1)) for _ in range(C)] for _ in range(R)]
            if rng.random() < 0.05:
                dots = [[(1 << (DB - 1)) - 1] * C for _ in range(R)]
            ctx.set(dut.en, en)
            ctx.set(dut.clear, clear)
            ctx.set(dut.negate, neg)
            ctx.set(dut.shift, shift)
            ctx.set(dut.dot, dots)
            await ctx.tick()
            if en:
                for r in range(R):
                    for c in range(C):
                        base = 0 if clear else model[r][c]
                        term = dots[r][c] << shift
                        model[r][c] = wrap32(base - term if neg else base + term)
            acc = ctx.get(dut.acc)
            assert [[acc[r][c] for c in range(C)] for r in range(R)] == model

    run(dut, bench)


@pytest.mark.parametrize("seed", [4, 5])
def test_post_unit_matches_requantize(seed):
    C = 4
    rng = np.random.default_rng(seed)
    dut = PostUnit(C, 6)
    cases = []
    for i in range(60):
        acc = rng.integers(-(1 << 31), 1 << 31, C, dtype=np.int64)
        if i % 3 == 0:
            acc = rng.integers(-5000, 5000, C)
        mult = rng.integers(-(1 << 31), 1 << 31, C, dtype=np.int64)
        if i % 2:
            mult = rng.integers(-(1 << 16), 1 << 16, C)
        bias = rng.integers(-(1 << 31), 1 << 31, C, dtype=np.int64)
        shift = int(rng.choice([0, 1, 2, 7, 16, 31, 40, 62, 63]))
        obits = int(rng.integers(0, 9))
        osigned = bool(rng.integers(2))
        cases.append((acc, mult, bias, shift, obits, osigned))

    async def bench(ctx):
        for n, (acc, mult, bias, shift, obits, osigned) in enumerate(cases):
            params = 0
            for c in range(C):
                params |= (int(mult[c]) & 0xFFFFFFFF) << (64 * c) | (int(bias[c]) & 0xFFFFFFFF) << (64 * c + 32)
            ctx.set(dut.valid, 1)
            ctx.set(dut.acc, [int(x) for x in acc])
            ctx.set(dut.params, params)
            ctx.set(dut.shift, shift)
            ctx.set(dut.obits, obits)
            ctx.set(dut.osigned, osigned)
            ctx.set(dut.addr, n % 64)
            await ctx.tick()
            ctx.set(dut.valid, 0)
            assert ctx.get(dut.w_en) == 1 and ctx.get(dut.w_addr) == n % 64
            data = ctx.get(dut.w_data)
            got = [wrap32((data >> (32 * c)) & 0xFFFFFFFF) for c in range(C)]
            want = requantize(acc, mult, bias, shift, obits, osigned).tolist()
            assert got == want, (acc, mult, bias, shift, obits, osigned)

    run(dut, bench)
