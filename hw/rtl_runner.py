"""Compile Verilog once per simulator and source text (cached), run cocotb tests on the result.

`build(sim, sources, top)` compiles the given Verilog texts for `sim` (a
`bebert.hw.simulators.Simulator`) into a build directory under $BEBERT_CACHE/rtl (default
~/.cache/bebert/rtl) named by a hash of the simulator, its version, the top module, the
texts and the waveform switch: a design is compiled once (Verilator's C++ build takes
about a minute for the accelerator) and every later test, in this process or another, reuses it.
Concurrent builders of the same design wait on a lock and find it built. `run(...)` runs a
cocotb test module on a build. Nothing here knows any design's ports.

Waveforms (FST): Icarus gets a tiny dump module whose file name comes from a plusarg, so
runs sharing a build do not collide; Verilator is built with `--trace-fst` and told the
file name on its command line.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from .simulators import Simulator

TIMESCALE = ("1ns", "1ps")
# Verilator: Amaranth's Verilog always has WIDTH findings; none is fatal for simulation.
# Only the top module's ports are public (a control file, not cocotb's --public-flat-rw, which
# keeps every one of Amaranth's many internal signals alive, so the model is slower to run and
# to compile), and its C++ is compiled at g++ -O1 with the evaluation split into
# functions of at most 2,000 statements (unsplit, -O1 and -Os spend minutes on one huge
# function). Measured on small's 1-lane accelerator running the tiny ensemble (82,594 cycles)
# on 2 cores, build / run: every signal public at -Os 165 s / 26 s, at -O0 61 s / 80 s; ports
# only at -O1, split, 39 s / 15 s.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                  "--output-split-cfuncs", "2000", "--output-split", "20000", "-CFLAGS", "-O1"]
VERILATOR_PUBLIC = '`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n'  # what cocotb may touch


def cache_root() -> Path:
    return Path(os.environ.get("BEBERT_CACHE", Path.home() / ".cache" / "bebert")) / "rtl"


def build_key(sim: Simulator, sources: dict[str, str], top: str, waves: bool) -> str:
    h = hashlib.sha256("\0".join([sim.name, sim.version, top, str(waves), " ".join(VERILATOR_ARGS),
                                VERILATOR_PUBLIC]).encode())
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return h.hexdigest()[:24]


def build(sim: Simulator, sources: dict[str, str], top: str, *, waves: bool = False,
          build_dir: Path | None = None) -> Path:
    """Compile `sources` ({file name: Verilog text}) with top module `top` for `sim`; returns
    the build directory (cached by `build_key`)."""
    key = build_key(sim, sources, top, waves)
    bdir = Path(build_dir) if build_dir is not None else cache_root() / f"{sim.name}-{key}"
    stamp = bdir / "built.stamp"
    if stamp.is_file() and stamp.read_text() == key:
        return bdir
    bdir.mkdir(parents=True, exist_ok=True)
    with open(bdir / "build.lock", "w") as lock:  # concurrent test workers build once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == key:
            return bdir
        stamp.unlink(missing_ok=True)
        _compile(sim, sources, top, bdir, waves)
        if sim.name == "verilator":  # the C++ and objects (~150 MB) are not needed to run it
            for f in bdir.iterdir():
                if f.is_file() and (f.suffix in (".o", ".a", ".d", ".cpp", ".h") or f.name.endswith(".gch")):
                    f.unlink()
        stamp.write_text(key)
    return bdir


def _compile(sim: Simulator, sources: dict[str, str], top: str, bdir: Path, waves: bool) -> None:
    from cocotb_tools.runner import get_runner

    paths = []
    for name, text in sources.items():
        (bdir / name).write_text(text)
        paths.append(bdir / name)
    if sim.name == "icarus":
        args = ["-g2005"]
        if waves:  # cocotb's own dump module needs SystemVerilog; this one is Verilog-2005.
            dump = bdir / "bebert_dump.v"
            dump.write_text("module bebert_dump();\nreg [8*1024-1:0] fname;\ninitial begin\n"
                            "  if (!$value$plusargs(\"bebert_waves=%s\", fname)) fname = \"waves.fst\";\n"
                            f"  $dumpfile(fname);\n  $dumpvars(0, {top});\nend\nendmodule\n")
            paths.append(dump)
            args += ["-s", "bebert_dump"]
        # Verilog-2005 semantics: declaration initialisers create the time-0 event that starts
        # the always @* blocks yosys emits (-g2012 would not).
    else:
        args = VERILATOR_ARGS + (["--trace-fst"] if waves else [])
        control = bdir / "public_ports.vlt"
        control.write_text(VERILATOR_PUBLIC.format(top=top))
        paths.append(control)
    with sim.environment():
        runner = _ports_only_verilator() if sim.name == "verilator" else get_runner(sim.name)
        try:
            runner.build(sources=paths, hdl_toplevel=top, build_dir=bdir, timescale=TIMESCALE, always=True,
                         waves=waves and sim.name == "verilator", log_file=bdir / "build.log", build_args=args)
        except (SystemExit, Exception) as e:  # the runner exits on a failed compile
            raise RuntimeError(f"{sim.name} could not compile {top}: {_first_error(bdir / 'build.log') or e} "
                               f"(see {bdir / 'build.log'})") from None


def _ports_only_verilator():
    """cocotb's Verilator runner without its --public-flat-rw: `VERILATOR_PUBLIC` says what is public."""
    from cocotb_tools.runner import Verilator

    class PortsOnlyVerilator(Verilator):
        def _build_command(self):
            return [[a for a in cmd if a != "--public-flat-rw"] for cmd in super()._build_command()]
    return PortsOnlyVerilator()


def _first_error(log: Path) -> str:
    """The first compiler or simulator error line of a build log ('' if none is found)."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    for line in text.splitlines():
        if "fatal error:" in line or line.startswith(("%Error", "ERROR")) or ": error:" in line:
            if "lz4.h" in line:  # Verilator's FST writer
                return "waveforms need the lz4 headers (Debian: apt-get install liblz4-dev)"
            return line.strip()
    return ""


def run(sim: Simulator, bdir: Path, top: str, test_module: str, test_dir: Path, *, env: dict[str, str],
        waves_file: Path | None = None) -> None:
    """Run the cocotb `test_module` on the build `bdir`, in `test_dir` (its log: sim.log).
    With `waves_file` (the build must have waves) every signal is dumped there (FST)."""
    from cocotb_tools.runner import get_runner

    plusargs, test_args = [], []
    if waves_file is not None:
        if sim.name == "icarus":
            plusargs = [f"+bebert_waves={waves_file}"]
        else:
            test_args = ["--trace-file", str(waves_file)]
    with sim.environment():
        runner = get_runner(sim.name)
        try:
            runner.test(hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module=test_module, build_dir=bdir,
                        test_dir=test_dir, waves=waves_file is not None, plusargs=plusargs, test_args=test_args,
                        results_xml=str(test_dir / "results.xml"), extra_env=env, log_file=test_dir / "sim.log")
        except SystemExit as e:
            raise RuntimeError(f"{sim.name} run of {test_module} failed (see {test_dir / 'sim.log'}): {e}") from None
