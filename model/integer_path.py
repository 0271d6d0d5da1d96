"""The integer inference path of a package: what the accelerator computes, as plain data.

`integer_model(package)` fixes every member to integers (`IntegerModel`: the compiler's input)
and `integer_predictions` applies it, ending in the ensemble's integer vote (model/vote.py).
The arithmetic is docs/NUMERICS.md's; the members' weights and grids come from the package
(model/package.py), nothing is calibrated on the data the path runs on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bebert import integer_ops as I
from bebert.numerics import requantize_torch

from . import vote as V
from .binary_linear import IntegerLinear
from .package import Package, PackageError
from .quant_bert import FP, QEmbedding, QLinear, QuantBert, QuantConfig


class IntegerPathUnavailable(NotImplementedError, ValueError):
    """The integer inference path cannot run this package."""


# The integer path of one member (I-BERT style, bebert/integer_ops.py for the non-linear kernels):
#   embeddings   integer tables on one grid, summed, integer LayerNorm -> 16-bit residual stream
#   projections  activation codes (requantized to the layer's LSQ step), BinaryLinear.to_integer
#   attention    Q/K/V codes straight from the POST unit, int scores, i-softmax (16-bit) requantized
#                to the probability quantizer's step, int context
#   BiBERT       Bi-Attention instead: +-1 Q/K/V, probs = [q k^T >= 0] on real keys, ctx = probs v,
#                attn_out's input sign(ctx); every 1-bit input the exact sign of its code (NUMERICS "BiBERT")
#   residuals    integer add then integer LayerNorm; FFN: i-GELU straight into FFN2's input codes
#   pooler       integer linear; tanh a 2^16-entry lookup table on the 16-bit pooler codes
#   classifier   16-bit weight codes per row, integer accumulate; the host only dequantizes the
#                logits (acc * per-class scale, float64 -> float32)
# The 16-bit grids of the residual stream (embedding sums, linear outputs, residual sums, LayerNorm
# outputs) are calibrated ONCE, at export, on a fixed calibration set (`export_package(calibration=)`):
# CAL_HEADROOM * max |x| of the float model / (2^15 - 1), stored in the manifest. Every other scale
# is a learned LSQ step. The integer path is therefore a pure function of the package:
# `integer_model(package)` is all of it as plain data, `integer_logits` only applies it.
_R_BITS = 16
CAL_HEADROOM = 2.0   # grid = headroom * calibration max / (2^15 - 1): one bit above the largest value seen


def _supports_integer(q: QuantConfig) -> str | None:
    if q.weight_bits != 1 or q.embed_bits == FP:
        return "weights and embeddings must be binary"
    if FP in (q.act_bits, q.attn_bits):
        return "activations must be 1..8 bits (BinaryBERT) or 1 bit with Bi-Attention (BiBERT)"
    if q.bi_attention and q.act_bits != 1:
        return "Bi-Attention (BiBERT) needs 1-bit activations: its context enters attn_out as sign bits"
    return None


def _scale_names(num_layers: int) -> list[str]:
    """The modules whose (input, output) 16-bit grids the integer path needs."""
    names = ["embeddings.ln", "pooler"]
    for li in range(num_layers):
        names += [f"layers.{li}.{n}" for n in ("attn_out", "attn_ln", "ffn_in", "ffn_out", "ffn_ln")]
    return names


@torch.no_grad()
def calibrate_scales(model: QuantBert, calibration: dict, batch_size: int = 64) -> dict[str, list[float]]:
    """The 16-bit grids (input, output) of every module the integer path needs, from the float
    model's max |x| over the whole calibration set (a fixed set: the result is one number each)."""
    names = set(_scale_names(len(model.layers)))
    peak: dict = {}
    hooks = []
    for name, mod in model.named_modules():
        if name in names:
            def hook(m, inp, out, name=name):
                a, b = float(inp[0].detach().abs().max()), float(out.detach().abs().max())
                pa, pb = peak.get(name, (0.0, 0.0))
                peak[name] = (max(pa, a), max(pb, b))
            hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        n = calibration["input_ids"].shape[0]
        for i in range(0, n, batch_size):
            model(*(calibration[k][i:i + batch_size] for k in ("input_ids", "token_type_ids", "attention_mask")))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    top = (1 << (_R_BITS - 1)) - 1
    grid = lambda v: max(CAL_HEADROOM * v, 1e-6) / top  # noqa: E731
    return {k: [grid(a), grid(b)] for k, (a, b) in sorted(peak.items())}


