"""LOAD stage: DRAM -> ABUF / WBUF / PBUF over the read port `rd`; SYNC."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from bebert.config import SYNC_CYCLES, AccelConfig
from bebert.isa import BUF_NAMES, Op

from .buffer import address_bits
from .decoder import field
from .issue import StageIssuer, StageSignature
from .ports import LEN_BITS, buffer_write, read_port

LOAD_BUFS = tuple(BUF_NAMES[b] for b in sorted(BUF_NAMES))  # abuf, wbuf, pbuf: the `buf` field's order


class LoadStage(wiring.Component):
    """Executes LOAD and SYNC from the head of the LOAD queue (`ctl`, `StageSignature`).

    A LOAD of n entries of buffer b issued in cycle t: the read request (`rd`, len = n *
    beats_per_entry(b) beats, at the word's `dram`) is presented from cycle t+1 until the memory
    takes it (`rd.req_ready`): one read outstanding. Beats come with `rd.data_valid` (always
    accepted), beat 0 of an entry being its lowest bits; each entry is written (`abuf` / `wbuf`
    / `pbuf`, `hw/ports.py buffer_write`) at the end of the cycle of its last beat, at entry
    `addr + i` modulo the buffer size. The instruction ends in the first cycle >= t+D,
    D = L + n * beats_per_entry(b), by which every beat has come: with the
    nominal memory (request taken in t+1, beat j in t+1+L+j) that is t+D, the cycle of the last
    beat. A SYNC runs for SYNC_CYCLES and only moves tokens.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"LoadStage needs an AccelConfig, got {type(config).__name__}")
        self.config = config
        members = {"ctl": Out(StageSignature), "rd": Out(read_port(config.bus_bits))}
        for b in LOAD_BUFS:
            members[b] = Out(buffer_write(config.entry_bits[b], address_bits(config, b)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        bus = cfg.bus_bits
        m.submodules.issuer = iss = StageIssuer()
        wiring.connect(m, wiring.flipped(self.ctl), iss.ctl)
        hw = self.ctl.head.word
        head_is_load = hw[0:8] == Op.LOAD

        def per_buf(buf_value, values, width):
            """`values[i]` for the buffer named by `buf_value` (0 for an illegal buf)."""
            res = Signal(width)
            with m.Switch(buf_value):
                for i, v in enumerate(values):
                    with m.Case(i):
                        m.d.comb += res.eq(v)
                with m.Default():
                    m.d.comb += res.eq(0)
            return res

        head_n = field(hw, Op.LOAD, "n")
        head_beats = per_buf(field(hw, Op.LOAD, "buf"),
                             [head_n * cfg.beats_per_entry(b) for b in LOAD_BUFS], LEN_BITS)
        with m.If(head_is_load):
            m.d.comb += iss.duration.eq(cfg.dram_latency_cycles + head_beats)
        with m.Else():
            m.d.comb += iss.duration.eq(SYNC_CYCLES)

        # -- the request: one read outstanding ------------------------------------------------
        loading = Signal()  # the instruction running is a LOAD
        buf = Signal(range(len(LOAD_BUFS)))
        addr = Signal(24)
        nbeats = Signal(LEN_BITS)
        req = Signal()
        with m.If(iss.issue):
            m.d.sync += [loading.eq(head_is_load), buf.eq(field(hw, Op.LOAD, "buf")),
                         self.rd.req_addr.eq(field(hw, Op.LOAD, "dram")), addr.eq(field(hw, Op.LOAD, "addr")),
                         nbeats.eq(head_beats), req.eq(head_is_load)]
        with m.Elif(self.rd.req_ready):
            m.d.sync += req.eq(0)
        m.d.comb += [self.rd.req_valid.eq(req), self.rd.req_len.eq(nbeats)]

        # -- the instruction may end only once its last beat has come (`hold`) ------------------
        got = Signal(LEN_BITS)  # beats received so far
        all_in = Signal()
        beat = Signal()
        m.d.comb += beat.eq(self.rd.data_valid & self.ctl.busy & loading)
        last_beat = beat & (got == nbeats - 1)
        with m.If(iss.issue):
            m.d.sync += [got.eq(0), all_in.eq(0)]
        with m.Elif(beat):
            m.d.sync += got.eq(got + 1)
            with m.If(last_beat):
                m.d.sync += all_in.eq(1)
        m.d.comb += iss.hold.eq(loading & ~(all_in | last_beat))

        # -- beats -> entries: `sub` is the beat within the entry, `ent` the entry --------------
        max_bpe = max(cfg.beats_per_entry(b) for b in LOAD_BUFS)
        sub = Signal(range(max(max_bpe, 2)))
        ent = Signal(24)
        shreg = Signal(max((max_bpe - 1) * bus, 1))
        bpe_m1 = per_buf(buf, [cfg.beats_per_entry(b) - 1 for b in LOAD_BUFS], len(sub))
        entry_done = Signal()
        m.d.comb += entry_done.eq(beat & (sub == bpe_m1))
        with m.If(iss.issue):
            m.d.sync += [sub.eq(0), ent.eq(0)]
        with m.Elif(beat):
            for j in range(max_bpe - 1):  # the last beat goes straight to the buffer
                with m.If(sub == j):
                    m.d.sync += shreg[j * bus:(j + 1) * bus].eq(self.rd.data)
            with m.If(entry_done):
                m.d.sync += [sub.eq(0), ent.eq(ent + 1)]
            with m.Else():
                m.d.sync += sub.eq(sub + 1)

        for i, b in enumerate(LOAD_BUFS):
            nb = cfg.beats_per_entry(b)
            port = getattr(self, b)
            m.d.comb += [port.en.eq(entry_done & (buf == i)), port.addr.eq(addr + ent),
                         port.data.eq(Cat(shreg[:(nb - 1) * bus], self.rd.data) if nb > 1 else self.rd.data)]
        return m
