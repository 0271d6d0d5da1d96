"""Lower one binary linear layer (`IntegerLinear`) and its input to a `Program`.

Steps, each a plain function: check the layer against the config, choose the
activation encoding (and fold the +-1 correction into POST when it fits), choose the
tiling, lay the DRAM image out, schedule both tile orders and keep the one that moves
fewer bytes, place tokens, emit.

+-1 activations (in_bits == 1). The preferred encoding is one unsigned plane
b = (x + 1) / 2 with the correction folded into POST: sum_k x w = 2 acc_b - S_n
(S_n = sum_k w[n, k]) gives mult' = 2 mult, bias' = bias - mult S_n; or, when 2 mult
overflows int32 and shift >= 1, mult' = mult, shift' = shift - 1 and bias' halved
(exact, see `_fold_pm1`). `BinaryLinear.to_integer` picks the largest multiplier that
fits int32, so the folded bias usually overflows; the layer is then compiled exactly
with the +-1 codes as two signed planes (two's complement of -1 is 0b11, of +1 0b01).
"""

from __future__ import annotations

import numpy as np

from bebert.config import AccelConfig
from bebert.isa import IsaError
from bebert.numerics import INT32_MAX, INT32_MIN, MAX_SHIFT, act_range
from bebert.program import Program, Tensor

from bebert import layout as lay
from .errors import CompileError
from .schedule import PostArgs, Regions, emit, walk
from .tiling import plan_tiling

DRAM_LIMIT = 1 << 32  # LOAD / STORE dram is a 32-bit byte address


def _fits32(v: np.ndarray) -> bool:
    return bool(np.all((v >= INT32_MIN) & (v <= INT32_MAX)))


def _fold_pm1(layer, S: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(mult', bias', shift') computing POST(2 acc_b - S) from acc_b exactly, or None.

    With u = acc_b mult + floor(bias'/2) and bias' = bias - mult S:
    v = 2u + (bias' mod 2); for shift s >= 2, (v + 2^(s-1)) >> s == (u + 2^(s-2)) >> (s-1)
    since 2u + 2^(s-1) is even and adding 1 never crosses a multiple of 2^s; for s == 1,
    (v + 1) >> 1 == u + (bias' mod 2), i.e. bias'' = ceil(bias'/2) with shift 0.
    """
    mult = layer.mult.astype(np.int64)
    bias = layer.bias.astype(np.int64) - mult * S
    if _fits32(2 * mult) and _fits32(bias):
        return 2 * mult, bias, layer.shift
    if layer.shift >= 1:
        half = bias // 2 if layer.shift >= 2 else -((-bias) // 2)
        if _fits32(half):
            return mult, half, layer.shift - 1
    return None


def _check_layer(layer, x: np.ndarray, config: AccelConfig, name: str) -> None:
    bits = layer.in_bits
    if bits not in config.act_bits:
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


def compile_linear(layer, x_int: np.ndarray, config: AccelConfig, *, name: str = "y") -> Program:
    """Program computing y = layer.forward(x_int) (int32 (M, N)) into output tensor `name`."""
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
    sign = np.asarray(layer.sign, bool)

    # Activation encoding and the POST parameters that go with it.
    mult, bias, shift = layer.mult.astype(np.int64), layer.bias.astype(np.int64), layer.shift
    if layer.in_bits == 1:
        S = np.where(sign, 1, -1).sum(axis=1)
        folded = _fold_pm1(layer, S)
        if folded is not None:
            mult, bias, shift = folded
            planes, signed, pm1, encoding = 1, False, True, "pm1_fold"
        else:
            planes, signed, pm1, encoding = 2, True, False, "pm1_twos"
    else:
        planes, signed, pm1 = layer.in_bits, bool(layer.in_signed), False
        encoding = "twos" if signed else "unsigned"

    t = plan_tiling(M, K, N, planes, config, name)
    x_lay = lay.act_layout(M, K, t.rows, t.width, planes, signed, chunk=t.a_chunk, pm1=pm1)
    w_lay = lay.weight_layout(N, K, t.cols, t.width)
    p_lay = lay.param_layout(N, t.cols)
    y_lay = lay.output_layout(M, N, t.rows, t.cols)

    entry = {b: config.entry_bytes(b) for b in ("abuf", "wbuf", "pbuf", "obuf")}
    w_data = lay.pack_weights(sign, w_lay).reshape(-1)
    p_data = lay.pack_params(mult, bias, p_lay).reshape(-1)
    x_data = lay.pack_activations(x, x_lay).reshape(-1)
    y_bytes = lay.nbytes(y_lay, entry["obuf"])
    off_w = 0
    off_p = off_w + w_data.size
    off_x = off_p + p_data.size
    off_y = off_x + x_data.size
    total = off_y + y_bytes
    if total > DRAM_LIMIT:
        raise CompileError(f"DRAM image of layer '{name}' needs {total} bytes; addresses are 32-bit")
    dram = np.zeros(total, np.uint8)
    dram[off_w:off_p] = w_data
    dram[off_p:off_x] = p_data
    dram[off_x:off_y] = x_data

    regions = Regions(x=off_x, w=off_w, p=off_p, y=off_y, entry=entry)
    pa = PostArgs(shift=int(shift), obits=int(layer.out_bits), osigned=bool(layer.out_signed),
                  signed=signed)
    walks = {order: walk(t, regions, order, pa) for order in ("nm", "mn")}
    order = min(walks, key=lambda o: (walks[o].load_bytes, len(walks[o].groups)))
    try:
        instrs = emit(walks[order], t.o_slots)
    except IsaError as e:
        raise CompileError(f"layer '{name}': {e}") from None

    tensors = (
        Tensor("w", "weight", off_w, w_data.size, (N, K), w_lay),
        Tensor("p", "param", off_p, p_data.size, (N, 2), p_lay),
        Tensor("x", "input", off_x, x_data.size, (M, K), x_lay),
        Tensor(name, "output", off_y, y_bytes, (M, N), y_lay),
    )
    meta = {
        "kind": "gemm", "M": M, "K": K, "N": N, "in_bits": int(layer.in_bits),
        "in_signed": bool(layer.in_signed), "out_bits": int(layer.out_bits),
        "out_signed": bool(layer.out_signed), "act_encoding": encoding, "planes": planes,
        "output": name, "order": order, "kc": t.kc,
        "tiles": {"m": t.mtiles, "n": t.ntiles, "k_chunks": len(t.chunks)},
        "buffers": {"abuf": t.a.mode, "wbuf": t.w.mode, "pbuf": t.p.mode, "obuf_slots": t.o_slots},
        "load_bytes": walks[order].load_bytes,
        "store_bytes": M * t.ntiles * entry["obuf"],
        "macs": M * K * N,
    }
    return Program(config=config, instrs=tuple(instrs), dram=dram, tensors=tensors, meta=meta)
