"""The AXI wrapper (`bebert.hw.axi`, top `bebert_axi`) behind cocotbext-axi's AXI RAM.

Programs run through the wrapper leave the same DRAM image as the golden executor (every
port group is exercised: LOAD reads, the output path's and the vector unit's strobed
single-beat writes, the vector unit's reads, and the instruction fetch master), and take more cycles than the
simulator's nominal memory (each instruction word is a read round trip). The burst splitter
is held to AXI4's two limits in Amaranth's own simulator.
"""

from pathlib import Path

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators
from bebert.isa import encode, halt
from bebert.program import Program
from bebert.vector import VecFn

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIG_DIR / "small.toml")

def needs_axi_bench(test):
    """An RTL simulator and cocotbext-axi (its AXI RAM model)."""
    import importlib.util

    for mark in (pytest.mark.rtl,
                 pytest.mark.skipif(not simulators.installed(), reason="no RTL simulator installed"),
                 pytest.mark.skipif(importlib.util.find_spec("cocotbext") is None
                                    or importlib.util.find_spec("cocotbext.axi") is None,
                                    reason="cocotbext-axi not installed (pip install cocotbext-axi)")):
        test = mark(test)
    return test


def run_axi(prog, **kw):
    from bebert.hw.verify import run_axi as _run
    return _run(prog.config, [encode(i) for i in prog.instrs], prog.dram, **kw)


def random_machine_program(seed: int):
    """A race-free random program through all four stages (LOAD, GEMM, stream / packed / transposed
    POSTs, every VEC kernel): every port group of the wrapper carries traffic."""
    from bebert.sim.random_programs import random_program

    return random_program(np.random.default_rng(seed), SMALL, 30)


@needs_axi_bench
@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("case", ["gemm", "random"])
def test_programs_through_the_axi_wrapper_leave_the_golden_image(case, stall):
    from bebert.compiler import compile_spec, golden
    from bebert.sim import simulate

    prog = compile_spec("gemm:13,70,9,2", SMALL) if case == "gemm" else random_machine_program(5)
    res = run_axi(prog, stall=stall, seed=3)
    assert res["done"] and not res["error"], res
    assert np.array_equal(res["dram"], golden.execute(prog))
    assert res["cycles"] > simulate(prog).cycles and res["bus_bytes"] == SMALL.dram_bytes_per_cycle


@needs_axi_bench
def test_an_illegal_word_shows_in_the_status_registers():
    from bebert.hw import ErrorCode
    from bebert.hw.verify import run_axi as _run

    res = _run(SMALL, [0, encode(halt())], np.zeros(64, np.uint8))
    assert res["done"] and res["error"] and (res["error_code"], res["error_pc"]) == (ErrorCode.ILLEGAL, 0)



@pytest.mark.parametrize("addr,beats,bus", [(0, 1, 64), (4096 - 64, 40, 64), (8, 1000, 64), (4096 * 3 - 32, 300, 256),
                                            (0, 256, 64), (0, 257, 128)])
def test_bursts_never_exceed_256_beats_nor_cross_4k(addr, beats, bus):
    from amaranth.sim import Simulator

    from bebert.hw.axi.burst_splitter import BurstSplitter

    dut = BurstSplitter(bus)
    got = []

    async def bench(ctx):
        ctx.set(dut.addr, addr)
        ctx.set(dut.beats, beats)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.burst_ready, 1)
        for _ in range(4 * beats + 20):
            if ctx.get(dut.burst_valid):
                got.append((ctx.get(dut.burst_addr), ctx.get(dut.burst_len), ctx.get(dut.burst_last)))
            await ctx.tick()
        assert ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    nb = bus // 8
    assert sum(n for _, n, _ in got) == beats and [last for *_, last in got] == [0] * (len(got) - 1) + [1]
    at = addr
    for a, n, _ in got:
        assert a == at and 1 <= n <= 256 and a // 4096 == (a + n * nb - 1) // 4096
        at += n * nb
