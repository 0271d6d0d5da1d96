"""The per-column parameters of the tile engine, read from the setup buffer: LAYERNORM's
mult_c / bias_c (its constant block: 8 constants, H mults, H biases, int64 words) and
SOFTMAX's key mask (an int32 row; a key is kept where its word is not 0).

`col` presented in a cycle with `en` gives `mult`, `bias`, `mask` in the next cycle (held
while `en` is low): one buffer read per port, then the word of the beat.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig


class Params(wiring.Component):
    def __init__(self, config: AccelConfig, depth: int):
        self.config, self.depth = config, depth
        B = config.dram_bytes_per_cycle
        super().__init__({
            "col": In(16), "en": In(1), "cols": In(16), "masked": In(1),
            "reg_k": In(range(depth)), "off_k": In(5), "reg_m": In(range(depth)), "off_m": In(6),
            "rd_addr": Out(range(depth)), "rd_en": Out(1), "rd_data": In(8 * B),
            "rd2_addr": Out(range(depth)), "rd2_en": Out(1), "rd2_data": In(8 * B),
            "mult": Out(signed(32)), "bias": Out(signed(64)), "mask": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.config.dram_bytes_per_cycle
        w8, w4 = max(1, B // 8), B // 4
        l8, l4 = w8.bit_length() - 1, w4.bit_length() - 1
        imult = self.off_k + 8 + self.col                  # int64 word of mult_c
        ibias = imult + self.cols
        imask = self.off_m + self.col                      # int32 word of mask_c
        first = Signal(32)
        m.d.comb += first.eq(Mux(self.masked, self.reg_m + (imask >> l4), self.reg_k + (imult >> l8)))
        m.d.comb += [self.rd_addr.eq(first), self.rd_en.eq(self.en),
                     self.rd2_addr.eq(self.reg_k + (ibias >> l8)), self.rd2_en.eq(self.en)]
        sm, sb, sk = Signal(max(1, l8)), Signal(max(1, l8)), Signal(max(1, l4))
        with m.If(self.en):
            m.d.sync += [sm.eq(imult[:l8] if l8 else 0), sb.eq(ibias[:l8] if l8 else 0), sk.eq(imask[:l4] if l4 else 0)]
        word = lambda data, i, n, w: data.word_select(i, w) if n > 1 else data[:w]   # noqa: E731
        m.d.comb += [self.mult.eq(word(self.rd_data, sm, w8, 64)[:32]), self.bias.eq(word(self.rd2_data, sb, w8, 64)),
                     self.mask.eq(word(self.rd_data, sk, w4, 32).any())]
        return m
