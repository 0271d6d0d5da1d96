"""The accuracy experiment of BEBERT on CPU: FP teacher vs one binary BERT vs binary ensembles.

For each task (MRPC, RTE, CoLA, STS-B, and SST-2 subsampled) at max_seq_len 64 it trains

    fp            the full-precision teacher (taken from the `bebert_kd_full` run)
    binarybert    one BinaryBERT member (TWS) with full KD
    bebert_kd0    BEBERT, 3 AdaBoost members, no KD
    bebert_kd     BEBERT, 3 AdaBoost members, full KD

and writes bench/results/train_experiment.json and bench/results/train_experiment.md (task
metric per configuration, GLUE-style average, training wall time). Hours on 2 CPU cores:
`--dry-run` prints the plan; `--report-only` re-renders the table and the claims from the results file; `--tasks rte --max-train-examples 256` is a quick sanity run.

    python bench/train_experiment.py --data-dir ../shared/data/glue [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bebert.model import glue
from bebert.model.train import TrainConfig, evaluate, train

TASKS = ("mrpc", "rte", "cola", "stsb", "sst2")
SUBSAMPLE = {"sst2": 8000}  # SST-2's 67k sentences are too many for a CPU run
CONFIGS = {
    "binarybert": dict(members=1, kd="full"),
    "bebert_kd0": dict(members=3, kd="none"),
    "bebert_kd": dict(members=3, kd="full"),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-seq-len", type=int, default=64)
    p.add_argument("--max-train-examples", type=int, default=None, help="cap for every task (default: SST-2 8000)")
    p.add_argument("--caps", default="", help="per-task caps overriding the above, e.g. mrpc=512,rte=256")
    p.add_argument("--runs-dir", default="bench/runs/train_experiment")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--report-only", action="store_true",
                   help="re-render the report (claims, table) from the existing results file; trains nothing")
    p.add_argument("--update", action="store_true",
                   help="merge the tasks run now into the existing results file (re-run one task)")
    args = p.parse_args(argv)
    if args.report_only:
        write_report(json.loads(Path("bench/results/train_experiment.json").read_text()))
        return 0
    torch.set_num_threads(args.threads)
    tasks = [glue.get_task(t).name for t in args.tasks.split(",")]
    caps = {glue.get_task(k).name: int(v) for k, v in (c.split("=") for c in args.caps.split(",") if c)}
    results: dict = {"settings": vars(args), "tasks": {}}
    previous = Path("bench/results/train_experiment.json")
    if args.update and previous.is_file():
        old = json.loads(previous.read_text())
        results["tasks"] = old.get("tasks", {})
        results["settings"] = {**old.get("settings", {}), "update": vars(args)}
    for task in tasks:
        cap = caps.get(task) or args.max_train_examples or SUBSAMPLE.get(task)
        row = {}
        for name, opts in CONFIGS.items():
            out = Path(args.runs_dir) / task / name
            cfg = TrainConfig(task=task, out=str(out), data_dir=args.data_dir, base="binarybert",
                              epochs=args.epochs, max_train_examples=cap, max_seq_len=args.max_seq_len,
                              seed=args.seed, **opts)
            if args.dry_run:
                print(f"would train {task:5s} {name:11s} -> {out}")
                continue
            train(cfg, resume=(out / "config.json").is_file())
            res = evaluate(out)
            # Training time from the run's own timing.json (seconds per phase), so that a resumed
            # run still reports what it cost: the teacher (when KD needs one) plus every member.
            phases = res["train_seconds"]
            wall = sum(v for k, v in phases.items() if k == "teacher" or k.startswith("member"))
            for split, r in res["splits"].items():
                key = task if split == "dev" else f"{task}-{split}"
                row.setdefault(key, {})[name] = {"metrics": r["ensemble"], "score": glue.main_score(task, r["ensemble"]),
                                                 "train_seconds": round(wall, 1), "train_examples": cap,
                                                 "member_seconds": round(wall - phases.get("teacher", 0.0), 1)}
                if name == "bebert_kd" and "teacher" in r:
                    row[key]["fp"] = {"metrics": r["teacher"], "score": glue.main_score(task, r["teacher"]),
                                      "train_seconds": res["train_seconds"].get("teacher")}
        results["tasks"].update(row)
    if args.dry_run:
        return 0
    write_report(results)
    return 0


def claims(results: dict) -> dict:
    """The paper's claims, checked on these results: the ensemble beats one binary member, and
    strategy (C) (no KD) trains at least 2x faster than (A) (full KD) with at most 0.5 point
    average loss."""
    avg = results["average"]
    tasks = results["tasks"].values()
    t_c = sum(r["bebert_kd0"]["train_seconds"] for r in tasks if "bebert_kd0" in r)
    t_a = sum(r["bebert_kd"]["train_seconds"] for r in tasks if "bebert_kd" in r)
    loss = 100 * (avg["bebert_kd"] - avg["bebert_kd0"])
    return {
        "ensemble_kd_beats_single_member": {"bebert_kd": 100 * avg["bebert_kd"],
                                            "binarybert": 100 * avg["binarybert"],
                                            "holds": avg["bebert_kd"] > avg["binarybert"]},
        "ensemble_kd0_beats_single_member": {"bebert_kd0": 100 * avg["bebert_kd0"],
                                             "binarybert": 100 * avg["binarybert"],
                                             "holds": avg["bebert_kd0"] > avg["binarybert"]},
        "no_kd_trains_2x_faster": {"seconds_c": round(t_c, 1), "seconds_a": round(t_a, 1),
                                   "speedup": round(t_a / t_c, 2) if t_c else None,
                                   "holds": bool(t_c and t_a / t_c >= 2.0)},
        "no_kd_loses_at_most_half_a_point": {"points_lost": round(loss, 2), "holds": loss <= 0.5},
    }


def write_report(results: dict) -> None:
    names = ["fp", *CONFIGS]
    results["average"] = {n: float(np.mean([r[n]["score"] for r in results["tasks"].values() if n in r]))
                          for n in names}
    results["claims"] = claims(results)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_experiment.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for task, r in results["tasks"].items():
        lines.append(f"| {task} | " + " | ".join(
            f"{100 * r[n]['score']:.1f} ({r[n]['train_seconds'] or 0:.0f} s)" if n in r else "-" for n in names) + " |")
    lines.append("| average | " + " | ".join(f"{100 * results['average'][n]:.1f}" for n in names) + " |")
    lines += ["", "Claims of the paper, on these results:", ""]
    for name, c in results["claims"].items():
        detail = ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in c.items() if k != "holds")
        lines.append(f"- {name.replace('_', ' ')}: {'holds' if c['holds'] else 'does not hold'} ({detail})")
    notes = results.get("notes")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    (out / "train_experiment.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
