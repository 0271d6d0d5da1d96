"""A local row-word packer, the subset of the shared `hw/packer.py` (branch v3-array) that the
vector unit's writer uses, with the same ports and semantics (no transposed view). The
writer switches to the shared one when it lands.

`rows` (R) x `planes` (P) W-bit row-words from flip-flops with clock enables. **Shift**
(`shift[0]`, `clear` low): word (r, p) becomes (word >> 1) | (bit << (W - 1)), bit = bit p of
`codes[r]` if `mask[r]` else 0: after n shifts the i-th code is at bit W - n + i, zeros below
(the layout's partial-word rule). **Clear**: every word becomes 0. **Read** (combinational):
`rd_data` is one B-bit beat of plane `rd_plane`: for W >= B bits [rd_part B, (rd_part + 1) B)
of row-word `rd_word`; for W < B a chunk of n = 2^min(rd_run, log2(B / W)) row-words from
`rd_word` (a multiple of n), repeated across the beat.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

RUN_BITS = 4


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class Packer(wiring.Component):
    def __init__(self, rows: int, planes: int, width: int, bus_bits: int):
        for name, v in (("rows", rows), ("width", width), ("bus_bits", bus_bits)):
            if not isinstance(v, int) or v <= 0 or v & (v - 1):
                raise ValueError(f"Packer: {name} must be a power of two, got {v!r}")
        if not isinstance(planes, int) or planes < 1:
            raise ValueError(f"Packer: planes must be a positive integer, got {planes!r}")
        self.rows, self.planes, self.width, self.bus_bits = rows, planes, width, bus_bits
        self.wpb = max(1, bus_bits // width)
        self.parts = max(1, width // bus_bits)
        super().__init__({
            "shift": In(1), "mask": In(rows), "codes": In(data.ArrayLayout(unsigned(planes), rows)), "clear": In(1),
            "rd_plane": In(_bits(planes)), "rd_word": In(_bits(rows)), "rd_part": In(_bits(self.parts)),
            "rd_run": In(RUN_BITS), "rd_data": Out(bus_bits),
        })

    def elaborate(self, platform):
        m = Module()
        R, P, W, B = self.rows, self.planes, self.width, self.bus_bits
        words = [[Signal(W, name=f"word_{r}_{p}") for p in range(P)] for r in range(R)]
        for r in range(R):
            with m.If(self.clear):
                m.d.sync += [w.eq(0) for w in words[r]]
            with m.Elif(self.shift):
                m.d.sync += [words[r][p].eq(Cat(words[r][p][1:], self.codes[r][p] & self.mask[r])) for p in range(P)]
        plane = Array(Array(words[r][p] for r in range(R)) for p in range(P))[self.rd_plane]
        if W >= B:
            m.d.comb += self.rd_data.eq(plane[self.rd_word].word_select(self.rd_part, B) if self.parts > 1
                                        else plane[self.rd_word])
            return m
        wpb = self.wpb
        lg = wpb.bit_length() - 1
        n_log = Signal(range(lg + 1))
        m.d.comb += n_log.eq(self.rd_run if len(self.rd_run) else 0)
        with m.If(self.rd_run > lg):
            m.d.comb += n_log.eq(lg)
        out = []
        for q in range(wpb):
            idx = Signal(_bits(R), name=f"idx{q}")
            with m.Switch(n_log):
                for k in range(lg + 1):
                    with m.Case(k):
                        mask = (1 << k) - 1
                        m.d.comb += idx.eq((self.rd_word & ~mask) | (q & mask))
            out.append(plane[idx] if R > 1 else plane[0])
        m.d.comb += self.rd_data.eq(Cat(*out))
        return m
