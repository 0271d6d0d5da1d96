"""The XNOR-popcount array: one bit-plane word per row against one sign word per column."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


def popcount(m: Module, bits, name: str):
    """A balanced adder tree counting the ones of `bits`."""
    level = [bits[i] for i in range(len(bits))]
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    out = Signal(range(len(bits) + 1), name=name)
    m.d.comb += out.eq(level[0])
    return out


class PopcountArray(wiring.Component):
    """`rows` x `cols` signed dot products of `width`-bit words, registered.

    Row r's word is `a[r*width:(r+1)*width]`, column c's `s[c*width:(c+1)*width]`
    (bit 1 = weight +1, 0 = weight -1). In the cycle after `a` and `s` are presented,
    `dot[r][c] = 2 * popcount(a_r & s_c) - popcount(a_r)`, the +-1 dot product over the
    active bits of the plane.
    """

    def __init__(self, rows: int, cols: int, width: int):
        for n, v in (("rows", rows), ("cols", cols), ("width", width)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"PopcountArray: {n} must be a positive integer, got {v!r}")
        self.rows, self.cols, self.width = rows, cols, width
        dot = data.ArrayLayout(data.ArrayLayout(signed(width.bit_length() + 1), cols), rows)
        super().__init__({"a": In(rows * width), "s": In(cols * width), "dot": Out(dot)})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        for r in range(self.rows):
            a_r = self.a[r * w:(r + 1) * w]
            pa = popcount(m, a_r, f"pa{r}")
            for c in range(self.cols):
                pas = popcount(m, a_r & self.s[c * w:(c + 1) * w], f"pas{r}_{c}")
                m.d.sync += self.dot[r][c].eq(2 * pas - pa)
        return m
