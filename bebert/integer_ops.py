"""Integer-only kernels of the whole-model integer inference path (I-BERT, Kim et al. 2021).

Every kernel splits in two:

- `prepare_*(float scales and parameters) -> *Consts`: a frozen dataclass of integer
  constants, derived once in float64 (constants round half up). This is what a compiler
  stores in the program; the hardware never derives a constant.
- `apply_*(int codes, consts) -> int32 codes`: integer arithmetic only (add, multiply,
  shift, compare; one division per row where I-BERT has one), on int64 intermediates whose
  widths docs/NUMERICS.md bounds. The same code runs on numpy arrays and on PyTorch int64
  tensors (the backend follows the input type); a test holds the two equal.

`int_*(q, scale, ...) -> (codes, out_scale)` prepares and applies in one call.

Kernels: softmax (i-exp: range reduction by ln 2, a second-order polynomial, a shift),
GELU (i-erf polynomial), LayerNorm (exact integer mean, variance, floor square root),
residual add, requantize, embedding lookup. Their exact formulas, rounding and bit widths
are the contract in docs/NUMERICS.md; the compiler's golden executor and the RTL reproduce
them bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bebert.numerics import act_range, fixed_point, out_range, requantize, requantize_torch

# I-BERT's polynomial coefficients (Kim et al. 2021, eq. 7 and 9).
EXP_A, EXP_B, EXP_C = 0.3585, 1.353, 0.344      # exp(p) ~ a (p + b)^2 + c on (-ln 2, 0]
ERF_A, ERF_B = -0.2888, -1.769                  # erf(x) ~ sgn(x) [a (min(|x|, -b) + b)^2 + 1]
LN2 = math.log(2.0)
SOFTMAX_RECIP_BITS = 31   # the row reciprocal of the exp sum is < 2^32 (32-bit unsigned)
LN_RECIP_SHIFT = 60       # LayerNorm: R = floor(2^60 / sigma)
INT62 = 1 << 62


# -- helpers -------------------------------------------------------------------------------
def _round(x: float) -> int:
    """Round half up, the rounding of every constant."""
    return int(math.floor(x + 0.5))


def _check_scale(name: str, s: float) -> float:
    s = float(s)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"{name} must be a positive finite float, got {s}")
    return s


def _pow2_exponent(scale: float, frac_bits: int) -> int:
    """k such that the internal scale scale / 2^k lies in [2^-(frac_bits+1), 2^-frac_bits)."""
    _, e = math.frexp(scale)          # scale = m 2^e, m in [0.5, 1)
    return e + frac_bits


def _scaled_pow2(x: int, k: int) -> int:
    """Python-int twin of `_shift` (used by prepare to bound ranges)."""
    return x << k if k >= 0 else (x + (1 << (-k - 1))) >> -k


def _fixed(ratio, offset, acc_bound: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`fixed_point` with the SFU's shift range, refusing a ratio that does not fit int32."""
    ratio = np.atleast_1d(np.asarray(ratio, np.float64))
    mult, bias, shift = fixed_point(ratio, np.atleast_1d(np.asarray(offset, np.float64)),
                                    acc_bound=max(int(acc_bound), 1), max_shift=62)
    if shift == 0 and np.any(np.abs(ratio) >= 2.0 ** 31 - 1):
        raise ValueError("scale ratio too large for an int32 multiplier")
    return mult.astype(np.int64), bias.astype(np.int64), shift


def _affine(ratio: np.ndarray, offset: np.ndarray, acc_bound: int) -> tuple[list[int], list[int], int]:
    """Like `fixed_point` but with a 62-bit bias: the largest shift <= 62 with |mult| < 2^31 - 1
    and acc_bound |mult| + |bias| < 2^62, so an offset costs the multiplier no precision."""
    ratio, offset = np.asarray(ratio, np.float64), np.asarray(offset, np.float64)
    for shift in range(62, -1, -1):
        # _round per element, vectorised: x 2^shift is exact, + 0.5 and floor are the same IEEE
        # operations, and every result is an integer-valued float, so int() of it is exact
        mult_f, bias_f = np.floor(ratio * 2.0 ** shift + 0.5), np.floor(offset * 2.0 ** shift + 0.5)
        m, b = int(np.abs(mult_f).max()), int(np.abs(bias_f).max())
        if m < (1 << 31) - 1 and acc_bound * m + b < INT62:
            return [int(v) for v in mult_f], [int(v) for v in bias_f], shift
    raise ValueError("LayerNorm affine parameters too large for the output scale")


