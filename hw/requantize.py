"""The output path's arithmetic: R lanes of `bebert.numerics.requantize`, and the mode constants they use."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bebert.config import ACC_BITS

VALUE_BITS = 32  # a lane's result: the int32 / saturated element, its low bits the packed code


def lane_mode(m, *, stream, elem, shift, obits, osigned, pm1, name: str = "mode"):
    """The constants of one POSTCFG for the lanes (combinational from the fields; the stage
    registers them). The clamp of `requantize` followed by the stream element's saturation is
    one clamp to n bits (signed or unsigned), or the sign (obits 1; pm1 stores 0 / 1):

    - `n`: stream obits 0 -> min(32, 8e), obits >= 2 -> min(obits, 8e); packed -> obits.
    - `sgn`: two's complement clamp (stream obits 0, or osigned); `sign`: obits 1.
    - `hi` / `lo`: the saturated results (2^(n-1) - 1 / -2^(n-1), 2^n - 1 / 0, or 1 / -1
      (pm1: 1 / 0) for the sign).
    - the shift s = 8 c + f' is split: `fine` = 7 - f' scales the multiplier and the bias
      (v' = 2^fine (acc * mult + bias + round) is exact in V_BITS bits), so the lanes shift v'
      only by whole bytes, 8 `coarse` + 7 (`lanes` pay no shifter per bit of the fine part);
    - `mask`: bit i (i < V_BITS - 1) set where i >= s + fine + n - 1 (signed) or + n
      (unsigned): the bits of v' that must all equal the fill (the sign, or 0) for v >> s to
      fit n bits;
    - `rnd`: the rounding 2^(s-1) * 2^fine = 2^(8 coarse + 6) for s > 0, else 0;
    - `wrap`: s = 63, the one shift at which `requantize`'s int64 rounding add can wrap
      (v + 2^62 >= 2^63, when acc = mult = -2^31). There v + 2^62 >= 0, so the result is 0, or
      -1 when it wrapped, i.e. bit 63 of v' (fine is 0): the lanes then take bit 63 as the sign
      and the "saturated" value as the result, with hi = 0 and lo = -1 (signed) or 0
      (unsigned); the sign (obits 1) keeps its own hi / lo. `force` (sign or wrap) selects
      hi / lo whatever the clamp says.
    """
    ebits = Signal(6, name=f"{name}_ebits")
    m.d.comb += ebits.eq(Mux(elem == 0, 8, Mux(elem == 1, 16, 32)))
    n = Signal(6, name=f"{name}_n")
    with m.If(~stream):
        m.d.comb += n.eq(obits)
    with m.Elif(obits == 0):
        m.d.comb += n.eq(ebits)
    with m.Else():
        m.d.comb += n.eq(Mux(obits < ebits, obits, ebits))
    sgn = Signal(name=f"{name}_sgn")
    sign = Signal(name=f"{name}_sign")
    m.d.comb += [sgn.eq((stream & (obits == 0)) | osigned), sign.eq(obits == 1)]
    top = Signal(unsigned(VALUE_BITS + 1), name=f"{name}_top")  # 2^n or 2^(n-1)
    m.d.comb += top.eq(1 << Mux(sgn, n - 1, n)[:6])
    hi = Signal(VALUE_BITS, name=f"{name}_hi")
    lo = Signal(VALUE_BITS, name=f"{name}_lo")
    wrap = shift == 63
    with m.If(sign):
        m.d.comb += [hi.eq(1), lo.eq(Mux(pm1, 0, -1))]
    with m.Elif(wrap):
        m.d.comb += [hi.eq(0), lo.eq(Mux(sgn, -1, 0))]
    with m.Elif(sgn):
        m.d.comb += [hi.eq(top - 1), lo.eq(-top)]
    with m.Else():
        m.d.comb += [hi.eq(top - 1), lo.eq(0)]
    coarse, fine = shift[3:6], 7 - shift[:3]
    first = Signal(8, name=f"{name}_first")  # the lowest bit of v' that must equal the fill
    m.d.comb += first.eq(Cat(Const(7, 3), coarse) + n - sgn)
    mask = Signal(V_BITS - 1, name=f"{name}_mask")
    m.d.comb += mask.eq(Mux(wrap, 0, Cat(*[first <= i for i in range(V_BITS - 1)])))
    rnd = Signal(V_BITS, name=f"{name}_rnd")
    with m.If(shift != 0):
        m.d.comb += rnd.eq(1 << Cat(Const(6, 3), coarse))
    return {"coarse": coarse, "fine": fine, "wrap": wrap, "sgn": sgn, "force": sign | wrap, "hi": hi, "lo": lo,
            "mask": mask, "rnd": rnd}


FINE_BITS = 3  # the part of the shift applied by scaling the multiplier (keeps it within 4 DSP48s)
V_BITS = 64 + (1 << FINE_BITS) - 1  # v' = 2^fine * v, fine < 8
MULT_BITS = 32 + (1 << FINE_BITS) - 1
MODE_LAYOUT = data.StructLayout({"coarse": 3, "fine": 3, "wrap": 1, "sgn": 1, "force": 1, "hi": VALUE_BITS,
                                 "lo": VALUE_BITS, "mask": V_BITS - 1, "rnd": V_BITS})


def byte_shift_right(m, v, coarse, width: int, name: str):
    """(v >> (8 coarse + 7))[:width], arithmetic: a 4:1 stage (by 0, 16, 32, 48), then 2:1 (8)."""
    x = v >> 7
    y = Signal(signed(width + 8), name=f"{name}_y")
    c = [x >> (16 * k) for k in range(4)]
    m.d.comb += y.eq(Mux(coarse[2], Mux(coarse[1], c[3], c[2]), Mux(coarse[1], c[1], c[0])))
    out = Signal(signed(width), name=f"{name}_x")
    m.d.comb += out.eq(Mux(coarse[0], y >> 8, y))
    return out


class RequantLanes(wiring.Component):
    """`lanes` lanes of `bebert.numerics.requantize`, a three-stage pipeline with one enable.

    In a cycle with `adv`, the stages move one step: stage 1 takes `acc[l] + row[l]` (modulo
    2^32: the accumulator of that row), `mult` and `bias + mode.rnd` (valid with `in_valid`);
    stage 2 the products acc * mult (64 bits); stage 3 the results `value[l]` (`out_valid`):

        v = acc * mult + bias + rnd      (64 bits, wrapping: `requantize`'s int64 rounding)
        value = lo / hi if v >> s leaves the clamp (below / above), else v >> s

    computed as v' = 2^fine v (the multiplier and bias scaled once, shared by the lanes; 39-bit
    by 32-bit products still fit four DSP48s) shifted right by whole bytes.

    with `mode` (`lane_mode`, `MODE_LAYOUT`) constant while values are in flight. Without
    `adv` every stage holds. `value` is 32 bits: the saturated stream element, or the packed
    code in its low bits. Each lane has the one product exactness needs (int32 x int32, its
    operand scaled by 2^fine); the shift extracts only the 32 bits kept, and the clamp tests v'
    against the mode's bit mask instead of shifting v' whole.
    """

    def __init__(self, lanes: int):
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes <= 0:
            raise ValueError(f"RequantLanes: lanes must be a positive integer, got {lanes!r}")
        self.lanes = lanes
        word = data.ArrayLayout(signed(ACC_BITS), lanes)
        super().__init__({
            "adv": In(1), "in_valid": In(1), "acc": In(word), "row": In(word),
            "mult": In(signed(32)), "bias": In(signed(32)), "mode": In(MODE_LAYOUT),
            "out_valid": Out(1), "value": Out(data.ArrayLayout(VALUE_BITS, lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        md = self.mode
        mult = Signal(signed(MULT_BITS))  # stage 1: mult * 2^fine
        bias = Signal(signed(V_BITS))  # stage 1: (bias + round) * 2^fine
        bias2 = Signal(signed(V_BITS))  # stage 2
        v1, v2 = Signal(), Signal()
        with m.If(self.adv):
            m.d.sync += [v1.eq(self.in_valid), v2.eq(v1), self.out_valid.eq(v2), mult.eq(self.mult << md.fine),
                         bias.eq((self.bias << md.fine) + md.rnd.as_signed()), bias2.eq(bias)]
        for i in range(self.lanes):
            m.submodules[f"lane{i}"] = lane = RequantLane()
            m.d.comb += [lane.adv.eq(self.adv), lane.acc.eq(self.acc[i]), lane.row.eq(self.row[i]),
                         lane.mult.eq(mult), lane.bias.eq(bias2), lane.mode.eq(md), self.value[i].eq(lane.value)]
        return m


class RequantLane(wiring.Component):
    """One lane of `RequantLanes` (its own module, so that synthesis maps each lane alone):
    with `adv`, x <- acc + row (stage 1), prod <- x * mult (stage 2, `mult` the stage-1 scaled
    multiplier), value <- the clamped (prod + bias) >> (8 coarse + 7) (stage 3, `bias` the
    stage-2 scaled bias)."""

    acc: In(signed(ACC_BITS))
    row: In(signed(ACC_BITS))
    mult: In(signed(MULT_BITS))
    bias: In(signed(V_BITS))
    mode: In(MODE_LAYOUT)
    adv: In(1)
    value: Out(VALUE_BITS)

    def elaborate(self, platform):
        m = Module()
        md = self.mode
        x = Signal(signed(ACC_BITS))
        prod = Signal(signed(V_BITS))
        with m.If(self.adv):
            m.d.sync += [x.eq(self.acc + self.row), prod.eq(x * self.mult)]
        v = Signal(signed(V_BITS))
        m.d.comb += v.eq(prod + self.bias)
        neg = Mux(md.wrap, v[63], v[V_BITS - 1])  # s = 63: int64's wrap of the rounding add (lane_mode)
        fill = Mux(md.sgn, v[V_BITS - 1], 0)
        over = Signal()
        m.d.comb += over.eq(((v[:V_BITS - 1] ^ Cat(*[fill] * (V_BITS - 1))) & md.mask).any())
        sat = md.force | over | (~md.sgn & neg)
        ext = byte_shift_right(m, v, md.coarse, VALUE_BITS, "ext")
        with m.If(self.adv):
            m.d.sync += self.value.eq(Mux(sat, Mux(neg, md.lo, md.hi), ext))
        return m
