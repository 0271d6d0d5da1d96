"""The compiler's graph IR: tensors and nodes in execution order, shared by every pass.

A `Graph` is a list of `Node`s (already in a valid execution order: the importer emits the
model's data-flow order and no pass reorders across data dependencies) and a table of
`TensorRec`s. Passes are plain functions `Graph -> Graph` (they may mutate and return the
same object); each checks its precondition (`Graph.stage`) and records itself.

Node ops, by level:
  model level (import):    embed, layernorm, linear, attention, add, gelu, lut, dot
  machine level (bitplane): vec (one VEC instruction; attrs["fn"] a `VecFn`), gemm (one m-group
                            of a tiled product, `compiler/gemm_plan.py` GemmOp: XNOR for linears,
                            AND for activation x activation)
Tensor forms (bebert/layout.py): "rows" (row-major codes of `elem` bytes), "stream" (the vector
unit's row tiles), "abuf" (activation bit-planes), "wbuf" (weight signs), "wplanes" (the bit-planes
of an AND-mode WBUF operand), "pbuf" (post-processing parameters), "bytes" (an opaque constant
block: tables, kernel constants).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

STAGES = ("import", "shape", "tile", "bitplane", "alloc", "schedule", "emit")


@dataclass
class TensorRec:
    name: str
    role: str                      # input | output | weight | param | scratch | const
    form: str = "rows"             # rows | stream | abuf | wbuf | wplanes | pbuf | bytes
    shape: tuple[int, ...] = ()
    elem: int = 4
    signed: bool = True
    sat: int = 0                   # readers saturate codes to `sat` signed bits (0: none)
    data: np.ndarray | None = None  # uint8 bytes of a constant / weight / input
    layout: dict[str, Any] = field(default_factory=dict)
    nbytes: int = 0
    offset: int = -1               # DRAM byte address (alloc)
    member: int | None = None
    reuses: list[str] = field(default_factory=list)  # tensors whose DRAM bytes this one takes over (alloc)

    def describe(self) -> str:
        at = f" @0x{self.offset:x}" if self.offset >= 0 else ""
        sat = f" sat{self.sat}" if self.sat else ""
        return f"{self.name}: {self.role} {self.form}{list(self.shape)} {self.nbytes}B{sat}{at}"


@dataclass
class Node:
    op: str
    name: str
    ins: dict[str, str] = field(default_factory=dict)    # operand -> tensor name
    outs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    member: int | None = None
    layer: int | None = None
    region: str = ""               # the Program.meta region this node belongs to
    kind: str = ""                 # region kind (embed, attention, ffn, head, ...)

    def describe(self) -> str:
        ins = ", ".join(f"{k}={v}" for k, v in self.ins.items())
        outs = ", ".join(f"{k}={v}" for k, v in self.outs.items())
        shown = {k: v for k, v in self.attrs.items()
                 if isinstance(v, (int, str, bool, float)) and k not in ("fn", "reads", "writes")}
        if "mt" in self.attrs:
            shown["mtiles"] = f"{self.attrs['mt'][0]}..{self.attrs['mt'][-1]}"
        fn = f" {self.attrs['fn'].name}" if "fn" in self.attrs else ""
        extra = " ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.op}{fn} {self.name} ({ins}) -> ({outs}) {extra}".rstrip()


@dataclass
class Graph:
    tensors: dict[str, TensorRec] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    stage: str = ""

    def add(self, t: TensorRec) -> TensorRec:
        if t.name in self.tensors:
            raise ValueError(f"tensor '{t.name}' declared twice")
        self.tensors[t.name] = t
        return t

    def t(self, name: str) -> TensorRec:
        return self.tensors[name]

    def require(self, stage: str, pass_name: str) -> None:
        if self.stage != stage:
            raise ValueError(f"pass '{pass_name}' needs the graph after '{stage}', got it after '{self.stage}'")

    def dump(self) -> str:
        """The IR as text: the tensors, then the nodes in order (`bebert compile --dump-ir`)."""
        lines = [f"# graph after '{self.stage}': {len(self.nodes)} nodes, {len(self.tensors)} tensors"]
        for k, v in self.meta.items():
            if isinstance(v, (int, str, float)):
                lines.append(f"# {k} = {v}")
        lines.append("tensors:")
        lines += [f"  {t.describe()}" for t in self.tensors.values()]
        lines.append("nodes:")
        for n in self.nodes:
            where = f"[m{n.member}{'' if n.layer is None else f'.l{n.layer}'}] " if n.member is not None else ""
            lines.append(f"  {where}{n.describe()}")
        return "\n".join(lines) + "\n"
