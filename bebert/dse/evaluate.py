"""Evaluating one design point, and the cache that makes a sweep resumable.

A point's figures are a pure function of its configuration (all fields but the name), its
model target, the seed, the energy table and the code: `point_key` hashes exactly those (the
code as the toolkit / ISA version and a hash of the compiler, simulator and model sources) (a gemm layer repeated for M members is one cached run, scaled when the table
is written). A result is written atomically to `CACHE/points/<key>.json` the moment it is
known, so an interrupted sweep loses at most the points in flight and a re-run evaluates only
what no file holds. Areas (Yosys) are cached per configuration: the row in `CACHE/area_rows/`,
the full report in `CACHE/area/` (the layout `bebert.api.estimate_area(cache_dir=...)` reads).

Workers -- local processes or a cluster's (`bebert.dse.cluster`) -- receive plain dicts
(picklable, no path of the driver's machine) and return plain dicts; only the driver writes
the cache, so a sweep on a cluster leaves the same cache as a local one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from bebert.api import area_cache_file, area_key, source_fingerprint, toolkit_version
from bebert.config import AccelConfig
from bebert.files import write_json

from .space import Point, Space

CACHE_FORMAT = 1
REPORT = "report"  # an area result's full Yosys report, kept apart from its cached row
METRICS = ("cycles", "latency_s", "inferences_per_s", "energy_per_inference_j", "energy_j", "dram_bytes",
           "binary_ops", "utilization_pe_array", "utilization_compute", "roofline_bound_by", "roofline_fraction",
           "instructions")
AREA = ("luts", "ffs", "bram36", "dsp")
# Figures that scale with `Point.members_factor` (identical members run one after another),
# and the one that divides by it; the cached result is one run.
PER_MEMBER = ("cycles", "latency_s", "energy_per_inference_j", "energy_j", "dram_bytes", "binary_ops")


def energy_fingerprint(energy: str) -> str:
    """The energy table's name and a hash of its numbers (a changed table is a new point)."""
    from bebert.sim.energy import load_table

    t = load_table(energy)
    blob = json.dumps(dataclasses.asdict(t), sort_keys=True, default=str)
    return f"{t.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def point_key(point: Point, space: Space, energy_fp: str) -> str:
    cfg = {k: v for k, v in point.config.to_dict().items() if k != "name"}
    blob = json.dumps({"format": CACHE_FORMAT, "config": cfg, "model": point.model, "seed": space.seed,
                       "energy": energy_fp, "toolkit": toolkit_version(),
                       "sources": source_fingerprint("bebert", "compiler", "sim", "model")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def point_task(point: Point, space: Space, key: str) -> dict[str, Any]:
    """What a worker needs to evaluate `point` (plain data)."""
    return {"kind": "point", "key": key, "config": point.config.to_dict(), "model": point.model,
            "seed": space.seed, "energy": space.energy}


def area_task(config: AccelConfig) -> dict[str, Any]:
    """What a worker needs to synthesise `config` (plain data: no path of the driver's machine)."""
    return {"kind": "area", "key": area_key(config), "config": config.to_dict()}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one task in this process; failures are results too (a message, not a crash)."""
    t0 = time.perf_counter()
    try:
        out = _evaluate_point(task) if task["kind"] == "point" else _evaluate_area(task)
        out["error"] = None
    except Exception as e:  # noqa: BLE001 -- one failing point must not lose a long sweep
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        out = {"error": f"{type(e).__name__}: {msg}"}
    out.update(key=task["key"], kind=task["kind"], eval_seconds=round(time.perf_counter() - t0, 3),
               toolkit=toolkit_version())
    return out


def _evaluate_point(task: dict[str, Any]) -> dict[str, Any]:
    from bebert import api

    cfg = AccelConfig.from_dict(task["config"])
    program = api.compile(task["model"], cfg, seed=task["seed"])
    rep = api.simulate(program, energy=task["energy"])
    if rep.error:
        raise RuntimeError(f"the program stopped with an error after {rep.cycles} cycles")
    return {
        "cycles": rep.cycles,
        "latency_s": rep.latency_s,
        "inferences_per_s": rep.inferences_per_s,
        "energy_per_inference_j": rep.energy_per_inference_j,
        "energy_j": rep.energy_j,
        "dram_bytes": rep.dram_bytes,
        "binary_ops": rep.binary_ops,
        "utilization_pe_array": rep.utilization.get("pe_array"),
        "utilization_compute": rep.utilization.get("compute"),
        "roofline_bound_by": rep.roofline_bound_by,
        "roofline_fraction": rep.roofline_fraction,
        "instructions": len(program.instrs),
    }


def _evaluate_area(task: dict[str, Any]) -> dict[str, Any]:
    from bebert import api

    r = api.estimate_area(AccelConfig.from_dict(task["config"]))
    # the full report travels back: the driver keeps it in CACHE/area/ as estimate_area would
    return {"luts": r.luts, "ffs": r.ffs, "bram36": r.bram36, "dsp": r.dsp, "tool": r.tool, REPORT: r.report}


# -- the cache ------------------------------------------------------------------------------
def cache_path(cache_dir: Path, kind: str, key: str) -> Path:
    return cache_dir / ("points" if kind == "point" else "area_rows") / f"{key}.json"


def read_cached(cache_dir: Path, kind: str, key: str) -> dict[str, Any] | None:
    """A cached result, or None if absent, unreadable or from another toolkit version."""
    p = cache_path(cache_dir, kind, key)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("key") != key or d.get("toolkit") != toolkit_version():
        return None
    return d


def write_cached(cache_dir: Path, result: dict[str, Any]) -> None:
    """Keep a result (and an area result's report, in CACHE/area/ for `bebert.api.estimate_area`).
    Only the driver of a sweep writes the cache: workers return plain data."""
    result = dict(result)
    report = result.pop(REPORT, None)
    if report is not None:
        write_json(area_cache_file(cache_dir / "area", result["key"]), report, indent=1)
    write_json(cache_path(cache_dir, result["kind"], result["key"]), result, indent=None, sort_keys=True)
