"""Inference latency on the v3 machine: the latency targets of issue 11 (item 6), beside the anchors.

    python bench/bench_inference.py [--config configs/default.toml] [--out bench/results/inference.json]

Compiled by `bebert.compiler.compile_model`, simulated cycle-accurately (`bebert.sim`), reported as
`bebert sim --json` reports them (sim/report.py):

- `synthetic:bert-base,members=3,abits=4,seq=128`: one member within 20 ms at the configuration's
  clock, the ensemble at or above 75 % of its roofline bound, PE-array utilisation >= 70 %, and in
  no kind of work with binary operations (attention, ffn) the vector unit the limiter;
- `synthetic:minilm-l6,members=3,seq=128` (the demo's ensemble): within 10 ms per inference;

with, per workload, cycles and milliseconds, each member's latency, utilisation of every unit,
the roofline, and per kind of region its cycles, busy units and shortfall reason. The anchors:
the default array's floor for one BERT-base member (48.3 G binary MACs at W1A4 / 16,384 per cycle
= 2.95 M cycles), FQ-BERT (DATE 2021, W4A8 on ZCU102) 43.9 ms and binary-weight designs of the
BETA / BAT class 15-20 ms for BERT-base at 128 tokens. `met` says which targets hold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BERT = "synthetic:bert-base,members=3,abits=4,seq=128"
MINILM = "synthetic:minilm-l6,members=3,seq=128"
ANCHORS = {"array_floor_bert_base_member_cycles": 2_949_120, "fq_bert_ms": 43.9, "beta_bat_class_ms": [15.0, 20.0]}


def measure(spec: str, config) -> dict:
    from bebert.compiler import compile_model
    from bebert.sim.report import sim_report
    from bebert.sim.simulator import simulate

    t0 = time.perf_counter()
    prog = compile_model(spec, config)
    t1 = time.perf_counter()
    result = simulate(prog, trace=True)
    rep = sim_report(prog, result)
    ms = lambda c: round(1e3 * c / config.clock_hz, 3)  # noqa: E731
    return {
        "model": spec, "compile_s": round(t1 - t0, 2), "instructions": len(prog.instrs),
        "cycles": result.cycles, "ms": ms(result.cycles),
        "estimated_cycles": prog.meta.get("estimated_cycles"),
        "members": [{"member": m["member"], "latency_cycles": m["latency_cycles"], "latency_ms": ms(m["latency_cycles"]),
                     "marginal_cycles": m["marginal_cycles"]} for m in rep["members"]],
        "utilization": {k: round(v, 4) for k, v in result.utilization.items()},
        "roofline": {k: v for k, v in rep["roofline"].items() if not isinstance(v, dict)},
        "kinds": [{"kind": k.get("name"), "cycles": k["cycles"], "busy": k["busy"], "reason": k.get("reason")}
                  for k in rep["kinds"]],
    }


def targets(bert: dict, minilm: dict) -> dict:
    binary = [k for k in bert["kinds"] if k["kind"] in ("attention", "ffn")]
    return {
        "bert_base_member_within_20_ms": max(m["latency_ms"] for m in bert["members"]) <= 20.0,
        "bert_base_ensemble_at_75_percent_of_roofline": bert["roofline"]["achieved_fraction"] >= 0.75,
        "bert_base_pe_array_at_70_percent": bert["utilization"]["pe_array"] >= 0.70,
        "bert_base_vector_unit_never_the_limiter_with_binary_ops": all(
            not (k["reason"] or "").startswith("vector-bound") for k in binary),
        "minilm_ensemble_within_10_ms": minilm["ms"] <= 10.0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference.json"))
    a = ap.parse_args(argv)

    from bebert.config import AccelConfig
    from bebert.files import atomic_write

    config = AccelConfig.from_toml(a.config)
    res = {"config": config.name, "clock_mhz": config.clock_mhz, "anchors": ANCHORS}
    for key, spec in (("bert_base", BERT), ("minilm", MINILM)):
        res[key] = measure(spec, config)
        r = res[key]
        print(f"{spec}: {r['cycles']:,} cycles = {r['ms']} ms; members "
              f"{[m['latency_ms'] for m in r['members']]} ms; PE array {r['utilization']['pe_array']:.1%}; "
              f"roofline {r['roofline']['achieved_fraction']:.1%}", flush=True)
    res["met"] = targets(res["bert_base"], res["minilm"])
    print(json.dumps(res["met"], indent=2))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, (json.dumps(res, indent=2) + "\n").encode())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
