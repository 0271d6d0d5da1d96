"""Narrow integer arithmetic of the vector lanes (docs/NUMERICS.md), in gates.

Every operand is as wide as docs/NUMERICS.md's bounds need and no wider; the bounds hold for
the constants `bebert.integer_ops.prepare_*` produce (the RTL's contract: other constants
give unspecified results, never a hang or data-dependent timing).

Helpers (combinational, emitted into the caller's module):

- `thermo(width, p)`: a mask of ones at bit positions >= p (a *thermometer* code). The
  range checks below compare against such masks, computed once per instruction and shared
  by every lane, instead of each lane comparing against run-time bounds.
- `all_equal(x, mask)`: bits p.. of x are all equal (mask = thermo(len(x), p)): "x fits in
  p + 1 bits, signed". With `fits(x, mask, signed)` also the unsigned form (bits p.. zero
  and x >= 0, mask = thermo(p)).
- `saturate(x, mask, lo)`: clamp to the signed range [lo, ~lo] = [-2^(b-1), 2^(b-1) - 1]
  whose mask is thermo(b - 1).

Components (pipelines; wrap them in `EnableInserter(en)` to stall them):

- `Post(k)`: the POST arithmetic `requantize`'s output step, narrowed: y = clamp(rnd(v, s))
  for |v| < 2^63, into a range of at most k + 1 bits (k = 33: int32 and 32-bit unsigned
  results; k = 9: packed codes). LATENCY 2.
- `RowDivider`: the row's one division (and LayerNorm's square root), one digit per cycle,
  a fixed number of cycles per mode.
- `Scaler`: a lane's one run-time shifter, `scl(x, k)`, shared by the datapaths that scale
  (GELU's grid, softmax's exponent argument, LayerNorm's D' and t): they run in different
  passes, never at once (`ScaleRequest`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.vector import ISQRT_STEPS, LN_DIV_STEPS, SM_DIV_STEPS

LN_RECIP_SHIFT = 60
assert LN_DIV_STEPS == LN_RECIP_SHIFT + 1 and SM_DIV_STEPS == 32 and ISQRT_STEPS == 31


def thermo(width: int, p):
    """Mask of `width` bits with ones at positions >= p (p a Value or an int; p >= width: 0)."""
    return (Const((1 << width) - 1, width) << p)[:width]


def all_equal(x, mask):
    """True iff x[i] == x[i + 1] wherever mask[i] (mask = thermo(len(x), p): bits p.. of x equal)."""
    n = len(x)
    if n < 2:
        return Const(1, 1)
    return ~((x[:n - 1] ^ x[1:]) & mask[:n - 1]).any()


def fits(x, mask, is_signed):
    """x (signed) lies in the range of `mask`: signed b bits (mask = thermo(b - 1)) or
    unsigned b bits (mask = thermo(b), and x >= 0)."""
    n = len(x)
    uns = ~x[n - 1] & ~(x & mask).any()
    return Mux(is_signed, all_equal(x, mask), uns)


def saturate(x, mask, lo, width: int = 32):
    """Clamp signed x to [lo, ~lo] (lo = -2^(b-1), mask = thermo(len(x), b - 1)); `width` bits out."""
    hi = ~lo
    return Mux(all_equal(x, mask), x[:width], Mux(x[len(x) - 1], lo, hi))


def range_of(is_signed, bits, width: int):
    """(mask, lo, hi) of the range of `bits`-bit signed (1 <= bits) or unsigned (0 <= bits)
    codes, on `width`-bit values: mask = thermo(bits - 1) or thermo(bits) (see `fits`)."""
    bm1 = (bits - 1).as_unsigned()[:len(bits)]
    mask = Mux(is_signed, thermo(width, bm1), thermo(width, bits))
    top = (Const(1, width + 1) << bits)[:width + 1]     # 2^bits
    half = (Const(1, width + 1) << bm1)[:width + 1]     # 2^(bits - 1)
    lo = Mux(is_signed, -half, 0)
    hi = Mux(is_signed, half - 1, top - 1)
    return mask, lo, hi


def scl(x, k, width: int):
    """integer_ops `_shift(x, k)` for a signed run-time k in -64..63: x << k, or
    (x + 2^(-k-1)) >> -k (rounding half up), the low `width` bits, signed."""
    n = (-k).as_unsigned()[:7]
    right = ((Cat(Const(0, 1), x).as_signed() >> n) + 1) >> 1
    return Mux(k >= 0, x << k.as_unsigned()[:6], right)[:width].as_signed()


SCALE_IN, SCALE_OUT = 62, 48    # the widest operand (LayerNorm's D' R) and result (GELU's x')


class ScaleRequest(wiring.Signature):
    """A datapath's use of its lane's `Scaler`: it drives `x` (its registered operand, signed
    or zero-extended) and `k`, and registers the low bits of `y` = scl(x, k) it needs."""

    def __init__(self):
        super().__init__({"x": Out(signed(SCALE_IN)), "k": Out(signed(8)), "y": In(signed(SCALE_OUT))})


class Scaler(wiring.Component):
    """y = scl(x, k), combinational: one shifter per lane in place of one per datapath. The
    datapaths that scale run in different passes (GELU's, softmax's P2, LayerNorm's P2 and
    P3), and a pass issues only after the previous one's elements have left the pipeline
    stage that scales, so one shifter serves them all; the lane selects whose operand it
    takes (`LaneControl.scl`, constant through a pass)."""

    def __init__(self):
        super().__init__({"req": In(ScaleRequest())})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.req.y.eq(scl(self.req.x, self.req.k, SCALE_OUT))
        return m


class PostConfig(wiring.Signature):
    """How a `Post(k)` rounds and clamps, fixed for a VEC (shared by every lane):

    - `shift` s (0..63): rnd(v, s) = floor((v + 2^(s-1)) / 2^s), or v for s = 0;
    - `mask1` = thermo(65, s + k): the window check (rnd(v, s) is exact in k + 1 bits);
    - `signed`, `mask2` (k + 1 bits), `lo`, `hi`: the output range (see `range_of`);
    - `force`: always saturate (the POST's obits = 1: `lo` when rnd(v, s) < 0, else `hi`).
    """

    def __init__(self, k: int):
        self.k = k
        super().__init__({"shift": Out(6), "mask1": Out(65), "signed": Out(1), "mask2": Out(k + 1),
                          "lo": Out(signed(k + 1)), "hi": Out(signed(k + 1)), "force": Out(1)})


class Post(wiring.Component):
    """y = clamp(rnd(v, s), lo, hi) for a signed 64-bit v (|v| < 2^63), with `PostConfig`.

    v presented in cycle t gives y in cycle t + LATENCY (registered), k + 1 bits signed (the
    caller keeps the low 32 for an int32 result: `requantize`'s int32 cast).

    Stage 1 takes the (k + 1)-bit window A = floor(2v / 2^s) and whether it is exact; stage 2
    rounds (A + [s > 0]) >> 1 and clamps. A window that is not exact means |rnd(v, s)| >=
    2^(k - 1), beyond every range, so the sign of v saturates it.
    """

    LATENCY = 2

    def __init__(self, k: int):
        if not isinstance(k, int) or not 2 <= k <= 62:
            raise ValueError(f"Post: k must be in 2..62, got {k!r}")
        self.k = k
        super().__init__({"v": In(signed(64)), "cfg": In(PostConfig(k)), "y": Out(signed(k + 1))})

    def elaborate(self, platform):
        m = Module()
        k, cfg = self.k, self.cfg
        u = Cat(Const(0, 1), self.v).as_signed()                 # 2v, 65 bits
        a = Signal(signed(k + 1))
        exact, vneg, rbit = Signal(), Signal(), Signal()
        m.d.sync += [a.eq((u >> cfg.shift)[:k + 1]), exact.eq(all_equal(u, cfg.mask1)),
                     vneg.eq(self.v < 0), rbit.eq(cfg.shift != 0)]
        y0 = Signal(signed(k + 1))
        m.d.comb += y0.eq((a + rbit) >> 1)
        neg = Mux(exact, y0 < 0, vneg)
        ok = exact & ~cfg.force & fits(y0, cfg.mask2, cfg.signed)
        m.d.sync += self.y.eq(Mux(ok, y0, Mux(neg, cfg.lo, cfg.hi)))
        return m


class RowDivider(wiring.Component):
    """The row's one division, and LayerNorm's square root before it (docs/NUMERICS.md).

    `start` (one cycle, with `mode`) begins; `quot` holds the result from cycle t + 1 +
    `cycles(mode)` on (start in cycle t) until the next start. The operands are the lane's
    accumulators and the instruction's constants, held stable while the divider runs:

    - mode 0, LayerNorm: sigma = max(isqrt(n), 1) for n < 2^62 (31 digit pairs), then
      quot = 2^60 // sigma (61 quotient bits): ISQRT_STEPS + LN_DIV_STEPS cycles;
    - mode 1, softmax: quot = num // max(den, 1) for den < 2^46, num < 2^61 and a quotient
      below 2^32 (den >= q_l0 makes it so; a fully masked row has den = 0 and multiplies its
      quotient by zeros only): SM_DIV_STEPS cycles.

    One non-restoring step per cycle, one adder: the partial remainder R is signed, the next
    step adds or subtracts by R's sign, and each result bit is the sign of the new R (for the
    square root the trial is 4 root + 1 or, after a negative R, 4 root + 3). |R| < 2^46.
    """

    ISQRT_STEPS, LN_DIV_STEPS, SM_DIV_STEPS = ISQRT_STEPS, LN_DIV_STEPS, SM_DIV_STEPS
    REM = 48

    @classmethod
    def cycles(cls, mode: int) -> int:
        return cls.ISQRT_STEPS + cls.LN_DIV_STEPS if mode == 0 else cls.SM_DIV_STEPS

    def __init__(self):
        super().__init__({"start": In(1), "mode": In(1), "n": In(62), "den": In(46), "num": In(61),
                          "quot": Out(LN_RECIP_SHIFT + 1)})

    def elaborate(self, platform):
        m = Module()
        rem = Signal(signed(self.REM))
        root = Signal(31)
        q = Signal(LN_RECIP_SHIFT + 1)
        i = Signal(6)                       # the digit: counts down to 0
        sqrt, div, sm = Signal(), Signal(), Signal()
        pos = rem >= 0
        pair = self.n.word_select(i[:5], 2)
        bit = Mux(sm, self.num.bit_select(i[:5], 1), i == LN_RECIP_SHIFT)
        shifted = Mux(sqrt, Cat(pair, rem), Cat(bit, rem))[:self.REM].as_signed()
        sigma = Mux(root == 0, 1, root)
        trial = Mux(sqrt, Cat(Mux(pos, 1, 3)[:2], root), Mux(sm, self.den, sigma))
        nrem = Mux(pos, shifted - trial, shifted + trial)
        digit = ~nrem[self.REM - 1]
        with m.If(self.start):
            m.d.sync += [sqrt.eq(~self.mode), div.eq(self.mode), sm.eq(self.mode), root.eq(0), q.eq(0),
                         i.eq(Mux(self.mode, self.SM_DIV_STEPS - 1, self.ISQRT_STEPS - 1)),
                         rem.eq(Mux(self.mode, self.num >> 32, 0))]
        with m.Elif(sqrt | div):
            m.d.sync += [rem.eq(nrem), i.eq(i - 1)]
            with m.If(sqrt):
                m.d.sync += root.eq(Cat(digit, root))
                with m.If(i == 0):
                    m.d.sync += [sqrt.eq(0), div.eq(1), rem.eq(0), i.eq(self.LN_DIV_STEPS - 1)]
            with m.Else():
                m.d.sync += q.eq(Cat(digit, q))
                with m.If(i == 0):
                    m.d.sync += div.eq(0)
        m.d.comb += self.quot.eq(q)
        return m
