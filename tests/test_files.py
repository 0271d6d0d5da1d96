"""Writing results: atomic files, strict JSON, output folders that are never someone else's."""

import json
import math

import numpy as np
import pytest

from bebert.files import OutputError, atomic_path, atomic_write, claim_output_dir, to_json, write_json


def test_an_atomic_write_leaves_no_temporary_file_and_replaces_whole(tmp_path):
    atomic_write(tmp_path / "a" / "f.txt", "old")
    atomic_write(tmp_path / "a" / "f.txt", b"new")
    assert (tmp_path / "a" / "f.txt").read_text() == "new"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["f.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    atomic_write(tmp_path / "f", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert (tmp_path / "f").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_json_is_strict_numpy_values_are_numbers_and_non_finite_floats_are_null(tmp_path):
    obj = {"nan": math.nan, "inf": np.float64("inf"), "x": np.int64(3), "a": np.arange(2), "t": (1.5,)}
    text = to_json(obj)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == \
        {"nan": None, "inf": None, "x": 3, "a": [0, 1], "t": [1.5]}
    write_json(tmp_path / "r.json", obj)
    assert json.loads((tmp_path / "r.json").read_text())["x"] == 3


def test_an_output_folder_is_taken_when_new_empty_or_of_the_same_kind(tmp_path):
    is_prog = lambda p: (p / "manifest.json").is_file()  # noqa: E731
    assert claim_output_dir(tmp_path / "new", "program", is_prog).is_dir()
    (tmp_path / "empty").mkdir()
    claim_output_dir(tmp_path / "empty", "program", is_prog)
    same = tmp_path / "same"
    same.mkdir()
    (same / "manifest.json").write_text("{}")
    (same / "outputs.npz").write_text("stale")
    claim_output_dir(same, "program", is_prog, stale=["outputs.npz", "timeline.png"])
    assert sorted(p.name for p in same.iterdir()) == ["manifest.json"]


def test_an_output_folder_of_another_kind_or_a_file_is_refused_untouched(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "weights.safetensors").write_text("trained")
    with pytest.raises(OutputError, match="not a program; refusing to overwrite"):
        claim_output_dir(pkg, "program", lambda p: False, stale=["weights.safetensors"])
    assert (pkg / "weights.safetensors").read_text() == "trained"
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        claim_output_dir(tmp_path / "f", "program", lambda p: True)
