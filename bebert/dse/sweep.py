"""Running a sweep: cached points are read, new ones evaluated in parallel, the table written.

    run_sweep(space, out_dir, jobs=1, cache_dir=None) -> SweepResult

Writes into `out_dir`:

    points.csv (and points.parquet when pyarrow is installed)   one row per design point (with the
                                                                  area model's luts_model, bram36_model)
    pareto.csv, pareto.json                                       the front and its objectives
    latency_energy.png, accuracy_energy.png, area_throughput.png
    summary.json                                                  counts, objectives, timing

and keeps the cache in `cache_dir` (default `out_dir/cache`; see `evaluate`). New work runs
in `jobs` processes (`concurrent.futures`, forkserver), or on a Dask cluster's workers with
`cluster=` (`bebert.dse.cluster`), area syntheses first since they take longest.
As with any multiprocessing code, a script that calls `run_sweep(..., jobs > 1)` must do so
under `if __name__ == "__main__":` (the workers import the main module).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bebert.api import area_key, evaluate_accuracy
from bebert.files import atomic_write, claim_output_dir, write_json

from . import evaluate as ev
from .area_model import BLOCK_ERROR_PCT, TOTAL_ERROR_PCT, modelled_area
from .pareto import pareto_front
from .plots import FIGURES, plot_sweep
from .space import ACCEL_PARAMS, Space, SpaceError


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: every row, the front's row indices, and what was new."""

    rows: tuple[dict[str, Any], ...]
    front: tuple[int, ...]
    evaluated: int  # tasks computed by this run (points and area syntheses)
    cached: int  # tasks read from the cache
    failed: int  # points whose evaluation raised (their row carries `error`)
    files: tuple[str, ...]


def run_sweep(space: Space, out_dir: str | Path, *, jobs: int = 1, cache_dir: str | Path | None = None,
              progress: bool = True, cluster: str | None = None) -> SweepResult:
    """Evaluate what the cache lacks, write the table, front and plots (see the module doc).
    `cluster`: a Dask scheduler address ("tcp://host:8786") or "local" (a cluster of `jobs`
    workers on this machine) to run the new work on (`bebert.dse.cluster`); the cache, the
    resume and the results are those of a local run."""
    t0 = time.perf_counter()
    out = claim_sweep_dir(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    accuracy = _accuracies(space)  # reads saved evals (or runs them, with evaluate = true) first

    energy_fp = ev.energy_fingerprint(space.energy)
    keys = [ev.point_key(p, space, energy_fp) for p in space.points]
    tasks: dict[tuple[str, str], dict] = {}
    for p, k in zip(space.points, keys):
        tasks.setdefault(("point", k), ev.point_task(p, space, k))
    if space.area:
        for p in space.points:
            t = ev.area_task(p.config)
            tasks.setdefault(("area", t["key"]), t)
    results: dict[tuple[str, str], dict] = {}
    for (kind, key) in tasks:
        r = ev.read_cached(cache, kind, key)
        if r is not None:
            results[(kind, key)] = r
    todo = [t for tk, t in tasks.items() if tk not in results]
    todo.sort(key=lambda t: t["kind"] != "area")  # the slow syntheses start first
    _execute(todo, jobs, cache, results, progress, cluster)

    rows = [_row(p, k, space, results, accuracy) for p, k in zip(space.points, keys)]
    front = pareto_front(rows, space.minimize, space.maximize)
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    files = _write(out, space, rows, front, len(todo), len(tasks) - len(todo), time.perf_counter() - t0)
    failed = sum(1 for r in rows if r.get("error"))
    return SweepResult(rows=tuple(rows), front=tuple(front), evaluated=len(todo), cached=len(tasks) - len(todo),
                       failed=failed, files=tuple(files))


AREA_MODEL_NOTE = (f"luts_model / bram36_model: bebert.dse.area_model, per block, fitted to Yosys (synth_xilinx, "
                   f"pre-placement) on the default and small configurations; stated error {BLOCK_ERROR_PCT:g} % per "
                   f"block, {TOTAL_ERROR_PCT:g} % in total at those (bench/results/area_model.json)")
OUTPUTS = ("points.csv", "points.parquet", "pareto.csv", "pareto.json", "summary.json", *FIGURES)
CACHE = "cache"


def is_sweep_dir(path: Path) -> bool:
    """Whether `path` holds only what a sweep writes (so a re-run or a resume may write there)."""
    return all(p.name in OUTPUTS or (p.name == CACHE and p.is_dir()) for p in path.iterdir())


def claim_sweep_dir(out_dir: str | Path) -> Path:
    """The output folder of a sweep: new, empty or a sweep's (`OutputError`, one line, otherwise)."""
    return claim_output_dir(out_dir, "design-space sweep", is_sweep_dir)


def _accuracies(space: Space) -> dict[tuple[int, int], dict]:
    acc = {}
    needed = {(p.members, p.abits) for p in space.points}
    for m, b, src in space.accuracy_runs:
        if (m, b) not in needed:
            continue
        r = evaluate_accuracy(src, metric=space.accuracy_metric, split=space.accuracy_split,
                              integer=space.accuracy_integer, run_eval=space.accuracy_evaluate)
        _check_run_matches(src, r, m, b)
        acc[(m, b)] = {"accuracy": r.value, "accuracy_metric": r.metric, "accuracy_task": r.task,
                       "accuracy_source": r.source}
    return acc


def _check_run_matches(src: str, r, members: int, abits: int) -> None:
    """An accuracy is credited only to the ensemble it was measured on: the run's member count
    (from its scores) and, where its package is at hand, its activation bits must be the point's."""
    from bebert.target import PackageTarget, parse_target

    where = f"[accuracy] run {src} (declared members = {members}, abits = {abits})"
    if r.members and len(r.members) != members:
        raise SpaceError(f"{where}: its results are of {len(r.members)} member(s)")
    if Path(src).is_dir():
        try:
            pkg = parse_target(src)
        except ValueError:
            return  # a folder of saved results only: nothing more to compare
        if isinstance(pkg, PackageTarget):
            if pkg.n_members != members or set(pkg.act_bits) != {abits}:
                raise SpaceError(f"{where}: its package has {pkg.n_members} member(s) with "
                                 f"{'/'.join(map(str, pkg.act_bits))}-bit activations")


def _execute(todo: list[dict], jobs: int, cache: Path, results: dict, progress: bool,
             cluster: str | None = None) -> None:
    if not todo:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="dse", unit="task", disable=not progress, dynamic_ncols=True)

    def done(r: dict, keep: bool = True) -> None:
        if keep:
            ev.write_cached(cache, r)  # at once: an interrupted sweep keeps every finished point
        results[(r["kind"], r["key"])] = {k: v for k, v in r.items() if k != ev.REPORT}
        bar.update(1)

    try:
        if cluster is not None:
            from .cluster import run_on_cluster

            run_on_cluster(todo, cluster, jobs, done)
        elif jobs <= 1 or len(todo) == 1:
            for t in todo:
                done(ev.run_task(t))
        else:
            _run_in_processes(todo, jobs, done)
    finally:
        bar.close()


