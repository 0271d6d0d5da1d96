"""The scalar engine: EMBED, LUT, DOT, COMBINE, VOTE, element by element, over any views.

Reads are single-beat requests, one element each (at its byte address's beat), issued in a
fixed order per kernel, one per cycle while the value FIFO has room (several outstanding);
the beats come back in order and each becomes its element (its bytes at its offset in the
beat, sign- or zero-extended, saturated to the view's `sat`). A consumer takes the values in
the same order; writes are single beats (the element repeated across the beat, its bytes
strobed). Element addresses are multiples of the element size (a descriptor fault otherwise).

Per kernel (rows r, columns c; `aux` = DOT's outputs n, COMBINE's members m):

- EMBED, per row: id, token type (walkers A, B); the three tables' (+1, -1) pairs (binary
  tables: pairs + 8 index; a dense table's pair read is a dummy); then per column the three
  table elements (dense: base + index stride + c elem; binary: the sign bit at base + index
  stride + c / 8 selects the pair's value); the sum to `out` (walker O).
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

DOT, COMBINE and VOTE share one 64 x 64 multiplier (`_mul`).

`busy` from `start` until the last write has been sent; the unit waits for the answers.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.vector import VecFn, embed_row_beats, lut_block

from .reader import ReadPort
from .setup import NSLOTS, SLOTS
from .walker import VIEW_FIELDS, ViewWalker
from .writer import WritePort

FMT_BITS = 2 + 1 + 8 + 1        # elem code, signed, sat, binary-table bit


def _fmt(fmt_word, binary=Const(0, 1)):
    """The element format of a view's fmt word: log2 elem, signed, sat; and the binary bit."""
    e = fmt_word[:8]
    code = Mux(e == 8, 3, Mux(e == 4, 2, Mux(e == 2, 1, 0)))
    return Cat(code[:2], fmt_word[8], fmt_word[16:24], binary)


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
        m.submodules.tags = tags = fifo.SyncFIFO(width=self.offb + FMT_BITS + 3, depth=self.depth)
        m.submodules.vals = vals = fifo.SyncFIFOBuffered(width=64, depth=self.depth)
        self._rq_beat = Signal()                            # a request for a whole beat (EMBED's binary rows)
        self.beats = []                                     # EMBED: the binary rows' beats, per table
        for t in range(3):
            bq = ResetInserter(self.start)(fifo.SyncFIFOBuffered(width=8 * self.B, depth=self.beat_depth))
            m.submodules[f"beats{t}"] = bq
            self.beats.append(bq)
        self._responses(m, tags, vals)
        # -- the row buffer (DOT's x row, COMBINE's accumulators)
        m.submodules.row = row = Memory(shape=64, depth=cfg.vec_row_elems, init=[])
        self.row_rd, self.row_wr = row.read_port(), row.write_port()
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
        off, code, sgn, sat, binary, bit = t[:o], t[o:o + 2], t[o + 2], t[o + 3:o + 11], t[o + 11], t[o + 12:o + 15]
        m.d.comb += tags.r_en.eq(p.data_valid)
        beat = p.data
        for i, bq in enumerate(self.beats):             # EMBED's binary rows: whole beats, per table
            m.d.comb += [bq.w_data.eq(beat), bq.w_en.eq(p.data_valid & binary & (bit[:2] == i))]
        self._beats_out = nb = Signal(range(3 * self.beat_depth + 1))
        m.d.sync += nb.eq(nb + (self.rd.req_valid & self.rd.req_ready & self._rq_beat) - (p.data_valid & binary))
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
        m.d.comb += [vals.w_data.eq(satd), vals.w_en.eq(p.data_valid & ~binary)]

    # -- the kernels ---------------------------------------------------------------------------
    def _kernels(self, m, tags, vals, wa, wb, wo, view, sl):
        fn, B = self.fn, self.B
        p, w = self.rd, self.wr
        phase = Signal(2)                       # 0 idle, 1 walkers' init, 2 run, 3 last writes
        m.d.comb += self.busy.eq(phase != 0)
        # requests: one a cycle while the value FIFO has room for every element in flight
        rq_valid, rq_addr, rq_fmt, rq_bit, rq_beat = Signal(), Signal(32), Signal(FMT_BITS), Signal(3), self._rq_beat
        inflight = Signal(range(self.depth + 1))
        pop = Signal()
        can = rq_valid & (phase == 2) & (inflight < self.depth - 1) & tags.w_rdy
        fire = can & p.req_ready
        m.d.comb += [p.req_valid.eq(can),
                     p.req_addr.eq(rq_addr & ~(B - 1)), p.req_len.eq(1),
                     tags.w_data.eq(Cat(rq_addr[:self.offb], rq_fmt[:FMT_BITS - 1], rq_beat, rq_bit)),
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
                            (wo, "V2", Mux(fn == int(VecFn.DOT), self.aux, Mux(fn == int(VecFn.VOTE), 1, self.cols)))):
            m.d.comb += [wk.load.eq(self.start), wk.view.eq(view(v)), wk.cols.eq(cols)]
        go = Signal()
        with m.If((phase == 1) & wa.ready & wb.ready & wo.ready):
            m.d.sync += phase.eq(2)
            m.d.comb += go.eq(1)
        with m.If((phase == 2) & done):
            m.d.sync += phase.eq(0)
        for f, body in ((VecFn.EMBED, self._embed), (VecFn.LUT, self._lut), (VecFn.DOT, self._dot),
                        (VecFn.COMBINE, self._combine), (VecFn.VOTE, self._vote)):
            with m.If(fn == int(f)):
                body(m, go, req, out, done, sl)
        m.d.comb += self.idle.eq((phase == 0) & (inflight == 0))

    def _write_port(self, m, wv, wdata, wcode, wo):
        """Element writes through walker O, saturated to the out view's element type."""
        B, w = self.B, self.wr
        fmt = self.slots.word_select(SLOTS["V2"] + 1, 32)
        e, sgn = fmt[:8], fmt[8]
        x = wdata.as_signed()
        sat = Signal(64)
        with m.Switch(e):
            for n in (1, 2, 4):
                with m.Case(n):
                    lo, hi = (-(1 << (8 * n - 1)), (1 << (8 * n - 1)) - 1)
                    ulo, uhi = 0, (1 << (8 * n)) - 1
                    m.d.comb += sat.eq(Mux(sgn, Mux(x < lo, lo, Mux(x > hi, hi, x)), Mux(x < ulo, ulo, Mux(x > uhi, uhi, x))))
            with m.Default():
                m.d.comb += sat.eq(Mux(~sgn & (x < 0), 0, x))       # uint64: write_view clips to [0, 2^63)
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

    # -- EMBED ---------------------------------------------------------------------------------
    def _tables(self, sl):
        return [{n: sl[SLOTS[t] + i] for i, n in enumerate(("kind", "base", "stride", "rows", "elem", "pairs"))}
                for t in ("T0", "T1", "T2")]

    def _embed(self, m, go, req, out, done, sl):
        """The requests, per row: id, type; (after the consumer has them) the three row
        addresses; the three pairs; the binary rows' beats (`_embed_beats`); the dense
        tables' elements, column by column (`_embed_dense`)."""
        wa, wb, wo = self.walkers
        tabs = self._tables(sl)
        binary = [self.io[t] for t in range(3)]                 # checked against the kinds (derive)
        self._dense_t = Signal(2)
        self._first_dense = Mux(~binary[0], 0, Mux(~binary[1], 1, 2))
        r = Signal(16)
        gst = Signal(3)             # 0 id, 1 type, 2 wait ids, 3 row addresses, 4 pairs, 5 beats, 6 dense, 7 done
        t = Signal(2)
        have_ids = Signal()         # the consumer has this row's id and type
        idv, tyv = Signal(signed(64)), Signal(signed(64))
        idx = [idv[:32], r, tyv[:32]]
        rowa = [Signal(32, name=f"rowa{i}") for i in range(3)]
        fmt_a, fmt_b = _fmt(sl[SLOTS["V0"] + 1]), _fmt(sl[SLOTS["V1"] + 1])
        fire = out["fire"]
        row_end = Signal()          # this row's last request
        m.d.comb += row_end.eq(0)
        with m.If(go):
            m.d.sync += [gst.eq(0), r.eq(0), t.eq(0)]
        with m.Switch(gst):
            with m.Case(0):
                m.d.comb += [req["valid"].eq(~go), req["addr"].eq(wa.addr), req["fmt"].eq(fmt_a)]
                with m.If(fire):
                    m.d.sync += gst.eq(1)
                    m.d.comb += wa.step.eq(1)
            with m.Case(1):
                m.d.comb += [req["valid"].eq(1), req["addr"].eq(wb.addr), req["fmt"].eq(fmt_b)]
                with m.If(fire):
                    m.d.sync += gst.eq(2)
                    m.d.comb += wb.step.eq(1)
            with m.Case(2):                          # this row's id and type (the generator takes them)
                with m.If(have_ids):
                    m.d.sync += [gst.eq(3), t.eq(0), have_ids.eq(0)]
            with m.Case(3):                          # base + index * stride, one table a cycle
                for i in range(3):
                    with m.If(t == i):
                        m.d.sync += rowa[i].eq(tabs[i]["base"] + (idx[i] * tabs[i]["stride"])[:32])
                m.d.sync += t.eq(t + 1)
                with m.If(t == 2):
                    m.d.sync += [gst.eq(4), t.eq(0)]
            with m.Case(4):                          # the (+1, -1) pairs (a dummy read for dense tables)
                pa = Array(tb["pairs"] + (ix << 3) for tb, ix in zip(tabs, idx))[t]
                m.d.comb += [req["valid"].eq(1), req["addr"].eq(pa), req["fmt"].eq(Cat(Const(3, 2), Const(1, 1), Const(0, 9)))]
                with m.If(fire):
                    m.d.sync += t.eq(Mux(t == 2, 0, t + 1))
                    with m.If(t == 2):                   # no binary table: no beat slots
                        m.d.sync += [gst.eq(Mux(binary[0] | binary[1] | binary[2], 5, 6)),
                                     self._dense_t.eq(self._first_dense)]
            with m.Case(5):
                self._embed_beats(m, go, req, fire, binary, rowa, gst, row_end)
            with m.Case(6):
                self._embed_dense(m, go, req, fire, binary, rowa, tabs, row_end)
        with m.If(row_end):
            m.d.sync += [r.eq(r + 1), gst.eq(Mux(r == self.rows - 1, 7, 0))]
        with m.If(self.fault):
            m.d.comb += req["valid"].eq(0)
        self._embed_consumer(m, go, out, done, tabs, binary, rowa, have_ids, idv, tyv, gst)

    def _embed_beats(self, m, go, req, fire, binary, rowa, gst, row_end):
        """3 * `embed_row_beats(cols)` slots, j-major (beat j of tables 0, 1, 2, then beat j + 1):
        slot (j, t) requests beat j of table t's binary row when the row has one (a cycle
        otherwise), so the count never depends on where the row starts in its beat."""
        B = self.B
        lb, l8b = B.bit_length() - 1, (8 * B).bit_length() - 1
        j, t = Signal(16), Signal(2)
        nbb = (self.cols + 16 * B - 9) >> l8b                   # embed_row_beats: 8 (B - 1) + cols bits
        need = Array(((rowa[i][:lb] << 3) + self.cols + 8 * B - 1) >> l8b for i in range(3))[t]
        real = Array(binary)[t] & (j < need)
        addr = (Array(rowa)[t] & ~(B - 1)) + (j << lb)
        m.d.comb += [req["valid"].eq(real), req["addr"].eq(addr), req["beat"].eq(1), req["fmt"].eq(0),
                     req["bit"].eq(t)]
        with m.If(fire | ~real):
            m.d.sync += t.eq(Mux(t == 2, 0, t + 1))
            with m.If(t == 2):
                m.d.sync += j.eq(j + 1)
                with m.If(j == nbb - 1):
                    m.d.sync += [j.eq(0)]
                    with m.If(~binary[0] | ~binary[1] | ~binary[2]):
                        m.d.sync += [gst.eq(6), self._dense_t.eq(self._first_dense)]
                    with m.Else():
                        m.d.comb += row_end.eq(1)
        with m.If(go):
            m.d.sync += [j.eq(0), t.eq(0)]

    def _embed_dense(self, m, go, req, fire, binary, rowa, tabs, row_end):
        """Per column, one element request per dense table (base + index stride + c elem)."""
        t, c = self._dense_t, Signal(16)
        cola = [Signal(32, name=f"cola{i}") for i in range(3)]
        efmt = Array(_fmt(Cat(tb["elem"][:8], Const(1, 1), Const(0, 23))) for tb in tabs)[t]
        m.d.comb += [req["valid"].eq(1), req["fmt"].eq(efmt), req["addr"].eq(Array(rowa)[t] + Array(cola)[t])]
        nxt, wrap = self._next_dense(t, binary)
        with m.If(fire):
            for i in range(3):
                with m.If(t == i):
                    m.d.sync += cola[i].eq(cola[i] + tabs[i]["elem"])
            m.d.sync += t.eq(nxt)
            with m.If(wrap):
                m.d.sync += c.eq(c + 1)
                with m.If(c == self.cols - 1):
                    m.d.sync += [c.eq(0)] + [x.eq(0) for x in cola]
                    m.d.comb += row_end.eq(1)
        with m.If(go):
            m.d.sync += [c.eq(0)] + [x.eq(0) for x in cola]

    @staticmethod
    def _next_dense(t, binary):
        """(the dense table after t in this column or the first dense one of the next, wrapped)."""
        d = [~b for b in binary]
        first = Mux(d[0], 0, Mux(d[1], 1, 2))
        nxt = Mux(t == 0, Mux(d[1], 1, Mux(d[2], 2, first)), Mux((t == 1) & d[2], 2, first))
        wrap = ((t == 0) & ~d[1] & ~d[2]) | ((t == 1) & ~d[2]) | (t == 2)
        return nxt, wrap

    def _embed_consumer(self, m, go, out, done, tabs, binary, rowa, have_ids, idv, tyv, gst):
        """id, type, the three pairs, then per column the binary tables' signs (each from the
        head beat of its FIFO at the row's running bit position) and the dense tables'
        elements (one value a cycle) summed; the sum to `out`."""
        B = self.B
        lb = B.bit_length() - 1
        vals, pop = out["vals"], out["pop"]
        k = Signal(3)               # 0 id, 1 type, 2..4 pairs, 5 columns
        cr, cc = Signal(16), Signal(16)
        ct = Signal(2)              # the dense table whose element is next
        plus = [Signal(signed(32), name=f"plus{i}") for i in range(3)]
        minus = [Signal(signed(32), name=f"minus{i}") for i in range(3)]
        bp = [Signal(range(8 * B), name=f"bp{i}") for i in range(3)]   # bit position in the head beat
        acc = Signal(64)
        blocked = out["wv"] & ~self.wr.ready
        v = vals.r_data.as_signed()
        beats = self.beats
        bin_ok = Cat(*[~binary[i] | beats[i].r_rdy for i in range(3)]).all()
        all_bin = binary[0] & binary[1] & binary[2]
        bsum = sum(Mux(binary[i], Mux(beats[i].r_data.bit_select(bp[i], 1), plus[i], minus[i]), 0) for i in range(3))
        cols_k = k == 5
        dense_go = cols_k & ~all_bin & bin_ok
        m.d.comb += pop.eq(vals.r_rdy & ~blocked & (~cols_k | dense_go | self.fault))
        col_done = Signal()
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        with m.If(go):
            m.d.sync += [k.eq(0), cr.eq(0), cc.eq(0), have_ids.eq(0)]
        bad_kind = Cat(*[((tb["kind"] != 0) & (tb["kind"] != 1)) | ((tb["kind"] == 0) & (tb["elem"] != 1) & (tb["elem"] != 2)
                         & (tb["elem"] != 4) & (tb["elem"] != 8)) for tb in tabs]).any()
        nxt, wrap = self._next_dense(ct, binary)
        with m.If(pop):
            with m.Switch(k):
                with m.Case(0):
                    m.d.sync += [idv.eq(v), k.eq(1)]
                with m.Case(1):
                    m.d.sync += [tyv.eq(v), k.eq(2), have_ids.eq(1)]
                    oob = ((idv < 0) | (idv >= tabs[0]["rows"]) | (v < 0) | (v >= tabs[2]["rows"])
                           | (cr >= tabs[1]["rows"]) | bad_kind)
                    with m.If(oob):
                        m.d.sync += self.fault.eq(1)
                with m.Case(2, 3, 4):
                    for i in range(3):
                        with m.If(k == 2 + i):
                            m.d.sync += [plus[i].eq(v[:32]), minus[i].eq(v[32:])]
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 4):
                        m.d.sync += [bp[i].eq(rowa[i][:lb] << 3) for i in range(3)] + [ct.eq(self._first_dense)]
                with m.Default():                    # a dense element
                    nacc = Mux(ct == self._first_dense, bsum, acc) + v
                    m.d.sync += [acc.eq(nacc), ct.eq(nxt)]
                    with m.If(wrap):
                        m.d.sync += [out["wv"].eq(1), out["wdata"].eq(nacc)]
                        m.d.comb += col_done.eq(1)
        with m.If(cols_k & all_bin & bin_ok & ~blocked & ~self.fault):    # every table binary: a column a cycle
            m.d.sync += [out["wv"].eq(1), out["wdata"].eq(bsum)]
            m.d.comb += col_done.eq(1)
        last_col = cc == self.cols - 1
        with m.If(col_done):
            m.d.sync += [cc.eq(Mux(last_col, 0, cc + 1))] + [b.eq(b + 1) for b in bp]
            with m.If(last_col):
                m.d.sync += [cr.eq(cr + 1), k.eq(0)]
        for i in range(3):                           # a beat leaves after its last bit, or the row's
            m.d.comb += beats[i].r_en.eq(Mux(self.fault, 1, col_done & binary[i] & ((bp[i] == 8 * B - 1) | last_col)))
        self._embed_idle = Cat(*[~b.r_rdy for b in beats]).all() & (self._beats_out == 0)
        last = (gst == 7) & ~out["wv"] & ~vals.r_rdy & (cr == self.rows)
        m.d.comb += done.eq(last | (self._faulted(out) & self._embed_idle))

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
        samme_r = sl[SLOTS["C1"]] == 1
        m.d.comb += [pop.eq(vals.r_rdy & en), self.row_rd.en.eq(en)]
        with m.If(out["sent"]):
            m.d.sync += out["wv"].eq(0)
        with m.If(go):
            m.d.sync += rows_out.eq(0)
        s1 = self._vote_product(m, go, vals.r_data.as_signed(), pop, en)
        s2 = self._vote_code(m, s1, en)
        mlast4 = self._vote_member(m, s2, en, samme_r, out)
        self._vote_readback(m, mlast4, en, out, rows_out)
        m.d.comb += done.eq(((rows_out == self.rows) & ~out["wv"]) | self._faulted(out))

    def _vote_product(self, m, go, v, pop, en):
        """The values in order (shift, alpha, then per class mult, accumulator); stage 1: acc *
        mult (mod 2^64) with the class's place in its member and row."""
        ck = Signal(2)                                  # 0 shift, 1 alpha, 2 mult, 3 accumulator
        cc, cm = Signal(16), Signal(16)
        alpha, mult = Signal(signed(64)), Signal(signed(64))
        st = {"valid": Signal(), "c": Signal(16), "p": Signal(signed(64)), "a": Signal(signed(64)),
              "first": Signal(), "last": Signal(), "mfirst": Signal(), "mlast": Signal()}
        self._vote_shift = shift = Signal(6)
        with m.If(go):
            m.d.sync += [ck.eq(0), cc.eq(0), cm.eq(0)]
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
                    m.d.sync += [alpha.eq(v), ck.eq(2)]
                with m.Case(2):
                    m.d.sync += [mult.eq(v), ck.eq(3)]
                with m.Case(3):
                    m.d.sync += [st["p"].eq(prod), st["c"].eq(cc), st["a"].eq(alpha), st["first"].eq(cc == 0),
                                 st["last"].eq(cc == self.cols - 1), st["mfirst"].eq(cm == 0),
                                 st["mlast"].eq(cm == self.aux - 1), ck.eq(2), cc.eq(cc + 1)]
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
        with m.If(en & s2["valid"]):
            m.d.sync += [best.eq(Mux(newer, s2["l"], best)), bestc.eq(cls)]
            with m.If(samme_r | s2["mfirst"]):
                m.d.comb += [rw.en.eq(1), rw.addr.eq(s2["c"]),
                             rw.data.eq(Mux(samme_r, Mux(s2["mfirst"], 0, rr.data.as_signed()) + s2["l"], 0))]
            with m.If(s2["last"] & ~self.fault):          # after a fault nothing more is written
                m.d.sync += [out["wv"].eq(1), out["wdata"].eq(cls)]
        s4, c4, a4, mlast4 = Signal(), Signal(16), Signal(signed(64)), Signal()
        with m.If(s3 & ~samme_r):
            m.d.comb += rr.addr.eq(c3)
        with m.If(en):
            m.d.sync += [s4.eq(s3), c4.eq(c3), a4.eq(a3), mlast4.eq(s3 & mlast3)]
        with m.If(en & s4 & ~samme_r):
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
