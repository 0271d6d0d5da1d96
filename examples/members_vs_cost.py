"""Members x activation bits vs energy (and accuracy, when trained runs are given).

    python examples/members_vs_cost.py [--runs 3:4=runs/rte3,1:4=runs/rte1] [--out out/members]

BEBERT's trade: more members buy accuracy and robustness at a cost that grows with them.
For every (members, abits) the ensemble `synthetic:minilm-l6,members=M,abits=B,seq=S` is
compiled whole and simulated (`bebert.api`); with `--runs`, each (members, abits) pair's
accuracy comes from that run's saved evaluation (`bebert.api.evaluate_accuracy`: a run folder
with eval.json, or a `bebert eval --json` output file). Writes members_vs_cost.csv and
members_vs_cost.png. `--quick` takes the tiny preset (tests).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from tqdm import tqdm

from bebert import api


def parse_runs(text: str) -> dict[tuple[int, int], str]:
    """'3:4=runs/a,1:4=runs/b' -> {(3, 4): 'runs/a', (1, 4): 'runs/b'}."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, path = item.partition("=")
        m, colon, b = key.partition(":")
        if not (eq and colon and m.isdigit() and b.isdigit()):
            raise SystemExit(f"--runs: expected MEMBERS:ABITS=RUN, got {item!r}")
        out[(int(m), int(b))] = path
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="minilm-l6")
    p.add_argument("--members", default="1,2,3,4")
    p.add_argument("--abits", default="2,4,8")
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--config", default=None, help="accelerator TOML (default: the built-in default)")
    p.add_argument("--runs", default="", help="MEMBERS:ABITS=RUN_DIR_OR_EVAL_JSON, comma-separated")
    p.add_argument("--out", default="out/members")
    p.add_argument("--quick", action="store_true", help="the tiny preset, members 1,2 x abits 4 (tests)")
    a = p.parse_args(argv)
    if a.quick:
        a.preset, a.members, a.abits, a.seq = "tiny", "1,2", "4", 16
    cfg = api.load_config(a.config)
    runs = parse_runs(a.runs)
    grid = [(int(m), int(b)) for b in a.abits.split(",") for m in a.members.split(",")]
    rows = []
    for m, b in tqdm(grid, desc="members x abits"):
        rep = api.simulate(api.compile(f"synthetic:{a.preset},members={m},abits={b},seq={a.seq}", cfg))
        acc = api.evaluate_accuracy(runs[(m, b)], run_eval=False) if (m, b) in runs else None
        rows.append({"members": m, "abits": b, "cycles": rep.cycles, "latency_s": rep.latency_s,
                     "energy_per_inference_j": rep.energy_per_inference_j,
                     "accuracy": acc.value if acc else None, "accuracy_metric": acc.metric if acc else None})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "members_vs_cost.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    _plot(rows, out / "members_vs_cost.png", f"synthetic:{a.preset}, seq {a.seq}, config '{cfg.name}'")
    one = {r["abits"]: r["energy_per_inference_j"] for r in rows if r["members"] == 1}
    for r in rows:
        if r["members"] > 1 and r["abits"] in one:
            print(f"members {r['members']}, {r['abits']}-bit: {r['energy_per_inference_j'] / one[r['abits']]:.2f}x "
                  f"the energy of one member" + (f", accuracy {r['accuracy']:.4f}" if r["accuracy"] is not None else ""))
    print(f"wrote {out}")
    return 0


def _plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_acc = any(r["accuracy"] is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    for b in sorted({r["abits"] for r in rows}):
        sel = sorted((r for r in rows if r["abits"] == b), key=lambda r: r["members"])
        ax.plot([r["members"] for r in sel], [r["energy_per_inference_j"] * 1e3 for r in sel], "o-", label=f"{b}-bit")
    ax.set_xlabel("members")
    ax.set_ylabel("energy per inference (mJ)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if has_acc:
        ax2 = axes[0][1]
        pts = [r for r in rows if r["accuracy"] is not None]
        ax2.scatter([r["energy_per_inference_j"] * 1e3 for r in pts], [r["accuracy"] for r in pts])
        for r in pts:
            ax2.annotate(f"{r['members']}x{r['abits']}b", (r["energy_per_inference_j"] * 1e3, r["accuracy"]), fontsize=8)
        ax2.set_xlabel("energy per inference (mJ)")
        ax2.set_ylabel(pts[0]["accuracy_metric"])
        ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
