"""Whole-ensemble compiler speed: the targets of issue 4.

    python bench/bench_compile.py [--config configs/default.toml] [--model SPEC]
                                  [--out bench/results/compile.json] [--no-golden] [--check]

Measured on the 3-member BERT-base ensemble (`synthetic:bert-base,members=3,abits=4,seq=128`):

- `compile_s`: `bebert compile` as a new user runs it (a fresh process, imports included,
  the program written to a temporary directory); target under 10 s on the 2-core machine;
  `passes_s`: the in-process time of each pass;
- wall seconds and CPU seconds (user + system) both: on a shared machine the wall time also
  counts other processes' load (recorded as `load_average_before`);
- `golden_s`: one inference (the compiled-in example) on the golden executor; target under 60 s;
- the program: instructions by opcode, DRAM bytes (static image, scratch arena with and without
  liveness reuse), VEC descriptors;
- `--check`: also runs `apply_integer_member` (PyTorch) on the same example and records whether
  every member's logits are equal bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEC = "synthetic:bert-base,members=3,abits=4,seq=128"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    ap.add_argument("--model", default=SPEC)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "compile.json"))
    ap.add_argument("--no-golden", action="store_true")
    ap.add_argument("--check", action="store_true", help="compare with the PyTorch integer reference")
    a = ap.parse_args(argv)

    from bebert.compiler import host
    from bebert.compiler.pipeline import compile_model
    from bebert.config import AccelConfig
    from bebert.isa import Op
    from bebert.files import atomic_write

    res: dict = {"model": a.model, "config": a.config, "targets": {"compile_s": 10.0, "golden_s": 60.0}}
    bebert = Path(sys.executable).with_name("bebert")
    res["load_average_before"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([str(bebert), "compile", "--model", a.model, "--config", a.config, "--out",
                        str(Path(tmp) / "bb")], check=True, stdout=subprocess.DEVNULL)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res["compile_s"] = round(time.perf_counter() - t0, 3)
        res["compile_cpu_s"] = round(c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime, 3)
    print(f"bebert compile (fresh process, program written): {res['compile_s']:.2f} s wall, "
          f"{res['compile_cpu_s']:.2f} s CPU (load average {res['load_average_before']:.1f} on "
          f"{os.cpu_count()} cores)", flush=True)

    config = AccelConfig.from_toml(a.config)
    t0 = time.perf_counter()
    prog = compile_model(a.model, config)
    res["compile_in_process_s"] = round(time.perf_counter() - t0, 3)
    res["passes_s"] = prog.meta["compile_s"]
    ops = Counter(Op(i.op).name for i in prog.instrs)
    res["instructions"] = len(prog.instrs)
    res["by_opcode"] = dict(sorted(ops.items()))
    res["dram_bytes"] = int(prog.dram.size)
    res["static_bytes"] = prog.meta["static_bytes"]
    res["scratch_bytes"] = prog.meta["scratch_bytes"]
    res["scratch_bytes_without_reuse"] = prog.meta["scratch_bytes_without_reuse"]
    print(f"{len(prog.instrs):,} instructions {dict(ops)}; DRAM {prog.dram.size:,} bytes "
          f"(scratch {res['scratch_bytes']:,}, {res['scratch_bytes_without_reuse']:,} without reuse)", flush=True)
    if not a.no_golden:
        t0, p0 = time.perf_counter(), time.process_time()
        acc = host.run_once(prog)
        res["golden_s"] = round(time.perf_counter() - t0, 3)
        res["golden_cpu_s"] = round(time.process_time() - p0, 3)
        res["accumulators"] = acc.tolist()
        print(f"golden, one inference: {res['golden_s']:.2f} s wall, {res['golden_cpu_s']:.2f} s CPU", flush=True)
        if a.check:
            import torch

            from bebert.compiler.pipeline import load_target
            from bebert.model.package import apply_integer_member

            model, seq, _, _ = load_target(a.model)
            ids, types, mask = host.default_input(seq, prog.meta["vocab"], prog.meta.get("seed", 0))
            b = {"input_ids": torch.tensor(ids)[None], "token_type_ids": torch.tensor(types)[None],
                 "attention_mask": torch.tensor(mask)[None]}
            got = host.logits(acc[None], prog)
            res["equal_to_reference"] = all(torch.equal(apply_integer_member(m, b), z)
                                            for m, z in zip(model.members, got))
            print(f"equal to apply_integer_member: {res['equal_to_reference']}", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, (json.dumps(res, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
                       + "\n").encode())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
