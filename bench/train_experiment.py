"""BEBERT's accuracy experiment on real GLUE dev sets: FP vs one binary BERT vs binary ensembles.

Per task (MiniLM-L6 backbone; the training sets below) it trains two runs that share their
stages (one FP teacher, one half-width FP model distilled from it, one ternary model: trained
once per task):

    bebert_kd     BEBERT-3: 3 AdaBoost (SAMME) members from the split ternary model, joint KD
    bebert_kd0    BEBERT-3 without KD: the same, members trained on the task loss only

and reports four rows: fp (the teacher), binarybert (ONE binary member: the first member of
bebert_kd, trained under uniform weights, i.e. BinaryBERT with TWS and KD), bebert_kd0, bebert_kd.
Per cell: the task's main score, the majority-class baseline, a 95 % bootstrap interval and the
training wall time; paired bootstrap tests between rows; the integer path of every row against
its fake-quant model; the paper's claims ruled "holds" / "does not hold" / "not resolved".
Robustness (SST-2): the spread over 3 member seeds of one member vs the ensemble (bebert_kd0,
seeds 42..44 on the same stages), and the word deletion / swap probe beside its clean score.

Every step (one run, or one evaluation) resumes on its own (`bebert train` checkpoints every
10 minutes) and is cached under --runs-dir: re-running the script continues where it stopped.
Uses CUDA when available (then --full trains on the full training sets).

    python bench/train_experiment.py --data-dir ../shared/data/glue           # everything
    python bench/train_experiment.py --data-dir ../shared/data/glue --tasks sst2 --steps train
    python bench/train_experiment.py --report-only                             # re-render the report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bebert.model import glue
from bebert.model import intervals as S
from bebert.model.package import atomic_json
from bebert.model.train import TrainConfig, default_backbone, evaluate, train

TASKS = ("sst2", "mrpc", "rte", "cola", "stsb")
# training examples (None: the full training set) and tokens per task; SST-2's 67k sentences
# are subsampled on a CPU (a seeded random subset, in file order): 16,000 = 500 steps of 32 an
# epoch. 6,400 (the issue's floor) held the FP model to 85.4, 6.1 below its anchor, where 16,000
# give 88.5 (bench/bench_fp_ceiling.py); the longest step at 16,000 (the KD run with the shared
# teacher, width and ternary stages) still fits ~90 min on 2 cores
DATA = {"sst2": (16000, 64), "mrpc": (None, 128), "rte": (None, 128), "cola": (None, 64), "stsb": (None, 128)}
# epochs of the ternary stage and of every member, per task (--epochs overrides them all): MRPC's
# 3,668 pairs give 2 epochs only 230 steps a stage, which left its member 5.8 points below FP;
# 4 epochs brought one member to 2.9 below (bench/bench_member_epochs.py, bench/results/member_epochs.json)
EPOCHS = {"sst2": 2, "mrpc": 4, "rte": 2, "cola": 2, "stsb": 2}
ROWS = ("fp", "binarybert", "bebert_kd0", "bebert_kd")
RUNS = {"bebert_kd": "full", "bebert_kd0": "none"}
ROBUST_SEEDS = (42, 43, 44)
ANCHORS = {"sst2": 91.5, "mrpc": 88.9, "rte": 68.8, "cola": 47.5}  # MiniLMv1-L6xH384 FP, GLUE dev
RESULTS = Path("bench/results")


def config(task: str, kd: str, args, member_seed: int | None = None, tag: str | None = None) -> TrainConfig:
    cap, seq = DATA[task]
    cap = None if args.full else (args.caps.get(task, cap))
    root = Path(args.runs_dir) / task
    name = tag or f"bebert_{'kd' if kd == 'full' else 'kd0'}"
    return TrainConfig(task=task, out=str((root / name).resolve()), data_dir=str(Path(args.data_dir).resolve()),
                       backbone=args.backbone, members=3, kd=kd, epochs=task_epochs(task, args),
                       teacher_epochs=args.teacher_epochs, max_train_examples=cap, max_seq_len=seq,
                       seed=args.seed, member_seed=member_seed, stages_dir=str((root / "stages").resolve()))


def task_epochs(task: str, args) -> int:
    """Epochs of the ternary stage and of every member for `task`: --epochs, else `EPOCHS`."""
    return EPOCHS[task] if args.epochs is None else args.epochs


def run_train(cfg: TrainConfig) -> None:
    out = Path(cfg.out)
    if (out / "state.json").is_file() and json.loads((out / "state.json").read_text()).get("done"):
        return
    t0 = time.time()
    print(f"[train] {cfg.task} {out.name}", flush=True)
    train(cfg, resume=(out / "config.json").is_file())
    print(f"[train] {cfg.task} {out.name}: {time.time() - t0:.0f} s", flush=True)


def run_eval(cfg: TrainConfig) -> dict:
    """Float and integer evaluation of a run, with every prediction, cached in the run folder."""
    out = Path(cfg.out)
    cache = out / "eval.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    print(f"[eval] {cfg.task} {out.name}", flush=True)
    res = {"float": evaluate(out, predictions=True), "integer": evaluate(out, integer=True, predictions=True)}
    atomic_json(cache, res)
    return res


def probe(cfg: TrainConfig) -> dict:
    from bebert.model.robustness import robustness

    cache = Path(cfg.out) / "robustness.json"
    if not cache.is_file():
        print(f"[robustness] {cfg.task} {Path(cfg.out).name}", flush=True)
        atomic_json(cache, robustness(cfg.out, rates=(0.0, 0.1, 0.2)))
    return json.loads(cache.read_text())


# -- the rows of one task ------------------------------------------------------------------------
def _row_preds(ev: dict, split: str, row: str) -> tuple[list, list]:
    """(float predictions, integer predictions or None) of a row from a run's evaluation."""
    f, i = ev["float"]["splits"][split]["predictions"], ev["integer"]["splits"][split]["predictions"]
    if row == "fp":
        return f["teacher"], None
    if row == "binarybert":
        return f["members"][0], i["members"][0]
    return f["ensemble"], i["ensemble"]


