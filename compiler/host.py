"""The host side of a compiled ensemble: write inputs into the program, run it, read the outputs.

A model program (meta kind "model") takes one example per run: `ids`, `types`, `mask` (int32
per position) in its input region (a BiBERT program also `mask.p`: the same mask formatted as
Bi-Attention's per-key POST parameters, input formatting like packing the ids); it leaves each
member's int64 classifier accumulators in `acc<i>`. What stays on the host is the one float step of the integer path: logits =
float32(float64(acc) * cls_scale), exactly `model/package.py apply_integer_member`'s last
line, then `model/ensemble.py combine` (alpha-weighted softmax) and `predictions`, the same
functions `bebert eval --integer` calls (docs/ARCHITECTURE.md, "The vector unit", COMBINE).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bebert.program import Program, ProgramError

from bebert import layout as lay

from .attention import KEY_MASK, key_mask_params

INPUTS = ("ids", "types", "mask")


def _check(program: Program) -> None:
    if program.meta.get("kind") != "model":
        raise ProgramError("not a whole-model program (compile one with --model synthetic:... or a package)")


def with_inputs(program: Program, ids, types, mask) -> Program:
    """A copy of `program` whose input region holds this one example."""
    _check(program)
    dram = program.dram.copy()
    for name, v in zip(INPUTS, (ids, types, mask)):
        t = program.tensor(name)
        v = np.asarray(v, np.int64).reshape(-1)
        if v.size != t.shape[0] * t.shape[1]:
            raise ProgramError(f"input '{name}' has {v.size} positions; the program was compiled for "
                               f"{t.shape[0] * t.shape[1]}")
        dram[t.offset:t.offset + t.nbytes] = lay.pack_rows(v, t.layout)
    if KEY_MASK in (t.name for t in program.tensors):   # Bi-Attention's key mask, formatted as POST parameters
        t = program.tensor(KEY_MASK)
        dram[t.offset:t.offset + t.nbytes] = key_mask_params(mask, t.layout)
    return replace(program, dram=dram)


def run_once(program: Program) -> np.ndarray:
    """Run the program as it is (its DRAM input region); (members, labels) int64 accumulators."""
    from . import golden

    _check(program)
    out = golden.outputs(program, golden.execute(program))
    return np.stack([out[f"acc{i}"][0] for i in range(program.meta["members"])])


def logits(acc: np.ndarray, program: Program) -> list:
    """Per member, logits as the integer path's host step computes them (torch float32 (n, labels))."""
    import torch

    scales = program.meta["cls_scale"]
    acc = np.asarray(acc)  # (n, members, labels)
    return [(torch.from_numpy(acc[:, i]).double() * torch.tensor(scales[i], dtype=torch.float64)).float()
            for i in range(acc.shape[1])]


def ensemble(acc: np.ndarray, program: Program) -> tuple[list, np.ndarray]:
    """(per-member logits, predictions) of accumulators (n, members, labels): eval's combine."""
    from bebert.model.ensemble import combine, predictions

    z = logits(acc, program)
    reg = bool(program.meta.get("regression", False))
    return z, predictions(combine(z, program.meta["alphas"], reg), reg)


def run_batch(program: Program, batch: dict, progress: bool = True) -> np.ndarray:
    """Accumulators (n, members, labels) of every example of a tokenized batch, one run each."""
    from tqdm import tqdm

    n = int(batch["input_ids"].shape[0])
    out = []
    for i in tqdm(range(n), desc="golden", unit="ex", disable=not progress or n < 2):
        p = with_inputs(program, *(np.asarray(batch[k][i]) for k in ("input_ids", "token_type_ids",
                                                                      "attention_mask")))
        out.append(run_once(p))
    return np.stack(out)


def default_input(seq: int, vocab: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The example compiled into a program: seeded random ids, two segments, the last quarter padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, seq)
    types = (np.arange(seq) >= seq // 2).astype(np.int64)
    mask = (np.arange(seq) < seq - seq // 4).astype(np.int64)
    return ids, types, mask
