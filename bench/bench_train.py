"""Training speed on a CPU, before and after: step times of every kind of stage, and the SST-2
experiment's wall time (bench/results/train_speed.json).

"before" is the former training path, rebuilt from today's code with the former choices:
batches padded to --max-seq-len, the weights binarized by the autograd graph of
alpha * sign_ste(w) (no fused function), re-binarized on every evaluation batch, the full-width
TWS split (2K-wide layers) and prediction KD running the teacher on every step. "after" is the
current path: batches trimmed to their longest sequence and bucketed by length, fused
binarization, weights binarized once for evaluation, the half-width split, cached teacher logits.

Step times are medians over --steps steps of batch 32 on real SST-2 sentences with MiniLM-L6.
The experiment's wall time "before" counts the former pipeline's steps (per task: the teacher
trained twice, every member re-training its own ternary stage, KD as two stages, intermediate
then prediction) at the "before" step times; "after" counts today's (one teacher, one ternary
stage, one joint KD stage per member) at the "after" step times, and beside it the wall time the
real run measured (bench/runs/train_experiment, when present). On a machine shared with other
jobs every figure carries noise; the ratios are the point.

    python bench/bench_train.py [--steps 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from bebert.model import batching as B
from bebert.model import glue
from bebert.model import losses as L
from bebert.model import quant_bert as Q
from bebert.model.binary_linear import sign_ste
from bebert.model.optim import optimizer
from bebert.model.prune import keep_top, prune
from bebert.model.train import default_backbone

EXAMPLES, SEQ, BATCH = 16000, 64, 32  # the experiment's SST-2 settings
EPOCHS, TEACHER_EPOCHS, MEMBERS = 2, 3, 3


@contextmanager
def unfused():
    """The former weight path: autograd's graph of alpha * sign_ste(w), and no evaluation cache."""
    fused, cached = Q.binarize, Q._FrozenMixin._cached
    Q.binarize = lambda w: w.abs().mean(dim=1, keepdim=True) * sign_ste(w)
    Q._FrozenMixin._cached = lambda self, compute: compute()
    try:
        yield
    finally:
        Q.binarize, Q._FrozenMixin._cached = fused, cached


