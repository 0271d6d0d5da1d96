"""A regular install works: the wheel holds every subpackage and the shipped data.

The wheel is built from a copy of the sources (`pip wheel`, no build isolation: offline) and
installed, without its dependencies, into a fresh virtual environment that borrows this one's
installed packages (torch, numba, ... : the .pth line below adds this environment's
site-packages after the new one's, without running its .pth hooks, so this checkout's editable
`bebert` stays invisible). Everything then runs from a folder outside the repository, as a new
user's would.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT

SOURCES = ("bebert", "model", "compiler", "hw", "sim", "configs", "examples", "pyproject.toml", "setup.py",
           "README.md")
SPACE = """
[workload]
model = "gemm:{seq},64,32,{abits}"
seq = 16

[accelerator]
base = "small"              # a shipped configuration, by name

[sweep]
abits = [2, 4]
"""


def run(cmd, cwd, timeout=600):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}: exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder, a work folder outside the repository) of a fresh venv holding the wheel."""
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "sim_build")
    for name in SOURCES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, src / name, **(
            {"ignore": ignore} if (ROOT / name).is_dir() else {}))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp / "dist",
         src], cwd=tmp)
    wheel = next((tmp / "dist").glob("bebert-*.whl"))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    py = venv / "bin" / "python"
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", "--no-index", wheel], cwd=tmp)
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", work


def test_the_wheel_holds_every_subpackage_and_the_shipped_data(installed):
    bindir, work = installed
    code = ("import importlib, json, pkgutil, bebert\n"
            "from bebert import shipped\n"
            "mods = [m.name for m in pkgutil.walk_packages(bebert.__path__, 'bebert.') if m.ispkg]\n"
            "files = {m: importlib.import_module(m).__file__ for m in mods}\n"
            "print(json.dumps({'files': files, 'configs': shipped.config_names(), 'spaces': shipped.space_names()}))")
    got = json.loads(run([bindir / "python", "-c", code], cwd=work))
    for pkg in ("bebert.dse", "bebert.hw.vec", "bebert.hw.tb", "bebert.model", "bebert.compiler", "bebert.sim"):
        assert pkg in got["files"], pkg
    assert all(str(ROOT) not in f for f in got["files"].values()), "imported from the checkout, not the wheel"
    assert {"default", "small", "wide"} <= set(got["configs"]) and "space_small" in got["spaces"]


def test_help_compile_sim_and_a_small_sweep_run_from_outside_the_repository(installed):
    bindir, work = installed
    bebert = bindir / "bebert"
    assert "compile" in run([bebert, "--help"], cwd=work)
    out = json.loads(run([bebert, "compile", "--model", "gemm:64,512,96,4", "--out", "G"], cwd=work))
    assert out["config"] == "default" and out["instructions"] > 0  # the package's configs/default.toml
    sim = json.loads(run([bebert, "sim", "G", "--json"], cwd=work))
    assert sim["cycles"] > 0
    (work / "space.toml").write_text(SPACE)
    run([bebert, "dse", "--space", "space.toml", "--out", "D", "--jobs", "1", "--no-progress"], cwd=work)
    with open(work / "D" / "points.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["error"] == "" and int(r["cycles"]) > 0 for r in rows)
    n = run([bindir / "python", "-c", "from bebert.dse import load_space; print(len(load_space('space_small').points))"],
            cwd=work)
    assert int(n) == 9  # the shipped example space, its base config found beside it in the package
