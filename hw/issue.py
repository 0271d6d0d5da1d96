"""Stage issue control: when a stage takes its queue head, how long it runs, its tokens."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

DURATION_BITS = 40


class StageIssuer(wiring.Component):
    """Issue and duration logic shared by the LOAD, COMPUTE and STORE stages.

    In an idle cycle t, with `head_valid` and every token the head pops available
    (`pop_prev_ok` / `pop_next_ok` where `head_flags` asks), `issue` is high: the stage
    pops the queue and the tokens (`pop_prev`, `pop_next` pulses in cycle t) and is busy in
    cycles t+1 .. t+D with D = `duration` (combinational from the head word, >= 1). In cycle
    t+D `last` is high and the flags captured at issue give the `push_prev` / `push_next`
    pulses, so pushed tokens are visible in t+D+1, when `busy` is low again.
    `head_flags` is (pop_prev, pop_next, push_prev, push_next), bit 0 first.

    `hold` stretches the instruction past D for a memory slower than the nominal one: in
    a cycle with one cycle left and `hold` high the stage stays busy (`last` low) and the
    count stays at one, so the instruction ends in the first cycle >= t+D without `hold`.
    The DMA stages hold until their last read beat / write response has come; at the
    nominal latency and bandwidth that is cycle t+D exactly, so `hold` is never high then.
    """

    head_valid: In(1)
    head_flags: In(4)
    duration: In(DURATION_BITS)
    pop_prev_ok: In(1)
    pop_next_ok: In(1)
    hold: In(1)
    issue: Out(1)
    busy: Out(1)
    last: Out(1)
    pop_prev: Out(1)
    pop_next: Out(1)
    push_prev: Out(1)
    push_next: Out(1)

    def elaborate(self, platform):
        m = Module()
        remain = Signal(DURATION_BITS)
        flags = Signal(4)
        f = self.head_flags
        tokens_ok = (~f[0] | self.pop_prev_ok) & (~f[1] | self.pop_next_ok)
        m.d.comb += [
            self.busy.eq(remain != 0),
            self.issue.eq(self.head_valid & (remain == 0) & tokens_ok),
            self.pop_prev.eq(self.issue & f[0]),
            self.pop_next.eq(self.issue & f[1]),
            self.last.eq((remain == 1) & ~self.hold),
            self.push_prev.eq(self.last & flags[2]),
            self.push_next.eq(self.last & flags[3]),
        ]
        with m.If(self.issue):
            m.d.sync += [remain.eq(self.duration), flags.eq(f)]
        with m.Elif((remain > 1) | self.last):
            m.d.sync += remain.eq(remain - 1)
        return m
