"""Dependency-token checker (ISA v3): does an instruction stream finish on the decoupled machine?

`check_tokens` runs the four stage queues abstractly (docs/MACHINE_V3.md, "Stages and tokens"):
fetch dispatches in program order and blocks while the target queue holds `queue_depth`
instructions; HALT stops fetching; each stage issues its queue head, in order, once every
counter the head pops (c[s -> stage] for s in its pop mask) is positive, and the head's pushes
(c[stage -> d] for d in its push mask) then count. Durations are left out: every counter has
exactly one consumer stage and stages are in order, so whether the program finishes does not
depend on timing (an enabled issue stays enabled until taken). The program passes when fetch
reached HALT, every queue drained and all 12 counters are back at 0.

`pops` / `pushes` name the counters an instruction takes from and gives to (indices into
`bebert.isa.COUNTERS`); the golden executor's strict token mode uses the same two functions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bebert.isa import COUNTER_INDEX, COUNTER_NAMES, EXEC_STAGES, Instr, Op, disassemble

COUNTERS = COUNTER_NAMES  # "load->compute", ... (12, in bebert.isa.COUNTERS order)


class TokenError(ValueError):
    """An instruction stream that deadlocks, leaves tokens behind or never halts."""


@dataclass(frozen=True)
class TokenReport:
    """What a passing check saw: tokens pushed and the highest level of each counter."""

    instructions: int
    pushed: dict[str, int]
    max_level: dict[str, int]


def pops(ins: Instr) -> list[int]:
    """Counters (indices into bebert.isa.COUNTERS) the instruction takes a token from."""
    return [COUNTER_INDEX[(s, ins.stage)] for s in sorted(ins.pops)]


def pushes(ins: Instr) -> list[int]:
    """Counters the instruction gives a token to when it ends."""
    return [COUNTER_INDEX[(ins.stage, d)] for d in sorted(ins.pushes)]


def check_tokens(instrs: list[Instr] | tuple[Instr, ...], queue_depth: int = 8) -> TokenReport:
    """Prove that `instrs` completes with balanced tokens; raise `TokenError` (one line) if not."""
    instrs = list(instrs)
    if queue_depth < 1:
        raise TokenError(f"queue_depth must be positive, got {queue_depth}")
    halts = [i for i, ins in enumerate(instrs) if ins.op == Op.HALT]
    if not halts:
        raise TokenError("program has no HALT: fetch would run past its end")
    if halts[0] != len(instrs) - 1:
        raise TokenError(f"instruction {halts[0]} is HALT but {len(instrs) - 1 - halts[0]} "
                         "instruction(s) follow it and would never run")
    body = instrs[:-1]
    pop_of = [pops(i) for i in body]
    push_of = [pushes(i) for i in body]
    queues = {s: deque() for s in EXEC_STAGES}
    n = len(COUNTERS)
    level, pushed, peak = [0] * n, [0] * n, [0] * n
    pc = 0
    while True:
        progress = False
        for q in queues.values():
            while q and all(level[c] > 0 for c in pop_of[q[0]]):
                i = q.popleft()
                for c in pop_of[i]:
                    level[c] -= 1
                for c in push_of[i]:
                    level[c] += 1
                    pushed[c] += 1
                    peak[c] = max(peak[c], level[c])
                progress = True
        while pc < len(body):
            q = queues[body[pc].stage]
            if len(q) >= queue_depth:
                break
            q.append(pc)
            pc += 1
            progress = True
        if not progress:
            break
    halted = pc == len(body)
    stuck = [(s, q[0]) for s, q in queues.items() if q]
    if stuck:
        heads = "; ".join(f"{s.name} waits at #{i} ({disassemble(instrs[i])})" for s, i in stuck)
        where = "fetch reached HALT" if halted else f"fetch blocked at #{pc}"
        tokens = ", ".join(f"{COUNTERS[c]}={level[c]}" for c in range(n) if level[c])
        raise TokenError(f"deadlock: {heads}; {where}; counters {tokens or 'all 0'}")
    left = [f"{COUNTERS[c]}={level[c]}" for c in range(n) if level[c]]
    if left:
        raise TokenError(f"unbalanced tokens: {', '.join(left)} left unconsumed at the end")
    return TokenReport(instructions=len(instrs), pushed=dict(zip(COUNTERS, pushed)),
                       max_level=dict(zip(COUNTERS, peak)))
