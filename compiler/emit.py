"""Pass 7, emission: the scheduled graph -> a `Program` (instructions, DRAM image, tensors, meta).

The DRAM image holds, in address order: the weights, parameters and constant blocks, the
inputs and outputs, the scratch arena (zeros), then the VEC descriptors. `Program.tensors`
names the inputs (`ids`, `types`, `mask`: int32 per position, layout kind "rows"), the outputs
(`acc<i>`: member i's int64 classifier accumulators; `votes`, when the device votes: members + 1
int64, every member's class then the ensemble's prediction) and the weights. `meta["vote"]`:
the vote's method, where it runs ("device" or "host") and its integer record (model/vote.py). `meta["regions"]` gives
instruction ranges (name, start, end exclusive, member, layer, kind) for the simulator's
per-member, per-layer and per-kind report (`_regions`).
"""

from __future__ import annotations

import numpy as np

from bebert.config import AccelConfig
from bebert.program import Program, Tensor

from bebert import layout as lay
from .ir import Graph


def _regions(g: Graph, n_instrs: int) -> list[dict]:
    """Contiguous instruction ranges labelled by the node region of their PE-array and vector-unit
    instructions (LOADs and the output path's instructions join the region they run among); a
    region met again later in the program gets a '#k' suffix (names stay unique)."""
    nodes, stages = g.meta["instr_nodes"], g.meta["instr_stages"]
    labels = [-1] * len(nodes)
    cur = -1
    for i, (ni, s) in enumerate(zip(nodes, stages)):
        if s in (1, 3):
            cur = ni
        labels[i] = cur
    first = next((x for x in labels if x >= 0), 0)
    labels = [first if x < 0 else x for x in labels]
    out: list[dict] = []
    seen: dict[str, int] = {}
    for i, ni in enumerate(labels):
        node = g.nodes[ni] if g.nodes else None
        name = node.region if node else "program"
        if out and out[-1]["base"] == name:
            continue
        k = seen.get(name, 0)
        seen[name] = k + 1
        r = {"name": name if k == 0 else f"{name}#{k}", "base": name, "start": i, "end": 0,
             "kind": node.kind if node else "program"}
        if node is not None and node.member is not None:
            r["member"] = node.member
        if node is not None and node.layer is not None:
            r["layer"] = node.layer
        out.append(r)
    for a, b in zip(out, out[1:]):
        a["end"] = b["start"]
    if not out:
        out.append({"name": "program", "base": "program", "start": 0, "end": 0, "kind": "program"})
    out[-1]["end"] = n_instrs  # HALT closes the last region
    for r in out:
        del r["base"]
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
        if t.role in ("input", "output") and not t.layout:
            t.layout = lay.rows_layout(t.shape[0], t.shape[1], t.elem, t.signed)
        if t.role in ("input", "output", "weight", "param"):
            nb = lay.nbytes(t.layout) if t.layout.get("kind") == "rows" else t.nbytes  # (mask: padding keys beyond)
            tensors.append(Tensor(t.name, t.role, t.offset, nb, tuple(t.shape), t.layout))
    dram[g.meta["desc_base"]:g.meta["desc_base"] + len(descs)] = np.frombuffer(descs, np.uint8)
    instrs = g.meta["instrs"]
    keep = ("model", "seq", "members", "alphas", "cls_scale", "config", "static_bytes", "scratch_bytes",
            "scratch_bytes_without_reuse", "task", "labels", "regression", "vocab", "seed",
            "package", "tokens", "estimated_cycles", "order_estimate_cycles", "vote")
    meta = {"kind": "model", **{k: g.meta[k] for k in keep if k in g.meta}, "regions": _regions(g, len(instrs)),
            "inputs": ["ids", "types", "mask"] + (["mask.p"] if "mask.p" in g.tensors else []),
            "outputs": [f"acc{i}" for i in range(g.meta["members"])] + (["votes"] if "votes" in g.tensors else [])}
    g.stage = "emit"
    return Program(config=config, instrs=instrs, dram=dram, tensors=tensors, meta=meta)
