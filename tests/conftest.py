"""Shared fixtures: the repository's folders, the shipped configurations, the command line.

Tiers (markers declared in pyproject.toml): `rtl` marks every test that runs Verilog under
Icarus or Verilator (`make test-fast` leaves them out); `slow` marks what only `make bench` runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
EXAMPLES = ROOT / "examples"
GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")


def shipped_config(name: str):
    """One of configs/*.toml as an AccelConfig."""
    from bebert.config import AccelConfig

    return AccelConfig.from_toml(CONFIGS / f"{name}.toml")


def train_tiny_sst2(root: Path, *extra: str, members: int = 2, task: str = "sst2") -> Path:
    """`bebert train` on real SST-2 (or another GLUE `task`) with a 1-layer tiny backbone (hidden
    32), 16 tokens, no KD, one epoch of 64 examples unless `extra` says otherwise, on one thread;
    the run folder."""
    import torch

    from bebert.cli import main
    from bebert.model.tiny_backbone import tiny_backbone

    bb = tiny_backbone(root / "backbone", layers=1)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--task", task, "--data-dir", str(GLUE_DIR), "--backbone", str(bb),
                     "--members", str(members), "--kd", "none", "--epochs", "1", "--max-train-examples", "64",
                     "--max-seq-len", "16", *extra, "--out", str(root / "run")]) == 0
    finally:
        torch.set_num_threads(n)
    return root / "run"


def small4_config():
    """The hand-computed machine: configs/small.toml with 4 vector lanes, as the tests' hand
    timings, random layouts and the area model's calibration assume (small ships one lane, to
    fit an ECP5)."""
    return shipped_config("small").replace(name="small4", vec_lanes=4)


@pytest.fixture(scope="session")
def small_config():
    return shipped_config("small")


@pytest.fixture(scope="session")
def default_config():
    return shipped_config("default")


class CliResult:
    """What one `bebert ...` call gave: exit code, stdout, stderr."""

    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def one_line_error(self) -> str:
        """The single stderr line of a refused command (asserting there is exactly one)."""
        lines = self.err.strip().splitlines()
        assert self.code != 0 and len(lines) == 1 and lines[0].startswith("bebert: "), (self.code, self.err)
        return lines[0]


@pytest.fixture
def cli(capsys):
    """`cli("sim", DIR, "--json")` runs the command in this process and returns a CliResult."""
    from bebert.cli import main

    def run(*argv) -> CliResult:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


# -- which RTL simulator the cocotb tests run on ---------------------------------------------
#     pytest --simulator verilator|icarus      (or BEBERT_SIMULATOR=...; default: the fastest installed)
# Every RTL test goes through `bebert.hw.simulators.select`, so the option (exported as
# $BEBERT_SIMULATOR, which test workers inherit) moves all of them at once. A simulator that is
# asked for and missing stops the run with one line instead of skipping every RTL test.
def pytest_addoption(parser):
    parser.addoption("--simulator", choices=("verilator", "icarus"), default=None,
                     help="RTL simulator for the cocotb tests (default: $BEBERT_SIMULATOR, else the fastest installed)")


def pytest_configure(config):
    from bebert.hw import simulators

    name = config.getoption("--simulator")
    if name:
        os.environ[simulators.ENV_VAR] = name
    if simulators.requested():
        try:
            simulators.select()
        except (simulators.SimulatorMissing, ValueError) as e:
            raise pytest.UsageError(str(e)) from None


def pytest_report_header(config):
    from bebert.hw import simulators

    try:
        sim = simulators.select()
    except simulators.SimulatorMissing as e:
        return f"rtl simulator: none ({e})"
    return f"rtl simulator: {sim.name} {sim.version} (installed: {', '.join(simulators.installed())})"
