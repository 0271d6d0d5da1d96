"""Training on the integer path's own values: the member the accelerator runs is the one trained.

The fake-quant model computes LayerNorm, softmax, GELU and the residual stream in float; the
integer path (model/integer_path.py, what the compiler lowers) computes them in integers on
16-bit grids. At 4-bit activations the two disagree on a few per cent of the examples, because
a difference far below the grids' resolution still moves values across an activation code's
rounding boundary; on a 277-example dev set that is worth more than the 0.5-point contract.
I-BERT closes the gap by training on the integer arithmetic itself; so does this stage.

`anchored_logits(model, grids, batch)`: its VALUE is the integer path's logits bit for bit
(`apply_integer_member` of the member fixed to integers with `grids`); its GRADIENT is the
fake-quant model's, taken where the integer path is: the residual stream is re-anchored to the
integer codes (dequantized) after the embeddings and after every layer, and each fake-quant
layer runs on the anchored input (a straight-through estimator per layer: value from the
integer layer, gradient from the float one, `value + (float - float.detach())`). The grids are
the member's 16-bit residual grids, calibrated once before the stage and kept fixed through it
and into the package, so the path that was trained is the path that is exported.
"""

from __future__ import annotations

import torch

from . import batching as B
from . import integer_path as IP
from .quant_bert import QuantBert


def _anchor(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """`value` exactly (x + 0.0 == x), with the gradient of `surrogate`."""
    return value + (surrogate - surrogate.detach())


def calibrate(model: QuantBert, data: dict, n: int, batch_size: int = 64) -> dict:
    """The member's 16-bit grids from its first `n` examples of `data` (the package's calibration)."""
    dev = B.device_of(model)
    return IP.calibrate_scales(model, {k: data[k][:n].to(dev) for k in B.KEYS}, batch_size)


def _residual_grids(model: QuantBert, grids: dict) -> list[float]:
    """The grid of the residual codes after the embeddings and after each layer."""
    names = ["embeddings.ln"] + [f"layers.{i}.ffn_ln" for i in range(len(model.layers))]
    return [grids[n][1] for n in names]


def anchored_logits(model: QuantBert, grids: dict, batch: dict, tables: dict | None = None) -> torch.Tensor:
    """The integer path's logits of `batch` (value, bit for bit) with the fake-quant gradient.
    `tables`: the embedding tables (`IP.embedding_tables`) when the embeddings are frozen."""
    was_training = model.training
    im = IP.integer_member(model, grids, tables)  # puts the model in eval mode
    model.train(was_training)
    dev = B.device_of(model)
    cpu = {k: batch[k].cpu() for k in B.KEYS}
    ids, tt, mask = (batch[k] for k in B.KEYS)
    mask_add = model.attention_bias(mask)
    keys = IP.integer_keys(cpu)
    deq = lambda codes, s: (codes.double() * s).float().to(dev)  # noqa: E731
    s_res = _residual_grids(model, grids)
    with torch.no_grad():
        xi = IP.integer_embed(im, cpu)
    x = _anchor(deq(xi, s_res[0]), model.embeddings(ids, tt))
    for layer, L, s in zip(model.layers, im.layers, s_res[1:]):
        with torch.no_grad():
            xi = IP.integer_layer(L, xi, keys)
        x = _anchor(deq(xi, s), layer(x, mask_add)[0])
    with torch.no_grad():
        logits = IP.dequantize_logits(im, IP.integer_head(im, xi)).to(dev)
    return _anchor(logits, model.head(x))


@torch.no_grad()
def integer_predict(model: QuantBert, grids: dict, data: dict, batch_size: int = 64) -> torch.Tensor:
    """The integer path's logits of the whole encoded set (the member fixed to `grids` once)."""
    im = IP.integer_member(model, grids)
    cpu = {k: data[k].cpu() for k in B.KEYS}
    return IP.dequantize_logits(im, IP.member_accumulators(im, cpu, batch_size))
