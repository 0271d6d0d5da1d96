"""The vector unit's arithmetic engines equal `bebert.integer_ops` bit for bit.

Each engine runs in Amaranth's simulator behind real synchronous memories (row engines) or
with a stream of elements (element engines), on seeded random and edge-case inputs, 64-bit
extremes included; its cycle count is asserted against the engine's own formula.
"""

import gc
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, signed
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from bebert.hw.vec.arith import Divider, Isqrt64
from bebert.hw.vec.elem import AddElem, GeluElem, RequantElem
from bebert.hw.vec.layernorm import LayerNormRow
from bebert.hw.vec.softmax import SoftmaxRow
from bebert import integer_ops as I
from bebert.vector import CONST_FIELDS, VecFn

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


class RowHarness(Elaboratable):
    """A row engine wired to its memories: source row, per-column params, mask, output row."""

    def __init__(self, engine, depth):
        self.engine, self.depth = engine, depth
        self.src = Memory(shape=signed(64), depth=depth, init=[])
        self.mult = Memory(shape=signed(64), depth=depth, init=[])
        self.bias = Memory(shape=signed(64), depth=depth, init=[])
        self.mask = Memory(shape=1, depth=depth, init=[])
        self.out = Memory(shape=signed(64), depth=depth, init=[])

    def elaborate(self, platform):
        m = Module()
        e = m.submodules.engine = self.engine
        for name in ("src", "mult", "bias", "mask", "out"):
            m.submodules[name] = getattr(self, name)
        rs, rm, rb, rk = (getattr(self, x).read_port() for x in ("src", "mult", "bias", "mask"))
        wp = self.out.write_port()
        m.d.comb += [rs.addr.eq(e.rd_addr), e.rd_data.eq(rs.data), wp.addr.eq(e.wr_addr),
                     wp.data.eq(e.wr_data), wp.en.eq(e.wr_en)]
        if hasattr(e, "par_addr"):
            m.d.comb += [rm.addr.eq(e.par_addr), rb.addr.eq(e.par_addr),
                         e.par_mult.eq(rm.data), e.par_bias.eq(rb.data)]
        if hasattr(e, "mask_addr"):
            m.d.comb += [rk.addr.eq(e.mask_addr), e.mask_data.eq(rk.data)]
        return m


def run_rows(engine, depth, jobs):
    """Run `jobs` (consts dict, {memory: values}, cols) one after another; returns, per job,
    (output row, cycles from start to done)."""
    h = RowHarness(engine, depth)
    results = []

    async def bench(ctx):
        for consts, mems, cols in jobs:
            for name, vals in mems.items():
                for i, x in enumerate(vals):
                    ctx.set(getattr(h, name).data[i], int(x))
            for name, x in consts.items():
                ctx.set(getattr(engine, name), int(x))
            ctx.set(engine.cols, cols)
            ctx.set(engine.start, 1)
            await ctx.tick()
            ctx.set(engine.start, 0)
            n = 1
            while not ctx.get(engine.done):
                await ctx.tick()
                n += 1
                assert n < 100_000
            await ctx.tick()
            results.append(([ctx.get(h.out.data[i]) for i in range(cols)], n))

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


# -- LayerNorm -----------------------------------------------------------------------------
def ln_job(c: I.LayerNormConsts, q):
    consts = {k: getattr(c, k) for k in LayerNormRow.CONSTS}
    return consts, {"src": q, "mult": c.mult, "bias": c.bias}, c.hidden


def ln_ref(c, q):
    with np.errstate(over="ignore"):
        return I.apply_layernorm(np.asarray(q, np.int64)[None], c)[0].tolist()


def random_ln(rng: random.Random, h: int) -> I.LayerNormConsts:
    in_bits = rng.choice([8, 16, 24, 32])
    return I.prepare_layernorm(scale=10 ** rng.uniform(-4, 0), gamma=[rng.uniform(-2, 2) for _ in range(h)],
                               beta=[rng.uniform(-1, 1) for _ in range(h)], out_scale=10 ** rng.uniform(-2, 0),
                               out_bits=rng.choice([2, 4, 8, 16]), out_signed=rng.random() < 0.8,
                               eps=rng.choice([0.0, 1e-12, 1e-5, 10.0]), in_bits=in_bits,
                               norm_bits=rng.randrange(8, 31))


