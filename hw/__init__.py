"""bebert.hw: the accelerator in Amaranth, its Verilog, and RTL verification (cocotb + Icarus).

The top-level names are imported lazily, so that one block (`bebert.hw.packer`, ...) can be
imported and tested without elaborating the whole design's imports.
"""

__all__ = ["Accelerator", "ErrorCode", "generate_verilog"]


def __getattr__(name):
    if name == "ErrorCode":
        from .fetch import ErrorCode
        return ErrorCode
    if name == "Accelerator":
        from .top import Accelerator
        return Accelerator
    if name == "generate_verilog":
        from .verilog import generate_verilog
        return generate_verilog
    raise AttributeError(f"module 'bebert.hw' has no attribute '{name}'")
