"""The RTL vector unit (hw/vector_unit.py) against the golden semantics `bebert.vector.run_vec`.

Each case is a one-VEC program ([VEC, HALT]) on a random DRAM image: the RTL's final image
must equal `run_vec`'s byte for byte, and its cycle count must be the unit's duration
(`bebert.hw.vector_unit.cycles`) plus the fixed issue overhead of a lone compute word.
"""

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators
from bebert.isa import encode, halt, vec
from bebert.integer_ops import AddConsts, RequantConsts
from bebert.vector import View, VecFn, consts_words, encode_desc, run_vec

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not simulators.installed(), reason="no RTL simulator installed (Verilator or Icarus)")]

SMALL = AccelConfig.from_toml(__import__("pathlib").Path(__file__).resolve().parents[1] / "configs" / "small.toml")
OVERHEAD = 4  # FETCH, DECODE, issue; the cycle after the unit's last: done (a lone compute word)


class Image:
    """A DRAM image with a bump allocator (8-byte aligned)."""

    def __init__(self, size=8192, seed=0):
        self.rng = np.random.default_rng(seed)
        self.dram = self.rng.integers(0, 256, size, dtype=np.uint8)
        self.top = 64

    def put(self, data: bytes | np.ndarray) -> int:
        b = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
        at = self.top
        self.dram[at:at + b.size] = b
        self.top = -(-(at + b.size) // 8) * 8 + 8
        return at

    def alloc(self, n: int) -> int:
        return self.put(self.rng.integers(0, 256, n, dtype=np.uint8))

    def ints(self, shape, lo, hi, dtype="<i4") -> int:
        return self.put(self.rng.integers(lo, hi, shape).astype(dtype))


def run(img: Image, ins, config=SMALL):
    from bebert.hw.vector_unit import cycles
    from bebert.hw.verify import run_rtl

    expected = img.dram.copy()
    run_vec(expected, ins.args)
    res = run_rtl(config, [encode(ins), encode(halt())], img.dram, timeout_cycles=200_000)
    assert res["done"] and not res["error"], res
    diff = np.nonzero(res["dram"] != expected)[0]
    assert diff.size == 0, f"{diff.size} bytes differ, first at 0x{diff[0]:x}"
    a = ins.args
    assert res["cycles"] == OVERHEAD + cycles(a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], config)
    return res


def requant_case(seed, rows=3, cols=5):
    img = Image(seed=seed)
    src = img.ints((rows, cols), -40000, 40000)
    out = img.alloc(rows * cols * 2)
    k = img.put(consts_words(VecFn.REQUANT, RequantConsts(mult=int(img.rng.integers(-5000, 5000)), shift=9,
                                                          bits=8, signed=True, in_bits=16, scale_in=1.0,
                                                          scale_out=1.0)))
    d = img.put(encode_desc(VecFn.REQUANT, src=View.row_major(src, cols), out=View.row_major(out, cols, elem=2),
                            consts=k))
    return img, vec(VecFn.REQUANT, d, rows, cols)


def test_requant_matches_golden():
    run(*requant_case(1))


def test_add_matches_golden_tiled_and_transposed_views():
    img = Image(seed=2)
    rows, cols = 4, 6
    a = img.ints((2, 1, 4, 4), -300, 300)  # int32 tiles of 4 x 4, 2 row tiles x 2 col tiles
    b = img.ints((cols, rows), -200, 200, "<i2")  # transposed int16
    out = img.alloc(rows * cols)
    k = img.put(consts_words(VecFn.ADD, AddConsts(mult1=37, mult2=-11, shift=4, in_bits=8, out_bits=8,
                                                  out_signed=True, scale1=1.0, scale2=1.0, out_scale=1.0)))
    va = View.tiles(a, 8, 4, 4)
    vb = View.row_major(b, rows, elem=2).transposed()
    d = img.put(encode_desc(VecFn.ADD, a=va, b=vb, out=View.row_major(out, cols, elem=1), consts=k))
    run(img, vec(VecFn.ADD, d, rows, cols))


def test_lut_matches_golden():
    img = Image(seed=3)
    rows, cols = 2, 7
    src = img.ints((rows, cols), -8, 8, "<i1")
    table = img.ints((16,), -1000, 1000)
    out = img.alloc(rows * cols * 4)
    d = img.put(encode_desc(VecFn.LUT, src=View.row_major(src, cols, elem=1), out=View.row_major(out, cols),
                            table=table, offset=8, size=16))
    run(img, vec(VecFn.LUT, d, rows, cols))


