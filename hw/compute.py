"""COMPUTE stage: GEMM on the PE array, POST into OBUF, SYNC, VEC on the vector unit."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import GEMM_PIPELINE_CYCLES, POST_PIPELINE_CYCLES, SYNC_CYCLES, AccelConfig
from bebert.isa import INSTR_BITS, Op

from .bitserial_accumulator import SHIFT_BITS, BitserialAccumulator
from .decoder import field
from .issue import StageIssuer
from .load_dma import _abits
from .popcount_array import PopcountArray
from .post import PostUnit
from .vector_unit import VectorUnit

class ComputeStage(wiring.Component):
    """Executes GEMM, POST and SYNC from the head of the compute queue.

    Tokens: pop_prev waits on l2c, pop_next on s2c, push_prev sends c2l, push_next c2s.
    Issued in cycle t, an instruction runs for D cycles, t+1 .. t+D:

    - GEMM (D = bits*k + 2): in cycle t+1+i (i = p*k + j) it presents ABUF entry
      a + p*stride + j and WBUF entry w + j; the popcount array registers the dots at the end
      of t+2+i and the accumulators take them at the end of t+3+i (the last at t+D).
      `mode` picks XNOR or AND dots (the same popcounts, a mux after them); the term is
      shifted by p + wshift and subtracted when exactly one of (p is the signed top plane,
      wneg) holds. In XNOR mode wneg = wshift = 0 (the decoder refuses anything else).
    - POST (D = pe_rows + 2): PBUF entry p is read in t+1; row r goes into the post unit in
      t+2+r and OBUF entry o+r is written at the end of t+3+r (the last at t+D).
    - SYNC (D = 1): moves tokens only.
    - VEC: starts the vector unit in t (`hw/vector_unit.py`) and holds the stage until it
      has ended: the unit is busy t+1 .. X, the instruction's last cycle is X+1
      (D = `bebert.hw.vector_unit.cycles(...)` at the nominal memory). The unit's DRAM port
      is passed through (`vrd_*`, `vwr_*`); `vec_fault` is its fault flag.
    """

    def __init__(self, config: AccelConfig):
        if (GEMM_PIPELINE_CYCLES, POST_PIPELINE_CYCLES, SYNC_CYCLES) != (2, 2, 1):
            raise ValueError("ComputeStage implements GEMM and POST pipelines of 2 cycles and a SYNC "
                             "of 1; bebert/config.py says otherwise")
        self.config = config
        eb = config.entry_bits
        super().__init__({
            "head_valid": In(1), "head_word": In(INSTR_BITS), "head_pop": Out(1),
            "l2c_ok": In(1), "s2c_ok": In(1),
            "l2c_dec": Out(1), "s2c_dec": Out(1), "c2l_inc": Out(1), "c2s_inc": Out(1),
            "busy": Out(1),
            "abuf_r_en": Out(1), "abuf_r_addr": Out(_abits(config, "abuf")), "abuf_r_data": In(eb["abuf"]),
            "wbuf_r_en": Out(1), "wbuf_r_addr": Out(_abits(config, "wbuf")), "wbuf_r_data": In(eb["wbuf"]),
            "pbuf_r_en": Out(1), "pbuf_r_addr": Out(_abits(config, "pbuf")), "pbuf_r_data": In(eb["pbuf"]),
            "obuf_w_en": Out(1), "obuf_w_addr": Out(_abits(config, "obuf")), "obuf_w_data": Out(eb["obuf"]),
            "vec_fault": Out(1),
            "vrd_req_valid": Out(1), "vrd_req_ready": In(1), "vrd_req_addr": Out(32), "vrd_req_len": Out(32),
            "vrd_data_valid": In(1), "vrd_data": In(config.bus_bits),
            "vwr_valid": Out(1), "vwr_ready": In(1), "vwr_addr": Out(32), "vwr_data": Out(config.bus_bits),
            "vwr_strb": Out(config.bus_bits // 8), "vwr_resp_valid": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
        m.submodules.issuer = iss = StageIssuer()
        m.submodules.popcount = pop = PopcountArray(R, C, W)
        m.submodules.accumulator = accu = BitserialAccumulator(R, C, W.bit_length() + 1)
        m.submodules.post = post = PostUnit(C, len(self.obuf_w_addr))
        m.submodules.vector = vec = VectorUnit(cfg)
        hw = self.head_word
        opcode = hw[0:8]

        duration = Signal(24)
        with m.Switch(opcode):
            with m.Case(Op.GEMM):
                m.d.comb += duration.eq(field(hw, Op.GEMM, "bits") * field(hw, Op.GEMM, "k")
                                        + GEMM_PIPELINE_CYCLES)
            with m.Case(Op.POST):
                m.d.comb += duration.eq(R + POST_PIPELINE_CYCLES)
            with m.Default():
                m.d.comb += duration.eq(SYNC_CYCLES)
        m.d.comb += [
            iss.head_valid.eq(self.head_valid), iss.head_flags.eq(hw[8:12]), iss.duration.eq(duration),
            iss.pop_prev_ok.eq(self.l2c_ok), iss.pop_next_ok.eq(self.s2c_ok), iss.hold.eq(vec.busy),
            self.head_pop.eq(iss.issue), self.busy.eq(iss.busy),
            self.l2c_dec.eq(iss.pop_prev), self.s2c_dec.eq(iss.pop_next),
            self.c2l_inc.eq(iss.push_prev), self.c2s_inc.eq(iss.push_next),
        ]

        # -- VEC: the vector unit, its own DRAM port --------------------------------------
        m.d.comb += [
            vec.start.eq(iss.issue & (opcode == Op.VEC)), vec.word.eq(hw), self.vec_fault.eq(vec.fault),
            self.vrd_req_valid.eq(vec.rd_req_valid), vec.rd_req_ready.eq(self.vrd_req_ready),
            self.vrd_req_addr.eq(vec.rd_req_addr), self.vrd_req_len.eq(vec.rd_req_len),
            vec.rd_data_valid.eq(self.vrd_data_valid), vec.rd_data.eq(self.vrd_data),
            self.vwr_valid.eq(vec.wr_valid), vec.wr_ready.eq(self.vwr_ready), self.vwr_addr.eq(vec.wr_addr),
            self.vwr_data.eq(vec.wr_data), self.vwr_strb.eq(vec.wr_strb), vec.wr_resp_valid.eq(self.vwr_resp_valid),
        ]

        # -- GEMM sequencer: one (plane, word) per cycle ------------------------------------
        g_run = Signal()
        g_base = Signal(24)  # a + p*stride
        g_w = Signal(24)
        g_j, g_k = Signal(16), Signal(16)
        g_p, g_bits = Signal(4), Signal(4)
        g_stride = Signal(16)
        g_signed, g_init = Signal(), Signal()
        g_mode, g_wneg, g_wshift = Signal(), Signal(), Signal(3)
        with m.If(iss.issue & (opcode == Op.GEMM)):
            m.d.sync += [g_run.eq(1), g_base.eq(field(hw, Op.GEMM, "a")), g_w.eq(field(hw, Op.GEMM, "w")),
                         g_j.eq(0), g_k.eq(field(hw, Op.GEMM, "k")), g_p.eq(0),
                         g_bits.eq(field(hw, Op.GEMM, "bits")), g_stride.eq(field(hw, Op.GEMM, "stride")),
                         g_signed.eq(field(hw, Op.GEMM, "signed")), g_init.eq(field(hw, Op.GEMM, "init")),
                         g_mode.eq(field(hw, Op.GEMM, "mode")), g_wneg.eq(field(hw, Op.GEMM, "wneg")),
                         g_wshift.eq(field(hw, Op.GEMM, "wshift"))]
        last_word = g_j == g_k - 1
        with m.If(g_run):
            with m.If(last_word):
                m.d.sync += [g_j.eq(0), g_p.eq(g_p + 1), g_base.eq(g_base + g_stride)]
                with m.If(g_p == g_bits - 1):
                    m.d.sync += g_run.eq(0)
            with m.Else():
                m.d.sync += g_j.eq(g_j + 1)
        m.d.comb += [self.abuf_r_en.eq(g_run), self.abuf_r_addr.eq(g_base + g_j),
                     self.wbuf_r_en.eq(g_run), self.wbuf_r_addr.eq(g_w + g_j)]

        # Control travels beside the data: address cycle -> popcount cycle -> accumulate cycle.
        s1_valid, s1_clear, s1_negate, s1_mode = Signal(), Signal(), Signal(), Signal()
        s2_valid, s2_clear, s2_negate = Signal(), Signal(), Signal()
        s1_shift, s2_shift = Signal(SHIFT_BITS), Signal(SHIFT_BITS)
        m.d.sync += [
            s1_valid.eq(g_run), s1_clear.eq(g_init & (g_p == 0) & (g_j == 0)),
            s1_negate.eq((g_signed & (g_p == g_bits - 1)) ^ g_wneg), s1_shift.eq(g_p + g_wshift),
            s1_mode.eq(g_mode),
            s2_valid.eq(s1_valid), s2_clear.eq(s1_clear), s2_negate.eq(s1_negate), s2_shift.eq(s1_shift),
        ]
        m.d.comb += [
            pop.en.eq(s1_valid), pop.a.eq(self.abuf_r_data), pop.s.eq(self.wbuf_r_data),
            pop.and_mode.eq(s1_mode),
            accu.en.eq(s2_valid), accu.clear.eq(s2_clear), accu.negate.eq(s2_negate),
            accu.shift.eq(s2_shift), accu.dot.eq(pop.dot),
        ]

        # -- POST sequencer ----------------------------------------------------------------
        p_wait, p_feed = Signal(), Signal()
        p_row = Signal(range(max(R, 2)))
        p_addr = Signal(24)
        p_o = Signal(24)
        p_shift, p_obits, p_osigned = Signal(6), Signal(6), Signal()
        with m.If(iss.issue & (opcode == Op.POST)):
            m.d.sync += [p_wait.eq(1), p_addr.eq(field(hw, Op.POST, "p")), p_o.eq(field(hw, Op.POST, "o")),
                         p_shift.eq(field(hw, Op.POST, "shift")), p_obits.eq(field(hw, Op.POST, "obits")),
                         p_osigned.eq(field(hw, Op.POST, "osigned"))]
        with m.If(p_wait):
            m.d.sync += [p_wait.eq(0), p_feed.eq(1), p_row.eq(0)]
        with m.If(p_feed):
            m.d.sync += p_row.eq(p_row + 1)
            with m.If(p_row == R - 1):
                m.d.sync += p_feed.eq(0)
        row = accu.acc[p_row] if R > 1 else accu.acc[0]
        m.d.comb += [
            self.pbuf_r_en.eq(p_wait), self.pbuf_r_addr.eq(p_addr),
            post.valid.eq(p_feed), post.acc.eq(row), post.params.eq(self.pbuf_r_data),
            post.shift.eq(p_shift), post.obits.eq(p_obits), post.osigned.eq(p_osigned),
            post.addr.eq(p_o + p_row),
            self.obuf_w_en.eq(post.w_en), self.obuf_w_addr.eq(post.w_addr), self.obuf_w_data.eq(post.w_data),
        ]
        return m
