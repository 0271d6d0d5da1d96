"""Shared int64 arithmetic of the vector engines: numpy's int64 semantics, in gates.

The golden kernels (`bebert.integer_ops`) run on numpy int64, so every intermediate
wraps modulo 2^64 and the engines must wrap the same way to be bit-exact on any input
(64-bit extremes included). The helpers below build combinational logic inside a `Module`
and return a named `signed(64)` signal; assigning through `.eq` keeps the low 64 bits,
which is exactly numpy's wrap-around.

- `mul`: a * b mod 2^64 (one multiplier).
- `round_shift`: integer_ops `_shift(x, k)`: x << k for k >= 0 (bits shifted out are lost),
  (x + 2^(-k-1)) >> -k for k < 0 (round half up); k is a signed run-time amount, |k| <= 63.
- `rshift_any`: numpy's `x >> n` for an int64 amount n: n in 0..63 shifts arithmetically,
  anything else (negative, >= 64) gives the sign fill (0 or -1).
- `round_rshift`: the POST rounding, (v + 2^(s-1)) >> s for 0 < s <= 63, v for s = 0.
- `saturate`: clamp to signed `bits` (1..64), `act_range(bits, True)`.
- `post_clamp`: `requantize`'s output step: obits 1 gives +-1, 0 saturates to int32,
  2..63 clamps to `obits` bits (signed or unsigned); then the int32 cast (low 32 bits,
  sign-extended), as `.astype(np.int32)` does.

`Isqrt64` (digit by digit, 32 steps) and `Divider` (restoring, `width` steps) are the two
iterative blocks: one step per cycle, a fixed number of cycles, no data-dependent timing.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

W = 64
INT64_MIN = -(1 << 63)


def _sig(m: Module, expr, name: str, shape=signed(W)) -> Signal:
    """A fresh comb signal holding `expr` (truncated / extended to `shape`); the backend
    makes repeated names unique."""
    s = Signal(shape, name=name)
    m.d.comb += s.eq(expr)
    return s


def wrap(m: Module, expr, name: str = "w") -> Signal:
    """expr modulo 2^64 as a signed 64-bit value."""
    return _sig(m, expr, name)


def mul(m: Module, a, b, name: str = "mul") -> Signal:
    """a * b modulo 2^64 (numpy int64 multiplication)."""
    return _sig(m, a * b, name)


def round_shift(m: Module, x, k, name: str = "rsh") -> Signal:
    """integer_ops `_shift(x, k)` for a signed run-time k with |k| <= 63."""
    k = k.as_signed()
    left = _sig(m, x << k.as_unsigned()[:7], f"{name}_l")
    nk = _sig(m, -k, f"{name}_nk", 7)                  # -k for k < 0 (1..63)
    half = _sig(m, Const(1, W) << (nk - 1)[:6], f"{name}_h", W)
    right = _sig(m, _sig(m, x + half, f"{name}_s") >> nk, f"{name}_r")
    return _sig(m, Mux(k >= 0, left, right), name)


def rshift_any(m: Module, x, n, name: str = "ash") -> Signal:
    """numpy `x >> n` with an int64 amount: out-of-range amounts give the sign fill."""
    n = n.as_signed()
    fill = _sig(m, Mux(x < 0, -1, 0), f"{name}_f")
    return _sig(m, Mux((n < 0) | (n > W - 1), fill, x >> n.as_unsigned()[:6]), name)


def round_rshift(m: Module, v, s, name: str = "rnd") -> Signal:
    """POST rounding by an unsigned run-time shift s (0..63)."""
    half = _sig(m, Mux(s != 0, Const(1, W) << (s - 1)[:6], 0), f"{name}_h", W)
    return _sig(m, _sig(m, v + half, f"{name}_s") >> s, name)


def clamp(m: Module, x, lo, hi, name: str = "clamp") -> Signal:
    """numpy clamp: max with lo, then min with hi (signed)."""
    a = _sig(m, Mux(x < lo, lo, x), f"{name}_lo")
    return _sig(m, Mux(a > hi, hi, a), name)


def saturate(m: Module, x, bits, name: str = "sat") -> Signal:
    """Clamp x to the signed `bits`-bit range (1 <= bits <= 64)."""
    half = _sig(m, Const(1, W + 1) << (bits - 1)[:6], f"{name}_h", W + 1)
    hi = _sig(m, half - 1, f"{name}_hi", signed(W + 2))
    lo = _sig(m, -half, f"{name}_lo", signed(W + 2))
    return clamp(m, x, lo, hi, name)


def post_clamp(m: Module, v, obits, osigned, name: str = "out") -> Signal:
    """The output step of `requantize` (after the rounding shift), then the int32 cast."""
    top = _sig(m, Const(1, W + 1) << (obits - 1)[:6], f"{name}_t", W + 1)   # 2^(obits-1)
    lo = Signal(signed(W + 2), name=f"{name}_lo")
    hi = Signal(signed(W + 2), name=f"{name}_hi")
    with m.If(obits == 0):
        m.d.comb += [lo.eq(-(1 << 31)), hi.eq((1 << 31) - 1)]
    with m.Elif(osigned):
        m.d.comb += [lo.eq(-top), hi.eq(top - 1)]
    with m.Else():
        m.d.comb += [lo.eq(0), hi.eq((top << 1) - 1)]
    c = clamp(m, v, lo, hi, f"{name}_c")
    r = Mux(obits == 1, Mux(v >= 0, 1, -1), c)
    return _sig(m, _sig(m, r, f"{name}_32", signed(32)), name)


class Isqrt64(wiring.Component):
    """floor(sqrt(n)) as integer_ops `isqrt`: 32 digit-by-digit steps, one per cycle.

    `start` high in cycle t loads `n` (signed 64; a negative n gives 0, as the reference);
    `root` holds the result from cycle t + 1 + STEPS on, until the next start.
    """

    STEPS = 32

    def __init__(self):
        super().__init__({"start": In(1), "n": In(signed(W)), "root": Out(W)})

    def elaborate(self, platform):
        m = Module()
        n = Signal(signed(W))
        r = Signal(W)
        bit = Signal(W)
        c = _sig(m, r + bit, "c")
        ge = _sig(m, n >= c, "ge", 1)
        with m.If(self.start):
            m.d.sync += [n.eq(self.n), r.eq(0), bit.eq(1 << 62)]
        with m.Elif(bit != 0):
            m.d.sync += [n.eq(Mux(ge, n - c, n)), r.eq(Mux(ge, (r >> 1) + bit, r >> 1)), bit.eq(bit >> 2)]
        m.d.comb += self.root.eq(r)
        return m


class Divider(wiring.Component):
    """Restoring division of a `width`-bit unsigned dividend by a positive 64-bit divisor.

    `start` high in cycle t loads `num` and `den` (den >= 1, or the quotient is all ones);
    `quot` = num // den holds from cycle t + 1 + width on. One quotient bit per cycle,
    most significant first: the remainder stays below den <= 2^64 - 1.
    """

    def __init__(self, width: int):
        if not isinstance(width, int) or not 1 <= width <= W:
            raise ValueError(f"Divider: width must be in 1..{W}, got {width!r}")
        self.width = width
        self.STEPS = width
        super().__init__({"start": In(1), "num": In(width), "den": In(W), "quot": Out(width)})

    def elaborate(self, platform):
        m = Module()
        q = Signal(self.width)           # dividend bits shift out at the top, quotient bits in
        rem = Signal(W)
        den = Signal(W)
        left = Signal(range(self.width + 1))
        r2 = _sig(m, (rem << 1) | q[-1], "r2", W + 1)
        ge = _sig(m, r2 >= den, "ge", 1)
        with m.If(self.start):
            m.d.sync += [q.eq(self.num), rem.eq(0), den.eq(self.den), left.eq(self.width)]
        with m.Elif(left != 0):
            m.d.sync += [rem.eq(Mux(ge, r2 - den, r2)), q.eq((q << 1) | ge), left.eq(left - 1)]
        m.d.comb += self.quot.eq(q)
        return m
