"""DRAM layouts of the tensors of a compiled layer: pack to buffer entries and back.

Every tensor is a run of whole buffer entries, each entry a little-endian bit string
(entry bit i is byte i // 8, bit i % 8), exactly as LOAD / STORE move it
(docs/ARCHITECTURE.md, "Buffers and their entry layouts"). A layout is a small
JSON-able dict kept in `Tensor.layout`, so a program directory can be unpacked
without the compiler that wrote it:

- ``abuf``  activation bit-planes. Entry = one bit-plane word for each of `rows` array
  rows (row r at bits [rW, (r+1)W), bit b = element k = jW + b). Entry order: m-tile,
  k-chunk (of `chunk` words, the last one shorter), plane, word. Codes are stored as
  `bits`-bit two's complement (signed) or unsigned; with ``pm1`` the +-1 activations
  are stored as the one unsigned plane b = (x + 1) / 2.
- ``wbuf``  weight signs. Entry = one sign word per array column (bit 1 = +1).
  Entry order: n-tile, word.
- ``pbuf``  post-processing parameters. Entry = (int32 mult, int32 bias) per column.
  One entry per n-tile.
- ``obuf``  outputs. Entry = one int32 per column; one output tile = `rows` entries.
  Tile order: m-tile major, n-tile minor.

Padding (rows past M, columns past N, k past K) is zero and is dropped on unpack.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """(..., nbits) 0/1 array -> (..., nbits / 8) bytes, little-endian bit order."""
    return np.packbits(bits.astype(np.uint8), axis=-1, bitorder="little")


def _unpack_bits(data: np.ndarray) -> np.ndarray:
    return np.unpackbits(data, axis=-1, bitorder="little")


def chunk_bounds(kwords: int, chunk: int) -> list[tuple[int, int]]:
    """[(first word, words)] of the k-chunks of `chunk` words (the last one shorter)."""
    return [(j, min(chunk, kwords - j)) for j in range(0, kwords, chunk)]


# -- activations (ABUF) ---------------------------------------------------------------------
def act_layout(M: int, K: int, rows: int, width: int, bits: int, signed: bool,
               chunk: int | None = None, pm1: bool = False) -> dict[str, Any]:
    kwords = _ceil(K, width)
    return {"kind": "abuf", "M": M, "K": K, "rows": rows, "width": width, "bits": bits,
            "signed": bool(signed), "pm1": bool(pm1), "mtiles": _ceil(M, rows),
            "kwords": kwords, "chunk": int(chunk or kwords)}


def pack_activations(x: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Integer codes (M, K) -> ABUF entries (mtiles * bits * kwords, entry bytes) uint8."""
    L = layout
    R, W, P, MT, KW = L["rows"], L["width"], L["bits"], L["mtiles"], L["kwords"]
    x = np.asarray(x, np.int64)
    if x.shape != (L["M"], L["K"]):
        raise ValueError(f"activations of shape {x.shape}, layout expects {(L['M'], L['K'])}")
    if L["pm1"]:
        if not np.isin(x, (-1, 1)).all():
            raise ValueError("+-1 activations hold a code other than -1 or +1")
        x = (x + 1) // 2
    lo, hi = (-(1 << (P - 1)), (1 << (P - 1)) - 1) if L["signed"] else (0, (1 << P) - 1)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"activation codes outside [{lo}, {hi}] of {P}-bit "
                         f"{'signed' if L['signed'] else 'unsigned'} planes")
    u = np.zeros((MT * R, KW * W), np.int64)
    u[:L["M"], :L["K"]] = x & ((1 << P) - 1)
    planes = (u[None] >> np.arange(P)[:, None, None]) & 1  # (P, MT*R, KW*W)
    planes = planes.reshape(P, MT, R, KW, W).transpose(1, 0, 3, 2, 4)  # (MT, P, KW, R, W)
    parts = [planes[:, :, j:j + n].reshape(MT, P * n, R * W) for j, n in chunk_bounds(KW, L["chunk"])]
    entries = np.concatenate(parts, axis=1).reshape(MT * P * KW, R * W)
    return _pack_bits(entries)


