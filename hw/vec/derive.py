"""The tile engine's settings of a VEC, derived from its word, descriptor slots and constants:
`bebert.hw.vec.settings` (the Python model) in gates, combinational but for one register in
the softmax's (`_softmax`), once per instruction (shared by every lane; the tile engine takes
the lanes' settings through registers of its own). Also the descriptor checks whose failure is
a VEC fault (the golden executor raises `VecError` for the same descriptors): element sizes and
the word's io, the tile engine's stream views (tiles of T rows, bus-aligned), constant blocks
(8-byte aligned, present), LAYERNORM's hidden = cols, packed outputs (group, alignment;
requantize constants only for LAYERNORM / SOFTMAX), SOFTMAX's mask (a plain int32 row).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.vector import (ADD_CONSTS, COMBINE_MAX_MEMBERS, GELU_CONSTS, LN_CONSTS, REQUANT_CONSTS, SM_CONSTS, VOTE_EXACT,
                           VecFn)

from .arith import thermo
from .front import ELEM_ROW
from .lane import LaneConfig
from .reader import RunConfig
from .setup import A_WORDS, G_WORDS, K_WORDS, NSLOTS, SLOTS
from .tile_engine import K_ADD, K_GELU, K_LN, K_REQUANT, K_SM, TileConfig
from .writer import WriterConfig


class _Range:
    """A clamp range: `sign` (+-1), else signed / unsigned `bits`."""

    def __init__(self, is_signed, bits, sign=Const(0, 1)):
        self.signed, self.bits, self.sign = is_signed, bits, sign

    @classmethod
    def obits(cls, obits, osigned):
        """requantize's output step: 0 int32, 1 +-1, else obits bits."""
        return cls(Mux(obits == 0, 1, osigned), Mux(obits == 0, 32, obits)[:6], obits == 1)

    def meet(self, o: "_Range") -> "_Range":
        same = self.signed == o.signed
        s_bits, u_bits = Mux(self.signed, self.bits, o.bits), Mux(self.signed, o.bits, self.bits)
        bits = Mux(same, Mux(self.bits < o.bits, self.bits, o.bits), Mux(s_bits - 1 < u_bits, s_bits - 1, u_bits))
        return _Range(self.signed & o.signed, bits[:6], self.sign)

    def lo_hi(self, width):
        b = self.bits
        half = (Const(1, width + 1) << (b - 1).as_unsigned()[:6])[:width + 1]
        top = (Const(1, width + 2) << b)[:width + 2]
        return Mux(self.signed, -half, 0), Mux(self.signed, half - 1, top - 1)

    def mask(self, width):
        return Mux(self.signed, thermo(width, (self.bits - 1).as_unsigned()[:6]), thermo(width, self.bits))


def _clamp(m, dst, r: _Range, width: int):
    lo, hi = r.lo_hi(width)
    m.d.comb += [dst.mask.eq(r.mask(33)), dst.signed.eq(r.signed), dst.lo.eq(lo), dst.hi.eq(hi), dst.force.eq(0)]


def _post(m, dst, shift, r: _Range, clip: _Range | None = None):
    """A PostConfig(33): rnd(v, shift) into r (or +-1 when r.sign), clipped to `clip`."""
    rr = r.meet(clip) if clip is not None else r
    lo, hi = rr.lo_hi(34)
    slo, shi = Const(-1, 34), Const(1, 34)
    if clip is not None:                          # +-1 clipped
        clo, chi = clip.lo_hi(34)
        slo = Mux(clo > -1, clo, -1)
        shi = Mux(chi < 1, chi, 1)
    m.d.comb += [dst.shift.eq(shift), dst.mask1.eq(thermo(65, shift + 33)), dst.force.eq(r.sign),
                 dst.signed.eq(Mux(r.sign, 1, rr.signed)), dst.mask2.eq(Mux(r.sign, 0, rr.mask(34))),
                 dst.lo.eq(Mux(r.sign, slo, lo)), dst.hi.eq(Mux(r.sign, shi, hi))]


def _decode(m, dst, elem_code, is_signed, sat):
    s = Mux(sat > 32, 32, sat)[:6]
    m.d.comb += [dst.elem.eq(elem_code), dst.signed.eq(is_signed), dst.mask.eq(thermo(33, (s - 1)[:6])),
                 dst.lo.eq(-(Const(1, 33) << (s - 1)[:6]))]


def _min(a, b):
    return Mux(a < b, a, b)


