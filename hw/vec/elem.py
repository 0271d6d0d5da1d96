"""Element engines: integer_ops `apply_gelu`, `apply_add`, `apply_requant`, one element per cycle.

Each is a fixed pipeline: the element presented with `valid` in cycle t comes out on `out`
(the int32 code, sign-extended to 64 bits) with `out_valid` in cycle t + LATENCY, carrying
the caller's `tag` (e.g. the column index) along as `out_tag`. No stalls, no data-dependent
timing: a row of n elements streamed back to back takes `cycles(n) = n + LATENCY` cycles
(inputs in 0 .. n-1, the last output in n - 1 + LATENCY). The constants (`bebert.vector.
CONST_FIELDS` of the kernel) are inputs held stable while elements are in flight. All
arithmetic wraps modulo 2^64 as numpy's int64 does; the output step is `requantize`'s
(shift 0..63, round half up; out bits 0 = int32, 1 = +-1, 2..32 clamp; then the int32 cast).

- `RequantElem` (LATENCY 2): sat(x, in_bits) * mult -> POST(shift, bits, signed).
- `AddElem` (LATENCY 2): sat(a) * mult1 + sat(b) * mult2 -> POST(shift, out_bits, out_signed).
- `GeluElem` (LATENCY 5): clamp |q| to in_clamp, x = _shift(q, in_shift); u = min(|x|, B);
  L = (u - B)^2; f = 2C - L (x >= 0) or L; v = x f -> POST(v * mult, shift, out_bits, out_signed).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import W, clamp, mul, post_clamp, round_rshift, round_shift, saturate, wrap


class _Elem(wiring.Component):
    LATENCY = 0
    INPUTS: tuple[str, ...] = ()
    CONSTS: dict = {}       # the constant ports: the kernel's CONST_FIELDS, with their widths

    def __init__(self, tag_bits: int = 16):
        if not isinstance(tag_bits, int) or not 1 <= tag_bits <= 64:
            raise ValueError(f"{type(self).__name__}: tag_bits must be in 1..64, got {tag_bits!r}")
        self.tag_bits = tag_bits
        ports = {"valid": In(1), "tag": In(tag_bits), "out_valid": Out(1), "out": Out(signed(W)),
                 "out_tag": Out(tag_bits)}
        ports.update({x: In(signed(W)) for x in self.INPUTS})
        ports.update({k: In(s) for k, s in self.CONSTS.items()})
        super().__init__(ports)

    @classmethod
    def cycles(cls, n: int) -> int:
        """Cycles of a row of n elements streamed back to back (first input to last output + 1)."""
        return n + cls.LATENCY

    def _delay(self, m: Module):
        """valid / tag through LATENCY registers."""
        v, t = self.valid, self.tag
        for j in range(self.LATENCY):
            nv, nt = Signal(name=f"v{j + 1}"), Signal(self.tag_bits, name=f"tag{j + 1}")
            m.d.sync += [nv.eq(v), nt.eq(t)]
            v, t = nv, nt
        m.d.comb += [self.out_valid.eq(v), self.out_tag.eq(t)]

    def _post(self, m: Module, acc, shift, obits, osigned):
        """The last stage: rounding shift and clamp, registered onto `out`."""
        m.d.sync += self.out.eq(post_clamp(m, round_rshift(m, acc, shift, "r"), obits, osigned, "o"))


class RequantElem(_Elem):
    """apply_requant on one element per cycle (LATENCY 2)."""

    LATENCY = 2
    INPUTS = ("x",)
    CONSTS = {"mult": signed(W), "shift": 6, "bits": 6, "signed": 1, "in_bits": 7}

    def elaborate(self, platform):
        m = Module()
        self._delay(m)
        acc = Signal(signed(W))
        m.d.sync += acc.eq(mul(m, saturate(m, self.x, self.in_bits, "x"), self.mult, "xm"))
        self._post(m, acc, self.shift, self.bits, self.signed)
        return m


class AddElem(_Elem):
    """apply_add on one element pair per cycle (LATENCY 2)."""

    LATENCY = 2
    INPUTS = ("a", "b")
    CONSTS = {"mult1": signed(W), "mult2": signed(W), "shift": 6, "in_bits": 7, "out_bits": 6, "out_signed": 1}

    def elaborate(self, platform):
        m = Module()
        self._delay(m)
        acc = Signal(signed(W))
        a = mul(m, saturate(m, self.a, self.in_bits, "a"), self.mult1, "am")
        b = mul(m, saturate(m, self.b, self.in_bits, "b"), self.mult2, "bm")
        m.d.sync += acc.eq(wrap(m, a + b, "acc"))
        self._post(m, acc, self.shift, self.out_bits, self.out_signed)
        return m


class GeluElem(_Elem):
    """apply_gelu on one element per cycle (LATENCY 5)."""

    LATENCY = 5
    INPUTS = ("x",)
    CONSTS = {"in_clamp": signed(W), "in_shift": signed(8), "erf_b": signed(W), "erf_c": signed(W),
              "mult": signed(W), "shift": 6, "out_bits": 6, "out_signed": 1}

    def elaborate(self, platform):
        m = Module()
        self._delay(m)
        # 1: clamp to +-in_clamp, onto the internal grid.
        x2 = Signal(signed(W))
        xc = clamp(m, self.x, wrap(m, -self.in_clamp, "lo"), self.in_clamp, "xc")
        m.d.sync += x2.eq(round_shift(m, xc, self.in_shift, "xs"))
        # 2: L = (min(|x|, B) - B)^2.
        x3, l3 = Signal(signed(W)), Signal(signed(W))
        ax = wrap(m, Mux(x2 < 0, -x2, x2), "ax")
        u = wrap(m, Mux(ax > self.erf_b, self.erf_b, ax), "u")
        du = wrap(m, u - self.erf_b, "du")
        m.d.sync += [x3.eq(x2), l3.eq(mul(m, du, du, "l"))]
        # 3: v = x f.
        v4 = Signal(signed(W))
        f = wrap(m, Mux(x3 >= 0, wrap(m, 2 * self.erf_c - l3, "f2"), l3), "f")
        m.d.sync += v4.eq(mul(m, x3, f, "v"))
        # 4: v * mult; 5: POST.
        a5 = Signal(signed(W))
        m.d.sync += a5.eq(mul(m, v4, self.mult, "vm"))
        self._post(m, a5, self.shift, self.out_bits, self.out_signed)
        return m