def test_dot_matches_golden():
    img = Image(seed=4)
    rows, cols, n = 2, 5, 3
    src = img.ints((rows, cols), -100, 100)
    w = img.ints((n, cols), -50, 50, "<i2")
    bias = img.ints((n,), -10**9, 10**9, "<i8")
    out = img.alloc(rows * n * 8)
    d = img.put(encode_desc(VecFn.DOT, src=View.row_major(src, cols), weight=View.row_major(w, cols, elem=2),
                            bias=bias, out=View.row_major(out, n, elem=8)))
    run(img, vec(VecFn.DOT, d, rows, cols, aux=n))


def test_combine_matches_golden():
    img = Image(seed=5)
    rows, cols, members = 1, 3, 2
    ins = [img.ints((rows, cols), -10**6, 10**6, "<i8") for _ in range(members)]
    wts = img.ints((members,), -100, 100, "<i8")
    out = img.alloc(rows * cols * 8)
    d = img.put(encode_desc(VecFn.COMBINE, members=members, out=View.row_major(out, cols, elem=8),
                            inputs=[View.row_major(i, cols, elem=8) for i in ins], weights=wts))
    run(img, vec(VecFn.COMBINE, d, rows, cols))


def test_embed_dense_and_binary_tables():
    img = Image(seed=6)
    rows, cols, vocab = 3, 10, 5
    ids = img.ints((rows,), 0, vocab)
    types = img.ints((rows,), 0, 2)
    word = img.ints((vocab, cols), -100, 100, "<i2")
    signs = img.alloc(rows * 2)  # binary position table: 2 bytes per row
    pairs = img.ints((rows, 2), -50, 50)
    tt = img.ints((2, cols), -20, 20, "<i1")
    out = img.alloc(rows * cols * 4)
    d = img.put(encode_desc(VecFn.EMBED, ids=View.row_major(ids, 1), types=View.row_major(types, 1),
                            word=(0, word, 2 * cols, vocab, 2, 0), position=(1, signs, 2, rows, 0, pairs),
                            token_type=(0, tt, cols, 2, 1, 0), out=View.row_major(out, cols)))
    run(img, vec(VecFn.EMBED, d, rows, cols))


