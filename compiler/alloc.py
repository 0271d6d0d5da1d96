"""Pass 5, DRAM allocation with liveness: every tensor gets its byte address.

Weights, parameters and constants (the image the program ships with), the inputs and the
outputs get their own regions for the whole run; intermediates (role scratch) share one arena:
a tensor is live from the node that first writes it to the last node that reads it, and a
dead tensor's bytes are reused by tensors first written by later nodes (first fit, adjacent
holes merged). A node's outputs never share bytes with its inputs. When the node order carries
estimated times (compiler/order.py), a tensor dies when its last reader is estimated to end,
not when that reader starts: reusing the bytes then never makes a node wait for another that
runs beside it. Every tensor starts on an
ALIGN-byte boundary (LOAD addresses are bus-aligned, the output path's stream runs aligned to
their size, vec_lanes * 4 bytes at most; VEC constants 8-byte aligned); the first ALIGN bytes
stay unused, so DRAM address 0 can mean "none" in a descriptor.

Each scratch tensor records in `reuses` the tensors whose bytes it takes over: the scheduler
orders every write of it after every access of those (the WAR / WAW hazards of the reuse, which
tokens cover across the four stages).
"""

from __future__ import annotations

from .errors import CompileError
from .ir import Graph

ALIGN = 256
DRAM_LIMIT = 1 << 32


def _up(x: int) -> int:
    return -(-x // ALIGN) * ALIGN


class Arena:
    """First-fit allocator over [base, inf) with a free list of (start, size) holes."""

    def __init__(self, base: int):
        self.top = base
        self.holes: list[tuple[int, int]] = []

    def alloc(self, size: int) -> int:
        size = _up(max(size, 1))
        for i, (s, n) in enumerate(self.holes):
            if n >= size:
                self.holes[i] = (s + size, n - size)
                if n == size:
                    del self.holes[i]
                return s
        at = self.top
        self.top += size
        return at

    def free(self, at: int, size: int) -> None:
        size = _up(max(size, 1))
        self.holes.append((at, size))
        self.holes.sort()
        merged: list[tuple[int, int]] = []
        for s, n in self.holes:
            if merged and merged[-1][0] + merged[-1][1] == s:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((s, n))
        if merged and merged[-1][0] + merged[-1][1] == self.top:  # give the tail back
            self.top = merged.pop()[0]
        self.holes = merged


class Occupants:
    """Which tensor last held each byte of the arena: an ordered list of (start, end, name)."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int, str]] = []

    def take(self, start: int, end: int, name: str) -> list[str]:
        """Give [start, end) to `name`; the names that held any of it before."""
        before, keep = [], []
        for s, e, n in self.spans:
            if e <= start or end <= s:
                keep.append((s, e, n))
                continue
            before.append(n)
            if s < start:
                keep.append((s, start, n))
            if end < e:
                keep.append((end, e, n))
        keep.append((start, end, name))
        keep.sort()
        self.spans = keep
        return sorted(set(before))


def tensor_bytes(t) -> int:
    if t.nbytes:
        return t.nbytes
    n = 1
    for d in t.shape:
        n *= d
    return n * t.elem


def alloc(g: Graph) -> Graph:
    g.require("bitplane", "alloc")
    top = ALIGN
    for role in ("weight", "param", "const", "input", "output"):
        for t in g.tensors.values():
            if t.role == role:
                t.nbytes = tensor_bytes(t)
                t.offset = top
                top = _up(top + t.nbytes)
    g.meta["static_bytes"] = top
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, n in enumerate(g.nodes):
        for name in list(n.ins.values()) + list(n.outs.values()):
            if g.t(name).role == "scratch":
                first.setdefault(name, i)
                last[name] = i
    arena = Arena(top)
    occ = Occupants()
    timed = all("t1" in n.attrs for n in g.nodes)
    done_at: dict[str, int] = {}   # tensor -> when its last access ends (estimated; else its node index)
    for i, n in enumerate(g.nodes):
        for name in list(n.ins.values()) + list(n.outs.values()):
            if name in last:
                done_at[name] = max(done_at.get(name, 0), n.attrs["t1"] if timed else i)
    dying = sorted((done_at[nm], nm) for nm in last)
    k = 0
    peak = top
    for i, n in enumerate(g.nodes):
        now = n.attrs["t0"] if timed else i
        while k < len(dying) and (dying[k][0] <= now if timed else dying[k][0] < now):
            t = g.t(dying[k][1])
            if t.offset < 0:
                raise CompileError(f"tensor '{t.name}' is read before any node writes it")
            arena.free(t.offset, t.nbytes)
            k += 1
        for name in n.outs.values():
            t = g.t(name)
            if t.role == "scratch" and t.offset < 0:
                t.nbytes = tensor_bytes(t)
                t.offset = arena.alloc(t.nbytes)
                t.reuses = occ.take(t.offset, t.offset + _up(t.nbytes), t.name)
                peak = max(peak, arena.top)
    unused = [t.name for t in g.tensors.values() if t.role == "scratch" and t.offset < 0]
    if unused:
        raise CompileError(f"tensor '{unused[0]}' is never written ({len(unused)} such)")
    if peak > DRAM_LIMIT:
        raise CompileError(f"DRAM image needs {peak} bytes; addresses are 32-bit (4 GiB)")
    g.meta["dram_bytes"] = peak
    g.meta["scratch_bytes"] = peak - top
    g.meta["scratch_bytes_without_reuse"] = sum(_up(g.t(n).nbytes) for n in first)
    g.stage = "alloc"
    return g
