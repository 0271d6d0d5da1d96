"""A view walker: the byte address of each element of a `bebert.vector.View`, row-major.

element (r, c) at base + (R // rtile) s_rt + (R % rtile) s_r + (C // ctile) s_ct + (C % ctile) s_c
with R = r + r0, C = c + c0 (tile 0: untiled). `load` (with the view's words and the walk's
width `cols`) starts a fixed-length initialisation (`INIT_CYCLES`: r0 and c0 divided by their
tiles, one quotient bit per cycle, then the products one per cycle on one multiplier);
`ready` then stays high, `addr` is element (0, 0)'s address, each `step` moves to the next
element (column, then row) in the next cycle, `restart` back to (0, 0). Steps are additions
only: within a tile + s_r / s_c, across a tile boundary the jump s_rt - (rtile - 1) s_r.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

VIEW_FIELDS = ("base", "fmt", "rtile", "ctile", "s_rt", "s_r", "s_ct", "s_c", "r0", "c0")
from bebert.vector import VEC_WALK_INIT

DIV_STEPS = 32
PRODUCTS = 6
INIT_CYCLES = 2 * DIV_STEPS + PRODUCTS + 1
assert INIT_CYCLES == VEC_WALK_INIT


class ViewWalker(wiring.Component):
    INIT_CYCLES = INIT_CYCLES

    def __init__(self):
        super().__init__({"load": In(1), "view": In(32 * len(VIEW_FIELDS)), "cols": In(16), "ready": Out(1),
                          "step": In(1), "restart": In(1), "addr": Out(32)})

    def elaborate(self, platform):
        m = Module()
        v = {n: self.view.word_select(i, 32) for i, n in enumerate(VIEW_FIELDS)}
        ld = {n: Signal(32, name=f"v_{n}") for n in ("base", "rtile", "ctile", "s_rt", "s_r", "s_ct", "s_c")}
        cnt = Signal(range(INIT_CYCLES + 2))
        busy = Signal()
        # the division: num // den, 32 steps (r0 by rtile, then c0 by ctile)
        num, rem, quo = Signal(32), Signal(33), Signal(32)
        qr, mr, qc, mc = Signal(32), Signal(32), Signal(32), Signal(32)
        den = Mux(cnt < DIV_STEPS, ld["rtile"], ld["ctile"])
        r2 = Cat(num[31], rem[:32])
        ge = r2 >= den
        with m.If(self.load):
            m.d.sync += [busy.eq(1), cnt.eq(0), rem.eq(0), num.eq(v["r0"])]
            m.d.sync += [ld[n].eq(v[n]) for n in ld]
        with m.Elif(busy):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt < 2 * DIV_STEPS):
                m.d.sync += [rem.eq(Mux(ge, r2 - den, r2)), num.eq(num << 1), quo.eq(Cat(ge, quo))]
                with m.If(cnt == DIV_STEPS - 1):
                    m.d.sync += [qr.eq(Cat(ge, quo)), mr.eq(Mux(ge, r2 - den, r2)), rem.eq(0), num.eq(v["c0"])]
                with m.If(cnt == 2 * DIV_STEPS - 1):
                    m.d.sync += [qc.eq(Cat(ge, quo)), mc.eq(Mux(ge, r2 - den, r2))]
        # untiled axes: quotient 0, remainder the offset itself
        q_r, m_r = Mux(ld["rtile"] == 0, 0, qr), Mux(ld["rtile"] == 0, v["r0"], mr)
        q_c, m_c = Mux(ld["ctile"] == 0, 0, qc), Mux(ld["ctile"] == 0, v["c0"], mc)
        self._products(m, cnt, busy, ld, q_r, m_r, q_c, m_c)
        return m

    def _products(self, m, cnt, busy, ld, q_r, m_r, q_c, m_c):
        """One product a cycle, then stepping."""
        k = cnt - 2 * DIV_STEPS
        a, b = Signal(32), Signal(32)
        pairs = [(q_r, ld["s_rt"]), (m_r, ld["s_r"]), (q_c, ld["s_ct"]), (m_c, ld["s_c"]),
                 (ld["rtile"] - 1, ld["s_r"]), (ld["ctile"] - 1, ld["s_c"])]
        for i, (x, y) in enumerate(pairs):
            with m.If(k == i):
                m.d.comb += [a.eq(x), b.eq(y)]
        prod = (a * b)[:32]
        p = [Signal(32, name=f"p{i}") for i in range(PRODUCTS)]
        with m.If(busy & (cnt >= 2 * DIV_STEPS) & (k < PRODUCTS)):
            for i in range(PRODUCTS):
                with m.If(k == i):
                    m.d.sync += p[i].eq(prod)
        row0, col0 = p[0] + p[1], p[2] + p[3]
        jump_r, jump_c = ld["s_rt"] - p[4], ld["s_ct"] - p[5]
        # the walk
        c = Signal(16)
        rowa, cola = Signal(32), Signal(32)
        rm, cm = Signal(32), Signal(32)
        with m.If(busy & (k == PRODUCTS)):
            m.d.sync += [busy.eq(0), self.ready.eq(1), c.eq(0), rowa.eq(row0), cola.eq(col0), rm.eq(m_r), cm.eq(m_c)]
        with m.If(self.load):
            m.d.sync += self.ready.eq(0)
        with m.Elif(self.restart):
            m.d.sync += [c.eq(0), rowa.eq(row0), cola.eq(col0), rm.eq(m_r), cm.eq(m_c)]
        with m.Elif(self.step):
            with m.If(c == self.cols - 1):
                m.d.sync += [c.eq(0), cola.eq(col0), cm.eq(m_c)]
                wrap = (ld["rtile"] != 0) & (rm == ld["rtile"] - 1)
                m.d.sync += [rm.eq(Mux(wrap, 0, rm + 1)), rowa.eq(rowa + Mux(wrap, jump_r, ld["s_r"]))]
            with m.Else():
                wrap = (ld["ctile"] != 0) & (cm == ld["ctile"] - 1)
                m.d.sync += [c.eq(c + 1), cm.eq(Mux(wrap, 0, cm + 1)), cola.eq(cola + Mux(wrap, jump_c, ld["s_c"]))]
        m.d.comb += self.addr.eq(ld["base"] + rowa + cola)