# -- random instructions ----------------------------------------------------------------------
def _random_view(img: Image, rows: int, cols: int, rng, *, elems=(1, 2, 4, 8), data=True, sat=False) -> View:
    """A random window form onto fresh random data: row-major, transposed or POST tiles."""
    elem = int(rng.choice(elems))
    kind = int(rng.integers(3))
    if kind == 2 and elem == 4:
        t = int(rng.choice([2, 4]))
        base = img.alloc(((rows + t) // t * t) * ((cols + t) // t * t) * 4)
        return View.tiles(base, cols, t, t)
    if kind == 1:
        base = img.alloc(rows * cols * elem)
        return View.row_major(base, rows, elem=elem, signed=bool(rng.integers(2))).transposed()
    base = img.alloc((rows + 1) * (cols + 2) * elem)
    v = View.row_major(base, cols + 2, elem=elem, signed=bool(rng.integers(2)),
                       sat=int(rng.integers(2, 12)) if sat else 0)
    return v.shifted(r0=int(rng.integers(2)), c0=int(rng.integers(3)))


def random_vec(img: Image, rng):
    """One random legal VEC of a kernel the unit runs, with its descriptor and data in `img`."""
    fn = VecFn(int(rng.choice(list(VecFn))))
    rows, cols = int(rng.integers(1, 4)), int(rng.integers(2, 7))
    out = _random_view(img, rows, cols, rng)
    if fn == VecFn.REQUANT:
        k = img.put(consts_words(fn, RequantConsts(int(rng.integers(-3000, 3000)), int(rng.integers(0, 12)),
                                                   int(rng.choice([0, 1, 4, 8, 16])), bool(rng.integers(2)),
                                                   int(rng.choice([8, 16, 32])), 1.0, 1.0)))
        d = encode_desc(fn, src=_random_view(img, rows, cols, rng, sat=True), out=out, consts=k)
    elif fn == VecFn.ADD:
        k = img.put(consts_words(fn, AddConsts(int(rng.integers(-500, 500)), int(rng.integers(-500, 500)),
                                               int(rng.integers(0, 10)), int(rng.choice([4, 8, 16])),
                                               int(rng.choice([0, 8, 16])), bool(rng.integers(2)), 1.0, 1.0, 1.0)))
        d = encode_desc(fn, a=_random_view(img, rows, cols, rng), b=_random_view(img, rows, cols, rng), out=out,
                        consts=k)
    elif fn == VecFn.GELU:
        from bebert.integer_ops import prepare_gelu
        k = img.put(consts_words(fn, prepare_gelu(float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.01, 0.2)),
                                                  int(rng.choice([4, 8])), bool(rng.integers(2)))))
        d = encode_desc(fn, src=_random_view(img, rows, cols, rng, sat=True), out=out, consts=k)
    elif fn == VecFn.LAYERNORM:
        from bebert.integer_ops import prepare_layernorm
        c = prepare_layernorm(float(rng.uniform(0.002, 0.05)), rng.uniform(0.5, 1.5, cols), rng.uniform(-0.3, 0.3, cols),
                              float(rng.uniform(0.02, 0.1)), int(rng.choice([4, 8])), bool(rng.integers(2)))
        k = img.put(consts_words(fn, c, extra=(c.mult, c.bias)))
        d = encode_desc(fn, src=_random_view(img, rows, cols, rng, sat=True), out=out, consts=k)
    elif fn == VecFn.SOFTMAX:
        from bebert.integer_ops import prepare_softmax
        mask = View(base=0) if rng.integers(2) else View.row_major(img.ints((1, cols), 0, 2, "<i1"), 0, elem=1)
        k = img.put(consts_words(fn, prepare_softmax(float(rng.uniform(0.005, 0.05)), int(rng.choice([4, 8])))))
        d = encode_desc(fn, src=_random_view(img, rows, cols, rng), mask=mask, out=out, consts=k)
    elif fn in (VecFn.PACK_A, VecFn.PACK_W):
        bits = int(rng.integers(1, 5))
        src = _random_view(img, rows, cols, rng, elems=(1, 2, 4))
        if fn == VecFn.PACK_A:
            signed = bool(rng.integers(2))
            k = img.put(consts_words(fn, RequantConsts(int(rng.integers(1, 9)), int(rng.integers(0, 4)), bits,
                                                       signed, 16, 1.0, 1.0))) if rng.integers(2) else 0
            d = encode_desc(fn, src=src, out=img.alloc(bits * 16), consts=k, array_rows=4, width=32,
                            signed=int(signed), chunk=0)
        else:
            d = encode_desc(fn, src=src, out=img.alloc(bits * 16), array_cols=4, width=32, plane_bytes=16)
        return vec(fn, img.put(d), rows, cols, bits=bits)
    elif fn == VecFn.LUT:
        src = img.ints((rows, cols), -4, 4, "<i1")
        d = encode_desc(fn, src=View.row_major(src, cols, elem=1), out=out, table=img.ints((8,), -9999, 9999),
                        offset=4, size=8)
    elif fn == VecFn.DOT:
        n = int(rng.integers(1, 4))
        out = _random_view(img, rows, n, rng)
        d = encode_desc(fn, src=_random_view(img, rows, cols, rng), weight=_random_view(img, n, cols, rng),
                        bias=img.ints((n,), -10**6, 10**6, "<i8"), out=out)
        return vec(fn, img.put(d), rows, cols, aux=n)
    elif fn == VecFn.COMBINE:
        mem = int(rng.integers(1, 5))
        d = encode_desc(fn, members=mem, out=out, inputs=[_random_view(img, rows, cols, rng) for _ in range(mem)],
                        weights=img.ints((mem,), -50, 50, "<i8"))
    else:
        vocab = 4
        tables = []
        for t, n in ((0, vocab), (1, rows), (2, 2)):
            if rng.integers(2):
                e = int(rng.choice([1, 2, 4]))
                tables.append((0, img.ints((n, cols), -60, 60, f"<i{e}"), cols * e, n, e, 0))
            else:
                tables.append((1, img.alloc(n * 2), 2, n, 0, img.ints((n, 2), -60, 60)))
        d = encode_desc(fn, ids=View.row_major(img.ints((rows,), 0, vocab), 1),
                        types=View.row_major(img.ints((rows,), 0, 2), 1), word=tables[0], position=tables[1],
                        token_type=tables[2], out=out)
    return vec(fn, img.put(d), rows, cols)


