"""The tile engine's writer: stream columns and packed row-words over the `vwr_*` port.

Columns come from the tile engine in order (tile by tile, column by column). In a cycle with
`valid` and `accept` the writer takes one (`accept` needs the writer idle and the port
ready): it shifts the column's codes into the row-word `Packer` and, with a stream output,
writes the column's T e bytes (e = 1 << `eo`; 8-byte elements sign- or zero-extend the
32-bit results) at out_base + tile * pitch + col * T e: `ws` = max(1, T e / B) single-beat
writes in that cycle and the next ones (a column narrower than the bus is one write, its
bytes repeated across the beat under the strobes). When the column completes a packed word
(W columns, or the row's last) the words are written next: for each plane, the tile's T
row-words in `bpp` = max(1, T W / 8B) beats at the packed layout's address of their first
row (`bebert.layout.row_word_addr`), then the packer is cleared. So a column taken in cycle
a keeps the writer busy until a + max(ws, 1) + (flush: planes * bpp) - 1.

Rows past `rows` are never written (byte strobes off; the beats are still sent). Every write
is answered (`resp_valid`, in order); `idle` once nothing is left to write and every write
has been answered.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig

from ..packer import Packer

PLANES = 8


def WritePort(bus_bits: int) -> wiring.Signature:
    """The DRAM write port (`hw/ports.py write_port`)."""
    from ..ports import write_port
    return write_port(bus_bits)


class WriterConfig(wiring.Signature):
    """The outputs of a VEC: the stream (`stream`, `eo`, `osigned`, `base`, `pitch`) and the
    packed planes (`planes`, 0 = none; `pbase`, `ppitch`, `gstride`, `lg_group`, `wstep`),
    `rows`, `tiles`."""

    def __init__(self):
        super().__init__({"stream": Out(1), "eo": Out(2), "osigned": Out(1), "base": Out(32), "pitch": Out(32),
                          "planes": Out(4), "pbase": Out(32), "ppitch": Out(32), "gstride": Out(32),
                          "lg_group": Out(5), "wstep": Out(32), "rows": Out(16), "tiles": Out(16)})


class Writer(wiring.Component):
    def __init__(self, config: AccelConfig):
        self.config = config
        self.T, self.B, self.W = config.vec_lanes, config.dram_bytes_per_cycle, config.xnor_width
        T, B = self.T, self.B
        super().__init__({
            "start": In(1), "cfg": In(WriterConfig()),
            "valid": In(1), "accept": Out(1), "col": In(16), "tile": In(16), "last": In(1),
            "ys": In(32 * T), "code": In(8 * T),
            "port": Out(WritePort(8 * B)), "idle": Out(1),
        })

    @staticmethod
    def beats_per_plane(config: AccelConfig) -> int:
        return max(1, config.vec_lanes * config.xnor_width // (8 * config.dram_bytes_per_cycle))

    def elaborate(self, platform):
        m = Module()
        T, B, W, cfg, p = self.T, self.B, self.W, self.cfg, self.port
        m.submodules.packer = pk = Packer(T, PLANES, W, 8 * B)        # the shared row-word packer (hw/packer.py)
        lgB = B.bit_length() - 1
        # -- state
        sleft = Signal(range(8 * T // B + 2))           # stream beats still to write of the taken column
        sbeat = Signal(range(8 * T // B + 2))
        fl = Signal()                                   # flushing packed words
        flp, flk = Signal(4), Signal(range(self.beats_per_plane(self.config) + 1))
        held = Signal(64 * T)                           # the taken column's stream bytes
        rows_tile = Signal(range(T + 1))                # valid rows of the taken column's tile
        caddr, tbase = Signal(32), Signal(32)           # stream: the next column's address, its tile's
        taddr = Signal(32)                              # the taken column's address
        outstanding = Signal(16)
        busy = (sleft != 0) | fl
        m.d.comb += self.accept.eq(self.valid & ~busy & p.ready)
        take = self.accept
        # -- the column's bytes (T lanes of e bytes) from the lanes' 32-bit results
        colbytes = Signal(64 * T)
        ext = [Mux(self.cfg.osigned & self.ys[32 * i + 31], 0xFFFFFFFF, 0) for i in range(T)]
        with m.Switch(cfg.eo):
            for eo in range(4):
                e = 1 << eo
                with m.Case(eo):
                    m.d.comb += colbytes[:8 * e * T].eq(Cat(*[Cat(self.ys[32 * i:32 * i + min(32, 8 * e)],
                                                                  ext[i] if e == 8 else Cat())
                                                              for i in range(T)]))
        nrows = Signal(range(T + 1))
        m.d.comb += nrows.eq(Mux(self.tile == cfg.tiles - 1, cfg.rows - (self.tile << (T.bit_length() - 1)), T))
        # -- the write port: stream beat, or flush beat
        sdata, sstrb, saddr = self._stream_beat(m, take, colbytes, held, sbeat, Mux(take, caddr, taddr), rows_tile,
                                                nrows)
        faddr, fdata, fstrb = self._flush_beat(m, pk, flp, flk, rows_tile)
        sending_stream = (take & cfg.stream) | (sleft != 0)
        m.d.comb += [p.valid.eq(sending_stream | fl), p.addr.eq(Mux(sending_stream, saddr, faddr)),
                     p.data.eq(Mux(sending_stream, sdata, fdata)), p.strb.eq(Mux(sending_stream, sstrb, fstrb))]
        sent = p.valid & p.ready
        # -- taking a column
        ws = Mux(T << cfg.eo >= B, (T << cfg.eo) >> lgB, 1)
        flush = (cfg.planes != 0) & (self.last | (self.col[:W.bit_length() - 1] == W - 1))
        pend_flush = Signal()
        self._last_flush = Signal()                     # the word being flushed is its row's last
        m.d.comb += [pk.shift.eq(take), pk.mask.eq(Cat(*[i < nrows for i in range(T)])), pk.rd_transposed.eq(0)]
        for i in range(T):
            m.d.comb += pk.codes[i].eq(self.code[8 * i:8 * i + PLANES])
        with m.If(take):
            m.d.sync += [held.eq(colbytes), rows_tile.eq(nrows), pend_flush.eq(flush), self._last_flush.eq(self.last),
                         taddr.eq(caddr)]
            with m.If(cfg.stream):
                m.d.sync += [sleft.eq(ws - 1), sbeat.eq(1)]
                with m.If(self.last):
                    m.d.sync += [tbase.eq(tbase + cfg.pitch), caddr.eq(tbase + cfg.pitch)]
                with m.Else():
                    m.d.sync += caddr.eq(caddr + (T << cfg.eo))
            with m.If(~cfg.stream & flush):
                m.d.sync += [fl.eq(1), flp.eq(0), flk.eq(0)]
        with m.Elif((sleft != 0) & sent):
            m.d.sync += [sleft.eq(sleft - 1), sbeat.eq(sbeat + 1)]
            with m.If((sleft == 1) & pend_flush):
                m.d.sync += [fl.eq(1), flp.eq(0), flk.eq(0)]
        with m.If(take & cfg.stream & flush & (ws == 1)):
            m.d.sync += [fl.eq(1), flp.eq(0), flk.eq(0)]
        self._flush_advance(m, pk, fl, flp, flk, sent & ~sending_stream)
        with m.If(self.start):
            m.d.sync += [tbase.eq(cfg.base), caddr.eq(cfg.base), sleft.eq(0), fl.eq(0)]
        m.d.sync += outstanding.eq(outstanding + sent - p.resp_valid)
        m.d.comb += self.idle.eq(~busy & (outstanding == 0) & ~(p.valid))
        return m

    def _stream_beat(self, m, take, colbytes, held, sbeat, caddr, rows_tile, nrows):
        """Beat `sbeat` of the column (beat 0 from the lanes directly, in the taking cycle)."""
        T, B, cfg = self.T, self.B, self.cfg
        src = Mux(take, colbytes, held)
        k = Mux(take, 0, sbeat)
        nb = 8 * T // B if 8 * T >= B else 1
        data = Signal(8 * B, name="sdata")
        strb = Signal(B, name="sstrb")
        addr = Signal(32, name="saddr")
        rows = Mux(take, nrows, rows_tile)
        # per byte of the column: its lane is byte >> eo
        lane_ok = Signal(8 * T, name="byte_ok")
        with m.Switch(cfg.eo):
            for eo in range(4):
                with m.Case(eo):
                    m.d.comb += lane_ok.eq(Cat(*[(i >> eo) < rows for i in range(8 * T)]))
        wide = (T << cfg.eo) >= B
        with m.If(wide):
            with m.Switch(k):
                for j in range(nb):
                    with m.Case(j):
                        m.d.comb += [data.eq(src.word_select(j, 8 * B)) if 64 * T >= 8 * B * (j + 1) else data.eq(0),
                                     strb.eq(lane_ok[j * B:(j + 1) * B] if 8 * T >= B * (j + 1) else 0)]
            m.d.comb += addr.eq(caddr + (k << (B.bit_length() - 1)))
        with m.Else():                  # the column is a part of one beat: repeat it, strobe its place
            off = caddr[:B.bit_length() - 1]
            with m.Switch(cfg.eo):
                for eo in range(4):
                    cb = T << eo
                    if cb >= B:
                        continue
                    with m.Case(eo):
                        m.d.comb += data.eq(Cat(*[src[:8 * cb]] * (B // cb)))
                        for s in range(B // cb):
                            with m.If(off == s * cb):
                                m.d.comb += strb.eq(lane_ok[:cb] << (s * cb))
            m.d.comb += addr.eq(caddr & ~(B - 1))
        return data, strb, addr

    def _flush_beat(self, m, pk, flp, flk, rows_tile):
        """The packed beat (plane flp, beat flk) and its address, strobes."""
        T, B, W, cfg = self.T, self.B, self.W, self.cfg
        bus = 8 * B
        self.fl_addr_parts = parts = _FlushAddr(m, self, flp, flk)
        m.d.comb += [pk.rd_plane.eq(flp)]
        if W >= bus:
            per = W // bus
            m.d.comb += [pk.rd_word.eq(flk // per), pk.rd_part.eq(flk % per)]
            strb = Mux((flk // per) < rows_tile, (1 << B) - 1, 0)
        else:
            wpb = bus // W
            n = min(T, wpb)
            m.d.comb += [pk.rd_word.eq(flk * wpb if T >= wpb else 0), pk.rd_run.eq(n.bit_length() - 1)]
            wb = W // 8
            if T >= wpb:
                strb = Cat(*[Mux(flk * wpb + q < rows_tile, (1 << wb) - 1, 0)[:wb] for q in range(wpb)])
            else:
                off = parts.addr[:B.bit_length() - 1]
                okr = Cat(*[Mux(q < rows_tile, (1 << wb) - 1, 0)[:wb] for q in range(T)])
                strb = Signal(B, name="fstrb_n")
                for s in range(B // (T * wb)):
                    with m.If(off == s * T * wb):
                        m.d.comb += strb.eq(okr << (s * T * wb))
        return parts.addr & ~(B - 1), pk.rd_data, strb

    def _flush_advance(self, m, pk, fl, flp, flk, sent):
        """Next flush beat; after the last, clear the packer and move on to the next word / tile."""
        bpp = self.beats_per_plane(self.config)
        planes = self.cfg.planes
        with m.If(fl & sent):
            with m.If(flk == bpp - 1):
                m.d.sync += [flk.eq(0), flp.eq(flp + 1)]
                with m.If(flp == planes - 1):
                    m.d.sync += fl.eq(0)
                    m.d.comb += pk.clear.eq(1)
                    self.fl_addr_parts.word_done(m)
            with m.Else():
                m.d.sync += flk.eq(flk + 1)


class _FlushAddr:
    """Addresses of packed beats: pbase + j wstep (word j of the row) + p ppitch + the row's
    group * gstride + (row % G) W/8 (+ the part of a row-word wider than the bus)."""

    def __init__(self, m, w: Writer, flp, flk):
        T, B, W, cfg = w.T, w.B, w.W, w.cfg
        bus = 8 * B
        self.w, self.m = w, m
        self.jaddr = jaddr = Signal(32, name="jaddr")           # pbase + j wstep
        self.tg, self.to = Signal(32, name="tg"), Signal(32, name="to")   # the tile's first row: group, offset
        # the beat's first row, relative to the tile: rows per beat n
        if W >= bus:
            per = W // bus
            row = flk // per
            part = flk % per
            extra = part * B
        else:
            n = min(T, bus // W)
            row = flk * n
            extra = 0
        grow = Signal(32, name="grow")                            # (to / (W/8)) + row, in rows
        wb = W // 8
        m.d.comb += grow.eq((self.to >> (wb.bit_length() - 1)) + row)
        gidx = grow >> cfg.lg_group
        goff = grow & ((1 << cfg.lg_group) - 1)
        self.addr = Signal(32, name="faddr")
        m.d.comb += self.addr.eq(jaddr + flp * cfg.ppitch + self.tg + gidx * cfg.gstride + (goff << (wb.bit_length() - 1))
                                 + extra)
        with m.If(w.start):
            m.d.sync += [jaddr.eq(cfg.pbase), self.tg.eq(0), self.to.eq(0)]

    def word_done(self, m):
        """After a flush: the next word of the row, or (a row's last word) the next tile."""
        w, cfg = self.w, self.w.cfg
        T, W = w.T, w.W
        wb = W // 8
        with m.If(w._last_flush):
            m.d.sync += self.jaddr.eq(cfg.pbase)
            grow = (self.to >> (wb.bit_length() - 1)) + T
            g = grow >> cfg.lg_group
            m.d.sync += [self.tg.eq(self.tg + g * cfg.gstride),
                         self.to.eq((grow & ((1 << cfg.lg_group) - 1)) << (wb.bit_length() - 1))]
        with m.Else():
            m.d.sync += self.jaddr.eq(self.jaddr + cfg.wstep)
