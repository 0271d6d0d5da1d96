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
    for png in ("sim/breakdown.png", "sim/timeline.png", "dse/latency_energy.png"):
        assert f"]({png})" in md and (out / png).stat().st_size > 0, png
    # figures without data (no trained runs; no Yosys in --quick) are named with the reason, not shown
    for png in ("dse/accuracy_energy.png", "dse/area_throughput.png"):
        assert f"`{png}`: " in md and (out / png).is_file(), png
    assert (out / "dse" / "points.csv").is_file() and (out / "model" / "program.bin").is_file()
