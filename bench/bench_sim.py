"""Simulator speed: simulated cycles per wall second, JIT warm-up, compile time, Python ratio.

    python bench/bench_sim.py [--config configs/default.toml] [--out bench/results/sim_speed.json]

Workloads (4-bit activations, M = 128 tokens):
- the BERT-base FFN up-projection, `gemm:128,768,3072,4`, compiled with
  `bebert.compiler.compile_spec` (its compile time is reported);
- a 3-member BERT-base ensemble's linear layers: 3 members x 12 layers x (QKV 768->2304,
  attention output 768->768, FFN 768->3072, FFN 3072->768), the compiled layer programs
  concatenated into one instruction stream (each is token-balanced), simulated in one run;
- the same kernel run as plain Python (`run_events.py_func`) on a small GEMM, for the ratio.

Without `bebert.compiler` (or with --synthetic) the workloads are random tiled programs
(`bebert.sim.random_programs`) of similar instruction counts, marked "synthetic" in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bebert.config import AccelConfig
from bebert.isa import Op
from bebert.program import Program
from bebert.sim import simulate
from bebert.sim import kernel as K
from bebert.sim.random_programs import dram_image_bytes, random_program
from bebert.sim.simulator import stream_arrays

ROOT = Path(__file__).resolve().parents[1]
FFN = "gemm:128,768,3072,4"
ENSEMBLE_LAYERS = ("gemm:128,768,2304,4", "gemm:128,768,768,4", "gemm:128,768,3072,4", "gemm:128,3072,768,4")
MEMBERS, LAYERS = 3, 12
PY_SPEC = "gemm:128,768,768,4"


def _compiler():
    try:
        from bebert.compiler import compile_spec
    except ImportError:
        return None
    return compile_spec


def _synthetic(config: AccelConfig, n_instrs: int, seed: int) -> Program:
    instrs = random_program(np.random.default_rng(seed), config, n_instrs, max_n=32, max_k=96)
    return Program(config=config, instrs=instrs, dram=np.zeros(dram_image_bytes(config), np.uint8),
                   meta={"generator": "random_program"})


def _concat(programs: list[Program], copies: int) -> Program:
    body = [ins for p in programs for ins in p.instrs if ins.op != Op.HALT]
    halt = programs[0].instrs[-1]
    return Program(config=programs[0].config, instrs=body * copies + [halt],
                   dram=np.zeros(programs[0].config.dram_bytes_per_cycle, np.uint8))


def _cold_jit_s() -> float:
    """Seconds to JIT-compile run_events from scratch: a fresh process, an empty Numba cache."""
    code = ("import time, numpy as np; from bebert.config import AccelConfig; "
            "from bebert.sim import simulate; from bebert.sim.random_programs import random_test_program; "
            "p = random_test_program(np.random.default_rng(0), AccelConfig(), 4); "
            "t = time.perf_counter(); simulate(p); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_CACHE_DIR": cache},
                             capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def _timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _speed(program: Program, repeat: int) -> dict:
    """Wall time of simulate() split into array building and kernel, best of `repeat`."""
    config = program.config
    instrs = list(program.instrs)
    arrays, prep = _timed(lambda: stream_arrays(instrs, config), repeat)
    depth = np.int64(config.queue_depth)
    (_, cycles, _, _), kern = _timed(lambda: K.run_events(*arrays, depth), repeat)
    result, total = _timed(lambda: simulate(program), repeat)
    assert result.cycles == cycles
    return {
        "n_instructions": len(instrs),
        "cycles": int(cycles),
        "sim_wall_s": total,
        "prepare_s": prep,
        "kernel_s": kern,
        "cycles_per_s": cycles / total,
        "kernel_cycles_per_s": cycles / kern,
        "instructions_per_s": len(instrs) / total,
        "utilization": result.utilization,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_speed.json"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic", action="store_true", help="random programs instead of the compiler")
    ap.add_argument("--no-ensemble", action="store_true", help="skip the 3-member ensemble run")
    a = ap.parse_args(argv)
    config = AccelConfig.from_toml(a.config)
    compile_spec = None if a.synthetic else _compiler()
    report: dict = {"config": config.name, "workload": "compiled" if compile_spec else "synthetic"}

    # JIT: from scratch (empty cache, another process), then this process's first calls
    # (which load the kernels from Numba's cache when it holds them).
    report["jit_cold_s"] = _cold_jit_s()
    tiny = _synthetic(config, 4, 0)
    t = time.perf_counter()
    simulate(tiny)
    report["jit_warmup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    simulate(tiny, kernel=K.run_reference)
    report["jit_warmup_reference_s"] = time.perf_counter() - t

    # The BERT-base FFN shape.
    if compile_spec:
        ffn, report["compile_s"] = _timed(lambda: compile_spec(FFN, config))
    else:
        ffn, report["compile_s"] = _synthetic(config, 20_000, 1), None
    report["ffn"] = {"spec": FFN, **_speed(ffn, a.repeat)}

    # A 3-member BERT-base ensemble in one instruction stream.
    if not a.no_ensemble:
        if compile_spec:
            layers, t_comp = _timed(lambda: [compile_spec(s, config) for s in ENSEMBLE_LAYERS])
        else:
            layers, t_comp = [_synthetic(config, 10_000, s) for s in range(4)], None
        ens = _concat(layers, MEMBERS * LAYERS)
        report["ensemble"] = {"members": MEMBERS, "layers": LAYERS, "specs": list(ENSEMBLE_LAYERS),
                              "compile_s": t_comp, **_speed(ens, min(a.repeat, 2))}

    # Pure Python (the same kernel's py_func) against the JIT on one small program.
    small = compile_spec(PY_SPEC, config) if compile_spec else _synthetic(config, 300, 2)
    arrays = stream_arrays(list(small.instrs), config)
    depth = np.int64(config.queue_depth)
    (_, cycles, _, _), t_py = _timed(lambda: K.run_events.py_func(*arrays, depth))
    _, t_jit = _timed(lambda: K.run_events(*arrays, depth), max(a.repeat, 5))
    report["python"] = {"spec": PY_SPEC, "n_instructions": len(small.instrs), "cycles": int(cycles),
                        "python_kernel_s": t_py, "jit_kernel_s": t_jit,
                        "python_cycles_per_s": cycles / t_py, "jit_cycles_per_s": cycles / t_jit,
                        "speedup": t_py / t_jit}

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    f = report["ffn"]
    print(f"config {config.name} ({report['workload']}); JIT compile {report['jit_cold_s']:.2f} s, "
          f"warm-up with cache {report['jit_warmup_s']:.2f} s")
    if report["compile_s"] is not None:
        print(f"compile {FFN}: {report['compile_s']:.3f} s")
    print(f"FFN: {f['n_instructions']:,} instructions, {f['cycles']:,} cycles in {f['sim_wall_s'] * 1e3:.1f} ms "
          f"= {f['cycles_per_s']:.3g} cycles/s (kernel alone {f['kernel_cycles_per_s']:.3g})")
    if "ensemble" in report:
        e = report["ensemble"]
        print(f"ensemble {MEMBERS}x{LAYERS} layers: {e['n_instructions']:,} instructions, {e['cycles']:,} cycles "
              f"in {e['sim_wall_s']:.2f} s (arrays {e['prepare_s']:.2f} s, kernel {e['kernel_s']:.2f} s)")
    p = report["python"]
    print(f"pure Python kernel: {p['python_cycles_per_s']:.3g} cycles/s; JIT {p['speedup']:.0f}x faster")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
