"""Quantizers and the binary linear layer, with the integer path the hardware runs.

`BinaryLinear` is the unit of a binary BERT: 1-bit weights (sign of a latent real weight,
times a per-output-channel scale alpha = mean |w| of the row) and k-bit activations (k in 1..8)
from a learnable-step quantizer (LSQ). Both use straight-through estimators for training; the
weight binarization is one fused autograd function (`binarize`).

`BinaryLinear.to_integer` fixes the layer into an `IntegerLinear`: weight signs, an int32
multiplier and bias per output channel and one shift (see `bebert.numerics`). Its
`forward` is the integer inference path that the compiler's golden executor and the RTL
reproduce bit for bit.

1-bit activations are +-1 (BiBERT's binary activations): the integer value is -1 or +1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bebert.numerics import (IntegerLinear, act_range, fixed_point, requantize, requantize_torch,  # noqa: F401
                             sign_point)


# -- straight-through estimators ---------------------------------------------------------
class _SignSTE(torch.autograd.Function):
    """sign(x) with sign(0) = +1; gradient passed where |x| <= 1 (clipped identity)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(x)


class _Binarize(torch.autograd.Function):
    """alpha[:, None] * sign(w) with alpha = mean_k |w[:, k]|, forward and backward in one pass.

    The gradient is exactly what autograd gives for `w.abs().mean(1)[:, None] * sign_ste(w)`:
    g alpha [|w| <= 1] + sign(w) mean_k(g sign(w)) (the sign's clipped STE plus the row scale's
    own term), without the graph's temporaries: a binary layer's weight costs one elementwise
    pass forward and one backward.
    """

    @staticmethod
    def forward(ctx, w):
        s = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        alpha = w.abs().mean(dim=1, keepdim=True)
        ctx.save_for_backward(w, alpha)
        return alpha * s

    @staticmethod
    def backward(ctx, g):
        w, alpha = ctx.saved_tensors
        s = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        return g * alpha * (w.abs() <= 1).to(g.dtype) + s * (g * s).mean(dim=1, keepdim=True)


