"""Robustness: task score under random word deletion and swapping, one member vs the ensemble.

BEBERT's claim is that the ensemble is more robust than a single binary BERT. We perturb the
dev sentences at set rates (every word is deleted with probability `rate`, or swapped with its
right neighbour with probability `rate`; numpy-seeded), score member 0 and the ensemble on the
same perturbed inputs, and report the mean and spread (std) over seeds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from . import ensemble as E
from . import glue

MODES = ("delete", "swap")


def perturb_text(text: str | None, mode: str, rate: float, rng: np.random.Generator) -> str | None:
    if text is None:
        return None
    words = text.split()
    if mode == "delete":
        keep = [w for w in words if rng.random() >= rate]
        words = keep or words[:1]
    elif mode == "swap":
        i = 0
        while i < len(words) - 1:
            if rng.random() < rate:
                words[i], words[i + 1] = words[i + 1], words[i]
                i += 1
            i += 1
    else:
        raise ValueError(f"perturbation must be one of {', '.join(MODES)}, got '{mode}'")
    return " ".join(words)


def perturb(examples: list[glue.Example], mode: str, rate: float, seed: int) -> list[glue.Example]:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"perturbation rate must be in [0, 1), got {rate}")
    rng = np.random.default_rng(seed)
    return [replace(e, text_a=perturb_text(e.text_a, mode, rate, rng), text_b=perturb_text(e.text_b, mode, rate, rng))
            for e in examples]


def robustness(run_dir: str | Path, task: str | None = None, data_dir: str | None = None,
               max_examples: int | None = None, rates=(0.1, 0.2), modes=MODES, seeds=(0, 1, 2)) -> dict:
    """{mode: {rate: {single: (mean, std), ensemble: (mean, std)}}} of the task's main score."""
    import json

    from .package import load_package
    from .train import predict

    run = Path(run_dir)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    pkg = load_package(run / "package" if (run / "package").is_dir() else run)
    t = glue.get_task(task or pkg.task)
    tok = pkg.tokenizer()
    base = glue.load_split(t, "dev", data_dir if data_dir is not None else cfg.get("data_dir"), max_examples)
    reg = t.is_regression
    out: dict = {}
    for mode in modes:
        for rate in rates:
            single, ens = [], []
            for seed in seeds:
                data = glue.encode(perturb(base, mode, rate, seed), tok, pkg.max_seq_len, reg)
                refs = data["labels"].numpy()
                logits = [predict(m, data) for m in pkg.members]
                score = lambda o: glue.main_score(t, glue.compute_metrics(t, E.predictions(o, reg), refs))  # noqa: E731
                single.append(score(logits[0]))
                ens.append(score(E.combine(logits, pkg.alphas, reg, pkg.vote)))
            out.setdefault(mode, {})[str(rate)] = {
                "single": {"mean": float(np.mean(single)), "std": float(np.std(single))},
                "ensemble": {"mean": float(np.mean(ens)), "std": float(np.std(ens))}}
    return out
