"""One matrix product on the PE array (`GemmOp`) and how it is cut for a machine (`GemmPlan`).

A `GemmOp` is the machine-level description the bitplane pass builds for a linear layer or an
attention product: its ABUF operands (`ATensor`, entry (m-tile, plane, word)), its WBUF
operands (`WTensor`, `planes` plane tensors of entry (n-tile, word)), its PBUF parameters and,
for every output tile column block, an `NTile`: which operands it reads and where the output
path writes it (`dst`, the word or column, `pos`, `flush`). The n-tiles follow the output's
layout: a tile never straddles a packed word (POST always takes columns 0..cols-1 of the
snapshot and shifts them into one word), so heads narrower or wider than a word cut the tiles
at word and head boundaries, and the tiles of one word are consecutive.

A `GemmPlan` cuts the product for a configuration (docs/MACHINE_V3.md, "The compiler"):

- m-groups of `mb` m-tiles: one schedule node each; the node loads the group's activations
  once (A stationary in ABUF) and streams the weights block by block past them, so the
  weights move once per group. `mb` is the smallest group whose weight stream needs at most
  half the LOAD port (mb * bits >= 2 * pe_cols * W / (8 B)), bounded by half of ABUF;
  packed-transposed outputs (V^T) take whole token-words (W / pe_rows m-tiles);
- weight blocks of `nbw` n-tiles (at most half of WBUF: the next block loads while this one
  is used), parameter blocks of `nbp` entries (at most half of PBUF);
- k-chunks of `kc` words when one m-tile of activations or one n-tile of weights does not fit
  half its buffer (then every (tile, chunk) loads its own small blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bebert.config import AccelConfig
from bebert.isa import PostFmt

from .errors import CompileError

MAX_FIELD16 = (1 << 16) - 1  # GEMM stride / wstride fields


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ATensor:
    """An ABUF operand: entry (m, p, j) at ((m * planes) + p) * kwords + j."""

    name: str
    mtiles: int
    planes: int
    kwords: int


@dataclass(frozen=True)
class WTensor:
    """A WBUF operand: plane q, n-tile n, word j at entry q * ntiles * kwords + n * kwords + j."""

    name: str
    ntiles: int
    planes: int
    kwords: int


@dataclass(frozen=True)
class NTile:
    """One output column block of pe_cols (or fewer) columns and what it reads and writes."""

    n0: int      # first output column (logical)
    cols: int    # valid columns
    a: int       # index into GemmOp.a_tensors
    w: int       # index into GemmOp.w_tensors
    wt: int      # n-tile of that W tensor
    p: int       # index into GemmOp.p_tensors
    pe: int      # PBUF entry of that parameter tensor
    dst: int     # index into GemmOp.dsts
    col: int     # stream: column in dst; packed: word of dst; transposed: first row (dim) of dst
    word: int    # packed: the word this tile belongs to (tiles of a word are consecutive); else own index
    pos: int = 0          # packed: bit of the tile's first element in its word
    last: bool = True     # packed: the last tile of its word (POST flush)


def elem_bytes(bits: int) -> int:
    """Stream element bytes holding codes of `bits` bits (0: int32): `OutFmt.elem` is its log2."""
    return 1 if 1 <= bits <= 8 else 2 if 9 <= bits <= 16 else 4


@dataclass(frozen=True)
class OutFmt:
    fmt: PostFmt
    obits: int
    osigned: bool
    shift: int
    elem: int = 0      # stream: log2 of the element bytes
    pm1: bool = False


@dataclass(frozen=True)
class GemmOp:
    """A tiled product: rows `mtiles` x pe_rows (valid `M`), the n-tiles `tiles`, K in `segs`."""

    name: str
    M: int
    mtiles: int
    bits: int
    signed: bool
    wbits: int
    wsigned: bool
    mode: int                                   # 0 XNOR, 1 AND
    segs: tuple[tuple[int, int, int], ...]      # (first A word, first W word, words) per K segment
    a_tensors: tuple[ATensor, ...]
    w_tensors: tuple[WTensor, ...]
    p_tensors: tuple[str, ...]
    tiles: tuple[NTile, ...]
    out: OutFmt
    dsts: tuple[str, ...]
    # a const ABUF tensor of one m-tile's row-words (the A tensor's kwords): plane 0 of every m-tile,
    # the single A tensor holding plane 1 (Bi-Attention's Q K^T: the constant all-ones plane of the
    # two's complement of -q, docs/NUMERICS.md "BiBERT"); None: the A tensors hold every plane
    ones: str | None = None

    @property
    def kwords(self) -> int:
        return sum(n for _, _, n in self.segs)

    def rows_valid(self, m: int, R: int) -> int:
        """POST rows of m-tile m: the valid rows, at least 1 (a tile of padding tokens)."""
        return max(1, min(R, self.M - m * R))


@dataclass(frozen=True)
class GemmPlan:
    mb: int                            # m-tiles per node
    kc: int                            # words per GEMM (k-chunk); >= every segment when not chunked
    chunked: bool
    nbw: int                           # W n-tiles per WBUF block (not chunked)
    nbp: int                           # PBUF entries per block
    blocks: tuple[tuple[int, ...], ...]  # tile indices iterated together over the m-group

    def groups(self, op: GemmOp) -> list[tuple[int, ...]]:
        return [tuple(range(m, min(m + self.mb, op.mtiles))) for m in range(0, op.mtiles, self.mb)]


def plan_gemm(op: GemmOp, config: AccelConfig, what: str) -> GemmPlan:
    """The cut of `op` on `config` (module doc); CompileError (one line) if it cannot run."""
    R, C, W, B = config.pe_rows, config.pe_cols, config.xnor_width, config.dram_bytes_per_cycle
    EA, EW, EP = config.abuf_entries, config.wbuf_entries, config.pbuf_entries
    P, Q = op.bits, op.wbits
    if P > EA:
        raise CompileError(f"activation tile of '{what}' needs {P} ABUF entries per k-word ({P} bit-planes) "
                           f"but config '{config.name}' holds {EA}")
    if Q > EW:
        raise CompileError(f"weight tile of '{what}' needs {Q} WBUF entries per k-word ({Q} bit-planes) "
                           f"but config '{config.name}' holds {EW}")
    KA = max(a.kwords for a in op.a_tensors)
    KWt = max(w.kwords for w in op.w_tensors)
    nA = len(op.a_tensors)
    a_half, w_half, p_half = max(EA // 2, 1), max(EW // 2, 1), max(EP // 2, 1)
    word_tiles = max(_word_sizes(op))
    per_tile_params = any(t.pe for t in op.tiles)
    nbw = w_half // (Q * KWt)
    if per_tile_params:
        nbw = min(nbw, p_half)
    nbw = min(nbw, MAX_FIELD16 // KWt)
    chunked = nA * P * KA > a_half or nbw < word_tiles
    if op.out.fmt == PostFmt.TRANSPOSED and nA * P * KA * max(1, W // R) > EA:
        chunked = True   # a token-word of m-tiles does not fit: every (tile, k-chunk) loads its own blocks
    if chunked:
        kc = min(max(1, (a_half if P <= a_half else EA) // P), max(1, (w_half if Q <= w_half else EW) // Q))
        mb, nbw = 1, 1
    else:
        kc = max(n for _, _, n in op.segs)
        need = math.ceil(2 * C * W / (8 * B * P))  # weight stream at most half the LOAD port
        mb = max(1, min(op.mtiles, need, a_half // (nA * P * KA)))
    if op.out.fmt == PostFmt.TRANSPOSED:   # the m-tiles of one token-word go together (one packed word)
        word = max(1, W // R)
        mb = max(word, mb // word * word)
    stride = kc if chunked else KA
    if stride > MAX_FIELD16:
        raise CompileError(f"activations of '{what}' need a GEMM plane stride of {stride} ABUF entries "
                           f"(K = {op.kwords * W}) but the field holds at most {MAX_FIELD16}")
    return GemmPlan(mb=mb, kc=kc, chunked=chunked, nbw=nbw, nbp=p_half, blocks=_blocks(op, nbw))


def _word_sizes(op: GemmOp) -> list[int]:
    sizes: list[int] = []
    for i, t in enumerate(op.tiles):
        if i and op.tiles[i - 1].word == t.word:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def _blocks(op: GemmOp, nbw: int) -> tuple[tuple[int, ...], ...]:
    """Consecutive tiles in groups of whole packed words, at most `nbw` tiles (one word at least)."""
    out: list[list[int]] = []
    cur: list[int] = []
    words: list[list[int]] = []
    for i, t in enumerate(op.tiles):
        if words and op.tiles[words[-1][-1]].word == t.word:
            words[-1].append(i)
        else:
            words.append([i])
    for w in words:
        if cur and len(cur) + len(w) > nbw:
            out.append(cur)
            cur = []
        cur = cur + w
    if cur:
        out.append(cur)
    return tuple(tuple(b) for b in out)