def median_step(model, batches, loss_fn, steps: int) -> float:
    opt = optimizer(model, 1e-5)
    model.train()
    times = []
    for i in range(steps + 2):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        loss = loss_fn(model, b).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps warm caches and initialise the LSQ steps
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def eval_seconds(model, data, padded: bool) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        model.eval()
        if padded:
            for i in range(0, len(data["labels"]), 128):
                model(*(data[k][i:i + 128] for k in B.KEYS))
        else:
            B.predict(model, data)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs-dir", default="bench/runs/train_experiment")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hf_cfg, hf_state, tok = Q.load_backbone(default_backbone())
    data = glue.encode(glue.load_split("sst2", "train", args.data_dir, 1024, seed=0), tok, SEQ)
    lens = B.lengths(data)
    g = torch.Generator().manual_seed(0)
    padded = [B.take(data, b) for b in torch.randperm(1024, generator=g).split(BATCH)]
    padded = [{k: (v if k not in B.KEYS else torch.nn.functional.pad(v, (0, SEQ - v.shape[1])))
               for k, v in b.items()} for b in padded]
    trimmed = [B.take(data, b) for b in B.bucketed(torch.randperm(1024, generator=g), lens, BATCH, g)]
    shape = Q.BertShape.from_hf(hf_cfg, 2)
    teacher = Q.build(shape, Q.QuantConfig.preset("fp"), init_from=hf_state).eval()
    with torch.no_grad():
        for b in padded + trimmed:
            b["teacher_logits"] = teacher(*(b[k] for k in B.KEYS))
    narrow = prune(teacher, keep_top(torch.rand(6, 12), 6), keep_top(torch.rand(6, 1536), 768))
    full_split = Q.tws_split(Q.build(shape, Q.QuantConfig.preset("binarybert").ternary(), init_from=teacher), "shared")
    half_split = Q.tws_split(Q.build(narrow.shape, Q.QuantConfig.preset("binarybert").ternary(), init_from=narrow))
    args_of = lambda b: [b[k] for k in B.KEYS]  # noqa: E731

    def task(m, b):
        return L.task_loss(m(*args_of(b)), b["labels"], False)

    def pred_live(m, b):  # the former prediction KD: a teacher forward every step
        with torch.no_grad():
            t = teacher(*args_of(b))
        return L.pred_kd_loss(m(*args_of(b)), t, False)

    def inter(m, b):
        z, s_int = m(*args_of(b), internals=True)
        with torch.no_grad():
            _, t_int = teacher(*args_of(b), internals=True)
        return L.inter_kd_loss(s_int, t_int, False, L.teacher_heads(m))

    def joint(m, b):
        return inter(m, b) + L.pred_kd_loss(m(*args_of(b)), b["teacher_logits"], False)

    s = args.steps
    steps: dict = {}
    print("measuring step times ...", flush=True)
    steps["teacher"] = {"before": median_step(teacher, padded, task, s), "after": median_step(teacher, trimmed, task, s)}
    with unfused():
        steps["member_task"] = {"before": median_step(full_split, padded, task, s)}
        steps["member_pred_kd"] = {"before": median_step(full_split, padded, pred_live, s)}
        steps["member_inter_kd"] = {"before": median_step(full_split, padded, inter, s)}
        eval_before = eval_seconds(full_split, data, padded=True)
    steps["member_task"]["after"] = median_step(half_split, trimmed, task, s)
    steps["member_joint_kd"] = {"after": median_step(half_split, trimmed, joint, s)}
    eval_after = eval_seconds(half_split, data, padded=False)
    ablation = {}  # the member's task step with one change at a time
    with unfused():
        ablation["trimmed_batches_only"] = median_step(full_split, trimmed, task, s)
    ablation["fused_binarization_only"] = median_step(full_split, padded, task, s)
    ablation["half_width_and_fused"] = median_step(half_split, padded, task, s)
    for k, v in steps.items():
        print(f"{k:16s} " + "  ".join(f"{kk} {vv:.3f} s" for kk, vv in v.items()), flush=True)

    # the SST-2 experiment: the former pipeline's steps vs today's
    per_epoch = -(-EXAMPLES // BATCH)
    st = steps
    before = per_epoch * (2 * TEACHER_EPOCHS * st["teacher"]["before"]
                          + (1 + MEMBERS) * EPOCHS * 2 * (st["member_inter_kd"]["before"] + st["member_pred_kd"]["before"])
                          + MEMBERS * EPOCHS * 2 * st["member_task"]["before"])
    # today: the teacher, the half-width FP stage (~ a teacher step), the ternary stage, the members
    after = per_epoch * (TEACHER_EPOCHS * st["teacher"]["after"] + EPOCHS * st["teacher"]["after"]
                         + EPOCHS * st["member_joint_kd"]["after"]
                         + MEMBERS * EPOCHS * (st["member_joint_kd"]["after"] + st["member_task"]["after"]))
    measured = None
    runs = Path(args.runs_dir) / "sst2"
    t_kd, t_kd0 = runs / "bebert_kd" / "timing.json", runs / "bebert_kd0" / "timing.json"
    if t_kd.is_file() and t_kd0.is_file():
        a, b = json.loads(t_kd.read_text()), json.loads(t_kd0.read_text())
        measured = round(a.get("teacher", 0) + a.get("width", 0) + a.get("ternary", 0)
                         + sum(v for k, v in a.items() if k.startswith("member_"))
                         + sum(v for k, v in b.items() if k.startswith("member_")), 1)
    out = {
        "settings": {"task": "sst2", "examples": EXAMPLES, "max_seq_len": SEQ, "batch": BATCH, "epochs": EPOCHS,
                     "teacher_epochs": TEACHER_EPOCHS, "members": MEMBERS, "threads": args.threads,
                     "padding_fraction": round(1 - float(lens.float().mean()) / SEQ, 3), "steps_per_median": s},
        "step_seconds": {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in steps.items()},
        "ablation_step_seconds": {k: round(v, 4) for k, v in ablation.items()},
        "eval_seconds_1024_examples": {"before": round(eval_before, 2), "after": round(eval_after, 2)},
        "experiment_seconds_sst2": {"before_estimated": round(before, 1), "after_estimated": round(after, 1),
                                    "after_measured": measured,
                                    "speedup_estimated": round(before / after, 2)},
        "note": "before = the former path rebuilt (padded batches, unfused and uncached binarization, full-width "
                "split, teacher run for prediction KD, two KD stages, teacher twice and ternary per member); "
                "shared 2-core machine: noisy, compare ratios",
    }
    dest = Path("bench/results/train_speed.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
