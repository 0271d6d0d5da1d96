"""bebert.hw: the accelerator in Amaranth, its Verilog, and RTL verification (cocotb + Icarus)."""

from .top import Accelerator
from .verilog import generate_verilog

__all__ = ["Accelerator", "generate_verilog"]
