"""Single-beat strobed writes at any address onto an AXI4 write master (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out

from .ports import ADDR_BITS, OUTSTANDING, StrobedWriteGroup, axi_write_members, signature


class StrobedWriteBridge(wiring.Component):
    """Single-beat strobed writes at any byte address onto an AXI4 write master (one or two
    single-beat AXI writes each: the bus word holding the first byte, and the next one when
    bytes spill into it)."""

    def __init__(self, bus: int):
        self.bus = bus
        super().__init__({"port": Out(signature(StrobedWriteGroup("").accel_fields(bus), flip=True)),
                          "axi": Out(signature(axi_write_members(bus)))})

    def elaborate(self, platform):
        m = Module()
        p, a, bus, nb = self.port, self.axi, self.bus, self.bus // 8
        lg = nb.bit_length() - 1
        m.submodules.bq = bq = SyncFIFO(width=1, depth=OUTSTANDING * 2)  # per AXI write: last of its beat?
        off = Signal(max(1, lg))
        m.d.comb += off.eq(p.addr[:lg] if lg else 0)
        wide_data, wide_strb = Signal(2 * bus), Signal(2 * nb)
        m.d.comb += [wide_data.eq(p.data << (off * 8)), wide_strb.eq(p.strb << off)]
        # Two slots (low word, high word), each an AW + W to send; a beat is taken when both are free.
        addr = [Signal(ADDR_BITS, name=f"addr{i}") for i in range(2)]
        data = [Signal(bus, name=f"data{i}") for i in range(2)]
        strb = [Signal(nb, name=f"strb{i}") for i in range(2)]
        aw_due = [Signal(name=f"aw_due{i}") for i in range(2)]
        w_due = [Signal(name=f"w_due{i}") for i in range(2)]
        idle = Signal()
        m.d.comb += idle.eq(~(aw_due[0] | aw_due[1] | w_due[0] | w_due[1]))
        m.d.comb += p.ready.eq(idle & (bq.level <= OUTSTANDING * 2 - 2))
        base = p.addr & ~Const(nb - 1, ADDR_BITS)
        with m.If(p.valid & p.ready):
            spill = wide_strb[nb:] != 0
            m.d.sync += [addr[0].eq(base), data[0].eq(wide_data[:bus]), strb[0].eq(wide_strb[:nb]),
                         addr[1].eq(base + nb), data[1].eq(wide_data[bus:]), strb[1].eq(wide_strb[nb:]),
                         aw_due[0].eq(1), w_due[0].eq(1), aw_due[1].eq(spill), w_due[1].eq(spill)]
        # AW and W go one slot at a time, low word first, each on its own handshake.
        cur = Signal()  # the slot being sent
        m.d.comb += cur.eq(~(aw_due[0] | w_due[0]))
        m.d.comb += [a.awvalid.eq(Mux(cur, aw_due[1], aw_due[0])), a.awaddr.eq(Mux(cur, addr[1], addr[0])),
                     a.awlen.eq(0), a.awsize.eq(lg), a.awburst.eq(1),
                     a.wvalid.eq(Mux(cur, w_due[1], w_due[0])), a.wdata.eq(Mux(cur, data[1], data[0])),
                     a.wstrb.eq(Mux(cur, strb[1], strb[0])), a.wlast.eq(1)]
        for i in range(2):
            with m.If((cur == i) & a.awvalid & a.awready):
                m.d.sync += aw_due[i].eq(0)
            with m.If((cur == i) & a.wvalid & a.wready):
                m.d.sync += w_due[i].eq(0)
        # B: count the AXI writes of each beat (bq: 1 = the beat's last write).
        m.d.comb += [bq.w_en.eq(a.awvalid & a.awready),
                     bq.w_data.eq(Mux(cur, 1, ~aw_due[1])), a.bready.eq(1), bq.r_en.eq(a.bvalid & bq.r_rdy)]
        m.d.sync += p.resp_valid.eq(a.bvalid & bq.r_rdy & bq.r_data)
        return m
