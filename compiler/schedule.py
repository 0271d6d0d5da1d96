"""Schedule one tiled GEMM: the ordered loads, GEMMs, POSTs and STOREs, then their tokens.

Two plain passes:

1. `walk` visits the output tiles in an order (n-tile outer or m-tile outer) and the
   k-chunks of each; for every GEMM it makes sure the activation, weight (and, on the
   first chunk, parameter) blocks it reads are in a slot of their buffer, loading a
   missing one into the buffer's next slot in turn. The loads needed by one GEMM form
   a load *group*; the compute instructions from that GEMM up to the next group's first
   GEMM form the group's *segment*. For every group it records the last segment that
   read any slot the group overwrites.
2. `emit` places the tokens (VTA's discipline) and interleaves the three streams:
   - the last LOAD of group g pushes l2c; the first GEMM of segment g pops it;
   - group g pops c2l before overwriting a slot still read by segment s, pushed by
     the last compute instruction of segment s (skipped when an earlier wait covers it);
   - POST of output tile t pushes c2s; its STORE pops it; with S OBUF slots, the STORE
     of tile t pushes s2c and the POST of tile t + S pops it.
   Group g is emitted right after segment max(g - 2, s) (two groups of lookahead: the
   double buffer), and each STORE right after its POST. Every pop is thus preceded in
   program order by the push it consumes, so the program cannot deadlock whatever the
   queue depth (`bebert.tokens.check_tokens` verifies this on every program).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bebert.isa import Instr, gemm, halt, load, post, store

from .tiling import Tiling


@dataclass(frozen=True)
class Regions:
    """Byte offsets of the tensors in DRAM and the entry size of each buffer."""

    x: int
    w: int
    p: int
    y: int
    entry: dict[str, int]


@dataclass(frozen=True)
class PostArgs:
    shift: int
    obits: int
    osigned: bool
    signed: bool  # the GEMM's activation planes are two's complement


@dataclass
class Walk:
    """The result of `walk`: load groups and compute segments, in program order."""

    groups: list[list[dict]] = field(default_factory=list)  # LOAD operands per group
    need: list[int] = field(default_factory=list)  # last segment reading a slot group g overwrites
    segments: list[list[tuple[str, dict]]] = field(default_factory=list)  # ("gemm"|"post"|"store", args)
    load_bytes: int = 0


class _Slots:
    """The slots of one buffer: which block each holds and which segment read it last.

    A block already in a slot is reused; a missing one goes to the next slot in turn.
    """

    def __init__(self, slots: int):
        self.keys = [None] * slots
        self.slot = -1
        self.reader = [-1] * slots

    def ensure(self, key) -> tuple[int, bool, int]:
        """(slot holding `key`, whether it must be loaded, last segment reading that slot)."""
        if key in self.keys:
            return self.keys.index(key), False, -1
        self.slot = (self.slot + 1) % len(self.keys)
        self.keys[self.slot] = key
        return self.slot, True, self.reader[self.slot]


def walk(t: Tiling, r: Regions, order: str, post_args: PostArgs,
         wpasses: list[tuple[int, bool, int]] | None = None) -> Walk:
    """Visit the tiles in `order`. `wpasses` (AND mode): per WBUF pass (byte offset of its
    plane from r.w, wneg, wshift); None is one XNOR pass over the weight signs at r.w."""
    P, KW, MT, NT, R = t.planes, t.kwords, t.mtiles, t.ntiles, t.rows
    ea, ew, ep, eo = (r.entry[b] for b in ("abuf", "wbuf", "pbuf", "obuf"))
    A, Wt, Pp = _Slots(t.a.slots), _Slots(t.w.slots), _Slots(t.p.slots)
    out = Walk()
    tiles = ([(m, n) for n in range(NT) for m in range(MT)] if order == "nm"
             else [(m, n) for m in range(MT) for n in range(NT)])
    chunks = t.chunks
    passes = wpasses or [(0, False, 0)]
    mode = 0 if wpasses is None else 1
    for ti, (m, n) in enumerate(tiles):
        for ci, (j0, kw) in enumerate(chunks):
            for pi, (w_off, wneg, wshift) in enumerate(passes):  # one GEMM per WBUF pass
                loads, need = [], -1
                # activations
                if t.a.mode in ("resident", "tile"):
                    key, dram, cnt, off, stride = m, r.x + m * P * KW * ea, P * KW, j0, KW
                else:
                    key, dram, cnt, off, stride = (m, ci), r.x + (m * P * KW + P * j0) * ea, P * kw, 0, kw
                slot_a, new, rd = A.ensure(key)
                if new:
                    loads.append(dict(buf="abuf", dram=dram, addr=t.a.base(slot_a), n=cnt))
                    need = max(need, rd)
                a_addr = t.a.base(slot_a) + off
                # weights (one block per WBUF pass: the bit-planes of an AND-mode operand)
                if t.w.mode in ("resident", "tile"):
                    key, dram, cnt, off = (n, pi), r.w + w_off + n * KW * ew, KW, j0
                else:
                    key, dram, cnt, off = (n, ci, pi), r.w + w_off + (n * KW + j0) * ew, kw, 0
                slot_w, new, rd = Wt.ensure(key)
                if new:
                    loads.append(dict(buf="wbuf", dram=dram, addr=t.w.base(slot_w), n=cnt))
                    need = max(need, rd)
                w_addr = t.w.base(slot_w) + off
                # parameters, with the first GEMM of the tile
                if ci == 0 and pi == 0:
                    if t.p.mode == "resident":
                        key, dram, cnt = "all", r.p, NT
                    else:
                        key, dram, cnt = n, r.p + n * ep, 1
                    slot_p, new, rd = Pp.ensure(key)
                    if new:
                        loads.append(dict(buf="pbuf", dram=dram, addr=t.p.base(slot_p), n=cnt))
                        need = max(need, rd)
                    p_addr = t.p.base(slot_p) + (n if t.p.mode == "resident" else 0)
                if loads:
                    out.groups.append(loads)
                    out.need.append(need)
                    out.segments.append([])
                    out.load_bytes += sum(ld["n"] * r.entry[ld["buf"]] for ld in loads)
                seg = len(out.segments) - 1
                A.reader[slot_a] = seg
                Wt.reader[slot_w] = seg
                out.segments[seg].append(("gemm", dict(a=a_addr, w=w_addr, k=kw, stride=stride, bits=P,
                                                       signed=post_args.signed, init=ci == 0 and pi == 0,
                                                       mode=mode, wneg=wneg, wshift=wshift)))
        seg = len(out.segments) - 1
        Pp.reader[slot_p] = seg
        o = (ti % t.o_slots) * R
        out.segments[seg].append(("post", dict(p=p_addr, o=o, shift=post_args.shift,
                                               obits=post_args.obits, osigned=post_args.osigned,
                                               tile=ti)))
        out.segments[seg].append(("store", dict(dram=r.y + (m * NT + n) * R * eo, addr=o,
                                                n=min(R, t.M - m * R), tile=ti)))
    return out


def emit(wk: Walk, o_slots: int) -> list[Instr]:
    """Place the tokens and interleave loads, compute and stores (see the module doc)."""
    G = len(wk.groups)
    ntiles = sum(1 for seg in wk.segments for kind, _ in seg if kind == "post")
    # Which groups wait on c2l, and which segments push it.
    waits, pushers, covered = [False] * G, set(), -1
    for g, s in enumerate(wk.need):
        if s > covered:
            waits[g], covered = True, s
            pushers.add(s)
    after: dict[int, list[int]] = {}
    for g in range(G):
        after.setdefault(max(g - 2, wk.need[g]), []).append(g)

    out: list[Instr] = []

    def emit_group(g: int) -> None:
        loads = wk.groups[g]
        for i, ld in enumerate(loads):
            flags = []
            if i == 0 and waits[g]:
                flags.append("pop_next")
            if i == len(loads) - 1:
                flags.append("push_next")
            out.append(load(ld["buf"], ld["dram"], ld["addr"], ld["n"], *flags))

    for g in after.get(-1, []):
        emit_group(g)
    for s, seg in enumerate(wk.segments):
        last_compute = max(i for i, (kind, _) in enumerate(seg) if kind != "store")
        for i, (kind, a) in enumerate(seg):
            flags = []
            if kind == "store":
                flags.append("pop_prev")
                if a["tile"] + o_slots < ntiles:
                    flags.append("push_prev")
                out.append(store(a["dram"], a["addr"], a["n"], *flags))
                continue
            if i == 0:
                flags.append("pop_prev")
            if i == last_compute and s in pushers:
                flags.append("push_prev")
            if kind == "gemm":
                out.append(gemm(a["a"], a["w"], a["k"], a["stride"], a["bits"], a["signed"],
                                a["init"], *flags, mode=a["mode"], wneg=a["wneg"], wshift=a["wshift"]))
            else:
                if a["tile"] >= o_slots:
                    flags.append("pop_next")
                flags.append("push_next")
                out.append(post(a["p"], a["o"], a["shift"], a["obits"], a["osigned"], *flags))
        for g in after.get(s, []):
            emit_group(g)
    out.append(halt())
    return out
