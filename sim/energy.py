"""Energy of a simulated program: a per-event energy table and the events a program causes.

An `EnergyTable` prices each event the machine can cause (docs/ENERGY.md gives every number
with its source):

- one binary MAC of the PE array (XNOR plus its share of the popcount tree), per bit;
- one AND-mode binary MAC (GEMM mode=1: AND plus its share of the popcount tree), per bit;
- one accumulator update (a PE's 32-bit shift-accumulate, once per GEMM cycle);
- one post-processed output element (32 x 32 multiply, 64-bit bias and rounding adds);
- one vector-lane element operation of a VEC kernel (`bebert.vector.vec_elementwise_ops`);
- SRAM read and write, per byte, as a function of the buffer's capacity (log-log
  interpolation between (capacity, pJ/byte) points);
- DRAM read and write, per byte;
- control: per executed instruction (fetch, decode, queue) and per cycle (clocking);
- leakage, per cycle.

`estimate(program, result, table)` counts the events of every executed instruction (the
same stream the simulator ran: up to and including the first HALT), prices them and sums
them by unit and by region. Per-cycle energy (control clocking, leakage) is split over the
regions in proportion to their busy cycles, so both breakdowns add up to the total.

Regions are the per-layer / per-member attribution, declared by the compiler in
`Program.meta["regions"]`: a list of {"name", "start", "end"[, "member", "layer", "kind"]}
with `start` the first instruction index and `end` one past the last (end exclusive), in
order, covering every instruction. A program without them is one region named after
`meta["kind"]` ("program" if absent).

Presets: `asic45` (45 nm, Horowitz ISSCC 2014) and `fpga` (estimates scaled from it by the
FPGA/ASIC gap of Kuon & Rose 2007); `load_table(name_or_path)` picks one or reads a TOML file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bebert.config import BUFFERS, AccelConfig, read_toml
from bebert.isa import BUF_NAMES, Buf, Op
from bebert.program import Program
from bebert.vector import vec_elementwise_ops

from .simulator import SimResult, stream_arrays

PJ = 1e-12

# Units of the breakdown, in the order data meets them. The sum over them is the total.
SRAM_UNITS = tuple(f"sram_{b}_{rw}" for b in BUFFERS for rw in ("read", "write"))
UNITS = ("pe_array", "pe_array_and", "accumulators", "post", "vector", *SRAM_UNITS, "dram_read",
         "dram_write", "control", "leakage")


class EnergyError(ValueError):
    """An energy table, a region list or a result that cannot be priced."""


@dataclass(frozen=True)
class EnergyTable:
    """Energy per event, in picojoules (see docs/ENERGY.md for every number's source)."""

    name: str
    xnor_popcount_pj_per_bit: float  # one binary MAC: XNOR gate + popcount-tree share
    and_popcount_pj_per_bit: float  # one AND-mode binary MAC: AND gate + popcount-tree share
    accumulator_pj_per_update: float  # one PE's 32-bit shift-accumulate (per GEMM cycle)
    post_pj_per_element: float  # one output: 32x32 multiply, bias add, rounding add, clamp
    vector_pj_per_lane_op: float  # one VEC element operation: 32-bit multiply-add + row-buffer access
    sram_bytes: tuple[int, ...]  # capacities of the interpolation points, increasing
    sram_read_pj_per_byte: tuple[float, ...]
    sram_write_pj_per_byte: tuple[float, ...]
    dram_read_pj_per_byte: float
    dram_write_pj_per_byte: float
    control_pj_per_instruction: float  # fetch (one 16-byte word), decode, queue push/pop
    control_pj_per_cycle: float  # clock tree and control registers, every cycle of the run
    leakage_pj_per_cycle: float
    description: str = ""

    def __post_init__(self) -> None:
        for f in ("sram_bytes", "sram_read_pj_per_byte", "sram_write_pj_per_byte"):
            v = getattr(self, f)
            if not isinstance(v, (list, tuple)):
                raise EnergyError(f"energy table '{self.name}': {f} must be a list, got {v!r}")
            object.__setattr__(self, f, tuple(v))
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise EnergyError(f"energy table '{self.name}': {msg}")

        need(isinstance(self.name, str) and bool(self.name), "name must be a non-empty string")
        need(isinstance(self.description, str), "description must be a string")
        for f in dataclasses.fields(self):
            if f.name.endswith(("_pj_per_bit", "_pj_per_update", "_pj_per_element", "_pj_per_lane_op",
                                "_pj_per_byte", "_pj_per_instruction", "_pj_per_cycle")):
                vals = getattr(self, f.name)
                for v in vals if isinstance(vals, tuple) else (vals,):
                    need(_is_number(v) and math.isfinite(v) and v >= 0,
                         f"{f.name} must be finite numbers >= 0, got {v!r}")
        caps = self.sram_bytes
        need(len(caps) >= 1 and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in caps),
             f"sram_bytes must be positive integers, got {list(caps)}")
        need(all(a < b for a, b in zip(caps, caps[1:])), f"sram_bytes must increase, got {list(caps)}")
        for f in ("sram_read_pj_per_byte", "sram_write_pj_per_byte"):
            need(len(getattr(self, f)) == len(caps), f"{f} needs one value per sram_bytes entry ({len(caps)})")
            need(len(caps) == 1 or all(v > 0 for v in getattr(self, f)),
                 f"{f} must be > 0 to interpolate on a log scale")

    # -- pricing --------------------------------------------------------------------
    def sram_pj_per_byte(self, capacity: int, write: bool = False) -> float:
        """pJ per byte of an SRAM of `capacity` bytes: piecewise linear in log(capacity) and
        log(energy) through the table's points, extended along the end segments."""
        e = self.sram_write_pj_per_byte if write else self.sram_read_pj_per_byte
        caps = self.sram_bytes
        if len(caps) == 1:
            return float(e[0])
        i = int(np.clip(np.searchsorted(caps, capacity) - 1, 0, len(caps) - 2))
        slope = math.log(e[i + 1] / e[i]) / math.log(caps[i + 1] / caps[i])
        return float(e[i] * (capacity / caps[i]) ** slope)

    # -- I/O ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        sram = {"bytes": list(d.pop("sram_bytes")), "read_pj_per_byte": list(d.pop("sram_read_pj_per_byte")),
                "write_pj_per_byte": list(d.pop("sram_write_pj_per_byte"))}
        return {**d, "sram": sram}

    def to_toml(self) -> str:
        """The table as TOML that `from_toml` reads back to an equal table."""
        d = self.to_dict()
        sram = d.pop("sram")
        lines = [f"{k} = {_toml_value(v)}" for k, v in d.items()]
        lines += ["", "[sram]"] + [f"{k} = {_toml_value(v)}" for k, v in sram.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "energy table") -> "EnergyTable":
        """Build from the TOML layout: flat keys plus an `[sram]` table; `base = "asic45"`
        (or "fpga") takes every key not given from that preset."""
        if not isinstance(d, dict):
            raise EnergyError(f"{source}: expected a table of energy figures")
        d = dict(d)
        base = d.pop("base", None)
        flat = dict(d)
        sram = flat.pop("sram", {})
        if not isinstance(sram, dict):
            raise EnergyError(f"{source}: 'sram' must be a table with bytes, read_pj_per_byte, write_pj_per_byte")
        known_sram = {"bytes", "read_pj_per_byte", "write_pj_per_byte"}
        unknown = sorted(set(sram) - known_sram)
        if unknown:
            raise EnergyError(f"{source}: unknown key(s) sram.{', sram.'.join(unknown)}; "
                              f"known: {', '.join(sorted(known_sram))}")
        flat.update({f"sram_{k}": v for k, v in sram.items()})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            top = sorted(k for k in known if not k.startswith("sram_"))
            raise EnergyError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                              f"known: base, {', '.join(top)}, [sram] {', '.join(sorted(known_sram))}")
        if base is not None:
            if base not in PRESETS:
                raise EnergyError(f"{source}: base = {base!r} is not a preset ({', '.join(PRESETS)})")
            inherited = dataclasses.asdict(PRESETS[base])
            del inherited["name"]
            flat = {**inherited, "description": f"based on {base}", **flat}
        flat.setdefault("name", Path(source).stem if source.endswith(".toml") else "custom")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in flat)
        if missing:
            raise EnergyError(f"{source}: missing key(s) {', '.join(missing)} (or set base = \"asic45\")")
        try:
            return cls(**flat)
        except EnergyError as e:
            raise EnergyError(f"{source}: {e}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "EnergyTable":
        p = Path(path)
        return cls.from_dict(read_toml(p, EnergyError, "energy table"), source=str(p))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


# -- presets (docs/ENERGY.md derives each number) -----------------------------------------
# Horowitz, ISSCC 2014, 45 nm: 8-bit add 0.03 pJ, 32-bit add 0.1 pJ, 32-bit mult 3.1 pJ,
# 64-bit SRAM read 10 / 20 / 100 pJ from 8 KB / 32 KB / 1 MB, DRAM 1.3-2.6 nJ per 64 bits.
ASIC45 = EnergyTable(
    name="asic45",
    description="45 nm ASIC from Horowitz, 'Computing's energy problem', ISSCC 2014 (docs/ENERGY.md)",
    xnor_popcount_pj_per_bit=0.005,  # 0.03 pJ / 8 bits = 0.00375 per full adder, x 4/3 for the XNOR
    and_popcount_pj_per_bit=0.004375,  # 0.00375 per full adder, x 7/6 for the AND (half an XNOR)
    accumulator_pj_per_update=0.1,  # one 32-bit add
    post_pj_per_element=3.5,  # 32-bit mult 3.1 + two 64-bit adds 2 x 0.2
    vector_pj_per_lane_op=6.7,  # 32-bit mult 3.1 + add 0.1, + 4 B from a 4 KB row buffer (4 x 0.88)
    sram_bytes=(8192, 32768, 1048576),
    sram_read_pj_per_byte=(1.25, 2.5, 12.5),  # 10, 20, 100 pJ per 8 bytes
    sram_write_pj_per_byte=(1.25, 2.5, 12.5),  # assumption: write = read
    dram_read_pj_per_byte=243.75,  # midpoint 1.95 nJ of 1.3-2.6 nJ, per 8 bytes
    dram_write_pj_per_byte=243.75,
    control_pj_per_instruction=25.0,  # 16-byte fetch from an 8 KB SRAM (20) + decode/queue (5, assumed)
    control_pj_per_cycle=5.0,  # assumption
    leakage_pj_per_cycle=100.0,  # assumption: ~10 % of peak dynamic power; 20 mW at 200 MHz
)

# FPGA: clearly labelled estimates. Kuon & Rose (IEEE TCAD 26(2), 2007) measure the dynamic
# power of LUT/flip-flop logic at ~14x a standard-cell ASIC of the same node, less with hard
# blocks; we take 14x for soft logic, 7x (assumed) for block RAM and DSP, DRAM unchanged.
FPGA = EnergyTable(
    name="fpga",
    description="40/45 nm-class FPGA: asic45 x 14 (soft logic, Kuon & Rose 2007) and x 7 "
                "(BRAM/DSP, assumed); DRAM as asic45; leakage assumed (docs/ENERGY.md)",
    xnor_popcount_pj_per_bit=0.07,  # 0.005 x 14 (LUT logic)
    and_popcount_pj_per_bit=0.06125,  # 0.004375 x 14 (LUT logic)
    accumulator_pj_per_update=1.4,  # 0.1 x 14 (carry chain)
    post_pj_per_element=24.5,  # 3.5 x 7 (DSP block)
    vector_pj_per_lane_op=46.9,  # 6.7 x 7 (DSP multiply-add, block-RAM row buffer)
    sram_bytes=(8192, 32768, 1048576),
    sram_read_pj_per_byte=(8.75, 17.5, 87.5),  # asic45 x 7 (block RAM)
    sram_write_pj_per_byte=(8.75, 17.5, 87.5),
    dram_read_pj_per_byte=243.75,  # off-chip: as asic45
    dram_write_pj_per_byte=243.75,
    control_pj_per_instruction=210.0,  # BRAM fetch 20 x 7 + soft decode/queue 5 x 14
    control_pj_per_cycle=70.0,  # 5 x 14
    leakage_pj_per_cycle=1000.0,  # assumption: 200 mW static at 200 MHz
)

PRESETS = {"asic45": ASIC45, "fpga": FPGA}


def load_table(name_or_path: str | Path | None = None) -> EnergyTable:
    """None -> asic45; 'asic45' / 'fpga' -> that preset; anything else -> a TOML file."""
    if name_or_path is None:
        return ASIC45
    if isinstance(name_or_path, str) and name_or_path in PRESETS:
        return PRESETS[name_or_path]
    if not Path(name_or_path).is_file():
        raise EnergyError(f"energy table not found: {name_or_path} (neither a file nor a preset: "
                          f"{', '.join(PRESETS)})")
    return EnergyTable.from_toml(name_or_path)


# -- regions --------------------------------------------------------------------------
REGION_KEYS = ("name", "start", "end", "member", "layer", "kind")


@dataclass(frozen=True)
class Region:
    """Instructions [start, end) of the stream (end exclusive), attributed to one layer
    (`layer`, an index) of one ensemble member (`member`), doing one kind of work (`kind`,
    e.g. "qkv", "attention", "ffn_up", "layernorm"); the last three are optional."""

    name: str
    start: int
    end: int
    member: int | None = None
    layer: int | None = None
    kind: str | None = None


def _is_index(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def program_regions(program: Program) -> tuple[Region, ...]:
    """The regions of `program.meta["regions"]`, checked; one whole-program region if absent."""
    n = len(program.instrs)
    raw = program.meta.get("regions")
    if raw is None:
        return (Region(str(program.meta.get("kind", "program")), 0, n),)
    if not isinstance(raw, list) or not raw:
        raise EnergyError("meta.regions must be a non-empty list of {name, start, end[, member, layer, kind]}")
    out, names, at = [], set(), 0
    for i, r in enumerate(raw):
        if not isinstance(r, dict) or set(r) - set(REGION_KEYS) or not {"name", "start", "end"} <= set(r):
            raise EnergyError(f"meta.regions[{i}] must be a table of name, start, end[, member, layer, kind], "
                              f"got {r!r}")
        name, start, end = r["name"], r["start"], r["end"]
        if not isinstance(name, str) or not name or name in names:
            raise EnergyError(f"meta.regions[{i}]: name {name!r} must be a new non-empty string")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) or start != at \
                or end <= start:
            raise EnergyError(f"meta.regions[{i}] '{name}': [{start}, {end}) must start at {at} "
                              "(regions are in order, contiguous, non-empty; end is exclusive)")
        for k in ("member", "layer"):
            if r.get(k) is not None and not _is_index(r[k]):
                raise EnergyError(f"meta.regions[{i}] '{name}': {k} must be an integer >= 0, got {r[k]!r}")
        kind = r.get("kind")
        if kind is not None and (not isinstance(kind, str) or not kind):
            raise EnergyError(f"meta.regions[{i}] '{name}': kind must be a non-empty string, got {kind!r}")
        names.add(name)
        out.append(Region(name, start, end, r.get("member"), r.get("layer"), kind))
        at = end
    if at != n:
        raise EnergyError(f"meta.regions end at instruction {at}; the program has {n} (they must cover it)")
    return tuple(out)


# -- events ---------------------------------------------------------------------------
def executed_count(program: Program) -> int:
    """Instructions that execute (or, HALT, are decoded): up to and including the first HALT."""
    for i, ins in enumerate(program.instrs):
        if ins.op == Op.HALT:
            return i + 1
    return len(program.instrs)


def unit_prices(config: AccelConfig, table: EnergyTable) -> dict[str, float]:
    """pJ per event counted by `event_counts`, for the buffers of `config`."""
    prices = {
        "pe_array": table.xnor_popcount_pj_per_bit,
        "pe_array_and": table.and_popcount_pj_per_bit,
        "accumulators": table.accumulator_pj_per_update,
        "post": table.post_pj_per_element,
        "vector": table.vector_pj_per_lane_op,
        "dram_read": table.dram_read_pj_per_byte,
        "dram_write": table.dram_write_pj_per_byte,
        "control": table.control_pj_per_instruction,
    }
    for b in BUFFERS:
        cap = getattr(config, f"{b}_bytes")
        prices[f"sram_{b}_read"] = table.sram_pj_per_byte(cap, write=False)
        prices[f"sram_{b}_write"] = table.sram_pj_per_byte(cap, write=True)
    return prices


_LOAD, _GEMM, _POST, _VEC = (int(o) for o in (Op.LOAD, Op.GEMM, Op.POST, Op.VEC))


def event_counts(program: Program) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per executed instruction: event counts by unit (bits, updates, elements, lane
    operations, bytes, instructions) and D (busy cycles). Leakage and clocking are per
    cycle, not here. The durations and DRAM bytes are the simulator's own (`stream_arrays`)."""
    c = program.config
    n = executed_count(program)
    instrs = program.instrs[:n]
    R, C, W = c.pe_rows, c.pe_cols, c.xnor_width
    E = {b: c.entry_bytes(b) for b in BUFFERS}
    _, dur, _, _, _, rd, wr, _ = stream_arrays(instrs, c)
    dur, rd, wr = dur[:n], rd[:n], wr[:n]  # a program without HALT gets an illegal word appended
    # One pass over the words: the opcode, a count (LOAD n, GEMM bits*wbits*k, VEC lane ops),
    # the LOAD buffer and the GEMM mode; numpy does the rest.
    opc = np.zeros(n, np.int64)
    cnt = np.zeros(n, np.int64)
    aux = np.zeros(n, np.int64)
    for i, ins in enumerate(instrs):
        op, a = ins.op._value_, ins.args
        opc[i] = op
        if op == _GEMM:
            cnt[i], aux[i] = a["bits"] * a["wbits"] * a["k"], a["mode"]
        elif op == _LOAD:
            cnt[i], aux[i] = a["n"], a["buf"]
        elif op == _VEC:
            cnt[i] = vec_elementwise_ops(a["fn"], a["rows"], a["cols"], a["aux"])
    ev = {u: np.zeros(n, np.int64) for u in UNITS if u != "leakage"}
    ev["control"][:] = 1
    gemm = opc == _GEMM
    xnor, and_ = gemm & (aux == 0), gemm & (aux == 1)
    bk = np.where(gemm, cnt, 0)  # GEMM cycles; each reads one ABUF and one WBUF entry
    ev["pe_array"] = np.where(xnor, bk * (R * C * W), 0)
    ev["pe_array_and"] = np.where(and_, bk * (R * C * W), 0)
    ev["accumulators"] = bk * (R * C)
    ev["sram_abuf_read"] = bk * E["abuf"]
    ev["sram_wbuf_read"] = bk * E["wbuf"]
    post = opc == _POST  # one PBUF entry and the R x C snapshot in, R x C requantized outputs
    ev["post"] = np.where(post, R * C, 0)
    ev["sram_pbuf_read"] = np.where(post, E["pbuf"], 0)
    ev["vector"] = np.where(opc == _VEC, cnt, 0)
    loads = opc == _LOAD
    for b, name in BUF_NAMES.items():
        ev[f"sram_{name}_write"] = np.where(loads & (aux == int(b)), cnt * E[name], 0)
    ev["dram_read"] = rd.copy()  # LOAD entries and the vector unit's reads (`bebert.vector.vec_bytes`)
    ev["dram_write"] = wr.copy()  # the output path's and the vector unit's writes
    return ev, dur.copy()


# -- the estimate ---------------------------------------------------------------------
@dataclass(frozen=True)
class RegionEnergy:
    region: Region
    energy_j: float
    by_unit: dict[str, float]  # joules
    busy_cycles: int  # sum of D over its executed instructions


@dataclass(frozen=True)
class EnergyReport:
    """Joules of one run: the total, by unit, by region. `total_j` is the sum of `by_unit`."""

    table: str
    total_j: float
    by_unit: dict[str, float]
    regions: tuple[RegionEnergy, ...]
    inferences: int  # meta["inferences"] (default 1): inputs the program processes

    @property
    def per_inference_j(self) -> float:
        return self.total_j / self.inferences

    @property
    def by_region(self) -> dict[str, float]:
        return {r.region.name: r.energy_j for r in self.regions}

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "energy_j": self.total_j, "energy_per_inference_j": self.per_inference_j,
                "energy_breakdown": dict(self.by_unit), "energy_by_region": self.by_region}


