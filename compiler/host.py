"""The host side of a compiled ensemble: write inputs into the program, run it, read the outputs.

A model program (meta kind "model") takes one example per run: `ids`, `types`, `mask` (int32
per position) in its input region (a BiBERT program also `mask.p`: the same mask formatted as
Bi-Attention's per-key POST parameters, input formatting like packing the ids); it leaves each
member's int64 classifier accumulators in `acc<i>` and `votes` (the vote kernels compute every
model/vote.py method): every member's class, then the ensemble's prediction (STS-B: Q15.16
score codes). The predictions are read from `votes` as they are, exactly what `bebert eval
--integer` computes. A program whose meta["vote"] says "host" (compiled before the device took
every method) gets model/vote.py `apply_vote` on the accumulators, in integers. Logits
(float32(float64(acc) * cls_scale), `apply_integer_member`'s last line) are for people to
read; no prediction comes from them.
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


def run_outputs(program: Program) -> dict[str, np.ndarray]:
    """Run the program as it is (its DRAM input region); its outputs by name."""
    from . import golden

    _check(program)
    return golden.outputs(program, golden.execute(program))


def accumulators(out: dict, program: Program) -> np.ndarray:
    """(members, labels) int64 accumulators of one run's outputs."""
    return np.stack([out[f"acc{i}"][0] for i in range(program.meta["members"])])


def run_once(program: Program) -> np.ndarray:
    """Run the program as it is; (members, labels) int64 accumulators."""
    return accumulators(run_outputs(program), program)


def vote_on_device(program: Program) -> bool:
    return (program.meta.get("vote") or {}).get("on") == "device"


def predict(outs: list[dict], program: Program) -> tuple[np.ndarray, np.ndarray]:
    """(member predictions (n, members), ensemble predictions (n,)), int64, of n runs' outputs:
    the device's `votes`, or model/vote.py apply_vote on the accumulators (integers only).
    Classes, or for STS-B Q15.16 score codes (model/vote.py score_value shows them)."""
    M = program.meta["members"]
    if vote_on_device(program):
        v = np.stack([o["votes"][:, 0] for o in outs]).astype(np.int64)
        return v[:, :M], v[:, M]
    from bebert.model.vote import EnsembleVote, apply_vote

    rec = (program.meta.get("vote") or {}).get("record")
    if rec is None:
        raise ProgramError("the program records no vote (compiled by an older bebert): recompile it")
    acc = np.stack([accumulators(o, program) for o in outs])          # (n, members, labels)
    preds, pred = apply_vote(EnsembleVote.from_dict(rec), [acc[:, i] for i in range(M)])
    return np.stack(preds, 1).astype(np.int64), pred


def logit_values(acc: np.ndarray, program: Program) -> np.ndarray:
    """float32(float64(acc) * cls_scale) of accumulators (n, members, labels): for reading only."""
    scales = np.asarray(program.meta["cls_scale"], np.float64)
    return (np.asarray(acc, np.float64) * scales[None]).astype(np.float32)


def logits(acc: np.ndarray, program: Program) -> list:
    """Per member, logits as the integer path's host step computes them (torch float32 (n, labels))."""
    import torch

    scales = program.meta["cls_scale"]
    acc = np.asarray(acc)  # (n, members, labels)
    return [(torch.from_numpy(acc[:, i]).double() * torch.tensor(scales[i], dtype=torch.float64)).float()
            for i in range(acc.shape[1])]


def run_batch_outputs(program: Program, batch: dict, progress: bool = True) -> list[dict]:
    """The outputs of every example of a tokenized batch, one run each."""
    from tqdm import tqdm

    n = int(batch["input_ids"].shape[0])
    out = []
    for i in tqdm(range(n), desc="golden", unit="ex", disable=not progress or n < 2):
        p = with_inputs(program, *(np.asarray(batch[k][i]) for k in ("input_ids", "token_type_ids",
                                                                      "attention_mask")))
        out.append(run_outputs(p))
    return out


def run_batch(program: Program, batch: dict, progress: bool = True) -> np.ndarray:
    """Accumulators (n, members, labels) of every example of a tokenized batch, one run each."""
    return np.stack([accumulators(o, program) for o in run_batch_outputs(program, batch, progress)])


def default_input(seq: int, vocab: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The example compiled into a program: seeded random ids, two segments, the last quarter padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, seq)
    types = (np.arange(seq) >= seq // 2).astype(np.int64)
    mask = (np.arange(seq) < seq - seq // 4).astype(np.int64)
    return ids, types, mask
