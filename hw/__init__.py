"""bebert.hw: the accelerator in Amaranth, its Verilog (bare and behind AXI), RTL verification (cocotb + Verilator or Icarus), synthesis and ECP5 place and route."""

from .fetch import ErrorCode
from .top import Accelerator
from .verilog import generate_verilog

__all__ = ["Accelerator", "ErrorCode", "generate_verilog"]
