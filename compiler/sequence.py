"""Pass 6, scheduling: each machine node -> instructions, stitched together with tokens.

A `gemm` node is scheduled by compiler/schedule.py (`walk` in both tile orders, the one moving
fewer bytes kept; `emit` double-buffers every non-resident operand so LOADs overlap GEMMs, and
places the tokens inside the block). A `vec` node is one VEC instruction whose descriptor is
written to the descriptor area at the end of the DRAM image.

Between nodes the stages must also agree on DRAM (docs/ARCHITECTURE.md, "The compiler"):

- a gemm block's first LOAD pops c2l, pushed by the compute instruction just before the block
  (a VEC, or a SYNC when that instruction already pushes c2l): the block's loads read what
  earlier VECs wrote and overwrite buffer slots earlier GEMMs read;
- a gemm block's last STORE pushes s2c, popped by the next compute instruction (a VEC, or the
  next block's first GEMM): whatever reads the block's outputs starts after they are in DRAM.
  STOREs finish in order, so that one token covers every earlier STORE as well.

Everything else is ordered by the in-order COMPUTE stage: a VEC runs after every earlier
GEMM (whose LOADs are then done) and before every later POST (hence STORE), so reusing a
dead tensor's bytes (alloc) is safe. `check_tokens` and the golden executor's strict token
mode verify every program the compiler writes.
"""

from __future__ import annotations

from dataclasses import replace


from bebert.config import AccelConfig
from bebert.isa import Instr, IsaError, Op, Stage, halt, sync, vec
from bebert.vector import View, encode_desc

from .errors import CompileError
from .ir import Graph
from .schedule import PostArgs, Regions, emit, walk


def _view(g: Graph, r: dict, cfg: AccelConfig) -> View:
    t = g.t(r["t"])
    cols = t.shape[1]
    if t.form == "tiles":
        v = View.tiles(t.offset, cols, cfg.pe_rows, cfg.pe_cols, sat=t.sat)
    elif t.form == "rows":
        v = View.row_major(t.offset, cols, t.elem, t.signed, t.sat)
    else:
        raise CompileError(f"tensor '{t.name}' ({t.form}) cannot be read through a view")
    if r.get("split"):
        if t.form != "rows":
            raise CompileError(f"tensor '{t.name}': a split (TWS) read needs a row-major tensor")
        v = replace(v, ctile=r["split"], s_ct=0)
    if r.get("bcast"):
        v = replace(v, s_r=0)
    v = v.shifted(r.get("r0", 0), r.get("c0", 0))
    return v.transposed() if r.get("T") else v


def _field(g: Graph, v, cfg: AccelConfig):
    if isinstance(v, dict) and "table" in v:
        return (v["kind"], g.t(v["table"]).offset, v["stride"], v["rows"], v["elem"],
                g.t(v["pairs"]).offset if "pairs" in v else 0)
    if isinstance(v, dict):
        return _view(g, v, cfg)
    if isinstance(v, tuple) and v[0] == "addr":
        return g.t(v[1]).offset
    return int(v)


def _with(ins: Instr, *flags: str) -> Instr:
    return Instr(ins.op, ins.args, ins.flags | frozenset(flags))


def _rebased(ins: Instr, dram: int) -> Instr:
    """`ins` (a checked LOAD / STORE) at another DRAM address, without re-running the ISA checks
    (only the address changes; alloc keeps every address below 2^32). Compiling BERT-base makes
    a few hundred thousand of these: the full constructor would dominate the compile time."""
    new = object.__new__(Instr)
    object.__setattr__(new, "op", ins.op)
    object.__setattr__(new, "args", {**ins.args, "dram": dram})
    object.__setattr__(new, "flags", ins.flags)
    return new


_BASE_OF = {0: "x", 1: "w", 2: "p"}  # LOAD buf -> the region its address is relative to


