"""Verilog generation for the accelerator."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog

from bebert.config import AccelConfig
from bebert.files import atomic_write

from .top import Accelerator

TOP_NAME = "bebert_accel"


def verilog_text(config: AccelConfig) -> str:
    """The Verilog of `Accelerator(config)`, top module `bebert_accel` (deterministic)."""
    top = Accelerator(config)
    return verilog.convert(top, name=TOP_NAME, emit_src=False)


def generate_verilog(config: AccelConfig, out_dir: str | Path) -> Path:
    """Write `bebert_accel.v` into `out_dir` and return its path."""
    path = Path(out_dir) / f"{TOP_NAME}.v"
    text = verilog_text(config)
    if not path.exists() or path.read_text() != text:
        atomic_write(path, text)
    return path