# -- backends: the same integer code on numpy arrays and torch int64 tensors --------------
class _Numpy:
    requantize = staticmethod(requantize)

    @staticmethod
    def int64(x):
        x = np.asanyarray(x)
        if x.dtype.kind not in "iub":
            raise TypeError(f"integer codes expected, got dtype {x.dtype}")
        return x.astype(np.int64, copy=False)

    @staticmethod
    def mask(x):
        return np.asanyarray(x).astype(bool, copy=False)

    @staticmethod
    def rmax(x):
        return x.max(axis=-1, keepdims=True)

    @staticmethod
    def rsum(x):
        return x.sum(axis=-1, keepdims=True)

    @staticmethod
    def clamp(x, lo=None, hi=None):
        if lo is not None:
            x = np.maximum(x, lo)
        return x if hi is None else np.minimum(x, hi)

    where = staticmethod(np.where)


class _Torch:
    @staticmethod
    def requantize(acc, mult, bias, shift, obits, osigned):
        return requantize_torch(acc, _Torch.const(mult), _Torch.const(bias), shift, obits, osigned)

    @staticmethod
    def int64(x):
        import torch
        if x.dtype.is_floating_point or x.dtype.is_complex:
            raise TypeError(f"integer codes expected, got dtype {x.dtype}")
        return x.to(torch.int64)

    @staticmethod
    def mask(x):
        import torch
        return torch.as_tensor(x).to(torch.bool)

    @staticmethod
    def const(c):
        import torch
        return torch.as_tensor(np.asarray(c, np.int64))

    @staticmethod
    def rmax(x):
        return x.amax(dim=-1, keepdim=True)

    @staticmethod
    def rsum(x):
        return x.sum(dim=-1, keepdim=True)

    @staticmethod
    def clamp(x, lo=None, hi=None):
        return x.clamp(min=lo, max=hi)

    @staticmethod
    def where(c, a, b):
        import torch
        return torch.where(c, a, b)


def _backend(x):
    return _Torch if type(x).__module__.split(".")[0] == "torch" else _Numpy


def _shift(x, k: int):
    """x * 2^k for k >= 0; for k < 0 a right shift by -k rounding half up (floor(x/2^-k + 1/2))."""
    if k >= 0:
        return x << k
    return (x + (1 << (-k - 1))) >> -k


def isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2^63, elementwise (numpy or torch int64).

    Digit-by-digit (restoring) square root: 32 fixed steps of compare, subtract and shift,
    no division. The same result as I-BERT's Newton iteration run to convergence.
    """
    xp = _backend(n)
    n = xp.int64(n)
    r = n - n                      # zeros, same type and shape
    bit = 1 << 62                  # highest power of 4 below 2^63
    for _ in range(32):
        c = r + bit
        ge = n >= c
        n = xp.where(ge, n - c, n)
        r = xp.where(ge, (r >> 1) + bit, r >> 1)
        bit >>= 2
    return r


# -- softmax -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SoftmaxConsts:
    """Integer constants of i-softmax over the last axis (docs/NUMERICS.md, "Softmax").

    Internal scale S' = in_scale / 2^in_shift, in [2^-(F+1), 2^-F).
    """

    out_bits: int       # unsigned output codes on the grid 1 / (2^out_bits - 1)
    in_shift: int       # k: internal value t' = t * 2^k (k >= 0) or round(t / 2^-k)
    t_in_max: int       # clamp of t = rowmax - q, in input steps
    t_max: int          # clamp of t' (= z_zero * ln2: exp is exactly 0 there)
    ln2: int            # round(ln 2 / S')
    div_mult: int       # floor(t' / ln2) = (t' * div_mult) >> div_shift for 0 <= t' <= t_max
    div_shift: int
    poly_b: int         # round(b / S')
    poly_c: int         # round(c / (a S'^2))
    recip_num: int      # (2^out_bits - 1) 2^K: R = floor(recip_num / sum)
    recip_shift: int    # K: out = (e R + 2^(K-1)) >> K
    in_scale: float     # metadata, unused by apply
    out_scale: float


def prepare_softmax(scale: float, out_bits: int = 8, frac_bits: int = 13) -> SoftmaxConsts:
    scale = _check_scale("scale", scale)
    if not 2 <= out_bits <= 16:
        raise ValueError(f"softmax out_bits must be in 2..16, got {out_bits}")
    if not 6 <= frac_bits <= 13:
        raise ValueError("frac_bits must be in 6..13 (bounds the widths in NUMERICS.md)")
    k = _pow2_exponent(scale, frac_bits)
    if not -30 <= k <= 30:
        raise ValueError(f"scale {scale} outside the range of i-softmax (2^-43 .. 2^17)")
    s = math.ldexp(scale, -k)
    ln2 = _round(LN2 / s)
    poly_b = _round(EXP_B / s)
    poly_c = _round(EXP_C / (EXP_A * s * s))
    q_l0 = poly_b * poly_b + poly_c                 # exp(0) in the exp grid a S'^2
    z_zero = q_l0.bit_length()                      # q_L >> z == 0 for every z >= z_zero
    t_max = z_zero * ln2
    t_in_max = -(-t_max >> k) if k >= 0 else t_max << -k     # ceil(t_max / 2^k)
    div_shift = (t_max * ln2).bit_length()
    div_mult = -(-(1 << div_shift) // ln2)          # ceil(2^div_shift / ln2)
    # e <= sum and R <= (2^ob - 1) 2^K / q_l0 < 2^32 make e R < 2^(K + ob) = 2^(z_zero + 31)
    recip_shift = z_zero + SOFTMAX_RECIP_BITS - out_bits
    return SoftmaxConsts(out_bits=out_bits, in_shift=k, t_in_max=t_in_max, t_max=t_max, ln2=ln2,
                         div_mult=div_mult, div_shift=div_shift, poly_b=poly_b, poly_c=poly_c,
                         recip_num=((1 << out_bits) - 1) << recip_shift, recip_shift=recip_shift,
                         in_scale=scale, out_scale=1.0 / ((1 << out_bits) - 1))


def apply_softmax(q, c: SoftmaxConsts, mask=None):
    """Integer softmax of int32 codes q (..., n) along the last axis -> int32 codes in
    [0, 2^out_bits - 1] on the grid 1 / (2^out_bits - 1) (1.0 is the top code).

    `mask` (bool, broadcastable to q): False entries are left out; their output is 0, and a
    row with none left is all 0."""
    xp = _backend(q)
    q = xp.int64(q)
    if mask is not None:
        mask = xp.mask(mask)
        q = xp.where(mask, q, -(1 << 31))
    t = xp.clamp(xp.rmax(q) - q, hi=c.t_in_max)            # 0 <= t: steps below the row max
    t = xp.clamp(_shift(t, c.in_shift), hi=c.t_max)         # internal grid S'
    z = (t * c.div_mult) >> c.div_shift                     # floor(t / ln2), 0 <= z <= z_zero
    r = t - z * c.ln2                                       # 0 <= r < ln2;  p = -r S'
    p = c.poly_b - r                                        # (p + b) / S' > 0
    e = (p * p + c.poly_c) >> z                             # exp(-t S') on the grid a S'^2
    if mask is not None:
        e = xp.where(mask, e, 0)
    total = xp.rsum(e)
    recip = c.recip_num // xp.clamp(total, lo=1)            # the row's one division
    out = (e * recip + (1 << (c.recip_shift - 1))) >> c.recip_shift
    return xp.requantize(out, 1, 0, 0, c.out_bits, False)


def int_softmax(q, scale: float, out_bits: int = 8, mask=None):
    """prepare_softmax + apply_softmax -> (codes, out_scale)."""
    c = prepare_softmax(scale, out_bits)
    return apply_softmax(q, c, mask), c.out_scale


# -- GELU ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeluConsts:
    """Integer constants of i-GELU (docs/NUMERICS.md, "GELU"). S' = in_scale / 2^in_shift."""

    in_clamp: int       # |q| clamp, in input steps (leaves every output unchanged)
    in_shift: int       # x' = x * 2^k or round(x / 2^-k)
    erf_b: int          # B = round(-b sqrt(2) / S')
    erf_c: int          # C = round(2 / (-a S'^2)) = round(1 / S_L), S_L = -a S'^2 / 2
    mult: int           # requantize v (grid -a S'^3 / 4) to out_scale: (v * mult + 2^(shift-1)) >> shift
    shift: int
    out_bits: int
    out_signed: bool
    in_scale: float     # metadata, unused by apply
    out_scale: float


