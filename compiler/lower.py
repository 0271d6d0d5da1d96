"""Lower one binary linear layer (`IntegerLinear`) and its input to a `Program`.

The layer becomes one GEMM product (`compiler/gemm_plan.py`) over an input the compiler packs
into ABUF bit-planes (role input), with the output path writing the requantized result as a
stream tensor (role output: int32 for out_bits 0, one byte for 1..8); the same alloc, schedule
and emit passes as a whole model then make the program.

+-1 activations (in_bits == 1). The preferred encoding is one unsigned plane
b = (x + 1) / 2 with the correction folded into POST: sum_k x w = 2 acc_b - S_n
(S_n = sum_k w[n, k]) gives mult' = 2 mult, bias' = bias - mult S_n; or, when 2 mult
overflows int32 and shift >= 1, mult' = mult, shift' = shift - 1 and bias' halved
(exact, see `bitplane.fold_pm1`). `BinaryLinear.to_integer` picks the largest multiplier that
fits int32, so the folded bias usually overflows; the layer is then compiled exactly
with the +-1 codes as two signed planes (two's complement of -1 is 0b11, of +1 0b01).
"""

from __future__ import annotations

import numpy as np

from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.isa import Op, PostFmt
from bebert.numerics import INT32_MAX, INT32_MIN, MAX_SHIFT, act_range
from bebert.program import Program

from .alloc import alloc
from .bitplane import fold_pm1
from .emit import emit_program
from .errors import CompileError
from .gemm_plan import ATensor, GemmOp, NTile, OutFmt, WTensor, ceil_div, elem_bytes, plan_gemm
from .ir import Graph, Node, TensorRec
from .schedule import schedule_graph


def _fits32(v: np.ndarray) -> bool:
    return bool(np.all((v >= INT32_MIN) & (v <= INT32_MAX)))


def _check_layer(layer, x: np.ndarray, config: AccelConfig, name: str) -> None:
    bits = layer.in_bits
    if not 1 <= bits <= 8 or bits not in config.act_bits:
        allowed = ", ".join(str(b) for b in config.act_bits)
        raise CompileError(f"activation bits {bits} not supported by config '{config.name}' "
                           f"(act_bits = {allowed})")
    if not 0 <= layer.out_bits <= 8:
        raise CompileError(f"output bits {layer.out_bits} of layer '{name}' not supported "
                           "(0 = int32, 1 = sign, 2..8)")
    if not 0 <= layer.shift <= MAX_SHIFT:
        raise CompileError(f"shift {layer.shift} of layer '{name}' outside the POST range 0..{MAX_SHIFT}")
    N, K = layer.sign.shape
    if N < 1 or K < 1:
        raise CompileError(f"weight of layer '{name}' has shape {layer.sign.shape}; N and K must be >= 1")
    if layer.mult.shape != (N,) or layer.bias.shape != (N,):
        raise CompileError(f"params of layer '{name}' have shapes {layer.mult.shape}, "
                           f"{layer.bias.shape}; expected ({N},)")
    if not (_fits32(layer.mult.astype(np.int64)) and _fits32(layer.bias.astype(np.int64))):
        raise CompileError(f"params of layer '{name}' do not fit int32")
    if x.ndim != 2 or x.shape[1] != K or x.shape[0] < 1:
        raise CompileError(f"input 'x' of layer '{name}' has shape {x.shape}; expected (M >= 1, {K})")
    lo, hi = (-1, 1) if bits == 1 else act_range(bits, layer.in_signed)
    if bits == 1 and not np.isin(x, (-1, 1)).all():
        raise CompileError(f"input 'x' of layer '{name}' must hold -1/+1 codes for 1-bit activations")
    if x.min() < lo or x.max() > hi:
        raise CompileError(f"input 'x' of layer '{name}' holds codes in [{x.min()}, {x.max()}], "
                           f"outside the {bits}-bit range [{lo}, {hi}]")
    if K * max(abs(lo), abs(hi)) > INT32_MAX:
        raise CompileError(f"accumulator of layer '{name}' could reach {K * max(abs(lo), abs(hi))} "
                           f"(K = {K}), beyond the int32 accumulator")


def _encoding(layer, sign: np.ndarray, config: AccelConfig):
    """(planes, signed, pm1, encoding name, mult, bias, shift) of the layer's input."""
    mult, bias, shift = layer.mult.astype(np.int64), layer.bias.astype(np.int64), int(layer.shift)
    if layer.in_bits != 1:
        return layer.in_bits, bool(layer.in_signed), False, "twos" if layer.in_signed else "unsigned", \
            mult, bias, shift
    folded = fold_pm1(mult, bias, shift, np.where(sign, 1, -1).sum(axis=1))
    if folded is not None:
        return (1, False, True, "pm1_fold", *folded)
    if 2 not in config.act_bits:
        raise CompileError(f"+-1 activations need 2 signed planes here (the folded correction overflows int32) "
                           f"but config '{config.name}' has no 2-bit GEMMs (act_bits = "
                           f"{', '.join(str(b) for b in config.act_bits)})")
    return 2, True, False, "pm1_twos", mult, bias, shift


