"""FPGA resources from Yosys for three configurations, placed and routed on an ECP5 where they
fit, and binary ops/s per LUT against FINN and BISMO.

    python bench/bench_resources.py [--configs small default wide] [--timeout 1500] [--jobs 1]
                                    [--no-pnr] [--out bench/results/resources.json]

For each config: generate `bebert_accel.v`, run `bebert.hw.resources.resource_report`
(`yosys synth_xilinx`, 7-series, hierarchy kept; see hw/resources.py: pre-placement cell
counts, labelled so), and record LUTs, flip-flops, BRAM, DSP per block and in total, the
synthesis wall time and the peak binary operations per second per LUT at the configured
clock. Then `bebert.hw.pnr.place_and_route` on the LFE5U-85F (synth_ecp5 + nextpnr-ecp5, out
of context): placed LUT4 / FF / DP16KD / MULT18 and the achieved Fmax under `ecp5`, or, for a
config too big for the part, `ecp5.fits = false` with the sizes that do not fit. A config whose synthesis fails or
runs past `--timeout` is recorded with its error, not left out. The published figures it is
compared with are in PUBLISHED below, each with its source; a figure that could not be
found is marked so, never filled in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bebert.config import AccelConfig
from bebert.hw import generate_verilog
from bebert.hw.resources import SynthesisError, resource_report
from bebert.hw.verify import _sources_hash

ROOT = Path(__file__).resolve().parents[1]

# FINN SFC: a binarized MLP 784-256-256-256-10 (FINN paper, Sec. 5). One binary MAC = 2 ops.
SFC_OPS_PER_IMAGE = 2 * (784 * 256 + 256 * 256 + 256 * 256 + 256 * 10)

PUBLISHED = [
    {
        "design": "FINN SFC-max (MNIST, binarized MLP, fully unrolled dataflow)",
        "paper": "Y. Umuroglu et al., 'FINN: A Framework for Fast, Scalable Binarized Neural Network "
                 "Inference', FPGA 2017 (arXiv:1612.07119)",
        "device": "Xilinx ZC706 (XC7Z045)",
        "clock_mhz": 200.0,
        "binary_ops_per_s": 12.3e6 * SFC_OPS_PER_IMAGE,
        "luts": 91131,
        "kind": "measured throughput of a network-specific design (not a programmable overlay)",
        "sources": {
            "throughput": "12.3 million images/s on MNIST: FINN abstract (arXiv:1612.07119). Ops/s DERIVED here "
                          "as 12.3e6 x 2 x (784*256 + 2*256*256 + 256*10) = 12.3e6 x 668,672 ops/image; "
                          "not quoted from the paper's table",
            "luts": "91,131 LUTs, 200 MHz: FINN SFC-max as reprinted in NeuraLUT (Andronic & Constantinides, "
                    "FPL 2024) Table III; not read from the FINN paper itself",
        },
    },
    {
        "design": "FINN LFC-max / CNV-max",
        "paper": "FINN, FPGA 2017 (arXiv:1612.07119)",
        "device": "Xilinx ZC706 (XC7Z045)",
        "binary_ops_per_s": None,
        "luts": None,
        "sources": {"note": "throughput in ops/s and LUT counts of these prototypes were not found in the "
                            "sources searched (only the abstract's 21,906 images/s for CNV); not filled in"},
    },
    {
        "design": "BISMO (bit-serial matrix multiplication overlay), peak instance",
        "paper": "Y. Umuroglu, L. Rasnayake, M. Sjalander, 'BISMO: A Scalable Bit-Serial Matrix "
                 "Multiplication Overlay for Reconfigurable Computing', FPL 2018 (arXiv:1806.08862)",
        "device": "PYNQ-Z1 (XC7Z020)",
        "binary_ops_per_s": 6.5e12,
        "luts": None,
        "device_luts": 53200,
        "kind": "peak of a programmable overlay (the same kind of machine as bebert's)",
        "sources": {
            "throughput": "peak 6.5 TOPS (binary) on PYNQ-Z1: BISMO abstract (arXiv:1806.08862)",
            "luts": "the LUT count of that instance was not found in the sources searched; the XC7Z020 has "
                    "53,200 LUTs in all, so 6.5e12 / 53,200 is a LOWER BOUND on its ops/s per LUT",
        },
    },
    {
        "design": "BISMO v2 (LUT6-optimised arithmetic)",
        "paper": "Y. Umuroglu, D. Conficconi, L. Rasnayake, T. Preusser, M. Sjalander, 'Optimizing Bit-Serial "
                 "Matrix Multiplication for Reconfigurable Computing', ACM TRETS 2019",
        "device": "Avnet Ultra96 (XCZU3EG)",
        "binary_ops_per_s": 15.4e12,
        "luts": None,
        "device_luts": 70560,
        "kind": "peak of a programmable overlay",
        "sources": {
            "throughput": "15.4 binary TOPS on Ultra96: TRETS 2019 summary and the EECS-NTNU/bismo README",
            "luts": "instance LUT count not found; 70,560 is the XCZU3EG's LUT capacity (Xilinx DS891, quoted "
                    "from the datasheet, not re-checked in this run), so the per-LUT figure is a LOWER BOUND",
        },
    },
]


def _per_lut(entry: dict) -> dict:
    ops, luts, dev = entry.get("binary_ops_per_s"), entry.get("luts"), entry.get("device_luts")
    out = dict(entry)
    out["binary_ops_per_s_per_lut"] = ops / luts if ops and luts else None
    out["binary_ops_per_s_per_lut_lower_bound"] = ops / dev if ops and dev and not luts else None
    return out


def place(config, vfile, timeout_s: float) -> dict:
    from bebert.hw.pnr import DoesNotFit, PnrError, fit, part, place_and_route

    try:
        r = place_and_route(config, vfile, timeout_s=timeout_s)
    except DoesNotFit as e:
        return {"part": "LFE5U-85F", "fits": False, "error": str(e), "fit": fit(e.report, part("LFE5U-85F")),
                "synthesis_total": e.report["total"], "synth_seconds": e.report["synth_seconds"]}
    except PnrError as e:
        return {"part": "LFE5U-85F", "error": str(e)}
    syn = r.pop("synthesis")
    r["synthesis_total"], r["synth_seconds"], r["synthesis_tool"] = syn["total"], syn["synth_seconds"], syn["tool"]
    return r


def synthesize(name: str, timeout_s: float, pnr: bool = True) -> dict:
    config = AccelConfig.from_toml(ROOT / "configs" / f"{name}.toml")
    with tempfile.TemporaryDirectory(prefix=f"bebert_res_{name}_") as tmp:
        t0 = time.perf_counter()
        sources = _sources_hash()  # the RTL these figures are of (others may edit hw/ meanwhile)
        vfile = generate_verilog(config, tmp)
        gen_s = time.perf_counter() - t0
        try:
            report = resource_report(config, vfile, timeout_s=timeout_s)
        except SynthesisError as e:
            return {"config": name, "error": str(e), "verilog_seconds": round(gen_s, 1), "rtl_sources_sha256": sources,
                    "peak_binary_ops_per_s": 2 * config.binary_ops_per_cycle * config.clock_hz,
                    "clock_mhz": config.clock_mhz}
        if pnr:
            report["ecp5"] = place(config, vfile, timeout_s)
    report["verilog"] = f"<tmp>/{vfile.name}"
    report["rtl_sources_sha256"] = sources
    report["verilog_seconds"] = round(gen_s, 1)
    report.pop("modules")  # per-block figures are kept; per-module detail is in resource_report
    return report


def comparison(configs: dict[str, dict]) -> list[dict]:
    rows = []
    for name, r in configs.items():
        if "error" in r:
            continue
        rows.append({"design": f"bebert {name} ({r['array']['pe_rows']}x{r['array']['pe_cols']} PEs x "
                               f"{r['array']['xnor_width']} b)",
                     "device": "7-series (yosys synth_xilinx, before place and route)",
                     "clock_mhz": r["clock_mhz"], "binary_ops_per_s": r["peak_binary_ops_per_s"],
                     "luts": r["total"]["luts_total"],
                     "binary_ops_per_s_per_lut": r["peak_binary_ops_per_s_per_lut"],
                     "kind": "peak of a programmable overlay, at the configured clock (timing not closed)",
                     "sources": {"all": "this run (bench/bench_resources.py)"}})
        e = r.get("ecp5") or {}
        if e.get("fmax_mhz"):
            ops = r["peak_binary_ops_per_s"] / r["clock_mhz"] * min(e["fmax_mhz"], r["clock_mhz"])
            luts = e["utilization"]["lut4"]["used"]
            rows.append({"design": f"bebert {name} on the {e['part']} (placed and routed)",
                         "device": f"Lattice {e['part']} (nextpnr-ecp5, out of context)",
                         "clock_mhz": min(e["fmax_mhz"], r["clock_mhz"]), "binary_ops_per_s": ops, "luts": luts,
                         "binary_ops_per_s_per_lut": ops / luts if luts else None,
                         "kind": "peak of a programmable overlay at min(configured clock, measured Fmax); LUT4s",
                         "sources": {"all": "this run (bench/bench_resources.py)"}})
    return rows + [_per_lut(p) for p in PUBLISHED]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=["small", "default", "wide"])
    ap.add_argument("--timeout", type=float, default=1500.0, help="seconds of yosys per config")
    ap.add_argument("--jobs", type=int, default=1, help="configs synthesized at once (one yosys each)")
    ap.add_argument("--no-pnr", action="store_true", help="skip the ECP5 place and route")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "resources.json"))
    args = ap.parse_args(argv)

    print(f"[bench_resources] synthesizing {', '.join(args.configs)} ({args.jobs} at a time, "
          f"timeout {args.timeout:g} s each) ...", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {name: pool.submit(synthesize, name, args.timeout, not args.no_pnr) for name in args.configs}
        results = {name: f.result() for name, f in futures.items()}
    for name, r in results.items():
        msg = r.get("error") or (f"{r['total']['luts_total']} LUTs, {r['total']['ffs']} FFs, "
                                 f"{r['total']['bram36_equiv']} BRAM36, {r['total']['dsp']} DSP "
                                 f"in {r['synth_seconds']} s (xc7, pre-placement)")
        e = r.get("ecp5") or {}
        if e:
            msg += "; ECP5: " + (e.get("error") or f"Fmax {e['fmax_mhz']} MHz, {e['utilization']['lut4']['used']} LUT4")
        print(f"[bench_resources] {name}: {msg}", file=sys.stderr, flush=True)

    out = {
        "what": "FPGA resources of the bebert accelerator from Yosys synth_xilinx (7-series primitives, "
                "hierarchy kept), and peak binary ops/s per LUT against published FPGA binary accelerators",
        "flow_notes": [
            "The xc7 figures (total, blocks) are real yosys synth_xilinx cell counts, no estimates, labelled "
            "pre-placement: no packing, placement or timing. `ecp5` holds the placed-and-routed figures on the "
            "LFE5U-85F (nextpnr-ecp5, out of context) with the achieved Fmax, for every config that fits.",
            "Hierarchy is kept (no -flatten) so figures can be given per block; no optimisation crosses "
            "module boundaries.",
            "Each module is synthesised alone with its submodules blackboxed (the same netlist as one "
            "hierarchical run, checked in tests/test_resources.py), modules in parallel on every core, each "
            "cached by its text under $BEBERT_CACHE/rtl/yosys: module_seconds are per-module wall times "
            "(0 = from the cache, counted in cached_modules), synth_seconds the wall time of the whole report.",
            "luts_total counts LUT1..6 and INV cells plus LUTs used as distributed RAM and SRLs; Vivado "
            "may pack two small LUTs into one LUT6_2, so these are upper bounds.",
            "Ops: one binary MAC = 2 ops (XNOR/AND + add), the FINN/BISMO convention.",
        ],
        "rtl_sources_sha256": _sources_hash(),  # hw/*.py + config + isa: which RTL these figures are of
        "host": {"cpus": os.cpu_count(), "jobs": args.jobs,
                 "note": "synth_seconds are wall times on this host, with --jobs configs (each running its modules "
                         "on every core) sharing it"},
        "configs": results,
        "comparison": comparison(results),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