def _seconds(ev: dict, row: str) -> dict:
    t = ev["float"].get("train_seconds", {})
    shared = {k: t.get(k, 0.0) for k in ("teacher", "width", "ternary")}
    members = [v for k, v in sorted(t.items()) if k.startswith("member_")]
    if row == "fp":
        return {"total": shared["teacher"], "members": 0.0}
    ms = members[:1] if row == "binarybert" else members
    return {"total": round(sum(shared.values()) + sum(ms), 1), "members": round(sum(ms), 1), "shared": shared}


def task_rows(task: str, evs: dict, train_labels, settings: dict) -> dict:
    """The rows of `task` from its two runs' evaluations; `settings` (epochs, training examples,
    tokens) travel with them, so a task carried into a later report keeps its own."""
    t = glue.get_task(task)
    out = {}
    for split in t.dev_splits:
        key = task if split == "dev" else f"{task}-{split}"
        refs = evs["bebert_kd"]["float"]["splits"][split]["predictions"]["labels"]
        preds, rows = {}, {}
        for row in ROWS:
            ev = evs["bebert_kd0" if row == "bebert_kd0" else "bebert_kd"]
            fp, ip = _row_preds(ev, split, row)
            preds[row] = fp
            cell = {**S.bootstrap(t, fp, refs), "train_seconds": _seconds(ev, row)}
            if ip is not None:
                cell["integer"] = S.score(t, ip, refs)
                cell["integer_gap"] = cell["integer"] - cell["score"]
            if row in ("bebert_kd0", "bebert_kd"):
                cell["votes"] = {v: S.score(t, p, refs) for v, p in
                                 ev["float"]["splits"][split]["predictions"]["votes"].items()}
                cell["members"] = [S.score(t, p, refs) for p in
                                   ev["float"]["splits"][split]["predictions"]["members"]]
            rows[row] = cell
        pairs = {f"{a}-{b}": S.paired(t, preds[a], preds[b], refs) for a, b in
                 (("bebert_kd", "binarybert"), ("bebert_kd0", "binarybert"), ("bebert_kd", "bebert_kd0"),
                  ("fp", "binarybert"), ("fp", "bebert_kd"))}
        out[key] = {"rows": rows, "paired": pairs, "majority": S.majority_baseline(t, train_labels, refs),
                    "examples": len(refs), "settings": settings, "_preds": {**preds, "labels": refs}}
    return out


