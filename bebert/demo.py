"""`bebert demo`: the whole chain on its embedded default, with no data and no network.

1. A BERT-base FFN layer (M=128 tokens, K=768, N=3072, 4-bit activations) is compiled for
   the default accelerator, run on the golden executor and checked against the model's
   integer path, then simulated cycle-accurately.
2. The default accelerator's Verilog is generated.
3. Two programs (one per configuration, one of them not a multiple of the tile) run on the
   RTL under cocotb + Icarus: outputs must be bit-identical, cycles equal to the simulator.
4. A Markdown report with the figures and a plot lands in the output directory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bebert.config import AccelConfig
from bebert.program import atomic_write

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _config(name: str) -> AccelConfig:
    path = CONFIGS / f"{name}.toml"
    return AccelConfig.from_toml(path) if path.is_file() else AccelConfig()


def _step(n: int, total: int, what: str) -> float:
    print(f"[{n}/{total}] {what} ...", flush=True)
    return time.perf_counter()


def _plot_units(sim: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = ["load", "compute", "store"]
    busy = [sim["busy"].get(u, 0) for u in units]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.barh(units, busy, color=["#4c72b0", "#dd8452", "#55a868"])
    ax.axvline(sim["cycles"], color="k", ls="--", lw=1, label=f"total {sim['cycles']:,} cycles")
    ax.set_xlabel("busy cycles")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = path.with_suffix(".tmp.png")
    fig.savefig(buf, dpi=120)
    plt.close(fig)
    buf.replace(path)


def run_demo(out: Path, *, quick: bool = False) -> int:
    from bebert.compiler import compile_linear, compile_spec, golden
    from bebert.compiler.spec import random_layer
    from bebert.hw import generate_verilog
    from bebert.hw.verify import verify
    from bebert.sim import simulate

    out.mkdir(parents=True, exist_ok=True)
    default, small = _config("default"), _config("small")
    M, K, N, bits = (32, 256, 512, 4) if quick else (128, 768, 3072, 4)
    report: dict = {"layer": {"M": M, "K": K, "N": N, "act_bits": bits}}

    t = _step(1, 4, f"compile, run and simulate a {M}x{K}x{N} binary layer ({bits}-bit activations)")
    layer, x_int = random_layer(M, K, N, bits, True, bits, seed=0)
    t0 = time.perf_counter()
    program = compile_linear(layer, x_int, default)
    compile_s = time.perf_counter() - t0
    program.write(out / "ffn")
    t0 = time.perf_counter()
    y = golden.outputs(program, golden.execute(program))["y"]
    golden_s = time.perf_counter() - t0
    exact = bool(np.array_equal(y, layer.forward(x_int)))
    sim = simulate(program).to_dict()
    report["ffn"] = {"instructions": len(program.instrs), "compile_s": round(compile_s, 3),
                     "golden_s": round(golden_s, 3), "golden_equals_integer_path": exact, "sim": sim}
    _plot_units(sim, out / "ffn_units.png", f"{M}x{K}x{N}, {bits}-bit activations, config '{default.name}'")
    print(f"      {sim['cycles']:,} cycles ({sim['seconds'] * 1e6:.1f} us), golden == integer path: {exact}"
          f" [{time.perf_counter() - t:.1f} s]")

    t = _step(2, 4, f"generate Verilog for config '{default.name}'")
    verilog = generate_verilog(default, out / "rtl")
    report["rtl"] = {"verilog": str(verilog), "bytes": verilog.stat().st_size}
    print(f"      {verilog} [{time.perf_counter() - t:.1f} s]")

    t = _step(3, 4, "verify programs on the RTL (cocotb + Icarus)")
    cases = [("gemm:13,70,9,2", small)] if quick else [("gemm:13,70,9,2", small), ("gemm:64,512,96,4", default)]
    report["verify"] = []
    for spec, cfg in cases:
        r = verify(compile_spec(spec, cfg))
        report["verify"].append({"model": spec, "config": cfg.name, **r})
        print(f"      {spec} on '{cfg.name}': outputs match {r['outputs_match']}, "
              f"cycles RTL {r['rtl_cycles']} / sim {r['sim_cycles']}")
    print(f"      [{time.perf_counter() - t:.1f} s]")

    _step(4, 4, "write the report")
    atomic_write(out / "report.json", (json.dumps(report, indent=2, default=str) + "\n").encode())
    atomic_write(out / "REPORT.md", _markdown(report, default).encode())
    ok = exact and all(v["passed"] for v in report["verify"])
    print(f"{'PASS' if ok else 'FAIL'}: report in {out / 'REPORT.md'}")
    return 0 if ok else 1


def _markdown(r: dict, cfg: AccelConfig) -> str:
    f, sim = r["ffn"], r["ffn"]["sim"]
    L = r["layer"]
    lines = [
        "# bebert demo report", "",
        f"## A {L['M']}x{L['K']}x{L['N']} binary layer, {L['act_bits']}-bit activations, config '{cfg.name}'", "",
        f"- PE array {cfg.pe_rows}x{cfg.pe_cols}x{cfg.xnor_width} bits at {cfg.clock_mhz} MHz, "
        f"DRAM {cfg.dram_bytes_per_cycle} B/cycle, latency {cfg.dram_latency_cycles} cycles",
        f"- {f['instructions']:,} instructions, compiled in {f['compile_s']} s",
        f"- golden executor equals the model's integer path: **{f['golden_equals_integer_path']}** "
        f"({f['golden_s']} s)",
        f"- **{sim['cycles']:,} cycles** = {sim['seconds'] * 1e6:.1f} us; DRAM {sim['dram_bytes']:,} bytes",
        "- utilization: " + ", ".join(f"{k} {v:.1%}" for k, v in sim["utilization"].items()), "",
        "![busy cycles per unit](ffn_units.png)", "",
        "## RTL", "", f"- Verilog: `{r['rtl']['verilog']}` ({r['rtl']['bytes']:,} bytes)", "",
        "| program | config | outputs match | RTL cycles | sim cycles | passed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for v in r["verify"]:
        lines.append(f"| `{v['model']}` | {v['config']} | {v['outputs_match']} | {v['rtl_cycles']} | "
                     f"{v['sim_cycles']} | {v['passed']} |")
    return "\n".join(lines) + "\n"