def _gelu_out(x: int, b: int, cc: int, mult: int, shift: int, lo: int,
              hi: int) -> int:
    """One i-GELU output in Python ints, for prepare's checks."""
    u = min(abs(x), b)
    ll = (u - b) ** 2
    v = x * (2 * cc - ll if x >= 0 else ll)
    v = (v * mult + (1 << (shift - 1))) >> shift if shift > 0 else v * mult
    return min(max(v, lo), hi)


def prepare_gelu(scale: float, out_scale: float | None = None, out_bits: int = 8,
                 out_signed: bool = True, frac_bits: int = 10) -> GeluConsts:
    scale = _check_scale("scale", scale)
    out_scale = scale if out_scale is None else _check_scale("out_scale", out_scale)
    if not 2 <= out_bits <= 16:
        raise ValueError(f"GELU out_bits must be in 2..16, got {out_bits} (for 1-bit, binarize the input)")
    if not 6 <= frac_bits <= 12:
        raise ValueError("frac_bits must be in 6..12")
    k = _pow2_exponent(scale, frac_bits)
    if k > 24:
        raise ValueError(f"scale {scale} too coarse for i-GELU")
    s = math.ldexp(scale, -k)
    s_e = s / math.sqrt(2.0)                        # x / sqrt(2) = x' S' / sqrt(2)
    b = _round(-ERF_B / s_e)
    cc = _round(1.0 / (-ERF_A * s_e * s_e))
    v_scale = s * (-ERF_A) * s_e * s_e / 2.0        # grid of v = x' * (2C - L) or x' * L
    lo, hi = out_range(out_bits, out_signed)
    # Clamp |q| to Q where erf has saturated (|x'| >= B) and the output has reached hi:
    # beyond Q, x < 0 gives v = 0 and x > 0 gives hi, so the clamp changes no output.
    q_sat = -(-b >> k) if k >= 0 else b << -k
    q_clamp = max(q_sat, math.ceil((hi + 1) * out_scale / scale) + 1)
    for _ in range(64):
        x_max = _scaled_pow2(q_clamp, k)
        mult, _, shift = _fixed(v_scale / out_scale, 0.0, x_max * 2 * cc)
        m = int(mult[0])
        if _gelu_out(x_max, b, cc, m, shift, lo, hi) == hi and _scaled_pow2(q_clamp, k) >= b:
            break
        q_clamp += q_clamp // 32 + 1
    else:
        raise ValueError("could not place the GELU input clamp")
    if q_clamp >= 1 << 31:
        raise ValueError("GELU input clamp beyond int32: out_scale too coarse for scale")
    return GeluConsts(in_clamp=q_clamp, in_shift=k, erf_b=b, erf_c=cc, mult=m, shift=shift,
                      out_bits=out_bits, out_signed=out_signed, in_scale=scale, out_scale=out_scale)


def apply_gelu(q, c: GeluConsts):
    """Integer GELU of int codes q -> int32 codes of out_bits on out_scale."""
    xp = _backend(q)
    x = xp.clamp(xp.int64(q), -c.in_clamp, c.in_clamp)
    x = _shift(x, c.in_shift)                               # internal grid S'
    u = xp.clamp(abs(x), hi=c.erf_b)                        # min(|x'|, B)
    ll = (u - c.erf_b) * (u - c.erf_b)                      # (1 - |erf|) on the grid S_L
    f = xp.where(x >= 0, 2 * c.erf_c - ll, ll)              # (1 + erf(x / sqrt 2)) / S_L
    v = x * f                                               # GELU(x) on the grid -a S'^3 / 4
    return xp.requantize(v, c.mult, 0, c.shift, c.out_bits, c.out_signed)


def int_gelu(q, scale: float, out_scale: float | None = None, out_bits: int = 8,
             out_signed: bool = True):
    """prepare_gelu + apply_gelu -> (codes, out_scale). The default output grid is the input's,
    8-bit: right for 8-bit inputs; wider inputs want out_scale (e.g. FFN2's activation step)."""
    c = prepare_gelu(scale, out_scale, out_bits, out_signed)
    return apply_gelu(q, c), c.out_scale


