"""Pass 2, shape inference: every tensor's (rows, cols), the 16-bit read saturation of linear
outputs, and the limits that do not depend on the accelerator (CompileError, one line)."""

from __future__ import annotations

from .errors import CompileError
from .ir import Graph

MAX_FIELD16 = (1 << 16) - 1   # VEC rows / cols
SUPPORTED_OUT_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 16)  # 1: the sign (BiBERT's Q, K, V)


def infer_shapes(g: Graph) -> Graph:
    g.require("import", "shape")
    seq = g.meta["seq"]
    if not 1 <= seq <= MAX_FIELD16:
        raise CompileError(f"input 'ids': seq {seq} outside 1..{MAX_FIELD16} (VEC rows is a 16-bit field)")
    for n in ("ids", "types", "mask"):
        g.t(n).shape = (seq, 1) if n != "mask" else (1, seq)
    for node in g.nodes:
        out = g.t(node.outs["y"])
        a = node.attrs
        if node.op == "embed":
            pos_rows = a["position"].shape[0]
            if seq > pos_rows:
                raise CompileError(f"tensor '{node.name}.position': seq {seq} exceeds the {pos_rows} positions")
            out.shape = (seq, int(a["position"].shape[1]))
        elif node.op in ("layernorm", "add", "gelu"):
            src = g.t(node.ins["x" if "x" in node.ins else "a"]).shape
            out.shape = src
            if node.op == "layernorm" and a["consts"].hidden != src[1]:
                raise CompileError(f"tensor '{node.name}': LayerNorm over {a['consts'].hidden}, input has {src[1]}")
        elif node.op == "linear":
            lin = a["lin"]
            L = lin.layer
            rows, cols = g.t(node.ins["x"]).shape
            k = cols * (2 if lin.split else 1)
            if L.in_features != k:
                raise CompileError(f"weight '{node.name}': {L.in_features} inputs, the input gives {k}")
            if L.out_bits not in SUPPORTED_OUT_BITS:
                raise CompileError(f"tensor '{node.name}': output bits {L.out_bits} not in 1..8 or 16")
            out.shape = (1 if a.get("first_row") else rows, L.out_features)
            out.sat = L.out_bits if L.out_bits > 8 else 0
            for d in (k, L.out_features):
                if d > MAX_FIELD16:
                    raise CompileError(f"weight '{node.name}': dimension {d} exceeds the 16-bit VEC cols field")
        elif node.op == "attention":
            rows, hid = g.t(node.ins["q"]).shape
            if a["heads"] * a["head_dim"] != hid:
                raise CompileError(f"tensor '{node.name}': {a['heads']} heads of {a['head_dim']} != hidden {hid}")
            out.shape = (rows, hid)
        elif node.op == "lut":
            out.shape = g.t(node.ins["x"]).shape
        elif node.op == "dot":
            rows, cols = g.t(node.ins["x"]).shape
            w = a["weight"]
            if w.shape[1] != cols:
                raise CompileError(f"weight '{node.name}': {w.shape[1]} inputs, the pooler gives {cols}")
            out.shape = (rows, int(w.shape[0]))
        elif node.op == "vote":
            shapes = {g.t(t).shape for t in node.ins.values()}
            labels = {len(m.mult) for m in a["vote"].members}
            if len(shapes) != 1 or next(iter(shapes))[0] != 1 or labels != {next(iter(shapes))[1]}:
                raise CompileError(f"node '{node.name}': members' accumulators {sorted(shapes)} do not match "
                                   f"the vote's {sorted(labels)} labels")
            if len(node.ins) > MAX_FIELD16:
                raise CompileError(f"node '{node.name}': {len(node.ins)} members exceed the 16-bit VEC aux field")
            out.shape = (len(node.ins) + 1, 1)
        else:
            raise CompileError(f"node '{node.name}': unknown op '{node.op}'")
    g.stage = "shape"
    return g