@pytest.mark.parametrize("seed", range(3))
def test_random_vec_programs_match_golden_and_cycles(seed):
    """Four random VECs back to back: final image == run_vec applied in order; each VEC
    occupies the compute stage for its `cycles` plus one idle cycle before the next issue."""
    from bebert.hw.vector_unit import cycles
    from bebert.hw.verify import run_rtl

    rng = np.random.default_rng(100 + seed)
    img = Image(size=16384, seed=seed)
    prog = [random_vec(img, rng) for _ in range(4)]
    expected = img.dram.copy()
    for ins in prog:
        run_vec(expected, ins.args)
    res = run_rtl(SMALL, [encode(i) for i in prog] + [encode(halt())], img.dram, timeout_cycles=500_000)
    assert res["done"] and not res["error"], res
    diff = np.nonzero(res["dram"] != expected)[0]
    assert diff.size == 0, (f"{diff.size} bytes differ, first at 0x{diff[0]:x}", [i.args for i in prog])
    want = OVERHEAD - 1 + sum(1 + cycles(i.fn, i.rows, i.cols, i.bits, i.aux, SMALL) for i in prog)
    assert res["cycles"] == want, [i.args for i in prog]


def test_malformed_descriptor_sets_vec_fault():
    """A COMBINE with 0 members (the golden raises VecError): `error` with VEC_FAULT, the
    instruction ends at once and the machine finishes normally."""
    from bebert.hw import ErrorCode
    from bebert.hw.verify import run_rtl

    img = Image(seed=9)
    out = img.alloc(64)
    d = img.put(encode_desc(VecFn.COMBINE, members=0, out=View.row_major(out, 2, elem=8), inputs=[], weights=0)
                + bytes(200))
    res = run_rtl(SMALL, [encode(vec(VecFn.COMBINE, d, 1, 2)), encode(halt())], img.dram)
    assert res["done"] and res["error"] and res["error_code"] == ErrorCode.VEC_FAULT
    assert np.array_equal(res["dram"], img.dram)  # nothing written


def test_gelu_matches_golden():
    from bebert.integer_ops import prepare_gelu

    img = Image(seed=7)
    rows, cols = 2, 9
    src = img.ints((rows, cols), -128, 128, "<i1")
    out = img.alloc(rows * cols)
    k = img.put(consts_words(VecFn.GELU, prepare_gelu(0.05, 0.04, 8, True)))
    d = img.put(encode_desc(VecFn.GELU, src=View.row_major(src, cols, elem=1), out=View.row_major(out, cols, elem=1),
                            consts=k))
    run(img, vec(VecFn.GELU, d, rows, cols))


def test_layernorm_matches_golden():
    from bebert.integer_ops import prepare_layernorm

    img = Image(seed=8)
    rows, cols = 2, 6
    src = img.ints((rows, cols), -3000, 3000)
    out = img.alloc(rows * cols)
    rng = np.random.default_rng(8)
    c = prepare_layernorm(0.01, rng.uniform(0.5, 1.5, cols), rng.uniform(-0.2, 0.2, cols), 0.05)
    k = img.put(consts_words(VecFn.LAYERNORM, c, extra=(c.mult, c.bias)))
    d = img.put(encode_desc(VecFn.LAYERNORM, src=View.row_major(src, cols), out=View.row_major(out, cols, elem=1),
                            consts=k))
    run(img, vec(VecFn.LAYERNORM, d, rows, cols))


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "mask"])
def test_softmax_matches_golden(masked):
    from bebert.integer_ops import prepare_softmax

    img = Image(seed=9)
    rows, cols = 2, 5
    src = img.ints((rows, cols), -2000, 2000)
    mask = View.row_major(img.ints((1, cols), 0, 2, "<i1"), 0, elem=1) if masked else View(base=0)
    out = img.alloc(rows * cols)
    k = img.put(consts_words(VecFn.SOFTMAX, prepare_softmax(0.01)))
    d = img.put(encode_desc(VecFn.SOFTMAX, src=View.row_major(src, cols), mask=mask,
                            out=View.row_major(out, cols, elem=1, signed=False), consts=k))
    run(img, vec(VecFn.SOFTMAX, d, rows, cols))