def compile_linear(layer, x_int: np.ndarray, config: AccelConfig, *, name: str = "y") -> Program:
    """Program computing y = layer.forward(x_int) ((M, N) codes) into output tensor `name`."""
    x = np.asarray(x_int)
    if not np.issubdtype(x.dtype, np.integer):
        if x.size and not np.array_equal(x, np.round(x)):
            raise CompileError(f"input 'x' of layer '{name}' holds non-integer codes")
    x = x.astype(np.int64)
    if not isinstance(name, str) or not name or name in ("w", "p", "x"):
        raise CompileError(f"output name {name!r} must be a non-empty string other than 'x', 'w', 'p'")
    _check_layer(layer, x, config, name)
    M, K = x.shape
    N = layer.out_features
    R, C, W = config.pe_rows, config.pe_cols, config.xnor_width
    sign = np.asarray(layer.sign, bool)
    planes, signed, pm1, encoding, mult, bias, shift = _encoding(layer, sign, config)
    eb = [config.entry_bytes(b) for b in ("abuf", "wbuf", "pbuf")]

    x_lay = lay.act_layout(M, K, R, W, planes, signed, pm1)
    w_lay = lay.weight_layout(N, K, C, W)
    p_lay = lay.param_layout(N, C)
    e = 4 if layer.out_bits == 0 else elem_bytes(layer.out_bits)
    y_lay = lay.stream_layout(M, N, config.vec_lanes, e, True, row_align=R)
    g = Graph(meta={"seq": M, "members": 0})
    x_data = lay.pack_activations(np.where(x > 0, 1, -1) if pm1 else x, x_lay).reshape(-1)
    g.add(TensorRec("x", "input", "abuf", (M, K), data=x_data, layout=x_lay, nbytes=x_data.size))
    w_data = lay.pack_weights(sign, w_lay).reshape(-1)
    g.add(TensorRec("w", "weight", "wbuf", (N, K), data=w_data, layout=w_lay, nbytes=w_data.size))
    p_data = lay.pack_params(mult, bias, p_lay).reshape(-1)
    g.add(TensorRec("p", "param", "pbuf", (N, 2), data=p_data, layout=p_lay, nbytes=p_data.size))
    g.add(TensorRec(name, "output", "stream", (M, N), layout=y_lay, nbytes=lay.nbytes(y_lay), elem=e))

    KW, NT = ceil_div(K, W), ceil_div(N, C)
    tiles = tuple(NTile(n0=t * C, cols=min(C, N - t * C), a=0, w=0, wt=t, p=0, pe=t, dst=0, col=t * C, word=t)
                  for t in range(NT))
    op = GemmOp(name=name, M=M, mtiles=ceil_div(M, R), bits=planes, signed=signed, wbits=1, wsigned=False, mode=0,
                segs=((0, 0, KW),), a_tensors=(ATensor("x", x_lay["mtiles"], planes, KW),),
                w_tensors=(WTensor("w", NT, 1, KW),), p_tensors=("p",), tiles=tiles,
                out=OutFmt(PostFmt.STREAM, int(layer.out_bits), bool(layer.out_signed), shift,
                           elem=e.bit_length() - 1), dsts=(name,))
    plan = plan_gemm(op, config, name)
    for gi, mt in enumerate(plan.groups(op)):
        rows = (mt[0] * R, (mt[-1] + 1) * R)
        g.nodes.append(Node("gemm", f"{name}.g{gi}", {"x": "x", "w": "w", "p": "p"}, {"y": name},
                            {"gemm": op, "plan": plan, "mt": mt, "reads": [("x", *rows)], "writes": [(name, *rows)]},
                            region=name, kind="gemm"))
    g.stage = "bitplane"
    prog = emit_program(schedule_graph(alloc(g), config), config)
    meta = {
        "kind": "gemm", "M": M, "K": K, "N": N, "in_bits": int(layer.in_bits),
        "in_signed": bool(layer.in_signed), "out_bits": int(layer.out_bits),
        "out_signed": bool(layer.out_signed), "act_encoding": encoding, "planes": planes,
        "output": name, "kc": plan.kc, "mb": plan.mb,
        "tiles": {"m": ceil_div(M, R), "n": NT, "k_words": KW, "k_chunks": ceil_div(KW, plan.kc)},
        "buffers": {"chunked": plan.chunked, "m_tiles_per_group": plan.mb, "w_tiles_per_block": plan.nbw},
        "macs": M * K * N, "regions": prog.meta["regions"], "estimated_cycles": prog.meta.get("estimated_cycles"),
        "load_bytes": sum(i.args["n"] * eb[i.args["buf"]] for i in prog.instrs if i.op == Op.LOAD),
    }
    return Program(config=config, instrs=prog.instrs, dram=prog.dram, tensors=prog.tensors, meta=meta)
