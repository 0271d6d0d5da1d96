"""Design-space exploration: a space file is checked before any work, points are cached and
resumable, the table / Pareto front / plots are written, and a re-run evaluates nothing new."""

import csv
import importlib.util
import json

import pytest

from bebert import compiler
from bebert.cli import main
from bebert.dse import SpaceError, load_space, pareto_front, run_sweep

SMALL = """
[workload]
model = "gemm:8,64,32,{abits}"

[accelerator]
base = "%s"
dram_bytes_per_cycle = 4

[sweep]
pe_rows = [2, 4]
abits = [2, 4]
members = [1, 3]
"""
OUTPUTS = ("points.csv", "pareto.csv", "pareto.json", "latency_energy.png",
           "accuracy_energy.png", "area_throughput.png", "summary.json")
if importlib.util.find_spec("pyarrow") is not None:  # Parquet is written only where pyarrow is installed
    OUTPUTS += ("points.parquet",)


@pytest.fixture
def small_space(tmp_path):
    from conftest import CONFIGS

    p = tmp_path / "space.toml"
    p.write_text(SMALL % (CONFIGS / "small.toml"))
    return p


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_grid_sweep_writes_table_front_and_plots_and_a_rerun_evaluates_nothing(small_space, tmp_path):
    space = load_space(small_space)
    assert len(space.points) == 8 and space.grid_size == 8
    out = tmp_path / "out"
    r = run_sweep(space, out, jobs=1, progress=False)
    # members are one cached run of the layer, scaled: 2 arrays x 2 widths = 4 evaluations
    assert (r.evaluated, r.cached, r.failed) == (4, 0, 0)
    for f in OUTPUTS:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = read_csv(out / "points.csv")
    assert len(rows) == 8 and all(int(row["cycles"]) > 0 for row in rows)
    front = read_csv(out / "pareto.csv")
    assert 1 <= len(front) < 8 and all(row["pareto"] == "True" for row in front)
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["minimize"] == ["latency_s", "energy_per_inference_j", "luts_model"]
    assert len(doc["points"]) == len(front)

    again = run_sweep(load_space(small_space), out, jobs=1, progress=False)
    assert (again.evaluated, again.cached) == (0, 4)
    assert [x["cycles"] for x in again.rows] == [x["cycles"] for x in r.rows]


def test_members_of_a_gemm_workload_run_one_after_another(small_space, tmp_path):
    r = run_sweep(load_space(small_space), tmp_path / "o", progress=False)
    by = {(x["pe_rows"], x["abits"], x["members"]): x for x in r.rows}
    one, three = by[(4, 4, 1)], by[(4, 4, 3)]
    assert three["cycles"] == 3 * one["cycles"]
    assert three["energy_per_inference_j"] == pytest.approx(3 * one["energy_per_inference_j"])
    assert three["inferences_per_s"] == pytest.approx(one["inferences_per_s"] / 3)
    # so with nothing to gain from members (no accuracy), only 1-member points are on the front
    assert all(r.rows[i]["members"] == 1 for i in r.front)


def test_an_interrupted_sweep_resumes_with_only_the_missing_points(small_space, tmp_path):
    out = tmp_path / "o"
    run_sweep(load_space(small_space), out, progress=False)
    files = sorted((out / "cache" / "points").glob("*.json"))
    assert len(files) == 4
    files[0].unlink()  # never written: the sweep was stopped before this point finished
    files[1].write_text('{"key": "trunc')  # a damaged file is evaluated again, never trusted
    r = run_sweep(load_space(small_space), out, progress=False)
    assert (r.evaluated, r.cached) == (2, 2)


def test_parallel_workers_give_the_serial_figures(small_space, tmp_path):
    serial = run_sweep(load_space(small_space), tmp_path / "a", jobs=1, progress=False)
    parallel = run_sweep(load_space(small_space), tmp_path / "b", jobs=2, progress=False)
    assert parallel.evaluated == 4
    keys = ("cycles", "energy_per_inference_j", "dram_bytes")
    assert [[x[k] for k in keys] for x in parallel.rows] == [[x[k] for k in keys] for x in serial.rows]


def test_random_sampling_is_seeded(tmp_path):
    p = tmp_path / "s.toml"
    body = ('[workload]\nmodel = "gemm:8,64,32,4"\n[accelerator]\nbase = "%s"\n'
            '[sweep]\nclock_mhz = [100.0, 150.0, 200.0, 250.0]\nqueue_depth = [2, 4, 8]\n'
            '[sampling]\nmethod = "random"\nsamples = 5\nseed = %d\n')
    from conftest import CONFIGS

    p.write_text(body % (CONFIGS / "small.toml", 1))
    a, b = load_space(p), load_space(p)
    assert len(a.points) == 5 and [x.params for x in a.points] == [x.params for x in b.points]
    p.write_text(body % (CONFIGS / "small.toml", 2))
    assert [x.params for x in load_space(p).points] != [x.params for x in a.points]


