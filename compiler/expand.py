"""Machine nodes -> four stage streams of instructions, each instruction with its dependencies.

`Streams.gemm(node)` and `Streams.vec(node)` append, in node order, to one list per stage (LOAD,
COMPUTE, OUTPUT, VECTOR; `Rec` records). An instruction depends on earlier instructions of
other stages (`Rec.deps`: (stage, index in that stage's list, landed)); inside a stage the
order is the list order. The dependencies are every conflict on a shared resource:

- ABUF / WBUF / PBUF: each buffer is two halves (`Ring`); a LOAD waits for the last reader of
  the blocks it overwrites (a GEMM, or the POST that last read a PBUF entry); a GEMM (POST)
  waits for the LOADs of its blocks;
- the accumulator snapshot: a POST waits for its `snap` GEMM; a `snap` GEMM waits for the
  previous POST (a push to COMPUTE never waits for write responses);
- DRAM, by tensor rows (`Track`): a reader (LOAD, VEC) waits for the last writer of the rows it
  reads (a POST's writes must have *landed*: the pushing POST waits for its responses); every
  writer of a tensor waits for every access of the tensors whose bytes it reuses (alloc's
  `reuses`).

`compiler/merge.py` interleaves the streams into program order and turns the dependencies into
tokens. A node's tiles (`compiler/gemm_plan.py`) go in the order the output path needs (the
tiles of a packed word consecutive), each tile's GEMMs split so that the short `snap` GEMM is the
only one that waits for the previous POST.
"""

from __future__ import annotations

from bebert import layout as lay
from bebert.config import POSTCFG_CYCLES, AccelConfig
from bebert.isa import Op, PostFmt, Stage
from bebert.timing import gemm_cycles, load_cycles
from bebert.vector import Packed, View, encode_desc, vec_cycles

from .errors import CompileError
from .gemm_plan import GemmOp, GemmPlan, ceil_div
from .ir import Graph, Node
from .order import post_cycles

LOAD, COMPUTE, OUTPUT, VECTOR = (int(s) for s in (Stage.LOAD, Stage.COMPUTE, Stage.OUTPUT, Stage.VECTOR))


class Rec:
    """One instruction in a stage stream."""

    __slots__ = ("op", "args", "dur", "deps", "writes", "node")

    def __init__(self, op: Op, args: dict, dur: int, deps: list, writes: bool = False, node: int = -1):
        self.op, self.args, self.dur, self.deps, self.writes, self.node = op, args, dur, deps, writes, node


class Track:
    """Last writer / reader of each row unit of one DRAM tensor, per stage (-1: none)."""

    __slots__ = ("w", "r")

    def __init__(self):
        self.w: dict[int, dict[int, int]] = {}
        self.r: dict[int, dict[int, int]] = {}

    def last(self, table: dict, u0: int, u1: int) -> dict[int, int]:
        out: dict[int, int] = {}
        for s, units in table.items():
            best = max((units.get(u, -1) for u in range(u0, u1)), default=-1)
            if best >= 0:
                out[s] = best
        return out

    def note(self, table: dict, stage: int, idx: int, u0: int, u1: int) -> None:
        units = table.setdefault(stage, {})
        for u in range(u0, u1):
            units[u] = idx

    def every(self) -> dict[int, int]:
        """Per stage, the last instruction that accessed any row."""
        out: dict[int, int] = {}
        for table in (self.w, self.r):
            for s, units in table.items():
                if units:
                    out[s] = max(out.get(s, -1), max(units.values()))
        return out


class Ring:
    """One on-chip buffer as two halves (double buffering), the least recently used one refilled;
    a block larger than half takes the whole buffer."""

    def __init__(self, name: str, size: int):
        self.name, self.size = name, size
        self.half = size // 2
        self.blocks: dict = {}   # key -> [start, n, last reader (index), last load (index)]
        self.used = [0, 0]       # per half: when it was last used (a counter)
        self.tick = 0
        self.pinned: set = set()

    def find(self, key):
        b = self.blocks.get(key)
        if b is not None:
            self.touch(b)
        return b

    def touch(self, b: list) -> None:
        self.tick += 1
        if b[1] > self.half:
            self.used = [self.tick, self.tick]
        else:
            self.used[0 if b[0] < self.half else 1] = self.tick

    def alloc(self, key, n: int) -> tuple[list, int]:
        """A new block of n entries for `key`; (the block, the last reader of what it overwrites)."""
        if n > self.size:
            raise CompileError(f"a block of {n} {self.name} entries does not fit the {self.size}-entry buffer")
        if n <= self.half:
            s = 0 if self.used[0] <= self.used[1] else self.half
        else:
            s = 0
        reader = -1
        for k in [k for k, b in self.blocks.items() if b[0] < s + n and s < b[0] + b[1]]:
            if k in self.pinned:
                raise AssertionError(f"{self.name} buffer evicts a block still in use ({k})")
            reader = max(reader, self.blocks.pop(k)[2])
        block = [s, n, -1, -1]
        self.blocks[key] = block
        self.touch(block)
        return block, reader


