"""The COMPUTE stage's blocks against Python references (Amaranth simulator, seeded stimulus):
the popcount array, the accumulators, and the stage running random GEMM sequences with the
durations of `bebert.timing.gemm_cycles`."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from bebert.config import AccelConfig
from bebert.isa import encode, gemm, sync
from bebert.timing import gemm_cycles
from bebert.hw.bitserial_accumulator import BitserialAccumulator
from bebert.hw.compute import ComputeStage
from bebert.hw.popcount_array import PopcountArray, compression_plan


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def wrap32(x: int) -> int:
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


@pytest.mark.parametrize("rows,cols,width", [(2, 3, 64), (1, 2, 8), (2, 2, 32), (1, 1, 128), (3, 1, 16)])
def test_popcount_array_counts_and_pairs_and_active_bits(rows, cols, width):
    dut = PopcountArray(rows, cols, width)
    rng = random.Random(rows * 1000 + cols * 10 + width)

    async def bench(ctx):
        for step in range(40):
            a = [rng.getrandbits(width) for _ in range(rows)]
            s = [rng.getrandbits(width) for _ in range(cols)]
            if step < 2:  # all ones, all zeros: the ends of every counter
                a, s = [(1 << width) - 1 if step == 0 else 0] * rows, [(1 << width) - 1] * cols
            ctx.set(dut.a, sum(v << (i * width) for i, v in enumerate(a)))
            ctx.set(dut.s, sum(v << (i * width) for i, v in enumerate(s)))
            ctx.set(dut.en, step % 7 != 3)
            before = [ctx.get(dut.pa[r]) for r in range(rows)]
            await ctx.tick()
            for r in range(rows):
                if step % 7 == 3:
                    assert ctx.get(dut.pa[r]) == before[r]  # held without en
                    continue
                assert ctx.get(dut.pa[r]) == bin(a[r]).count("1")
                for c in range(cols):
                    assert ctx.get(dut.pas[r][c]) == bin(a[r] & s[c]).count("1")

    run(dut, bench)


def test_compression_plans_leave_two_rows_of_the_same_sum():
    for shape in [(64,), (22, 21), (5, 4), (1, 1), (43, 42), (3,)]:
        cols = dict(enumerate(shape))
        for stage in compression_plan(shape):
            from bebert.hw.popcount_array import GPCS
            new = {}
            for w, i in stage:
                ins, outs = GPCS[i]
                assert max(sum(n << k for k, n in enumerate(ins)), 1) < 1 << outs
                for k, n in enumerate(ins):
                    cols[w + k] -= n
                    assert cols[w + k] >= 0
                for k in range(outs):
                    new[w + k] = new.get(w + k, 0) + 1
            for w, n in cols.items():
                new[w] = new.get(w, 0) + n
            cols = new
        assert all(n <= 2 for n in cols.values())


def test_accumulators_hold_acc_plus_row_as_the_spec_sum():
    R, C, CB = 2, 3, 7
    dut = BitserialAccumulator(R, C, CB)
    rng = random.Random(1)

    async def bench(ctx):
        want = [[0] * C for _ in range(R)]
        for step in range(300):
            pas = [[rng.randrange(65) for _ in range(C)] for _ in range(R)]
            pa = [rng.randrange(65) for _ in range(R)]
            neg, sh, rs, xnor = rng.getrandbits(1), rng.randrange(16), rng.randrange(8), rng.getrandbits(1)
            op = rng.random()
            zero, en = op < 0.05, op < 0.9
            for name, v in (("pas", pas), ("pa", pa), ("negate", neg), ("shift", sh), ("row_shift", rs),
                            ("row_en", xnor), ("zero", zero), ("en", en)):
                ctx.set(getattr(dut, name), v)
            for r in range(R):
                for c in range(C):
                    if zero:
                        want[r][c] = 0
                    elif en:
                        sign = -1 if neg else 1
                        want[r][c] += sign * (pas[r][c] << sh) - (sign * (pa[r] << rs) if xnor else 0)
            await ctx.tick()
            for r in range(R):
                for c in range(C):
                    assert wrap32(ctx.get(dut.acc[r][c]) + ctx.get(dut.row[r])) == wrap32(want[r][c]), (step, r, c)

    run(dut, bench)


# -- the COMPUTE stage ----------------------------------------------------------------------
def tiny(R, C, W, entries=32):
    B = min(min(R, C) * W, C * 64) // 8  # bytes per beat: every entry (PBUF too) a whole number of beats
    return AccelConfig(name=f"tiny{R}x{C}x{W}", pe_rows=R, pe_cols=C, xnor_width=W, abuf_bytes=entries * R * W // 8,
                       wbuf_bytes=entries * C * W // 8, pbuf_bytes=2 * C * 8, dram_bytes_per_cycle=min(B, 128),
                       dram_latency_cycles=3, queue_depth=4, vec_lanes=2, vec_row_elems=16)


SHAPES = {"2x4x16": tiny(2, 4, 16), "4x2x32": tiny(4, 2, 32), "1x4x8": tiny(1, 4, 8), "2x2x128": tiny(2, 2, 128, 16)}


class ComputeBench(wiring.Component):
    """ComputeStage with ABUF / WBUF memories of given contents (read ports as hw/buffer.py's)."""

    def __init__(self, config, abuf, wbuf):
        self.config, self.abuf_init, self.wbuf_init = config, abuf, wbuf
        self.stage = ComputeStage(config)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.stage = st = self.stage
        for name, init in (("abuf", self.abuf_init), ("wbuf", self.wbuf_init)):
            mem = Memory(shape=self.config.entry_bits[name], depth=len(init), init=init)
            m.submodules[name] = mem
            rd = mem.read_port()
            port = getattr(st, name)
            m.d.comb += [rd.en.eq(port.en), rd.addr.eq(port.addr), port.data.eq(rd.data)]
        return m


def reference_gemm(acc, ins, abuf, wbuf, cfg):
    """The spec's GEMM on Python integers: acc (R x C) -> acc."""
    R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
    g = ins.args
    na, nw = len(abuf), len(wbuf)
    out = [[0] * C for _ in range(R)]
    for q in range(g["wbits"]):
        for p in range(g["bits"]):
            for j in range(g["k"]):
                ea, ew = abuf[(g["a"] + p * g["stride"] + j) % na], wbuf[(g["w"] + q * g["wstride"] + j) % nw]
                neg = (g["signed"] and p == g["bits"] - 1) != (g["wsigned"] and q == g["wbits"] - 1)
                for r in range(R):
                    a = (ea >> (r * W)) & ((1 << W) - 1)
                    for c in range(C):
                        s = (ew >> (c * W)) & ((1 << W) - 1)
                        pas = bin(a & s).count("1")
                        dot = 2 * pas - bin(a).count("1") if g["mode"] == 0 else pas
                        out[r][c] += (-1 if neg else 1) * (dot << (p + q))
    return [[wrap32((0 if g["init"] else acc[r][c]) + out[r][c]) for c in range(C)] for r in range(R)]


def random_gemm(rng, cfg, na, nw):
    mode = rng.getrandbits(1)
    bits = rng.randint(1, 8)
    wbits = rng.randint(1, 8) if mode else 1
    k = rng.choice([1, 1, 2, 3, 5])
    return gemm(rng.randrange(na), rng.randrange(nw), k, rng.randrange(na), bits, rng.getrandbits(1),
                rng.random() < 0.5, mode=mode, wbits=wbits, wstride=rng.randrange(nw),
                wsigned=bool(mode and rng.getrandbits(1)), snap=rng.random() < 0.5)


@pytest.mark.parametrize("shape,seed", [("2x4x16", 1), ("2x4x16", 2), ("4x2x32", 3), ("1x4x8", 4), ("2x2x128", 5)])
def test_compute_stage_runs_gemms_back_to_back_with_exact_durations_and_snapshots(shape, seed):
    cfg = SHAPES[shape]
    rng = random.Random(seed)
    na, nw = cfg.entries("abuf"), cfg.entries("wbuf")
    abuf = [rng.getrandbits(cfg.entry_bits["abuf"]) for _ in range(na)]
    wbuf = [rng.getrandbits(cfg.entry_bits["wbuf"]) for _ in range(nw)]
    abuf[0], wbuf[0] = (1 << cfg.entry_bits["abuf"]) - 1, (1 << cfg.entry_bits["wbuf"]) - 1
    program = [random_gemm(rng, cfg, na, nw) for _ in range(14)]
    program.insert(5, sync("compute"))
    program[0] = program[0].__class__(program[0].op, {**program[0].args, "init": 1, "snap": 1})
    dut = ComputeBench(cfg, abuf, wbuf)
    st = dut.stage
    R, C = cfg.pe_rows, cfg.pe_cols

    async def bench(ctx):
        queue = list(program)
        acc = [[0] * C for _ in range(R)]
        want_issue = 0  # back to back: each instruction issues the cycle after the last one ended
        snaps = []  # (cycle, expected snapshot)
        cycle, issued = 0, []
        ctx.set(st.ctl.tokens.pop_ok, 0b1111)
        while queue or ctx.get(st.ctl.busy):
            ctx.set(st.ctl.head.valid, bool(queue))
            ctx.set(st.ctl.head.word, encode(queue[0]) if queue else 0)
            if ctx.get(st.snapshot.snap):
                got = [[wrap32(ctx.get(st.snapshot.acc[32 * (r * C + c):32 * (r * C + c) + 32])
                               + ctx.get(st.snapshot.row[32 * r:32 * r + 32])) for c in range(C)] for r in range(R)]
                snaps.append((cycle, got))
            if ctx.get(st.ctl.head.pop):
                ins = queue.pop(0)
                assert cycle == want_issue, (cycle, want_issue, ins)
                d = gemm_cycles(ins.bits, ins.wbits, ins.k, bool(ins.snap)) if ins.op.name == "GEMM" else 1
                want_issue = cycle + d + 1
                if ins.op.name == "GEMM":
                    acc = reference_gemm(acc, ins, abuf, wbuf, cfg)
                    if ins.snap:
                        issued.append((cycle + d, [row[:] for row in acc]))
            await ctx.tick()
            cycle += 1
            assert cycle < 5000
        assert [c for c, _ in snaps] == [c for c, _ in issued]  # the snap pulse in t+D
        for (c, got), (_, want) in zip(snaps, issued):
            assert got == want, c

    run(dut, bench)
