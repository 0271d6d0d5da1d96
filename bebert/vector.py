"""The vector unit's kernels (ISA v3): one record per kernel, read by every part of the toolkit.

A VEC instruction runs one kernel over `rows` rows of `cols` elements. Its operands (tensor
views, constant blocks, a packed-output description) are in a descriptor at DRAM address
`desc`; the word itself carries everything the timing depends on (fn, rows, cols, bits, aux,
io), so the simulator and the RTL time a VEC from the word alone.

`KERNELS[fn]` is the one record of kernel `fn`: its engine, descriptor layout, constant
fields, which `io` flags and outputs it takes (legality: `check_vec`), its reference
semantics (`run_vec`: the integer contract of docs/NUMERICS.md, `bebert/integer_ops.py`), its
cycle cost (`vec_cycles`) and its energy pricing (`Cost`). The compiler writes descriptors
with `encode_desc`, the golden executor runs `run_vec`, the simulator charges `vec_cycles`
and `vec_bytes`, the RTL keeps `vec_cycles` exactly, docs/ISA.md's tables are generated from
the records.

Two engines (docs/ARCHITECTURE.md, "The vector unit"):

- the **tile engine** (ADD, REQUANT, LAYERNORM, SOFTMAX, GELU): row tiles of T = `vec_lanes`
  rows, lane l owning row l; it reads and writes *stream* tensors (bebert/layout.py), one
  tile column (T elements) per step, and can also write its result as packed bit-planes
  (`bits` > 0, a `Packed` description, an optional requantize first);
- the **scalar engine** (EMBED, LUT, DOT, COMBINE, VOTE): element by element with streamed
  reads, for the small kernels at the ends of a member and the ensemble's vote.

Timing (`vec_cycles`) is the RTL vector unit's exact schedule (hw/vector_unit.py) at the
nominal memory; tests/test_hw_vector.py holds RTL == vec_cycles on random VECs. Nothing about
*when* depends on data, only on the word and the configuration (L = dram_latency_cycles,
B = dram_bytes_per_cycle, T = vec_lanes, W = xnor_width); a slower memory only stretches it.
The VEC issues in cycle 0 and is busy in 1 .. D:

| phase | cycles (at the nominal memory) |
| --- | --- |
| descriptor | one burst of NDB = ceil((4 desc_words + B - 4) / B) beats; its NW parsed words, one a cycle: parsed by P = max(4 + L + NW, 2 + L + NDB) |
| constant blocks | one request a cycle for each block (`setup_blocks`: K, A, G, M, B, NC beats in all, the first of kind index k0), then the 22 constant words: the engine starts in S = max(P + 6, P + 1 + k0 + L + NC) + 24 (`setup_cycles`) |
| tile engine: first column | F1 = S + 2 + L + 2 + fill, fill = (T e_in / B - 1 when a column is several beats) + (two inputs: min(8, beats of a tile's run)) |
| REQUANT, ADD, GELU | one pass over tiles * cols columns, one every Sc = max(step, w) cycles, step = max(n_in, n_in T e_in / B) (n_in = 2 for ADD), w = max(1, T e_out / B) (1 without a stream output); the first result is taken in a0 = F1 + [ADD] + OUT[path] (OUT: AFF 6, GELU 11); a packed output flushes FB = bits * max(1, T W / 8B) beats after every W columns and a row's last, holding the lanes max(0, w + FB - Sc) cycles each: last = a0 + (tiles cols - 1) Sc + (tiles ceil(cols / W) - 1) max(0, w + FB - Sc) |
| LAYERNORM, SOFTMAX, per tile | P1 (cols columns, one every `step`) + gap; P2 (cols, one a cycle) + gap - 1; the division (ISQRT + LN_DIV or SM_DIV steps, + 1); P3 (the output: OUT LN3 8, SM3 5) or, with a packed output, P3 (cols, + gap) then P4 (OUT 7); the output pass takes a column every w cycles plus FB per flushed word but its last; the next tile starts at max(last + 1, the start of this tile's P2 + 1 + L + 2 + fill) (`tile_gap`, `_tile_cycles`) |
| end | D = last + w + FB - 1 + L + 1: the last write, answered |
| DOT | one element read a cycle from S + 73 on (x[r, :] then w[n, :] per row), the last value taken p = first + rows cols (1 + aux) - 1 + L + 2; D = max(p + 6, p + L + 4) |
| LUT | blocks of Q = 2^bitlen(L + 3) elements: the block's x, then its table reads; D = max(p + 4, p + L + 2), p = first + 2 n - 1 + max(0, L + 3 - last block) + L + 2 |
| EMBED | per group of n = `embed_group` rows (the rows one beat of the stream output holds, at most EMBED_GROUP = 8), from its first id taken in F: 2n ids and types, 3n row addresses, 3n pairs, then (a table binary) 3n NBB beat slots (NBB = `embed_row_beats(cols)`), the last in X = F + 8n + 3n NBB; all binary: a column (n sums, one beat) a cycle from X + L + 2 on, the last in p = X + L + 1 + cols; else the dense elements (n nd a column, nd dense tables) requested from X + 1 on, p = X + n nd cols + L + 2; the next group's first id taken in max(p + 1, X + 1 + n nd cols + L + 2); D = max(p + 4, p + L + 2) (`_embed_cycles`) |
| COMBINE | per member 15 + 71 + rows cols (its view, weight, walker, elements), then 3 cycles per output element; D = max(w_last + 3, w_last + L + 1) (`_scalar_cycles`) |
| VOTE | per row (example) N = aux (2 + 2 cols) reads, one a cycle (per member its shift, alpha, then per class its mult and accumulator), the last taken in p = first + N - 1 + L + 2; the row's votes read back in cols + VOTE_TAIL cycles, its prediction written in w = p + cols + VOTE_TAIL; the next row's first read in w + 1; D = max(w_last + 3, w_last + L + 1) |
| VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN | VOTE's reads; the row sequencer from p + VOTE_SEQ_START for `vote_seq_cycles` (average aux (3 (cols + 1) + 33) + cols + 2, mean 66, median aux (aux + 3) + 1), the result written in the cycle after: w = p + 5 + that; then as VOTE |

(71 = VEC_WALK_INIT: the scalar engine's view walkers divide r0, c0 by their tiles.)

EMBED's word states what its timing depends on: io bit t (t = 0 word, 1 position, 2
token_type) set when table t is binary (kind 1; a mismatch is a fault), bits 4-5 log2 of
the output's element bytes; the output is a stream view of T-row tiles (`embed_io`); cols at
most `vec_row_elems` (a binary row's beats wait in the engine until its columns are out).

VOTE (docs/NUMERICS.md, "Ensemble vote"): `src` shows the accumulators as (rows aux, cols)
int64 (row r aux + m: example r's member m), `consts` is aux blocks of 2 + cols int64 words
(member m: logit shift, alpha_q, the cols logit mults), `method` 0 samme, 1 samme.r. Per
member l_c = requantize(acc_c, mult_c, 0, shift, int32 saturating); samme: V_c = sum_m A_m
[argmax l_m = c], samme.r: S_c = sum_m l_mc; the prediction is argmax (first maximum). `out`
shows (rows (aux + 1), 1) int64: example r's member predictions, then its prediction.
VOTE_AVERAGE / VOTE_MEAN / VOTE_MEDIAN (model/vote.py average, mean, median; no `method`) take
the same src / consts / out: average p = apply_softmax(l_m, VOTE_SOFTMAX), P_c = sum_m A_m p_mc,
argmax; mean floor((2 sum A l + T) / 2T); median the smallest l_m with 2 sum_{l_j <= l_m} A_j >= T
(STS-B, one column: the members' and the ensemble's Q15.16 scores out). docs/NUMERICS.md, "The
vote on the device", has the bounds and the proofs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum, IntFlag
from typing import Callable

import numpy as np

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.numerics import requantize


class VecFn(IntEnum):
    EMBED = 1      # word[ids] + position[pos] + token_type[tt]  (three gathers, summed)
    ADD = 2        # residual add of two code tensors (apply_add)
    REQUANT = 3    # requantize codes to another grid / width (apply_requant)
    LAYERNORM = 4  # i-LayerNorm (apply_layernorm), optionally of apply_add(a, b): isqrt and one division per row
    SOFTMAX = 5    # i-softmax with a key mask (apply_softmax): one division per row
    GELU = 6       # i-GELU (apply_gelu)
    LUT = 9        # table lookup (the pooler's tanh)
    DOT = 10       # small exact int64 matmul + bias (the classifier): `aux` outputs per row
    COMBINE = 11   # ensemble combination of member outputs (`aux` members)
    VOTE = 12      # the ensemble's integer vote (model/vote.py samme / samme.r) of `aux` members per row
    VOTE_AVERAGE = 13  # model/vote.py's average: alpha-weighted i-softmax probabilities of `aux` members per row
    VOTE_MEAN = 14     # STS-B: the alpha-weighted mean of `aux` members' Q15.16 scores per row
    VOTE_MEDIAN = 15   # STS-B: the alpha-weighted median (AdaBoost.R2) of `aux` members' scores per row


class Io(IntFlag):
    """The VEC word's `io` field: operand facts the timing depends on (checked against the
    descriptor by the unit: a mismatch is a fault)."""

    STREAM_OUT = 1   # the kernel writes its stream output view
    SECOND_IN = 2    # a second input: LAYERNORM's b (fused add), SOFTMAX's mask
    # bits 2-3: log2 of the (first) input's element bytes; bits 4-5: log2 of the stream output's


def io_word(stream_out: bool = True, second_in: bool = False, in_elem: int = 2, out_elem: int = 2) -> int:
    return (int(stream_out) | int(second_in) << 1 | (in_elem.bit_length() - 1) << 2
            | (out_elem.bit_length() - 1) << 4)


def io_fields(io: int) -> tuple[bool, bool, int, int]:
    """(stream_out, second_in, input element bytes, output element bytes) of an io field."""
    return bool(io & 1), bool(io & 2), 1 << (io >> 2 & 3), 1 << (io >> 4 & 3)


def packed_pass(fn: int, bits: int) -> bool:
    """LAYERNORM and SOFTMAX write a packed output in a pass of their own (the tile engine's
    P4: the result, requantized by `Packed.consts` or not), which the timing counts."""
    return bits > 0 and VecFn(fn) in (VecFn.LAYERNORM, VecFn.SOFTMAX)


TILE_IN_ELEMS = (1, 2, 4)    # the tile engine reads int32 codes of at most 4 bytes
RQ_KERNELS = (VecFn.LAYERNORM, VecFn.SOFTMAX)   # the tile kernels whose packed output may be requantized


class VecError(ValueError):
    """A VEC instruction whose descriptor or data the vector unit cannot process."""


# == Views and descriptors ==================================================================
#
# A descriptor is a block of little-endian 32-bit words in DRAM at `desc` (4-byte aligned).
# Tensors are read and written through *views* of VIEW_WORDS words
#     base  fmt  rtile  ctile  s_rt  s_r  s_ct  s_c  r0  c0
# element (r, c) at  base + (R // rtile) s_rt + (R % rtile) s_r + (C // ctile) s_ct + (C % ctile) s_c
# with R = r + r0, C = c + c0 (tile 0 = untiled). fmt: bits 0-7 element bytes (1, 2, 4, 8), bit 8
# signed, bits 16-23 `sat` (reads saturate to signed `sat` bits; 0 = none). Writes saturate to
# the element type. The tile engine takes only *stream* views (View.stream: rtile = T, ctile 0,
# s_r = e, s_c = T e, r0 a multiple of T); the scalar engine any view.
# A *packed* output is PACKED_WORDS words  base pitch gstride group wstep flags consts
# (bebert/layout.py row_word_addr; flags bit 0 signed codes, bit 1 pm1; consts: the address of a
# REQUANT constant block applied first, 0 = none).

VIEW_WORDS = 10
PACKED_WORDS = 7
TABLE_WORDS = 6  # kind base stride rows elem pairs


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
    def stream(cls, base: int, layout: dict, sat: int = 0, c0: int = 0) -> "View":
        """A stream tensor (`bebert.layout.stream_layout`), optionally from column c0."""
        T, e = layout["lanes"], layout["elem"]
        return cls(base=base + c0 * T * e, elem=e, signed=layout["signed"], rtile=T, s_rt=layout["pitch"],
                   s_r=e, s_c=T * e, sat=sat)

    def is_stream(self, lanes: int) -> bool:
        return (self.rtile == lanes and self.ctile == 0 and self.s_r == self.elem
                and self.s_c == lanes * self.elem and self.r0 % lanes == 0 and self.c0 == 0)

    def shifted(self, r0: int = 0, c0: int = 0) -> "View":
        return replace(self, r0=self.r0 + r0, c0=self.c0 + c0)

    def transposed(self) -> "View":
        return View(self.base, self.elem, self.signed, self.ctile, self.rtile, self.s_ct, self.s_c,
                    self.s_rt, self.s_r, self.c0, self.r0, self.sat)


@dataclass(frozen=True)
class Packed:
    """Where a kernel writes packed bit-planes: row-word (r, p, j) at
    base + (r // group) gstride + (r % group) W/8 + p pitch + j wstep (bebert/layout.py)."""

    base: int
    pitch: int
    gstride: int
    group: int
    wstep: int
    signed: bool = False
    pm1: bool = False
    consts: int = 0  # REQUANT constants applied before packing (0: the codes as they are)

    def words(self) -> list[int]:
        return [self.base, self.pitch, self.gstride, self.group, self.wstep,
                int(self.signed) | int(self.pm1) << 1, self.consts]

    @classmethod
    def from_words(cls, w) -> "Packed":
        w = [int(x) for x in w]
        return cls(w[0], w[1], w[2], w[3], w[4], bool(w[5] & 1), bool(w[5] & 2), w[6])

    @classmethod
    def of(cls, base: int, geometry: dict, signed: bool, pm1: bool = False, consts: int = 0) -> "Packed":
        """From `layout.abuf_geometry` / `wbuf_geometry`."""
        g = geometry
        return cls(base, g["pitch"], g["gstride"], g["group"], g["wstep"], signed, pm1, consts)


@dataclass(frozen=True)
class Cost:
    """Energy pricing of a kernel (not its timing, which is `vec_cycles`): lane operations per
    element and the dividers' extra operations per row."""

    passes: int  # lane operations per element
    extra: int   # extra lane operations per row (dividers, square root)


DIV_CYCLES = 64    # energy pricing: lane operations of a row's division (timing: LN_DIV_STEPS, SM_DIV_STEPS)
ISQRT_CYCLES = 32  # energy pricing: lane operations of a row's square root (timing: ISQRT_STEPS)


@dataclass(frozen=True)
class Kernel:
    """Everything about one vector kernel."""

    fn: VecFn
    engine: str                             # "tile" or "scalar"
    desc: tuple[tuple[str, str], ...]       # descriptor fields in order: (name, kind) kind view / word / table / packed
    consts: tuple[str, ...] = ()            # the int64 constant block's fields (`*Consts` of integer_ops)
    io: Io = Io(0)                          # io flags the kernel may take
    packs: bool = False                     # may write packed bit-planes (bits > 0)
    aux: str = ""                           # meaning of `aux` ("" = must be 0)
    cost: Cost = Cost(1, 0)
    run: Callable | None = field(default=None, repr=False, compare=False)  # reference semantics


# -- legality ----------------------------------------------------------------------------------
def check_vec(args: dict[str, int]) -> str | None:
    """Why a VEC word's operands are illegal, or None (the RTL decoder flags the same)."""
    try:
        k = KERNELS[VecFn(args["fn"])]
    except ValueError:
        return f"unknown vector function fn={args['fn']}"
    if args["rows"] == 0 or args["cols"] == 0:
        return "rows and cols must be at least 1"
    if args["bits"] and not k.packs:
        return f"{k.fn.name}: bits must be 0 (the kernel writes no packed output)"
    if args["bits"] > 8:
        return f"{k.fn.name}: bits={args['bits']} must be in 0..8"
    if k.aux and args["aux"] == 0:
        return f"{k.fn.name}: aux ({k.aux}) must be at least 1"
    if k.fn == VecFn.COMBINE and args["aux"] > COMBINE_MAX_MEMBERS:
        return f"COMBINE: aux={args['aux']} members, at most {COMBINE_MAX_MEMBERS}"
    if k.fn in VOTE_EXACT and args["aux"] > VOTE_MAX_MEMBERS:
        return f"{k.fn.name}: aux={args['aux']} members, at most {VOTE_MAX_MEMBERS}"
    if k.fn in (VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN) and args["cols"] != 1:
        return f"{k.fn.name}: cols={args['cols']}, a score vote takes one column"
    if not k.aux and args["aux"]:
        return f"{k.fn.name}: aux must be 0"
    if k.engine == "tile":
        flags = Io(args["io"] & 3)
        if flags & ~k.io:
            return f"{k.fn.name}: io flags {int(flags)} are not the kernel's ({int(k.io)})"
        if not flags & Io.STREAM_OUT and not args["bits"]:
            return f"{k.fn.name}: no output (neither io STREAM_OUT nor packed bits)"
        if args["io"] >> 6:
            return f"{k.fn.name}: io bits 6-7 are reserved"
        if io_fields(args["io"])[2] not in TILE_IN_ELEMS:
            return f"{k.fn.name}: the tile engine reads 1-, 2- or 4-byte elements (io in_elem 8)"
    elif k.fn == VecFn.EMBED:
        if args["io"] & 0xC8:
            return "EMBED: io bits 3, 6, 7 are reserved (bits 0-2: which tables are binary, 4-5: log2 out elem)"
    elif args["io"]:
        return f"{k.fn.name}: io must be 0"
    return None


# -- timing: the RTL vector unit's exact schedule at the nominal memory (hw/vector_unit.py) ----
# The numbers below are the RTL's: hw/vec/ builds to them (it imports them from here), and
# tests/test_hw_vector.py holds RTL cycles == vec_cycles on random VECs. See the module
# docstring's table.
COMBINE_MAX_MEMBERS = 16
VOTE_TAIL = 6               # VOTE: cycles of a row's last member's pipeline and its argmax read-back beyond cols
VOTE_SEQ_START = 5          # the vote kernels: from a row's last value taken to its row sequencer's first cycle
VOTE_DIV_STEPS = 64         # VOTE_MEAN: the row sequencer's divider, one quotient bit a cycle
VOTE_AVG_DIV_STEPS = 32     # VOTE_AVERAGE: R = recip_num // sum < 2^32 (VOTE_SOFTMAX's bound, below)
VOTE_MAX_MEMBERS = 64       # VOTE_AVERAGE / MEAN / MEDIAN: |A l| < 2^53 summed over 64 members stays in int64
VEC_BURST = 8               # the stream reader's longest burst (beats)
VEC_FIFO_LAT = 2            # a beat that arrives in cycle c can leave the reader's FIFO in c + 2
LANE_Y_LAT = {"AFF": 5, "GELU": 10, "LN3": 7, "SM3": 4, "RQ": 6}   # a lane's POST result, after the element
LANE_OUT_LAT = {p: y + 1 for p, y in LANE_Y_LAT.items()}           # ... and its registered outputs
LANE_Q_LAT = {"Q": 1, "Y": 5, "DP": 4, "QM": 1, "E": 8}             # row-memory writes of the row passes
LANE_SQ_LAT = 5                                                     # LAYERNORM's D'^2 into N
ISQRT_STEPS, LN_DIV_STEPS, SM_DIV_STEPS = 31, 61, 32               # the per-row divider (one digit a cycle)
CONST_WORDS = 22            # setup: the int64 constants read into registers (K 11, A 6, G 5)
VEC_WALK_INIT = 71          # the scalar engine's view walkers: r0 / c0 divided by their tiles, 6 products
SETUP_DONE = 24             # setup: cycles from the first constant word read to the engine's start


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def desc_words(fn: int, aux: int = 0) -> int:
    """Descriptor words of kernel `fn`."""
    sizes = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS, "packed": PACKED_WORDS, "views": VIEW_WORDS * aux}
    return sum(sizes[kind] for _, kind in KERNELS[VecFn(fn)].desc)


