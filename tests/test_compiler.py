"""The compiler on single layers (`gemm:` specs): errors, every activation width, the cut of a product
(m-groups, weight blocks, k-chunks), double buffering, the output path's snapshot hand-over, tokens,
and the compiler's timing estimate against the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bebert.compiler import CompileError, check_tokens, compile_linear, compile_spec, golden, parse_spec
from bebert.compiler.bitplane import fold_pm1
from bebert.compiler.spec import random_config, reference
from bebert.config import AccelConfig
from bebert.isa import Op, Stage, decode, encode
from bebert.numerics import IntegerLinear, requantize
from bebert.sim.simulator import simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = {n: AccelConfig.from_toml(CONFIGS / f"{n}.toml") for n in ("default", "small", "wide")}
SMALL, DEFAULT = SHIPPED["small"], SHIPPED["default"]


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
    with pytest.raises(CompileError, match="activation bits 3 not supported"):
        compile_spec("gemm:2,10,3,3", cfg)


def test_abuf_too_small_for_one_k_word_of_planes():
    cfg = SMALL.replace(abuf_bytes=4 * SMALL.entry_bytes("abuf"))  # 4 entries, 8 planes
    with pytest.raises(CompileError, match=r"activation tile of 'q' needs 8 ABUF entries per "
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
                                  "gemm:a,2,3,4", "gemm:1,2,3,9", "gemm:1,2,3,4,9", "conv:1,2,3,4",
                                  "gemm:1,2,3,-4", "gemm:1,,3,4", "gemm:1,2,3,4x", None])
def test_malformed_specs(spec):
    from bebert.target import TargetError

    with pytest.raises(TargetError) as e:
        compile_spec(spec, SMALL)
    assert "\n" not in str(e.value) and "spec" in str(e.value)


def test_spec_parsing_and_meta():
    assert parse_spec("gemm:4,5,6,8") == {"M": 4, "K": 5, "N": 6, "abits": 8, "asigned": True, "obits": 8}
    assert parse_spec(" GEMM: 4, 5, 6, 2u, 0 ")["asigned"] is False
    assert parse_spec("gemm:37,300,129,3")["abits"] == 3
    prog = compile_spec("gemm:4,50,6,2,0", SMALL, seed=5)
    m = prog.meta
    assert (m["kind"], m["M"], m["K"], m["N"], m["in_bits"], m["out_bits"], m["spec"]) == \
           ("gemm", 4, 50, 6, 2, 0, "gemm:4,50,6,2,0")
    assert {t.name: t.role for t in prog.tensors} == {"x": "input", "w": "weight", "p": "param", "y": "output"}
    assert prog.tensor("y").layout["kind"] == "stream" and prog.tensor("x").layout["kind"] == "abuf"
    same = compile_spec("gemm:4,50,6,2,0", SMALL, seed=5)
    other = compile_spec("gemm:4,50,6,2,0", SMALL, seed=6)
    assert np.array_equal(prog.dram, same.dram) and prog.instrs == same.instrs
    assert not np.array_equal(prog.dram, other.dram)


# -- every width, every shipped and random config ------------------------------------------------
@pytest.mark.parametrize("cfg", list(SHIPPED.values()), ids=list(SHIPPED))
@pytest.mark.parametrize("abits", range(1, 9))
def test_every_activation_width_equals_the_integer_layer(cfg, abits):
    spec = f"gemm:19,{70 + 13 * abits},{21 + abits},{abits},{(abits % 3) * 4}"
    np.testing.assert_array_equal(result(compile_spec(spec, cfg)), reference(spec))


def test_the_issue_example_three_bit_gemm():
    spec = "gemm:37,300,129,3"
    prog = compile_spec(spec, DEFAULT)
    assert {i.bits for i in prog.instrs if i.op == Op.GEMM} == {3}
    np.testing.assert_array_equal(result(prog), reference(spec))


@pytest.mark.parametrize("seed", range(6))
def test_random_configs(seed):
    cfg = random_config(seed)
    bits = cfg.act_bits[seed % len(cfg.act_bits)]
    spec = f"gemm:9,{40 + seed * 7},{5 + seed},{bits}"
    try:
        prog = compile_spec(spec, cfg, seed=seed)
    except CompileError as e:
        assert "needs" in str(e) and "\n" not in str(e)  # more planes than a tiny buffer holds
        return
    np.testing.assert_array_equal(result(prog), reference(spec, seed))


# -- +-1 activations ---------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [0, 1, 2, 3, 7])
def test_fold_pm1_is_exact(shift):
    rng = np.random.default_rng(shift)
    N, K = 6, 37
    for trial in range(20):
        hi = 1 << 30 if trial % 2 else 100
        sign = rng.random((N, K)) < 0.5
        mult, bias = rng.integers(-hi, hi, N), rng.integers(-hi, hi, N)
        out_bits = int(rng.choice([0, 1, 4]))
        folded = fold_pm1(mult, bias, shift, np.where(sign, 1, -1).sum(axis=1))
        if folded is None:
            continue
        fm, fb, fs = folded
        x = np.where(rng.random((5, K)) < 0.5, -1, 1)
        w = np.where(sign, 1, -1)
        acc_b = ((x + 1) // 2) @ w.T
        np.testing.assert_array_equal(requantize(acc_b, fm, fb, fs, out_bits, True),
                                      requantize(x @ w.T, mult, bias, shift, out_bits, True))


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


# -- the cut of a product ------------------------------------------------------------------------
def tiny(abuf, wbuf, pbuf=2, depth=2):
    c = SMALL
    return c.replace(name="tiny", abuf_bytes=abuf * c.entry_bytes("abuf"), wbuf_bytes=wbuf * c.entry_bytes("wbuf"),
                     pbuf_bytes=pbuf * c.entry_bytes("pbuf"), queue_depth=depth)


@pytest.mark.parametrize("cfg, M, N, chunked", [
    (tiny(8, 4), 9, 10, True),       # 4 planes x 5 words exceed half of either buffer: k-chunks
    (tiny(64, 32), 21, 20, False),   # one m-tile (20 entries) fits half of ABUF; weights in blocks
    (tiny(256, 256, pbuf=16), 9, 10, False),
])
def test_cuts_are_exact(cfg, M, N, chunked):
    layer, x = make_layer(N, 150, in_bits=4), make_input(M, 150, 4)
    prog = compile_linear(layer, x, cfg)
    assert prog.meta["buffers"]["chunked"] == chunked
    check_tokens(prog.instrs, cfg.queue_depth)
    np.testing.assert_array_equal(result(prog), layer.forward(x))


@pytest.mark.parametrize("cfg", [SMALL, DEFAULT, tiny(8, 4), tiny(64, 32)])
def test_loads_are_aligned_whole_entries_inside_their_tensor(cfg):
    prog = compile_linear(make_layer(21, 300, in_bits=4), make_input(13, 300, 4), cfg)
    regions = {0: prog.tensor("x"), 1: prog.tensor("w"), 2: prog.tensor("p")}
    for ins in prog.instrs:
        if ins.op == Op.LOAD:
            buf = ("abuf", "wbuf", "pbuf")[ins.buf]
            t, eb = regions[ins.buf], cfg.entry_bytes(buf)
            assert ins.dram % cfg.dram_bytes_per_cycle == 0
            assert (ins.dram - t.offset) % eb == 0
            assert t.offset <= ins.dram and ins.dram + ins.n * eb <= t.offset + t.nbytes
            assert ins.addr + ins.n <= cfg.entries(buf)


def test_weight_blocks_alternate_buffer_halves_and_load_ahead():
    layer, x = make_layer(200, 640, in_bits=4), make_input(8, 640, 4)  # 10 words x 50 n-tiles: 7 blocks
    prog = compile_linear(layer, x, SMALL)
    w_loads = [(n, i.addr) for n, i in enumerate(prog.instrs) if i.op == Op.LOAD and i.buf == 1]
    half = SMALL.wbuf_entries // 2
    assert {a for _, a in w_loads} == {0, half}
    assert all(a != b for (_, a), (_, b) in zip(w_loads, w_loads[1:]))
    # the next block is loaded before the GEMMs on the current block are done
    gemms = [n for n, i in enumerate(prog.instrs) if i.op == Op.GEMM]
    second = w_loads[1][0]
    assert any(g > second and prog.instrs[g].w < half for g in gemms)
    np.testing.assert_array_equal(result(prog), layer.forward(x))


def test_activations_of_a_group_are_loaded_once():
    layer, x = make_layer(64, 200, in_bits=8), make_input(10, 200, 8)
    prog = compile_linear(layer, x, SMALL)
    assert not prog.meta["buffers"]["chunked"]
    a_loads = [i for i in prog.instrs if i.op == Op.LOAD and i.buf == 0]
    assert sum(i.n for i in a_loads) * SMALL.entry_bytes("abuf") == prog.tensor("x").nbytes
    np.testing.assert_array_equal(result(prog), layer.forward(x))


# -- the output path ------------------------------------------------------------------------------
def test_every_tile_snaps_once_and_waits_for_the_previous_post():
    prog = compile_spec("gemm:40,300,70,4", DEFAULT)
    gemms = [i for i in prog.instrs if i.op == Op.GEMM]
    posts = [i for i in prog.instrs if i.op == Op.POST]
    snaps = [i for i in gemms if i.snap]
    assert len(snaps) == len(posts) == prog.meta["tiles"]["m"] * prog.meta["tiles"]["n"]
    assert all(i.k == 1 for i in snaps)                    # the snap GEMM is split off: one word
    assert all(Stage.OUTPUT in i.pops for i in snaps[1:])  # ... and waits for the previous POST
    assert not any(Stage.OUTPUT in i.pops for i in gemms if not i.snap)
    assert all(Stage.COMPUTE in p.pops and Stage.COMPUTE in p.pushes for p in posts[:-1])
    assert [i.op for i in prog.instrs if i.stage == Stage.OUTPUT][0] == Op.POSTCFG


# -- tokens and timing ----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["gemm:1,1,1,1", "gemm:30,500,30,8,0", "gemm:17,4200,9,2,1"])
@pytest.mark.parametrize("depth", [2, 3, 8])
def test_compiled_programs_pass_the_token_check(spec, depth):
    prog = compile_spec(spec, SMALL.replace(queue_depth=depth))
    report = check_tokens(prog.instrs, depth)
    assert report.pushed["compute->output"] == prog.meta["tiles"]["m"] * prog.meta["tiles"]["n"]
    assert prog.instrs[-1].op == Op.HALT
    assert all(decode(encode(i)) == i for i in prog.instrs)   # every word is legal


@pytest.mark.parametrize("cfg", list(SHIPPED.values()) + [random_config(5)],
                         ids=list(SHIPPED) + ["random5"])
def test_the_compilers_timing_estimate_is_the_simulators(cfg):
    for spec in ("gemm:37,300,129,3", "gemm:5,64,40,8,0"):
        prog = compile_spec(spec, cfg)
        assert prog.meta["estimated_cycles"] == simulate(prog).cycles
