"""The vector unit's arithmetic equals `bebert.integer_ops` (through `bebert.vector.run_vec`) bit
for bit: the narrow POST, the per-row divider and square root, and the tile engine's lanes on
every tile kernel, in Amaranth's simulator on seeded random data and constants.

The tile engine runs alone here (tests/tile_bench.py): its columns come from the DRAM image
the golden executor reads, its results are compared with the bytes the golden executor
writes (stream elements, packed planes), rows past `rows` excepted. Its settings come from
`bebert.hw.vec.settings` (the Python model of the unit's setup, itself held to the hardware
in tests/test_hw_vector.py).
"""

from __future__ import annotations

import math
import random

import pytest
from amaranth.sim import Simulator

from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.hw.vec.arith import Post, RowDivider
from bebert.hw.vec.settings import post_vals, obits_range, tile_settings
from bebert.vector import VecFn, decode_desc, io_fields
from tile_bench import TileBench
from vec_cases import tile_case
from vec_sim import post_ref, run_pipeline

TINY = AccelConfig(name="tiny", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                   pbuf_bytes=1024, dram_bytes_per_cycle=8, dram_latency_cycles=4, queue_depth=4, vec_lanes=4,
                   vec_row_elems=64)


# -- the POST and the divider ------------------------------------------------------------------
@pytest.mark.parametrize("k", [33, 9])
def test_post_rounds_and_clamps_like_requantize(k):
    rng = random.Random(k)
    for trial in range(30):
        s = rng.choice([0, 1, 2, 5, 17, 31, 40, 62, 63, rng.randrange(64)])
        obits = rng.choice([0, 1, 2, 8, 16, 31, 32] if k == 33 else [1, 2, 3, 8])
        osig = rng.random() < 0.5 or obits == 0
        cfg = {f"cfg.{n}": x for n, x in post_vals(k, s, obits_range(obits, osig)).items()}
        vecs, refs = [], []
        for _ in range(30):
            v = rng.choice([rng.getrandbits(63) - (1 << 62), rng.getrandbits(rng.randrange(1, 63)) * rng.choice([1, -1]),
                            0, -1, (1 << 62) - 1, -(1 << 62), max(min(rng.randrange(-1000, 1000) << s, (1 << 63) - 1),
                                                                   -(1 << 63))])
            vecs.append({"v": v, **cfg})
            refs.append(post_ref(v, s, obits, osig))
        for g, r in zip(run_pipeline(Post(k), Post.LATENCY, vecs, ["y"]), refs):
            y = g["y"]
            if k == 33:
                y = ((y + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            assert y == r


def test_row_divider_gives_the_two_divisions_and_the_square_root_in_fixed_cycles():
    rng = random.Random(5)
    dut = RowDivider()

    async def bench(ctx):
        for trial in range(80):
            mode = trial % 2
            if mode == 0:
                n = rng.choice([0, 1, 2, 3, rng.getrandbits(62), (1 << 62) - 1, rng.getrandbits(rng.randrange(1, 62))])
                den, num, ref = 0, 0, (1 << 60) // max(math.isqrt(n), 1)
            else:
                n, den = 0, rng.choice([rng.getrandbits(46) | (1 << 27), rng.getrandbits(rng.randrange(28, 46)) | (1 << 27)])
                num = rng.getrandbits(61)
                while num // den >= 1 << 32:
                    num >>= 1
                ref = num // den
            for name, v in (("start", 1), ("mode", mode), ("n", n), ("den", den), ("num", num)):
                ctx.set(getattr(dut, name), v)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for _ in range(RowDivider.cycles(mode)):
                await ctx.tick()
            assert ctx.get(dut.quot) == ref

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# -- the tile engine against run_vec ------------------------------------------------------------
def _consts(case):
    cs = dict(case.consts)
    cs.pop("ln_params", None)
    return cs


def _column_words(dram, view, tiles, cols, T, e):
    out = []
    for t in range(tiles):
        base = view.base + t * view.s_rt
        out.append([int.from_bytes(dram[base + c * T * e:base + (c + 1) * T * e].tobytes(), "little")
                    for c in range(cols)])
    return out


def run_engine(case, accept: float = 1.0, ready: float = 1.0, seed: int = 0) -> TileBench:
    cfg, a = case.config, case.args
    T = cfg.vec_lanes
    d = decode_desc(case.dram, a["fn"], a["desc"])
    tc, lc = tile_settings(a, d, _consts(case), cfg)
    _, _, ein, _ = io_fields(a["io"])
    tiles = -(-a["rows"] // T)
    src = d.get("a", d.get("src"))
    cols_a = _column_words(case.dram, src, tiles, a["cols"], T, ein)
    cols_b = _column_words(case.dram, d["b"], tiles, a["cols"], T, ein) if tc["two"] else None
    params = {}
    if "ln_params" in case.consts:
        params["mult"], params["bias"] = case.consts["ln_params"]
    if tc["masked"]:
        mv = d["mask"]
        params["mask"] = [int(case.dram[mv.base + 4 * c:mv.base + 4 * c + 4].view("<i4")[0] != 0) for c in range(a["cols"])]
    if tc["kind"] in (3, 4):   # LAYERNORM / SOFTMAX: the engine reads each tile's columns once per tile
        pass
    return TileBench(cfg, tc, lc, cols_a, cols_b, params, accept=accept, ready=ready, seed=seed).run()


def check_engine(case, bench: TileBench) -> None:
    """Every written stream element and packed bit of the engine's columns equals run_vec's."""
    cfg, a = case.config, case.args
    T, W = cfg.vec_lanes, cfg.xnor_width
    gold = case.golden()
    stream_out, _, _, eout = io_fields(a["io"])
    got = {(tile, col): (ys, code) for _, tile, col, ys, code in bench.got}
    tiles = -(-a["rows"] // T)
    assert len(got) == tiles * a["cols"] == len(bench.got)
    if stream_out:
        ov = case.views["out"]
        for (tile, col), (ys, _) in got.items():
            for lane in range(T):
                r = tile * T + lane
                if r >= a["rows"]:
                    continue
                at = ov.base + tile * ov.s_rt + col * T * eout + lane * eout
                want = int.from_bytes(gold[at:at + eout].tobytes(), "little")
                val = ys[lane] if eout <= 4 else (ys[lane] | (((1 << 32) - 1) << 32 if ys[lane] >> 31 and ov.signed else 0))
                assert val & ((1 << (8 * eout)) - 1) == want, (tile, col, lane)
    if a["bits"]:
        p, L = case.packed
        planes = 1 if p.pm1 else a["bits"]
        words = lay.unpack_activations(gold[p.base:p.base + lay.nbytes(L, L["rows"] * W // 8)], L) if False else None
        del words
        for (tile, col), (_, code) in got.items():
            for lane in range(T):
                r = tile * T + lane
                if r >= a["rows"]:
                    continue
                j, i = divmod(col, W)
                n = min(W, a["cols"] - j * W)
                bit = W - n + i
                for pl in range(planes):
                    at = p.base + (r // p.group) * p.gstride + (r % p.group) * W // 8 + pl * p.pitch + j * p.wstep
                    word = int.from_bytes(gold[at:at + W // 8].tobytes(), "little")
                    assert (code[lane] >> pl) & 1 == (word >> bit) & 1, (tile, col, lane, pl)


KERNELS = [VecFn.REQUANT, VecFn.ADD, VecFn.GELU, VecFn.LAYERNORM, VecFn.SOFTMAX]


@pytest.mark.parametrize("fn", KERNELS, ids=lambda f: f.name)
def test_tile_engine_matches_run_vec_on_random_cases(fn):
    for seed in range(6):
        case = tile_case(TINY, fn, 100 * int(fn) + seed)
        check_engine(case, run_engine(case))


@pytest.mark.parametrize("fn", [VecFn.LAYERNORM, VecFn.SOFTMAX], ids=lambda f: f.name)
def test_row_kernels_with_and_without_second_input_and_packed_requantize(fn):
    for seed, (second, rq) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        case = tile_case(TINY, fn, 7000 + seed, second=second, pack_rq=rq, bits=4 if rq else None)
        check_engine(case, run_engine(case))


@pytest.mark.parametrize("fn", KERNELS, ids=lambda f: f.name)
def test_tile_engine_keeps_its_results_when_the_writer_and_reader_stall(fn):
    case = tile_case(TINY, fn, 900 + int(fn), bits=2)
    check_engine(case, run_engine(case, accept=0.6, ready=0.7, seed=3))
