"""Each compiler pass alone: what it produces from the previous pass's graph, and its checks."""

from __future__ import annotations

import pytest

from bebert.compiler import CompileError, check_tokens
from bebert.compiler.alloc import ALIGN, alloc
from bebert.compiler.bitplane import bitplane
from bebert.compiler.emit import emit_program
from bebert.compiler.import_model import import_model
from bebert.compiler.order import dependencies
from bebert.compiler.pipeline import PASSES, run_passes
from bebert.compiler.schedule import schedule_graph
from bebert.compiler.shape import infer_shapes
from bebert.ensemble_shape import parse_model_spec
from bebert.compiler.synthetic import synthetic_model
from bebert.compiler.tile import tile
from bebert.config import AccelConfig
from bebert.isa import Op, PostFmt, Stage
from bebert.vector import VecFn

CFG = AccelConfig()
SHAPE = parse_model_spec("synthetic:tiny,members=1")
MODEL = synthetic_model(SHAPE, seed=0)


def graph(stop: str):
    return run_passes(MODEL, SHAPE.seq, CFG, stop=stop)


def test_import_follows_the_reference_data_flow():
    g = import_model(MODEL, SHAPE.seq)
    ops = [n.op for n in g.nodes]
    per_layer = ["linear", "linear", "linear", "attention", "linear", "add", "layernorm", "linear", "gelu",
                 "linear", "add", "layernorm"]
    member = ["embed", "layernorm"] + per_layer * SHAPE.layers + ["linear", "lut", "dot"]
    assert ops == member * SHAPE.members + ["vote"]   # the members, then the ensemble's vote
    assert g.t("acc0").role == "output" and g.t("votes").role == "output" and g.stage == "import"
    assert g.nodes[-1].ins == {f"acc{i}": f"acc{i}" for i in range(SHAPE.members)}


def test_passes_check_their_precondition():
    g = import_model(MODEL, SHAPE.seq)
    with pytest.raises(ValueError, match="needs the graph after 'shape'"):
        tile(g, CFG)


def test_shape_inference_and_16_bit_read_saturation():
    g = infer_shapes(import_model(MODEL, SHAPE.seq))
    assert g.t("m0.emb").shape == (SHAPE.seq, SHAPE.hidden)
    assert g.t("m0.l0.ffn_in").shape == (SHAPE.seq, SHAPE.intermediate)
    assert g.t("m0.l0.ffn_in").sat == 16 and g.t("m0.l0.query").sat == 0   # 16-bit vs 4-bit outputs
    assert g.t("m0.pooled").shape == (1, SHAPE.hidden) and g.t("acc0").shape == (1, SHAPE.num_labels)


def test_shape_rejects_more_tokens_than_positions():
    with pytest.raises(CompileError, match="exceeds the 64 positions"):
        infer_shapes(import_model(MODEL, 65))


