"""The instruction port served from memory through a read port (bebert.hw.axi)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import INSTR_BITS

from .ports import ADDR_BITS, ReadGroup, signature


class InstructionFetch(wiring.Component):
    """The instruction port served from memory through a read port (`mem`, any alignment):
    while `active` (the accelerator is busy), a new index on `imem_addr` starts a read of its
    16 bytes at `base + 16 * index`; the word is then shown with `imem_valid` (the cycle after
    the index is presented) until the index changes. `flush` (a new run) forgets the word held
    and the one in flight."""

    def __init__(self, bus: int):
        self.bus = bus
        self.beats = -(-INSTR_BITS // bus)
        super().__init__({"imem_addr": In(ADDR_BITS), "imem_data": Out(INSTR_BITS), "imem_valid": Out(1),
                          "base": In(ADDR_BITS), "active": In(1), "flush": In(1),
                          "mem": Out(signature(ReadGroup("").accel_fields(bus)))})

    def elaborate(self, platform):
        m = Module()
        r = self.mem
        word, word_addr, fetch_addr = Signal(self.beats * self.bus), Signal(ADDR_BITS), Signal(ADDR_BITS)
        have, busy, discard, got = Signal(), Signal(), Signal(), Signal(range(self.beats + 1))
        hit = Signal()
        m.d.comb += hit.eq(have & (word_addr == self.imem_addr))
        m.d.sync += [self.imem_valid.eq(hit & ~self.flush), self.imem_data.eq(word[:INSTR_BITS])]
        m.d.comb += [r.req_addr.eq(self.base + (fetch_addr << 4)), r.req_len.eq(self.beats)]
        with m.If(self.active & ~busy & ~r.req_valid & ~self.flush & ~hit):
            m.d.sync += [r.req_valid.eq(1), fetch_addr.eq(self.imem_addr)]
        with m.If(r.req_valid & r.req_ready):
            m.d.sync += [r.req_valid.eq(0), busy.eq(1), got.eq(0), have.eq(0)]
        with m.If(busy & r.data_valid):
            m.d.sync += [word.eq(Cat(word[self.bus:], r.data)) if self.beats > 1 else word.eq(r.data),
                         got.eq(got + 1)]
            with m.If(got + 1 == self.beats):
                m.d.sync += [busy.eq(0), have.eq(~discard & ~self.flush), discard.eq(0), word_addr.eq(fetch_addr)]
        with m.If(self.flush):
            m.d.sync += have.eq(0)
            with m.If(busy | r.req_valid):
                m.d.sync += discard.eq(1)
        return m
