"""Pass 3, tiling: every matrix product gets its `Tiling` on the accelerator (compiler/tiling.py),
and the limits that depend on the configuration are checked (CompileError, one line).

linear     (M, K') x (K', N) XNOR, `in_bits` activation planes (K' = 2K for TWS-split layers)
attention  per head: scores (T, d) x (d, T) AND mode, q_bits planes x k_bits WBUF passes;
           context (T, T) x (T, d) AND mode, p_bits planes x v_bits WBUF passes
"""

from __future__ import annotations

from bebert.config import AccelConfig

from .errors import CompileError
from .ir import Graph
from .tiling import plan_tiling


def _bits(config: AccelConfig, bits: int, what: str) -> None:
    if bits not in config.act_bits:
        allowed = ", ".join(str(b) for b in config.act_bits)
        raise CompileError(f"tensor '{what}': activation bits {bits} not supported by config "
                           f"'{config.name}' (act_bits = {allowed})")


def tile(g: Graph, config: AccelConfig) -> Graph:
    g.require("shape", "tile")
    for node in g.nodes:
        a = node.attrs
        if node.op == "linear":
            L = a["lin"].layer
            M = g.t(node.outs["y"]).shape[0]
            _bits(config, L.in_bits, node.name + ".x")
            a["tiling"] = plan_tiling(M, L.in_features, L.out_features, L.in_bits, config, node.name)
        elif node.op == "attention":
            T = g.t(node.ins["q"]).shape[0]
            d = a["head_dim"]
            for b, what in ((a["q_bits"], "q"), (a["k_bits"], "k"), (a["v_bits"], "v"), (a["probs"].bits, "probs")):
                if not 1 <= b <= 8:
                    raise CompileError(f"tensor '{node.name}.{what}': {b} bits; attention operands are 1..8 bits")
                _bits(config, b, f"{node.name}.{what}")
            a["scores_tiling"] = plan_tiling(T, d, T, a["q_bits"], config, node.name + ".scores",
                                             wpasses=a["k_bits"])
            a["context_tiling"] = plan_tiling(T, T, d, a["probs"].bits, config, node.name + ".context",
                                              wpasses=a["v_bits"])
    g.meta["config"] = config.name
    g.stage = "tile"
    return g