# -- claims -------------------------------------------------------------------------------------------
def _pooled(results: dict, a: str, b: str, seed: int = 0) -> dict:
    """The mean over tasks of score(a) - score(b), with a bootstrap interval (each task resampled)."""
    diffs, boots = [], []
    rng = np.random.default_rng(seed)
    for key, r in results["tasks"].items():
        t = glue.get_task(key.split("-")[0])
        p = r["_preds"]
        refs = np.asarray(p["labels"])
        pa, pb = np.asarray(p[a]), np.asarray(p[b])
        diffs.append(S.score(t, pa, refs) - S.score(t, pb, refs))
        idx = rng.integers(0, len(refs), (S.RESAMPLES, len(refs)))
        boots.append([S.score(t, pa[i], refs[i]) - S.score(t, pb[i], refs[i]) for i in idx])
    if not diffs:
        return {}
    m = np.mean(np.asarray(boots), axis=0)
    return {"diff": 100 * float(np.mean(diffs)), "low": 100 * float(np.percentile(m, 2.5)),
            "high": 100 * float(np.percentile(m, 97.5)), "tasks": len(diffs)}


def claims(results: dict) -> dict:
    out = {}
    for name, a, b, margin in (("ensemble_kd_beats_one_binary_member", "bebert_kd", "binarybert", 0.0),
                               ("ensemble_kd0_beats_one_binary_member", "bebert_kd0", "binarybert", 0.0),
                               ("kd_free_ensemble_within_half_a_point_of_kd", "bebert_kd0", "bebert_kd", -0.5)):
        d = _pooled(results, a, b)
        if d:
            out[name] = {**d, "margin": margin, "ruling": S.ruling(d["low"], d["high"], margin)}
    t_kd = sum(r["rows"]["bebert_kd"]["train_seconds"]["members"] for r in results["tasks"].values())
    t_kd0 = sum(r["rows"]["bebert_kd0"]["train_seconds"]["members"] for r in results["tasks"].values())
    if t_kd0:
        out["kd_free_members_train_2x_faster"] = {
            "seconds_kd": round(t_kd, 1), "seconds_kd0": round(t_kd0, 1), "speedup": round(t_kd / t_kd0, 2),
            "ruling": "holds" if t_kd / t_kd0 >= 2.0 else "does not hold",
            "note": "measured wall time of the members (the shared teacher and ternary stages excluded), on a "
                    "machine shared with other jobs: tens of percent of noise"}
    targets = {}
    for key, r in results["tasks"].items():
        task = key.split("-")[0]
        rows = r["rows"]
        fp, member = 100 * rows["fp"]["score"], 100 * rows["binarybert"]["score"]
        tt = {"binary_member_within_5_of_fp": {"fp": fp, "member": member, "met": fp - member <= 5.0}}
        if task in ANCHORS:
            tt["fp_within_4_of_anchor"] = {"fp": fp, "anchor": ANCHORS[task], "met": ANCHORS[task] - fp <= 4.0}
        gaps = {row: 100 * c["integer_gap"] for row, c in rows.items() if "integer_gap" in c}
        tt["integer_within_half_a_point"] = {"gaps": gaps, "met": all(abs(g) <= 0.5 for g in gaps.values())}
        targets[key] = tt
    out["targets"] = targets
    return out


