"""What bounds the full-precision rows of the experiment: the recipe, the pooling or the data?

bench/train_experiment.py's FP teacher (the offline MiniLM-L6 backbone, all-MiniLM-L6-v2) lands
below the MiniLMv1-L6 anchors (SST-2 91.5, MRPC 88.9). This bench fine-tunes the same FP model
(`model.quant_bert` at QuantConfig "fp", `model.stages.train_stage`, the experiment's batch 32,
10 % warm-up and linear decay, weight decay 0.01, seed 42) under variants that each remove one
suspected bound, and scores each on the full dev set with a 95 % bootstrap interval:

- the recipe: a higher learning rate and more epochs (MRPC, and SST-2 on the 6,400 subset it trained on before);
- the pooling: all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling, and its
  checkpoint's BERT pooler is untrained (bias all zeros), so [CLS] pooling may be what holds it
  back. `mean` pools the last layer over the real tokens before the same pooler and classifier:
  a probe only (the compiler and the integer path lower [CLS] pooling);
- the data: SST-2 on 6,400 sentences (the experiment's subset until it moved to 16,000), on 16,000
  and on the full 67,349.

    python bench/bench_fp_ceiling.py [--data-dir ../shared/data/glue] [--variants NAME,...]
        [--threads 2] [--out bench/results/fp_ceiling.json]

Each variant's result is written as it finishes (the JSON keeps finished variants; rerunning
skips them), so the bench resumes after an interruption.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bebert.files import atomic_write  # noqa: E402
from bebert.model import ensemble as E  # noqa: E402
from bebert.model import glue  # noqa: E402
from bebert.model import intervals as IV  # noqa: E402
from bebert.model.quant_bert import BertShape, QuantBert, QuantConfig, build, load_backbone  # noqa: E402
from bebert.model.stages import Stage, train_stage  # noqa: E402
from bebert.model.train import default_backbone, predict  # noqa: E402

ANCHORS = {"sst2": 91.5, "mrpc": 88.9}


@dataclass(frozen=True)
class Variant:
    name: str
    task: str
    lr: float
    epochs: int
    max_seq_len: int
    train_examples: int | None = None   # None: the full training set
    pooling: str = "cls"


VARIANTS = (
    Variant("mrpc_experiment", "mrpc", 5e-5, 3, 128),
    Variant("mrpc_lr1e-4_5ep", "mrpc", 1e-4, 5, 128),
    Variant("mrpc_mean_pooling", "mrpc", 5e-5, 3, 128, pooling="mean"),
    Variant("sst2_experiment", "sst2", 5e-5, 3, 64, 6400),
    Variant("sst2_lr1e-4_4ep", "sst2", 1e-4, 4, 64, 6400),
    Variant("sst2_16000", "sst2", 5e-5, 3, 64, 16000),
    Variant("sst2_full", "sst2", 5e-5, 2, 64),
)


class MeanPooled(QuantBert):
    """The FP model with the last layer mean-pooled over the real tokens (a probe, see above)."""

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, internals: bool = False):
        token_type_ids = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        mask_add = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x, _, _ = layer(x, mask_add)
        keep = attention_mask[..., None].to(x.dtype)
        return self.classifier(self.drop(torch.tanh(self.pooler((x * keep).sum(1) / keep.sum(1)))))


def run(v: Variant, data_dir: str, backbone: str) -> dict:
    task = glue.get_task(v.task)
    train_ex = glue.load_split(task, "train", data_dir, v.train_examples, seed=42)
    hf_cfg, hf_state, tok = load_backbone(backbone)
    data = glue.encode(train_ex, tok, v.max_seq_len, task.is_regression)
    torch.manual_seed(42)
    model = build(BertShape.from_hf(hf_cfg, task.num_labels), QuantConfig.preset("fp"), init_from=hf_state)
    if v.pooling == "mean":
        model.__class__ = MeanPooled
    t0 = time.perf_counter()
    train_stage(model, data, Stage(v.name, "task", v.epochs, v.lr, 32, 0.1, 0.01, seed=42),
                regression=task.is_regression, what=v.name)
    seconds = time.perf_counter() - t0
    dev = glue.encode(glue.load_split(task, task.dev_splits[0], data_dir, None), tok, v.max_seq_len,
                      task.is_regression)
    preds = E.predictions(predict(model.eval(), dev), task.is_regression)
    refs = dev["labels"].numpy()
    ci = IV.bootstrap(task, preds, refs)
    return {**asdict(v), "train_examples_used": len(train_ex), "train_seconds": seconds,
            "metrics": {k: 100 * s for k, s in glue.compute_metrics(task, preds, refs).items()},
            "score": 100 * ci["score"], "low": 100 * ci["low"], "high": 100 * ci["high"],
            "anchor": ANCHORS.get(v.task), "predictions": [int(p) for p in preds]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    p.add_argument("--backbone", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="bench/results/fp_ceiling.json")
    args = p.parse_args(argv)
    from bebert.model.cli import _set_threads

    _set_threads(args.threads)
    known = {v.name: v for v in VARIANTS}
    names = args.variants.split(",")
    bad = [n for n in names if n not in known]
    if bad:
        print(f"error: unknown variant(s) {', '.join(bad)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.is_file() else {}
    res["what"] = __doc__.splitlines()[0]
    res["backbone"] = Path(args.backbone or default_backbone()).name
    res["host"] = {"device": "cpu", "threads": torch.get_num_threads()}
    done = res.setdefault("variants", {})
    for name in names:
        if name in done:
            continue
        print(f"[fp] {name}", flush=True)
        done[name] = run(known[name], args.data_dir, args.backbone or default_backbone())
        atomic_write(out, json.dumps(res, indent=1) + "\n")
        r = done[name]
        print(f"[fp] {name}: {r['score']:.1f} [{r['low']:.1f}, {r['high']:.1f}] in {r['train_seconds']:.0f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
