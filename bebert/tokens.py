"""Program-order token checker: is the program a valid sequential execution of the v3 machine?

The machine (docs/MACHINE_V3.md, "Stages and tokens") has four in-order stages and one
counter c[s -> d] for every ordered pair of different stages (`bebert.isa.COUNTERS`, named
`"load->compute"`, ... here). An instruction of stage d with pop bit s takes a token from
c[s -> d] as it issues; one of stage s with push bit d gives one to c[s -> d] when it ends.

`check_tokens` walks the program once, in program order, and requires what the compiler
promises and the golden executor relies on:

- every pop is preceded in program order by a push it consumes: the level of each counter,
  counted in program order, never goes below 0;
- every counter is back at 0 at the end (no token is left for nobody);
- the program ends in its only HALT.

That discipline never deadlocks, for any queue depth: the oldest instruction not yet
issued is in its stage's queue (fetch is in order, and a full queue that fetch waits on
holds only younger instructions) and heads it (its stage is in order), and every counter it
pops gets a token: each push before it in program order comes from an issued instruction,
which ends, and each pop of that counter before it (all in its own stage) is already taken. So the concurrent machine finishes, and it computes what the
sequential, program-order execution computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bebert.isa import COUNTER_NAMES, Instr, Op, disassemble, popped, pushed

COUNTERS = COUNTER_NAMES  # the counters' names, in `bebert.isa.COUNTERS` order


class TokenError(ValueError):
    """An instruction stream that pops before it pushes, leaves tokens behind or never halts."""


@dataclass(frozen=True)
class TokenReport:
    """What a passing check saw: tokens pushed and the highest program-order level of each counter."""

    instructions: int
    pushed: dict[str, int]
    max_level: dict[str, int]


def pops(ins: Instr) -> list[str]:
    """The counters `ins` takes a token from (c[s -> its stage] for each pop bit s)."""
    return [COUNTER_NAMES[c] for c in popped(ins)]


def pushes(ins: Instr) -> list[str]:
    """The counters `ins` gives a token to (c[its stage -> d] for each push bit d)."""
    return [COUNTER_NAMES[c] for c in pushed(ins)]


def check_tokens(instrs: list[Instr] | tuple[Instr, ...], queue_depth: int = 8) -> TokenReport:
    """Prove that `instrs` is token-correct in program order (hence finishes on a machine of
    any `queue_depth`); raise `TokenError` (one line) if not."""
    instrs = list(instrs)
    if queue_depth < 1:
        raise TokenError(f"queue_depth must be positive, got {queue_depth}")
    halts = [i for i, ins in enumerate(instrs) if ins.op == Op.HALT]
    if not halts:
        raise TokenError("program has no HALT: fetch would run past its end")
    if halts[0] != len(instrs) - 1:
        raise TokenError(f"instruction {halts[0]} is HALT but {len(instrs) - 1 - halts[0]} "
                         "instruction(s) follow it and would never run")
    level = dict.fromkeys(COUNTERS, 0)
    pushed = dict.fromkeys(COUNTERS, 0)
    peak = dict.fromkeys(COUNTERS, 0)
    for pc, ins in enumerate(instrs[:-1]):
        for c in pops(ins):
            if level[c] == 0:
                raise TokenError(f"instruction {pc} ({disassemble(ins)}) pops {c} before any push it could "
                                 f"consume in program order (a deadlock, or a race with the golden order)")
            level[c] -= 1
        for c in pushes(ins):
            level[c] += 1
            pushed[c] += 1
            peak[c] = max(peak[c], level[c])
    left = [f"{c}={level[c]}" for c in COUNTERS if level[c]]
    if left:
        raise TokenError(f"unbalanced tokens: {', '.join(left)} left unconsumed at the end")
    return TokenReport(instructions=len(instrs), pushed=pushed, max_level=peak)
