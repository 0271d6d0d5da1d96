"""SoftmaxRow: integer_ops `apply_softmax` (with a mask) over one row, bit for bit.

Ports as `LayerNormRow`'s: the row's int64 codes through `rd_addr` / `rd_data` and its mask
through `mask_addr` / `mask_data` (1 = kept; both synchronous, data one cycle after the
address; the vector unit drives `mask_data` high for a kernel without a mask), outputs
(int32 codes sign-extended to 64 bits) through `wr_addr` / `wr_data` / `wr_en`.

The constants (`bebert.vector.CONST_FIELDS[SOFTMAX]`, ports listed in `CONSTS`) are inputs
held stable from `start` until `done`: `out_bits` (0..63), `in_shift` (-63..63), `t_in_max`,
`t_max`, `ln2`, `div_mult`, `div_shift` (0..63), `poly_b`, `poly_c`, `recip_num`,
`recip_shift` (1..63).

Schedule (start high in cycle 0; every count depends on `cols` only):

    MAX   cols + 1   m = row max of q' (q' = q, or -2^31 where masked out)
    SUM   cols + 4   total = sum of e, the i-exp pipeline:
                       1: t = min(_shift(min(m - q', t_in_max), in_shift), t_max)
                       2: z = (t div_mult) >> div_shift
                       3: p = poly_b - (t - z ln2)
                       4: e = (p^2 + poly_c) >> z, 0 where masked out
    DIV   1 + 63     R = recip_num // max(total, 1)  (restoring on |recip_num|: a negative
                     numerator runs as ~n and the quotient is inverted back, numpy's floor)
    OUT   cols + 6   stages 1-4 again, 5: out = (e R + 2^(K-1)) >> K, clamped to unsigned
                     out_bits as `requantize` does (0: int32, 1: +-1)
    DONE  `done` high one cycle: cycle `cycles(cols)` = 3 cols + 76; every output is written.

`busy` is high from the cycle after `start` through DONE; `start` is ignored while busy.

All arithmetic wraps modulo 2^64 like numpy's int64 (a shift by z outside 0..63 gives the
sign fill, as numpy's). Multipliers: t * div_mult, z * ln2, p * p and e * R (64 x 64 each).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import INT64_MIN, Divider, W, mul, post_clamp, round_rshift, round_shift, rshift_any, wrap

MASKED = -(1 << 31)
DIV_BITS = 63          # |recip_num| < 2^63
PASS_DEPTH = {"MAX": 1, "SUM": 4, "OUT": 6}


class SoftmaxRow(wiring.Component):
    """One softmax row of up to `max_cols` codes (see the module docstring for the ports)."""

    # The constant ports: CONST_FIELDS[SOFTMAX], with their widths.
    CONSTS = {"out_bits": 6, "in_shift": signed(8), "t_in_max": signed(W), "t_max": signed(W), "ln2": signed(W),
              "div_mult": signed(W), "div_shift": 6, "poly_b": signed(W), "poly_c": signed(W),
              "recip_num": signed(W), "recip_shift": 6}

    def __init__(self, max_cols: int):
        if not isinstance(max_cols, int) or max_cols < 2:
            raise ValueError(f"SoftmaxRow: max_cols must be an integer >= 2, got {max_cols!r}")
        self.max_cols = max_cols
        addr = range(max_cols)
        ports = {"start": In(1), "busy": Out(1), "done": Out(1), "cols": In(range(max_cols + 1)),
                 **{k: In(shape) for k, shape in self.CONSTS.items()}}
        ports.update({"rd_addr": Out(addr), "rd_data": In(signed(W)), "mask_addr": Out(addr), "mask_data": In(1),
                      "wr_addr": Out(addr), "wr_data": Out(signed(W)), "wr_en": Out(1)})
        super().__init__(ports)

    @staticmethod
    def cycles(cols: int) -> int:
        """Cycles from `start` (cycle 0) to `done`: a pure function of the row length."""
        return 1 + sum(cols + p for p in PASS_DEPTH.values()) + 1 + DIV_BITS

    def elaborate(self, platform):
        m = Module()
        m.submodules.div = dv = Divider(DIV_BITS)

        k = Signal(range(self.max_cols + 64))
        mx = Signal(signed(W))                        # row max of q'
        total = Signal(signed(W))                     # sum of e
        recip = Signal(signed(W))                     # R
        v = [Signal(name=f"v{j}") for j in range(1, 6)]          # stage j valid (j = 1..5)
        idx = [Signal(range(self.max_cols), name=f"idx{j}") for j in range(1, 6)]
        issuing, last = Signal(), Signal()
        m.d.comb += [self.rd_addr.eq(k), self.mask_addr.eq(k), self.busy.eq(1)]

        # 1: t = min(_shift(min(m - q', t_in_max), in_shift), t_max).
        q = wrap(m, Mux(self.mask_data, self.rd_data, MASKED), "q")
        t0 = wrap(m, mx - q, "t0")
        t1 = wrap(m, Mux(t0 > self.t_in_max, self.t_in_max, t0), "t1")
        ts = round_shift(m, t1, self.in_shift, "ts")
        t2, mk2 = Signal(signed(W)), Signal()
        m.d.sync += [t2.eq(Mux(ts > self.t_max, self.t_max, ts)), mk2.eq(self.mask_data)]
        # 2: z = (t div_mult) >> div_shift.
        t3, z3, mk3 = Signal(signed(W)), Signal(signed(W)), Signal()
        m.d.sync += [t3.eq(t2), z3.eq(mul(m, t2, self.div_mult, "td") >> self.div_shift), mk3.eq(mk2)]
        # 3: p = poly_b - (t - z ln2).
        p4, z4, mk4 = Signal(signed(W)), Signal(signed(W)), Signal()
        r = wrap(m, t3 - mul(m, z3, self.ln2, "zl"), "r")
        m.d.sync += [p4.eq(wrap(m, self.poly_b - r, "p")), z4.eq(z3), mk4.eq(mk3)]
        # 4: e = (p^2 + poly_c) >> z, 0 where masked out.
        e = wrap(m, Mux(mk4, rshift_any(m, wrap(m, mul(m, p4, p4, "pp") + self.poly_c, "pc"), z4, "e"), 0), "em")
        e5 = Signal(signed(W))
        m.d.sync += e5.eq(e)
        # 5: out = requantize((e R + 2^(K-1)) >> K, 1, 0, 0, out_bits, unsigned).
        o = post_clamp(m, round_rshift(m, mul(m, e5, recip, "er"), self.recip_shift, "k"), self.out_bits, 0, "o")

        m.d.sync += [v[0].eq(issuing), idx[0].eq(k)]
        for j in range(1, 5):
            m.d.sync += [v[j].eq(v[j - 1]), idx[j].eq(idx[j - 1])]
        m.d.sync += [self.wr_en.eq(0), k.eq(k + 1)]
        with m.If(last):
            m.d.sync += [x.eq(0) for x in v] + [k.eq(0)]

        def run_pass(name, nxt):
            m.d.comb += [issuing.eq(k < self.cols), last.eq(k == self.cols + PASS_DEPTH[name] - 1)]
            with m.If(last):
                m.d.sync += fsm_state.eq(states.index(nxt))

        neg = Signal()
        m.d.comb += neg.eq(self.recip_num < 0)
        # A state register and one If per state (an Amaranth FSM of a non-power-of-two state
        # count, or with outputs set in only some states, lints CASEINCOMPLETE under verilator).
        states = ['IDLE', 'MAX', 'SUM', 'DIV', 'OUT', 'DONE']
        fsm_state = Signal(range(len(states)), name="fsm_state")
        if True:
            with m.If(fsm_state == 0):  # IDLE
                m.d.comb += self.busy.eq(0)
                m.d.sync += k.eq(0)
                with m.If(self.start):
                    m.d.sync += [mx.eq(INT64_MIN), total.eq(0)]
                    m.d.sync += fsm_state.eq(1)  # MAX
            with m.If(fsm_state == 1):  # MAX
                run_pass("MAX", "SUM")
                with m.If(v[0] & (q > mx)):
                    m.d.sync += mx.eq(q)
            with m.If(fsm_state == 2):  # SUM
                run_pass("SUM", "DIV")
                with m.If(v[3]):
                    m.d.sync += total.eq(wrap(m, total + e, "tot"))
            with m.If(fsm_state == 3):  # DIV
                m.d.comb += [dv.start.eq(k == 0), dv.num.eq(Mux(neg, ~self.recip_num, self.recip_num)),
                             dv.den.eq(Mux(total < 1, 1, total))]
                with m.If(k == dv.STEPS):
                    m.d.sync += k.eq(0)
                    m.d.sync += fsm_state.eq(4)  # OUT
            with m.If(fsm_state == 4):  # OUT
                run_pass("OUT", "DONE")
                m.d.sync += [self.wr_en.eq(v[4]), self.wr_addr.eq(idx[4]), self.wr_data.eq(o)]
            with m.If(fsm_state == 5):  # DONE
                m.d.comb += self.done.eq(1)
                m.d.sync += fsm_state.eq(0)  # IDLE
        m.d.comb += recip.eq(Mux(neg, -dv.quot - 1, dv.quot))       # ~quot for a negative numerator
        return m
