"""Tiling decisions for one GEMM: tile counts, k-chunks, and how each buffer is used.

The PE array computes one output tile of pe_rows x pe_cols at a time; K is reduced in
words of xnor_width bits. Each operand buffer is used in one of three ways:

- ``resident``  the whole tensor fits: one slot per m-tile (n-tile), each loaded once,
                tile by tile (so the first GEMM waits only for the first tiles), never
                overwritten;
- ``tile``      one m-tile (activations, all planes and k-words) or one n-tile (weights)
                fits in a slot; blocks are reloaded only when the tile changes;
- ``chunk``     K is split into chunks of `kc` words accumulated across GEMMs (init only
                on the first), one block per (tile, chunk).

Non-resident buffers are split into two slots (halves) used alternately, so that the
LOAD of the next block overlaps the GEMMs on the current one (one slot only when a
single k-word of all activation planes does not fit in half of ABUF).
"""

from __future__ import annotations

from dataclasses import dataclass

from bebert.config import AccelConfig

from .errors import CompileError

MAX_FIELD16 = (1 << 16) - 1  # GEMM k and stride are 16-bit fields


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class BufPlan:
    """How one on-chip buffer holds its operand."""

    mode: str  # "resident" | "tile" | "chunk"
    slots: int  # 1 or 2 (resident: one per tile)
    slot_entries: int

    def base(self, slot: int) -> int:
        return slot * self.slot_entries


@dataclass(frozen=True)
class Tiling:
    """The shape of the problem on the array and the use of each buffer."""

    M: int
    K: int
    N: int
    planes: int  # activation bit-planes per GEMM
    rows: int  # pe_rows
    cols: int  # pe_cols
    width: int  # xnor_width
    kc: int  # k-words per GEMM
    a: BufPlan
    w: BufPlan
    p: BufPlan
    o_slots: int
    wpasses: int = 1  # WBUF operands per output tile (AND mode: one per bit-plane of the right operand)

    @property
    def mtiles(self) -> int:
        return ceil_div(self.M, self.rows)

    @property
    def ntiles(self) -> int:
        return ceil_div(self.N, self.cols)

    @property
    def kwords(self) -> int:
        return ceil_div(self.K, self.width)

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """[(first k-word, k-words)] of each GEMM over K."""
        return [(j, min(self.kc, self.kwords - j)) for j in range(0, self.kwords, self.kc)]

    @property
    def a_chunk(self) -> int:
        """Words per k-chunk in the activations' DRAM / ABUF layout."""
        return self.kc if self.a.mode == "chunk" else self.kwords


def plan_tiling(M: int, K: int, N: int, planes: int, config: AccelConfig, name: str,
                wpasses: int = 1) -> Tiling:
    """Choose the tiling of an (M, K) x (K, N) binary GEMM with `planes` activation planes
    (and `wpasses` WBUF operands per tile: the bit-planes of an AND-mode right operand)."""
    R, C, W = config.pe_rows, config.pe_cols, config.xnor_width
    MT, NT, KW = ceil_div(M, R), ceil_div(N, C), ceil_div(K, W)
    EA, EW, EP, EO = config.abuf_entries, config.wbuf_entries, config.pbuf_entries, config.obuf_entries

    kc = min(KW, MAX_FIELD16)
    if MT * planes * KW <= EA:
        a = BufPlan("resident", MT, planes * KW)
    else:
        if planes > EA:
            raise CompileError(f"activation tile of layer '{name}' needs {planes} ABUF entries per "
                               f"k-word ({planes} bit-planes) but config '{config.name}' holds {EA}")
        slots = 2 if planes <= EA // 2 else 1
        slot = EA // slots
        if planes * KW <= slot:
            a = BufPlan("tile", slots, slot)
        else:
            a = BufPlan("chunk", slots, slot)
            kc = min(kc, slot // planes)
    if NT * KW * wpasses <= EW:
        w = BufPlan("resident", NT * wpasses, KW)
    elif KW <= EW // 2:
        w = BufPlan("tile", 2, EW // 2)
    else:
        w = BufPlan("chunk", 2, EW // 2)
        kc = min(kc, EW // 2)
    p = BufPlan("resident", 1, EP) if NT <= EP else BufPlan("tile", 2, EP // 2)
    o_slots = 2 if EO >= 2 * R else 1
    t = Tiling(M=M, K=K, N=N, planes=planes, rows=R, cols=C, width=W, kc=kc, a=a, w=w, p=p,
               o_slots=o_slots, wpasses=wpasses)
    stride = max(n for _, n in t.chunks) if a.mode == "chunk" else KW
    if stride > MAX_FIELD16:
        raise CompileError(f"activations of layer '{name}' need a GEMM plane stride of {stride} "
                           f"ABUF entries (K = {K}) but the field holds at most {MAX_FIELD16}")
    return t
