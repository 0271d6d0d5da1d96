"""The vector kernels' records and reference semantics (ISA v3): every kernel on DRAM equals the
integer kernels of bebert/integer_ops.py, its stream outputs follow bebert/layout.py's stream
layout and its packed outputs the ABUF / WBUF layouts (partial words at the top)."""

from __future__ import annotations

import numpy as np
import pytest

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.vector import (KERNELS, PACKED_WORDS, VIEW_WORDS, Io, Packed, VecError, VecFn, View, check_vec,
                           consts_words, decode_desc, desc_words, embed_io, encode_desc, io_fields, io_word, read_view,
                           run_vec, write_view)

CFG = AccelConfig(name="t", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                  pbuf_bytes=1024, dram_bytes_per_cycle=8, vec_lanes=4, vec_row_elems=256)


class Dram:
    """A DRAM image with a bump allocator, for building one VEC by hand."""

    def __init__(self, size: int = 1 << 20, config: AccelConfig = CFG):
        self.mem = np.zeros(size, np.uint8)
        self.top = 64
        self.cfg = config

    def put(self, data, align: int = 8) -> int:
        b = np.frombuffer(bytes(data), np.uint8) if isinstance(data, (bytes, bytearray)) else \
            np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        at = -(-self.top // align) * align
        self.mem[at:at + b.size] = b
        self.top = at + b.size
        return at

    def stream(self, x: np.ndarray, elem: int = 2, signed: bool = True) -> tuple[View, dict]:
        L = lay.stream_layout(x.shape[0], x.shape[1], self.cfg.vec_lanes, elem, signed)
        return View.stream(self.put(lay.pack_stream(x, L)), L), L

    def empty_stream(self, rows: int, cols: int, elem: int = 2) -> tuple[View, dict]:
        L = lay.stream_layout(rows, cols, self.cfg.vec_lanes, elem)
        return View.stream(self.put(np.zeros(lay.nbytes(L), np.uint8)), L), L

    def got(self, view_layout) -> np.ndarray:
        v, L = view_layout
        return lay.unpack_stream(self.mem[v.base:v.base + lay.nbytes(L)], L)

    def run(self, fn: VecFn, rows: int, cols: int, bits: int = 0, aux: int = 0, io: int = 0, **fields) -> None:
        desc = self.put(encode_desc(fn, **fields), align=4)
        run_vec(self.mem, {"fn": int(fn), "bits": bits, "desc": desc, "rows": rows, "cols": cols, "aux": aux,
                           "io": io}, self.cfg)


def test_every_kernel_has_one_record_with_a_reference_and_a_descriptor():
    for fn, k in KERNELS.items():
        assert k.fn == fn and k.run is not None and k.engine in ("tile", "scalar")
        assert desc_words(fn, aux=2) > 0
        if k.engine == "scalar":
            assert not k.packs and k.io == Io(0)


def test_io_fields_round_trip():
    for so in (False, True):
        for si in (False, True):
            for ei in (1, 2, 4, 8):
                for eo in (1, 2, 4, 8):
                    assert io_fields(io_word(so, si, ei, eo)) == (so, si, ei, eo)


def test_stream_views_read_the_stream_layout():
    d = Dram()
    x = np.arange(10 * 7).reshape(10, 7) - 30
    v, L = d.stream(x)
    assert v.is_stream(CFG.vec_lanes) and np.array_equal(read_view(d.mem, v, 10, 7), x)
    assert np.array_equal(read_view(d.mem, View.stream(v.base, L, c0=2), 10, 5), x[:, 2:])
    assert View.from_words(v.words()) == v and len(v.words()) == VIEW_WORDS


def test_reads_saturate_and_writes_clamp():
    d = Dram()
    at = d.put(np.array([[40000, -40000, 5]], "<i4"))
    v = View.row_major(at, 3, 4)
    assert read_view(d.mem, View(**{**v.__dict__, "sat": 16}), 1, 3).tolist() == [[32767, -32768, 5]]
    out = View.row_major(d.put(np.zeros(4, np.uint8)), 2, 2)
    write_view(d.mem, out, np.array([[1 << 20, -7]]))
    assert read_view(d.mem, out, 1, 2).tolist() == [[32767, -7]]


def test_descriptor_round_trip():
    d = Dram()
    src, _ = d.empty_stream(8, 8)
    out, _ = d.empty_stream(8, 8)
    pout = Packed(4096, 64, 128, 4, 16, signed=True, consts=2048)
    fields = dict(src=src, consts=1024, out=out, pout=pout)
    at = d.put(encode_desc(VecFn.GELU, **fields), align=4)
    assert decode_desc(d.mem, VecFn.GELU, at) == fields
    assert len(pout.words()) == PACKED_WORDS
    with pytest.raises(VecError, match="aligned"):
        decode_desc(d.mem, VecFn.GELU, at + 2)


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_tile_kernels_equal_integer_ops(lanes):
    cfg = CFG.replace(vec_lanes=lanes)
    rng = np.random.default_rng(lanes)
    d = Dram(config=cfg)
    M, N = 6, 16
    q = rng.integers(-2000, 2000, (M, N))
    mask = (rng.random((1, N)) < 0.7).astype(np.int64)
    sm = I.prepare_softmax(0.02, out_bits=15)  # probabilities in a signed int16 stream
    src, out = d.stream(q), d.empty_stream(M, N)
    d.run(VecFn.SOFTMAX, M, N, io=io_word(True, True), src=src[0], out=out[0],
          mask=View.row_major(d.put(mask.astype("<i4")), N, 4), consts=d.put(consts_words(VecFn.SOFTMAX, sm)))
    assert np.array_equal(d.got(out), I.apply_softmax(q, sm, mask=np.broadcast_to(mask.astype(bool), (M, N))))

    ln = I.prepare_layernorm(0.01, rng.normal(1, 0.1, N), rng.normal(0, 0.1, N), 0.002, 16)
    out = d.empty_stream(M, N)
    d.run(VecFn.LAYERNORM, M, N, io=io_word(True), a=d.stream(q * 7)[0], out=out[0],
          consts=d.put(consts_words(VecFn.LAYERNORM, ln, (ln.mult, ln.bias))))
    assert np.array_equal(d.got(out), I.apply_layernorm(q * 7, ln))

    ge = I.prepare_gelu(0.003, 0.05, 4, False)
    out = d.empty_stream(M, N)
    d.run(VecFn.GELU, M, N, io=io_word(True), src=src[0], out=out[0], consts=d.put(consts_words(VecFn.GELU, ge)))
    assert np.array_equal(d.got(out), I.apply_gelu(q, ge))

    ad = I.prepare_add(0.01, 0.03, 0.02, 16)
    out = d.empty_stream(M, N)
    d.run(VecFn.ADD, M, N, io=io_word(True), a=src[0], b=d.stream(-q // 3)[0], out=out[0],
          consts=d.put(consts_words(VecFn.ADD, ad)))
    assert np.array_equal(d.got(out), I.apply_add(q, -q // 3, ad))

    rq = I.prepare_requant(0.01, 0.3, 4, True)
    out = d.empty_stream(M, N, elem=1)
    d.run(VecFn.REQUANT, M, N, io=io_word(True, False, 2, 1), src=src[0], out=out[0],
          consts=d.put(consts_words(VecFn.REQUANT, rq)))
    assert np.array_equal(d.got(out), I.apply_requant(q, rq))


@pytest.mark.parametrize("bits,signed,requant,pm1", [(4, True, True, False), (2, False, False, False),
                                                     (3, True, False, False), (1, False, False, True)])
def test_packed_outputs_write_the_abuf_layout(bits, signed, requant, pm1):
    rng = np.random.default_rng(bits)
    d = Dram()
    M, K = 5, 70  # 70 = two 32-bit words and a partial one
    lo, hi = (-1, 1) if pm1 else lay.code_range(bits, signed)
    x = rng.integers(-500, 500, (M, K)) if requant else rng.choice([-1, 1], (M, K)) if pm1 else \
        rng.integers(lo, hi + 1, (M, K))
    rq = I.prepare_requant(0.01, 0.2, bits, signed)
    codes = I.apply_requant(x, rq) if requant else x
    L = lay.act_layout(M, K, CFG.pe_rows, CFG.xnor_width, bits, signed, pm1=pm1)
    eb = CFG.entry_bytes("abuf")
    at = d.put(np.zeros(lay.nbytes(L, eb), np.uint8))
    ident = I.prepare_requant(1.0, 1.0, 16, True)
    d.run(VecFn.REQUANT, M, K, bits=bits, io=io_word(False, False, 2, 2), src=d.stream(x)[0],
          consts=d.put(consts_words(VecFn.REQUANT, rq if requant else ident)),
          pout=Packed.of(at, lay.abuf_geometry(L, eb), signed, pm1, 0))  # REQUANT's own constants requantize
    got = lay.unpack_activations(d.mem[at:at + lay.nbytes(L, eb)], L)
    assert np.array_equal(got, codes)


def test_packed_output_writes_wbuf_planes_for_an_and_mode_operand():
    """K_h of Q K^T: rows = key tokens grouped pe_cols per entry, every plane its own tensor."""
    rng = np.random.default_rng(5)
    d = Dram()
    M, K, bits = 8, 40, 3
    k = rng.integers(-4, 4, (M, K))
    L = lay.wplanes_layout(M, K, CFG.pe_cols, CFG.xnor_width, bits, True)
    eb = CFG.entry_bytes("wbuf")
    at = d.put(np.zeros(lay.nbytes(L, eb), np.uint8))
    ident = I.prepare_requant(1.0, 1.0, 16, True)
    d.run(VecFn.REQUANT, M, K, bits=bits, io=io_word(False), src=d.stream(k)[0],
          consts=d.put(consts_words(VecFn.REQUANT, ident)), pout=Packed.of(at, lay.wbuf_geometry(L, eb), True))
    assert np.array_equal(lay.unpack_weight_planes(d.mem[at:at + lay.nbytes(L, eb)], L), k)


def test_layernorm_fuses_the_residual_add():
    rng = np.random.default_rng(6)
    d = Dram()
    M, H = 5, 24
    a, b = rng.integers(-3000, 3000, (M, H)), rng.integers(-3000, 3000, (M, H))
    addc = I.prepare_add(0.01, 0.02, 0.01, out_bits=16)
    ln = I.prepare_layernorm(0.01, rng.normal(1, 0.1, H), rng.normal(0, 0.1, H), 0.05, out_bits=8, in_bits=16)
    out = d.empty_stream(M, H)
    d.run(VecFn.LAYERNORM, M, H, io=io_word(True, True), a=d.stream(a)[0], b=d.stream(b)[0],
          add_consts=d.put(consts_words(VecFn.ADD, addc)), out=out[0],
          consts=d.put(consts_words(VecFn.LAYERNORM, ln, (ln.mult, ln.bias))))
    assert np.array_equal(d.got(out), I.apply_layernorm(I.apply_add(a, b, addc), ln))


def test_scalar_kernels_embed_lut_dot_combine():
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
    out = d.empty_stream(T, H)
    emb = dict(ids=View.row_major(d.put(ids.astype("<i4")), 1), word=wt, position=pt,
               types=View.row_major(d.put(tts.astype("<i4")), 1), token_type=tt_t)
    d.run(VecFn.EMBED, T, H, io=embed_io((1, 0, 0), 2), **emb, out=out[0])
    assert np.array_equal(d.got(out), word[ids[:, 0]] + pos + typ[tts[:, 0]])
    with pytest.raises(VecError, match="io bit 0 says dense"):          # the word states the tables' kinds
        d.run(VecFn.EMBED, T, H, io=embed_io((0, 0, 0), 2), **emb, out=out[0])
    with pytest.raises(VecError, match="stream views"):                 # EMBED writes a stream tensor
        d.run(VecFn.EMBED, T, H, io=embed_io((1, 0, 0), 2), **emb, out=View.row_major(d.put(np.zeros(8 * T * H, np.uint8)), H))

    table = rng.integers(-100, 100, 64).astype("<i4")
    x = rng.integers(-32, 32, (2, 8))
    xs = d.stream(x)
    out = d.empty_stream(2, 8, elem=4)
    d.run(VecFn.LUT, 2, 8, src=xs[0], out=out[0], table=d.put(table), offset=32, size=64)
    assert np.array_equal(d.got(out), table[x + 32])

    w, b = rng.integers(-32767, 32767, (3, 8)), rng.integers(-1 << 40, 1 << 40, 3)
    o = View.row_major(d.put(np.zeros(2 * 3 * 8, np.uint8)), 3, 8)
    d.run(VecFn.DOT, 2, 8, aux=3, src=xs[0], weight=View.row_major(d.put(w.astype("<i4")), 8),
          bias=d.put(b.astype("<i8")), out=o)
    assert np.array_equal(read_view(d.mem, o, 2, 3), x @ w.T + b)

    a1 = View.row_major(d.put(x.astype("<i8")), 8, 8)
    a2 = View.row_major(d.put((-x).astype("<i8")), 8, 8)
    o = View.row_major(d.put(np.zeros(2 * 8 * 8, np.uint8)), 8, 8)
    d.run(VecFn.COMBINE, 2, 8, aux=2, out=o, inputs=[a1, a2], weights=d.put(np.array([3, 5], "<i8")))
    assert np.array_equal(read_view(d.mem, o, 2, 8), -2 * x)


@pytest.mark.parametrize("args,why", [
    ({"fn": 99}, "unknown vector function"),
    ({"fn": 7}, "unknown vector function"),
    ({"fn": 2, "io": 0}, "no output"),
    ({"fn": 2, "io": 2 | 1}, "io flags"),
    ({"fn": 9, "bits": 2}, "bits must be 0"),
    ({"fn": 10}, "aux (output columns)"),
    ({"fn": 9, "io": 1}, "io must be 0"),
    ({"fn": 1, "io": 8}, "EMBED: io bits 3, 6, 7 are reserved"),
])
def test_illegal_vec_words(args, why):
    full = {"fn": 2, "desc": 0, "rows": 1, "cols": 1, "bits": 0, "aux": 0, "io": 1, **args}
    assert why in check_vec(full)


def test_the_tile_engine_refuses_views_that_are_not_streams_and_wrong_element_sizes():
    d = Dram()
    x = np.ones((4, 4), np.int64)
    rq = d.put(consts_words(VecFn.REQUANT, I.prepare_requant(1.0, 1.0, 8, True)))
    rowmajor = View.row_major(d.put(x.astype("<i2")), 4, 2)
    with pytest.raises(VecError, match="stream views"):
        d.run(VecFn.REQUANT, 4, 4, io=io_word(True), src=rowmajor, out=d.empty_stream(4, 4)[0], consts=rq)
    with pytest.raises(VecError, match="io says 4"):
        d.run(VecFn.REQUANT, 4, 4, io=io_word(True, False, 4, 2), src=d.stream(x)[0],
              out=d.empty_stream(4, 4)[0], consts=rq)


def test_out_of_range_is_vec_error():
    d = Dram(4096)
    with pytest.raises(VecError, match="outside"):
        d.run(VecFn.LUT, 4, 4, src=View.row_major(4088, 16), out=View.row_major(64, 16), table=0, offset=0, size=4)
    with pytest.raises(VecError, match="constant block"):  # no constant block at all
        d.run(VecFn.REQUANT, 4, 4, io=io_word(True), src=d.empty_stream(4, 4)[0], out=d.empty_stream(4, 4)[0],
              consts=0)


def test_vote_is_model_vote_on_a_descriptor_with_any_member_count():
    """The vote kernels: `src` shows (rows x members, labels) accumulators through one view (here
    a transposed one), `consts` per member its logit shift, alpha_q and logit mults (VOTE's
    `method` 0 samme / 1 samme.r; VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN); `out` gets every member's
    class (STS-B: score) then the prediction (model/vote.py's)."""
    from bebert.model.vote import MemberLogits, _make, apply_vote
    from bebert.vector import VOTE_KERNEL_OF, vote_consts_words, vote_method_word

    rng = np.random.default_rng(11)
    for members in (1, 3, 17, 64, 100):             # 17, 100: beyond COMBINE's 16 views
        for method, fn in VOTE_KERNEL_OF.items():
            if members > 64 and fn != VecFn.VOTE:
                continue
            labels, rows = (1 if method in ("mean", "median") else 3), 2
            mult = rng.integers(1, 1 << 30, (members, labels))
            shift = rng.integers(30, 62, members)
            alphas = rng.integers(1, 1 << 22, members)
            acc = rng.integers(-(1 << 40), 1 << 40, (rows, members, labels))
            d = Dram()
            src = View(d.put(acc.reshape(-1, labels).T.astype("<i8").copy()), 8, True, s_r=8, s_c=8 * rows * members)
            out = View.row_major(d.put(np.zeros(8 * rows * (members + 1), np.uint8)), 1, 8)
            d.run(fn, rows, labels, aux=members, src=src, out=out,
                  consts=d.put(vote_consts_words(shift, alphas, mult)), **vote_method_word(method))
            got = read_view(d.mem, out, rows * (members + 1), 1).reshape(rows, members + 1)
            vote = _make(method, tuple(int(a) for a in alphas),
                         tuple(MemberLogits(tuple(int(x) for x in m), int(s)) for m, s in zip(mult, shift)))
            preds, pred = apply_vote(vote, [acc[:, i] for i in range(members)])
            assert np.array_equal(got[:, :members], np.stack(preds, 1)) and np.array_equal(got[:, -1], pred)


def test_vote_refuses_what_the_device_cannot_vote():
    from bebert.vector import vote_consts_words

    d = Dram()
    src = View.row_major(d.put(np.zeros(16, "<i8")), 2, 8)
    out = View.row_major(d.put(np.zeros(3, "<i8")), 1, 8)
    ok = {"src": src, "out": out, "consts": d.put(vote_consts_words([1, 2], [1, 1], [[1, 1], [1, 1]]))}
    with pytest.raises(VecError, match="method"):
        d.run(VecFn.VOTE, 1, 2, aux=2, **ok, method=2)      # average / mean / median: kernels of their own
    with pytest.raises(VecError, match="logit shift"):
        d.run(VecFn.VOTE, 1, 2, aux=2, **{**ok, "consts": d.put(vote_consts_words([1, 64], [1, 1], [[1, 1]] * 2))})
    assert "aux (members)" in check_vec({"fn": int(VecFn.VOTE), "desc": 0, "rows": 1, "cols": 2, "bits": 0, "aux": 0,
                                         "io": 0})
    assert check_vec({"fn": int(VecFn.VOTE), "desc": 0, "rows": 1, "cols": 2, "bits": 0, "aux": 65535, "io": 0}) is None
    word = {"desc": 0, "rows": 1, "cols": 1, "bits": 0, "io": 0}
    assert "at most 64" in check_vec({**word, "fn": int(VecFn.VOTE_MEDIAN), "aux": 65})
    assert "one column" in check_vec({**word, "fn": int(VecFn.VOTE_MEAN), "aux": 3, "cols": 2})
    assert check_vec({**word, "fn": int(VecFn.VOTE_AVERAGE), "aux": 64, "cols": 2}) is None
    for alphas in ([1, 1 << 22], [0, 0], [-1, 3]):        # alpha_q in [0, 2^22), a positive sum
        with pytest.raises(VecError, match="alpha_q"):
            d.run(VecFn.VOTE_MEAN, 1, 1, aux=2, src=View.row_major(d.put(np.zeros(2, "<i8")), 1, 8), out=out,
                  consts=d.put(vote_consts_words([1, 2], alphas, [[1], [1]])))
