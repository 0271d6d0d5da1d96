"""The integer numeric contract shared by the model, the golden executor and the RTL.

The model's integer inference path, the compiler's golden executor and the POST unit of
the accelerator all compute exactly this (docs/ARCHITECTURE.md, "Post-processing"):

    v = acc * mult + bias                         signed 64-bit, wrapping
    if shift > 0: v = (v + 2^(shift-1)) >> shift  round half up
    obits 0: saturate to int32;  1: +1 if v >= 0 else -1;  2..8: clamp to k bits

`requantize` is the numpy form, `requantize_torch` the PyTorch form; a test holds them equal.
`fixed_point` turns real per-channel scales and offsets into (mult, bias, shift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
MAX_SHIFT = 63


def out_range(obits: int, osigned: bool) -> tuple[int, int]:
    """The clamp range of a POST with `obits` output bits."""
    if obits == 0:
        return INT32_MIN, INT32_MAX
    if obits == 1:
        return -1, 1
    if osigned:
        return -(1 << (obits - 1)), (1 << (obits - 1)) - 1
    return 0, (1 << obits) - 1


def act_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of a `bits`-bit activation (two's complement when signed)."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def wrap_int32(x: np.ndarray) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def requantize(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int,
               obits: int, osigned: bool) -> np.ndarray:
    """POST arithmetic in numpy; `acc` is (..., C), `mult` and `bias` are (C,). Returns int32."""
    with np.errstate(over="ignore"):
        v = np.asarray(acc, np.int64) * np.asarray(mult, np.int64) + np.asarray(bias, np.int64)
        if shift > 0:
            v = (v + np.int64(1 << (shift - 1))) >> np.int64(shift)
    if obits == 1:
        return np.where(v >= 0, 1, -1).astype(np.int32)
    lo, hi = out_range(obits, osigned)
    return np.clip(v, lo, hi).astype(np.int32)


def requantize_torch(acc, mult, bias, shift: int, obits: int, osigned: bool):
    """POST arithmetic in PyTorch (int64 tensors); same results as `requantize`."""
    import torch

    v = acc.to(torch.int64) * mult.to(torch.int64) + bias.to(torch.int64)
    if shift > 0:
        v = (v + (1 << (shift - 1))) >> shift
    if obits == 1:
        return torch.where(v >= 0, 1, -1).to(torch.int32)
    lo, hi = out_range(obits, osigned)
    return v.clamp(lo, hi).to(torch.int32)


def fixed_point(scale: np.ndarray, offset: np.ndarray, *, acc_bound: int = 1 << 24,
                max_shift: int = 40, fold_bound: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel real `scale` and `offset` -> int32 (mult, bias) and one shift.

    `acc * scale + offset` is approximated by `(acc * mult + bias) >> shift`. The largest
    shift keeps both mult and bias inside int32 and `acc_bound * |mult| + |bias|` inside
    63 bits, for the most precision the POST unit can hold. `fold_bound` > 0 also keeps
    `fold_bound * |mult| + |bias|` inside int32, so that a compiler can fold a correction
    of up to `fold_bound` accumulator units into the bias (the +-1 activation encoding
    folds `2 * mult` and `bias - mult * sum(w)`, needing fold_bound = K).
    """
    scale = np.asarray(scale, np.float64)
    offset = np.asarray(offset, np.float64)
    smax = float(np.max(np.abs(scale), initial=0.0))
    omax = float(np.max(np.abs(offset), initial=0.0))
    shift = max_shift
    while shift > 0:
        m = smax * 2.0 ** shift
        b = omax * 2.0 ** shift
        fits = m < INT32_MAX - 1 and b < INT32_MAX - 1 and acc_bound * m + b < 2.0 ** 62
        if fits and (fold_bound <= 0 or fold_bound * (m + 1) + b + 1 < INT32_MAX):
            break
        shift -= 1
    mult = np.clip(np.rint(scale * 2.0 ** shift), INT32_MIN, INT32_MAX).astype(np.int64)
    bias = np.clip(np.rint(offset * 2.0 ** shift), INT32_MIN, INT32_MAX).astype(np.int64)
    return mult.astype(np.int32), bias.astype(np.int32), shift


def sign_point(scale: np.ndarray, offset: np.ndarray, *, acc_bound: int,
               fold_bound: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """`fixed_point` for a 1-bit (sign) output: (mult, bias, 0) with sign(acc * mult + bias) ==
    sign(acc * scale + offset) (scale > 0), exact but for the threshold -offset / scale rounded to
    2^-k of an accumulator unit. The sign needs no magnitude, so no shift: a shift's rounding
    (v + 2^(shift-1)) >> shift would move the threshold by half a multiplier (a small negative
    accumulator giving +1). mult = 2^k, the largest k that keeps |acc| * mult + |bias| (and the
    +-1 fold of `fixed_point`'s fold_bound) inside int32."""
    scale = np.maximum(np.asarray(scale, np.float64), 1e-300)
    t = np.clip(np.asarray(offset, np.float64) / scale, -(acc_bound + 1), acc_bound + 1)
    reach = 2 * acc_bound + 2 + 2 * max(fold_bound, 0)
    k = max(0, min(30, int(math.floor(math.log2((INT32_MAX - 1) / reach)))))
    mult = np.full(scale.shape, 1 << k, np.int64)
    bias = np.rint(t * 2.0 ** k).astype(np.int64)
    return mult.astype(np.int32), bias.astype(np.int32), 0


# -- the integer layer --------------------------------------------------------------------
@dataclass(frozen=True)
class IntegerLinear:
    """A binary linear layer fixed to integers: y_int = requantize(x_int @ W^T).

    sign[n, k] is True for weight +1. x_int holds `in_bits`-bit codes (+-1 when in_bits
    is 1). The output is the POST unit's result with `out_bits` / `out_signed`.
    """

    sign: np.ndarray  # bool (N, K)
    mult: np.ndarray  # int32 (N,)
    bias: np.ndarray  # int32 (N,)
    shift: int
    in_bits: int
    in_signed: bool
    out_bits: int
    out_signed: bool
    in_step: float = 1.0
    out_step: float = 1.0

    @property
    def in_features(self) -> int:
        return int(self.sign.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.sign.shape[0])

    def weights(self) -> np.ndarray:
        return np.where(self.sign, 1, -1).astype(np.int64)

    def accumulate(self, x_int: np.ndarray) -> np.ndarray:
        return np.asarray(x_int, np.int64) @ self.weights().T

    def forward(self, x_int: np.ndarray) -> np.ndarray:
        """The integer inference path in numpy: int32 (M, N)."""
        return requantize(self.accumulate(x_int), self.mult, self.bias, self.shift,
                          self.out_bits, self.out_signed)
