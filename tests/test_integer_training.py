"""Training on the integer path's values: the forward is the integer path bit for bit, the
gradient the fake-quant model's, and the grids trained on are the grids exported."""

import json

import pytest
import torch

from bebert.model import glue, stages
from bebert.model import batching as B
from bebert.model import integer_path as IP
from bebert.model import integer_training as IT
from bebert.model import train as T
from bebert.model.package import load_package

from test_model_train import GLUE_DIR, backbone, one_thread, run_cli, small_cfg  # noqa: F401

pytestmark = pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(), reason="GLUE TSVs not found")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, backbone):  # noqa: F811
    """A 1-member run with one integer epoch, and a batch of its training data."""
    out = tmp_path_factory.mktemp("int") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # as every test here (one_thread): the resumed run must equal this bit for bit
    T.train(small_cfg(out, backbone, members=1, integer_epochs=1))
    torch.set_num_threads(n)
    pkg = load_package(out / "package")
    examples = glue.load_split(glue.get_task("sst2"), "dev", str(GLUE_DIR), 24, seed=0)
    data = glue.encode(examples, pkg.tokenizer(), 16, False)
    return out, pkg, data


def test_the_anchored_forward_is_the_integer_path_bit_for_bit(trained):
    _, pkg, data = trained
    member, grids = pkg.members[0], pkg.integer_scales[0]
    batch = B.take(data, torch.arange(12))
    want = IP.apply_integer_member(IP.integer_member(member, grids), batch)
    member.train()
    got = IT.anchored_logits(member, grids, batch)
    assert torch.equal(got.detach(), want)
    tables = IP.embedding_tables(member, grids)   # frozen embeddings: the same values, cached tables
    assert torch.equal(IT.anchored_logits(member, grids, batch, tables).detach(), want)
    assert torch.equal(IT.integer_predict(member, grids, data)[:12], IP.apply_integer_member(
        IP.integer_member(member, grids), B.take(data, torch.arange(12))))


def test_the_anchored_forward_carries_the_fake_quant_gradient(trained):
    _, pkg, data = trained
    member, grids = pkg.members[0], pkg.integer_scales[0]
    member.train()
    member.zero_grad()
    loss = torch.nn.functional.cross_entropy(IT.anchored_logits(member, grids, B.take(data, torch.arange(12))),
                                             data["labels"][:12])
    loss.backward()
    layer = member.layers[0]
    for p in (layer.ffn_in.weight, layer.attn_ln.weight, layer.attn.q_quant.step, member.classifier.weight,
              member.embeddings.ln.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_an_integer_stage_exports_the_grids_it_trained_on(trained, capsys):
    out, pkg, _ = trained
    assert (out / "member_0.fq.safetensors").is_file() and not (out / "ckpt.pt").exists()
    kept = stages.model_extra(out / "member_0.safetensors", "integer_scales")
    assert pkg.integer_scales[0] == {k: tuple(v) for k, v in kept.items()}
    assert pkg.manifest["integer_calibration"]["trained_on"] == [True]
    # the member trained further, from the member its stage made
    fq = stages.load_model(out / "member_0.fq.safetensors")
    assert not torch.equal(fq.layers[0].ffn_in.weight, pkg.members[0].layers[0].ffn_in.weight)
    code, cap = run_cli(["eval", str(out), "--max-eval-examples", "16", "--json", "--integer"], capsys)
    assert code == 0 and json.loads(cap.out)["integer"]


def test_an_interrupted_integer_stage_resumes_exactly(tmp_path, backbone, trained, monkeypatch):  # noqa: F811
    real_save = stages._save_ckpt

    def interrupted(path, state):
        real_save(path, state)
        if state["what"] == "member0.integer":
            raise KeyboardInterrupt

    monkeypatch.setattr(stages, "_save_ckpt", interrupted)
    with pytest.raises(KeyboardInterrupt):
        T.train(small_cfg(tmp_path / "b", backbone, members=1, integer_epochs=1))
    monkeypatch.setattr(stages, "_save_ckpt", real_save)
    assert (tmp_path / "b" / "member_0.fq.safetensors").is_file()
    T.train(small_cfg(tmp_path / "b", backbone, members=1, integer_epochs=1), resume=True)
    a = (trained[0] / "package" / "weights.safetensors").read_bytes()
    assert (tmp_path / "b" / "package" / "weights.safetensors").read_bytes() == a


def test_without_integer_epochs_a_run_is_unchanged_and_old_runs_resume(tmp_path, backbone):  # noqa: F811
    out = tmp_path / "plain"
    T.train(small_cfg(out, backbone, members=1))
    assert not (out / "member_0.fq.safetensors").exists()
    assert "trained_on" not in json.loads((out / "package" / "manifest.json").read_text())["integer_calibration"]
    cfg = json.loads((out / "config.json").read_text())
    del cfg["integer_epochs"], cfg["integer_lr"]     # a run made before the option existed
    (out / "config.json").write_text(json.dumps(cfg))
    T.train(small_cfg(out, backbone, members=1), resume=True)


@pytest.mark.parametrize("bad, why", [("-1", "--integer-epochs must be in 0..100"),
                                      ("nan", "--integer-lr must be a positive finite number")])
def test_bad_integer_options_are_one_line(tmp_path, capsys, bad, why):
    flag = "--integer-epochs" if why.startswith("--integer-epochs") else "--integer-lr"
    code, cap = run_cli(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), flag, bad,
                         "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and why in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_imatmul_is_exact_on_both_sides_of_the_float32_range():
    g = torch.Generator().manual_seed(0)
    for top in (7, 4095, 1 << 15):   # products summed below 2^24 (float32), below 2^53 (float64)
        a = torch.randint(-top, top + 1, (5, 9, 384), generator=g)
        b = torch.randint(-1, 2, (384, 11), generator=g) * (1 if top < 100 else top)
        assert torch.equal(IP.imatmul(a, b), a @ b)