# -- robustness ----------------------------------------------------------------------------------------
def robustness_summary(args) -> dict | None:
    seeds = {}
    for s in ROBUST_SEEDS:
        cfg = config("sst2", "none", args, member_seed=s, tag="bebert_kd0" if s == args.seed else f"bebert_kd0_seed{s}")
        cache = Path(cfg.out) / "eval.json"
        if not cache.is_file():
            return None
        ev = json.loads(cache.read_text())["float"]["splits"]["dev"]
        seeds[s] = {"member": ev["members"][0]["accuracy"], "ensemble": ev["ensemble"]["accuracy"]}
    m = np.array([v["member"] for v in seeds.values()])
    e = np.array([v["ensemble"] for v in seeds.values()])
    c = config("sst2", "none", args)
    out = {"seeds": seeds, "member": {"mean": float(m.mean()), "std": float(m.std(ddof=1))},
           "ensemble": {"mean": float(e.mean()), "std": float(e.std(ddof=1))},
           "settings": {"epochs": c.epochs, "train_examples": c.max_train_examples, "max_seq_len": c.max_seq_len}}
    probes = {row: Path(config("sst2", kd, args).out) / "robustness.json" for row, kd in RUNS.items()}
    out["perturbation"] = {row: json.loads(f.read_text()) for row, f in probes.items() if f.is_file()}
    return out