def estimate(program: Program, result: SimResult, table: EnergyTable) -> EnergyReport:
    """Price the events of `program` as run in `result` (a `SimResult` of it) with `table`."""
    ev, dur = event_counts(program)
    bops = int(ev["pe_array"].sum() + ev["pe_array_and"].sum())
    rd, wr = int(ev["dram_read"].sum()), int(ev["dram_write"].sum())
    if (bops, rd, wr) != (result.binary_ops, result.dram_read_bytes, result.dram_write_bytes):
        raise EnergyError(f"the result does not belong to this program: binary ops / DRAM bytes "
                          f"{bops}/{rd}/{wr} counted, {result.binary_ops}/{result.dram_read_bytes}/"
                          f"{result.dram_write_bytes} simulated")
    inferences = program.meta.get("inferences", 1)
    if not isinstance(inferences, int) or isinstance(inferences, bool) or inferences < 1:
        raise EnergyError(f"meta.inferences must be an integer >= 1, got {inferences!r}")
    prices = unit_prices(program.config, table)
    regions = program_regions(program)
    n = dur.size
    # Region of each executed instruction.
    region_of = np.searchsorted(np.asarray([r.end for r in regions]), np.arange(n), side="right")
    nreg = len(regions)
    busy = np.bincount(region_of, weights=dur, minlength=nreg)
    total_busy = busy.sum()
    share = busy / total_busy if total_busy > 0 else np.eye(1, nreg, 0).reshape(-1)
    per_cycle_j = {"control": table.control_pj_per_cycle * result.cycles * PJ,
                   "leakage": table.leakage_pj_per_cycle * result.cycles * PJ}
    reg_units = {r: {} for r in range(nreg)}
    by_unit = {}
    for u in UNITS:
        if u in ev:
            per_region = np.bincount(region_of, weights=ev[u].astype(np.float64), minlength=nreg) * prices[u] * PJ
        else:
            per_region = np.zeros(nreg)
        per_region = per_region + share * per_cycle_j.get(u, 0.0)
        for r in range(nreg):
            reg_units[r][u] = float(per_region[r])
        by_unit[u] = float(per_region.sum())
    out = tuple(RegionEnergy(reg, float(sum(reg_units[r].values())), reg_units[r], int(busy[r]))
                for r, reg in enumerate(regions))
    return EnergyReport(table=table.name, total_j=float(sum(by_unit.values())), by_unit=by_unit,
                        regions=out, inferences=inferences)
