"""One lane of the tile engine: row l of a T-row tile, one element per cycle.

The lane is a datapath only: the tile engine drives the same controls into every lane (all
lanes take the same column in the same cycle), so the lanes hold no sequencing logic.

An element presented in cycle t (candidate bytes `b*` of the column, or the row memory word
at `rd_addr` = its column) goes through `path` to the shared `Post` (y) and the output
clamps (`ys`, `code`):

| path | kernel, pass | POST input | y | out |
| --- | --- | --- | --- | --- |
| AFF  | REQUANT, ADD, LAYERNORM's fused add, the packed requantize pass | sum of x m | t + 5 | t + 6 |
| GELU | GELU | `Gelu` | t + 10 | t + 11 |
| LN3  | LAYERNORM output pass | `LnNormalize` | t + 7 | t + 8 |
| SM3  | SOFTMAX output pass | e R | t + 4 | t + 5 |
| RQ (AFF) | the packed requantize pass (x: a row-memory word, one cycle later) | x m | t + 6 | t + 7 |

(`Y_LAT`, `OUT_LAT`; for a two-element column, a then b, t is b's cycle.) Controls are taken
at their uses: `m` (the multiplier of this element: m1, m2, ...) in t + 1 (RQ: t + 2), `first` in t + 2 (RQ: t + 3),
`mask` in t + 1 (SOFTMAX read pass) or t + 7 (pass 2), `mult` / `bias` in t + 3 / t + 4.

The row passes write the row memory (`wsel`, `wr_addr`, `wr_en` in the cycle of the data)
and the accumulators (cleared by `clr`: s, N (to eps), the max, the sum):

- LAYERNORM read pass: q = x (t + 1, `wsel` Q) or the fused add's y (t + 5, Y), `s_en`;
- LAYERNORM pass 2 (`LnSquares`): D' in t + 4 (DP), `n_en` adds D'^2 in t + 5;
- SOFTMAX read pass: q' = `mask` ? x : -2^31 in t + 1 (QM), `m_en` (the row max);
- SOFTMAX pass 2 (`SmExp`): e in t + 8 (E), `e_en` (the row sum);
- an output pass that stores y for the packed requantize pass: Y.

`scl` names the datapath whose operand the lane's one `Scaler` (the run-time shift
scl(x, k)) takes in this pass: GELU's x', softmax P2's t, LayerNorm P2's D' or P3's t. The
tile engine holds it through a pass; the passes that scale never overlap in the pipelines.

`div_start` starts the `RowDivider` on N (LAYERNORM, `div_mode` 0) or the sum (SOFTMAX, 1);
its quotient is R for the output pass.

Outputs (registered): `ys`, y clamped to the stream element's range (`scfg`); with `p4`
(the packed requantize pass, y being the requantized code) the row memory's word instead,
which is the kernel's result stored by its output pass; `code`, the packed planes: y clamped
to the planes' range (`ccfg`), or for +-1 planes (`pm1`) the one plane y >= 0.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.vector import LANE_OUT_LAT, LANE_Q_LAT, LANE_SQ_LAT, LANE_Y_LAT

from .arith import Post, PostConfig, RowDivider, Scaler, fits
from .front import Affine, DecodeConfig, ElemDecode
from .gelu import Gelu, GeluConfig
from .layernorm import LnConfig, LnNormalize, LnSquares
from .softmax import SmConfig, SmExp

PATHS = ("AFF", "GELU", "LN3", "SM3")
SCALERS = ("GELU", "SEXP", "LSQ", "LNORM")   # `scl`: the datapath that uses the lane's `Scaler` in this pass
WSEL = ("Q", "Y", "DP", "QM", "E")
INT32_MIN = -(1 << 31)


class ClampConfig(wiring.Signature):
    """A clamp of a 33-bit value to a signed / unsigned range (`arith.range_of`); `force`
    always saturates."""

    def __init__(self, width: int):
        super().__init__({"mask": Out(33), "signed": Out(1), "lo": Out(signed(width)), "hi": Out(signed(width)),
                          "force": Out(1)})


class LaneConfig(wiring.Signature):
    """Everything a lane needs besides its data, the same for every lane of a VEC (the tile
    engine switches `dec` and `post` between passes)."""

    def __init__(self):
        super().__init__({
            "dec": Out(DecodeConfig()), "gelu": Out(GeluConfig()), "ln": Out(LnConfig()), "sm": Out(SmConfig()),
            "rnum": Out(61), "post": Out(PostConfig(33)), "scfg": Out(ClampConfig(32)), "ccfg": Out(ClampConfig(8)),
            "pm1": Out(1),
        })


class LaneControl(wiring.Signature):
    """The tile engine's per-cycle controls (see the module docstring)."""

    def __init__(self, depth: int):
        super().__init__({
            "path": Out(2), "m": Out(signed(32)), "first": Out(1), "rd_addr": Out(range(depth)),
            "wr_addr": Out(range(depth)), "wr_en": Out(1), "wsel": Out(3), "clr": Out(1), "s_en": Out(1),
            "n_en": Out(1), "m_en": Out(1), "e_en": Out(1), "mask": Out(1), "div_start": Out(1), "div_mode": Out(1),
            "mult": Out(signed(32)), "bias": Out(signed(64)), "p4": Out(1), "scl": Out(2),
        })


