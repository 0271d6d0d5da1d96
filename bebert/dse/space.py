"""A design space: what `bebert dse --space SPACE.toml` sweeps, read and checked before any work.

    [workload]
    model = "gemm:{seq},512,1024,{abits}"   # or "synthetic:tiny,members={members},abits={abits},seq={seq}"
    members = 1            # model parameters not swept take these values
    abits = 4
    seq = 64
    seed = 0               # gemm: the seed of the random layer
    energy = "asic45"      # energy table: asic45, fpga or a TOML file
    area = false           # true: Yosys LUTs / FFs / BRAM per configuration (slow, cached);
                           # every point has the area model's luts_model / bram36_model anyway

    [accelerator]          # the base configuration: a file (or a shipped one's name, "small")
    base = "configs/small.toml"   # and/or AccelConfig fields
    dram_latency_cycles = 16

    [sweep]                # axes: any AccelConfig field, or members / abits / seq
    pe_rows = [4, 8]
    xnor_width = [32, 64]
    abits = [2, 4]

    [sampling]
    method = "grid"        # every combination; "random": `samples` of them, drawn with `seed`
    samples = 8
    seed = 0

    [accuracy]             # optional: where the accuracy of (members, abits) comes from
    metric = "accuracy"    # default: the mean of the task's metrics
    runs = [{members = 3, abits = 4, run = "runs/mrpc"}]   # a run folder or a saved eval JSON

    [pareto]               # objectives of the front (defaults shown; accuracy when present)
    minimize = ["latency_s", "energy_per_inference_j", "luts_model"]   # "luts" with area = true
    maximize = ["accuracy"]

Area objectives: `luts_model` and `bram36_model` come from the area model
(`bebert.dse.area_model`: per block, calibrated against Yosys; no synthesis), on every
point. `luts`, `ffs`, `bram36` and `dsp` are Yosys's and need `area = true`; without it,
`luts` and `bram36` in [pareto] mean the model's columns (the front's objective list then
names `luts_model` / `bram36_model`, so no model figure passes for a Yosys one).

`{members}`, `{abits}` and `{seq}` in the model are replaced by each point's values. A gemm
workload without `{members}` is one member's layer: with members = M the members run it one
after another, so its cycles, latency and energy are M times one run (`members_factor`).

Every point's `AccelConfig` is built, and every model target checked, when the space is
loaded: a bad value stops the sweep with one line before anything is evaluated. Relative
paths are resolved against the space file's folder first, then the working directory.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bebert.config import AccelConfig, ConfigError, read_toml
from bebert.target import GemmTarget, PackageTarget, SyntheticTarget, Target, parse_target

MODEL_PARAMS = ("members", "abits", "seq")
MODEL_DEFAULTS = {"members": 1, "abits": 4, "seq": 64}
ACCEL_PARAMS = tuple(f.name for f in dataclasses.fields(AccelConfig) if f.name != "name")
TABLES = ("workload", "accelerator", "sweep", "sampling", "accuracy", "pareto")
WORKLOAD_KEYS = ("model", *MODEL_PARAMS, "seed", "energy", "area")
OBJECTIVES = ("latency_s", "energy_per_inference_j", "inferences_per_s", "cycles", "energy_j", "dram_bytes",
              "accuracy", "luts", "ffs", "bram36", "dsp", "luts_model", "bram36_model")
YOSYS_AREA = ("luts", "ffs", "bram36", "dsp")
MODELLED = {"luts": "luts_model", "bram36": "bram36_model"}  # what a Yosys objective reads without area
MAX_POINTS = 100_000


class SpaceError(ValueError):
    """A space file that cannot be swept (empty, malformed, unknown name, impossible point)."""


@dataclass(frozen=True)
class Point:
    """One design point: a configuration and a model target."""

    index: int
    params: tuple[tuple[str, Any], ...]  # the swept values, in the space's axis order
    config: AccelConfig
    model: str  # the target with the point's members / abits / seq filled in
    members: int
    abits: int
    seq: int
    members_factor: int  # gemm without {members}: the layer runs `members` times

    def label(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.params) or "base"


@dataclass(frozen=True)
class Space:
    """A checked design space and the points it samples."""

    path: str
    model: str
    seed: int
    energy: str
    area: bool
    base: AccelConfig
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    method: str
    samples: int | None
    sample_seed: int
    accuracy_runs: tuple[tuple[int, int, str], ...]  # (members, abits, source)
    accuracy_metric: str | None
    accuracy_split: str | None
    accuracy_integer: bool
    accuracy_evaluate: bool
    minimize: tuple[str, ...]
    maximize: tuple[str, ...]
    points: tuple[Point, ...]

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for _, v in self.axes)

    def accuracy_source(self, members: int, abits: int) -> str | None:
        for m, b, src in self.accuracy_runs:
            if (m, b) == (members, abits):
                return src
        return None


def _fmt(v: Any) -> str:
    return "[" + ",".join(map(str, v)) + "]" if isinstance(v, (list, tuple)) else str(v)


def load_space(path: str | Path) -> Space:
    """Read, check and sample a space file, or a shipped example space by name ("space_small",
    `bebert.shipped`); SpaceError (one line) on anything wrong."""
    p = Path(path)
    if not p.exists() and isinstance(path, str) and "/" not in path:
        from bebert import shipped

        p = shipped.space_file(path) or p
    data = read_toml(p, SpaceError, "space file")
    where = str(p)

    def bad(msg: str) -> SpaceError:
        return SpaceError(f"{where}: {msg}")

    if not data:
        raise bad("the space is empty (it needs at least [workload] model = ...)")
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise bad(f"unknown table(s) {', '.join(unknown)} (tables: {', '.join(TABLES)})")
    for t in TABLES:
        if t in data and not isinstance(data[t], dict):
            raise bad(f"'{t}' must be a table ([{t}])")
    work = dict(data.get("workload", {}))
    _unknown_keys(bad, "workload", work, WORKLOAD_KEYS)
    model = work.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("[workload] model is missing (e.g. model = \"gemm:{seq},512,1024,{abits}\")")
    seed = _int(bad, "workload.seed", work.get("seed", 0), lo=0, hi=(1 << 32) - 1)
    energy = _energy(bad, p, work.get("energy", "asic45"))
    area = work.get("area", False)
    if not isinstance(area, bool):
        raise bad(f"[workload] area must be true or false, got {area!r}")
    fixed = {k: _int(bad, f"workload.{k}", work.get(k, MODEL_DEFAULTS[k]), lo=1) for k in MODEL_PARAMS}

    base = _base_config(bad, p, dict(data.get("accelerator", {})))
    axes = _axes(bad, dict(data.get("sweep", {})))
    method, samples, sample_seed = _sampling(bad, dict(data.get("sampling", {})))
    acc = _accuracy(bad, p, dict(data.get("accuracy", {})))
    minimize, maximize = _pareto(bad, dict(data.get("pareto", {})), bool(acc[0]), area)

    size = math.prod(len(v) for _, v in axes)
    if method == "grid" and size > MAX_POINTS:
        raise bad(f"the grid has {size:,} points (more than {MAX_POINTS:,}); use [sampling] method = \"random\"")
    indices = _sample(size, method, samples, sample_seed)
    points = _points(bad, model.strip(), base, axes, fixed, indices)
    return Space(path=where, model=model.strip(), seed=seed, energy=energy, area=area, base=base, axes=axes,
                 method=method, samples=samples, sample_seed=sample_seed, accuracy_runs=acc[0],
                 accuracy_metric=acc[1], accuracy_split=acc[2], accuracy_integer=acc[3], accuracy_evaluate=acc[4],
                 minimize=minimize, maximize=maximize, points=points)


# -- pieces ---------------------------------------------------------------------------------
def _unknown_keys(bad, table: str, d: dict, known: tuple[str, ...]) -> None:
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise bad(f"unknown parameter(s) {', '.join(unknown)} in [{table}] (known: {', '.join(known)})")


def _int(bad, what: str, v: Any, *, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        raise bad(f"{what} must be an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "")
                  + f", got {v!r}")
    return v


def _resolve(space_path: Path, rel: str) -> Path:
    q = Path(rel).expanduser()
    if q.is_absolute():
        return q
    beside = space_path.parent / q
    return beside if beside.exists() else q


def _energy(bad, p: Path, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise bad(f"[workload] energy must be asic45, fpga or a TOML file, got {name!r}")
    from bebert.sim.energy import EnergyError, load_table

    resolved = name if name in ("asic45", "fpga") else str(_resolve(p, name))
    try:
        load_table(resolved)
    except (EnergyError, OSError) as e:
        raise bad(f"[workload] energy: {e}") from None
    return resolved


def _base_config(bad, p: Path, acc: dict) -> AccelConfig:
    base_file = acc.pop("base", None)
    fields: dict[str, Any] = {}
    if base_file is not None:
        if not isinstance(base_file, str) or not base_file:
            raise bad(f"[accelerator] base must be a config file path or a shipped config's name, got {base_file!r}")
        path = _resolve(p, base_file)
        try:
            if not path.exists() and "/" not in base_file and not base_file.endswith(".toml"):
                from bebert import shipped

                path = shipped.config_file(base_file)  # "small": the shipped configs/small.toml
            cfg = AccelConfig.from_toml(path)
        except ConfigError as e:
            raise bad(f"[accelerator] base: {e}") from None
        fields = cfg.to_dict()
    _unknown_keys(bad, "accelerator", acc, ("base", "name", *ACCEL_PARAMS))
    fields.update(acc)
    fields.setdefault("name", p.stem)
    try:
        return AccelConfig.from_dict(fields, source="[accelerator]")
    except ConfigError as e:
        raise bad(str(e)) from None


def _axes(bad, sweep: dict) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    _unknown_keys(bad, "sweep", sweep, (*ACCEL_PARAMS, *MODEL_PARAMS))
    axes = []
    for k, v in sweep.items():
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise bad(f"[sweep] {k} has no values")
        if k == "act_bits":  # a list of lists: each value is a tuple of widths
            vals = [tuple(x) if isinstance(x, list) else x for x in vals]
        if len(set(map(repr, vals))) != len(vals):
            raise bad(f"[sweep] {k} repeats a value: {vals}")
        axes.append((k, tuple(vals)))
    return tuple(axes)


def _sampling(bad, s: dict) -> tuple[str, int | None, int]:
    _unknown_keys(bad, "sampling", s, ("method", "samples", "seed"))
    method = s.get("method", "grid")
    if method not in ("grid", "random"):
        raise bad(f"[sampling] method must be \"grid\" or \"random\", got {method!r}")
    samples = s.get("samples")
    if method == "random":
        if samples is None:
            raise bad("[sampling] method = \"random\" needs samples = N")
        samples = _int(bad, "sampling.samples", samples, lo=1)
    elif samples is not None:
        raise bad("[sampling] samples is only for method = \"random\"")
    return method, samples, _int(bad, "sampling.seed", s.get("seed", 0), lo=0, hi=(1 << 32) - 1)


def _accuracy(bad, p: Path, a: dict) -> tuple:
    _unknown_keys(bad, "accuracy", a, ("runs", "metric", "split", "integer", "evaluate"))
    runs = a.get("runs", [])
    if not isinstance(runs, list):
        raise bad("[accuracy] runs must be a list of {members = M, abits = B, run = \"DIR or FILE\"}")
    out = []
    for i, r in enumerate(runs):
        if not isinstance(r, dict) or set(r) != {"members", "abits", "run"}:
            raise bad(f"[accuracy] runs[{i}] must be {{members = M, abits = B, run = \"DIR or FILE\"}}, got {r!r}")
        m = _int(bad, f"accuracy.runs[{i}].members", r["members"], lo=1)
        b = _int(bad, f"accuracy.runs[{i}].abits", r["abits"], lo=1)
        src = _resolve(p, str(r["run"]))
        if not src.exists():
            raise bad(f"[accuracy] runs[{i}]: run not found: {src}")
        if any((m, b) == (m2, b2) for m2, b2, _ in out):
            raise bad(f"[accuracy] two runs for members={m}, abits={b}")
        out.append((m, b, str(src)))
    for k in ("integer", "evaluate"):
        if not isinstance(a.get(k, False), bool):
            raise bad(f"[accuracy] {k} must be true or false")
    for k in ("metric", "split"):
        if a.get(k) is not None and not isinstance(a[k], str):
            raise bad(f"[accuracy] {k} must be a string")
    return tuple(out), a.get("metric"), a.get("split"), a.get("integer", False), a.get("evaluate", False)


def _pareto(bad, pr: dict, accuracy: bool, area: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    _unknown_keys(bad, "pareto", pr, ("minimize", "maximize"))
    minimize = pr.get("minimize", ["latency_s", "energy_per_inference_j", "luts" if area else "luts_model"])
    maximize = pr.get("maximize", ["accuracy"] if accuracy else [])
    for name, lst in (("minimize", minimize), ("maximize", maximize)):
        if not isinstance(lst, list) or not all(isinstance(x, str) for x in lst):
            raise bad(f"[pareto] {name} must be a list of column names")
        for x in lst:
            if x not in OBJECTIVES:
                raise bad(f"[pareto] unknown objective '{x}' (objectives: {', '.join(OBJECTIVES)})")
    if not minimize and not maximize:
        raise bad("[pareto] needs at least one objective")
    if "accuracy" in minimize + maximize and not accuracy:
        raise bad("[pareto] accuracy is an objective but [accuracy] names no runs")
    if not area:
        unmodelled = [x for x in minimize + maximize if x in YOSYS_AREA and x not in MODELLED]
        if unmodelled:
            raise bad(f"[pareto] {', '.join(unmodelled)} needs [workload] area = true (Yosys); the area model "
                      f"gives {', '.join(MODELLED.values())}")
        minimize, maximize = ([MODELLED.get(x, x) for x in lst] for lst in (minimize, maximize))
    for lst in (minimize, maximize):
        if len(set(lst)) != len(lst):
            raise bad(f"[pareto] an objective appears twice: {lst}")
    return tuple(minimize), tuple(maximize)


def _sample(size: int, method: str, samples: int | None, seed: int) -> list[int]:
    if method == "grid" or samples is None or samples >= size:
        return list(range(size))
    import numpy as np

    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(size, size=samples, replace=False))


def _unrank(index: int, axes) -> list[tuple[str, Any]]:
    """The grid point number `index` (row-major over the axes, the last axis fastest)."""
    out = []
    for k, vals in reversed(axes):
        index, j = divmod(index, len(vals))
        out.append((k, vals[j]))
    return out[::-1]


def _points(bad, model: str, base: AccelConfig, axes, fixed: dict, indices: list[int]) -> tuple[Point, ...]:
    from bebert.api import check_model

    uses = {k: "{" + k + "}" in model for k in MODEL_PARAMS}
    points = []
    targets: dict[str, Target] = {}
    checked: set[tuple[str, str]] = set()
    for n, index in enumerate(indices):
        params = tuple(_unrank(index, axes))
        accel = {k: v for k, v in params if k in ACCEL_PARAMS}
        mp = {**fixed, **{k: v for k, v in params if k in MODEL_PARAMS}}
        what = ", ".join(f"{k}={_fmt(v)}" for k, v in params) or "the base configuration"
        for k in MODEL_PARAMS:
            if isinstance(mp[k], bool) or not isinstance(mp[k], int) or mp[k] < 1:
                raise bad(f"point {n} ({what}): {k} = {mp[k]!r} is not a positive integer")
        try:
            cfg = dataclasses.replace(base, **accel, name=f"{base.name}-{n}" if accel else base.name)
        except (ConfigError, TypeError) as e:
            raise bad(f"point {n} ({what}): {str(e).split(': ', 1)[-1]}") from None
        try:
            text = model.format(**mp)
        except (KeyError, IndexError, ValueError) as e:
            raise bad(f"[workload] model {model!r}: bad placeholder ({e}); use {{members}}, {{abits}}, {{seq}}") from None
        if text not in targets:
            try:
                targets[text] = parse_target(text)
            except ValueError as e:
                raise bad(f"point {n} ({what}): {str(e).splitlines()[0]}") from None
        target = targets[text]
        is_gemm = isinstance(target, GemmTarget)
        if not uses["abits"] and "abits" in dict(params):
            raise bad(f"[sweep] abits is swept but the model {model!r} has no {{abits}}")
        if not uses["seq"] and "seq" in dict(params):
            raise bad(f"[sweep] seq is swept but the model {model!r} has no {{seq}}")
        if not uses["members"] and "members" in dict(params) and not is_gemm:
            raise bad(f"[sweep] members is swept but the model {model!r} has no {{members}}")
        sig = (text, repr(cfg.act_bits))
        if sig not in checked:  # the model check depends on the target and act_bits only
            try:
                check_model(target, cfg)
            except ValueError as e:
                raise bad(f"point {n} ({what}): {str(e).splitlines()[0]}") from None
            checked.add(sig)
        factor = mp["members"] if is_gemm and not uses["members"] else 1
        mp.update(_target_params(target))
        points.append(Point(index=index, params=params, config=cfg, model=text, members=mp["members"],
                            abits=mp["abits"], seq=mp["seq"], members_factor=factor))
    return tuple(points)


def _target_params(target: Target) -> dict[str, int]:
    """The model parameters a resolved target states itself (they win over the defaults)."""
    if isinstance(target, GemmTarget):
        return {"abits": target.abits}
    if isinstance(target, SyntheticTarget):
        return {"members": target.shape.members, "abits": target.shape.act_bits, "seq": target.shape.seq}
    if isinstance(target, PackageTarget):
        out = {"members": target.n_members, "seq": target.max_seq_len}
        if len(target.act_bits) == 1:
            out["abits"] = target.act_bits[0]
        return out
    return {}
