"""Synthetic integer models: random binary BERT ensembles with the right shapes, built fast.

`synthetic_model(shape, seed)` returns an object with the fields of `model/package.py`'s
`IntegerModel` (members, alphas, max_seq_len, calibration; each member's word / position /
token_type tables, embed_ln, layers, pooler, tanh_lut, cls_codes, cls_bias, cls_scale; each
layer's query ... ffn_ln), so the compiler and `apply_integer_member` read it exactly like a
trained package's integer model. It is numpy only (no PyTorch: bert-base builds in about a
second): weights are seeded random signs; the integer constants come from the same
`prepare_*` functions as a trained model, over plausible scales (activation steps, 16-bit
residual grids), so every kernel runs in its normal range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bebert import integer_ops as I
from bebert.numerics import IntegerLinear, act_range, fixed_point, sign_point

from .errors import CompileError
from bebert.ensemble_shape import EnsembleShape

R_BITS = 16
R_TOP = (1 << (R_BITS - 1)) - 1


def _signs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    raw = np.frombuffer(rng.bytes(-(-n * k // 8)), np.uint8)
    return np.unpackbits(raw, count=n * k).reshape(n, k).astype(bool)


@dataclass(frozen=True)
class SynIntLinear:
    layer: IntegerLinear
    act: I.RequantConsts | None
    split: bool
    mult_hi: np.ndarray | None = None   # a scale per half: the second half's multiplier (`IntLinear`)


@dataclass(frozen=True)
class SynLayer:
    heads: int
    head_dim: int
    query: SynIntLinear
    key: SynIntLinear
    value: SynIntLinear
    softmax: I.SoftmaxConsts | None     # None: Bi-Attention (BiBERT)
    probs: I.RequantConsts | None
    attn_out: SynIntLinear
    attn_add: I.AddConsts
    attn_ln: I.LayerNormConsts
    ffn_in: SynIntLinear
    gelu: I.GeluConsts | I.RequantConsts  # RequantConsts: 1-bit FFN2 inputs, the sign of ffn_in's codes
    ffn_out: SynIntLinear
    ffn_add: I.AddConsts
    ffn_ln: I.LayerNormConsts
    bi_attention: bool = False


class SynMember:
    """One member; the word table is held as signs + per-row code pairs (`word_binary`) and
    expanded to the dense int32 table only when `word` is read (the reference needs it)."""

    def __init__(self, word_binary, position, token_type, embed_scale, embed_ln, layers, pooler,
                 pooler_scale, tanh_lut, cls_codes, cls_bias, cls_scale):
        self.word_binary = word_binary
        self.position, self.token_type, self.embed_scale = position, token_type, embed_scale
        self.embed_ln, self.layers, self.pooler, self.pooler_scale = embed_ln, layers, pooler, pooler_scale
        self.tanh_lut, self.cls_codes, self.cls_bias, self.cls_scale = tanh_lut, cls_codes, cls_bias, cls_scale
        self._word = None

    @property
    def word(self) -> np.ndarray:
        if self._word is None:
            signs, pairs = self.word_binary
            self._word = np.where(signs, pairs[:, :1], pairs[:, 1:]).astype(np.int32)
        return self._word


@dataclass(frozen=True)
class SynModel:
    members: tuple
    alphas: tuple[float, ...]
    max_seq_len: int
    calibration: dict
    vote: object = None      # model/vote.py EnsembleVote: the shape's vote over the seeded alphas


def _linear(rng, n: int, k: int, in_bits: int, in_signed: bool, s_in: float | None, s_act: float,
            out_step: float, out_bits: int, out_signed: bool = True, split: bool = False,
            half: bool = False) -> SynIntLinear:
    """A random binary linear; `split` with `half`: a scale per row and half, both multipliers
    chosen by one `fixed_point` that keeps each half's product inside int32 (as the export does)."""
    kk = 2 * k if split else k
    alpha = np.abs(rng.normal(0.05, 0.01, (2 if half else 1) * n)) + 1e-3
    bias = rng.normal(0, 0.05, n)
    one = in_bits == 1   # +-1 inputs: room to fold the one-plane correction; their sign taken exactly
    qmax = 1 if one else max(abs(v) for v in act_range(in_bits, in_signed))
    if half:
        mult, ibias, shift = fixed_point(alpha * s_act / out_step, np.concatenate([bias, 0 * bias]) / out_step,
                                         acc_bound=kk * qmax, fold_bound=k * qmax)
        mult, ibias, mult_hi = mult[:n], ibias[:n], mult[n:]
    else:
        point = sign_point if out_bits == 1 else fixed_point
        mult, ibias, shift = point(alpha * s_act / out_step, bias / out_step, acc_bound=kk * qmax,
                                   fold_bound=max(2, kk) if one else 0)
        mult_hi = None
    layer = IntegerLinear(_signs(rng, n, kk), mult, ibias, shift, in_bits, in_signed, out_bits, out_signed)
    act = None if s_in is None else I.prepare_requant(s_in, s_in if one else s_act, in_bits, in_signed)
    return SynIntLinear(layer, act, split, mult_hi)


