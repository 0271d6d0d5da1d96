"""The balanced accelerator's figures (issue 11) beside the published anchors, in one table.

    python bench/bench_machine.py [--out bench/results/machine.json] [--resources bench/results/resources.json]

For each workload on its shipped configuration it compiles the program (`compile_model`),
simulates it cycle-accurately (the cycle count is the RTL's, `bebert verify` holds them equal)
and reads the report (`sim/report.py`):

- `bert_base`: `synthetic:bert-base,members=3,abits=4,seq=128` on configs/default.toml: latency
  per member (the members' marginal latency), the ensemble's fraction of its roofline bound,
  PE-array utilisation, and per region kind with binary ops (attention, ffn) the unit that
  limits it; targets: one member within 20 ms at 200 MHz, >= 75 % of the roofline bound,
  >= 70 % PE utilisation, the vector unit the limiter of no such kind;
- `minilm`: the demo's `synthetic:minilm-l6,members=3,abits=4,seq=128`: latency per inference,
  target 10 ms;
- `resources`: from bench/results/resources.json (bench/bench_resources.py, Yosys per module):
  binary MACs per LUT per cycle (target >= 0.2 on default) and the vector unit's share of the
  LUTs (target <= 25 %).

It writes the JSON and a Markdown table (`machine.md`) with every figure beside its anchor:
FQ-BERT (DATE 2021: BERT-base W4A8, 128 tokens, ZCU102, 214 MHz, 43.89 ms, 123k LUTs), the
BETA / BAT class of binary-weight BERT accelerators (about 15-20 ms), FINN SFC-max (about 0.23
binary MACs per LUT per cycle) and BISMO (at least 0.31), and the PE array's own floor (every
binary MAC at the array's peak, nothing else).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bebert.config import AccelConfig  # noqa: E402
from bebert.files import atomic_write, to_json  # noqa: E402

BERT_BASE = "synthetic:bert-base,members=3,abits=4,seq=128"
MINILM = "synthetic:minilm-l6,members=3,abits=4,seq=128"
TARGETS = {"member_ms": 20.0, "roofline_fraction": 0.75, "pe_utilization": 0.70, "minilm_ms": 10.0,
           "macs_per_lut_cycle": 0.2, "vector_lut_share": 0.25}
ANCHORS = {
    "fq_bert": {"what": "FQ-BERT (DATE 2021), BERT-base W4A8, 128 tokens, ZCU102", "latency_ms": 43.89,
                "clock_mhz": 214, "luts": 123_000},
    "beta_bat": {"what": "BETA / BAT class binary-weight BERT FPGA accelerators, BERT-base, 128 tokens",
                 "latency_ms": [15.0, 20.0]},
    "finn": {"what": "FINN SFC-max (binary MLP), binary MACs per LUT per cycle", "macs_per_lut_cycle": 0.23},
    "bismo": {"what": "BISMO (bit-serial matrix multiply overlay), binary MACs per LUT per cycle",
              "macs_per_lut_cycle": 0.31},
}
BINARY_KINDS = ("attention", "ffn")


def _workload(spec: str, config: AccelConfig) -> dict:
    from bebert.compiler import compile_model
    from bebert.sim import simulate
    from bebert.sim.report import sim_report

    t0 = time.perf_counter()
    program = compile_model(spec, config)
    compile_s = time.perf_counter() - t0
    simulate(program)  # JIT warm-up (Numba cache)
    t0 = time.perf_counter()
    result = simulate(program)
    sim_s = time.perf_counter() - t0
    rep = sim_report(program, result)
    members = rep["members"]
    floor = result.binary_ops / config.binary_ops_per_cycle
    kinds = {k["name"]: {"cycles": k["cycles"], "limiter": k["roofline"]["limiter"],
                         "achieved_fraction": k["roofline"]["achieved_fraction"], "busy": k["busy"]}
             for k in rep["kinds"]}
    return {
        "model": spec, "config": config.name, "clock_mhz": config.clock_mhz, "vec_lanes": config.vec_lanes,
        "instructions": len(program.instrs), "compile_s": compile_s, "sim_wall_s": sim_s,
        "cycles": result.cycles, "latency_ms": result.seconds * 1e3,
        "member_latency_ms": [m["latency_s"] * 1e3 for m in members],
        "member_marginal_ms": [m["marginal_latency_s"] * 1e3 for m in members],
        "roofline_fraction": rep["roofline"]["achieved_fraction"], "bound_by": rep["roofline"]["bound_by"],
        "pe_utilization": result.utilization["pe_array"], "utilization": result.utilization,
        "array_floor_cycles": floor, "array_floor_ms": floor / config.clock_hz * 1e3,
        "dram_bytes": result.dram_bytes, "port_bytes": result.port_bytes,
        "energy_j": rep["energy_j"], "kinds": kinds,
    }


def _resources(path: Path) -> dict | None:
    """The LUT figures per config from `path`, with whether they were synthesised from the RTL
    as it is now (`current`: the file's `rtl_sources_sha256` against `_sources_hash()`): a
    report of older RTL is still read, but its figures are marked stale, not passed off as
    this machine's."""
    from bebert.hw.verify import _sources_hash

    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    current = data.get("rtl_sources_sha256") == _sources_hash()
    out = {}
    for name, c in data.get("configs", {}).items():
        total = c.get("total", {}).get("luts_total")
        blocks = c.get("blocks", {})
        vec = blocks.get("vector_unit", {}).get("luts_total")
        macs = c.get("peak_binary_macs_per_cycle")
        if total:
            out[name] = {"luts": total, "current": current, "macs_per_lut_cycle": macs / total if macs else None,
                         "vector_lut_share": vec / total if vec is not None else None,
                         "blocks": {b: v.get("luts_total") for b, v in blocks.items()}}
    return out


def _verdicts(bert: dict, mini: dict, res: dict | None) -> dict:
    worst_member = max(bert["member_marginal_ms"])
    vec_limits = [k for k in BINARY_KINDS if bert["kinds"].get(k, {}).get("limiter") == "vector"]
    v = {
        "member_ms": {"value": worst_member, "target": TARGETS["member_ms"], "met": worst_member <= TARGETS["member_ms"]},
        "roofline_fraction": {"value": bert["roofline_fraction"], "target": TARGETS["roofline_fraction"],
                              "met": bert["roofline_fraction"] >= TARGETS["roofline_fraction"]},
        "pe_utilization": {"value": bert["pe_utilization"], "target": TARGETS["pe_utilization"],
                           "met": bert["pe_utilization"] >= TARGETS["pe_utilization"]},
        "vector_not_limiter": {"value": vec_limits, "met": not vec_limits},
        "minilm_ms": {"value": mini["latency_ms"], "target": TARGETS["minilm_ms"],
                      "met": mini["latency_ms"] <= TARGETS["minilm_ms"]},
    }
    d = (res or {}).get("default")
    if d:
        v["macs_per_lut_cycle"] = {"value": d["macs_per_lut_cycle"], "target": TARGETS["macs_per_lut_cycle"],
                                   "met": (d["macs_per_lut_cycle"] or 0) >= TARGETS["macs_per_lut_cycle"]}
        v["vector_lut_share"] = {"value": d["vector_lut_share"], "target": TARGETS["vector_lut_share"],
                                 "met": d["vector_lut_share"] is not None
                                 and d["vector_lut_share"] <= TARGETS["vector_lut_share"]}
        if not d["current"]:
            for k in ("macs_per_lut_cycle", "vector_lut_share"):
                v[k]["stale"] = True
    return v


def _markdown(doc: dict) -> str:
    b, m, r = doc["bert_base"], doc["minilm"], (doc["resources"] or {}).get("default")
    a = ANCHORS
    rows = [
        ("BERT-base member latency (ms, 128 tokens)", f"{max(b['member_marginal_ms']):.2f}",
         f"FQ-BERT {a['fq_bert']['latency_ms']}; BETA / BAT class 15-20; array floor {b['array_floor_ms'] / 3:.2f}"),
        ("BERT-base 3-member ensemble (ms)", f"{b['latency_ms']:.2f}", f"array floor {b['array_floor_ms']:.2f}"),
        ("ensemble fraction of its roofline bound", f"{b['roofline_fraction']:.1%}", "target >= 75 %"),
        ("PE-array utilisation", f"{b['pe_utilization']:.1%}", "target >= 70 %"),
        ("MiniLM-L6 3-member ensemble (ms per inference)", f"{m['latency_ms']:.2f}", "target <= 10"),
    ]
    if r:
        rows += [("binary MACs per LUT per cycle (default)", f"{r['macs_per_lut_cycle']:.3f}",
                  f"FINN SFC-max {a['finn']['macs_per_lut_cycle']}; BISMO >= {a['bismo']['macs_per_lut_cycle']}"),
                 ("LUTs (default, Yosys synth_xilinx)", f"{r['luts']:,}", f"FQ-BERT {a['fq_bert']['luts']:,}"),
                 ("vector unit share of the LUTs", f"{r['vector_lut_share']:.1%}" if r["vector_lut_share"] is not None
                  else "-", "target <= 25 %")]
    lines = ["# The accelerator beside the anchors (bench/bench_machine.py)", "",
             f"Default config: {b['config']}, {b['clock_mhz']:g} MHz, vec_lanes {b['vec_lanes']}. Cycles are the "
             "simulator's, equal to the RTL's. Regenerate with `python bench/bench_machine.py`.", "",
             "| figure | bebert | anchor / target |", "| --- | --- | --- |"]
    lines += [f"| {x} | {y} | {z} |" for x, y, z in rows]
    lines += ["", "Limiting unit per region kind (BERT-base): " + ", ".join(
        f"{k} {v['limiter']}" for k, v in b["kinds"].items()), "", "Targets: " + ", ".join(
        f"{k} {'met' if v['met'] else 'MISSED'}{' (stale)' if v.get('stale') else ''}"
        for k, v in doc["verdicts"].items()), ""]
    if r and not r["current"]:
        lines += ["STALE: the LUT figures above come from a resources.json synthesised from older RTL sources "
                  "than these; rerun bench/bench_resources.py.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "machine.json")
    ap.add_argument("--resources", type=Path, default=ROOT / "bench" / "results" / "resources.json")
    args = ap.parse_args(argv)
    default = AccelConfig.from_toml(ROOT / "configs" / "default.toml")
    bert = _workload(BERT_BASE, default)
    mini = _workload(MINILM, default)
    res = _resources(args.resources)
    doc = {"targets": TARGETS, "anchors": ANCHORS, "bert_base": bert, "minilm": mini, "resources": res}
    doc["verdicts"] = _verdicts(bert, mini, res)
    atomic_write(args.out, to_json(doc, indent=2) + "\n")
    atomic_write(args.out.with_suffix(".md"), _markdown(doc))
    print(_markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
