"""Per-example losses of the training stages (each returns shape (B,)).

    task   cross-entropy (MSE for STS-B) on the labels
    pred   prediction KD: soft cross-entropy to the teacher's logits (MSE for STS-B)
    full   the one joint KD stage of BinaryBERT / TernaryBERT and of BiBERT: hidden-state MSE over
           every layer + attention-score MSE (BiBERT: DMD) + prediction KD, summed

Every average runs over real tokens only. A narrower (pruned) student is compared with the
teacher heads it kept (`SelfAttention.teacher_heads`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .quant_bert import dmd_loss

KINDS = ("task", "pred", "full")


def task_loss(logits, labels, regression: bool):
    if regression:
        return F.mse_loss(logits.reshape(-1), labels, reduction="none")
    return F.cross_entropy(logits, labels, reduction="none")


def pred_kd_loss(logits, t_logits, regression: bool):
    if regression:
        return F.mse_loss(logits.reshape(-1), t_logits.reshape(-1), reduction="none")
    return -(torch.softmax(t_logits, -1) * torch.log_softmax(logits, -1)).sum(-1)


def inter_kd_loss(s_int, t_int, bi_attention: bool, teacher_heads=None):
    """Hidden-state MSE over all layers (+ attention-score MSE, or DMD for Bi-Attention)."""
    mask = s_int["mask"].float()
    tokens = mask.sum(1).clamp_min(1)
    loss = 0.0
    for hs, ht in zip(s_int["hidden"], t_int["hidden"]):
        loss = loss + ((hs - ht).pow(2).mean(-1) * mask).sum(1) / tokens
    if bi_attention:
        return loss + dmd_loss(s_int["qkv"], t_int["qkv"], mask, teacher_heads)
    pair = mask[:, None, :, None] * mask[:, None, None, :]
    for li, (ss, st) in enumerate(zip(s_int["scores"], t_int["scores"])):
        if teacher_heads is not None:
            st = st[:, teacher_heads[li]]
        loss = loss + ((ss - st).pow(2) * pair).sum((1, 2, 3)) / (pair.sum((1, 2, 3)) * ss.shape[1])
    return loss


def teacher_heads(model) -> list[torch.Tensor] | None:
    """Per layer the teacher heads the model's heads were kept from (None: all, in order)."""
    maps = [layer.attn.teacher_heads for layer in model.layers]
    if all(len(m) == int(m.max()) + 1 and bool((m == torch.arange(len(m))).all()) for m in maps):
        return None
    return maps
