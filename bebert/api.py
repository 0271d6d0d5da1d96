"""The bebert Python API: plain functions for scripts, each returning a frozen dataclass.

    load_config(path_or_dict_or_name=None) -> AccelConfig
    compile(model, config=None, seed=0) -> Program
    simulate(program, energy="asic45") -> SimReport
    estimate_area(config, cache_dir=None) -> AreaReport          (Yosys; minutes for big arrays)
    evaluate_accuracy(run_dir_or_json, metric=None, ...) -> AccuracyReport

They wrap the toolkit's parts without adding behaviour: `compile` parses its target with
`bebert.target.parse_target` and is `bebert.compiler.compile_spec` for "gemm:M,K,N,ABITS[,OBITS]"
and `bebert.compiler.compile_model` for every other target (synthetic:PRESET[,...] specs,
trained packages and run folders); `simulate` is `bebert.sim.simulate` priced by
`bebert.sim.report.sim_report`; `estimate_area` is `bebert.hw.resources.resource_report` on the
configuration's Verilog; `evaluate_accuracy` reads what `bebert eval --json` prints (saved to a
file, or the `eval*.json` this function saves in a run folder) or runs
`bebert.model.train.evaluate` itself. `bebert dse` is built on these functions.

Bad input raises `ApiError` (a ValueError) or the part's own ValueError subclass, with one line.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bebert.config import AccelConfig, ConfigError
from bebert.files import write_json
from bebert.program import Program
from bebert.target import GemmTarget, SyntheticTarget, Target, parse_target

__all__ = ["AccuracyReport", "ApiError", "AreaReport", "SimReport", "compile", "estimate_area",
           "evaluate_accuracy", "load_config", "simulate"]


class ApiError(ValueError):
    """A request the API cannot serve (unknown target, missing results, ...)."""


# -- configuration --------------------------------------------------------------------------
def load_config(source: AccelConfig | str | Path | dict | None = None) -> AccelConfig:
    """An `AccelConfig` from a TOML path, a dict of fields, the name of a shipped configuration
    ("small": `bebert.shipped`), or None (the shipped default). An `AccelConfig` is returned as it is."""
    from bebert import shipped

    if source is None:
        return shipped.default_config()
    if isinstance(source, AccelConfig):
        return source
    if isinstance(source, dict):
        return AccelConfig.from_dict(source)
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.exists() and isinstance(source, str) and "/" not in source and not source.endswith(".toml"):
            return AccelConfig.from_toml(shipped.config_file(source))
        return AccelConfig.from_toml(p)
    raise ConfigError(f"cannot make an accelerator config from {type(source).__name__}")


# -- compile --------------------------------------------------------------------------------
def compile(model: str | Program | Target, config: AccelConfig | str | Path | dict | None = None, *,  # noqa: A001
            seed: int = 0) -> Program:
    """The Program of `model` on `config`.

    `model` is a target `bebert.target.parse_target` takes: "gemm:M,K,N,ABITS[,OBITS]" (a seeded
    random binary layer), "synthetic:PRESET[,members=,abits=,seq=]", a trained package or run
    folder, or such a target already parsed. A `Program` is returned unchanged (its own config stands).
    """
    if isinstance(model, Program):
        return model
    check_seed(seed)
    cfg = load_config(config)
    target = parse_target(model)
    from bebert import compiler

    if isinstance(target, GemmTarget):
        return compiler.compile_spec(target, cfg, seed=seed)
    return compiler.compile_model(target, cfg, seed=seed)


MAX_SEED = (1 << 32) - 1


def check_seed(seed) -> int:
    """A seed is an integer in 0 .. 2^32 - 1 (what every generator the compiler uses takes)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ApiError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    return seed


def check_model(model: str | Target, config: AccelConfig) -> None:
    """Raise (one line) if `model` is malformed or cannot run on `config`, without compiling."""
    target = parse_target(model)
    bits = {target.abits} if isinstance(target, (GemmTarget, SyntheticTarget)) else set(target.act_bits)
    if isinstance(target, SyntheticTarget) and target.shape.bi_attention:
        bits.add(2)   # Bi-Attention's Q K^T: a 2-plane (ones + b_q) XNOR-mode product
    missing = sorted(bits - set(config.act_bits))
    if missing:
        raise ApiError(f"model {target.text!r}: activation bits {', '.join(map(str, missing))} not supported by "
                       f"config '{config.name}' (act_bits = {', '.join(map(str, config.act_bits))})")


# -- simulate -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimReport:
    """Timing and energy of one run of a program (the figures of `bebert sim --json`)."""

    config: str
    cycles: int
    latency_s: float
    inferences: int
    inferences_per_s: float
    energy_j: float
    energy_per_inference_j: float
    energy_table: str
    dram_bytes: int
    binary_ops: int
    utilization: dict[str, float]
    roofline_bound_by: str
    roofline_fraction: float
    error: bool
    report: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the full JSON


