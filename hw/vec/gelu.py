"""A lane's i-GELU datapath (`bebert.integer_ops.apply_gelu` up to its POST): x -> w = v * mult.

Widths from docs/NUMERICS.md ("GELU"): the clamp Q < 2^31, B < 2^15, 2C < 2^30, and
|v| = |x' f| <= scl(Q, k) 2C with |v mult| < 2^62 (so |x'| < 2^46: x' is 48 bits). The
`Post` after it applies (shift, out_bits, out_signed).

    1  xc = clamp(x, -Q, Q)
    2  x' = scl(xc, k)                 x << k, or (x + 2^(-k-1)) >> -k
    3  d  = B - |x'| if |x'| < B else 0    (u - B)^2 = d^2: the erf polynomial's square
    4  L  = d^2
    5  f  = 2C - L if x' >= 0 else L
    6  v  = x' f
    7  w  = v mult

One element per cycle, LATENCY 7 (x in cycle t, w registered in t + 7).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import ScaleRequest


class GeluConfig(wiring.Signature):
    """The GELU constants: `q` (in_clamp), `k` (in_shift, in -64..24), `b` (erf_b), `c2` (2 erf_c), `mult`."""

    def __init__(self):
        super().__init__({"q": Out(31), "k": Out(signed(7)), "b": Out(16), "c2": Out(31), "mult": Out(signed(32))})


class Gelu(wiring.Component):
    LATENCY = 7

    def __init__(self):
        super().__init__({"x": In(signed(32)), "cfg": In(GeluConfig()), "scl": Out(ScaleRequest()),
                          "w": Out(signed(64))})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        q = c.q.as_signed()
        xc = Signal(signed(32))
        m.d.sync += xc.eq(Mux(self.x > c.q, c.q, Mux(self.x < -q, -q, self.x)))
        # 2: onto the internal grid (the lane's shared scaler)
        xs = Signal(signed(48))
        m.d.comb += [self.scl.x.eq(xc), self.scl.k.eq(c.k)]
        m.d.sync += xs.eq(self.scl.y)
        # 3: d = B - |x'| inside the erf's polynomial range, 0 beyond it
        b = c.b.as_signed()
        inside = Mux(xs >= 0, xs < b, xs > -b)
        d = Signal(16)
        x3, x4, x5 = (Signal(signed(48), name=f"x{i}") for i in (3, 4, 5))
        m.d.sync += [d.eq(Mux(inside, Mux(xs >= 0, c.b - xs[:16], c.b + xs[:16]), 0)), x3.eq(xs)]
        # 4, 5: L = d^2, f
        sq = Signal(32)
        f = Signal(31)
        m.d.sync += [sq.eq(d * d), x4.eq(x3), f.eq(Mux(x4 >= 0, c.c2 - sq, sq)), x5.eq(x4)]
        # 6, 7: the two products
        v = Signal(signed(63))
        m.d.sync += [v.eq(x5 * f), self.w.eq(v * c.mult)]
        return m
