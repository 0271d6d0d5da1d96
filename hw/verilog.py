"""Verilog (and RTLIL) generation for the accelerator.

Amaranth builds RTLIL and turns it into Verilog with its own Yosys (`proc; memory_collect;
write_verilog`); `verilog_and_rtlil` keeps both texts of one elaboration. The RTLIL is what
Yosys reads fastest: its Verilog front end spends minutes on the vector unit's 26,000 lines,
`read_rtlil` a second (bench/results/yosys.json), so `bebert rtl` writes `bebert_accel.il`
beside the Verilog and `bebert.hw.resources` synthesises from it when it matches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from amaranth.back import rtlil
from amaranth.back.verilog import _convert_rtlil_text
from amaranth.hdl import ValueCastable
from amaranth.lib import wiring

from bebert.config import AccelConfig
from bebert.files import atomic_write

TOP_NAME = "bebert_accel"
RTLIL_HEADER = "# bebert: the RTLIL of {verilog} (sha256 {sha256}); yosys reads it faster than the Verilog\n"


def verilog_and_rtlil(config: AccelConfig, top=None, name: str = TOP_NAME) -> tuple[str, str]:
    """(Verilog, RTLIL) of `top` (default `Accelerator(config)`), module `name` (deterministic;
    the Verilog is exactly `amaranth.back.verilog.convert`'s)."""
    if top is None:
        from .top import Accelerator
        top = Accelerator(config)
    il = rtlil.convert(top, name=name, ports=top_ports(top), emit_src=False)
    v = _convert_rtlil_text(il)
    return v, RTLIL_HEADER.format(verilog=f"{name}.v", sha256=hashlib.sha256(v.encode()).hexdigest()) + il


def top_ports(component: wiring.Component) -> dict:
    """The Verilog ports of `component`: every signal of its signature, named by its path
    joined with one underscore (`rd.req_valid` -> `rd_req_valid`, the names of
    docs/MACHINE_V3.md's port table), with its direction."""
    from amaranth.hdl._ir import PortDirection

    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        ports["_".join(map(str, path))] = (value, PortDirection.Input if member.flow == wiring.In
                                           else PortDirection.Output)
    return ports


def verilog_text(config: AccelConfig) -> str:
    """The Verilog of `Accelerator(config)`, top module `bebert_accel` (deterministic)."""
    return verilog_and_rtlil(config)[0]


def axi_verilog_text(config: AccelConfig) -> str:
    """The Verilog of the AXI wrapper `bebert.hw.axi.AxiAccelerator(config)`, top module `bebert_axi`."""
    from .axi import AXI_TOP, AxiAccelerator

    return verilog_and_rtlil(config, AxiAccelerator(config), AXI_TOP)[0]


def generate_verilog(config: AccelConfig, out_dir: str | Path) -> Path:
    """Write `bebert_accel.v` (and its RTLIL twin `bebert_accel.il`) into `out_dir`; the Verilog's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{TOP_NAME}.v"
    text, il = verilog_and_rtlil(config)
    for p, t in ((path, text), (out / f"{TOP_NAME}.il", il)):
        if not p.exists() or p.read_text() != t:
            atomic_write(p, t)
    return path


def rtlil_twin(verilog: Path) -> str | None:
    """The RTLIL written with `verilog` (same stem, `.il`) if its header names this very text, else None."""
    il = verilog.with_suffix(".il")
    if not il.is_file():
        return None
    text = il.read_text()
    want = RTLIL_HEADER.format(verilog=verilog.name, sha256=hashlib.sha256(verilog.read_bytes()).hexdigest())
    return text if text.startswith(want) else None
