"""Package export and reload: bit-exact logits, and one-line errors for damaged packages."""

import json

import pytest
import torch

from bebert.model.package import PackageError, export_package, integer_logits, load_package, member_logits
from bebert.model.quant_bert import BertShape, QuantConfig, build, tws_split


def tiny_shape(num_labels=3):
    return BertShape(vocab_size=60, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=40,
                     max_position=32, type_vocab_size=2, layer_norm_eps=1e-12, num_labels=num_labels)


def batch():
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1, 60, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}


def trained(quant, seed):
    torch.manual_seed(seed)
    m = build(tiny_shape(), quant).train()
    b = batch()
    m(b["input_ids"], b["token_type_ids"], b["attention_mask"])  # LSQ steps initialised from data
    return m.eval()


@pytest.fixture
def members():
    ternary = trained(QuantConfig.preset("binarybert").ternary(), 2)
    return [trained(QuantConfig.preset("binarybert"), 0), trained(QuantConfig.preset("bibert"), 1),
            tws_split(ternary).eval(), trained(QuantConfig(weight_bits=4, embed_bits=8, act_bits=8, attn_bits=8), 3)]


def test_round_trip_is_exact(tmp_path, members):
    export_package(tmp_path / "pkg", members, [0.5, 1.0, 0.25, 2.0], task="mnli",
                   labels=["contradiction", "entailment", "neutral"], max_seq_len=12)
    pkg = load_package(tmp_path / "pkg")
    b = batch()
    with torch.no_grad():
        original = [m(b["input_ids"], b["token_type_ids"], b["attention_mask"]) for m in members]
    for a, r in zip(original, member_logits(pkg, b)):
        assert torch.equal(a, r)
    assert pkg.alphas == [0.5, 1.0, 0.25, 2.0] and pkg.task == "mnli"
    assert pkg.members[2].quant.split


def test_sign_bits_are_packed(tmp_path, members):
    from safetensors.torch import load_file

    export_package(tmp_path / "pkg", members[:1], [1.0], task="rte", labels=["a", "b"], max_seq_len=12)
    t = load_file(str(tmp_path / "pkg" / "weights.safetensors"))
    assert t["m0.layers.0.ffn_in.sign"].dtype == torch.uint8
    assert t["m0.layers.0.ffn_in.sign"].shape == (40, 2)  # 16 columns -> 2 bytes per row
    assert t["m0.layers.0.ffn_in.scale"].shape == (40,)
    assert "m0.layers.0.attn.q_quant.step" in t and "m0.embeddings.word.sign" in t


def test_corrupted_weights(tmp_path, members):
    p = export_package(tmp_path / "pkg", members[:1], [1.0], task="rte", labels=["a", "b"], max_seq_len=12)
    data = bytearray((p / "weights.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (p / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(PackageError, match="checksum"):
        load_package(p)


def test_mismatched_manifest(tmp_path, members):
    p = export_package(tmp_path / "pkg", members[:1], [1.0], task="rte", labels=["a", "b"], max_seq_len=12)
    m = json.loads((p / "manifest.json").read_text())
    m["shape"]["intermediate_size"] = 48
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="shape"):
        load_package(p)
    m["version"] = 99
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="version"):
        load_package(p)
    (p / "manifest.json").write_text("{not json")
    with pytest.raises(PackageError, match="not valid JSON"):
        load_package(p)
    with pytest.raises(PackageError, match="no manifest"):
        load_package(tmp_path)


def test_integer_path_follows_float_model(tmp_path):
    """The integer path (to_integer + I-BERT kernels) tracks the float model. At 8-bit
    activations code flips are rare and the logits agree closely; at 4 bits a flipped code in
    this 16-wide model moves the logits visibly, so only the trend is checked there."""
    q8 = QuantConfig("binarybert", 1, 1, 8, 8)
    ms = [trained(q8, 0), tws_split(trained(q8.ternary(), 1)).eval(), trained(QuantConfig.preset("binarybert"), 2)]
    with torch.no_grad():
        for m in ms:
            m.classifier.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
    pkg = load_package(export_package(tmp_path / "pkg", ms, [1.0] * 3, task="mnli", labels=["c", "e", "n"],
                                      max_seq_len=12))
    b = batch()
    for f, i, bound in zip(member_logits(pkg, b), integer_logits(pkg, b), (0.995, 0.995, 0.9)):
        assert i.shape == f.shape
        assert torch.corrcoef(torch.stack([f.reshape(-1), i.reshape(-1)]))[0, 1] > bound


def test_integer_path_rejects_bibert(tmp_path, members):
    p = export_package(tmp_path / "pkg", [members[1]], [1.0], task="rte", labels=["a", "b"], max_seq_len=12)
    with pytest.raises(ValueError, match="--integer"):
        integer_logits(load_package(p), batch())
