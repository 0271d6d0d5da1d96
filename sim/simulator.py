"""Cycle-accurate performance simulation of a program: cycles, busy units, DRAM traffic.

`simulate(program)` turns the instruction stream into flat arrays once (`stream_arrays`) and
runs the Numba kernel `run_events` (sim/kernel.py) over them. The cycle count equals the
RTL's exactly (docs/ARCHITECTURE.md, "Timing"); no data is moved, only time and bytes.

Every ISA v3 instruction is timed by the one definition of its duration: `bebert.timing`
(LOAD, GEMM, POSTCFG, POST with the output mode of the POSTCFG before it, SYNC) and
`bebert.vector.vec_cycles` / `vec_bytes` (VEC, in the VECTOR stage). Bytes are accounted per
DRAM port (`PORTS`): the LOAD read port, the output path's write port, the vector unit's read
and write ports.
"""

from __future__ import annotations

import array

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from bebert.config import AccelConfig
from bebert.isa import Instr, IsaError, Op, Stage, check_config, decode, popped, pushed
from bebert.program import Program
from bebert.timing import OutputMode, duration, gemm_cycles, load_cycles, post_cycles, write_bytes
from bebert.vector import vec_bytes, vec_cycles

from . import kernel as K


class SimError(RuntimeError):
    """A program the machine cannot finish: it deadlocks on its tokens."""