class Derive(wiring.Component):
    def __init__(self, config: AccelConfig):
        self.config = config
        super().__init__({
            "fn": In(8), "rows": In(16), "cols": In(16), "bits": In(4), "aux": In(16), "io": In(8), "desc": In(32),
            "slots": In(32 * NSLOTS), "k": In(64 * K_WORDS), "a": In(64 * A_WORDS), "g": In(64 * G_WORDS),
            "tc": Out(TileConfig()), "lc": Out(LaneConfig()), "wc": Out(WriterConfig()), "rc": Out(RunConfig()),
            "fault": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fn = self.config, self.fn
        T, B, W = cfg.vec_lanes, cfg.dram_bytes_per_cycle, cfg.xnor_width
        lgT, lgB = T.bit_length() - 1, B.bit_length() - 1
        sl = [self.slots.word_select(i, 32) for i in range(NSLOTS)]
        view = lambda v: {n: sl[SLOTS[v] + i] for i, n in enumerate(  # noqa: E731
            ("base", "fmt", "rtile", "ctile", "s_rt", "s_r", "s_ct", "s_c", "r0", "c0"))}
        v0, v1, v2 = view("V0"), view("V1"), view("V2")
        pk = {n: sl[SLOTS["P"] + i] for i, n in enumerate(("base", "pitch", "gstride", "group", "wstep", "flags",
                                                            "consts"))}
        io = self.io
        is_ln, is_sm = self.fn == int(VecFn.LAYERNORM), self.fn == int(VecFn.SOFTMAX)
        stream_out, second, rq = io[0], io[1], (is_ln | is_sm) & (self.bits != 0)
        ein_code, eout_code = io[2:4], io[4:6]
        tc, lc, wc, rc = self.tc, self.lc, self.wc, self.rc
        kinds = {VecFn.ADD: K_ADD, VecFn.REQUANT: K_REQUANT, VecFn.GELU: K_GELU, VecFn.LAYERNORM: K_LN,
                 VecFn.SOFTMAX: K_SM}
        kind = Signal(3)
        for f, kk in kinds.items():
            with m.If(fn == int(f)):
                m.d.comb += kind.eq(kk)
        is_ln, is_sm = fn == int(VecFn.LAYERNORM), fn == int(VecFn.SOFTMAX)
        two = (fn == int(VecFn.ADD)) | (is_ln & second)
        ein = Const(1, 4) << ein_code
        nin = Mux(two, 2, 1)
        step = Mux(((T * nin) << ein_code) >> lgB > nin, ((T * nin) << ein_code) >> lgB, nin)
        ostep = Mux(stream_out & ((T << eout_code) > B), (T << eout_code) >> lgB, 1)
        m.d.comb += [tc.kind.eq(kind), tc.two.eq(two), tc.masked.eq(is_sm & second), tc.rq.eq(rq),
                     tc.cols.eq(self.cols), tc.tiles.eq((self.rows + T - 1) >> lgT), tc.step.eq(step),
                     tc.ostep.eq(ostep)]
        self._consts(m, fn, v0, v1, v2, pk, stream_out, second, rq, ein_code, eout_code)
        self._io(m, v0, v1, v2, pk, stream_out, second, rq, ein_code, eout_code, two)
        self._faults(m, v0, v1, v2, pk, stream_out, second, rq, ein_code, eout_code, two)
        return m

    def _consts(self, m, fn, v0, v1, v2, pk, stream_out, second, rq, ein_code, eout_code):
        """The decoders', POSTs' and lanes' settings from the kernel's constants."""
        tc, lc = self.tc, self.lc
        kw = [self.k.word_select(i, 64) for i in range(K_WORDS)]
        aw = [self.a.word_select(i, 64) for i in range(A_WORDS)]
        gw = [self.g.word_select(i, 64) for i in range(G_WORDS)]
        K = lambda names, n: kw[names.index(n)]   # noqa: E731
        A = lambda n: aw[ADD_CONSTS.index(n)]      # noqa: E731
        G = lambda n: gw[REQUANT_CONSTS.index(n)]  # noqa: E731
        sat = lambda v: Mux(v["fmt"][16:24] == 0, 64, v["fmt"][16:24])  # noqa: E731
        is_ln, is_sm = fn == int(VecFn.LAYERNORM), fn == int(VecFn.SOFTMAX)
        two_ln = is_ln & second
        # input saturation: the view's sat, the kernel's in_bits
        in_bits = Signal(7)
        with m.Switch(fn):
            with m.Case(int(VecFn.REQUANT)):
                m.d.comb += in_bits.eq(K(REQUANT_CONSTS, "in_bits"))
            with m.Case(int(VecFn.ADD)):
                m.d.comb += in_bits.eq(K(ADD_CONSTS, "in_bits"))
            with m.Case(int(VecFn.LAYERNORM)):
                m.d.comb += in_bits.eq(Mux(second, A("in_bits"), K(LN_CONSTS, "in_bits")))
            with m.Default():
                m.d.comb += in_bits.eq(64)
        _decode(m, tc.dec_a, ein_code, v0["fmt"][8], _min(sat(v0), in_bits))
        _decode(m, tc.dec_b, ein_code, v1["fmt"][8], _min(sat(v1), in_bits))
        has_g = pk["consts"] != 0            # else the packed pass only clamps: an identity requantize
        _decode(m, tc.dec_r, ELEM_ROW, 1, Mux(has_g, G("in_bits")[:7], 32))
        # the output POST
        shift, obits, osig = Signal(6), Signal(6), Signal()
        for f, names, sh, ob, os in ((VecFn.REQUANT, REQUANT_CONSTS, "shift", "bits", "signed"),
                                     (VecFn.ADD, ADD_CONSTS, "shift", "out_bits", "out_signed"),
                                     (VecFn.GELU, GELU_CONSTS, "shift", "out_bits", "out_signed"),
                                     (VecFn.LAYERNORM, LN_CONSTS, "shift", "out_bits", "out_signed"),
                                     (VecFn.SOFTMAX, SM_CONSTS, "recip_shift", "out_bits", None)):
            with m.If(fn == int(f)):
                m.d.comb += [shift.eq(K(names, sh)), obits.eq(K(names, ob)), osig.eq(K(names, os) if os else 0)]
        _post(m, tc.post, shift, _Range.obits(obits, osig))
        _post(m, tc.post_add, A("shift")[:6], _Range.obits(A("out_bits")[:6], A("out_signed")[0]),
              clip=_Range(Const(1, 1), K(LN_CONSTS, "in_bits")[:6]))
        bits = self.bits
        p_signed, pm1 = pk["flags"][0], pk["flags"][1]
        # the planes' range; +-1 planes keep the sign (z >= 0 is the plane): any range with both
        plane = _Range(Mux(pm1, 1, p_signed), Mux(pm1, 2, Cat(bits, Const(0, 2))))
        _post(m, tc.post_rq, Mux(has_g, G("shift")[:6], 0),
              _Range.obits(Mux(has_g, G("bits")[:6], 0), Mux(has_g, G("signed")[0], 1)), clip=plane)
        m.d.comb += [tc.m1.eq(Mux(fn == int(VecFn.REQUANT), K(REQUANT_CONSTS, "mult"),
                                  Mux(two_ln, A("mult1"), K(ADD_CONSTS, "mult1")))),
                     tc.m2.eq(Mux(two_ln, A("mult2"), K(ADD_CONSTS, "mult2"))), tc.mrq.eq(Mux(has_g, G("mult"), 1))]
        # the lanes' kernel constants
        gk = lambda n: K(GELU_CONSTS, n)  # noqa: E731
        gsh = gk("in_shift").as_signed()
        m.d.comb += [lc.gelu.q.eq(gk("in_clamp")), lc.gelu.k.eq(Mux(gsh < -64, -64, gsh)), lc.gelu.b.eq(gk("erf_b")),
                     lc.gelu.c2.eq(gk("erf_c") << 1), lc.gelu.mult.eq(gk("mult"))]
        lk = lambda n: K(LN_CONSTS, n)  # noqa: E731
        m.d.comb += [lc.ln.h.eq(self.cols), lc.ln.ds.eq(lk("d_shift")), lc.ln.sh.eq(60 - lk("norm_bits")),
                     lc.ln.eps.eq(lk("eps"))]
        sk = lambda n: K(SM_CONSTS, n)  # noqa: E731
        self._softmax(m, sk)
        # outputs: the stream element's range, the planes'
        eo = Const(1, 4) << eout_code
        sbits = Mux(eo >= 4, 32, eo << 3)
        _clamp(m, lc.scfg, _Range(v2["fmt"][8], sbits[:6]), 32)
        _clamp(m, lc.ccfg, plane, 8)
        m.d.comb += lc.pm1.eq(pm1)

    def _softmax(self, m, sk):
        """m2 = min(scl(t_in_max, k), t_max); th = the largest t0 with scl(t0, k) <= m2. The one
        register of the derivation sits after scl: m2 and th are wanted in SOFTMAX's P2 only (a
        row pass after the engine's start), and the chain of shifts and compares is too long for
        one cycle beside the lane's own compare."""
        lc = self.lc
        k = sk("in_shift")[:6].as_signed()
        t_in = Mux(sk("t_in_max") > 0xFFFFFFFF, 0xFFFFFFFF, sk("t_in_max"))[:32]
        t_max = sk("t_max")[:20]
        n = (-k).as_unsigned()[:6]
        up = (t_in << k.as_unsigned()[:5])[:64]
        down = (t_in + (Const(1, 33) << (n - 1)[:5])) >> n
        s = Signal(64)                  # registered: the lanes take m2 and th from the second cycle of a run on
        m.d.sync += s.eq(Mux(k >= 0, up, down))
        m2 = Mux(s < t_max, s, t_max)[:19]
        th_up = m2 >> k.as_unsigned()[:5]
        th_dn = ((m2 + 1) << n) - (Const(1, 33) << (n - 1)[:5]) - 1
        th = Mux(k >= 0, th_up, th_dn)
        m.d.comb += [lc.sm.m2.eq(m2), lc.sm.th.eq(Mux(th > (1 << 34) - 1, (1 << 34) - 1, th)), lc.sm.k.eq(k),
                     lc.sm.dm.eq(sk("div_mult")), lc.sm.dsh.eq(sk("div_shift")), lc.sm.ln2.eq(sk("ln2")),
                     lc.sm.pb.eq(sk("poly_b")), lc.sm.pc.eq(sk("poly_c")), lc.rnum.eq(sk("recip_num"))]

    def _io(self, m, v0, v1, v2, pk, stream_out, second, rq, ein_code, eout_code, two):
        """The reader's runs and the writer's outputs."""
        cfg = self.config
        T, B, W = cfg.vec_lanes, cfg.dram_bytes_per_cycle, cfg.xnor_width
        lgT, lgB = T.bit_length() - 1, B.bit_length() - 1
        rc, wc = self.rc, self.wc
        beats = ((self.cols << ein_code) * T + B - 1) >> lgB
        first_b = lambda v: v["base"] + (v["r0"] >> lgT) * v["s_rt"]   # noqa: E731
        m.d.comb += [rc.two.eq(two), rc.base_a.eq(first_b(v0)), rc.base_b.eq(first_b(v1)), rc.pitch_a.eq(v0["s_rt"]),
                     rc.pitch_b.eq(v1["s_rt"]), rc.beats.eq(beats)]
        lg_group = Signal(5)
        for i in range(32):
            with m.If(pk["group"] == (1 << i)):
                m.d.comb += lg_group.eq(i)
        m.d.comb += [wc.stream.eq(stream_out), wc.eo.eq(eout_code), wc.osigned.eq(v2["fmt"][8]),
                     wc.base.eq(first_b(v2)), wc.pitch.eq(v2["s_rt"]),
                     wc.planes.eq(Mux(self.bits == 0, 0, Mux(pk["flags"][1], 1, self.bits))), wc.pbase.eq(pk["base"]),
                     wc.ppitch.eq(pk["pitch"]), wc.gstride.eq(pk["gstride"]), wc.lg_group.eq(lg_group),
                     wc.wstep.eq(pk["wstep"]), wc.rows.eq(self.rows), wc.tiles.eq((self.rows + T - 1) >> lgT)]
        del W

    def _stream_bad(self, v, code):
        """`v` is not a stream view of 2^code-byte elements (bebert.vector._check_stream)."""
        T, B = self.config.vec_lanes, self.config.dram_bytes_per_cycle
        e = Const(1, 5) << code
        return ((v["fmt"][:8] != e) | (v["rtile"] != T) | (v["ctile"] != 0) | (v["s_r"] != e)
                | (v["s_c"] != (e * T)) | (v["r0"][:T.bit_length() - 1] != 0) | (v["c0"] != 0)
                | (v["base"][:B.bit_length() - 1] != 0) | (v["s_rt"][:B.bit_length() - 1] != 0))

    def _faults(self, m, v0, v1, v2, pk, stream_out, second, rq, ein_code, eout_code, two):
        cfg = self.config
        T, B, W = cfg.vec_lanes, cfg.dram_bytes_per_cycle, cfg.xnor_width
        fn = self.fn
        is_ln, is_sm = fn == int(VecFn.LAYERNORM), fn == int(VecFn.SOFTMAX)
        tile = Cat(*[fn == int(f) for f in (VecFn.ADD, VecFn.REQUANT, VecFn.LAYERNORM, VecFn.SOFTMAX,
                                           VecFn.GELU)]).any()

        def const_bad(a):
            return (a[:3] != 0) | (a == 0)

        align = min(B, T * W // 8)
        am = align - 1
        g = pk["group"]
        pow2 = (g != 0) & ((g & (g - 1)) == 0)
        gmin = min(T, max(1, 8 * B // W))
        packed_bad = (~pow2 | (g < gmin) | ((pk["base"] | pk["pitch"] | pk["gstride"] | pk["wstep"]) & am).any()
                      | ((pk["consts"] != 0) & (~(is_ln | is_sm) | const_bad(pk["consts"]))))
        mask_bad = ((v1["fmt"][:8] != 4) | (v1["rtile"] != 0) | (v1["ctile"] != 0) | (v1["s_c"] != 4)
                    | (v1["r0"] != 0) | (v1["c0"] != 0) | (v1["base"][:2] != 0))
        k0 = self.k.word_select(0, 64)
        bad = ((self.desc[:2] != 0) | (ein_code == 3) | self._stream_bad(v0, ein_code) | (two & self._stream_bad(v1, ein_code))
               | (stream_out & self._stream_bad(v2, eout_code)) | const_bad(self.slots.word_select(SLOTS["C0"], 32))
               | (is_ln & second & const_bad(self.slots.word_select(SLOTS["C1"], 32)))
               | (self.bits.any() & packed_bad) | (is_sm & second & mask_bad)
               | (is_ln & ((k0 != self.cols) | (self.cols > cfg.vec_row_elems)))
               | (is_sm & (self.cols > cfg.vec_row_elems)))
        m.d.comb += self.fault.eq(Mux(tile, bad, self._scalar_bad(m, v0, v1, v2)))

    def _scalar_bad(self, m, v0, v1, v2):
        """The scalar kernels' descriptors: views of 1-, 2-, 4-, 8-byte elements at multiples
        of their size, aligned tables and blocks, the row buffer's limits."""
        cfg, fn = self.config, self.fn
        R = cfg.vec_row_elems
        sl = [self.slots.word_select(i, 32) for i in range(NSLOTS)]

        def view_bad(v):
            e = v["fmt"][:8]
            ok_e = (e == 1) | (e == 2) | (e == 4) | (e == 8)
            mis = Cat(*[(v[f] & (e - 1)[:4]).any() for f in ("base", "s_rt", "s_r", "s_ct", "s_c")]).any()
            return ~ok_e | mis

        def table_bad(t):
            kind, base, stride, elem, pairs = (sl[SLOTS[t] + i] for i in (0, 1, 2, 4, 5))
            ok_e = (elem == 1) | (elem == 2) | (elem == 4) | (elem == 8)
            dense = (kind == 0) & (~ok_e | ((base | stride) & (elem - 1)[:4]).any())
            binary = self.io.bit_select(int(t[1]), 1)          # the word says table t is binary
            return dense | ((kind == 1) & (pairs[:3] != 0)) | ((kind == 1) != binary)

        c0 = sl[SLOTS["C0"]]
        rows, cols, aux = self.rows, self.cols, self.aux
        bad = Signal()
        with m.Switch(fn):
            with m.Case(int(VecFn.EMBED)):
                m.d.comb += bad.eq(view_bad(v0) | view_bad(v1) | self._stream_bad(v2, self.io[4:6]) | table_bad("T0")
                                   | table_bad("T1") | table_bad("T2") | (cols > R))
            with m.Case(int(VecFn.LUT)):
                m.d.comb += bad.eq(view_bad(v0) | view_bad(v2) | (c0[:2] != 0))
            with m.Case(int(VecFn.DOT)):
                m.d.comb += bad.eq(view_bad(v0) | view_bad(v1) | view_bad(v2) | (c0[:3] != 0) | (cols > R) | (aux > R))
            with m.Case(int(VecFn.COMBINE)):
                m.d.comb += bad.eq(view_bad(v2) | (c0[:3] != 0) | (rows * cols > R) | (aux > COMBINE_MAX_MEMBERS))
            with m.Case(int(VecFn.VOTE)):
                m.d.comb += bad.eq(view_bad(v0) | view_bad(v2) | (c0[:3] != 0) | (c0 == 0) | (cols > R)
                                   | (sl[SLOTS["C1"]] > 1))
            for f in VOTE_EXACT:       # codes and P in the row buffer, alphas and P beside them
                with m.Case(int(f)):
                    m.d.comb += bad.eq(view_bad(v0) | view_bad(v2) | (c0[:3] != 0) | (c0 == 0)
                                       | ((aux + 1) * cols > R))
            with m.Default():
                m.d.comb += bad.eq(1)
        return bad
