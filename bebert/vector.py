"""The vector / special-function unit: its kernels, their legality and their cycle cost.

One VEC instruction runs one row-wise kernel over tensors in DRAM: `rows` rows of `cols`
elements each. Its operands (tensor views, constant blocks) are in a descriptor at DRAM
address `desc`; the instruction word itself carries everything the timing depends on
(fn, bits, rows, cols, aux), so the simulator and the RTL time a VEC from the word alone.

This module is the single source of truth for the kernel list (`VecFn`), which words are
legal (`check_vec`), and the cost contract (`vec_cycles`, `vec_bytes`), documented in
docs/ARCHITECTURE.md ("The vector unit"). The arithmetic of each kernel is the integer
contract of docs/NUMERICS.md (`bebert/model/integer_ops.py`); the descriptor format and
the reference semantics are below the cost contract.

Timing. The vector unit is part of the COMPUTE stage (it takes and gives tokens like any
compute instruction) and works row by row without overlap inside the instruction:

    D = VEC_SETUP_CYCLES + 2 L + rows * (in_beats + passes * ceil(cols / lanes) + extra + out_beats)

with L the DRAM latency (one for the first read, one for the last write to land),
lanes = `vec_lanes`, in_beats / out_beats the bus beats of one row's input / output bytes
(`ceil(bytes / dram_bytes_per_cycle)`), and passes / extra per kernel from `COSTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from bebert.config import VEC_SETUP_CYCLES, AccelConfig


class VecFn(IntEnum):
    EMBED = 1      # word[ids] + position[pos] + token_type[tt]  (three gathers, summed)
    ADD = 2        # residual add of two code tensors (apply_add)
    REQUANT = 3    # requantize codes to another grid / width (apply_requant)
    LAYERNORM = 4  # i-LayerNorm (apply_layernorm): isqrt and one division per row
    SOFTMAX = 5    # i-softmax with a key mask (apply_softmax): one division per row
    GELU = 6       # i-GELU (apply_gelu)
    PACK_A = 7     # codes -> ABUF bit-plane layout (`bits` planes)
    PACK_W = 8     # codes -> WBUF bit-plane layout (`bits` planes, one per GEMM AND pass)
    LUT = 9        # table lookup (the pooler's tanh)
    DOT = 10       # small exact int64 matmul + bias (the classifier): `aux` outputs per row
    COMBINE = 11   # ensemble combination of member outputs


@dataclass(frozen=True)
class Cost:
    """Per-row cost of a kernel: bytes in and out per element, passes over the row, extra cycles."""

    in_bytes: float   # DRAM bytes read per input element
    passes: int       # passes of ceil(cols / lanes) cycles over the row
    extra: int        # fixed cycles per row (dividers, square root)
    out_bytes: float  # DRAM bytes written per element (PACK: bits / 8; DOT: per output)


DIV_CYCLES = 64   # restoring divider, one quotient bit per cycle
ISQRT_CYCLES = 32  # digit-by-digit square root, one result bit per cycle

COSTS: dict[VecFn, Cost] = {
    VecFn.EMBED: Cost(4, 3, 0, 4),          # three table rows read per element (ids ride along)
    VecFn.ADD: Cost(8, 1, 0, 4),
    VecFn.REQUANT: Cost(4, 1, 0, 4),
    VecFn.LAYERNORM: Cost(4, 3, ISQRT_CYCLES + DIV_CYCLES, 4),  # sum, sum of squares, normalise
    VecFn.SOFTMAX: Cost(4, 3, DIV_CYCLES, 4),                   # max, exp-and-sum, normalise
    VecFn.GELU: Cost(4, 1, 0, 4),
    VecFn.PACK_A: Cost(4, 1, 0, 0),          # out bytes: bits / 8 per element
    VecFn.PACK_W: Cost(4, 1, 0, 0),
    VecFn.LUT: Cost(4, 1, 0, 4),
    VecFn.DOT: Cost(4, 0, 0, 8),             # passes: aux (one per output), out: 8 bytes per output
    VecFn.COMBINE: Cost(8, 1, 0, 8),
}

_PACK = (VecFn.PACK_A, VecFn.PACK_W)


def check_vec(args: dict[str, int]) -> str | None:
    """Why a VEC word's operands are illegal, or None (the RTL decoder flags the same)."""
    try:
        fn = VecFn(args["fn"])
    except ValueError:
        return f"unknown vector function fn={args['fn']}"
    if args["rows"] == 0 or args["cols"] == 0:
        return "rows and cols must be at least 1"
    if fn in _PACK:
        if not 1 <= args["bits"] <= 8:
            return f"{fn.name}: bits={args['bits']} must be in 1..8"
    elif args["bits"]:
        return f"{fn.name}: bits must be 0"
    if fn == VecFn.DOT:
        if args["aux"] == 0:
            return "DOT: aux (output columns) must be at least 1"
    elif args["aux"]:
        return f"{fn.name}: aux must be 0"
    return None


def _ceil(a: float, b: int) -> int:
    return -int(-a // b)


def row_bytes(fn: int, cols: int, bits: int, aux: int) -> tuple[int, int]:
    """(DRAM bytes read, DRAM bytes written) for one row."""
    c = COSTS[VecFn(fn)]
    rd = int(c.in_bytes * cols) * (3 if fn == VecFn.EMBED else 1)
    if fn in _PACK:
        wr = _ceil(cols * bits, 8)
    elif fn == VecFn.DOT:
        wr = int(c.out_bytes) * aux
    else:
        wr = int(c.out_bytes * cols)
    return rd, wr


def vec_cycles(fn: int, rows: int, cols: int, bits: int, aux: int, config: AccelConfig) -> int:
    """Duration D of one VEC instruction (the formula in the module docstring)."""
    c = COSTS[VecFn(fn)]
    rd, wr = row_bytes(fn, cols, bits, aux)
    bpc = config.dram_bytes_per_cycle
    passes = aux if fn == VecFn.DOT else c.passes
    per_row = _ceil(rd, bpc) + passes * _ceil(cols, config.vec_lanes) + c.extra + _ceil(wr, bpc)
    return VEC_SETUP_CYCLES + 2 * config.dram_latency_cycles + rows * per_row


def vec_bytes(fn: int, rows: int, cols: int, bits: int, aux: int) -> tuple[int, int]:
    """(DRAM bytes read, DRAM bytes written) by one VEC instruction (energy accounting)."""
    rd, wr = row_bytes(fn, cols, bits, aux)
    return rows * rd, rows * wr


def vec_elementwise_ops(fn: int, rows: int, cols: int, aux: int) -> int:
    """Element operations of one VEC instruction (energy accounting: one lane-op each)."""
    passes = aux if fn == VecFn.DOT else COSTS[VecFn(fn)].passes
    return rows * cols * passes