# -- the integer model as plain data ------------------------------------------------------------
@dataclass(frozen=True)
class IntLinear:
    """One projection: input codes -> (act: requantize to the layer's LSQ step; None when the
    input already is codes on it) -> ([x, x] when split, TWS) -> layer (IntegerLinear).

    `mult_hi` (int32 per output, split layers with a scale per half): the second half's POST
    multiplier, v = acc_lo * layer.mult + acc_hi * mult_hi + layer.bias (acc_lo over the first K
    columns of the 2K-wide sign matrix, acc_hi over the rest); None: one multiplier per row."""

    layer: IntegerLinear
    act: I.RequantConsts | None
    split: bool
    mult_hi: np.ndarray | None = None


@dataclass(frozen=True)
class IntegerLayer:
    """One encoder layer. Softmax attention (BinaryBERT) or, with `bi_attention` (BiBERT), Bi-Attention:
    q, k, v are +-1 codes, probs = [q k^T >= 0] on real keys (0/1, no softmax constants: `softmax` and
    `probs` are None), ctx = probs @ v, and attn_out's input is sign(ctx) (0 -> +1; its `act` None)."""

    heads: int
    head_dim: int
    query: IntLinear            # out: q_quant codes
    key: IntLinear              # out: k_quant codes
    value: IntLinear            # out: v_quant codes
    softmax: I.SoftmaxConsts | None  # int scores (q @ k^T) -> 16-bit probabilities (None: Bi-Attention)
    probs: I.RequantConsts | None    # 16-bit probabilities -> p_quant codes (None: Bi-Attention)
    attn_out: IntLinear         # context codes (p_quant * v_quant grid; Bi-Attention: sign(ctx)) -> 16-bit
    attn_add: I.AddConsts
    attn_ln: I.LayerNormConsts
    ffn_in: IntLinear           # -> 16-bit
    gelu: I.GeluConsts | I.RequantConsts  # 16-bit -> FFN2's input codes (1-bit: the sign, RequantConsts)
    ffn_out: IntLinear          # -> 16-bit (act None: i-GELU's output is its input)
    ffn_add: I.AddConsts
    ffn_ln: I.LayerNormConsts
    bi_attention: bool = False


@dataclass(frozen=True)
class IntegerMember:
    word: np.ndarray            # int32 (V, H) codes on embed_scale
    position: np.ndarray        # int32 (P, H)
    token_type: np.ndarray      # int32 (T, H)
    embed_scale: float
    embed_ln: I.LayerNormConsts  # summed codes (20-bit) -> 16-bit residual stream
    layers: tuple[IntegerLayer, ...]
    pooler: IntLinear           # [CLS] -> 16-bit codes on pooler_scale
    pooler_scale: float
    tanh_lut: np.ndarray        # int32 (2^16,): tanh codes on 1/(2^15-1), indexed by pooler code + 2^15
    cls_codes: np.ndarray       # int32 (labels, H): classifier weights, 16-bit per row
    cls_bias: np.ndarray        # int64 (labels,): classifier bias on the accumulator grid
    cls_scale: np.ndarray       # float64 (labels,): accumulator grid; logits = acc * cls_scale (host)


@dataclass(frozen=True)
class IntegerModel:
    members: tuple[IntegerMember, ...]
    alphas: tuple[float, ...]
    max_seq_len: int
    calibration: dict           # the manifest's integer_calibration (examples, source, headroom, bits)
    vote: V.EnsembleVote | None = None  # the integer combination of the members (model/vote.py)


