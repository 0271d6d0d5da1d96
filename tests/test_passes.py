"""Each compiler pass alone: what it produces from the previous pass's graph, and its checks."""

from __future__ import annotations

import pytest

from bebert.compiler import CompileError, check_tokens
from bebert.compiler.alloc import ALIGN, alloc
from bebert.compiler.bitplane import bitplane
from bebert.compiler.emit import emit_program
from bebert.compiler.import_model import import_model
from bebert.compiler.pipeline import PASSES, run_passes
from bebert.compiler.sequence import schedule_graph
from bebert.compiler.shape import infer_shapes
from bebert.ensemble_shape import parse_model_spec
from bebert.compiler.synthetic import synthetic_model
from bebert.compiler.tile import tile
from bebert.config import AccelConfig
from bebert.isa import Op
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
    assert ops == ["embed", "layernorm"] + per_layer * SHAPE.layers + ["linear", "lut", "dot"]
    assert g.t("acc0").role == "output" and g.stage == "import"


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


def test_tiling_attaches_plans_for_every_product():
    g = graph("tile")
    lin = [n for n in g.nodes if n.op == "linear"]
    assert all(n.attrs["tiling"].N == n.attrs["lin"].layer.out_features for n in lin)
    att = next(n for n in g.nodes if n.op == "attention")
    assert att.attrs["scores_tiling"].wpasses == MODEL.members[0].layers[0].key.layer.out_bits
    assert att.attrs["context_tiling"].K == SHAPE.seq


def test_bitplane_lowers_to_vec_and_gemm_with_packing_first():
    g = graph("bitplane")
    assert {n.op for n in g.nodes} == {"vec", "gemm"}
    for i, n in enumerate(g.nodes):
        if n.op == "gemm":
            x = n.ins["x"]
            writer = next(m for m in reversed(g.nodes[:i]) if x in m.outs.values())
            assert writer.op == "vec" and writer.attrs["fn"] == VecFn.PACK_A
            and_mode = n.attrs["wpasses"] is not None
            assert and_mode == (".h" in n.name)   # attention products run in AND mode
    fns = {n.attrs["fn"] for n in g.nodes if n.op == "vec"}
    assert {VecFn.EMBED, VecFn.LAYERNORM, VecFn.SOFTMAX, VecFn.GELU, VecFn.ADD, VecFn.PACK_A, VecFn.PACK_W,
            VecFn.LUT, VecFn.DOT, VecFn.REQUANT} <= fns


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
    assert g.meta["scratch_bytes"] < g.meta["scratch_bytes_without_reuse"]


def test_schedule_places_boundary_tokens():
    g = graph("schedule")
    instrs = g.meta["instrs"]
    check_tokens(instrs, CFG.queue_depth)
    for node, start in zip(g.nodes, g.meta["node_starts"]):
        if node.op == "gemm" and start:
            first_load = next(x for x in instrs[start:] if x.op == Op.LOAD)
            assert "pop_next" in first_load.flags   # waits for the compute before the block


def test_emit_regions_cover_the_program_per_member_and_layer():
    prog = graph("emit")
    regions = prog.meta["regions"]
    assert regions[0]["start"] == 0 and regions[-1]["end"] == len(prog.instrs)
    assert all(a["end"] == b["start"] for a, b in zip(regions, regions[1:]))
    assert {r["kind"] for r in regions} == {"embed", "attention", "ffn", "head"}
    assert {r.get("layer") for r in regions if r["kind"] == "ffn"} == set(range(SHAPE.layers))
    assert PASSES[-1] == "emit" and emit_program is not None and schedule_graph and alloc and bitplane