# -- report ----------------------------------------------------------------------------------------------
def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def plot(results: dict, dest: Path) -> None:
    """Bars of every row per dev set with their 95 % intervals, the majority baseline as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["tasks"])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 + 1.9 * len(keys)), 3.6))
    width = 0.8 / len(ROWS)
    for j, row in enumerate(ROWS):
        cells = [results["tasks"][k]["rows"][row] for k in keys]
        xs = [i + (j - (len(ROWS) - 1) / 2) * width for i in range(len(keys))]
        ys = [100 * c["score"] for c in cells]
        err = [[100 * (c["score"] - c["low"]) for c in cells], [100 * (c["high"] - c["score"]) for c in cells]]
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=row)
    for i, k in enumerate(keys):
        m = 100 * results["tasks"][k]["majority"]
        ax.plot([i - 0.45, i + 0.45], [m, m], "k--", lw=0.8)
    ax.set_xticks(range(len(keys)), keys)
    ax.set_ylabel("dev score x100 (95 % interval)")
    ax.set_title("BEBERT on GLUE dev, MiniLM-L6 (dashed: majority class)", fontsize=9)
    ax.legend(fontsize=7, ncol=len(ROWS), loc="lower center")
    fig.tight_layout()
    fig.savefig(dest, dpi=120)
    plt.close(fig)


def write_report(results: dict) -> None:
    public = {k: v for k, v in results.items() if k != "tasks"}
    public["tasks"] = {k: {kk: vv for kk, vv in r.items() if kk != "_preds"} for k, r in results["tasks"].items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_json(RESULTS / "train_experiment.json", public)
    if results["tasks"]:
        atomic_json(RESULTS / "train_experiment_predictions.json",
                    {k: r["_preds"] for k, r in results["tasks"].items()})
        plot(results, RESULTS / "train_experiment.png")
    lines = ["# BEBERT on GLUE dev, MiniLM-L6 (real run)", "",
             "Main score x100 [95 % bootstrap interval] (training wall time). fp = the FP teacher; binarybert = one "
             "binary member (BinaryBERT: TWS from the half-width ternary model, KD); bebert = 3 AdaBoost members, "
             "SAMME hard vote. `int` = the integer path of the same model. Plot: train_experiment.png.", "",
             "| task | majority | " + " | ".join(ROWS) + " |", "|---|---|" + "---|" * len(ROWS)]
    for key, r in results["tasks"].items():
        cells = []
        for row in ROWS:
            c = r["rows"][row]
            s = f"{_pct(c['score'])} [{_pct(c['low'])}, {_pct(c['high'])}] ({c['train_seconds']['total'] / 60:.0f} min)"
            if "integer" in c:
                s += f", int {_pct(c['integer'])}"
            cells.append(s)
        lines.append(f"| {key} | {_pct(r['majority'])} | " + " | ".join(cells) + " |")
    carried = [k for k, r in results["tasks"].items() if r.get("carried_over")]
    if carried:
        lines += ["", f"Rows of {', '.join(carried)}: trained and evaluated by an earlier invocation of this script "
                      "with the settings below (kept from the report, their runs not on this machine)."]
    lines += ["", "Paired bootstrap differences (x100, 95 % interval, p):", ""]
    for key, r in results["tasks"].items():
        lines.append(f"- {key}: " + "; ".join(f"{k} {100 * p['diff']:+.1f} [{100 * p['low']:+.1f}, {100 * p['high']:+.1f}]"
                                              f" p={p['p']:.3f}" for k, p in r["paired"].items()))
    lines += ["", "Votes on the same members (x100) and the members alone:", ""]
    for key, r in results["tasks"].items():
        for row in ("bebert_kd0", "bebert_kd"):
            c = r["rows"][row]
            lines.append(f"- {key} {row}: " + ", ".join(f"{v} {_pct(s)}" for v, s in c["votes"].items())
                         + "; members " + ", ".join(_pct(s) for s in c["members"]))
    cl = results.get("claims", {})
    lines += ["", "Claims of the paper, on these results:", ""]
    for name, c in cl.items():
        if name == "targets":
            continue
        if "speedup" in c:
            lines.append(f"- {name.replace('_', ' ')}: **{c['ruling']}** (members {c['seconds_kd']:.0f} s with KD, "
                         f"{c['seconds_kd0']:.0f} s without: {c['speedup']}x; {c['note']})")
        else:
            lines.append(f"- {name.replace('_', ' ')}: **{c['ruling']}** (mean over {c['tasks']} dev sets "
                         f"{c['diff']:+.2f} points [{c['low']:+.2f}, {c['high']:+.2f}], margin {c['margin']:+.1f})")
    lines += ["", "Targets:", ""]
    for key, tt in cl.get("targets", {}).items():
        parts = []
        for name, v in tt.items():
            detail = ", ".join(f"{k} {x:.1f}" if isinstance(x, float) else
                               (f"{k} " + ", ".join(f"{kk} {vv:+.2f}" for kk, vv in x.items()) if isinstance(x, dict) else f"{k} {x}")
                               for k, x in v.items() if k != "met")
            parts.append(f"{name.replace('_', ' ')}: {'met' if v['met'] else 'NOT met'} ({detail})")
        lines.append(f"- {key}: " + "; ".join(parts))
    lines += (_fp_ceiling_lines() + _member_epochs_lines() + _noise_floor_lines() + _heldout_lines()
              + _integer_stage_lines())
    rob = results.get("robustness")
    if rob:
        rs = rob.get("settings", {})
        runs = (f"runs on {rs.get('train_examples') or 'all'} training examples, {rs.get('epochs')} epochs a stage"
                + (", trained by an earlier invocation (kept from the report)" if rob.get("carried_over") else ""))
        lines += ["", f"Robustness (SST-2 dev accuracy x100; {runs}):", "",
                  f"- over member seeds {', '.join(map(str, rob['seeds']))} (BEBERT-3 without KD, shared stages): "
                  f"one member {_pct(rob['member']['mean'])} +- {_pct(rob['member']['std'])}, "
                  f"ensemble {_pct(rob['ensemble']['mean'])} +- {_pct(rob['ensemble']['std'])} (std over seeds)"]
        for row, modes in rob.get("perturbation", {}).items():
            for mode, rates in modes.items():
                lines.append(f"- {row}, {mode}: " + "; ".join(
                    f"rate {r}: member {_pct(v['single']['mean'])}, ensemble {_pct(v['ensemble']['mean'])}"
                    for r, v in rates.items()))
    lines += ["", "Settings:", "", f"- {results.get('settings_note', '')}"]
    (RESULTS / "train_experiment.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _fp_ceiling_lines() -> list[str]:
    """What bounds the FP rows, from bench/bench_fp_ceiling.py's results when they are there."""
    path = RESULTS / "fp_ceiling.json"
    if not path.is_file():
        return []
    variants = json.loads(path.read_text()).get("variants", {})
    lines = ["", "What bounds the FP rows (bench/bench_fp_ceiling.py, the same FP model fine-tuned alone; "
                 "bench/results/fp_ceiling.json):", ""]
    for name, v in variants.items():
        data = "full train set" if v["train_examples"] is None else f"{v['train_examples']} train examples"
        lines.append(f"- {name}: {v['score']:.1f} [{v['low']:.1f}, {v['high']:.1f}] (lr {v['lr']:g}, "
                     f"{v['epochs']} epochs, {data}, {v['pooling']} pooling; anchor {v['anchor']})")
    return lines