def _run_in_processes(todo: list[dict], jobs: int, done) -> None:
    # Never plain fork: a parent that has used PyTorch or Numba threads can leave a forked
    # child waiting forever on a lock copied in its held state.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx)
    try:
        pending = {pool.submit(ev.run_task, t) for t in todo}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                done(f.result())
    except BaseException:
        # Interrupted (or a worker died): what finished is already in the cache; stop at
        # once rather than wait for the points in flight, which a re-run evaluates.
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        raise
    pool.shutdown()


def _row(p, key: str, space: Space, results: dict, accuracy: dict) -> dict[str, Any]:
    cfg = p.config.to_dict()
    row: dict[str, Any] = {"point": p.index}
    for k in ACCEL_PARAMS:
        row[k] = "/".join(map(str, cfg[k])) if k == "act_bits" else cfg[k]
    row.update(model=p.model, members=p.members, abits=p.abits, seq=p.seq, members_factor=p.members_factor)
    r = results.get(("point", key), {})
    errors = [r.get("error")]
    for m in ev.METRICS:
        row[m] = r.get(m)
        if row[m] is not None and m in ev.PER_MEMBER:
            row[m] *= p.members_factor
    if row["inferences_per_s"] is not None:
        row["inferences_per_s"] /= p.members_factor
    model = modelled_area(p.config)  # the area model: every point, no synthesis
    row.update(luts_model=model.luts, bram36_model=model.bram36)
    if space.area:
        a = results.get(("area", area_key(p.config)), {})
        errors.append(f"area: {a['error']}" if a.get("error") else None)
        for m in ev.AREA:
            row[m] = a.get(m)
    row.update(accuracy.get((p.members, p.abits), {"accuracy": None, "accuracy_metric": None}))
    row.pop("accuracy_source", None)
    row.pop("accuracy_task", None)
    row["error"] = "; ".join(e for e in errors if e) or None
    row["key"] = key
    return row


def _write(out: Path, space: Space, rows: list[dict], front: list[int], evaluated: int, cached: int,
           seconds: float) -> list[str]:
    cols = list(rows[0]) if rows else ["point"]
    written = [_csv(out / "points.csv", rows, cols)]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = None
    if pa is not None:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        atomic_write(out / "points.parquet", buf.getvalue())
        written.append(str(out / "points.parquet"))
    front_rows = [rows[i] for i in front]
    written.append(_csv(out / "pareto.csv", front_rows, cols))
    front_doc = {"space": space.path, "minimize": list(space.minimize), "maximize": list(space.maximize),
                 "points": front_rows}
    write_json(out / "pareto.json", front_doc, indent=1)
    written.append(str(out / "pareto.json"))
    title = f"{Path(space.path).name}\n{space.model}"
    written += [str(p) for p in plot_sweep(rows, front, out, title)]
    summary = {"space": space.path, "model": space.model, "points": len(rows), "grid_size": space.grid_size,
               "method": space.method, "evaluated": evaluated, "cached": cached,
               "failed": sum(1 for r in rows if r.get("error")), "pareto_points": len(front),
               "minimize": list(space.minimize), "maximize": list(space.maximize), "energy": space.energy,
               "area": space.area, "area_model": AREA_MODEL_NOTE, "seconds": round(seconds, 2),
               "files": [Path(f).name for f in written]}
    write_json(out / "summary.json", summary, indent=1)
    written.append(str(out / "summary.json"))
    for name in OUTPUTS:  # what an earlier sweep wrote and this one did not (a Parquet, say) is stale
        if str(out / name) not in written:
            (out / name).unlink(missing_ok=True)
    return written


def _csv(path: Path, rows: list[dict], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    atomic_write(path, buf.getvalue())
    return str(path)
