"""Cycle-accurate performance simulation of a program: cycles, busy units, DRAM traffic.

`simulate(program)` turns the instruction stream into flat arrays once (`stream_arrays`) and
runs the Numba kernel `run_events` (sim/kernel.py) over them. The cycle count equals the
RTL's exactly (docs/ARCHITECTURE.md, "Timing"); no data is moved, only time and bytes.

Every ISA v2 instruction is timed: VEC runs in the COMPUTE stage for
`bebert.vector.vec_cycles(...)` cycles and moves `bebert.vector.vec_bytes(...)` DRAM bytes
(the cost contract lives there, not here); a GEMM in AND mode takes as long as in XNOR mode
and does as many binary operations.
"""

from __future__ import annotations

import array

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from bebert.config import GEMM_PIPELINE_CYCLES, POST_PIPELINE_CYCLES, SYNC_CYCLES, AccelConfig
from bebert.isa import BUF_NAMES, PIPELINE, STAGE_OF, Buf, Instr, IsaError, Op, decode, token_moves
from bebert.program import Program
from bebert.vector import vec_bytes, vec_cycles

from . import kernel as K


class SimError(RuntimeError):
    """A program the machine cannot finish: it deadlocks on its tokens."""


@dataclass(frozen=True, eq=False)
class Trace:
    """When each instruction ran (`simulate(..., trace=True)`).

    Row i is word i of the fetched stream: the program's instructions up to and including
    the first HALT or illegal word (plus the illegal word past the end of a program without
    HALT). `stage` is 0 LOAD, 1 COMPUTE, 2 STORE, 3 HALT, -1 illegal; `op` indexes
    `kernel.OPS`. Instruction i executes in cycles `start[i]` .. `end[i] - 1`; words that
    never execute (HALT, an illegal word) have issue = start = end = -1.
    """

    issue: np.ndarray  # int64: the cycle in which the stage took the instruction
    dur: np.ndarray  # int64: D
    stage: np.ndarray  # int64
    op: np.ndarray  # int64
    rd: np.ndarray  # int64: DRAM bytes read
    wr: np.ndarray  # int64: DRAM bytes written
    bops: np.ndarray  # int64: binary operations (GEMM)

    @property
    def start(self) -> np.ndarray:
        return np.where(self.issue >= 0, self.issue + 1, -1)

    @property
    def end(self) -> np.ndarray:
        """One past the last execution cycle (the first cycle the stage is idle again)."""
        return np.where(self.issue >= 0, self.issue + self.dur + 1, -1)


@dataclass(frozen=True)
class SimResult:
    """What one run of a program costs on the accelerator."""

    cycles: int
    seconds: float
    busy: dict[str, int]  # load/compute/store and gemm/post/sync/vector: sum of D executed
    # busy / cycles for the stages (load = LOAD DMA, store = STORE DMA, compute) and the
    # compute units (pe_array_busy = GEMM, post, vector); pe_array = useful bit-ops / peak;
    # dram_read / dram_write = bytes / port capacity.
    utilization: dict[str, float]
    dram_read_bytes: int
    dram_write_bytes: int
    dram_bytes: int
    instructions: dict[str, int]  # op name -> executed (HALT: decoded)
    binary_ops: int
    error: bool  # fetch stopped on an illegal word (or ran off the end without HALT)
    stall_cycles: dict[str, int]  # fetch: on a full queue; a stage: head waiting for tokens
    # Per-instruction timing, only when asked for; not part of equality or to_dict().
    trace: Trace | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "seconds": self.seconds,
            "busy": dict(self.busy),
            "utilization": dict(self.utilization),
            "dram_read_bytes": self.dram_read_bytes,
            "dram_write_bytes": self.dram_write_bytes,
            "dram_bytes": self.dram_bytes,
            "instructions": dict(self.instructions),
            "binary_ops": self.binary_ops,
            "error": self.error,
            "stall_cycles": dict(self.stall_cycles),
        }


_OP_INDEX = {Op[name]: i for i, name in enumerate(K.OPS)}
# Kernel stage index: the position in the ISA's pipeline; HALT is fetch's own (K.ST_HALT).
_STAGE_INDEX = {op: PIPELINE.index(st) if st in PIPELINE else K.ST_HALT for op, st in STAGE_OF.items()}
_COUNTER_BIT = {c: 1 << i for i, c in enumerate(K.COUNTERS)}  # popm / pushm bits


