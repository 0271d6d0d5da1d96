"""An accelerator burst write port onto an AXI4 write master (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out

from .burst_splitter import BurstSplitter
from .ports import OUTSTANDING, WriteGroup, axi_write_members, signature


class WriteBridge(wiring.Component):
    """One accelerator burst write port onto an AXI4 write master."""

    def __init__(self, bus: int, strobes: bool = False):
        self.bus, self.strobes = bus, strobes
        super().__init__({"port": Out(signature(WriteGroup("", strobes).accel_fields(bus), flip=True)),
                          "axi": Out(signature(axi_write_members(bus)))})

    def elaborate(self, platform):
        m = Module()
        p, a = self.port, self.axi
        lg = (self.bus // 8).bit_length() - 1
        m.submodules.split = sp = BurstSplitter(self.bus)
        m.submodules.wq = wq = SyncFIFO(width=9, depth=OUTSTANDING * 2)  # burst lengths, for WLAST
        m.submodules.bq = bq = SyncFIFO(width=1, depth=OUTSTANDING * 2)  # per burst: last of its request?
        take = Signal()
        m.d.comb += [p.req_ready.eq(sp.idle), take.eq(p.req_valid & p.req_ready), sp.start.eq(take),
                     sp.addr.eq(p.req_addr), sp.beats.eq(p.req_len)]
        m.d.comb += [a.awvalid.eq(sp.burst_valid & wq.w_rdy & bq.w_rdy), a.awaddr.eq(sp.burst_addr),
                     a.awlen.eq(sp.burst_len - 1), a.awsize.eq(lg), a.awburst.eq(1),
                     sp.burst_ready.eq(a.awready & wq.w_rdy & bq.w_rdy)]
        aw = Signal()
        m.d.comb += [aw.eq(a.awvalid & a.awready), wq.w_en.eq(aw), wq.w_data.eq(sp.burst_len),
                     bq.w_en.eq(aw), bq.w_data.eq(sp.burst_last)]
        # W: the accelerator's beats, WLAST at the end of each burst.
        beat = Signal(9)
        m.d.comb += [a.wvalid.eq(p.data_valid & wq.r_rdy), p.data_ready.eq(a.wready & wq.r_rdy), a.wdata.eq(p.data),
                     a.wstrb.eq(p.data_strb if self.strobes else Const(-1, self.bus // 8)),
                     a.wlast.eq(beat + 1 == wq.r_data)]
        with m.If(a.wvalid & a.wready):
            m.d.sync += beat.eq(Mux(a.wlast, 0, beat + 1))
        m.d.comb += wq.r_en.eq(a.wvalid & a.wready & a.wlast)
        # B: one pulse per request, when its last burst is answered.
        m.d.comb += [a.bready.eq(1), bq.r_en.eq(a.bvalid & bq.r_rdy)]
        m.d.sync += p.resp_valid.eq(a.bvalid & bq.r_rdy & bq.r_data)
        return m