def random_row(rng: random.Random, h: int, bits: int):
    kind = rng.randrange(5)
    if kind == 0:   # in range
        return [rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(h)]
    if kind == 1:   # 64-bit extremes and beyond the saturation
        return [rng.choice([I64_MIN, I64_MAX, 0, -1, 1, rng.getrandbits(64) - (1 << 63)]) for _ in range(h)]
    if kind == 2:   # constant row: zero variance, eps alone
        return [rng.randrange(-99, 99)] * h
    if kind == 3:   # one outlier
        r = [0] * h
        r[rng.randrange(h)] = rng.choice([I64_MAX, I64_MIN, 1 << (bits - 1)])
        return r
    return [rng.randrange(-4, 4) for _ in range(h)]


def test_layernorm_cycles_formula():
    assert LayerNormRow.cycles(8) == 3 * 8 + 105
    assert LayerNormRow.cycles(768) == 3 * 768 + 105


def test_layernorm_row_matches_apply_layernorm():
    rng = random.Random(1)
    jobs, refs = [], []
    for trial in range(14):
        h = rng.choice([2, 3, 8, 17, 32])
        c = random_ln(rng, h)
        q = random_row(rng, h, c.in_bits)
        jobs.append(ln_job(c, q))
        refs.append(ln_ref(c, q))
    for (out, n), ref, (_, _, cols) in zip(run_rows(LayerNormRow(32), 32, jobs), refs, jobs):
        assert out == ref
        assert n == LayerNormRow.cycles(cols)


def test_layernorm_row_raw_constants_wrap_like_int64():
    """Constants beyond what prepare_layernorm makes (in_bits 64, huge eps, shifts at the
    ends of their ranges): the engine still wraps exactly as numpy's int64 does."""
    rng = random.Random(2)
    jobs, refs = [], []
    for trial in range(10):
        h = rng.choice([2, 5, 16])
        c = I.LayerNormConsts(
            hidden=h, in_bits=rng.choice([1, 2, 33, 63, 64]), d_shift=rng.choice([-63, -20, 0, 5, 40, 63]),
            eps=rng.choice([0, 1, I64_MAX, rng.getrandbits(62)]), norm_bits=rng.choice([0, 8, 30, 63, 100]),
            mult=tuple(rng.getrandbits(64) - (1 << 63) for _ in range(h)),
            bias=tuple(rng.getrandbits(64) - (1 << 63) for _ in range(h)), shift=rng.choice([0, 1, 31, 62, 63]),
            out_bits=rng.choice([0, 1, 2, 8, 32]), out_signed=rng.random() < 0.5, in_scale=1.0, out_scale=1.0)
        q = random_row(rng, h, 32)
        jobs.append(ln_job(c, q))
        refs.append(ln_ref(c, q))
    for (out, n), ref, (_, _, cols) in zip(run_rows(LayerNormRow(16), 16, jobs), refs, jobs):
        assert out == ref
        assert n == LayerNormRow.cycles(cols)


