"""`bebert stats`: model shapes, parameter / byte / operation counts, and the paper's 13x and 15x.

The tiny counts are worked out by hand below; the bert-base figures are checked against the
published ones (BiBERT's Table 1: BERT-base 418 MB, 22.5 GFLOPs; BinaryBERT 1-1-4 16.5 MB, 1.5
GFLOPs); the parameter counts against what model/package.py actually stores.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from bebert.ensemble_shape import PACKAGE_FORMAT, EnsembleShape, TargetError, parse_model_spec, shape_from_package
from bebert.compiler.stats import stats, stats_for

# -- synthetic:tiny, by hand ---------------------------------------------------------------------
# 2 layers, H = 64, 2 heads, I = 128, vocab 1000, 64 positions, 2 token types, 2 labels,
# T = 16 tokens, 2 members, BinaryBERT 1-1-4 (binary weights and embeddings, 4-bit activations,
# 4-bit Q/K/V/probabilities).
T, H, I, NH, V, P, TT, L = 16, 64, 128, 2, 1000, 64, 2, 2


def test_tiny_preset():
    s = parse_model_spec("synthetic:tiny")
    assert (s.layers, s.hidden, s.heads, s.intermediate, s.vocab, s.max_position, s.type_vocab) == \
        (2, H, NH, I, V, P, TT)
    assert (s.members, s.seq, s.weight_bits, s.embed_bits, s.act_bits, s.attn_bits, s.base, s.tws) == \
        (2, T, 1, 1, 4, 4, "binarybert", False)


def test_tiny_parameters_by_hand():
    m = stats(parse_model_spec("synthetic:tiny"))["member"]
    embeddings = (V + P + TT) * H                      # 1066 * 64 = 68224 sign bits
    per_layer = 4 * H * H + 2 * H * I                  # Q, K, V, O + FFN in/out = 32768
    pooler = H * H                                     # 4096
    binary = embeddings + 2 * per_layer + pooler       # 68224 + 65536 + 4096 = 137856
    assert m["params"]["binary"] == binary == 137856
    rows = 4 * H + I + H                               # output rows of one layer's projections: 448
    scales = (V + P + TT) + 2 * rows + H               # per-row scales: 1066 + 896 + 64 = 2026
    biases = 2 * rows + H                              # 896 + 64 = 960
    layernorm = 2 * H + 2 * 2 * 2 * H                  # embeddings + 2 per layer: 128 + 512 = 640
    steps = 2 * (6 + 4) + 1                            # 6 linear inputs + q/k/v/p per layer, pooler: 21
    classifier = L * H + L                             # 130
    fp = scales + biases + layernorm + steps + classifier
    assert m["params"]["full_precision"] == fp == 3777
    assert m["bytes"] == {"binary": 137856 / 8, "low_bit": 0, "full_precision": 4 * 3777, "total": 17232 + 15108}


def test_tiny_operations_by_hand():
    m = stats(parse_model_spec("synthetic:tiny"))["member"]["ops"]
    linear_macs = 2 * T * (4 * H * H + 2 * H * I)      # 2 layers * 16 tokens * 32768 = 1048576
    attention_macs = 2 * 2 * T * T * H                 # scores + context, 2 layers: 65536
    pooler_macs = H * H                                # [CLS] only: 4096
    assert m["binary_macs"] == linear_macs + attention_macs + pooler_macs == 1118208
    # 1-bit weights x 4-bit activations: 4 bit-planes; 4-bit x 4-bit attention: 16; 2 ops per bit-plane MAC
    binary_ops = 2 * 4 * (linear_macs + pooler_macs) + 2 * 16 * attention_macs
    assert m["binary_ops"] == binary_ops == 10518528
    assert m["fp_macs"] == L * H == 128                # the classifier
    # elementwise FLOPs: act_quant 3, dequant 1, bias 1, softmax 5, scale+mask 2, LayerNorm 8, GELU 8, ...
    emb = 3 * T * H + 2 * T * H + 8 * T * H                       # dequant 3 tables, sum, LayerNorm: 13312
    qkv = 3 * (3 * T * H + T * H + T * H)                         # quantize x, bias, dequant: 15360
    qkv_quant = 3 * 3 * T * H                                     # 4-bit Q, K, V: 9216
    scores = NH * T * T                                           # 512 per layer
    attention = scores * (2 + 5 + 3)                              # scale+mask, softmax, quantize P: 5120
    attn_out = 3 * T * H + T * H + T * H                          # 5120
    ffn = (3 * T * H + 2 * T * I) + 8 * T * I + (3 * T * I + 2 * T * H)   # 7168 + 16384 + 8192
    norms = 2 * (T * H + 8 * T * H)                               # residual + LayerNorm, twice: 18432
    layer = qkv + qkv_quant + attention + attn_out + ffn + norms
    assert layer == 84992
    head = (3 * H + H + H) + 8 * H + L                            # pooler (quantize, bias, dequant), tanh, bias
    elementwise = emb + 2 * layer + head
    assert m["flops_equivalent_by_part"]["elementwise"] == elementwise == 184130
    assert m["fp_flops"] == elementwise + 2 * 128
    assert m["flops_equivalent"] == m["fp_flops"] + binary_ops / 64 == 348738


def test_tiny_ensemble_and_reference_by_hand():
    r = stats(parse_model_spec("synthetic:tiny"))
    e, ref = r["ensemble"], r["fp32_bert"]
    assert e["params"]["full_precision"] == 2 * 3777 + 2         # + one alpha per member
    assert e["bytes"]["total"] == 2 * 32340 + 2 * 4
    assert e["ops"]["flops_equivalent"] == 2 * 348738 + 2 * 2 * L  # + alpha * logits, summed
    # FP32 BERT of the same shape: every parameter float32, 2 FLOPs per MAC
    params = (V + P + TT) * H + 2 * H \
        + 2 * (4 * (H * H + H) + (H * I + I) + (I * H + H) + 4 * H) + (H * H + H) + (L * H + L)
    assert ref["params"]["total"] == ref["params"]["full_precision"] == params == 139586
    assert ref["bytes"]["total"] == 4 * 139586
    macs = 1048576 + 65536 + 4096 + 128
    per_layer = (4 * T * H + T * I + T * H) + NH * T * T * (2 + 5) + 2 * T * H + 2 * 8 * T * H + 8 * T * I
    elementwise = (2 + 8) * T * H + 2 * per_layer + (H + 8 * H) + L
    assert ref["ops"]["flops_equivalent"] == 2 * macs + elementwise == 2338626
    assert r["reduction"]["size"] == pytest.approx(4 * 139586 / (2 * 32340 + 8))
    assert r["reduction"]["flops"] == pytest.approx(2338626 / (2 * 348738 + 8))


# -- bert-base against the published figures -------------------------------------------------------
def test_bert_base_reproduces_published_figures():
    r = stats_for("synthetic:bert-base,members=3")
    ref, m = r["fp32_bert"], r["member"]
    assert ref["params"]["total"] == 109_483_778              # HF BertModel 109,482,240 + 2-label classifier
    assert ref["mib"] == pytest.approx(418, abs=0.5)           # "418 MB" (BiBERT Table 1) is MiB
    assert ref["ops"]["matmul_flops_equivalent"] / 1e9 == pytest.approx(22.35, abs=0.01)   # published 22.5G
    assert 22.3e9 < ref["ops"]["flops_equivalent"] < 22.6e9    # elementwise adds ~0.4%
    assert m["ops"]["matmul_flops_equivalent"] / 1e9 == pytest.approx(1.51, abs=0.01)     # BinaryBERT 1.5G
    assert 14.5 < r["reduction"]["flops_matmul_only_per_member"] < 15.5                   # the paper's 15x
    # the ensemble does `members` times one member's work
    assert r["reduction"]["flops_matmul_only"] == pytest.approx(r["reduction"]["flops_matmul_only_per_member"] / 3,
                                                                rel=1e-4)
    assert 4.0 < r["reduction"]["flops"] < 5.0
    # our member is 13.9 MiB (BinaryBERT: 16.5 MB): 3 members 10x, 2 members 15x (paper: 2 x 16.5 MB -> 13x)
    assert m["mib"] == pytest.approx(13.95, abs=0.05)
    assert 9.5 < r["reduction"]["size"] < 10.5
    assert 14.5 < stats_for("synthetic:bert-base,members=2")["reduction"]["size"] < 15.5
    assert r["paper"]["claims"]["size_reduction"] == 13 and r["paper"]["claims"]["flops_reduction"] == 15
    assert "15x / M" in r["paper"]["explanation"]
    assert "1/64" in r["convention"]["binary_op"]
    json.dumps(r)


def test_bibert_and_tws_scale_as_expected():
    bi = stats_for("synthetic:bert-base,members=1,base=bibert")
    assert bi["member"]["ops"]["matmul_flops_equivalent"] / 1e9 == pytest.approx(0.35, abs=0.01)  # BiBERT: 0.4G
    assert bi["member"]["mib"] == pytest.approx(13.95, abs=0.05)                                    # BiBERT: 13.4 MB
    one = stats_for("synthetic:bert-base,members=1")["member"]
    tws = stats_for("synthetic:bert-base,members=1,tws=1")["member"]
    enc = 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 768 * 768   # encoder + pooler sign bits, doubled by TWS
    assert tws["params"]["binary"] - one["params"]["binary"] == enc
    assert tws["ops"]["binary_macs"] - one["ops"]["binary_macs"] == 128 * (enc - 768 * 768) + 768 * 768


# -- spec parsing --------------------------------------------------------------------------------------
def test_spec_options():
    s = parse_model_spec(" synthetic:BERT-base, members=5, abits=2, seq=256, tws=1, labels=3 ")
    assert (s.layers, s.hidden, s.members, s.act_bits, s.attn_bits, s.seq, s.tws, s.num_labels) == \
        (12, 768, 5, 2, 2, 256, True, 3)
    assert parse_model_spec("synthetic:minilm-l6").intermediate == 1536
    b = parse_model_spec("synthetic:tiny,base=bibert")
    assert (b.act_bits, b.attn_bits, b.bi_attention) == (1, 1, True)
    assert parse_model_spec("synthetic:tiny,seq=100").max_position == 100   # positions grow with seq


@pytest.mark.parametrize("spec, why", [
    ("synthetic:bert-large", "unknown preset 'bert-large'"),
    ("bert-base", "missing 'synthetic:'"),
    ("gemm:bert-base", "unknown kind"),
    ("synthetic:tiny,heads=4", "unknown option 'heads=4'"),
    ("synthetic:tiny,members", "unknown option 'members'"),
    ("synthetic:tiny,members=0", "members = '0' is not a positive integer"),
    ("synthetic:tiny,members=65", "members = 65 outside 1..64"),
    ("synthetic:tiny,abits=9", "abits = 9 outside 1..8"),
    ("synthetic:tiny,abits=x", "abits = 'x' is not a positive integer"),
    ("synthetic:tiny,seq=-1", "seq = '-1' is not a positive integer"),
    ("synthetic:tiny,base=fp", "base = 'fp' not one of binarybert, bibert"),
    ("synthetic:tiny,base=bibert,abits=4", "bibert has 1-bit activations"),
    ("synthetic:tiny,tws=yes", "tws = 'yes' not one of 0, 1"),
    ("synthetic:tiny,seq=8,seq=9", "option 'seq' given twice"),
])
def test_spec_errors(spec, why):
    with pytest.raises(TargetError) as e:
        parse_model_spec(spec)
    msg = str(e.value)
    assert why in msg and "\n" not in msg


def test_shape_is_validated():
    with pytest.raises(TargetError, match="not a multiple of heads"):
        replace(parse_model_spec("synthetic:tiny"), heads=3)
    with pytest.raises(TargetError, match="seq 65 exceeds max_position 64"):
        replace(parse_model_spec("synthetic:tiny"), seq=65)
    with pytest.raises(TargetError, match="nor an existing package, run or program folder"):
        stats_for("/nonexistent/run")
    with pytest.raises(TargetError, match="unknown option 'heads=4'"):
        stats_for("synthetic:tiny,heads=4")


# -- packages: the counts are what the package stores ------------------------------------------------
def bert_shape(s: EnsembleShape):
    """The model's `BertShape` of an ensemble shape (imports torch)."""
    from bebert.model.quant_bert import BertShape

    return BertShape(vocab_size=s.vocab, hidden_size=s.hidden, num_layers=s.layers, num_heads=s.heads,
                     intermediate_size=s.intermediate, max_position=s.max_position, type_vocab_size=s.type_vocab,
                     layer_norm_eps=1e-12, num_labels=s.num_labels)


