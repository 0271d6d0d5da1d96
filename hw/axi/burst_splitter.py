"""Requests cut into AXI4 bursts (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .ports import ADDR_BITS, BOUNDARY, LEN_BITS, MAX_BURST


class BurstSplitter(wiring.Component):
    """Cuts (addr, beats) into AXI4 bursts: at most 256 beats, none across 4 KiB. `start`
    loads a request (addr aligned to the bus); each burst is offered on `burst_*` until
    `burst_ready`; `idle` when the last one is taken; `burst_last` marks it."""

    def __init__(self, bus: int):
        self.lg = (bus // 8).bit_length() - 1
        super().__init__({"start": In(1), "addr": In(ADDR_BITS), "beats": In(LEN_BITS + 1), "idle": Out(1),
                          "burst_valid": Out(1), "burst_ready": In(1), "burst_addr": Out(ADDR_BITS),
                          "burst_len": Out(9), "burst_last": Out(1)})

    def elaborate(self, platform):
        m = Module()
        addr, left = Signal(ADDR_BITS), Signal(LEN_BITS + 1)
        to_boundary = Signal(range(BOUNDARY + 1))
        n = Signal(9)
        m.d.comb += to_boundary.eq((BOUNDARY - addr[:12]) >> self.lg)
        m.d.comb += n.eq(Mux(left < MAX_BURST, left, MAX_BURST))
        m.d.comb += self.idle.eq((left == 0) & ~self.burst_valid)
        with m.If(self.start):
            m.d.sync += [addr.eq(self.addr), left.eq(self.beats)]
        with m.Elif(self.burst_valid):
            with m.If(self.burst_ready):
                m.d.sync += self.burst_valid.eq(0)
        with m.Elif(left != 0):  # register the next burst
            length = Mux(n < to_boundary, n, to_boundary)
            m.d.sync += [self.burst_valid.eq(1), self.burst_addr.eq(addr), self.burst_len.eq(length),
                         self.burst_last.eq(length == left), addr.eq(addr + (length << self.lg)),
                         left.eq(left - length)]
        return m
