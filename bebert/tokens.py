"""Dependency-token checker: does an instruction stream finish on the decoupled machine?

`check_tokens` runs the stage queues abstractly (docs/ARCHITECTURE.md, "The machine"):
fetch dispatches in program order and blocks while the target queue holds `queue_depth`
instructions; HALT stops fetching; each stage issues its queue head, in order, once every
counter the head pops is positive, and the head's pushes then count. Durations are left
out: every counter has exactly one consumer stage and stages are in order, so whether the
program finishes does not depend on timing (an enabled issue stays enabled until taken).
The program passes when fetch reached HALT, every queue drained and every counter is back
at 0. The stages, the counters and which flag moves which are `bebert.isa`'s token table
(`PIPELINE`, `COUNTERS`, `TOKEN_FLAGS`); nothing here names a counter.

A leaf: the compiler proves its programs with it, and `bebert.validate` refuses programs
read from disk that fail it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bebert.isa import COUNTERS, PIPELINE, Instr, Op, disassemble


class TokenError(ValueError):
    """An instruction stream that deadlocks, leaves tokens behind or never halts."""


@dataclass(frozen=True)
class TokenReport:
    """What a passing check saw: tokens pushed and the highest level of each counter."""

    instructions: int
    pushed: dict[str, int]
    max_level: dict[str, int]


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
    queues = {s: deque() for s in PIPELINE}
    level = dict.fromkeys(COUNTERS, 0)
    pushed = dict.fromkeys(COUNTERS, 0)
    peak = dict.fromkeys(COUNTERS, 0)
    pc, halted = 0, False
    while True:
        progress = False
        for q in queues.values():
            while q and all(level[c] > 0 for c in instrs[q[0]].pops):
                ins = instrs[q.popleft()]
                for c in ins.pops:
                    level[c] -= 1
                for c in ins.pushes:
                    level[c] += 1
                    pushed[c] += 1
                    peak[c] = max(peak[c], level[c])
                progress = True
        while not halted:
            ins = instrs[pc]
            if ins.op == Op.HALT:
                halted = True
                progress = True
                break
            q = queues[ins.stage]
            if len(q) >= queue_depth:
                break
            q.append(pc)
            pc += 1
            progress = True
        if not progress:
            break
    stuck = [(s, q[0]) for s, q in queues.items() if q]
    if stuck:
        heads = "; ".join(f"{s.name} waits at #{i} ({disassemble(instrs[i])})" for s, i in stuck)
        where = "fetch reached HALT" if halted else f"fetch blocked at #{pc}"
        tokens = ", ".join(f"{c}={level[c]}" for c in COUNTERS)
        raise TokenError(f"deadlock: {heads}; {where}; counters {tokens}")
    left = [f"{c}={level[c]}" for c in COUNTERS if level[c]]
    if left:
        raise TokenError(f"unbalanced tokens: {', '.join(left)} left unconsumed at the end")
    return TokenReport(instructions=len(instrs), pushed=pushed, max_level=peak)
