"""STORE stage: OBUF -> DRAM over the write port."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS, Op

from .decoder import field
from .issue import StageIssuer
from .load_dma import ADDR_BITS, LEN_BITS, _abits


class StoreDMA(wiring.Component):
    """Executes STORE instructions from the head of the store queue.

    Tokens: `pop_prev` waits on c2s (`c2s_ok`, consumed by `c2s_dec`); `push_prev` sends
    s2c (`s2c_inc`). A STORE of n entries issued in cycle t: the write request
    (`wr_req_*`, len in beats) is presented from cycle t+1 until the memory takes it
    (`wr_req_ready`); from the next cycle the beats follow (`wr_data_valid`, `wr_data`,
    lowest bits of an entry first), each held until the memory takes it (`wr_data_ready`);
    the memory's write response (`wr_resp_valid`, a pulse, always accepted) says the data
    has landed. The instruction ends in the first cycle >= t+D, D = 1 + n *
    beats_per_entry(obuf) + L, by which the response has come: with the nominal memory
    (always ready, response L cycles after the last beat) the beats go out in t+2 ..
    t+1+n*beats and the response comes in t+D. OBUF entry `addr + i` (modulo the buffer
    size) is read one cycle ahead of its first beat, and only when a beat is taken, so
    there is no bubble and a stalled beat stays on `wr_data`.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        super().__init__({
            "head_valid": In(1), "head_word": In(INSTR_BITS), "head_pop": Out(1),
            "c2s_ok": In(1), "c2s_dec": Out(1), "s2c_inc": Out(1), "busy": Out(1),
            "obuf_r_en": Out(1), "obuf_r_addr": Out(_abits(config, "obuf")), "obuf_r_data": In(config.entry_bits["obuf"]),
            "wr_req_valid": Out(1), "wr_req_ready": In(1), "wr_req_addr": Out(ADDR_BITS),
            "wr_req_len": Out(LEN_BITS), "wr_data_valid": Out(1), "wr_data_ready": In(1),
            "wr_data": Out(config.bus_bits), "wr_resp_valid": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        bus = cfg.bus_bits
        bpe = cfg.beats_per_entry("obuf")
        m.submodules.issuer = iss = StageIssuer()
        hw = self.head_word
        head_beats = field(hw, Op.STORE, "n") * bpe
        m.d.comb += [
            iss.head_valid.eq(self.head_valid), iss.head_flags.eq(hw[8:12]),
            iss.duration.eq(1 + head_beats + cfg.dram_latency_cycles),
            iss.pop_prev_ok.eq(self.c2s_ok), iss.pop_next_ok.eq(0),
            self.head_pop.eq(iss.issue), self.c2s_dec.eq(iss.pop_prev),
            self.s2c_inc.eq(iss.push_prev), self.busy.eq(iss.busy),
        ]

        dram = Signal(ADDR_BITS)
        nbeats = Signal(LEN_BITS)
        req = Signal()
        left = Signal(LEN_BITS)  # beats still to send
        raddr = Signal.like(self.obuf_r_addr)  # entry of the beat sent next cycle
        nsub = Signal(range(max(bpe, 2)))  # beat-in-entry of the beat sent next cycle
        sub = Signal(range(max(bpe, 2)))  # beat-in-entry of the beat sent this cycle
        m.d.comb += [self.wr_req_valid.eq(req), self.wr_req_addr.eq(dram), self.wr_req_len.eq(nbeats),
                     self.obuf_r_addr.eq(raddr)]

        advance = Signal()  # a read for next cycle's beat: request taken, or a beat taken
        m.d.comb += self.obuf_r_en.eq(advance)
        with m.If(iss.issue):
            m.d.sync += [dram.eq(field(hw, Op.STORE, "dram")), nbeats.eq(head_beats), req.eq(1),
                         raddr.eq(field(hw, Op.STORE, "addr")), nsub.eq(0)]
        with m.Elif(self.wr_req_ready):
            m.d.sync += req.eq(0)
        with m.If(req):
            with m.If(self.wr_req_ready):
                m.d.sync += left.eq(nbeats)
                m.d.comb += advance.eq(1)
        with m.Elif(left != 0):
            m.d.comb += self.wr_data_valid.eq(1)
            with m.If(self.wr_data_ready):
                m.d.sync += left.eq(left - 1)
                m.d.comb += advance.eq(1)
        m.d.comb += self.wr_data.eq(self.obuf_r_data.word_select(sub, bus) if bpe > 1 else self.obuf_r_data)

        # The instruction may end only once the write response has come (`hold`).
        resp_in = Signal()
        with m.If(iss.issue):
            m.d.sync += resp_in.eq(0)
        with m.Elif(self.wr_resp_valid & iss.busy):
            m.d.sync += resp_in.eq(1)
        m.d.comb += iss.hold.eq(~(resp_in | self.wr_resp_valid))
        with m.If(advance):
            m.d.sync += sub.eq(nsub)
            with m.If(nsub == bpe - 1):
                m.d.sync += [nsub.eq(0), raddr.eq(raddr + 1)]
            with m.Else():
                m.d.sync += nsub.eq(nsub + 1)
        return m