def _spread(k: int, bits: int, s_act: float) -> float:
    """Typical |y| of a binary linear over k inputs of `bits`-bit codes on step s_act."""
    return 3 * math.sqrt(k) * max(1, (1 << (bits - 1)) / 2) * s_act * 0.05


_LN_CACHE: dict = {}


def _ln(rng, h: int, s_in: float, s_out: float, in_bits: int = R_BITS) -> I.LayerNormConsts:
    """LayerNorm constants; gamma / beta are drawn once per (H, grids) and shared by every layer
    and member (prepare_layernorm's constant search costs ~50 ms for H = 768)."""
    key = (h, s_in, s_out, in_bits)
    if key not in _LN_CACHE:
        g = np.random.default_rng(h)
        _LN_CACHE[key] = I.prepare_layernorm(s_in, g.normal(1, 0.1, h), g.normal(0, 0.1, h), s_out, R_BITS,
                                             eps=1e-12, in_bits=in_bits)
    return _LN_CACHE[key]


def _embeddings(shape: EnsembleShape, rng) -> dict:
    """Binary word / position / token-type tables on one code grid and the embedding LayerNorm into
    the 16-bit residual grid (`s_x`: LayerNorm outputs ~ N(0, 1))."""
    H = shape.hidden
    s_e = 0.002                         # embedding code grid
    s_x = 6.0 / R_TOP                   # 16-bit residual grid
    pairs = np.stack([rng.integers(20, 60, shape.vocab), -rng.integers(20, 60, shape.vocab)], 1).astype("<i4")
    word_binary = (_signs(rng, shape.vocab, H), pairs)
    pos = np.where(_signs(rng, shape.max_position, H), 10, -10).astype(np.int32)
    typ = np.where(_signs(rng, shape.type_vocab, H), 5, -5).astype(np.int32)
    return {"word_binary": word_binary, "position": pos, "token_type": typ, "embed_scale": s_e,
            "embed_ln": _ln(rng, H, s_e, s_x, in_bits=20)}, s_x


def _head(shape: EnsembleShape, rng, pooler: SynIntLinear, s_pool: float) -> dict:
    """The pooler, tanh as a lookup table over its 16-bit codes, and the 16-bit classifier."""
    codes = np.arange(-(1 << 15), 1 << 15, dtype=np.float64)
    lut = np.floor(np.tanh(codes * s_pool) * R_TOP + 0.5).astype(np.int32)
    cls_codes = rng.integers(-R_TOP, R_TOP + 1, (shape.num_labels, shape.hidden)).astype(np.int32)
    cls_bias = rng.integers(-(1 << 20), 1 << 20, shape.num_labels).astype(np.int64)
    return {"pooler": pooler, "pooler_scale": s_pool, "tanh_lut": lut, "cls_codes": cls_codes,
            "cls_bias": cls_bias, "cls_scale": np.full(shape.num_labels, 1e-9)}


def synthetic_member(shape: EnsembleShape, rng: np.random.Generator) -> SynMember:
    H, F, A, P = shape.hidden, shape.intermediate, shape.act_bits, shape.attn_bits
    d = shape.head_dim
    emb, s_x = _embeddings(shape, rng)
    act = lambda bits: 2.0 / max(1, (1 << (bits - 1)) - 1)  # noqa: E731 (LSQ steps of a ~N(0,1) input)
    tws = {"split": shape.tws, "half": shape.tws_scales == "half"}
    layers = []
    for _ in range(shape.layers):
        sa = act(A)
        qkv = []
        for _ in range(3):
            so = _spread(H, A, sa) / max(1, (1 << (P - 1)) - 1)
            qkv.append((_linear(rng, H, H, A, True, s_x, sa, so, P, **tws), so))
        (q, sq), (k, sk), (v, sv) = qkv
        sm = I.prepare_softmax(sq * sk / math.sqrt(d), out_bits=16)
        sp = 1.0 / ((1 << P) - 1)
        probs = I.prepare_requant(sm.out_scale, sp, P, signed=False)
        s_ctx = sp * sv
        s_ao = _spread(H, A, act(A)) / R_TOP * 4
        ao = _linear(rng, H, H, A, True, s_ctx, act(A), s_ao, R_BITS, **tws)
        s_sum = max(s_x, s_ao) * 2
        add1 = I.prepare_add(s_x, s_ao, s_sum, R_BITS)
        ln1 = _ln(rng, H, s_sum, s_x)
        s_fi = _spread(H, A, sa) / R_TOP * 4
        fi = _linear(rng, F, H, A, True, s_x, sa, s_fi, R_BITS, **tws)
        sg = act(A) / 2
        gelu = I.prepare_gelu(s_fi, sg, A, True)
        s_fo = _spread(F, A, sg) / R_TOP * 4
        fo = _linear(rng, H, F, A, True, None, sg, s_fo, R_BITS, **tws)
        s_sum2 = max(s_x, s_fo) * 2
        add2 = I.prepare_add(s_x, s_fo, s_sum2, R_BITS)
        ln2 = _ln(rng, H, s_sum2, s_x)
        layers.append(SynLayer(shape.heads, d, q, k, v, sm, probs, ao, add1, ln1, fi, gelu, fo, add2, ln2))
    s_pool = _spread(H, A, act(A)) / R_TOP * 4
    pooler = _linear(rng, H, H, A, True, s_x, act(A), s_pool, R_BITS)
    return SynMember(layers=tuple(layers), **emb, **_head(shape, rng, pooler, s_pool))


