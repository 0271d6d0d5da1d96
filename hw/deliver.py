"""What `bebert rtl` puts next to the Verilog, and how it puts it there.

`write_deliverables(config, out)` writes
- `bebert_accel.v`: the accelerator (top `bebert_accel`, ready/valid ports, docs/ARCHITECTURE.md),
  and `bebert_accel.il`, the same design in RTLIL (what Yosys reads fastest: `bebert.hw.verilog`);
- `bebert_axi.v`: the same accelerator behind AXI (top `bebert_axi`: an AXI4 master per DRAM
  port group and for instructions, AXI4-Lite control; `bebert.hw.axi`);
- `bebert_accel.sdc` and `bebert_accel.lpf`: clock constraint stubs at the config's clock for
  either top (`clk`): SDC / XDC syntax (Vivado, OpenSTA, nextpnr's --sdc) and Lattice LPF
  (Diamond, nextpnr-ecp5 --lpf). Pins are the integrator's: both tops are IP blocks.

`staged_outputs(out)` makes a user's output folder change all at once or not at all: the
files are written into a staging folder beside it and moved in only when the block succeeds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bebert.config import AccelConfig

from .axi import AXI_TOP
from .verilog import TOP_NAME, axi_verilog_text, verilog_and_rtlil


def sdc_text(config: AccelConfig) -> str:
    period = 1000.0 / config.clock_mhz
    return (f"# bebert '{config.name}': clock constraint for {TOP_NAME} / {AXI_TOP} (SDC; Vivado reads it as XDC).\n"
            f"# {config.clock_mhz:g} MHz is the configured clock; `bebert rtl --pnr ecp5` measures what the RTL reaches.\n"
            f"create_clock -name clk -period {period:.3f} [get_ports clk]\n")


def lpf_text(config: AccelConfig) -> str:
    return (f"# bebert '{config.name}': clock constraint for {TOP_NAME} / {AXI_TOP} (Lattice LPF, nextpnr-ecp5 --lpf).\n"
            "# Pin LOCATE / IOBUF lines belong to the design that instantiates the block.\n"
            f"FREQUENCY PORT \"clk\" {config.clock_mhz:g} MHz;\n")


def write_deliverables(config: AccelConfig, out: Path) -> dict[str, Path]:
    """Write the files into `out`; {"verilog", "rtlil", "axi_wrapper", "sdc", "lpf"} -> path."""
    out.mkdir(parents=True, exist_ok=True)
    v, il = verilog_and_rtlil(config)
    texts = {"verilog": (f"{TOP_NAME}.v", v), "rtlil": (f"{TOP_NAME}.il", il),
             "axi_wrapper": (f"{AXI_TOP}.v", axi_verilog_text(config)),
             "sdc": (f"{TOP_NAME}.sdc", sdc_text(config)), "lpf": (f"{TOP_NAME}.lpf", lpf_text(config))}
    paths = {}
    for key, (name, text) in texts.items():
        paths[key] = out / name
        paths[key].write_text(text)
    return paths


@contextmanager
def staged_outputs(out: Path):
    """Yield a staging folder; on success move each file into `out` (each move atomic), on
    failure delete it and leave `out` untouched (not even created)."""
    out = Path(out)
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=parent))
    except OSError as e:
        raise OSError(f"cannot write into {parent}: {e.strerror}") from None
    try:
        yield stage
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