def parsed_desc_words(fn: int) -> int:
    """Descriptor words the setup parses into registers (COMBINE: up to its members' views)."""
    sizes = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS, "packed": PACKED_WORDS}
    n = 0
    for _, kind in KERNELS[VecFn(fn)].desc:
        if kind == "views":
            break
        n += sizes[kind]
    return n


def desc_beats(fn: int, aux: int, config: AccelConfig) -> int:
    """Beats of the descriptor's burst (from any 4-byte aligned address)."""
    B = config.dram_bytes_per_cycle
    return _ceil(4 * desc_words(fn, aux) + B - 4, B)


def _block_beats(nbytes: int, align: int, config: AccelConfig) -> int:
    B = config.dram_bytes_per_cycle
    return _ceil(nbytes + B - align, B)


def setup_blocks(fn: int, cols: int, aux: int, io: int, config: AccelConfig, bits: int = 0) -> list[tuple[str, int]]:
    """(kind, beats) of the constant blocks a VEC fetches at setup, in this order: K (the
    kernel's constants; LAYERNORM's with its H mults and H biases), A (the fused add's), G
    (the packed requantize's: LAYERNORM / SOFTMAX with a packed output, a dummy read when
    Packed.consts is 0), M (SOFTMAX's key mask), B (DOT's bias, COMBINE's weights)."""
    k = KERNELS[VecFn(fn)]
    out = []
    if k.engine == "tile":
        n = len(k.consts) + (2 * cols if k.fn == VecFn.LAYERNORM else 0)
        out.append(("K", _block_beats(8 * n, 8, config)))
        if k.fn == VecFn.LAYERNORM and io & Io.SECOND_IN:
            out.append(("A", _block_beats(8 * len(ADD_CONSTS), 8, config)))
        if packed_pass(k.fn, bits):
            out.append(("G", _block_beats(8 * len(REQUANT_CONSTS), 8, config)))
        if k.fn == VecFn.SOFTMAX and io & Io.SECOND_IN:
            out.append(("M", _block_beats(4 * cols, 4, config)))
    elif k.fn in (VecFn.DOT, VecFn.COMBINE):
        out.append(("B", _block_beats(8 * aux, 8, config)))
    return out


