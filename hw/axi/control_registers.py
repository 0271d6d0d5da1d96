"""The AXI4-Lite control and status registers (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .ports import ADDR_BITS, AXIL_MEMBERS, signature


class ControlRegisters(wiring.Component):
    """The AXI4-Lite register file of the module docstring, wired to the accelerator's control port."""

    def __init__(self, bus: int):
        self.bus = bus
        super().__init__({"axil": Out(signature(AXIL_MEMBERS)), "start": Out(1), "base": Out(ADDR_BITS),
                          "busy": In(1), "done": In(1), "error": In(1), "error_code": In(4),
                          "error_pc": In(32), "cycles": In(32)})

    def elaborate(self, platform):
        m = Module()
        s = self.axil
        # Writes: hold AW and W until both have come, answer with B.
        aw_got, w_got, waddr, wdata = Signal(), Signal(), Signal(12), Signal(32)
        m.d.comb += [s.awready.eq(~aw_got & ~s.bvalid), s.wready.eq(~w_got & ~s.bvalid), s.bresp.eq(0)]
        with m.If(s.awvalid & s.awready):
            m.d.sync += [aw_got.eq(1), waddr.eq(s.awaddr)]
        with m.If(s.wvalid & s.wready):
            m.d.sync += [w_got.eq(1), wdata.eq(s.wdata)]
        m.d.sync += self.start.eq(0)
        with m.If(aw_got & w_got):
            m.d.sync += [aw_got.eq(0), w_got.eq(0), s.bvalid.eq(1)]
            with m.Switch(waddr[2:]):
                with m.Case(0x00 >> 2):
                    m.d.sync += self.start.eq(wdata[0])
                with m.Case(0x10 >> 2):
                    m.d.sync += self.base.eq(wdata)
        with m.If(s.bvalid & s.bready):
            m.d.sync += s.bvalid.eq(0)
        # Reads: one cycle after AR.
        m.d.comb += [s.arready.eq(~s.rvalid), s.rresp.eq(0)]
        with m.If(s.arvalid & s.arready):
            m.d.sync += s.rvalid.eq(1)
            with m.Switch(s.araddr[2:]):
                regs = {0x00: Cat(self.busy, self.done, self.error), 0x04: self.error_code, 0x08: self.error_pc,
                        0x0C: self.cycles, 0x10: self.base, 0x14: Const(self.bus // 8, 32)}
                for at, value in regs.items():
                    with m.Case(at >> 2):
                        m.d.sync += s.rdata.eq(value)
                with m.Default():
                    m.d.sync += s.rdata.eq(0)
        with m.If(s.rvalid & s.rready):
            m.d.sync += s.rvalid.eq(0)
        return m