def test_accuracy_comes_from_saved_eval_results(small_space, tmp_path):
    # What `bebert eval RUN --json` prints, saved where the space points.
    run = tmp_path / "run3"
    run.mkdir()
    ev = {"task": "mrpc", "integer": False, "alphas": [1.0, 0.5, 0.2],
          "splits": {"validation": {"examples": 408, "members": [{"accuracy": 0.70, "f1": 0.80}] * 3,
                                    "ensemble": {"accuracy": 0.75, "f1": 0.85}}}}
    (run / "eval.json").write_text(json.dumps(ev))
    (tmp_path / "one.json").write_text(json.dumps(ev | {"splits": {"validation": {
        "examples": 408, "members": [{"accuracy": 0.6, "f1": 0.7}], "ensemble": {"accuracy": 0.6, "f1": 0.7}}}}))
    text = small_space.read_text() + (
        '\n[accuracy]\nmetric = "accuracy"\n'
        f'runs = [{{members = 3, abits = 4, run = "{run}"}}, {{members = 1, abits = 4, run = "{tmp_path / "one.json"}"}}]\n')
    small_space.write_text(text)
    space = load_space(small_space)
    assert space.maximize == ("accuracy",)
    r = run_sweep(space, tmp_path / "o", progress=False)
    acc = {(x["abits"], x["members"]): x["accuracy"] for x in r.rows if x["pe_rows"] == 4}
    assert acc == {(4, 3): 0.75, (4, 1): 0.6, (2, 1): None, (2, 3): None}
    # the front trades accuracy for cost: the 3-member ensemble is on it
    assert any(r.rows[i]["members"] == 3 for i in r.front)


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    rows = [{"lat": 1, "e": 5}, {"lat": 2, "e": 2}, {"lat": 3, "e": 3}, {"lat": 5, "e": 1},
            {"lat": 2, "e": 2}, {"lat": None, "e": 0}, {"lat": 0, "e": 0, "error": "x"}]
    assert pareto_front(rows, ["lat", "e"]) == [0, 1, 3, 4]
    assert pareto_front([{"a": 1, "acc": 0.5}, {"a": 2, "acc": 0.9}, {"a": 2, "acc": 0.8}], ["a"], ["acc"]) == [0, 1]


def dse(capsys, *argv):
    code = main(["dse", *argv])
    return code, capsys.readouterr()


