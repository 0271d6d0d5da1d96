"""The PE accumulators: shift-accumulate of bit-plane popcounts, with a row term kept per row."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.config import ACC_BITS

SHIFT_BITS = 4  # a term's shift: plane p + weight plane q (+ 1 for XNOR's 2 popcount(a & s)), 0..15


def shifted(m, count, shift, name: str):
    """count << shift (shift < 16), in two 4:1 stages (by shift[1:0], then by 0, 4, 8 or 12)."""
    n = len(count)
    y = Signal(n + 3, name=f"{name}_y")
    t = Signal(n + 15, name=f"{name}_t")
    m.d.comb += [
        y.eq(Mux(shift[1], Mux(shift[0], count << 3, count << 2), Mux(shift[0], count << 1, count))),
        t.eq(Mux(shift[3], Mux(shift[2], y << 12, y << 8), Mux(shift[2], y << 4, y))),
    ]
    return t


class BitserialAccumulator(wiring.Component):
    """`rows` x `cols` int32 accumulators `acc` and one int32 term `row` per row.

    The accumulator of PE (r, c) is `acc[r][c] + row[r]` (modulo 2^32). At the end of a cycle
    with `en` (t = pas[r][c] << shift, u = pa[r] << row_shift, n = `negate`):

        acc[r][c] += t + 1       if not n     (that is: acc - ~t, one adder per PE)
        acc[r][c] += -t          if n         (acc - t = acc + ~t + 1)
        row[r]    += (n ? u : -u if row_en else 0) + n - 1     (one adder: row + (u or 0) ^ ~n)

    So acc + row gains (n ? -1 : 1) * t, and in XNOR mode (`row_en`) also (n ? 1 : -1) * u:
    the dot product 2 popcount(a & s) - popcount(a) keeps its second part, the same for a
    whole row, in `row` (a subtraction per row, not per PE). Why the +1 and -1: every PE term is
    one subtraction `acc - x` (x = ~t, or t when n), whose first operand is the accumulator
    itself, so on 7-series the carry chain's generate input is the flip-flop and the shift and
    negation fold into the propagate LUTs (about 49 LUTs per PE); the +1 it adds when n is low
    is taken back in the row term. All arithmetic wraps modulo 2^32.

    The compute stage drives `shift` with p + q (AND) or p + 1 (XNOR), `row_shift` with p,
    `row_en` in XNOR mode and `negate` when exactly one of (signed, top activation plane) and
    (wsigned, top weight plane) holds. `zero` (priority over `en`) clears every `acc` and `row`
    at the end of the cycle (a synchronous reset): the compute stage raises it in the cycle
    before an init GEMM's first term. `acc` and `row` are the registers themselves.
    """

    def __init__(self, rows: int, cols: int, count_bits: int):
        for n, v in (("rows", rows), ("cols", cols), ("count_bits", count_bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"BitserialAccumulator: {n} must be a positive integer, got {v!r}")
        if count_bits + (1 << SHIFT_BITS) - 1 > ACC_BITS:
            raise ValueError(f"BitserialAccumulator: a {count_bits}-bit count shifted by up to "
                             f"{(1 << SHIFT_BITS) - 1} does not fit {ACC_BITS} bits")
        self.rows, self.cols, self.count_bits = rows, cols, count_bits
        count = data.ArrayLayout(count_bits, cols)
        acc = data.ArrayLayout(data.ArrayLayout(signed(ACC_BITS), cols), rows)
        super().__init__({
            "en": In(1), "zero": In(1), "negate": In(1), "shift": In(SHIFT_BITS),
            "row_en": In(1), "row_shift": In(SHIFT_BITS),
            "pas": In(data.ArrayLayout(count, rows)), "pa": In(data.ArrayLayout(count_bits, rows)),
            "acc": Out(acc), "row": Out(data.ArrayLayout(signed(ACC_BITS), rows)),
        })

    def elaborate(self, platform):
        m = Module()
        neg = self.negate
        for r in range(self.rows):
            u = shifted(m, self.pa[r], self.row_shift, f"row{r}")
            v = Signal(ACC_BITS, name=f"row{r}_v")  # (row_en ? (n ? u : -u) : 0) + n - 1
            m.d.comb += v.eq(Mux(self.row_en, u, 0) ^ Cat(*[~neg] * ACC_BITS))
            sums = []
            for c in range(self.cols):
                t = shifted(m, self.pas[r][c], self.shift, f"pe{r}_{c}")
                x = Signal(ACC_BITS, name=f"pe{r}_{c}_x")
                m.d.comb += x.eq(t ^ Cat(*[~neg] * ACC_BITS))  # ~t, or t when negated
                sums.append((self.acc[r][c].as_unsigned() - x)[:ACC_BITS])
            with m.If(self.zero):
                m.d.sync += self.row[r].eq(0)
                m.d.sync += [self.acc[r][c].eq(0) for c in range(self.cols)]
            with m.Elif(self.en):
                m.d.sync += self.row[r].eq(self.row[r] + v)
                m.d.sync += [self.acc[r][c].eq(s) for c, s in enumerate(sums)]
        return m