@dataclass(frozen=True, eq=False)
class Trace:
    """When each instruction ran (`simulate(..., trace=True)`).

    Row i is word i of the fetched stream: the program's instructions up to and including
    the first HALT or illegal word (plus the illegal word past the end of a program without
    HALT). `stage` is 0 LOAD, 1 COMPUTE, 2 OUTPUT, 3 VECTOR, 4 HALT, -1 illegal; `op` indexes
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


PORTS = ("load_read", "output_write", "vector_read", "vector_write")


@dataclass(frozen=True)
class SimResult:
    """What one run of a program costs on the accelerator."""

    cycles: int
    seconds: float
    busy: dict[str, int]  # stages (load, compute, output, vector) and units (gemm, post, ...): sum of D
    # busy / cycles per stage and unit; pe_array = useful bit-ops / peak; ports = bytes / capacity
    utilization: dict[str, float]
    dram_read_bytes: int
    dram_write_bytes: int
    dram_bytes: int
    port_bytes: dict[str, int]  # per DRAM port (PORTS)
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
            "port_bytes": dict(self.port_bytes),
            "instructions": dict(self.instructions),
            "binary_ops": self.binary_ops,
            "error": self.error,
            "stall_cycles": dict(self.stall_cycles),
        }


_OP_INDEX = {Op[name]: i for i, name in enumerate(K.OPS)}


def instruction_cost(ins: Instr, config: AccelConfig, mode: OutputMode = OutputMode()) -> tuple[int, int, int, int]:
    """(D, DRAM bytes read, DRAM bytes written, binary ops) of one instruction."""
    a = ins.args
    if ins.op == Op.VEC:
        vk = (a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], a["io"])
        return (vec_cycles(*vk, config), *vec_bytes(*vk, config), 0)
    if ins.op == Op.LOAD:
        return load_cycles(a["n"], a["buf"], config), a["n"] * config.entry_bytes(("abuf", "wbuf", "pbuf")[a["buf"]]), 0, 0
    if ins.op == Op.GEMM:
        n = a["bits"] * a["wbits"] * a["k"]
        return gemm_cycles(a["bits"], a["wbits"], a["k"], bool(a["snap"])), 0, 0, n * config.binary_ops_per_cycle
    if ins.op == Op.POST:
        return post_cycles(ins, mode, config), 0, write_bytes(ins, mode, config), 0
    if ins.op == Op.HALT:
        return 0, 0, 0, 0
    return duration(ins, config), 0, 0, 0


def stream_arrays(instrs: list[Instr | None], config: AccelConfig) -> tuple[np.ndarray, ...]:
    """The kernel's per-word arrays for a fetched stream; None stands for an illegal word.

    The stream is cut after the first HALT or illegal word (fetch never reads further) and,
    when it has neither, an illegal word is appended: past the end the instruction memory
    reads 0, which is illegal. POST durations use the output mode of the last POSTCFG before
    them (the OUTPUT stage runs in program order).
    """
    rows = array.array("q")
    append = rows.extend
    cache: dict[tuple, tuple[int, int, int, int]] = {}
    mode = OutputMode()
    ins = None
    for ins in instrs:
        if ins is None:
            break
        if ins.op == Op.POSTCFG:
            mode = OutputMode.of(ins)
        key = (ins.op, tuple(ins.args.values()), ins.pushes, mode if ins.op == Op.POST else None)
        cost = cache.get(key)
        if cost is None:
            cost = cache[key] = instruction_cost(ins, config, mode)
        stage = K.ST_HALT if ins.op == Op.HALT else int(ins.stage)
        popm = sum(1 << c for c in popped(ins))
        pushm = sum(1 << c for c in pushed(ins))
        append((stage, cost[0], popm, pushm, _OP_INDEX[ins.op], cost[1], cost[2], cost[3]))
        if ins.op == Op.HALT:
            break
    else:  # no HALT: the word past the end reads as 0
        ins = None
    if ins is None:
        append((K.ST_ILLEGAL, 0, 0, 0, 0, 0, 0, 0))
    table = np.frombuffer(rows, dtype=np.int64).reshape(-1, 8)
    return tuple(np.ascontiguousarray(table[:, c]) for c in range(8))


def decode_words(words: list[int], config: AccelConfig | None = None) -> list[Instr | None]:
    """Decode raw 128-bit words up to the first illegal one, which becomes None: illegal in
    itself, or (given `config`) for this machine (`check_config`, as the RTL decoder flags)."""
    out: list[Instr | None] = []
    for w in words:
        try:
            ins = decode(int(w))
        except IsaError:
            out.append(None)
            break
        if config is not None and check_config(ins, config):
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
    stream = decode_words(raw_words, program.config) if raw_words is not None else list(program.instrs)
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
    result = _result(config, cycles, stats, arrays)
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


def _result(config: AccelConfig, cycles: int, stats: np.ndarray, arrays) -> SimResult:
    st = [int(x) for x in stats]
    by_op = {name: st[K.S_BUSY + i] for i, name in enumerate(K.OPS)}
    stage, dur, rd, wr = arrays[0], arrays[1], arrays[5], arrays[6]
    ok = stage >= 0
    by_stage = np.bincount(np.where(ok & (stage < K.NS), stage, K.NS), weights=dur, minlength=K.NS + 1)
    rd_stage = np.bincount(np.where(ok & (stage < K.NS), stage, K.NS), weights=rd, minlength=K.NS + 1)
    wr_stage = np.bincount(np.where(ok & (stage < K.NS), stage, K.NS), weights=wr, minlength=K.NS + 1)
    busy = {name: int(by_stage[s]) for s, name in enumerate(K.STAGES)}
    busy.update({"gemm": by_op["GEMM"], "post": by_op["POST"] + by_op["POSTCFG"], "sync": by_op["SYNC"],
                 "vector_unit": by_op["VEC"]})
    ports = {"load_read": int(rd_stage[Stage.LOAD]), "output_write": int(wr_stage[Stage.OUTPUT]),
             "vector_read": int(rd_stage[Stage.VECTOR]), "vector_write": int(wr_stage[Stage.VECTOR])}
    bops = st[K.S_BOPS]
    util = {name: busy[name] / cycles for name in K.STAGES}
    util["pe_array"] = bops / (cycles * config.binary_ops_per_cycle)
    util["pe_array_busy"] = busy["gemm"] / cycles
    util["post"] = busy["post"] / cycles
    util["vector_unit"] = busy["vector_unit"] / cycles
    for p, v in ports.items():
        util[p] = v / (cycles * config.dram_bytes_per_cycle)
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
        port_bytes=ports,
        instructions={name: st[K.S_COUNT + i] for i, name in enumerate(K.OPS)},
        binary_ops=bops,
        error=bool(st[K.S_ERROR]),
        stall_cycles=stalls,
    )
