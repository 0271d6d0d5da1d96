"""The OUTPUT stage against the golden executor (Amaranth simulator, seeded stimulus): POSTCFG and
POST in every format (stream e = 1, 2, 4; packed; packed-transposed; pm1), random tiles, runs,
groups and strides, DRAM bytes equal to `compiler.golden`'s, durations equal to
`bebert.timing.post_cycles` at the nominal memory, and the same bytes under backpressure."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from bebert.config import AccelConfig
from bebert.isa import PostFmt, Stage, encode, post, postcfg, sync
from bebert.timing import OutputMode, duration
from bebert.compiler import golden
from bebert.hw.output_stage import OutputStage


def cfg(name, R, C, W, B, T, L=3):
    eb = {"abuf": R * W // 8, "wbuf": C * W // 8, "pbuf": C * 8}
    return AccelConfig(name=name, pe_rows=R, pe_cols=C, xnor_width=W, abuf_bytes=4 * eb["abuf"],
                       wbuf_bytes=4 * eb["wbuf"], pbuf_bytes=4 * eb["pbuf"], dram_bytes_per_cycle=B // 8,
                       dram_latency_cycles=L, queue_depth=4, vec_lanes=T, vec_row_elems=16)


CONFIGS = {
    "small": cfg("small", 4, 4, 32, 64, 4),
    "rows_lt_cols": cfg("r2c4", 2, 4, 32, 32, 4),       # groups of the transposed view, T > R
    "cols_lt_rows": cfg("r4c2", 4, 2, 16, 16, 2),       # W = B, T < R: two runs per column
    "wide_words": cfg("w64b16", 2, 2, 64, 16, 1, L=5),  # W > B: words in parts; T = 1: row-major stream
}
DRAM_BYTES = 1 << 16


class OutputBench(wiring.Component):
    """OutputStage with a PBUF memory of given contents."""

    def __init__(self, config, pbuf):
        self.config, self.pbuf_init = config, pbuf
        self.stage = OutputStage(config)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.stage = st = self.stage
        m.submodules.pbuf = mem = Memory(shape=self.config.entry_bits["pbuf"], depth=len(self.pbuf_init),
                                         init=self.pbuf_init)
        rd = mem.read_port()
        m.d.comb += [rd.en.eq(st.pbuf.en), rd.addr.eq(st.pbuf.addr), st.pbuf.data.eq(rd.data)]
        return m


def random_params(rng, C):
    """PBUF entry bytes and (mult, bias): mostly small multipliers, some extremes."""
    def one(bits):
        return rng.choice([rng.getrandbits(32) - (1 << 31), rng.randint(-(1 << bits), 1 << bits), 0, 1, -1])
    mult = np.array([one(12) for _ in range(C)], np.int64)
    bias = np.array([one(20) for _ in range(C)], np.int64)
    p = np.zeros((C, 2), "<i4")
    p[:, 0], p[:, 1] = mult, bias
    return p.view(np.uint8).reshape(-1)


def random_snapshot(rng, R, C):
    acc = np.array([[rng.choice([rng.getrandbits(32) - (1 << 31), rng.randint(-3000, 3000)]) for _ in range(C)]
                    for _ in range(R)], np.int64)
    row = np.array([rng.choice([0, rng.randint(-500, 500), rng.getrandbits(32) - (1 << 31)]) for _ in range(R)],
                   np.int64)
    return acc, row


def random_program(rng, config, npbuf):
    """POSTCFG / POST sequences in every format, with runs and tiles the compiler could emit
    (run addresses aligned to their size), and a few SYNCs and token pushes."""
    R, C, W, Bb, T = config.pe_rows, config.pe_cols, config.xnor_width, config.dram_bytes_per_cycle, config.vec_lanes
    prog = []
    for _ in range(rng.randint(4, 6)):
        fmt = rng.choice([PostFmt.STREAM, PostFmt.PACKED, PostFmt.TRANSPOSED])
        if fmt == PostFmt.STREAM:
            elem = rng.randrange(3)
            e = 1 << elem
            obits = rng.choice([0, 1, 2, 4, 8, 12, 16])
            pitch = rng.randint(1, 3) * max(Bb, C * T * e)
            prog.append(postcfg(fmt, obits, rng.random() < 0.5, rng.choice([0, 1, 5, 13, 31, 45, 63]),
                                elem=elem, pitch=pitch))
            S = min(min(R, T) * e, Bb)
            for _ in range(rng.randint(1, 3)):
                dram = rng.randrange(0, DRAM_BYTES // 2, S)
                prog.append(post(rng.randrange(npbuf), dram, rng.randint(1, C), rng.randint(1, R),
                                 push=["vec"] if rng.random() < 0.3 else ()))
        else:
            obits = rng.randint(1, 8)
            pm1 = obits == 1 and rng.random() < 0.5
            words = R if fmt == PostFmt.PACKED else C
            group = rng.choice([1, 2, 4, 16, 128])
            run = min(words, group) * W // 8
            align = min(run, Bb)
            gstride = rng.randint(1, 4) * max(run, align) * rng.choice([1, 2])
            pitch = rng.randint(1, 3) * (words // min(words, group)) * gstride
            prog.append(postcfg(fmt, obits, rng.random() < 0.5, rng.choice([0, 3, 9, 20]), pitch=pitch,
                                gstride=gstride, group=group, pm1=pm1))
            tiles = rng.randint(1, 3)
            dram = rng.randrange(0, DRAM_BYTES // 4, max(align, 1))
            for t in range(tiles):
                last = t == tiles - 1
                prog.append(post(rng.randrange(npbuf), dram, rng.randint(1, C), rng.randint(1, R), flush=last,
                                 push=["load"] if rng.random() < 0.3 else ()))
        if rng.random() < 0.3:
            prog.append(sync("output", push=["compute"]))
    return prog


def golden_bytes(config, prog, pbuf, snapshot):
    m = golden.Machine(config, np.zeros(DRAM_BYTES, np.uint8))
    m.buf["pbuf"][:] = np.asarray(pbuf, np.uint8).reshape(m.buf["pbuf"].shape)
    m.snap = golden.wrap_int32(snapshot[0] + snapshot[1][:, None])
    for pc, ins in enumerate(prog):
        {"POSTCFG": golden._postcfg, "POST": golden._post}.get(ins.op.name, lambda *_: None)(m, ins, pc)
    return m.dram


def durations(config, prog):
    mode, out = OutputMode(), []
    for ins in prog:
        if ins.op.name == "POSTCFG":
            mode = OutputMode.of(ins)
        out.append(duration(ins, config, mode))
    return out


def run_stage(config, prog, pbuf, snapshot, *, ready_p=1.0, seed=0):
    """Runs `prog` back to back; returns (DRAM bytes, issue cycles, push cycles, last cycle)."""
    R, C = config.pe_rows, config.pe_cols
    entries = np.asarray(pbuf, np.uint8).reshape(config.entries("pbuf"), -1)
    init = [int.from_bytes(e.tobytes(), "little") for e in entries]
    dut = OutputBench(config, init)
    st = dut.stage
    rng = random.Random(seed)
    dram = np.zeros(DRAM_BYTES, np.uint8)
    result = {}

    async def bench(ctx):
        acc, row = snapshot
        ctx.set(st.snapshot.acc, sum((int(v) & 0xFFFFFFFF) << (32 * i) for i, v in enumerate(acc.reshape(-1))))
        ctx.set(st.snapshot.row, sum((int(v) & 0xFFFFFFFF) << (32 * i) for i, v in enumerate(row)))
        ctx.set(st.snapshot.snap, 1)
        await ctx.tick()
        ctx.set(st.snapshot.snap, 0)
        ctx.set(st.ctl.tokens.pop_ok, 0b1111)
        queue, responses = list(prog), []
        issues, pushes, cycle = [], [], 0
        while queue or ctx.get(st.ctl.busy) or responses:
            ctx.set(st.ctl.head.valid, bool(queue))
            ctx.set(st.ctl.head.word, encode(queue[0]) if queue else 0)
            ready = rng.random() < ready_p
            ctx.set(st.owr.ready, ready)
            ctx.set(st.owr.resp_valid, bool(responses) and responses[0] <= cycle)
            if bool(responses) and responses[0] <= cycle:
                responses.pop(0)
            if ctx.get(st.owr.valid) and ready:
                addr, data, strb = ctx.get(st.owr.addr), ctx.get(st.owr.data), ctx.get(st.owr.strb)
                assert addr % config.dram_bytes_per_cycle == 0
                for i in range(config.dram_bytes_per_cycle):
                    if strb >> i & 1:
                        dram[addr + i] = (data >> (8 * i)) & 0xFF
                latency = config.dram_latency_cycles + (0 if ready_p == 1.0 else rng.randrange(4))
                responses.append(max(cycle + latency, responses[-1] if responses else 0))
            if ctx.get(st.ctl.head.pop):
                queue.pop(0)
                issues.append(cycle)
            if ctx.get(st.ctl.tokens.push):
                pushes.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 20000
        result.update(dram=dram, issues=issues, pushes=pushes, end=cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("seed", [1, 2])
def test_posts_write_the_golden_bytes_in_exactly_post_cycles(name, seed):
    config = CONFIGS[name]
    rng = random.Random(seed * 100 + len(name))
    n = config.entries("pbuf")
    pbuf = np.concatenate([random_params(rng, config.pe_cols) for _ in range(n)])
    snapshot = random_snapshot(rng, config.pe_rows, config.pe_cols)
    prog = random_program(rng, config, n)
    got = run_stage(config, prog, pbuf, snapshot)
    want = golden_bytes(config, prog, pbuf, snapshot)
    assert np.array_equal(got["dram"], want), [i for i in range(DRAM_BYTES) if got["dram"][i] != want[i]][:8]
    d = durations(config, prog)
    starts = [got["issues"][0]] + [got["issues"][i - 1] + d[i - 1] + 1 for i in range(1, len(prog))]
    assert got["issues"] == starts  # each instruction runs exactly its D, back to back
    want_push = [got["issues"][i] + d[i] for i, ins in enumerate(prog) if ins.pushes]
    assert got["pushes"] == want_push


@pytest.mark.parametrize("name", ["small", "wide_words"])
def test_backpressure_on_owr_changes_cycles_not_bytes(name):
    config = CONFIGS[name]
    rng = random.Random(7)
    n = config.entries("pbuf")
    pbuf = np.concatenate([random_params(rng, config.pe_cols) for _ in range(n)])
    snapshot = random_snapshot(rng, config.pe_rows, config.pe_cols)
    prog = random_program(rng, config, n)
    nominal = run_stage(config, prog, pbuf, snapshot)
    slow = run_stage(config, prog, pbuf, snapshot, ready_p=0.4, seed=3)
    assert np.array_equal(slow["dram"], nominal["dram"])
    assert np.array_equal(slow["dram"], golden_bytes(config, prog, pbuf, snapshot))
    assert slow["end"] > nominal["end"]
