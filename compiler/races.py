"""Races: does a program's concurrent schedule keep program order on every shared resource?

The golden executor runs a program in program order; the machine runs its four stages at once,
ordered only by queues and tokens. The two compute the same bytes exactly when every pair of
accesses to one resource, at least one of them a write, happens in time in program order.
`check_races(program, trace)` replays a schedule (the simulator's trace,
`simulate(program, trace=True).trace`) and checks that, resource by resource:

- DRAM bytes: LOAD reads (its rows), POST writes (stream elements, flushed row-words; they are
  visible when the POST ends if it waited for its write responses, i.e. pushed to LOAD or
  VECTOR, else L cycles later), VEC reads and writes (the views of its descriptor; constant
  blocks and tables are never written and are left out);
- ABUF / WBUF / PBUF entries: LOAD writes, GEMM reads (every plane and word), POST reads;
- the accumulator snapshot: written by a `snap` GEMM at its end, read by POST;

a read starts no earlier than the write before it in program order is visible, and a write
starts no earlier than every earlier access has ended. An instruction accesses its resources
anywhere in [start, end) (conservative). This is a test of the compiler's tokens on the
concurrent machine; the golden executor cannot see a missing one.
"""

from __future__ import annotations

import numpy as np

from bebert import layout as lay
from bebert.isa import BUF_NAMES, Buf, Op, PostFmt, Stage
from bebert.program import Program
from bebert.vector import KERNELS, VOTE_KERNELS, VecFn, decode_desc, io_fields
from bebert.vector import _addresses as view_addresses


class RaceError(AssertionError):
    """Two accesses to one resource that the schedule runs out of program order."""


def _view_bytes(dram: np.ndarray, v, rows: int, cols: int) -> np.ndarray:
    a = view_addresses(dram, v, rows, cols).reshape(-1)
    return (a[:, None] + np.arange(v.elem)).reshape(-1)


