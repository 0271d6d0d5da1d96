"""Model targets: one parser turns gemm: / synthetic: / package / program text into a typed target."""

import json

import pytest

from bebert.ensemble_shape import PACKAGE_FORMAT
from bebert.target import (GemmTarget, PackageTarget, ProgramTarget, SyntheticTarget, TargetError, parse_target)

QUANT = {"base": "binarybert", "weight_bits": 1, "embed_bits": 1, "act_bits": 4, "attn_bits": 4,
         "bi_attention": False, "split": False}


def package(folder, **changes):
    """A package manifest (no weights: the parser reads only the manifest)."""
    m = {"format": PACKAGE_FORMAT, "max_seq_len": 16,
         "shape": {"vocab_size": 60, "hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 40,
                   "max_position": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "num_labels": 3},
         "members": [{"quant": QUANT, "alpha": 1.0}] * 2}
    m.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder


def test_each_form_parses_to_its_type(tmp_path):
    g = parse_target(" gemm:4,5,6,2u ")
    assert isinstance(g, GemmTarget) and (g.M, g.K, g.N, g.abits, g.asigned, g.obits) == (4, 5, 6, 2, False, 2)
    s = parse_target("synthetic:tiny,members=3")
    assert isinstance(s, SyntheticTarget) and s.shape.members == 3 and s.abits == 4
    run = tmp_path / "run"
    package(run / "package")
    p = parse_target(str(run))  # a run folder: its package/
    assert isinstance(p, PackageTarget) and p.path == (run / "package").resolve()
    assert (p.n_members, p.act_bits, p.max_seq_len) == (2, (4,), 16)
    assert parse_target(p) is p


def test_a_program_folder_is_a_target_only_where_programs_are_taken(tmp_path):
    from bebert.api import compile

    compile("gemm:4,64,8,2", "small").write(tmp_path / "prog")
    assert isinstance(parse_target(tmp_path / "prog", programs=True), ProgramTarget)
    with pytest.raises(TargetError, match="is a compiled program, not a model"):
        parse_target(tmp_path / "prog")


@pytest.mark.parametrize("text, words", [
    ("gemm:1048576,1048576,1048576,4", "M x K = 1,099,511,627,776 elements"),  # would ask torch for 4.4 TB
    ("gemm:65536,65536,8,4", "at most 67,108,864 per matrix"),
    ("conv:1,2,3,4", "nor an existing package"),
    ("synthetic:huge", "unknown preset 'huge'"),
    ("", "expected 'gemm:"),
])
def test_malformed_or_oversized_targets_are_one_line(text, words):
    with pytest.raises(TargetError) as e:
        parse_target(text)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("changes, words", [
    ({"max_seq_len": 100000}, "max_seq_len = 100000 outside 1..32"),
    ({"max_seq_len": "16"}, "max_seq_len = '16' is not an integer"),
    ({"max_seq_len": 16.5}, "max_seq_len = 16.5 is not an integer"),
    ({"members": []}, "members must be a non-empty list"),
    ({"format": "something-else"}, "not a bebert-ensemble-package manifest"),
])
def test_a_package_manifest_is_checked_before_anything_is_loaded(tmp_path, changes, words):
    with pytest.raises(TargetError) as e:
        parse_target(package(tmp_path / "pkg", **changes))
    assert words in str(e.value) and "\n" not in str(e.value)
