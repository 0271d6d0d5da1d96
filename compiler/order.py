"""The order of the machine nodes: a list schedule over the PE array and the vector unit.

The bitplane pass emits nodes in data-flow order; the machine runs GEMM nodes (the PE array
and the output path) and VEC nodes (the vector unit) concurrently, so the order in which each
unit meets its nodes decides how much they overlap. `order_nodes` list-schedules the nodes on
those two units with estimated durations (`gemm_cycles`, `bebert.vector.vec_cycles`): whenever a
unit is free it takes the ready node of the highest priority, priority being (member, longest
path to the member's end, data-flow index). This finds the overlaps of issue 11 without a rule
per model: Q K^T of head h+1 and P V of head h-1 around the softmax of head h, the next linear's
first m-group while LayerNorm works on the following row blocks, GELU of one row block while
FFN_in computes the next. Members run one after another: member m+1's nodes become eligible when
member m starts the last layers whose PE-array work covers m+1's embedding (which then overlaps
them, in the vector unit's gaps); one more candidate admits every member from the start, so that
a later member's work (at a lower priority) fills every gap of the earlier ones, such as the
vector unit's wait for a layer's Q, K and V projections before its first softmax.

Dependencies are read-after-write on tensor rows (`attrs["reads"]` / `["writes"]`). The result
is the nodes sorted by their scheduled start: a valid execution order (every node after its
producers), which the scheduler turns into instructions; each node keeps its estimated start and
end (`attrs["t0"]`, `["t1"]`), from which the DRAM allocator frees a tensor only once its last
reader is estimated to be done (so that reusing its bytes does not stall a node running beside it).
"""

from __future__ import annotations

from bebert.config import POST_PIPELINE_CYCLES, SNAP_CYCLES, AccelConfig
from bebert.timing import OutputMode, flush_beats, stream_beats_per_column
from bebert.isa import PostFmt
from bebert.vector import vec_cycles

from .gemm_plan import ceil_div
from .ir import Graph, Node


def post_cycles(fmt: PostFmt, cols: int, elem: int, planes: int, flush: bool, group: int,
                config: AccelConfig) -> int:
    """D of one POST that tells no LOAD / VECTOR instruction (bebert/timing.py; telling one adds L)."""
    mode = OutputMode(int(fmt), elem.bit_length() - 1, planes, group)
    if fmt == PostFmt.STREAM:
        return POST_PIPELINE_CYCLES + cols * stream_beats_per_column(mode, config)
    return POST_PIPELINE_CYCLES + config.pe_cols + (flush_beats(mode, config) if flush else 0)


def gemm_cycles(n: Node, config: AccelConfig) -> int:
    """Estimated cycles of a gemm node on the PE array (GEMMs, the snapshot hand-over, loads)."""
    op, plan = n.attrs["gemm"], n.attrs["plan"]
    kw = op.kwords
    per_word = op.bits * op.wbits
    chunks = sum(ceil_div(s, plan.kc) for _, _, s in op.segs)
    ngemm = chunks + (1 if kw > chunks else 0)   # the snap GEMM is split off when it can be
    serial = kw == 1 or (ngemm == 1)
    total = 0
    e = 1 << op.out.elem
    group = config.pe_rows if op.out.fmt == PostFmt.PACKED else config.pe_cols
    for t in op.tiles:
        post = post_cycles(op.out.fmt, t.cols, e, op.out.obits, t.last, group, config) + 1
        g = per_word * kw + ngemm + SNAP_CYCLES
        total += g + post if serial else max(g, post + per_word + SNAP_CYCLES + 1)
    total *= len(n.attrs["mt"])
    loads = 0
    EW = config.entry_bytes("wbuf")
    for w in op.w_tensors:
        loads += w.ntiles * w.kwords * w.planes * EW
    return max(total, loads // config.dram_bytes_per_cycle)


def node_cycles(n: Node, config: AccelConfig) -> int:
    if n.op == "gemm":
        return gemm_cycles(n, config)
    a = n.attrs
    return vec_cycles(a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], a["io"], config)


def dependencies(nodes: list[Node]) -> list[list[int]]:
    """For each node, the earlier nodes writing rows it reads."""
    writes: dict[str, list[tuple[int, int, int]]] = {}
    deps = []
    for i, n in enumerate(nodes):
        d = set()
        for t, r0, r1 in n.attrs["reads"]:
            for j, w0, w1 in writes.get(t, ()):
                if w0 < r1 and r0 < w1:
                    d.add(j)
        deps.append(sorted(d))
        for t, r0, r1 in n.attrs["writes"]:
            writes.setdefault(t, []).append((i, r0, r1))
    return deps


