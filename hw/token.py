"""The 12 dependency-token counters c[s -> d] (`bebert.isa.COUNTERS`), one per ordered stage pair."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import COUNTERS, N_STAGES, STAGE_NAMES, TOKEN_BITS

from .ports import token_port


class TokenCounters(wiring.Component):
    """Counter c[s -> d] (`TOKEN_BITS` bits, index `bebert.isa.COUNTER_INDEX[(s, d)]`) counts
    the tokens stage s has given stage d and d has not taken yet.

    `stages[s]` is stage s's token port (`hw/ports.py token_port`): bit d of
    `stages[s].push` adds one to c[s -> d] and bit s of `stages[d].pop` takes one from it, at the
    end of the cycle; a push and a pop of the same counter in one cycle cancel, and updates of
    different counters (from the four stages) are independent, so they add up. Bit s of
    `stages[d].pop_ok` is high while the registered c[s -> d] is > 0 (bit d of stage d's own
    port is 0: no counter). `clear` (the machine's start) zeroes every counter. `count` shows
    the counters, `COUNTERS` order, `TOKEN_BITS` bits each (for tests and waveforms).
    """

    def __init__(self):
        super().__init__({"clear": In(1), "stages": Out(token_port()).array(N_STAGES),
                          "count": Out(TOKEN_BITS * len(COUNTERS))})

    def elaborate(self, platform):
        m = Module()
        counts = []
        ok = [[Const(0, 1)] * N_STAGES for _ in range(N_STAGES)]  # ok[d][s]: c[s -> d] > 0
        for s, d in COUNTERS:
            count = Signal(TOKEN_BITS, name=f"c_{STAGE_NAMES[s]}_{STAGE_NAMES[d]}")
            counts.append(count)
            inc, dec = self.stages[s].push[d], self.stages[d].pop[s]
            ok[d][s] = count != 0
            with m.If(self.clear):
                m.d.sync += count.eq(0)
            with m.Elif(inc & ~dec):
                m.d.sync += count.eq(count + 1)
            with m.Elif(dec & ~inc):
                m.d.sync += count.eq(count - 1)
        for d in range(N_STAGES):
            m.d.comb += self.stages[d].pop_ok.eq(Cat(*ok[d]))
        m.d.comb += self.count.eq(Cat(*counts))
        return m
