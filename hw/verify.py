"""Run programs on the RTL (cocotb + Verilator or Icarus) and hold them to the golden executor and the simulator.

`verify(program)` builds the Verilog of the program's configuration (cached), runs the
program through the cocotb bench `bebert.hw.tb.program_bench` and compares
- the output tensors of the final DRAM image with `bebert.compiler.golden.execute`,
- the cycle count and the error flag with `bebert.sim.simulate`.

The simulator is `simulator=` ("verilator" | "icarus"), else $BEBERT_SIMULATOR, else the
fastest installed (`bebert.hw.simulators`); both give the same bytes and cycles. Builds are
cached under ~/.cache/bebert/rtl (or $BEBERT_CACHE): the Verilog text by a hash of the
configuration and the hw/ sources (generation is the slow part), the compiled simulation by
a hash of the simulator and the Verilog text (`bebert.hw.rtl_runner`).

Waveforms: `waves=DIR` (or $BEBERT_WAVES=DIR) dumps every signal of `bebert_accel` into
DIR/<name>.fst (FST: GTKWave, Surfer; `fst2vcd` converts it to VCD).

The bench (`bebert.hw.tb.program_bench`) puts the nominal memory of the configuration behind
the four DRAM ports (`rd`, `owr`, `vrd`, `vwr`: docs/MACHINE_V3.md), or a slower one
(`run_rtl(..., stall=p)`), which must change the cycles and nothing else.
"""

from __future__ import annotations

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

from . import rtl_runner, simulators
from .rtl_runner import cache_root
from .verilog import TOP_NAME, verilog_text

HW_DIR = Path(__file__).resolve().parent
DEFAULT_TIMEOUT_MARGIN = 10_000


class WavesError(OSError):
    """The waveform directory cannot be used."""


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


def _cached_text(config, kind: str, make) -> str:
    """`make()` (a Verilog text of `config`), from the cache when the config and the sources are unchanged."""
    key = hashlib.sha256((json.dumps(config.to_dict(), sort_keys=True) + _sources_hash()).encode()).hexdigest()[:24]
    path = cache_root() / "verilog" / f"{kind}{key}.v"
    if path.is_file():
        return path.read_text()
    text = make()
    atomic_write(path, text)
    return text


def cached_verilog(config) -> str:
    """The Verilog text of `Accelerator(config)`, from the cache when the sources are unchanged."""
    return _cached_text(config, "", lambda: verilog_text(config))


def cached_axi_verilog(config) -> str:
    """The Verilog of the AXI wrapper `bebert.hw.axi.AxiAccelerator(config)` (top `bebert_axi`), cached."""
    from .verilog import axi_verilog_text

    return _cached_text(config, "axi-", lambda: axi_verilog_text(config))


