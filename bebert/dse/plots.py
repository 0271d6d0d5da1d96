"""The three figures of a sweep, with the Pareto front highlighted.

    latency_energy.png     latency per inference vs energy per inference
    accuracy_energy.png    ensemble accuracy vs energy per inference
    area_throughput.png    LUTs (Yosys; the area model's where no point has Yosys area) vs inferences per second

Points on the sweep's front (all its objectives) are drawn in red; the dashed staircase is
the front of the two plotted quantities alone. A figure whose data the sweep did not collect
(no [accuracy] runs) is still written, saying what is missing and how to get it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from bebert.files import atomic_path

from .pareto import _known, front_2d

FIGURES = {
    "latency_energy.png": ("energy_per_inference_j", 1e6, "energy per inference (µJ)", True,
                           "latency_s", 1e6, "latency (µs)", True, None),
    "accuracy_energy.png": ("energy_per_inference_j", 1e6, "energy per inference (µJ)", True,
                            "accuracy", 1.0, "accuracy", False,
                            "no accuracy: name trained runs in the space's [accuracy] runs"),
    "area_throughput.png": ("luts", 1.0, "LUTs (Yosys synth_xilinx)", True,
                            "inferences_per_s", 1.0, "throughput (inferences / s)", False,
                            "no area: set [workload] area = true (Yosys, slow, cached)"),
}
MODEL_AREA = ("luts_model", 1.0, "LUTs (area model, no synthesis)")  # area_throughput without Yosys area


def plot_sweep(rows: Sequence[dict[str, Any]], front: Sequence[int], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    on_front = set(front)
    paths = []
    for name, (xk, xs, xl, xmin, yk, ys, yl, ymin, missing) in FIGURES.items():
        if xk == "luts" and not any(_known(r.get("luts")) for r in rows):
            xk, xs, xl = MODEL_AREA
        idx = [i for i, r in enumerate(rows) if not r.get("error") and _known(r.get(xk)) and _known(r.get(yk))]
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        if idx:
            x = [rows[i][xk] * xs for i in idx]
            y = [rows[i][yk] * ys for i in idx]
            red = [j for j, i in enumerate(idx) if i in on_front]
            ax.scatter(x, y, s=22, c="0.6", label=f"design points ({len(idx)})", zorder=2)
            if red:
                ax.scatter([x[j] for j in red], [y[j] for j in red], s=40, c="tab:red", zorder=3,
                           label=f"Pareto front ({len(on_front)} points, all objectives)")
            stair = front_2d(x, y, x_min=xmin, y_min=ymin)
            ax.plot([x[j] for j in stair], [y[j] for j in stair], "--", c="tab:red", lw=1, zorder=1,
                    drawstyle="steps-post", label="front of these two")
            if max(x) / max(min(x), 1e-30) > 50:
                ax.set_xscale("log")
            if max(y) / max(min(y), 1e-30) > 50:
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, missing or "no evaluated points", ha="center", va="center", wrap=True,
                    transform=ax.transAxes, fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        paths.append(path)
    return paths
