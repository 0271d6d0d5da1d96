"""The popcount array: one bit-plane word per row against one word per column, XNOR or AND."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

CHUNK_BITS = 8  # popcounts are summed from 8-bit lookups


class PopcountArray(wiring.Component):
    """`rows` x `cols` signed dot products of `width`-bit words, registered.

    Row r's word is `a[r*width:(r+1)*width]`, column c's `s[c*width:(c+1)*width]`. In the
    cycle after `a`, `s` and `and_mode` are presented with `en`, `dot[r][c]` is

    - XNOR (`and_mode` = 0; s holds weight signs, bit 1 = +1, 0 = -1):
      `2 * popcount(a_r & s_c) - popcount(a_r)`, the +-1 dot product over the active bits;
    - AND (`and_mode` = 1; s holds one 0/1 bit-plane of an activation tensor):
      `popcount(a_r & s_c)`;

    without `en` `dot` holds its value. Both modes share the one `popcount(a_r & s_c)` per
    PE; the mode is a per-instruction mux after it (and `popcount(a_r)`, one per row).

    Each popcount adds the counts of its 8-bit chunks, looked up in a shared 256-entry
    table (read combinationally). For synthesis the table is the usual 8-input popcount
    logic; for an event-driven simulator it is one array read instead of a tree of
    single-bit adders, several times faster.
    """

    def __init__(self, rows: int, cols: int, width: int):
        for n, v in (("rows", rows), ("cols", cols), ("width", width)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"PopcountArray: {n} must be a positive integer, got {v!r}")
        if width % CHUNK_BITS:
            raise ValueError(f"PopcountArray: width must be a multiple of {CHUNK_BITS}, got {width}")
        self.rows, self.cols, self.width = rows, cols, width
        dot = data.ArrayLayout(data.ArrayLayout(signed(width.bit_length() + 1), cols), rows)
        super().__init__({"en": In(1), "a": In(rows * width), "s": In(cols * width), "and_mode": In(1), "dot": Out(dot)})

    def elaborate(self, platform):
        m = Module()
        W = self.width
        m.submodules.chunk_popcount = table = Memory(
            shape=CHUNK_BITS.bit_length(), depth=1 << CHUNK_BITS,
            init=[bin(i).count("1") for i in range(1 << CHUNK_BITS)])

        def popcount(x, name):
            counts = []
            for i in range(0, len(x), CHUNK_BITS):
                port = table.read_port(domain="comb")
                m.d.comb += port.addr.eq(x[i:i + CHUNK_BITS])
                counts.append(port.data)
            while len(counts) > 1:  # balanced adder tree over the chunk counts
                pairs = [counts[i] + counts[i + 1] for i in range(0, len(counts) - 1, 2)]
                counts = pairs + ([counts[-1]] if len(counts) % 2 else [])
            out = Signal(range(len(x) + 1), name=name)
            m.d.comb += out.eq(counts[0])
            return out

        for r in range(self.rows):
            a_r = self.a[r * W:(r + 1) * W]
            pa = popcount(a_r, f"pa{r}")
            for c in range(self.cols):
                pas = popcount(a_r & self.s[c * W:(c + 1) * W], f"pas{r}_{c}")
                with m.If(self.en):
                    with m.If(self.and_mode):
                        m.d.sync += self.dot[r][c].eq(pas)
                    with m.Else():
                        m.d.sync += self.dot[r][c].eq(2 * pas - pa)
        return m
