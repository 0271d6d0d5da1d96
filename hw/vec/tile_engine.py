"""The tile engine: T lanes (lane l = row l of a row tile) and the sequencer of their passes.

Kernels and passes (every count depends on the VEC word only, never on data):

- REQUANT, ADD, GELU: one pass over all tiles' columns, tile after tile (ELEM): read,
  compute, output. ADD takes two elements per column (a then b, `two`).
- LAYERNORM, per tile: P1 reads (q and the row sum; the fused add when `two`), P2 (D', N),
  DIV (isqrt, 2^60 // sigma), P3 outputs (t mult + bias, POST).
- SOFTMAX, per tile: P1 reads (q' and the row max; the key mask when `masked`), P2 (e, the
  row sum), DIV (recip_num // sum), P3 outputs (e R, POST).
- With `rq` (the packed output is requantized first; LAYERNORM, SOFTMAX) P3 stores its
  result in the row memory and P4 outputs it: the result to the stream, its requantized code
  (the affine unit and the POST once more, `post_rq`) to the packed planes.

Issue: a column (`in_ready`: the assembled tile column `in_a` / `in_b`; `in_take` in the
cycle its last element enters) enters an input pass every `step` cycles (step >= elements
per column; element b one cycle after a), P2 every cycle, an output pass every `ostep`
cycles. `par_col` is the column entering (the parameter unit answers one cycle later).

The lanes' results come out `Lane.OUT_LAT[path]` cycles after the column's last element on
`out_*` (`out_valid`, its column and tile, `out_last`: a row's last column). The writer
takes a column in a cycle with `out_accept`; until it does, every lane and this engine's
pipelines hold (`en` low). At the nominal memory that happens only while the writer flushes
packed words.

Between passes (`gap`): a row pass's next pass issues `gap` cycles after its last issue (its
last row-memory write and sum have landed; DIV: the quotient is ready); an output pass ends
in the cycle its last column is taken and the next pass may issue in the cycle after.
The settings `tc` and `lc` hold from the cycle before `start` until the run ends (the unit's
setup holds them from its `done` on): the lanes take theirs through registers (`_Held`).
`rd_go` (a pulse) asks the reader for runs: every tile at the start (ELEM), tile 0 at the
start, tile i + 1 in the first cycle of tile i's P2 (LAYERNORM, SOFTMAX). `busy` is high
from the cycle after `start` until the last column has been taken.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, EnableInserter, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.vector import VecFn, tile_gap

from .arith import PostConfig
from .front import DecodeConfig
from .lane import PATH_OF, PATHS, SCALERS, WSEL, Lane, LaneConfig

P_ELEM, P1, P2, P_DIV, P3, P4 = range(6)
KIND = {VecFn.ADD: 0, VecFn.REQUANT: 1, VecFn.GELU: 2, VecFn.LAYERNORM: 3, VecFn.SOFTMAX: 4}
K_ADD, K_REQUANT, K_GELU, K_LN, K_SM = range(5)
DELAY = max(Lane.OUT_LAT.values()) + 1


def gap(kind: int, pss: int, two: bool = False) -> int:
    """Cycles from the last issue of row pass `pss` to the first issue of the next pass (the
    division: from entering DIV to P3's first issue): `bebert.vector.tile_gap`."""
    fn = VecFn.LAYERNORM if kind == K_LN else VecFn.SOFTMAX
    return tile_gap(fn, {P1: "P1", P2: "P2", P3: "P3", P_DIV: "DIV"}[pss], two)


def out_path(kind: int, pss: int) -> str:
    """The lanes' path of an output pass (its latency key in `Lane.OUT_LAT`)."""
    if pss == P4:
        return "RQ"
    if kind in (K_ADD, K_REQUANT):
        return "AFF"
    return {K_GELU: "GELU", K_LN: "LN3", K_SM: "SM3"}[kind]


class TileConfig(wiring.Signature):
    """What the tile engine needs of a VEC besides the lanes' constants: the kernel (`kind`),
    `two` (two elements per column), `masked`, `rq`, the geometry and the issue steps; the
    decoder settings of a, b and of row words (the packed requantize), the POST settings of
    the output, the fused add and the packed requantize, the multipliers."""

    def __init__(self):
        super().__init__({
            "kind": Out(3), "two": Out(1), "masked": Out(1), "rq": Out(1), "cols": Out(16),
            "tiles": Out(16), "step": Out(3), "ostep": Out(3),
            "dec_a": Out(DecodeConfig()), "dec_b": Out(DecodeConfig()), "dec_r": Out(DecodeConfig()),
            "post": Out(PostConfig(33)), "post_add": Out(PostConfig(33)), "post_rq": Out(PostConfig(33)),
            "m1": Out(signed(32)), "m2": Out(signed(32)), "mrq": Out(signed(32)),
        })


class _Pass:
    """The current pass's settings, decoded from (kind, pass, flags)."""

    def __init__(self, m, tc, pss):
        self.inputs = (pss == P_ELEM) | (pss == P1)
        self.two = self.inputs & tc.two
        self.out = (pss == P_ELEM) | (pss == P4) | ((pss == P3) & ~tc.rq)
        self.path, self.out_tap, self.wtap, self.gap = Signal(2), Signal(4), Signal(4), Signal(8)
        self.wsel, self.write = Signal(3), Signal()
        for k in (K_ADD, K_REQUANT, K_GELU, K_LN, K_SM):
            for p in (P_ELEM, P1, P2, P_DIV, P3, P4):
                if (k in (K_LN, K_SM)) == (p == P_ELEM):
                    continue
                with m.If((tc.kind == k) & (pss == p)):
                    self._case(m, tc, k, p)

    def _case(self, m, tc, k, p):
        if p in (P_ELEM, P3, P4):
            path = out_path(k, p)
            m.d.comb += [self.path.eq(PATHS.index(PATH_OF[path])), self.out_tap.eq(Lane.OUT_LAT[path])]
        if p == P3:                                     # with rq: store y for P4
            m.d.comb += [self.wsel.eq(WSEL.index("Y")), self.wtap.eq(Lane.Y_LAT[out_path(k, p)]), self.write.eq(tc.rq)]
        if p in (P1, P2):
            if (k, p) == (K_LN, P1):
                m.d.comb += [self.wsel.eq(Mux(tc.two, WSEL.index("Y"), WSEL.index("Q"))),
                             self.wtap.eq(Mux(tc.two, Lane.Q_LAT["Y"], Lane.Q_LAT["Q"])),
                             self.path.eq(PATHS.index("AFF"))]
            else:
                wsel = {(K_LN, P2): "DP", (K_SM, P1): "QM", (K_SM, P2): "E"}[(k, p)]
                m.d.comb += [self.wsel.eq(WSEL.index(wsel)), self.wtap.eq(Lane.Q_LAT[wsel])]
            m.d.comb += self.write.eq(1)
        if p in (P1, P2, P3, P_DIV):
            g = Mux(tc.two, gap(k, p, True), gap(k, p, False)) if (k, p) == (K_LN, P1) else gap(k, p)
            m.d.comb += self.gap.eq(g)


class _Line:
    """Per element entering the lanes: whether it ends a column (`valid`), is a column's
    element b (`eb`), its column, tile, row end, pass end; stage k holds the element of k
    `en` cycles ago."""

    FIELDS = (("valid", 1), ("eb", 1), ("col", 16), ("tile", 16), ("rowend", 1), ("plast", 1), ("pss", 3))

    def __init__(self, m, en, now: dict):
        self.stages = [now]
        for k in range(1, DELAY + 1):
            st = {f: Signal(w, name=f"d{k}_{f}") for f, w in self.FIELDS}
            with m.If(en):
                m.d.sync += [st[f].eq(self.stages[-1][f]) for f, _ in self.FIELDS]
            self.stages.append(st)

    def at(self, field: str, tap):
        """Stage `tap` of `field` (tap: an int, or a Value >= 1: the registered stages)."""
        if isinstance(tap, int):
            return self.stages[tap][field]
        return Array(st[field] for st in self.stages[1:])[tap - 1]

    def valid(self, tap, pss):
        """Stage `tap` ends a column of pass `pss` (an earlier pass's elements may still drain)."""
        return self.at("valid", tap) & (self.at("pss", tap) == pss)


class _Held:
    """The lanes' per-instruction settings, registered: a copy of the unit's derived settings
    (`LaneConfig`, and the `TileConfig` fields only the lanes' datapaths read: decode, POST,
    multipliers) taken every cycle. The setup's registers hold a VEC's constants from the cycle
    of its `done`, so the copies hold them from the engine's `start` on, before any element or
    `clr` reaches a lane, and no path runs from the descriptor registers through the derivation
    into a lane's datapath in one cycle (the ECP5's critical path ran that way)."""

    TILE_FIELDS = ("dec_a", "dec_b", "dec_r", "post", "post_add", "post_rq", "m1", "m2", "mrq")
    # LaneConfig's members a lane takes as they are (its `dec` and `post` come from TILE_FIELDS, per pass)
    LANE_FIELDS = ("gelu", "ln", "sm", "scfg", "ccfg", "rnum", "pm1")

    def __init__(self, m, tc, lc):
        self.tile = SimpleNamespace(**{n: _held(m, getattr(tc, n), f"held_{n}") for n in self.TILE_FIELDS})
        self.lane = SimpleNamespace(**{n: _held(m, getattr(lc, n), f"held_lane_{n}") for n in self.LANE_FIELDS})


def _held(m, src, name):
    """A registered copy of a signal or of an interface's members (a namespace of copies)."""
    if isinstance(src, Value):
        dst = Signal.like(src, name=name)
        m.d.sync += dst.eq(src)
        return dst
    return SimpleNamespace(**{f: _held(m, getattr(src, f), f"{name}_{f}") for f in src.signature.members})


def _drive(dst, src) -> list:
    """dst.eq(src) for a signal, member by member for an interface and its held copy."""
    if isinstance(dst, Value):
        return [dst.eq(src)]
    return [a for f in dst.signature.members for a in _drive(getattr(dst, f), getattr(src, f))]


class TileEngine(wiring.Component):
    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"TileEngine needs an AccelConfig, got {type(config).__name__}")
        self.config = config
        self.T, self.depth = config.vec_lanes, config.vec_row_elems
        T, depth = self.T, self.depth
        super().__init__({
            "start": In(1), "busy": Out(1), "tc": In(TileConfig()), "lc": In(LaneConfig()),
            "in_ready": In(1), "in_a": In(32 * T), "in_b": In(32 * T), "in_take": Out(1), "rd_go": Out(1),
            "par_col": Out(range(depth)), "par_en": Out(1), "par_mult": In(signed(32)), "par_bias": In(signed(64)),
            "par_mask": In(1),
            "out_valid": Out(1), "out_accept": In(1), "out_col": Out(16), "out_tile": Out(16), "out_last": Out(1),
            "out_ys": Out(32 * T), "out_code": Out(8 * T),
        })

    def elaborate(self, platform):
        m = Module()
        tc = self.tc
        en = Signal()
        pss, active, issuing, waiting = Signal(3), Signal(), Signal(), Signal()
        col, tile, elem, pace, wait = Signal(16), Signal(16), Signal(), Signal(3), Signal(8)
        ps = _Pass(m, tc, pss)
        self._pace = pace
        step = Mux(ps.inputs, tc.step, Mux(ps.out, tc.ostep, 1))
        issue, done_col, last, rowend = Signal(), Signal(), Signal(), Signal()
        ready = Mux(ps.inputs, self.in_ready, 1)
        m.d.comb += [issue.eq(en & issuing & (elem | ((pace == 0) & ready))), done_col.eq(issue & (elem | ~ps.two)),
                     rowend.eq(col == tc.cols - 1), last.eq(rowend & ((pss != P_ELEM) | (tile == tc.tiles - 1))),
                     self.in_take.eq(done_col & ps.inputs), self.par_col.eq(col), self.par_en.eq(en),
                     self.busy.eq(active)]
        line = _Line(m, en, {"valid": done_col, "eb": issue & elem, "col": col, "tile": tile, "rowend": rowend,
                             "plast": done_col & last, "pss": pss})
        out_valid = Signal()
        m.d.comb += out_valid.eq(ps.out & line.valid(ps.out_tap, pss))
        m.d.comb += [en.eq(~(out_valid & ~self.out_accept)), self.out_valid.eq(out_valid),
                     self.out_col.eq(line.at("col", ps.out_tap)), self.out_tile.eq(line.at("tile", ps.out_tap)),
                     self.out_last.eq(line.at("rowend", ps.out_tap))]
        end_out = out_valid & self.out_accept & line.at("plast", ps.out_tap)

        clr, div_go = Signal(), Signal()
        m.d.sync += div_go.eq(0)
        with m.If(self.start):
            m.d.sync += [active.eq(1), issuing.eq(1), waiting.eq(0), col.eq(0), tile.eq(0), elem.eq(0), pace.eq(0),
                         pss.eq(Mux((tc.kind == K_LN) | (tc.kind == K_SM), P1, P_ELEM))]
            m.d.comb += [self.rd_go.eq(1), clr.eq(1)]
        with m.Elif(en & active):
            with m.If(pace != 0):
                m.d.sync += pace.eq(pace - 1)
            with m.If(issue):
                m.d.sync += elem.eq(ps.two & ~elem)
                with m.If(~elem):
                    m.d.sync += pace.eq(step - 1)
            with m.If(done_col):
                m.d.sync += col.eq(Mux(rowend, 0, col + 1))
                with m.If((pss == P_ELEM) & rowend):
                    m.d.sync += tile.eq(tile + 1)
                with m.If(last):
                    m.d.sync += [issuing.eq(0), waiting.eq(~ps.out), wait.eq(ps.gap - 2)]
            with m.If(waiting & (wait != 0)):
                m.d.sync += wait.eq(wait - 1)
            with m.If(Mux(ps.out, end_out, waiting & (wait == 0))):
                self._next(m, pss, tile, issuing, waiting, wait, active, ps, clr, div_go)
        self._lanes(m, en, pss, elem, line, ps, clr, div_go)
        return m

    def _next(self, m, pss, tile, issuing, waiting, wait, active, ps, clr, div_go):
        """Start the pass after the current one (it may issue from the next cycle on)."""
        tc = self.tc
        more = tile != tc.tiles - 1
        m.d.sync += [issuing.eq(1), waiting.eq(0), self._pace.eq(0)]
        with m.Switch(pss):
            with m.Case(P_ELEM):
                m.d.sync += [active.eq(0), issuing.eq(0)]
            with m.Case(P1):
                m.d.sync += pss.eq(P2)
                m.d.comb += self.rd_go.eq(more)
            with m.Case(P2):
                m.d.sync += [pss.eq(P_DIV), issuing.eq(0), waiting.eq(1), div_go.eq(1),
                             wait.eq(gap(K_LN, P_DIV) - 2)]
                with m.If(tc.kind == K_SM):
                    m.d.sync += wait.eq(gap(K_SM, P_DIV) - 2)
            with m.Case(P_DIV):
                m.d.sync += pss.eq(P3)
            with m.Default():                       # P3, P4: the tile is done
                with m.If((pss == P3) & tc.rq):
                    m.d.sync += pss.eq(P4)
                with m.Elif(more):
                    m.d.sync += [pss.eq(P1), tile.eq(tile + 1)]
                    m.d.comb += clr.eq(1)
                with m.Else():
                    m.d.sync += [active.eq(0), issuing.eq(0)]

    @staticmethod
    def _scaler_user(kind, pss):
        """The lanes' `Scaler` user (`SCALERS`) for the kernel and pass: the pass changes only
        after the previous pass's elements have passed the scaling stage (its gap), and an
        element of a new pass reaches that stage at least a cycle after its issue."""
        ln_user = Mux(pss == P3, SCALERS.index("LNORM"), SCALERS.index("LSQ"))
        return Mux(kind == K_GELU, SCALERS.index("GELU"), Mux(kind == K_SM, SCALERS.index("SEXP"), ln_user))

    def _lanes(self, m, en, pss, elem, line, ps, clr, div_go):
        """The lanes' controls (one bundle for all) and the lanes, held together by `en`."""
        tc = self.tc
        held = _Held(m, tc, self.lc)
        ht, lc = held.tile, held.lane
        kind = tc.kind
        lm = Module()
        # parameters answer one cycle after `par_col`: mult is wanted 3, bias 4, the mask 1 or 7
        # cycles after the column
        mult2, mult3, bias3, mask6 = (Signal(signed(32)), Signal(signed(32)), Signal(signed(64)), Signal(6))
        with m.If(en):
            m.d.sync += [mult2.eq(self.par_mult), mult3.eq(mult2), bias3.eq(self.par_bias),
                         mask6.eq((mask6 << 1) | self.par_mask)]
        b1, bias4 = Signal(signed(64)), Signal(signed(64))
        with m.If(en):
            m.d.sync += [b1.eq(bias3), bias4.eq(b1)]
        sm_p1, sm_p2 = (kind == K_SM) & (pss == P1), (kind == K_SM) & (pss == P2)
        wtap = ps.wtap
        ctl = {
            "path": ps.path, "rd_addr": line.at("col", 0), "wr_addr": line.at("col", wtap),
            "wr_en": ps.write & line.valid(wtap, pss), "wsel": ps.wsel, "clr": clr,
            "s_en": (kind == K_LN) & (pss == P1) & line.valid(wtap, pss),
            "n_en": (kind == K_LN) & (pss == P2) & line.valid(Lane.SQ_LAT, pss),
            "m_en": sm_p1 & line.valid(1, pss), "e_en": sm_p2 & line.valid(Lane.Q_LAT["E"], pss),
            "mask": ~tc.masked | Mux(sm_p2, mask6[5], self.par_mask),
            "div_start": div_go, "div_mode": kind == K_SM, "mult": mult3, "bias": bias4, "p4": pss == P4,
            "scl": self._scaler_user(kind, pss),
            "first": Mux(pss == P4, 1, ~line.at("eb", 1)), "m": Mux(pss == P4, ht.mrq, Mux(line.at("eb", 1), ht.m2, ht.m1)),
        }
        dec = {f: Mux(pss == P4, getattr(ht.dec_r, f), Mux(elem, getattr(ht.dec_b, f), getattr(ht.dec_a, f)))
               for f in tc.dec_a.signature.members}
        post = {f: Mux(pss == P1, getattr(ht.post_add, f), Mux(pss == P4, getattr(ht.post_rq, f), getattr(ht.post, f)))
                for f in tc.post.signature.members}
        col = Mux(elem, self.in_b, self.in_a)
        for lane in range(self.T):
            ln = Lane(self.depth)
            lm.submodules[f"lane{lane}"] = ln
            lm.d.comb += [ln.b1.eq(col[8 * lane:8 * lane + 8]), ln.b2.eq(col[16 * lane:16 * lane + 16]),
                          ln.b4.eq(col[32 * lane:32 * lane + 32])]
            lm.d.comb += [getattr(ln.ctl, k).eq(v) for k, v in ctl.items()]
            lm.d.comb += [getattr(ln.cfg.dec, k).eq(v) for k, v in dec.items()]
            lm.d.comb += [getattr(ln.cfg.post, k).eq(v) for k, v in post.items()]
            for name in _Held.LANE_FIELDS:
                lm.d.comb += _drive(getattr(ln.cfg, name), getattr(lc, name))
            m.d.comb += [self.out_ys.word_select(lane, 32).eq(ln.ys), self.out_code.word_select(lane, 8).eq(ln.code)]
        m.submodules.lanes = EnableInserter(en)(lm)
