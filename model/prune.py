"""Half-width models, DynaBERT-style: keep the attention heads and FFN neurons that matter most.

BinaryBERT splits a *half-width* ternary model (DynaBERT width 0.5: half the heads and half the
FFN neurons of every layer) so that the binary member, twice as wide after the split, costs what
the backbone costs: Q/K/V (heads/2 x head_dim, 2H), the attention output (H, 2 x heads/2 x
head_dim), FFN (I/2, 2H) and (H, I): exactly the binary weights and operations of the unsplit
backbone.

Importance (Michel et al. 2019, as DynaBERT ranks heads and neurons): a mask of ones multiplies
each head's context and each neuron's GELU output; the importance is the accumulated |dL/dmask|
over training batches, the first-order estimate of the loss change if the unit were removed.
`prune` keeps the top `keep` fraction per layer (heads and neurons in their original order) and
copies the kept rows and columns; the result computes the same function as the full model with
the dropped units masked to zero (tested).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from .quant_bert import BertShape, QuantBert, build


def importance(model: QuantBert, batches, loss_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """(heads (L, nh), neurons (L, I)) importance of a full-precision model: sum over `batches`
    (each a tuple of model inputs and targets, passed to `loss_fn(logits, targets)`) of |dL/dm|."""
    L = len(model.layers)
    dev = next(model.parameters()).device
    head_mask = torch.ones(L, model.shape.num_heads, requires_grad=True, device=dev)
    neuron_mask = torch.ones(L, model.shape.intermediate_size, requires_grad=True, device=dev)
    hooks = []
    for li, layer in enumerate(model.layers):
        hd = layer.attn.head_dim

        def on_ctx(mod, inp, out, li=li, hd=hd):
            ctx, scores, qkv = out
            return ctx * head_mask[li].repeat_interleave(hd), scores, qkv

        def on_ffn(mod, inp, li=li):
            return (inp[0] * neuron_mask[li],)
        hooks.append(layer.attn.register_forward_hook(on_ctx))
        hooks.append(layer.ffn_out.register_forward_pre_hook(on_ffn))
    was_training = model.training
    model.eval()  # no dropout: the importance of the model, not of a noisy copy
    h_imp, n_imp = torch.zeros_like(head_mask), torch.zeros_like(neuron_mask)
    try:
        for inputs, targets in batches:
            loss = loss_fn(model(*(x.to(dev) for x in inputs)), targets.to(dev))
            gh, gn = torch.autograd.grad(loss, [head_mask, neuron_mask])
            h_imp += gh.abs()
            n_imp += gn.abs()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return h_imp.detach().cpu(), n_imp.detach().cpu()


def keep_top(scores: torch.Tensor, keep: int) -> list[torch.Tensor]:
    """Per row the indices of its `keep` largest scores, in increasing index order."""
    return [torch.sort(torch.topk(r, keep).indices).values for r in scores]


@torch.no_grad()
def prune(model: QuantBert, heads: list[torch.Tensor], neurons: list[torch.Tensor]) -> QuantBert:
    """A narrower copy of `model` keeping, per layer l, heads `heads[l]` and FFN neurons `neurons[l]`
    (the same count in every layer). Its `teacher_heads` buffers name the kept heads."""
    nh, ni = len(heads[0]), len(neurons[0])
    if any(len(h) != nh for h in heads) or any(len(n) != ni for n in neurons):
        raise ValueError("every layer must keep the same number of heads and of neurons")
    s = model.shape
    shape = replace(s, num_heads=nh, head_size=s.head_dim, intermediate_size=ni)
    out = build(shape, model.quant)  # on the CPU; copy_ reads the source wherever it lives
    own = out.state_dict()
    out.load_state_dict({k: v for k, v in model.state_dict().items()
                         if k in own and own[k].shape == v.shape and "teacher_heads" not in k}, strict=False)
    for li, (src, dst) in enumerate(zip(model.layers, out.layers)):
        cols = torch.cat([h * s.head_dim + torch.arange(s.head_dim) for h in heads[li]])
        for name in ("query", "key", "value"):
            a, b = getattr(src.attn, name), getattr(dst.attn, name)
            b.weight.copy_(a.weight[cols])
            b.bias.copy_(a.bias[cols])
        dst.attn_out.weight.copy_(src.attn_out.weight[:, cols])
        dst.attn_out.bias.copy_(src.attn_out.bias)
        dst.attn.teacher_heads.copy_(src.attn.teacher_heads[heads[li]])
        dst.ffn_in.weight.copy_(src.ffn_in.weight[neurons[li]])
        dst.ffn_in.bias.copy_(src.ffn_in.bias[neurons[li]])
        dst.ffn_out.weight.copy_(src.ffn_out.weight[:, neurons[li]])
        dst.ffn_out.bias.copy_(src.ffn_out.bias)
    return out


def half_width(model: QuantBert, batches, loss_fn, keep: float = 0.5) -> QuantBert:
    """`model` pruned to `keep` of its heads and FFN neurons by importance (DynaBERT width `keep`)."""
    s: BertShape = model.shape
    kh, kn = max(1, round(s.num_heads * keep)), max(1, round(s.intermediate_size * keep))
    h_imp, n_imp = importance(model, batches, loss_fn)
    return prune(model, keep_top(h_imp, kh), keep_top(n_imp, kn))


def task_loss_fn(regression: bool):
    """The loss the importance is measured on: cross-entropy, or MSE for STS-B."""
    if regression:
        return lambda logits, y: F.mse_loss(logits.reshape(-1), y)
    return lambda logits, y: F.cross_entropy(logits, y)