def _member_epochs_lines() -> list[str]:
    """One binary member with more epochs a stage, from bench/bench_member_epochs.py when run."""
    path = RESULTS / "member_epochs.json"
    if not path.is_file():
        return []
    lines = ["", "One binary member with more epochs per stage (bench/bench_member_epochs.py, the same teacher; "
                 "bench/results/member_epochs.json):", ""]
    for name, c in json.loads(path.read_text()).get("cases", {}).items():
        r, d = c["rows"], c["paired"]["fp-member"]
        lines.append(f"- {name}: {c['epochs']} epochs a stage: fp {r['fp']['score']:.1f}, member "
                     f"{r['member']['score']:.1f} [{r['member']['low']:.1f}, {r['member']['high']:.1f}] "
                     f"(fp - member {d['diff']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]), integer "
                     f"{r['member_integer']['score']:.1f}")
    return lines


def _bench_section(pattern: str, intro: str, line, keep=lambda d: True) -> list[str]:
    """The report's section on another bench's results (`pattern` under bench/results/, when run):
    `intro`, then one line per result file kept (`line(file, result)`)."""
    docs = [(f, json.loads(f.read_text())) for f in sorted(RESULTS.glob(pattern))]
    docs = [(f, d) for f, d in docs if keep(d)]
    return ["", intro, "", *(line(f, d) for f, d in docs)] if docs else []


def _noise_floor_lines() -> list[str]:
    """The integer gap beside the fake-quant model's own noise floor (bench/bench_integer_agreement.py)."""
    def line(f, d):
        cells = [f"{name} integer {r['integer_vs_fake_quant']['diff_points']:+.2f} "
                 f"(agree {r['integer_vs_fake_quant']['agreement']:.3f}), noise {r['noise_floor']['diff_points']:+.2f} "
                 f"(agree {r['noise_floor']['agreement']:.3f})" for name, r in d["rows"].items()]
        return f"- {d['task']} {Path(d['run']).name} ({f.name}): " + "; ".join(cells)
    return _bench_section("integer_agreement_*.json",
                          "The integer gap beside the fake-quant model's own noise floor (bench/bench_integer_agreement.py: "
                          "N(0, 1e-4) on every LayerNorm output of the fake-quant model; difference from the fake-quant score "
                          "in points x100, and the fraction of examples predicted alike):", line,
                          keep=lambda d: (d.get("train_config") or {}).get("base") == "binarybert")


def _heldout_lines() -> list[str]:
    """The integer gap measured where it can be resolved: on held-out training examples
    (bench/bench_integer_agreement.py --split heldout)."""
    def line(f, d):
        cells = [f"{name} fq {r['fake_quant']:.1f}, int {r['integer']:.1f}, gap {g['diff_points']:+.2f} "
                 f"[{g['low']:+.2f}, {g['high']:+.2f}] (agree {g['agreement']:.3f})"
                 for name, r in d["rows"].items() for g in [r["integer_vs_fake_quant"]]]
        return f"- {d['task']} {Path(d['run']).name}, {d['examples']} examples ({f.name}): " + "; ".join(cells)
    return _bench_section("integer_heldout_*.json",
                          "The integer gap where a sample can resolve half a point (bench/bench_integer_agreement.py "
                          "--split heldout: training examples outside the run's seeded subset, which no stage of the run "
                          "saw; x100, the paired 95 % bootstrap interval of int - fq). The dev set's gap spreads about "
                          "+-0.5 points by sampling alone where the paths disagree on 2-3 % of its examples:", line)


