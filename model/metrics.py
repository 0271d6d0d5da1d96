"""GLUE metrics in numpy: accuracy, F1, Matthews correlation, Pearson and Spearman.

Each takes predictions and references (array-likes of equal length) and returns a float.
Degenerate inputs follow scikit-learn / scipy: F1 and MCC are 0.0 when undefined, and the
correlations are 0.0 when either side is constant (scipy would return nan).
"""

from __future__ import annotations

import numpy as np


def _pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred), np.asarray(ref)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError(f"predictions {p.shape} and references {r.shape} must be 1-D of equal length")
    if p.size == 0:
        raise ValueError("metrics need at least one example")
    return p, r


def accuracy(pred, ref) -> float:
    p, r = _pair(pred, ref)
    return float(np.mean(p == r))


def f1(pred, ref, positive: int = 1) -> float:
    """F1 of the positive class (MRPC, QQP)."""
    p, r = _pair(pred, ref)
    tp = np.sum((p == positive) & (r == positive))
    fp = np.sum((p == positive) & (r != positive))
    fn = np.sum((p != positive) & (r == positive))
    return float(2 * tp / (2 * tp + fp + fn)) if tp > 0 else 0.0


def matthews_corr(pred, ref) -> float:
    """Matthews correlation coefficient, multi-class form (Gorodkin 2004); binary for CoLA."""
    p, r = _pair(pred, ref)
    classes = np.union1d(p, r)
    c = np.zeros((classes.size, classes.size), np.float64)  # c[true, pred]
    np.add.at(c, (np.searchsorted(classes, r), np.searchsorted(classes, p)), 1)
    t_k, p_k, n, correct = c.sum(1), c.sum(0), c.sum(), np.trace(c)
    cov_ytyp = correct * n - t_k @ p_k
    cov_ypyp = n * n - p_k @ p_k
    cov_ytyt = n * n - t_k @ t_k
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    return float(cov_ytyp / denom) if denom > 0 else 0.0


def pearson(pred, ref) -> float:
    p, r = _pair(pred, ref)
    p, r = p.astype(np.float64) - p.mean(), r.astype(np.float64) - r.mean()
    denom = np.sqrt((p * p).sum() * (r * r).sum())
    return float((p * r).sum() / denom) if denom > 0 else 0.0


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata 'average')."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, np.float64)
    start = 0
    for end in np.append(np.flatnonzero(xs[1:] != xs[:-1]) + 1, x.size):
        ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of ranks start+1 .. end
        start = end
    return ranks


def spearman(pred, ref) -> float:
    p, r = _pair(pred, ref)
    return pearson(_rank(p.astype(np.float64)), _rank(r.astype(np.float64)))