# -- LayerNorm -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerNormConsts:
    """Integer constants of i-LayerNorm over the last axis (docs/NUMERICS.md, "LayerNorm")."""

    hidden: int         # H
    in_bits: int        # inputs saturate to signed in_bits
    d_shift: int        # D' = D * 2^d_shift (or rounded right shift), D = H q - sum q
    eps: int            # round(eps H^3 4^d_shift / in_scale^2)
    norm_bits: int      # Z: t = round(D' 2^Z / sigma)
    mult: tuple[int, ...]   # (H,) int32: gamma sqrt(H) 2^-Z / out_scale, fixed point
    bias: tuple[int, ...]   # (H,) < 2^62: beta / out_scale, fixed point
    shift: int
    out_bits: int
    out_signed: bool
    in_scale: float     # metadata, unused by apply
    out_scale: float


def prepare_layernorm(scale: float, gamma, beta, out_scale: float, out_bits: int = 8,
                      out_signed: bool = True, eps: float = 1e-12, in_bits: int = 16,
                      norm_bits: int = 20) -> LayerNormConsts:
    scale = _check_scale("scale", scale)
    out_scale = _check_scale("out_scale", out_scale)
    gamma = np.asarray(gamma, np.float64).reshape(-1)
    beta = np.asarray(beta, np.float64).reshape(-1)
    h = gamma.shape[0]
    if beta.shape != gamma.shape or h < 2:
        raise ValueError("gamma and beta must be (H,) with H >= 2")
    if not 2 <= in_bits <= 32:
        raise ValueError("in_bits must be in 2..32")
    if not 8 <= norm_bits <= 30:
        raise ValueError("norm_bits must be in 8..30")
    # The largest d_shift with sum_i D'_i^2 <= 2^60.9: ||D|| <= H^1.5 (2^in_bits - 1) / 2, and
    # rounding adds at most sqrt(H) / 2 to ||D'||.
    d_norm = h ** 1.5 * (2.0 ** in_bits - 1) / 2
    d_shift = 62
    while (d_norm * 2.0 ** d_shift + math.sqrt(h) / 2) ** 2 > 2.0 ** 60.9:
        d_shift -= 1
    # and eps on the same grid below 2^61 (when eps dominates the variance, D' loses bits it
    # does not need)
    if eps < 0:
        raise ValueError("eps must be >= 0")
    while eps * h ** 3 * 4.0 ** d_shift / scale ** 2 >= 2.0 ** 60.9:
        d_shift -= 1
    eps_q = _round(eps * h ** 3 * 4.0 ** d_shift / scale ** 2)
    mult, bias, shift = _affine(gamma * math.sqrt(h) * 2.0 ** -norm_bits / out_scale,
                                beta / out_scale, 1 << (norm_bits + 1))
    return LayerNormConsts(hidden=h, in_bits=in_bits, d_shift=d_shift, eps=eps_q,
                           norm_bits=norm_bits, mult=tuple(mult), bias=tuple(bias), shift=shift,
                           out_bits=out_bits, out_signed=out_signed, in_scale=scale,
                           out_scale=out_scale)


def apply_layernorm(q, c: LayerNormConsts):
    """Integer LayerNorm of int codes q (..., H) -> int32 codes of out_bits on out_scale."""
    xp = _backend(q)
    lo, hi = act_range(c.in_bits, True)
    q = xp.clamp(xp.int64(q), lo, hi)
    if q.shape[-1] != c.hidden:
        raise ValueError(f"last axis {q.shape[-1]} != hidden {c.hidden}")
    d = c.hidden * q - xp.rsum(q)                           # H (q - mean), exact
    d = _shift(d, c.d_shift)
    n = xp.rsum(d * d) + c.eps                              # H^3 4^ds (var + eps) / S^2 <= 2^62
    sigma = xp.clamp(isqrt(n), lo=1)
    recip = (1 << LN_RECIP_SHIFT) // sigma                  # the row's one division
    t = _shift(d * recip, c.norm_bits - LN_RECIP_SHIFT)     # (q - mean) / std * 2^Z / sqrt(H)
    return xp.requantize(t, c.mult, c.bias, c.shift, c.out_bits, c.out_signed)


def int_layernorm(q, scale: float, gamma, beta, out_scale: float, out_bits: int = 8,
                  out_signed: bool = True, eps: float = 1e-12, in_bits: int = 16):
    """prepare_layernorm + apply_layernorm -> (codes, out_scale)."""
    c = prepare_layernorm(scale, gamma, beta, out_scale, out_bits, out_signed, eps, in_bits)
    return apply_layernorm(q, c), c.out_scale


