"""LOAD stage: DRAM -> ABUF / WBUF / PBUF over the read port."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS, Op

from .decoder import field
from .issue import StageIssuer

LOAD_BUFS = ("abuf", "wbuf", "pbuf")
ADDR_BITS = 32
LEN_BITS = 32


def _abits(config: AccelConfig, buf: str) -> int:
    return config.entries(buf).bit_length() - 1  # a power of two (AccelConfig checks)


class LoadDMA(wiring.Component):
    """Executes LOAD instructions from the head of the load queue.

    Tokens: `pop_next` waits on c2l (`c2l_ok`, consumed by `c2l_dec`); `push_next` sends
    l2c (`l2c_inc`). A LOAD of n entries of buffer b issued in cycle t: the read request
    (`rd_req_*`, len = n * beats_per_entry(b) beats) is presented from cycle t+1 until the
    memory takes it (`rd_req_ready`); beats come with `rd_data_valid` (always accepted),
    beat 0 of an entry being its lowest bits; each entry is written (`<buf>_w_*`) at the
    end of the cycle of its last beat, at entry address `addr + i` modulo the buffer size.
    The instruction ends in the first cycle >= t+D, D = L + n * beats_per_entry(b), by
    which every beat has come: with the nominal memory (request taken in t+1, beat j in
    t+1+L+j) that is t+D, the cycle of the last beat.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        members = {
            "head_valid": In(1), "head_word": In(INSTR_BITS), "head_pop": Out(1),
            "c2l_ok": In(1), "c2l_dec": Out(1), "l2c_inc": Out(1), "busy": Out(1),
            "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_addr": Out(ADDR_BITS),
            "rd_req_len": Out(LEN_BITS),
            "rd_data_valid": In(1), "rd_data": In(config.bus_bits),
        }
        for b in LOAD_BUFS:
            members |= {f"{b}_w_en": Out(1), f"{b}_w_addr": Out(_abits(config, b)),
                        f"{b}_w_data": Out(config.entry_bits[b])}
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        bus = cfg.bus_bits
        m.submodules.issuer = iss = StageIssuer()
        hw = self.head_word

        def beats(buf_value, n):
            """n * beats_per_entry(buf) for a LOAD's buf field (a power-of-two multiply)."""
            res = Signal(LEN_BITS)
            with m.Switch(buf_value):
                for i, b in enumerate(LOAD_BUFS):
                    with m.Case(i):
                        m.d.comb += res.eq(n * cfg.beats_per_entry(b))
                with m.Default():  # buf > PBUF is illegal (the decoder rejects it)
                    m.d.comb += res.eq(0)
            return res

        head_beats = beats(field(hw, Op.LOAD, "buf"), field(hw, Op.LOAD, "n"))
        m.d.comb += [
            iss.head_valid.eq(self.head_valid), iss.head_flags.eq(hw[8:12]),
            iss.duration.eq(cfg.dram_latency_cycles + head_beats),
            iss.pop_prev_ok.eq(0), iss.pop_next_ok.eq(self.c2l_ok),
            self.head_pop.eq(iss.issue), self.c2l_dec.eq(iss.pop_next),
            self.l2c_inc.eq(iss.push_next), self.busy.eq(iss.busy),
        ]

        buf = Signal(2)
        dram = Signal(ADDR_BITS)
        addr = Signal(24)
        nbeats = Signal(LEN_BITS)
        req = Signal()
        with m.If(iss.issue):
            m.d.sync += [buf.eq(field(hw, Op.LOAD, "buf")), dram.eq(field(hw, Op.LOAD, "dram")),
                         addr.eq(field(hw, Op.LOAD, "addr")), nbeats.eq(head_beats), req.eq(1)]
        with m.Elif(self.rd_req_ready):
            m.d.sync += req.eq(0)
        m.d.comb += [self.rd_req_valid.eq(req), self.rd_req_addr.eq(dram), self.rd_req_len.eq(nbeats)]

        # The instruction may end only once its last beat has come (`hold`).
        got = Signal(LEN_BITS)  # beats received so far
        all_in = Signal()
        beat = self.rd_data_valid & iss.busy
        last_beat = beat & (got == nbeats - 1)
        with m.If(iss.issue):
            m.d.sync += [got.eq(0), all_in.eq(0)]
        with m.Elif(beat):
            m.d.sync += got.eq(got + 1)
            with m.If(last_beat):
                m.d.sync += all_in.eq(1)
        m.d.comb += iss.hold.eq(~(all_in | last_beat))

        # Assemble beats into entries: `sub` is the beat within the entry, `ent` the entry.
        max_bpe = max(cfg.beats_per_entry(b) for b in LOAD_BUFS)
        sub = Signal(range(max(max_bpe, 2)))
        ent = Signal(24)
        shreg = Signal(max((max_bpe - 1) * bus, 1))
        bpe_m1 = Signal(range(max(max_bpe, 2)))
        with m.Switch(buf):
            for i, b in enumerate(LOAD_BUFS):
                with m.Case(i):
                    m.d.comb += bpe_m1.eq(cfg.beats_per_entry(b) - 1)
            with m.Default():
                m.d.comb += bpe_m1.eq(0)
        entry_done = Signal()
        m.d.comb += entry_done.eq(self.rd_data_valid & (sub == bpe_m1))
        with m.If(iss.issue):
            m.d.sync += [sub.eq(0), ent.eq(0)]
        with m.Elif(self.rd_data_valid):
            if max_bpe > 1:
                for j in range(max_bpe - 1):  # the last beat goes straight to *_w_data
                    with m.If(sub == j):
                        m.d.sync += shreg[j * bus:(j + 1) * bus].eq(self.rd_data)
            with m.If(entry_done):
                m.d.sync += [sub.eq(0), ent.eq(ent + 1)]
            with m.Else():
                m.d.sync += sub.eq(sub + 1)

        for i, b in enumerate(LOAD_BUFS):
            nb = cfg.beats_per_entry(b)
            data = Cat(shreg[:(nb - 1) * bus], self.rd_data) if nb > 1 else self.rd_data
            m.d.comb += [
                getattr(self, f"{b}_w_en").eq(entry_done & (buf == i) & iss.busy),
                getattr(self, f"{b}_w_addr").eq(addr + ent),
                getattr(self, f"{b}_w_data").eq(data),
            ]
        return m
