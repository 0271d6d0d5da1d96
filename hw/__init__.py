"""bebert.hw: the accelerator in Amaranth, its Verilog, and RTL verification (cocotb).

`Accelerator` and `generate_verilog` are imported on first use, so that a block
(`bebert.hw.decoder`, `bebert.hw.ports`, ...) can be imported without elaborating the rest.
"""

from .fetch import ErrorCode

__all__ = ["Accelerator", "ErrorCode", "generate_verilog"]


def __getattr__(name):
    if name == "Accelerator":
        from .top import Accelerator
        return Accelerator
    if name == "generate_verilog":
        from .verilog import generate_verilog
        return generate_verilog
    raise AttributeError(f"module 'bebert.hw' has no attribute {name!r}")
