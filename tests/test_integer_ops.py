"""The integer-only kernels (bebert/integer_ops.py) against float references, their torch
twins, and the contract of docs/NUMERICS.md: integer arithmetic only, no int64 overflow,
exact floor square root and constant division, edge cases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from bebert import integer_ops as io

RNG_SEED = 1234


# -- an ndarray that admits only integer arithmetic and checks every step for overflow ---
class Checked(np.ndarray):
    """Every ufunc on a Checked array must take and give integer (or bool) values only; each
    add, subtract, multiply and left shift (and sum) is redone on Python ints (object dtype)
    and must agree, so no int64 intermediate wraps. `max_bits` records the widest result."""

    max_bits = 0

    @staticmethod
    def _plain(x):
        return x.view(np.ndarray) if isinstance(x, Checked) else x

    @staticmethod
    def _check_int(x):
        if isinstance(x, (float, np.floating)):
            raise AssertionError(f"float operand {x!r} in integer kernel")
        if isinstance(x, np.ndarray) and x.dtype.kind not in "iub":
            raise AssertionError(f"{x.dtype} operand in integer kernel")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = [self._plain(x) for x in inputs]
        for a in args:
            self._check_int(a)
        res = getattr(ufunc, method)(*args, **kwargs)
        self._check_int(res)
        exact_ops = (np.add, np.subtract, np.multiply, np.left_shift)
        if ufunc in exact_ops and method in ("__call__", "reduce") and np.asarray(res).dtype.kind == "i":
            obj = [np.asarray(a).astype(object) if isinstance(a, np.ndarray) else a for a in args]
            exact = getattr(ufunc, method)(*obj, **kwargs)
            wrapped = not np.array_equal(np.asarray(res).astype(object), exact)
            assert not wrapped, f"int64 overflow in {ufunc.__name__}"
        if isinstance(res, np.ndarray) and res.dtype.kind == "i" and res.size:
            Checked.max_bits = max(Checked.max_bits, int(np.abs(res.astype(object)).max()).bit_length())
            return res.view(Checked)
        return res

    def __array_function__(self, func, types, args, kwargs):
        args = [self._plain(a) for a in args]
        kwargs = {k: self._plain(v) for k, v in kwargs.items()}
        res = func(*args, **kwargs)
        self._check_int(res)
        return res.view(Checked) if isinstance(res, np.ndarray) else res


def checked(q) -> Checked:
    return np.asarray(q, np.int64).view(Checked)


def codes(x, scale, bits=32):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.floor(np.asarray(x) / scale + 0.5), lo, hi).astype(np.int64)


# -- integer square root and constant division ----------------------------------------
def isqrt_newton(n: int) -> int:
    """I-BERT's integer square root: Newton from 2^ceil(bits/2), stopped when it stops falling."""
    if n == 0:
        return 0
    x = 1 << ((n.bit_length() + 1) // 2)
    while True:
        y = (x + n // x) // 2
        if y >= x:
            return x
        x = y


def test_isqrt_is_floor_sqrt():
    rng = np.random.default_rng(RNG_SEED)
    roots = rng.integers(0, 1 << 31, 2000)
    vals = [0, 1, 2, 3, 4, 5, (1 << 62) - 1, 1 << 62, (1 << 63) - 1]
    vals += [int(r) * int(r) + d for r in roots for d in (-1, 0, 1) if int(r) * int(r) + d >= 0]
    vals += [int(v) for v in rng.integers(0, 1 << 62, 3000)]
    n = np.array(vals, np.int64)
    want = np.array([math.isqrt(v) for v in vals], np.int64)
    assert np.array_equal(io.isqrt(n), want)
    assert np.array_equal(io.isqrt(torch.from_numpy(n)).numpy(), want)
    assert [isqrt_newton(v) for v in vals[:3000]] == list(want[:3000])


@pytest.mark.parametrize("scale", [1e-5, 3e-3, 0.05, 0.7, 3.0])
def test_softmax_constant_division_is_exact(scale):
    c = io.prepare_softmax(scale)
    t = np.arange(c.t_max + 1, dtype=np.int64)
    assert np.array_equal((t * c.div_mult) >> c.div_shift, t // c.ln2)


# -- softmax -------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-4, 0.01, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("out_bits", [8, 16])
def test_softmax_matches_float(scale, out_bits):
    rng = np.random.default_rng(RNG_SEED)
    x = rng.normal(0, 3, (64, 48)) * rng.uniform(0.2, 2, (64, 1))
    q = codes(x, scale)
    out, out_scale = io.int_softmax(q, scale, out_bits)
    assert out.dtype == np.int32 and out.min() >= 0 and out.max() <= (1 << out_bits) - 1
    ref = torch.softmax(torch.from_numpy(q * scale), -1).numpy()
    err = np.abs(out * out_scale - ref).max()
    # I-BERT's exp polynomial is good to ~1e-3 of a probability; rounding adds half a step.
    assert err <= 0.5 * out_scale + 1.2e-3, err
    assert np.abs(out.sum(-1) * out_scale - 1).max() <= 48 * out_scale + 3e-3


def test_softmax_edge_cases():
    c = io.prepare_softmax(0.05, 8)
    eq = np.full((3, 4), 17)
    assert np.array_equal(io.apply_softmax(eq, c), np.full((3, 4), 64))        # 255 / 4, rounded
    assert io.apply_softmax(np.array([[5]]), c)[0, 0] == 255                 # 1.0 saturates
    big = np.array([[0, -(1 << 31), -(1 << 31) + 7, -(1 << 20)]])
    assert io.apply_softmax(big, c).tolist() == [[255, 0, 0, 0]]
    top = np.array([[(1 << 31) - 1, -(1 << 31)]])                             # largest spread
    assert io.apply_softmax(top, c).tolist() == [[255, 0]]
    # a mask leaves entries out: equal to the softmax of the kept ones
    q = codes(np.random.default_rng(0).normal(0, 2, (5, 8)), 0.05)
    mask = np.ones((5, 8), bool)
    mask[:, 5:] = False
    masked = io.apply_softmax(q, c, mask)
    assert np.array_equal(masked[:, :5], io.apply_softmax(q[:, :5], c))
    assert not masked[:, 5:].any()
    assert not io.apply_softmax(q, c, np.zeros((5, 8), bool)).any()


# -- GELU ----------------------------------------------------------------------------------
def igelu_float(x):
    """I-BERT's i-GELU in float: x/2 (1 + L(x / sqrt 2)), L the erf polynomial."""
    xe = x / math.sqrt(2)
    erf = np.sign(xe) * (io.ERF_A * (np.minimum(np.abs(xe), -io.ERF_B) + io.ERF_B) ** 2 + 1)
    return x / 2 * (1 + erf)


@pytest.mark.parametrize("scale,out_scale", [(0.05, 0.05), (0.01, 0.02), (1e-3, 0.05),
                                             (2e-4, 0.01), (0.1, 0.03)])
def test_gelu_matches_float(scale, out_scale):
    x = np.linspace(-8, 8, 20001)
    q = codes(x, scale)
    out, _ = io.int_gelu(q, scale, out_scale, 8)
    assert out.dtype == np.int32
    xs = q * scale
    lo, hi = -128 * out_scale, 127 * out_scale
    ref = np.clip(torch.nn.functional.gelu(torch.from_numpy(xs)).numpy(), lo, hi)
    # i-GELU's polynomial is within 0.019 of GELU; rounding adds half a step
    assert np.abs(out * out_scale - ref).max() <= 0.5 * out_scale + 0.019
    # and the integers follow the polynomial itself to within rounding
    poly = np.clip(igelu_float(xs), lo, hi)
    assert np.abs(out * out_scale - poly).max() <= 0.5 * out_scale + 2e-4


def gelu_unclamped(q, c: io.GeluConsts):
    """apply_gelu without the input clamp, in Python ints (no width limit)."""
    out = []
    lo, hi = io.out_range(c.out_bits, c.out_signed)
    for v in q.tolist():
        x = io._scaled_pow2(v, c.in_shift)
        u = min(abs(x), c.erf_b)
        ll = (u - c.erf_b) ** 2
        w = x * (2 * c.erf_c - ll if x >= 0 else ll)
        out.append(min(max((w * c.mult + (1 << (c.shift - 1))) >> c.shift, lo), hi))
    return np.array(out)


@pytest.mark.parametrize("scale,out_scale,bits,signed", [(0.05, 0.05, 8, True), (1e-3, 0.02, 8, False),
                                                         (0.01, 1e-3, 16, True)])
def test_gelu_input_clamp_changes_no_output(scale, out_scale, bits, signed):
    c = io.prepare_gelu(scale, out_scale, bits, signed)
    q = np.unique(np.concatenate([np.arange(-3 * c.in_clamp, 3 * c.in_clamp + 1, max(1, c.in_clamp // 500)),
                                  [-(1 << 31), (1 << 31) - 1, c.in_clamp, c.in_clamp + 1, -c.in_clamp - 1]]))
    assert np.array_equal(io.apply_gelu(q, c), gelu_unclamped(q, c))


# -- LayerNorm -----------------------------------------------------------------------------
@pytest.mark.parametrize("hidden,scale,in_bits,spread", [(768, 0.01, 16, 1.0), (64, 0.05, 8, 1.0),
                                                         (64, 0.5, 8, 3.0), (128, 1e-4, 32, 2.0),
                                                         (32, 0.05, 8, 0.1)])
def test_layernorm_matches_float(hidden, scale, in_bits, spread):
    rng = np.random.default_rng(RNG_SEED)
    x = rng.normal(0.3, spread, (200, hidden)) + rng.normal(0, 1, (200, 1))
    q = codes(x, scale, in_bits)
    gamma, beta = rng.uniform(0.5, 1.5, hidden), rng.normal(0, 0.2, hidden)
    out_scale = 0.05
    out, _ = io.int_layernorm(q, scale, gamma, beta, out_scale, 8, in_bits=in_bits)
    assert out.dtype == np.int32
    ref = torch.nn.functional.layer_norm(torch.from_numpy(q * scale), (hidden,), torch.from_numpy(gamma),
                                         torch.from_numpy(beta), eps=1e-12).numpy()
    err = np.abs(out - np.clip(ref / out_scale, -128, 127)).max()
    assert err <= 0.53, err        # steps: rounding plus < 0.03 of a step


def test_layernorm_affine_constants_round_each_element_at_the_largest_shift_that_fits():
    """_affine: mult, bias = round half up of ratio 2^shift, offset 2^shift, element by element, at
    the largest shift <= 62 with |mult| < 2^31 - 1 and acc_bound |mult| + |bias| < 2^62."""
    rng = np.random.default_rng(1)
    for trial in range(300):
        k, scale = int(rng.integers(1, 40)), 10.0 ** rng.uniform(-8, 5)
        ratio, offset = rng.normal(size=k) * scale, rng.normal(size=k) * scale
        ratio[0] = 0.5 * 2.0 ** -int(rng.integers(0, 40)) if trial % 5 == 0 else ratio[0]   # exact ties
        bound = int(10 ** rng.uniform(0, 12))
        mult, bias, shift = io._affine(ratio, offset, bound)
        fits = lambda s: (max(abs(io._round(float(r) * 2.0 ** s)) for r in ratio) < (1 << 31) - 1 and  # noqa: E731
                          bound * max(abs(io._round(float(r) * 2.0 ** s)) for r in ratio) +
                          max(abs(io._round(float(o) * 2.0 ** s)) for o in offset) < io.INT62)
        assert fits(shift) and (shift == 62 or not fits(shift + 1))
        assert mult == [io._round(float(r) * 2.0 ** shift) for r in ratio]
        assert bias == [io._round(float(o) * 2.0 ** shift) for o in offset]
        assert all(type(v) is int for v in mult + bias)


def test_layernorm_edge_cases():
    h = 16
    gamma, beta = np.linspace(0.5, 2, h), np.linspace(-1, 1, h)
    c = io.prepare_layernorm(0.05, gamma, beta, 0.02, 8, in_bits=8)
    const_rows = np.array([[0] * h, [127] * h, [-128] * h, [-3] * h])        # zero variance
    want = np.clip(np.floor(beta / 0.02 + 0.5), -128, 127)
    assert np.array_equal(io.apply_layernorm(const_rows, c), np.tile(want, (4, 1)))
    c0 = io.prepare_layernorm(0.05, gamma, beta, 0.02, 8, eps=0.0, in_bits=8)
    assert np.array_equal(io.apply_layernorm(const_rows, c0), np.tile(want, (4, 1)))
    # inputs beyond in_bits saturate first
    wide = np.array([[1000, -1000] + [0] * (h - 2)])
    assert np.array_equal(io.apply_layernorm(wide, c), io.apply_layernorm(np.clip(wide, -128, 127), c))
    with pytest.raises(ValueError):
        io.apply_layernorm(np.zeros((2, h + 1), np.int64), c)


def test_random_configurations():
    """Random scales, widths and sizes: no overflow (Checked) and the error bounds hold."""
    rng = np.random.default_rng(RNG_SEED)
    i32 = (-(1 << 31), (1 << 31) - 1)
    for _ in range(20):
        s, bits = 10 ** rng.uniform(-8, 3), int(rng.integers(2, 17))
        c = io.prepare_softmax(s, bits)
        q = np.clip(codes(rng.normal(0, rng.uniform(0.1, 20), (8, int(rng.integers(1, 40)))), s), *i32)
        ref = torch.softmax(torch.from_numpy(q * s), -1).numpy()
        assert np.abs(io.apply_softmax(checked(q), c) * c.out_scale - ref).max() <= 0.5 * c.out_scale + 1.2e-3

        s, bits, signed = 10 ** rng.uniform(-5, 0.5), int(rng.integers(2, 17)), bool(rng.integers(2))
        so = s * 10 ** rng.uniform(-1.5, 1.5)
        c = io.prepare_gelu(s, so, bits, signed)
        q = np.concatenate([rng.integers(*i32, 50), np.clip(codes(rng.normal(0, 3, 500), s), *i32)])
        lo, hi = io.out_range(bits, signed)
        ref = np.clip(torch.nn.functional.gelu(torch.from_numpy(q * s)).numpy(), lo * so, hi * so)
        assert np.abs(io.apply_gelu(checked(q), c) * so - ref).max() <= 0.5 * so + 0.0195

        h, in_bits, bits = int(rng.integers(2, 300)), int(rng.integers(4, 33)), int(rng.integers(2, 17))
        s, so, eps = 10 ** rng.uniform(-6, 0), 10 ** rng.uniform(-3, 0), float(rng.choice([1e-12, 1e-5]))
        gamma, beta = rng.normal(0, 2, h), rng.normal(0, 1, h)
        c = io.prepare_layernorm(s, gamma, beta, so, bits, eps=eps, in_bits=in_bits)
        lo, hi = io.act_range(in_bits, True)
        q = np.concatenate([rng.integers(lo, hi + 1, (3, h)), [[hi] + [lo] * (h - 1)], np.full((1, h), lo),
                            np.clip(codes(rng.normal(0, 2.0 ** (in_bits - 3), (3, h)), 1), lo, hi)])
        ref = torch.nn.functional.layer_norm(torch.from_numpy(q * s), (h,), torch.from_numpy(gamma),
                                             torch.from_numpy(beta), eps=eps).numpy()
        lo, hi = io.act_range(bits, True)
        assert np.abs(io.apply_layernorm(checked(q), c) - np.clip(ref / so, lo, hi)).max() <= 0.6


# -- residual add, requantize, embedding ---------------------------------------------------
@pytest.mark.parametrize("s1,s2,so,bits", [(0.05, 0.01, 0.01, 16), (0.05, 0.02, 0.03, 8),
                                          (1e-4, 0.05, 1e-3, 16)])
def test_add_is_one_rounding_of_the_exact_sum(s1, s2, so, bits):
    rng = np.random.default_rng(RNG_SEED)
    q1, q2 = rng.integers(-128, 128, 5000), rng.integers(-(1 << 15), 1 << 15, 5000)
    out, _ = io.int_add(q1, s1, q2, s2, so, bits)
    lo, hi = io.act_range(bits, True)
    assert np.abs(out - np.clip((q1 * s1 + q2 * s2) / so, lo, hi)).max() <= 0.5 + 1e-6


def test_requant():
    q = np.arange(-5000, 5001)
    out = io.requant(q, 0.013, 0.05, 8, True)
    assert np.abs(out - np.clip(q * 0.013 / 0.05, -128, 127)).max() <= 0.5 + 1e-6
    # 1 bit: the POST unit's binarize, sign of the rounded value (so -0.5 <= x < 0 gives +1)
    assert np.array_equal(io.requant(q, 0.013, 0.05, 1), np.where(q * 0.013 / 0.05 >= -0.5, 1, -1))
    assert io.requant(q, 0.013, 0.05, 4, False).min() == 0


def test_embedding_lookup():
    table = np.arange(40).reshape(10, 4)
    ids = np.array([[3, 0], [9, 3]])
    assert np.array_equal(io.embedding_lookup(table, ids), table[ids])
    assert torch.equal(io.embedding_lookup(torch.from_numpy(table), torch.from_numpy(ids)),
                       torch.from_numpy(table[ids]))
    with pytest.raises(IndexError):
        io.embedding_lookup(table, np.array([10]))


# -- the contract: integer only, no overflow, numpy and torch twins equal -----------------
def _cases():
    """(name, consts, apply, inputs) covering each kernel's extreme inputs."""
    rng = np.random.default_rng(RNG_SEED)
    i32 = (-(1 << 31), (1 << 31) - 1)
    sm_q = np.concatenate([rng.integers(*i32, (6, 16)), codes(rng.normal(0, 3, (6, 16)), 1e-3),
                           np.tile([[i32[1]] + [i32[0]] * 15], (2, 1))])
    out = []
    for s in (1e-6, 0.05, 1000.0):
        sm = io.prepare_softmax(s, 16)
        out.append((f"softmax {s}", sm, lambda q, c: io.apply_softmax(q, c), (sm_q,)))
    mask = rng.integers(0, 2, sm_q.shape)
    mask[0] = 0
    out.append(("softmax masked", sm, lambda q, m, c: io.apply_softmax(q, c, m), (sm_q, mask)))
    gelu_q = np.concatenate([rng.integers(*i32, 200), np.arange(-3000, 3000)])
    for s, so, b in ((0.05, 0.05, 8), (1e-5, 1e-3, 16), (2.0, 0.001, 16)):
        g = io.prepare_gelu(s, so, b)
        out.append((f"gelu {s}", g, io.apply_gelu, (gelu_q,)))
    h = 64
    for bits, s in ((8, 0.05), (16, 1e-3), (32, 1e-6)):
        lo, hi = io.act_range(bits, True)
        ln_q = np.concatenate([rng.integers(lo, hi + 1, (8, h)), np.tile([hi] + [lo] * (h - 1), (2, 1)),
                               np.tile([lo, hi] * (h // 2), (2, 1)), np.full((2, h), hi)])
        ln = io.prepare_layernorm(s, rng.uniform(-3, 3, h), rng.normal(0, 1, h), 0.01, 16, in_bits=bits)
        out.append((f"layernorm {bits}", ln, io.apply_layernorm, (ln_q,)))
    add = io.prepare_add(0.05, 1e-4, 1e-4, 32)
    out.append(("add", add, lambda q1, q2, c: io.apply_add(q1, q2, c),
                (rng.integers(*i32, 500), rng.integers(*i32, 500))))
    rq = io.prepare_requant(1e-4, 0.02, 8)
    out.append(("requant", rq, io.apply_requant, (rng.integers(*i32, 500),)))
    return out


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_integer_only_without_overflow(case):
    name, consts, apply, inputs = case
    for f in dataclasses.fields(consts):
        v = getattr(consts, f.name)
        if f.name.endswith("scale") or f.name.startswith("scale"):
            continue                                    # metadata, unused by apply
        assert all(isinstance(e, int) for e in (v if isinstance(v, tuple) else (v,))), f.name
    hash(consts)                                        # frozen, hashable: storable in a program
    Checked.max_bits = 0
    got = apply(*[checked(x) for x in inputs], consts)
    assert np.asarray(got).dtype == np.int32
    assert 0 < Checked.max_bits <= 63 or name == "requant"      # requant is numerics.requantize
    assert np.array_equal(got, apply(*inputs, consts))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_numpy_and_torch_twins_agree(case):
    _, consts, apply, inputs = case
    got_np = apply(*inputs, consts)
    got_t = apply(*[torch.from_numpy(np.asarray(x, np.int64)) for x in inputs], consts)
    assert got_t.dtype == torch.int32
    assert np.array_equal(got_np, got_t.numpy())


def test_float_inputs_are_refused():
    c = io.prepare_gelu(0.05)
    with pytest.raises(TypeError):
        io.apply_gelu(np.array([0.5]), c)
    with pytest.raises(TypeError):
        io.apply_gelu(torch.tensor([0.5]), c)
