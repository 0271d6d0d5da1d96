"""Design-space exploration: sweep accelerator and model parameters, find the Pareto front.

    bebert dse --space SPACE.toml --out DIR [--jobs N] [--cache DIR] [--cluster local|tcp://HOST:8786]

    space = load_space("examples/space_small.toml")    # checked: bad input fails here, one line
    result = run_sweep(space, "out/dse", jobs=2)         # cached, parallel, resumable

The space format is in `bebert.dse.space`, the cache in `bebert.dse.evaluate`, the outputs in
`bebert.dse.sweep`. Every figure comes from the toolkit itself through `bebert.api`: the
compiler, the cycle-accurate simulator and its energy model, Yosys for area (`area = true`)
and, on every point, the per-block area model calibrated against it (`bebert.dse.area_model`),
and saved `bebert eval --json` results for accuracy.
"""

from .pareto import pareto_front
from .space import Point, Space, SpaceError, load_space
from .sweep import SweepResult, run_sweep

__all__ = ["Point", "Space", "SpaceError", "SweepResult", "load_space", "pareto_front", "register", "run_sweep"]


def register(subparsers) -> None:
    """Add `bebert dse` to the CLI's subparsers."""
    import os

    d = subparsers.add_parser("dse", help="design-space exploration: sweep, table, Pareto front, plots")
    d.add_argument("--space", required=True, help="space file (TOML; see examples/space_small.toml), or a shipped "
                                                  "example by name: space_small, space_area")
    d.add_argument("--out", required=True, help="output folder (table, front, plots; cache in OUT/cache)")
    d.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    d.add_argument("--cache", default=None, help="cache folder (default: OUT/cache); shared between sweeps")
    d.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="run the points on a Dask cluster: a scheduler address (tcp://HOST:8786), or 'local' "
                        "for a cluster of --jobs workers on this machine (docs/CLUSTER.md)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_dse)


def _cmd_dse(a) -> int:
    import json
    from pathlib import Path

    if a.jobs < 1:
        raise SpaceError(f"--jobs must be at least 1, got {a.jobs}")
    space = load_space(a.space)
    print(f"{len(space.points)} points ({space.method}, grid of {space.grid_size}) of {space.model}"
          + (" with area" if space.area else ""), flush=True)
    r = run_sweep(space, Path(a.out), jobs=a.jobs, cache_dir=a.cache, progress=not a.no_progress,
                  cluster=a.cluster)
    print(json.dumps({"out": a.out, "points": len(r.rows), "evaluated": r.evaluated, "cached": r.cached,
                      "failed": r.failed, "pareto_points": len(r.front),
                      "files": [Path(f).name for f in r.files]}, indent=2))
    return 1 if r.failed else 0