Y_LAT = LANE_Y_LAT             # the contract's numbers (bebert.vector), which this lane is built to
PATH_OF = {"AFF": "AFF", "GELU": "GELU", "LN3": "LN3", "SM3": "SM3", "RQ": "AFF"}  # RQ: AFF from a row word
OUT_EXTRA = 1
assert all(LANE_OUT_LAT[p] == y + OUT_EXTRA for p, y in Y_LAT.items())
assert Y_LAT["AFF"] == ElemDecode.LATENCY + Affine.LATENCY + Post.LATENCY
assert Y_LAT["RQ"] == Y_LAT["AFF"] + 1 and Y_LAT["SM3"] == 1 + 1 + Post.LATENCY
assert Y_LAT["GELU"] == ElemDecode.LATENCY + Gelu.LATENCY + Post.LATENCY
assert Y_LAT["LN3"] == 1 + LnNormalize.LATENCY + Post.LATENCY
assert LANE_SQ_LAT == 1 + LnSquares.LATENCY and LANE_Q_LAT["DP"] == 1 + LnSquares.DPRIME
assert LANE_Q_LAT["E"] == 1 + SmExp.LATENCY and LANE_Q_LAT["Y"] == Y_LAT["AFF"]


class Lane(wiring.Component):
    Y_LAT = Y_LAT
    OUT_EXTRA = OUT_EXTRA
    OUT_LAT = {p: y + OUT_EXTRA for p, y in Y_LAT.items()}
    Q_LAT = LANE_Q_LAT                                     # row memory write data, after the element
    SQ_LAT = LANE_SQ_LAT                                   # D'^2 for `n_en`

    def __init__(self, depth: int):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"Lane: row memory depth must be an integer >= 2, got {depth!r}")
        self.depth = depth
        super().__init__({"b1": In(8), "b2": In(16), "b4": In(32), "cfg": In(LaneConfig()),
                          "ctl": In(LaneControl(depth)), "ys": Out(signed(32)), "code": Out(8)})

    def elaborate(self, platform):
        m = Module()
        cfg, ctl = self.cfg, self.ctl
        m.submodules.row = row = Memory(shape=signed(32), depth=self.depth, init=[])
        rd, wr = row.read_port(), row.write_port()
        m.d.comb += rd.addr.eq(ctl.rd_addr)
        m.submodules.dec = dec = ElemDecode()
        m.d.comb += [dec.b1.eq(self.b1), dec.b2.eq(self.b2), dec.b4.eq(self.b4), dec.row.eq(rd.data)]
        wiring.connect(m, wiring.flipped(cfg.dec), dec.cfg)

        s, n, mx, tot = Signal(signed(48)), Signal(62), Signal(signed(32)), Signal(46)
        m.submodules.aff = aff = Affine()
        m.submodules.gelu = gelu = Gelu()
        m.submodules.lsq = lsq = LnSquares()
        m.submodules.lnorm = lnorm = LnNormalize()
        m.submodules.sexp = sexp = SmExp()
        m.submodules.div = div = RowDivider()
        m.submodules.post = post = Post(33)
        wiring.connect(m, wiring.flipped(cfg.gelu), gelu.cfg)
        wiring.connect(m, wiring.flipped(cfg.ln), lsq.cfg)
        wiring.connect(m, wiring.flipped(cfg.ln), lnorm.cfg)
        wiring.connect(m, wiring.flipped(cfg.sm), sexp.cfg)
        wiring.connect(m, wiring.flipped(cfg.post), post.cfg)
        self._scaler(m, (gelu.scl, sexp.scl, lsq.scl, lnorm.scl))
        rdata, x = rd.data, dec.x
        first = Signal()
        m.d.sync += first.eq(ctl.first)
        m.d.comb += [aff.x.eq(x), aff.m.eq(ctl.m), aff.first.eq(first), gelu.x.eq(x),
                     lsq.q.eq(rdata), lsq.s.eq(s), lnorm.dp.eq(rdata), lnorm.r.eq(div.quot),
                     lnorm.mult.eq(ctl.mult), lnorm.bias.eq(ctl.bias),
                     sexp.q.eq(rdata), sexp.m.eq(mx), sexp.mask.eq(ctl.mask)]
        ev = lnorm.p                    # SOFTMAX output pass: e R, LayerNorm's D' R on the same operands
        with m.Switch(ctl.path):
            for i, src in enumerate((aff.v, gelu.w, lnorm.v, ev)):
                with m.Case(i):
                    m.d.comb += post.v.eq(src)
        y = post.y[:32].as_signed()

        qm = Mux(ctl.mask, x, INT32_MIN)
        with m.Switch(ctl.wsel):
            for i, src in enumerate((x, y, lsq.dp, qm, sexp.e)):
                with m.Case(i):
                    m.d.comb += wr.data.eq(src)
        m.d.comb += [wr.addr.eq(ctl.wr_addr), wr.en.eq(ctl.wr_en)]

        q = Mux(ctl.wsel == WSEL.index("Y"), y, x)
        with m.If(ctl.clr):
            m.d.sync += [s.eq(0), n.eq(cfg.ln.eps), mx.eq(INT32_MIN), tot.eq(0)]
        with m.Else():
            with m.If(ctl.s_en):
                m.d.sync += s.eq(s + q)
            with m.If(ctl.n_en):
                m.d.sync += n.eq(n + lsq.sq)
            with m.If(ctl.m_en & (qm > mx)):
                m.d.sync += mx.eq(qm)
            with m.If(ctl.e_en):
                m.d.sync += tot.eq(tot + sexp.e)
        m.d.comb += [div.start.eq(ctl.div_start), div.mode.eq(ctl.div_mode), div.n.eq(n), div.den.eq(tot),
                     div.num.eq(cfg.rnum)]
        self._outputs(m, y, rdata)
        return m

    def _scaler(self, m, users):
        """The one `Scaler`, on the operand of the datapath `ctl.scl` names (`SCALERS` order);
        its result goes to every user, which registers it only when it is the one."""
        m.submodules.scaler = scaler = Scaler()
        with m.Switch(self.ctl.scl):
            for i, u in enumerate(users):
                with m.Case(i):
                    m.d.comb += [scaler.req.x.eq(u.x), scaler.req.k.eq(u.k)]
        m.d.comb += [u.y.eq(scaler.req.y) for u in users]

    def _outputs(self, m, y, rdata):
        """`ys` and `code` from the POST result y (and the row memory word, for `p4`)."""
        cfg = self.cfg
        yrow = rdata
        for i in range(Y_LAT["RQ"] - 1):            # the stored result, beside its requantized code
            nxt = Signal(signed(32), name=f"yrow{i + 1}")
            m.d.sync += nxt.eq(yrow)
            yrow = nxt
        ysrc = Signal(signed(33))
        yc = Signal(signed(33))
        m.d.comb += [ysrc.eq(Mux(self.ctl.p4, yrow, y)), yc.eq(y)]
        m.d.sync += [self.ys.eq(_clamp(ysrc, cfg.scfg, 32)),
                     self.code.eq(Mux(cfg.pm1, ~y[31], _clamp(yc, cfg.ccfg, 8)))]


def _clamp(x, c, width: int):
    """x (33-bit signed) clamped by a `ClampConfig`, `width` bits out."""
    ok = ~c.force & fits(x, c.mask, c.signed)
    return Mux(ok, x[:width], Mux(x[32], c.lo, c.hi))
