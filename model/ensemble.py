"""Ensembles of binary members: AdaBoost (SAMME) and bagging, and how members are combined.

AdaBoost, SAMME (Zhu et al. 2009), the multi-class form BEBERT uses: every member is trained
on the whole training set under sample weights w (a *weighted loss*: each example's loss is
multiplied by N w_i, so uniform weights give the plain mean loss). After training member m,

    err   = sum_i w_i [wrong_i] / sum_i w_i
    alpha = log((1 - err) / err) + log(K - 1)
    w_i  *= exp(alpha [wrong_i]),  then w /= sum(w)

err is clipped to [1e-10, (K-1)/K - 1e-6]: a member no better than chance keeps a tiny
positive alpha (so it barely votes) instead of stopping the ensemble.

Members are combined by an alpha-weighted vote of their class probabilities:
p(x) = sum_m alpha_m softmax(z_m(x)) / sum_m alpha_m, prediction argmax p. STS-B (regression)
has no notion of "wrong", so its members are trained with uniform weights (or bootstrap
weights when bagging) and averaged with equal alphas: plain averaging.

Bagging: member m gets bootstrap weights (counts of a seeded resample / N) and alpha 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ERR_MIN = 1e-10
METHODS = ("adaboost", "bagging")


def initial_weights(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def samme_update(weights: np.ndarray, wrong: np.ndarray, num_classes: int) -> tuple[np.ndarray, float, float]:
    """One SAMME round: (new normalised weights, alpha, weighted error)."""
    w = np.asarray(weights, np.float64)
    wrong = np.asarray(wrong, bool)
    if w.shape != wrong.shape:
        raise ValueError(f"weights {w.shape} and wrong {wrong.shape} differ in shape")
    if num_classes < 2:
        raise ValueError("SAMME needs at least 2 classes")
    err = float((w * wrong).sum() / w.sum())
    err = min(max(err, ERR_MIN), (num_classes - 1) / num_classes - 1e-6)
    alpha = math.log((1 - err) / err) + math.log(num_classes - 1)
    w = w * np.exp(alpha * wrong)
    return w / w.sum(), alpha, err


def bootstrap_weights(n: int, seed: int) -> np.ndarray:
    """Bagging as weights: how often each example is drawn in a size-n resample, over n."""
    counts = np.bincount(np.random.default_rng(seed).integers(0, n, n), minlength=n)
    return counts / n


def combine(member_logits: list[torch.Tensor], alphas, regression: bool = False) -> torch.Tensor:
    """Ensemble output: alpha-weighted mean of probabilities (classes) or of scores (STS-B)."""
    if not member_logits:
        raise ValueError("an ensemble needs at least one member")
    a = torch.tensor([float(x) for x in alphas], dtype=torch.float64)
    if a.numel() != len(member_logits) or bool((a < 0).any()) or float(a.sum()) <= 0:
        raise ValueError(f"alphas {list(map(float, alphas))} must be non-negative, one per member, not all 0")
    a = a / a.sum()
    if regression:
        out = sum(w * z.double().reshape(-1) for w, z in zip(a, member_logits))
    else:
        out = sum(w * torch.softmax(z.double(), dim=-1) for w, z in zip(a, member_logits))
    return out.float()


def predictions(output: torch.Tensor, regression: bool = False) -> np.ndarray:
    """Class indices (argmax) or scores from logits, probabilities or an ensemble output."""
    return output.reshape(-1).numpy() if regression else output.argmax(dim=-1).numpy()
