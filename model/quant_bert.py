"""A quantized BERT built from any HF BERT checkpoint, in the order data meets it.

    QuantConfig  -> which bits where (BinaryBERT 1-1-4, BiBERT 1-1-1, or full precision)
    quantize_weight, QLinear, QEmbedding -> k-bit weights with straight-through estimators
    Embeddings -> SelfAttention -> Layer (attention, FFN, LayerNorms) -> QuantBert
    tws_split  -> BinaryBERT's ternary weight splitting (a ternary model becomes a binary one,
                  each half with its own scale)
    dmd_loss   -> BiBERT's direction-matching distillation, averaged over real tokens

Naming: `weight_bits`-`embed_bits`-`act_bits` as in the papers. Every projection is a
`QLinear`, a `BinaryLinear` (model/binary_linear.py) that also takes 2..8-bit weights
(2: the ternary stage of TWS) or full precision (the teacher, bits 32). Activations take any
width 1..8. A BertShape may be narrower than its backbone (`head_size`, fewer heads and FFN
neurons: the half-width model TWS splits, model/prune.py). LayerNorm, GELU,
residuals and the classifier stay in floating point. In attention, Q, K, V and the softmax
probabilities go through `attn_bits`-bit quantizers; the scores are exact products of the
quantized Q and K (int32 accumulators for an integer softmax). With `bi_attention`
(BiBERT) the softmax is replaced by bool(scores) in {0, 1}.

A `QLinear` / `QEmbedding` can be frozen to stored (codes, scale) pairs: that is how a
package reloads bit-exactly (model/package.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bebert.integer_ops import ERF_A, ERF_B

from .binary_linear import ActQuantizer, BinaryLinear, IntegerLinear, binarize, fixed_point, sign_ste

FP = 32  # "bits" of an unquantized tensor
BASES = ("binarybert", "bibert", "fp")
BITS = (*range(1, 9), FP)
SPLIT_SCALES = ("half", "shared")
GELUS = ("erf", "ibert")


@dataclass(frozen=True)
class QuantConfig:
    """Which tensors are quantized to how many bits."""

    base: str = "binarybert"
    weight_bits: int = 1
    embed_bits: int = 1
    act_bits: int = 4
    attn_bits: int = 4  # Q, K, V and attention probabilities
    bi_attention: bool = False  # BiBERT: bool(scores) instead of softmax
    split: bool = False  # TWS-split layers: inputs duplicated, weights [w1 | w2]
    # split layers: "half" gives each half its own per-row scale (BinaryBERT: alpha1 sign(w1) +
    # alpha2 sign(w2), four levels); "shared" one scale per row over both halves (exactly ternary)
    split_scales: str = "shared"
    # "ibert": the FFN's GELU is I-BERT's erf polynomial, what the integer path's i-GELU computes
    # (the fake-quant model then trains on the function the hardware runs); "erf": exact GELU
    gelu: str = "erf"

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got '{self.base}'")
        for f in ("weight_bits", "embed_bits", "act_bits", "attn_bits"):
            v = getattr(self, f)
            if isinstance(v, bool) or v not in BITS:
                raise ValueError(f"{f} must be in 1..8 or {FP} (full precision), got {v!r}")
        if self.bi_attention and self.attn_bits != 1:
            raise ValueError("bi_attention needs attn_bits = 1")
        if self.split and self.weight_bits != 1:
            raise ValueError("split (TWS) layers need weight_bits = 1")
        if self.split_scales not in SPLIT_SCALES:
            raise ValueError(f"split_scales must be one of {', '.join(SPLIT_SCALES)}, got {self.split_scales!r}")
        if self.gelu not in GELUS:
            raise ValueError(f"gelu must be one of {', '.join(GELUS)}, got {self.gelu!r}")

    @classmethod
    def preset(cls, base: str, act_bits: int | None = None) -> "QuantConfig":
        """The paper's configuration of `base`; `act_bits` changes the activation (and, for
        BinaryBERT, the Q/K/V and attention-probability) width."""
        if base == "binarybert":
            a = 4 if act_bits is None else act_bits
            return cls("binarybert", 1, 1, a, a, gelu="ibert")
        if base == "bibert":
            if act_bits not in (None, 1):
                raise ValueError(f"bibert has 1-bit activations (Bi-Attention), got --abits {act_bits}")
            return cls("bibert", 1, 1, 1, 1, bi_attention=True, gelu="ibert")
        if base == "fp":
            return cls("fp", FP, FP, FP, FP)
        raise ValueError(f"base must be one of {', '.join(BASES)}, got '{base}'")

    def ternary(self) -> "QuantConfig":
        """The ternary model that TWS starts from (half-width for BinaryBERT, model/prune.py)."""
        return replace(self, weight_bits=2, split=False, split_scales="shared")

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BertShape:
    """The dimensions of a BERT, read from its HF config."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position: int
    type_vocab_size: int
    layer_norm_eps: float
    num_labels: int
    dropout: float = 0.1
    head_size: int = 0  # 0: hidden_size // num_heads (a pruned model keeps its heads' width)

    def __post_init__(self) -> None:
        if self.head_size == 0 and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden size {self.hidden_size} is not a multiple of {self.num_heads} heads")

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden_size // self.num_heads

    @property
    def attention_size(self) -> int:
        """Width of Q, K, V and the context: heads x head_dim (the hidden size unless pruned)."""
        return self.num_heads * self.head_dim

    @classmethod
    def from_hf(cls, cfg, num_labels: int) -> "BertShape":
        return cls(cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                   cfg.intermediate_size, cfg.max_position_embeddings, cfg.type_vocab_size,
                   float(cfg.layer_norm_eps), num_labels, float(cfg.hidden_dropout_prob))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# -- weight quantizers ---------------------------------------------------------------------