def _gemm_block(n, g: Graph, entry: dict, cache: dict) -> list[Instr]:
    """The instructions of one gemm node. Blocks of the same structure (tiling, POST, passes) differ
    only in their DRAM bases, so the schedule is made once per structure, relative to zero bases,
    and rebased: GEMM / POST / SYNC instructions are shared, LOAD / STORE addresses shifted."""
    a = n.attrs
    t = a["tiling"]
    pa = PostArgs(**a["post"])
    wp = tuple(a["wpasses"]) if a["wpasses"] is not None else None
    key = (t, pa, wp)
    if key not in cache:
        r = Regions(x=0, w=0, p=0, y=0, entry=entry)
        walks = {o: walk(t, r, o, pa, None if wp is None else list(wp)) for o in ("nm", "mn")}
        order = min(walks, key=lambda o: (walks[o].load_bytes, len(walks[o].groups)))
        try:
            cache[key] = (emit(walks[order], t.o_slots)[:-1], order, walks[order].load_bytes)  # no HALT
        except IsaError as e:
            raise CompileError(f"node '{n.name}': {e}") from None
    templ, order, load_bytes = cache[key]
    a["order"], a["load_bytes"] = order, load_bytes
    base = {k: g.t(n.ins[k]).offset for k in ("x", "w", "p")}
    y = g.t(n.outs["y"]).offset
    out = []
    for ins in templ:
        if ins.op == Op.LOAD:
            ins = _rebased(ins, ins.args["dram"] + base[_BASE_OF[ins.args["buf"]]])
        elif ins.op == Op.STORE:
            ins = _rebased(ins, ins.args["dram"] + y)
        out.append(ins)
    return out


def schedule_graph(g: Graph, config: AccelConfig) -> Graph:
    g.require("alloc", "schedule")
    entry = {b: config.entry_bytes(b) for b in ("abuf", "wbuf", "pbuf", "obuf")}
    desc_base = -(-g.meta["dram_bytes"] // 64) * 64
    descs: list[bytes] = []
    at = desc_base
    blocks: list[tuple[object, list[Instr]]] = []
    cache: dict = {}
    for n in g.nodes:
        if n.op == "vec":
            a = n.attrs
            fields = {k: _field(g, v, config) for k, v in a["fields"].items()}
            blob = encode_desc(a["fn"], **fields)
            try:
                ins = vec(a["fn"], at, a["rows"], a["cols"], bits=a["bits"], aux=a["aux"])
            except IsaError as e:
                raise CompileError(f"node '{n.name}': {e}") from None
            descs.append(blob)
            at += len(blob)
            blocks.append((n, [ins]))
        else:
            blocks.append((n, _gemm_block(n, g, entry, cache)))
    instrs, starts = _stitch(blocks)
    g.meta["instrs"] = instrs
    g.meta["node_starts"] = starts
    g.meta["desc_base"] = desc_base
    g.meta["descriptors"] = b"".join(descs)
    g.stage = "schedule"
    return g


def _stitch(blocks) -> tuple[list[Instr], list[int]]:
    """Concatenate the nodes' instructions with the boundary tokens of the module doc."""
    out: list[Instr] = []
    starts: list[int] = []
    last_compute = -1          # index in `out` of the latest compute instruction
    pending_s2c = False        # the latest gemm block's last STORE pushed s2c: the next compute pops it
    for n, ins in blocks:
        starts.append(len(out))
        ins = list(ins)
        if n.op == "gemm":
            if last_compute >= 0:
                prev = out[last_compute]
                if "push_prev" in prev.flags:
                    out.append(sync("push_prev"))
                else:
                    out[last_compute] = _with(prev, "push_prev")
                first_load = next(i for i, x in enumerate(ins) if x.op == Op.LOAD)
                ins[first_load] = _with(ins[first_load], "pop_next")
        first_c = next(i for i, x in enumerate(ins) if x.stage == Stage.COMPUTE)
        if pending_s2c:
            ins[first_c] = _with(ins[first_c], "pop_next")
            pending_s2c = False
        if n.op == "gemm":
            last_store = max(i for i, x in enumerate(ins) if x.op == Op.STORE)
            ins[last_store] = _with(ins[last_store], "push_prev")
            pending_s2c = True
        base = len(out)
        out.extend(ins)
        last_compute = base + max(i for i, x in enumerate(ins) if x.stage == Stage.COMPUTE)
    if pending_s2c:
        out.append(sync("pop_next"))
    out.append(halt())
    return out, starts
