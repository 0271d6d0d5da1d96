"""What `bebert sim PROGRAM --json` / `--plot DIR` report: timing, energy, roofline, regions.

    sim_report(program, result, table=None) -> dict     (JSON-ready)
    plot(program, result, table, out_dir) -> [breakdown.png, timeline.png]

The report holds everything `SimResult.to_dict()` has (cycles, busy cycles and utilisation
of the LOAD DMA, the PE array, the output path and the vector unit, DRAM bytes per port), plus:

- `energy_j`, `energy_per_inference_j`, `energy_table`, `energy_breakdown` (joules by unit;
  they sum to `energy_j`), `energy_by_region` (joules by region; they sum too);
- `latency_s` (the program's run time), `inferences` (`meta["inferences"]`, default 1) and
  `inferences_per_s`;
- `roofline`: the configuration's peak binary ops/s and DRAM bandwidth, the program's
  operational intensity (binary ops per DRAM byte), the bound min(peak, intensity x
  bandwidth), the achieved ops/s and its fraction of the bound;
- `regions`: per region (sim/energy.py, "Regions"; `end` exclusive): its instructions, first
  cycle, end cycle, span `cycles`, busy cycles per unit, binary ops, DRAM bytes, energy and
  its breakdown, and its own roofline (`roofline_of`) with the unit that limits it;
- `layers`: the regions grouped by (member, layer) when they carry `layer`, same figures
  (span from the group's first cycle to its last);
- `kinds`: the regions grouped by `kind` (e.g. every member's every "ffn_up"), same figures
  with `cycles` the sum of their spans, and `reason`: why the kind falls short of 80 % of
  its roofline bound (`shortfall_reason`), or null;
- `members`: per ensemble member (regions carrying "member"): latency from the member's
  first issue to its last end, energy, and its marginal cost (below); empty when no region
  names a member;
- `ensemble`: the whole run and what each extra member costs. Cycles are attributed by
  the spans of the regions: shared regions (no member) first, then member 0, 1, ...; each
  claims the cycles its spans cover that nobody before it claimed. A member's
  `marginal_cycles` is its claim; `fixed_cycles` = cycles - the members' claims (shared
  work, start-up, idle), so `cumulative_cycles` after the last member is exactly `cycles`.
  Energy: a member's marginal energy is its regions' energy, `fixed_energy_j` the rest.

DRAM bandwidth: the machine has four ports (the LOAD read port, the output path's write port,
the vector unit's read and write ports), each moving `dram_bytes_per_cycle` per cycle;
`dram_bytes_per_s` is all four together, the roof every program stays under
(`dram_port_bytes_per_s` is one port). `min_cycles` adds the tighter per-port view: the cycles
the PE array and each DRAM port need at full rate, and `min_cycles_fraction` = the largest of
them / the cycles taken.

Per-region cycles need the per-instruction timing; when `result` carries no trace the
program is simulated once more with `trace=True` (same cycles, checked).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from bebert.config import AccelConfig
from bebert.files import atomic_path
from bebert.program import Program

from . import kernel as K
from .energy import UNITS, EnergyError, EnergyReport, EnergyTable, estimate, load_table
from .simulator import PORTS, SimResult, Trace, simulate

STAGE_UNITS = K.STAGES  # load, compute, output, vec
# Busy cycles reported per region: the stages, and the units they run (SYNC aside).
BUSY_KEYS = (*K.STAGES, "gemm", "post", "vector")
# The machine's units, the ops that keep each busy, and the key of its busy cycles.
MACHINE_UNITS = {"load": ("LOAD",), "pe_array": ("GEMM",), "output": ("POST", "POSTCFG"), "vector": ("VEC",)}
_BUSY_KEY = {"load": "load", "pe_array": "gemm", "output": "post", "vector": "vector"}
# Energy units grouped for the figures.
GROUPS = {"pe_array": ("pe_array", "pe_array_and"), "accumulators": ("accumulators",), "post": ("post",),
          "vector": ("vector",), "sram": tuple(u for u in UNITS if u.startswith("sram_")),
          "dram": ("dram_read", "dram_write"), "control": ("control",), "leakage": ("leakage",)}
GOOD_FRACTION = 0.8  # below this share of its roofline bound a kind gets a reason
REASONS = {
    "load": "load-bound: operands stream in through the LOAD DMA and the read port faster than the "
            "array can reuse them (little reuse per byte at this tile shape)",
    "vector": "vector-bound: the vector unit's kernels (softmax, LayerNorm, GELU, embedding) take longer "
              "than the GEMMs they overlap, or the GEMMs wait on their results",
    "output": "output-bound: the output path writes each tile's results (one tile column per cycle, "
              "a flush per packed word) more slowly than the array computes the next tile",
    "pe_array": "PE array busy but under-filled: operands padded to pe_rows x pe_cols x xnor_width "
                "tiles, or short GEMMs dominated by the snapshot / issue overhead",
}


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
    bw = len(PORTS) * port
    bops, nbytes = result.binary_ops, result.dram_bytes
    intensity = bops / nbytes if nbytes else None
    bound = peak if intensity is None else min(peak, intensity * bw)
    achieved = bops / result.seconds if result.seconds > 0 else 0.0
    need = {"pe_array": math.ceil(bops / c.binary_ops_per_cycle)}
    need.update({p: math.ceil(v / c.dram_bytes_per_cycle) for p, v in result.port_bytes.items()})
    return {
        "peak_binary_ops_per_s": peak,
        "dram_bytes_per_s": bw,
        "dram_port_bytes_per_s": port,
        "operational_intensity": intensity,
        "ridge_intensity": peak / bw,
        "bound_ops_per_s": bound,
        "bound_by": "compute" if intensity is None or peak <= intensity * bw else "dram",
        "achieved_ops_per_s": achieved,
        "achieved_fraction": achieved / bound if bound > 0 else 0.0,
        "min_cycles": need,
        "min_cycles_fraction": max(need.values()) / result.cycles if result.cycles else 0.0,
    }


def roofline_of(config: AccelConfig, binary_ops: int, read_bytes: int, write_bytes: int, cycles: int,
                busy: dict[str, int]) -> dict[str, Any]:
    """The roofline of one part of a run (a region, a layer, a kind) over `cycles` cycles.

    `achieved_fraction` is null when the part does no binary operations (vector work only);
    `limiter` is the machine unit busy for the largest share of the cycles
    (`limiter_busy_fraction`), the usual reason a part falls short of its bound.
    """
    peak = config.binary_ops_per_cycle * config.clock_hz
    bw = len(PORTS) * config.dram_bytes_per_cycle * config.clock_hz
    nbytes = read_bytes + write_bytes
    intensity = binary_ops / nbytes if nbytes else None
    bound = peak if intensity is None else min(peak, intensity * bw)
    achieved = binary_ops * config.clock_hz / cycles if cycles > 0 else 0.0
    shares = {u: busy[_BUSY_KEY[u]] / cycles if cycles > 0 else 0.0 for u in MACHINE_UNITS}
    limiter = max(shares, key=shares.get) if cycles > 0 and any(shares.values()) else None
    return {
        "operational_intensity": intensity,
        "bound_ops_per_s": bound,
        "bound_by": "compute" if intensity is None or peak <= intensity * bw else "dram",
        "achieved_ops_per_s": achieved,
        "achieved_fraction": achieved / bound if binary_ops and bound > 0 else None,
        "limiter": limiter,
        "limiter_busy_fraction": shares[limiter] if limiter else 0.0,
    }


def shortfall_reason(row: dict) -> str | None:
    """Why a region / layer / kind row reaches less than 80 % of its roofline bound (or None)."""
    roof = row["roofline"]
    if roof["achieved_fraction"] is None:
        return ("no binary operations: vector-unit work, outside the binary-op roofline"
                if row["busy"]["vector"] else None)
    if roof["achieved_fraction"] >= GOOD_FRACTION or roof["limiter"] is None:
        return None
    return REASONS[roof["limiter"]]


def _busy(trace: Trace, ran: np.ndarray) -> dict[str, int]:
    dur, stage, op = trace.dur[ran], trace.stage[ran], trace.op[ran]
    out = {u: int(dur[stage == s].sum()) for s, u in enumerate(STAGE_UNITS)}
    for key, names in (("gemm", ("GEMM",)), ("post", ("POST", "POSTCFG")), ("vector", ("VEC",))):
        out[key] = int(sum(dur[op == K.OPS.index(n)].sum() for n in names))
    return out


def region_rows(energy: EnergyReport, trace: Trace, config: AccelConfig) -> list[dict]:
    """Per region: its instructions, when they ran, busy cycles per unit, work, energy, roofline."""
    start, end = trace.start, trace.end
    rows = []
    for re_ in energy.regions:
        r = re_.region
        lo, hi = min(r.start, start.size), min(r.end, start.size)
        ran = np.flatnonzero(trace.issue[lo:hi] >= 0) + lo
        first = int(start[ran].min()) if ran.size else None
        last = int(end[ran].max()) if ran.size else None
        row = {"name": r.name, "member": r.member, "layer": r.layer, "kind": r.kind, "start": r.start,
               "end": r.end, "first_cycle": first, "end_cycle": last,
               "cycles": (last - first) if ran.size else 0, "busy": _busy(trace, ran),
               "binary_ops": int(trace.bops[ran].sum()), "dram_read_bytes": int(trace.rd[ran].sum()),
               "dram_write_bytes": int(trace.wr[ran].sum()), "energy_j": re_.energy_j,
               "energy_breakdown": dict(re_.by_unit)}
        rows.append(_with_roofline(row, config))
    return rows


def _with_roofline(row: dict, config: AccelConfig) -> dict:
    row["roofline"] = roofline_of(config, row["binary_ops"], row["dram_read_bytes"], row["dram_write_bytes"],
                                  row["cycles"], row["busy"])
    return row


def _group(rows: list[dict], name: str, config: AccelConfig, *, span: bool) -> dict:
    """Sum rows; `span`: cycles from the first row's start to the last's end, else summed spans."""
    ran = [r for r in rows if r["first_cycle"] is not None]
    first = min((r["first_cycle"] for r in ran), default=None)
    last = max((r["end_cycle"] for r in ran), default=None)
    out = {"name": name, "regions": len(rows), "first_cycle": first, "end_cycle": last,
           "cycles": ((last - first) if ran else 0) if span else sum(r["cycles"] for r in rows),
           "busy": {k: sum(r["busy"][k] for r in rows) for k in BUSY_KEYS}}
    for k in ("binary_ops", "dram_read_bytes", "dram_write_bytes", "energy_j"):
        out[k] = sum(r[k] for r in rows)
    out["energy_breakdown"] = {u: sum(r["energy_breakdown"][u] for r in rows) for u in UNITS}
    return _with_roofline(out, config)


def layer_rows(regions: list[dict], config: AccelConfig) -> list[dict]:
    """Regions grouped by (member, layer), in order of appearance; [] if no region has a layer."""
    groups: dict[tuple, list[dict]] = {}
    for r in regions:
        if r["layer"] is not None:
            groups.setdefault((r["member"], r["layer"]), []).append(r)
    out = []
    for (member, layer), rows in groups.items():
        name = f"m{member}.l{layer}" if member is not None else f"l{layer}"
        out.append({**_group(rows, name, config, span=True), "member": member, "layer": layer})
    return out


def kind_rows(regions: list[dict], config: AccelConfig) -> list[dict]:
    """Regions grouped by kind (regions without one count as their name), with a reason for
    any kind under 80 % of its roofline bound."""
    groups: dict[str, list[dict]] = {}
    for r in regions:
        groups.setdefault(r["kind"] or r["name"], []).append(r)
    out = []
    for kind, rows in groups.items():
        g = _group(rows, kind, config, span=False)
        g["reason"] = shortfall_reason(g)
        out.append(g)
    return out


# -- members and the marginal cost of each ---------------------------------------------------
def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(iv for iv in intervals if iv[1] > iv[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _length(u: list[tuple[int, int]]) -> int:
    return sum(b - a for a, b in u)


def _overlap(u: list[tuple[int, int]], v: list[tuple[int, int]]) -> int:
    """Cycles in both of two unions (each sorted and disjoint)."""
    i = j = total = 0
    while i < len(u) and j < len(v):
        lo, hi = max(u[i][0], v[j][0]), min(u[i][1], v[j][1])
        total += max(0, hi - lo)
        if u[i][1] < v[j][1]:
            i += 1
        else:
            j += 1
    return total


def member_rows(regions: list[dict], cycles: int, energy_j: float, clock_hz: float) -> tuple[list[dict], dict]:
    """Per member: latency (first issue of any of its regions to the last end), energy and
    marginal cost; and the ensemble summary (module docstring, `ensemble`)."""
    spans = lambda rows: [(r["first_cycle"], r["end_cycle"]) for r in rows if r["first_cycle"] is not None]  # noqa: E731
    by_member: dict[int, list[dict]] = {}
    for r in regions:
        if r["member"] is not None:
            by_member.setdefault(r["member"], []).append(r)
    shared = [r for r in regions if r["member"] is None]
    claimed = _union(spans(shared))
    out = []
    for m in sorted(by_member):
        rows = by_member[m]
        own = _union(spans(rows))
        marginal = _length(own) - _overlap(own, claimed)
        claimed = _union(claimed + own)
        first = own[0][0] if own else None
        last = own[-1][1] if own else None
        lat = (last - first) if own else 0
        e = sum(r["energy_j"] for r in rows)
        out.append({"member": m, "regions": [r["name"] for r in rows], "first_cycle": first, "end_cycle": last,
                    "latency_cycles": lat, "latency_s": lat / clock_hz, "energy_j": e,
                    "marginal_cycles": marginal, "marginal_latency_s": marginal / clock_hz,
                    "marginal_energy_j": e})
    fixed_cycles = cycles - sum(m["marginal_cycles"] for m in out)
    fixed_energy = energy_j - sum(m["energy_j"] for m in out)
    cum_c, cum_e = fixed_cycles, fixed_energy
    for m in out:
        cum_c += m["marginal_cycles"]
        cum_e += m["energy_j"]
        m.update(cumulative_cycles=cum_c, cumulative_latency_s=cum_c / clock_hz, cumulative_energy_j=cum_e)
    ensemble = {"members": len(out), "latency_cycles": cycles, "latency_s": cycles / clock_hz,
                "energy_j": energy_j, "shared_regions": [r["name"] for r in shared],
                "fixed_cycles": fixed_cycles, "fixed_latency_s": fixed_cycles / clock_hz,
                "fixed_energy_j": fixed_energy,
                "marginal": [{k: m[k] for k in ("member", "marginal_cycles", "marginal_latency_s",
                                                "marginal_energy_j", "cumulative_latency_s",
                                                "cumulative_energy_j")} for m in out]}
    return out, ensemble


def sim_report(program: Program, result: SimResult, table: EnergyTable | None = None) -> dict[str, Any]:
    """The full JSON report of one simulated run of `program` priced with `table` (asic45)."""
    table = table if table is not None else load_table(None)
    trace = traced(program, result)
    energy = estimate(program, result, table)
    config = program.config
    regions = region_rows(energy, trace, config)
    members, ensemble = member_rows(regions, result.cycles, energy.total_j, config.clock_hz)
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
        "layers": layer_rows(regions, config),
        "kinds": kind_rows(regions, config),
        "members": members,
        "ensemble": ensemble,
    })
    return d


# -- figures ----------------------------------------------------------------------------
MAX_BARS = 48  # more regions than this: the breakdown groups them by layer (or by kind)


def plot(program: Program, result: SimResult, table: EnergyTable | None, out_dir: str | Path) -> list[Path]:
    """Write breakdown.png (per region, or per layer when there are many: span and busy
    cycles per unit side by side, energy stacked by unit) and timeline.png (each machine
    unit's busy intervals and its utilisation over time) into `out_dir`."""
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


def breakdown_rows(report: dict) -> tuple[str, list[dict]]:
    """What the breakdown figure shows: regions, or layers (+ shared regions) when there are
    more than MAX_BARS regions, or kinds when even that is too many."""
    regions = report["regions"]
    if len(regions) <= MAX_BARS:
        return "region", regions
    if report["layers"]:
        rows = list(report["layers"]) + [r for r in regions if r["layer"] is None]
        rows.sort(key=lambda r: (r["first_cycle"] is None, r["first_cycle"] or 0))
        if len(rows) <= 4 * MAX_BARS:
            return "layer", rows
    return "kind", report["kinds"]


def _plot_breakdown(plt, report: dict, program: Program, table: EnergyTable, path: Path) -> Path:
    what, rows = breakdown_rows(report)
    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    fig, (ax_c, ax_e) = plt.subplots(2 if len(names) > 16 else 1, 1 if len(names) > 16 else 2,
                                     figsize=(min(40, max(8, 1.2 + 0.3 * len(names))) * (1 if len(names) > 16 else 1.6),
                                              9 if len(names) > 16 else 4.5))
    # Units overlap in time, so busy cycles stand side by side next to the span.
    bars = [("span", [r["cycles"] for r in rows])] + \
        [(f"{u} busy", [r["busy"][u] for r in rows]) for u in ("load", "gemm", "post", "vector")]
    w = 0.8 / len(bars)
    for j, (label, v) in enumerate(bars):
        ax_c.bar(x + (j - (len(bars) - 1) / 2) * w, v, width=w, label=label,
                 color="0.3" if label == "span" else None)
    ax_c.set_ylabel("cycles" + (" (sum of spans)" if what == "kind" else ""))
    ax_c.set_title(f"cycles per {what} ({report['cycles']:,} in all)")
    bottom = np.zeros(len(names))
    for g, units in GROUPS.items():
        v = np.array([sum(r["energy_breakdown"][u] for u in units) for r in rows]) * 1e6
        ax_e.bar(x, v, bottom=bottom, label=g)
        bottom += v
    ax_e.set_ylabel("energy (µJ)")
    ax_e.set_xlim(-0.75, len(names) - 0.25)
    ax_e.set_title(f"energy per {what} ({report['energy_j'] * 1e6:,.2f} µJ, table '{table.name}')")
    for ax in (ax_c, ax_e):
        ax.set_xticks(x, names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center",
                      fontsize=8 if len(names) > 16 else None)
        ax.legend(fontsize=8, ncol=2)
    fig.suptitle(f"{program.meta.get('spec', program.meta.get('kind', 'program'))} on '{program.config.name}'")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
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


_UTIL_KEY = {"load": "load", "pe_array": "pe_array_busy", "output": "post", "vector": "vector_unit"}
_COLORS = {"load": "tab:blue", "pe_array": "tab:orange", "output": "tab:red", "vector": "tab:purple"}


def _plot_timeline(plt, report: dict, program: Program, trace: Trace, path: Path) -> Path:
    cycles = report["cycles"]
    fig, (ax_t, ax_u) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True,
                                     gridspec_kw={"height_ratios": [1.3, 1]})
    gap = cycles / 3000  # below a pixel: join the bars
    ran = trace.issue >= 0
    start, end = trace.start, trace.end
    nbins = int(min(120, max(1, cycles)))
    edges = np.unique(np.linspace(0, cycles, nbins + 1).round().astype(np.int64))
    units = list(MACHINE_UNITS)
    for row, unit in enumerate(units):
        sel = ran & np.isin(trace.op, [K.OPS.index(o) for o in MACHINE_UNITS[unit]])
        if sel.any():
            s, e = _merged(start[sel], end[sel], gap)
            ax_t.broken_barh(list(zip(s, e - s)), (row - 0.4, 0.8), facecolors=_COLORS[unit])
        frac = busy_fraction(start[sel], end[sel], edges)
        ax_u.step(edges[:-1], frac, where="post", color=_COLORS[unit],
                  label=f"{unit} ({report['utilization'][_UTIL_KEY[unit]]:.0%})")
    if len(report["regions"]) <= 40:
        for r in report["regions"][1:]:
            if r["first_cycle"] is not None:
                ax_t.axvline(r["first_cycle"], color="k", lw=0.5, ls=":")
    elif report["members"]:
        for m in report["members"][1:]:
            if m["first_cycle"] is not None:
                ax_t.axvline(m["first_cycle"], color="k", lw=0.8, ls="--")
    ax_t.set_yticks(range(len(units)), ["LOAD DMA", "PE array", "output path", "vector unit"])
    ax_t.set_ylim(-0.6, len(units) - 0.4)
    ax_t.invert_yaxis()
    marks = "dotted lines: region starts" if len(report["regions"]) <= 40 else \
        ("dashed lines: member starts" if report["members"] else "")
    ax_t.set_title(f"unit busy intervals ({cycles:,} cycles{'; ' + marks if marks else ''})")
    ax_u.set_ylim(0, 1.05)
    ax_u.set_ylabel("utilisation")
    ax_u.set_xlabel("cycle")
    ax_u.set_xlim(0, cycles)
    ax_u.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
