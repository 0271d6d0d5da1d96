"""`bebert train` and `bebert eval`: the model half of the command line.

`register(subparsers)` adds both subcommands to the lead's argparse parser; each sets
`func`, the handler taking the parsed namespace. Errors are ValueError subclasses with one
line (bebert/cli.py prints them and exits 2).
"""

from __future__ import annotations

import argparse
import json
import sys


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{v}'") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def register(subparsers) -> None:
    from .glue import TASKS

    BASES = ("binarybert", "bibert", "fp")  # quant_bert.BASES; not imported: building the parser of
    # every bebert command must not import torch (tests/test_compile_model.py holds the two equal)

    tr = subparsers.add_parser("train", help="train an FP teacher and an ensemble of binary BERTs on a GLUE task")
    tr.add_argument("--task", required=True, help=f"GLUE task: {', '.join(TASKS)}")
    tr.add_argument("--data-dir", default=None, help="folder in the GLUE TSV layout (default: HF hub 'glue')")
    tr.add_argument("--backbone", default=None, help="HF BERT name or local path (default: the offline MiniLM-L6)")
    tr.add_argument("--base", default="binarybert", choices=[b for b in BASES if b != "fp"] + ["mixed"],
                    help="binarybert (1-1-4, TWS), bibert (1-1-1, Bi-Attention, DMD) or mixed (BinaryBERT and "
                         "BiBERT members in turn, one package)")
    tr.add_argument("--abits", type=_positive, default=None,
                    help="activation bits, 1..8 (default: binarybert 4, also Q/K/V and attention; bibert 1)")
    tr.add_argument("--members", type=_positive, default=3, help="ensemble members (default 3)")
    tr.add_argument("--kd", default="full", choices=["full", "pred", "none"],
                    help="knowledge distillation of the members (the ternary stage always distils)")
    tr.add_argument("--ensemble", default="adaboost", choices=["adaboost", "bagging"])
    tr.add_argument("--vote", default=None, choices=["samme", "samme.r", "average", "median", "mean"],
                    help="how members combine (default samme: SAMME's alpha-weighted hard vote; STS-B: median, "
                         "AdaBoost.R2's weighted median, or mean when bagging)")
    tr.add_argument("--sample-weights", default="resample", choices=["resample", "loss"],
                    help="AdaBoost weights by resampling every epoch (default) or as a weighted loss")
    tr.add_argument("--tws", default="half", choices=["half", "full", "none"],
                    help="binarybert: split a half-width ternary model (default, the backbone's binary size), a "
                         "full-width one (twice the size and binary work), or train binary members directly")
    tr.add_argument("--no-tws", dest="tws", action="store_const", const="none", help="the same as --tws none")
    tr.add_argument("--tws-scales", default="half", choices=["half", "shared"],
                    help="split layers: a scale per half (default, BinaryBERT) or one per row (ternary)")
    tr.add_argument("--max-train-examples", type=_positive, default=None, help="seeded subset of the train set")
    tr.add_argument("--epochs", type=_positive, default=3, help="epochs per stage (default 3)")
    tr.add_argument("--teacher-epochs", type=_positive, default=None, help="epochs of the FP teacher (default --epochs)")
    tr.add_argument("--ternary-epochs", type=_positive, default=None,
                    help="epochs of the ternary stage (default --epochs)")
    tr.add_argument("--max-seq-len", type=_positive, default=64, help="tokens per example (default 64)")
    tr.add_argument("--batch-size", type=_positive, default=32)
    tr.add_argument("--lr", type=float, default=3e-4, help="learning rate of the quantized stages (default 3e-4)")
    tr.add_argument("--teacher-lr", type=float, default=5e-5, help="learning rate of the FP teacher (default 5e-5)")
    tr.add_argument("--width-lr", type=float, default=1e-4,
                    help="learning rate of the half-width FP stage TWS starts from (default 1e-4)")
    tr.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of each stage (default 0.1)")
    tr.add_argument("--seed", type=int, default=42, help="seed of the data subset and the shared stages (default 42)")
    tr.add_argument("--member-seed", type=int, default=None, help="seed of the members alone (default --seed)")
    tr.add_argument("--integer-epochs", type=int, default=0,
                    help="per member, epochs trained on the integer path's own values after its stage, so the "
                         "member the accelerator runs is the one trained (I-BERT style; default 0: none)")
    tr.add_argument("--integer-lr", type=float, default=5e-5, help="learning rate of the integer epochs (default 5e-5)")
    tr.add_argument("--stages-dir", default=None,
                    help="folder of shared stages (teacher, ternary) reused by runs that agree on them "
                         "(default RUN/stages)")
    tr.add_argument("--threads", type=_positive, default=None,
                    help="PyTorch CPU threads (default $BEBERT_THREADS, else the cores not busy now: more threads "
                         "than free cores makes training many times slower)")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    tr.set_defaults(func=cmd_train)

    ev = subparsers.add_parser("eval", help="dev metrics of a trained run: teacher, members, ensemble")
    ev.add_argument("run_dir", help="run directory written by `bebert train` (or a package folder)")
    ev.add_argument("--task", default=None, help="defaults to the package's task")
    ev.add_argument("--data-dir", default=None, help="defaults to the run's --data-dir")
    ev.add_argument("--integer", action="store_true", help="run the integer inference path")
    ev.add_argument("--max-eval-examples", type=_positive, default=None, help="seeded subset of each dev split")
    ev.add_argument("--robustness", action="store_true",
                    help="also accuracy under random word deletion/swap (member 0 vs ensemble)")
    ev.add_argument("--threads", type=_positive, default=None, help="PyTorch CPU threads (default: the free cores)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--predictions", action="store_true",
                    help="with --json: every example's predictions too (teacher, members, ensemble, labels): "
                         "what `bebert run` on the compiled package reproduces")
    ev.set_defaults(func=cmd_eval)