def duration(ins: Instr, config: AccelConfig) -> int:
    """D of one instruction (docs/ARCHITECTURE.md, "Durations")."""
    L = config.dram_latency_cycles
    if ins.op == Op.LOAD:
        return L + ins.args["n"] * config.beats_per_entry(BUF_NAMES[Buf(ins.args["buf"])])
    if ins.op == Op.STORE:
        return 1 + ins.args["n"] * config.beats_per_entry("obuf") + L
    if ins.op == Op.GEMM:
        return ins.args["bits"] * ins.args["k"] + GEMM_PIPELINE_CYCLES
    if ins.op == Op.POST:
        return config.pe_rows + POST_PIPELINE_CYCLES
    if ins.op == Op.SYNC:
        return SYNC_CYCLES
    if ins.op == Op.VEC:
        a = ins.args
        return vec_cycles(a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], config)
    return 0


def stream_arrays(instrs: list[Instr | None], config: AccelConfig) -> tuple[np.ndarray, ...]:
    """The kernel's per-word arrays for a fetched stream; None stands for an illegal word.

    The stream is cut after the first HALT or illegal word (fetch never reads further) and,
    when it has neither, an illegal word is appended: past the end the instruction memory
    reads 0, which is illegal.
    """
    entry_bytes = {int(b): config.entry_bytes(name) for b, name in BUF_NAMES.items()}
    beats = {int(b): config.beats_per_entry(name) for b, name in BUF_NAMES.items()}
    L = config.dram_latency_cycles
    array_ops = config.pe_rows * config.pe_cols * config.xnor_width
    post_d = config.pe_rows + POST_PIPELINE_CYCLES
    # One row per word: stage, dur, popm, pushm, opi, rd, wr, bops, appended to a flat int64
    # buffer (far cheaper than item assignment into arrays or np.array of tuples).
    heads: dict[tuple[int, frozenset[str]], tuple[int, int, int, int]] = {}
    vec_cost: dict[tuple[int, ...], tuple[int, int, int]] = {}  # (fn, rows, cols, bits, aux) -> D, rd, wr
    rows = array.array("q")
    append = rows.extend
    for ins in instrs:
        if ins is None:
            break
        op = ins.op._value_
        key = (op, ins.flags)
        head = heads.get(key)
        if head is None:
            head = heads[key] = _row_head(Op(op), ins.flags)
        stage, popm, pushm, opi = head
        a = ins.args
        if op == _LOAD:
            n_, b = a["n"], a["buf"]
            append((stage, L + n_ * beats[b], popm, pushm, opi, n_ * entry_bytes[b], 0, 0))
        elif op == _STORE:
            n_, b = a["n"], a["buf"]
            append((stage, 1 + n_ * beats[b] + L, popm, pushm, opi, 0, n_ * entry_bytes[b], 0))
        elif op == _GEMM:
            bk = a["bits"] * a["k"]
            append((stage, bk + GEMM_PIPELINE_CYCLES, popm, pushm, opi, 0, 0, bk * array_ops))
        elif op == _POST:
            append((stage, post_d, popm, pushm, opi, 0, 0, 0))
        elif op == _SYNC:
            append((stage, SYNC_CYCLES, popm, pushm, opi, 0, 0, 0))
        elif op == _VEC:
            vk = (a["fn"], a["rows"], a["cols"], a["bits"], a["aux"])
            cost = vec_cost.get(vk)
            if cost is None:
                cost = vec_cost[vk] = (vec_cycles(*vk, config), *vec_bytes(*vk))
            append((stage, cost[0], popm, pushm, opi, cost[1], cost[2], 0))
        else:  # HALT: fetch reads no further
            append((stage, 0, 0, 0, opi, 0, 0, 0))
            break
    else:  # no HALT: the word past the end reads as 0
        ins = None
    if ins is None:
        append((K.ST_ILLEGAL, 0, 0, 0, 0, 0, 0, 0))
    table = np.frombuffer(rows, dtype=np.int64).reshape(-1, 8)
    return tuple(np.ascontiguousarray(table[:, c]) for c in range(8))


_LOAD, _STORE, _GEMM, _POST, _SYNC, _VEC = (int(o) for o in (Op.LOAD, Op.STORE, Op.GEMM, Op.POST, Op.SYNC,
                                                              Op.VEC))


def _row_head(op: Op, flags: frozenset[str]) -> tuple[int, int, int, int]:
    """(stage, pop mask, push mask, op index) of an op carrying `flags`."""
    s = _STAGE_INDEX[op]
    if s == K.ST_HALT:
        return s, 0, 0, _OP_INDEX[op]
    pops, pushes = token_moves(op, flags)
    return s, sum(_COUNTER_BIT[c] for c in pops), sum(_COUNTER_BIT[c] for c in pushes), _OP_INDEX[op]


