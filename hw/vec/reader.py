"""The tile engine's stream reader and column assembler.

`StreamReader`: reads the row-tile runs of one or two stream tensors (channels a and b, of
the same shape) over the `vrd_*` port. A run is one tile of a tensor: `beats` bus beats from
the bus-aligned address `base` + tile * `pitch`. `go` starts `ntiles` tiles from the current
one (all of them for REQUANT / ADD / GELU, one at a time for LAYERNORM / SOFTMAX; `restart`
with go goes back to tile 0). Each run is read in bursts of at most `BURST` beats, channel
a's burst then channel b's, strictly alternating, so the beats that come back (in request
order) are routed by replaying the same sequence. A burst is requested only when its
channel's beat FIFO (`depth` beats) has room for it beside the beats in flight: several
requests are outstanding, the port never waits on the reader, and at the nominal memory
(a request per cycle, beat j of a request in r + L + j) the FIFO is never empty once the
first beats are in, as long as depth >= L + 2 BURST + 2.

`ColumnAssembler`: each channel's beats become tile columns of T e bytes (one column = T e / B
beats, or one beat = B / (T e) columns) in a column register; `ready` while both needed
columns are there, until `take`. A beat at a FIFO's head in cycle t is in the column
register in t + 1.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.vector import VEC_BURST


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def ReadPort(bus_bits: int) -> wiring.Signature:
    """The DRAM read port (`hw/ports.py read_port`)."""
    from ..ports import read_port
    return read_port(bus_bits)


class RunConfig(wiring.Signature):
    """The runs: `two` channels, their first tiles' `base_a` / `base_b`, `pitch_a` / `pitch_b`
    between tiles, `beats` per run."""

    def __init__(self):
        super().__init__({"two": Out(1), "base_a": Out(32), "base_b": Out(32), "pitch_a": Out(32),
                          "pitch_b": Out(32), "beats": Out(16)})


class _Sequence:
    """A position in the request sequence: tile, beat offset in the run, channel."""

    def __init__(self, m, name: str, cfg, burst: int):
        self.off, self.chan = Signal(16, name=f"{name}_off"), Signal(name=f"{name}_chan")
        left = cfg.beats - self.off
        self.n = Mux(left < burst, left, burst)[:16]
        self.cfg = cfg

    def advance(self, m):
        """To the next burst; returns whether it ended a tile."""
        cfg = self.cfg
        end_tile = Signal(name="end_tile")
        m.d.comb += end_tile.eq((~cfg.two | self.chan) & (self.off + self.n == cfg.beats))
        with m.If(cfg.two & ~self.chan):
            m.d.sync += self.chan.eq(1)
        with m.Else():
            m.d.sync += [self.chan.eq(0), self.off.eq(Mux(end_tile, 0, self.off + self.n))]
        return end_tile


class StreamReader(wiring.Component):
    BURST = VEC_BURST

    def __init__(self, config: AccelConfig):
        self.config = config
        self.B = config.dram_bytes_per_cycle
        self.depth = _pow2_at_least(config.dram_latency_cycles + 2 * self.BURST + 2)
        bus = 8 * self.B
        super().__init__({
            "go": In(1), "restart": In(1), "ntiles": In(16), "cfg": In(RunConfig()),
            "port": Out(ReadPort(bus)), "idle": Out(1),
            "a_beat": Out(bus), "a_valid": Out(1), "a_pop": In(1),
            "b_beat": Out(bus), "b_valid": Out(1), "b_pop": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, D, cfg, p = self.B, self.depth, self.cfg, self.port
        lgB = B.bit_length() - 1
        qs = []
        for name in ("a", "b"):
            q = fifo.SyncFIFOBuffered(width=8 * B, depth=D)
            m.submodules[f"fifo_{name}"] = q
            m.d.comb += [getattr(self, f"{name}_beat").eq(q.r_data), getattr(self, f"{name}_valid").eq(q.r_rdy),
                         q.r_en.eq(getattr(self, f"{name}_pop"))]
            qs.append(q)
        credit = [Signal(range(D + 1), name=f"credit_{n}", init=D) for n in "ab"]
        tiles_left, tile = Signal(16), Signal(16)
        base_a, base_b = Signal(32), Signal(32)     # the current tile's runs
        req = _Sequence(m, "req", cfg, self.BURST)
        with m.If(self.go):
            m.d.sync += tiles_left.eq(self.ntiles)
            with m.If(self.restart):
                m.d.sync += [tile.eq(0), base_a.eq(cfg.base_a), base_b.eq(cfg.base_b), req.off.eq(0), req.chan.eq(0)]
        cred = Mux(req.chan, credit[1], credit[0])
        m.d.comb += [p.req_valid.eq((tiles_left != 0) & (cred >= req.n)),
                     p.req_addr.eq(Mux(req.chan, base_b, base_a) + (req.off << lgB)), p.req_len.eq(req.n)]
        fire = p.req_valid & p.req_ready
        with m.If(fire & ~self.go):
            with m.If(req.advance(m)):
                m.d.sync += [tiles_left.eq(tiles_left - 1), tile.eq(tile + 1), base_a.eq(base_a + cfg.pitch_a),
                             base_b.eq(base_b + cfg.pitch_b)]
        for i, q in enumerate(qs):
            taken = fire & (req.chan == i)
            popped = getattr(self, f"{'ab'[i]}_pop") & q.r_rdy
            m.d.sync += credit[i].eq(credit[i] - Mux(taken, req.n, 0) + popped)
        # beats back: replay the sequence
        rsp = _Sequence(m, "rsp", cfg, self.BURST)
        got = Signal(16)                            # beats of the current burst so far
        for i, q in enumerate(qs):
            m.d.comb += [q.w_data.eq(p.data), q.w_en.eq(p.data_valid & (rsp.chan == i))]
        with m.If(self.go & self.restart):
            m.d.sync += [rsp.off.eq(0), rsp.chan.eq(0), got.eq(0)]
        with m.Elif(p.data_valid):
            m.d.sync += got.eq(got + 1)
            with m.If(got + 1 == rsp.n):
                m.d.sync += got.eq(0)
                rsp.advance(m)
        outstanding = Signal()
        m.d.comb += outstanding.eq((req.off != rsp.off) | (req.chan != rsp.chan) | (got != 0))
        m.d.comb += self.idle.eq((tiles_left == 0) & ~outstanding)
        return m


class ColumnAssembler(wiring.Component):
    """Columns of T e bytes (e = 1 << `elem`) from the reader's beats, for channels a and b."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.T, self.B = config.vec_lanes, config.dram_bytes_per_cycle
        T, B = self.T, self.B
        super().__init__({
            "start": In(1), "cols": In(16),
            "elem": In(2), "two": In(1), "a_beat": In(8 * B), "a_valid": In(1), "a_pop": Out(1),
            "b_beat": In(8 * B), "b_valid": In(1), "b_pop": Out(1),
            "ready": Out(1), "take": In(1), "col_a": Out(32 * T), "col_b": Out(32 * T),
        })

    def elaborate(self, platform):
        m = Module()
        # a tile's run may end inside a beat (columns narrower than a beat): its last column
        # ends the beat, the next tile's run starts at a fresh one
        n = Signal(16)
        self._tile_end = tile_end = Signal()
        m.d.comb += tile_end.eq(n == self.cols - 1)
        with m.If(self.start):
            m.d.sync += n.eq(0)
        with m.Elif(self.take & self.ready):
            m.d.sync += n.eq(Mux(tile_end, 0, n + 1))
        full = [self._channel(m, name) for name in ("a", "b")]
        m.d.comb += self.ready.eq(full[0] & (full[1] | ~self.two))
        return m

    def _channel(self, m, name: str):
        T, B = self.T, self.B
        beat, valid, pop = (getattr(self, f"{name}_{x}") for x in ("beat", "valid", "pop"))
        col = getattr(self, f"col_{name}")
        take = self.take
        wide = Signal(name=f"{name}_wide")              # T e >= B: a column is T e / B beats
        m.d.comb += wide.eq((T << self.elem) >= B)
        # wide: a register filled part by part (a beat popped with `take` starts the next column)
        reg = Signal(32 * T, name=f"{name}_reg")
        parts = max(1, 4 * T // B)
        fill = Signal(range(parts + 1), name=f"{name}_fill")
        rfull = Signal(name=f"{name}_rfull")
        need = Signal(range(parts + 1), name=f"{name}_need")
        m.d.comb += need.eq(Mux(wide, (T << self.elem) >> (B.bit_length() - 1), 1))
        wpop = wide & valid & (~rfull | take)
        completes = wpop & (fill + 1 == need)
        with m.If(wpop):
            m.d.sync += fill.eq(Mux(completes, 0, fill + 1))
            for k in range(parts):
                with m.If(fill == k):
                    m.d.sync += reg.word_select(k, 8 * B).eq(beat) if 8 * B * (k + 1) <= 32 * T else reg.eq(reg)
        m.d.sync += rfull.eq((rfull & ~take) | completes)
        # narrow: slices of a held beat
        hold = Signal(8 * B, name=f"{name}_hold")
        held = Signal(name=f"{name}_held")
        nslots = max(2, B // T)
        slot = Signal(range(nslots), name=f"{name}_slot")
        last = Signal(name=f"{name}_last")
        m.d.comb += last.eq((((slot + 1) << self.elem) * T >= B) | self._tile_end)
        npop = ~wide & valid & (~held | (take & last))
        with m.If(npop):
            m.d.sync += [hold.eq(beat), held.eq(1), slot.eq(0)]
        with m.Elif(~wide & take & held):
            m.d.sync += slot.eq(slot + 1)
            with m.If(last):
                m.d.sync += held.eq(0)
        m.d.comb += pop.eq(wpop | npop)
        narrow = Signal(32 * T, name=f"{name}_narrow")
        for e in range(3):
            cb = T << e                                  # column bytes
            if cb >= B:
                continue
            with m.If(self.elem == e):
                for sl in range(B // cb):
                    with m.If(slot == sl):
                        m.d.comb += narrow[:8 * cb].eq(hold[8 * cb * sl:8 * cb * (sl + 1)])
        m.d.comb += col.eq(Mux(wide, reg, narrow))
        return Mux(wide, rfull, held)
