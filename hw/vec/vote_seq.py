"""The row sequencer of the exact votes (VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN) on the scalar engine.

The scalar engine's VOTE pipeline (hw/vec/scalar.py) streams a row's members through the
logit requantize and leaves, when the row's last member is through: every logit code l_mc in
the row buffer at m cols + c, every alpha_q A_m in the vote buffer at m, T = sum_m A_m and (MEAN)
S = sum_m A_m l_m. The sequencer then computes the row's result in a fixed number of cycles
(`bebert.vector.vote_seq_cycles`, nothing depends on the data) and shows it for the write:

- a *pass* of n reads issues one address a cycle and takes each value the cycle after, so it
  takes n + 1 cycles; the *division* (a load cycle, then one restoring step a cycle) takes
  1 + VOTE_AVG_DIV_STEPS (AVERAGE: a 32-bit quotient, bebert/vector.py's bound) or
  1 + VOTE_DIV_STEPS (MEAN);
- AVERAGE, per member m: pass A (its codes' maximum, A_m), pass B (e_c = i-exp(max - l_c) of
  docs/NUMERICS.md "Softmax" with the fixed constants `VOTE_SOFTMAX`, their sum), the division
  R = recip_num // sum, pass C (p_c = min(rnd(e_c R, recip_shift), 2^16 - 1); P_c = [m > 0] P_c +
  A_m p_c in the vote buffer at aux + c); then pass F (P's first maximum);
- MEAN: the division |2 S + T| // 2 T, floored for a negative numerator;
- MEDIAN, per member m: pass L (its code l_m), pass I (W = sum_j A_j [l_j <= l_m] over every
  member; l_m is a candidate when 2 W >= T, the smallest candidate wins): aux (aux + 3) cycles;
- one cycle more (O) shows the result (`res_valid`, `res`): the engine writes it the cycle after.

Every register moves only while `en` (the engine's write port is not holding a write).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Mux, Signal, signed

from bebert.vector import VOTE_AVG_DIV_STEPS, VOTE_DIV_STEPS, VOTE_SOFTMAX

A, B, D, C, F, O, L, I = range(1, 9)       # the phases (0 idle)
NEXT = {A: B, B: D, F: O, L: I}            # the phase after (D, C, I: below)
SM = VOTE_SOFTMAX


# VOTE_SOFTMAX's fixed constants bound every step of i_exp (docs/NUMERICS.md "Softmax"): z =
# floor(t / ln2) <= Z_MAX for t <= t_max (tests/test_hw_vector.py checks every t), so
# t - z ln2 lies in [0, ln2), p in (poly_b - ln2, poly_b] and e <= q_l0 < 2^30.
Z_MAX = SM.t_max // SM.ln2
P_MIN = SM.poly_b - SM.ln2 + 1
E_MAX = SM.poly_b ** 2 + SM.poly_c
AVG_QUOT_BITS = VOTE_AVG_DIV_STEPS           # AVERAGE's quotient R < 2^32


def i_exp(m, t0):
    """e = (p^2 + c) >> z of i-softmax for t0 = max - l >= 0 steps below the member's maximum
    (bebert/integer_ops.py apply_softmax with VOTE_SOFTMAX, combinational), each step as wide
    as its bound."""
    t1 = Signal(range(SM.t_in_max + 1))
    m.d.comb += t1.eq(Mux(t0 > SM.t_in_max, SM.t_in_max, t0))
    k = SM.in_shift
    t2 = (t1 << k) if k >= 0 else (t1 + (1 << (-k - 1))) >> -k
    t = Signal(range(SM.t_max + 1))
    m.d.comb += t.eq(Mux(t2 > SM.t_max, SM.t_max, t2))
    z = Signal(range(Z_MAX + 1))
    m.d.comb += z.eq((t * SM.div_mult) >> SM.div_shift)
    p = Signal(range(P_MIN, SM.poly_b + 1))
    m.d.comb += p.eq(SM.poly_b - (t - z * SM.ln2))
    e = Signal(range(E_MAX + 1))
    m.d.comb += e.eq((p * p + SM.poly_c) >> z)
    return e


class VoteSequencer:
    """The sequencer's logic in the engine's module (it shares the engine's buffers' ports);
    `kind` = (average, mean, median) flags; `res_valid`, `res` its output."""

    def __init__(self, m, *, start, en, kind, members, labels, tsum, wsum, row_rd, vb_rd, vb_wr):
        self.start, self.en, self.members, self.labels, self.tsum, self.wsum = start, en, members, labels, tsum, wsum
        self.avg, self.mean, self.median = kind
        self.row_rd, self.vb_rd, self.vb_wr = row_rd, vb_rd, vb_wr
        self.ph, self.k = Signal(4), Signal(17)
        self.mi, self.mb = Signal(16), Signal(32)                   # the member, its codes' base m cols
        self.dv, self.dk, self.dph = Signal(), Signal(17), Signal(4)    # the read issued last cycle
        self.mx, self.am, self.tot = Signal(signed(64)), Signal(64), Signal(64)
        self.best, self.bc, self.have = Signal(signed(64)), Signal(16), Signal()
        self.lm, self.wsm = Signal(signed(64)), Signal(64)
        self.dnum, self.dden, self.drem, self.dq, self.neg = Signal(64), Signal(64), Signal(65), Signal(64), Signal()
        self.res_valid, self.res = Signal(), Signal(64)
        self._control(m)
        self._addresses(m)
        self._divider(m)
        self._consume(m)
        floor = Mux(self.neg, -(self.dq + (self.drem != 0)), self.dq)
        m.d.comb += self.res.eq(Mux(self.avg, self.bc, Mux(self.mean, floor, self.best)))

    def _control(self, m):
        """The phase, its counter k (a pass: n issues and the last value's cycle; D: the load and
        the steps), the member; `dv` / `dk` / `dph`: the read issued the cycle before."""
        ph, k, mi = self.ph, self.k, self.mi
        n = Mux(ph == L, 1, Mux(ph == I, self.members, self.labels))
        passing = Cat(*[ph == p for p in (A, B, C, F, L, I)]).any()
        steps = Mux(self.avg, VOTE_AVG_DIV_STEPS, VOTE_DIV_STEPS)
        last_member = mi == self.members - 1
        nxt = Signal(4)
        m.d.comb += nxt.eq(Mux(ph == D, Mux(self.avg, C, O), Mux(ph == C, Mux(last_member, F, A),
                                                                   Mux(ph == I, Mux(last_member, O, L), 0))))
        for p, q in NEXT.items():
            with m.If(ph == p):
                m.d.comb += nxt.eq(q)
        with m.If(self.en):
            m.d.sync += [self.dv.eq(passing & (k < n)), self.dk.eq(k), self.dph.eq(ph)]
            with m.If(self.start):
                m.d.sync += [ph.eq(Mux(self.median, L, Mux(self.mean, D, A))), k.eq(0), mi.eq(0), self.mb.eq(0),
                             self.have.eq(0)]
            with m.Elif(passing | (ph == D)):
                last = Mux(ph == D, k == steps, k == n)
                m.d.sync += k.eq(Mux(last, 0, k + 1))
                with m.If(last):
                    m.d.sync += ph.eq(nxt)
                    with m.If((ph == C) | (ph == I)):
                        m.d.sync += [mi.eq(mi + 1), self.mb.eq(self.mb + self.labels)]
            with m.Elif(ph == O):
                m.d.sync += ph.eq(0)
        m.d.comb += self.res_valid.eq(self.en & (ph == O))

    def _addresses(self, m):
        """The pass's reads: the row buffer's codes, the vote buffer's alphas / P."""
        ph, k, rr, vr = self.ph, self.k, self.row_rd, self.vb_rd
        with m.Switch(ph):
            with m.Case(A):
                m.d.comb += [rr.addr.eq(self.mb + k), vr.addr.eq(self.mi)]
            with m.Case(B):
                m.d.comb += rr.addr.eq(self.mb + k)
            with m.Case(C):
                m.d.comb += [rr.addr.eq(self.mb + k), vr.addr.eq(self.members + k)]
            with m.Case(F):
                m.d.comb += vr.addr.eq(self.members + k)
            with m.Case(L):
                m.d.comb += rr.addr.eq(self.mi)
            with m.Case(I):
                m.d.comb += [rr.addr.eq(k), vr.addr.eq(k)]

    def _divider(self, m):
        """Phase D: k = 0 loads (AVERAGE: the remainder recip_num >> 32 and the low 32 numerator
        bits, over the sum; MEAN: |2 S + T| over 2 T), then one restoring step per k: the quotient
        in dq, the remainder in drem (each step keeps drem below the divisor)."""
        num = Signal(signed(64))
        m.d.comb += num.eq(2 * self.wsum + self.tsum)
        r2 = Signal(66)
        m.d.comb += r2.eq((self.drem << 1) | self.dnum[63])
        ge = r2 >= self.dden
        lo = (SM.recip_num & ((1 << VOTE_AVG_DIV_STEPS) - 1)) << (64 - VOTE_AVG_DIV_STEPS)
        with m.If(self.en & (self.ph == D)):
            with m.If(self.k == 0):
                m.d.sync += [self.dnum.eq(Mux(self.avg, lo, Mux(num < 0, -num, num))),
                             self.dden.eq(Mux(self.avg, self.tot, 2 * self.tsum)),
                             self.drem.eq(Mux(self.avg, SM.recip_num >> VOTE_AVG_DIV_STEPS, 0)), self.dq.eq(0),
                             self.neg.eq(~self.avg & (num < 0))]
            with m.Else():
                m.d.sync += [self.dnum.eq(self.dnum << 1), self.drem.eq(Mux(ge, r2 - self.dden, r2)),
                             self.dq.eq(Cat(ge, self.dq[:63]))]

    def _consume(self, m):
        """The value of the read issued the cycle before, by its phase."""
        d, vb, dk = self.row_rd.data.as_signed(), self.vb_rd.data, self.dk
        e = i_exp(m, (self.mx - d).as_unsigned())
        with m.If(self.en & self.dv):
            with m.Switch(self.dph):
                with m.Case(A):                 # the member's maximum code, its alpha
                    m.d.sync += self.mx.eq(Mux((dk == 0) | (d > self.mx), d, self.mx))
                    with m.If(dk == 0):
                        m.d.sync += self.am.eq(vb)
                with m.Case(B):                 # the sum of the exponentials
                    m.d.sync += self.tot.eq(Mux(dk == 0, 0, self.tot) + e)
                with m.Case(C):                 # the probability, into P
                    prob = Signal(17)
                    v = (e * self.dq[:AVG_QUOT_BITS] + (1 << (SM.recip_shift - 1))) >> SM.recip_shift
                    m.d.comb += [prob.eq(Mux(v > (1 << SM.out_bits) - 1, (1 << SM.out_bits) - 1, v)),
                                 self.vb_wr.en.eq(1), self.vb_wr.addr.eq(self.members + dk),
                                 self.vb_wr.data.eq(Mux(self.mi == 0, 0, vb) + self.am[:23] * prob)]
                with m.Case(F):                 # P's first maximum
                    with m.If((dk == 0) | (vb.as_signed() > self.best)):
                        m.d.sync += [self.best.eq(vb.as_signed()), self.bc.eq(dk)]
                with m.Case(L):
                    m.d.sync += self.lm.eq(d)
                with m.Case(I):                 # the weight at or below l_m; the smallest candidate
                    w = Mux(dk == 0, 0, self.wsm) + Mux(d <= self.lm, vb, 0)
                    m.d.sync += self.wsm.eq(w)
                    cand = (dk == self.members - 1) & (2 * w[:40] >= self.tsum)
                    with m.If(cand & (~self.have | (self.lm < self.best))):
                        m.d.sync += [self.best.eq(self.lm), self.have.eq(1)]
