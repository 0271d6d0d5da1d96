"""Run programs on the RTL (cocotb + Icarus) and hold them to the golden executor and the simulator.

`verify(program)` builds the Verilog of the program's configuration (cached), runs the
program through the cocotb bench `bebert.hw.tb.program_bench` and compares
- the output tensors of the final DRAM image with `bebert.compiler.golden.execute`,
- the cycle count and the error flag with `bebert.sim.simulate`.

Builds are cached under ~/.cache/bebert/rtl (or $BEBERT_CACHE): the Verilog text by a hash
of the configuration and the hw/ sources (generation is the slow part), the compiled
simulation by a hash of the Verilog text.

Waveforms: `waves=DIR` (or $BEBERT_WAVES=DIR) dumps every signal of `bebert_accel` into
DIR/<name>.fst (FST: GTKWave, Surfer; `fst2vcd` converts it to VCD).

The bench (`bebert.hw.tb.program_bench`) puts the nominal memory of the configuration behind
the four DRAM ports (`rd`, `owr`, `vrd`, `vwr`: docs/MACHINE_V3.md), or a slower one
(`run_rtl(..., stall=p)`), which must change the cycles and nothing else.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bebert.files import atomic_path, atomic_write
from bebert.isa import INSTR_BYTES, to_bytes
from bebert.program import Program

from .verilog import TOP_NAME, verilog_text

HW_DIR = Path(__file__).resolve().parent
DEFAULT_TIMEOUT_MARGIN = 10_000


class WavesError(OSError):
    """The waveform directory cannot be used."""


def cache_root() -> Path:
    return Path(os.environ.get("BEBERT_CACHE", Path.home() / ".cache" / "bebert")) / "rtl"


def _sources_hash() -> str:
    """Hash of everything the Verilog depends on besides the config: hw/ and the shared leaves."""
    import amaranth

    import bebert.config
    import bebert.integer_ops
    import bebert.isa
    import bebert.layout
    import bebert.numerics
    import bebert.vector

    h = hashlib.sha256(amaranth.__version__.encode())
    leaves = (bebert.config, bebert.isa, bebert.vector, bebert.layout, bebert.numerics, bebert.integer_ops)
    for p in sorted(HW_DIR.rglob("*.py")) + [Path(f.__file__) for f in leaves]:
        h.update(str(p.relative_to(p.parent.parent)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cached_verilog(config) -> str:
    """The Verilog text of `Accelerator(config)`, from the cache when the sources are unchanged."""
    key = hashlib.sha256((json.dumps(config.to_dict(), sort_keys=True) + _sources_hash()).encode()).hexdigest()[:24]
    path = cache_root() / "verilog" / f"{key}.v"
    if path.is_file():
        return path.read_text()
    text = verilog_text(config)
    atomic_write(path, text)
    return text


def build(config, *, waves: bool = False, build_dir: Path | None = None) -> Path:
    """Compile the RTL of `config` for Icarus; returns the build directory (cached)."""
    text = cached_verilog(config)
    digest = hashlib.sha256(text.encode()).hexdigest()[:24] + ("-waves" if waves else "")
    bdir = Path(build_dir) if build_dir is not None else cache_root() / digest
    stamp = bdir / "built.stamp"
    if stamp.is_file() and stamp.read_text() == digest:
        return bdir
    bdir.mkdir(parents=True, exist_ok=True)
    with open(bdir / "build.lock", "w") as lock:  # concurrent test workers build once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == digest:
            return bdir
        _compile(text, bdir, waves)
        stamp.write_text(digest)
    return bdir


def _compile(text: str, bdir: Path, waves: bool) -> None:
    from cocotb_tools.runner import get_runner

    src = bdir / f"{TOP_NAME}.v"
    src.write_text(text)
    sources, args = [src], ["-g2005"]
    if waves:  # cocotb's own dump module needs SystemVerilog; this one is Verilog-2005.
        # The file name comes from a plusarg, so runs sharing this build do not collide.
        dump = bdir / "bebert_dump.v"
        dump.write_text("module bebert_dump();\nreg [8*1024-1:0] fname;\ninitial begin\n"
                        "  if (!$value$plusargs(\"bebert_waves=%s\", fname)) fname = \"waves.fst\";\n"
                        f"  $dumpfile(fname);\n  $dumpvars(0, {TOP_NAME});\nend\nendmodule\n")
        sources.append(dump)
        args += ["-s", "bebert_dump"]
    runner = get_runner("icarus")
    runner.build(sources=sources, hdl_toplevel=TOP_NAME, build_dir=bdir, timescale=("1ns", "1ps"),
                 always=True, log_file=bdir / "build.log",
                 # Verilog-2005 semantics: declaration initialisers create the time-0 event
                 # that starts the always @* blocks yosys emits (-g2012 would not).
                 build_args=args)


def waves_request(waves) -> Path | None:
    """The waveform directory: the `waves` argument, else $BEBERT_WAVES, else None; created
    and checked here, once, so a bad one fails before any simulation."""
    wdir = waves if waves not in (None, False, "") else os.environ.get("BEBERT_WAVES") or None
    if wdir is None:
        return None
    if wdir is True:  # the old boolean form: keep them in the cache
        wdir = cache_root() / "waves"
    wdir = Path(wdir)
    try:
        wdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WavesError(f"cannot create waveform directory {wdir}: {e.strerror}") from None
    if not os.access(wdir, os.W_OK):
        raise WavesError(f"waveform directory {wdir} is not writable")
    return wdir


def run_rtl(config, words: list[int], dram: np.ndarray, *, waves=None, waves_name: str = "waves", build_dir: Path | None = None, timeout_cycles: int = 100_000,
            stall: float = 0.0, seed: int = 0) -> dict:
    """Run raw instruction `words` over the DRAM image `dram` on the RTL.

    `stall` (0 .. 1) slows the memories behind the ports at random (seeded by `seed`):
    requests and write beats wait for ready, read beats and instruction words come late,
    write responses too; 0 is the nominal memory the simulator assumes. `waves` is a
    directory (see `waves_request`) for `<waves_name>.fst`.

    Returns {"done", "timed_out", "cycles" (the `cycles` port), "observed_cycles" (counted
    by the bench), "error", "error_code", "error_pc", "dram" (final image, np.uint8),
    "waves" (path or None)}.
    """
    from cocotb_tools.runner import get_runner

    if not 0 <= stall < 1:
        raise ValueError(f"stall must be a probability in [0, 1), got {stall}")
    wdir = waves_request(waves)
    bdir = build(config, waves=wdir is not None, build_dir=build_dir)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=bdir))
    try:
        code = np.frombuffer(b"".join(int(w).to_bytes(INSTR_BYTES, "little") for w in words), np.uint8)
        params = np.array([config.dram_bytes_per_cycle, config.dram_latency_cycles, timeout_cycles,
                           round(stall * 1000), seed], np.int64)
        np.savez(run_dir / "input.npz", code=code, dram=np.asarray(dram, np.uint8), params=params)
        dump = run_dir / "waves.fst"
        plusargs = [f"+bebert_waves={dump}"] if wdir is not None else []
        runner = get_runner("icarus")
        runner.test(hdl_toplevel=TOP_NAME, hdl_toplevel_lang="verilog", test_module="bebert.hw.tb.program_bench",
                    build_dir=bdir, test_dir=run_dir, waves=wdir is not None, plusargs=plusargs,
                    results_xml=str(run_dir / "results.xml"),
                    extra_env={"BEBERT_TB_INPUT": str(run_dir / "input.npz"), "BEBERT_TB_OUTPUT": str(run_dir),
                               "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")},
                    log_file=run_dir / "sim.log")
        res_path = run_dir / "result.json"
        if not res_path.is_file():
            raise RuntimeError(f"RTL run produced no result; see {run_dir / 'sim.log'}")
        res = json.loads(res_path.read_text())
        res["dram"] = np.load(run_dir / "dram.npy")
        res["waves"] = None
        if wdir is not None and dump.is_file():
            dst = wdir / f"{waves_name}.fst"
            with atomic_path(dst) as tmp:  # a viewer never sees half a file
                shutil.move(str(dump), tmp)
            res["waves"] = str(dst)
        return res
    finally:
        if os.environ.get("BEBERT_KEEP_RUN") is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def legal_prefix(words: list[int], config) -> list:
    """The instructions fetch dispatches from raw `words` on `config`: those before the first
    HALT or word `bebert.isa.decode` / `check_config` refuses, and that HALT."""
    from bebert.isa import IsaError, Op, check_config, decode

    out = []
    for w in words:
        try:
            ins = decode(w)
        except IsaError:
            break
        if check_config(ins, config) is not None:
            break
        out.append(ins)
        if ins.op == Op.HALT:
            break
    return out


def verify(program: Program | str | Path, *, waves=None, build_dir: Path | None = None, timeout_cycles: int | None = None,
           raw_words: list[int] | None = None) -> dict:
    """Run `program` on the RTL and compare it with the golden executor and the simulator.

    `waves`: a directory for the waveform (see `waves_request`), named after the program.

    `raw_words` replaces the program's instruction stream by raw 128-bit words (possibly
    illegal: the RTL must stop with `error`, as the simulator does); the golden result is
    then that of the legal words before the first illegal one. The RTL runs for at most
    `timeout_cycles`, by default 2 * simulated cycles + 10,000. The result's `passed` is
    false, with a one-line `reason`, on a deadlock (a program read from disk is refused
    before, by `bebert.program_check`; `cycles_match` still tells whether the RTL did not
    finish either), past the cycle budget, or on any difference.
    """
    from bebert.compiler import golden
    from bebert.sim import simulate
    from bebert.sim.simulator import SimError

    t0 = time.time()
    prog = program if isinstance(program, Program) else Program.read(program)
    cfg = prog.config
    problems = {}
    if raw_words is not None:
        words = [int(w) for w in raw_words]
        legal = legal_prefix(words, cfg)
        if not legal or legal[-1].op.name != "HALT":
            legal.append(_halt())
        run_sim = lambda: simulate(prog, raw_words=words)  # noqa: E731
        run_golden = lambda: golden.run(cfg, legal, prog.dram).dram  # noqa: E731
    else:
        words = [int.from_bytes(to_bytes([i]), "little") for i in prog.instrs]
        run_sim = lambda: simulate(prog)  # noqa: E731
        run_golden = lambda: golden.execute(prog)  # noqa: E731
    waves_name = Path(program).name if isinstance(program, (str, Path)) else "waves"
    try:
        sim = run_sim()
    except SimError as e:  # a deadlock: the RTL must not finish either
        sim, problems["sim"] = None, str(e)
    try:
        expected = run_golden()
    except golden.GoldenError as e:
        expected, problems["golden"] = None, str(e)
    if timeout_cycles is None:
        timeout_cycles = 2 * (sim.cycles if sim is not None else 0) + DEFAULT_TIMEOUT_MARGIN
    rtl = run_rtl(cfg, words, prog.dram, waves=waves, waves_name=waves_name, build_dir=build_dir,
                  timeout_cycles=timeout_cycles)
    got = rtl["dram"]
    outputs = prog.by_role("output")
    if expected is None:
        mismatched = ["<no golden result>"]
    elif outputs:
        mismatched = [t.name for t in outputs
                      if not np.array_equal(got[t.offset:t.offset + t.nbytes],
                                            expected[t.offset:t.offset + t.nbytes])]
    else:  # no declared outputs: the whole image is the result
        mismatched = [] if np.array_equal(got, expected) else ["<dram image>"]
    deadlock = sim is None
    res = {
        "config": cfg.name,
        "instructions": len(words),
        "outputs_match": bool(rtl["done"] and not mismatched),
        "mismatched": mismatched,
        "rtl_done": rtl["done"],
        "rtl_timed_out": rtl["timed_out"],
        "rtl_cycles": rtl["cycles"],
        "rtl_observed_cycles": rtl["observed_cycles"],
        "sim_cycles": None if deadlock else sim.cycles,
        "cycles_match": bool(rtl["timed_out"] if deadlock else
                             rtl["done"] and rtl["cycles"] == sim.cycles == rtl["observed_cycles"]),
        "rtl_error": rtl["error"],
        "rtl_error_code": rtl["error_code"],
        "rtl_error_pc": rtl["error_pc"] if rtl["error"] else None,
        "sim_error": False if deadlock else bool(sim.error),
        "problems": problems,
    }
    res["reason"] = _failure(res, problems, timeout_cycles)
    res["passed"] = res["reason"] is None
    res["waves"] = rtl["waves"]
    res["wall_s"] = round(time.time() - t0, 3)
    return res


def _failure(res: dict, problems: dict, budget: int) -> str | None:
    """Why a verification failed, in one line, or None when it passed. A deadlock fails even
    when the RTL, as it should, does not finish either: there is nothing to hold it to."""
    if res["sim_cycles"] is None:
        agree = "the RTL did not finish either" if res["cycles_match"] else "but the RTL finished"
        return f"{problems.get('sim', 'deadlock')} ({agree})"
    if not res["rtl_done"]:
        return (f"the RTL did not finish within the cycle budget of {budget:,} cycles (the simulator takes "
                f"{res['sim_cycles']:,})")
    if res["rtl_error"] != res["sim_error"]:
        return f"error flag: RTL {res['rtl_error']}, simulator {res['sim_error']}"
    if not res["cycles_match"]:
        return (f"cycles: RTL {res['rtl_cycles']:,} (observed {res['rtl_observed_cycles']:,}), "
                f"simulator {res['sim_cycles']:,}")
    if res["mismatched"]:
        return "outputs differ from the golden executor: " + ", ".join(res["mismatched"]) + (
            f" ({problems['golden']})" if "golden" in problems else "")
    return None


def _halt():
    from bebert.isa import halt
    return halt()
