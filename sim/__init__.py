"""Cycle-accurate performance simulator of the bebert accelerator (Numba).

`simulate(program)` returns a `SimResult` (cycles, busy cycles per unit, utilization, DRAM
bytes, instruction counts, stalls) whose cycle count equals the RTL's exactly; a program
that deadlocks on its tokens raises `SimError`. Every ISA v3 instruction is timed (`bebert.timing`, VEC by
`bebert.vector.vec_cycles`). `sim.energy` prices a run, `sim.report` turns it into the
`bebert sim` report (roofline, regions, layers, members) and figures.
"""

from .simulator import SimError, SimResult, duration, simulate

__all__ = ["SimError", "SimResult", "duration", "simulate"]
