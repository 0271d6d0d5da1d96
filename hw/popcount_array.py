"""The popcount array: popcount(a_r & s_c) per PE and popcount(a_r) per row, from compressor trees."""

import functools
import random

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

# Generalised parallel counters (GPCs): (bits taken per weight offset 0, 1, ...), output bits.
# Each output bit is one function of <= 6 inputs, i.e. one 6-input LUT; the count of the
# inputs, weighted, fits the outputs. (6;3) is the classic 6:3 counter, (5,1;3) takes five
# bits of one weight and one of the next.
GPCS = (((6,), 3), ((5,), 3), ((3,), 2), ((5, 1), 3), ((3, 2), 3), ((4, 1), 3), ((2, 2), 3), ((3, 1), 3),
        ((4,), 3), ((2,), 2))
PLAN_TRIES = 400  # randomised greedy schedules tried per tree shape (seeded: the Verilog is deterministic)


@functools.lru_cache(maxsize=None)
def compression_plan(columns: tuple[int, ...]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """A schedule of GPC stages that leaves at most two bits per column: stages of (weight,
    GPC index), the cheapest (LUTs, counting the final two-row adder) of PLAN_TRIES seeded
    randomised greedy schedules. `columns[w]` is the number of bits of weight 2^w."""
    rng = random.Random(0)
    best = None
    for attempt in range(PLAN_TRIES):
        jitter = 0.0 if attempt == 0 else 0.3
        cols = dict(enumerate(columns))
        luts, stages = 0, []
        while any(v > 2 for v in cols.values()):
            stage, new, avail = [], {}, dict(cols)
            for w in sorted(avail):
                while avail.get(w, 0) > 2:
                    fits = [i for i, (ins, _) in enumerate(GPCS)
                            if all(avail.get(w + k, 0) >= n for k, n in enumerate(ins))]
                    i = max(fits, key=lambda i: (sum(GPCS[i][0]) - GPCS[i][1]) / GPCS[i][1] + rng.random() * jitter)
                    ins, outs = GPCS[i]
                    for k, n in enumerate(ins):
                        avail[w + k] -= n
                    for k in range(outs):
                        new[w + k] = new.get(w + k, 0) + 1
                    luts += outs
                    stage.append((w, i))
                new[w] = new.get(w, 0) + avail.get(w, 0)
                avail[w] = 0
            cols = {w: v for w, v in new.items() if v}
            stages.append(tuple(stage))
        cost = luts + (max(cols) + 1 if cols else 0)
        if best is None or cost < best[0]:
            best = (cost, tuple(stages))
    return best[1]


def _table(m, bits, weights, k: int, name: str):
    """Bit k of the weighted count of `bits` (bit i weighs 2^weights[i]): a truth table."""
    table = 0
    for v in range(1 << len(bits)):
        total = sum(((v >> i) & 1) << w for i, w in enumerate(weights))
        table |= ((total >> k) & 1) << v
    out = Signal(name=name)
    m.d.comb += out.eq(Const(table, 1 << len(bits)).bit_select(Cat(*bits), 1))
    return out


def compress(m, columns: dict, name: str) -> dict:
    """{weight: [bits]} -> {weight: [<= 2 bits]} of the same weighted sum, by GPC stages."""
    shape = tuple(len(columns.get(w, [])) for w in range(max(columns) + 1))
    n = 0
    for stage in compression_plan(shape):
        avail = {w: list(b) for w, b in columns.items()}
        new = {}
        for w, i in stage:
            ins, outs = GPCS[i]
            bits, weights = [], []
            for k, count in enumerate(ins):
                for _ in range(count):
                    bits.append(avail[w + k].pop())
                    weights.append(k)
            for k in range(outs):
                new.setdefault(w + k, []).append(_table(m, bits, weights, k, f"{name}_g{n}_{k}"))
            n += 1
        for w, b in avail.items():
            new.setdefault(w, []).extend(b)
        columns = {w: b for w, b in new.items() if b}
    return columns


def popcount(m, bits, pairs=None, *, name: str):
    """popcount(bits) or, with `pairs`, popcount(bits & pairs): a compressor tree and one adder.

    For AND pairs the first level is a full adder over three pairs (sum and carry are each one
    6-input function of the three pairs), then GPC stages, then the two remaining rows added.
    """
    n = len(bits)
    if pairs is None:
        columns = {0: [bits[i] for i in range(n)]}
    else:
        x = [bits[i] & pairs[i] for i in range(n)]
        columns = {0: [], 1: []}
        for i in range(0, n - n % 3, 3):
            a, b, c = x[i], x[i + 1], x[i + 2]
            columns[0].append(a ^ b ^ c)
            columns[1].append((a & b) | (a & c) | (b & c))
        columns[0].extend(x[i] for i in range(n - n % 3, n))
    columns = compress(m, columns, name)
    width = n.bit_length()
    rows = [Cat(*[(columns.get(w, [])[k:k + 1] or [Const(0, 1)])[0] for w in range(width)]) for k in (0, 1)]
    out = Signal(width, name=name)
    m.d.comb += out.eq(rows[0] + rows[1])
    return out


class PopcountRow(wiring.Component):
    """One row of the popcount array: popcount(a & s_c) for `cols` columns and popcount(a),
    registered under `en` (the contract of `PopcountArray`, for one row). Every row is the same
    module, so Yosys synthesises it once for the whole array (`bebert.hw.resources` reuses a
    module's result for its identical siblings)."""

    def __init__(self, cols: int, width: int):
        self.cols, self.width = cols, width
        count = unsigned(width.bit_length())
        super().__init__({"en": In(1), "a": In(width), "s": In(cols * width),
                          "pas": Out(data.ArrayLayout(count, cols)), "pa": Out(count)})

    def elaborate(self, platform):
        m = Module()
        W = self.width
        pa = popcount(m, self.a, name="pa")
        pas = [popcount(m, self.a, self.s[c * W:(c + 1) * W], name=f"pas{c}") for c in range(self.cols)]
        with m.If(self.en):
            m.d.sync += self.pa.eq(pa)
            m.d.sync += [self.pas[c].eq(v) for c, v in enumerate(pas)]
        return m


class PopcountArray(wiring.Component):
    """`rows` x `cols` popcounts of `width`-bit words, registered.

    Row r's word is `a[r*width:(r+1)*width]`, column c's `s[c*width:(c+1)*width]`. At the end
    of a cycle with `en`, `pas[r][c]` becomes popcount(a_r & s_c) and `pa[r]` popcount(a_r)
    (both unsigned, `width.bit_length()` bits); without `en` they hold. The PE array's dot
    products are built from these by the accumulator: AND mode pas, XNOR mode (s holds weight
    signs, bit 1 = +1) 2 pas - pa, the +-1 dot over the active bits.

    Each popcount is a compressor tree of 6-input functions (a full adder over three AND pairs,
    then generalised parallel counters, `compression_plan`) and one short adder: about 1.35
    LUTs per pair on 7-series (86 for 64 pairs), against ~5 for the v2 chunk table. One
    `PopcountRow` per row.
    """

    def __init__(self, rows: int, cols: int, width: int):
        for n, v in (("rows", rows), ("cols", cols), ("width", width)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"PopcountArray: {n} must be a positive integer, got {v!r}")
        self.rows, self.cols, self.width = rows, cols, width
        count = unsigned(width.bit_length())
        super().__init__({"en": In(1), "a": In(rows * width), "s": In(cols * width),
                          "pas": Out(data.ArrayLayout(data.ArrayLayout(count, cols), rows)),
                          "pa": Out(data.ArrayLayout(count, rows))})

    def elaborate(self, platform):
        m = Module()
        W = self.width
        for r in range(self.rows):
            m.submodules[f"row{r}"] = row = PopcountRow(self.cols, W)
            m.d.comb += [row.en.eq(self.en), row.a.eq(self.a[r * W:(r + 1) * W]), row.s.eq(self.s),
                         self.pa[r].eq(row.pa), self.pas[r].eq(row.pas)]
        return m