def free_cores() -> int:
    """Cores this process may use that other work is not using now (1-minute load average)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def _set_threads(n: int | None) -> None:
    import os

    import torch

    env = os.environ.get("BEBERT_THREADS", "")
    n = n or (int(env) if env.isdigit() and int(env) > 0 else free_cores())
    torch.set_num_threads(max(1, n))


def cmd_train(args) -> int:
    _set_threads(args.threads)
    from .train import TrainConfig, default_backbone, train

    from pathlib import Path

    # local paths are stored absolute, so that `bebert eval` and --resume work from any folder
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    backbone = args.backbone or default_backbone()
    if Path(backbone).exists():
        backbone = str(Path(backbone).resolve())
    stages = str(Path(args.stages_dir).resolve()) if args.stages_dir else None
    cfg = TrainConfig(task=args.task, out=str(Path(args.out).resolve()), data_dir=data_dir, backbone=backbone,
                      base=args.base, members=args.members, kd=args.kd, ensemble=args.ensemble, vote=args.vote,
                      sample_weights=args.sample_weights, tws=args.tws, tws_scales=args.tws_scales,
                      act_bits=args.abits, epochs=args.epochs, teacher_epochs=args.teacher_epochs,
                      ternary_epochs=args.ternary_epochs, max_train_examples=args.max_train_examples,
                      max_seq_len=args.max_seq_len, batch_size=args.batch_size, lr=args.lr,
                      teacher_lr=args.teacher_lr, width_lr=args.width_lr, warmup=args.warmup, seed=args.seed,
                      member_seed=args.member_seed, integer_epochs=args.integer_epochs,
                      integer_lr=args.integer_lr, stages_dir=stages)
    run = train(cfg, resume=args.resume)
    print(f"trained {cfg.members} {cfg.base} member(s) on {cfg.task}; package in {run / 'package'}", file=sys.stderr)
    return 0


def _fmt(scores: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in scores.items())


def cmd_eval(args) -> int:
    _set_threads(args.threads)
    from .train import evaluate

    res = evaluate(args.run_dir, task=args.task, data_dir=args.data_dir, max_examples=args.max_eval_examples,
                   integer=args.integer, predictions=args.predictions)
    if args.robustness:
        from .robustness import robustness

        res["robustness"] = robustness(args.run_dir, task=args.task, data_dir=args.data_dir,
                                       max_examples=args.max_eval_examples)
    if args.json:
        print(json.dumps(res, sort_keys=True))
        return 0
    for split, r in res["splits"].items():
        print(f"{res['task']} {split} ({r['examples']} examples)")
        if "teacher" in r:
            print(f"  teacher   {_fmt(r['teacher'])}")
        for i, m in enumerate(r["members"]):
            print(f"  member {i}  {_fmt(m)}  (alpha {res['alphas'][i]:.3f})")
        print(f"  ensemble  {_fmt(r['ensemble'])}  ({res['vote']} vote{', integer path' if res['integer'] else ''})")
        for v, sc in r.get("votes", {}).items():
            if v != res["vote"]:
                print(f"    {v:8s}{_fmt(sc)}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bebert")
    sub = p.add_subparsers(dest="cmd", required=True)
    register(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"bebert: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
