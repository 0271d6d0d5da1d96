"""The dependency-token counters, one per name in `bebert.isa.COUNTERS` (the token table)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import COUNTERS

TOKEN_BITS = 16
NAMES = COUNTERS


class TokenCounters(wiring.Component):
    """For each counter X: `X_inc` / `X_dec` pulses add / remove one token at the end of the
    cycle (both in one cycle cancel); `X_avail` is high while the registered count is > 0.
    `clear` (the machine's start) zeroes all counters.
    """

    def __init__(self):
        members = {"clear": In(1)}
        for n in NAMES:
            members |= {f"{n}_inc": In(1), f"{n}_dec": In(1), f"{n}_avail": Out(1)}
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        for n in NAMES:
            count = Signal(TOKEN_BITS, name=f"{n}_count")
            inc, dec = getattr(self, f"{n}_inc"), getattr(self, f"{n}_dec")
            m.d.comb += getattr(self, f"{n}_avail").eq(count != 0)
            with m.If(self.clear):
                m.d.sync += count.eq(0)
            with m.Elif(inc & ~dec):
                m.d.sync += count.eq(count + 1)
            with m.Elif(dec & ~inc):
                m.d.sync += count.eq(count - 1)
        return m