def quant_config(s: EnsembleShape):
    """The members' `QuantConfig` of an ensemble shape (imports torch)."""
    from bebert.model.quant_bert import QuantConfig

    return QuantConfig(base=s.base, weight_bits=s.weight_bits, embed_bits=s.embed_bits, act_bits=s.act_bits,
                       attn_bits=s.attn_bits, bi_attention=s.bi_attention, split=s.tws)


def _stored_counts(tensors: dict, prefix: str) -> tuple[int, int]:
    """(sign bits, float32 values) of one member in a package's safetensors."""
    bits = fp = 0
    for k, t in tensors.items():
        if not k.startswith(prefix + "."):
            continue
        if k.endswith(".sign"):
            bits += int(tensors[k[:-5] + ".scale"].numel()) * int(tensors[k[:-5] + ".cols"].reshape(-1)[0])
        elif not k.endswith(".cols"):
            fp += t.numel()
    return bits, fp


@pytest.mark.parametrize("spec", ["synthetic:tiny", "synthetic:tiny,base=bibert,members=1",
                                  "synthetic:tiny,tws=1,abits=8,members=3"])
def test_counts_match_exported_package(tmp_path, spec):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from bebert.model.package import FORMAT, export_package
    from bebert.model.quant_bert import build

    assert FORMAT == PACKAGE_FORMAT
    shape = parse_model_spec(spec)
    torch.manual_seed(0)
    members = [build(bert_shape(shape), quant_config(shape)).eval() for _ in range(shape.members)]
    run = tmp_path / "run"
    export_package(run / "package", members, [1.0] * shape.members, task="rte", labels=["a", "b"],
                   max_seq_len=shape.seq)
    back = shape_from_package(run)                      # a run folder: its package/
    assert back == replace(shape, max_position=back.max_position)
    assert shape_from_package(run / "package") == back
    tensors = load_file(str(run / "package" / "weights.safetensors"))
    counted = stats(shape)["member"]["params"]
    for i in range(shape.members):
        assert _stored_counts(tensors, f"m{i}") == (counted["binary"], counted["full_precision"])
    assert stats_for(str(run))["ensemble"] == stats(back)["ensemble"]


