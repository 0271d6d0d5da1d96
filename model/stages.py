"""One training stage, resumable, and the store that lets runs share stages.

`train_stage` runs `epochs` epochs of AdamW (model/optim.py: parameter groups, warm-up, linear
decay) on length-bucketed, trimmed batches (model/batching.py) of one loss (model/losses.py).
Sample weights enter by resampling every epoch or as a weighted loss (model/ensemble.py). It
writes a checkpoint (model, optimizer, schedule, RNG, position) at the end of every epoch and
every `ckpt_seconds` within one, atomically; `resume` continues from it exactly. A loss that is
not finite stops the stage with `TrainingDiverged` (one line), before the step that would have
corrupted the model: the last checkpoint stays as it was.

`StageStore` keeps finished shared stages (the FP teacher with its cached training-set logits,
the ternary model TWS splits) under a folder, each keyed by a hash of everything that
determines it, so that every member, every KD strategy and every run of an experiment trains
them once.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from . import batching as B
from . import ensemble as E
from . import losses as L
from .integer_path import embedding_tables
from .integer_training import anchored_logits
from .optim import optimizer, warmup_linear
from .package import atomic_json, atomic_save_safetensors, atomic_write_bytes
from .quant_bert import BertShape, QuantBert, QuantConfig

CKPT_SECONDS = 600.0


class TrainingDiverged(ValueError):
    """A stage whose loss stopped being finite."""


@dataclass(frozen=True)
class Stage:
    """What one stage trains on."""

    name: str          # for progress bars and messages
    loss: str          # losses.KINDS
    epochs: int
    lr: float
    batch_size: int
    warmup: float = 0.1
    weight_decay: float = 0.01
    sampling: str = "resample"
    seed: int = 0


# -- models on disk -------------------------------------------------------------------------------
def save_model(model: QuantBert, path: Path, extra: dict | None = None) -> None:
    meta = {"shape": json.dumps(model.shape.to_dict()), "quant": json.dumps(model.quant.to_dict()),
            **{k: json.dumps(v) for k, v in (extra or {}).items()}}
    atomic_save_safetensors({k: v.cpu() for k, v in model.state_dict().items()}, path, metadata=meta)


def load_model(path: Path) -> QuantBert:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    model = QuantBert(BertShape(**json.loads(meta["shape"])), QuantConfig(**json.loads(meta["quant"])))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def model_extra(path: Path, key: str):
    """The `extra` entry `key` that `save_model` stored with the model (None when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        raw = fh.metadata().get(key)
    return None if raw is None else json.loads(raw)


def device() -> torch.device:
    """Where training runs: the first CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _save_ckpt(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_ckpt(path: Path | None, what: str) -> dict | None:
    if path is None or not path.is_file():
        return None
    ck = torch.load(path, weights_only=False, map_location="cpu")
    return ck if ck.get("what") == what else None


# -- one stage ------------------------------------------------------------------------------------
def _train_embeddings(model: QuantBert, on: bool) -> None:
    """Whether the three embedding tables train (the integer stage holds them: its tables are fixed)."""
    for table in (model.embeddings.word, model.embeddings.position, model.embeddings.token_type):
        table.weight.requires_grad_(on)


def _loss(model, batch: dict, stage: Stage, teacher, regression: bool, forward=None) -> torch.Tensor:
    """`forward` (batch -> logits): what the logits losses read instead of the model's own forward."""
    args = (batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    if stage.loss in ("task", "pred"):
        logits = model(*args) if forward is None else forward(batch)
        if stage.loss == "task":
            return L.task_loss(logits, batch["labels"], regression)
        return L.pred_kd_loss(logits, batch["teacher_logits"], regression)
    logits, s_int = model(*args, internals=True)
    with torch.no_grad():
        _, t_int = teacher(*args, internals=True)
    inter = L.inter_kd_loss(s_int, t_int, model.quant.bi_attention, L.teacher_heads(model))
    return inter + L.pred_kd_loss(logits, batch["teacher_logits"], regression)


def train_stage(model: QuantBert, data: dict, stage: Stage, *, weights: np.ndarray | None = None, teacher=None,
                regression: bool = False, ckpt: Path | None = None, what: str = "stage",
                ckpt_seconds: float = CKPT_SECONDS, on_ckpt=None, grids: dict | None = None) -> QuantBert:
    """Train `model` in place for the stage; resumes from `ckpt` when it holds this `what`.

    `grids` (the member's 16-bit residual grids): the stage trains on the integer path's values
    (model/integer_training.py) with its embedding tables frozen (they are the integer tables,
    computed once); the loss is then a logits loss (task or pred)."""
    if stage.loss not in L.KINDS:
        raise ValueError(f"unknown loss '{stage.loss}'")
    if grids is not None and stage.loss == "full":
        raise ValueError("the integer stage trains on the logits: its loss is task or pred, not full KD")
    if stage.loss != "task" and "teacher_logits" not in data:
        raise ValueError("prediction KD needs the teacher's logits in the data")
    if stage.loss == "full" and teacher is None:
        raise ValueError("full KD needs a teacher")
    forward = None
    if grids is not None:
        _train_embeddings(model, False)
        tables = embedding_tables(model, grids)
        forward = lambda b: anchored_logits(model, grids, b, tables)  # noqa: E731
    n = len(data["labels"])
    lens = B.lengths(data)
    steps_per_epoch = math.ceil(n / stage.batch_size)
    opt = optimizer(model, stage.lr, stage.weight_decay)
    sched = warmup_linear(opt, steps_per_epoch * stage.epochs, stage.warmup)
    dev = B.device_of(model)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=dev) * n  # uniform -> 1
    start_epoch, start_step = 0, 0
    ck = _load_ckpt(ckpt, what)
    if ck is not None:
        model.load_state_dict(ck["model"])  # onto the model's device
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        torch.set_rng_state(ck["rng"])
        if ck.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        start_epoch, start_step = ck["epoch"], ck["step"]

    def save(epoch: int, step: int) -> None:
        if ckpt is None:
            return
        _save_ckpt(ckpt, {"what": what, "epoch": epoch, "step": step, "model": model.state_dict(),
                          "opt": opt.state_dict(), "sched": sched.state_dict(), "rng": torch.get_rng_state(),
                          "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None})
        if on_ckpt is not None:
            on_ckpt(epoch, step)

    last = time.monotonic()
    for epoch in range(start_epoch, stage.epochs):
        gen = torch.Generator().manual_seed(stage.seed * 1000 + epoch)
        order = E.epoch_indices(weights, n, stage.sampling, gen)
        batches = B.bucketed(order, lens, stage.batch_size, gen)
        model.train()
        first = start_step if epoch == start_epoch else 0
        bar = tqdm(batches[first:], desc=f"{stage.name} epoch {epoch + 1}/{stage.epochs}", leave=False,
                   mininterval=2.0, initial=first, total=len(batches))
        for i, b in enumerate(bar, start=first):
            batch = B.take(data, b, dev)
            loss = _loss(model, batch, stage, teacher, regression, forward)
            if stage.sampling == "loss" and w is not None:
                loss = loss * w[b.to(dev)]
            loss = loss.mean()
            if not bool(torch.isfinite(loss)):
                kept = f"; the last checkpoint ({ckpt}) is kept, --resume continues from it" if ckpt else ""
                raise TrainingDiverged(f"{stage.name}: the loss became {loss.item()} at epoch {epoch + 1}, step "
                                       f"{i + 1}/{len(batches)} (lower --lr){kept}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if time.monotonic() - last > ckpt_seconds and i + 1 < len(batches):
                save(epoch, i + 1)
                last = time.monotonic()
        save(epoch + 1, 0)
        last = time.monotonic()
    if grids is not None:
        _train_embeddings(model, True)
    return model.eval()


# -- shared stages ----------------------------------------------------------------------------------
def stage_key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


class StageStore:
    """Finished stages under `root/<name>-<key>/`: model.safetensors, meta.json (spec, seconds),
    extra tensors (e.g. the teacher's logits); ckpt.pt while a stage is in progress."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, name: str, spec: dict) -> Path:
        return self.root / f"{name}-{stage_key(spec)}"

    def done(self, name: str, spec: dict) -> bool:
        return (self.folder(name, spec) / "meta.json").is_file()

    def load(self, name: str, spec: dict) -> tuple[QuantBert, dict]:
        f = self.folder(name, spec)
        meta = json.loads((f / "meta.json").read_text())
        return load_model(f / "model.safetensors"), meta

    def tensor(self, name: str, spec: dict, key: str) -> torch.Tensor:
        return load_file(str(self.folder(name, spec) / f"{key}.safetensors"))[key]

    def finish(self, name: str, spec: dict, model: QuantBert, seconds: float, tensors: dict | None = None) -> None:
        f = self.folder(name, spec)
        f.mkdir(parents=True, exist_ok=True)
        save_model(model.cpu(), f / "model.safetensors")
        for k, v in (tensors or {}).items():
            atomic_save_safetensors({k: v}, f / f"{k}.safetensors")
        (f / "ckpt.pt").unlink(missing_ok=True)
        atomic_json(f / "meta.json", {"spec": spec, "seconds": round(seconds, 3)})  # last: the stage exists

    def ckpt(self, name: str, spec: dict) -> Path:
        f = self.folder(name, spec)
        f.mkdir(parents=True, exist_ok=True)
        atomic_json(f / "spec.json", spec)
        return f / "ckpt.pt"