def _bibert_layer(shape: EnsembleShape, rng, s_x: float) -> SynLayer:
    """One BiBERT layer (docs/NUMERICS.md, "BiBERT"): +-1 inputs everywhere, Q/K/V POSTs with 1-bit
    (sign) outputs, Bi-Attention (no softmax constants), attn_out reading sign(ctx) directly, and
    FFN2's input the sign of ffn_in's 16-bit codes."""
    H, F = shape.hidden, shape.intermediate
    s1 = 0.8                                  # the step of a 1-bit activation (mean |x| of ~N(0, 1))
    q, k, v = (_linear(rng, H, H, 1, True, s_x, s1, 1.0, 1) for _ in range(3))
    s_ao = _spread(H, 1, s1) / R_TOP * 4
    ao = _linear(rng, H, H, 1, True, None, s1, s_ao, R_BITS)
    s_sum = max(s_x, s_ao) * 2
    s_fi = _spread(H, 1, s1) / R_TOP * 4
    fi = _linear(rng, F, H, 1, True, s_x, s1, s_fi, R_BITS)
    s_fo = _spread(F, 1, s1) / R_TOP * 4
    fo = _linear(rng, H, F, 1, True, None, s1, s_fo, R_BITS)
    s_sum2 = max(s_x, s_fo) * 2
    return SynLayer(shape.heads, shape.head_dim, q, k, v, None, None, ao, I.prepare_add(s_x, s_ao, s_sum, R_BITS),
                    _ln(rng, H, s_sum, s_x), fi, I.prepare_requant(s_fi, s_fi, 1), fo,
                    I.prepare_add(s_x, s_fo, s_sum2, R_BITS), _ln(rng, H, s_sum2, s_x), bi_attention=True)


def synthetic_bibert_member(shape: EnsembleShape, rng: np.random.Generator) -> SynMember:
    """A BiBERT member: BinaryBERT's embeddings, residual grid and head, BiBERT's layers, and a
    pooler over +-1 inputs."""
    emb, s_x = _embeddings(shape, rng)
    layers = tuple(_bibert_layer(shape, rng, s_x) for _ in range(shape.layers))
    s_pool = _spread(shape.hidden, 1, 0.8) / R_TOP * 4
    pooler = _linear(rng, shape.hidden, shape.hidden, 1, True, s_x, 0.8, s_pool, R_BITS)
    return SynMember(layers=layers, **emb, **_head(shape, rng, pooler, s_pool))


def synthetic_model(shape: EnsembleShape, seed: int = 0) -> SynModel:
    """A random integer model of `shape`: BinaryBERT (binary weights, `act_bits` activations) or
    BiBERT (`base=bibert`: binary weights, embeddings and activations, Bi-Attention)."""
    if shape.base not in ("binarybert", "bibert") or shape.weight_bits != 1 or shape.embed_bits != 1:
        raise CompileError(f"model: base '{shape.base}' with {shape.weight_bits}-bit weights has no integer "
                           "path (the compiler takes BinaryBERT and BiBERT: binary weights and embeddings)")
    bi = shape.base == "bibert"
    if bi and (shape.act_bits != 1 or shape.tws):
        raise CompileError("model: bibert has 1-bit activations and no TWS-split layers")
    if not bi and (not 2 <= shape.act_bits <= 8 or not 2 <= shape.attn_bits <= 8):
        raise CompileError(f"model: activation bits {shape.act_bits} unsupported (the integer path takes 2..8)")
    rng = np.random.default_rng(seed)
    member = synthetic_bibert_member if bi else synthetic_member
    members = tuple(member(shape, rng) for _ in range(shape.members))
    alphas = tuple(float(a) for a in rng.uniform(0.5, 2.0, shape.members))
    return SynModel(members, alphas, shape.seq, {"source": "synthetic", "seed": seed},
                    synthetic_vote(members, alphas, shape.vote))


def synthetic_vote(members, alphas, method: str = "samme"):
    """The integer vote of synthetic members (model/vote.py prepare_vote, numpy only): their
    classifier grids, accumulator bounds as model/integer_path.py's (16-bit tanh codes times
    16-bit weight codes, plus the bias)."""
    from bebert.model.vote import prepare_vote

    bounds = [m.cls_codes.shape[1] * R_TOP * R_TOP + int(np.abs(m.cls_bias).max()) for m in members]
    return prepare_vote(method, alphas, [m.cls_scale for m in members], bounds)