def _ste(w: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    # exact values when no gradient is needed (inference, packages), so that stored codes
    # reproduce the same floats bit for bit
    return (w + (exact - w).detach()) if torch.is_grad_enabled() and w.requires_grad else exact


def quantize_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(codes, per-row scale) with w_q = scale[:, None] * codes.

    1 bit: sign, scale mean|w| (BinaryLinear). 2 bits: ternary {-1, 0, 1} with TWN's
    threshold 0.7 mean|w| and scale mean|w| above it. 4/8 bits: symmetric, scale max|w|/qmax.
    """
    if bits == FP:
        return w, None
    if bits == 1:
        return sign_ste(w), w.abs().mean(dim=1)
    if bits == 2:
        a = w.abs()
        keep = (a > 0.7 * a.mean(dim=1, keepdim=True)).to(w.dtype)
        scale = (a * keep).sum(1) / keep.sum(1).clamp_min(1)
        return _ste(w, torch.where(w >= 0, 1.0, -1.0).to(w.dtype) * keep), scale
    qmax = (1 << (bits - 1)) - 1
    scale = (w.abs().amax(dim=1) / qmax).clamp_min(1e-8)
    x = torch.clamp(w / scale[:, None], -qmax, qmax)
    return _ste(x, torch.floor(x + 0.5).detach()), scale


class _FrozenMixin:
    """Stored (codes, scale) instead of latent weights: set by `freeze`, used by packages.

    A split layer with `split_scales == "half"` has one scale per row and half: `scale` is
    (rows, 2), half h covering columns [h K, (h + 1) K) of the stored [w1 | w2]."""

    def _halves(self) -> int:
        return 2 if getattr(self, "split", False) and getattr(self, "split_scales", "shared") == "half" else 1

    def quantized_weight(self) -> torch.Tensor:
        """The quantized weight in its stored shape (rows, cols), with straight-through gradients."""
        w = self.weight
        if self.frozen_scale is not None:
            sc = self.frozen_scale
            if sc.dim() == 2:
                k = w.shape[1] // 2
                return torch.cat([sc[:, :1] * w[:, :k], sc[:, 1:] * w[:, k:]], dim=1)
            return sc[:, None] * w
        if self.weight_bits == 1:
            if self._halves() == 2:
                k = w.shape[1] // 2
                return torch.cat([binarize(w[:, :k]), binarize(w[:, k:])], dim=1)
            return binarize(w)
        codes, scale = quantize_weight(w, self.weight_bits)
        return codes if scale is None else scale[:, None] * codes

    @torch.no_grad()
    def codes_and_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frozen_scale is not None:
            return self.weight.clone(), self.frozen_scale.clone()
        if self.weight_bits == 1 and self._halves() == 2:
            k = self.weight.shape[1] // 2
            (c1, s1), (c2, s2) = (quantize_weight(h, 1) for h in (self.weight[:, :k], self.weight[:, k:]))
            return torch.cat([c1, c2], dim=1), torch.stack([s1, s2], dim=1)
        codes, scale = quantize_weight(self.weight, self.weight_bits)
        return codes, scale

    @torch.no_grad()
    def freeze(self, codes: torch.Tensor, scale: torch.Tensor) -> None:
        self.weight.data = codes.to(self.weight.dtype).clone()
        self.frozen_scale = scale.to(self.weight.dtype).clone()

    def _cached(self, compute):
        """`compute()` once per weight version when no gradient is needed (evaluation, teachers,
        packages): the binarization of a frozen-for-evaluation model is not redone per batch."""
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return compute()
        fs = self.frozen_scale
        key = (self.weight.data_ptr(), self.weight._version, None if fs is None else (fs.data_ptr(), fs._version))
        cache = getattr(self, "_weight_cache", None)
        if cache is None or cache[0] != key:
            cache = (key, compute())
            self._weight_cache = cache
        return cache[1]


def _pm1(x: torch.Tensor) -> torch.Tensor:
    """+-1 codes recovered from code * step / step, snapped to exactly +-1 (the step's gradient
    scaling may leave an ulp); the gradient passes unchanged."""
    return x + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - x).detach()


class QLinear(_FrozenMixin, BinaryLinear):
    """A BinaryLinear with `weight_bits` in 1..8 or 32 and optional full-precision inputs.

    weight_bits = 1 computes exactly what BinaryLinear computes. With `split` (TWS) the layer is
    2K wide and takes its input twice: [x, x] @ [w1 | w2]^T = x @ (w1 + w2)^T (twice the binary
    work on the accelerator; `forward` uses the right-hand side). `split_scales="half"` binarizes
    each half with its own row scale (BinaryBERT), "shared" with one scale per row.
    """

    def __init__(self, in_features: int, out_features: int, weight_bits: int = 1, act_bits: int = 4,
                 act_signed: bool = True, split: bool = False, split_scales: str = "shared"):
        super().__init__(in_features * (2 if split else 1), out_features, True,
                         act_bits if act_bits != FP else 8, act_signed)
        self.act_quant = act_quantizer(act_bits, act_signed)
        self.weight_bits = weight_bits
        self.split = split
        self.split_scales = split_scales
        self.register_buffer("frozen_scale", None)

    def alpha(self) -> torch.Tensor:
        return self.codes_and_scale()[1]

    def binary_weight(self) -> torch.Tensor:
        return self.quantized_weight()

    def effective_weight(self) -> torch.Tensor:
        """The (out, in) weight of the function the layer computes (split halves summed)."""
        def compute():
            w = self.quantized_weight()
            if self.split:
                # [q(x), q(x)] @ [w1 | w2]^T computed as q(x) @ (w1 + w2)^T: the same function at half
                # the cost (the quantizer is elementwise); the hardware runs the 2K-wide binary form
                k = w.shape[1] // 2
                w = w[:, :k] + w[:, k:]
            return w
        return self._cached(compute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, w = self.act_quant(x), self.effective_weight()
        if getattr(self.act_quant, "bits", FP) == 1 and self.weight_bits == 1 and not self.split:
            # +-1 x +-1 (BiBERT): the dot products summed as exact integers, then scaled; a float sum
            # of +-step*alpha terms that should be 0 comes out +-1 ulp and the next sign flips at random
            s = self.act_quant.step.abs().clamp_min(1e-8)
            alpha = w.abs().amax(dim=1)
            return (_pm1(a / s) @ _pm1(w / alpha.clamp_min(1e-30)[:, None]).t()) * (s * alpha) + self.bias
        return a @ w.t() + self.bias

    @torch.no_grad()
    def to_integer_halves(self, out_step: float, out_bits: int = 8,
                          out_signed: bool = True) -> tuple[IntegerLinear, np.ndarray | None]:
        """`to_integer`, and for a split layer with a scale per half the second half's multiplier:
        y = (acc_lo * mult + acc_hi * mult_hi + bias) >> shift, acc_lo over the first K inputs of
        [x, x], acc_hi over the second (docs/NUMERICS.md, "Split layers"). (layer, None) otherwise."""
        if self.frozen_scale is None and not (self.weight_bits == 1 and self._halves() == 2):
            return self.to_integer(out_step, out_bits, out_signed), None
        codes, scale = self.codes_and_scale()
        if scale.dim() == 1:
            return self.to_integer(out_step, out_bits, out_signed), None
        q = self.act_quant
        s_x = float(q.step.abs())
        b = self.bias.double().numpy()
        lo, hi = (scale[:, h].double().numpy() * s_x / out_step for h in (0, 1))
        k = self.in_features // 2
        qmax = max(abs(v) for v in q.qrange)
        bound = self.in_features * qmax
        # each half's product acc_h * mult_h + bias inside int32: the compiler writes them as int32
        # streams and sums them in one VEC ADD (compiler/split_scales.py)
        fold = max(max(2, self.in_features) if q.bits == 1 else 0, k * qmax)
        mult, ibias, shift = fixed_point(np.concatenate([lo, hi]), np.concatenate([b / out_step, 0 * b]),
                                         acc_bound=max(bound, 1), fold_bound=fold)
        n = self.out_features
        layer = IntegerLinear(sign=(codes >= 0).numpy().copy(), mult=mult[:n].copy(), bias=ibias[:n].copy(),
                              shift=shift, in_bits=q.bits, in_signed=q.signed, out_bits=out_bits,
                              out_signed=out_signed, in_step=s_x, out_step=float(out_step))
        assert layer.in_features == 2 * k
        return layer, mult[n:].copy()


class QEmbedding(_FrozenMixin, nn.Module):
    """An embedding table with `weight_bits`-bit rows (a per-row scale, as in QLinear)."""

    def __init__(self, num: int, dim: int, weight_bits: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num, dim) * 0.02)
        self.weight_bits = weight_bits
        self.register_buffer("frozen_scale", None)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.weight_bits == FP and self.frozen_scale is None:
            return F.embedding(ids, self.weight)
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return F.embedding(ids, self._cached(self.quantized_weight))  # the whole table, once
        # quantize only the rows used: the same values as quantizing the whole table
        flat = ids.reshape(-1)
        uniq, inv = torch.unique(flat, return_inverse=True)
        if self.frozen_scale is not None:
            rows = self.frozen_scale[uniq, None] * self.weight[uniq]
        elif self.weight_bits == 1:
            rows = binarize(self.weight[uniq])
        else:
            codes, scale = quantize_weight(self.weight[uniq], self.weight_bits)
            rows = scale[:, None] * codes
        return rows[inv].reshape(*ids.shape, -1)


class _LSQ(torch.autograd.Function):
    """LSQ quantize-dequantize in one pass: floor(clamp(x / s) + 0.5) * s.

    Gradients are LSQ's (what ActQuantizer's autograd graph gives): x passes where
    qmin <= x/s <= qmax; the step gets sum(g * (q - x/s)) inside, sum(g * q) outside, times
    the gradient scale. Saves only x, instead of the half-dozen temporaries of the graph.
    """

    @staticmethod
    def forward(ctx, x, step, qmin: int, qmax: int, gscale: float):
        s = step.abs().clamp_min(1e-8)
        q = torch.floor(torch.clamp(x / s, qmin, qmax) + 0.5)
        ctx.save_for_backward(x, step)
        ctx.qrange, ctx.gscale = (qmin, qmax), gscale
        return q * s

    @staticmethod
    def backward(ctx, g):
        x, step = ctx.saved_tensors
        qmin, qmax = ctx.qrange
        s = step.abs().clamp_min(1e-8)
        v = x / s
        inside = (v >= qmin) & (v <= qmax)
        q = torch.floor(torch.clamp(v, qmin, qmax) + 0.5)
        gx = g * inside
        gs = (g * torch.where(inside, q - v, q)).sum() * ctx.gscale * torch.sign(step)
        return gx, gs.reshape(step.shape), None, None, None


class FastActQuantizer(ActQuantizer):
    """ActQuantizer (same state, same codes, `to_int`) with a fused forward/backward for k >= 2 bits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 1:
            return super().forward(x)
        if self.training and not bool(self.initialized):
            self._init_step(x)
        qmin, qmax = self.qrange
        return _LSQ.apply(x, self.step, qmin, qmax, 1.0 / math.sqrt(x.numel() * max(qmax, 1)))