def _packed_bytes(p, rows: int, cols: int, bits: int, width: int) -> np.ndarray:
    kw = -(-cols // width)
    planes = 1 if p.pm1 else bits
    r, pp, j = np.meshgrid(np.arange(rows), np.arange(planes), np.arange(kw), indexing="ij")
    a = p.base + lay.row_word_addr(r, pp, j, group=p.group, gstride=p.gstride, pitch=p.pitch, wstep=p.wstep,
                                   width=width)
    return (a.reshape(-1)[:, None] + np.arange(width // 8)).reshape(-1)


def vec_accesses(dram: np.ndarray, args: dict, config) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(DRAM bytes read, DRAM bytes written) of one VEC, from its descriptor (not its constants)."""
    fn = VecFn(args["fn"])
    k = KERNELS[fn]
    d = decode_desc(dram, fn, args["desc"], args["aux"])
    rows, cols, aux = args["rows"], args["cols"], args["aux"]
    reads, writes = [], []
    if fn == VecFn.EMBED:
        reads = [_view_bytes(dram, d[n], rows, 1) for n in ("ids", "types")]
        writes = [_view_bytes(dram, d["out"], rows, cols)]
    elif fn == VecFn.DOT:
        reads = [_view_bytes(dram, d["src"], rows, cols), _view_bytes(dram, d["weight"], aux, cols)]
        writes = [_view_bytes(dram, d["out"], rows, aux)]
    elif fn == VecFn.COMBINE:
        reads = [_view_bytes(dram, v, rows, cols) for v in d["inputs"]]
        writes = [_view_bytes(dram, d["out"], rows, cols)]
    elif fn in VOTE_KERNELS:
        reads = [_view_bytes(dram, d["src"], rows * aux, cols)]
        writes = [_view_bytes(dram, d["out"], rows * (aux + 1), 1)]
    elif k.engine == "scalar":   # LUT
        reads = [_view_bytes(dram, d["src"], rows, cols)]
        writes = [_view_bytes(dram, d["out"], rows, cols)]
    else:
        stream_out, second, _, _ = io_fields(args["io"])
        for name, kind in k.desc:
            if kind != "view" or name == "out":
                continue
            if name == "mask":
                if second:
                    reads.append(_view_bytes(dram, d[name], 1, cols))
            elif name != "b" or second:
                reads.append(_view_bytes(dram, d[name], rows, cols))
        if stream_out:
            writes.append(_view_bytes(dram, d["out"], rows, cols))
        if args["bits"]:
            writes.append(_packed_bytes(d["pout"], rows, cols, args["bits"], config.xnor_width))
    return reads, writes


def _post_bytes(ins, mode: dict, config) -> np.ndarray:
    R, C, W, T = config.pe_rows, config.pe_cols, config.xnor_width, config.vec_lanes
    a = ins.args
    if mode["fmt"] == PostFmt.STREAM:
        e, t = 1 << mode["elem"], min(T, R)
        r, c = np.meshgrid(np.arange(a["rows"]), np.arange(a["cols"]), indexing="ij")
        base = (a["dram"] + (r // t) * mode["pitch"] + c * T * e + (r % t) * e).reshape(-1)
        return (base[:, None] + np.arange(e)).reshape(-1)
    if not a["flush"]:
        return np.zeros(0, np.int64)
    words = R if mode["fmt"] == PostFmt.PACKED else C
    g = min(mode["group"], words)
    i = np.arange(words)
    offs = (i // g) * mode["gstride"] + (i % g) * (W // 8)
    planes = mode["obits"]
    base = (a["dram"] + np.arange(planes)[:, None] * mode["pitch"] + offs[None, :]).reshape(-1)
    return (base[:, None] + np.arange(W // 8)).reshape(-1)


class _Resource:
    """Per address: when the last write is visible, and when the last read ends (cycles)."""

    def __init__(self, name: str, size: int):
        self.name = name
        self.visible = np.full(size, -1, np.int64)
        self.read_end = np.full(size, -1, np.int64)
        self.writer = np.full(size, -1, np.int64)

    def read(self, addrs: np.ndarray, pc: int, start: int, end: int) -> None:
        if not addrs.size:
            return
        late = self.visible[addrs] > start
        if late.any():
            a = addrs[np.argmax(late)]
            raise RaceError(f"instruction {pc} reads {self.name}[{a}] at cycle {start} before the write of "
                            f"instruction {self.writer[a]} is visible (cycle {self.visible[a]})")
        np.maximum.at(self.read_end, addrs, end)

    def write(self, addrs: np.ndarray, pc: int, start: int, visible: int) -> None:
        if not addrs.size:
            return
        late = (self.visible[addrs] > start) | (self.read_end[addrs] > start)
        if late.any():
            a = addrs[np.argmax(late)]
            raise RaceError(f"instruction {pc} writes {self.name}[{a}] at cycle {start} before an earlier access "
                            f"has ended (write visible {self.visible[a]} by {self.writer[a]}, reads end "
                            f"{self.read_end[a]})")
        self.visible[addrs] = visible
        self.writer[addrs] = pc


def check_races(program: Program, trace) -> int:
    """Check every shared resource (module doc); the number of instructions checked, or RaceError."""
    cfg = program.config
    dram0 = np.asarray(program.dram, np.uint8)
    res = {"dram": _Resource("DRAM", dram0.size), "snap": _Resource("snapshot", 1)}
    for b in ("abuf", "wbuf", "pbuf"):
        res[b] = _Resource(b.upper(), cfg.entries(b))
    start, end = trace.start, trace.end
    L = cfg.dram_latency_cycles
    mode: dict = {}
    n = 0
    for pc, ins in enumerate(program.instrs):
        if ins.op == Op.HALT or pc >= len(start) or start[pc] < 0:
            break
        s, e = int(start[pc]), int(end[pc])
        a = ins.args
        if ins.op == Op.LOAD:
            buf = BUF_NAMES[Buf(a["buf"])]
            eb = cfg.entry_bytes(buf)
            res["dram"].read(np.arange(a["dram"], a["dram"] + a["n"] * eb), pc, s, e)
            res[buf].write(np.arange(a["addr"], a["addr"] + a["n"]), pc, s, e)
        elif ins.op == Op.GEMM:
            ai = (a["a"] + a["stride"] * np.arange(a["bits"])[:, None] + np.arange(a["k"])).reshape(-1)
            wi = (a["w"] + a["wstride"] * np.arange(a["wbits"])[:, None] + np.arange(a["k"])).reshape(-1)
            res["abuf"].read(ai, pc, s, e)
            res["wbuf"].read(wi, pc, s, e)
            if a["snap"]:
                res["snap"].write(np.zeros(1, np.int64), pc, s, e)
        elif ins.op == Op.POSTCFG:
            mode = dict(a)
        elif ins.op == Op.POST:
            res["snap"].read(np.zeros(1, np.int64), pc, s, e)
            res["pbuf"].read(np.array([a["p"]]), pc, s, e)
            waits = bool(ins.pushes & {Stage.LOAD, Stage.VECTOR})
            res["dram"].write(_post_bytes(ins, mode, cfg), pc, s, e if waits else e + L)
        elif ins.op == Op.VEC:
            reads, writes = vec_accesses(dram0, a, cfg)
            for r in reads:
                res["dram"].read(r, pc, s, e)
            for w in writes:
                res["dram"].write(w, pc, s, e)
        n += 1
    return n
