"""The AXI wrapper (`bebert.hw.axi`, top `bebert_axi`) behind cocotbext-axi's AXI RAM.

Programs run through the wrapper leave the same DRAM image as the golden executor (every
port group is exercised: LOAD reads, STORE bursts, the vector unit's unaligned reads and
strobed single-beat writes, and the instruction fetch master), and take more cycles than the
simulator's nominal memory (each instruction word is a read round trip). The burst splitter
is held to AXI4's two limits in Amaranth's own simulator.
"""

from pathlib import Path

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators
from bebert.isa import encode, gemm, halt, load, post, store, vec
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


def vec_program():
    """LOAD, GEMM, POST, STORE an int32 tile, then a VEC REQUANT of it into int8 rows at an
    odd address: unaligned vector-unit reads and strobed writes that straddle bus words."""
    from bebert.integer_ops import RequantConsts
    from bebert.vector import View, consts_words, encode_desc

    dram = np.random.default_rng(4).integers(0, 256, 2048, dtype=np.uint8)
    k = np.frombuffer(consts_words(VecFn.REQUANT, RequantConsts(77, 6, 8, True, 32, 1.0, 1.0)), np.uint8)
    dram[0x780:0x780 + k.size] = k
    d = np.frombuffer(encode_desc(VecFn.REQUANT, src=View.row_major(0x404, 3, elem=4),
                                  out=View.row_major(0x603, 3, elem=1), consts=0x780), np.uint8)
    dram[0x700:0x700 + d.size] = d
    instrs = [load("abuf", 0, 0, 2, "push_next"), gemm(0, 0, 2, 1, 1, False, True, "pop_prev"),
              post(0, 0, 0, 0, True, "push_next"), store(0x400, 0, 4, "pop_prev", "push_prev"),
              vec(VecFn.REQUANT, 0x700, 4, 3, "pop_next"), halt()]
    return Program(config=SMALL, instrs=instrs, dram=dram)


@needs_axi_bench
@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("case", ["gemm", "vec"])
def test_programs_through_the_axi_wrapper_leave_the_golden_image(case, stall):
    from bebert.compiler import compile_spec, golden
    from bebert.sim import simulate

    prog = compile_spec("gemm:13,70,9,2", SMALL) if case == "gemm" else vec_program()
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
