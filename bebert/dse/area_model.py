"""The area model: FPGA LUTs and block RAMs of a configuration in microseconds, per block.

A sweep that synthesised every point would spend minutes of Yosys on each (`area = true`);
this model gives the fast sweep an area objective (`luts_model`, `bram36_model`) instead.
Each block is a sum of parts, and each part is one coefficient times a count taken from the
structure of the RTL (what the part is built of):

    popcount_array         (R C + R) W     a compressor tree per PE over a & s, one per row over a
    bitserial_accumulator  R C + R         one 32-bit subtract-accumulate per PE and per row
    output_path            R               requantize lanes (one per array row)
                           R C ACC_BITS/4  the snapshot's column select (C:1 of 32 bits per row)
                           R W             the packer's transposer (R rows x W bit-plane bits)
                           1               POST sequencer, beat assembly, stage
    vector_unit            T               lanes (LayerNorm, softmax, GELU, divider, requantize),
                                           their input mux, the column assembler and the writer
                           min(T, 8)       EMBED's row group in the scalar engine (a beat FIFO
                                           per row and table, the rows' sums)
                           1               setup, derive, the rest of the scalar engine, reader,
                                           parameters
    control                1               fetch, decoder, tokens, queues, issuers, sequencer
    pbuf                   PBUF bits       distributed RAM

(R, C, W = pe_rows, pe_cols, xnor_width; T = vec_lanes.) Block RAMs: ABUF and WBUF from their
width and depth (RAMB18s in the cheapest aspect ratio), one row memory of 32-bit elements per
vector lane (the same rule), the descriptor's constants (one RAMB36 per
64 row elements) and the scalar engine's row buffer.

The coefficients are fitted (least squares on the relative error) to Yosys
figures of the current RTL (`CALIBRATION`: `bebert.hw.resources`, yosys 0.23 synth_xilinx, per
module) on two configurations, `default` and `small` with 4 lanes (`small4`); bench/bench_area_model.py reports the
model against them block by block (bench/results/area_model.json). Yosys counts LUTs before
placement, so both are upper bounds of what Vivado would place. What it leaves out: the DRAM
bus width, `vec_row_elems` and `queue_depth` change no LUT count here (the two calibration
points cannot tell them apart from the lanes and the array; the vector unit's beat logic does
grow with the bus), and the default's PE array and output figures are rounded to 0.1k. A leaf
over `AccelConfig`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

from bebert.config import ACC_BITS, AccelConfig
from bebert.vector import EMBED_GROUP

Count = Callable[[AccelConfig], float]

# part -> (block it belongs to, the structural count its coefficient multiplies)
PARTS: dict[str, tuple[str, Count]] = {
    "popcount": ("popcount_array", lambda c: (c.pe_rows * c.pe_cols + c.pe_rows) * c.xnor_width),
    "accumulators": ("bitserial_accumulator", lambda c: c.pe_rows * c.pe_cols + c.pe_rows),
    "requant_lanes": ("output_path", lambda c: c.pe_rows),
    "snapshot_select": ("output_path", lambda c: c.pe_rows * c.pe_cols * ACC_BITS / 4),
    "transposer": ("output_path", lambda c: c.pe_rows * c.xnor_width),
    "post_sequencer": ("output_path", lambda c: 1),
    "vec_lanes": ("vector_unit", lambda c: c.vec_lanes),
    "embed_rows": ("vector_unit", lambda c: min(c.vec_lanes, EMBED_GROUP)),
    "vec_shared": ("vector_unit", lambda c: 1),
    "control": ("control", lambda c: 1),
    "pbuf_lutram": ("pbuf", lambda c: c.pbuf_bytes * 8),
}
BLOCKS = tuple(dict.fromkeys(b for b, _ in PARTS.values()))
# The model's stated error at its calibration points (bench/results/area_model.json measures
# it: 7.9 % for the worst block, 1.3 % in total); fitted to small4 alone it predicts default's
# total within 8.5 % and every block within 16 %.
BLOCK_ERROR_PCT = 10.0
TOTAL_ERROR_PCT = 5.0


@dataclass(frozen=True)
class Measured:
    """Yosys LUTs (luts_total) of some parts of one configuration, summed."""

    config: str  # a shipped configuration's name
    parts: tuple[str, ...]
    luts: int
    what: str  # the Yosys blocks / modules these are


# Yosys 0.23 synth_xilinx, every module alone (bebert.hw.resources), on the RTL of
# bench/results/resources.json (default) and bench/results/resources_small4.json (small with 4
# lanes), both synthesised from the same RTL sources (EMBED by row groups, the votes' row sequencer, a
# lane's one shared Scaler).
CALIBRATION: tuple[Measured, ...] = (
    Measured("default", ("popcount",), 23_072, "compute.popcount"),
    Measured("default", ("accumulators",), 13_443, "compute.accumulator"),
    Measured("default", ("requant_lanes", "snapshot_select", "transposer", "post_sequencer"), 15_583, "output"),
    Measured("default", ("vec_lanes",), 56_911 + 1_101 + 6_851,
             "vector.unit: engine (with its 16 lanes), columns, writer (with the row-word packer)"),
    Measured("default", ("embed_rows", "vec_shared"), 97_629 - (56_911 + 1_101 + 6_851),
             "vector.unit: the rest (scalar engine with EMBED's 8-row group, derive, setup, reader, top, params)"),
    Measured("default", ("control",), 1_454, "compute_control, control, fetch, load_stage, queues, tokens, vector_stage"),
    Measured("default", ("pbuf_lutram",), 1_368, "pbuf"),
    Measured("small4", ("popcount",), 824, "compute.popcount"),
    Measured("small4", ("accumulators",), 1_146, "compute.accumulator"),
    Measured("small4", ("requant_lanes",), 219 + 4 * 359, "output.lanes"),
    Measured("small4", ("snapshot_select",), 128, "output.snap"),
    Measured("small4", ("transposer",), 685, "output.packer"),
    Measured("small4", ("post_sequencer",), 3_629 - (219 + 4 * 359) - 128 - 685,
             "output_path less lanes, snap, packer: output, beat, seq, issuer"),
    Measured("small4", ("vec_lanes",), 14_907 + 333 + 1_845,
             "vector.unit: engine (with its 4 lanes), columns, writer (with the row-word packer)"),
    Measured("small4", ("embed_rows", "vec_shared"), 38_180 - (14_907 + 333 + 1_845),
             "vector.unit: the rest (scalar engine with EMBED's 4-row group, derive, setup, reader, top, params)"),
    Measured("small4", ("control",), 1_474, "compute_control, control, fetch, load_stage, queues, tokens, vector_stage"),
    Measured("small4", ("pbuf_lutram",), 172, "pbuf"),
)


@dataclass(frozen=True)
class AreaEstimate:
    """The model's LUTs per block (and their total) and block RAMs (RAMB36 equivalents)."""

    blocks: dict[str, float]
    luts: float
    bram36: float


