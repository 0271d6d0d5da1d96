"""What training on the integer path's values (`bebert train --integer-epochs`) does to the gap.

bench/train_experiment.py's members lose 0.7-1.2 points on the integer path against the
fake-quant model (the 0.5-point contract): the integer path rounds on 16-bit grids where the
float model does not, and at 4-bit activations that moves a few per cent of the predictions
(bench/bench_integer_agreement.py). The integer stage (model/integer_training.py) trains each
member further on the integer path's own values, so the member deployed is the member trained.

This bench takes a finished run of the experiment (its members as their stages trained them,
the same training subset, the same AdaBoost weights each member trained under, the same
teacher's logits), runs the integer stage on every member with `model.train`'s own
`_integer_stage`, and scores on the full dev set, with 95 % bootstrap intervals:
- each member and the ensemble (the run's SAMME alphas) before: fake-quant and integer path;
- after: the integer path (what the accelerator runs) and the fake-quant forward;
- the contract: integer after against fake-quant before (the model as trained), paired.
In `bebert train --integer-epochs` the stage runs inside boosting (each member's errors, so
the next member's weights and its alpha, are then the integer path's); here the members are the
run's, each given the stage afterwards, which isolates what the stage does.

    python bench/bench_integer_stage.py [--run bench/runs/train_experiment/sst2/bebert_kd0]
        [--data-dir ../shared/data/glue] [--epochs 1] [--lr 5e-5] [--out bench/results/integer_stage.json]

Each member's result is kept in its own folder under RUN/integer_stage/ (the stage checkpoints
and resumes), so an interrupted bench continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bebert.files import atomic_write  # noqa: E402
from bebert.model import ensemble as E  # noqa: E402
from bebert.model import glue  # noqa: E402
from bebert.model import intervals as IV  # noqa: E402
from bebert.model import train as T  # noqa: E402
from bebert.model.cli import _set_threads  # noqa: E402
from bebert.model.integer_training import calibrate, integer_predict  # noqa: E402
from bebert.model.package import load_package  # noqa: E402
from bebert.model.stages import StageStore, load_model, save_model  # noqa: E402


def _config(run: Path, args) -> T.TrainConfig:
    raw = json.loads((run / "config.json").read_text())
    known = {f.name for f in fields(T.TrainConfig)}
    cfg = T.TrainConfig(**{k: v for k, v in raw.items() if k in known})
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else cfg.data_dir   # as the run stored it
    return replace(cfg, data_dir=data_dir, integer_epochs=args.epochs, integer_lr=args.lr)


def _train_data(cfg: T.TrainConfig, task) -> tuple[dict, object]:
    """The run's training subset, encoded as the run encoded it, with its teacher's cached logits;
    and the teacher (the shared stage, reused)."""
    examples = glue.load_split(task, "train", cfg.data_dir, cfg.max_train_examples, seed=cfg.seed)
    hf_cfg, hf_state, tok = T.load_backbone(cfg.backbone)
    data = glue.encode(examples, tok, cfg.max_seq_len, task.is_regression)
    shape = T.BertShape.from_hf(hf_cfg, task.num_labels)
    store = StageStore(cfg.stages_dir or Path(cfg.out) / "stages")
    (Path(cfg.out) / "integer_stage").mkdir(exist_ok=True)
    timer = T.Timer(Path(cfg.out) / "integer_stage" / "timing.json")
    teacher, logits = T._teacher(cfg, store, data, shape, hf_state, task.is_regression, timer)
    data["teacher_logits"] = logits
    return data, teacher


def _dev(cfg: T.TrainConfig, task, run: Path) -> dict:
    """The full dev set, encoded as `bebert eval` encodes it (the package's tokenizer and length)."""
    pkg = load_package(run / "package")
    return glue.encode(glue.load_split(task, "dev", cfg.data_dir), pkg.tokenizer(), pkg.max_seq_len,
                       task.is_regression)


def _member(cfg, task, run: Path, m: int, data: dict, teacher, dev: dict) -> dict:
    """Member m before and after its integer stage: dev logits on both paths (cached in its folder)."""
    folder = run / "integer_stage" / f"member_{m}"
    done = folder / "logits.npz"
    if done.is_file():
        z = np.load(done)
        return {k: z[k] for k in z.files} | json.loads((folder / "member.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    n = len(data["labels"])
    weights = np.load(run / f"weights_{m}.npy") if m else E.initial_weights(n)
    model = load_model(run / f"member_{m}.safetensors").to(T.device())
    n_cal = min(T.CALIBRATION_EXAMPLES, n)
    before = {"fq_before": T.predict(model, dev).numpy(),
              "int_before": integer_predict(model, calibrate(model, data, n_cal), dev).numpy()}
    t0 = time.perf_counter()
    cfg_m = replace(cfg, out=str(folder))
    grids = T._integer_stage(cfg_m, m, model, data, weights, teacher, task.is_regression, folder,
                             f"member {m + 1} {cfg.member_base(m)} kd={cfg.kd}")
    seconds = time.perf_counter() - t0
    save_model(model.cpu(), folder / "member.safetensors", extra={"integer_scales": grids})
    (folder / "ckpt.pt").unlink(missing_ok=True)
    after = {"fq_after": T.predict(model, dev).numpy(), "int_after": integer_predict(model, grids, dev).numpy()}
    np.savez(done, **before, **after)
    meta = {"seconds": round(seconds, 1), "threads": torch.get_num_threads()}
    (folder / "member.json").write_text(json.dumps(meta))
    return {**before, **after, **meta}


def _cell(task, preds, refs) -> dict:
    b = IV.bootstrap(task, preds, refs)
    return {k: round(100 * v, 2) for k, v in b.items()}


def _rows(task, members: list[dict], alphas, refs) -> dict:
    kinds = ("fq_before", "int_before", "fq_after", "int_after")
    out = {}
    for name, preds in [(f"member_{i}", {k: E.predictions(torch.from_numpy(r[k])) for k in kinds})
                        for i, r in enumerate(members)] + [("ensemble", {
                            k: E.predictions(E.combine([torch.from_numpy(r[k]) for r in members], alphas,
                                                       vote="samme")) for k in kinds})]:
        row = {k: _cell(task, preds[k], refs) for k in kinds}
        for a, b in (("int_before", "fq_before"), ("int_after", "fq_after"), ("int_after", "fq_before")):
            d = IV.paired(task, preds[a], preds[b], refs)
            row[f"{a}-{b}"] = {k: round(100 * v, 2) if k != "p" else round(v, 3) for k, v in d.items()}
        row["agree_int_fq_before"] = round(float(np.mean(preds["int_before"] == preds["fq_before"])), 4)
        row["agree_int_fq_after"] = round(float(np.mean(preds["int_after"] == preds["fq_after"])), 4)
        out[name] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "bench/runs/train_experiment/sst2/bebert_kd0"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--members", type=int, default=None, help="only the first N members")
    ap.add_argument("--out", default=str(ROOT / "bench/results/integer_stage.json"))
    args = ap.parse_args()
    run = Path(args.run).resolve()
    if not (run / "state.json").is_file() or not json.loads((run / "state.json").read_text()).get("done"):
        print(f"bench_integer_stage: {run} holds no finished run", file=sys.stderr)
        return 2
    _set_threads(None)   # the free cores, as `bebert train`
    cfg = _config(run, args)
    task = glue.get_task(cfg.task)
    state = json.loads((run / "state.json").read_text())
    count = args.members or cfg.members
    data, teacher = _train_data(cfg, task)
    dev = _dev(cfg, task, run)
    members = [_member(cfg, task, run, m, data, teacher, dev) for m in range(count)]
    alphas = state["alphas"][:count]
    refs = dev["labels"].numpy()
    result = {
        "what": "the integer stage (bebert train --integer-epochs) on a finished run's members: dev scores x100 "
                "[95 % bootstrap] before / after, fake-quant (fq) and integer path (int); paired differences",
        "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run), "task": task.name,
        "dev_examples": int(len(refs)), "members": count, "vote": "samme", "alphas": alphas,
        "integer_epochs": args.epochs, "integer_lr": args.lr,
        "training_examples": int(len(data["labels"])), "loss": "task" if cfg.kd == "none" else "pred",
        "stage_seconds": [r["seconds"] for r in members], "threads": [r["threads"] for r in members],
        "rows": _rows(task, members, alphas, refs),
    }
    atomic_write(Path(args.out), json.dumps(result, indent=2) + "\n")
    for name, row in result["rows"].items():
        print(f"{name:9s} fq {row['fq_before']['score']:.2f} -> {row['fq_after']['score']:.2f}   "
              f"int {row['int_before']['score']:.2f} -> {row['int_after']['score']:.2f}   "
              f"int after - fq before {row['int_after-fq_before']['diff']:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