def test_tiling_counts_the_tiles_of_every_product_on_padded_tokens():
    g = graph("tile")
    lin = [n for n in g.nodes if n.op == "linear"]
    assert all(n.attrs["tiles"][1] == -(-n.attrs["lin"].layer.out_features // CFG.pe_cols) for n in lin)
    att = next(n for n in g.nodes if n.op == "attention")
    assert g.meta["tokens"] % max(CFG.pe_rows, CFG.vec_lanes) == 0 and g.meta["tokens"] >= SHAPE.seq
    assert att.attrs["tiles"]["context"][2] == -(-g.meta["tokens"] // CFG.xnor_width)


def test_bitplane_lowers_to_gemm_and_vec_in_the_consumers_layouts():
    g = graph("bitplane")
    assert {n.op for n in g.nodes} == {"vec", "gemm"}
    fns = {n.attrs["fn"] for n in g.nodes if n.op == "vec"}
    assert fns == {VecFn.EMBED, VecFn.LAYERNORM, VecFn.SOFTMAX, VecFn.GELU, VecFn.LUT, VecFn.DOT,  # no ADD: fused
                   VecFn.VOTE}
    forms = {}
    for n in g.nodes:
        if n.op == "gemm":
            op = n.attrs["gemm"]
            forms.setdefault(op.name.split(".")[-1], set()).add(op.out.fmt)
            assert op.mode == (1 if ".attention." in op.name else 0)   # attention products in AND mode
            assert all(g.t(a.name).form == "abuf" for a in op.a_tensors)
    assert forms["query"] == forms["key"] == {PostFmt.PACKED} and forms["value"] == {PostFmt.TRANSPOSED}
    pv = {k for k in forms if k.startswith("pv")}
    assert forms["qk"] == forms["ffn_in"] == {PostFmt.STREAM} and pv and all(forms[k] == {PostFmt.PACKED} for k in pv)
    ln = [n for n in g.nodes if n.op == "vec" and n.attrs["fn"] == VecFn.LAYERNORM]
    assert all(n.attrs["rows"] <= max(CFG.pe_rows, CFG.vec_lanes) for n in ln)   # per row block
    assert any("b" in n.attrs["fields"] for n in ln)                              # the residual add fused


def test_node_order_keeps_every_node_after_its_producers():
    g = graph("bitplane")
    for i, d in enumerate(dependencies(g.nodes)):
        assert all(j < i for j in d)
    times = [n.attrs["t0"] for n in g.nodes]
    assert times == sorted(times)


def test_alloc_reuses_dead_intermediates_without_overlapping_live_ones():
    g = graph("alloc")
    live: dict[str, tuple[int, int]] = {}
    for i, n in enumerate(g.nodes):
        for name in list(n.ins.values()) + list(n.outs.values()):
            if g.t(name).role == "scratch":
                a, _ = live.get(name, (i, i))
                live[name] = (a, i)
    names = list(live)
    for x in names:
        tx = g.t(x)
        assert tx.offset % ALIGN == 0
        for y in names:
            ty = g.t(y)
            if x < y and not (live[x][1] < live[y][0] or live[y][1] < live[x][0]):
                assert tx.offset + tx.nbytes <= ty.offset or ty.offset + ty.nbytes <= tx.offset, (x, y)
            if y in tx.reuses:   # what a tensor takes over died before it was born
                assert live[y][1] < live[x][0]
    assert g.meta["scratch_bytes"] < g.meta["scratch_bytes_without_reuse"]


def test_schedule_makes_a_valid_sequential_program_with_its_tokens():
    g = graph("schedule")
    instrs = g.meta["instrs"]
    check_tokens(instrs, CFG.queue_depth)
    assert instrs[-1].op == Op.HALT and len(g.meta["instr_nodes"]) == len(instrs) - 1
    stages = {i.stage for i in instrs[:-1]}
    assert stages == {Stage.LOAD, Stage.COMPUTE, Stage.OUTPUT, Stage.VECTOR}
    # every VEC that reads a POST's output pops output->vec; that POST waits for its writes
    assert any(Stage.OUTPUT in i.pops for i in instrs if i.op == Op.VEC)
    assert g.meta["estimated_cycles"] > 0


def test_emit_regions_cover_the_program_per_member_and_layer():
    prog = graph("emit")
    regions = prog.meta["regions"]
    assert regions[0]["start"] == 0 and regions[-1]["end"] == len(prog.instrs)
    assert all(a["end"] == b["start"] for a, b in zip(regions, regions[1:]))
    assert all(r["start"] < r["end"] for r in regions) and len({r["name"] for r in regions}) == len(regions)
    assert {r["kind"] for r in regions} == {"embed", "attention", "ffn", "head", "vote"}
    assert {r.get("layer") for r in regions if r["kind"] == "ffn"} == set(range(SHAPE.layers))
    assert PASSES[-1] == "emit" and emit_program is not None and schedule_graph and alloc and bitplane
