"""Cycle-accurate performance simulator of the bebert accelerator (Numba).

`simulate(program)` returns a `SimResult` (cycles, busy cycles per unit, utilization, DRAM
bytes, instruction counts, stalls) whose cycle count equals the RTL's exactly; a program
that deadlocks on its tokens raises `SimError`.
"""

from .simulator import SimError, SimResult, duration, simulate

__all__ = ["SimError", "SimResult", "duration", "simulate"]