def test_package_errors(tmp_path):
    with pytest.raises(TargetError, match="neither an ensemble package nor a run folder"):
        shape_from_package(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(TargetError, match=f"not a {PACKAGE_FORMAT} manifest"):
        stats_for(str(tmp_path))
    q = {"base": "binarybert", "weight_bits": 1, "embed_bits": 1, "act_bits": 4, "attn_bits": 4,
         "bi_attention": False, "split": False}
    m = {"format": PACKAGE_FORMAT, "max_seq_len": 16,
         "shape": {"vocab_size": 60, "hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 40,
                   "max_position": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "num_labels": 3},
         "members": [{"quant": q, "alpha": 1.0}, {"quant": dict(q, act_bits=8), "alpha": 1.0}]}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(TargetError, match="members are quantized differently"):
        shape_from_package(tmp_path)
    mixed = stats_for(str(tmp_path))  # members quantized differently: each counted as itself, summed
    per = [stats(EnsembleShape(2, 16, 2, 40, 60, 32, 2, 3, members=1, seq=16, act_bits=b, attn_bits=4))
           for b in (4, 8)]
    assert mixed["shape"]["mixed"] and len(mixed["members"]) == 2
    assert mixed["ensemble"]["ops"]["binary_ops"] == sum(p["member"]["ops"]["binary_ops"] for p in per)
    assert mixed["ensemble"]["bytes"]["total"] == pytest.approx(
        sum(p["member"]["bytes"]["total"] for p in per) + 2 * 4)  # + one alpha per member
    m["members"] = m["members"][:1]
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    assert shape_from_package(tmp_path) == EnsembleShape(2, 16, 2, 40, 60, 32, 2, 3, members=1, seq=16)
    del m["shape"]["num_heads"]
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(TargetError, match="malformed manifest"):
        stats_for(str(tmp_path))


# -- programs -------------------------------------------------------------------------------------------
def test_program_targets(tmp_path):
    from pathlib import Path

    from bebert.compiler import compile_spec
    from bebert.config import AccelConfig

    cfg = AccelConfig.from_toml(Path(__file__).resolve().parents[1] / "configs" / "small.toml")
    prog = compile_spec("gemm:4,50,6,2", cfg, seed=1)
    r = stats_for(str(prog.write(tmp_path / "gemm")))
    assert r["shape"] == {"kind": "gemm", "M": 4, "K": 50, "N": 6, "in_bits": 2}
    assert r["layer"]["params"]["binary"] == 300 and r["layer"]["ops"]["binary_ops"] == 2 * 4 * 50 * 6 * 2
    assert r["reduction"]["size"] == pytest.approx(4 * (300 + 6) / (300 / 8 + 4 * 12))
    prog.meta["model"] = "synthetic:tiny,members=1"
    r = stats_for(str(prog.write(tmp_path / "model")))
    assert r["shape"]["members"] == 1 and r["member"]["ops"]["flops_equivalent"] == 348738
    assert np.isfinite(r["reduction"]["flops"])


def test_stats_of_a_whole_model_program(tmp_path):
    """`bebert stats PROGRAM` on a compiled ensemble: the model's counts and reductions, plus what
    the program itself issues (binary operations in XNOR and AND mode, vector-unit work, bytes)."""
    from bebert.compiler import compile_model
    from bebert.compiler.stats import stats_for
    from bebert.config import AccelConfig

    compile_model("synthetic:tiny", AccelConfig()).write(tmp_path / "p")
    d = stats_for(str(tmp_path / "p"))
    assert d["reduction"] == stats_for("synthetic:tiny")["reduction"]
    prog = d["program"]
    assert prog["binary_ops"]["xnor"] > 0 and prog["binary_ops"]["and"] > 0
    assert prog["by_opcode"]["VEC"] > 0 and prog["vector_lane_ops"] > 0
    assert prog["scratch_bytes"] < prog["scratch_bytes_without_reuse"]
