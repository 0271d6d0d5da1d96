"""Batches trimmed to their longest sequence and bucketed by length: what a CPU step costs is
the tokens it holds, not `--max-seq-len` times the batch (SST-2 at 64 tokens is ~80 % padding).

Encoded data (glue.encode) is padded to max_seq_len once; a batch is a set of example indices,
cut to the longest real sequence among them (`take`). Padding never changes a real token's
output (attention masks padded keys with -1e4, whose exp is exactly 0 in float32, and every
other operation is per token), so a trimmed batch computes the same loss as the padded one
(tests/test_model_train.py).

Bucketing (`bucketed`): the epoch's example order is cut into pools of `pool` batches; each pool
is sorted by length and split into batches, and the batches are shuffled. Examples keep their
randomness across pools while a batch holds sequences of similar length.
"""

from __future__ import annotations

import torch

KEYS = ("input_ids", "token_type_ids", "attention_mask")


def lengths(data: dict) -> torch.Tensor:
    return data["attention_mask"].sum(1)


def take(data: dict, idx: torch.Tensor, device=None) -> dict:
    """The examples `idx` of `data`, trimmed to their longest real sequence (at least 1 token),
    on `device` (default: where the data is)."""
    n = max(1, int(data["attention_mask"][idx].sum(1).max()))
    out = {k: data[k][idx, :n] for k in KEYS}
    for k, v in data.items():
        if k not in KEYS:
            out[k] = v[idx]
    return out if device is None else {k: v.to(device) for k, v in out.items()}


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def bucketed(order: torch.Tensor, lens: torch.Tensor, batch_size: int, gen: torch.Generator,
             pool: int = 50) -> list[torch.Tensor]:
    """`order` (an epoch's example indices) as batches of similar length, in shuffled order."""
    batches = []
    span = batch_size * pool
    for i in range(0, len(order), span):
        chunk = order[i:i + span]
        chunk = chunk[torch.argsort(lens[chunk], stable=True)]
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=gen)
    return [batches[int(p)] for p in perm]


def by_length(n_or_lens: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Every example once, in batches sorted by length (evaluation: least padding)."""
    order = torch.argsort(n_or_lens, stable=True)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def predict(model, data: dict, batch_size: int = 128) -> torch.Tensor:
    """Logits of the whole encoded set (eval mode), in the set's order."""
    model.eval()
    n = len(data["input_ids"])
    out = None
    dev = device_of(model)
    for b in by_length(lengths(data), batch_size):
        d = take(data, b, dev)
        z = model(d["input_ids"], d["token_type_ids"], d["attention_mask"]).float().cpu()
        if out is None:
            out = torch.empty(n, *z.shape[1:], dtype=z.dtype)
        out[b] = z
    return out
