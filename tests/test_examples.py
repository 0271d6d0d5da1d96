"""The example scripts run (cheap settings) and write what they say they write."""

import csv
import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *argv: str) -> None:
    old = sys.argv
    sys.argv = [name, *argv]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        assert e.value.code == 0
    finally:
        sys.argv = old


def test_sweep_array(tmp_path):
    run_example("sweep_array.py", "--quick", "--out", str(tmp_path))
    rows = list(csv.DictReader(open(tmp_path / "sweep_array.csv")))
    assert len(rows) == 4 and (tmp_path / "sweep_array.png").stat().st_size > 0
    cycles = {(int(r["pe_rows"]), int(r["pe_cols"])): int(r["cycles"]) for r in rows}
    assert cycles[(8, 8)] <= cycles[(4, 4)]  # a bigger array is never slower on the same model


def test_members_vs_cost_with_a_saved_evaluation(tmp_path):
    ev = {"task": "rte", "integer": True, "splits": {"validation": {
        "examples": 277, "members": [{"accuracy": 0.52}, {"accuracy": 0.54}], "ensemble": {"accuracy": 0.56}}}}
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    run_example("members_vs_cost.py", "--quick", "--runs", f"2:4={tmp_path / 'eval.json'}", "--out", str(tmp_path))
    rows = list(csv.DictReader(open(tmp_path / "members_vs_cost.csv")))
    assert [(r["members"], r["accuracy"]) for r in rows] == [("1", ""), ("2", "0.56")]
    assert float(rows[1]["energy_per_inference_j"]) > float(rows[0]["energy_per_inference_j"])
    assert (tmp_path / "members_vs_cost.png").stat().st_size > 0
