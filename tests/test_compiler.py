"""The compiler: errors, layouts, tiling, DMA shape, double buffering and tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bebert.compiler import (CompileError, TokenError, check_tokens, compile_linear, compile_spec, golden,
                             parse_spec)
from bebert import layout as lay
from bebert.compiler.lower import _fold_pm1
from bebert.config import AccelConfig
from bebert.isa import Op, gemm, halt, load, post, store, sync
from bebert.model.binary_linear import IntegerLinear
from bebert.numerics import requantize

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIGS / "small.toml")
DEFAULT = AccelConfig.from_toml(CONFIGS / "default.toml")


def make_layer(N, K, in_bits=4, in_signed=True, out_bits=8, mult=3, bias=5, shift=2, seed=0):
    rng = np.random.default_rng(seed)
    return IntegerLinear(sign=rng.random((N, K)) < 0.5, mult=np.full(N, mult, np.int32),
                         bias=np.full(N, bias, np.int32), shift=shift, in_bits=in_bits,
                         in_signed=in_signed, out_bits=out_bits, out_signed=True)


def make_input(M, K, in_bits=4, seed=0):
    rng = np.random.default_rng(seed + 1)
    if in_bits == 1:
        return np.where(rng.random((M, K)) < 0.5, -1, 1)
    return rng.integers(-(1 << (in_bits - 1)), 1 << (in_bits - 1), (M, K))


def result(prog):
    return golden.outputs(prog, golden.execute(prog, strict_tokens=True))["y"]


# -- errors --------------------------------------------------------------------------------
def test_unsupported_activation_bits():
    cfg = SMALL.replace(act_bits=(1, 2, 8))
    with pytest.raises(CompileError, match=r"^activation bits 4 not supported by config 'small' "
                                           r"\(act_bits = 1, 2, 8\)$"):
        compile_linear(make_layer(3, 10), make_input(2, 10), cfg)
    with pytest.raises(CompileError, match="activation bits 4 not supported"):
        compile_spec("gemm:2,10,3,4", cfg)


def test_abuf_too_small_for_one_tile():
    cfg = SMALL.replace(abuf_bytes=4 * SMALL.entry_bytes("abuf"))  # 4 entries, 8 planes
    with pytest.raises(CompileError, match=r"activation tile of layer 'q' needs 8 ABUF entries per "
                                           r"k-word \(8 bit-planes\) but config 'small' holds 4"):
        compile_linear(make_layer(3, 10, in_bits=8), make_input(2, 10, 8), cfg, name="q")


@pytest.mark.parametrize("x, msg", [
    (np.zeros((2, 9), np.int64), "shape"),
    (np.full((2, 10), 8), "outside the 4-bit range"),
    (np.zeros((0, 10), np.int64), "shape"),
    (np.full((2, 10), 0.5), "non-integer"),
])
def test_bad_inputs(x, msg):
    with pytest.raises(CompileError, match=msg):
        compile_linear(make_layer(3, 10), x, SMALL)


def test_bad_layers_and_names():
    with pytest.raises(CompileError, match="must hold -1/\\+1"):
        compile_linear(make_layer(3, 10, in_bits=1), np.zeros((2, 10), np.int64), SMALL)
    with pytest.raises(CompileError, match="output bits 9"):
        compile_linear(make_layer(3, 10, out_bits=9), make_input(2, 10), SMALL)
    with pytest.raises(CompileError, match="shift 70"):
        compile_linear(make_layer(3, 10, shift=70), make_input(2, 10), SMALL)
    with pytest.raises(CompileError, match="other than 'x', 'w', 'p'"):
        compile_linear(make_layer(3, 10), make_input(2, 10), SMALL, name="x")


@pytest.mark.parametrize("spec", ["", "gemm", "gemm:", "gemm:1,2,3", "gemm:1,2,3,4,5,6", "gemm:0,2,3,4",
                                  "gemm:a,2,3,4", "gemm:1,2,3,3", "gemm:1,2,3,4,9", "conv:1,2,3,4",
                                  "gemm:1,2,3,-4", "gemm:1,,3,4", "gemm:1,2,3,4x", None])
def test_malformed_specs(spec):
    with pytest.raises(CompileError) as e:
        compile_spec(spec, SMALL)
    assert "\n" not in str(e.value) and "spec" in str(e.value)


def test_spec_parsing_and_meta():
    assert parse_spec("gemm:4,5,6,8") == {"M": 4, "K": 5, "N": 6, "abits": 8, "asigned": True, "obits": 8}
    assert parse_spec(" GEMM: 4, 5, 6, 2u, 0 ")["asigned"] is False
    prog = compile_spec("gemm:4,50,6,2,0", SMALL, seed=5)
    m = prog.meta
    assert (m["kind"], m["M"], m["K"], m["N"], m["in_bits"], m["out_bits"], m["spec"]) == \
           ("gemm", 4, 50, 6, 2, 0, "gemm:4,50,6,2,0")
    assert {t.name: t.role for t in prog.tensors} == {"x": "input", "w": "weight", "p": "param", "y": "output"}
    same = compile_spec("gemm:4,50,6,2,0", SMALL, seed=5)
    other = compile_spec("gemm:4,50,6,2,0", SMALL, seed=6)
    assert np.array_equal(prog.dram, same.dram) and prog.instrs == same.instrs
    assert not np.array_equal(prog.dram, other.dram)


# -- layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize("bits, signed, chunk, pm1", [(1, False, None, True), (2, True, 2, False),
                                                       (4, False, 3, False), (8, True, None, False)])
def test_activation_pack_round_trip(bits, signed, chunk, pm1):
    rng = np.random.default_rng(bits)
    M, K = 7, 75
    L = lay.act_layout(M, K, rows=4, width=8, bits=bits, signed=signed, chunk=chunk, pm1=pm1)
    if pm1:
        x = np.where(rng.random((M, K)) < 0.5, -1, 1)
    else:
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        x = rng.integers(lo, hi + 1, (M, K))
    data = lay.pack_activations(x, L)
    assert data.shape == (2 * bits * 10, 4) and data.size == lay.nbytes(L, 4)
    np.testing.assert_array_equal(lay.unpack(data, L), x)


def test_activation_entry_bits_follow_the_contract():
    """Row r at bits [rW, (r+1)W), bit b = element jW + b, plane p at entry p * kwords + j."""
    L = lay.act_layout(2, 16, rows=2, width=8, bits=2, signed=False)
    x = np.zeros((2, 16), np.int64)
    x[1, 9] = 2  # row 1, word 1, bit 1, plane 1
    data = lay.pack_activations(x, L)
    expect = np.zeros((4, 2), np.uint8)
    expect[1 * 2 + 1, 1] = 0b10  # entry (plane 1, word 1), byte of row 1
    np.testing.assert_array_equal(data, expect)


def test_weight_param_output_round_trips():
    rng = np.random.default_rng(0)
    sign = rng.random((9, 70)) < 0.5
    L = lay.weight_layout(9, 70, cols=4, width=32)
    data = lay.pack_weights(sign, L)
    assert data.shape == (3 * 3, 16)
    np.testing.assert_array_equal(lay.unpack(data, L), sign)
    assert data[0, 0] & 1 == sign[0, 0] and (data[0, 4] & 1) == sign[1, 0]  # column c at bits [cW, (c+1)W)
    mult, bias = rng.integers(-5, 5, 9).astype(np.int32), rng.integers(-5, 5, 9).astype(np.int32)
    P = lay.param_layout(9, 4)
    pm, pb = lay.unpack(lay.pack_params(mult, bias, P), P)
    np.testing.assert_array_equal(pm, mult)
    np.testing.assert_array_equal(pb, bias)
    y = rng.integers(-1000, 1000, (6, 9)).astype(np.int32)
    O = lay.output_layout(6, 9, rows=4, cols=4)
    np.testing.assert_array_equal(lay.unpack(lay.pack_outputs(y, O), O), y)


# -- +-1 activations ---------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [0, 1, 2, 3, 7])
def test_fold_pm1_is_exact(shift):
    rng = np.random.default_rng(shift)
    N, K = 6, 37
    for trial in range(20):
        big = trial % 2 == 1
        hi = 1 << 30 if big else 100
        layer = IntegerLinear(sign=rng.random((N, K)) < 0.5, mult=rng.integers(-hi, hi, N).astype(np.int32),
                              bias=rng.integers(-hi, hi, N).astype(np.int32), shift=shift, in_bits=1,
                              in_signed=True, out_bits=int(rng.choice([0, 1, 4])), out_signed=True)
        S = np.where(layer.sign, 1, -1).sum(axis=1)
        folded = _fold_pm1(layer, S)
        if folded is None:
            continue
        mult, bias, sh = folded
        x = np.where(rng.random((5, K)) < 0.5, -1, 1)
        acc_b = ((x + 1) // 2) @ np.where(layer.sign, 1, -1).T
        got = requantize(acc_b, mult, bias, sh, layer.out_bits, True)
        np.testing.assert_array_equal(got, layer.forward(x))


def test_pm1_encodings():
    x = make_input(5, 40, in_bits=1)
    small = make_layer(6, 40, in_bits=1, mult=7, bias=-3, shift=1)
    prog = compile_linear(small, x, SMALL)
    assert prog.meta["act_encoding"] == "pm1_fold" and prog.meta["planes"] == 1
    assert {i.bits for i in prog.instrs if i.op == Op.GEMM} == {1}
    np.testing.assert_array_equal(result(prog), small.forward(x))
    large = make_layer(6, 40, in_bits=1, mult=(1 << 31) - 1, bias=1 << 30, shift=40)
    prog = compile_linear(large, x, SMALL)
    assert prog.meta["act_encoding"] == "pm1_twos"
    assert {(i.bits, i.signed) for i in prog.instrs if i.op == Op.GEMM} == {(2, 1)}
    np.testing.assert_array_equal(result(prog), large.forward(x))


# -- tiling, DMA and double buffering ------------------------------------------------------------
def tiny(abuf, wbuf, pbuf=2, obuf=8, depth=2):
    c = SMALL
    return c.replace(name="tiny", abuf_bytes=abuf * c.entry_bytes("abuf"), wbuf_bytes=wbuf * c.entry_bytes("wbuf"),
                     pbuf_bytes=pbuf * c.entry_bytes("pbuf"), obuf_bytes=obuf * c.entry_bytes("obuf"),
                     queue_depth=depth)


@pytest.mark.parametrize("cfg, M, N, modes", [
    (tiny(8, 4), 9, 10, ("chunk", "chunk")),  # K split: 4 planes x 1 word per ABUF half, 2 words per WBUF half
    (tiny(4, 16), 9, 20, ("chunk", "tile")),  # one ABUF slot of 4 (4 planes > 4 // 2); 5 n-tiles x 5 words > 16
    (tiny(64, 16), 21, 20, ("tile", "tile")),  # 6 m-tiles x 20 entries > 64, one m-tile fits a half
    (tiny(256, 256, pbuf=16, obuf=4), 9, 10, ("resident", "resident")),
])
def test_tilings_are_exact(cfg, M, N, modes):
    layer, x = make_layer(N, 150, in_bits=4), make_input(M, 150, 4)
    prog = compile_linear(layer, x, cfg)
    assert (prog.meta["buffers"]["abuf"], prog.meta["buffers"]["wbuf"]) == modes
    check_tokens(prog.instrs, cfg.queue_depth)
    np.testing.assert_array_equal(result(prog), layer.forward(x))


@pytest.mark.parametrize("cfg", [SMALL, DEFAULT, tiny(8, 4), tiny(4, 64, obuf=4)])
def test_dma_runs_are_aligned_whole_entries_inside_their_tensor(cfg):
    prog = compile_linear(make_layer(21, 300, in_bits=4), make_input(13, 300, 4), cfg)
    regions = {"abuf": prog.tensor("x"), "wbuf": prog.tensor("w"), "pbuf": prog.tensor("p"),
               "obuf": prog.tensor("y")}
    names = ("abuf", "wbuf", "pbuf", "obuf")
    for ins in prog.instrs:
        if ins.op in (Op.LOAD, Op.STORE):
            buf = names[ins.buf]
            t, eb = regions[buf], cfg.entry_bytes(buf)
            assert ins.dram % cfg.dram_bytes_per_cycle == 0
            assert (ins.dram - t.offset) % eb == 0
            assert t.offset <= ins.dram and ins.dram + ins.n * eb <= t.offset + t.nbytes
            assert ins.addr + ins.n <= cfg.entries(buf)


def test_double_buffering_alternates_halves_and_overlaps():
    cfg = SMALL  # WBUF 256 entries: halves at 0 and 128; OBUF 16 entries: slots at 0 and 4
    layer, x = make_layer(40, 4200, in_bits=2), make_input(4, 4200, 2)  # 132 k-words per n-tile
    prog = compile_linear(layer, x, cfg)
    assert prog.meta["buffers"]["wbuf"] == "chunk"
    w_addrs = [i.addr for i in prog.instrs if i.op == Op.LOAD and i.buf == 1]
    assert set(w_addrs) == {0, 128} and all(a != b for a, b in zip(w_addrs, w_addrs[1:]))
    assert [i.o for i in prog.instrs if i.op == Op.POST][:4] == [0, 4, 0, 4]
    # the load of the next block is issued before the GEMM on the current block
    first_gemm = next(n for n, i in enumerate(prog.instrs) if i.op == Op.GEMM)
    assert sum(1 for i in prog.instrs[:first_gemm] if i.op == Op.LOAD and i.buf == 1) == 2
    np.testing.assert_array_equal(result(prog), layer.forward(x))


def test_activations_loaded_once_when_they_fit():
    layer, x = make_layer(64, 200, in_bits=8), make_input(10, 200, 8)
    prog = compile_linear(layer, x, SMALL)
    a_loads = [i for i in prog.instrs if i.op == Op.LOAD and i.buf == 0]
    assert prog.meta["buffers"]["abuf"] == "resident"
    assert sum(i.n for i in a_loads) * SMALL.entry_bytes("abuf") == prog.tensor("x").nbytes
    np.testing.assert_array_equal(result(prog), layer.forward(x))


# -- tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["gemm:1,1,1,1", "gemm:30,500,30,8,0", "gemm:17,4200,9,2,1"])
@pytest.mark.parametrize("depth", [2, 3, 8])
def test_compiled_programs_pass_the_token_check(spec, depth):
    prog = compile_spec(spec, SMALL.replace(queue_depth=depth))
    report = check_tokens(prog.instrs, depth)
    assert report.pushed["l2c"] >= 1 and report.pushed["c2s"] == prog.meta["tiles"]["m"] * prog.meta["tiles"]["n"]
    assert prog.instrs[-1].op == Op.HALT