def _gates(nodes: list[Node], dur: list[int], factor: float) -> dict[int, int]:
    """member m -> how many of member m-1's nodes must have started before m's may: all but those of
    the last layers of m-1 whose PE-array work covers `factor` x m's embedding (which then overlaps
    them)."""
    members = sorted({x.member for x in nodes if x.member is not None})
    gates = {}
    for prev, m in zip(members, members[1:]):
        embed = sum(d for x, d in zip(nodes, dur) if x.member == m and x.kind == "embed")
        per_layer: dict[int, int] = {}
        for x, d in zip(nodes, dur):
            if x.member == prev and x.layer is not None and x.op == "gemm":
                per_layer[x.layer] = per_layer.get(x.layer, 0) + d
        overlap, covered = set(), 0
        for layer in sorted(per_layer, reverse=True):
            overlap.add(layer)
            covered += per_layer[layer]
            if covered >= embed * factor:
                break
        gates[m] = sum(1 for x in nodes if x.member == prev and x.kind != "head"
                       and (x.layer is None or x.layer not in overlap))
    return gates


GATE_FACTORS = (1, 2, 3, 5, 8)   # tried admission points of the next member (module doc)


def order_nodes(nodes: list[Node], g: Graph, config: AccelConfig) -> list[Node]:
    """The nodes in list-schedule order (module doc). With several members the admission of the
    next member is tried at a few points (and at the start) and the shortest schedule kept (ties and gains under
    0.5 % go to the latest admission, which keeps each member's own latency shortest)."""
    n = len(nodes)
    if n == 0:
        return nodes
    deps = dependencies(nodes)
    dur = [node_cycles(x, config) for x in nodes]
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, d in enumerate(deps):
        for j in d:
            succ[j].append(i)
    rank = [0] * n
    for i in range(n - 1, -1, -1):
        rank[i] = dur[i] + max((rank[s] for s in succ[i] if nodes[s].member == nodes[i].member), default=0)
    members = {x.member for x in nodes if x.member is not None}
    best = None
    for factor in GATE_FACTORS + (None,) if len(members) > 1 else (1,):
        gates = _gates(nodes, dur, factor) if factor is not None else {}   # None: every member from the start
        start, end = _list_schedule(nodes, deps, succ, dur, rank, gates)
        if best is None or end < best[1] * 0.995:
            best = (start, end)
    start, end = best
    g.meta["order_estimate_cycles"] = end
    for i, x in enumerate(nodes):
        x.attrs["t0"], x.attrs["t1"] = start[i], start[i] + dur[i]
    return [nodes[i] for i in sorted(range(n), key=lambda i: (start[i], i))]


def _list_schedule(nodes, deps, succ, dur, rank, gates) -> tuple[list[int], int]:
    """Start cycle of every node on the PE array (gemm) or the vector unit (vec), and the end."""
    n = len(nodes)
    unit = [0 if x.op == "gemm" else 1 for x in nodes]
    member = [x.member if x.member is not None else -1 for x in nodes]
    started: dict[int, int] = {}
    left = [len(d) for d in deps]
    ready_at = [0] * n
    start = [0] * n
    cand: list[list[int]] = [[], []]
    held: dict[int, list[int]] = {}
    free = [0, 0]

    def eligible(m: int) -> bool:
        return m not in gates or started.get(m - 1, 0) >= gates[m]

    def offer(i: int) -> None:
        (cand[unit[i]] if eligible(member[i]) else held.setdefault(member[i], [])).append(i)

    for i in range(n):
        if left[i] == 0:
            offer(i)
    for _ in range(n):
        best = None
        for u in (0, 1):
            if cand[u]:
                t = max(free[u], min(ready_at[i] for i in cand[u]))
                if best is None or t < best[0]:
                    best = (t, u)
        if best is None:
            raise AssertionError("node order: no node can run (a dependency cycle or a gate never opened)")
        t, u = best
        i = min((c for c in cand[u] if ready_at[c] <= t), key=lambda c: (member[c], -rank[c], c))
        cand[u].remove(i)
        start[i] = t
        free[u] = t + dur[i]
        started[member[i]] = started.get(member[i], 0) + 1
        for m in [m for m in held if eligible(m)]:
            for j in held.pop(m):
                cand[unit[j]].append(j)
        for s in succ[i]:
            left[s] -= 1
            ready_at[s] = max(ready_at[s], t + dur[i])
            if left[s] == 0:
                offer(s)
    return start, max(start[i] + dur[i] for i in range(n))
