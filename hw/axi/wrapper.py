"""`AxiAccelerator`: the accelerator with its bridges (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from bebert.config import AccelConfig

from ..top import Accelerator
from .control_registers import ControlRegisters
from .instruction_fetch import InstructionFetch
from .ports import AXIL_MEMBERS, PORT_GROUPS, ReadGroup, WriteGroup, axi_read_members, axi_write_members, members
from .read_bridge import ReadBridge
from .strobed_write_bridge import StrobedWriteBridge
from .write_bridge import WriteBridge


def _bridge(group, bus: int) -> wiring.Component:
    if isinstance(group, ReadGroup):
        return ReadBridge(bus, group.aligned)
    if isinstance(group, WriteGroup):
        return WriteBridge(bus, group.strobes)
    return StrobedWriteBridge(bus)


def _axi_members(group, bus: int) -> dict[str, tuple[str, int]]:
    return axi_read_members(bus) if isinstance(group, ReadGroup) else axi_write_members(bus)


class AxiAccelerator(wiring.Component):
    """`Accelerator(config)` with an AXI4 master per port group (`groups`, default
    `PORT_GROUPS`) and one for instructions, and the AXI4-Lite control registers (module docstring)."""

    def __init__(self, config: AccelConfig, groups=PORT_GROUPS):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"AxiAccelerator needs an AccelConfig, got {type(config).__name__}")
        self.config, self.groups = config, tuple(groups)
        bus = config.bus_bits
        ports = {}
        for g in self.groups + (ReadGroup("imem", aligned=False),):
            ports |= members({f"m_axi_{g.prefix}_{n}": dw for n, dw in _axi_members(g, bus).items()})
        ports |= members({f"s_axil_{n}": dw for n, dw in AXIL_MEMBERS.items()})
        ports |= {"irq_done": Out(1)}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        bus = self.config.bus_bits
        m.submodules.accel = acc = Accelerator(self.config)
        m.submodules.regs = regs = ControlRegisters(bus)
        m.submodules.fetch_mem = fmem = ReadBridge(bus, aligned=False)
        m.submodules.imem = imem = InstructionFetch(bus)
        # Control and status.
        m.d.comb += [acc.start.eq(regs.start), regs.busy.eq(acc.busy), regs.done.eq(acc.done),
                     regs.error.eq(acc.error), regs.error_code.eq(acc.error_code), regs.error_pc.eq(acc.error_pc),
                     regs.cycles.eq(acc.cycles), self.irq_done.eq(acc.done)]
        self._to_axi(m, regs.axil, "s_axil", AXIL_MEMBERS)
        # Instructions: fetch -> InstructionFetch -> a read bridge -> m_axi_imem.
        m.d.comb += [imem.imem_addr.eq(acc.imem_addr), acc.imem_data.eq(imem.imem_data),
                     acc.imem_valid.eq(imem.imem_valid), imem.base.eq(regs.base), imem.active.eq(acc.busy),
                     imem.flush.eq(regs.start & ~acc.busy)]
        wiring.connect(m, imem.mem, fmem.port)
        self._to_axi(m, fmem.axi, "m_axi_imem", axi_read_members(bus))
        # DRAM port groups: the accelerator's `<prefix>_*` ports -> a bridge -> m_axi_<prefix>.
        for g in self.groups:
            br = m.submodules[f"{g.prefix}_bridge"] = _bridge(g, bus)
            for name, (direction, _) in g.accel_fields(bus).items():
                ours, theirs = getattr(br.port, name), getattr(getattr(acc, g.prefix), name)
                m.d.comb += ours.eq(theirs) if direction == "out" else theirs.eq(ours)
            self._to_axi(m, br.axi, f"m_axi_{g.prefix}", _axi_members(g, bus))
        return m

    def _to_axi(self, m, inner, prefix: str, fields: dict) -> None:
        """Wire a bridge's AXI members to the top's flat `prefix_*` ports."""
        for n, (d, _) in fields.items():
            ours, top = getattr(inner, n), getattr(self, f"{prefix}_{n}")
            m.d.comb += top.eq(ours) if d == "out" else ours.eq(top)