def _integer_stage_lines() -> list[str]:
    """What training on the integer path's values does (bench/bench_integer_stage.py)."""
    def cell(name, r):
        sc = {k: r[k]["score"] for k in ("fq_before", "int_before", "fq_after", "int_after")}
        return (f"{name} fq {sc['fq_before']:.1f} -> {sc['fq_after']:.1f}, int {sc['int_before']:.1f} -> "
                f"{sc['int_after']:.1f} (gap {r['int_before-fq_before']['diff']:+.2f} -> "
                f"{r['int_after-fq_after']['diff']:+.2f})")

    def line(f, d):
        return (f"- {d['task']} {Path(d['run']).name}, {d['integer_epochs']} epoch at lr {d['integer_lr']:g} "
                f"({f.name}): " + "; ".join(cell(name, r) for name, r in d["rows"].items()))
    return _bench_section("integer_stage*.json",
                          "Training on the integer path's own values afterwards (bench/bench_integer_stage.py: each member "
                          "of a finished run, its AdaBoost weights, the integer forward with the fake-quant gradient; dev "
                          "x100, fake-quant fq and integer int, before -> after; the gap int - fq of the same weights):", line)


def _carried(task: str) -> dict:
    """A task's rows from the report already in --results-dir, when its runs are not under
    --runs-dir (trained by an earlier invocation, on another machine or in another session):
    the report keeps every finished task instead of dropping it. Marked `carried_over`."""
    public, preds = RESULTS / "train_experiment.json", RESULTS / "train_experiment_predictions.json"
    if not (public.is_file() and preds.is_file()):
        return {}
    doc, kept = json.loads(public.read_text()), json.loads(preds.read_text())
    return {key: {**r, "settings": r.get("settings") or _old_settings(doc, task), "_preds": kept[key],
                  "carried_over": True}
            for key, r in doc.get("tasks", {}).items() if key.split("-")[0] == task and key in kept}


def _old_settings(doc: dict, task: str) -> dict:
    """A carried task's settings from a report written before rows carried their own (one
    `epochs` for every task then)."""
    s = doc.get("settings", {})
    epochs = s.get("epochs")
    data = s.get("data", {}).get(task, {})
    return {"epochs": epochs[task] if isinstance(epochs, dict) else epochs, "teacher_epochs": s.get("teacher_epochs"),
            "train_examples": data.get("train_examples"), "max_seq_len": data.get("max_seq_len")}


def _carried_robustness() -> dict | None:
    """The robustness summary of the report already in --results-dir, when SST-2's seed runs are
    not under --runs-dir (as `_carried` keeps a task's rows), marked `carried_over`."""
    public = RESULTS / "train_experiment.json"
    doc = json.loads(public.read_text()) if public.is_file() else {}
    rob = doc.get("robustness")
    if not rob:
        return None
    settings = rob.get("settings") or {k: v for k, v in _old_settings(doc, "sst2").items() if k != "teacher_epochs"}
    return {**rob, "settings": settings, "carried_over": True}


def _trained_threads() -> int:
    """The CPU threads the runs trained with, as the last training invocation recorded them
    (--report-only renders in a process whose own thread count says nothing about them)."""
    public = RESULTS / "train_experiment.json"
    if public.is_file():
        threads = json.loads(public.read_text()).get("settings", {}).get("threads")
        if isinstance(threads, int) and threads > 0:
            return threads
    return torch.get_num_threads()


def _train_labels(cfg: TrainConfig):
    t = glue.get_task(cfg.task)
    ex = glue.load_split(t, "train", cfg.data_dir, cfg.max_train_examples, seed=cfg.seed)
    return [e.label for e in ex]


