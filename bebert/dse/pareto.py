"""The Pareto front of a table of design points.

A point dominates another when it is at least as good in every objective and strictly better
in one (smaller for `minimize`, larger for `maximize`). The front is every point with all its
objectives known that no such point dominates. Ties (equal in every objective) are all kept.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def _known(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def pareto_front(rows: Sequence[dict[str, Any]], minimize: Sequence[str], maximize: Sequence[str] = ()) -> list[int]:
    """Indices (into `rows`, increasing) of the non-dominated rows."""
    objs = list(minimize) + list(maximize)
    if not objs:
        raise ValueError("a Pareto front needs at least one objective")
    cand = [i for i, r in enumerate(rows) if not r.get("error") and all(_known(r.get(k)) for k in objs)]
    if not cand:
        return []
    # Cost matrix: every objective turned into "smaller is better".
    c = np.array([[float(rows[i][k]) for k in minimize] + [-float(rows[i][k]) for k in maximize] for i in cand])
    front = []
    for j in range(len(cand)):
        le = np.all(c <= c[j], axis=1)
        lt = np.any(c < c[j], axis=1)
        if not np.any(le & lt):
            front.append(cand[j])
    return front


def front_2d(xs: Sequence[float], ys: Sequence[float], *, x_min: bool = True, y_min: bool = True) -> list[int]:
    """Indices of the two-objective front of (xs, ys), ordered by x (for drawing the staircase)."""
    rows = [{"x": x, "y": y} for x, y in zip(xs, ys)]
    mn = [k for k, m in (("x", x_min), ("y", y_min)) if m]
    mx = [k for k, m in (("x", x_min), ("y", y_min)) if not m]
    idx = pareto_front(rows, mn, mx)
    return sorted(idx, key=lambda i: (xs[i], ys[i]))
