"""Verilog generation for the accelerator."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ValueCastable
from amaranth.lib import wiring

from bebert.config import AccelConfig
from bebert.files import atomic_write

TOP_NAME = "bebert_accel"


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
    from .top import Accelerator

    top = Accelerator(config)
    return verilog.convert(top, name=TOP_NAME, ports=top_ports(top), emit_src=False)


def generate_verilog(config: AccelConfig, out_dir: str | Path) -> Path:
    """Write `bebert_accel.v` into `out_dir` and return its path."""
    path = Path(out_dir) / f"{TOP_NAME}.v"
    text = verilog_text(config)
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text)
    return path
