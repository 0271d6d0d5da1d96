"""The vector / special-function unit: its kernels, their legality and their cycle cost.

One VEC instruction runs one row-wise kernel over tensors in DRAM: `rows` rows of `cols`
elements each. Its operands (tensor views, constant blocks) are in a descriptor at DRAM
address `desc`; the instruction word itself carries everything the timing depends on
(fn, bits, rows, cols, aux), so the simulator and the RTL time a VEC from the word alone.

This module is the single source of truth for the kernel list (`VecFn`), which words are
legal (`check_vec`), and the cost contract (`vec_cycles`, `vec_bytes`), documented in
docs/ARCHITECTURE.md ("The vector unit"). The arithmetic of each kernel is the integer
contract of docs/NUMERICS.md (`bebert/integer_ops.py`); the descriptor format and
the reference semantics are below the cost contract.

Timing (the RTL's, `hw/vector_unit.py`, cycle for cycle). The vector unit is part of the
COMPUTE stage (it takes and gives tokens like any compute instruction): one sequencer
computing one element at a time, and a read streamer keeping many reads in flight for the
kernels whose reads come in a fixed order (REQUANT, GELU, ADD, PACK_A / PACK_W, LAYERNORM /
SOFTMAX row loads: a read costs 1 cycle after one prime of L + K NB per instruction; the
others' reads are serial). With L the DRAM latency, NB = max(1, 8 // bus bytes) beats per
element access, rd = L + NB (one serial element read), wr = NB (one element write),
n = rows * cols, a VEC takes

    D = L + desc beats [+ L + const beats] + body + tail

(the descriptor, then the constant block, each one burst), with body and tail per kernel in
`vec_cycles` (docs/ARCHITECTURE.md, "The vector unit", has the table). Nothing about *when*
depends on the data (absent COMBINE members idle for a read's length, PACK padding slots
take a streamed read's one cycle, SOFTMAX without a mask re-reads src in the mask's slot), so
D is a function of the word and the config; a slower memory only stretches the RTL.
`COSTS` (bytes and lane passes per row) prices energy (`vec_bytes`, `vec_elementwise_ops`);
it is not the timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.config import AccelConfig


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
    """Energy pricing of a kernel (not its timing, which is `vec_cycles`): bytes in and out per
    element, lane operations per element, the dividers' extra per row."""

    in_bytes: float   # DRAM bytes read per input element
    passes: int       # lane operations per element (passes over the row)
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


# The timing constants of the RTL vector unit (hw/vector_unit.py holds its engines to them).
COMBINE_MAX_MEMBERS = 4  # COMBINE is timed (and its descriptor fetched) for this many members
GELU_LATENCY = 5         # hw/vec GeluElem pipeline
CONST_COUNTS = {VecFn.REQUANT: 5, VecFn.ADD: 6, VecFn.GELU: 8, VecFn.LAYERNORM: 8, VecFn.SOFTMAX: 11,
                VecFn.PACK_A: 5, VecFn.COMBINE: COMBINE_MAX_MEMBERS}  # int64 words fetched at setup


def layernorm_row_cycles(cols: int) -> int:
    """hw/vec LayerNormRow: start to done (sum, squares, isqrt, 2^60 // sigma, output)."""
    return 3 * cols + 105


def softmax_row_cycles(cols: int) -> int:
    """hw/vec SoftmaxRow: start to done (max, exp-and-sum, one division, output)."""
    return 3 * cols + 76


def desc_words_fetched(fn: int) -> int:
    """Descriptor words the unit fetches for kernel `fn` (COMBINE: for COMBINE_MAX_MEMBERS)."""
    fn = VecFn(fn)
    sizes = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS}
    return sum(VIEW_WORDS * COMBINE_MAX_MEMBERS if (fn == VecFn.COMBINE and name == "inputs") else sizes[kind]
               for name, kind in DESC_LAYOUT[fn])


