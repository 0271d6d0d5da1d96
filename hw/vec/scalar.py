"""The scalar engine: EMBED, LUT, DOT, COMBINE and the votes, element by element, over any views.

Reads are single-beat requests, one element each (at its byte address's beat), issued in a
fixed order per kernel, one per cycle while the value FIFO has room (several outstanding);
the beats come back in order and each becomes its element (its bytes at its offset in the
beat, sign- or zero-extended, saturated to the view's `sat`). A consumer takes the values in
the same order; writes are single beats (the element repeated across the beat, its bytes
strobed). Element addresses are multiples of the element size (a descriptor fault otherwise).

Per kernel (rows r, columns c; `aux` = DOT's outputs n, COMBINE's members m):

- EMBED, per group of n rows (`bebert.vector.embed_group`: the rows one beat of its stream
  output holds): per row its id and token type (walkers A, B); per row and table its row
  address and its (+1, -1) pair (binary tables: pairs + 8 index; a dense table's pair read is
  a dummy); the binary rows as whole beats (a beat FIFO per row and table); then per column
  the rows' sums (binary: the sign bit at the row's running bit position selects the pair's
  value; dense: one element request per row and table, base + index stride + c elem), the n
  sums in one beat at the stream address of the group's column (byte strobes).
- LUT, in blocks of `LUT_BLOCK` elements: the block's x, then the block's table[x + offset]
  (int32 at table + 4 i; an index outside [0, size) is a fault); each table value to `out`.
- DOT: per row r the row x[r, :] into the row buffer, then w[n, :] for n < aux (walker B from
  its start again), one MAC per element: out[r, n] = sum x w + bias[n], int64 wrapping.
- COMBINE: per member m its view (from the setup buffer's copy of the descriptor: walker A
  loaded again) and weight, acc[e] = acc[e] + x w_m in the row buffer; then every acc to `out`.
- VOTE, per row (example): per member its logit shift and alpha_q, then per class its logit
  mult and accumulator (the constants at a running address, the accumulators through walker
  A); each accumulator through the multiplier, the rounding shift and the int32 clamp (the
  member's logit code), the member's first maximum tracked; samme.r adds every code into the
  row buffer, samme adds alpha_q at the member's class; the member's class to `out`; after the
  last member the row buffer's first maximum, the prediction, to `out`.
- VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN: VOTE's requests and pipeline; every code into the row
  buffer at m cols + c, every alpha_q into the vote buffer at m (T, and MEAN's sum A l, summed
  on the way); after the row's last member the row sequencer (hw/vec/vote_seq.py) and its
  result to `out` (a member's output: its class, or for MEAN / MEDIAN its score code).

DOT, COMBINE and VOTE share one 64 x 64 multiplier (`_mul`).

`busy` from `start` until the last write has been sent; the unit waits for the answers.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.vector import EMBED_GROUP, VOTE_ALPHA_LIMIT, VOTE_KERNELS, VecFn, embed_row_beats, lut_block

from .reader import ReadPort
from .setup import NSLOTS, SLOTS
from .vote_seq import VoteSequencer
from .walker import VIEW_FIELDS, ViewWalker
from .writer import WritePort

FMT_BITS = 2 + 1 + 8            # elem code, signed, sat
TAG_BITS = 5                    # EMBED: the beat FIFO (row of the group, table) a beat goes to


def _fmt(fmt_word):
    """The element format of a view's fmt word: log2 elem, signed, sat."""
    e = fmt_word[:8]
    code = Mux(e == 8, 3, Mux(e == 4, 2, Mux(e == 2, 1, 0)))
    return Cat(code[:2], fmt_word[8], fmt_word[16:24])