def refused(make, match):
    """`make()` raises ValueError(match), without Amaranth's UnusedElaboratable warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with pytest.raises(ValueError, match=match):
                make()
        finally:
            gc.collect()


def test_layernorm_row_checks_its_size():
    refused(lambda: LayerNormRow(1), "max_cols")


# -- element engines -----------------------------------------------------------------------
def run_stream(engine, consts: dict, inputs: list[dict]):
    """Stream `inputs` (one dict of input values per element, with bubbles between some) into
    an element engine; returns [(tag, out)] in output order and the cycles of each output
    after its input."""
    got, lat = [], []

    async def bench(ctx):
        for name, x in consts.items():
            ctx.set(getattr(engine, name), int(x))
        sent = {}
        cycle = 0
        pending = list(enumerate(inputs))
        rng = random.Random(len(inputs))
        while pending or len(got) < len(inputs):
            if pending and rng.random() < 0.85:
                i, vals = pending.pop(0)
                for name, x in vals.items():
                    ctx.set(getattr(engine, name), int(x))
                ctx.set(engine.tag, i)
                ctx.set(engine.valid, 1)
                sent[i] = cycle
            else:
                ctx.set(engine.valid, 0)
            if ctx.get(engine.out_valid):
                tag = ctx.get(engine.out_tag)
                got.append((tag, ctx.get(engine.out)))
                lat.append(cycle - sent[tag])
            await ctx.tick()
            cycle += 1
            assert cycle < 100_000

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, lat


def check_stream(engine, consts, inputs, ref):
    got, lat = run_stream(engine, consts, inputs)
    assert [t for t, _ in got] == list(range(len(inputs)))
    assert [o for _, o in got] == [int(x) for x in ref]
    assert set(lat) == {engine.LATENCY}


def edge_codes(rng: random.Random, n: int, bits: int = 32) -> list[int]:
    pool = [I64_MIN, I64_MAX, 0, 1, -1, (1 << 31) - 1, -(1 << 31), 1 << 32, -(1 << 40)]
    return [rng.choice(pool) if rng.random() < 0.3 else
            rng.getrandbits(64) - (1 << 63) if rng.random() < 0.2 else
            rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(n)]


@pytest.mark.parametrize("engine, fn", [(LayerNormRow, VecFn.LAYERNORM), (SoftmaxRow, VecFn.SOFTMAX),
                                        (GeluElem, VecFn.GELU), (AddElem, VecFn.ADD), (RequantElem, VecFn.REQUANT)])
def test_constant_ports_are_the_kernels_const_fields(engine, fn):
    """Every constant of the kernel is a port of the same name (LayerNorm's `hidden` is cols)."""
    assert list(engine.CONSTS) == [f for f in CONST_FIELDS[fn] if f != "hidden"]


def test_element_engine_cycles():
    assert RequantElem.cycles(10) == 12 and AddElem.cycles(10) == 12 and GeluElem.cycles(10) == 15


@pytest.mark.parametrize("seed", range(3))
def test_requant_elem_matches_apply_requant(seed):
    rng = random.Random(10 + seed)
    for c in [I.prepare_requant(10 ** rng.uniform(-3, 2), 10 ** rng.uniform(-3, 2), bits=rng.choice([0, 1, 2, 8, 16, 32]),
                                signed=rng.random() < 0.7, in_bits=rng.choice([8, 16, 32])),
              I.RequantConsts(mult=rng.getrandbits(64) - (1 << 63), shift=rng.choice([0, 1, 62, 63]),
                              bits=rng.choice([0, 1, 5, 32]), signed=rng.random() < 0.5,
                              in_bits=rng.choice([1, 2, 33, 64]), scale_in=1.0, scale_out=1.0)]:
        x = edge_codes(rng, 40, min(c.in_bits + 2, 64))
        consts = {k: getattr(c, k) for k in RequantElem.CONSTS}
        with np.errstate(over="ignore"):
            ref = I.apply_requant(np.asarray(x, np.int64), c)
        check_stream(RequantElem(), consts, [{"x": v} for v in x], ref)


@pytest.mark.parametrize("seed", range(3))
def test_add_elem_matches_apply_add(seed):
    rng = random.Random(20 + seed)
    for c in [I.prepare_add(10 ** rng.uniform(-3, 1), 10 ** rng.uniform(-3, 1), out_bits=rng.choice([0, 2, 8, 16, 32]),
                            out_signed=rng.random() < 0.8, in_bits=rng.choice([8, 16, 32])),
              I.AddConsts(mult1=rng.getrandbits(64) - (1 << 63), mult2=rng.choice([1, -1, I64_MIN, I64_MAX]),
                          shift=rng.choice([0, 1, 40, 63]), in_bits=rng.choice([1, 2, 40, 64]),
                          out_bits=rng.choice([0, 1, 3, 32]), out_signed=rng.random() < 0.5,
                          scale1=1.0, scale2=1.0, out_scale=1.0)]:
        a, b = edge_codes(rng, 40, c.in_bits), edge_codes(rng, 40, c.in_bits)
        consts = {k: getattr(c, k) for k in AddElem.CONSTS}
        with np.errstate(over="ignore"):
            ref = I.apply_add(np.asarray(a, np.int64), np.asarray(b, np.int64), c)
        check_stream(AddElem(), consts, [{"a": p, "b": q} for p, q in zip(a, b)], ref)


@pytest.mark.parametrize("seed", range(3))
def test_gelu_elem_matches_apply_gelu(seed):
    rng = random.Random(30 + seed)
    for trial in range(3):
        s = 10 ** rng.uniform(-4, 0)
        c = I.prepare_gelu(s, out_scale=s * 10 ** rng.uniform(-1, 2), out_bits=rng.choice([2, 4, 8, 16]),
                           out_signed=rng.random() < 0.8)
        lim = c.in_clamp + 5
        x = [rng.randrange(-lim, lim) for _ in range(30)] + edge_codes(rng, 10)
        consts = {k: getattr(c, k) for k in GeluElem.CONSTS}
        ref = I.apply_gelu(np.asarray(x, np.int64), c)
        check_stream(GeluElem(), consts, [{"x": v} for v in x], ref)


def test_gelu_elem_raw_constants_wrap_like_int64():
    rng = random.Random(39)
    c = I.GeluConsts(in_clamp=I64_MAX, in_shift=rng.choice([-63, 40]), erf_b=1 << 40, erf_c=(1 << 61) + 12345,
                     mult=rng.getrandbits(64) - (1 << 63), shift=63, out_bits=32, out_signed=False,
                     in_scale=1.0, out_scale=1.0)
    for in_shift in (-63, -5, 0, 17, 63):
        c = I.GeluConsts(**{**c.__dict__, "in_shift": in_shift})
        x = edge_codes(rng, 30)
        consts = {k: getattr(c, k) for k in GeluElem.CONSTS}
        with np.errstate(over="ignore"):
            ref = I.apply_gelu(np.asarray(x, np.int64), c)
        check_stream(GeluElem(), consts, [{"x": v} for v in x], ref)


# -- softmax -------------------------------------------------------------------------------
def sm_job(c: I.SoftmaxConsts, q, mask):
    return {k: getattr(c, k) for k in SoftmaxRow.CONSTS}, {"src": q, "mask": mask}, len(q)


def sm_ref(c, q, mask):
    with np.errstate(over="ignore"):
        return I.apply_softmax(np.asarray(q, np.int64)[None], c, mask=np.asarray(mask, bool)[None])[0].tolist()


def sm_row(rng: random.Random, h: int):
    kind = rng.randrange(4)
    if kind == 0:
        return [rng.randrange(-(1 << 15), 1 << 15) for _ in range(h)]
    if kind == 1:
        return [rng.randrange(-300, 300) for _ in range(h)]
    if kind == 2:
        return [rng.choice([I64_MIN, I64_MAX, 0, -(1 << 31), (1 << 31) - 1]) for _ in range(h)]
    return [rng.getrandbits(64) - (1 << 63) for _ in range(h)]


def sm_mask(rng: random.Random, h: int):
    kind = rng.randrange(4)
    if kind == 0:
        return [1] * h
    if kind == 1:
        return [0] * h                     # nothing left: an all-zero row
    return [int(rng.random() < 0.7) for _ in range(h)]


def test_softmax_cycles_formula():
    assert SoftmaxRow.cycles(16) == 3 * 16 + 76


def test_softmax_row_matches_apply_softmax():
    rng = random.Random(3)
    jobs, refs = [], []
    for trial in range(16):
        h = rng.choice([2, 5, 16, 24])
        c = I.prepare_softmax(10 ** rng.uniform(-4, 1), out_bits=rng.choice([2, 4, 8, 16]))
        q, mask = sm_row(rng, h), sm_mask(rng, h)
        jobs.append(sm_job(c, q, mask))
        refs.append(sm_ref(c, q, mask))
    for (out, n), ref, (_, _, cols) in zip(run_rows(SoftmaxRow(24), 24, jobs), refs, jobs):
        assert out == ref
        assert n == SoftmaxRow.cycles(cols)


def test_softmax_row_raw_constants_wrap_like_int64():
    """Constants no prepare_softmax makes (negative numerator, huge multipliers, shifts at the
    ends of their ranges, out_bits 0 and 1): numpy's int64 semantics all the same."""
    rng = random.Random(4)
    jobs, refs = [], []
    for trial in range(10):
        h = rng.choice([2, 7, 12])
        big = lambda: rng.getrandbits(64) - (1 << 63)
        c = I.SoftmaxConsts(out_bits=rng.choice([0, 1, 2, 32]), in_shift=rng.choice([-63, -3, 0, 9, 63]),
                            t_in_max=rng.choice([big(), I64_MAX, 100]), t_max=rng.choice([big(), I64_MAX, 5000]),
                            ln2=big(), div_mult=big(), div_shift=rng.choice([0, 1, 40, 63]), poly_b=big(),
                            poly_c=big(), recip_num=rng.choice([big(), I64_MIN, -1, I64_MAX]),
                            recip_shift=rng.choice([1, 30, 63]), in_scale=1.0, out_scale=1.0)
        q, mask = sm_row(rng, h), sm_mask(rng, h)
        jobs.append(sm_job(c, q, mask))
        refs.append(sm_ref(c, q, mask))
    for (out, n), ref, (_, _, cols) in zip(run_rows(SoftmaxRow(12), 12, jobs), refs, jobs):
        assert out == ref
        assert n == SoftmaxRow.cycles(cols)


def test_softmax_row_checks_its_size():
    refused(lambda: SoftmaxRow(0), "max_cols")


# -- the iterative blocks ------------------------------------------------------------------
def run_iterative(dut, inputs: list[dict], out: str):
    """Start `dut` once per input dict; returns its `out` port STEPS + 1 cycles after start."""
    got = []

    async def bench(ctx):
        for vals in inputs:
            for name, x in vals.items():
                ctx.set(getattr(dut, name), int(x))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().repeat(dut.STEPS)
            got.append(ctx.get(getattr(dut, out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_isqrt64_is_integer_ops_isqrt():
    rng = random.Random(5)
    ns = [0, 1, 2, 3, 4, 15, 16, 1 << 62, (1 << 62) - 1, I64_MAX, -1, I64_MIN, ((1 << 31) + 5) ** 2 - 1]
    ns += [rng.getrandbits(rng.randrange(1, 64)) for _ in range(30)]
    got = run_iterative(Isqrt64(), [{"n": n} for n in ns], "root")
    assert got == I.isqrt(np.asarray(ns, np.int64)).tolist()


@pytest.mark.parametrize("width", [61, 63])
def test_divider_is_floor_division(width):
    rng = random.Random(width)
    top = (1 << width) - 1
    pairs = [(top, 1), (top, top), (0, 7), (5, top), (1 << 60, 1), (1 << 60, (1 << 32) - 1), (top, (1 << 64) - 1)]
    pairs += [(rng.getrandbits(width), rng.getrandbits(rng.randrange(1, 64)) or 1) for _ in range(30)]
    got = run_iterative(Divider(width), [{"num": a, "den": b} for a, b in pairs], "quot")
    assert got == [a // b for a, b in pairs]


def test_row_engines_at_bert_base_width():
    """A 768-wide row (BERT-base hidden): LayerNorm and softmax equal the reference, cycles
    equal the formula."""
    rng = random.Random(6)
    h = 768
    c = random_ln(rng, h)
    q = [rng.randrange(-(1 << 15), 1 << 15) for _ in range(h)]
    [(out, n)] = run_rows(LayerNormRow(1024), 1024, [ln_job(c, q)])
    assert out == ln_ref(c, q) and n == LayerNormRow.cycles(h) == 2409
    s = I.prepare_softmax(0.02, out_bits=8)
    mask = [int(i < 700) for i in range(h)]
    [(out, n)] = run_rows(SoftmaxRow(1024), 1024, [sm_job(s, q, mask)])
    assert out == sm_ref(s, q, mask) and n == SoftmaxRow.cycles(h) == 2380