def simulate(program: Program | str | Path, energy: str | Path | None = "asic45") -> SimReport:
    """Simulate `program` (a Program or its folder) cycle-accurately and price it with the energy
    table `energy` ("asic45", "fpga" or a TOML file)."""
    from bebert.sim import simulate as sim_run
    from bebert.sim.energy import load_table
    from bebert.sim.report import sim_report

    prog = program if isinstance(program, Program) else Program.read(program)
    table = load_table(None if energy is None else str(energy))
    result = sim_run(prog, trace=True)
    d = sim_report(prog, result, table)
    return SimReport(config=prog.config.name, cycles=int(d["cycles"]), latency_s=float(d["latency_s"]),
                     inferences=int(d["inferences"]), inferences_per_s=float(d["inferences_per_s"]),
                     energy_j=float(d["energy_j"]), energy_per_inference_j=float(d["energy_per_inference_j"]),
                     energy_table=str(d["energy_table"]), dram_bytes=int(d["dram_bytes"]),
                     binary_ops=int(d["binary_ops"]), utilization=dict(d["utilization"]),
                     roofline_bound_by=str(d["roofline"]["bound_by"]),
                     roofline_fraction=float(d["roofline"]["achieved_fraction"]), error=bool(d["error"]),
                     report=d)


# -- area -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AreaReport:
    """FPGA resources of one configuration's accelerator (Yosys synth_xilinx cell counts)."""

    config: str
    luts: int  # luts_total: logic + distributed RAM + SRL LUTs
    ffs: int
    bram36: float  # BRAM36 equivalents
    dsp: int
    peak_binary_ops_per_s: float
    tool: str
    verilog_sha256: str  # of the Verilog that was synthesised
    cached: bool = field(default=False, compare=False)
    report: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def estimate_area(config: AccelConfig | str | Path | dict | None = None, *,
                  cache_dir: str | Path | None = None, timeout_s: float | None = None) -> AreaReport:
    """Generate the configuration's Verilog and synthesise it with Yosys (slow: ~25 s for the
    small config, minutes for the default). With `cache_dir`, the report is kept there under
    `area_key(config)` and reused: the same hardware parameters give the same netlist."""
    import tempfile

    from bebert.hw import generate_verilog
    from bebert.hw.resources import DEFAULT_TIMEOUT_S, resource_report

    cfg = load_config(config)
    cached = area_cache_file(cache_dir, area_key(cfg)) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            return _area(cfg, json.loads(cached.read_text()), cached=True)
        except (ValueError, KeyError):
            pass  # a damaged cache entry: synthesise again
    with tempfile.TemporaryDirectory(prefix="bebert_area_") as tmp:
        vfile = generate_verilog(cfg, Path(tmp))
        report = resource_report(cfg, vfile, timeout_s=timeout_s or DEFAULT_TIMEOUT_S)
        report["verilog_sha256"] = hashlib.sha256(vfile.read_bytes()).hexdigest()
    report["verilog"] = vfile.name
    if cached is not None:
        write_json(cached, report, indent=1)
    return _area(cfg, report, cached=False)


def area_cache_file(cache_dir: str | Path, key: str) -> Path:
    """Where `estimate_area(..., cache_dir=cache_dir)` keeps the report of the configuration whose
    `area_key` is `key` (a sweep's driver writes the reports its workers return there too)."""
    return Path(cache_dir) / f"{key}.json"


def toolkit_version() -> str:
    """'bebert <package version> / ISA <ISA_VERSION>': what a cached result was computed with."""
    from importlib.metadata import PackageNotFoundError, version

    from bebert.isa import ISA_VERSION

    try:
        v = version("bebert")
    except PackageNotFoundError:
        v = "unknown"
    return f"bebert {v} / ISA {ISA_VERSION}"


