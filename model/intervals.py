"""Uncertainty of a dev-set score: bootstrap intervals, paired comparisons, the majority baseline.

A dev set is a sample; the score of a model on it varies with the sample. `bootstrap` resamples
the examples (with replacement, seeded) and reports the 2.5 / 97.5 percentiles of the task's
main score. `paired` resamples the *same* indices for two models' predictions, so that the
interval is that of their difference (the noise both share cancels); p is the two-sided
bootstrap probability of a difference of the other sign. A claim is "holds" when the interval of
the difference lies beyond the claimed margin, "does not hold" when it lies on the other side,
"not resolved" when it straddles it.
"""

from __future__ import annotations

import numpy as np

from . import glue

RESAMPLES = 1000


def score(task, preds, refs) -> float:
    return glue.main_score(task, glue.compute_metrics(task, np.asarray(preds), np.asarray(refs)))


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def bootstrap(task, preds, refs, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """{"score", "low", "high"}: the score and its 95 % bootstrap interval."""
    p, r = np.asarray(preds), np.asarray(refs)
    vals = np.array([score(task, p[i], r[i]) for i in _indices(len(r), resamples, seed)])
    return {"score": score(task, p, r), "low": float(np.percentile(vals, 2.5)), "high": float(np.percentile(vals, 97.5))}


def paired(task, preds_a, preds_b, refs, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """{"diff", "low", "high", "p"} of score(a) - score(b) on the same resampled examples."""
    a, b, r = np.asarray(preds_a), np.asarray(preds_b), np.asarray(refs)
    d = np.array([score(task, a[i], r[i]) - score(task, b[i], r[i]) for i in _indices(len(r), resamples, seed)])
    diff = score(task, a, r) - score(task, b, r)
    p = 2 * min(np.mean(d <= 0), np.mean(d >= 0))
    return {"diff": diff, "low": float(np.percentile(d, 2.5)), "high": float(np.percentile(d, 97.5)),
            "p": float(min(1.0, p))}


def ruling(low: float, high: float, margin: float = 0.0) -> str:
    """The claim "difference > margin" given the interval [low, high] of the difference."""
    if low > margin:
        return "holds"
    if high < margin:
        return "does not hold"
    return "not resolved"


def majority_baseline(task, train_labels, refs) -> float:
    """The score of always predicting the training set's most frequent class (its mean for STS-B)."""
    task = glue.get_task(task) if isinstance(task, str) else task
    refs = np.asarray(refs)
    y = np.asarray(train_labels)
    if task.is_regression:
        return score(task, np.full(len(refs), float(y.mean())), refs)  # constant: correlation 0
    return score(task, np.full(len(refs), np.bincount(y.astype(np.int64)).argmax()), refs)
