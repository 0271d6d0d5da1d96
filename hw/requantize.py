"""The output path's arithmetic: R lanes of `bebert.numerics.requantize`, and the mode constants they use."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
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
    - `mask`: bit i (i < 63) set where i >= s + n - 1 (signed) or s + n (unsigned): the bits
      of v = acc * mult + bias + round that must all equal the fill (the sign, or 0) for
      v >> s to fit n bits.
    - `rnd`: 2^(s-1) for s > 0 (round half up), else 0.
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
    with m.If(sign):
        m.d.comb += [hi.eq(1), lo.eq(Mux(pm1, 0, -1))]
    with m.Elif(sgn):
        m.d.comb += [hi.eq(top - 1), lo.eq(-top)]
    with m.Else():
        m.d.comb += [hi.eq(top - 1), lo.eq(0)]
    first = Signal(8, name=f"{name}_first")  # the lowest bit that must equal the fill
    m.d.comb += first.eq(shift + n - sgn)
    mask = Signal(63, name=f"{name}_mask")
    m.d.comb += mask.eq(Cat(*[first <= i for i in range(63)]))
    rnd = Signal(64, name=f"{name}_rnd")
    with m.If(shift != 0):
        m.d.comb += rnd.eq(1 << (shift - 1)[:6])
    return {"shift": shift, "sgn": sgn, "sign": sign, "hi": hi, "lo": lo, "mask": mask, "rnd": rnd}


MODE_LAYOUT = data.StructLayout({"shift": 6, "sgn": 1, "sign": 1, "hi": VALUE_BITS, "lo": VALUE_BITS,
                                 "mask": 63, "rnd": 64})


def shift_right(m, v, s, width: int, name: str):
    """(v >> s)[:width], arithmetic, s < 64: three 4:1 stages (by 16 k, 4 k, k)."""
    x = v
    for lsb, step, need in ((4, 16, width + 15), (2, 4, width + 3), (0, 1, width)):  # bits still wanted
        out = Signal(signed(need), name=f"{name}_s{step}")
        sel = s[lsb:lsb + 2]
        cands = [x >> (k * step) for k in range(4)]
        m.d.comb += out.eq(Mux(sel[1], Mux(sel[0], cands[3], cands[2]), Mux(sel[0], cands[1], cands[0])))
        x = out
    return x


class RequantLanes(wiring.Component):
    """`lanes` lanes of `bebert.numerics.requantize`, a three-stage pipeline with one enable.

    In a cycle with `adv`, the stages move one step: stage 1 takes `acc[l] + row[l]` (modulo
    2^32: the accumulator of that row), `mult` and `bias + mode.rnd` (valid with `in_valid`);
    stage 2 the products acc * mult (64 bits); stage 3 the results `value[l]` (`out_valid`):

        v = acc * mult + bias + rnd      (64 bits, wrapping: `requantize`'s int64 rounding)
        value = lo / hi if v >> s leaves the clamp (below / above), else v >> s

    with `mode` (`lane_mode`, `MODE_LAYOUT`) constant while values are in flight. Without
    `adv` every stage holds. `value` is 32 bits: the saturated stream element, or the packed
    code in its low bits. The multipliers are the one full-width product per lane that
    exactness needs (int32 x int32); the shift extracts only the 32 bits kept, and the clamp
    compares v against the mode's bit mask instead of shifting v whole.
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
        L, md = self.lanes, self.mode
        x = [Signal(signed(ACC_BITS), name=f"x{i}") for i in range(L)]
        mult = Signal(signed(32))
        bias = Signal(signed(64))
        prod = [Signal(signed(64), name=f"prod{i}") for i in range(L)]
        bias2 = Signal(signed(64))
        v1, v2 = Signal(), Signal()
        with m.If(self.adv):
            m.d.sync += [v1.eq(self.in_valid), v2.eq(v1), self.out_valid.eq(v2),
                         mult.eq(self.mult), bias.eq(self.bias + md.rnd.as_signed()), bias2.eq(bias)]
            m.d.sync += [x[i].eq(self.acc[i] + self.row[i]) for i in range(L)]
            m.d.sync += [prod[i].eq(x[i] * mult) for i in range(L)]
        for i in range(L):
            v = Signal(signed(64), name=f"v{i}")
            m.d.comb += v.eq(prod[i] + bias2)
            neg = v[63]
            fill = Mux(md.sgn, neg, 0)
            over = Signal(name=f"over{i}")
            m.d.comb += over.eq(((v[:63] ^ Cat(*[fill] * 63)) & md.mask).any())
            sat = md.sign | over | (~md.sgn & neg)
            ext = shift_right(m, v, md.shift, VALUE_BITS, f"ext{i}")
            with m.If(self.adv):
                m.d.sync += self.value[i].eq(Mux(sat, Mux(neg, md.lo, md.hi), ext))
        return m