def setup_cycles(fn: int, cols: int, aux: int, io: int, config: AccelConfig, bits: int = 0) -> int:
    """Cycles from the VEC's issue to its engine's start (the descriptor, then the blocks)."""
    L = config.dram_latency_cycles
    parse_end = max(4 + L + parsed_desc_words(fn), 2 + L + desc_beats(fn, aux, config))
    blocks = setup_blocks(fn, cols, aux, io, config, bits)
    kinds = "KAGMB"
    first = min((kinds.index(k) for k, _ in blocks), default=None)
    nbeats = sum(b for _, b in blocks)
    words = parse_end + 6 if first is None else max(parse_end + 6, parse_end + 1 + first + L + nbeats)
    return words + SETUP_DONE


_K_ELEM = {VecFn.ADD: "AFF", VecFn.REQUANT: "AFF", VecFn.GELU: "GELU"}


def tile_gap(fn: VecFn, pss: str, two: bool = False) -> int:
    """Cycles from the last issue of a row pass to the first issue of the next (DIV: from
    entering the division to the output pass's first issue)."""
    if pss == "DIV":
        return (ISQRT_STEPS + LN_DIV_STEPS if fn == VecFn.LAYERNORM else SM_DIV_STEPS) + 1
    lat = {(VecFn.LAYERNORM, "P1"): LANE_Q_LAT["Y" if two else "Q"], (VecFn.LAYERNORM, "P2"): LANE_SQ_LAT,
           (VecFn.LAYERNORM, "P3"): LANE_Y_LAT["LN3"], (VecFn.SOFTMAX, "P1"): LANE_Q_LAT["QM"],
           (VecFn.SOFTMAX, "P2"): LANE_Q_LAT["E"], (VecFn.SOFTMAX, "P3"): LANE_Y_LAT["SM3"]}[(fn, pss)]
    return lat + 1


