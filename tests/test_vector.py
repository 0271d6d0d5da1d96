"""The vector unit's descriptors and reference semantics: every kernel on DRAM equals the integer
kernels of bebert/integer_ops.py (and bebert/layout.py for the packing kernels)."""

from __future__ import annotations

import numpy as np
import pytest

from bebert import layout as lay
from bebert import integer_ops as I
from bebert.vector import (VIEW_WORDS, VecError, VecFn, View, consts_words, decode_desc, encode_desc,
                           read_view, run_vec, write_view)


class Dram:
    """A DRAM image with a bump allocator, for building one VEC by hand."""

    def __init__(self, size: int = 1 << 20):
        self.mem = np.zeros(size, np.uint8)
        self.top = 64

    def put(self, data: bytes | np.ndarray, align: int = 8) -> int:
        b = np.frombuffer(bytes(data), np.uint8) if isinstance(data, (bytes, bytearray)) else \
            np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        at = -(-self.top // align) * align
        self.mem[at:at + b.size] = b
        self.top = at + b.size
        return at

    def tensor(self, x: np.ndarray, elem: int = 4) -> View:
        x = np.asarray(x)
        at = self.put(x.astype(f"<i{elem}"))
        return View.row_major(at, x.shape[1], elem)

    def empty(self, rows: int, cols: int, elem: int = 4) -> View:
        return View.row_major(self.put(np.zeros(rows * cols * elem, np.uint8)), cols, elem)

    def run(self, fn: VecFn, rows: int, cols: int, bits: int = 0, aux: int = 0, **fields) -> None:
        desc = self.put(encode_desc(fn, **fields), align=4)
        run_vec(self.mem, {"fn": int(fn), "bits": bits, "desc": desc, "rows": rows, "cols": cols, "aux": aux})


def test_view_addresses_tiles_transpose_and_slices():
    d = Dram()
    y = np.arange(32 * 48).reshape(32, 48)
    tl = lay.output_layout(32, 48, 16, 16)
    at = d.put(lay.pack_outputs(y, tl))
    v = View.tiles(at, 48, 16, 16)
    assert np.array_equal(read_view(d.mem, v, 32, 48), y)
    assert np.array_equal(read_view(d.mem, v.shifted(c0=8), 32, 20), y[:, 8:28])  # not tile-aligned
    assert np.array_equal(read_view(d.mem, v.transposed(), 48, 32), y.T)
    rm = d.tensor(y)
    split = View(base=rm.base, s_r=rm.s_r, ctile=48, s_ct=0, s_c=4)  # TWS: [x, x] without a copy
    assert np.array_equal(read_view(d.mem, split, 32, 96), np.concatenate([y, y], 1))
    assert View.from_words(v.words()) == v and len(v.words()) == VIEW_WORDS


def test_reads_saturate_and_writes_clamp():
    d = Dram()
    v = d.tensor(np.array([[40000, -40000, 5]]))
    assert read_view(d.mem, v.with_sat(16), 1, 3).tolist() == [[32767, -32768, 5]]
    out = d.empty(1, 2, elem=2)
    write_view(d.mem, out, np.array([[1 << 20, -7]]))
    assert read_view(d.mem, out, 1, 2).tolist() == [[32767, -7]]


def test_descriptor_round_trip():
    d = Dram()
    fields = dict(src=View.row_major(128, 8), out=View.tiles(4096, 8, 4, 4), consts=1024)
    at = d.put(encode_desc(VecFn.GELU, **fields), align=4)
    assert decode_desc(d.mem, VecFn.GELU, at) == fields
    with pytest.raises(VecError, match="aligned"):
        decode_desc(d.mem, VecFn.GELU, at + 2)


def test_softmax_layernorm_gelu_add_requant_equal_integer_ops():
    rng = np.random.default_rng(0)
    d = Dram()
    q = rng.integers(-2000, 2000, (6, 16))
    mask = (rng.random((1, 16)) < 0.7).astype(np.int64)
    sm = I.prepare_softmax(0.02, out_bits=16)
    out = d.empty(6, 16)
    mview = d.tensor(mask)
    mview = View(**{**mview.__dict__, "s_r": 0})
    d.run(VecFn.SOFTMAX, 6, 16, src=d.tensor(q), mask=mview, out=out,
          consts=d.put(consts_words(VecFn.SOFTMAX, sm)))
    assert np.array_equal(read_view(d.mem, out, 6, 16), I.apply_softmax(q, sm, mask=mask.astype(bool)))

    ln = I.prepare_layernorm(0.01, rng.normal(1, 0.1, 16), rng.normal(0, 0.1, 16), 0.002, 16)
    out = d.empty(6, 16)
    d.run(VecFn.LAYERNORM, 6, 16, src=d.tensor(q * 7), out=out,
          consts=d.put(consts_words(VecFn.LAYERNORM, ln, (ln.mult, ln.bias))))
    assert np.array_equal(read_view(d.mem, out, 6, 16), I.apply_layernorm(q * 7, ln))

    ge = I.prepare_gelu(0.003, 0.05, 4, False)
    out = d.empty(6, 16)
    d.run(VecFn.GELU, 6, 16, src=d.tensor(q), out=out, consts=d.put(consts_words(VecFn.GELU, ge)))
    assert np.array_equal(read_view(d.mem, out, 6, 16), I.apply_gelu(q, ge))

    ad = I.prepare_add(0.01, 0.03, 0.02, 16)
    out = d.empty(6, 16)
    d.run(VecFn.ADD, 6, 16, a=d.tensor(q), b=d.tensor(-q // 3), out=out,
          consts=d.put(consts_words(VecFn.ADD, ad)))
    assert np.array_equal(read_view(d.mem, out, 6, 16), I.apply_add(q, -q // 3, ad))

    rq = I.prepare_requant(0.01, 0.3, 4, True)
    out = d.empty(6, 16)
    d.run(VecFn.REQUANT, 6, 16, src=d.tensor(q), out=out, consts=d.put(consts_words(VecFn.REQUANT, rq)))
    assert np.array_equal(read_view(d.mem, out, 6, 16), I.apply_requant(q, rq))


@pytest.mark.parametrize("bits,signed,requant", [(4, True, True), (2, False, False), (8, True, False)])
def test_pack_a_writes_the_abuf_layout(bits, signed, requant):
    rng = np.random.default_rng(bits)
    d = Dram()
    M, K, R, W = 5, 70, 4, 16
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    x = rng.integers(-500, 500, (M, K)) if requant else rng.integers(lo, hi + 1, (M, K))
    rq = I.prepare_requant(0.01, 0.2, bits, signed)
    codes = I.apply_requant(x, rq) if requant else x
    L = lay.act_layout(M, K, R, W, bits, signed, chunk=2)
    out = d.put(np.zeros(lay.nbytes(L, R * W // 8), np.uint8))
    d.run(VecFn.PACK_A, M, K, bits=bits, src=d.tensor(x), out=out,
          consts=d.put(consts_words(VecFn.PACK_A, rq)) if requant else 0, array_rows=R, width=W,
          signed=int(signed), chunk=2)
    assert np.array_equal(d.mem[out:out + lay.nbytes(L, R * W // 8)], lay.pack_activations(codes, L).reshape(-1))


def test_pack_w_writes_one_wbuf_plane_per_bit_from_a_transposed_view():
    rng = np.random.default_rng(1)
    d = Dram()
    v = rng.integers(-8, 8, (20, 6))             # (keys, head_dim): V; PACK_W packs V^T
    L = lay.weight_layout(6, 20, 4, 16)
    nb = lay.nbytes(L, 4 * 16 // 8)
    out = d.put(np.zeros(4 * nb, np.uint8))
    d.run(VecFn.PACK_W, 6, 20, bits=4, src=d.tensor(v).transposed(), out=out, array_cols=4, width=16,
          plane_bytes=nb)
    for p in range(4):
        want = lay.pack_weights(((v.T >> p) & 1).astype(bool), L).reshape(-1)
        assert np.array_equal(d.mem[out + p * nb:out + (p + 1) * nb], want)


def test_embed_lut_dot_combine():
    rng = np.random.default_rng(2)
    d = Dram()
    V, H, T = 30, 16, 5
    signs = rng.random((V, H)) < 0.5
    pairs = rng.integers(-900, 900, (V, 2)).astype("<i4")
    word = np.where(signs, pairs[:, :1], pairs[:, 1:])
    pos = rng.integers(-50, 50, (T, H))
    typ = rng.integers(-50, 50, (2, H))
    stride = -(-H // 8)
    wt = (1, d.put(np.packbits(signs, axis=1, bitorder="little")), stride, V, 4, d.put(pairs))
    pt = (0, d.put(pos.astype("<i4")), H * 4, T, 4, 0)
    tt_t = (0, d.put(typ.astype("<i4")), H * 4, 2, 4, 0)
    ids, tts = rng.integers(0, V, (T, 1)), rng.integers(0, 2, (T, 1))
    out = d.empty(T, H)
    d.run(VecFn.EMBED, T, H, ids=d.tensor(ids), types=d.tensor(tts), word=wt, position=pt,
          token_type=tt_t, out=out)
    assert np.array_equal(read_view(d.mem, out, T, H), word[ids[:, 0]] + pos + typ[tts[:, 0]])

    table = rng.integers(-100, 100, 64).astype("<i4")
    x = rng.integers(-32, 32, (2, 8))
    out = d.empty(2, 8)
    d.run(VecFn.LUT, 2, 8, src=d.tensor(x), out=out, table=d.put(table), offset=32, size=64)
    assert np.array_equal(read_view(d.mem, out, 2, 8), table[x + 32])

    w, b = rng.integers(-32767, 32767, (3, 8)), rng.integers(-1 << 40, 1 << 40, 3)
    out = d.empty(2, 3, elem=8)
    d.run(VecFn.DOT, 2, 8, aux=3, src=d.tensor(x), weight=d.tensor(w), bias=d.put(b.astype("<i8")), out=out)
    assert np.array_equal(read_view(d.mem, out, 2, 3), x @ w.T + b)

    a1, a2 = d.tensor(x), d.tensor(-x, elem=4)
    out = d.empty(2, 8, elem=8)
    d.run(VecFn.COMBINE, 2, 8, members=2, out=out, inputs=[a1, a2], weights=d.put(np.array([3, 5], "<i8")))
    assert np.array_equal(read_view(d.mem, out, 2, 8), -2 * x)


def test_out_of_range_is_vec_error():
    d = Dram(4096)
    with pytest.raises(VecError, match="outside"):
        d.run(VecFn.REQUANT, 4, 4, src=View.row_major(4090, 4), out=View.row_major(64, 4), consts=128)
    with pytest.raises(VecError, match="REQUANT"):  # a zeroed constant block: in_bits = 0
        d.run(VecFn.REQUANT, 4, 4, src=View.row_major(64, 4), out=View.row_major(512, 4), consts=128)
    with pytest.raises(VecError, match="unknown vector function"):
        run_vec(d.mem, {"fn": 99, "bits": 0, "desc": 0, "rows": 1, "cols": 1, "aux": 0})