def unpack_activations(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """ABUF entries -> integer codes (M, K) int64 (inverse of `pack_activations`)."""
    L = layout
    R, W, P, MT, KW = L["rows"], L["width"], L["bits"], L["mtiles"], L["kwords"]
    bits = _unpack_bits(np.asarray(data, np.uint8).reshape(MT, P * KW, R * W // 8)).astype(np.int64)
    parts, pos = [], 0
    for _, n in chunk_bounds(KW, L["chunk"]):
        parts.append(bits[:, pos:pos + P * n].reshape(MT, P, n, R, W))
        pos += P * n
    planes = np.concatenate(parts, axis=2)  # (MT, P, KW, R, W)
    weight = 1 << np.arange(P, dtype=np.int64)
    if L["signed"]:
        weight[-1] = -weight[-1]
    u = np.einsum("mpjrw,p->mrjw", planes, weight).reshape(MT * R, KW * W)
    u = u[:L["M"], :L["K"]]
    return 2 * u - 1 if L["pm1"] else u


# -- weights (WBUF) ---------------------------------------------------------------------------
def weight_layout(N: int, K: int, cols: int, width: int) -> dict[str, Any]:
    return {"kind": "wbuf", "N": N, "K": K, "cols": cols, "width": width,
            "ntiles": _ceil(N, cols), "kwords": _ceil(K, width)}


def pack_weights(sign: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Weight signs (N, K) bool (True = +1) -> WBUF entries (ntiles * kwords, entry bytes)."""
    L = layout
    C, W, NT, KW = L["cols"], L["width"], L["ntiles"], L["kwords"]
    s = np.zeros((NT * C, KW * W), np.uint8)
    s[:L["N"], :L["K"]] = np.asarray(sign, bool)
    s = s.reshape(NT, C, KW, W).transpose(0, 2, 1, 3).reshape(NT * KW, C * W)
    return _pack_bits(s)


def unpack_weights(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    L = layout
    C, W, NT, KW = L["cols"], L["width"], L["ntiles"], L["kwords"]
    s = _unpack_bits(np.asarray(data, np.uint8).reshape(NT * KW, C * W // 8))
    s = s.reshape(NT, KW, C, W).transpose(0, 2, 1, 3).reshape(NT * C, KW * W)
    return s[:L["N"], :L["K"]].astype(bool)


# -- post-processing parameters (PBUF) -------------------------------------------------------
def param_layout(N: int, cols: int) -> dict[str, Any]:
    return {"kind": "pbuf", "N": N, "cols": cols, "ntiles": _ceil(N, cols)}


def pack_params(mult: np.ndarray, bias: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Per-channel int32 (mult, bias) -> PBUF entries (ntiles, cols * 8) uint8."""
    L = layout
    C, NT = L["cols"], L["ntiles"]
    p = np.zeros((NT * C, 2), "<i4")
    p[:L["N"], 0] = np.asarray(mult, np.int64)
    p[:L["N"], 1] = np.asarray(bias, np.int64)
    return p.view(np.uint8).reshape(NT, C * 8)


def unpack_params(data: np.ndarray, layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    L = layout
    p = np.ascontiguousarray(data, np.uint8).reshape(-1).view("<i4").reshape(L["ntiles"] * L["cols"], 2)
    return p[:L["N"], 0].astype(np.int32), p[:L["N"], 1].astype(np.int32)


# -- outputs (OBUF) ---------------------------------------------------------------------------
def output_layout(M: int, N: int, rows: int, cols: int) -> dict[str, Any]:
    return {"kind": "obuf", "M": M, "N": N, "rows": rows, "cols": cols,
            "mtiles": _ceil(M, rows), "ntiles": _ceil(N, cols)}


def pack_outputs(y: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """int32 (M, N) -> OBUF-entry tiles (mtiles * ntiles * rows, cols * 4) uint8."""
    L = layout
    R, C, MT, NT = L["rows"], L["cols"], L["mtiles"], L["ntiles"]
    t = np.zeros((MT * R, NT * C), "<i4")
    t[:L["M"], :L["N"]] = np.asarray(y, np.int64)
    t = t.reshape(MT, R, NT, C).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(t).view(np.uint8).reshape(MT * NT * R, C * 4)


def unpack_outputs(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    L = layout
    R, C, MT, NT = L["rows"], L["cols"], L["mtiles"], L["ntiles"]
    t = np.ascontiguousarray(data, np.uint8).reshape(-1).view("<i4").reshape(MT, NT, R, C)
    t = t.transpose(0, 2, 1, 3).reshape(MT * R, NT * C)
    return t[:L["M"], :L["N"]].astype(np.int32)


def nbytes(layout: dict[str, Any], entry_bytes: int) -> int:
    """Size in bytes of a tensor with this layout, given its buffer's entry size."""
    kind = layout["kind"]
    if kind == "abuf":
        n = layout["mtiles"] * layout["bits"] * layout["kwords"]
    elif kind == "wbuf":
        n = layout["ntiles"] * layout["kwords"]
    elif kind == "pbuf":
        n = layout["ntiles"]
    elif kind == "obuf":
        n = layout["mtiles"] * layout["ntiles"] * layout["rows"]
    else:
        raise ValueError(f"unknown layout kind '{kind}'")
    return n * entry_bytes


# -- row-major codes (VEC tensors: model inputs, classifier accumulators) -----------------------
def rows_layout(rows: int, cols: int, elem: int = 4, signed: bool = True) -> dict[str, Any]:
    return {"kind": "rows", "rows": rows, "cols": cols, "elem": elem, "signed": bool(signed)}


def _rows_dtype(layout: dict[str, Any]) -> str:
    return f"<{'i' if layout['signed'] else 'u'}{layout['elem']}"


def pack_rows(x: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Integer codes (rows, cols) -> little-endian bytes, row-major."""
    x = np.asarray(x).reshape(layout["rows"], layout["cols"])
    return np.ascontiguousarray(x.astype(_rows_dtype(layout))).view(np.uint8).reshape(-1)


def unpack_rows(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    v = np.ascontiguousarray(data, np.uint8).reshape(-1).view(_rows_dtype(layout))
    return v[:layout["rows"] * layout["cols"]].reshape(layout["rows"], layout["cols"]).astype(np.int64)


_UNPACK = {"rows": unpack_rows, "abuf": unpack_activations, "wbuf": unpack_weights, "pbuf": unpack_params,
           "obuf": unpack_outputs}


def unpack(data: np.ndarray, layout: dict[str, Any]):
    """Unpack the bytes of any tensor by its layout kind."""
    try:
        fn = _UNPACK[layout["kind"]]
    except KeyError:
        raise ValueError(f"unknown layout kind '{layout.get('kind')}'") from None
    return fn(data, layout)
