"""An accelerator read port onto an AXI4 read master (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out

from .burst_splitter import BurstSplitter
from .ports import ADDR_BITS, LEN_BITS, OUTSTANDING, ReadGroup, axi_read_members, signature


class ReadBridge(wiring.Component):
    """One accelerator read port (`port`, the accelerator's view flipped) onto an AXI4 read master (`axi`)."""

    def __init__(self, bus: int, aligned: bool):
        self.bus, self.aligned, self.nb = bus, aligned, bus // 8
        super().__init__({"port": Out(signature(ReadGroup("").accel_fields(bus), flip=True)),
                          "axi": Out(signature(axi_read_members(bus)))})

    def elaborate(self, platform):
        m = Module()
        p, a, nb = self.port, self.axi, self.nb
        lg = nb.bit_length() - 1
        off_bits = max(1, lg)
        m.submodules.split = sp = BurstSplitter(self.bus)
        m.submodules.info = info = SyncFIFO(width=off_bits + LEN_BITS, depth=OUTSTANDING)  # (offset, beats out)
        off = Signal(off_bits)
        m.d.comb += off.eq(p.req_addr[:lg] if lg and not self.aligned else 0)
        take = Signal()
        m.d.comb += [p.req_ready.eq(sp.idle & info.w_rdy), take.eq(p.req_valid & p.req_ready),
                     sp.start.eq(take), sp.addr.eq(p.req_addr & ~Const(nb - 1, ADDR_BITS)),
                     sp.beats.eq(p.req_len + (off != 0)), info.w_en.eq(take), info.w_data.eq(Cat(off, p.req_len))]
        m.d.comb += [a.arvalid.eq(sp.burst_valid), sp.burst_ready.eq(a.arready), a.araddr.eq(sp.burst_addr),
                     a.arlen.eq(sp.burst_len - 1), a.arsize.eq(lg), a.arburst.eq(1), a.rready.eq(1)]
        # R: realign and count the beats of the request at the head of `info`.
        h_off, h_len = info.r_data[:off_bits], info.r_data[off_bits:]
        prev, primed, sent = Signal(self.bus), Signal(), Signal(LEN_BITS)
        pair = Cat(prev, a.rdata)
        shifted = Signal(self.bus)
        with m.Switch(h_off):
            for o in range(nb if not self.aligned else 1):
                with m.Case(o):
                    m.d.comb += shifted.eq(pair[8 * o:8 * o + self.bus] if o else a.rdata)
        emit = Signal()
        m.d.comb += emit.eq(a.rvalid & info.r_rdy & ((h_off == 0) | primed))
        m.d.sync += [p.data_valid.eq(emit), p.data.eq(Mux(emit, shifted, p.data))]
        with m.If(a.rvalid & info.r_rdy):
            m.d.sync += prev.eq(a.rdata)
            with m.If(h_off != 0):
                m.d.sync += primed.eq(1)
        m.d.comb += info.r_en.eq(emit & (sent + 1 == h_len))
        with m.If(emit):
            m.d.sync += sent.eq(Mux(sent + 1 == h_len, 0, sent + 1))
            with m.If(sent + 1 == h_len):
                m.d.sync += primed.eq(0)
        return m