class Streams:
    """Builds the four stage streams of a graph's nodes (module doc)."""

    def __init__(self, g: Graph, config: AccelConfig, desc_base: int):
        self.g, self.cfg = g, config
        self.R, self.C, self.W, self.T = config.pe_rows, config.pe_cols, config.xnor_width, config.vec_lanes
        self.unit = min(self.R, self.T)
        self.eb = {b: config.entry_bytes(b) for b in ("abuf", "wbuf", "pbuf")}
        self.seq: list[list[Rec]] = [[], [], [], []]
        self.rings = {"abuf": Ring("abuf", config.abuf_entries), "wbuf": Ring("wbuf", config.wbuf_entries),
                      "pbuf": Ring("pbuf", config.pbuf_entries)}
        self.tracks: dict[str, Track] = {}
        self.reuse_deps: dict[str, list] = {}
        self.snap_free = -1            # OUTPUT index after which the snapshot is free
        self.after_post: dict[int, int] = {}   # POST index -> the snap GEMM that waited for it
        self.desc_at = desc_base
        self.descs: list[bytes] = []

    # -- helpers ----------------------------------------------------------------------
    def add(self, stage: int, rec: Rec) -> int:
        self.seq[stage].append(rec)
        return len(self.seq[stage]) - 1

    def track(self, t: str) -> Track:
        tr = self.tracks.get(t)
        if tr is None:
            tr = self.tracks[t] = Track()
        return tr

    def units(self, r0: int, r1: int) -> tuple[int, int]:
        return r0 // self.unit, ceil_div(r1, self.unit)

    def raw(self, t: str, r0: int, r1: int) -> list:
        """Dependencies of a read of rows [r0, r1) of `t` on their writers."""
        if self.g.t(t).role not in ("scratch", "output"):
            return []
        last = self.track(t).last(self.track(t).w, *self.units(r0, r1))
        return [(s, i, s == OUTPUT) for s, i in last.items()]

    def war(self, t: str) -> list:
        """Dependencies of any write of `t` on every access of the tensors whose bytes it reuses."""
        deps = self.reuse_deps.get(t)
        if deps is None:
            front: dict[int, int] = {}
            for y in self.g.t(t).reuses:
                for s, i in self.track(y).every().items():
                    front[s] = max(front.get(s, -1), i)
            deps = self.reuse_deps[t] = [(s, i, s == OUTPUT) for s, i in front.items()]
        return deps

    def read(self, t: str, r0: int, r1: int, stage: int, idx: int) -> None:
        if self.g.t(t).role not in ("scratch", "output"):
            return
        tr = self.track(t)
        tr.note(tr.r, stage, idx, *self.units(r0, r1))

    def wrote(self, t: str, r0: int, r1: int, stage: int, idx: int) -> None:
        tr = self.track(t)
        tr.note(tr.w, stage, idx, *self.units(r0, r1))

    def off(self, t: str) -> int:
        return self.g.t(t).offset

    def load(self, buf: str, dram: int, addr: int, n: int, deps: list, node: int) -> int:
        args = {"buf": ("abuf", "wbuf", "pbuf").index(buf), "dram": dram, "addr": addr, "n": n}
        return self.add(LOAD, Rec(Op.LOAD, args, load_cycles(n, args["buf"], self.cfg), deps, node=node))

    def ensure(self, buf: str, key, n: int, parts: list[tuple], src: tuple[str, int, int] | None,
               node: int) -> list:
        """The block of `key` in `buf`, loading it if absent: parts [(dram, first entry offset, n[, src])]
        reading rows [r0, r1) of tensor src = (name, r0, r1) (per part, or `src` for all)."""
        ring = self.rings[buf]
        b = ring.find(key)
        if b is not None:
            return b
        b, reader = ring.alloc(key, n)
        if reader < 0:
            war = []
        elif buf != "pbuf":
            war = [(COMPUTE, reader, False)]
        elif reader in self.after_post:   # the snap GEMM that waited for that POST: the hand-back
            war = [(COMPUTE, self.after_post[reader], False)]   # of the PBUF entry goes through COMPUTE
        else:
            war = [(OUTPUT, reader, False)]
        for part in parts:
            dram, at, cnt = part[:3]
            ps = part[3] if len(part) > 3 else src
            b[3] = self.load(buf, dram, b[0] + at, cnt, self.raw(*ps) + war, node)
            self.read(*ps, LOAD, b[3])
        return b

    # -- VEC ----------------------------------------------------------------------------
    def resolve(self, v, cols: int):
        g = self.g
        if isinstance(v, dict):  # a table from row `first` on
            r = v.get("first", 0)
            return (v["kind"], self.off(v["table"]) + r * v["stride"], v["stride"], v["rows"] - r, v["elem"],
                    self.off(v["pairs"]) + 8 * r if "pairs" in v else 0)
        if not isinstance(v, tuple):
            return int(v)
        kind = v[0]
        if kind == "addr":
            return self.off(v[1])
        if kind == "stack":    # equally spaced tensors of one row each (the members' accumulators): one view
            ts = [g.t(x) for x in v[1]]
            step = ts[1].offset - ts[0].offset if len(ts) > 1 else ts[0].shape[1] * ts[0].elem
            if any(b.offset - a.offset != step for a, b in zip(ts, ts[1:])) or step % ts[0].elem:
                raise CompileError(f"tensors {v[1][0]}..{v[1][-1]} are not equally spaced rows (one VOTE view)")
            return View(ts[0].offset, ts[0].elem, ts[0].signed, s_r=step, s_c=ts[0].elem)
        t = g.t(v[1])
        L = t.layout
        if kind == "stream":   # from row v[2]: whole row tiles by the base, the rest (scalar kernels) by r0
            view = View.stream(t.offset + (v[2] // L["lanes"]) * L["pitch"], L)
            return view.shifted(r0=v[2] % L["lanes"]) if v[2] % L["lanes"] else view
        if kind == "rows":
            if v[1] == "mask":
                return View.row_major(t.offset, g.meta["tokens"], 4, True)
            r0 = v[2] if len(v) > 2 else 0
            return View.row_major(t.offset + r0 * t.shape[1] * t.elem, t.shape[1], t.elem, t.signed)
        if kind == "packed":
            geo = lay.abuf_geometry(L, self.eb["abuf"]) if L["kind"] == "abuf" else lay.wbuf_geometry(L, self.eb["wbuf"])
            r0 = v[2]
            base = t.offset + (r0 // geo["group"]) * geo["gstride"] + (r0 % geo["group"]) * (self.W // 8)
            return Packed.of(base, geo, bool(L["signed"]), bool(L.get("pm1")), self.off(v[3]) if v[3] else 0)
        raise AssertionError(kind)

    def vec(self, n: Node, ni: int) -> None:
        a = n.attrs
        fields = {k: self.resolve(v, a["cols"]) for k, v in a["fields"].items()}
        blob = encode_desc(a["fn"], **fields)
        desc = self.desc_at
        self.descs.append(blob)
        self.desc_at += -(-len(blob) // 8) * 8
        deps = []
        for t, r0, r1 in a["reads"]:
            deps += self.raw(t, r0, r1)
        for t, _, _ in a["writes"]:
            deps += self.war(t)
        args = {"fn": int(a["fn"]), "desc": desc, "rows": a["rows"], "cols": a["cols"], "bits": a["bits"],
                "aux": a["aux"], "io": a["io"]}
        dur = vec_cycles(a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], a["io"], self.cfg)
        idx = self.add(VECTOR, Rec(Op.VEC, args, dur, deps, writes=True, node=ni))
        for t, r0, r1 in a["reads"]:
            self.read(t, r0, r1, VECTOR, idx)
        for t, r0, r1 in a["writes"]:
            self.wrote(t, r0, r1, VECTOR, idx)

    # -- GEMM ---------------------------------------------------------------------------
    def postcfg(self, op: GemmOp, ni: int) -> None:
        o = op.out
        t = self.g.t(op.dsts[0])
        L = t.layout
        if o.fmt == PostFmt.STREAM:
            geo = {"pitch": L["pitch"], "gstride": 0, "group": 1}
        elif L["kind"] == "abuf":
            geo = lay.abuf_geometry(L, self.eb["abuf"])
        else:
            geo = lay.wbuf_geometry(L, self.eb["wbuf"])
        args = {"fmt": int(o.fmt), "elem": o.elem if o.fmt == PostFmt.STREAM else 0, "shift": o.shift,
                "obits": o.obits, "osigned": int(o.osigned), "pitch": geo["pitch"], "gstride": geo["gstride"],
                "group": geo["group"], "pm1": int(o.pm1)}
        self.group = geo["group"]
        self.postcfg_geo = geo
        self.add(OUTPUT, Rec(Op.POSTCFG, args, POSTCFG_CYCLES, [], node=ni))

    def destinations(self, op: GemmOp) -> list[tuple]:
        """Per destination tensor: (kind, base, stride per row tile / group, group, wstep, lanes, elem)."""
        out = []
        for d in op.dsts:
            t = self.g.t(d)
            L = t.layout
            if op.out.fmt == PostFmt.STREAM:
                out.append(("s", t.offset, L["pitch"], L["lanes"], 0, L["lanes"], L["elem"], d, L.get("K", 0)))
            else:
                geo = lay.abuf_geometry(L, self.eb["abuf"]) if L["kind"] == "abuf" else \
                    lay.wbuf_geometry(L, self.eb["wbuf"])
                out.append(("p", t.offset, geo["gstride"], geo["group"], geo["wstep"], 0, 0, d, L.get("K", 0)))
                if (geo["pitch"], geo["gstride"], geo["group"]) != (self.postcfg_geo["pitch"],
                                                                   self.postcfg_geo["gstride"], self.postcfg_geo["group"]):
                    raise AssertionError(f"{op.name}: destination '{d}' has another geometry than its POSTCFG")
        return out

    def gemm(self, n: Node, ni: int) -> None:
        op: GemmOp = n.attrs["gemm"]
        plan: GemmPlan = n.attrs["plan"]
        mt = n.attrs["mt"]
        R = self.R
        P, Q = op.bits, op.wbits
        A, Wr, Pr = self.rings["abuf"], self.rings["wbuf"], self.rings["pbuf"]
        self.postcfg(op, ni)
        abase = {}
        A.pinned = set()
        if not plan.chunked:  # the group's activations of every A tensor, as one block
            parts, at_off = [], 0
            if op.ones:   # the constant plane 0 first, once for the group (`_TileCtx.operands`)
                kw = op.a_tensors[0].kwords
                parts.append((self.off(op.ones), 0, kw, (op.ones, 0, 0)))
                at_off = kw
            for ai, at in enumerate(op.a_tensors):
                cnt = len(mt) * at.planes * at.kwords
                dram = self.off(at.name) + mt[0] * at.planes * at.kwords * self.eb["abuf"]
                parts.append((dram, at_off, cnt, (at.name, mt[0] * R, (mt[-1] + 1) * R)))
                abase[ai] = at_off
                at_off += cnt
            key = (tuple(a.name for a in op.a_tensors), op.ones, mt[0], mt[-1])
            b = self.ensure("abuf", key, at_off, parts, None, ni)
            A.pinned.add(key)
            abase = {ai: (b, off) for ai, off in abase.items()}
        transposed = op.out.fmt == PostFmt.TRANSPOSED
        ctx = _TileCtx(self, op, plan, mt, abase, ni)
        for block in plan.blocks:
            tiles = [op.tiles[i] for i in block]
            wblk, pblk = {}, {}
            Wr.pinned, Pr.pinned = set(), set()
            if not plan.chunked:  # the block's weights of every W tensor, as one block
                parts, keys, off = [], [], 0
                for wi in sorted({t.w for t in tiles}):
                    wt = op.w_tensors[wi]
                    lo = min(t.wt for t in tiles if t.w == wi)
                    hi = max(t.wt for t in tiles if t.w == wi)
                    cnt = hi - lo + 1
                    base = self.off(wt.name)
                    src = (wt.name, 0, self.g.t(wt.name).shape[0])
                    parts += [(base + (q * wt.ntiles * wt.kwords + lo * wt.kwords) * self.eb["wbuf"],
                               off + q * cnt * wt.kwords, cnt * wt.kwords, src) for q in range(Q)]
                    keys.append((wt.name, lo, hi))
                    wblk[wi] = [None, off, lo, cnt]
                    off += Q * cnt * wt.kwords
                key = tuple(keys)
                b = self.ensure("wbuf", key, off, parts, None, ni)
                Wr.pinned.add(key)
                for v in wblk.values():
                    v[0] = b
            if sum(max(t.pe for t in tiles if t.p == pi) - min(t.pe for t in tiles if t.p == pi) + 1
                   for pi in {t.p for t in tiles}) <= Pr.half:
                self.params(op, tiles, pblk, ni)
            else:   # a PBUF too small for the block's parameters: one entry per tile, loaded as it comes
                pblk = None
            ctx.wblk, ctx.pblk = wblk, pblk
            order = [(m, t) for t in tiles for m in mt] if transposed else [(m, t) for m in mt for t in tiles]
            for m, t in order:
                ctx.tile(m, t)

    def params(self, op: GemmOp, tiles, pblk: dict, ni: int) -> None:
        """Load the PBUF entries of `tiles` (every parameter tensor they use) as one block."""
        Pr = self.rings["pbuf"]
        parts, keys, off = [], [], 0
        for pi in sorted({t.p for t in tiles}):
            lo = min(t.pe for t in tiles if t.p == pi)
            hi = max(t.pe for t in tiles if t.p == pi)
            parts.append((self.off(op.p_tensors[pi]) + lo * self.eb["pbuf"], off, hi - lo + 1,
                          (op.p_tensors[pi], 0, 0)))
            keys.append((op.p_tensors[pi], lo, hi))
            pblk[pi] = [None, off - lo]
            off += hi - lo + 1
        key = tuple(keys)
        b = self.ensure("pbuf", key, off, parts, None, ni)
        Pr.pinned = {key}
        for v in pblk.values():
            v[0] = b

    # -- all nodes -------------------------------------------------------------------------
    def build(self) -> None:
        for ni, n in enumerate(self.g.nodes):
            if n.op == "vec":
                self.vec(n, ni)
            elif n.op == "gemm":
                self.gemm(n, ni)
            else:
                raise CompileError(f"node '{n.name}': op '{n.op}' is not a machine node")



class _TileCtx:
    """What the tiles of one gemm node share: operand blocks, destinations, durations (module doc)."""

    def __init__(self, st: Streams, op: GemmOp, plan: GemmPlan, mt, abase: dict, ni: int):
        self.st, self.op, self.plan, self.mt, self.abase, self.ni = st, op, plan, mt, abase, ni
        self.parts = [(a0 + j, w0 + j, min(plan.kc, nw - j)) for a0, w0, nw in op.segs
                      for j in range(0, nw, plan.kc)]
        self.common = {"bits": op.bits, "signed": int(op.signed), "wbits": op.wbits, "wsigned": int(op.wsigned),
                       "mode": op.mode}
        self.dsts = st.destinations(op)
        self.durs: dict = {}
        self.wblk: dict = {}
        self.pblk: dict | None = {}

    def operands(self, m: int, t, aw: int, ww: int, k: int) -> tuple[dict, list]:
        """The operand addresses of one GEMM (loading its k-chunk blocks when chunked) and the blocks."""
        st, op = self.st, self.op
        P, Q = op.bits, op.wbits
        at, wt = op.a_tensors[t.a], op.w_tensors[t.w]
        if self.plan.chunked:
            ea, ew = st.eb["abuf"], st.eb["wbuf"]
            if op.ones:   # plane 0 the constant, plane 1 the A tensor's one plane
                parts = [(st.off(op.ones) + aw * ea, 0, k, (op.ones, 0, 0)),
                         (st.off(at.name) + (m * at.kwords + aw) * ea, k, k)]
            else:
                parts = [(st.off(at.name) + ((m * P + p) * at.kwords + aw) * ea, p * k, k) for p in range(P)]
            ka = st.ensure("abuf", (at.name, op.ones, m, aw, k), P * k, parts,
                           (at.name, m * st.R, (m + 1) * st.R), self.ni)
            kw = st.ensure("wbuf", (wt.name, t.wt, ww, k), Q * k,
                           [(st.off(wt.name) + (q * wt.ntiles * wt.kwords + t.wt * wt.kwords + ww) * ew, q * k, k)
                            for q in range(Q)], (wt.name, 0, st.g.t(wt.name).shape[0]), self.ni)
            return dict(self.common, a=ka[0], w=kw[0], k=k, stride=k, wstride=k if Q > 1 else 0), [ka, kw]
        ab, aoff = self.abase[t.a]
        wb, woff, lo, cnt = self.wblk[t.w]
        at_m = aoff + (m - self.mt[0]) * at.planes * at.kwords   # m-tile m of the A tensor in the block
        a, stride = (ab[0] + aw, at_m) if op.ones else (ab[0] + at_m + aw, at.kwords)  # ones: plane 0 at the start
        return dict(self.common, a=a, w=wb[0] + woff + (t.wt - lo) * wt.kwords + ww,
                    k=k, stride=stride, wstride=cnt * wt.kwords if Q > 1 else 0), [ab, wb]

    def tile(self, m: int, t) -> None:
        """The GEMMs and the POST of tile (m, t). The last GEMM is split so that a one-word `snap`
        GEMM is the only one that waits for the previous POST."""
        st, op = self.st, self.op
        R, W, C = st.R, st.W, st.C
        comp = st.seq[COMPUTE]
        idx = -1
        nparts = len(self.parts)
        for ci, (aw, ww, k) in enumerate(self.parts):
            args, blocks = self.operands(m, t, aw, ww, k)
            ldeps = [(LOAD, b[3], False) for b in blocks if b[3] >= 0]
            last = ci == nparts - 1
            pieces = [args] if not last or k == 1 else [
                dict(args, k=k - 1), dict(args, a=args["a"] + k - 1, w=args["w"] + k - 1, k=1)]
            for pi, g in enumerate(pieces):
                snap = last and pi == len(pieces) - 1
                g["init"] = int(ci == 0 and pi == 0)
                g["snap"] = int(snap)
                deps = ldeps + [(OUTPUT, st.snap_free, False)] if snap and st.snap_free >= 0 else ldeps
                comp.append(Rec(Op.GEMM, g, gemm_cycles(g["bits"], g["wbits"], g["k"], snap), deps, node=self.ni))
                idx = len(comp) - 1
                if snap and st.snap_free >= 0:
                    st.after_post[st.snap_free] = idx
                for b in blocks:
                    b[2] = idx
        if self.pblk is None:   # per-tile parameters
            self.pblk_tile = {}
            st.params(op, [t], self.pblk_tile, self.ni)
            pb, poff = self.pblk_tile[t.p]
        else:
            pb, poff = self.pblk[t.p]
        kind, base, gstride, group, wstep, lanes, e, dname, tokens = self.dsts[t.dst]
        fmt = op.out.fmt
        r = m * R
        if fmt == PostFmt.STREAM:
            dram = base + (r // lanes) * gstride + t.col * lanes * e + (r % lanes) * e
            flush, rows = True, (r, r + R)
        elif fmt == PostFmt.PACKED:
            dram = base + (r // group) * gstride + (r % group) * (W // 8) + t.col * wstep
            flush, rows = t.last, (r, r + R)
        else:
            row = t.col * C
            dram = base + (row // group) * gstride + (row % group) * (W // 8) + (r // W) * wstep
            flush, rows = (m + 1) * R % W == 0 or (m + 1) * R >= tokens, (row, row + C)
        writes = fmt == PostFmt.STREAM or flush
        deps = [(COMPUTE, idx, False)]
        if pb[3] >= 0:
            deps.append((LOAD, pb[3], False))
        if writes:
            deps += st.war(dname)
        args = {"p": pb[0] + poff + t.pe, "dram": dram, "pos": t.pos if fmt == PostFmt.PACKED else 0, "cols": t.cols,
                "rows": op.rows_valid(m, R), "flush": int(flush and fmt != PostFmt.STREAM)}
        key = (t.cols, flush)
        dur = self.durs.get(key)
        if dur is None:
            dur = self.durs[key] = post_cycles(fmt, t.cols, 1 << op.out.elem, op.out.obits, flush, st.group, st.cfg)
        out = st.seq[OUTPUT]
        out.append(Rec(Op.POST, args, dur, deps, writes=writes, node=self.ni))
        pidx = len(out) - 1
        pb[2] = pidx    # the block's last reader
        if writes:
            st.wrote(dname, rows[0], rows[1], OUTPUT, pidx)
        st.snap_free = pidx
