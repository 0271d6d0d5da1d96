"""Package export and reload: bit-exact logits, and one-line errors for damaged packages."""

import json

import pytest
import torch

from bebert.model.package import (
    CAL_HEADROOM, IntegerModel, IntegerPathUnavailable, PackageError, calibrate_scales, export_package, integer_logits,
    integer_model, load_package, member_logits)
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
    m["version"] = 1  # v1 calibrated the integer path on each batch: refused, one line
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="package version 1, this bebert reads versions 2, 3") as e:
        load_package(p)
    assert "\n" not in str(e.value)
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
    b = batch()
    pkg = load_package(export_package(tmp_path / "pkg", ms, [1.0] * 3, task="mnli", labels=["c", "e", "n"],
                                      max_seq_len=12, calibration=b))
    for f, i, bound in zip(member_logits(pkg, b), integer_logits(pkg, b), (0.995, 0.995, 0.9)):
        assert i.shape == f.shape
        assert torch.corrcoef(torch.stack([f.reshape(-1), i.reshape(-1)]))[0, 1] > bound


def test_integer_path_needs_the_calibrated_grids(tmp_path, members):
    """A package exported without calibration data has no 16-bit grids: refused in one line
    (BiBERT members have an integer path: tests/test_bibert.py)."""
    p = export_package(tmp_path / "pkg", [members[1]], [1.0], task="rte", labels=["a", "b"], max_seq_len=12)
    with pytest.raises(ValueError, match="--integer: member 0 has no integer_scales") as e:
        integer_logits(load_package(p), batch())
    assert "\n" not in str(e.value)


def test_bi_attention_with_multi_bit_activations_has_no_integer_path(tmp_path):
    from bebert.model.integer_path import IntegerPathUnavailable, integer_member

    m = trained(QuantConfig("bibert", 1, 1, 4, 1, bi_attention=True), 0)
    with pytest.raises(IntegerPathUnavailable, match="Bi-Attention .* needs 1-bit activations"):
        integer_member(m, {})


def other_batch():
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(1, 60, (3, 12), generator=g)
    return {"input_ids": ids, "token_type_ids": torch.ones_like(ids), "attention_mask": torch.ones_like(ids)}


def cat(*bs):
    return {k: torch.cat([b[k] for b in bs]) for k in bs[0]}


@pytest.fixture
def int_pkg(tmp_path):
    q8 = QuantConfig("binarybert", 1, 1, 8, 8)
    ms = [trained(q8, 0), tws_split(trained(q8.ternary(), 1)).eval(), trained(QuantConfig.preset("binarybert"), 2)]
    return load_package(export_package(tmp_path / "pkg", ms, [1.0, 0.5, 2.0], task="mnli", labels=["c", "e", "n"],
                                       max_seq_len=12, calibration=batch(), calibration_source="test batch"))


def test_integer_logits_do_not_depend_on_the_batch(int_pkg):
    """The integer path is a pure function of the package: an example's logits are the same
    alone and inside any batch (v1 calibrated the grids on each batch, and these differed)."""
    b, o = batch(), other_batch()
    whole = integer_logits(int_pkg, cat(b, o))
    for i in range(4):
        alone = integer_logits(int_pkg, {k: v[i:i + 1] for k, v in b.items()})
        mixed = integer_logits(int_pkg, cat({k: v[i:i + 1] for k, v in b.items()}, o))
        for w, a, x in zip(whole, alone, mixed):
            assert torch.equal(a[0], w[i]) and torch.equal(a[0], x[0])
    for w, a in zip(whole, integer_logits(int_pkg, o)):  # examples never seen in calibration
        assert torch.equal(w[4:], a)
    for w, a in zip(whole, integer_logits(int_pkg, cat(b, o), batch_size=2)):
        assert torch.equal(w, a)


