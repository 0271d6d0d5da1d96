"""DRAM layouts of the machine's tensors (ISA v3): pack to bytes and back, and their addresses.

One definition for everybody: the compiler packs constants and inputs with these functions,
the golden executor and the output path / vector unit write the same bytes, the host unpacks
results with them. A layout is a small JSON-able dict (`Tensor.layout`), so a program directory
can be unpacked without the compiler that wrote it. Every layout is little-endian; a bit string
of n bits is n / 8 bytes, bit i in byte i // 8 at bit i % 8.

- ``stream``  e-byte integer elements for the vector unit (docs/ARCHITECTURE.md, "Layouts"):
  row tiles of T rows, column-major inside a tile, tiles `pitch` bytes apart:
  ``addr(r, c) = (r // T) * pitch + c * T * e + (r % T) * e``. T = 1 is row-major.
- ``abuf``    activation bit-planes: entries of `rows` row-words (row r at bits [rW, (r+1)W)),
  entry order (m-tile, plane, word). Codes are `bits`-bit two's complement (signed) or
  unsigned; with ``pm1`` the +-1 codes are the one plane (x + 1) / 2.
- ``wbuf``    weight signs (bit 1 = +1): entries of `cols` row-words (one per output column),
  entry order (n-tile, word).
- ``wplanes`` an AND-mode WBUF operand: `bits` planes of an integer tensor, each plane a
  ``wbuf``-shaped tensor of 0/1 bits, planes `plane_bytes` apart.
- ``pbuf``    post-processing parameters: entries of (int32 mult, int32 bias) per column,
  one entry per n-tile.
- ``rows``    row-major integer codes (program inputs, classifier accumulators).

**Partial words.** A word of the K axis that holds n < W elements (the last word when K is not
a multiple of W) holds them in bits [W - n, W) and zeros below: element jW + i at bit
W - n + i. The packers of the output path and of the vector unit shift elements in at the top
of a cleared word, so this is what they produce. Padding bits are 0 and add nothing in XNOR or
AND mode; padding rows (past M or N) hold zeros here and anything on the machine.
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


def word_offset(K: int, width: int, j: int) -> int:
    """Bit position of the first element of word j of a K axis (0 except in a partial last word)."""
    n = min(width, K - j * width)
    return width - n


def _to_words(x: np.ndarray, K: int, width: int) -> np.ndarray:
    """(..., K) -> (..., kwords * width) with the partial last word's elements at its top."""
    kw = _ceil(K, width)
    out = np.zeros(x.shape[:-1] + (kw * width,), x.dtype)
    full = (K // width) * width
    out[..., :full] = x[..., :full]
    if full < K:
        out[..., kw * width - (K - full):] = x[..., full:]
    return out


def _from_words(u: np.ndarray, K: int, width: int) -> np.ndarray:
    full = (K // width) * width
    kw = _ceil(K, width)
    if full == K:
        return u[..., :K]
    return np.concatenate([u[..., :full], u[..., kw * width - (K - full):]], axis=-1)


# -- activations (ABUF) ---------------------------------------------------------------------
def act_layout(M: int, K: int, rows: int, width: int, bits: int, signed: bool, pm1: bool = False) -> dict[str, Any]:
    return {"kind": "abuf", "M": M, "K": K, "rows": rows, "width": width, "bits": bits, "signed": bool(signed),
            "pm1": bool(pm1), "mtiles": _ceil(M, rows), "kwords": _ceil(K, width)}


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def planes_of(x: np.ndarray, bits: int, signed: bool, pm1: bool = False) -> np.ndarray:
    """Integer codes -> (bits, ...) 0/1 planes (two's complement; pm1: the plane (x + 1) / 2)."""
    x = np.asarray(x, np.int64)
    if pm1:
        if not np.isin(x, (-1, 1)).all():
            raise ValueError("+-1 activations hold a code other than -1 or +1")
        return ((x + 1) // 2)[None].astype(np.uint8)
    lo, hi = code_range(bits, signed)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"codes outside [{lo}, {hi}] of {bits}-bit {'signed' if signed else 'unsigned'} planes")
    u = x & ((1 << bits) - 1)
    return ((u[None] >> np.arange(bits).reshape((-1,) + (1,) * x.ndim)) & 1).astype(np.uint8)


def pack_activations(x: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Integer codes (M, K) -> ABUF entries (mtiles * bits * kwords, entry bytes) uint8."""
    L = layout
    R, W, P, MT, KW = L["rows"], L["width"], L["bits"], L["mtiles"], L["kwords"]
    x = np.asarray(x, np.int64)
    if x.shape != (L["M"], L["K"]):
        raise ValueError(f"activations of shape {x.shape}, layout expects {(L['M'], L['K'])}")
    planes = planes_of(x, P, L["signed"], L["pm1"])  # (P, M, K)
    u = np.zeros((P, MT * R, KW * W), np.uint8)
    u[:, :L["M"]] = _to_words(planes, L["K"], W)
    entries = u.reshape(P, MT, R, KW, W).transpose(1, 0, 3, 2, 4).reshape(MT * P * KW, R * W)
    return _pack_bits(entries)


def unpack_activations(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """ABUF entries -> integer codes (M, K) int64 (inverse of `pack_activations`)."""
    L = layout
    R, W, P, MT, KW = L["rows"], L["width"], L["bits"], L["mtiles"], L["kwords"]
    bits = _unpack_bits(np.asarray(data, np.uint8).reshape(MT * P * KW, R * W // 8)).astype(np.int64)
    planes = bits.reshape(MT, P, KW, R, W).transpose(1, 0, 3, 2, 4).reshape(P, MT * R, KW * W)
    planes = _from_words(planes[:, :L["M"]], L["K"], W)
    if L["pm1"]:
        return 2 * planes[0] - 1
    weight = 1 << np.arange(P, dtype=np.int64)
    if L["signed"]:
        weight[-1] = -weight[-1]
    return np.einsum("pmk,p->mk", planes, weight)


# -- weights (WBUF) ---------------------------------------------------------------------------
def weight_layout(N: int, K: int, cols: int, width: int) -> dict[str, Any]:
    return {"kind": "wbuf", "N": N, "K": K, "cols": cols, "width": width,
            "ntiles": _ceil(N, cols), "kwords": _ceil(K, width)}


def pack_weights(sign: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Weight signs (N, K) bool (True = +1), or one 0/1 plane -> WBUF entries (ntiles * kwords, entry bytes)."""
    L = layout
    C, W, NT, KW = L["cols"], L["width"], L["ntiles"], L["kwords"]
    s = np.zeros((NT * C, KW * W), np.uint8)
    s[:L["N"]] = _to_words(np.asarray(sign).astype(np.uint8), L["K"], W)
    s = s.reshape(NT, C, KW, W).transpose(0, 2, 1, 3).reshape(NT * KW, C * W)
    return _pack_bits(s)


def unpack_weights(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    L = layout
    C, W, NT, KW = L["cols"], L["width"], L["ntiles"], L["kwords"]
    s = _unpack_bits(np.asarray(data, np.uint8).reshape(NT * KW, C * W // 8))
    s = s.reshape(NT, KW, C, W).transpose(0, 2, 1, 3).reshape(NT * C, KW * W)
    return _from_words(s[:L["N"]], L["K"], W).astype(bool)


def wplanes_layout(N: int, K: int, cols: int, width: int, bits: int, signed: bool) -> dict[str, Any]:
    """An AND-mode WBUF operand: the `bits` planes of an (N, K) integer tensor, each a wbuf tensor."""
    w = weight_layout(N, K, cols, width)
    return {**w, "kind": "wplanes", "bits": bits, "signed": bool(signed)}


def plane_bytes(layout: dict[str, Any], entry_bytes: int) -> int:
    return layout["ntiles"] * layout["kwords"] * entry_bytes


def pack_weight_planes(x: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    planes = planes_of(np.asarray(x, np.int64), layout["bits"], layout["signed"])
    return np.concatenate([pack_weights(p, layout).reshape(-1) for p in planes])


def unpack_weight_planes(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    P = layout["bits"]
    parts = np.asarray(data, np.uint8).reshape(P, -1)
    weight = 1 << np.arange(P, dtype=np.int64)
    if layout["signed"]:
        weight[-1] = -weight[-1]
    return sum(unpack_weights(parts[p], layout).astype(np.int64) * weight[p] for p in range(P))


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


# -- the stream layout (vector unit tensors) --------------------------------------------------
_DT = {1: "i1", 2: "i2", 4: "i4", 8: "i8"}


def stream_layout(M: int, N: int, lanes: int, elem: int, signed: bool = True, row_align: int = 1,
                  pitch: int | None = None) -> dict[str, Any]:
    """M x N elements of `elem` bytes in row tiles of `lanes` rows; rows padded to a multiple of
    lcm(lanes, row_align) (pass pe_rows: the output path writes whole array tiles)."""
    if elem not in (1, 2, 4, 8):
        raise ValueError(f"stream elements of {elem} bytes (want 1, 2, 4 or 8)")
    step = int(np.lcm(lanes, row_align))
    mpad = _ceil(M, step) * step
    tile = N * lanes * elem
    pitch = tile if pitch is None else pitch
    if pitch < tile:
        raise ValueError(f"stream pitch {pitch} is smaller than one row tile ({tile} bytes)")
    return {"kind": "stream", "M": M, "N": N, "lanes": lanes, "elem": elem, "signed": bool(signed),
            "rows_padded": mpad, "pitch": pitch}


def stream_addr(layout: dict[str, Any], r, c):
    """Byte offset of element (r, c) (numpy broadcasting)."""
    T, e = layout["lanes"], layout["elem"]
    return (np.asarray(r) // T) * layout["pitch"] + np.asarray(c) * T * e + (np.asarray(r) % T) * e


def stream_nbytes(layout: dict[str, Any]) -> int:
    return layout["rows_padded"] // layout["lanes"] * layout["pitch"]


def _stream_dtype(layout: dict[str, Any]) -> np.dtype:
    return np.dtype("<" + (_DT[layout["elem"]] if layout["signed"] else _DT[layout["elem"]].replace("i", "u")))


def pack_stream(x: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    """Integer codes (M, N) -> the tensor's bytes (padding rows and pitch gaps zero)."""
    L = layout
    T, e, N = L["lanes"], L["elem"], L["N"]
    x = np.asarray(x, np.int64)
    if x.shape != (L["M"], N):
        raise ValueError(f"stream tensor of shape {x.shape}, layout expects {(L['M'], N)}")
    full = np.zeros((L["rows_padded"], N), np.int64)
    full[:L["M"]] = x
    tiles = full.reshape(-1, T, N).transpose(0, 2, 1)  # (tiles, N, T): column-major inside a tile
    body = np.ascontiguousarray(tiles.astype(_stream_dtype(L))).view(np.uint8).reshape(-1, N * T * e)
    out = np.zeros((body.shape[0], L["pitch"]), np.uint8)
    out[:, :N * T * e] = body
    return out.reshape(-1)


def unpack_stream(data: np.ndarray, layout: dict[str, Any]) -> np.ndarray:
    L = layout
    T, e, N = L["lanes"], L["elem"], L["N"]
    d = np.ascontiguousarray(data, np.uint8).reshape(-1)[:stream_nbytes(L)].reshape(-1, L["pitch"])[:, :N * T * e]
    v = np.ascontiguousarray(d).view(_stream_dtype(L)).reshape(-1, N, T).transpose(0, 2, 1).reshape(-1, N)
    return v[:L["M"]].astype(np.int64)


# -- row-major codes (program inputs, classifier accumulators) --------------------------------
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


# -- packed row-words (what the output path and the vector unit write) -------------------------
def row_word_addr(r, p, j, *, group: int, gstride: int, pitch: int, wstep: int, width: int):
    """Byte offset of row-word (row r, plane p, word j) of a packed tensor (docs: "Packed layout")."""
    r = np.asarray(r)
    return (r // group) * gstride + (r % group) * (width // 8) + np.asarray(p) * pitch + np.asarray(j) * wstep


def abuf_geometry(layout: dict[str, Any], entry_bytes: int) -> dict[str, int]:
    """(group, gstride, pitch, wstep) of an ABUF tensor in `row_word_addr`'s terms."""
    KW, P = layout["kwords"], layout["bits"] if not layout["pm1"] else 1
    return {"group": layout["rows"], "gstride": P * KW * entry_bytes, "pitch": KW * entry_bytes,
            "wstep": entry_bytes, "width": layout["width"]}


def wbuf_geometry(layout: dict[str, Any], entry_bytes: int) -> dict[str, int]:
    """The same for a wbuf / wplanes tensor (rows = output columns; planes `plane_bytes` apart)."""
    KW = layout["kwords"]
    return {"group": layout["cols"], "gstride": KW * entry_bytes, "pitch": plane_bytes(layout, entry_bytes),
            "wstep": entry_bytes, "width": layout["width"]}


def nbytes(layout: dict[str, Any], entry_bytes: int = 0) -> int:
    """Size in bytes of a tensor with this layout (`entry_bytes`: its buffer's entry size)."""
    kind = layout["kind"]
    if kind == "abuf":
        return layout["mtiles"] * (1 if layout["pm1"] else layout["bits"]) * layout["kwords"] * entry_bytes
    if kind == "wbuf":
        return layout["ntiles"] * layout["kwords"] * entry_bytes
    if kind == "wplanes":
        return layout["bits"] * plane_bytes(layout, entry_bytes)
    if kind == "pbuf":
        return layout["ntiles"] * entry_bytes
    if kind == "stream":
        return stream_nbytes(layout)
    if kind == "rows":
        return layout["rows"] * layout["cols"] * layout["elem"]
    raise ValueError(f"unknown layout kind '{kind}'")


_UNPACK = {"rows": unpack_rows, "abuf": unpack_activations, "wbuf": unpack_weights, "pbuf": unpack_params,
           "wplanes": unpack_weight_planes, "stream": unpack_stream}


def unpack(data: np.ndarray, layout: dict[str, Any]):
    """Unpack the bytes of any tensor by its layout kind."""
    try:
        fn = _UNPACK[layout["kind"]]
    except KeyError:
        raise ValueError(f"unknown layout kind '{layout.get('kind')}'") from None
    return fn(data, layout)
