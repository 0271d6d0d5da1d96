"""Ensembles of binary members: AdaBoost (SAMME, SAMME.R, AdaBoost.R2), bagging, and the votes.

AdaBoost, SAMME (Zhu et al. 2009), the multi-class form BEBERT uses. Member m is trained under
sample weights w; after it, on the training set,

    err   = sum_i w_i [wrong_i] / sum_i w_i
    alpha = log((1 - err) / err) + log(K - 1)
    w_i  *= exp(alpha [wrong_i]),  then w /= sum(w)

err is clipped to [1e-10, (K-1)/K - 1e-6]: a member no better than chance keeps a tiny positive
alpha (it barely votes) instead of stopping the ensemble. SAMME.R (same paper, Algorithm 4)
updates with the member's class probabilities p instead of its hard prediction:
w_i *= exp(-(K-1)/K y_i . log p(x_i)) with y_i = 1 on the label and -1/(K-1) elsewhere; its
members all vote with weight 1.

How the weights reach training (`SAMPLING`): "resample" (default, the official BEBERT code's
WeightedRandomSampler) draws every epoch's N examples with replacement in proportion to w;
"loss" keeps every example once and multiplies its loss by N w_i. Uniform weights are a plain
shuffled epoch either way.

Votes (`VOTES`), on member logits z_m:

    samme     hard vote: argmax_c sum_m alpha_m [argmax z_m = c]      (default; the official code's)
    samme.r   argmax_c sum_m h_mc, h_mc = (K-1)(log p_mc - mean_k log p_mk); the per-member
              constants cancel, so this is argmax_c sum_m z_mc (members unweighted)
    average   argmax_c sum_m alpha_m softmax(z_m)_c / sum_m alpha_m   (probability averaging)

Ties go to the lowest class index. `combine` returns the per-class totals whose argmax is the
prediction. STS-B (regression): AdaBoost.R2 (Drucker 1997) with the linear loss,
L_i = |y_hat_i - y_i| / max_j |y_hat_j - y_j|, Lbar = sum_i w_i L_i, beta = Lbar / (1 - Lbar),
w_i *= beta^(1 - L_i), member weight log(1 / beta), combined by the weighted median ("median");
"mean" averages (a seed / bagging ensemble). The integer form of every vote is model/vote.py.

Bagging: member m trains on one seeded bootstrap resample (counts / N as weights), alpha 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ERR_MIN = 1e-10
METHODS = ("adaboost", "bagging")
VOTES = ("samme", "samme.r", "average")
REGRESSION_VOTES = ("median", "mean")
SAMPLING = ("resample", "loss")


def initial_weights(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def _check(weights, other, what: str) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.shape != np.asarray(other).shape[:1]:
        raise ValueError(f"weights {w.shape} and {what} {np.asarray(other).shape} differ in length")
    return w


def samme_update(weights: np.ndarray, wrong: np.ndarray, num_classes: int) -> tuple[np.ndarray, float, float]:
    """One SAMME round: (new normalised weights, alpha, weighted error)."""
    wrong = np.asarray(wrong, bool)
    w = _check(weights, wrong, "wrong")
    if num_classes < 2:
        raise ValueError("SAMME needs at least 2 classes")
    err = float((w * wrong).sum() / w.sum())
    err = min(max(err, ERR_MIN), (num_classes - 1) / num_classes - 1e-6)
    alpha = math.log((1 - err) / err) + math.log(num_classes - 1)
    w = w * np.exp(alpha * wrong)
    return w / w.sum(), alpha, err


def samme_r_update(weights: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One SAMME.R round: (new weights, alpha = 1, weighted error of the hard prediction)."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    labels = np.asarray(labels, np.int64)
    w = _check(weights, p, "probabilities")
    k = p.shape[1]
    y = np.full(p.shape, -1.0 / (k - 1))
    y[np.arange(len(labels)), labels] = 1.0
    w = w * np.exp(-(k - 1) / k * (y * np.log(p)).sum(1))
    err = float((np.asarray(weights) * (p.argmax(1) != labels)).sum() / np.sum(weights))
    return w / w.sum(), 1.0, err


def r2_update(weights: np.ndarray, preds: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One AdaBoost.R2 round (linear loss): (new weights, alpha = log(1/beta), average loss)."""
    err = np.abs(np.asarray(preds, np.float64) - np.asarray(targets, np.float64))
    w = _check(weights, err, "predictions")
    top = float(err.max())
    loss = err / top if top > 0 else np.zeros_like(err)
    avg = float((w * loss).sum() / w.sum())
    avg = min(max(avg, ERR_MIN), 0.5 - 1e-6)  # R2 stops at Lbar >= 0.5; we keep a tiny alpha instead
    beta = avg / (1 - avg)
    w = w * beta ** (1 - loss)
    return w / w.sum(), math.log(1 / beta), avg