def decode_words(words: list[int]) -> list[Instr | None]:
    """Decode raw 128-bit words up to the first illegal one, which becomes None."""
    out: list[Instr | None] = []
    for w in words:
        try:
            ins = decode(int(w))
        except IsaError:
            out.append(None)
            break
        out.append(ins)
        if ins.op == Op.HALT:
            break
    return out


def simulate(program: Program, *, raw_words: list[int] | None = None,
             kernel: Callable | None = None, trace: bool = False) -> SimResult:
    """Run `program` (or the raw instruction words `raw_words` with its configuration).

    `kernel` picks the cycle model: `kernel.run_events` (default), `kernel.run_reference`,
    or either's `.py_func` for a pure-Python run. `trace=True` also records when each
    instruction ran (`SimResult.trace`); the cycles and statistics are the same either
    way. Raises `SimError` on a deadlock.
    """
    config = program.config
    stream = decode_words(raw_words) if raw_words is not None else list(program.instrs)
    arrays = stream_arrays(stream, config)
    run = kernel if kernel is not None else K.run_events
    depth = np.int64(config.queue_depth)
    if trace:
        issue = np.full(arrays[0].size, -1, np.int64)
        status, cycles, stats, diag = run(*arrays, depth, issue)
    else:
        status, cycles, stats, diag = run(*arrays, depth)
    cycles = int(cycles)
    if status == K.DEADLOCK:
        raise SimError(_deadlock_message(cycles, diag, arrays[0]))
    result = _result(config, cycles, stats)
    if trace:
        stage, dur, opi, rd, wr, bops = arrays[0], arrays[1], arrays[4], arrays[5], arrays[6], arrays[7]
        result = replace(result, trace=Trace(issue=issue, dur=dur, stage=stage, op=opi, rd=rd, wr=wr, bops=bops))
    return result


def _deadlock_message(cycle: int, diag: np.ndarray, stage: np.ndarray) -> str:
    phase = int(diag[K.D_PHASE])
    pc = int(diag[K.D_PC])
    if phase == K.STOPPED:
        fetch = "fetch stopped"
    else:
        fetch = f"fetch stalled at instruction {pc} on the full {K.STAGES[int(stage[pc])]} queue"
    waits = []
    for s, name in enumerate(K.STAGES):
        head = int(diag[K.D_HEAD + s])
        if head >= 0:
            waits.append(f"{name} head (instruction {head}) waits")
    counters = ", ".join(f"{c}={int(diag[K.D_CNT + i])}" for i, c in enumerate(K.COUNTERS))
    return (f"deadlock at cycle {cycle}: no unit can make progress; {fetch}; "
            f"{'; '.join(waits) or 'queues empty'}; tokens {counters}")


def _result(config: AccelConfig, cycles: int, stats: np.ndarray) -> SimResult:
    st = [int(x) for x in stats]
    by_op = {name: st[K.S_BUSY + i] for i, name in enumerate(K.OPS)}
    busy = {
        "load": by_op["LOAD"],
        "compute": by_op["GEMM"] + by_op["POST"] + by_op["SYNC"] + by_op["VEC"],
        "store": by_op["STORE"],
        "gemm": by_op["GEMM"],
        "post": by_op["POST"],
        "sync": by_op["SYNC"],
        "vector": by_op["VEC"],
    }
    bops = st[K.S_BOPS]
    util = {u: busy[u] / cycles for u in ("load", "compute", "store")}
    util["pe_array"] = bops / (cycles * config.binary_ops_per_cycle)
    util["pe_array_busy"] = busy["gemm"] / cycles
    util["post"] = busy["post"] / cycles
    util["vector"] = busy["vector"] / cycles
    util["dram_read"] = st[K.S_RD] / (cycles * config.dram_bytes_per_cycle)
    util["dram_write"] = st[K.S_WR] / (cycles * config.dram_bytes_per_cycle)
    stalls = {"fetch": st[K.S_STALL_FETCH]}
    stalls.update({name: st[K.S_STALL + s] for s, name in enumerate(K.STAGES)})
    return SimResult(
        cycles=cycles,
        seconds=cycles / config.clock_hz,
        busy=busy,
        utilization=util,
        dram_read_bytes=st[K.S_RD],
        dram_write_bytes=st[K.S_WR],
        dram_bytes=st[K.S_RD] + st[K.S_WR],
        instructions={name: st[K.S_COUNT + i] for i, name in enumerate(K.OPS)},
        binary_ops=bops,
        error=bool(st[K.S_ERROR]),
        stall_cycles=stalls,
    )
