"""The simulator's trace and reports: traced runs change nothing, reports carry every key,
the roofline bounds what was achieved, per-region / per-member figures add up, plots exist."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.compiler import compile_spec
from bebert.program import Program
from bebert.sim import simulate
from bebert.sim import kernel as K
from bebert.sim.energy import ASIC45, FPGA, EnergyError
from bebert.sim.random_programs import ALL_FEATURES, RTL_FEATURES, random_test_program
from bebert.vector import VecFn, vec_bytes, vec_cycles
from bebert.sim.report import busy_fraction, plot, sim_report
from conftest import small4_config

ROOT = Path(__file__).resolve().parents[1]
SMALL = small4_config()  # small with 4 lanes: what the hand computations assume
DEFAULT = AccelConfig.from_toml(ROOT / "configs" / "default.toml")

# The hand-computed program: LOAD -> GEMM -> GEMM (AND) -> POST -> VEC -> STORE (test_energy.py).
from test_energy import HAND, VEC_IO, hand_program  # noqa: E402

D_VEC = vec_cycles(VecFn.REQUANT, 4, 4, 0, 0, VEC_IO, SMALL)  # the hand program's VEC
CYCLES = 39 + D_VEC


KEYS = {"cycles", "seconds", "busy", "utilization", "dram_read_bytes", "dram_write_bytes", "dram_bytes",
        "port_bytes", "instructions", "binary_ops", "error", "stall_cycles", "energy_table", "energy_j",
        "energy_per_inference_j", "energy_breakdown", "energy_by_region", "latency_s", "inferences",
        "inferences_per_s", "roofline", "regions", "layers", "kinds", "members", "ensemble"}
UTIL_KEYS = {"load", "compute", "output", "vec", "pe_array", "pe_array_busy", "post", "vector_unit", "load_read",
             "output_write", "vector_read", "vector_write"}
ROOF_KEYS = {"peak_binary_ops_per_s", "dram_bytes_per_s", "operational_intensity", "bound_ops_per_s",
             "achieved_ops_per_s", "achieved_fraction"}


# -- the trace ----------------------------------------------------------------------------
def test_trace_of_the_hand_computed_program():
    # See tests/test_energy.py: issues in 2, 9, 12, 8, 20, 37; HALT never issues.
    r = simulate(hand_program(), trace=True)
    assert r.trace.issue.tolist() == [2, 9, 12, 8, 20, 37, -1]
    assert r.trace.start.tolist() == [3, 10, 13, 9, 21, 38, -1]
    assert r.trace.end.tolist() == [9, 12, 20, 10, 37, 38 + D_VEC, -1]  # one past the last execution cycle


@pytest.mark.parametrize("tokens", [False, True], ids=["tiled", "tokens"])
def test_traced_and_untraced_runs_are_identical(tokens):
    rng = np.random.default_rng(17 + tokens)
    for case in range(30):
        config = (SMALL, DEFAULT)[case % 2].replace(queue_depth=int(rng.integers(2, 7)))
        p = random_test_program(rng, config, int(rng.integers(1, 100)), tokens=tokens)
        plain = simulate(p)
        fast = simulate(p, trace=True)
        ref = simulate(p, trace=True, kernel=K.run_reference)
        assert fast == plain and ref == plain and fast.to_dict() == plain.to_dict()
        assert plain.trace is None
        assert np.array_equal(fast.trace.issue, ref.trace.issue)
        ran = fast.trace.issue >= 0
        assert fast.trace.dur[ran].sum() == sum(plain.busy[u] for u in K.STAGES)
        assert fast.trace.end.max() <= plain.cycles
        # one instruction at a time per stage, in program order
        for s in range(K.NS):
            sel = ran & (fast.trace.stage == s)
            assert np.all(fast.trace.start[sel][1:] >= fast.trace.end[sel][:-1])


def test_traced_compiled_program_equals_untraced():
    p = compile_spec("gemm:64,256,96,4", DEFAULT)
    assert simulate(p, trace=True) == simulate(p)


# -- the report ---------------------------------------------------------------------------
def test_report_keys_and_roofline_of_a_compiled_layer():
    p = compile_spec("gemm:64,256,96,4", DEFAULT)
    r = simulate(p)
    d = sim_report(p, r, ASIC45)
    assert KEYS <= set(d) and ROOF_KEYS <= set(d["roofline"]) and UTIL_KEYS == set(d["utilization"])
    assert d["energy_j"] == sum(d["energy_breakdown"].values())  # exactly
    assert json.loads(json.dumps(d)) == d
    assert {k: d[k] for k in r.to_dict()} == r.to_dict()
    roof = d["roofline"]
    assert roof["peak_binary_ops_per_s"] == DEFAULT.binary_ops_per_cycle * DEFAULT.clock_hz
    assert roof["operational_intensity"] == r.binary_ops / r.dram_bytes
    assert roof["bound_ops_per_s"] == min(roof["peak_binary_ops_per_s"],
                                          roof["operational_intensity"] * roof["dram_bytes_per_s"])
    assert 0 < roof["achieved_fraction"] <= 1 and 0 < roof["min_cycles_fraction"] <= 1
    assert d["energy_j"] == pytest.approx(sum(d["energy_breakdown"].values()), rel=1e-12)
    assert d["latency_s"] == r.seconds and d["inferences_per_s"] == pytest.approx(1 / r.seconds)
    (region,) = d["regions"]
    assert region["energy_j"] == d["energy_j"] and d["members"] == []
    assert region["cycles"] <= r.cycles and region["busy"]["compute"] == r.busy["compute"]
    assert sim_report(p, r, FPGA)["energy_j"] > d["energy_j"]


def test_roofline_fraction_stays_within_the_bound_on_random_programs():
    rng = np.random.default_rng(23)
    for case in range(20):
        p = random_test_program(rng, (SMALL, DEFAULT)[case % 2], int(rng.integers(5, 120)), tokens=bool(case % 3),
                                features=ALL_FEATURES if case % 2 else RTL_FEATURES)
        r = simulate(p)
        roof = sim_report(p, r)["roofline"]
        if r.binary_ops:
            assert 0 < roof["achieved_fraction"] <= 1
        assert roof["min_cycles_fraction"] <= 1


def test_members_regions_and_the_whole_ensemble():
    # Member 0: LOAD + GEMM (executes 3..11), member 1: POSTCFG (9) .. VEC (38 .. 37 + D_VEC).
    p = hand_program(regions=[{"name": "m0.ffn", "start": 0, "end": 2, "member": 0},
                              {"name": "m1.ffn", "start": 2, "end": 7, "member": 1}])
    d = sim_report(p, simulate(p), ASIC45)
    r0, r1 = d["regions"]
    span1 = 38 + D_VEC - 9
    assert (r0["first_cycle"], r0["end_cycle"], r0["cycles"]) == (3, 12, 9)
    assert (r1["first_cycle"], r1["end_cycle"], r1["cycles"]) == (9, 38 + D_VEC, span1)
    assert r0["busy"] == {"load": 6, "compute": 2, "output": 0, "vec": 0, "gemm": 2, "post": 0, "vector": 0}
    assert r1["busy"] == {"load": 0, "compute": 7, "output": 17, "vec": D_VEC, "gemm": 7, "post": 17,
                          "vector": D_VEC}
    vwr = vec_bytes(VecFn.REQUANT, 4, 4, 0, 0, VEC_IO, SMALL)[1]
    assert (r0["binary_ops"], r0["dram_read_bytes"], r1["dram_write_bytes"]) == (1024, 16, 64 + vwr)
    m0, m1 = d["members"]
    assert (m0["member"], m0["latency_cycles"], m1["latency_cycles"]) == (0, 9, span1)
    assert m1["latency_s"] == pytest.approx(span1 / SMALL.clock_hz)
    assert m0["energy_j"] + m1["energy_j"] == pytest.approx(d["energy_j"], rel=1e-12)
    assert d["energy_by_region"] == {"m0.ffn": r0["energy_j"], "m1.ffn": r1["energy_j"]}
    assert d["latency_s"] == pytest.approx(CYCLES / SMALL.clock_hz)
    # Marginal cost: each member claims the cycles of its span nobody claimed before (member 1's
    # span starts at 9, inside member 0's [3, 12)); the 4 other cycles (start-up) are fixed.
    assert (m0["marginal_cycles"], m1["marginal_cycles"], d["ensemble"]["fixed_cycles"]) == (9, span1 - 3, 4)
    assert (m0["cumulative_cycles"], m1["cumulative_cycles"]) == (13, CYCLES)
    assert m1["cumulative_energy_j"] == pytest.approx(d["energy_j"], rel=1e-12)


def test_shared_regions_layers_kinds_and_marginal_cost():
    # The hand-computed program as a two-member ensemble with shared work around it:
    # embed = LOAD [3, 9); m0.l0 = GEMM [10, 12); m1.l0 = GEMM (AND) + POSTCFG [9, 20);
    # combine = POST + VEC + HALT [21, 38 + D_VEC).
    p = hand_program(regions=[
        {"name": "embed", "start": 0, "end": 1, "kind": "embed"},
        {"name": "m0.l0", "start": 1, "end": 2, "member": 0, "layer": 0, "kind": "gemm"},
        {"name": "m1.l0", "start": 2, "end": 4, "member": 1, "layer": 0, "kind": "gemm"},
        {"name": "combine", "start": 4, "end": 7, "kind": "vec"}])
    d = sim_report(p, simulate(p), ASIC45)
    assert [(r["name"], r["first_cycle"], r["end_cycle"]) for r in d["regions"]] == [
        ("embed", 3, 9), ("m0.l0", 10, 12), ("m1.l0", 9, 20), ("combine", 21, 38 + D_VEC)]
    assert [(l["name"], l["cycles"], l["binary_ops"]) for l in d["layers"]] == [("m0.l0", 2, 1024),
                                                                                   ("m1.l0", 11, 2048)]
    kinds = {k["name"]: k for k in d["kinds"]}
    assert {k: v["cycles"] for k, v in kinds.items()} == {"embed": 6, "gemm": 2 + 11, "vec": 17 + D_VEC}
    # gemm: 3072 binary ops, no DRAM bytes -> bound = peak (512 per cycle) over 13 cycles.
    g = kinds["gemm"]
    assert g["roofline"]["achieved_fraction"] == pytest.approx(3072 / (13 * 512))
    assert g["roofline"]["limiter"] == "pe_array" and g["roofline"]["limiter_busy_fraction"] == 9 / 13
    assert g["reason"].startswith("PE array busy but under-filled")
    assert kinds["vec"]["roofline"]["achieved_fraction"] is None
    assert kinds["vec"]["reason"].startswith("no binary operations")
    assert kinds["vec"]["roofline"]["limiter"] == "vector"
    # Shared spans claim [3, 9) and [21, 38 + D_VEC) first; m0 adds [10, 12); m1 adds [9, 20) less
    # m0's two cycles; the rest is fixed.
    e = d["ensemble"]
    assert e["members"] == 2 and e["shared_regions"] == ["embed", "combine"]
    assert [m["marginal_cycles"] for m in e["marginal"]] == [2, 9] and e["fixed_cycles"] == CYCLES - 11
    assert e["marginal"][-1]["cumulative_latency_s"] == pytest.approx(d["latency_s"])
    shared_j = d["energy_by_region"]["embed"] + d["energy_by_region"]["combine"]
    assert e["fixed_energy_j"] == pytest.approx(shared_j, rel=1e-12)
    assert e["marginal"][1]["marginal_energy_j"] == d["energy_by_region"]["m1.l0"]
    assert json.loads(json.dumps(d)) == d


def test_report_rejects_a_result_of_another_program():
    p = hand_program()
    other = Program(config=SMALL, instrs=HAND[:1] + HAND[-1:], dram=p.dram)
    with pytest.raises(EnergyError, match="does not belong"):
        sim_report(p, simulate(other))


def test_busy_fraction_by_bins():
    # intervals [2, 5) and [6, 10) over bins [0, 4), [4, 8), [8, 12)
    f = busy_fraction(np.array([2, 6]), np.array([5, 10]), np.array([0, 4, 8, 12]))
    assert f.tolist() == [2 / 4, 3 / 4, 2 / 4]


def test_plot_writes_pngs(tmp_path):
    p = compile_spec("gemm:16,64,64,1", SMALL)
    p = dataclasses.replace(p, meta={**p.meta, "regions": [
        {"name": "first", "start": 0, "end": len(p.instrs) // 2, "member": 0},
        {"name": "second", "start": len(p.instrs) // 2, "end": len(p.instrs), "member": 1}]})
    paths = plot(p, simulate(p), None, tmp_path / "figs")
    assert [x.name for x in paths] == ["breakdown.png", "timeline.png"]
    for x in paths:
        assert x.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and x.stat().st_size > 5000


def test_report_and_plot_of_a_program_that_only_halts(tmp_path):
    p = Program(config=SMALL, instrs=HAND[-1:], dram=hand_program().dram)
    r = simulate(p)
    d = sim_report(p, r)
    assert d["roofline"]["achieved_fraction"] == 0 and d["roofline"]["operational_intensity"] is None
    assert d["energy_j"] == pytest.approx((25 + 3 * 5 + 3 * 100) * 1e-12)  # 1 word, 3 cycles
    assert d["regions"][0]["cycles"] == 0 and d["regions"][0]["first_cycle"] is None
    assert json.loads(json.dumps(d)) == d
    assert len(plot(p, r, FPGA, tmp_path)) == 2


# -- a compiled ensemble and the command line -------------------------------------------------
def _compile_model():
    try:
        from bebert.compiler import compile_model
    except ImportError:
        compile_model = pytest.importorskip("bebert.compiler.pipeline").compile_model
    return compile_model


def test_report_of_a_compiled_ensemble_adds_up():
    p = _compile_model()("synthetic:tiny", SMALL)
    assert any(i.op.name == "VEC" for i in p.instrs) and any(i.op.name == "GEMM" and i.args["mode"]
                                                               for i in p.instrs)
    r = simulate(p, trace=True)
    assert r == simulate(p, kernel=K.run_reference)
    d = sim_report(p, r, ASIC45)
    assert d["energy_j"] == sum(d["energy_breakdown"].values())
    assert d["energy_j"] == pytest.approx(sum(d["energy_by_region"].values()), rel=1e-12)
    members = d["members"]
    assert [m["member"] for m in members] == list(range(p.meta["members"]))
    assert members[-1]["cumulative_latency_s"] == pytest.approx(d["latency_s"])
    assert members[-1]["cumulative_energy_j"] == pytest.approx(d["energy_j"], rel=1e-12)
    assert all(m["marginal_cycles"] > 0 and m["marginal_energy_j"] > 0 for m in members)
    assert d["layers"] and all(l["roofline"]["limiter"] for l in d["layers"])
    assert sum(reg["busy"]["vector"] for reg in d["regions"]) == r.busy["vector_unit"] > 0
    assert sum(reg["binary_ops"] for reg in d["regions"]) == r.binary_ops
    for k in d["kinds"]:  # a reason exactly for the kinds under 80 % of their bound
        frac = k["roofline"]["achieved_fraction"]
        if frac is not None:
            assert (k["reason"] is None) == (frac >= 0.8)


def test_cli_sim_prints_the_report_and_writes_plots(tmp_path, capsys):
    from bebert.cli import main

    p = hand_program(regions=[{"name": "m0", "start": 0, "end": 3, "member": 0, "layer": 0, "kind": "gemm"},
                              {"name": "m1", "start": 3, "end": 7, "member": 1, "layer": 0, "kind": "tail"}])
    p.write(tmp_path / "prog")
    assert main(["sim", str(tmp_path / "prog"), "--json", "--plot", str(tmp_path / "figs")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert KEYS <= set(d) and d["cycles"] == CYCLES and len(d["plots"]) == 2
    assert [m["member"] for m in d["members"]] == [0, 1]
    assert main(["sim", str(tmp_path / "prog")]) == 0
    out = capsys.readouterr().out
    assert "roofline" in out and "member 1" in out and "ensemble of 2" in out


def test_cli_sim_of_a_deadlocked_program_is_one_line(tmp_path, capsys):
    from bebert.cli import main
    from bebert.isa import gemm, halt

    Program(config=SMALL, instrs=[gemm(0, 0, 1, 1, 1, False, True, pop=["load"]), halt()],
            dram=hand_program().dram).write(tmp_path / "dead")
    assert main(["sim", str(tmp_path / "dead")]) == 1
    err = capsys.readouterr().err
    assert "deadlock" in err and err.count("\n") == 1
