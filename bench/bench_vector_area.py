"""Where the vector unit's LUTs go: one lane and the scalar engine, datapath by datapath.

    python bench/bench_vector_area.py [--config configs/default.toml] [--parts lane,scalar]
                                      [--jobs N] [--out bench/results/vector_area.json]

bench/bench_resources.py gives the vector unit as one block (97.6k of default's 152.5k LUTs).
Planning its redesign needs the map inside it, so this synthesises, with exactly the flow of
`bebert.hw.resources` (synth_xilinx, every module alone with its submodules blackboxed,
hierarchy kept, results cached by module text), two parts of the config's vector unit on
their own:

- `lane`: one tile-engine lane (`hw/vec/lane.py`, row memory of `vec_row_elems` words) and
  each of its datapaths (the POST, the shared scaler, i-GELU, i-softmax's exponent,
  LayerNorm's two passes, the row divider, the element decoder, the affine path);
  `(own logic)` is the lane's own module (accumulators, muxes, clamps). The tile engine
  holds `vec_lanes` of them.
- `scalar`: the scalar engine (`hw/vec/scalar.py`: EMBED, LUT, DOT, COMBINE, the votes) and
  its submodules (walkers, FIFOs, EMBED's beat FIFOs); its `(own logic)` holds every
  kernel's sequencing and datapath, EMBED's row group included.
- `scalar_group1`: the same engine with EMBED's row group cut to one row (area only: EMBED's
  columns would take eight times the cycles), so that the difference is what the group costs.

Identical siblings (EMBED's 24 beat FIFOs) are one row with their count.

Printed and saved per module: LUTs (`luts_total`: logic + LUTs as distributed RAM), FFs,
DSP48s, block RAM, and the share of the part. The figures are those of the part alone; inside
the whole design (bench_resources) they differ by a few per cent (constant inputs there are
wires here).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("lane", "scalar", "scalar_group1")
KEEP = ("luts_total", "luts", "lutram_luts", "ffs", "dsp", "bram36_equiv")
OWN = "(own logic)"    # the part's own module: what its submodules leave (accumulators, muxes, control)


def _group_name(name: str) -> str:
    """`beats17` -> `beats*`, `wa$539` -> `wa`: identical siblings are reported as one row."""
    name = re.sub(r"\$\d+$", "", name)
    return re.sub(r"\d+$", "*", name)


def part_component(part: str, config):
    """The component `part` of `config`'s vector unit, as the unit instantiates it."""
    if part == "lane":
        from bebert.hw.vec.lane import Lane

        return Lane(config.vec_row_elems)
    from bebert.hw.vec.scalar import ScalarEngine
    from bebert.hw.vec.setup import sbuf_depth

    if part == "scalar":
        return ScalarEngine(config, sbuf_depth(config))

    class OneRowEmbed(ScalarEngine):
        """EMBED with a one-row group, for its area only (the machine's timing, bebert.vector's
        `embed_group`, has min(vec_lanes, 8) rows: eight times the columns' cycles)."""

        def __init__(self, *args):
            super().__init__(*args)
            self.Gh = 1

    return OneRowEmbed(config, sbuf_depth(config))


def synth_part(part: str, config, jobs: int | None) -> dict:
    """Per-module figures of `part` (synthesised as its own top `part`) and their sum."""
    from bebert.hw.resources import resource_report
    from bebert.hw.verilog import verilog_and_rtlil

    t0 = time.perf_counter()
    v, il = verilog_and_rtlil(config, part_component(part, config), part)
    with tempfile.TemporaryDirectory() as d:
        vfile = Path(d) / f"{part}.v"
        vfile.write_text(v)
        vfile.with_suffix(".il").write_text(il)
        rep = resource_report(config, vfile, jobs=jobs, top=part)
    total = {k: rep["total"][k] for k in KEEP}
    return {"total": total, "modules": _grouped(rep["modules"], part, total["luts_total"]),
            "seconds": round(time.perf_counter() - t0, 1), "yosys": rep["tool"]}


def _grouped(modules: dict, part: str, part_luts: int) -> dict:
    """The part's modules as rows, identical siblings as one row with their count and share."""
    groups: dict[str, dict] = {}
    for name, fig in modules.items():
        short = OWN if name == part else _group_name(name.removeprefix(part + "."))
        row = {k: fig[k] for k in KEEP}
        g = groups.setdefault(short, row | {"instances": 0})
        if any(g[k] != row[k] for k in KEEP):       # not identical copies after all: its own row
            g = groups.setdefault(name.removeprefix(part + "."), row | {"instances": 0})
        g["instances"] += fig["instances"]
    for g in groups.values():
        g["share"] = round(g["luts_total"] * g["instances"] / max(1, part_luts), 3)
    return groups


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.toml"))
    p.add_argument("--parts", default=",".join(PARTS), help="any of " + ", ".join(PARTS))
    p.add_argument("--jobs", type=int, default=None, help="yosys jobs (default: every core)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "vector_area.json"))
    a = p.parse_args(argv)
    from bebert.config import AccelConfig, ConfigError
    from bebert.files import atomic_write, to_json
    from bebert.hw.resources import SynthesisError

    parts = a.parts.split(",")
    if bad := [x for x in parts if x not in PARTS]:
        print(f"bench_vector_area: unknown part {bad[0]!r} (choose from {', '.join(PARTS)})", file=sys.stderr)
        return 2
    try:
        config = AccelConfig.from_toml(a.config)
        doc = {"what": "LUTs of one vector lane and of the scalar engine, module by module (yosys synth_xilinx, "
                       "hierarchy kept, each part synthesised as its own top)",
               "config": config.name, "vec_lanes": config.vec_lanes,
               "parts": {x: synth_part(x, config, a.jobs) for x in parts}}
    except (ConfigError, SynthesisError, OSError) as e:
        print(f"bench_vector_area: {e}", file=sys.stderr)
        return 2
    for x, r in doc["parts"].items():
        print(f"{x}: {r['total']['luts_total']:,} LUTs, {r['total']['ffs']:,} FFs, {r['total']['dsp']} DSP48")
        for name, fig in sorted(r["modules"].items(), key=lambda kv: -kv[1]["luts_total"] * kv[1]["instances"]):
            n = f" x {fig['instances']}" if fig["instances"] > 1 else ""
            print(f"  {name}{n}: {fig['luts_total']:,} LUTs each ({100 * fig['share']:.0f} % of the part), {fig['ffs']:,} FFs, "
                  f"{fig['dsp']} DSP48")
    atomic_write(Path(a.out), to_json(doc))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
