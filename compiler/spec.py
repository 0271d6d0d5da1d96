"""Compile a random binary linear layer from a one-line spec, for tests and benchmarks.

    gemm:M,K,N,ABITS[,OBITS]

M rows of input, K input features, N output features, ABITS activation bits (1..8; 1 is
+-1, a trailing 'u' as in '4u' makes them unsigned), OBITS output bits (default ABITS;
0 = raw int32, 1 = sign). The layer, its calibration batch and its input are drawn
from `seed`, so a spec and a seed name one program. The spec is parsed (and its size
bounded) by `bebert.target.parse_gemm`, the one target parser.
"""

from __future__ import annotations

import math

import numpy as np

from bebert.config import AccelConfig
from bebert.target import GEMM_FORMAT, GemmTarget, parse_gemm

from .errors import CompileError
from .lower import compile_linear

FORMAT = GEMM_FORMAT


def parse_spec(spec: str) -> dict:
    """'gemm:M,K,N,ABITS[,OBITS]' -> dict(M, K, N, abits, asigned, obits) (`bebert.target.parse_gemm`)."""
    return parse_gemm(spec).as_dict()


def random_layer(M: int, K: int, N: int, abits: int, asigned: bool, obits: int, seed: int):
    """(IntegerLinear, x_int) of a seeded random `BinaryLinear` calibrated on a seeded batch; for
    widths the model's quantizer does not take yet, the same construction in numpy."""
    import torch

    from bebert.model.binary_linear import ActQuantizer

    try:
        ActQuantizer(abits, asigned)
    except ValueError:
        return _numpy_layer(M, K, N, abits, asigned, obits, seed)

    from bebert.model.binary_linear import BinaryLinear

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # weight init draws from the global RNG
        torch.manual_seed(seed)
        layer = BinaryLinear(K, N, act_bits=abits, act_signed=asigned)
    with torch.no_grad():
        layer.bias.uniform_(-0.5, 0.5, generator=g)
        calib = torch.randn(max(M, 8), K, generator=g, dtype=torch.float32)
        if not asigned:
            calib = calib.abs()
        layer.train()
        layer(calib)  # the first training batch sets the activation step (LSQ init)
        layer.eval()
        x = torch.randn(M, K, generator=g, dtype=torch.float32)
        if not asigned:
            x = x.abs()
        y = layer(x)
    spread = float(y.abs().max()) if y.numel() else 0.0
    if not math.isfinite(spread) or spread <= 0:
        spread = 1.0
    if obits >= 2:
        out_step = spread / ((1 << (obits - 1)) - 1)  # the largest |y| maps to the top code
    elif obits == 1:
        out_step = 1.0
    else:
        out_step = spread / (1 << 12)  # int32 output with 12 bits of resolution over the range
    integer = layer.to_integer(out_step=out_step, out_bits=obits, out_signed=True)
    x_int = layer.act_quant.to_int(x).numpy()
    return integer, x_int


def _numpy_layer(M: int, K: int, N: int, abits: int, asigned: bool, obits: int, seed: int):
    """A seeded random binary layer and input in numpy: signs, LSQ-like step, requantize to obits."""
    from bebert.numerics import IntegerLinear, act_range, fixed_point

    rng = np.random.default_rng(seed)
    lo, hi = act_range(abits, asigned)
    x = rng.integers(lo, hi + 1, (M, K))
    sign = rng.random((N, K)) < 0.5
    s_x = 2.0 / max(1, hi)
    alpha = np.abs(rng.normal(0.05, 0.01, N)) + 1e-3
    bias = rng.uniform(-0.5, 0.5, N)
    y = (x @ np.where(sign, 1.0, -1.0).T) * alpha * s_x + bias
    spread = float(np.abs(y).max()) if y.size else 1.0
    spread = spread if math.isfinite(spread) and spread > 0 else 1.0
    out_step = spread / ((1 << (obits - 1)) - 1) if obits >= 2 else 1.0 if obits == 1 else spread / (1 << 12)
    mult, ibias, shift = fixed_point(alpha * s_x / out_step, bias / out_step, acc_bound=max(K * max(-lo, hi), 1))
    layer = IntegerLinear(sign=sign, mult=mult, bias=ibias, shift=shift, in_bits=abits, in_signed=asigned,
                          out_bits=obits, out_signed=True, in_step=s_x, out_step=out_step)
    return layer, x


def compile_spec(spec: str | GemmTarget, config: AccelConfig, *, seed: int = 0):
    """The `Program` of a seeded random layer described by `spec` (see the module doc)."""
    target = parse_gemm(spec)
    s = target.as_dict()
    if s["abits"] not in config.act_bits:
        allowed = ", ".join(str(b) for b in config.act_bits)
        raise CompileError(f"activation bits {s['abits']} not supported by config '{config.name}' "
                           f"(act_bits = {allowed})")
    layer, x_int = random_layer(s["M"], s["K"], s["N"], s["abits"], s["asigned"], s["obits"], seed)
    prog = compile_linear(layer, x_int, config, name="y")
    prog.meta.update({"spec": target.text, "seed": seed})
    return prog


def reference(spec: str, seed: int = 0) -> np.ndarray:
    """IntegerLinear.forward of the layer and input `compile_spec(spec, seed=seed)` compiles."""
    s = parse_spec(spec)
    layer, x_int = random_layer(s["M"], s["K"], s["N"], s["abits"], s["asigned"], s["obits"], seed)
    return layer.forward(x_int)


def random_config(seed: int, *, small: bool = True) -> AccelConfig:
    """A seeded random valid `AccelConfig` (tiny buffers when `small`, to force k-chunking)."""
    rng = np.random.default_rng(seed)
    R = int(rng.choice([1, 2, 4, 8]))
    C = int(rng.choice([1, 2, 4, 8]))
    W = int(rng.choice([w for w in (8, 16, 32, 64) if w >= max(R, C)]))
    entry = {"abuf": R * W // 8, "wbuf": C * W // 8, "pbuf": C * 8}
    bus = int(rng.choice([b for b in (1, 2, 4, 8, 16) if all(e % b == 0 for e in entry.values())]))
    hi = 5 if small else 9  # entry counts are powers of two: up to 32 or 512
    counts = {b: 1 << int(rng.integers(1, hi + 1)) for b in entry}
    bits = [b for b in range(1, 9) if rng.random() < 0.6] or [int(rng.integers(1, 9))]
    return AccelConfig(name=f"random{seed}", pe_rows=R, pe_cols=C, xnor_width=W, act_bits=tuple(bits),
                       abuf_bytes=counts["abuf"] * entry["abuf"], wbuf_bytes=counts["wbuf"] * entry["wbuf"],
                       pbuf_bytes=counts["pbuf"] * entry["pbuf"], dram_bytes_per_cycle=bus,
                       dram_latency_cycles=int(rng.integers(1, 40)), queue_depth=int(rng.integers(2, 9)),
                       vec_lanes=int(rng.choice([1, 2, 4, 8, 16])))
