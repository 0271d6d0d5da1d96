"""The golden executor: instruction semantics by hand, and compiled layers against the model.

golden(compile_linear(layer, x)) == IntegerLinear.forward(x) == BinaryLinear.integer_forward(x),
bit for bit, over the shipped and random configs, every activation width and output mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bebert.compiler import check_tokens, compile_linear, compile_spec, golden
from bebert.compiler.golden import GoldenError
from bebert.compiler.spec import random_config, reference
from bebert.config import AccelConfig
from bebert.isa import gemm, halt, load, post, store, sync
from bebert.model.binary_linear import BinaryLinear, IntegerLinear
from bebert.numerics import act_range
from bebert.program import Program, Tensor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = {n: AccelConfig.from_toml(CONFIGS / f"{n}.toml") for n in ("default", "small", "wide")}


# -- helpers -------------------------------------------------------------------------------
def random_layer(rng, N, K, in_bits, in_signed, out_bits, out_signed, small_params=False) -> IntegerLinear:
    sign = rng.random((N, K)) < 0.5
    if small_params:  # small multipliers: the folded +-1 encoding fits
        mult = rng.integers(-60, 61, N)
        bias = rng.integers(-2000, 2001, N)
        shift = int(rng.integers(0, 6))
    else:  # full-range int32 multipliers, as BinaryLinear.to_integer makes
        mult = rng.integers(-(1 << 31), 1 << 31, N, dtype=np.int64)
        bias = rng.integers(-(1 << 31), 1 << 31, N, dtype=np.int64)
        shift = int(rng.integers(24, 44))
    return IntegerLinear(sign=sign, mult=mult.astype(np.int32), bias=bias.astype(np.int32), shift=shift,
                         in_bits=in_bits, in_signed=in_signed if in_bits > 1 else True,
                         out_bits=out_bits, out_signed=out_signed)


def random_input(rng, M, K, in_bits, in_signed) -> np.ndarray:
    if in_bits == 1:
        return np.where(rng.random((M, K)) < 0.5, -1, 1)
    lo, hi = act_range(in_bits, in_signed)
    return rng.integers(lo, hi + 1, (M, K))


def run_golden(prog: Program) -> np.ndarray:
    check_tokens(prog.instrs, prog.config.queue_depth)
    dram = golden.execute(prog, strict_tokens=True)
    return golden.outputs(prog, dram)["y"]


def torch_forward(layer: IntegerLinear, x: np.ndarray) -> np.ndarray:
    host = BinaryLinear(layer.in_features, layer.out_features, act_bits=max(layer.in_bits, 1))
    return host.integer_forward(torch.from_numpy(np.asarray(x, np.int64)), layer).numpy()


def fit_bits(cfg: AccelConfig, in_bits: int) -> AccelConfig:
    """`cfg`, widened where needed so that it takes `in_bits`-bit activations."""
    if in_bits not in cfg.act_bits or in_bits > cfg.abuf_entries:
        cfg = cfg.replace(act_bits=(1, 2, 4, 8),
                          abuf_bytes=max(cfg.abuf_bytes, 8 * cfg.entry_bytes("abuf")))
    return cfg


def check_layer(cfg, rng, M, K, N, in_bits, in_signed, out_bits, out_signed=True, small_params=False):
    layer = random_layer(rng, N, K, in_bits, in_signed, out_bits, out_signed, small_params)
    x = random_input(rng, M, K, in_bits, layer.in_signed)
    y = run_golden(compile_linear(layer, x, cfg))
    ref = layer.forward(x)
    assert y.dtype == np.int32 and y.shape == (M, N)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(torch_forward(layer, x), ref)


# -- instruction semantics by hand ---------------------------------------------------------
def tiny_config(**kw) -> AccelConfig:
    base = dict(name="tiny", pe_rows=2, pe_cols=2, xnor_width=8, act_bits=(1, 2, 4, 8),
                abuf_bytes=4, wbuf_bytes=4, pbuf_bytes=32, obuf_bytes=16,
                dram_bytes_per_cycle=2, dram_latency_cycles=1, queue_depth=2)
    base.update(kw)
    return AccelConfig(**base)


def test_gemm_post_store_by_hand():
    """2x2 array, W = 8: one activation plane word per row, one sign word per column."""
    cfg = tiny_config()
    dram = np.zeros(64, np.uint8)
    # ABUF entry 0 (plane 0) and 1 (plane 1): row 0 bytes, row 1 bytes
    dram[0:4] = [0b0000_1111, 0b1111_1111, 0b0000_0001, 0b0000_0000]
    # WBUF entry: column 0 all +1, column 1 = +1 on bits 0..3 only
    dram[4:6] = [0xFF, 0x0F]
    # PBUF entry: column 0 (mult 3, bias -1), column 1 (mult 1, bias 0)
    dram[8:24] = np.array([3, -1, 1, 0], "<i4").view(np.uint8)
    instrs = [load("abuf", 0, 0, 2), load("wbuf", 4, 0, 1), load("pbuf", 8, 0, 1),
              gemm(0, 0, 1, 1, 2, True, True), post(0, 0, 0, 0, True), store(32, 0, 2), halt()]
    prog = Program(cfg, instrs, dram)
    out = golden.execute(prog)
    # x row 0: plane0 = bits 0..3, plane1 = bit 0 -> x = [-1, 1, 1, 1, 0, 0, 0, 0] (signed 2-bit)
    # x row 1: plane0 = all, plane1 = none -> x = [1] * 8
    x = np.array([[-1, 1, 1, 1, 0, 0, 0, 0], [1] * 8])
    w = np.array([[1] * 8, [1] * 4 + [-1] * 4])
    acc = x @ w.T
    expect = acc * np.array([3, 1]) + np.array([-1, 0])
    np.testing.assert_array_equal(out[32:48].view("<i4").reshape(2, 2), expect)


def test_gemm_accumulates_and_wraps_int32():
    cfg = tiny_config(pe_rows=1, pe_cols=1, abuf_bytes=8, wbuf_bytes=8, pbuf_bytes=16, obuf_bytes=8,
                      dram_bytes_per_cycle=1)
    dram = np.zeros(32, np.uint8)
    dram[0] = 0xFF  # 8 ones in plane 0
    dram[1] = 0xFF  # weights all +1
    dram[2:10] = np.array([1, 0], "<i4").view(np.uint8)  # mult 1, bias 0
    g = gemm(0, 0, 1, 0, 8, False, False)  # stride 0: all 8 planes read the same word
    # one GEMM adds 8 * (2^8 - 1) = 2040; start near INT32_MAX via init then many adds
    instrs = [load("abuf", 0, 0, 1), load("wbuf", 1, 0, 1), load("pbuf", 2, 0, 1),
              gemm(0, 0, 1, 0, 8, False, True)] + [g] * 3 + [post(0, 0, 0, 0, True), store(16, 0, 1), halt()]
    out = golden.execute(Program(cfg, instrs, dram))
    assert out[16:20].view("<i4")[0] == 4 * 2040
    # 2^31 / 2040 GEMMs would be slow to write; check the wrap of the executor's adder directly
    m = golden.run(cfg, instrs[:4] + [halt()], dram)
    m.acc[:] = (1 << 31) - 100
    golden._gemm(m, g, 0)
    assert m.acc[0, 0] == (1 << 31) - 100 + 2040 - (1 << 32)


def test_post_modes_match_numerics():
    cfg = tiny_config(pe_rows=1, pe_cols=2, abuf_bytes=2, wbuf_bytes=4, pbuf_bytes=32, obuf_bytes=16,
                      dram_bytes_per_cycle=1)
    dram = np.zeros(64, np.uint8)
    dram[0] = 0x7F  # x = 7 ones (unsigned, 1 plane)
    dram[2:4] = [0xFF, 0x00]  # column 0 all +1 -> acc 7; column 1 all -1 -> acc -7
    dram[4:20] = np.array([5, 3, 5, 3], "<i4").view(np.uint8)
    for shift, obits, osigned, expect in [(0, 0, True, [38, -32]), (2, 0, True, [10, -8]),
                                          (0, 1, True, [1, -1]), (1, 4, True, [7, -8]),
                                          (1, 4, False, [15, 0]), (3, 2, True, [1, -2])]:
        instrs = [load("abuf", 0, 0, 1), load("wbuf", 2, 0, 1), load("pbuf", 4, 0, 1),
                  gemm(0, 0, 1, 1, 1, False, True), post(0, 0, shift, obits, osigned), store(32, 0, 1), halt()]
        out = golden.execute(Program(cfg, instrs, dram))
        assert out[32:40].view("<i4").tolist() == expect, (shift, obits, osigned)


@pytest.mark.parametrize("bad, msg", [
    (load("abuf", 0, 1, 2), "abuf entries"),
    (load("wbuf", 1, 0, 1), "not aligned"),
    (load("wbuf", 64, 0, 1), "outside the 64-byte image"),
    (gemm(0, 0, 1, 2, 2, False, True), "GEMM reads abuf"),
    (gemm(0, 1, 2, 1, 1, False, True), "wbuf entries"),
    (post(2, 0, 0, 0, True), "pbuf entries"),
    (post(0, 1, 0, 0, True), "obuf entries"),
    (store(0, 3, 1), "obuf entries"),
])
def test_out_of_range_is_golden_error(bad, msg):
    cfg = tiny_config()  # 2 entries in every buffer
    with pytest.raises(GoldenError, match=msg):
        golden.execute(Program(cfg, [bad, halt()], np.zeros(64, np.uint8)))


def test_tokens_never_pushed_are_rejected():
    cfg = tiny_config()
    prog = Program(cfg, [gemm(0, 0, 1, 1, 1, False, True, "pop_prev"), halt()], np.zeros(64, np.uint8))
    with pytest.raises(GoldenError, match="l2c"):
        golden.execute(prog)
    # legal on the machine (the store runs first), but not in program order
    late = Program(cfg, [sync("pop_next"), store(0, 0, 1, "push_prev"), halt()], np.zeros(64, np.uint8))
    golden.execute(late)
    with pytest.raises(GoldenError, match="s2c"):
        golden.execute(late, strict_tokens=True)


def test_missing_halt_is_golden_error():
    with pytest.raises(GoldenError, match="HALT"):
        golden.execute(Program(tiny_config(), [sync()], np.zeros(64, np.uint8)))


# -- compiled layers against the model -----------------------------------------------------
@pytest.mark.parametrize("cfg_name", list(SHIPPED))
@pytest.mark.parametrize("in_bits, in_signed", [(1, True), (2, True), (2, False), (4, True),
                                                 (4, False), (8, True), (8, False)])
def test_shipped_configs_all_widths(cfg_name, in_bits, in_signed):
    rng = np.random.default_rng(in_bits * 10 + in_signed)
    cfg = SHIPPED[cfg_name]
    for out_bits in (0, 1, 2, 4, 8):
        M, K, N = (int(v) for v in rng.integers(1, [40, 260, 40]))
        check_layer(cfg, rng, M, K, N, in_bits, in_signed, out_bits, out_signed=bool(out_bits % 3),
                    small_params=bool(out_bits % 2))


@pytest.mark.parametrize("seed", range(12))
def test_random_configs(seed):
    rng = np.random.default_rng(1000 + seed)
    cfg = random_config(seed)
    in_bits = int(rng.choice(cfg.act_bits))
    cfg = fit_bits(cfg, in_bits)
    M, K, N = (int(v) for v in rng.integers(1, [24, 200, 24]))
    check_layer(cfg, rng, M, K, N, in_bits, bool(seed % 2), int(rng.choice([0, 1, 2, 4, 8])),
                small_params=bool(seed % 3))


def test_exact_tile_multiples_and_single_element():
    cfg = SHIPPED["small"]
    rng = np.random.default_rng(7)
    check_layer(cfg, rng, 8, 64, 8, 4, True, 8)  # exact multiples of 4 x 4 x 32
    check_layer(cfg, rng, 1, 1, 1, 8, True, 0)
    check_layer(cfg, rng, 1, 1, 1, 1, True, 1, small_params=True)


@settings(max_examples=25, deadline=None, database=None)
@given(seed=st.integers(0, 10_000), M=st.integers(1, 12), K=st.integers(1, 150), N=st.integers(1, 12),
       in_bits=st.sampled_from([1, 2, 4, 8]), in_signed=st.booleans(),
       out_bits=st.sampled_from([0, 1, 2, 4, 8]), small=st.booleans())
def test_property_golden_equals_model(seed, M, K, N, in_bits, in_signed, out_bits, small):
    cfg = fit_bits(random_config(seed), in_bits)
    check_layer(cfg, np.random.default_rng(seed), M, K, N, in_bits, in_signed, out_bits,
                small_params=small)


def test_spec_program_matches_reference():
    for spec in ("gemm:9,100,13,4", "gemm:5,70,6,1,0", "gemm:20,300,9,8,1", "gemm:3,40,5,2u,2"):
        prog = compile_spec(spec, SHIPPED["small"], seed=3)
        np.testing.assert_array_equal(run_golden(prog), reference(spec, seed=3))


def test_round_trip_through_files_keeps_results(tmp_path):
    prog = compile_spec("gemm:11,90,7,4,8", SHIPPED["small"], seed=1)
    before = golden.execute(prog)
    again = Program.read(prog.write(tmp_path / "prog"))
    assert again.meta["spec"] == "gemm:11,90,7,4,8"
    assert [t.to_dict() for t in again.tensors] == [t.to_dict() for t in prog.tensors]
    after = golden.execute(again)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(golden.outputs(again, after)["y"], reference("gemm:11,90,7,4,8", seed=1))


def test_outputs_unpacks_every_output_tensor():
    prog = compile_spec("gemm:3,10,2,4", SHIPPED["small"])
    y = np.arange(6, dtype=np.int32).reshape(3, 2) - 3
    from bebert.layout import pack_outputs

    t = prog.tensor("y")
    dram = prog.dram.copy()
    dram[t.offset:t.offset + t.nbytes] = pack_outputs(y, t.layout).reshape(-1)
    alias = Tensor("z", "output", t.offset, t.nbytes, (3, 2), t.layout)
    extra = Program(prog.config, prog.instrs, dram, prog.tensors + (alias,))
    out = golden.outputs(extra, dram)
    assert set(out) == {"y", "z"}
    np.testing.assert_array_equal(out["z"], y)


# -- ISA v2: GEMM AND mode and VEC ---------------------------------------------------------
def _and_matmul_program(cfg: AccelConfig, x: np.ndarray, y: np.ndarray, xbits: int, xsigned: bool,
                        ybits: int, ysigned: bool) -> Program:
    """One tile of x @ y^T (activation x activation): x as ABUF planes, each plane of y as one
    WBUF operand of an AND-mode GEMM (wshift = plane, wneg on y's signed top plane)."""
    from bebert import layout as lay

    M, K = x.shape
    N = y.shape[0]
    R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
    kw = -(-K // W)
    a = lay.pack_activations(x, lay.act_layout(M, K, R, W, xbits, xsigned)).reshape(-1)
    wl = lay.weight_layout(N, K, C, W)
    planes = [lay.pack_weights(((y >> q) & 1).astype(bool), wl).reshape(-1) for q in range(ybits)]
    p = lay.pack_params(np.ones(N), np.zeros(N), lay.param_layout(N, C)).reshape(-1)
    eo = cfg.entry_bytes("obuf")
    off_w = a.size
    off_p = off_w + sum(pl.size for pl in planes)
    off_y = off_p + p.size
    dram = np.concatenate([a, *planes, p, np.zeros(R * eo, np.uint8)])
    ins = [load("abuf", 0, 0, xbits * kw), load("wbuf", off_w, 0, ybits * kw),
           load("pbuf", off_p, 0, 1, "push_next")]
    for q in range(ybits):
        flags = ("pop_prev",) if q == 0 else ()
        ins.append(gemm(0, q * kw, kw, kw, xbits, xsigned, q == 0, *flags, mode=1,
                        wneg=ysigned and q == ybits - 1, wshift=q))
    ins += [post(0, 0, 0, 0, False, "push_next"), store(off_y, 0, R, "pop_prev"), halt()]
    ylay = lay.output_layout(M, N, R, C)
    return Program(config=cfg, instrs=ins, dram=dram,
                   tensors=(Tensor("y", "output", off_y, R * eo, (M, N), ylay),))


@pytest.mark.parametrize("xbits,xsigned,ybits,ysigned", [(4, True, 4, True), (4, False, 4, True),
                                                        (2, True, 8, False), (8, True, 1, False),
                                                        (1, False, 3, True)])
def test_and_mode_gemm_is_an_exact_activation_product(xbits, xsigned, ybits, ysigned):
    cfg = AccelConfig(pe_rows=4, pe_cols=4, xnor_width=16, abuf_bytes=1024, wbuf_bytes=1024,
                      pbuf_bytes=256, obuf_bytes=256, dram_bytes_per_cycle=8)
    rng = np.random.default_rng(xbits * 10 + ybits)
    M, N, K = 3, 4, 37
    x = rng.integers(*act_range(xbits, xsigned), endpoint=True, size=(M, K))
    y = rng.integers(*act_range(ybits, ysigned), endpoint=True, size=(N, K))
    prog = _and_matmul_program(cfg, x, y, xbits, xsigned, ybits, ysigned)
    check_tokens(prog.instrs, cfg.queue_depth)
    got = golden.outputs(prog, golden.execute(prog, strict_tokens=True))["y"]
    assert np.array_equal(got, x @ y.T)


def test_and_mode_top_plane_sign_rule():
    """sign = -1 when exactly one of (signed top activation plane, wneg) holds: both negate back."""
    cfg = AccelConfig(pe_rows=4, pe_cols=4, xnor_width=16, abuf_bytes=256, wbuf_bytes=256,
                      pbuf_bytes=256, obuf_bytes=256, dram_bytes_per_cycle=8)
    x = np.array([[-1] * 8], np.int64)  # 1-bit signed: the only plane is the top plane (value -1)
    y = np.array([[1] * 8], np.int64)
    for ysigned, want in ((False, -8), (True, 8)):  # 1-bit signed y = -1: (-1) * (-1) = +1 each
        yy = -y if ysigned else y
        prog = _and_matmul_program(cfg, x, yy, 1, True, 1, ysigned)
        got = golden.outputs(prog, golden.execute(prog))["y"]
        assert got[0, 0] == want


def test_vec_runs_its_kernel_on_dram():
    from bebert.isa import vec
    from bebert import integer_ops as I
    from bebert.vector import VecFn, View, consts_words, encode_desc

    cfg = AccelConfig()
    rng = np.random.default_rng(3)
    q = rng.integers(-3000, 3000, (5, 24))
    c = I.prepare_softmax(0.01, out_bits=16)
    src, out, k, desc = 256, 256 + 5 * 24 * 4, 4096, 8192
    dram = np.zeros(desc + 512, np.uint8)
    dram[src:src + q.size * 4] = q.astype("<i4").view(np.uint8).reshape(-1)
    kb = consts_words(VecFn.SOFTMAX, c)
    dram[k:k + len(kb)] = np.frombuffer(kb, np.uint8)
    d = encode_desc(VecFn.SOFTMAX, src=View.row_major(src, 24), mask=View(0), out=View.row_major(out, 24),
                    consts=k)
    dram[desc:desc + len(d)] = np.frombuffer(d, np.uint8)
    prog = Program(config=cfg, instrs=[vec(VecFn.SOFTMAX, desc, 5, 24), halt()], dram=dram,
                   tensors=(Tensor("p", "output", out, q.size * 4, (5, 24), {}),))
    final = golden.execute(prog)
    got = final[out:out + q.size * 4].view("<i4").reshape(5, 24)
    assert np.array_equal(got, I.apply_softmax(q, c))


def test_vec_bad_descriptor_is_golden_error():
    from bebert.isa import vec
    from bebert.vector import VecFn

    prog = Program(config=AccelConfig(), instrs=[vec(VecFn.GELU, 1 << 20, 1, 4), halt()],
                   dram=np.zeros(1024, np.uint8))
    with pytest.raises(GoldenError, match="instruction 0"):
        golden.execute(prog)