def build(config, *, waves: bool = False, build_dir: Path | None = None, simulator: str | None = None) -> Path:
    """Compile the RTL of `config` for `simulator` (see `bebert.hw.simulators.select`); returns
    the build directory (cached by simulator and Verilog text, see `bebert.hw.rtl_runner`)."""
    sim = simulators.select(simulator)
    return rtl_runner.build(sim, {f"{TOP_NAME}.v": cached_verilog(config)}, TOP_NAME, waves=waves, build_dir=build_dir)


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
            stall: float = 0.0, seed: int = 0, simulator: str | None = None) -> dict:
    """Run raw instruction `words` over the DRAM image `dram` on the RTL.

    `stall` (0 .. 1) slows the memories behind the ports at random (seeded by `seed`):
    requests and write beats wait for ready, read beats and instruction words come late,
    write responses too; 0 is the nominal memory the simulator assumes. `waves` is a
    directory (see `waves_request`) for `<waves_name>.fst`. `simulator`: "verilator",
    "icarus" or None for `bebert.hw.simulators.select`'s default.

    Returns {"done", "timed_out", "cycles" (the `cycles` port), "observed_cycles" (counted
    by the bench), "error", "error_code", "error_pc", "dram" (final image, np.uint8),
    "waves" (path or None), "simulator"}.
    """
    if not 0 <= stall < 1:
        raise ValueError(f"stall must be a probability in [0, 1), got {stall}")
    sim = simulators.select(simulator)
    wdir = waves_request(waves)
    bdir = build(config, waves=wdir is not None, build_dir=build_dir, simulator=sim.name)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=bdir))
    try:
        code = np.frombuffer(b"".join(int(w).to_bytes(INSTR_BYTES, "little") for w in words), np.uint8)
        params = np.array([config.dram_bytes_per_cycle, config.dram_latency_cycles, timeout_cycles,
                           round(stall * 1000), seed], np.int64)
        np.savez(run_dir / "input.npz", code=code, dram=np.asarray(dram, np.uint8), params=params)
        dump = run_dir / "waves.fst"
        rtl_runner.run(sim, bdir, TOP_NAME, "bebert.hw.tb.program_bench", run_dir,
                       env={"BEBERT_TB_INPUT": str(run_dir / "input.npz"), "BEBERT_TB_OUTPUT": str(run_dir),
                            "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")},
                       waves_file=dump if wdir is not None else None)
        res_path = run_dir / "result.json"
        if not res_path.is_file():
            raise RuntimeError(f"RTL run produced no result; see {run_dir / 'sim.log'}")
        res = json.loads(res_path.read_text())
        res["dram"] = np.load(run_dir / "dram.npy")
        res["waves"] = None
        res["simulator"] = sim.name
        if wdir is not None and dump.is_file():
            dst = wdir / f"{waves_name}.fst"
            with atomic_path(dst) as tmp:  # a viewer never sees half a file
                shutil.move(str(dump), tmp)
            res["waves"] = str(dst)
        return res
    finally:
        if os.environ.get("BEBERT_KEEP_RUN") is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def run_axi(config, words: list[int], dram: np.ndarray, *, timeout_cycles: int = 200_000,
            stall: float = 0.0, seed: int = 0, simulator: str | None = None) -> dict:
    """Run raw instruction `words` over `dram` on the AXI wrapper (`bebert_axi`) behind
    cocotbext-axi's AXI RAM (bench `bebert.hw.tb.axi_bench`): the image at address 0, the
    words at the next 4 KiB boundary; with `stall` every AXI channel of the RAM pauses with
    that probability per cycle (seeded). Returns {"done", "timed_out", "error", "error_code",
    "error_pc", "cycles", "dram", "simulator"}; cycles include every AXI round trip (each
    instruction word is one), so they exceed the simulator's nominal count."""
    from .axi import AXI_TOP, PORT_GROUPS, ReadGroup

    sim = simulators.select(simulator)
    bdir = rtl_runner.build(sim, {f"{AXI_TOP}.v": cached_axi_verilog(config)}, AXI_TOP)
    run_dir = Path(tempfile.mkdtemp(prefix="axi-", dir=bdir))
    try:
        dram = np.asarray(dram, np.uint8)
        code = np.frombuffer(b"".join(int(w).to_bytes(INSTR_BYTES, "little") for w in words), np.uint8)
        prog_base = -(-max(dram.size, 1) // 4096) * 4096
        groups = [f"{g.prefix}:{'read' if isinstance(g, ReadGroup) else 'write'}" for g in PORT_GROUPS] + ["imem:read"]
        np.savez(run_dir / "input.npz", code=code, dram=dram, params=np.array([prog_base, timeout_cycles, round(stall * 1000), seed], np.int64),
                 groups=np.array(groups))
        rtl_runner.run(sim, bdir, AXI_TOP, "bebert.hw.tb.axi_bench", run_dir,
                       env={"BEBERT_TB_INPUT": str(run_dir / "input.npz"), "BEBERT_TB_OUTPUT": str(run_dir),
                            "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")})
        if not (run_dir / "result.json").is_file():
            raise RuntimeError(f"AXI run produced no result; see {run_dir / 'sim.log'}")
        res = json.loads((run_dir / "result.json").read_text())
        res["dram"] = np.load(run_dir / "dram.npy")
        res["simulator"] = sim.name
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
           raw_words: list[int] | None = None, simulator: str | None = None) -> dict:
    """Run `program` on the RTL and compare it with the golden executor and the simulator.

    `waves`: a directory for the waveform (see `waves_request`), named after the program.
    `simulator`: "verilator", "icarus", or None for the default (`bebert.hw.simulators.select`);
    a missing one raises `SimulatorMissing` (one line) before anything runs.

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
    sim_name = simulators.select(simulator).name  # a missing simulator fails before the golden run
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
                  timeout_cycles=timeout_cycles, simulator=sim_name)
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
        "simulator": sim_name,
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
