"""bebert.hw: the accelerator in Amaranth, its Verilog, and RTL verification (cocotb + Icarus)."""

from .fetch import ErrorCode
from .top import Accelerator
from .verilog import generate_verilog

__all__ = ["Accelerator", "ErrorCode", "generate_verilog"]
