"""A lane's i-LayerNorm datapaths (`bebert.integer_ops.apply_layernorm`), one per pass.

The row's sum s of the saturated inputs q is taken in the read pass (by the lane); then

- `LnSquares` (pass 2, q from the row memory): D = H q - s, D' = scl(D, ds), D'^2. D' goes
  back into the row memory, D'^2 into the lane's sum N. LATENCY 4 (D' after 3).
- the lane's `RowDivider`: sigma = max(isqrt(N + eps), 1), R = 2^60 // sigma.
- `LnNormalize` (pass 3, D' from the row memory): t = rnd(D' R, 60 - Z), v = t mult_i +
  bias_i, the POST input (mult_i two cycles, bias_i three cycles after D'). LATENCY 4. Its
  first product `p` (the row word times the quotient, one cycle after the word) is also
  softmax P3's e R (e < 2^30 and R < 2^32 make it the same product).

Widths (docs/NUMERICS.md, "LayerNorm"): |q| < 2^31, H < 2^16, |s| < 2^47, |D| < 2^48,
|D'| <= 2^30.45 (sum D'^2 <= 2^60.9), D'^2 < 2^62, R <= 2^60 with |D' R| <= 2^60,
|t| <= 2^Z <= 2^30, |mult_i| < 2^31, |v| < 2^62.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import LN_RECIP_SHIFT, ScaleRequest


class LnConfig(wiring.Signature):
    """`h` = H (cols), `ds` = d_shift, `sh` = 60 - norm_bits (30..52), `eps`."""

    def __init__(self):
        super().__init__({"h": Out(16), "ds": Out(signed(7)), "sh": Out(6), "eps": Out(62)})


class LnSquares(wiring.Component):
    LATENCY = 4
    DPRIME = 3          # D' is registered 3 cycles after q

    def __init__(self):
        super().__init__({"q": In(signed(32)), "s": In(signed(48)), "cfg": In(LnConfig()),
                          "scl": Out(ScaleRequest()), "dp": Out(signed(32)), "sq": Out(62)})

    def elaborate(self, platform):
        m = Module()
        hq = Signal(signed(49))
        d = Signal(signed(49))
        m.d.comb += [self.scl.x.eq(d), self.scl.k.eq(self.cfg.ds)]        # D' = scl(D, ds)
        m.d.sync += [hq.eq(self.q * self.cfg.h), d.eq(hq - self.s), self.dp.eq(self.scl.y[:32]),
                     self.sq.eq(self.dp * self.dp)]
        return m


class LnNormalize(wiring.Component):
    LATENCY = 4

    def __init__(self):
        super().__init__({"dp": In(signed(32)), "r": In(LN_RECIP_SHIFT + 1), "mult": In(signed(32)),
                          "bias": In(signed(64)), "cfg": In(LnConfig()), "scl": Out(ScaleRequest()),
                          "p": Out(signed(62)), "v": Out(signed(64))})

    def elaborate(self, platform):
        m = Module()
        p = self.p
        t = Signal(signed(32))
        tm = Signal(signed(63))
        m.d.comb += [self.scl.x.eq(p), self.scl.k.eq(-self.cfg.sh)]       # t = rnd(p, sh) = scl(p, -sh)
        m.d.sync += [p.eq(self.dp * self.r), t.eq(self.scl.y[:32]),
                     tm.eq(t * self.mult), self.v.eq(tm + self.bias)]
        return m
