"""`bebert demo`: the whole chain on its embedded default, with no data and no network.

1. The default ensemble, `synthetic:minilm-l6` (3 binary BERT members of MiniLM-L6's shape,
   4-bit activations, 128 tokens, seeded weights), is compiled whole for the default
   accelerator by `bebert.compiler.compile_model`.
2. The golden executor runs the program on its compiled-in example; the members' logits must
   equal the model's integer path (`apply_integer_member`) bit for bit.
3. The program is simulated cycle-accurately and priced with both energy tables; the
   breakdown and timeline figures are drawn.
4. The Verilog of a tiny configuration (`configs/small.toml`) is generated and two binary
   layers run on it under cocotb (Verilator or Icarus): outputs bit-identical to the golden executor,
   cycles equal to the simulator's.
5. A small design-space sweep (`examples/space_small.toml`: PE array rows x vector lanes) gives
   the table, the Pareto front over latency, energy and area, and its plots; its cache
   (out/demo/dse/cache) makes a second `make demo` skip it. Area is the area model's
   (`bebert.dse.area_model`, calibrated against Yosys): Yosys itself takes minutes per
   configuration of the accelerator (`bebert dse --space examples/space_area.toml`).
6. `REPORT.md` (and `report.json`) with every figure and plot land in the output directory.

`--quick` uses `synthetic:tiny`, one RTL program and the sweep on the tiny model (tests use it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bebert.config import AccelConfig
from bebert.files import atomic_write, claim_output_dir, write_json

# The sweep's area is the area model's: the accelerator with its vector unit takes minutes of
# Yosys per configuration (examples/space_area.toml synthesises two of these configurations).
SPACE = QUICK_SPACE = "space_small"  # a shipped space (`bebert.shipped`)
DEMO_OUTPUTS = ("model", "sim", "rtl", "dse", "report.json", "REPORT.md")  # what a demo folder holds
MODEL = "synthetic:minilm-l6"
QUICK_MODEL = "synthetic:tiny"
STEPS = 6


def _config(name: str) -> AccelConfig:
    from bebert import shipped

    return AccelConfig.from_toml(shipped.config_file(name))


def _step(n: int, what: str) -> float:
    print(f"[{n}/{STEPS}] {what} ...", flush=True)
    return time.perf_counter()


def _done(t: float, what: str) -> None:
    print(f"      {what} [{time.perf_counter() - t:.1f} s]", flush=True)


def run_demo(out: Path, *, quick: bool = False) -> int:
    from bebert import api

    out = claim_output_dir(out, "demo", lambda d: all(p.name in DEMO_OUTPUTS for p in d.iterdir()))
    default, small = _config("default"), _config("small")
    spec = QUICK_MODEL if quick else MODEL
    report: dict = {"model": spec, "config": default.to_dict(), "quick": quick}
    t_all = time.perf_counter()

    t = _step(1, f"compile {spec} for config '{default.name}'")
    program = api.compile(spec, default)
    program.write(out / "model")
    m = program.meta
    report["compile"] = {"instructions": len(program.instrs), "dram_bytes": int(program.dram.size),
                         "members": m["members"], "seq": m["seq"], "compile_s": m.get("compile_s", {}),
                         "program": str(out / "model")}
    _done(t, f"{len(program.instrs):,} instructions, {program.dram.size / 2**20:.1f} MiB of DRAM image, "
             f"{m['members']} members x {m['seq']} tokens")

    t = _step(2, "run the golden executor and check it against the model's integer path")
    report["golden"] = _golden_check(program, spec)
    _done(t, f"logits equal the integer path bit for bit: {report['golden']['exact']}")

    t = _step(3, "simulate cycle-accurately, price with the asic45 and fpga energy tables")
    report["sim"] = _simulate(program, out / "sim")
    s = report["sim"]["asic45"]
    _done(t, f"{s['cycles']:,} cycles = {s['latency_s'] * 1e3:.2f} ms at {default.clock_mhz:g} MHz, "
             f"{s['energy_per_inference_j'] * 1e3:.3f} mJ per inference (asic45)")
    report["clock"] = _clock_check(default, small)

    t = _step(4, f"generate Verilog for config '{small.name}' and verify programs on it (cocotb)")
    report["rtl"] = _rtl(small, out / "rtl", quick)
    _done(t, ", ".join(f"{v['model']}: {'PASS' if v['passed'] else 'FAIL'}" for v in report["rtl"]["verify"]))

    t = _step(5, f"design-space sweep {QUICK_SPACE if quick else SPACE}")
    report["dse"] = _sweep(out / "dse", quick)
    d = report["dse"]
    _done(t, f"{d['points']} points ({d['evaluated']} evaluations run, {d['cached']} cached), "
             f"{d['pareto_points']} on the Pareto front")
    for x in d["front"]:
        print(f"      front: pe_rows {x['pe_rows']:>2}, vec_lanes {x['vec_lanes']:>2}: {_ms(x['latency_s'])} ms, "
              f"{_ms(x['energy_per_inference_j'])} mJ, {x['luts_model']:,} LUTs (area model)", flush=True)

    _step(6, "write the report")
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    ok = report["golden"]["exact"] and all(v["passed"] for v in report["rtl"]["verify"]) and d["failed"] == 0
    report["passed"] = ok
    write_json(out / "report.json", report)
    atomic_write(out / "REPORT.md", _markdown(report, default, small))
    print(f"{'PASS' if ok else 'FAIL'}: report in {out / 'REPORT.md'} ({report['seconds']} s)")
    return 0 if ok else 1


def _clock_check(*configs: AccelConfig) -> dict:
    """Each config's clock against its measured Fmax (`bebert rtl --pnr ecp5` measures it);
    a clock above it is warned about on stderr and in the report."""
    from bebert.hw.pnr import clock_status

    out = {}
    for cfg in configs:
        out[cfg.name] = st = clock_status(cfg)
        if st["warning"]:
            print(f"    warning: {st['warning']}", flush=True)
    return out


def _clock_line(name: str, st: dict) -> str:
    m = st["measured"]
    if st["warning"]:
        return f"- **clock warning** ({name}): {st['warning']}"
    if m is None:
        return (f"- clock ({name}): {st['clock_mhz']:g} MHz configured, not measured on this machine "
                f"(`bebert rtl --config ... --pnr ecp5` places and routes it and records its Fmax)")
    if m.get("fmax_mhz") is None:
        return f"- clock ({name}): {st['clock_mhz']:g} MHz; placed on the {m['part']}, nextpnr reported no Fmax"
    return f"- clock ({name}): {st['clock_mhz']:g} MHz, within the measured Fmax {m['fmax_mhz']:g} MHz on the {m['part']}"


def _golden_check(program, spec: str) -> dict:
    import torch

    from bebert.compiler import host
    from bebert.ensemble_shape import parse_model_spec
    from bebert.compiler.synthetic import synthetic_model
    from bebert.model.package import apply_integer_member

    m = program.meta
    t0 = time.perf_counter()
    acc = host.run_once(program)  # the compiled-in example (host.default_input)
    golden_s = time.perf_counter() - t0
    got = host.logits(acc[None], program)
    ids, types, mask = host.default_input(m["seq"], m["vocab"], m.get("seed", 0))
    batch = {"input_ids": torch.tensor(ids)[None], "token_type_ids": torch.tensor(types)[None],
             "attention_mask": torch.tensor(mask)[None]}
    model = synthetic_model(parse_model_spec(spec), seed=m.get("seed", 0))
    want = [apply_integer_member(member, batch) for member in model.members]
    exact = all(torch.equal(w, g.reshape(w.shape)) for w, g in zip(want, got))
    return {"exact": bool(exact), "golden_s": round(golden_s, 2),
            "logits": [g.reshape(-1).tolist() for g in got], "accumulators": np.asarray(acc).tolist()}


def _simulate(program, plot_dir: Path) -> dict:
    from bebert import api
    from bebert.sim import simulate
    from bebert.sim.energy import load_table
    from bebert.sim.report import plot

    res: dict = {}
    for table in ("asic45", "fpga"):
        r = api.simulate(program, energy=table)
        res[table] = {"cycles": r.cycles, "latency_s": r.latency_s, "energy_j": r.energy_j,
                      "energy_per_inference_j": r.energy_per_inference_j, "dram_bytes": r.dram_bytes,
                      "utilization": r.utilization, "roofline": r.report["roofline"]}
        if table == "asic45":
            res["members"] = [{k: x.get(k) for k in ("member", "latency_s", "energy_j", "marginal_latency_s",
                                                     "marginal_energy_j")} for x in r.report.get("members", [])]
            res["kinds"] = [{"name": k["name"], "cycles": k["cycles"], "energy_j": k["energy_j"],
                             "limiter": k.get("roofline", {}).get("limiter"), "reason": k.get("reason")}
                            for k in r.report.get("kinds", [])]
            res["energy_breakdown"] = r.report["energy_breakdown"]
    result = simulate(program, trace=True)
    res["plots"] = [str(p) for p in plot(program, result, load_table("asic45"), plot_dir)]
    return res


def _rtl(cfg: AccelConfig, rtl_dir: Path, quick: bool) -> dict:
    from bebert import api
    from bebert.hw import generate_verilog
    from bebert.hw.verify import verify

    verilog = generate_verilog(cfg, rtl_dir)
    cases = ["gemm:13,70,9,2"] if quick else ["gemm:13,70,9,2", "gemm:40,200,24,4"]
    runs = []
    for spec in cases:
        r = verify(api.compile(spec, cfg))
        runs.append({"model": spec, "config": cfg.name, "outputs_match": r["outputs_match"],
                     "rtl_cycles": r["rtl_cycles"], "sim_cycles": r["sim_cycles"], "passed": bool(r["passed"])})
    return {"verilog": str(verilog), "bytes": verilog.stat().st_size, "verify": runs}


FRONT_COLUMNS = ("pe_rows", "vec_lanes", "abits", "members", "cycles", "latency_s", "energy_per_inference_j",
                 "luts_model", "luts")


def _sweep(dse_dir: Path, quick: bool) -> dict:
    import dataclasses

    from bebert.dse import load_space, run_sweep

    path = QUICK_SPACE if quick else SPACE
    space = load_space(path)
    if quick:  # the tiny model
        space = dataclasses.replace(space, model=space.model.replace("minilm-l6", "tiny"),
                                    points=tuple(dataclasses.replace(p, model=p.model.replace("minilm-l6", "tiny"))
                                                 for p in space.points))
    r = run_sweep(space, dse_dir, jobs=_jobs(), progress=True)
    best = min((x for x in r.rows if x["latency_s"] is not None), key=lambda x: x["energy_per_inference_j"],
               default=None)
    return {"points": len(r.rows), "evaluated": r.evaluated, "cached": r.cached, "failed": r.failed,
            "pareto_points": len(r.front), "space": str(path), "model": space.model,
            "front": sorted(({k: r.rows[i].get(k) for k in FRONT_COLUMNS} for i in r.front),
                            key=lambda x: x["latency_s"]),
            "lowest_energy": best and {k: best[k] for k in ("pe_rows", "abits", "members", "energy_per_inference_j")},
            "plots": [f for f in r.files if f.endswith(".png")], "table": str(dse_dir / "points.csv"),
            "objectives": [f"min {o}" for o in space.minimize] + [f"max {o}" for o in space.maximize],
            "has_accuracy": any(x.get("accuracy") is not None for x in r.rows), "has_yosys_area": space.area}


def _jobs() -> int:
    import os

    return max(1, min(2, os.cpu_count() or 1))


# -- the report ---------------------------------------------------------------------------
def _rel(path: str, out: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return path


def _markdown(r: dict, cfg: AccelConfig, small: AccelConfig) -> str:
    out = Path(r["compile"]["program"]).parent
    c, g, s = r["compile"], r["golden"], r["sim"]
    a, f = s["asic45"], s["fpga"]
    lines = [
        "# bebert demo report", "",
        f"Everything below was computed by this run ({r['seconds']} s): **{'PASS' if r['passed'] else 'FAIL'}**.", "",
        f"## The default ensemble: `{r['model']}`", "",
        f"- accelerator '{cfg.name}': {cfg.pe_rows}x{cfg.pe_cols} PEs x {cfg.xnor_width} bits at {cfg.clock_mhz:g} MHz, "
        f"DRAM {cfg.dram_bytes_per_cycle} B/cycle, latency {cfg.dram_latency_cycles} cycles",
        f"- compiled whole: {c['members']} members x {c['seq']} tokens, {c['instructions']:,} instructions, "
        f"{c['dram_bytes'] / 2**20:.1f} MiB DRAM image",
        f"- golden executor == the model's integer path, bit for bit: **{g['exact']}** ({g['golden_s']} s); "
        f"member logits {[[round(v, 4) for v in x] for x in g['logits']]}",
        f"- **{a['cycles']:,} cycles = {a['latency_s'] * 1e3:.2f} ms** per inference; "
        f"energy {a['energy_per_inference_j'] * 1e3:.3f} mJ (45 nm ASIC table) / {f['energy_per_inference_j'] * 1e3:.3f} mJ "
        f"(FPGA table); DRAM {a['dram_bytes'] / 2**20:.1f} MiB",
        "- utilization: " + ", ".join(f"{k} {v:.1%}" for k, v in a["utilization"].items()),
        f"- roofline: bound by {a['roofline']['bound_by']}, {a['roofline']['achieved_fraction']:.1%} of the bound",
        *[_clock_line(n, st) for n, st in r.get("clock", {}).items()], "",
    ]
    if s.get("members"):
        lines += ["| member | latency (ms) | energy (mJ) | marginal latency (ms) | marginal energy (mJ) |",
                  "| --- | --- | --- | --- | --- |"]
        for x in s["members"]:
            lines.append(f"| {x['member']} | {_ms(x['latency_s'])} | {_ms(x['energy_j'])} | "
                         f"{_ms(x['marginal_latency_s'])} | {_ms(x['marginal_energy_j'])} |")
        lines.append("")
    if s.get("kinds"):
        lines += ["| kind of work | cycles | energy (mJ) | limiter | why below the roofline |", "| --- | --- | --- | --- | --- |"]
        for k in s["kinds"]:
            lines.append(f"| {k['name']} | {k['cycles']:,} | {_ms(k['energy_j'])} | {k['limiter'] or ''} | {k['reason'] or ''} |")
        lines.append("")
    for p in s["plots"]:
        lines += [f"![{Path(p).stem}]({_rel(p, out)})", ""]
    v = r["rtl"]
    lines += [f"## RTL of config '{small.name}' ({small.pe_rows}x{small.pe_cols}x{small.xnor_width})", "",
              f"- Verilog: `{_rel(v['verilog'], out)}` ({v['bytes']:,} bytes)", "",
              "| program | outputs match golden | RTL cycles | simulator cycles | passed |", "| --- | --- | --- | --- | --- |"]
    for x in v["verify"]:
        lines.append(f"| `{x['model']}` | {x['outputs_match']} | {x['rtl_cycles']} | {x['sim_cycles']} | {x['passed']} |")
    d = r["dse"]
    lines += ["", f"## Design-space sweep: `{d['space']}`", "",
              f"- model `{d['model']}`; {d['points']} points; {d['evaluated']} evaluations run now, "
              f"{d['cached']} read from the cache; "
              f"table `{_rel(d['table'], out)}`",
              f"- Pareto front: {d['pareto_points']} point(s) over the space's objectives "
              f"({', '.join(d['objectives'])})", "",
              "| pe_rows | vec_lanes | abits | members | cycles | latency (ms) | energy (mJ) | LUTs (area model) |"
              + (" LUTs (Yosys) |" if d["has_yosys_area"] else ""),
              "| --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if d["has_yosys_area"] else "")]
    for x in d["front"]:
        lines.append(f"| {x['pe_rows']} | {x['vec_lanes']} | {x['abits']} | {x['members']} | {x['cycles']:,} | "
                     f"{_ms(x['latency_s'])} | {_ms(x['energy_per_inference_j'])} | {x['luts_model']:,} |"
                     + (f" {x['luts']} |" if d["has_yosys_area"] else ""))
    lines += ["", "LUTs (area model): `bebert.dse.area_model`, per block, calibrated against Yosys "
                  "(bench/results/area_model.json); Yosys counts are pre-placement.", ""]
    missing = {"accuracy_energy": (d["has_accuracy"], "no trained runs are named in the space's [accuracy] table "
                                                      "(docs/TUTORIAL.md, step 6, adds them)")}
    for p in d["plots"]:
        has, why = missing.get(Path(p).stem, (True, ""))
        lines += [f"![{Path(p).stem}]({_rel(p, out)})" if has else f"- `{_rel(p, out)}`: {why}.", ""]
    return "\n".join(lines)


def _ms(v) -> str:
    return "" if v is None else f"{v * 1e3:.3f}"

