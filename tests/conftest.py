"""Suite-wide options: which RTL simulator the cocotb tests run on.

    pytest --simulator verilator|icarus      (or BEBERT_SIMULATOR=...; default: the fastest installed)

Every RTL test goes through `bebert.hw.simulators.select`, so the option (exported as
$BEBERT_SIMULATOR, which test workers inherit) moves all of them at once. A simulator that is
asked for and missing stops the run with one line instead of skipping every RTL test.
"""

import os

import pytest


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
