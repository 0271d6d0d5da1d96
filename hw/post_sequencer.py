"""The schedule of one POST: columns through the lanes, write beats, the packer's flush, the responses."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import FIELDS, Op, PostFmt

from .buffer import address_bits
from .packer import RUN_BITS

RESP_BITS = 16  # writes in flight on owr


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _width(op, name):
    return FIELDS[op][name][1]


class PostSequencer(wiring.Component):
    """Runs one POST (`start` in its issue cycle t, with its fields and `tells`: it pushes to
    LOAD or VECTOR) in the mode of the `mode_*` registers. `busy` from t+1 to its last cycle,
    in which `finish` is high. At the nominal memory, with n = `cols` (stream) or C (packed):

    - t+1: PBUF entry `p` is read (`pbuf_en`); from t+2 column f = 0 .. n-1 enters the lanes
      (`feed_valid`, `feed_col`) whenever the pipeline moves (`adv`), and column f reaches the
      write stage (`out_valid` from the lanes) three moves later;
    - stream: the write stage writes the column's beats (`StreamBeat`: `beat` = 0 .. bpc - 1,
      `owr_addr` = dram + g pitch + f T e + b B/8 for beat g bpr + b, bpr the beats of one row
      tile's run, bpc = R e / min(T' e, B/8)), one per cycle; the pipeline moves when the
      column's last beat is taken (`owr_ready`);
    - packed / transposed: the write stage shifts the column's codes into the packer in one
      cycle (`pk_shift`: normal mode only columns < `cols`, transposed every column, its group;
      `pk_mask` = rows < `rows`); with `flush` the flush follows: for each plane p < obits
      (transposed: each group of Q words, first max(1, R W / B) transposer loads, `pk_tload`)
      the words' writes, a run of gg = min(group, words) words at dram + p pitch + (w / gg)
      gstride, each write min(gg, B/W) words (or one B-bit part of a word when W > B), the
      last write clearing the packer (`pk_clear`);
    - the last cycle is that of the last write taken (stream, flush), or of the last column's
      shift (packed without flush), or, with `tells` and writes, that of the response that
      leaves no write of `owr` unanswered (`owr_resp`; responses come in order).

    So D = POST_PIPELINE_CYCLES + n * bpc (stream) or + C + flush beats (+ loads), + L with
    `tells` (`bebert.timing.post_cycles`). Writes wait for `owr_ready`; everything else waits
    with them, so a slower memory stretches the POST and changes no byte.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        R, C, W, B = config.pe_rows, config.pe_cols, config.xnor_width, config.bus_bits
        self.wpb, self.parts = max(1, B // W), max(1, W // B)
        self.q, self.groups = min(R, C), max(1, C // R)
        super().__init__({
            "start": In(1), "tells": In(1),
            **{n: In(_width(Op.POST, n)) for n in ("p", "dram", "cols", "rows", "flush")},
            **{f"mode_{n}": In(_width(Op.POSTCFG, n)) for n in ("fmt", "elem", "obits", "pitch", "gstride", "group")},
            "out_valid": In(1), "owr_ready": In(1), "owr_resp": In(1),
            "busy": Out(1), "finish": Out(1),
            "pbuf_en": Out(1), "pbuf_addr": Out(address_bits(config, "pbuf")),
            "feed_valid": Out(1), "feed_col": Out(range(max(2, C))), "adv": Out(1),
            "streaming": Out(1), "beat": Out(range(max(2, 4 * R))), "valid_rows": Out(range(R + 1)),
            "owr_valid": Out(1), "owr_addr": Out(32),
            "pk_shift": Out(self.groups), "pk_mask": Out(R), "pk_clear": Out(1), "pk_tload": Out(1),
            "pk_strb": Out(config.dram_bytes_per_cycle),
            "rd_plane": Out(3), "rd_word": Out(range(max(2, R, C))), "rd_part": Out(range(max(2, self.parts))),
            "rd_run": Out(RUN_BITS), "rd_transposed": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W, Bb = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width, cfg.dram_bytes_per_cycle
        T1 = min(R, cfg.vec_lanes)
        post = {n: Signal(_width(Op.POST, n), name=f"post_{n}") for n in ("p", "dram", "cols", "rows", "flush")}
        tells = Signal()
        with m.If(self.start):
            m.d.sync += [post[n].eq(getattr(self, n)) for n in post] + [tells.eq(self.tells)]
        stream = self.mode_fmt == PostFmt.STREAM
        transposed = self.mode_fmt == PostFmt.TRANSPOSED

        # Stream geometry for e = 1, 2, 4 bytes: beats per row-tile run and per column.
        e_bytes = Signal(3)
        bpr, bpc = Signal(range(4 * R + 1)), Signal(range(4 * R + 1))
        for elem in range(3):
            e = 1 << elem
            with m.If(self.mode_elem == elem):
                m.d.comb += [e_bytes.eq(e), bpr.eq(max(1, T1 * e // Bb)),
                             bpc.eq(R * e // min(T1 * e, Bb))]

        fetch, feeding, busy, waiting = (Signal(name=n) for n in ("fetch", "feeding", "busy_r", "waiting"))
        ncol = Mux(stream, post["cols"], C)
        f, wcol = Signal(range(C + 1)), Signal(range(C + 1))
        m.d.comb += [self.busy.eq(busy), self.pbuf_en.eq(fetch), self.pbuf_addr.eq(post["p"]),
                     self.feed_valid.eq(feeding & (f < ncol)), self.feed_col.eq(f),
                     self.streaming.eq(stream), self.valid_rows.eq(post["rows"])]
        with m.If(self.start):
            m.d.sync += [busy.eq(1), fetch.eq(1), f.eq(0), wcol.eq(0)]
        with m.If(fetch):
            m.d.sync += [fetch.eq(0), feeding.eq(1)]
        with m.If(self.adv & self.feed_valid):
            m.d.sync += f.eq(f + 1)

        # -- the write stage: one column ----------------------------------------------------
        beat, g_b = Signal.like(self.beat), Signal(range(4 * R + 1))  # beat in column, beat in run
        col_base, run_base, waddr = Signal(32), Signal(32), Signal(32)
        col_taken = self.owr_valid & self.owr_ready
        col_write = busy & stream & self.out_valid
        last_beat = beat == bpc - 1
        wdone = Mux(stream, col_write & self.owr_ready & last_beat, self.out_valid)
        last_col = wdone & (wcol == ncol - 1)
        m.d.comb += [self.adv.eq(~self.out_valid | wdone), self.beat.eq(beat)]
        with m.If(self.start):
            m.d.sync += [col_base.eq(self.dram), run_base.eq(self.dram), waddr.eq(self.dram), beat.eq(0), g_b.eq(0)]
        with m.Elif(col_write & self.owr_ready):
            with m.If(last_beat):
                nxt = col_base + e_bytes * cfg.vec_lanes
                m.d.sync += [beat.eq(0), g_b.eq(0), col_base.eq(nxt), run_base.eq(nxt), waddr.eq(nxt)]
            with m.Elif(g_b == bpr - 1):
                m.d.sync += [beat.eq(beat + 1), g_b.eq(0), run_base.eq(run_base + self.mode_pitch),
                             waddr.eq(run_base + self.mode_pitch)]
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), g_b.eq(g_b + 1), waddr.eq(waddr + Bb)]
        with m.If(wdone):
            m.d.sync += wcol.eq(wcol + 1)
        shifting = busy & ~stream & self.out_valid & (transposed | (wcol < post["cols"]))
        if self.groups > 1:
            m.d.comb += self.pk_shift.eq(Mux(shifting & transposed, 1 << (wcol // R)[:max(1, _log2(self.groups))],
                                             Cat(shifting, 0)))
        else:
            m.d.comb += self.pk_shift.eq(shifting)
        m.d.comb += self.pk_mask.eq(Cat(*[r < post["rows"] for r in range(R)]))

        # -- the flush ----------------------------------------------------------------------
        fl = self._flush(m, post, last_col & ~stream & post["flush"], transposed)
        flush_last = fl["last"]

        # -- outstanding writes and the last cycle ------------------------------------------
        outstanding = Signal(RESP_BITS)
        m.d.sync += outstanding.eq(outstanding + col_taken - self.owr_resp)
        wrote_last = (last_col & stream) | flush_last  # the POST's last write is taken now
        settled = (outstanding == 0) | ((outstanding == 1) & self.owr_resp)
        m.d.comb += [
            self.owr_valid.eq(col_write | fl["write"]),
            self.owr_addr.eq(Mux(fl["active"], fl["addr"], waddr)),
            self.finish.eq(busy & ((wrote_last & ~tells) | (last_col & ~stream & ~post["flush"])
                                   | (waiting & settled))),
        ]
        with m.If(last_col):
            m.d.sync += feeding.eq(0)
        with m.If(wrote_last & tells):
            m.d.sync += waiting.eq(1)
        with m.If(self.finish):
            m.d.sync += [busy.eq(0), feeding.eq(0), waiting.eq(0)]
        return m

    def _flush(self, m, post, begin, transposed):
        """The flush of the packer: plane by plane (transposed: group by group, transposer loads
        first), one write per cycle. Returns {write, addr, last}."""
        cfg = self.config
        R, C, W, Bb = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width, cfg.dram_bytes_per_cycle
        wpb, parts, Q = self.wpb, self.parts, self.q
        slots = max(1, R * W // cfg.bus_bits)
        nw = Mux(transposed, C, R)
        gg = Signal(range(max(R, C) + 1))
        m.d.comb += gg.eq(Mux(self.mode_group < nw, self.mode_group, nw))
        step = Signal(range(wpb + 1))  # words per write (W < B): min(gg, B / W)
        m.d.comb += step.eq(Mux(gg < wpb, gg, wpb) if wpb > 1 else 1)
        step_log = Signal(RUN_BITS)
        for k in range(_log2(wpb) + 1):
            with m.If(step == 1 << k):
                m.d.comb += step_log.eq(k)

        active = Signal()  # from the cycle after the packed POST's last column to its last write
        plane, w, part, in_run = Signal(3), Signal(range(max(R, C) + 1)), Signal(range(parts)), Signal.like(gg)
        loading, slot = Signal(), Signal(range(slots))
        plane_base, run_base, waddr = Signal(32), Signal(32), Signal(32)
        writing = active & ~loading
        taken = writing & self.owr_ready
        word_end = part == parts - 1
        next_w = w + step
        plane_end = word_end & (next_w == nw)
        last = taken & plane_end & (plane == self.mode_obits - 1)

        with m.If(begin):  # the packed POST's last column shifts in now: flush from the next cycle
            m.d.sync += [active.eq(1), plane.eq(0), w.eq(0), part.eq(0), in_run.eq(0), loading.eq(transposed),
                         slot.eq(0), plane_base.eq(post["dram"]), run_base.eq(post["dram"]), waddr.eq(post["dram"])]
        with m.If(active & loading):
            m.d.sync += slot.eq(slot + 1)
            with m.If(slot == slots - 1):
                m.d.sync += loading.eq(0)
        with m.If(taken):
            with m.If(~word_end):
                m.d.sync += [part.eq(part + 1), waddr.eq(waddr + Bb)]
            with m.Elif(plane_end):
                nb = plane_base + self.mode_pitch
                m.d.sync += [plane.eq(plane + 1), w.eq(0), part.eq(0), in_run.eq(0), plane_base.eq(nb),
                             run_base.eq(nb), waddr.eq(nb), loading.eq(transposed), slot.eq(0)]
            with m.Else():
                m.d.sync += [w.eq(next_w), part.eq(0)]
                with m.If(transposed & ((next_w % Q) == 0)):
                    m.d.sync += [loading.eq(1), slot.eq(0)]
                with m.If(in_run + step == gg):
                    nr = run_base + self.mode_gstride
                    m.d.sync += [in_run.eq(0), run_base.eq(nr), waddr.eq(nr)]
                with m.Else():
                    m.d.sync += [in_run.eq(in_run + step), waddr.eq(waddr + (Bb if parts > 1 else step * (W // 8)))]
        with m.If(last):
            m.d.sync += active.eq(0)

        # The packer's read port: transposer loads (group w // Q, slot) or the words written.
        group = (w // Q) if self.groups > 1 else 0
        with m.If(loading):
            if parts > 1:
                m.d.comb += [self.rd_word.eq(group * R + slot // parts), self.rd_part.eq(slot % parts)]
            else:
                m.d.comb += self.rd_word.eq(group * R + slot * wpb)
            m.d.comb += [self.pk_tload.eq(active), self.rd_run.eq((1 << RUN_BITS) - 1)]
        with m.Else():
            m.d.comb += [self.rd_word.eq(w), self.rd_part.eq(part), self.rd_run.eq(step_log),
                         self.rd_transposed.eq(transposed)]
        offset = waddr[:max(1, _log2(Bb))] if Bb > 1 else 0
        chunk = Signal(range(Bb + 1))  # bytes per write
        m.d.comb += chunk.eq(Bb if parts > 1 or wpb == 1 else step * (W // 8))
        m.d.comb += [self.rd_plane.eq(plane), self.pk_clear.eq(last),
                     self.pk_strb.eq(Cat(*[(x >= offset) & (x < offset + chunk) for x in range(Bb)]))]
        return {"active": active, "write": writing, "addr": waddr, "last": last}