def binarize(w: torch.Tensor) -> torch.Tensor:
    """Row-scaled binary weight alpha * sign(w) (alpha = mean |w| per row), straight-through."""
    if torch.is_grad_enabled() and w.requires_grad:
        return _Binarize.apply(w)
    return w.abs().mean(dim=1, keepdim=True) * torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """floor(x + 0.5), i.e. round half up (the POST unit's rounding), identity gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def _grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    return (x - x * scale).detach() + x * scale


# -- quantizers ---------------------------------------------------------------------------
ACT_BITS = tuple(range(1, 9))  # every activation width the quantizers, the CLI and the integer path take
INITS = ("mse", "unit")


def mse_step(x: torch.Tensor, qmin: int, qmax: int, candidates: int = 24, sample: int = 1 << 16) -> torch.Tensor:
    """The step s minimising the quantization error of `x` on the grid s * [qmin, qmax]: a search
    over clipping points c = r max|x| (r in (0, 1]), s = c / max(|qmin|, qmax). Outliers no longer
    set the grid (LSQ's 2 mean|x| / sqrt(qmax) assumes a Gaussian) and a grid never clips most of
    the mass (a step from the mean of a few large values)."""
    x = x.detach().reshape(-1).float()
    if x.numel() > sample:  # a fixed stride, not a random draw: the init stays deterministic
        x = x[:: x.numel() // sample + 1]
    top = float(x.abs().max())
    if top == 0.0:
        return torch.tensor(1e-3)
    span = max(abs(qmin), qmax)
    best, best_err = top / span, math.inf
    for r in torch.linspace(1.0 / candidates, 1.0, candidates).tolist():
        s = top * r / span
        err = float((torch.clamp(torch.floor(x / s + 0.5), qmin, qmax) * s - x).pow(2).mean())
        if err < best_err:
            best, best_err = s, err
    return torch.tensor(best)


class ActQuantizer(nn.Module):
    """k-bit activation quantizer (k in 1..8) with a learnable step (LSQ, Esser et al. 2020).

    bits >= 2: x_int = clamp(floor(x / step + 0.5), qmin, qmax), two's complement when
    signed. bits == 1: x_int = sign(x) in {-1, +1} and the step is the magnitude.
    The step is initialised from the first training batch: `init="mse"` the step of least
    quantization error (`mse_step`; mean|x|, the least-squares magnitude, at 1 bit), `init="unit"`
    the grid that spans [0, 1] exactly (attention probabilities: 1.0 is a code, nothing saturates).
    """

    def __init__(self, bits: int = 4, signed: bool = True, init: str = "mse"):
        super().__init__()
        if isinstance(bits, bool) or bits not in ACT_BITS:
            raise ValueError(f"activation bits must be in 1..8, got {bits}")
        if init not in INITS:
            raise ValueError(f"quantizer init must be one of {', '.join(INITS)}, got '{init}'")
        self.bits = bits
        self.signed = signed if bits > 1 else True
        self.init = init
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def qrange(self) -> tuple[int, int]:
        return (-1, 1) if self.bits == 1 else act_range(self.bits, self.signed)

    def _init_step(self, x: torch.Tensor) -> None:
        qmin, qmax = self.qrange
        if self.bits == 1:
            s = x.detach().abs().mean()
        elif self.init == "unit":
            s = torch.tensor(1.0 / max(qmax, 1))
        else:
            s = mse_step(x, qmin, qmax)
        with torch.no_grad():
            self.step.copy_(s.to(self.step).clamp_min(1e-6))
            self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialized):
            self._init_step(x)
        qmin, qmax = self.qrange
        g = 1.0 / math.sqrt(x.numel() * max(qmax, 1))
        step = _grad_scale(self.step, g).abs().clamp_min(1e-8)
        if self.bits == 1:
            return sign_ste(x) * step
        return round_ste(torch.clamp(x / step, qmin, qmax)) * step

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes of `x` (int64): what the hardware holds in its bit-planes."""
        if self.bits == 1:
            return torch.where(x >= 0, 1, -1).to(torch.int64)
        qmin, qmax = self.qrange
        return torch.clamp(torch.floor(x / self.step.abs() + 0.5), qmin, qmax).to(torch.int64)


# The integer layer lives in bebert.numerics (torch-free, so the compiler needs no torch).


class BinaryLinear(nn.Module):
    """y = Q_a(x) @ (alpha * sign(W))^T + b, with alpha[n] = mean_k |W[n, k]|."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 act_bits: int = 4, act_signed: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.act_quant = ActQuantizer(act_bits, act_signed)

    def alpha(self) -> torch.Tensor:
        return self.weight.abs().mean(dim=1)

    def binary_weight(self) -> torch.Tensor:
        return binarize(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act_quant(x) @ self.binary_weight().t()
        return y + self.bias if self.bias is not None else y

    # -- the integer path ----------------------------------------------------------------
    @torch.no_grad()
    def to_integer(self, out_step: float, out_bits: int = 8, out_signed: bool = True) -> IntegerLinear:
        """Fix the layer: outputs are codes on the grid `out_step` (int32 when out_bits=0)."""
        alpha = self.alpha().double().numpy()
        s_x = float(self.act_quant.step.abs())
        b = self.bias.double().numpy() if self.bias is not None else np.zeros(self.out_features)
        scale = alpha * s_x / out_step
        offset = b / out_step
        bound = self.in_features * max(abs(v) for v in self.act_quant.qrange)
        # +-1 activations are stored as one 0/1 bit-plane: leave room to fold 2*mult and
        # bias - mult*sum(w) into int32 (see compiler/lower.py).
        fold = max(2, self.in_features) if self.act_quant.bits == 1 else 0
        point = sign_point if out_bits == 1 else fixed_point
        mult, ibias, shift = point(scale, offset, acc_bound=max(bound, 1), fold_bound=fold)
        return IntegerLinear(sign=(self.weight >= 0).numpy().copy(), mult=mult, bias=ibias, shift=shift,
                             in_bits=self.act_quant.bits, in_signed=self.act_quant.signed,
                             out_bits=out_bits, out_signed=out_signed, in_step=s_x,
                             out_step=float(out_step))

    @torch.no_grad()
    def integer_forward(self, x_int: torch.Tensor, layer: IntegerLinear) -> torch.Tensor:
        """The integer path in PyTorch, equal to `layer.forward` (tested)."""
        w = torch.from_numpy(layer.weights())
        acc = x_int.to(torch.int64) @ w.t()
        return requantize_torch(acc, torch.from_numpy(layer.mult), torch.from_numpy(layer.bias),
                                layer.shift, layer.out_bits, layer.out_signed)