def bootstrap_weights(n: int, seed: int) -> np.ndarray:
    """Bagging as weights: how often each example is drawn in a size-n resample, over n."""
    counts = np.bincount(np.random.default_rng(seed).integers(0, n, n), minlength=n)
    return counts / n


def _alphas(alphas, n: int) -> torch.Tensor:
    a = torch.tensor([float(x) for x in alphas], dtype=torch.float64)
    if a.numel() != n or bool((a < 0).any()) or float(a.sum()) <= 0 or not bool(torch.isfinite(a).all()):
        raise ValueError(f"alphas {list(map(float, alphas))} must be finite, non-negative, one per member, not all 0")
    return a


def weighted_median(values: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Per column of `values` (members, n): the smallest value whose cumulative alpha reaches half."""
    order = values.argsort(dim=0, stable=True)
    w = alphas[order]
    cum = w.cumsum(0)
    first = (cum >= 0.5 * alphas.sum()).to(torch.int64).argmax(0)
    return values.gather(0, order.gather(0, first[None]))[0]


def combine(member_logits: list[torch.Tensor], alphas, regression: bool = False, vote: str | None = None) -> torch.Tensor:
    """The ensemble's per-class totals (classes; argmax = prediction) or scores (STS-B).

    `vote` defaults to "samme" (classes) and "mean" (STS-B)."""
    if not member_logits:
        raise ValueError("an ensemble needs at least one member")
    a = _alphas(alphas, len(member_logits))
    if regression:
        vote = vote or "mean"
        z = torch.stack([m.double().reshape(-1) for m in member_logits])
        if vote == "median":
            return weighted_median(z, a).float()
        if vote != "mean":
            raise ValueError(f"regression vote must be one of {', '.join(REGRESSION_VOTES)}, got '{vote}'")
        return ((a[:, None] * z).sum(0) / a.sum()).float()
    vote = vote or "samme"
    if vote == "samme":
        k = member_logits[0].shape[-1]
        return sum(w * torch.nn.functional.one_hot(z.argmax(-1), k).double() for w, z in zip(a, member_logits)).float()
    if vote == "samme.r":
        return sum(torch.log_softmax(z.double(), dim=-1) for z in member_logits).float()
    if vote == "average":
        return (sum(w * torch.softmax(z.double(), dim=-1) for w, z in zip(a, member_logits)) / a.sum()).float()
    raise ValueError(f"vote must be one of {', '.join(VOTES)}, got '{vote}'")


def predictions(output: torch.Tensor, regression: bool = False) -> np.ndarray:
    """Class indices (argmax, ties to the lowest index) or scores from logits or `combine`'s output."""
    return output.reshape(-1).numpy() if regression else output.argmax(dim=-1).numpy()


def epoch_indices(weights: np.ndarray | None, n: int, sampling: str, gen: torch.Generator) -> torch.Tensor:
    """The examples of one epoch, in order: a shuffle of all n (uniform weights, or "loss"), or n
    draws with replacement in proportion to the weights ("resample")."""
    if sampling not in SAMPLING:
        raise ValueError(f"sample weights must be one of {', '.join(SAMPLING)}, got '{sampling}'")
    if weights is None or sampling == "loss" or np.allclose(weights, 1.0 / n, rtol=1e-9, atol=0):
        return torch.randperm(n, generator=gen)
    return torch.multinomial(torch.as_tensor(weights, dtype=torch.float64), n, replacement=True, generator=gen)
