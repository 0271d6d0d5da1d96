"""Pass 3, tiling: every matrix product's tile counts on the accelerator, and the limits that
depend on the configuration (CompileError, one line).

linear     (M, K') x (K', N) XNOR, `in_bits` activation planes (K' = 2K for TWS-split layers)
attention  per head: scores (T, d) x (d, T) AND mode, q_bits x k_bits planes (Bi-Attention: XNOR
           mode, 2 x 1 planes); context
           (T, T) x (T, d) AND mode, p_bits x v_bits planes (T: the tokens padded to
           lcm(pe_rows, vec_lanes))

`attrs["tiles"]` holds (m-tiles, n-tiles, k-words) of each product; the bitplane pass cuts the
products for the machine (`compiler/gemm_plan.py plan_gemm`) once their operand layouts exist.
"""

from __future__ import annotations

from bebert.config import AccelConfig

from .errors import CompileError
from .gemm_plan import ceil_div
from .ir import Graph


def check_bits(config: AccelConfig, bits: int, what: str) -> None:
    if bits not in config.act_bits:
        allowed = ", ".join(str(b) for b in config.act_bits)
        raise CompileError(f"tensor '{what}': activation bits {bits} not supported by config "
                           f"'{config.name}' (act_bits = {allowed})")


def tile(g: Graph, config: AccelConfig) -> Graph:
    g.require("shape", "tile")
    R, C, W = config.pe_rows, config.pe_cols, config.xnor_width
    step = max(R, config.vec_lanes)
    tokens = ceil_div(g.meta["seq"], step) * step
    for node in g.nodes:
        a = node.attrs
        if node.op == "linear":
            L = a["lin"].layer
            M = g.t(node.outs["y"]).shape[0]
            check_bits(config, L.in_bits, node.name + ".x")
            a["tiles"] = (ceil_div(M, R), ceil_div(L.out_features, C), ceil_div(L.in_features, W))
        elif node.op == "attention":
            d = a["head_dim"]
            if a.get("bi_attention"):   # Bi-Attention: +-1 Q, K, V as XNOR-mode operands (2-plane Q K^T)
                for b, what in ((a["q_bits"], "q"), (a["k_bits"], "k"), (a["v_bits"], "v")):
                    if b != 1:
                        raise CompileError(f"tensor '{node.name}.{what}': {b} bits; Bi-Attention takes 1-bit Q, K, V")
                check_bits(config, 2, f"{node.name}.scores")
            for b, what in () if a.get("bi_attention") else (
                    (a["q_bits"], "q"), (a["k_bits"], "k"), (a["v_bits"], "v"), (a["probs"].bits, "probs")):
                if not 2 <= b <= 8:
                    raise CompileError(f"tensor '{node.name}.{what}': {b} bits; attention operands are 2..8 bits")
                check_bits(config, b, f"{node.name}.{what}")
            a["tiles"] = {"scores": (ceil_div(tokens, R), ceil_div(tokens, C), ceil_div(d, W)),
                          "context": (ceil_div(tokens, R), ceil_div(d, C), ceil_div(tokens, W))}
    g.meta["config"] = config.name
    g.meta["tokens"] = tokens
    g.stage = "tile"
    return g
