"""The golden executor follows the v3 ISA literally: GEMM (XNOR / AND, weight planes, snap), the
output path (POSTCFG, POST stream / packed / transposed), VEC, tokens."""

import numpy as np
import pytest

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.compiler import golden
from bebert.config import AccelConfig
from bebert.isa import gemm, halt, load, post, postcfg, sync, vec
from bebert.numerics import requantize
from bebert.vector import Io, Packed, View, VecFn, consts_words, encode_desc, io_word

SMALL = AccelConfig(name="t", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                    pbuf_bytes=1024, dram_bytes_per_cycle=8, dram_latency_cycles=4, queue_depth=4, vec_lanes=4,
                    vec_row_elems=64)


class Image:
    """A DRAM image built by appending bus-aligned blobs."""

    def __init__(self, size=1 << 16):
        self.dram = np.zeros(size, np.uint8)
        self.top = 64

    def put(self, data) -> int:
        data = np.frombuffer(bytes(data), np.uint8) if isinstance(data, (bytes, bytearray)) else \
            np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        at = self.top
        self.dram[at:at + data.size] = data
        self.top = -(-(at + data.size) // 64) * 64
        return at

    def alloc(self, n: int) -> int:
        return self.put(np.zeros(n, np.uint8))


def _linear_setup(img, cfg, x, sign, mult, bias, bits, signed):
    M, K = x.shape
    N = sign.shape[0]
    La = lay.act_layout(M, K, cfg.pe_rows, cfg.xnor_width, bits, signed)
    Lw = lay.weight_layout(N, K, cfg.pe_cols, cfg.xnor_width)
    Lp = lay.param_layout(N, cfg.pe_cols)
    return (La, img.put(lay.pack_activations(x, La)), img.put(lay.pack_weights(sign, Lw)),
            img.put(lay.pack_params(mult, bias, Lp)), Lw)


def test_xnor_gemm_then_stream_post_equals_the_integer_linear():
    cfg, rng, img = SMALL, np.random.default_rng(0), Image()
    M, K, N, bits = 4, 70, 4, 3
    x = rng.integers(-4, 4, (M, K))
    sign = rng.random((N, K)) < 0.5
    mult, bias = rng.integers(1, 1000, N), rng.integers(-500, 500, N)
    La, xa, wa, pa, _ = _linear_setup(img, cfg, x, sign, mult, bias, bits, True)
    kw = La["kwords"]
    lout = lay.stream_layout(M, N, cfg.vec_lanes, 2, signed=True, row_align=cfg.pe_rows)
    ya = img.alloc(lay.nbytes(lout))
    prog = [load("abuf", xa, 0, bits * kw), load("wbuf", wa, 0, kw), load("pbuf", pa, 0, 1),
            gemm(0, 0, kw, kw, bits, True, True, snap=True), postcfg(0, 12, True, 6, elem=1, pitch=lout["pitch"]),
            post(0, ya, N, M), halt()]
    dram = golden.run(cfg, prog, img.dram).dram
    want = requantize(x @ np.where(sign, 1, -1).T, mult, bias, 6, 12, True)
    got = lay.unpack_stream(dram[ya:ya + lay.nbytes(lout)], lout)
    assert np.array_equal(got, want)


def test_and_gemm_sums_every_weight_plane_with_its_significance_and_sign():
    cfg, rng, img = SMALL, np.random.default_rng(1), Image()
    M, K, N, bits, wbits = 4, 32, 4, 4, 3
    x = rng.integers(-8, 8, (M, K))
    y = rng.integers(-4, 4, (N, K))
    La = lay.act_layout(M, K, cfg.pe_rows, cfg.xnor_width, bits, True)
    Lw = lay.wplanes_layout(N, K, cfg.pe_cols, cfg.xnor_width, wbits, True)
    xa, wa = img.put(lay.pack_activations(x, La)), img.put(lay.pack_weight_planes(y, Lw))
    pa = img.put(lay.pack_params(np.ones(N), np.zeros(N), lay.param_layout(N, cfg.pe_cols)))
    lout = lay.stream_layout(M, N, cfg.vec_lanes, 4)
    ya = img.alloc(lay.nbytes(lout))
    kw = La["kwords"]
    wstride = lay.plane_bytes(Lw, cfg.entry_bytes("wbuf")) // cfg.entry_bytes("wbuf")
    prog = [load("abuf", xa, 0, bits * kw), load("wbuf", wa, 0, wbits * wstride), load("pbuf", pa, 0, 1),
            gemm(0, 0, kw, kw, bits, True, True, mode=1, wbits=wbits, wstride=wstride, wsigned=True, snap=True),
            postcfg(0, 0, True, 0, elem=2, pitch=lout["pitch"]), post(0, ya, N, M), halt()]
    dram = golden.run(cfg, prog, img.dram).dram
    assert np.array_equal(lay.unpack_stream(dram[ya:ya + lay.nbytes(lout)], lout), x @ y.T)


def test_packed_post_writes_the_next_gemms_abuf_operand_word_by_word():
    """W / pe_cols consecutive POSTs of one m-tile fill one row-word per row and plane."""
    cfg, rng, img = SMALL, np.random.default_rng(2), Image()
    M, K, N, bits, obits = 4, 32, 40, 2, 3  # N = 40: one full 32-bit word and a partial one
    x = rng.integers(-2, 2, (M, K))
    sign = rng.random((N, K)) < 0.5
    mult, bias = rng.integers(1, 50, N), rng.integers(-50, 50, N)
    La, xa, wa, pa, _ = _linear_setup(img, cfg, x, sign, mult, bias, bits, True)
    Lo = lay.act_layout(M, N, cfg.pe_rows, cfg.xnor_width, obits, True)
    eb = cfg.entry_bytes("abuf")
    ya = img.alloc(lay.nbytes(Lo, eb))
    g = lay.abuf_geometry(Lo, eb)
    kw, C, W = La["kwords"], cfg.pe_cols, cfg.xnor_width
    prog = [load("abuf", xa, 0, bits * kw), postcfg(1, obits, True, 4, pitch=g["pitch"], gstride=g["gstride"],
                                                   group=g["group"])]
    for n in range(-(-N // C)):
        cols = min(C, N - n * C)
        j, pos = divmod(n * C, W)
        last = (n + 1) * C >= min(N, (j + 1) * W)
        prog += [load("wbuf", wa + n * kw * cfg.entry_bytes("wbuf"), 0, kw), load("pbuf", pa + n * C * 8, 0, 1),
                 gemm(0, 0, kw, kw, bits, True, True, snap=True),
                 post(0, ya + j * g["wstep"], cols, M, pos=pos, flush=last)]
    dram = golden.run(cfg, prog + [halt()], img.dram).dram
    want = requantize(x @ np.where(sign, 1, -1).T, mult, bias, 4, obits, True)
    assert np.array_equal(lay.unpack_activations(dram[ya:ya + lay.nbytes(Lo, eb)], Lo), want)


def test_transposed_post_writes_v_transposed_as_and_mode_weight_planes():
    cfg, rng, img = SMALL, np.random.default_rng(3), Image()
    M, K, N, bits, obits = 32, 32, 4, 2, 2  # 32 tokens = one 32-bit token-word from 8 m-tiles
    x = rng.integers(-2, 2, (M, K))
    sign = rng.random((N, K)) < 0.5
    mult, bias = rng.integers(1, 30, N), rng.integers(-30, 30, N)
    La, xa, wa, pa, _ = _linear_setup(img, cfg, x, sign, mult, bias, bits, True)
    Lt = lay.wplanes_layout(N, M, cfg.pe_cols, cfg.xnor_width, obits, True)  # V^T: rows = dims, K = tokens
    eb = cfg.entry_bytes("wbuf")
    ta = img.alloc(lay.nbytes(Lt, eb))
    g = lay.wbuf_geometry(Lt, eb)
    kw, R, ea = La["kwords"], cfg.pe_rows, cfg.entry_bytes("abuf")
    prog = [load("wbuf", wa, 0, kw), load("pbuf", pa, 0, 1),
            postcfg(2, obits, True, 3, pitch=g["pitch"], gstride=g["gstride"], group=g["group"])]
    for m in range(M // R):
        prog += [load("abuf", xa + m * bits * kw * ea, 0, bits * kw), gemm(0, 0, kw, kw, bits, True, True, snap=True),
                 post(0, ta, N, R, pos=m * R, flush=m == M // R - 1)]
    dram = golden.run(cfg, prog + [halt()], img.dram).dram
    want = requantize(x @ np.where(sign, 1, -1).T, mult, bias, 3, obits, True)  # (tokens, dims)
    assert np.array_equal(lay.unpack_weight_planes(dram[ta:ta + lay.nbytes(Lt, eb)], Lt), want.T)


def test_layernorm_with_fused_add_writes_stream_and_requantized_packed_outputs():
    cfg, rng, img = SMALL, np.random.default_rng(4), Image(1 << 18)
    M, H, T = 6, 32, SMALL.vec_lanes
    a, b = rng.integers(-3000, 3000, (M, H)), rng.integers(-3000, 3000, (M, H))
    addc = I.prepare_add(0.01, 0.02, 0.01, out_bits=16)
    lnc = I.prepare_layernorm(0.01, rng.normal(1, 0.1, H), rng.normal(0, 0.1, H), 0.05, out_bits=8,
                              in_bits=16)
    rq = I.prepare_requant(0.05, 0.2, 4, True)
    ls = lay.stream_layout(M, H, T, 2)
    aa, ba = img.put(lay.pack_stream(a, ls)), img.put(lay.pack_stream(b, ls))
    oa = img.alloc(lay.nbytes(ls))
    Lp = lay.act_layout(M, H, cfg.pe_rows, cfg.xnor_width, 4, True)
    eb = cfg.entry_bytes("abuf")
    pa = img.alloc(lay.nbytes(Lp, eb))
    ca = img.put(consts_words(VecFn.ADD, addc))
    la = img.put(consts_words(VecFn.LAYERNORM, lnc, (np.asarray(lnc.mult), np.asarray(lnc.bias))))
    qa = img.put(consts_words(VecFn.REQUANT, rq))
    desc = img.put(encode_desc(VecFn.LAYERNORM, a=View.stream(aa, ls), b=View.stream(ba, ls), add_consts=ca,
                               consts=la, out=View.stream(oa, ls), pout=Packed.of(pa, lay.abuf_geometry(Lp, eb),
                                                                                  True, consts=qa)))
    prog = [vec(VecFn.LAYERNORM, desc, M, H, bits=4, io=io_word(True, True, 2, 2)), halt()]
    dram = golden.run(cfg, prog, img.dram).dram
    y = I.apply_layernorm(I.apply_add(a, b, addc), lnc)
    assert np.array_equal(lay.unpack_stream(dram[oa:oa + lay.nbytes(ls)], ls), y)
    assert np.array_equal(lay.unpack_activations(dram[pa:pa + lay.nbytes(Lp, eb)], Lp),
                          np.clip(I.apply_requant(y, rq), -8, 7))


def test_strict_tokens_refuse_a_pop_before_its_push_and_leftover_tokens():
    prog = [sync("compute", pop=["output"]), sync("output", push=["compute"]), halt()]
    with pytest.raises(golden.GoldenError, match="before any earlier instruction pushed"):
        golden.run(SMALL, prog, np.zeros(64, np.uint8), strict_tokens=True)
    with pytest.raises(golden.GoldenError, match="unbalanced"):
        golden.run(SMALL, [sync("output", push=["compute"]), halt()], np.zeros(64, np.uint8), strict_tokens=True)
    golden.run(SMALL, prog[1:2] + prog[:1] + [halt()], np.zeros(64, np.uint8), strict_tokens=True)


def test_a_post_wider_than_the_array_is_refused():
    with pytest.raises(golden.GoldenError, match="exceed"):
        golden.run(SMALL, [post(0, 0, 5, 4), halt()], np.zeros(1 << 12, np.uint8))


def test_io_stream_flag_is_part_of_the_vec_word():
    assert Io.STREAM_OUT == 1 and io_word(True, False, 2, 2) & 1