# -- residual add, requantize, embedding ---------------------------------------------------
@dataclass(frozen=True)
class AddConsts:
    """out = sat((q1 * mult1 + q2 * mult2 + 2^(shift-1)) >> shift): one rounding of the exact sum."""

    mult1: int
    mult2: int
    shift: int
    in_bits: int        # both inputs saturate to signed in_bits
    out_bits: int       # 0: int32, as the POST unit's obits
    out_signed: bool
    scale1: float       # metadata, unused by apply
    scale2: float
    out_scale: float


def prepare_add(scale1: float, scale2: float, out_scale: float | None = None, out_bits: int = 16,
                out_signed: bool = True, in_bits: int = 32) -> AddConsts:
    scale1 = _check_scale("scale1", scale1)
    scale2 = _check_scale("scale2", scale2)
    out_scale = min(scale1, scale2) if out_scale is None else _check_scale("out_scale", out_scale)
    if out_bits == 1 or not 0 <= out_bits <= 32 or not 2 <= in_bits <= 32:
        raise ValueError("out_bits must be 0 or 2..32, in_bits 2..32")
    mult, _, shift = _fixed([scale1 / out_scale, scale2 / out_scale], [0.0, 0.0], 1 << in_bits)
    return AddConsts(mult1=int(mult[0]), mult2=int(mult[1]), shift=shift, in_bits=in_bits,
                     out_bits=out_bits, out_signed=out_signed, scale1=scale1, scale2=scale2,
                     out_scale=out_scale)


def apply_add(q1, q2, c: AddConsts):
    xp = _backend(q1)
    lo, hi = act_range(c.in_bits, True)
    acc = xp.clamp(xp.int64(q1), lo, hi) * c.mult1 + xp.clamp(xp.int64(q2), lo, hi) * c.mult2
    return xp.requantize(acc, 1, 0, c.shift, c.out_bits, c.out_signed)


def int_add(q1, scale1: float, q2, scale2: float, out_scale: float | None = None,
            out_bits: int = 16, out_signed: bool = True):
    """prepare_add + apply_add -> (codes, out_scale): the residual add q1 S1 + q2 S2."""
    c = prepare_add(scale1, scale2, out_scale, out_bits, out_signed)
    return apply_add(q1, q2, c), c.out_scale


@dataclass(frozen=True)
class RequantConsts:
    """out = POST(q * mult, shift, bits, signed): codes on scale_in -> codes on scale_out."""

    mult: int
    shift: int
    bits: int           # the POST unit's obits: 0 int32, 1 binarize (+-1), 2..32 saturate
    signed: bool
    in_bits: int        # inputs saturate to signed in_bits
    scale_in: float     # metadata, unused by apply
    scale_out: float


def prepare_requant(scale_in: float, scale_out: float, bits: int, signed: bool = True,
                    in_bits: int = 32) -> RequantConsts:
    scale_in = _check_scale("scale_in", scale_in)
    scale_out = _check_scale("scale_out", scale_out)
    if not 0 <= bits <= 32 or not 2 <= in_bits <= 32:
        raise ValueError("bits must be in 0..32, in_bits in 2..32")
    mult, _, shift = _fixed(scale_in / scale_out, 0.0, 1 << (in_bits - 1))
    return RequantConsts(mult=int(mult[0]), shift=shift, bits=bits, signed=signed, in_bits=in_bits,
                         scale_in=scale_in, scale_out=scale_out)


def apply_requant(q, c: RequantConsts):
    xp = _backend(q)
    q = xp.clamp(xp.int64(q), *act_range(c.in_bits, True))
    return xp.requantize(q, c.mult, 0, c.shift, c.bits, c.signed)


def requant(q, scale_in: float, scale_out: float, bits: int, signed: bool = True):
    """prepare_requant + apply_requant: codes on scale_in -> `bits` codes on scale_out."""
    return apply_requant(q, prepare_requant(scale_in, scale_out, bits, signed))


def embedding_lookup(table, ids):
    """Rows of an integer code table (V, H) gathered by token ids (...,) -> (..., H)."""
    xp = _backend(table)
    ids = xp.int64(ids)
    v = table.shape[0]
    if ids.shape.numel() if xp is _Torch else ids.size:
        if int(ids.min()) < 0 or int(ids.max()) >= v:
            raise IndexError(f"token id outside 0..{v - 1}")
    return table[ids]