def main(argv=None) -> int:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--steps", default="train,eval,robustness", help="any of train, eval, robustness")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the ternary stage and of every member (default: per task, EPOCHS)")
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--caps", default="", help="per-task training subsets, e.g. sst2=8000,cola=4000")
    p.add_argument("--full", action="store_true", help="full training sets (the default on a GPU)")
    p.add_argument("--backbone", default=None)
    p.add_argument("--runs-dir", default="bench/runs/train_experiment")
    p.add_argument("--results-dir", default="bench/results", help="where the JSON and Markdown go")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the free cores)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--report-only", action="store_true", help="re-render the report from the cached evaluations")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    RESULTS = Path(args.results_dir)
    args.backbone = args.backbone or default_backbone()
    args.full = args.full or torch.cuda.is_available()
    args.caps = {glue.get_task(k).name: int(v) for k, v in (c.split("=") for c in args.caps.split(",") if c)}
    from bebert.model.cli import _set_threads

    _set_threads(args.threads)
    tasks = [glue.get_task(t).name for t in args.tasks.split(",")]
    steps = set(args.steps.split(","))
    if not args.report_only:
        for task in tasks:
            cfgs = {row: config(task, kd, args) for row, kd in RUNS.items()}
            if "train" in steps:
                for cfg in cfgs.values():
                    run_train(cfg)
            if "eval" in steps:
                for cfg in cfgs.values():
                    if (Path(cfg.out) / "state.json").is_file():
                        run_eval(cfg)
            if task == "sst2" and "robustness" in steps:
                for s in ROBUST_SEEDS:
                    if s != args.seed:
                        cfg = config(task, "none", args, member_seed=s, tag=f"bebert_kd0_seed{s}")
                        run_train(cfg)
                        run_eval(cfg)
                for row in RUNS:  # both: KD's SAMME can equal its member 0, the KD-free one votes
                    probe(cfgs[row])
    results = {"tasks": {}}
    for task in TASKS:
        cfgs = {row: config(task, kd, args) for row, kd in RUNS.items()}
        caches = {row: Path(c.out) / "eval.json" for row, c in cfgs.items()}
        if all(c.is_file() for c in caches.values()):
            evs = {row: json.loads(c.read_text()) for row, c in caches.items()}
            c = cfgs["bebert_kd"]
            settings = {"epochs": c.epochs, "teacher_epochs": c.teacher_epochs,
                        "train_examples": c.max_train_examples, "max_seq_len": c.max_seq_len}
            results["tasks"].update(task_rows(task, evs, _train_labels(c), settings))
        else:
            results["tasks"].update(_carried(task))
    results["claims"] = claims(results) if results["tasks"] else {}
    results["robustness"] = robustness_summary(args) or _carried_robustness()
    threads = _trained_threads() if args.report_only else torch.get_num_threads()
    # what the rows trained with, where there are rows; this invocation's settings elsewhere
    trained = {k.split("-")[0]: r["settings"] for k, r in results["tasks"].items()}
    epochs = {t: trained.get(t, {}).get("epochs") or task_epochs(t, args) for t in TASKS}
    data = {t: {f: trained[t].get(f) for f in ("train_examples", "max_seq_len")} if t in trained else
            {"train_examples": None if args.full else args.caps.get(t, DATA[t][0]), "max_seq_len": DATA[t][1]}
            for t in TASKS}
    results["settings"] = {"data": data,
                           "epochs": epochs,
                           "teacher_epochs": args.teacher_epochs, "seed": args.seed,
                           "backbone": Path(args.backbone).name, "device": "cuda" if torch.cuda.is_available() else "cpu",
                           "threads": threads}
    results["settings_note"] = (
        f"MiniLM-L6 backbone ({Path(args.backbone).name}); teacher {args.teacher_epochs} epochs (lr 5e-5); the "
        f"half-width FP model (6 of 12 heads, 768 of 1536 FFN neurons kept by importance, distilled from the "
        f"teacher, lr 1e-4), the ternary stage and every member "
        + ", ".join(f"{t} {e}" for t, e in epochs.items()) + " epochs each (lr 3e-4); warm-up 10 % + "
        "linear decay, batch 32, bucketed batches; BinaryBERT 1-1-4 members split from the ternary model by TWS, "
        "a scale per half; AdaBoost SAMME, resampling; training sets: "
        + ", ".join(f"{t} {d['train_examples'] or 'full'} at {d['max_seq_len']} tokens" for t, d in data.items())
        + f"; seed {args.seed}; full dev sets; {results['settings']['device']}, {threads} threads "
          "on a 2-core machine shared with other jobs (wall times carry tens of percent of noise).")
    write_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