def tile_geometry(fn: int, rows: int, cols: int, bits: int, io: int, cfg: AccelConfig) -> dict:
    """The tile engine's per-VEC counts: elements per column, steps, write beats, flush beats."""
    fn = VecFn(fn)
    T, B, W = cfg.vec_lanes, cfg.dram_bytes_per_cycle, cfg.xnor_width
    stream_out, second, ein, eout = io_fields(io)
    two = fn == VecFn.ADD or (fn == VecFn.LAYERNORM and second)
    nin = 2 if two else 1
    beats_col = max(1, T * ein // B)                    # read beats per tile column and input
    run = _ceil(cols * T * ein, B)                      # beats of a tile's run
    return {
        "two": two, "tiles": _ceil(rows, T), "step": max(nin, nin * T * ein // B),
        "wsp": max(1, T * eout // B) if stream_out else 1,
        "flush": bits * max(1, T * W // (8 * B)) if bits else 0, "words": _ceil(cols, W),
        "fill": (beats_col - 1) + (min(VEC_BURST, run) if two else 0),
    }


def _tile_cycles(k: Kernel, rows: int, cols: int, bits: int, io: int, cfg: AccelConfig) -> int:
    L = cfg.dram_latency_cycles
    g = tile_geometry(k.fn, rows, cols, bits, io, cfg)
    two, tiles, wsp, fb, nw = g["two"], g["tiles"], g["wsp"], g["flush"], g["words"]
    start = setup_cycles(k.fn, cols, 0, io, cfg, bits)           # the engine's start (issue = cycle 0)
    first = start + 2 + L + VEC_FIFO_LAT + g["fill"]            # its first column is in
    if k.fn in _K_ELEM:                                         # one pass over every tile's columns
        S = max(g["step"], wsp)
        a0 = first + int(two) + LANE_OUT_LAT[_K_ELEM[k.fn]]
        last = a0 + (tiles * cols - 1) * S + (tiles * nw - 1) * max(0, wsp + fb - S)
    else:                                                       # per tile: P1, P2, DIV, P3 (P4)
        rq = packed_pass(k.fn, bits)
        t1 = first
        for _ in range(tiles):
            t2 = t1 + (cols - 1) * g["step"] + int(two) + tile_gap(k.fn, "P1", two)
            t3 = t2 + cols - 1 + tile_gap(k.fn, "P2") - 1 + tile_gap(k.fn, "DIV")
            path = "LN3" if k.fn == VecFn.LAYERNORM else "SM3"
            if rq:
                a0 = t3 + cols - 1 + tile_gap(k.fn, "P3") + LANE_OUT_LAT["RQ"]
            else:
                a0 = t3 + LANE_OUT_LAT[path]
            last = a0 + (cols - 1) * wsp + (nw - 1) * fb
            t1 = max(last + 1, t2 + 1 + L + VEC_FIFO_LAT + g["fill"])   # the next tile was read from t2 - 1 on
    return last + wsp + fb - 1 + L + 1                          # the last write, answered


EMBED_GROUP = 8             # EMBED: the most rows whose elements one output beat carries


def embed_group(io: int, config: AccelConfig) -> int:
    """EMBED's rows at once: as many as one beat of the stream output holds (at most the lanes'
    tile and EMBED_GROUP)."""
    return min(config.vec_lanes, config.dram_bytes_per_cycle >> (io >> 4 & 3), EMBED_GROUP)


def embed_row_beats(cols: int, config: AccelConfig) -> int:
    """EMBED: the beat slots of one binary table row of `cols` sign bits (the most beats it
    spans, wherever it starts in a beat)."""
    B = config.dram_bytes_per_cycle
    return _ceil(8 * (B - 1) + cols, 8 * B)


def lut_block(config: AccelConfig) -> int:
    """LUT's block: its x are read, then its table entries (a power of two >= L + 4, so that a
    block's first x is back before its first table read)."""
    return 1 << (config.dram_latency_cycles + 3).bit_length()


def _embed_cycles(rows: int, cols: int, io: int, cfg: AccelConfig) -> int:
    """EMBED, per group of n rows (`embed_group`; F: the cycle its first id is taken): its n
    ids and types taken one a cycle; 3n row addresses; 3n pairs; (a table binary) 3n NBB beat
    slots, the last in X = F + 8n + 3n NBB; every table binary: a column a cycle from X + L + 2
    on; else the dense elements (n nd a column) requested from X + 1 on, taken L + 2 later.
    The next group's first id is requested after this group's last request and taken once
    this group's last column is out."""
    L, G = cfg.dram_latency_cycles, embed_group(io, cfg)
    nd = 3 - bin(io & 7).count("1")
    nbb = embed_row_beats(cols, cfg)
    issue = setup_cycles(VecFn.EMBED, cols, 0, io, cfg) + 2 + VEC_WALK_INIT   # the first id's request
    take = issue + L + VEC_FIFO_LAT
    last = None
    for r0 in range(0, rows, G):
        n = min(G, rows - r0)
        x = take + 8 * n + (3 * n * nbb if nd < 3 else 0)                  # the last beat slot (or pair)
        dense = cols * n * nd
        last = x + L + 1 + cols if nd == 0 else x + dense + L + VEC_FIFO_LAT
        take = max(last + 1, x + 1 + dense + L + VEC_FIFO_LAT)
    return max(last + 4, last + L + 2)


def _scalar_cycles(k: Kernel, rows: int, cols: int, aux: int, cfg: AccelConfig) -> int:
    L = cfg.dram_latency_cycles
    first = setup_cycles(k.fn, cols, aux, 0, cfg) + 2 + VEC_WALK_INIT   # the first element request
    n = rows * cols
    back = L + VEC_FIFO_LAT                                               # a request's value can be taken
    if k.fn == VecFn.DOT:         # x[r, :], then w[n, :] for every n: one request a cycle, one MAC a cycle
        p = first + rows * cols * (1 + aux) - 1 + back
        w_last, idle = p + 3, p + 5
    elif k.fn == VecFn.LUT:       # blocks of Q: the block's x, then its table entries
        q = lut_block(cfg)
        k_last = n - (_ceil(n, q) - 1) * q
        p = first + 2 * n - 1 + max(0, L + 3 - k_last) + back
        w_last, idle = p + 1, p + 3
    elif k.fn in VOTE_KERNELS:    # per row: aux (2 + 2 cols) reads, the votes read back, the prediction out
        n = aux * (2 + 2 * cols)
        tail = cols + VOTE_TAIL if k.fn == VecFn.VOTE else VOTE_SEQ_START + vote_seq_cycles(k.fn, aux, cols)
        w_first = first + n - 1 + back + tail                           # the first row's prediction written
        w_last = w_first + (rows - 1) * (w_first + 1 - first)           # each next row's reads from w + 1 on
        idle = w_last + 2
    else:                         # COMBINE: per member its view, weight, walker, elements; then every acc out
        member = 15 + VEC_WALK_INIT + n
        p = first + (aux - 1) * member + 13 + VEC_WALK_INIT + n + back
        w_last = p + 4 + 3 * (n - 1)
        idle = w_last + 2
    return max(idle + 1, w_last + L + 1)


def vote_seq_cycles(fn: int, members: int, labels: int) -> int:
    """Cycles of the row sequencer of VOTE_AVERAGE / MEAN / MEDIAN (hw/vec/scalar.py), its
    result written in the cycle after: every pass of n reads takes n + 1 cycles (the last
    read's value taken in the extra one), a division 1 + its steps (AVERAGE VOTE_AVG_DIV_STEPS,
    MEAN VOTE_DIV_STEPS), the result 1.
    AVERAGE per member: its codes' maximum, their exponentials and sum, the division, the
    probabilities into P; then P's first maximum. MEAN: the division. MEDIAN per member: its
    code, then every member's (the weight at or below it)."""
    fn = VecFn(fn)
    if fn == VecFn.VOTE_AVERAGE:
        return members * (3 * (labels + 1) + 1 + VOTE_AVG_DIV_STEPS) + labels + 1 + 1
    if fn == VecFn.VOTE_MEAN:
        return 1 + VOTE_DIV_STEPS + 1
    return members * (2 + members + 1) + 1


def vec_cycles(fn: int, rows: int, cols: int, bits: int, aux: int, io: int, config: AccelConfig) -> int:
    """Duration D of one VEC instruction in the VECTOR stage (issue to end), as the RTL does it."""
    k = KERNELS[VecFn(fn)]
    if k.engine == "tile":
        return _tile_cycles(k, rows, cols, bits, io, config)
    if k.fn == VecFn.EMBED:
        return _embed_cycles(rows, cols, io, config)
    return _scalar_cycles(k, rows, cols, aux, config)


def vec_bytes(fn: int, rows: int, cols: int, bits: int, aux: int, io: int, config: AccelConfig) -> tuple[int, int]:
    """(DRAM bytes read, DRAM bytes written) by one VEC instruction (energy and port accounting)."""
    k = KERNELS[VecFn(fn)]
    n = rows * cols
    if k.engine == "tile":
        stream_out, second, ein, eout = io_fields(io)
        nin = 2 if (second and k.fn != VecFn.SOFTMAX) or k.fn == VecFn.ADD else 1
        rd = n * nin * ein + (4 * cols if k.fn == VecFn.SOFTMAX and second else 0) \
            + (16 * cols if k.fn == VecFn.LAYERNORM else 0)
        wr = (n * eout if stream_out else 0) + _ceil(n * bits, 8)
        return rd, wr
    if k.fn == VecFn.EMBED:       # ids, types, pairs; per binary row its beats, per dense element its beat
        nb = bin(io & 7).count("1")
        beats = nb * embed_row_beats(cols, config) + (3 - nb) * cols
        return rows * (8 + 3 * 8 + beats * config.dram_bytes_per_cycle), n * 2
    if k.fn == VecFn.LUT:
        return n * 8, n * 4
    if k.fn == VecFn.DOT:
        return rows * aux * cols * 8 + 8 * aux, rows * aux * 8
    if k.fn in VOTE_KERNELS:      # the accumulators and every member's constants, once per row
        return rows * aux * (2 + 2 * cols) * 8, rows * (aux + 1) * 8
    return n * aux * 8 + 8 * aux, n * 8


def vec_elementwise_ops(fn: int, rows: int, cols: int, aux: int) -> int:
    """Lane operations of one VEC instruction (energy accounting)."""
    k = KERNELS[VecFn(fn)]
    if k.fn == VecFn.DOT:
        return rows * cols * aux
    if k.fn == VecFn.VOTE:        # per member and class: requantize, compare, vote; per row the argmax
        return rows * aux * cols * k.cost.passes + rows * cols * k.cost.extra
    if k.fn == VecFn.VOTE_AVERAGE:  # per member and class: requantize, max, exp, probability, P; its division
        return rows * aux * (cols * k.cost.passes + k.cost.extra) + rows * cols
    if k.fn == VecFn.VOTE_MEAN:   # per member: requantize, A l; per row the division
        return rows * aux * k.cost.passes + rows * k.cost.extra
    if k.fn == VecFn.VOTE_MEDIAN:  # per member: requantize; per pair of members a compare and an add
        return rows * aux * k.cost.passes + rows * aux * aux * k.cost.extra
    return rows * cols * k.cost.passes + rows * k.cost.extra


# == Reference semantics =====================================================================
def desc_words_of(fn: VecFn, **fields) -> list[int]:
    """The descriptor of kernel `fn` as 32-bit words (views as `View`, packed as `Packed`, tables
    as 6-tuples, words as ints; COMBINE's `inputs` a list of views)."""
    fn = VecFn(fn)
    out: list[int] = []
    for name, kind in KERNELS[fn].desc:
        v = fields.get(name, 0)
        if kind in ("view", "packed"):
            out += (v.words() if v else [0] * (VIEW_WORDS if kind == "view" else PACKED_WORDS))
        elif kind == "views":
            for view in v:
                out += view.words()
        elif kind == "table":
            out += [int(x) for x in v]
        else:
            out.append(int(v))
    for w in out:
        if not 0 <= w < 1 << 32:
            raise VecError(f"{fn.name} descriptor word {w} does not fit 32 bits")
    return out


def encode_desc(fn: VecFn, **fields) -> bytes:
    return np.asarray(desc_words_of(fn, **fields), "<u4").tobytes()


def decode_desc(dram: np.ndarray, fn: int, addr: int, aux: int = 0) -> dict:
    """Read kernel `fn`'s descriptor at `addr`: {field: View | Packed | int | tuple | [View]}."""
    fn = VecFn(fn)
    if addr % 4:
        raise VecError(f"{fn.name}: descriptor address 0x{addr:x} is not 4-byte aligned")

    def words(at: int, n: int) -> np.ndarray:
        if at + 4 * n > dram.size:
            raise VecError(f"{fn.name}: descriptor at 0x{addr:x} runs past the end of DRAM")
        return dram[at:at + 4 * n].view("<u4")

    out, at = {}, addr
    for name, kind in KERNELS[fn].desc:
        if kind == "views":
            out[name] = [View.from_words(words(at + 4 * VIEW_WORDS * i, VIEW_WORDS)) for i in range(aux)]
            at += 4 * VIEW_WORDS * aux
            continue
        n = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS, "packed": PACKED_WORDS}[kind]
        w = words(at, n)
        out[name] = (View.from_words(w) if kind == "view" else Packed.from_words(w) if kind == "packed"
                     else tuple(int(x) for x in w) if kind == "table" else int(w[0]))
        at += 4 * n
    return out


def consts_words(fn: VecFn, c, extra: tuple[np.ndarray, ...] = ()) -> bytes:
    """A kernel's integer constants (`*Consts` of bebert/integer_ops.py) as an int64 block."""
    vals = [int(getattr(c, f)) for f in KERNELS[VecFn(fn)].consts]
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


def _addresses(dram: np.ndarray, v: View, rows: int, cols: int) -> np.ndarray:
    a = v.base + _axis(v.r0, rows, v.rtile, v.s_rt, v.s_r)[:, None] + \
        _axis(v.c0, cols, v.ctile, v.s_ct, v.s_c)[None, :]
    if a.size and (a.min() < 0 or a.max() + v.elem > dram.size):
        raise VecError(f"view reaches [0x{int(a.min()):x}, 0x{int(a.max()) + v.elem:x}) outside the "
                       f"{dram.size}-byte DRAM image")
    return a


def read_view(dram: np.ndarray, v: View, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols) int64 codes the view shows (saturated on read when `sat`)."""
    a = _addresses(dram, v, rows, cols)
    raw = dram[a[..., None] + np.arange(v.elem)]
    x = np.ascontiguousarray(raw).view(_dtype(v)).reshape(rows, cols).astype(np.int64)
    if v.sat:
        x = np.clip(x, -(1 << (v.sat - 1)), (1 << (v.sat - 1)) - 1)
    return x


def write_view(dram: np.ndarray, v: View, values: np.ndarray) -> None:
    """Write int codes (rows, cols) through the view, saturating to the element type."""
    rows, cols = values.shape
    dt = _dtype(v)
    info = np.iinfo(dt)
    vals = np.clip(np.asarray(values, np.int64), max(info.min, -(1 << 63)), min(info.max, (1 << 63) - 1)).astype(dt)
    a = _addresses(dram, v, rows, cols)
    dram[a[..., None] + np.arange(v.elem)] = vals.reshape(rows, cols, 1).view(np.uint8).reshape(rows, cols, v.elem)


def write_packed(dram: np.ndarray, p: Packed, codes: np.ndarray, bits: int, width: int, what: str) -> None:
    """Write integer codes (rows, cols) as packed row-words (partial last word at the top)."""
    rows, cols = codes.shape
    if p.group == 0 or p.group & (p.group - 1):
        raise VecError(f"{what}: packed group {p.group} is not a power of two")
    planes = lay.planes_of(codes, 1 if p.pm1 else bits, p.signed, p.pm1)        # (P, rows, cols)
    words = lay._to_words(planes, cols, width)                                  # (P, rows, KW * W)
    kw = words.shape[-1] // width
    data = lay._pack_bits(words.reshape(planes.shape[0], rows, kw, width))     # (P, rows, KW, W/8)
    r, pp, j = np.meshgrid(np.arange(rows), np.arange(planes.shape[0]), np.arange(kw), indexing="ij")
    addr = p.base + lay.row_word_addr(r, pp, j, group=p.group, gstride=p.gstride, pitch=p.pitch, wstep=p.wstep,
                                      width=width)
    if addr.size and (addr.min() < 0 or addr.max() + width // 8 > dram.size):
        raise VecError(f"{what}: packed output reaches outside the {dram.size}-byte DRAM image")
    dram[addr[..., None] + np.arange(width // 8)] = data.transpose(1, 0, 2, 3)


def _consts(dram: np.ndarray, fn: VecFn, addr: int, names: tuple[str, ...], extra: int = 0) -> tuple[dict, np.ndarray]:
    n = len(names) + extra
    if addr % 8 or addr + 8 * n > dram.size or addr == 0:
        raise VecError(f"{fn.name}: constant block at 0x{addr:x} is misaligned, missing or outside DRAM")
    w = dram[addr:addr + 8 * n].view("<i8")
    return {k: int(x) for k, x in zip(names, w)}, w[len(names):].astype(np.int64)


REQUANT_CONSTS = ("mult", "shift", "bits", "signed", "in_bits")


def _requant_consts(k: dict) -> I.RequantConsts:
    return I.RequantConsts(mult=k["mult"], shift=k["shift"], bits=k["bits"], signed=bool(k["signed"]),
                           in_bits=k["in_bits"], scale_in=1.0, scale_out=1.0)


def _add_consts(k: dict) -> I.AddConsts:
    return I.AddConsts(mult1=k["mult1"], mult2=k["mult2"], shift=k["shift"], in_bits=k["in_bits"],
                       out_bits=k["out_bits"], out_signed=bool(k["out_signed"]), scale1=1.0, scale2=1.0,
                       out_scale=1.0)


ADD_CONSTS = ("mult1", "mult2", "shift", "in_bits", "out_bits", "out_signed")


def _check_stream(v: View, cfg_lanes: int, elem: int, what: str, bus: int) -> None:
    if not v.is_stream(cfg_lanes):
        raise VecError(f"{what}: the tile engine reads and writes stream views of {cfg_lanes}-row tiles")
    if v.elem != elem:
        raise VecError(f"{what}: view of {v.elem}-byte elements, the word's io says {elem}")
    if v.base % bus or v.s_rt % bus:
        raise VecError(f"{what}: stream view base 0x{v.base:x} / pitch {v.s_rt} not aligned to the {bus}-byte bus")


def _check_packed(p: Packed, cfg: AccelConfig, what: str) -> None:
    """The packed writer writes beats of consecutive row-words of one group."""
    T, B, W = cfg.vec_lanes, cfg.dram_bytes_per_cycle, cfg.xnor_width
    if p.group == 0 or p.group & (p.group - 1) or p.group < min(T, max(1, 8 * B // W)):
        raise VecError(f"{what}: packed group {p.group} is not a power of two >= min(lanes, bus row-words)")
    align = min(B, T * W // 8)
    if any(x % align for x in (p.base, p.pitch, p.gstride, p.wstep)):
        raise VecError(f"{what}: packed base / pitch / gstride / wstep not multiples of {align} bytes")


def _check_mask(v: View, what: str) -> None:
    """The key mask is a plain int32 row."""
    if (v.elem, v.rtile, v.ctile, v.s_c, v.r0, v.c0) != (4, 0, 0, 4, 0, 0) or v.base % 4:
        raise VecError(f"{what}: the key mask must be a plain int32 row (elem 4, untiled, s_c 4, r0 = c0 = 0)")


class _Ctx:
    """What a kernel's reference needs besides its descriptor."""

    def __init__(self, dram, d, args, config: AccelConfig):
        self.dram, self.d, self.args, self.config = dram, d, args, config
        self.lanes, self.width, self.bus = config.vec_lanes, config.xnor_width, config.dram_bytes_per_cycle
        self.rows, self.cols, self.bits = args["rows"], args["cols"], args["bits"]
        self.fn = VecFn(args["fn"])
        self.stream_out, self.second, self.ein, self.eout = io_fields(args["io"])

    def read(self, name: str) -> np.ndarray:
        v = self.d[name]
        _check_stream(v, self.lanes, self.ein, f"{self.fn.name}.{name}", self.bus)
        return read_view(self.dram, v, self.rows, self.cols)

    def consts(self, names: tuple[str, ...], word: str = "consts", extra: int = 0):
        return _consts(self.dram, self.fn, self.d[word], names, extra)

    def out(self, y: np.ndarray) -> None:
        """The tile kernels' outputs: the stream view and / or the packed planes."""
        if self.stream_out:
            _check_stream(self.d["out"], self.lanes, self.eout, f"{self.fn.name}.out", self.bus)
            write_view(self.dram, self.d["out"], y)
        if self.bits:
            p = self.d["pout"]
            _check_packed(p, self.config, f"{self.fn.name}.pout")
            if p.consts and self.fn not in RQ_KERNELS:
                raise VecError(f"{self.fn.name}.pout: a packed output of {self.fn.name} is not requantized "
                               f"(consts must be 0; LAYERNORM and SOFTMAX only)")
            z = y
            if p.consts:
                k, _ = _consts(self.dram, self.fn, p.consts, REQUANT_CONSTS)
                z = I.apply_requant(y, _requant_consts(k))
            lo, hi = (-1, 1) if p.pm1 else lay.code_range(self.bits, p.signed)
            z = np.clip(np.asarray(z, np.int64), lo, hi)  # packed codes saturate to their planes
            if p.pm1:
                z = np.where(z >= 0, 1, -1)
            write_packed(self.dram, p, z, self.bits, self.width, f"{self.fn.name}.pout")


def _add(c: _Ctx) -> None:
    k, _ = c.consts(ADD_CONSTS)
    c.out(I.apply_add(c.read("a"), c.read("b"), _add_consts(k)))


def _requant(c: _Ctx) -> None:
    k, _ = c.consts(REQUANT_CONSTS)
    c.out(I.apply_requant(c.read("src"), _requant_consts(k)))


LN_CONSTS = ("hidden", "in_bits", "d_shift", "eps", "norm_bits", "shift", "out_bits", "out_signed")


def _layernorm(c: _Ctx) -> None:
    x = c.read("a")
    if c.second:
        k, _ = c.consts(ADD_CONSTS, "add_consts")
        x = I.apply_add(x, c.read("b"), _add_consts(k))
    k, _ = c.consts(LN_CONSTS)
    h = k["hidden"]
    if h != c.cols:
        raise VecError(f"LAYERNORM: constants for hidden {h}, instruction has cols={c.cols}")
    _, tail = c.consts(LN_CONSTS, extra=2 * h)
    lc = I.LayerNormConsts(hidden=h, in_bits=k["in_bits"], d_shift=k["d_shift"], eps=k["eps"],
                           norm_bits=k["norm_bits"], mult=tuple(tail[:h].tolist()), bias=tuple(tail[h:].tolist()),
                           shift=k["shift"], out_bits=k["out_bits"], out_signed=bool(k["out_signed"]),
                           in_scale=1.0, out_scale=1.0)
    c.out(I.apply_layernorm(x, lc))


SM_CONSTS = ("out_bits", "in_shift", "t_in_max", "t_max", "ln2", "div_mult", "div_shift", "poly_b", "poly_c",
             "recip_num", "recip_shift")


def _softmax(c: _Ctx) -> None:
    k, _ = c.consts(SM_CONSTS)
    sc = I.SoftmaxConsts(**k, in_scale=1.0, out_scale=1.0)
    mask = None
    if c.second:
        _check_mask(c.d["mask"], "SOFTMAX.mask")
        mask = read_view(c.dram, c.d["mask"], 1, c.cols) != 0
        mask = np.broadcast_to(mask, (c.rows, c.cols))
    scores = np.clip(c.read("src"), -(1 << 31), (1 << 31) - 1)   # int32 codes (docs/NUMERICS.md)
    c.out(I.apply_softmax(scores, sc, mask=mask))


GELU_CONSTS = ("in_clamp", "in_shift", "erf_b", "erf_c", "mult", "shift", "out_bits", "out_signed")


def _gelu(c: _Ctx) -> None:
    k, _ = c.consts(GELU_CONSTS)
    gc = I.GeluConsts(**{**k, "out_signed": bool(k["out_signed"])}, in_scale=1.0, out_scale=1.0)
    c.out(I.apply_gelu(c.read("src"), gc))


def _check_scalar_view(v: View, what: str) -> None:
    """The scalar engine reads and writes whole elements: every element address a multiple of
    the element size."""
    if v.elem not in _DT:
        raise VecError(f"{what}: view element of {v.elem} bytes (want 1, 2, 4 or 8)")
    if any(x % v.elem for x in (v.base, v.s_rt, v.s_r, v.s_ct, v.s_c)):
        raise VecError(f"{what}: view base / strides not multiples of its {v.elem}-byte elements")


def _table_rows(dram: np.ndarray, t: tuple, idx: np.ndarray, cols: int) -> np.ndarray:
    kind, base, stride, nrows, elem, pairs = t
    if kind == 0 and elem in _DT and (base % elem or stride % elem):
        raise VecError("EMBED: dense table base / stride not multiples of its elements")
    if kind == 1 and pairs % 8:
        raise VecError("EMBED: binary table pairs not 8-byte aligned")
    if idx.size and (idx.min() < 0 or idx.max() >= nrows):
        raise VecError(f"EMBED: index outside the table's {nrows} rows")
    if kind == 0:
        v = View(base=base, elem=elem, signed=True, s_r=stride, s_c=elem)
        return np.concatenate([read_view(dram, v.shifted(r0=int(i)), 1, cols) for i in idx]) if idx.size \
            else np.zeros((0, cols), np.int64)
    if kind == 1:
        if base + nrows * stride > dram.size or pairs + 8 * nrows > dram.size:
            raise VecError("EMBED: binary table outside DRAM")
        signs = dram[base:base + nrows * stride].reshape(nrows, stride)[idx]
        bits = np.unpackbits(signs, axis=1, count=cols, bitorder="little").astype(bool)
        pv = dram[pairs:pairs + 8 * nrows].view("<i4").reshape(nrows, 2)[idx].astype(np.int64)
        return np.where(bits, pv[:, :1], pv[:, 1:])
    raise VecError(f"EMBED: unknown table kind {kind}")


EMBED_TABLES = ("word", "position", "token_type")   # io bit t: table t is binary (its kind 1)


def embed_io(kinds, out_elem: int) -> int:
    """EMBED's io field: bit t set when table t (word, position, token_type) is binary; bits
    4-5 log2 of the stream output's element bytes."""
    return sum(1 << t for t, k in enumerate(kinds) if k == 1) | (out_elem.bit_length() - 1) << 4


def _embed(c: _Ctx) -> None:
    rows, cols, d = c.rows, c.cols, c.d
    for name in ("ids", "types"):
        _check_scalar_view(d[name], f"EMBED.{name}")
    _check_stream(d["out"], c.lanes, 1 << (c.args["io"] >> 4 & 3), "EMBED.out", c.bus)
    if cols > c.config.vec_row_elems:
        raise VecError(f"EMBED: cols={cols} beyond the scalar engine's row beats ({c.config.vec_row_elems} elements)")
    for t, name in enumerate(EMBED_TABLES):
        if (d[name][0] == 1) != bool(c.args["io"] >> t & 1):
            raise VecError(f"EMBED: table {name} is kind {d[name][0]}, the word's io bit {t} says "
                           f"{'binary' if c.args['io'] >> t & 1 else 'dense'}")
    ids = read_view(c.dram, d["ids"], rows, 1)[:, 0]
    tt = read_view(c.dram, d["types"], rows, 1)[:, 0]
    pos = np.arange(rows, dtype=np.int64)
    e = _table_rows(c.dram, d["word"], ids, cols) + _table_rows(c.dram, d["position"], pos, cols) \
        + _table_rows(c.dram, d["token_type"], tt, cols)
    write_view(c.dram, d["out"], e)


def _lut(c: _Ctx) -> None:
    d = c.d
    for name in ("src", "out"):
        _check_scalar_view(d[name], f"LUT.{name}")
    if d["table"] % 4:
        raise VecError("LUT: table not 4-byte aligned")
    x = read_view(c.dram, d["src"], c.rows, c.cols)
    off = d["offset"] - (1 << 32) if d["offset"] >= 1 << 31 else d["offset"]
    i = x + off
    if i.size and (i.min() < 0 or i.max() >= d["size"]):
        raise VecError(f"LUT: index outside the {d['size']}-entry table")
    if d["table"] + 4 * d["size"] > c.dram.size:
        raise VecError("LUT: table outside DRAM")
    table = c.dram[d["table"]:d["table"] + 4 * d["size"]].view("<i4")
    write_view(c.dram, d["out"], table[i].astype(np.int64))


def _dot(c: _Ctx) -> None:
    d, n = c.d, c.args["aux"]
    for name in ("src", "weight", "out"):
        _check_scalar_view(d[name], f"DOT.{name}")
    if d["bias"] % 8:
        raise VecError("DOT: bias not 8-byte aligned")
    if c.cols > c.config.vec_row_elems or n > c.config.vec_row_elems:
        raise VecError(f"DOT: cols / outputs beyond the scalar engine's row buffer ({c.config.vec_row_elems})")
    x = read_view(c.dram, d["src"], c.rows, c.cols)
    w = read_view(c.dram, d["weight"], n, c.cols)
    if d["bias"] + 8 * n > c.dram.size:
        raise VecError("DOT: bias outside DRAM")
    b = c.dram[d["bias"]:d["bias"] + 8 * n].view("<i8").astype(np.int64)
    with np.errstate(over="ignore"):
        write_view(c.dram, d["out"], x @ w.T + b[None, :])


def _combine(c: _Ctx) -> None:
    d, n = c.d, c.args["aux"]
    _check_scalar_view(d["out"], "COMBINE.out")
    for i, v in enumerate(d["inputs"]):
        _check_scalar_view(v, f"COMBINE.inputs[{i}]")
    if d["weights"] % 8:
        raise VecError("COMBINE: weights not 8-byte aligned")
    if c.rows * c.cols > c.config.vec_row_elems:
        raise VecError(f"COMBINE: rows * cols beyond the scalar engine's row buffer ({c.config.vec_row_elems})")
    if d["weights"] + 8 * n > c.dram.size:
        raise VecError("COMBINE: weight block outside DRAM")
    wts = c.dram[d["weights"]:d["weights"] + 8 * n].view("<i8").astype(np.int64)
    acc = np.zeros((c.rows, c.cols), np.int64)
    with np.errstate(over="ignore"):
        for v, w in zip(d["inputs"], wts):
            acc += read_view(c.dram, v, c.rows, c.cols) * w
    write_view(c.dram, d["out"], acc)


VOTE_METHODS = {"samme": 0, "samme.r": 1}     # VOTE's `method` word
VOTE_KERNELS = (VecFn.VOTE, VecFn.VOTE_AVERAGE, VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN)
VOTE_EXACT = VOTE_KERNELS[1:]                  # the kernels with a row sequencer (alpha_q < 2^22, sum > 0)
VOTE_KERNEL_OF = {"samme": VecFn.VOTE, "samme.r": VecFn.VOTE, "average": VecFn.VOTE_AVERAGE,
                  "mean": VecFn.VOTE_MEAN, "median": VecFn.VOTE_MEDIAN}   # model/vote.py's method -> kernel
VOTE_LOGIT_FRAC = 16                            # the logit codes' grid 2^-16 (model/vote.py LOGIT_FRAC)
VOTE_ALPHA_LIMIT = 1 << 22                      # alpha_q < 2^22 (model/vote.py ALPHA_LIMIT)
VOTE_SOFTMAX = I.prepare_softmax(2.0 ** -VOTE_LOGIT_FRAC, out_bits=16)   # VOTE_AVERAGE's i-softmax: fixed
# The member's maximum code has t = 0, so e = poly_b^2 + poly_c (= q_l0) and sum >= q_l0; with
# recip_num < q_l0 2^32 the quotient has 32 bits and its top remainder recip_num >> 32 < sum: a
# restoring division starting from that remainder needs only the low 32 numerator bits.
assert VOTE_SOFTMAX.recip_num >> VOTE_AVG_DIV_STEPS < VOTE_SOFTMAX.poly_b ** 2 + VOTE_SOFTMAX.poly_c


def vote_consts_words(shifts, alphas, mults) -> bytes:
    """The vote kernels' constant block: per member its logit shift, alpha_q, then its per-class logit mults."""
    rows = [[int(s), int(a), *[int(x) for x in m]] for s, a, m in zip(shifts, alphas, mults)]
    return np.asarray(rows, np.int64).astype("<i8").tobytes()


def vote_method_word(method: str) -> dict:
    """The descriptor's method field of model/vote.py's `method` ({} for the kernels without one)."""
    return {"method": VOTE_METHODS[method]} if method in VOTE_METHODS else {}


def _median(s: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """The smallest s_m with 2 sum_{s_j <= s_m} A_j >= T, per row of s (rows, members): model/vote.py's
    stable-order median (the first in sorted order whose cumulative weight reaches T / 2 has the
    smallest such value: every smaller value's weight at or below it is a prefix before it)."""
    below = (s[:, None, :] <= s[:, :, None]) * alphas[None, None, :]      # [r, m, j] = A_j [s_j <= s_m]
    ok = 2 * below.sum(-1) >= alphas.sum()
    return np.where(ok, s, np.iinfo(np.int64).max).min(-1)


def vote_reference(acc: np.ndarray, shifts, alphas, mults, method: str | int) -> np.ndarray:
    """The vote kernels' arithmetic: accumulators (rows, members, labels) -> (rows, members + 1)
    int64, every member's prediction (STS-B: its score code) then the ensemble's (model/vote.py
    apply_vote). `method`: a model/vote.py method name or VOTE's method word."""
    if not isinstance(method, str):
        method = {v: k for k, v in VOTE_METHODS.items()}[int(method)]
    acc = np.asarray(acc, np.int64)
    A = np.asarray(alphas, np.int64)
    codes = np.stack([requantize(acc[:, m], np.asarray(mults[m], np.int64), 0, int(shifts[m]), 0, True)
                      for m in range(acc.shape[1])], 1).astype(np.int64)              # (rows, members, labels)
    if method in ("mean", "median"):
        s = codes[:, :, 0]
        T = A.sum()
        out = (2 * (s * A).sum(1) + T) // (2 * T) if method == "mean" else _median(s, A)
        return np.concatenate([s, out[:, None]], 1).astype(np.int64)
    preds = np.argmax(codes, axis=-1)                                                  # first maximum
    with np.errstate(over="ignore"):
        if method == "samme":
            onehot = preds[..., None] == np.arange(acc.shape[2])
            totals = (A[None, :, None] * onehot).sum(axis=1)
        elif method == "samme.r":
            totals = codes.sum(axis=1)
        else:                     # average
            totals = (A[None, :, None] * np.asarray(I.apply_softmax(codes, VOTE_SOFTMAX), np.int64)).sum(axis=1)
    return np.concatenate([preds, np.argmax(totals, axis=-1)[:, None]], 1).astype(np.int64)


def _vote(c: _Ctx) -> None:
    d, members, labels, name = c.d, c.args["aux"], c.cols, c.fn.name
    for view in ("src", "out"):
        _check_scalar_view(d[view], f"{name}.{view}")
    if c.fn == VecFn.VOTE:
        if labels > c.config.vec_row_elems:
            raise VecError(f"VOTE: cols={labels} labels beyond the scalar engine's row buffer ({c.config.vec_row_elems})")
        if d["method"] not in VOTE_METHODS.values():
            raise VecError(f"VOTE: method {d['method']} (0 samme, 1 samme.r)")
        method = {v: k for k, v in VOTE_METHODS.items()}[d["method"]]
    else:
        if (members + 1) * labels > c.config.vec_row_elems:
            raise VecError(f"{name}: (aux + 1) cols = {(members + 1) * labels} beyond the scalar engine's row "
                           f"buffer ({c.config.vec_row_elems})")
        method = {VecFn.VOTE_AVERAGE: "average", VecFn.VOTE_MEAN: "mean", VecFn.VOTE_MEDIAN: "median"}[c.fn]
    _, w = c.consts((), extra=members * (2 + labels))
    w = w.reshape(members, 2 + labels)
    if w.size and (w[:, 0].min() < 0 or w[:, 0].max() > 63):
        raise VecError(f"{name}: a logit shift outside 0..63")
    if c.fn in VOTE_EXACT and (w[:, 1].min() < 0 or w[:, 1].max() >= VOTE_ALPHA_LIMIT or w[:, 1].sum() == 0):
        raise VecError(f"{name}: alpha_q outside [0, 2^22) or all 0")
    acc = read_view(c.dram, d["src"], c.rows * members, labels).reshape(c.rows, members, labels)
    votes = vote_reference(acc, w[:, 0], w[:, 1], w[:, 2:], method)
    write_view(c.dram, d["out"], votes.reshape(-1, 1))


_TILE_OUT = (("out", "view"), ("pout", "packed"))
KERNELS: dict[VecFn, Kernel] = {k.fn: k for k in (
    Kernel(VecFn.EMBED, "scalar", (("ids", "view"), ("types", "view"), ("word", "table"), ("position", "table"),
                                   ("token_type", "table"), ("out", "view")), cost=Cost(3, 0), run=_embed),
    Kernel(VecFn.ADD, "tile", (("a", "view"), ("b", "view"), ("consts", "word")) + _TILE_OUT, ADD_CONSTS,
           Io.STREAM_OUT, packs=True, run=_add),
    Kernel(VecFn.REQUANT, "tile", (("src", "view"), ("consts", "word")) + _TILE_OUT, REQUANT_CONSTS,
           Io.STREAM_OUT, packs=True, run=_requant),
    Kernel(VecFn.LAYERNORM, "tile", (("a", "view"), ("b", "view"), ("add_consts", "word"), ("consts", "word"))
           + _TILE_OUT, LN_CONSTS, Io.STREAM_OUT | Io.SECOND_IN, packs=True,
           cost=Cost(3, ISQRT_CYCLES + DIV_CYCLES), run=_layernorm),
    Kernel(VecFn.SOFTMAX, "tile", (("src", "view"), ("mask", "view"), ("consts", "word")) + _TILE_OUT, SM_CONSTS,
           Io.STREAM_OUT | Io.SECOND_IN, packs=True, cost=Cost(3, DIV_CYCLES), run=_softmax),
    Kernel(VecFn.GELU, "tile", (("src", "view"), ("consts", "word")) + _TILE_OUT, GELU_CONSTS, Io.STREAM_OUT,
           packs=True, run=_gelu),
    Kernel(VecFn.LUT, "scalar", (("src", "view"), ("out", "view"), ("table", "word"), ("offset", "word"),
                                 ("size", "word")), run=_lut),
    Kernel(VecFn.DOT, "scalar", (("src", "view"), ("weight", "view"), ("bias", "word"), ("out", "view")),
           aux="output columns", cost=Cost(0, 0), run=_dot),
    Kernel(VecFn.COMBINE, "scalar", (("out", "view"), ("weights", "word"), ("inputs", "views")), aux="members",
           run=_combine),
    Kernel(VecFn.VOTE, "scalar", (("src", "view"), ("out", "view"), ("consts", "word"), ("method", "word")),
           aux="members", cost=Cost(3, 1), run=_vote),
    Kernel(VecFn.VOTE_AVERAGE, "scalar", (("src", "view"), ("out", "view"), ("consts", "word")),
           aux="members", cost=Cost(8, DIV_CYCLES), run=_vote),
    Kernel(VecFn.VOTE_MEAN, "scalar", (("src", "view"), ("out", "view"), ("consts", "word")),
           aux="members", cost=Cost(3, DIV_CYCLES), run=_vote),
    Kernel(VecFn.VOTE_MEDIAN, "scalar", (("src", "view"), ("out", "view"), ("consts", "word")),
           aux="members", cost=Cost(2, 2), run=_vote),
)}
CONST_FIELDS = {fn: k.consts for fn, k in KERNELS.items() if k.consts}


def run_vec(dram: np.ndarray, args: dict[str, int], config: AccelConfig) -> None:
    """Execute one VEC instruction (its operand dict) on the DRAM image `dram` (uint8, in place).

    The reference semantics every back end reproduces; the arithmetic is bebert/integer_ops.py's.
    Rows past `rows` of the last row tile are never written (stream or packed)."""
    why = check_vec(args)
    if why:
        raise VecError(why)
    fn = VecFn(args["fn"])
    d = decode_desc(dram, fn, args["desc"], args["aux"])
    try:
        if KERNELS[fn].fn in (VecFn.LAYERNORM, VecFn.SOFTMAX) and args["cols"] > config.vec_row_elems:
            raise VecError(f"{fn.name}: cols={args['cols']} exceed the lanes' row memories ({config.vec_row_elems})")
        KERNELS[fn].run(_Ctx(dram, d, args, config))
    except VecError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError, KeyError) as e:
        raise VecError(f"{fn.name}: malformed descriptor or constants ({e})") from None
