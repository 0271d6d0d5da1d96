"""Stage issue control: the one stage interface, and when a stage takes its queue head."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import N_STAGES, POP_LSB, PUSH_LSB

from .ports import queue_head, token_port

DURATION_BITS = 40

# What every stage (LOAD, COMPUTE, OUTPUT, VECTOR) shows the rest of the machine, from the
# stage's side: its queue head (`head.valid`, `head.word` in, `head.pop` out), its token port
# (`tokens.pop_ok` in, `tokens.pop` / `tokens.push` out, bit s = stage s) and `busy`.
StageSignature = wiring.Signature({"head": In(queue_head()), "tokens": In(token_port()), "busy": Out(1)})


class StageIssuer(wiring.Component):
    """Issue and duration logic shared by the four stages.

    `ctl` is the stage's interface (`StageSignature`); a stage forwards its own `ctl` here with
    `wiring.connect(m, wiring.flipped(self.ctl), issuer.ctl)`. The head word's pop mask is
    bits [11:8], its push mask bits [15:12] (`bebert.isa.POP_LSB` / `PUSH_LSB`), bit s = stage s.

    In an idle cycle t, with `head.valid` and every counter the head pops available
    (`tokens.pop_ok` covers the pop mask), `issue` is high: the stage pops the queue
    (`head.pop`) and the tokens (`tokens.pop` = the pop mask, in cycle t) and is busy in cycles
    t+1 .. t+D with D = `duration` (combinational from the head word, >= 1). In cycle t+D `last`
    is high and `tokens.push` carries the push mask captured at issue, so pushed tokens count
    from t+D+1, when `busy` is low and the next instruction may issue.

    `hold` stretches the instruction past D for a memory slower than the nominal one: in a
    cycle with one cycle left and `hold` high the stage stays busy (`last` low) and the count
    stays at one, so the instruction ends in the first cycle >= t+D without `hold`. At the
    nominal memory a stage's `hold` is never high in cycle t+D.
    """

    ctl: Out(StageSignature)
    duration: In(DURATION_BITS)
    hold: In(1)
    issue: Out(1)
    last: Out(1)

    def elaborate(self, platform):
        m = Module()
        remain = Signal(DURATION_BITS)
        push_mask = Signal(N_STAGES)
        word = self.ctl.head.word
        pop_mask = word[POP_LSB:POP_LSB + N_STAGES]
        tokens_ok = (pop_mask & ~self.ctl.tokens.pop_ok) == 0
        m.d.comb += [
            self.ctl.busy.eq(remain != 0),
            self.issue.eq(self.ctl.head.valid & (remain == 0) & tokens_ok),
            self.ctl.head.pop.eq(self.issue),
            self.last.eq((remain == 1) & ~self.hold),
        ]
        with m.If(self.issue):
            m.d.comb += self.ctl.tokens.pop.eq(pop_mask)
        with m.If(self.last):
            m.d.comb += self.ctl.tokens.push.eq(push_mask)
        with m.If(self.issue):
            m.d.sync += [remain.eq(self.duration), push_mask.eq(word[PUSH_LSB:PUSH_LSB + N_STAGES])]
        with m.Elif((remain > 1) | self.last):
            m.d.sync += remain.eq(remain - 1)
        return m