def _int_linear(layer: QLinear, out_step: float, out_bits: int, s_in: float | None,
                out_signed: bool = True, exact_sign: bool = False) -> IntLinear:
    """`exact_sign` (BiBERT): a 1-bit input is the sign of the input code itself (ratio 1: code >= 0
    -> +1), not of the code requantized to the layer's step (whose rounding turns small negative
    codes into 0 -> +1); the sign does not depend on the step."""
    q = layer.act_quant
    act = None
    if s_in is not None:
        s_to = s_in if exact_sign and q.bits == 1 else float(q.step.abs())
        act = I.prepare_requant(s_in, s_to, q.bits, q.signed)
    lin, mult_hi = layer.to_integer_halves(out_step, out_bits, out_signed)
    return IntLinear(lin, act, bool(layer.split), mult_hi)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _table(qe: QEmbedding, s_e: float) -> np.ndarray:
    rows = qe(torch.arange(qe.weight.shape[0]))
    t = torch.floor(rows / s_e + 0.5).to(torch.int64)
    if int(t.abs().max()) >= 1 << 31:
        raise IntegerPathUnavailable("--integer: embedding codes beyond int32 on the calibrated grid")
    return t.to(torch.int32).numpy()


@torch.no_grad()
def embedding_tables(model: QuantBert, cal: dict) -> dict[str, np.ndarray]:
    """The three embedding tables as int32 codes on the embeddings' calibrated grid."""
    emb, s_e = model.embeddings, cal["embeddings.ln"][0]
    return {name: _table(getattr(emb, name), s_e) for name in ("word", "position", "token_type")}


@torch.no_grad()
def integer_member(model: QuantBert, cal: dict, tables: dict | None = None) -> IntegerMember:
    """One member fixed to integers with the stored grids `cal` ({module: (in_grid, out_grid)}).
    `tables`: the embedding tables of `embedding_tables(model, cal)` when already at hand."""
    why = _supports_integer(model.quant)
    if why:
        raise IntegerPathUnavailable(f"--integer: {why}")
    missing = [n for n in _scale_names(len(model.layers)) if n not in cal]
    if missing:
        raise PackageError(f"integer_scales lack '{missing[0]}' ({len(missing)} missing)")
    model.eval()
    step = lambda q: float(q.step.abs())  # noqa: E731
    emb = model.embeddings
    s_e, s_x = cal["embeddings.ln"]
    embed_ln = I.prepare_layernorm(s_e, _np(emb.ln.weight), _np(emb.ln.bias), s_x, _R_BITS,
                                   eps=emb.ln.eps, in_bits=20)
    layers = []
    bi = bool(model.quant.bi_attention)
    for li, layer in enumerate(model.layers):
        at, p = layer.attn, f"layers.{li}"
        q = _int_linear(at.query, step(at.q_quant), at.q_quant.bits, s_x, exact_sign=bi)
        k = _int_linear(at.key, step(at.k_quant), at.k_quant.bits, s_x, exact_sign=bi)
        v = _int_linear(at.value, step(at.v_quant), at.v_quant.bits, s_x, exact_sign=bi)
        s_ao = cal[f"{p}.attn_out"][1]
        if bi:  # Bi-Attention: no softmax; attn_out takes sign(ctx) as its +-1 input codes
            sm = probs = None
            ao = _int_linear(layer.attn_out, s_ao, _R_BITS, None)
        else:
            sm = I.prepare_softmax(step(at.q_quant) * step(at.k_quant) / math.sqrt(at.head_dim), out_bits=16)
            probs = I.prepare_requant(sm.out_scale, step(at.p_quant), at.p_quant.bits, signed=False)
            ao = _int_linear(layer.attn_out, s_ao, _R_BITS, step(at.p_quant) * step(at.v_quant))
        s_sum, s_ln = cal[f"{p}.attn_ln"]
        attn_add = I.prepare_add(s_x, s_ao, s_sum, _R_BITS)
        attn_ln = I.prepare_layernorm(s_sum, _np(layer.attn_ln.weight), _np(layer.attn_ln.bias), s_ln, _R_BITS,
                                      eps=layer.attn_ln.eps, in_bits=_R_BITS)
        s_x = s_ln
        s_fi = cal[f"{p}.ffn_in"][1]
        fi = _int_linear(layer.ffn_in, s_fi, _R_BITS, s_x, exact_sign=bi)
        fo = layer.ffn_out.act_quant
        # 1-bit FFN2 inputs are sign(GELU(x)) = sign(x): the sign of ffn_in's codes
        gelu = I.prepare_requant(s_fi, s_fi, 1) if fo.bits == 1 else I.prepare_gelu(s_fi, step(fo), fo.bits, fo.signed)
        s_fo = cal[f"{p}.ffn_out"][1]
        ffo = _int_linear(layer.ffn_out, s_fo, _R_BITS, None)
        s_sum, s_ln = cal[f"{p}.ffn_ln"]
        ffn_add = I.prepare_add(s_x, s_fo, s_sum, _R_BITS)
        ffn_ln = I.prepare_layernorm(s_sum, _np(layer.ffn_ln.weight), _np(layer.ffn_ln.bias), s_ln, _R_BITS,
                                     eps=layer.ffn_ln.eps, in_bits=_R_BITS)
        s_x = s_ln
        layers.append(IntegerLayer(at.heads, at.head_dim, q, k, v, sm, probs, ao, attn_add, attn_ln,
                                   fi, gelu, ffo, ffn_add, ffn_ln, bi))
    s_pool = cal["pooler"][1]
    tables = tables if tables is not None else embedding_tables(model, cal)
    return IntegerMember(**tables, embed_scale=s_e, embed_ln=embed_ln,
                         layers=tuple(layers), pooler=_int_linear(model.pooler, s_pool, _R_BITS, s_x, exact_sign=bi),
                         pooler_scale=s_pool, **_head(model.classifier, s_pool))


