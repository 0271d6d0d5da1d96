"""BiBERT members and ensembles on the accelerator beside BinaryBERT's (issue 13).

    python bench/bench_bibert.py [--config configs/default.toml] [--out bench/results/bibert.json]

Four workloads at 128 tokens on configs/default.toml: one BERT-base member and a 4-member
ensemble, BiBERT (`base=bibert`: 1-bit activations, Bi-Attention as XNOR-mode GEMMs,
docs/NUMERICS.md "BiBERT") and BinaryBERT (`abits=4`). Each is compiled (`bebert.api.compile`)
and simulated cycle-accurately (`bebert.api.simulate`: the cycle count is the RTL's, `bebert
verify` holds them equal), priced with the asic45 energy table. Per workload: cycles, latency at
the configuration's clock, the per-member marginal latency, energy, the roofline fraction and its
bound, PE-array utilisation, and per region kind (attention, ffn) cycles and limiter; beside them
`bebert stats`' model size and FLOP-equivalents against FP32 BERT-base (the papers' convention).
It prints a table and writes the JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bebert.files import atomic_write, to_json  # noqa: E402

WORKLOADS = {
    "bibert_member": "synthetic:bert-base,members=1,base=bibert,seq=128",
    "bibert_ensemble4": "synthetic:bert-base,members=4,base=bibert,seq=128",
    "binarybert_member": "synthetic:bert-base,members=1,abits=4,seq=128",
    "binarybert_ensemble4": "synthetic:bert-base,members=4,abits=4,seq=128",
}


def workload(spec: str, config) -> dict:
    from bebert import api
    from bebert.compiler.stats import stats_for

    t0 = time.perf_counter()
    program = api.compile(spec, config)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = api.simulate(program, energy="asic45")
    sim_s = time.perf_counter() - t0
    d = rep.report
    st = stats_for(spec)
    kinds = {k["name"]: {"cycles": k["cycles"], "limiter": k["roofline"]["limiter"],
                         "achieved_fraction": k["roofline"]["achieved_fraction"]}
             for k in d["kinds"] if k["name"] in ("attention", "ffn")}
    return {
        "model": spec, "config": config.name, "clock_mhz": config.clock_mhz, "instructions": len(program.instrs),
        "compile_s": round(compile_s, 2), "sim_wall_s": round(sim_s, 2),
        "cycles": rep.cycles, "latency_ms": rep.latency_s * 1e3,
        "member_marginal_ms": [m["marginal_latency_s"] * 1e3 for m in d["members"]],
        "energy_mj": rep.energy_per_inference_j * 1e3, "energy_table": rep.energy_table,
        "roofline_fraction": rep.roofline_fraction, "bound_by": rep.roofline_bound_by,
        "pe_utilization": rep.utilization["pe_array"], "utilization": rep.utilization,
        "binary_ops": rep.binary_ops, "dram_bytes": rep.dram_bytes, "kinds": kinds,
        "stats": {"mib": st["ensemble"]["mib"], "gflops_equivalent": st["ensemble"]["ops"]["flops_equivalent"] / 1e9,
                  "matmul_gflops_equivalent": st["ensemble"]["ops"]["matmul_flops_equivalent"] / 1e9,
                  "reduction": st["reduction"]},
    }


def table(res: dict) -> str:
    rows = [("workload", "cycles", "ms", "ms/member", "mJ", "roofline", "PE util", "MiB", "GFLOP-eq", "size x",
             "flops x")]
    for name, r in res["workloads"].items():
        red = r["stats"]["reduction"]
        rows.append((name, f"{r['cycles']:,}", f"{r['latency_ms']:.2f}", f"{min(r['member_marginal_ms']):.2f}",
                     f"{r['energy_mj']:.3f}", f"{r['roofline_fraction']:.1%} ({r['bound_by']})",
                     f"{r['pe_utilization']:.1%}", f"{r['stats']['mib']:.1f}", f"{r['stats']['gflops_equivalent']:.2f}",
                     f"{red['size']:.1f}", f"{red['flops']:.1f}"))
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w[i]) for i, c in enumerate(r)) for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bibert.json"))
    args = ap.parse_args(argv)
    from tqdm import tqdm

    from bebert import api

    config = api.load_config(args.config)
    res = {"config": config.name, "workloads": {}}
    for name, spec in tqdm(WORKLOADS.items(), desc="bibert bench", unit="workload"):
        res["workloads"][name] = workload(spec, config)
    w = res["workloads"]
    res["bibert_vs_binarybert"] = {
        "member_latency_ratio": w["bibert_member"]["latency_ms"] / w["binarybert_member"]["latency_ms"],
        "ensemble4_latency_ratio": w["bibert_ensemble4"]["latency_ms"] / w["binarybert_ensemble4"]["latency_ms"],
        "member_energy_ratio": w["bibert_member"]["energy_mj"] / w["binarybert_member"]["energy_mj"],
    }
    print(table(res))
    print({k: round(v, 3) for k, v in res["bibert_vs_binarybert"].items()})
    atomic_write(Path(args.out), to_json(res))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