def modelled_area(config: AccelConfig) -> AreaEstimate:
    """The model's area of `config` (no synthesis: a few arithmetic operations)."""
    coef = coefficients()
    blocks = dict.fromkeys(BLOCKS, 0.0)
    for part, (block, count) in PARTS.items():
        blocks[block] += coef[part] * count(config)
    return AreaEstimate(blocks={b: round(v) for b, v in blocks.items()}, luts=round(sum(blocks.values())),
                        bram36=bram36(config))


def predict(config: AccelConfig, parts: tuple[str, ...], coef: dict[str, float] | None = None) -> float:
    """The model's LUTs of some parts of `config` (what one `Measured` measured)."""
    coef = coef or coefficients()
    return sum(coef[p] * PARTS[p][1](config) for p in parts)


@functools.cache
def coefficients() -> dict[str, float]:
    """Each part's LUTs per unit of its count, fitted to `CALIBRATION`."""
    return fit(CALIBRATION)


def fit(measured: tuple[Measured, ...]) -> dict[str, float]:
    """The least-squares fit of the relative error over `measured` (a part measured alone on
    two configurations gets the coefficient that splits its error between them; parts measured
    only together get the minimum-norm split). Every part must be covered by some figure, and
    every coefficient come out non-negative (a part cannot cost negative LUTs)."""
    import numpy as np

    names = list(PARTS)
    unmeasured = [p for p in names if not any(p in m.parts for m in measured)]
    if unmeasured:
        raise ValueError(f"area model: no calibration figure covers part(s) {', '.join(unmeasured)}")
    rows = [[PARTS[p][1](calibration_config(m.config)) / m.luts if p in m.parts else 0.0 for p in names]
            for m in measured]
    x = np.linalg.lstsq(np.array(rows), np.ones(len(rows)), rcond=None)[0]
    negative = [p for p, v in zip(names, x) if v < 0]
    if negative:
        raise ValueError(f"area model: the fit gives part(s) {', '.join(negative)} negative LUTs; "
                         "their counts do not describe the calibration figures")
    return {p: float(v) for p, v in zip(names, x)}


# The configurations the figures were measured on: a shipped one, with the fields that differed
# then (small was synthesised with 4 vector lanes; it ships with one, to fit an ECP5).
CALIBRATION_CONFIGS: dict[str, tuple[str, dict]] = {"default": ("default", {}),
                                                   "small4": ("small", {"name": "small4", "vec_lanes": 4})}


@functools.cache
def calibration_config(name: str) -> AccelConfig:
    import dataclasses

    from bebert import shipped

    base, fields = CALIBRATION_CONFIGS[name]
    return dataclasses.replace(AccelConfig.from_toml(shipped.config_file(base)), **fields)


# -- block RAMs -----------------------------------------------------------------------------
RAMB18_ASPECTS = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))  # (depth, width)
ELEMS_PER_SETUP_BRAM36 = 64  # the descriptor's per-column constants (setup: small 4 RAMB36, default 30 RAMB18)
SCALAR_BRAM36 = 1  # the scalar engine's row buffer (small 1, default 2)


def ram_bram36(width_bits: int, depth: int) -> float:
    """RAMB36 equivalents of a width x depth memory: RAMB18s in the cheapest aspect ratio, halved
    (default ABUF, 1024 x 1024 bits: 57 RAMB18 as Yosys maps it)."""
    return min(math.ceil(width_bits / w) * math.ceil(depth / d) for d, w in RAMB18_ASPECTS) / 2


def bram36(config: AccelConfig) -> float:
    """RAMB36 equivalents: ABUF, WBUF, the lanes' row memories, the vector unit's others."""
    bufs = sum(ram_bram36(config.entry_bits[b], config.entries(b)) for b in ("abuf", "wbuf"))
    row = ram_bram36(32, config.vec_row_elems)
    return bufs + config.vec_lanes * row + config.vec_row_elems / ELEMS_PER_SETUP_BRAM36 + SCALAR_BRAM36
