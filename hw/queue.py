"""A stage queue: fetch writes instructions in program order, the stage takes its head."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bebert.isa import INSTR_BITS

from .ports import queue_head, queue_write


class StageQueue(wiring.Component):
    """An in-order queue of `depth` instruction words (a synchronous FIFO, first word through).

    `w` (`hw/ports.py queue_write`, fetch's side flipped): `w.rdy` is high while fewer than
    `depth` words are held at the start of the cycle (a pop in the same cycle does not make
    room); a word written with `w.en` at the end of cycle t is at the head from t+1 if the
    queue was empty. `head` (`queue_head`): `head.valid` / `head.word` show the oldest word,
    `head.pop` removes it at the end of the cycle.
    """

    def __init__(self, depth: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"a stage queue holds at least one word, got depth {depth!r}")
        self.depth = depth
        super().__init__({"w": In(queue_write()), "head": Out(queue_head())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFO(width=INSTR_BITS, depth=self.depth)
        m.d.comb += [fifo.w_data.eq(self.w.data), fifo.w_en.eq(self.w.en), self.w.rdy.eq(fifo.w_rdy),
                     self.head.valid.eq(fifo.r_rdy), self.head.word.eq(fifo.r_data), fifo.r_en.eq(self.head.pop)]
        return m