_TANH_TOP = (1 << (_R_BITS - 1)) - 1


def _head(cls: nn.Linear, s_pool: float) -> dict:
    """tanh as a lookup table over the 16-bit pooler codes (round half up, float64 once, here) and
    the classifier as 16-bit weight codes per row with an integer bias."""
    codes = np.arange(-(1 << (_R_BITS - 1)), 1 << (_R_BITS - 1), dtype=np.float64)
    lut = np.floor(np.tanh(codes * s_pool) * _TANH_TOP + 0.5).astype(np.int32)
    w = cls.weight.detach().double().numpy()
    w_scale = np.maximum(np.abs(w).max(axis=1), 1e-30) / _TANH_TOP
    w_codes = np.clip(np.floor(w / w_scale[:, None] + 0.5), -_TANH_TOP, _TANH_TOP).astype(np.int32)
    acc_scale = w_scale / _TANH_TOP
    bias = np.floor(cls.bias.detach().double().numpy() / acc_scale + 0.5).astype(np.int64)
    return {"tanh_lut": lut, "cls_codes": w_codes, "cls_bias": bias, "cls_scale": acc_scale}


def _acc_bound(head: dict) -> int:
    """The largest |classifier accumulator|: 16-bit tanh codes times 16-bit weight codes, plus bias."""
    return int(head["cls_codes"].shape[1]) * _TANH_TOP * _TANH_TOP + int(np.abs(head["cls_bias"]).max())


def integer_model(package: Package) -> IntegerModel:
    """The whole integer model of the package as plain data (what the compiler consumes): a pure
    function of the package, nothing calibrated on the data it will run on."""
    scales = package.integer_scales or [None] * len(package.members)
    out = []
    for i, (m, sc) in enumerate(zip(package.members, scales)):
        why = _supports_integer(m.quant)
        if why:
            raise IntegerPathUnavailable(f"--integer: member {i}: {why}")
        if sc is None:
            raise IntegerPathUnavailable(f"--integer: member {i} has no integer_scales in the package "
                                         "(exported without calibration data); re-export it")
        out.append(integer_member(m, sc))
    rec = package.manifest.get("integer_vote")
    try:
        vote = V.EnsembleVote.from_dict(rec) if rec else V.prepare_vote(
            package.vote, package.alphas, [m.cls_scale for m in out], [_acc_bound(m.__dict__) for m in out])
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{package.path}: malformed integer_vote ({type(e).__name__}: {e})") from None
    if len(vote.members) != len(out):
        raise PackageError(f"{package.path}: integer_vote has {len(vote.members)} members, the package {len(out)}")
    return IntegerModel(tuple(out), tuple(package.alphas), package.max_seq_len,
                        dict(package.manifest.get("integer_calibration") or {}), vote)


# -- applying it --------------------------------------------------------------------------------
_EXACT = float(1 << 53)
_EXACT32 = float(1 << 24)


def imatmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The exact int64 product of integer tensors. When every partial sum is below 2^24 in
    magnitude (max|a| max|b| K < 2^24: 4-bit codes times sign weights, say) it runs as a float32
    BLAS matmul, below 2^53 (always, for codes of at most 16 bits and K < 2^21) as a float64 one:
    sums of integers below the mantissa's range are exact in any order; otherwise in int64
    (PyTorch's slow integer kernel)."""
    a, b = a.to(torch.int64), b.to(torch.int64)
    k = a.shape[-1]
    if not (a.numel() and b.numel()):
        return a @ b
    bound = float(a.abs().max()) * float(b.abs().max()) * k
    if bound < _EXACT32:
        return (a.float() @ b.float()).to(torch.int64)
    if bound < _EXACT:
        return (a.double() @ b.double()).to(torch.int64)
    return a @ b


def _apply_linear(lin: IntLinear, a: torch.Tensor) -> torch.Tensor:
    if lin.act is not None:
        a = I.apply_requant(a, lin.act)
    L = lin.layer
    w = torch.from_numpy(L.weights())
    mult_hi = getattr(lin, "mult_hi", None)  # (synthetic models of the compiler have none)
    if mult_hi is not None:  # TWS with a scale per half: two accumulators, one rounding
        k = w.shape[1] // 2
        a = a.to(torch.int64)
        v = imatmul(a, w[:, :k].t()) * torch.from_numpy(np.asarray(L.mult, np.int64)) + \
            imatmul(a, w[:, k:].t()) * torch.from_numpy(np.asarray(mult_hi, np.int64))
        return requantize_torch(v, torch.ones(1, dtype=torch.int64), torch.from_numpy(np.asarray(L.bias)),
                                L.shift, L.out_bits, L.out_signed).to(torch.int64)
    if lin.split:  # TWS: [x, x] @ [w1 | w2]^T
        a = torch.cat([a, a], dim=-1)
    acc = imatmul(a, w.t())
    return requantize_torch(acc, torch.from_numpy(np.asarray(L.mult)), torch.from_numpy(np.asarray(L.bias)),
                            L.shift, L.out_bits, L.out_signed).to(torch.int64)


def bi_attention(scores: torch.Tensor, v: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """BiBERT's Bi-Attention in integers (docs/NUMERICS.md, "BiBERT"): probs = [q.k >= 0] on real keys
    (0 on masked ones), ctx = probs @ v exactly, and the +-1 codes sign(ctx) (0 -> +1) attn_out reads."""
    probs = ((scores >= 0) & keys).to(torch.int64)
    return torch.where(imatmul(probs, v) >= 0, 1, -1).to(torch.int64)


def integer_embed(im: IntegerMember, batch: dict) -> torch.Tensor:
    """The embedding sums and their integer LayerNorm: the 16-bit residual codes entering layer 0."""
    ids, tt = batch["input_ids"], batch["token_type_ids"]
    pos = torch.arange(ids.shape[1])[None, :].expand_as(ids)
    tab = lambda t: torch.from_numpy(t).to(torch.int64)  # noqa: E731
    e = tab(im.word)[ids] + tab(im.position)[pos] + tab(im.token_type)[tt]
    return I.apply_layernorm(e, im.embed_ln).to(torch.int64)


def integer_keys(batch: dict) -> torch.Tensor:
    """The real keys every head attends to, (n, 1, 1, t)."""
    return batch["attention_mask"].bool()[:, None, None, :]


def integer_layer(L: IntegerLayer, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """One encoder layer on the 16-bit residual codes `x` (n, t, hidden): the next layer's codes."""
    b, t, h = x.shape
    heads = lambda z: z.view(b, t, L.heads, L.head_dim).transpose(1, 2)  # noqa: E731
    q, k, v = (heads(_apply_linear(lin, x)) for lin in (L.query, L.key, L.value))
    scores = imatmul(q, k.transpose(-2, -1))
    if getattr(L, "bi_attention", False):
        ctx = bi_attention(scores, v, keys)
    else:
        probs = I.apply_softmax(scores, L.softmax, mask=keys)
        ctx = imatmul(I.apply_requant(probs, L.probs).to(torch.int64), v)
    a = _apply_linear(L.attn_out, ctx.transpose(1, 2).reshape(b, t, L.heads * L.head_dim))
    x = I.apply_layernorm(I.apply_add(x, a, L.attn_add), L.attn_ln).to(torch.int64)
    f = _apply_linear(L.ffn_in, x)
    g = (I.apply_requant(f, L.gelu) if isinstance(L.gelu, I.RequantConsts)
         else I.apply_gelu(f, L.gelu)).to(torch.int64)  # FFN2's input codes
    f = _apply_linear(L.ffn_out, g)
    return I.apply_layernorm(I.apply_add(x, f, L.ffn_add), L.ffn_ln).to(torch.int64)


def integer_head(im: IntegerMember, x: torch.Tensor) -> torch.Tensor:
    """Pooler, tanh table and classifier on the last layer's codes: the int64 accumulators (n, labels)."""
    pooled = _apply_linear(im.pooler, x[:, 0])
    hidden = torch.from_numpy(im.tanh_lut).to(torch.int64)[pooled + (1 << (_R_BITS - 1))]
    return imatmul(hidden, torch.from_numpy(im.cls_codes).t()) + torch.from_numpy(im.cls_bias)


@torch.no_grad()
def integer_accumulators(im: IntegerMember, batch: dict) -> torch.Tensor:
    """One member's int64 classifier accumulators (n, labels) on the integer path. Every example is
    computed independently of the others in the batch."""
    x, keys = integer_embed(im, batch), integer_keys(batch)
    for L in im.layers:
        x = integer_layer(L, x, keys)
    return integer_head(im, x)


def dequantize_logits(im: IntegerMember, acc: torch.Tensor) -> torch.Tensor:
    """The accumulators as logits (acc * cls_scale, float64 -> float32): the one float step."""
    return (acc.double() * torch.from_numpy(im.cls_scale)).float()


def apply_integer_member(im: IntegerMember, batch: dict) -> torch.Tensor:
    """One member's logits on the integer path: its accumulators dequantized (acc * cls_scale,
    float64 -> float32), the one float step, for people to read (the vote needs none of it)."""
    return dequantize_logits(im, integer_accumulators(im, batch))


def member_accumulators(im: IntegerMember, batch: dict, batch_size: int = 64) -> torch.Tensor:
    """One member's int64 accumulators (n, labels) of the whole batch, in batches sorted by length
    and cut to their longest sequence (every example is computed independently of the others and
    of its padding, so this changes no bit)."""
    from . import batching as B

    acc = None
    for idx in B.by_length(B.lengths(batch), batch_size):
        a = integer_accumulators(im, B.take({k: batch[k] for k in B.KEYS}, idx))
        if acc is None:
            acc = torch.empty(batch["input_ids"].shape[0], a.shape[1], dtype=torch.int64)
        acc[idx] = a
    return acc


def integer_member_accumulators(package: Package, batch: dict, batch_size: int = 64,
                                model: IntegerModel | None = None) -> list[np.ndarray]:
    """Per member, int64 classifier accumulators (n, labels) of the batch on the integer path
    (`member_accumulators`)."""
    im = model if model is not None else integer_model(package)
    return [member_accumulators(m, batch, batch_size).numpy() for m in im.members]


def integer_predictions(package: Package, batch: dict, batch_size: int = 64,
                        model: IntegerModel | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """(per-member, ensemble) predictions on the integer path, integers only: class indices, or
    Q15.16 STS-B scores (model/vote.py)."""
    im = model if model is not None else integer_model(package)
    return V.apply_vote(im.vote, integer_member_accumulators(package, batch, batch_size, im))


def integer_logits(package: Package, batch: dict, batch_size: int = 64,
                   model: IntegerModel | None = None) -> list[torch.Tensor]:
    """Per-member logits on the integer path: `integer_model(package)` (BinaryLinear.to_integer for
    every projection, the I-BERT constants of bebert/integer_ops.py for softmax, GELU, LayerNorm and
    residual adds, the grids stored in the package) applied to the batch."""
    im = model if model is not None else integer_model(package)
    n = batch["input_ids"].shape[0]
    out = []
    for m in im.members:
        parts = [apply_integer_member(m, {k: v[i:i + batch_size] for k, v in batch.items()})
                 for i in range(0, n, batch_size)]
        out.append(torch.cat(parts))
    return out
