"""Pass 7, emission: the scheduled graph -> a `Program` (instructions, DRAM image, tensors, meta).

The DRAM image holds, in address order: the weights, parameters and constant blocks, the
inputs and outputs, the scratch arena (zeros), then the VEC descriptors. `Program.tensors`
names the inputs (`ids`, `types`, `mask`: int32 per position, layout kind "rows"), the outputs
(`acc<i>`: member i's int64 classifier accumulators) and the weights. `meta["regions"]` gives
per-node instruction ranges (name, start, end exclusive, member, layer, kind) for the
simulator's per-member and per-layer report.
"""

from __future__ import annotations

import numpy as np

from bebert.config import AccelConfig
from bebert.program import Program, Tensor

from bebert import layout as lay
from .ir import Graph


def _regions(g: Graph, n_instrs: int) -> list[dict]:
    out: list[dict] = []
    for node, start in zip(g.nodes, g.meta["node_starts"]):
        if out and out[-1]["name"] == node.region:
            continue
        r = {"name": node.region, "start": start, "end": 0, "kind": node.kind}
        if node.member is not None:
            r["member"] = node.member
        if node.layer is not None:
            r["layer"] = node.layer
        out.append(r)
    for a, b in zip(out, out[1:]):
        a["end"] = b["start"]
    out[-1]["end"] = n_instrs  # HALT (and a final SYNC) close the last region
    return out


def emit_program(g: Graph, config: AccelConfig) -> Program:
    g.require("schedule", "emit")
    descs = g.meta["descriptors"]
    size = g.meta["desc_base"] + len(descs)
    bus = config.dram_bytes_per_cycle
    size = -(-size // bus) * bus
    dram = np.zeros(size, np.uint8)
    tensors = []
    for t in g.tensors.values():
        if t.data is not None:
            dram[t.offset:t.offset + t.data.size] = t.data
        if t.role in ("input", "output"):
            t.layout = lay.rows_layout(t.shape[0], t.shape[1], t.elem, t.signed)
        if t.role in ("input", "output", "weight"):
            tensors.append(Tensor(t.name, t.role, t.offset, t.nbytes, tuple(t.shape), t.layout))
    dram[g.meta["desc_base"]:g.meta["desc_base"] + len(descs)] = np.frombuffer(descs, np.uint8)
    instrs = g.meta["instrs"]
    keep = ("model", "seq", "members", "alphas", "cls_scale", "config", "static_bytes", "scratch_bytes",
            "scratch_bytes_without_reuse", "task", "labels", "regression", "vocab", "seed",
            "package")
    meta = {"kind": "model", **{k: g.meta[k] for k in keep if k in g.meta}, "regions": _regions(g, len(instrs)),
            "inputs": ["ids", "types", "mask"], "outputs": [f"acc{i}" for i in range(g.meta["members"])]}
    g.stage = "emit"
    return Program(config=config, instrs=instrs, dram=dram, tensors=tensors, meta=meta)
