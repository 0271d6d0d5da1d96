"""A lane's i-softmax datapaths (`bebert.integer_ops.apply_softmax` with a key mask).

The read pass takes the row max m of q' (q' = q, or -2^31 where the key is masked out; the
lane); then

- `SmExp` (pass 2, q' from the row memory): e = exp(-(m - q') S') on the grid a S'^2, 0
  where masked (`mask` five cycles after q'). e goes back into the row memory and into the
  lane's sum. LATENCY 7.
- the lane's `RowDivider`: R = recip_num // max(sum, 1).
- pass 3: v = e R (the POST input: rnd(v, K), clamped to unsigned out_bits), in the lane.

    1  t0 = m - q'                           0 <= t0 < 2^32
    2  t  = min(scl(min(t0, t_in_max), k), t_max) = t0 > th ? m2 : scl(t0, k)
    3  t * div_mult                          < 2^40
    4  z  = (t div_mult) >> div_shift        0 <= z <= 30
    5  p  = poly_b - (t - z ln2)             0 < p < 2^15
    6  p^2 + poly_c                          < 2^31
    7  e  = (p^2 + poly_c) >> z, 0 where masked    < 2^30

`m2` = min(scl(t_in_max, k), t_max) and `th` = the largest t0 with scl(t0, k) <= m2 are
per-instruction constants (the unit derives them), so that step 2 is one comparison and a
19-bit shift; widths from docs/NUMERICS.md ("Softmax").
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import ScaleRequest


class SmConfig(wiring.Signature):
    def __init__(self):
        super().__init__({"th": Out(34), "m2": Out(19), "k": Out(signed(6)), "dm": Out(21), "dsh": Out(6),
                          "ln2": Out(14), "pb": Out(15), "pc": Out(28)})


class SmExp(wiring.Component):
    LATENCY = 7
    MASK_AT = 6     # `mask` is sampled in the cycle after stage 6 (q' in cycle t: mask in t + 6)

    def __init__(self):
        super().__init__({"q": In(signed(32)), "m": In(signed(32)), "mask": In(1), "cfg": In(SmConfig()),
                          "scl": Out(ScaleRequest()), "e": Out(30)})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        t0 = Signal(33)
        m.d.sync += t0.eq(self.m - self.q)
        t = Signal(19)
        m.d.comb += [self.scl.x.eq(t0), self.scl.k.eq(c.k)]     # t0 >= 0: zero-extended (the lane's scaler)
        m.d.sync += t.eq(Mux(t0 > c.th, c.m2, self.scl.y[:19]))
        td, t4, t5 = Signal(40), Signal(19), Signal(19)
        z5, z6, z7 = Signal(5), Signal(5), Signal(5)
        m.d.sync += [td.eq(t * c.dm), t4.eq(t), z5.eq((td >> c.dsh)[:5]), t5.eq(t4)]
        p = Signal(15)
        m.d.sync += [p.eq(c.pb - (t5 - z5 * c.ln2)), z6.eq(z5)]
        e0 = Signal(31)
        m.d.sync += [e0.eq(p * p + c.pc), z7.eq(z6)]
        m.d.sync += self.e.eq(Mux(self.mask, e0 >> z7, 0))
        return m
