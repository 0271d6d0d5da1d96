"""The optimizer of every stage: AdamW with parameter groups, warm-up and linear decay.

Weight decay applies to weight matrices and embedding tables only; biases, LayerNorm parameters
and the quantizers' learned steps are not decayed (decaying a step toward 0 shrinks the grid
the codes live on). The learning rate rises linearly over the first `warmup` fraction of the
stage's steps and falls linearly to 0 at its end (BERT's schedule, as BinaryBERT trains).
"""

from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for mod_name, mod in model.named_modules():
        for name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            plain = name == "weight" and not isinstance(mod, nn.LayerNorm)
            (decay if plain else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def optimizer(model: nn.Module, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8)


def warmup_linear(opt: torch.optim.Optimizer, total_steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """lr x min(s / w, (T - s) / (T - w)) with w = warmup T (at least 1 step)."""
    total = max(1, int(total_steps))
    w = max(1, int(round(warmup * total)))

    def factor(step: int) -> float:
        if step < w:
            return (step + 1) / w
        return max(0.0, (total - step) / max(1, total - w))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
