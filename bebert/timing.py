"""How long each instruction runs (D, docs/ARCHITECTURE.md "Timing"): the one definition the
simulator charges and the RTL keeps, cycle for cycle, at the nominal memory.

VEC's duration is `bebert.vector.vec_cycles` (the vector kernels' records); everything else is
here. A POST's duration depends on the output path's mode, set by the last POSTCFG before it
in the OUTPUT queue (`OutputMode`); the OUTPUT stage runs in program order, so a linear pass
over the program knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bebert.config import POST_PIPELINE_CYCLES, POSTCFG_CYCLES, SNAP_CYCLES, SYNC_CYCLES, AccelConfig
from bebert.isa import BUF_NAMES, Buf, Instr, Op, PostFmt, Stage


@dataclass(frozen=True)
class OutputMode:
    """The output path's mode registers that its timing depends on (POSTCFG fields)."""

    fmt: int = 0
    elem: int = 0
    obits: int = 0
    group: int = 1

    @classmethod
    def of(cls, ins: Instr) -> "OutputMode":
        a = ins.args
        return cls(a["fmt"], a["elem"], a["obits"], a["group"])


def load_cycles(n: int, buf: int, config: AccelConfig) -> int:
    """LOAD of n entries: the request, L cycles of latency, then one beat per cycle."""
    return config.dram_latency_cycles + n * config.beats_per_entry(BUF_NAMES[Buf(buf)])


def gemm_cycles(bits: int, wbits: int, k: int, snap: bool) -> int:
    """One (activation plane, weight plane, word) per cycle; a snap GEMM drains and copies."""
    return bits * wbits * k + (SNAP_CYCLES if snap else 0)


def stream_beats_per_column(mode: OutputMode, config: AccelConfig) -> int:
    """Single-beat writes per tile column in stream format: max(1, R / T) runs of min(R, T) e bytes."""
    R, T, B = config.pe_rows, config.vec_lanes, config.dram_bytes_per_cycle
    run = min(R, T) * (1 << mode.elem)
    return max(1, R // T) * max(1, run // B)


def flush_beats(mode: OutputMode, config: AccelConfig) -> int:
    """Write beats a flushing packed POST issues: per plane, the words as runs of gg = min(words,
    group) row-words, each write min(gg, B / W) words (a run shorter than a beat is one write)
    or one B-bit part of a word (W > B)."""
    W, B = config.xnor_width, config.dram_bytes_per_cycle
    words = config.pe_rows if mode.fmt == PostFmt.PACKED else config.pe_cols
    run = min(words, mode.group)
    return mode.obits * (words // run) * max(1, run * W // (8 * B))


def transposer_loads(mode: OutputMode, config: AccelConfig) -> int:
    """Cycles a flushing transposed POST spends loading the transposer (`hw/packer.py`): per
    plane and per group of min(R, C) words, the R row-words it permutes, one beat a cycle."""
    if mode.fmt != PostFmt.TRANSPOSED:
        return 0
    R, C = config.pe_rows, config.pe_cols
    groups = max(1, C // R)
    return mode.obits * groups * max(1, R * config.xnor_width // config.bus_bits)


def post_cycles(ins: Instr, mode: OutputMode, config: AccelConfig) -> int:
    """POST, as the RTL output stage runs it (`hw/output_stage.py`, `hw/post_sequencer.py`):
    POST_PIPELINE_CYCLES (the PBUF read, then the lanes' three stages) and then

    - stream: one cycle per write beat, `cols` columns of `stream_beats_per_column` beats;
    - packed / transposed: one cycle per tile column (all C of them), then with flush the
      transposer loads (transposed) and one cycle per write beat (`flush_beats`);

    and L more when it pushes to LOAD or VECTOR and wrote something: it ends with the response
    to its last write (the port answers in order, so every earlier write has landed too)."""
    a = ins.args
    tells = bool(ins.pushes & {Stage.LOAD, Stage.VECTOR})
    L = config.dram_latency_cycles
    if mode.fmt == PostFmt.STREAM:
        return POST_PIPELINE_CYCLES + a["cols"] * stream_beats_per_column(mode, config) + (L if tells else 0)
    body = config.pe_cols + (flush_beats(mode, config) + transposer_loads(mode, config) if a["flush"] else 0)
    return POST_PIPELINE_CYCLES + body + (L if tells and a["flush"] else 0)


def write_bytes(ins: Instr, mode: OutputMode, config: AccelConfig) -> int:
    """DRAM bytes a POST writes (strobed bytes)."""
    a = ins.args
    if mode.fmt == PostFmt.STREAM:
        return a["rows"] * a["cols"] * (1 << mode.elem)
    if not a["flush"]:
        return 0
    words = config.pe_rows if mode.fmt == PostFmt.PACKED else config.pe_cols
    return mode.obits * words * config.xnor_width // 8


def duration(ins: Instr, config: AccelConfig, mode: OutputMode = OutputMode()) -> int:
    """D of one non-VEC instruction (VEC: `bebert.vector.vec_cycles`)."""
    a = ins.args
    if ins.op == Op.LOAD:
        return load_cycles(a["n"], a["buf"], config)
    if ins.op == Op.GEMM:
        return gemm_cycles(a["bits"], a["wbits"], a["k"], bool(a["snap"]))
    if ins.op == Op.POST:
        return post_cycles(ins, mode, config)
    if ins.op == Op.POSTCFG:
        return POSTCFG_CYCLES
    if ins.op == Op.SYNC:
        return SYNC_CYCLES
    raise ValueError(f"{ins.op.name}: no fixed duration here (VEC: bebert.vector.vec_cycles; HALT: none)")
