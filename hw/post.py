"""The post-processing unit: scale, bias, round, requantize one accumulator row."""

from amaranth.hdl import Const, Mux, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.config import ACC_BITS, OUT_BITS, PARAM_BITS


class PostUnit(wiring.Component):
    """Two-stage pipeline over one row of `cols` accumulators (bebert/numerics.py contract).

    Cycle t (`valid`): `acc` (the row), `params` (a PBUF entry: column c's int32 multiplier
    at bits [64c, 64c+32), int32 bias at [64c+32, 64c+64)), `shift`, `obits`, `osigned`,
    `addr`. The product acc * mult is registered at the end of t. In cycle t+1 `w_en` is
    high with `w_addr = addr` and `w_data` holding, per column c at bits [32c, 32c+32):
    v = acc*mult + bias (64-bit), rounded-half-up shift, then int32 saturation (obits 0),
    sign (obits 1) or a clamp to obits bits, signed or unsigned.
    """

    def __init__(self, cols: int, addr_bits: int):
        if not isinstance(cols, int) or cols <= 0:
            raise ValueError(f"PostUnit: cols must be a positive integer, got {cols!r}")
        self.cols = cols
        super().__init__({
            "valid": In(1), "acc": In(data.ArrayLayout(signed(ACC_BITS), cols)),
            "params": In(cols * PARAM_BITS), "shift": In(6), "obits": In(6), "osigned": In(1),
            "addr": In(addr_bits),
            "w_en": Out(1), "w_addr": Out(addr_bits), "w_data": Out(cols * OUT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        # Stage 1 registers.
        prod = [Signal(signed(64), name=f"prod{c}") for c in range(self.cols)]
        bias = [Signal(signed(32), name=f"bias{c}") for c in range(self.cols)]
        shift, obits, osigned = Signal(6), Signal(6), Signal()
        m.d.sync += self.w_en.eq(self.valid)
        with m.If(self.valid):
            m.d.sync += [self.w_addr.eq(self.addr), shift.eq(self.shift), obits.eq(self.obits),
                         osigned.eq(self.osigned)]
        for c in range(self.cols):
            mult = self.params[64 * c:64 * c + 32].as_signed()
            with m.If(self.valid):
                m.d.sync += [prod[c].eq(self.acc[c] * mult),
                             bias[c].eq(self.params[64 * c + 32:64 * c + 64].as_signed())]

        # Stage 2: clamp range from obits / osigned.
        lo, hi = Signal(signed(33)), Signal(signed(33))
        with m.Switch(obits):
            with m.Case(0):
                m.d.comb += [lo.eq(-(1 << 31)), hi.eq((1 << 31) - 1)]
            for k in range(2, 9):
                with m.Case(k):
                    m.d.comb += [lo.eq(Mux(osigned, -(1 << (k - 1)), 0)),
                                 hi.eq(Mux(osigned, (1 << (k - 1)) - 1, (1 << k) - 1))]
            with m.Default():  # obits 1 (sign) ignores lo/hi; > 8 is illegal
                m.d.comb += [lo.eq(0), hi.eq(0)]
        rnd = Signal(64)
        with m.If(shift != 0):
            m.d.comb += rnd.eq(Const(1, 64) << (shift - 1)[:6])
        for c in range(self.cols):
            v = Signal(signed(64), name=f"v{c}")
            vr = Signal(signed(64), name=f"vr{c}")
            out = Signal(signed(OUT_BITS), name=f"out{c}")
            m.d.comb += [v.eq(prod[c] + bias[c]), vr.eq(v + rnd)]
            vs = Signal(signed(64), name=f"vs{c}")
            m.d.comb += vs.eq(vr >> shift)
            with m.If(obits == 1):
                m.d.comb += out.eq(Mux(vs >= 0, 1, -1))
            with m.Elif(vs < lo):
                m.d.comb += out.eq(lo)
            with m.Elif(vs > hi):
                m.d.comb += out.eq(hi)
            with m.Else():
                m.d.comb += out.eq(vs)
            m.d.comb += self.w_data[OUT_BITS * c:OUT_BITS * (c + 1)].eq(out)
        return m
