"""What `bebert sim PROGRAM --json` / `--plot DIR` report: timing, energy, roofline, regions.

    sim_report(program, result, table=None) -> dict     (JSON-ready)
    plot(program, result, table, out_dir) -> [breakdown.png, timeline.png]

The report holds everything `SimResult.to_dict()` has, plus:

- `energy_j`, `energy_per_inference_j`, `energy_table`, `energy_breakdown` (joules by unit;
  they sum to `energy_j`), `energy_by_region` (joules by region; they sum too);
- `latency_s` (the program's run time), `inferences` (`meta["inferences"]`, default 1) and
  `inferences_per_s`;
- `roofline`: the configuration's peak binary ops/s and DRAM bandwidth, the program's
  operational intensity (binary ops per DRAM byte), the bound min(peak, intensity x
  bandwidth), the achieved ops/s and its fraction of the bound;
- `regions`: per region (sim/energy.py, "Regions"): instructions, first cycle, end cycle,
  span `cycles`, busy cycles per unit, energy and its breakdown;
- `members`: per ensemble member (regions carrying "member"): latency from the member's
  first issue to its last end, and energy; empty when no region names a member. The whole
  ensemble's figures are `latency_s` and `energy_j`.

DRAM bandwidth: the machine has separate read and write ports, each moving
`dram_bytes_per_cycle` per cycle; `dram_bytes_per_s` is both together, the roof every
program stays under (`dram_read_bytes_per_s` / `dram_write_bytes_per_s` are each port).
`min_cycles` adds the tighter per-port view: the cycles the PE array and each DRAM port
need at full rate, and `min_cycles_fraction` = the largest of them / the cycles taken.

Per-region cycles need the per-instruction timing; when `result` carries no trace the
program is simulated once more with `trace=True` (same cycles, checked).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from bebert.program import Program

from . import kernel as K
from .energy import UNITS, EnergyError, EnergyReport, EnergyTable, estimate, load_table
from .simulator import SimResult, Trace, simulate

STAGE_UNITS = ("load", "compute", "store")
# Energy units grouped for the figures.
GROUPS = {"pe_array": ("pe_array",), "accumulators": ("accumulators",), "post": ("post",),
          "sram": tuple(u for u in UNITS if u.startswith("sram_")),
          "dram": ("dram_read", "dram_write"), "control": ("control",), "leakage": ("leakage",)}


def traced(program: Program, result: SimResult) -> Trace:
    """`result.trace`, or the trace of a second, traced run of `program` (checked equal)."""
    if result.trace is not None:
        return result.trace
    again = simulate(program, trace=True)
    if again != result:
        raise EnergyError(f"the result ({result.cycles} cycles) does not belong to this program "
                          f"({again.cycles} cycles)")
    return again.trace


def roofline(program: Program, result: SimResult) -> dict[str, Any]:
    """Peak compute and DRAM bandwidth of the configuration, and where the run sits."""
    c = program.config
    peak = c.binary_ops_per_cycle * c.clock_hz
    port = c.dram_bytes_per_cycle * c.clock_hz
    bw = 2 * port  # read port + write port
    bops, nbytes = result.binary_ops, result.dram_bytes
    intensity = bops / nbytes if nbytes else None
    bound = peak if intensity is None else min(peak, intensity * bw)
    achieved = bops / result.seconds if result.seconds > 0 else 0.0
    need = {"pe_array": math.ceil(bops / c.binary_ops_per_cycle),
            "dram_read": math.ceil(result.dram_read_bytes / c.dram_bytes_per_cycle),
            "dram_write": math.ceil(result.dram_write_bytes / c.dram_bytes_per_cycle)}
    return {
        "peak_binary_ops_per_s": peak,
        "dram_bytes_per_s": bw,
        "dram_read_bytes_per_s": port,
        "dram_write_bytes_per_s": port,
        "operational_intensity": intensity,
        "ridge_intensity": peak / bw,
        "bound_ops_per_s": bound,
        "bound_by": "compute" if intensity is None or peak <= intensity * bw else "dram",
        "achieved_ops_per_s": achieved,
        "achieved_fraction": achieved / bound if bound > 0 else 0.0,
        "min_cycles": need,
        "min_cycles_fraction": max(need.values()) / result.cycles if result.cycles else 0.0,
    }


def region_rows(energy: EnergyReport, trace: Trace) -> list[dict]:
    """Per region: its instructions, when they ran, busy cycles per unit, energy."""
    start, end = trace.start, trace.end
    rows = []
    for re_ in energy.regions:
        r = re_.region
        lo, hi = min(r.start, start.size), min(r.end, start.size)
        ran = np.flatnonzero(trace.issue[lo:hi] >= 0) + lo
        first = int(start[ran].min()) if ran.size else None
        last = int(end[ran].max()) if ran.size else None
        busy = {u: int(trace.dur[ran][trace.stage[ran] == s].sum()) for s, u in enumerate(STAGE_UNITS)}
        rows.append({
            "name": r.name, "member": r.member, "start": r.start, "end": r.end,
            "first_cycle": first, "end_cycle": last, "cycles": (last - first) if ran.size else 0,
            "busy": busy, "energy_j": re_.energy_j, "energy_breakdown": dict(re_.by_unit),
        })
    return rows


def member_rows(regions: list[dict], clock_hz: float) -> list[dict]:
    """Per member: latency (first issue of any of its regions to the last end) and energy."""
    members: dict[int, dict] = {}
    for r in regions:
        if r["member"] is None:
            continue
        m = members.setdefault(r["member"], {"member": r["member"], "first_cycle": None, "end_cycle": None,
                                             "energy_j": 0.0, "regions": []})
        m["energy_j"] += r["energy_j"]
        m["regions"].append(r["name"])
        if r["first_cycle"] is not None:
            m["first_cycle"] = r["first_cycle"] if m["first_cycle"] is None else min(m["first_cycle"], r["first_cycle"])
            m["end_cycle"] = r["end_cycle"] if m["end_cycle"] is None else max(m["end_cycle"], r["end_cycle"])
    out = []
    for m in (members[k] for k in sorted(members)):
        cycles = m["end_cycle"] - m["first_cycle"] if m["first_cycle"] is not None else 0
        out.append({**m, "latency_cycles": cycles, "latency_s": cycles / clock_hz})
    return out


def sim_report(program: Program, result: SimResult, table: EnergyTable | None = None) -> dict[str, Any]:
    """The full JSON report of one simulated run of `program` priced with `table` (asic45)."""
    table = table if table is not None else load_table(None)
    trace = traced(program, result)
    energy = estimate(program, result, table)
    regions = region_rows(energy, trace)
    d = result.to_dict()
    d.update({
        "energy_table": table.name,
        "energy_j": energy.total_j,
        "energy_per_inference_j": energy.per_inference_j,
        "energy_breakdown": dict(energy.by_unit),
        "energy_by_region": energy.by_region,
        "latency_s": result.seconds,
        "inferences": energy.inferences,
        "inferences_per_s": energy.inferences / result.seconds if result.seconds > 0 else 0.0,
        "roofline": roofline(program, result),
        "regions": regions,
        "members": member_rows(regions, program.config.clock_hz),
    })
    return d


# -- figures ----------------------------------------------------------------------------
def plot(program: Program, result: SimResult, table: EnergyTable | None, out_dir: str | Path) -> list[Path]:
    """Write breakdown.png (per region: span and busy cycles per unit side by side, energy
    stacked by unit) and
    timeline.png (each unit's busy intervals and its utilisation over time) into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table if table is not None else load_table(None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace = traced(program, result)
    report = sim_report(program, dataclasses.replace(result, trace=trace), table)
    paths = [_plot_breakdown(plt, report, program, table, out / "breakdown.png"),
             _plot_timeline(plt, report, program, trace, out / "timeline.png")]
    return paths


def _plot_breakdown(plt, report: dict, program: Program, table: EnergyTable, path: Path) -> Path:
    regions = report["regions"]
    names = [r["name"] for r in regions]
    x = np.arange(len(names))
    fig, (ax_c, ax_e) = plt.subplots(1, 2, figsize=(max(8, 1.2 + 0.5 * len(names)) * 1.6, 4.5))
    # Units overlap in time, so busy cycles stand side by side next to the region's span.
    bars = [("span", [r["cycles"] for r in regions])] + \
        [(f"{u} busy", [r["busy"][u] for r in regions]) for u in STAGE_UNITS]
    w = 0.8 / len(bars)
    for j, (label, v) in enumerate(bars):
        ax_c.bar(x + (j - (len(bars) - 1) / 2) * w, v, width=w, label=label,
                 color="0.3" if label == "span" else None)
    ax_c.set_ylabel("cycles")
    ax_c.set_title(f"cycles per region ({report['cycles']:,} in all)")
    bottom = np.zeros(len(names))
    for g, units in GROUPS.items():
        v = np.array([sum(r["energy_breakdown"][u] for u in units) for r in regions]) * 1e6
        ax_e.bar(x, v, bottom=bottom, label=g)
        bottom += v
    ax_e.set_ylabel("energy (µJ)")
    ax_e.set_xlim(-0.75, len(names) - 0.25)
    ax_e.set_title(f"energy per region ({report['energy_j'] * 1e6:,.2f} µJ, table '{table.name}')")
    for ax in (ax_c, ax_e):
        ax.set_xticks(x, names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.legend(fontsize=8)
    fig.suptitle(f"{program.meta.get('spec', program.meta.get('kind', 'program'))} on '{program.config.name}'")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _merged(start: np.ndarray, end: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Join intervals (sorted, disjoint) separated by less than `gap` cycles: one bar each."""
    if start.size == 0:
        return start, end
    keep = np.flatnonzero(start[1:] - end[:-1] >= gap) + 1
    firsts = np.concatenate(([0], keep))
    lasts = np.concatenate((keep - 1, [start.size - 1]))
    return start[firsts], end[lasts]


def busy_fraction(start: np.ndarray, end: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Busy fraction of each bin [edges[j], edges[j+1]) for disjoint intervals [start, end)."""
    if start.size == 0:
        return np.zeros(edges.size - 1)
    order = np.argsort(start)
    s, e = start[order], end[order]
    cum = np.concatenate(([0], np.cumsum(e - s)))

    def busy_before(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(s, t, side="right")  # intervals starting before t
        done = cum[np.maximum(i - 1, 0)]  # all but the last of those are over by t
        part = np.where(i > 0, np.clip(t - s[np.maximum(i - 1, 0)], 0, (e - s)[np.maximum(i - 1, 0)]), 0)
        return np.where(i > 0, done + part, 0)

    b = busy_before(edges.astype(np.int64))
    return np.diff(b) / np.diff(edges)


def _plot_timeline(plt, report: dict, program: Program, trace: Trace, path: Path) -> Path:
    cycles = report["cycles"]
    fig, (ax_t, ax_u) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True,
                                     gridspec_kw={"height_ratios": [1.2, 1]})
    gap = cycles / 3000  # below a pixel: join the bars
    colors = {"LOAD": "tab:blue", "GEMM": "tab:orange", "POST": "tab:red", "VEC": "tab:purple", "SYNC": "tab:gray",
              "STORE": "tab:green"}
    ran = trace.issue >= 0
    start, end = trace.start, trace.end
    nbins = int(min(400, max(1, cycles)))
    edges = np.unique(np.linspace(0, cycles, nbins + 1).round().astype(np.int64))
    for row, unit in enumerate(STAGE_UNITS):
        in_unit = ran & (trace.stage == row)
        for opname, color in colors.items():
            sel = in_unit & (trace.op == K.OPS.index(opname))
            if not sel.any():
                continue
            s, e = _merged(start[sel], end[sel], gap)
            ax_t.broken_barh(list(zip(s, e - s)), (row - 0.4, 0.8), facecolors=color, label=opname)
        frac = busy_fraction(start[in_unit], end[in_unit], edges)
        ax_u.step(edges[:-1], frac, where="post", label=f"{unit} ({report['utilization'][unit]:.0%})")
    if len(report["regions"]) <= 40:
        for r in report["regions"][1:]:
            if r["first_cycle"] is not None:
                ax_t.axvline(r["first_cycle"], color="k", lw=0.5, ls=":")
    ax_t.set_yticks(range(3), STAGE_UNITS)
    ax_t.set_ylim(-0.6, 2.6)
    if ran.any():
        ax_t.legend(fontsize=8, ncol=5, loc="upper right")
    ax_t.set_title(f"busy intervals ({cycles:,} cycles; dotted lines: region starts)")
    ax_u.set_ylim(0, 1.05)
    ax_u.set_ylabel("utilisation")
    ax_u.set_xlabel("cycle")
    ax_u.set_xlim(0, cycles)
    ax_u.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