def test_integer_scales_round_trip(int_pkg, tmp_path):
    """The grids stored at export are the calibration set's, reloaded exactly, and the integer
    model built from them is plain data that reproduces integer_logits."""
    cal = int_pkg.manifest["integer_calibration"]
    assert cal == {"examples": 4, "source": "test batch", "headroom": CAL_HEADROOM, "bits": 16}
    for m, sc in zip(int_pkg.members, int_pkg.integer_scales):
        assert {k: list(v) for k, v in sc.items()} == calibrate_scales(m, batch())
    im = integer_model(int_pkg)
    assert isinstance(im, IntegerModel) and len(im.members) == 3 and im.alphas == (1.0, 0.5, 2.0)
    lay = im.members[1].layers[0]
    assert lay.query.split and lay.query.layer.sign.shape == (16, 32) and lay.ffn_out.act is None
    assert im.members[0].word.dtype.name == "int32" and im.members[0].word.shape == (60, 16)
    b = other_batch()
    for a, c in zip(integer_logits(int_pkg, b), integer_logits(int_pkg, b, model=im)):
        assert torch.equal(a, c)


def test_integer_path_needs_stored_calibration(tmp_path, members):
    p = export_package(tmp_path / "pkg", [members[0]], [1.0], task="rte", labels=["a", "b"], max_seq_len=12)
    pkg = load_package(p)
    assert pkg.integer_scales == [None] and pkg.manifest["integer_calibration"] is None
    with pytest.raises(IntegerPathUnavailable, match="no integer_scales"):
        integer_logits(pkg, batch())


def big_batch(n=64, seed=7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (n, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, 8:] = 0
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": mask}


def test_eval_integer_predictions_come_from_integers_only(int_pkg, monkeypatch):
    """The ensemble's prediction is SAMME's vote on Q15.16 logit codes with the package's
    fixed-point alphas: no float logit is ever formed (the dequantization is made to fail)."""
    import numpy as np

    import bebert.model.integer_path as P
    from bebert.model import vote as V

    rec = int_pkg.manifest["integer_vote"]
    assert int_pkg.vote == "samme" and rec["alpha_q"] == [65536, 32768, 131072] and rec["alpha_frac"] == 16
    accs = P.integer_member_accumulators(int_pkg, big_batch())

    def no_floats(*a, **k):
        raise AssertionError("the integer path formed float logits")

    monkeypatch.setattr(P, "apply_integer_member", no_floats)
    members, ens = P.integer_predictions(int_pkg, big_batch())
    assert all(p.dtype == np.int64 for p in members) and ens.dtype == np.int64
    vote = P.integer_model(int_pkg).vote
    codes = [V.logit_codes(a, m) for a, m in zip(accs, vote.members)]
    by_hand = np.zeros((64, 3), np.int64)
    for a_q, c in zip(rec["alpha_q"], codes):
        by_hand[np.arange(64), c.argmax(1)] += a_q
    assert np.array_equal(ens, by_hand.argmax(1))
    assert all(np.array_equal(p, c.argmax(1)) for p, c in zip(members, codes))


def test_integer_path_predicts_what_the_fake_quant_model_predicts(int_pkg):
    """The integer-vs-fake-quant gap on a small set: 8-bit members agree on nearly every example."""
    import numpy as np

    from bebert.model import ensemble as E
    from bebert.model.integer_path import integer_predictions

    b = big_batch()
    with torch.no_grad():
        logits = [m(b["input_ids"], b["token_type_ids"], b["attention_mask"]) for m in int_pkg.members]
    members, ens = integer_predictions(int_pkg, b)
    for z, p in zip(logits, members):
        assert np.mean(E.predictions(z) == p) >= 0.9
    assert np.mean(E.predictions(E.combine(logits, int_pkg.alphas)) == ens) >= 0.9


def test_integer_matmul_is_exact_through_float64():
    from bebert.model.integer_path import imatmul

    g = torch.Generator().manual_seed(0)
    a = torch.randint(-(1 << 15), 1 << 15, (5, 384), generator=g)
    b = torch.randint(-(1 << 15), 1 << 15, (384, 3), generator=g)
    assert torch.equal(imatmul(a, b), a @ b) and imatmul(a, b).dtype == torch.int64  # 2^39: float64, exact
    big = torch.full((2, 4), 1 << 40, dtype=torch.int64)
    assert torch.equal(imatmul(big, big.t()), big @ big.t())  # beyond 2^53: the int64 kernel
