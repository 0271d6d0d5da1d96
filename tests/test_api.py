"""The Python API: plain functions over the toolkit's parts, returning frozen dataclasses."""

import dataclasses
import json

import pytest

from bebert import api, compiler
from bebert.config import AccelConfig, ConfigError
from bebert.program import Program


def test_load_config_takes_a_path_a_name_a_dict_or_nothing():
    from conftest import CONFIGS

    small = api.load_config("small")  # a shipped config, by name
    assert small == AccelConfig.from_toml(CONFIGS / "small.toml")
    assert api.load_config(CONFIGS / "small.toml") == small
    assert api.load_config(small.to_dict()) == small
    assert api.load_config(None) == AccelConfig()
    assert api.load_config(small) is small
    with pytest.raises(ConfigError, match="pe_rows must be a power of two"):
        api.load_config({"pe_rows": 3})
    with pytest.raises(ConfigError, match="no shipped config 'no-such-config'"):
        api.load_config("no-such-config")
    with pytest.raises(ConfigError, match="config file not found"):
        api.load_config("no/such.toml")


def test_compile_and_simulate_a_gemm_layer():
    program = api.compile("gemm:16,128,32,4", "small")
    assert isinstance(program, Program) and program.config.name == "small"
    rep = api.simulate(program)
    assert dataclasses.is_dataclass(rep)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.cycles = 0
    # the figures are the simulator's and the energy model's, nothing re-derived
    from bebert.sim import simulate
    from bebert.sim.energy import load_table
    from bebert.sim.report import sim_report

    full = sim_report(program, simulate(program), load_table("asic45"))
    assert rep.cycles == full["cycles"] and rep.energy_j == full["energy_j"]
    assert rep.latency_s == pytest.approx(rep.cycles / program.config.clock_hz)
    assert rep.energy_table == "asic45" and not rep.error
    fpga = api.simulate(program, energy="fpga")
    assert fpga.cycles == rep.cycles and fpga.energy_j != rep.energy_j


def test_simulate_reads_a_program_folder(tmp_path):
    program = api.compile("gemm:8,64,16,2", "small", seed=3)
    program.write(tmp_path / "p")
    assert api.simulate(tmp_path / "p").cycles == api.simulate(program).cycles


def test_compile_refuses_what_it_cannot_compile():
    with pytest.raises(ValueError, match="expected"):
        api.compile("", "small")
    with pytest.raises(ValueError, match="outside 1..8"):
        api.compile("gemm:8,64,16,9", "small")


@pytest.mark.skipif(not hasattr(compiler, "compile_model"), reason="bebert.compiler.compile_model not landed yet")
def test_compile_a_synthetic_ensemble():
    rep = api.simulate(api.compile("synthetic:tiny,members=2,abits=4,seq=16", "small"))
    assert rep.cycles > 0 and rep.energy_per_inference_j > 0


EVAL = {"task": "rte", "integer": True, "alphas": [0.9, 0.4], "run": "r",
        "splits": {"validation": {"examples": 277, "members": [{"accuracy": 0.55}, {"accuracy": 0.53}],
                                  "ensemble": {"accuracy": 0.57}}}}


def test_evaluate_accuracy_reads_saved_eval_results(tmp_path):
    f = tmp_path / "eval.json"
    f.write_text(json.dumps(EVAL))
    r = api.evaluate_accuracy(f)
    assert (r.task, r.split, r.value, r.members, r.integer, r.examples) == \
        ("rte", "validation", 0.57, (0.55, 0.53), True, 277)
    # a run folder: its saved eval.json (eval_integer.json for the integer path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval_integer.json").write_text(json.dumps(EVAL))
    assert api.evaluate_accuracy(run, integer=True, run_eval=False).value == 0.57
    with pytest.raises(api.ApiError, match="no saved eval.json"):
        api.evaluate_accuracy(run, run_eval=False)
    with pytest.raises(api.ApiError, match="not found"):
        api.evaluate_accuracy(tmp_path / "nope")


def test_the_default_metric_is_the_mean_of_the_task_metrics(tmp_path):
    mrpc = {"task": "mrpc", "splits": {"validation": {"examples": 408, "members": [{"accuracy": 0.7, "f1": 0.8}],
                                                       "ensemble": {"accuracy": 0.75, "f1": 0.85}}}}
    f = tmp_path / "e.json"
    f.write_text(json.dumps(mrpc))
    assert api.evaluate_accuracy(f).value == pytest.approx(0.8)
    assert api.evaluate_accuracy(f, metric="f1").value == 0.85
    with pytest.raises(api.ApiError, match="no metric 'mcc'"):
        api.evaluate_accuracy(f, metric="mcc")
    f.write_text("[1, 2]")
    with pytest.raises(api.ApiError, match="expected the JSON object"):
        api.evaluate_accuracy(f)


def test_the_area_cache_key_ignores_only_what_the_verilog_ignores():
    small = api.load_config("small")
    assert api.area_key(small) == api.area_key(small.replace(name="x", clock_mhz=300.0))
    assert api.area_key(small) != api.area_key(small.replace(dram_latency_cycles=9))


@pytest.mark.slow
def test_estimate_area_of_a_tiny_config_is_cached(tmp_path):
    cfg = api.load_config("small").replace(pe_rows=2, dram_bytes_per_cycle=4)
    a = api.estimate_area(cfg, cache_dir=tmp_path)
    assert a.luts > 0 and a.ffs > 0 and not a.cached
    b = api.estimate_area(cfg.replace(clock_mhz=50.0), cache_dir=tmp_path)
    assert b.cached and b.luts == a.luts and b.peak_binary_ops_per_s == a.peak_binary_ops_per_s / 2
