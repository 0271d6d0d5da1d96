"""`bebert demo --quick`: the whole chain on the tiny model, with a report and its plots."""

import json

import pytest

from bebert.cli import main

pytestmark = pytest.mark.rtl  # the demo verifies programs on the RTL (Icarus)


def test_quick_demo_passes_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "PASS" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["golden"]["exact"] and report["passed"]
    assert all(v["passed"] for v in report["rtl"]["verify"])
    md = (out / "REPORT.md").read_text()
    for png in ("sim/breakdown.png", "sim/timeline.png", "dse/latency_energy.png", "dse/area_throughput.png"):
        assert f"]({png})" in md and (out / png).stat().st_size > 0, png
    # a figure without data (no trained runs) is named with the reason, not shown
    assert "`dse/accuracy_energy.png`: " in md and (out / "dse/accuracy_energy.png").is_file()
    # the sweep's Pareto front, with the area model's LUTs, is in the report
    front = report["dse"]["front"]
    assert len(front) == report["dse"]["pareto_points"] >= 3 and all(x["luts_model"] > 0 for x in front)
    assert "| pe_rows | vec_lanes |" in md and "LUTs (area model)" in md
    assert (out / "dse" / "points.csv").is_file() and (out / "model" / "program.bin").is_file()
