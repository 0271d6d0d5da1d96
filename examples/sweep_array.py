"""Array shape vs latency and energy: one model on PE arrays of different shapes.

    python examples/sweep_array.py [--model synthetic:minilm-l6,members=1,seq=32] [--out out/sweep_array]

For every (pe_rows, pe_cols) in the grid, the model is compiled for the default accelerator
with that array (`bebert.api.compile`), simulated (`bebert.api.simulate`) and priced with the
45 nm energy table. Writes sweep_array.csv and sweep_array.png (latency and energy per
inference against the number of PEs). `--quick` takes the tiny model and a 2 x 2 grid.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from tqdm import tqdm

from bebert import api


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="synthetic:minilm-l6,members=1,seq=32")
    p.add_argument("--rows", default="4,8,16,32", help="pe_rows values")
    p.add_argument("--cols", default="4,8,16,32", help="pe_cols values")
    p.add_argument("--energy", default="asic45")
    p.add_argument("--out", default="out/sweep_array")
    p.add_argument("--quick", action="store_true", help="synthetic:tiny on a 2 x 2 grid (tests)")
    a = p.parse_args(argv)
    if a.quick:
        a.model, a.rows, a.cols = "synthetic:tiny,members=1", "4,8", "4,8"
    base = api.load_config(None)
    shapes = [(int(r), int(c)) for r in a.rows.split(",") for c in a.cols.split(",")]
    configs = [base.replace(name=f"{r}x{c}", pe_rows=r, pe_cols=c) for r, c in shapes]  # checked here
    rows = []
    for cfg in tqdm(configs, desc="array shapes"):
        rep = api.simulate(api.compile(a.model, cfg), energy=a.energy)
        rows.append({"pe_rows": cfg.pe_rows, "pe_cols": cfg.pe_cols, "pes": cfg.pe_rows * cfg.pe_cols,
                     "cycles": rep.cycles, "latency_s": rep.latency_s,
                     "energy_per_inference_j": rep.energy_per_inference_j,
                     "pe_array_utilization": rep.utilization.get("pe_array"), "bound_by": rep.roofline_bound_by})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep_array.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _plot(rows, out / "sweep_array.png", a.model)
    best = min(rows, key=lambda r: r["latency_s"])
    print(f"{len(rows)} shapes of {a.model}; fastest {best['pe_rows']}x{best['pe_cols']}: "
          f"{best['latency_s'] * 1e3:.3f} ms, {best['energy_per_inference_j'] * 1e3:.3f} mJ; wrote {out}")
    return 0


def _plot(rows, path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_e) = plt.subplots(1, 2, figsize=(10, 4))
    for c in sorted({r["pe_cols"] for r in rows}):
        sel = sorted((r for r in rows if r["pe_cols"] == c), key=lambda r: r["pe_rows"])
        ax_l.plot([r["pe_rows"] for r in sel], [r["latency_s"] * 1e3 for r in sel], "o-", label=f"pe_cols {c}")
        ax_e.plot([r["pe_rows"] for r in sel], [r["energy_per_inference_j"] * 1e3 for r in sel], "o-",
                  label=f"pe_cols {c}")
    for ax, label in ((ax_l, "latency (ms)"), (ax_e, "energy per inference (mJ)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("pe_rows")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(model, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
