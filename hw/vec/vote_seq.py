"""The row sequencer of the exact votes (VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN) on the scalar engine.

The scalar engine's VOTE pipeline (hw/vec/scalar.py) streams a row's members through the
logit requantize and leaves, when the row's last member is through: every logit code l_mc in
the row buffer at m cols + c, every alpha_q A_m in the vote buffer at m, T = sum_m A_m and (MEAN)
S = sum_m A_m l_m. The sequencer then computes the row's result in a fixed number of cycles
(`bebert.vector.vote_seq_cycles`, nothing depends on the data) and raises it for the write:

- a *pass* of n reads issues one address a cycle and takes each value the cycle after, so it
  takes n + 1 cycles; the *division* (one restoring step a cycle, VOTE_DIV_STEPS of them, after a
  load cycle) takes 1 + VOTE_DIV_STEPS;
- AVERAGE, per member m: pass A (its codes' maximum, A_m), pass B (e_c = i-exp(max - l_c) of
  docs/NUMERICS.md "Softmax" with the fixed constants `VOTE_SOFTMAX`, their sum), the division
  recip_num // sum, pass C (p_c = min(rnd(e_c R, recip_shift), 2^16 - 1); P_c = [m > 0] P_c +
  A_m p_c in the vote buffer at aux + c); then pass F (P's first maximum);
- MEAN: the division |2 S + T| // 2 T, floored for a negative numerator;
- MEDIAN, per member m: pass L (its code l_m), pass I (W = sum_j A_j [l_j <= l_m] over every
  member; l_m is a candidate when 2 W >= T, the smallest candidate wins): aux (aux + 3) cycles;
- one cycle more (O) shows the result (`res_valid`, `res`): the engine writes it the cycle after.

Every register moves only while `en` (the engine's write port is not holding a write).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, signed

from bebert.vector import VOTE_DIV_STEPS, VOTE_SOFTMAX

A, B, D, C, F, O, L, I = range(1, 9)       # the phases (0 idle)


def i_exp(m, t0):
    """e = (p^2 + c) >> z of i-softmax for t0 = max - l >= 0 steps below the member's maximum
    (bebert/integer_ops.py apply_softmax with VOTE_SOFTMAX, combinational)."""
    c = VOTE_SOFTMAX
    t1 = Signal(range(c.t_in_max + 1))
    m.d.comb += t1.eq(Mux(t0 > c.t_in_max, c.t_in_max, t0))
    k = c.in_shift
    t2 = (t1 << k) if k >= 0 else (t1 + (1 << (-k - 1))) >> -k
    t = Signal(range(c.t_max + 1))
    m.d.comb += t.eq(Mux(t2 > c.t_max, c.t_max, t2))
    z = Signal(8)
    m.d.comb += z.eq((t * c.div_mult) >> c.div_shift)
    p = Signal(signed(40))
    m.d.comb += p.eq(c.poly_b - (t - z * c.ln2))
    e = Signal(64)
    m.d.comb += e.eq((p * p + c.poly_c).as_unsigned() >> z)
    return e


def vote_sequencer(m, *, start, en, kind, members, labels, tsum, wsum, row_rd, vb_rd, vb_wr):
    """The sequencer's logic; `kind` = (average, mean, median) flags. Returns (res_valid, res)."""
    avg, mean, median = kind
    ph, k = Signal(4), Signal(17)
    mi, mb = Signal(16), Signal(32)              # the member, its codes' base m cols
    dv, dk, dph = Signal(), Signal(17), Signal(4)   # the read issued last cycle
    mx, am, tot = Signal(signed(64)), Signal(64), Signal(64)
    best, bc, have = Signal(signed(64)), Signal(16), Signal()
    lm, wsm = Signal(signed(64)), Signal(64)
    dnum, dden, drem, dq, neg = Signal(64), Signal(64), Signal(65), Signal(64), Signal()
    res_valid, res = Signal(), Signal(64)
    d = row_rd.data.as_signed()
    n = Mux((ph == L), 1, Mux(ph == I, members, labels))           # reads of the pass
    passing = (ph == A) | (ph == B) | (ph == C) | (ph == F) | (ph == L) | (ph == I)
    nxt = Signal(4)
    m.d.comb += nxt.eq(ph)
    with m.Switch(ph):                           # the phase after this one
        with m.Case(A):
            m.d.comb += nxt.eq(B)
        with m.Case(B):
            m.d.comb += nxt.eq(D)
        with m.Case(D):
            m.d.comb += nxt.eq(Mux(avg, C, O))
        with m.Case(C):
            m.d.comb += nxt.eq(Mux(mi == members - 1, F, A))
        with m.Case(F):
            m.d.comb += nxt.eq(O)
        with m.Case(L):
            m.d.comb += nxt.eq(I)
        with m.Case(I):
            m.d.comb += nxt.eq(Mux(mi == members - 1, O, L))
    issue = passing & (k < n)
    with m.Switch(ph):                           # the pass's address
        with m.Case(A):
            m.d.comb += [row_rd.addr.eq(mb + k), vb_rd.addr.eq(mi)]
        with m.Case(B):
            m.d.comb += row_rd.addr.eq(mb + k)
        with m.Case(C):
            m.d.comb += [row_rd.addr.eq(mb + k), vb_rd.addr.eq(members + k)]
        with m.Case(F):
            m.d.comb += vb_rd.addr.eq(members + k)
        with m.Case(L):
            m.d.comb += row_rd.addr.eq(mi)
        with m.Case(I):
            m.d.comb += [row_rd.addr.eq(k), vb_rd.addr.eq(k)]
    with m.If(en):
        m.d.sync += [dv.eq(issue), dk.eq(k), dph.eq(ph)]
        with m.If(start):
            m.d.sync += [ph.eq(Mux(median, L, Mux(mean, D, A))), k.eq(0), mi.eq(0), mb.eq(0), have.eq(0)]
        with m.Elif(passing | (ph == D)):
            last = Mux(ph == D, k == VOTE_DIV_STEPS, k == n)
            m.d.sync += k.eq(Mux(last, 0, k + 1))
            with m.If(last):
                m.d.sync += ph.eq(nxt)
                with m.If((ph == C) | (ph == I)):
                    m.d.sync += [mi.eq(mi + 1), mb.eq(mb + labels)]
        with m.Elif(ph == O):
            m.d.sync += ph.eq(0)
    m.d.comb += res_valid.eq(en & (ph == O))
    _divider(m, en, ph, k, avg, tot, tsum, wsum, dnum, dden, drem, dq, neg)
    e = i_exp(m, (mx - d).as_unsigned())
    vb = vb_rd.data
    with m.If(en & dv):
        with m.Switch(dph):
            with m.Case(A):
                m.d.sync += mx.eq(Mux((dk == 0) | (d > mx), d, mx))
                with m.If(dk == 0):
                    m.d.sync += am.eq(vb)
            with m.Case(B):
                m.d.sync += tot.eq(Mux(dk == 0, 0, tot) + e)
            with m.Case(C):
                c = VOTE_SOFTMAX
                prob = Signal(17)
                v = (e * dq + (1 << (c.recip_shift - 1))) >> c.recip_shift
                m.d.comb += prob.eq(Mux(v > (1 << c.out_bits) - 1, (1 << c.out_bits) - 1, v))
                m.d.comb += [vb_wr.en.eq(1), vb_wr.addr.eq(members + dk),
                             vb_wr.data.eq(Mux(mi == 0, 0, vb) + am[:23] * prob)]
            with m.Case(F):
                with m.If((dk == 0) | (vb.as_signed() > best)):
                    m.d.sync += [best.eq(vb.as_signed()), bc.eq(dk)]
            with m.Case(L):
                m.d.sync += lm.eq(d)
            with m.Case(I):
                w = Mux(dk == 0, 0, wsm) + Mux(d <= lm, vb, 0)
                m.d.sync += wsm.eq(w)
                with m.If((dk == members - 1) & (2 * w[:40] >= tsum) & (~have | (lm < best))):
                    m.d.sync += [best.eq(lm), have.eq(1)]
    floor = Mux(neg, -(dq + (drem != 0)), dq)
    m.d.comb += res.eq(Mux(avg, bc, Mux(mean, floor, best)))
    return res_valid, res


def _divider(m, en, ph, k, avg, tot, tsum, wsum, dnum, dden, drem, dq, neg):
    """Phase D: k = 0 loads (AVERAGE recip_num / sum, MEAN |2 S + T| / 2 T), k = 1 .. VOTE_DIV_STEPS
    one restoring step each: the quotient in dq, the remainder in drem."""
    num = Signal(signed(64))
    m.d.comb += num.eq(2 * wsum + tsum)
    r2 = Signal(66)
    m.d.comb += r2.eq((drem << 1) | dnum[63])
    ge = r2 >= dden
    with m.If(en & (ph == D)):
        with m.If(k == 0):
            m.d.sync += [dnum.eq(Mux(avg, Const(VOTE_SOFTMAX.recip_num, 64), Mux(num < 0, -num, num))),
                         dden.eq(Mux(avg, tot, 2 * tsum)), drem.eq(0), dq.eq(0), neg.eq(~avg & (num < 0))]
        with m.Else():
            m.d.sync += [dnum.eq(dnum << 1), drem.eq(Mux(ge, r2 - dden, r2)), dq.eq(Cat(ge, dq[:63]))]