def act_quantizer(bits: int, signed: bool = True, init: str = "mse") -> nn.Module:
    return nn.Identity() if bits == FP else FastActQuantizer(bits, signed, init)


class _BoolSTE(torch.autograd.Function):
    """bool(x) = 1 if x >= 0 else 0 (BiBERT's Bi-Attention); gradient where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def bool_ste(x: torch.Tensor) -> torch.Tensor:
    return _BoolSTE.apply(x)


def ibert_gelu(x: torch.Tensor) -> torch.Tensor:
    """I-BERT's GELU (Kim et al. 2021, eq. 9) in float: x/2 (1 + L(x / sqrt 2)) with
    L(u) = sgn(u) [a (min(|u|, -b) + b)^2 + 1], the erf polynomial bebert/integer_ops.py's
    i-GELU evaluates in integers (max |L - erf| ~ 0.02)."""
    u = x / math.sqrt(2.0)
    erf = torch.sign(u) * (ERF_A * (torch.clamp(u.abs(), max=-ERF_B) + ERF_B) ** 2 + 1.0)
    return 0.5 * x * (1.0 + erf)


# -- the model, in data-flow order ------------------------------------------------------------
class Embeddings(nn.Module):
    def __init__(self, s: BertShape, q: QuantConfig):
        super().__init__()
        self.word = QEmbedding(s.vocab_size, s.hidden_size, q.embed_bits)
        self.position = QEmbedding(s.max_position, s.hidden_size, q.embed_bits)
        self.token_type = QEmbedding(s.type_vocab_size, s.hidden_size, q.embed_bits)
        self.ln = nn.LayerNorm(s.hidden_size, eps=s.layer_norm_eps)
        self.drop = nn.Dropout(s.dropout)

    def forward(self, ids: torch.Tensor, token_type: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)[None, :].expand_as(ids)
        return self.drop(self.ln(self.word(ids) + self.position(pos) + self.token_type(token_type)))


class SelfAttention(nn.Module):
    """Multi-head attention over `heads` heads of `head_dim` (heads x head_dim may be narrower
    than the hidden size: a pruned model). `teacher_heads` names, per head, the head of the
    full-width teacher it was kept from (attention KD compares those)."""

    def __init__(self, s: BertShape, q: QuantConfig):
        super().__init__()
        h, a = s.hidden_size, s.attention_size
        self.heads, self.head_dim = s.num_heads, s.head_dim
        lin = lambda k, n: QLinear(k, n, q.weight_bits, q.act_bits, split=q.split,  # noqa: E731
                                   split_scales=q.split_scales)
        self.query, self.key, self.value = lin(h, a), lin(h, a), lin(h, a)
        self.q_quant, self.k_quant, self.v_quant = (act_quantizer(q.attn_bits) for _ in range(3))
        self.bi_attention = q.bi_attention
        self.p_quant = nn.Identity() if q.bi_attention else act_quantizer(q.attn_bits, signed=False, init="unit")
        self.drop = nn.Dropout(s.dropout)
        self.register_buffer("teacher_heads", torch.arange(s.num_heads))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)

    def forward(self, x: torch.Tensor, mask_add: torch.Tensor):
        q = self.q_quant(self._heads(self.query(x)))
        k = self.k_quant(self._heads(self.key(x)))
        v = self.v_quant(self._heads(self.value(x)))
        if self.bi_attention:
            scores, ctx = self._bi_attention(q, k, v, mask_add)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim) + mask_add
            ctx = self.drop(self.p_quant(torch.softmax(scores, dim=-1))) @ v
        ctx = ctx.transpose(1, 2).reshape(*x.shape[:2], self.heads * self.head_dim)
        return ctx, scores, (q, k, v)

    def _bi_attention(self, q, k, v, mask_add):
        """BiBERT's Bi-Attention, bool(q k^T / sqrt(d) + mask) @ v, with the +-1 products summed as
        exact integers (q / step, k / step, v / step are exactly +-1): a float sum of +-step terms
        that should be 0 (common: d and the attended keys are even counts) would come out +-1 ulp,
        and bool / the next sign would then flip at random. The same function as the plain
        formula, bit-exact at 0 (what the integer path computes, docs/NUMERICS.md, "BiBERT")."""
        sq, sk, sv = (m.step.abs().clamp_min(1e-8) for m in (self.q_quant, self.k_quant, self.v_quant))
        dots = _pm1(q / sq) @ _pm1(k / sk).transpose(-2, -1)      # exact integers
        scores = dots * (sq * sk / math.sqrt(self.head_dim)) + mask_add
        probs = self.drop(bool_ste(scores))                       # masked positions are -1e4: bool gives 0
        return scores, (probs @ _pm1(v / sv)) * sv                # exact integers times the step


class Layer(nn.Module):
    def __init__(self, s: BertShape, q: QuantConfig):
        super().__init__()
        h = s.hidden_size
        lin = lambda k, n: QLinear(k, n, q.weight_bits, q.act_bits, split=q.split,  # noqa: E731
                                   split_scales=q.split_scales)
        self.attn = SelfAttention(s, q)
        self.attn_out = lin(s.attention_size, h)
        self.attn_ln = nn.LayerNorm(h, eps=s.layer_norm_eps)
        self.ffn_in = lin(h, s.intermediate_size)
        self.ffn_out = lin(s.intermediate_size, h)
        self.ffn_ln = nn.LayerNorm(h, eps=s.layer_norm_eps)
        self.drop = nn.Dropout(s.dropout)
        self.gelu = ibert_gelu if q.gelu == "ibert" else F.gelu

    def forward(self, x: torch.Tensor, mask_add: torch.Tensor):
        ctx, scores, qkv = self.attn(x, mask_add)
        x = self.attn_ln(x + self.drop(self.attn_out(ctx)))
        x = self.ffn_ln(x + self.drop(self.ffn_out(self._activation(self.ffn_in(x)))))
        return x, scores, qkv

    def _activation(self, f: torch.Tensor) -> torch.Tensor:
        """GELU; before a 1-bit FFN2 input (BiBERT) the sign of GELU(f) is sign(f), so where the
        I-BERT polynomial has saturated to exactly 0 for f < 0 (f < -2.5: sign(0) would give +1) the
        value is kept just below 0. The gradient is unchanged (GELU's is 0 there)."""
        h = self.gelu(f)
        if getattr(self.ffn_out.act_quant, "bits", FP) != 1:
            return h
        return torch.where((f < 0) & (h >= 0), torch.full_like(h, -1e-30), h)


class QuantBert(nn.Module):
    """Embeddings, `num_layers` layers, pooler (tanh) and a full-precision classifier."""

    def __init__(self, shape: BertShape, quant: QuantConfig):
        super().__init__()
        self.shape, self.quant = shape, quant
        self.embeddings = Embeddings(shape, quant)
        self.layers = nn.ModuleList(Layer(shape, quant) for _ in range(shape.num_layers))
        self.pooler = QLinear(shape.hidden_size, shape.hidden_size, quant.weight_bits, quant.act_bits,
                              split=quant.split, split_scales=quant.split_scales)
        self.drop = nn.Dropout(shape.dropout)
        self.classifier = nn.Linear(shape.hidden_size, shape.num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, internals: bool = False):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask_add = self.attention_bias(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        hidden, scores, qkv = [x], [], []
        for layer in self.layers:
            x, s, t = layer(x, mask_add)
            hidden.append(x)
            scores.append(s)
            qkv.append(t)
        logits = self.head(x)
        if internals:
            return logits, {"hidden": hidden, "scores": scores, "qkv": qkv, "mask": attention_mask}
        return logits

    @staticmethod
    def attention_bias(attention_mask: torch.Tensor) -> torch.Tensor:
        """What every score gets added: 0 on real keys, -10^4 on padding, (n, 1, 1, t)."""
        return (1.0 - attention_mask[:, None, None, :].float()) * -10000.0

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Pooler (tanh of the [CLS] projection) and classifier: the logits of the last hidden states."""
        return self.classifier(self.drop(torch.tanh(self.pooler(x[:, 0]))))


# -- building from a HF checkpoint ----------------------------------------------------------
_HF_LAYER = {"attn.query": "attention.self.query", "attn.key": "attention.self.key",
             "attn.value": "attention.self.value", "attn_out": "attention.output.dense",
             "attn_ln": "attention.output.LayerNorm", "ffn_in": "intermediate.dense",
             "ffn_out": "output.dense", "ffn_ln": "output.LayerNorm"}
_HF_TOP = {"embeddings.word": "embeddings.word_embeddings", "embeddings.position": "embeddings.position_embeddings",
           "embeddings.token_type": "embeddings.token_type_embeddings", "embeddings.ln": "embeddings.LayerNorm",
           "pooler": "pooler.dense"}


def hf_name(name: str) -> str | None:
    """Our parameter name -> the HF BertModel name (None for parameters HF does not have)."""
    mod, _, leaf = name.rpartition(".")
    if leaf not in ("weight", "bias"):
        return None
    if mod in _HF_TOP:
        return f"{_HF_TOP[mod]}.{leaf}"
    parts = mod.split(".")
    if parts[0] == "layers" and ".".join(parts[2:]) in _HF_LAYER:
        return f"encoder.layer.{parts[1]}.{_HF_LAYER['.'.join(parts[2:])]}.{leaf}"
    return None


def load_backbone(name_or_path: str):
    """(HF config, state dict, tokenizer) of a BERT checkpoint: a hub name or a local folder."""
    import transformers

    try:
        bert = transformers.BertModel.from_pretrained(name_or_path)
        tok = transformers.AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load BERT backbone '{name_or_path}': {msg}") from None
    return bert.config, bert.state_dict(), tok


@torch.no_grad()
def load_pretrained(model: QuantBert, hf_state: dict) -> list[str]:
    """Copy HF BERT weights into the latent weights; returns our names left as initialised."""
    missing = []
    for name, p in model.named_parameters():
        src = hf_name(name)
        if src is None or src not in hf_state:
            missing.append(name)
            continue
        t = hf_state[src]
        if t.shape != p.shape:
            raise ValueError(f"backbone tensor {src} has shape {tuple(t.shape)}, model expects {tuple(p.shape)}")
        p.copy_(t)
    return missing


def build(shape: BertShape, quant: QuantConfig, init_from: dict | QuantBert | None = None) -> QuantBert:
    """A QuantBert whose latent weights are a HF state dict's or another QuantBert's."""
    model = QuantBert(shape, quant)
    if isinstance(init_from, QuantBert):
        own = model.state_dict()
        src = {k: v for k, v in init_from.state_dict().items()
               if k in own and own[k].shape == v.shape and not k.endswith(("initialized", "step"))}
        model.load_state_dict(src, strict=False)
    elif init_from is not None:
        load_pretrained(model, init_from)
    return model


# -- ternary weight splitting (BinaryBERT, Bai et al. 2021) --------------------------------------
@torch.no_grad()
def tws_weights(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a ternary latent weight (N, K) into binary latents w1, w2, row by row, with

        w1 + w2 = w,   Q1(w1) + Q1(w2) = Q2(w)   (Q1 binary: mean|.| sign; Q2 TWN ternary)

    I = {|w| > 0.7 mean|w|} (nonzero ternary), J = {not I, w > 0}, K = {not I, w <= 0}; on I both
    halves keep the sign (a w, (1-a) w), off I they cancel (b + w, -b on J; b, w - b on K). Solving
    mean|w1| = mean|w2| = alpha_ternary / 2 gives a and b below (a derivation of the paper's Eq. 6).
    """
    aw = w.abs()
    inside = aw > 0.7 * aw.mean(1, keepdim=True)
    pos = ~inside & (w > 0)
    neg = ~inside & ~(w > 0)
    s_i, s_j, s_k = ((aw * m).sum(1, keepdim=True) for m in (inside, pos, neg))
    n_i = inside.sum(1, keepdim=True).clamp_min(1)
    n_out = (~inside).sum(1, keepdim=True).clamp_min(1)
    n = w.shape[1]
    a = (s_i - s_j + s_k) / (2 * s_i.clamp_min(1e-12))
    b = (n * s_i / n_i - aw.sum(1, keepdim=True)) / (2 * n_out)
    w1 = torch.where(inside, a * w, torch.where(pos, b + w, b))
    w2 = torch.where(inside, (1 - a) * w, torch.where(pos, -b, w - b))
    return w1, w2


@torch.no_grad()
def tws_split(ternary: QuantBert, scales: str = "half") -> QuantBert:
    """The binary model (split layers, twice the binary width) equivalent to a ternary one.

    scales "half" (BinaryBERT): each half is binarized with its own row scale, alpha1 = mean|w1|
    and alpha2 = mean|w2| (both alpha_ternary / 2 at the split, then trained apart: the member is
    no longer ternary). "shared": one row scale over [w1 | w2]. Split a half-width ternary model
    (model/prune.py) and the binary member has the backbone's binary size and operations."""
    if ternary.quant.weight_bits != 2:
        raise ValueError("tws_split needs a ternary (weight_bits = 2) model")
    quant = replace(ternary.quant, weight_bits=1, split=True, split_scales=scales)
    binary = build(ternary.shape, quant, init_from=ternary)
    for (name, src), (_, dst) in zip(ternary.named_modules(), binary.named_modules()):
        if isinstance(src, QLinear):
            w1, w2 = tws_weights(src.weight)
            dst.weight.copy_(torch.cat([w1, w2], dim=1))
            dst.bias.copy_(src.bias)
        if isinstance(src, ActQuantizer):
            dst.load_state_dict(src.state_dict())
    return binary


# -- losses -------------------------------------------------------------------------------------
def _direction(m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-normalised token-similarity matrix of (B, nh, T, hd) with padding removed (padded rows
    and columns are exactly 0)."""
    m = m * mask[:, None, :, None]
    p = m @ m.transpose(-2, -1)
    return F.normalize(p, dim=-1)


def dmd_loss(student_qkv, teacher_qkv, mask: torch.Tensor, teacher_heads=None) -> torch.Tensor:
    """BiBERT's direction-matching distillation, per example: sum over layers and Q, K, V of the
    mean squared distance of the normalised similarity matrices, the mean taken over the real
    tokens' pairs (heads x n^2 for an example of n tokens; padding would shrink it by (T/n)^2).
    `teacher_heads[l]`: the teacher heads the student's heads of layer l correspond to. Shape (B,)."""
    mask = mask.float()
    n = mask.sum(1).clamp_min(1)
    total = 0.0
    for li, (s_t, t_t) in enumerate(zip(student_qkv, teacher_qkv)):
        sel = None if teacher_heads is None else teacher_heads[li]
        for s, t in zip(s_t, t_t):
            t = t.detach() if sel is None else t.detach()[:, sel]
            d = _direction(s, mask) - _direction(t, mask)
            total = total + d.pow(2).sum(dim=(1, 2, 3)) / (s.shape[1] * n * n)
    return total