@pytest.mark.parametrize("text, words", [
    ("", "the space is empty"),
    ("[workload\nmodel=", "not valid TOML"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[sweep]\npe_rowz = [2, 4]\n', "unknown parameter(s) pe_rowz"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[swep]\npe_rows = [2]\n', "unknown table(s) swep"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[sweep]\npe_rows = [4, 3]\n', "pe_rows must be a power of two"),
    ('[workload]\nmodel = "gemm:8,64,32,{abits}"\n[accelerator]\nact_bits = [4]\n[sweep]\nabits = [2, 4]\n',
     "activation bits 2 not supported"),
    ('[workload]\nmodel = "gemm:8,64,32"\n', "3 fields"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[sampling]\nmethod = "sobol"\n', "method must be"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[pareto]\nmaximize = ["accuracy"]\n', "names no runs"),
    ('[workload]\nmodel = "gemm:8,64,32,4"\n[accuracy]\nruns = [{members = 1, abits = 4, run = "/no/such"}]\n',
     "run not found"),
])
def test_bad_spaces_fail_with_one_line_before_any_work(capsys, tmp_path, text, words):
    space = tmp_path / "bad.toml"
    space.write_text(text)
    out = tmp_path / "out"
    code, cap = dse(capsys, "--space", str(space), "--out", str(out))
    lines = cap.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bebert: error:"), cap.err
    assert words in lines[0], lines[0]
    assert not out.exists()  # nothing was evaluated or written


def test_missing_space_file(capsys, tmp_path):
    code, cap = dse(capsys, "--space", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o"))
    assert code == 2 and "space file not found" in cap.err


def test_the_example_spaces_are_valid():
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples"
    small, area = load_space(examples / "space_small.toml"), load_space(examples / "space_area.toml")
    assert not small.area and len(small.points) == 9 and "luts_model" in small.minimize
    assert {"pe_rows", "vec_lanes"} <= {k for k, _ in small.axes}
    assert area.area and "luts" in area.minimize
    hardware = lambda space: {p.config.replace(name="x") for p in space.points}  # noqa: E731
    assert hardware(area) < hardware(small) and len(hardware(area)) == 2  # two of its configurations, synthesised


@pytest.mark.skipif(not hasattr(compiler, "compile_model"), reason="bebert.compiler.compile_model not landed yet")
def test_a_synthetic_model_sweeps(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[workload]\nmodel = "synthetic:tiny,members={members},abits={abits},seq=16"\n'
                 '[sweep]\nmembers = [1, 2]\nabits = [4]\n')
    r = run_sweep(load_space(p), tmp_path / "o", progress=False)
    assert r.failed == 0 and r.rows[1]["cycles"] > r.rows[0]["cycles"]


def test_a_model_without_compile_model_is_refused_up_front(tmp_path):
    if hasattr(compiler, "compile_model"):
        pytest.skip("compile_model exists")
    p = tmp_path / "s.toml"
    p.write_text('[workload]\nmodel = "synthetic:tiny"\n')
    with pytest.raises(SpaceError, match="no compile_model"):
        load_space(p)


@pytest.mark.slow
def test_the_example_space_with_area(tmp_path):
    from pathlib import Path

    space = load_space(Path(__file__).resolve().parents[1] / "examples" / "space_area.toml")
    r = run_sweep(space, tmp_path / "d", jobs=2, progress=False)
    assert r.failed == 0 and all(x["luts"] > 0 for x in r.rows)
    assert run_sweep(space, tmp_path / "d", jobs=2, progress=False).evaluated == 0


def _eval_json(members: int, **ensemble):
    return {"task": "mrpc", "alphas": [1.0] * members,
            "splits": {"validation": {"examples": 408, "members": [{"accuracy": 0.7}] * members,
                                      "ensemble": ensemble or {"accuracy": 0.75}}}}


@pytest.mark.parametrize("members, declared, ensemble, words", [
    (2, 3, {}, "its results are of 2 member(s)"),
    (3, 3, {"accuracy": 7.5}, "accuracy = 7.5 outside [0, 1]"),
    (3, 3, {"accuracy": "high"}, "accuracy = 'high' is not a finite number"),
    (3, 3, {"accuracy": None}, "accuracy = None is not a finite number"),
    (3, 3, {"mcc": -1.5}, "mcc = -1.5 outside [-1, 1]"),
])
def test_an_accuracy_is_a_fraction_of_the_ensemble_it_is_credited_to(small_space, tmp_path, members, declared,
                                                                      ensemble, words):
    f = tmp_path / "eval.json"
    f.write_text(json.dumps(_eval_json(members, **ensemble)))
    small_space.write_text(small_space.read_text()
                           + f'\n[accuracy]\nruns = [{{members = {declared}, abits = 4, run = "{f}"}}]\n')
    with pytest.raises(ValueError) as e:
        run_sweep(load_space(small_space), tmp_path / "o", progress=False)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "o" / "points.csv").exists()


def test_a_sweep_never_writes_into_a_folder_of_something_else(small_space, tmp_path, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "manifest.json").write_text("{}")
    assert main(["dse", "--space", str(small_space), "--out", str(pkg), "--jobs", "1", "--no-progress"]) == 2
    assert "not a design-space sweep; refusing to overwrite it" in capsys.readouterr().err
    assert [p.name for p in pkg.iterdir()] == ["manifest.json"]


CLUSTER_SPACE = """
[workload]
model = "gemm:8,64,32,{abits}"

[accelerator]
base = "small"
dram_bytes_per_cycle = 4

[sweep]
pe_rows = [2, 4]
abits = [2, 4]
"""


def test_a_sweep_on_a_dask_cluster_gives_the_local_table_cache_and_resume(tmp_path):
    """A scheduler and two workers on 127.0.0.1, as `dask scheduler` / `dask worker` would run them."""
    distributed = pytest.importorskip("distributed")
    (tmp_path / "space.toml").write_text(CLUSTER_SPACE)
    space = load_space(tmp_path / "space.toml")
    local = run_sweep(space, tmp_path / "local", jobs=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        far = run_sweep(space, tmp_path / "far", progress=False, cluster=cluster.scheduler_address)
        assert (far.evaluated, far.cached, far.failed) == (local.evaluated, 0, 0) == (4, 0, 0)
        assert (tmp_path / "far" / "points.csv").read_text() == (tmp_path / "local" / "points.csv").read_text()
        cached = sorted(p.name for p in (tmp_path / "far" / "cache" / "points").iterdir())
        assert cached == sorted(p.name for p in (tmp_path / "local" / "cache" / "points").iterdir())
        again = run_sweep(space, tmp_path / "far", progress=False, cluster=cluster.scheduler_address)
        assert (again.evaluated, again.cached) == (0, 4)  # resumed from the cache: nothing submitted


def test_dse_cluster_local_from_the_command_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    from bebert.dse import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)  # the unreachable scheduler below
    (tmp_path / "space.toml").write_text(CLUSTER_SPACE)
    assert main(["dse", "--space", str(tmp_path / "space.toml"), "--out", str(tmp_path / "a"), "--jobs", "1",
                 "--no-progress"]) == 0
    assert main(["dse", "--space", str(tmp_path / "space.toml"), "--out", str(tmp_path / "b"), "--jobs", "2",
                 "--cluster", "local", "--no-progress"]) == 0
    assert (tmp_path / "a" / "points.csv").read_text() == (tmp_path / "b" / "points.csv").read_text()
    capsys.readouterr()
    assert main(["dse", "--space", str(tmp_path / "space.toml"), "--out", str(tmp_path / "c"),
                 "--cluster", "tcp://127.0.0.1:9", "--no-progress"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
