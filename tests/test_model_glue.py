"""GLUE loading from the real TSVs in the repository's sibling shared/data/glue (or $BEBERT_GLUE_DIR)."""

import os
from pathlib import Path

import pytest

from bebert.model import glue
from bebert.model.glue import DataError

GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"))
needs_glue = pytest.mark.skipif(not (GLUE_DIR / "RTE" / "train.tsv").is_file(),
                                reason=f"GLUE TSVs not found in {GLUE_DIR} (set BEBERT_GLUE_DIR)")


@needs_glue
@pytest.mark.parametrize("task,split,rows,first_label", [
    ("rte", "train", 2490, 1), ("rte", "dev", 277, 1), ("mrpc", "train", 3668, 1), ("cola", "dev", 1043, 1),
    ("sst2", "dev", 872, 1), ("wnli", "train", 635, 1), ("qnli", "dev", 5463, 0), ("stsb", "dev", 1500, 5.0),
])
def test_real_files(task, split, rows, first_label):
    ex = glue.load_split(task, split, GLUE_DIR)
    assert len(ex) == rows
    assert ex[0].label == first_label
    t = glue.get_task(task)
    assert (ex[0].text_b is None) == (t.text_b is None)


@needs_glue
def test_mrpc_bom_and_bare_quotes():
    ex = glue.load_split("mrpc", "dev", GLUE_DIR)
    assert ex[0].text_b.startswith('" The foodservice')  # QUOTE_NONE keeps the bare quote


@needs_glue
def test_cola_has_no_header():
    ex = glue.load_split("cola", "dev", GLUE_DIR)
    assert ex[0].text_a == "The sailors rode the breeze clear of the rocks." and ex[0].label == 1


@needs_glue
def test_seeded_subset():
    a = glue.load_split("sst2", "train", GLUE_DIR, max_examples=50, seed=3)
    b = glue.load_split("sst2", "train", GLUE_DIR, max_examples=50, seed=3)
    assert a == b and len(a) == 50 and {e.label for e in a} == {0, 1}


@needs_glue
def test_heldout_indices_are_exactly_what_a_seeded_subset_leaves_out():
    every = glue.load_split("rte", "train", GLUE_DIR)
    kept = glue.load_split("rte", "train", GLUE_DIR, max_examples=400, seed=7)
    used, rest = glue.subset_indices(len(every), 400, seed=7), glue.heldout_indices(len(every), 400, seed=7)
    assert kept == [every[i] for i in used]
    assert not set(used) & set(rest) and sorted([*used, *rest]) == list(range(len(every)))


@needs_glue
def test_missing_split_file():
    with pytest.raises(DataError, match="missing GLUE file"):
        glue.load_split("mnli", "dev_mismatched", GLUE_DIR)


def test_all_nine_tasks():
    assert set(glue.TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
    assert glue.get_task("mnli").dev_splits == ("dev_matched", "dev_mismatched")
    assert glue.get_task("SST-2").name == "sst2"
    assert glue.get_task("stsb").is_regression and glue.get_task("mnli").num_labels == 3


def test_unknown_task_and_missing_dir(tmp_path):
    with pytest.raises(DataError, match="unknown GLUE task"):
        glue.get_task("squad")
    with pytest.raises(DataError, match="does not exist"):
        glue.load_split("rte", "train", tmp_path / "nowhere")


def test_malformed_tsv(tmp_path):
    (tmp_path / "RTE").mkdir()
    f = tmp_path / "RTE" / "train.tsv"
    f.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly two\n")
    with pytest.raises(DataError, match=r"train.tsv:3: expected 4"):
        glue.load_split("rte", "train", tmp_path)
    f.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(DataError, match="label 'maybe'"):
        glue.load_split("rte", "train", tmp_path)
    f.write_text("idx\ttext\n0\ta\n")
    with pytest.raises(DataError, match="no column 'sentence1'"):
        glue.load_split("rte", "train", tmp_path)


def test_offline_hub_is_a_data_error(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="pass --data-dir"):
        glue.load_split("rte", "train", None)


def test_compute_metrics():
    assert glue.compute_metrics("mrpc", [1, 0, 1], [1, 1, 1]) == pytest.approx({"accuracy": 2 / 3, "f1": 0.8})
    assert set(glue.compute_metrics("stsb", [1.0, 2.0, 3.5], [1.2, 2.5, 3.0])) == {"pearson", "spearman"}
    assert glue.main_score("mrpc", {"accuracy": 0.5, "f1": 0.7}) == pytest.approx(0.6)


def test_mnli_and_qqp_layouts(tmp_path):
    (tmp_path / "MNLI").mkdir()
    head = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label\n"
    row = "0\t1\t1n\tfiction\t(a)\t(b)\t(a)\t(b)\tThe cat sat.\tA cat sat.\tentailment\tentailment\n"
    for f in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        (tmp_path / "MNLI" / f).write_text(head + row)
    ex = glue.load_split("mnli", "dev_mismatched", tmp_path)
    assert ex == [glue.Example("The cat sat.", "A cat sat.", 1)]
    assert glue.load_split("mnli", "dev", tmp_path) == ex  # "dev" is the matched split
    (tmp_path / "QQP").mkdir()
    (tmp_path / "QQP" / "train.tsv").write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                                "5\t1\t2\tWhy?\tHow?\t0\n")
    assert glue.load_split("qqp", "train", tmp_path) == [glue.Example("Why?", "How?", 0)]