@functools.lru_cache(maxsize=None)
def source_fingerprint(*packages: str) -> str:
    """SHA-256 (16 hex digits) of the Python sources of the named bebert packages ("bebert",
    "compiler", "sim", "hw", "model"): a cached figure is only reused by the code that made it.
    Nothing is imported (the model package would pull in PyTorch)."""
    import importlib.util

    h = hashlib.sha256()
    for name in packages:
        spec = importlib.util.find_spec("bebert" if name == "bebert" else f"bebert.{name}")
        root = Path(next(iter(spec.submodule_search_locations))).resolve()
        files = sorted(root.glob("*.py")) if name == "bebert" else sorted(root.rglob("*.py"))
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def area_key(config: AccelConfig) -> str:
    """Cache key of a configuration's area: its fields but the name and the clock (neither
    changes the Verilog), the toolkit version and the sources of the RTL generator."""
    d = {k: v for k, v in config.to_dict().items() if k not in ("name", "clock_mhz")}
    blob = json.dumps({"config": d, "toolkit": toolkit_version(), "sources": source_fingerprint("bebert", "hw")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _area(cfg: AccelConfig, r: dict, *, cached: bool) -> AreaReport:
    t = r["total"]
    ops = 2 * cfg.binary_ops_per_cycle * cfg.clock_hz  # the clock is not part of the Verilog
    return AreaReport(config=cfg.name, luts=int(t["luts_total"]), ffs=int(t["ffs"]), bram36=float(t["bram36_equiv"]),
                      dsp=int(t["dsp"]), peak_binary_ops_per_s=ops, tool=str(r.get("tool", "")),
                      verilog_sha256=str(r.get("verilog_sha256", "")), cached=cached, report=r)


# -- accuracy -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccuracyReport:
    """One dev-set figure of a trained ensemble, from `bebert eval --json` results."""

    task: str
    split: str
    metric: str
    value: float  # the ensemble's
    members: tuple[float, ...]  # each member's, same metric
    integer: bool  # the integer inference path (what the hardware computes) or float
    examples: int
    source: str  # the JSON file the figure was read from


SAVED_EVAL = {False: "eval.json", True: "eval_integer.json"}


def evaluate_accuracy(run: str | Path, *, metric: str | None = None, split: str | None = None,
                      integer: bool = False, run_eval: bool = True, data_dir: str | None = None,
                      max_examples: int | None = None) -> AccuracyReport:
    """The ensemble's dev metric of a trained run.

    `run` is a JSON file holding what `bebert eval --json` prints, or a run folder: its saved
    `eval.json` (`eval_integer.json` with `integer`) is read if present; otherwise, with
    `run_eval`, `bebert.model.train.evaluate` runs (needs the GLUE data) and its result is saved
    there for next time. `metric` names one of the task's metrics (accuracy, f1, mcc, pearson,
    ...); by default the figure is the mean of the task's metrics, as GLUE averages them.
    `split` defaults to the first dev split.
    """
    p = Path(run)
    if p.is_file():
        return accuracy_from_eval(_read_json(p), str(p), metric=metric, split=split)
    if not p.is_dir():
        raise ApiError(f"accuracy source not found: {p}")
    saved = p / SAVED_EVAL[bool(integer)]
    if saved.is_file():
        return accuracy_from_eval(_read_json(saved), str(saved), metric=metric, split=split)
    if not run_eval:
        raise ApiError(f"{p}: no saved {saved.name}; run `bebert eval {p} --json{' --integer' if integer else ''} "
                       f"> {saved}` first")
    from bebert.model.train import evaluate

    res = evaluate(p, data_dir=data_dir, max_examples=max_examples, integer=integer)
    write_json(saved, res, indent=None, sort_keys=True)
    return accuracy_from_eval(res, str(saved), metric=metric, split=split)


def _check_scores(scores, where: str) -> None:
    """GLUE scores are finite numbers: accuracy and F1 in [0, 1], correlations (MCC, Pearson,
    Spearman) in [-1, 1]; a string, NaN or an accuracy of 7.5 is refused, not averaged."""
    if not isinstance(scores, dict):
        raise ApiError(f"{where}: scores must be an object of metric -> number, got {scores!r}")
    for k, v in scores.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ApiError(f"{where}: {k} = {v!r} is not a finite number")
        lo = 0.0 if k in ("accuracy", "f1") else -1.0
        if not lo <= v <= 1.0:
            raise ApiError(f"{where}: {k} = {v} outside [{lo:g}, 1] (scores are fractions, not percentages)")


def _read_json(p: Path) -> dict:
    try:
        d = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ApiError(f"{p}: expected the JSON object `bebert eval --json` prints")
    return d


def accuracy_from_eval(res: dict, source: str, *, metric: str | None = None,
                       split: str | None = None) -> AccuracyReport:
    """Pick one figure out of a `bebert eval --json` result."""
    splits = res.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise ApiError(f"{source}: no 'splits' (not the output of `bebert eval --json`)")
    name = split if split is not None else next(iter(splits))
    if name not in splits:
        raise ApiError(f"{source}: no split '{name}' (splits: {', '.join(splits)})")
    r = splits[name]
    if not isinstance(r, dict):
        raise ApiError(f"{source}: split '{name}' is not an object of scores")
    ens = r.get("ensemble")
    if not isinstance(ens, dict) or not ens:
        raise ApiError(f"{source}: split '{name}' has no ensemble scores")
    for who, scores in [("ensemble", ens)] + [(f"member {i}", m) for i, m in enumerate(r.get("members") or [])]:
        _check_scores(scores, f"{source}: split '{name}', {who}")
    if not isinstance(r.get("examples", 0), int) or isinstance(r.get("examples"), bool) or r.get("examples", 0) < 0:
        raise ApiError(f"{source}: split '{name}': examples must be a count, got {r.get('examples')!r}")

    def pick(scores: dict) -> float:
        if metric is None:  # the GLUE convention: the mean of the task's metrics
            return float(sum(scores.values()) / len(scores))
        return float(scores[metric])

    if metric is not None and metric not in ens:
        raise ApiError(f"{source}: no metric '{metric}' (metrics: {', '.join(ens)})")
    key = metric if metric is not None else next(iter(ens)) if len(ens) == 1 else "mean(" + ",".join(ens) + ")"
    members = tuple(pick(m) for m in r.get("members", []) if isinstance(m, dict) and m)
    return AccuracyReport(task=str(res.get("task", "")), split=name, metric=key, value=pick(ens),
                          members=members, integer=bool(res.get("integer", False)),
                          examples=int(r.get("examples", 0)), source=source)
