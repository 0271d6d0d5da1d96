"""How closely a trained package's integer path follows its fake-quant model, next to how closely
the fake-quant model follows itself.

For every member and the ensemble of RUN (a `bebert train` run folder) on a GLUE dev set:
the fake-quant score, the integer path's score (`bebert eval --integer`: what the accelerator
computes), their difference with a paired 95 % bootstrap interval, and the fraction of examples
on which the two predict the same class. Beside it, the *noise floor*: the same fake-quant
model with Gaussian noise of standard deviation `--noise` (default 1e-4) added to every
LayerNorm output, which is far below any grid the integer path uses. A binary network's sign
decisions make it chaotic near its decision boundary: where even that noise moves the score
and the predictions as much as the integer path does, the integer-vs-fake-quant gap measures
the model's own sensitivity, not an error of the integer path.

A dev set of 872 (SST-2) or 408 (MRPC) examples cannot resolve a half-point gap: where the two
paths disagree on 2-3 % of the examples, the gap's own sampling spread is about +-0.5 points.
`--split heldout` measures it instead on training examples the run never saw (the complement of
its seeded `--max-train-examples` subset, every stage of the run trained on that subset only), up
to `--examples` of them, drawn with a fixed seed: an estimate of the expected gap several times
tighter than the dev set's.

    python bench/bench_integer_agreement.py RUN [--data-dir ../shared/data/glue] [--split heldout]
        [--examples 10000] [--out bench/results/X.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bebert.files import atomic_write  # noqa: E402
from bebert.model import batching as B  # noqa: E402
from bebert.model import ensemble as E  # noqa: E402
from bebert.model import glue  # noqa: E402
from bebert.model import intervals as IV  # noqa: E402
from bebert.model.integer_path import integer_predictions  # noqa: E402
from bebert.model.package import PackageError, load_package  # noqa: E402


def noisy_logits(model, data: dict, noise: float, seed: int) -> torch.Tensor:
    """The model's logits with N(0, noise^2) added to every LayerNorm output (seeded)."""
    g = torch.Generator().manual_seed(seed)
    hooks = [mod.register_forward_hook(lambda m, i, o: o + noise * torch.randn(o.shape, generator=g))
             for mod in model.modules() if isinstance(mod, torch.nn.LayerNorm)] if noise else []
    try:
        with torch.no_grad():
            return B.predict(model.eval(), data, 128)
    finally:
        for h in hooks:
            h.remove()


def compare(task, a, b, refs) -> dict:
    d = IV.paired(task, a, b, refs)
    return {"diff_points": 100 * d["diff"], "low": 100 * d["low"], "high": 100 * d["high"],
            "agreement": float(np.mean(np.asarray(a) == np.asarray(b)))}


def heldout_examples(task, run: Path, data_dir: str | None, limit: int | None) -> list:
    """Training examples outside the run's seeded subset (the one `bebert train` drew), at most
    `limit` of them in a seeded random order."""
    cfg = json.loads((run / "config.json").read_text())
    examples = glue.load_split(task, "train", data_dir)
    n, cap = len(examples), cfg.get("max_train_examples")
    if cap is None or cap >= n:
        raise SystemExit(f"{run} trained on the whole {task.name} training set: no held-out examples")
    rest = glue.heldout_indices(n, cap, cfg["seed"])
    rest = np.random.default_rng(12345).permutation(rest)[:limit]
    return [examples[i] for i in np.sort(rest)]


def measure(run: Path, data_dir: str | None, noise: float, split: str | None = None,
            limit: int | None = None) -> dict:
    pkg = load_package(run / "package" if (run / "package").is_dir() else run)
    task = glue.get_task(pkg.task)
    reg = task.is_regression
    split = split or task.dev_splits[0]
    examples = (heldout_examples(task, run, data_dir, limit) if split == "heldout"
                else glue.load_split(task, split, data_dir, limit))
    data = glue.encode(examples, pkg.tokenizer(), pkg.max_seq_len, reg)
    refs = data["labels"].numpy()
    fq = [noisy_logits(m, data, 0.0, 0) for m in pkg.members]
    noisy = [noisy_logits(m, data, noise, 1 + i) for i, m in enumerate(pkg.members)]
    members_int, ens_int = integer_predictions(pkg, data)
    rows = {}
    for name, f, n, i in [(f"member{k}", fq[k], noisy[k], members_int[k]) for k in range(len(fq))] + [
            ("ensemble", fq, noisy, ens_int)]:
        if name == "ensemble":
            pf = E.predictions(E.combine(f, pkg.alphas, reg, pkg.vote), reg)
            pn = E.predictions(E.combine(n, pkg.alphas, reg, pkg.vote), reg)
        else:
            pf, pn = E.predictions(f, reg), E.predictions(n, reg)
        rows[name] = {"fake_quant": 100 * IV.score(task, pf, refs), "integer": 100 * IV.score(task, i, refs),
                      "integer_vs_fake_quant": compare(task, i, pf, refs),
                      "noise_floor": {"noisy": 100 * IV.score(task, pn, refs), **compare(task, pn, pf, refs)},
                      "majority_class_fraction": float(np.bincount(np.asarray(pf, np.int64)).max() / len(pf))}
    cfg = run / "config.json"
    return {"run": str(run), "train_config": json.loads(cfg.read_text()) if cfg.is_file() else None,
            "task": task.name, "split": split, "examples": int(len(refs)), "noise": noise,
            "quant": [m.quant.base for m in pkg.members], "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "glue"))
    ap.add_argument("--noise", type=float, default=1e-4)
    ap.add_argument("--split", default=None, help="a dev split (default the task's first) or 'heldout'")
    ap.add_argument("--examples", type=int, default=None, help="at most this many examples")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "integer_agreement.json")
    a = ap.parse_args(argv)
    if a.examples is not None and a.examples <= 0:
        ap.error(f"--examples must be positive, got {a.examples}")
    try:
        res = measure(a.run, a.data_dir, a.noise, a.split, a.examples)
    except (PackageError, glue.DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, r in res["rows"].items():
        iv, nf = r["integer_vs_fake_quant"], r["noise_floor"]
        print(f"{name:9s} fake-quant {r['fake_quant']:5.1f}  integer {r['integer']:5.1f}  "
              f"gap {iv['diff_points']:+5.2f} [{iv['low']:+.2f}, {iv['high']:+.2f}]  agree {iv['agreement']:.3f}  | "
              f"noise {res['noise']:g}: {nf['noisy']:5.1f} gap {nf['diff_points']:+5.2f}  agree {nf['agreement']:.3f}")
    atomic_write(a.out, json.dumps(res, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