def vec_cycles(fn: int, rows: int, cols: int, bits: int, aux: int, config: AccelConfig) -> int:
    """Duration D of one VEC instruction in the COMPUTE stage (issue to end), as the RTL does it."""
    fn = VecFn(fn)
    L, bpb = config.dram_latency_cycles, config.dram_bytes_per_cycle
    nb = max(1, 8 // bpb)
    rd, wr = L + nb, nb
    setup = L + _ceil(4 * desc_words_fetched(fn), bpb)
    if fn in CONST_COUNTS:
        setup += L + _ceil(8 * CONST_COUNTS[fn], bpb)
    tail = L + 1
    n = rows * cols
    # Streamed kernels: every operand read is a 1-cycle POP from the read streamer, after one
    # prime of the first element's reads (L + K nb, K operands per element) at the first POP.
    pop = 1
    prime1, prime2 = L + nb + 1, L + 2 * nb + 1
    if fn == VecFn.REQUANT:
        body = n * (5 + pop + wr) + prime1
    elif fn == VecFn.ADD:
        body = n * (6 + 2 * pop + wr) + prime2
    elif fn == VecFn.GELU:
        body = n * (4 + pop + GELU_LATENCY + wr) + prime1
    elif fn == VecFn.LAYERNORM:  # the row's mult / bias once, then per row: load, engine, store
        pad = max(0, nb - 4)
        body = cols * (2 * rd + 3) + rows * (2 + cols * (pop + 3 + pad) + layernorm_row_cycles(cols) + 1
                                             + cols * (3 + wr) + 1) + prime1
        tail = max(1, L - 1) + 1
    elif fn == VecFn.SOFTMAX:  # per row: load the row and its mask, engine, store
        pad = max(0, 2 * nb - 6)
        body = rows * (1 + cols * (2 * pop + 4 + pad) + softmax_row_cycles(cols) + 1 + cols * (3 + wr) + 1) + prime2
        tail = max(1, L - 1) + 1
    elif fn in _PACK:  # every byte of the padded layout, 8 elements then one byte per plane
        tile = config.pe_rows if fn == VecFn.PACK_A else config.pe_cols
        W = config.xnor_width
        groups = _ceil(rows, tile) * tile * (_ceil(cols, W) * W // 8)
        body = 2 + groups * (8 * (pop + 3 + max(0, nb - 4)) + bits * (wr + 2) + 1) + prime1
        tail = max(1, L - 1) + 1
    elif fn == VecFn.LUT:
        body = n * (5 + 2 * rd + wr)
    elif fn == VecFn.COMBINE:
        body = n * (4 + COMBINE_MAX_MEMBERS * (rd + 2) + wr)
    elif fn == VecFn.DOT:
        body, tail = 1 + rows * aux * (rd + 2 + cols * (2 * rd + 3) + wr), L + 2
    else:  # EMBED: per row the ids, the types and a pair per table; per element a read per table
        body = rows * (2 * rd + 2 + 3 * (2 + rd)) + n * (4 + 3 * (2 + rd) + wr)
    return setup + body + tail


def vec_bytes(fn: int, rows: int, cols: int, bits: int, aux: int) -> tuple[int, int]:
    """(DRAM bytes read, DRAM bytes written) by one VEC instruction (energy accounting)."""
    rd, wr = row_bytes(fn, cols, bits, aux)
    return rows * rd, rows * wr


def vec_elementwise_ops(fn: int, rows: int, cols: int, aux: int) -> int:
    """Element operations of one VEC instruction (energy accounting: one lane-op each)."""
    passes = aux if fn == VecFn.DOT else COSTS[VecFn(fn)].passes
    return rows * cols * passes


# == Descriptors and reference semantics ===================================================
#
# A descriptor is a block of little-endian 32-bit words in DRAM at `desc` (4-byte aligned).
# Tensors are read and written through *views* of VIEW_WORDS words:
#
#     base  fmt  rtile  ctile  s_rt  s_r  s_ct  s_c  r0  c0
#
# element (r, c) of the view lives at byte address
#     base + (R // rtile) s_rt + (R % rtile) s_r + (C // ctile) s_ct + (C % ctile) s_c
# with R = r + r0, C = c + c0 (a tile size of 0 means "no tiling": R // 0 = 0, R % 0 = R).
# One form covers row-major tensors, the POST unit's output tiles (rtile = pe_rows, ctile =
# pe_cols), transposed tensors (swap the strides), head slices (c0), broadcast rows (s_r = 0)
# and the TWS split input [x, x] (ctile = K, s_ct = 0).
# fmt: bits 0-7 element bytes (1, 2, 4, 8), bit 8 signed, bits 16-23 `sat`: when reading,
# codes saturate to signed `sat` bits (0: none). Writes saturate to the element type.
#
# Constant blocks (kernel integer constants, `*Consts` of bebert/integer_ops.py) are runs of
# little-endian int64 words at an 8-byte aligned address named by a descriptor word.
# Every kernel's descriptor is listed in `DESC_LAYOUT`; docs/ARCHITECTURE.md ("The vector
# unit") is the prose form.

import numpy as np  # noqa: E402

VIEW_WORDS = 10


class VecError(ValueError):
    """A VEC instruction whose descriptor or data the vector unit cannot process."""


@dataclass(frozen=True)
class View:
    """A (tiled, strided) 2-D window onto DRAM; see the comment above for the address rule."""

    base: int
    elem: int = 4
    signed: bool = True
    rtile: int = 0
    ctile: int = 0
    s_rt: int = 0
    s_r: int = 0
    s_ct: int = 0
    s_c: int = 4
    r0: int = 0
    c0: int = 0
    sat: int = 0

    def words(self) -> list[int]:
        fmt = self.elem | (int(self.signed) << 8) | (self.sat << 16)
        return [self.base, fmt, self.rtile, self.ctile, self.s_rt, self.s_r, self.s_ct, self.s_c,
                self.r0, self.c0]

    @classmethod
    def from_words(cls, w) -> "View":
        w = [int(x) for x in w]
        fmt = w[1]
        return cls(base=w[0], elem=fmt & 0xFF, signed=bool(fmt >> 8 & 1), rtile=w[2], ctile=w[3],
                   s_rt=w[4], s_r=w[5], s_ct=w[6], s_c=w[7], r0=w[8], c0=w[9], sat=fmt >> 16 & 0xFF)

    @classmethod
    def row_major(cls, base: int, cols: int, elem: int = 4, signed: bool = True, sat: int = 0) -> "View":
        return cls(base=base, elem=elem, signed=signed, s_r=cols * elem, s_c=elem, sat=sat)

    @classmethod
    def tiles(cls, base: int, cols: int, rows_per_tile: int, cols_per_tile: int, sat: int = 0) -> "View":
        """An int32 tensor in the POST/STORE output layout (`bebert/layout.py` obuf)."""
        nt = -(-cols // cols_per_tile)
        tile = rows_per_tile * cols_per_tile * 4
        return cls(base=base, elem=4, signed=True, rtile=rows_per_tile, ctile=cols_per_tile,
                   s_rt=nt * tile, s_r=cols_per_tile * 4, s_ct=tile, s_c=4, sat=sat)

    def shifted(self, r0: int = 0, c0: int = 0) -> "View":
        from dataclasses import replace
        return replace(self, r0=self.r0 + r0, c0=self.c0 + c0)

    def transposed(self) -> "View":
        return View(self.base, self.elem, self.signed, self.ctile, self.rtile, self.s_ct, self.s_c,
                    self.s_rt, self.s_r, self.c0, self.r0, self.sat)

    def with_sat(self, sat: int) -> "View":
        from dataclasses import replace
        return replace(self, sat=sat)


# Descriptor layouts: kernel -> list of (field, kind), kind "view" (VIEW_WORDS words) or "word".
# Constant blocks ("consts") are int64 runs; their fields are listed in `CONST_FIELDS`.
DESC_LAYOUT: dict[VecFn, list[tuple[str, str]]] = {
    VecFn.EMBED: [("ids", "view"), ("types", "view"), ("word", "table"), ("position", "table"),
                  ("token_type", "table"), ("out", "view")],
    VecFn.ADD: [("a", "view"), ("b", "view"), ("out", "view"), ("consts", "word")],
    VecFn.REQUANT: [("src", "view"), ("out", "view"), ("consts", "word")],
    VecFn.LAYERNORM: [("src", "view"), ("out", "view"), ("consts", "word")],
    VecFn.SOFTMAX: [("src", "view"), ("mask", "view"), ("out", "view"), ("consts", "word")],
    VecFn.GELU: [("src", "view"), ("out", "view"), ("consts", "word")],
    VecFn.PACK_A: [("src", "view"), ("out", "word"), ("consts", "word"), ("array_rows", "word"),
                   ("width", "word"), ("signed", "word"), ("chunk", "word")],
    VecFn.PACK_W: [("src", "view"), ("out", "word"), ("array_cols", "word"), ("width", "word"),
                   ("plane_bytes", "word")],
    VecFn.LUT: [("src", "view"), ("out", "view"), ("table", "word"), ("offset", "word"), ("size", "word")],
    VecFn.DOT: [("src", "view"), ("weight", "view"), ("bias", "word"), ("out", "view")],
    VecFn.COMBINE: [("members", "word"), ("out", "view"), ("inputs", "view"), ("weights", "word")],
}
# An embedding table: kind (0 dense: `base` row-major int codes of `elem` bytes, row stride
# `stride` bytes; 1 binary: `base` sign bits of each row (little-endian bit order, `stride` bytes
# per row) and `pairs`: per row two int32, the code of a 1 bit then of a 0 bit), rows.
TABLE_WORDS = 6  # kind base stride rows elem pairs
_KIND_WORDS = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS}

CONST_FIELDS: dict[VecFn, tuple[str, ...]] = {
    VecFn.ADD: ("mult1", "mult2", "shift", "in_bits", "out_bits", "out_signed"),
    VecFn.REQUANT: ("mult", "shift", "bits", "signed", "in_bits"),
    VecFn.PACK_A: ("mult", "shift", "bits", "signed", "in_bits"),  # an optional requantize first
    VecFn.LAYERNORM: ("hidden", "in_bits", "d_shift", "eps", "norm_bits", "shift", "out_bits",
                      "out_signed"),  # then mult[hidden], bias[hidden]
    VecFn.SOFTMAX: ("out_bits", "in_shift", "t_in_max", "t_max", "ln2", "div_mult", "div_shift",
                    "poly_b", "poly_c", "recip_num", "recip_shift"),
    VecFn.GELU: ("in_clamp", "in_shift", "erf_b", "erf_c", "mult", "shift", "out_bits", "out_signed"),
}


def desc_words(fn: VecFn, **fields) -> list[int]:
    """The descriptor of kernel `fn` as 32-bit words (views as `View`, tables as 6-tuples).

    COMBINE takes `inputs` as a list of views and `weights` as the address of its int64 weights."""
    fn = VecFn(fn)
    out: list[int] = []
    for name, kind in DESC_LAYOUT[fn]:
        v = fields[name]
        if fn == VecFn.COMBINE and name == "inputs":
            for view in v:
                out += view.words()
        elif kind == "view":
            out += v.words()
        elif kind == "table":
            out += [int(x) for x in v]
        else:
            out.append(int(v))
    for w in out:
        if not 0 <= w < 1 << 32:
            raise VecError(f"{fn.name} descriptor word {w} does not fit 32 bits")
    return out


def encode_desc(fn: VecFn, **fields) -> bytes:
    return np.asarray(desc_words(fn, **fields), "<u4").tobytes()


def decode_desc(dram: np.ndarray, fn: int, addr: int, rows: int = 1) -> dict:
    """Read kernel `fn`'s descriptor at `addr`: {field: View | int | tuple}."""
    fn = VecFn(fn)
    if addr % 4:
        raise VecError(f"{fn.name}: descriptor address 0x{addr:x} is not 4-byte aligned")

    def words(at: int, n: int) -> np.ndarray:
        if at + 4 * n > dram.size:
            raise VecError(f"{fn.name}: descriptor at 0x{addr:x} runs past the end of DRAM")
        return dram[at:at + 4 * n].view("<u4")

    out, at = {}, addr
    for name, kind in DESC_LAYOUT[fn]:
        if fn == VecFn.COMBINE and name == "inputs":
            n = out["members"]
            out[name] = [View.from_words(words(at + 4 * VIEW_WORDS * i, VIEW_WORDS)) for i in range(n)]
            at += 4 * VIEW_WORDS * n
            continue
        n = _KIND_WORDS[kind]
        w = words(at, n)
        out[name] = View.from_words(w) if kind == "view" else (tuple(int(x) for x in w) if kind == "table"
                                                                 else int(w[0]))
        at += 4 * n
    return out


def consts_words(fn: VecFn, c, extra: tuple[np.ndarray, ...] = ()) -> bytes:
    """A kernel's integer constants (`*Consts` of bebert/integer_ops.py) as an int64 block."""
    vals = [int(getattr(c, f)) for f in CONST_FIELDS[VecFn(fn)]]
    arr = np.asarray(vals, np.int64)
    if extra:
        arr = np.concatenate([arr, *[np.asarray(e, np.int64).reshape(-1) for e in extra]])
    return arr.astype("<i8").tobytes()


# -- views on a DRAM image ----------------------------------------------------------------------
_DT = {1: "i1", 2: "i2", 4: "i4", 8: "i8"}


def _dtype(v: View) -> np.dtype:
    if v.elem not in _DT:
        raise VecError(f"view element of {v.elem} bytes (want 1, 2, 4 or 8)")
    return np.dtype("<" + (_DT[v.elem] if v.signed else _DT[v.elem].replace("i", "u")))


def _axis(start: int, n: int, tile: int, s_t: int, s: int) -> np.ndarray:
    i = np.arange(start, start + n, dtype=np.int64)
    if tile == 0:
        return i * s
    return (i // tile) * s_t + (i % tile) * s


def _strided(dram: np.ndarray, v: View, rows: int, cols: int) -> np.ndarray | None:
    """A numpy view of the window when it is a regular strided array (the fast path), else None."""
    dt = _dtype(v)

    def split(start, n, tile, s_t, s):
        if tile == 0:
            return start * s, [(n, s)]
        if start // tile == (start + n - 1) // tile:  # inside one tile
            return (start // tile) * s_t + (start % tile) * s, [(n, s)]
        if start % tile == 0 and n % tile == 0:       # whole tiles
            return (start // tile) * s_t, [(n // tile, s_t), (tile, s)]
        return None

    r = split(v.r0, rows, v.rtile, v.s_rt, v.s_r)
    c = split(v.c0, cols, v.ctile, v.s_ct, v.s_c)
    if r is None or c is None:
        return None
    off = v.base + r[0] + c[0]
    dims = r[1] + c[1]
    last = off + sum((n - 1) * s for n, s in dims) + v.elem
    if off < 0 or last > dram.size:
        raise VecError(f"view [0x{off:x}, 0x{last:x}) lies outside the {dram.size}-byte DRAM image")
    arr = np.ndarray(tuple(n for n, _ in dims), dt, buffer=dram, offset=off,
                     strides=tuple(s for _, s in dims))
    return arr


def _addresses(dram: np.ndarray, v: View, rows: int, cols: int) -> np.ndarray:
    a = v.base + _axis(v.r0, rows, v.rtile, v.s_rt, v.s_r)[:, None] + \
        _axis(v.c0, cols, v.ctile, v.s_ct, v.s_c)[None, :]
    if a.size and (a.min() < 0 or a.max() + v.elem > dram.size):
        raise VecError(f"view reaches [0x{int(a.min()):x}, 0x{int(a.max()) + v.elem:x}) outside the "
                       f"{dram.size}-byte DRAM image")
    return a


def read_view(dram: np.ndarray, v: View, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols) int64 codes the view shows (saturated on read when `sat`)."""
    arr = _strided(dram, v, rows, cols)
    if arr is not None:
        x = arr.reshape(rows, cols).astype(np.int64)
    else:
        a = _addresses(dram, v, rows, cols)
        raw = dram[a[..., None] + np.arange(v.elem)]
        x = np.ascontiguousarray(raw).view(_dtype(v)).reshape(rows, cols).astype(np.int64)
    if v.sat:
        lo, hi = -(1 << (v.sat - 1)), (1 << (v.sat - 1)) - 1
        x = np.clip(x, lo, hi)
    return x


def write_view(dram: np.ndarray, v: View, values: np.ndarray) -> None:
    """Write int codes (rows, cols) through the view, saturating to the element type."""
    rows, cols = values.shape
    dt = _dtype(v)
    info = np.iinfo(dt)
    vals = np.clip(np.asarray(values, np.int64), max(info.min, -(1 << 63)), min(info.max, (1 << 63) - 1)).astype(dt)
    arr = _strided(dram, v, rows, cols)
    if arr is not None:
        arr[...] = vals.reshape(arr.shape)
        return
    a = _addresses(dram, v, rows, cols)
    dram[a[..., None] + np.arange(v.elem)] = vals.reshape(rows, cols, 1).view(np.uint8).reshape(rows, cols, v.elem)


def _consts(dram: np.ndarray, fn: VecFn, addr: int, extra: int = 0) -> tuple[dict, np.ndarray]:
    names = CONST_FIELDS[fn]
    n = len(names) + extra
    if addr % 8 or addr + 8 * n > dram.size:
        raise VecError(f"{fn.name}: constant block at 0x{addr:x} is misaligned or outside DRAM")
    w = dram[addr:addr + 8 * n].view("<i8")
    return {k: int(x) for k, x in zip(names, w)}, w[len(names):].astype(np.int64)


# -- the kernels ---------------------------------------------------------------------------------
def _table_rows(dram: np.ndarray, t: tuple, idx: np.ndarray, cols: int) -> np.ndarray:
    kind, base, stride, nrows, elem, pairs = t
    if idx.size and (idx.min() < 0 or idx.max() >= nrows):
        raise VecError(f"EMBED: index outside the table's {nrows} rows")
    if kind == 0:
        v = View(base=base, elem=elem, signed=True, s_r=stride, s_c=elem)
        full = read_view(dram, v, nrows, cols) if nrows * cols <= 1 << 22 else None
        if full is not None:
            return full[idx]
        return np.concatenate([read_view(dram, v.shifted(r0=int(i)), 1, cols) for i in idx])
    if kind == 1:
        if base + nrows * stride > dram.size or pairs + 8 * nrows > dram.size:
            raise VecError("EMBED: binary table outside DRAM")
        signs = dram[base:base + nrows * stride].reshape(nrows, stride)[idx]
        bits = np.unpackbits(signs, axis=1, count=cols, bitorder="little").astype(bool)
        pv = dram[pairs:pairs + 8 * nrows].view("<i4").reshape(nrows, 2)[idx].astype(np.int64)
        return np.where(bits, pv[:, :1], pv[:, 1:])
    raise VecError(f"EMBED: unknown table kind {kind}")


def _embed(dram, d, rows, cols, args):
    ids = read_view(dram, d["ids"], rows, 1)[:, 0]
    tt = read_view(dram, d["types"], rows, 1)[:, 0]
    pos = np.arange(rows, dtype=np.int64)
    e = _table_rows(dram, d["word"], ids, cols) + _table_rows(dram, d["position"], pos, cols) \
        + _table_rows(dram, d["token_type"], tt, cols)
    write_view(dram, d["out"], e)


def _add(dram, d, rows, cols, args):
    k, _ = _consts(dram, VecFn.ADD, d["consts"])
    c = I.AddConsts(mult1=k["mult1"], mult2=k["mult2"], shift=k["shift"], in_bits=k["in_bits"],
                    out_bits=k["out_bits"], out_signed=bool(k["out_signed"]), scale1=1.0, scale2=1.0, out_scale=1.0)
    out = I.apply_add(read_view(dram, d["a"], rows, cols), read_view(dram, d["b"], rows, cols), c)
    write_view(dram, d["out"], out)


def _requant_consts(k: dict):
    return I.RequantConsts(mult=k["mult"], shift=k["shift"], bits=k["bits"], signed=bool(k["signed"]),
                           in_bits=k["in_bits"], scale_in=1.0, scale_out=1.0)


def _requant(dram, d, rows, cols, args):
    k, _ = _consts(dram, VecFn.REQUANT, d["consts"])
    write_view(dram, d["out"], I.apply_requant(read_view(dram, d["src"], rows, cols), _requant_consts(k)))


def _layernorm(dram, d, rows, cols, args):
    k, _ = _consts(dram, VecFn.LAYERNORM, d["consts"])
    h = k["hidden"]
    if h != cols:
        raise VecError(f"LAYERNORM: constants for hidden {h}, instruction has cols={cols}")
    _, tail = _consts(dram, VecFn.LAYERNORM, d["consts"], extra=2 * h)
    c = I.LayerNormConsts(hidden=h, in_bits=k["in_bits"], d_shift=k["d_shift"], eps=k["eps"],
                          norm_bits=k["norm_bits"], mult=tuple(tail[:h].tolist()), bias=tuple(tail[h:].tolist()),
                          shift=k["shift"], out_bits=k["out_bits"], out_signed=bool(k["out_signed"]),
                          in_scale=1.0, out_scale=1.0)
    write_view(dram, d["out"], I.apply_layernorm(read_view(dram, d["src"], rows, cols), c))


def _softmax(dram, d, rows, cols, args):
    k, _ = _consts(dram, VecFn.SOFTMAX, d["consts"])
    c = I.SoftmaxConsts(**k, in_scale=1.0, out_scale=1.0)
    mask = None if d["mask"].base == 0 else read_view(dram, d["mask"], rows, cols) != 0
    write_view(dram, d["out"], I.apply_softmax(read_view(dram, d["src"], rows, cols), c, mask=mask))


def _gelu(dram, d, rows, cols, args):
    k, _ = _consts(dram, VecFn.GELU, d["consts"])
    c = I.GeluConsts(**{**k, "out_signed": bool(k["out_signed"])}, in_scale=1.0, out_scale=1.0)
    write_view(dram, d["out"], I.apply_gelu(read_view(dram, d["src"], rows, cols), c))


def _pack_a(dram, d, rows, cols, args):
    x = read_view(dram, d["src"], rows, cols)
    if d["consts"]:
        k, _ = _consts(dram, VecFn.PACK_A, d["consts"])
        x = I.apply_requant(x, _requant_consts(k)).astype(np.int64)
    bits, signed = args["bits"], bool(d["signed"])
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    x = np.clip(x, lo, hi)  # the codes are `bits` wide: saturate rather than wrap
    L = lay.act_layout(rows, cols, d["array_rows"], d["width"], bits, signed, chunk=d["chunk"] or None)
    data = lay.pack_activations(x, L).reshape(-1)
    _write_bytes(dram, d["out"], data, "PACK_A")


def _pack_w(dram, d, rows, cols, args):
    x = read_view(dram, d["src"], rows, cols)
    L = lay.weight_layout(rows, cols, d["array_cols"], d["width"])
    for p in range(args["bits"]):
        data = lay.pack_weights(((x >> p) & 1).astype(bool), L).reshape(-1)
        _write_bytes(dram, d["out"] + p * d["plane_bytes"], data, "PACK_W")


def _write_bytes(dram, at, data, what):
    if at + data.size > dram.size:
        raise VecError(f"{what}: output [0x{at:x}, 0x{at + data.size:x}) outside the {dram.size}-byte DRAM image")
    dram[at:at + data.size] = data


def _lut(dram, d, rows, cols, args):
    x = read_view(dram, d["src"], rows, cols)
    off = d["offset"] - (1 << 32) if d["offset"] >= 1 << 31 else d["offset"]
    i = x + off
    if i.size and (i.min() < 0 or i.max() >= d["size"]):
        raise VecError(f"LUT: index outside the {d['size']}-entry table")
    if d["table"] + 4 * d["size"] > dram.size:
        raise VecError("LUT: table outside DRAM")
    table = dram[d["table"]:d["table"] + 4 * d["size"]].view("<i4")
    write_view(dram, d["out"], table[i].astype(np.int64))


def _dot(dram, d, rows, cols, args):
    n = args["aux"]
    x = read_view(dram, d["src"], rows, cols)
    w = read_view(dram, d["weight"], n, cols)
    if d["bias"] + 8 * n > dram.size:
        raise VecError("DOT: bias outside DRAM")
    b = dram[d["bias"]:d["bias"] + 8 * n].view("<i8").astype(np.int64)
    with np.errstate(over="ignore"):
        write_view(dram, d["out"], x @ w.T + b[None, :])


def _combine(dram, d, rows, cols, args):
    n = d["members"]
    if n < 1 or d["weights"] + 8 * n > dram.size:
        raise VecError("COMBINE: member count or weight block out of range")
    wts = dram[d["weights"]:d["weights"] + 8 * n].view("<i8").astype(np.int64)
    acc = np.zeros((rows, cols), np.int64)
    with np.errstate(over="ignore"):
        for v, w in zip(d["inputs"], wts):
            acc += read_view(dram, v, rows, cols) * w
    write_view(dram, d["out"], acc)


_KERNELS = {VecFn.EMBED: _embed, VecFn.ADD: _add, VecFn.REQUANT: _requant, VecFn.LAYERNORM: _layernorm,
            VecFn.SOFTMAX: _softmax, VecFn.GELU: _gelu, VecFn.PACK_A: _pack_a, VecFn.PACK_W: _pack_w,
            VecFn.LUT: _lut, VecFn.DOT: _dot, VecFn.COMBINE: _combine}


def run_vec(dram: np.ndarray, args: dict[str, int]) -> None:
    """Execute one VEC instruction (its operand dict) on the DRAM image `dram` (uint8, in place).

    The reference semantics every back end reproduces; the arithmetic is bebert/integer_ops.py's."""
    why = check_vec(args)
    if why:
        raise VecError(why)
    fn = VecFn(args["fn"])
    d = decode_desc(dram, fn, args["desc"], args["rows"])
    try:
        _KERNELS[fn](dram, d, args["rows"], args["cols"], args)
    except VecError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError) as e:
        raise VecError(f"{fn.name}: malformed descriptor or constants ({e})") from None
