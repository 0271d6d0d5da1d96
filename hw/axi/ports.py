"""The AXI wrapper's vocabulary: the accelerator's DRAM port groups, the AXI4 / AXI4-Lite
signal sets, and signatures built from {name: (direction, width)} tables."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ports import ADDR_BITS, LEN_BITS

MAX_BURST = 256  # AXI4 INCR bursts: at most 256 beats ...
BOUNDARY = 4096  # ... and never across a 4 KiB boundary
OUTSTANDING = 4  # requests a bridge keeps in flight
ID_BITS = 1  # AXI IDs: one ID (0) per master, so every response comes back in order


@dataclass(frozen=True)
class ReadGroup:
    """A DRAM read port of the accelerator: `<prefix>_req_*` and `<prefix>_data*`."""

    prefix: str
    aligned: bool = True

    def accel_fields(self, bus: int) -> dict[str, tuple[str, int]]:  # name -> (direction seen by the accelerator, width)
        return {"req_valid": ("out", 1), "req_ready": ("in", 1), "req_addr": ("out", ADDR_BITS),
                "req_len": ("out", LEN_BITS), "data_valid": ("in", 1), "data": ("in", bus)}


@dataclass(frozen=True)
class WriteGroup:
    """A DRAM burst write port: `<prefix>_req_*`, `<prefix>_data*` (optional strobes), `<prefix>_resp_valid`."""

    prefix: str
    strobes: bool = False

    def accel_fields(self, bus: int) -> dict[str, tuple[str, int]]:
        f = {"req_valid": ("out", 1), "req_ready": ("in", 1), "req_addr": ("out", ADDR_BITS),
             "req_len": ("out", LEN_BITS), "data_valid": ("out", 1), "data_ready": ("in", 1),
             "data": ("out", bus), "resp_valid": ("in", 1)}
        return f | ({"data_strb": ("out", bus // 8)} if self.strobes else {})


@dataclass(frozen=True)
class StrobedWriteGroup:
    """Single-beat writes at any byte address: `<prefix>_valid/ready/addr/data/strb`, `<prefix>_resp_valid`."""

    prefix: str

    def accel_fields(self, bus: int) -> dict[str, tuple[str, int]]:
        return {"valid": ("out", 1), "ready": ("in", 1), "addr": ("out", ADDR_BITS), "data": ("out", bus),
                "strb": ("out", bus // 8), "resp_valid": ("in", 1)}


# The accelerator's DRAM ports (ISA v3, docs/ARCHITECTURE.md): LOAD reads, the output path's and the
# vector unit's single-beat strobed writes, the vector unit's reads; all bus-aligned. A new port set is a new list.
PORT_GROUPS = (ReadGroup("rd"), StrobedWriteGroup("owr"), ReadGroup("vrd"), StrobedWriteGroup("vwr"))


def axi_read_members(bus: int) -> dict[str, tuple[str, int]]:
    """AXI4 read master signals (direction seen by the master)."""
    return {"arid": ("out", ID_BITS), "araddr": ("out", ADDR_BITS), "arlen": ("out", 8), "arsize": ("out", 3), "arburst": ("out", 2),
            "arvalid": ("out", 1), "arready": ("in", 1),
            "rid": ("in", ID_BITS), "rdata": ("in", bus), "rresp": ("in", 2), "rlast": ("in", 1), "rvalid": ("in", 1), "rready": ("out", 1)}


def axi_write_members(bus: int) -> dict[str, tuple[str, int]]:
    """AXI4 write master signals (direction seen by the master)."""
    return {"awid": ("out", ID_BITS), "awaddr": ("out", ADDR_BITS), "awlen": ("out", 8), "awsize": ("out", 3), "awburst": ("out", 2),
            "awvalid": ("out", 1), "awready": ("in", 1),
            "wdata": ("out", bus), "wstrb": ("out", bus // 8), "wlast": ("out", 1), "wvalid": ("out", 1),
            "wready": ("in", 1), "bid": ("in", ID_BITS), "bresp": ("in", 2), "bvalid": ("in", 1), "bready": ("out", 1)}


AXIL_MEMBERS = {"awaddr": ("in", 12), "awvalid": ("in", 1), "awready": ("out", 1),
                "wdata": ("in", 32), "wstrb": ("in", 4), "wvalid": ("in", 1), "wready": ("out", 1),
                "bresp": ("out", 2), "bvalid": ("out", 1), "bready": ("in", 1),
                "araddr": ("in", 12), "arvalid": ("in", 1), "arready": ("out", 1),
                "rdata": ("out", 32), "rresp": ("out", 2), "rvalid": ("out", 1), "rready": ("in", 1)}


def members(fields: dict[str, tuple[str, int]], flip: bool = False) -> dict:
    """Signature members from {name: (direction, width)}: "out" is Out, "in" is In (`flip`: the reverse)."""
    return {n: (In(w) if (d == "out") == flip else Out(w)) for n, (d, w) in fields.items()}


def signature(fields: dict[str, tuple[str, int]], flip: bool = False) -> wiring.Signature:
    return wiring.Signature(members(fields, flip))


