"""The PE accumulators: shift-accumulate of bit-plane dot products."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.config import ACC_BITS

SHIFT_BITS = 4  # plane (0..7) + wshift (0..7)


class BitserialAccumulator(wiring.Component):
    """`rows` x `cols` signed 32-bit accumulators.

    In a cycle with `en`, each accumulator becomes `base + (dot << shift)` or, with
    `negate`, `base - (dot << shift)`, where base is 0 with `clear` (GEMM init) and the
    accumulator otherwise; the result wraps modulo 2^32. The compute stage drives `shift`
    with the activation plane p (plus the WBUF plane's `wshift` in AND mode, so 0..14) and
    `negate` with "plane p is the signed top plane" XOR `wneg`.
    `acc` shows the registered accumulators (updated at the end of the `en` cycle).
    """

    def __init__(self, rows: int, cols: int, dot_bits: int):
        for n, v in (("rows", rows), ("cols", cols), ("dot_bits", dot_bits)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"BitserialAccumulator: {n} must be a positive integer, got {v!r}")
        self.rows, self.cols = rows, cols
        dot = data.ArrayLayout(data.ArrayLayout(signed(dot_bits), cols), rows)
        acc = data.ArrayLayout(data.ArrayLayout(signed(ACC_BITS), cols), rows)
        super().__init__({"en": In(1), "clear": In(1), "negate": In(1), "shift": In(SHIFT_BITS),
                          "dot": In(dot), "acc": Out(acc)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            for r in range(self.rows):
                for c in range(self.cols):
                    term = Signal(signed(ACC_BITS), name=f"term{r}_{c}")
                    m.d.comb += term.eq(self.dot[r][c] << self.shift)
                    base = Mux(self.clear, 0, self.acc[r][c])
                    with m.If(self.negate):
                        m.d.sync += self.acc[r][c].eq(base - term)
                    with m.Else():
                        m.d.sync += self.acc[r][c].eq(base + term)
        return m