class ScalarEngine(wiring.Component):
    def __init__(self, config: AccelConfig, sbuf_depth: int):
        self.config = config
        self.B = config.dram_bytes_per_cycle
        self.depth = 1 << max(5, (config.dram_latency_cycles + 8).bit_length())
        bus = 8 * self.B
        super().__init__({
            "start": In(1), "fn": In(8), "rows": In(16), "cols": In(16), "aux": In(16), "io": In(8), "desc": In(32),
            "slots": In(32 * NSLOTS), "reg_b": In(range(sbuf_depth)), "off_b": In(5),
            "rd_addr": Out(range(sbuf_depth)), "rd_data": In(bus),
            "rd": Out(ReadPort(bus)), "wr": Out(WritePort(bus)), "busy": Out(1), "fault": Out(1), "idle": Out(1),
        })
        self.sbuf_depth = sbuf_depth
        self.lut_block = lut_block(config)
        self.beat_depth = max(2, embed_row_beats(config.vec_row_elems, config))
        self.Gh = min(config.vec_lanes, EMBED_GROUP)          # EMBED's rows at once

    def elaborate(self, platform):
        m = Module()
        B, cfg = self.B, self.config
        sl = [self.slots.word_select(i, 32) for i in range(NSLOTS)]
        view = lambda s: Cat(*[sl[SLOTS[s] + i] for i in range(len(VIEW_FIELDS))])  # noqa: E731
        m.submodules.wa = wa = ViewWalker()
        m.submodules.wb = wb = ViewWalker()
        m.submodules.wo = wo = ViewWalker()
        self.walkers = (wa, wb, wo)
        # -- responses: a tag per request, the element out of its beat
        self.offb = max(1, self.B.bit_length() - 1)        # a byte's offset in a beat
        m.submodules.tags = tags = fifo.SyncFIFO(width=self.offb + FMT_BITS + 1 + TAG_BITS, depth=self.depth)
        m.submodules.vals = vals = fifo.SyncFIFOBuffered(width=64, depth=self.depth)
        self._rq_beat = Signal()                            # a request for a whole beat (EMBED's binary rows)
        self.beats = []                                     # EMBED: the binary rows' beats, per table
        for t in range(3 * self.Gh):
            bq = ResetInserter(self.start)(fifo.SyncFIFOBuffered(width=8 * self.B, depth=self.beat_depth))
            m.submodules[f"beats{t}"] = bq
            self.beats.append(bq)
        self._responses(m, tags, vals)
        # -- the row buffer (DOT's x row, COMBINE's accumulators)
        m.submodules.row = row = Memory(shape=64, depth=cfg.vec_row_elems, init=[])
        self.row_rd, self.row_wr = row.read_port(), row.write_port()
        m.submodules.vbuf = vbuf = Memory(shape=64, depth=cfg.vec_row_elems, init=[])   # the exact votes' alphas, P
        self.vb_rd, self.vb_wr = vbuf.read_port(), vbuf.write_port()
        self.mul_a, self.mul_b = Signal(signed(64)), Signal(signed(64))
        self.mul_p = Signal(signed(64))
        m.d.comb += self.mul_p.eq((self.mul_a * self.mul_b)[:64])
        self._kernels(m, tags, vals, wa, wb, wo, view, sl)
        return m

    def _responses(self, m, tags, vals):
        """Each returning beat: the element at its tag's offset, extended, saturated."""
        B = self.B
        p = self.rd
        t = tags.r_data
        o = self.offb
        off, code, sgn, sat = t[:o], t[o:o + 2], t[o + 2], t[o + 3:o + 11]
        whole, fifo_i = t[o + 11], t[o + 12:o + 12 + TAG_BITS]          # EMBED: a whole beat, for beat FIFO fifo_i
        m.d.comb += tags.r_en.eq(p.data_valid)
        beat = p.data
        for i, bq in enumerate(self.beats):             # EMBED's binary rows: whole beats, per table
            m.d.comb += [bq.w_data.eq(beat), bq.w_en.eq(p.data_valid & whole & (fifo_i == i))]
        self._beats_out = nb = Signal(range(3 * self.Gh * self.beat_depth + 1))
        m.d.sync += nb.eq(nb + (self.rd.req_valid & self.rd.req_ready & self._rq_beat) - (p.data_valid & whole))
        raw = Signal(64)
        for e in range(4):
            n = 1 << e
            with m.If(code == e):
                with m.Switch(off[e:] if e < len(off) else 0):
                    for k in range(B >> e):
                        with m.Case(k):
                            word = beat[8 * n * k:8 * n * (k + 1)]
                            ext = Mux(sgn & word[-1], (1 << (64 - 8 * n)) - 1, 0) if n < 8 else Const(0, 0)
                            m.d.comb += raw.eq(Cat(word, ext) if n < 8 else word)
        x = raw.as_signed()
        half = (Const(1, 65) << (sat - 1)[:6])[:65]
        lo, hi = -half.as_signed(), half - 1
        satd = Mux((sat == 0) | (sat >= 64), x, Mux(x < lo, lo, Mux(x > hi, hi, x)))
        m.d.comb += [vals.w_data.eq(satd), vals.w_en.eq(p.data_valid & ~whole)]

    # -- the kernels ---------------------------------------------------------------------------
    def _kernels(self, m, tags, vals, wa, wb, wo, view, sl):
        fn, B = self.fn, self.B
        p, w = self.rd, self.wr
        phase = Signal(2)                       # 0 idle, 1 walkers' init, 2 run, 3 last writes
        m.d.comb += self.busy.eq(phase != 0)
        # requests: one a cycle while the value FIFO has room for every element in flight
        rq_valid, rq_addr, rq_fmt, rq_bit, rq_beat = Signal(), Signal(32), Signal(FMT_BITS), Signal(TAG_BITS), self._rq_beat
        inflight = Signal(range(self.depth + 1))
        pop = Signal()
        can = rq_valid & (phase == 2) & (inflight < self.depth - 1) & tags.w_rdy
        fire = can & p.req_ready
        m.d.comb += [p.req_valid.eq(can),
                     p.req_addr.eq(rq_addr & ~(B - 1)), p.req_len.eq(1),
                     tags.w_data.eq(Cat(rq_addr[:self.offb], rq_fmt, rq_beat, rq_bit)),
                     tags.w_en.eq(fire)]
        m.d.sync += inflight.eq(inflight + (fire & ~rq_beat) - (pop & vals.r_rdy))
        m.d.comb += vals.r_en.eq(pop)
        # writes: single beats, the element repeated, its bytes strobed
        wv, wdata, wcode = Signal(), Signal(64), Signal(2)
        sent = wv & w.ready
        self._write_port(m, wv, wdata, wcode, wo)
        out = {"fire": fire, "pop": pop, "vals": vals, "wv": wv, "wdata": wdata, "wcode": wcode, "sent": sent,
               "inflight": inflight}
        req = {"valid": rq_valid, "addr": rq_addr, "fmt": rq_fmt, "bit": rq_bit, "beat": rq_beat}
        done = Signal()
        with m.If(self.start):
            m.d.sync += [phase.eq(1), self.fault.eq(0)]
        for wk, v, cols in ((wa, "V0", Mux((fn == int(VecFn.EMBED)), 1, self.cols)),
                            (wb, "V1", Mux((fn == int(VecFn.EMBED)), 1, self.cols)),
                            (wo, "V2", Mux(fn == int(VecFn.DOT), self.aux, Mux(self._is_vote(), 1, self.cols)))):
            m.d.comb += [wk.load.eq(self.start), wk.view.eq(view(v)), wk.cols.eq(cols)]
        go = Signal()
        with m.If((phase == 1) & wa.ready & wb.ready & wo.ready):
            m.d.sync += phase.eq(2)
            m.d.comb += go.eq(1)
        with m.If((phase == 2) & done):
            m.d.sync += phase.eq(0)
        for f, body in ((VecFn.EMBED, self._embed), (VecFn.LUT, self._lut), (VecFn.DOT, self._dot),
                        (VecFn.COMBINE, self._combine)):
            with m.If(fn == int(f)):
                body(m, go, req, out, done, sl)
        with m.If(self._is_vote()):
            self._vote(m, go, req, out, done, sl)
        m.d.comb += self.idle.eq((phase == 0) & (inflight == 0))

    def _write_port(self, m, wv, wdata, wcode, wo):
        """Element writes through walker O, saturated to the out view's element type."""
        B, w = self.B, self.wr
        fmt = self.slots.word_select(SLOTS["V2"] + 1, 32)
        e, sgn = fmt[:8], fmt[8]
        sat = self._saturate(m, wdata, e, sgn)
        rep = Signal(8 * B)
        strb = Signal(B)
        off = wo.addr[:B.bit_length() - 1]
        with m.Switch(e):
            for n in (1, 2, 4, 8):
                with m.Case(n):
                    m.d.comb += [rep.eq(Cat(*[sat[:8 * n]] * (B // n))), strb.eq(((1 << n) - 1) << off)]
        m.d.comb += [w.valid.eq(wv), w.addr.eq(wo.addr & ~(B - 1)), w.data.eq(rep), w.strb.eq(strb)]
        m.d.comb += wo.step.eq(wv & w.ready)
        del wcode

    @staticmethod
    def _saturate(m, value, e, sgn):
        """`value` (int64) saturated to the element type of e bytes (signed or not)."""
        x = value.as_signed()
        sat = Signal(64)
        with m.Switch(e):
            for n in (1, 2, 4):
                with m.Case(n):
                    lo, hi = (-(1 << (8 * n - 1)), (1 << (8 * n - 1)) - 1)
                    ulo, uhi = 0, (1 << (8 * n)) - 1
                    m.d.comb += sat.eq(Mux(sgn, Mux(x < lo, lo, Mux(x > hi, hi, x)), Mux(x < ulo, ulo, Mux(x > uhi, uhi, x))))
            with m.Default():
                m.d.comb += sat.eq(Mux(~sgn & (x < 0), 0, x))       # uint64: write_view clips to [0, 2^63)
        return sat

    # -- EMBED ---------------------------------------------------------------------------------
    def _tables(self, sl):
        return [{n: sl[SLOTS[t] + i] for i, n in enumerate(("kind", "base", "stride", "rows", "elem", "pairs"))}
                for t in ("T0", "T1", "T2")]

    def _embed(self, m, go, req, out, done, sl):
        """The requests, per group of n = min(G, rows left) rows (`embed_group`): per row its id
        and type; (once the consumer has them) per row and table its row address, then its
        pair; the binary rows' beat slots (`_embed_beats`); the dense tables' elements, column
        by column (`_embed_dense`). The columns may start L + 2 cycles after the last beat
        slot (or pair): every beat of the group is in by then."""
        wa, wb, _ = self.walkers
        B, Gh, L = self.B, self.Gh, self.config.dram_latency_cycles
        es = self._embed_state(m, sl)
        r = Signal(16)              # the group's first row
        n = Mux(self.rows - r < es.G, self.rows - r, es.G)
        gst = Signal(3)             # 0 ids and types, 2 wait ids, 3 row addresses, 4 pairs, 5 beats, 6 dense, 7 done
        g, t, it = Signal(range(Gh)), Signal(2), Signal()
        fire = out["fire"]
        grp_end = Signal()
        last_gt = (g == n - 1) & (t == 2)
        step_gt = [t.eq(Mux(t == 2, 0, t + 1)), g.eq(Mux(t == 2, g + 1, g))]
        idx = Array([Array(es.idv)[g], (r + g)[:32], Array(es.tyv)[g]])[t]
        tab = {f: Array(tb[f] for tb in es.tabs)[t] for f in ("base", "stride", "pairs")}
        fmt_a, fmt_b = _fmt(sl[SLOTS["V0"] + 1]), _fmt(sl[SLOTS["V1"] + 1])
        with m.Switch(gst):
            with m.Case(0):                          # per row its id, then its type
                m.d.comb += [req["valid"].eq(~go), req["addr"].eq(Mux(it, wb.addr, wa.addr)),
                             req["fmt"].eq(Mux(it, fmt_b, fmt_a))]
                with m.If(fire):
                    m.d.comb += [wa.step.eq(~it), wb.step.eq(it)]
                    m.d.sync += it.eq(~it)
                    with m.If(it):
                        m.d.sync += g.eq(g + 1)
                        with m.If(g == n - 1):
                            m.d.sync += [g.eq(0), gst.eq(2)]
            with m.Case(2):                          # the group's ids and types (the consumer has them)
                with m.If(es.have_ids):
                    m.d.sync += [gst.eq(3), g.eq(0), t.eq(0), es.have_ids.eq(0)]
            with m.Case(3):                          # base + index * stride, one a cycle
                prod = (tab["base"] + (idx * tab["stride"])[:32])[:32]
                for gi in range(Gh):
                    for ti in range(3):
                        with m.If((g == gi) & (t == ti)):
                            m.d.sync += es.rowa[gi][ti].eq(prod)
                m.d.sync += step_gt
                with m.If(last_gt):
                    m.d.sync += [gst.eq(4), g.eq(0), t.eq(0)]
            with m.Case(4):                          # the (+1, -1) pairs (a dummy read for dense tables)
                m.d.comb += [req["valid"].eq(1), req["addr"].eq(tab["pairs"] + (idx << 3)),
                             req["fmt"].eq(Cat(Const(3, 2), Const(1, 1), Const(0, 8)))]
                with m.If(fire):
                    m.d.sync += step_gt
                    with m.If(last_gt):
                        m.d.sync += [gst.eq(Mux(es.any_bin, 5, 6)), g.eq(0), t.eq(0), es.dense_t.eq(es.first_dense)]
                        m.d.comb += es.arm.eq(~es.any_bin)
            with m.Case(5):
                self._embed_beats(m, go, es, req, fire, n, gst, grp_end)
            with m.Case(6):
                self._embed_dense(m, go, es, req, fire, n, grp_end)
        with m.If(grp_end):
            m.d.sync += [r.eq(r + n), gst.eq(Mux(r + n >= self.rows, 7, 0)), g.eq(0), t.eq(0), it.eq(0)]
        with m.If(go):
            m.d.sync += [gst.eq(0), r.eq(0), g.eq(0), t.eq(0), it.eq(0)]
        with m.If(self.fault):
            m.d.comb += req["valid"].eq(0)
        with m.If(es.arm):
            m.d.sync += [es.armed.eq(1), es.cnt.eq(L + 1)]
        with m.Elif(es.cnt != 0):
            m.d.sync += es.cnt.eq(es.cnt - 1)
        self._embed_consumer(m, go, out, done, es, gst)

    def _embed_state(self, m, sl):
        """What EMBED's generator and consumer share."""
        B, Gh, L = self.B, self.Gh, self.config.dram_latency_cycles
        es = SimpleNamespace()
        es.tabs = self._tables(sl)
        es.binary = binary = [self.io[t] for t in range(3)]         # checked against the kinds (derive)
        es.any_bin, es.all_bin = binary[0] | binary[1] | binary[2], binary[0] & binary[1] & binary[2]
        es.first_dense = Mux(~binary[0], 0, Mux(~binary[1], 1, 2))
        es.eo = self.io[4:6]                                        # log2 of the out elements' bytes
        es.G = Signal(range(Gh + 1))
        per_beat = Const(B, 16) >> es.eo
        m.d.comb += es.G.eq(Mux(per_beat < Gh, per_beat, Gh))
        es.idv = [Signal(32, name=f"id{g}") for g in range(Gh)]
        es.tyv = [Signal(32, name=f"type{g}") for g in range(Gh)]
        es.rowa = [[Signal(32, name=f"rowa{g}_{t}") for t in range(3)] for g in range(Gh)]
        es.have_ids = Signal()      # the consumer has the group's ids and types
        es.dense_t = Signal(2)
        es.arm, es.armed, es.cnt = Signal(), Signal(), Signal(range(L + 2))
        return es

    def _embed_beats(self, m, go, es, req, fire, n, gst, grp_end):
        """NBB * 3n slots (`embed_row_beats(cols)`), j-major (beat j of row 0's tables 0, 1, 2,
        row 1's, ..., then beat j + 1): slot (j, g, t) requests beat j of row g's table t when
        that binary row has one (a cycle otherwise), so that the count never depends on where
        a row starts in its beat."""
        B = self.B
        lb, l8b = B.bit_length() - 1, (8 * B).bit_length() - 1
        j, g, t = Signal(16), Signal(range(self.Gh)), Signal(2)
        nbb = (self.cols + 16 * B - 9) >> l8b
        ra = Array(Array(row) for row in es.rowa)[g][t]
        need = ((ra[:lb] << 3) + self.cols + 8 * B - 1) >> l8b
        real = Array(es.binary)[t] & (j < need)
        m.d.comb += [req["valid"].eq(real), req["addr"].eq((ra & ~(B - 1)) + (j << lb)), req["beat"].eq(1),
                     req["fmt"].eq(0), req["bit"].eq(g * 3 + t)]
        with m.If(fire | ~real):
            m.d.sync += [t.eq(Mux(t == 2, 0, t + 1)), g.eq(Mux(t == 2, g + 1, g))]
            with m.If((t == 2) & (g == n - 1)):
                m.d.sync += [g.eq(0), j.eq(j + 1)]
                with m.If(j == nbb - 1):
                    m.d.sync += j.eq(0)
                    m.d.comb += es.arm.eq(1)
                    with m.If(es.all_bin):
                        m.d.comb += grp_end.eq(1)
                    with m.Else():
                        m.d.sync += gst.eq(6)
        with m.If(go):
            m.d.sync += [j.eq(0), g.eq(0), t.eq(0)]

    def _embed_dense(self, m, go, es, req, fire, n, grp_end):
        """Per column, per row, one element request per dense table (base + index stride + c elem)."""
        t, g, c = es.dense_t, Signal(range(self.Gh)), Signal(16)
        cola = [Signal(32, name=f"cola{i}") for i in range(3)]
        efmt = Array(_fmt(Cat(tb["elem"][:8], Const(1, 1), Const(0, 23))) for tb in es.tabs)[t]
        ra = Array(Array(row) for row in es.rowa)[g][t]
        m.d.comb += [req["valid"].eq(1), req["fmt"].eq(efmt), req["addr"].eq(ra + Array(cola)[t])]
        nxt, wrap = self._next_dense(t, es.binary)
        with m.If(fire):
            m.d.sync += t.eq(nxt)
            with m.If(wrap):
                m.d.sync += g.eq(g + 1)
                with m.If(g == n - 1):
                    m.d.sync += [g.eq(0), c.eq(c + 1)] + [x.eq(x + tb["elem"]) for x, tb in zip(cola, es.tabs)]
                    with m.If(c == self.cols - 1):
                        m.d.sync += [c.eq(0)] + [x.eq(0) for x in cola]
                        m.d.comb += grp_end.eq(1)
        with m.If(go):
            m.d.sync += [c.eq(0), g.eq(0)] + [x.eq(0) for x in cola]

    @staticmethod
    def _next_dense(t, binary):
        """(the dense table after t in this row's column, or the first dense one; wrapped)."""
        d = [~b for b in binary]
        first = Mux(d[0], 0, Mux(d[1], 1, 2))
        nxt = Mux(t == 0, Mux(d[1], 1, Mux(d[2], 2, first)), Mux((t == 1) & d[2], 2, first))
        wrap = ((t == 0) & ~d[1] & ~d[2]) | ((t == 1) & ~d[2]) | (t == 2)
        return nxt, wrap

    def _embed_consumer(self, m, go, out, done, es, gst):
        """Per group: per row its id and type (checked), per row and table its pair; then per
        column, per row, the binary tables' signs (each from the head beat of its FIFO at the
        row's running bit position) plus the dense tables' elements (one value a cycle); the
        group's n sums to `out` in one beat (`_embed_write`)."""
        B, Gh = self.B, self.Gh
        lb = B.bit_length() - 1
        vals, pop = out["vals"], out["pop"]
        tabs, binary = es.tabs, es.binary
        k = Signal(3)               # 0 id, 1 type, 2 pairs, 5 columns
        cr, cc, cg, ct = Signal(16), Signal(16), Signal(range(Gh)), Signal(2)
        n = Mux(self.rows - cr < es.G, self.rows - cr, es.G)
        idlast = Signal(signed(64))
        plus = [[Signal(signed(32), name=f"plus{g}_{t}") for t in range(3)] for g in range(Gh)]
        minus = [[Signal(signed(32), name=f"minus{g}_{t}") for t in range(3)] for g in range(Gh)]
        bp = [[Signal(range(8 * B), name=f"bp{g}_{t}") for t in range(3)] for g in range(Gh)]
        acc = [Signal(64, name=f"acc{g}") for g in range(Gh)]
        wsum = [Signal(64, name=f"sum{g}") for g in range(Gh)]
        beats = self.beats
        blocked = out["wv"] & ~self.wr.ready
        v = vals.r_data.as_signed()
        bin_ok = Cat(*[~binary[t] | (g >= n) | beats[3 * g + t].r_rdy for g in range(Gh) for t in range(3)]).all()
        bsum = [sum(Mux(binary[t], Mux(beats[3 * g + t].r_data.bit_select(bp[g][t], 1), plus[g][t], minus[g][t]), 0)
                    for t in range(3)) for g in range(Gh)]
        cols_k = k == 5
        cols_ok = es.armed & (es.cnt == 0) & bin_ok
        m.d.comb += pop.eq(vals.r_rdy & ~blocked & (~cols_k | (~es.all_bin & cols_ok) | self.fault))
        col_done = Signal()
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        bad_kind = Cat(*[((tb["kind"] != 0) & (tb["kind"] != 1)) | ((tb["kind"] == 0) & (tb["elem"] != 1) & (tb["elem"] != 2)
                         & (tb["elem"] != 4) & (tb["elem"] != 8)) for tb in tabs]).any()
        nxt, wrap = self._next_dense(ct, binary)
        with m.If(pop):
            with m.Switch(k):
                with m.Case(0):
                    m.d.sync += [idlast.eq(v), k.eq(1)]
                with m.Case(1):
                    oob = ((idlast < 0) | (idlast >= tabs[0]["rows"]) | (v < 0) | (v >= tabs[2]["rows"])
                           | (cr + cg >= tabs[1]["rows"]) | bad_kind)
                    with m.If(oob):
                        m.d.sync += self.fault.eq(1)
                    for g in range(Gh):
                        with m.If(cg == g):
                            m.d.sync += [es.idv[g].eq(idlast[:32]), es.tyv[g].eq(v[:32])]
                    m.d.sync += [k.eq(0), cg.eq(cg + 1)]
                    with m.If(cg == n - 1):
                        m.d.sync += [k.eq(2), cg.eq(0), ct.eq(0), es.have_ids.eq(1)]
                with m.Case(2):
                    for g in range(Gh):
                        for t in range(3):
                            with m.If((cg == g) & (ct == t)):
                                m.d.sync += [plus[g][t].eq(v[:32]), minus[g][t].eq(v[32:])]
                    m.d.sync += [ct.eq(Mux(ct == 2, 0, ct + 1)), cg.eq(Mux(ct == 2, cg + 1, cg))]
                    with m.If((ct == 2) & (cg == n - 1)):
                        m.d.sync += [k.eq(5), cg.eq(0), ct.eq(es.first_dense)]
                        m.d.sync += [bp[g][t].eq(es.rowa[g][t][:lb] << 3) for g in range(Gh) for t in range(3)]
                with m.Default():                    # a dense element of row cg
                    nacc = Mux(ct == es.first_dense, Array(bsum)[cg], Array(acc)[cg]) + v
                    m.d.sync += ct.eq(nxt)
                    for g in range(Gh):
                        with m.If(cg == g):
                            m.d.sync += acc[g].eq(nacc)
                            with m.If(wrap):
                                m.d.sync += wsum[g].eq(nacc)
                    with m.If(wrap):
                        m.d.sync += cg.eq(cg + 1)
                        with m.If(cg == n - 1):
                            m.d.sync += [cg.eq(0), out["wv"].eq(1)]
                            m.d.comb += col_done.eq(1)
        with m.If(cols_k & es.all_bin & cols_ok & ~blocked & ~self.fault):   # every table binary: a column a cycle
            m.d.sync += [out["wv"].eq(1)] + [wsum[g].eq(bsum[g]) for g in range(Gh)]
            m.d.comb += col_done.eq(1)
        last_col = cc == self.cols - 1
        with m.If(col_done):
            m.d.sync += [cc.eq(Mux(last_col, 0, cc + 1))] + [b.eq(b + 1) for row in bp for b in row]
            with m.If(last_col):
                m.d.sync += [cr.eq(cr + n), k.eq(0), es.armed.eq(0)]
        for g in range(Gh):                          # a beat leaves after its last bit, or the row's
            for t in range(3):
                last_bit = (bp[g][t] == 8 * B - 1) | last_col
                m.d.comb += beats[3 * g + t].r_en.eq(Mux(self.fault, 1, col_done & binary[t] & (g < n) & last_bit))
        with m.If(go):
            m.d.sync += [k.eq(0), cr.eq(0), cc.eq(0), cg.eq(0), es.have_ids.eq(0), es.armed.eq(0)]
        self._embed_write(m, go, out, es, wsum, n, col_done, last_col)
        self._embed_idle = Cat(*[~b.r_rdy for b in beats]).all() & (self._beats_out == 0)
        last = (gst == 7) & ~out["wv"] & ~vals.r_rdy & (cr == self.rows)
        m.d.comb += done.eq(last | (self._faulted(out) & self._embed_idle))

    def _embed_write(self, m, go, out, es, wsum, n, col_done, last_col):
        """A column of the group: its n rows' sums, saturated, in one beat at the stream address
        of (the group's first row, the column): tile base + lane offset + column * s_c."""
        B, Gh, T = self.B, self.Gh, self.config.vec_lanes
        w = self.wr
        sl = [self.slots.word_select(i, 32) for i in range(NSLOTS)]
        ov = {f: sl[SLOTS["V2"] + i] for i, f in enumerate(VIEW_FIELDS)}
        tbase, lane, col = Signal(32), Signal(16), Signal(32)
        with m.If(col_done):
            m.d.sync += col.eq(Mux(last_col, 0, col + ov["s_c"]))
            with m.If(last_col):
                nl = lane + (es.G << es.eo)
                with m.If(nl >= (Const(T, 16) << es.eo)):
                    m.d.sync += [lane.eq(0), tbase.eq(tbase + ov["s_rt"])]
                with m.Else():
                    m.d.sync += lane.eq(nl)
        with m.If(go):
            m.d.sync += [tbase.eq(ov["base"] + ((ov["r0"] >> (T.bit_length() - 1)) * ov["s_rt"])[:32]),
                         lane.eq(0), col.eq(0)]
        waddr = Signal(32)
        wa = Signal(32)
        with m.If(col_done):
            m.d.sync += waddr.eq(tbase + lane + col)
        e = Const(1, 4) << es.eo
        sat = [self._saturate(m, x, e, ov["fmt"][8]) for x in wsum]
        data, nw = Signal(8 * B), Signal(range(B + 1))
        with m.Switch(es.eo):
            for lg in range(4):
                with m.Case(lg):
                    eb = 1 << lg
                    run = Cat(*[x[:8 * eb] for x in sat])
                    m.d.comb += data.eq(Cat(*[run] * max(1, B // (Gh * eb)))[:8 * B])
        nrows = Signal(range(Gh + 1))
        with m.If(col_done):
            m.d.sync += nrows.eq(n)
        m.d.comb += [nw.eq(nrows << es.eo), wa.eq(waddr)]
        strb = ((Const(1, B + 1) << nw) - 1)[:B] << wa[:B.bit_length() - 1]
        m.d.comb += [w.valid.eq(out["wv"]), w.addr.eq(wa & ~(B - 1)), w.data.eq(data), w.strb.eq(strb[:B])]

    def _faulted(self, out):
        """After a fault: nothing is requested any more; done once every value is in and gone."""
        return self.fault & (out["inflight"] == 0) & ~out["vals"].r_rdy & ~out["wv"]

    # -- LUT -----------------------------------------------------------------------------------
    def _lut(self, m, go, req, out, done, sl):
        wa = self.walkers[0]
        n = Signal(32)                           # elements requested (x), elements requested (table)
        nx, nt = Signal(32), Signal(32)
        total = self.rows * self.cols
        Q = self.lut_block
        blk_x = Signal(range(Q + 1))             # x requested in this block
        tphase = Signal()
        m.submodules.idx = idxq = fifo.SyncFIFO(width=32, depth=Q)
        table = sl[SLOTS["C0"]]
        fire = out["fire"]
        with m.If(go):
            m.d.sync += [nx.eq(0), nt.eq(0), blk_x.eq(0), tphase.eq(0)]
        in_blk = Mux(total - (nx - blk_x) < Q, total - (nx - blk_x), Q)
        with m.If(~tphase):
            m.d.comb += [req["valid"].eq((nx < total) & ~self.fault), req["addr"].eq(wa.addr),
                         req["fmt"].eq(_fmt(sl[SLOTS["V0"] + 1]))]
            with m.If(fire):
                m.d.comb += wa.step.eq(1)
                m.d.sync += [nx.eq(nx + 1), blk_x.eq(blk_x + 1)]
                with m.If(blk_x + 1 == in_blk):
                    m.d.sync += tphase.eq(1)
        with m.Else():
            m.d.comb += [req["valid"].eq(idxq.r_rdy & ~self.fault), req["addr"].eq(table + (idxq.r_data << 2)),
                         req["fmt"].eq(Cat(Const(2, 2), Const(1, 1), Const(0, 9)))]
            with m.If(fire):
                m.d.comb += idxq.r_en.eq(1)
                m.d.sync += [nt.eq(nt + 1), blk_x.eq(blk_x - 1)]
                with m.If(blk_x == 1):
                    m.d.sync += tphase.eq(0)
        # consumer: x -> index (checked), table value -> out
        vals, pop = out["vals"], out["pop"]
        cx, ct, cb = Signal(32), Signal(32), Signal(range(Q + 1))
        cph = Signal()
        blocked = out["wv"] & ~self.wr.ready
        m.d.comb += pop.eq(vals.r_rdy & ~blocked & (cph | idxq.w_rdy))
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        with m.If(go):
            m.d.sync += [cx.eq(0), ct.eq(0), cb.eq(0), cph.eq(0)]
        off = sl[SLOTS["C1"]].as_signed()
        v = vals.r_data.as_signed()
        i = v + off
        cblk = Mux(total - (cx - cb) < Q, total - (cx - cb), Q)
        with m.If(pop):
            with m.If(~cph):
                m.d.comb += [idxq.w_en.eq(1), idxq.w_data.eq(i[:32])]
                with m.If((i < 0) | (i >= sl[SLOTS["C2"]])):
                    m.d.sync += self.fault.eq(1)
                m.d.sync += [cx.eq(cx + 1), cb.eq(cb + 1)]
                with m.If(cb + 1 == cblk):
                    m.d.sync += cph.eq(1)
            with m.Else():
                m.d.sync += [out["wv"].eq(1), out["wdata"].eq(v), ct.eq(ct + 1), cb.eq(cb - 1)]
                with m.If(cb == 1):
                    m.d.sync += cph.eq(0)
        m.d.comb += done.eq(((ct == total) & ~out["wv"]) | self._faulted(out))
        del n

    # -- DOT -----------------------------------------------------------------------------------
    def _dot(self, m, go, req, out, done, sl):
        wa, wb, _ = self.walkers
        r, c, nn, ph, gdone = Signal(16), Signal(16), Signal(16), Signal(), Signal()
        fire = out["fire"]
        with m.If(go):
            m.d.sync += [r.eq(0), c.eq(0), nn.eq(0), ph.eq(0), gdone.eq(0)]
        m.d.comb += [req["valid"].eq(~gdone & ~go), req["addr"].eq(Mux(ph, wb.addr, wa.addr)),
                     req["fmt"].eq(Mux(ph, _fmt(sl[SLOTS["V1"] + 1]), _fmt(sl[SLOTS["V0"] + 1])))]
        with m.If(fire):
            m.d.sync += c.eq(Mux(c == self.cols - 1, 0, c + 1))
            with m.If(ph):
                m.d.comb += wb.step.eq(1)
                with m.If(c == self.cols - 1):
                    m.d.sync += nn.eq(nn + 1)
                    with m.If(nn == self.aux - 1):
                        m.d.sync += [nn.eq(0), ph.eq(0), r.eq(r + 1), gdone.eq(r == self.rows - 1)]
            with m.Else():
                m.d.comb += wa.step.eq(1)
                with m.If(c == self.cols - 1):
                    m.d.sync += ph.eq(1)
                    m.d.comb += wb.restart.eq(1)
        self._mac_consumer(m, go, out, done, sl, dot=True)

    def _mul(self, m, a, b):
        """The engine's one multiplier: (a b) mod 2^64 (the kernel running drives its operands)."""
        m.d.comb += [self.mul_a.eq(a), self.mul_b.eq(b)]
        return self.mul_p

    def _bias(self, m, n):
        """int64 word n of the setup buffer's block B (DOT's bias, COMBINE's weights), one cycle after n."""
        B = self.B
        w8 = max(1, B // 8)
        i = self.off_b + n
        m.d.comb += self.rd_addr.eq(self.reg_b + (i >> (w8.bit_length() - 1)))
        sel = Signal(max(1, w8.bit_length() - 1))
        m.d.sync += sel.eq(i[:w8.bit_length() - 1] if w8 > 1 else 0)
        return (self.rd_data.word_select(sel, 64) if w8 > 1 else self.rd_data[:64]).as_signed()

    def _mac_consumer(self, m, go, out, done, sl, dot: bool):
        """DOT's and COMBINE's consumer: x into the row buffer / the MACs, the results out."""
        vals, pop = out["vals"], out["pop"]
        rr, rw = self.row_rd, self.row_wr
        blocked = out["wv"] & ~self.wr.ready
        en = ~blocked
        cr, cc, cn, cph = Signal(16), Signal(16), Signal(16), Signal()
        m.d.comb += pop.eq(vals.r_rdy & en)
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        with m.If(go):
            m.d.sync += [cr.eq(0), cc.eq(0), cn.eq(0), cph.eq(0)]
        v = vals.r_data.as_signed()
        # stage 1: the value, its column; the row buffer read of x[c] (DOT) / acc[e] (COMBINE)
        s1, v1, c1, last1, n1 = Signal(), Signal(signed(64)), Signal(16), Signal(), Signal(16)
        m.d.comb += [rr.addr.eq(cc), rr.en.eq(en)]
        with m.If(en):
            m.d.sync += [s1.eq(pop & cph), v1.eq(v), c1.eq(cc), last1.eq(cc == self.cols - 1), n1.eq(cn)]
        with m.If(pop):
            with m.If(~cph):                 # DOT: x into the row buffer
                m.d.comb += [rw.en.eq(1), rw.addr.eq(cc), rw.data.eq(v)]
                m.d.sync += cc.eq(Mux(cc == self.cols - 1, 0, cc + 1))
                with m.If(cc == self.cols - 1):
                    m.d.sync += cph.eq(1)
            with m.Else():
                m.d.sync += cc.eq(Mux(cc == self.cols - 1, 0, cc + 1))
                with m.If(cc == self.cols - 1):
                    m.d.sync += cn.eq(cn + 1)
                    with m.If(cn == self.aux - 1):
                        m.d.sync += [cn.eq(0), cph.eq(0), cr.eq(cr + 1)]
        bias = self._bias(m, n1)         # the value's output: read in stage 2, used in stage 3
        # stage 2: the product; stage 3: the sum, the result out
        s2, p2, last2, first2 = Signal(), Signal(signed(64)), Signal(), Signal()
        acc = Signal(signed(64))
        first1 = Signal()
        with m.If(en):
            m.d.sync += [s2.eq(s1), p2.eq(self._mul(m, v1, rr.data.as_signed())), last2.eq(last1), first2.eq(first1)]
            with m.If(s1 & last1):
                m.d.sync += first1.eq(1)
            with m.Elif(s1):
                m.d.sync += first1.eq(0)
        with m.If(go):
            m.d.sync += first1.eq(1)
        with m.If(en & s2):
            nacc = Mux(first2, 0, acc) + p2
            m.d.sync += acc.eq(nacc)
            with m.If(last2):
                m.d.sync += [out["wv"].eq(1), out["wdata"].eq(nacc + bias)]
        m.d.comb += done.eq(((cr == self.rows) & ~s1 & ~s2 & ~out["wv"]) | self._faulted(out))

    # -- COMBINE -------------------------------------------------------------------------------
    def _combine(self, m, go, req, out, done, sl):
        """Members one by one: the view from the setup buffer's descriptor (words 11 + 10 m ..),
        its weight from block B, its elements into acc (the row buffer); then acc out."""
        wa = self.walkers[0]
        B = self.B
        wpb = B // 4
        mem = Signal(16)            # the generator's member
        gst = Signal(3)             # 0 view words, 1 weight, 2 walker, 3 elements, 4 wait consumer, 5 done
        k = Signal(5)
        words = [Signal(32, name=f"mview{i}") for i in range(10)]
        wts = [Signal(signed(64), name=f"w{i}") for i in range(2)]
        cm = Signal(16)             # the consumer's member
        total = self.rows * self.cols
        ne = Signal(32)
        woff = self.desc[2:2 + wpb.bit_length() - 1] if wpb > 1 else Const(0, 1)
        wi = woff + 11 + mem * 10 + k                       # the descriptor word being read
        got, gk = Signal(), Signal(5)
        wsel = Signal(max(1, wpb.bit_length() - 1))
        m.d.sync += [got.eq(0), gk.eq(k), wsel.eq(wi[:wpb.bit_length() - 1] if wpb > 1 else 0)]
        word = self.rd_data.word_select(wsel, 32) if wpb > 1 else self.rd_data[:32]
        bias = self._bias_addr(m, mem)
        with m.If(go):
            m.d.sync += [mem.eq(0), gst.eq(0), k.eq(0), ne.eq(0)]
        with m.If(got):
            for i in range(10):
                with m.If(gk == i):
                    m.d.sync += words[i].eq(word)
        with m.Switch(Mux(go, 7, gst)):            # nothing moves in the cycle of `go`
            with m.Case(0):
                m.d.comb += self.rd_addr.eq(wi >> (wpb.bit_length() - 1))
                m.d.sync += [got.eq(1), k.eq(k + 1)]
                with m.If(k == 9):
                    m.d.sync += [gst.eq(1), k.eq(0)]
            with m.Case(1):                         # the weight (one cycle after its address)
                m.d.comb += self.rd_addr.eq(bias[0])
                m.d.sync += k.eq(k + 1)
                with m.If(k == 1):
                    m.d.sync += [wts[0].eq(Mux(mem[0], wts[0], bias[1])), wts[1].eq(Mux(mem[0], bias[1], wts[1])),
                                 gst.eq(2), k.eq(0)]
            with m.Case(2):
                m.d.comb += [wa.load.eq(k == 0), wa.view.eq(Cat(*words)), wa.cols.eq(self.cols)]
                e = words[1][:8]
                ok_e = (e == 1) | (e == 2) | (e == 4) | (e == 8)
                mis = Cat(*[(words[i] & (e - 1)[:4]).any() for i in (0, 4, 5, 6, 7)]).any()
                with m.If((k == 0) & (~ok_e | mis)):
                    m.d.sync += self.fault.eq(1)
                m.d.sync += k.eq(1)
                with m.If((k == 1) & wa.ready):
                    m.d.sync += [gst.eq(3), k.eq(0)]
            with m.Case(3):
                m.d.comb += [req["valid"].eq(~self.fault), req["addr"].eq(wa.addr), req["fmt"].eq(_fmt(words[1]))]
                with m.If(out["fire"]):
                    m.d.comb += wa.step.eq(1)
                    m.d.sync += ne.eq(ne + 1)
                    with m.If(ne == total - 1):
                        m.d.sync += [ne.eq(0), mem.eq(mem + 1), gst.eq(Mux(mem == self.aux - 1, 5, 4))]
            with m.Case(4):                         # at most one member ahead of the consumer
                with m.If(cm + 1 >= mem):
                    m.d.sync += gst.eq(0)
        self._combine_consumer(m, go, out, done, wts, cm, total, gst)

    def _bias_addr(self, m, n):
        """(buffer entry, int64 value one cycle later) of word n of block B."""
        B = self.B
        w8 = max(1, B // 8)
        i = self.off_b + n
        sel = Signal(max(1, w8.bit_length() - 1))
        m.d.sync += sel.eq(i[:w8.bit_length() - 1] if w8 > 1 else 0)
        val = (self.rd_data.word_select(sel, 64) if w8 > 1 else self.rd_data[:64]).as_signed()
        return self.reg_b + (i >> (w8.bit_length() - 1)), val

    def _combine_consumer(self, m, go, out, done, wts, cm, total, gst):
        vals, pop = out["vals"], out["pop"]
        rr, rw = self.row_rd, self.row_wr
        blocked = out["wv"] & ~self.wr.ready
        e = Signal(32)
        oph = Signal()              # the output phase
        self._o_v = Signal()        # every acc has been read out
        m.d.comb += pop.eq(vals.r_rdy & ~blocked & ~oph)
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        with m.If(go):
            m.d.sync += [e.eq(0), cm.eq(0), oph.eq(0), self._o_v.eq(0)]
        v = vals.r_data.as_signed()
        s1, v1, e1, first = Signal(), Signal(signed(64)), Signal(32), Signal()
        m.d.comb += rr.addr.eq(e)
        m.d.sync += [s1.eq(pop), v1.eq(v), e1.eq(e), first.eq(cm == 0)]
        w = Mux(cm[0], wts[1], wts[0])
        w1 = Signal(signed(64))
        m.d.sync += w1.eq(w)
        with m.If(s1):
            m.d.comb += [rw.en.eq(1), rw.addr.eq(e1), rw.data.eq(Mux(first, 0, rr.data.as_signed()) + self._mul(m, v1, w1))]
        with m.If(pop):
            m.d.sync += e.eq(Mux(e == total - 1, 0, e + 1))
            with m.If(e == total - 1):
                m.d.sync += cm.eq(cm + 1)
                with m.If(cm == self.aux - 1):
                    m.d.sync += oph.eq(1)
        # the output phase: acc[e] read, written the cycle after (the row buffer's read port)
        o_rd, o_v = Signal(), self._o_v
        with m.If(oph & ~s1 & ~o_rd & ~out["wv"] & ~o_v):      # one element at a time
            m.d.comb += rr.addr.eq(e)
            m.d.sync += [o_rd.eq(1), e.eq(e + 1)]
            with m.If(e == total - 1):
                m.d.sync += [oph.eq(0), o_v.eq(1)]
        with m.Else():
            m.d.sync += o_rd.eq(0)
        with m.If(o_rd):
            m.d.sync += [out["wv"].eq(1), out["wdata"].eq(rr.data)]
        m.d.comb += done.eq((o_v & ~o_rd & ~out["wv"]) | self._faulted(out))

    # -- VOTE ----------------------------------------------------------------------------------
    def _is_vote(self):
        return Cat(*[self.fn == int(f) for f in VOTE_KERNELS]).any()

    def _vote(self, m, go, req, out, done, sl):
        """The requests, per row: per member shift, alpha (constants at a running address),
        then per class its mult and its accumulator (walker A); after the row's last request
        wait until its prediction is out."""
        wa = self.walkers[0]
        gst = Signal(2)             # 0 shift, 1 alpha, 2 mult, 3 accumulator
        gc, gm, gr = Signal(16), Signal(16), Signal(16)
        wait = Signal()
        cptr = Signal(32)
        rows_out = Signal(16)       # rows whose prediction the consumer has raised
        fire = out["fire"]
        with m.If(go):
            m.d.sync += [gst.eq(0), gc.eq(0), gm.eq(0), gr.eq(0), wait.eq(0), cptr.eq(sl[SLOTS["C0"]])]
        const_fmt = Cat(Const(3, 2), Const(1, 1), Const(0, 9))
        acc_phase = gst == 3
        m.d.comb += [req["valid"].eq(~go & ~wait & (gr < self.rows) & ~self.fault),
                     req["addr"].eq(Mux(acc_phase, wa.addr, cptr)),
                     req["fmt"].eq(Mux(acc_phase, _fmt(sl[SLOTS["V0"] + 1]), const_fmt))]
        with m.If(fire):
            with m.If(acc_phase):
                m.d.comb += wa.step.eq(1)
                m.d.sync += [gst.eq(2), gc.eq(gc + 1)]
                with m.If(gc == self.cols - 1):
                    m.d.sync += [gst.eq(0), gc.eq(0), gm.eq(gm + 1)]
                    with m.If(gm == self.aux - 1):
                        m.d.sync += [gm.eq(0), gr.eq(gr + 1), wait.eq(1), cptr.eq(sl[SLOTS["C0"]])]
            with m.Else():
                m.d.sync += [gst.eq(gst + 1), cptr.eq(cptr + 8)]
        with m.If(wait & (rows_out == gr)):
            m.d.sync += wait.eq(0)
        self._vote_consumer(m, go, out, done, sl, rows_out)

    def _vote_consumer(self, m, go, out, done, sl, rows_out):
        """Stage 1 the product, 2 the logit code, 3 the member's first maximum (samme.r: S[c] +=
        l; samme: V[c] = 0 for the first member), 4 / 5 samme's V[c_m] += alpha; after the
        row's last member the read-back of V / S (first maximum) and the prediction out. Every
        stage holds while a write waits (`en`)."""
        vals, pop = out["vals"], out["pop"]
        en = ~(out["wv"] & ~self.wr.ready)
        fn = self.fn
        vote = fn == int(VecFn.VOTE)
        samme_r = vote & (sl[SLOTS["C1"]] == 1)
        kind = tuple(fn == int(f) for f in (VecFn.VOTE_AVERAGE, VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN))
        self._vote_kind = {"vote": vote, "samme": vote & ~samme_r, "exact": ~vote, "score": kind[1] | kind[2]}
        m.d.comb += [pop.eq(vals.r_rdy & en), self.row_rd.en.eq(en), self.vb_rd.en.eq(en)]
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        with m.If(go):
            m.d.sync += rows_out.eq(0)
        s1 = self._vote_product(m, go, vals.r_data.as_signed(), pop, en)
        s2 = self._vote_code(m, s1, en)
        mlast4 = self._vote_member(m, s2, en, samme_r, out)
        self._vote_readback(m, mlast4 & vote, en, out, rows_out)
        self._vote_rows(m, mlast4 & ~vote, en, kind, out, rows_out)
        m.d.comb += done.eq(((rows_out == self.rows) & ~out["wv"]) | self._faulted(out))

    def _vote_product(self, m, go, v, pop, en):
        """The values in order (shift, alpha, then per class mult, accumulator); stage 1: acc *
        mult (mod 2^64) with the class's place in its member and row."""
        ck = Signal(2)                                  # 0 shift, 1 alpha, 2 mult, 3 accumulator
        cc, cm = Signal(16), Signal(16)
        alpha, mult = Signal(signed(64)), Signal(signed(64))
        st = {"valid": Signal(), "c": Signal(16), "p": Signal(signed(64)), "a": Signal(signed(64)),
              "first": Signal(), "last": Signal(), "mfirst": Signal(), "mlast": Signal(), "i": Signal(32)}
        ri = Signal(32)                                 # the class's place in the row: m cols + c
        self._vote_tsum = tsum = Signal(64)             # the row's sum of alpha_q (the exact votes)
        self._vote_shift = shift = Signal(6)
        with m.If(go):
            m.d.sync += [ck.eq(0), cc.eq(0), cm.eq(0), ri.eq(0)]
        prod = self._mul(m, v, mult)
        with m.If(en):
            m.d.sync += st["valid"].eq(pop & (ck == 3))
        with m.If(pop):
            with m.Switch(ck):
                with m.Case(0):
                    m.d.sync += [shift.eq(v[:6]), ck.eq(1)]
                    with m.If(v.as_unsigned() > 63):
                        m.d.sync += self.fault.eq(1)
                with m.Case(1):
                    m.d.sync += [alpha.eq(v), ck.eq(2), tsum.eq(Mux(cm == 0, 0, tsum) + v)]
                    m.d.comb += [self.vb_wr.en.eq(1), self.vb_wr.addr.eq(cm), self.vb_wr.data.eq(v)]
                    with m.If(self._vote_kind["exact"] & ((v < 0) | (v >= VOTE_ALPHA_LIMIT))):
                        m.d.sync += self.fault.eq(1)
                with m.Case(2):
                    m.d.sync += [mult.eq(v), ck.eq(3)]
                with m.Case(3):
                    m.d.sync += [st["p"].eq(prod), st["c"].eq(cc), st["a"].eq(alpha), st["first"].eq(cc == 0),
                                 st["last"].eq(cc == self.cols - 1), st["mfirst"].eq(cm == 0),
                                 st["mlast"].eq(cm == self.aux - 1), ck.eq(2), cc.eq(cc + 1), st["i"].eq(ri),
                                 ri.eq(ri + 1)]
                    with m.If((cc == self.cols - 1) & (cm == self.aux - 1)):
                        m.d.sync += ri.eq(0)
                    with m.If(cc == self.cols - 1):
                        m.d.sync += [ck.eq(0), cc.eq(0), cm.eq(Mux(cm == self.aux - 1, 0, cm + 1))]
        return st

    def _vote_code(self, m, s1, en):
        """Stage 2: l = clamp_int32((p + 2^(shift-1)) >> shift) (the member's shift: its next
        shift is taken one cycle later at the earliest); the row buffer's S[c] read (samme.r)."""
        shift = self._vote_shift
        rnd = Mux(shift == 0, 0, (Const(1, 64) << (shift - 1)[:6])[:64])
        q = (s1["p"] + rnd)[:64].as_signed() >> shift
        lo, hi = -(1 << 31), (1 << 31) - 1
        code = Mux(q < lo, lo, Mux(q > hi, hi, q))
        s2 = {k: Signal.like(v, name=f"{k}2") for k, v in s1.items() if k != "p"}
        s2["l"] = Signal(signed(32))
        m.d.comb += self.row_rd.addr.eq(s1["c"])
        with m.If(en):
            m.d.sync += [s2[k].eq(s1[k]) for k in s2 if k != "l"] + [s2["l"].eq(code)]
        return s2

    def _vote_member(self, m, s2, en, samme_r, out):
        """Stage 3: the member's first maximum; samme.r S[c] = (first member ? 0 : S[c]) + l,
        samme V[c] = 0 for the first member; the member's class out after its last class.
        Stages 4 / 5 (samme): V[c_m] read, V[c_m] + alpha written."""
        rr, rw = self.row_rd, self.row_wr
        best, bestc = Signal(signed(32)), Signal(16)
        newer = s2["first"] | (s2["l"] > best)
        cls = Mux(newer, s2["c"], bestc)
        s3, c3, a3, mlast3 = Signal(), Signal(16), Signal(signed(64)), Signal()
        with m.If(en):
            m.d.sync += [s3.eq(s2["valid"] & s2["last"]), c3.eq(cls), a3.eq(s2["a"]), mlast3.eq(s2["mlast"])]
        kd = self._vote_kind
        self._vote_wsum = wsum = Signal(signed(64))      # MEAN: sum_m A_m l_m
        with m.If(en & s2["valid"]):
            m.d.sync += [best.eq(Mux(newer, s2["l"], best)), bestc.eq(cls),
                         wsum.eq(Mux(s2["mfirst"], 0, wsum) + s2["a"][:23].as_unsigned() * s2["l"])]
            with m.If(kd["exact"]):                       # the code into the row buffer at m cols + c
                m.d.comb += [rw.en.eq(1), rw.addr.eq(s2["i"]), rw.data.eq(s2["l"])]
            with m.Elif(samme_r | s2["mfirst"]):
                m.d.comb += [rw.en.eq(1), rw.addr.eq(s2["c"]),
                             rw.data.eq(Mux(samme_r, Mux(s2["mfirst"], 0, rr.data.as_signed()) + s2["l"], 0))]
            with m.If(s2["last"] & ~self.fault):          # after a fault nothing more is written
                m.d.sync += [out["wv"].eq(1), out["wdata"].eq(Mux(kd["score"], s2["l"], cls))]
        s4, c4, a4, mlast4 = Signal(), Signal(16), Signal(signed(64)), Signal()
        with m.If(s3 & kd["samme"]):
            m.d.comb += rr.addr.eq(c3)
        with m.If(en):
            m.d.sync += [s4.eq(s3), c4.eq(c3), a4.eq(a3), mlast4.eq(s3 & mlast3)]
        with m.If(en & s4 & kd["samme"]):
            m.d.comb += [rw.en.eq(1), rw.addr.eq(c4), rw.data.eq(rr.data.as_signed() + a4)]
        return mlast4

    def _vote_readback(self, m, mlast4, en, out, rows_out):
        """After the row's last member: V / S [0 .. cols - 1] read one a cycle, their first
        maximum; the prediction out."""
        rr = self.row_rd
        fin, fa = Signal(), Signal(17)
        fv, fc, fbest, fbc = Signal(), Signal(16), Signal(signed(64)), Signal(16)
        with m.If(en & mlast4):
            m.d.sync += [fin.eq(1), fa.eq(0)]
        with m.If(fin):
            m.d.comb += rr.addr.eq(fa)
            with m.If(en):
                m.d.sync += [fa.eq(fa + 1), fv.eq(1), fc.eq(fa)]
                with m.If(fa == self.cols - 1):
                    m.d.sync += fin.eq(0)
        with m.Elif(en):
            m.d.sync += fv.eq(0)
        fnewer = (fc == 0) | (rr.data.as_signed() > fbest)
        fcls = Mux(fnewer, fc, fbc)
        with m.If(en & fv):
            m.d.sync += [fbest.eq(Mux(fnewer, rr.data.as_signed(), fbest)), fbc.eq(fcls)]
            with m.If((fc == self.cols - 1) & ~self.fault):
                m.d.sync += [out["wv"].eq(1), out["wdata"].eq(fcls), rows_out.eq(rows_out + 1)]

    def _vote_rows(self, m, mlast4, en, kind, out, rows_out):
        """The exact votes: after the row's last member the row sequencer (hw/vec/vote_seq.py),
        then its result out; a row whose alphas sum to 0 is a fault."""
        tsum = self._vote_tsum
        go = en & mlast4 & ~self.fault
        with m.If(go & (tsum == 0)):
            m.d.sync += self.fault.eq(1)
        seq = VoteSequencer(m, start=go & (tsum != 0), en=en, kind=kind, members=self.aux, labels=self.cols,
                            tsum=tsum, wsum=self._vote_wsum, row_rd=self.row_rd, vb_rd=self.vb_rd, vb_wr=self.vb_wr)
        with m.If(seq.res_valid & ~self.fault):
            m.d.sync += [out["wv"].eq(1), out["wdata"].eq(seq.res), rows_out.eq(rows_out + 1)]
