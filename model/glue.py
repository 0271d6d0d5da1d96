"""The nine GLUE tasks: their files, columns, label sets and official metrics.

Data comes from a local directory in the standard GLUE layout written by the GLUE authors'
`download_glue_data.py` (`<dir>/<TASK>/{train,dev}.tsv`, MNLI's `dev_matched.tsv` and
`dev_mismatched.tsv`), read the way the reference processors do: UTF-8 with an optional
BOM, tab separated, no quoting. Without a directory the HF hub copy ("glue", task) is
used through `datasets` (imported lazily; needs network access or a warm HF cache).

Anything wrong with the input (unknown task, missing file, short row, unknown label)
raises `DataError`, one line naming the file and row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics as M


class DataError(ValueError):
    """Task data that cannot be loaded."""


@dataclass(frozen=True)
class Task:
    name: str
    folder: str  # the directory name in the GLUE layout
    text_a: str | int  # header name, or column index for header-less files
    text_b: str | int | None
    label: str | int
    labels: tuple[str, ...] | None  # None: regression (STS-B)
    metrics: tuple[str, ...]
    header: bool = True
    dev_files: tuple[tuple[str, str], ...] = (("dev", "dev.tsv"),)
    hf_text: tuple[str, str | None] = ("sentence", None)
    hf_labels: tuple[str, ...] | None = None  # label names of the HF copy, when not "0"/"1"

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def dev_splits(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.dev_files)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("cola", "CoLA", 3, None, 1, ("0", "1"), ("mcc",), header=False),
    Task("sst2", "SST-2", "sentence", None, "label", ("0", "1"), ("accuracy",)),
    Task("mrpc", "MRPC", "#1 String", "#2 String", "Quality", ("0", "1"), ("accuracy", "f1"),
         hf_text=("sentence1", "sentence2")),
    Task("qqp", "QQP", "question1", "question2", "is_duplicate", ("0", "1"), ("accuracy", "f1"),
         hf_text=("question1", "question2")),
    Task("stsb", "STS-B", "sentence1", "sentence2", "score", None, ("pearson", "spearman"),
         hf_text=("sentence1", "sentence2")),
    Task("mnli", "MNLI", "sentence1", "sentence2", "gold_label", ("contradiction", "entailment", "neutral"),
         ("accuracy",), dev_files=(("dev_matched", "dev_matched.tsv"), ("dev_mismatched", "dev_mismatched.tsv")),
         hf_text=("premise", "hypothesis"), hf_labels=("entailment", "neutral", "contradiction")),
    Task("qnli", "QNLI", "question", "sentence", "label", ("entailment", "not_entailment"), ("accuracy",),
         hf_text=("question", "sentence"), hf_labels=("entailment", "not_entailment")),
    Task("rte", "RTE", "sentence1", "sentence2", "label", ("entailment", "not_entailment"), ("accuracy",),
         hf_text=("sentence1", "sentence2"), hf_labels=("entailment", "not_entailment")),
    Task("wnli", "WNLI", "sentence1", "sentence2", "label", ("0", "1"), ("accuracy",),
         hf_text=("sentence1", "sentence2")),
)}
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli_matched": "mnli"}


def get_task(name: str) -> Task:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise DataError(f"unknown GLUE task '{name}'; expected one of {', '.join(TASKS)}")
    return TASKS[key]


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None
    label: int | float  # class index into Task.labels, or the STS-B score


# -- loading ---------------------------------------------------------------------------
def _split_file(task: Task, split: str) -> str:
    if split == "train":
        return "train.tsv"
    files = dict(task.dev_files)
    if split == "dev":
        return task.dev_files[0][1]
    if split not in files:
        raise DataError(f"task {task.name} has no split '{split}'; expected train or one of {', '.join(files)}")
    return files[split]


def _label(task: Task, raw: str, where: str) -> int | float:
    raw = raw.strip()
    if task.labels is None:
        try:
            v = float(raw)
        except ValueError:
            raise DataError(f"{where}: score '{raw}' is not a number") from None
        if not math.isfinite(v):
            raise DataError(f"{where}: score '{raw}' is not a finite number")
        return v
    if raw not in task.labels:
        raise DataError(f"{where}: label '{raw}' is not one of {', '.join(task.labels)}")
    return task.labels.index(raw)


def read_tsv(task: Task, path: Path) -> list[Example]:
    """One GLUE TSV file as examples; every row is checked."""
    if not path.is_file():
        raise DataError(f"missing GLUE file {path}")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read as UTF-8 TSV ({e})") from None
    rows = [r for r in rows if r != []]
    if task.header:
        if not rows:
            raise DataError(f"{path}: empty file, expected a header row")
        header, rows, first = rows[0], rows[1:], 2
        cols = {}
        for key in (task.text_a, task.text_b, task.label):
            if key is None:
                continue
            if key not in header:
                raise DataError(f"{path}: header has no column '{key}' (found {', '.join(header)})")
            cols[key] = header.index(key)
        ia, ib, il = cols[task.text_a], cols.get(task.text_b), cols[task.label]
        width = len(header)
    else:
        ia, ib, il, first = task.text_a, task.text_b, task.label, 1
        width = max(ia, il, ib or 0) + 1
    out = []
    for n, row in enumerate(rows, start=first):
        where = f"{path}:{n}"
        if len(row) < width:
            raise DataError(f"{where}: expected {width} tab-separated columns, found {len(row)}")
        out.append(Example(row[ia], row[ib] if ib is not None else None, _label(task, row[il], where)))
    if not out:
        raise DataError(f"{path}: no examples")
    return out


def _load_hf(task: Task, split: str) -> list[Example]:
    try:
        import datasets
    except ImportError:
        raise DataError("no --data-dir given and the 'datasets' package is not installed; "
                        "pass --data-dir with the GLUE TSV files") from None
    hf_split = "train" if split == "train" else "validation" + ("" if task.name != "mnli" else
                                                               "_mismatched" if split == "dev_mismatched" else "_matched")
    try:
        ds = datasets.load_dataset("glue", task.name, split=hf_split)
    except Exception as e:  # offline, hub error, ...: one line for the user
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"cannot load GLUE {task.name} from the HF hub ({msg}); pass --data-dir "
                        "with the GLUE TSV files") from None
    a, b = task.hf_text
    out = []
    for row in ds:
        if task.labels is None:
            label: int | float = float(row["label"])
            if not math.isfinite(label):
                raise DataError(f"GLUE {task.name} from the HF hub: score {row['label']} is not a finite number")
        elif task.hf_labels is None:
            label = int(row["label"])
        else:
            label = task.labels.index(task.hf_labels[int(row["label"])])
        out.append(Example(row[a], row[b] if b else None, label))
    return out


def load_split(task: Task | str, split: str, data_dir: str | Path | None = None,
               max_examples: int | None = None, seed: int = 0) -> list[Example]:
    """Examples of `split` ("train", "dev", or a named dev split such as "dev_mismatched").

    `max_examples` keeps a seeded random subset (in file order), so a small run sees
    both classes even in files sorted by label.
    """
    task = get_task(task) if isinstance(task, str) else task
    fname = _split_file(task, split)
    if data_dir is None:
        examples = _load_hf(task, split)
    else:
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"GLUE data directory {root} does not exist")
        examples = read_tsv(task, root / task.folder / fname)
    if max_examples is not None and max_examples < len(examples):
        if max_examples <= 0:
            raise DataError(f"max examples must be positive, got {max_examples}")
        examples = [examples[i] for i in subset_indices(len(examples), max_examples, seed)]
    return examples


def subset_indices(n: int, max_examples: int, seed: int = 0) -> np.ndarray:
    """The indices (sorted) of the seeded subset `load_split` keeps of `n` examples: the one
    definition, so that what a run did not train on can be named exactly (`heldout_indices`)."""
    return np.sort(np.random.default_rng(seed).choice(n, max_examples, replace=False))


def heldout_indices(n: int, max_examples: int, seed: int = 0) -> np.ndarray:
    """The indices (sorted) of the examples `load_split(..., max_examples, seed)` leaves out."""
    return np.setdiff1d(np.arange(n), subset_indices(n, max_examples, seed))


# -- metrics ---------------------------------------------------------------------------
def compute_metrics(task: Task | str, preds, refs) -> dict[str, float]:
    """The task's official metrics; `preds` are class indices or STS-B scores."""
    task = get_task(task) if isinstance(task, str) else task
    fns = {"accuracy": M.accuracy, "f1": M.f1, "mcc": M.matthews_corr, "pearson": M.pearson,
           "spearman": M.spearman}
    return {m: fns[m](preds, refs) for m in task.metrics}


def main_score(task: Task | str, scores: dict[str, float]) -> float:
    """One number per task, as the GLUE leaderboard averages it (mean of the task's metrics)."""
    task = get_task(task) if isinstance(task, str) else task
    return float(np.mean([scores[m] for m in task.metrics]))


def encode(examples: list[Example], tokenizer, max_len: int, regression: bool = False) -> dict:
    """Tokenized tensors: input_ids, token_type_ids, attention_mask, labels."""
    import torch

    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples and examples[0].text_b is not None else None
    enc = tokenizer(a, b, truncation=True, max_length=max_len, padding="max_length", return_tensors="pt")
    tt = enc.get("token_type_ids")
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": tt if tt is not None else torch.zeros_like(enc["input_ids"]),
        "attention_mask": enc["attention_mask"],
        "labels": torch.tensor([e.label for e in examples], dtype=torch.float32 if regression else torch.long),
    }