@pytest.mark.parametrize("requant,signed,chunk", [(False, True, 0), (True, False, 1)], ids=["plain", "requant_chunked"])
def test_pack_a_matches_golden(requant, signed, chunk):
    img = Image(seed=10, size=16384)
    rows, cols, bits = 5, 40, 2  # 2 m-tiles of 4 rows (padded), 2 words of 32 (padded)
    src = img.ints((rows, cols), -3, 4)
    out = img.alloc(2 * bits * 2 * 16)
    k = img.put(consts_words(VecFn.PACK_A, RequantConsts(3, 1, 4, signed, 8, 1.0, 1.0))) if requant else 0
    d = img.put(encode_desc(VecFn.PACK_A, src=View.row_major(src, cols), out=out, consts=k, array_rows=4, width=32,
                            signed=int(signed), chunk=chunk))
    run(img, vec(VecFn.PACK_A, d, rows, cols, bits=bits))


def test_pack_w_matches_golden():
    img = Image(seed=11, size=16384)
    rows, cols, bits = 6, 33, 3  # 2 n-tiles of 4 (padded), 2 words of 32 (padded)
    src = img.ints((rows, cols), -4, 4, "<i1")
    plane = 2 * 2 * 16
    out = img.alloc(bits * plane)
    d = img.put(encode_desc(VecFn.PACK_W, src=View.row_major(src, cols, elem=1), out=out, array_cols=4, width=32,
                            plane_bytes=plane))
    run(img, vec(VecFn.PACK_W, d, rows, cols, bits=bits))


def test_compiler_refuses_rows_longer_than_the_row_memory():
    """LAYERNORM / SOFTMAX rows live in the unit's row memories: a longer row is one CompileError."""
    from bebert.compiler import CompileError, compile_model

    with pytest.raises(CompileError, match="exceeds the vector unit's row memory") as e:
        compile_model("synthetic:tiny,members=1", AccelConfig(vec_row_elems=32))  # hidden 64
    assert "\n" not in str(e.value)


# -- the read streamer ------------------------------------------------------------------------
STREAMED = (VecFn.ADD, VecFn.REQUANT, VecFn.LAYERNORM, VecFn.SOFTMAX, VecFn.GELU, VecFn.PACK_A, VecFn.PACK_W)


def _streamed_cases(seed: int, kinds=STREAMED, n_each: int = 1):
    """Random VECs of the streamed kernels `kinds`, `n_each` of each, deterministic."""
    rng, got, i = np.random.default_rng(seed), {}, 0
    while any(got.get(f, 0) < n_each for f in kinds):
        img = Image(seed=seed * 1000 + i)
        i += 1
        ins = random_vec(img, rng)
        f = VecFn(ins.args["fn"])
        if f in kinds and got.get(f, 0) < n_each:
            got[f] = got.get(f, 0) + 1
            yield img, ins


@pytest.mark.parametrize("bpb,latency", [(2, 7), pytest.param(1, 5, marks=pytest.mark.slow)], ids=["NB4", "NB8"])
def test_streamed_kernels_keep_exact_timing_on_narrow_buses(bpb, latency):
    """Several beats per element (NB = 4, 8): the element loops are padded so that the
    streamer keeps up, and the duration is still exactly `vec_cycles`."""
    import dataclasses
    config = dataclasses.replace(SMALL, dram_bytes_per_cycle=bpb, dram_latency_cycles=latency)
    for img, ins in _streamed_cases(bpb):
        run(img, ins, config)


def test_streamed_kernels_under_backpressure():
    """A slow memory (requests refused, beats late): the same bytes, in more cycles."""
    from bebert.hw.verify import run_rtl

    kinds = (VecFn.ADD, VecFn.SOFTMAX, VecFn.LAYERNORM, VecFn.PACK_W)
    for k, (img, ins) in enumerate(_streamed_cases(7, kinds)):
        expected = img.dram.copy()
        run_vec(expected, ins.args)
        res = run_rtl(SMALL, [encode(ins), encode(halt())], img.dram, stall=0.3, seed=k, timeout_cycles=400_000)
        assert res["done"] and not res["error"], res
        assert np.array_equal(res["dram"], expected), VecFn(ins.args["fn"]).name
