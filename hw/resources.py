"""FPGA resource figures of the generated accelerator, from Yosys.

`resource_report(config, verilog)` synthesises `bebert_accel.v` for 7-series (`family="xc7"`,
the default) or for Lattice ECP5 (`family="ecp5"`, what `bebert.hw.pnr` places and routes),
with the Yosys build `bebert.hw.yosys` picks (Debian's 0.23 where installed, else PyPI's
yowasp 0.70), one job per module:

    read_verilog -lib stubs.v          (the module's submodules, ports only: blackboxes)
    read_verilog module.v              (the module's own text, split from bebert_accel.v)
    synth_xilinx -top <module> -noiopad -noclkbuf     (or: synth_ecp5 -top <module>)
    tee -o stat.txt stat
    (ECP5 only) delete =A:blackbox =A:whitebox; write_json netlist.json

and counts the mapped primitives of every module (the xc7 figures are labelled `stage`:
pre-placement). Nothing is estimated: every
figure is a cell count from a netlist. Without `-flatten` no synth_xilinx pass crosses a
module boundary, so this is the netlist of the one hierarchical run
`read_verilog bebert_accel.v; synth_xilinx -top bebert_accel -noiopad -noclkbuf`, module
for module (tests/test_resources.py checks the two agree). The hierarchy is kept so that
each Amaranth elaboratable stays one module (`bebert_accel.compute.popcount`, ...) and the
figures can be given per block; the price is that no optimisation crosses a module
boundary, so the totals are a little above what a flattened run would give.

Why per module: since the vector unit (hw/vector_unit.py, hw/vec) one run of the whole
design took ~330 s on the small config (2 loaded cores) and longer on default/wide, nearly
all of it in yosys passes that are single-threaded. Per module the jobs run in parallel
(`jobs`, default every core, longest module first), and each module's `stat` is cached
under $BEBERT_CACHE/rtl/yosys (default ~/.cache/bebert/rtl/yosys) by a hash of the
yosys version, the script, the module's text and its submodules' ports: a change to one
block re-synthesises that block only. The key leaves out the module's own name, so identical
siblings -- the popcount array's rows (`PopcountRow`), the vector unit's lanes and their
engines -- share one synthesis (`module_key`, `renamed`): a cold v3 default report runs 227
modules as far fewer Yosys jobs, 116 s of synthesis (4 min 10 s for `bebert rtl --report`
with elaboration, 2 loaded cores; the popcount array alone took 542 s as one module).

What Yosys reads, which Yosys, which options (bench/bench_yosys.py, bench/results/yosys.json):
- The RTLIL twin (`bebert_accel.il`, `bebert.hw.verilog`) when it matches the Verilog. From
  the Verilog, yosys 0.23 spent over 40 CPU seconds in its front end on `compute.vector`
  (26,000 lines) without finishing it, and 414-587 s wall for the module in earlier reports;
  from RTLIL the whole synth_xilinx of `compute.vector` took 113 CPU seconds (1,148 s wall on
  a host with a load average of 8). The cells are the same within 1 % (the vector_unit
  block: 47,254 LUTs from RTLIL, 47,011 from the Verilog). Small modules cost the same
  either way.
- Debian's yosys 0.23 (`system`), for both flows. yowasp 0.70's abc9 maps a little smaller but
  exits without a message on `compute.accumulator` (synth_xilinx) and `compute.popcount`
  (synth_ecp5), and is the slower on the vector unit.
- The default synth_xilinx / synth_ecp5 mapping (abc). `-abc9` costs 0.23 about 2.6x the CPU
  for a few per cent fewer LUTs (compute.post: 26.9 against 10.2 CPU s, 2,294 against 2,377
  LUTs); `-flatten` would lose the per-block figures.
Progress (which modules are running) goes to stderr with tqdm.

Earlier, from the Verilog with yosys 0.23 on a 2-core host shared with a training run and
other yosys jobs (cold cache, 2 jobs): small 587 s wall, of which `compute.vector` 586 s;
wide 756 s wall (`compute.vector` 756 s and `compute.popcount` 542 s side by side). A cached
`bebert rtl --report` (small) takes seconds; an edit to one block re-synthesises that block
only. bench/results/resources.json holds every module's seconds.

What is counted (per module, per block and in total):

- `luts`: LUT1..LUT6 and INV cells (logic; an INV is placed as a LUT1); `lutram_luts`:
  LUTs used as distributed RAM (RAM32M/RAM64M = 4 LUTs, ...); `srl_luts`: LUTs used as
  shift registers;
  `luts_total` = the three together (Vivado's "Slice LUTs"). Yosys counts LUT cells before
  placement: Vivado may pack two small LUTs into one LUT6_2, so this is an upper bound.
- `ffs`: flip-flops and latches (FD*, LD*).
- `bram36`, `bram18`, `bram36_equiv` (= bram36 + bram18 / 2): block RAMs.
- `dsp`: DSP48E1 slices; `carry4`, `muxf`: carry chains and wide-mux cells.
- `cells`: every primitive type with its count.

Peak binary throughput counts one binary multiply-accumulate as two operations (an XNOR /
AND and an add), the convention of FINN and BISMO: `2 * pe_rows * pe_cols * xnor_width`
per cycle at `clock_mhz`.

Before the vector unit, whole-design run time with yosys 0.23 on a 2-core host was small
~25 s, wide ~5 min, default ~7 min and 3.6 GB (measured alone); see
bench/results/resources.json for the current per-module times. What dominates the LUTs is the
popcount array (82k of the default's 133k LUTs; the accumulators, with their 0..14 shifters, 36k): its 256-entry popcount table is read by
2,176 combinational ports, each mapped to a LUT/MUXF7/MUXF8 tree. The buffers are not
built from flip-flops: ABUF and WBUF infer RAMB18/RAMB36, OBUF too (distributed RAM in the
small config), PBUF and the instruction queues distributed RAM (only their registered read
ports are flip-flops).

`yosys 0.23`'s `stat -json` prints the hierarchy into the middle of its JSON, so the plain
`stat` text is parsed instead (both its layout and the newer one, counts first).
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
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from bebert.config import AccelConfig

from .yosys import Yosys, YosysMissing
from .yosys import find as find_yosys

TOP = "bebert_accel"
DEFAULT_TIMEOUT_S = 1800.0
FLOW_NOTES = ("every module synthesised alone by `{command}` with its submodules blackboxed (the "
              "netlist of one hierarchical run: no pass crosses a module boundary without -flatten), "
              "modules in parallel, results cached by module text")


@dataclass(frozen=True)
class Flow:
    """One synthesis flow: the Yosys command run on each module (`{top}` is the module's name),
    the part family its cells belong to, and whether the mapped netlist is kept for place and
    route (ECP5: nextpnr reads it)."""

    name: str
    family: str
    command: str
    netlist: bool = False

    def script(self, module: str) -> str:
        return self.command.format(top=_esc(module))


FLOWS = {
    "xc7": Flow("synth_xilinx", "xc7", "synth_xilinx -top {top} -noiopad -noclkbuf"),
    "ecp5": Flow("synth_ecp5", "ecp5", "synth_ecp5 -top {top}", netlist=True),
}
STAGE = ("pre-placement: yosys cell counts after technology mapping, before packing, placement and routing; "
         "no timing (bebert.hw.pnr places and routes on an ECP5 and measures Fmax)")
FLOW = FLOWS["xc7"].name
SYNTH_CMD = FLOWS["xc7"].command.format(top=TOP)

# LUT-equivalents of the 7-series distributed-RAM and shift-register primitives.
LUTRAM_LUTS = {"RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
               "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
               "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8}
SRL_LUTS = {"SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
LUT_CELLS = {"LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2", "INV"}  # INV is a LUT1
SUMMARY_KEYS = ("luts_total", "luts", "lutram_luts", "srl_luts", "ffs", "bram36", "bram18",
                "bram36_equiv", "dsp", "carry4", "muxf")
ECP5_SUMMARY_KEYS = ("luts_total", "lut4", "ccu2c", "dpram16x4", "ffs", "dp16kd", "mult18", "alu54", "widemux")
# TRELLIS_COMB bels a TRELLIS_DPR16X4 takes as nextpnr packs it (4 LUTs of RAM + the 2 of its RAMW slice):
# the small config's PBUF, 258 LUT4 + 128 DPR16X4, placed on 1,027 TRELLIS_COMB.
ECP5_DPRAM_SITES = 6

# Module path below the top (Amaranth names a submodule `parent.child`) -> reported block.
BLOCKS = {
    "": "control",  # the wiring of the top level
    "control": "control",  # start / busy / done / cycles / error
    "control.fetch": "fetch", "control.fetch.decoder": "fetch",
    "control.tokens": "tokens",
    **{f"control.queue{s}{sub}": "queues" for s in range(4) for sub in ("", ".fifo")},
    "load": "load_stage", "load.issuer": "load_stage",
    "compute": "compute_control", "compute.issuer": "compute_control",
    "compute.popcount": "popcount_array",
    "compute.accumulator": "bitserial_accumulator",
    "output": "output_path",
    "vector": "vector_stage", "vector.issuer": "vector_stage",
    "abuf": "abuf", "wbuf": "wbuf", "pbuf": "pbuf",
}
ARRAY_BLOCKS = ("popcount_array", "bitserial_accumulator")


class SynthesisError(ValueError):
    """Yosys is missing, failed, or ran out of time."""


def parse_stat(text: str) -> dict[str, dict[str, int]]:
    """Cell counts per module from Yosys `stat` text: {module: {cell type: count}}."""
    modules: dict[str, dict[str, int]] = {}
    current = None
    in_cells = False
    for line in text.splitlines():
        head = re.match(r"^=== (.+) ===$", line.strip())
        if head:
            name = head.group(1).lstrip("\\")
            if name == "design hierarchy":
                break
            current, in_cells = name, False
            modules[current] = {}
            continue
        if current is None:
            continue
        # yosys <= 0.4x: "Number of cells: N" then "TYPE N"; newer: "N cells" then "N TYPE".
        if re.match(r"^\s+Number of cells:", line) or re.match(r"^\s+\d+\s+cells$", line):
            in_cells = True
            continue
        if re.match(r"^\s+\d+\s+submodules$", line):
            in_cells = True  # newer yosys: submodule instances, cells of their type in the older format
            continue
        old, new = re.match(r"^\s+(\S+)\s+(\d+)$", line), re.match(r"^\s+(\d+)\s+(\S+)$", line)
        if in_cells and (old or new):
            kind, n = (old.group(1), old.group(2)) if old else (new.group(2), new.group(1))
            modules[current][kind.lstrip("\\")] = int(n)
        elif in_cells and line.strip():
            in_cells = False
    if not modules:
        raise SynthesisError("yosys `stat` output has no module sections")
    return modules


def _instances(modules: dict[str, dict[str, int]], top: str) -> dict[str, int]:
    """How many times each module occurs in the design below `top`."""
    count: dict[str, int] = {}

    def walk(mod: str, times: int) -> None:
        count[mod] = count.get(mod, 0) + times
        for child, n in modules.get(mod, {}).items():
            if child in modules:
                walk(child, n * times)

    walk(top, 1)
    return count


def summarize(cells: dict[str, int], family: str = "xc7") -> dict:
    """The resource classes of one bag of primitives (submodule instances excluded)."""
    if family == "ecp5":
        return summarize_ecp5(cells)

    def total(pred):
        return sum(n for t, n in cells.items() if pred(t))

    luts = total(lambda t: t in LUT_CELLS)
    lutram = sum(n * LUTRAM_LUTS[t] for t, n in cells.items() if t in LUTRAM_LUTS)
    srl = sum(n * SRL_LUTS[t] for t, n in cells.items() if t in SRL_LUTS)
    bram36 = total(lambda t: t.startswith("RAMB36"))
    bram18 = total(lambda t: t.startswith("RAMB18"))
    return {
        "luts_total": luts + lutram + srl, "luts": luts, "lutram_luts": lutram, "srl_luts": srl,
        "ffs": total(lambda t: t.startswith(("FD", "LD"))),
        "bram36": bram36, "bram18": bram18, "bram36_equiv": bram36 + bram18 / 2,
        "dsp": total(lambda t: t.startswith("DSP48")),
        "carry4": total(lambda t: t.startswith("CARRY")),
        "muxf": total(lambda t: t.startswith("MUXF")),
        "cells": dict(sorted(cells.items())),
    }


def summarize_ecp5(cells: dict[str, int]) -> dict:
    """The resource classes of one bag of ECP5 primitives (synth_ecp5's cells).

    `luts_total` counts LUT4 sites (nextpnr's TRELLIS_COMB bels, two per slice): a LUT4 takes
    one, a CCU2C carry cell two (a whole slice), a TRELLIS_DPR16X4 distributed RAM
    `ECP5_DPRAM_SITES`; PFUMX / L6MUX21 are the slice's wide-function muxes and take none.
    Before packing, so an upper bound of what nextpnr places (it reports the placed count)."""
    n = lambda t: cells.get(t, 0)  # noqa: E731
    luts, ccu2c, dpram = n("LUT4"), n("CCU2C"), n("TRELLIS_DPR16X4")
    return {
        "luts_total": luts + 2 * ccu2c + ECP5_DPRAM_SITES * dpram, "lut4": luts, "ccu2c": ccu2c,
        "dpram16x4": dpram, "ffs": n("TRELLIS_FF"), "dp16kd": n("DP16KD"), "mult18": n("MULT18X18D"),
        "alu54": n("ALU54B"), "widemux": n("PFUMX") + n("L6MUX21"),
        "cells": dict(sorted(cells.items())),
    }


def _add(acc: dict[str, int], cells: dict[str, int], times: int = 1) -> None:
    for t, n in cells.items():
        acc[t] = acc.get(t, 0) + n * times


def block_of(module: str, top: str = TOP) -> str:
    """The reported block of a module (`bebert_accel.compute.post` -> `post`)."""
    path = "" if module == top else module.removeprefix(top + ".")
    if path == "vector.unit" or path.startswith("vector.unit."):
        return "vector_unit"  # the vector unit: its engines, row memories and streamers
    parts = path.split(".")
    for n in range(len(parts), 0, -1):  # the longest named prefix: compute.popcount.row3 -> popcount_array
        if ".".join(parts[:n]) in BLOCKS:
            return BLOCKS[".".join(parts[:n])]
    return parts[0]  # a new submodule: its own block


LUT_CONVENTIONS = {
    "xc7": "luts_total = LUT1..6 and INV + LUTs as distributed RAM + LUTs as SRL (yosys cell counts before "
           "placement/LUT6_2 packing)",
    "ecp5": f"luts_total = LUT4 sites: LUT4 + 2 per CCU2C + {ECP5_DPRAM_SITES} per TRELLIS_DPR16X4 (yosys cell "
            "counts before packing; the placed figure is nextpnr's TRELLIS_COMB)",
}


def report_from_stat(config: AccelConfig, stat_text: str, *, top: str = TOP, family: str = "xc7") -> dict:
    """Per-module, per-block and total figures from `stat` text, with the peak throughput."""
    modules = parse_stat(stat_text)
    if top not in modules:
        raise SynthesisError(f"yosys `stat` output has no module '{top}'")
    count = _instances(modules, top)
    prims = {m: {t: n for t, n in cells.items() if t not in modules} for m, cells in modules.items()}
    blocks: dict[str, dict[str, int]] = {}
    block_modules: dict[str, list[str]] = {}
    design: dict[str, int] = {}
    for mod, n in count.items():
        b = block_of(mod, top)
        _add(blocks.setdefault(b, {}), prims[mod], n)
        block_modules.setdefault(b, []).append(mod)
        _add(design, prims[mod], n)
    total = summarize(design, family)
    block_figs = {}
    for b, cells in blocks.items():
        block_figs[b] = summarize(cells, family)
        block_figs[b]["modules"] = sorted(block_modules[b])
    array_luts = sum(block_figs[b]["luts_total"] for b in ARRAY_BLOCKS if b in block_figs)

    macs_per_cycle = config.binary_ops_per_cycle  # pe_rows * pe_cols * xnor_width
    ops = 2 * macs_per_cycle * config.clock_hz
    return {
        "config": config.name,
        "clock_mhz": config.clock_mhz,
        "array": {"pe_rows": config.pe_rows, "pe_cols": config.pe_cols, "xnor_width": config.xnor_width},
        "peak_binary_macs_per_cycle": macs_per_cycle,
        "peak_binary_ops_per_s": ops,
        "peak_binary_ops_per_s_per_lut": ops / total["luts_total"] if total["luts_total"] else None,
        "peak_binary_ops_per_s_per_array_lut": ops / array_luts if array_luts else None,
        "ops_convention": "2 binary operations (XNOR/AND + add) per binary MAC, as FINN and BISMO count",
        "lut_convention": LUT_CONVENTIONS[family],
        "total": total,
        "blocks": dict(sorted(block_figs.items())),
        "modules": {m: summarize(prims[m], family) | {"instances": count[m]} for m in sorted(count)},
    }


def _verilog_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / f"{TOP}.v"
    if not p.is_file():
        raise SynthesisError(f"no Verilog at {p} (run `bebert rtl` / bebert.hw.generate_verilog first)")
    return p


def split_modules(verilog: str) -> dict[str, str]:
    """The text of every module of a Verilog file (attribute lines above it included), by name."""
    mods: dict[str, str] = {}
    pending: list[str] = []
    name, body = None, []
    for line in verilog.splitlines(keepends=True):
        if name is None:
            m = re.match(r"^module\s+\\?(\S+)\s*[(;]", line)
            if m:
                name, body = m.group(1), pending + [line]
                pending = []
            elif line.lstrip().startswith("(*"):
                pending.append(line)
            elif line.strip():
                pending = []
            continue
        body.append(line)
        if line.strip() == "endmodule":
            mods[name] = "".join(body)
            name = None
    if not mods:
        raise SynthesisError("no `module` found in the Verilog")
    return mods


def _children(text: str, names) -> list[str]:
    """The modules of `names` that `text` (one module) instantiates."""
    return [n for n in names if re.search(r"^\s*\\?" + re.escape(n) + r"\s", text, re.M)]


def _stub(name: str, text: str) -> str:
    """A blackbox of a module: its header and port declarations only."""
    header = text[text.index("module"):].split(";", 1)[0] + ";\n"
    ports = [ln for ln in text.splitlines() if re.match(r"^\s*(input|output|inout)\b.*;\s*$", ln)]
    return "(* blackbox *)\n" + header + "\n".join(ports) + "\nendmodule\n"


def split_rtlil(text: str) -> dict[str, str]:
    """The text of every module of an RTLIL file (its attribute lines included), by name."""
    mods: dict[str, str] = {}
    pending: list[str] = []
    name, body = None, []
    for line in text.splitlines(keepends=True):
        if name is None:
            if line.startswith("attribute "):
                pending.append(line)
            elif line.startswith("module "):
                name, body, pending = line.split()[1].lstrip("\\"), pending + [line], []
            continue
        body.append(line)
        if line.rstrip() == "end":
            mods[name], name = "".join(body), None
    if not mods:
        raise SynthesisError("no `module` found in the RTLIL")
    return mods


@dataclass(frozen=True)
class Sources:
    """The design's modules as Yosys reads them: Verilog (split from bebert_accel.v, submodules
    as port-only blackboxes) or RTLIL (its twin bebert_accel.il, submodules read with -lib)."""

    kind: str  # "verilog" | "rtlil"
    texts: dict[str, str]

    def children(self, name: str) -> list[str]:
        others = [n for n in self.texts if n != name]
        if self.kind == "verilog":
            return _children(self.texts[name], others)
        cells = set(re.findall(r"^\s*cell \\?(\S+) ", self.texts[name], re.M))
        return [n for n in others if n in cells]

    def files(self, name: str) -> tuple[dict[str, str], str]:
        """({file: text}, the read commands) for synthesising `name` alone."""
        ext = "v" if self.kind == "verilog" else "il"
        kids = self.children(name)
        stubs = "".join(_stub(c, self.texts[c]) for c in kids) if ext == "v" else "".join(self.texts[c] for c in kids)
        reader = "read_verilog" if ext == "v" else "read_rtlil"
        return {f"stubs.{ext}": stubs, f"module.{ext}": self.texts[name]}, \
            f"{reader} -lib stubs.{ext}; {reader} module.{ext}"


def design_sources(verilog: Path) -> Sources:
    """The RTLIL twin of `verilog` when `bebert rtl` wrote one for this very text, else the Verilog."""
    from .verilog import rtlil_twin

    il = rtlil_twin(verilog)
    if il is not None:
        return Sources("rtlil", split_rtlil(il))
    return Sources("verilog", split_modules(verilog.read_text()))


def _cache_dir() -> Path:
    from .verify import cache_root  # the RTL build cache ($BEBERT_CACHE/rtl): one place decides it
    return cache_root() / "yosys"


@dataclass(frozen=True)
class ModuleResult:
    """One module synthesised: its `stat` text, the seconds of the run that made it, whether it
    came from the cache, and (flows with `netlist`) the gzipped JSON netlist in the cache."""

    name: str
    stat: str
    seconds: float
    cached: bool
    netlist: Path | None = None


def _synth_module(name: str, mods: Sources, yosys: Yosys, flow: Flow, deadline: float,
                  use_cache: bool, running: set[str] | None = None, procs: set | None = None) -> ModuleResult:
    """`flow` on one module, its submodules blackboxed. Keyed in the cache by the Yosys
    version, the script, the module's text and its submodules' ports."""
    files, script = _job(name, mods, flow)
    key = _key(name, files, script, yosys)
    cached = _cache_dir() / f"{key}.json"  # {"stat": its text, "seconds": the run that made it}
    netlist = _cache_dir() / f"{key}.netlist.json.gz" if flow.netlist else None
    if use_cache and cached.is_file() and (netlist is None or netlist.is_file()):
        try:
            entry = json.loads(cached.read_text())
            if entry.get("name", name) != name:  # an identical sibling's result (another row, lane, ...)
                return renamed(ModuleResult(entry["name"], entry["stat"], entry["seconds"], True, netlist), name)
            return ModuleResult(name, entry["stat"], entry["seconds"], True, netlist)
        except (ValueError, KeyError, TypeError):
            pass  # a damaged entry: synthesise again and overwrite it
    if running is not None:
        running.add(name)  # shown by the progress bar
    left = deadline - time.monotonic()
    if left <= 0:
        raise SynthesisError(f"timed out before module {name}")
    with tempfile.TemporaryDirectory(prefix="bebert_yosys_") as tmp:
        work = Path(tmp)
        for fname, ftext in files.items():
            (work / fname).write_text(ftext)
        t0 = time.perf_counter()
        try:
            proc = yosys.run(script, work, timeout=left, running=procs)  # -q: a full log runs to gigabytes
        except subprocess.TimeoutExpired:
            raise SynthesisError(f"module {name} still running") from None
        seconds = time.perf_counter() - t0
        stat = work / "stat.txt"
        if proc.returncode != 0 or not stat.is_file():
            errs = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ERROR" in ln]
            raise SynthesisError(f"module {name}: " + (errs[-1].strip() if errs else f"{yosys.version} exit "
                                                       f"{proc.returncode} without an error message"))
        out = stat.read_text()
        if not use_cache:  # the netlist still has to outlive this directory
            netlist = Path(tempfile.mkdtemp(prefix="bebert_netlist_")) / "netlist.json.gz" if flow.netlist else None
        if netlist is not None:
            _atomic_bytes(netlist, gzip.compress((work / "netlist.json").read_bytes(), compresslevel=3))
    if use_cache:
        _atomic_bytes(cached, json.dumps({"stat": out, "seconds": round(seconds, 1), "name": name}).encode())
    return ModuleResult(name, out, seconds, False, netlist)


def _job(name: str, mods: Sources, flow: Flow) -> tuple[dict[str, str], str]:
    """(files, Yosys script) that synthesise `name` alone."""
    files, reads = mods.files(name)
    script = f"{reads}; {flow.script(name)}; tee -q -o stat.txt stat"
    if flow.netlist:  # the module alone: its submodules' stubs and the cell library stay out
        script += "; delete =A:blackbox =A:whitebox; write_json netlist.json"
    return files, script


def _key(name: str, files: dict[str, str], script: str, yosys: Yosys) -> str:
    text = "\0".join((yosys.version, script, *files.values())).replace(name, "\x01")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def module_key(name: str, mods: Sources, yosys: Yosys, flow: Flow) -> str:
    """The cache key of one module's synthesis: the Yosys version, the script, the module's text
    and its submodules' ports, with the module's own name (the prefix of its submodules' names
    too) taken out, so identical siblings (the array's rows, the vector unit's lanes) share one
    synthesis."""
    return _key(name, *_job(name, mods, flow), yosys)


def renamed(r: ModuleResult, name: str) -> ModuleResult:
    """A sibling's result under `name` (its `stat` and netlist speak of the sibling's names):
    counted as cached, with no seconds of its own. The renamed netlist is kept beside the
    sibling's, named by both, so it is written once and its file name stays content-derived
    (the place-and-route cache key reads netlist file names)."""
    netlist = r.netlist
    if netlist is not None:
        stem = netlist.name.removesuffix(".netlist.json.gz")
        tag = hashlib.sha256(name.encode()).hexdigest()[:12]
        out = netlist.with_name(f"{stem}-{tag}.netlist.json.gz")
        if not out.is_file():
            data = gzip.decompress(netlist.read_bytes()).replace(r.name.encode(), name.encode())
            _atomic_bytes(out, gzip.compress(data, compresslevel=3))
        netlist = out
    return ModuleResult(name, r.stat.replace(r.name, name), 0.0, True, netlist)  # no Yosys of its own


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file


def synth_module(verilog_path_or_dir: str | Path, module: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 yosys: str | None = None, cache: bool = True, family: str = "xc7") -> dict[str, int]:
    """The primitives of one module of the accelerator's Verilog, synthesised alone (its
    submodules blackboxed, as in `resource_report`): {cell type: count}, submodule instances
    excluded. For a look at one block without synthesising the whole design."""
    vfile = _verilog_file(verilog_path_or_dir)
    mods = design_sources(vfile)
    if module not in mods.texts:
        raise SynthesisError(f"{vfile} has no module '{module}' (it has {', '.join(sorted(mods.texts))})")
    res = _synth_module(module, mods, _yosys(yosys, family), FLOWS[family], time.monotonic() + timeout_s, cache)
    return {t: n for t, n in parse_stat(res.stat)[module].items() if t not in mods.texts}


def _yosys(build: str | None, family: str = "xc7") -> Yosys:
    try:
        return find_yosys(build, family)
    except YosysMissing as e:
        raise SynthesisError(str(e)) from None


def _esc(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else "\\" + name


def resource_report(config: AccelConfig, verilog_path_or_dir: str | Path, *,
                    timeout_s: float = DEFAULT_TIMEOUT_S, log_dir: str | Path | None = None,
                    yosys: str | None = None, jobs: int | None = None, cache: bool = True,
                    progress: bool = True, family: str = "xc7", top: str = TOP) -> dict:
    """Synthesize the accelerator's Verilog for `family` ("xc7": `synth_xilinx`, "ecp5":
    `synth_ecp5`) and report its resources.

    `verilog_path_or_dir` is `bebert_accel.v` or the directory holding it (as written by
    `bebert.hw.generate_verilog(config, dir)` for this `config`). Every module is synthesised
    on its own (submodules blackboxed: the same netlist as one hierarchical run, see the module
    docstring), `jobs` at a time (default: every core), each result cached under
    $BEBERT_CACHE/rtl/yosys by its text unless `cache=False` (`module_seconds` gives each
    module's synthesis time, from the run that filled the cache for the `cached_modules`;
    `synth_seconds` is this call's wall time); `progress` shows on stderr which
    module is running. `yosys` picks the build (`bebert.hw.yosys`: system, yowasp, or an
    executable; default $BEBERT_YOSYS, else the family's first installed build). With `log_dir`, the merged `stat` output
    (`stat.txt`) is kept there. ECP5 reports carry `netlists` ({module: gzipped JSON netlist},
    what `bebert.hw.pnr` places and routes). Raises `SynthesisError` (a `ValueError`) with one
    line if Yosys is missing, fails or takes longer than `timeout_s` seconds in all. `top` names
    the top module: another component of the accelerator written alone (bench/bench_vector_area.py).
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"resource_report needs an AccelConfig, got {type(config).__name__}")
    if family not in FLOWS:
        raise SynthesisError(f"unknown FPGA family '{family}' (choose from {', '.join(FLOWS)})")
    flow = FLOWS[family]
    vfile = _verilog_file(verilog_path_or_dir)
    tool = _yosys(yosys, family)
    mods = design_sources(vfile)
    if top not in mods.texts:
        raise SynthesisError(f"{vfile} has no module '{top}'")
    results, wall, jobs = _synth_all(mods, tool, flow, timeout_s, jobs, cache, progress, vfile, config)
    order = sorted(mods.texts, key=lambda n: -len(mods.texts[n]))
    merged = "\n".join(_section(results[n].stat, n) for n in order)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        (Path(log_dir) / "stat.txt").write_text(merged)
    report = report_from_stat(config, merged, top=top, family=family)
    out = {"stage": STAGE, "tool": tool.version, "yosys_build": tool.build, "flow": flow.name, "script": flow.script(top),
           "flow_notes": FLOW_NOTES.format(command=flow.command.format(top="<module>")), "family": family,
           "synth_seconds": round(wall, 1), "jobs": jobs, "cached_modules": sum(r.cached for r in results.values()),
           "module_seconds": {n: round(r.seconds, 1) for n, r in results.items()}, "verilog": str(vfile),
           "source": mods.kind} | report
    if flow.netlist:
        out["netlists"] = {n: str(r.netlist) for n, r in results.items()}
    return out


def _synth_all(mods, tool: Yosys, flow: Flow, timeout_s, jobs, cache, progress, vfile, config):
    """Every module through `_synth_module`, `jobs` at a time, longest first (the critical path
    starts early): ({module: ModuleResult}, wall seconds, jobs)."""
    from tqdm import tqdm

    order = sorted(mods.texts, key=lambda n: -len(mods.texts[n]))
    jobs = max(1, jobs or os.cpu_count() or 1)
    deadline = time.monotonic() + timeout_s
    results: dict[str, ModuleResult] = {}
    t0 = time.perf_counter()
    bar = tqdm(total=len(order), desc=f"yosys {flow.name}", unit="module", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=jobs)
    procs: set = set()  # the yosys processes running now: killed when one module fails
    try:
        running: set[str] = set()
        groups: dict[str, list[str]] = {}  # identical modules: the first is synthesised, the rest reuse it
        for n in order:
            groups.setdefault(module_key(n, mods, tool, flow), []).append(n)
        futures = {pool.submit(_synth_module, names[0], mods, tool, flow, deadline, cache, running, procs): names
                   for names in groups.values()}
        for fut in as_completed(futures):
            r = fut.result()
            running.discard(r.name)
            for n in futures[fut]:
                results[n] = r if n == r.name else renamed(r, n)
                bar.update()
            bar.set_postfix_str(f"done {_short(r.name)} ({'cached' if r.cached else f'{r.seconds:.0f} s'}"
                                f"{f', {len(futures[fut]) - 1} identical' if len(futures[fut]) > 1 else ''}); "
                                "running: " + ", ".join(_short(n) for n in order if n in running))
    except BaseException as e:
        for f in futures:
            f.cancel()
        for p in list(procs):  # do not wait hours for the other modules of a failed report
            p.kill()
        if not isinstance(e, SynthesisError):
            raise
        msg = str(e)
        if "still running" in msg or "timed out" in msg:
            raise SynthesisError(f"yosys {flow.name} of {vfile} (config '{config.name}') timed out after "
                                 f"{timeout_s:g} s") from None
        raise SynthesisError(f"yosys {flow.name} of {vfile} (config '{config.name}') failed: {msg}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return results, time.perf_counter() - t0, jobs


def _short(module: str) -> str:
    return module.removeprefix(TOP + ".") if module != TOP else TOP


def _section(stat_text: str, name: str) -> str:
    """The `=== name ===` section of one module's `stat` text (blackboxes and hierarchy dropped)."""
    sections = parse_stat(stat_text)
    if name not in sections:
        raise SynthesisError(f"yosys `stat` of module {name} has no section for it")
    cells = "\n".join(f"     {t} {n}" for t, n in sections[name].items())
    return f"=== {name} ===\n\n   Number of cells: {sum(sections[name].values())}\n{cells}\n"


def _quote(p: Path) -> str:
    s = str(p)
    if any(c in s for c in ' ;"'):
        raise SynthesisError(f"path {s!r} has a space, ';' or quote; yosys scripts cannot take it")
    return s
