"""A lane's front: its element, decoded and saturated, and the affine unit.

`ElemDecode` takes the lane's bytes of a tile column (the candidates for 1-, 2- and 4-byte
elements: bytes [l e, (l + 1) e) of the column for lane l), or a word of the lane's row
memory, and gives the element as a signed 32-bit value saturated to the instruction's S
bits: the view's `sat` (0 = none), the kernel's own input saturation where it has one
(`in_bits`) and int32 (the tile kernels' inputs are int32 codes, docs/NUMERICS.md) in one
clamp, since clamps to nested power-of-two ranges compose to the narrowest. LATENCY 1.

`Affine`: v = sum of x m over the elements of a column (REQUANT and the packed output's
requantize: one, x m; ADD and LAYERNORM's fused add: two, a m1 then b m2 in consecutive
cycles, `first` marking a): one multiplier, |x|, |m| < 2^31, |v| < 2^63. x in cycle t (with
`m`), `first` in t + 1, v registered in t + 2 (LATENCY 2 after the column's last element).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import saturate

ELEM_ROW = 3        # `elem` code of a row-memory word


class DecodeConfig(wiring.Signature):
    """`elem`: 0, 1, 2 for 1-, 2-, 4-byte elements, ELEM_ROW for the row memory's word;
    `signed` (sign- or zero-extend), `mask` (thermo(33, S - 1)) and `lo` (-2^(S-1)) of the
    saturation to S <= 32 bits."""

    def __init__(self):
        super().__init__({"elem": Out(2), "signed": Out(1), "mask": Out(33), "lo": Out(signed(32))})


class ElemDecode(wiring.Component):
    LATENCY = 1

    def __init__(self):
        super().__init__({"b1": In(8), "b2": In(16), "b4": In(32), "row": In(signed(32)), "cfg": In(DecodeConfig()),
                          "x": Out(signed(32))})

    def elaborate(self, platform):
        m = Module()
        c = self.cfg
        raw = Signal(signed(33))
        with m.Switch(c.elem):
            for code, src in enumerate((self.b1, self.b2, self.b4)):
                with m.Case(code):
                    w = len(src)
                    m.d.comb += raw.eq(Cat(src, Mux(c.signed & src[w - 1], (1 << (33 - w)) - 1, 0)[:33 - w]))
            with m.Default():
                m.d.comb += raw.eq(self.row)
        m.d.sync += self.x.eq(saturate(raw, c.mask, c.lo))
        return m


class Affine(wiring.Component):
    LATENCY = 2

    def __init__(self):
        super().__init__({"x": In(signed(32)), "m": In(signed(32)), "first": In(1), "v": Out(signed(64))})

    def elaborate(self, platform):
        m = Module()
        p = Signal(signed(63))
        m.d.sync += [p.eq(self.x * self.m), self.v.eq(Mux(self.first, 0, self.v) + p)]
        return m
