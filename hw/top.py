"""The accelerator: fetch, three stage queues, token counters, LOAD / COMPUTE / STORE, buffers."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS

from .buffer import Buffer
from .compute import ComputeStage
from .fetch import ERROR_CODE_BITS, IMEM_ADDR_BITS, ErrorCode, FetchUnit
from .load_dma import ADDR_BITS, LEN_BITS, LoadDMA
from .store_dma import StoreDMA
from .token import TokenCounters

CYCLE_BITS = 32


class Accelerator(wiring.Component):
    """The whole machine of docs/ARCHITECTURE.md, parameterised by an `AccelConfig`.

    Control: a `start` pulse (sampled at a clock edge while not `busy`) clears `done`,
    `error`, `cycles` and the token counters and begins fetching at instruction 0 in the
    next cycle (cycle 0). `busy` is high from cycle 0 to the finishing cycle T, the first
    cycle in which fetch has stopped, every queue is empty and every stage idle. At the end
    of T `done` rises (and stays high until the next `start`) and `cycles` holds T + 1.
    `error` is high once fetch has stopped on a word it cannot run (it then stops fetching
    and the machine drains and finishes normally); `error_code` says why (`ErrorCode`:
    ILLEGAL, or UNSUPPORTED for a legal VEC kernel this RTL's vector unit does not run)
    and `error_pc` which word. A VEC whose descriptor the vector unit cannot process sets
    `error` with VEC_FAULT (`error_pc` 0: the compute stage does not know pcs); fetch goes
    on and the machine finishes normally, DRAM unspecified. The vector unit has its own DRAM
    port (`vrd_*` reads as the LOAD port, `vwr_*` single-beat writes with byte strobes). The instruction port (`imem_valid` qualifies the word) and the
    two DRAM ports (ready/valid requests and write beats) follow the "External interface"
    of the architecture document: at the nominal latency and bandwidth of the config the
    cycle count is the simulator's; a slower memory stretches it and changes nothing else.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"Accelerator needs an AccelConfig, got {type(config).__name__}")
        # AccelConfig has already refused what the RTL cannot build (e.g. buffer entry
        # counts that are not powers of two).
        self.config = config
        bus = config.bus_bits
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "error_code": Out(ERROR_CODE_BITS), "error_pc": Out(IMEM_ADDR_BITS), "cycles": Out(CYCLE_BITS),
            "imem_addr": Out(IMEM_ADDR_BITS), "imem_data": In(INSTR_BITS), "imem_valid": In(1),
            "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_addr": Out(ADDR_BITS),
            "rd_req_len": Out(LEN_BITS), "rd_data_valid": In(1), "rd_data": In(bus),
            "wr_req_valid": Out(1), "wr_req_ready": In(1), "wr_req_addr": Out(ADDR_BITS),
            "wr_req_len": Out(LEN_BITS), "wr_data_valid": Out(1), "wr_data_ready": In(1), "wr_data": Out(bus),
            "wr_resp_valid": In(1),
            "vrd_req_valid": Out(1), "vrd_req_ready": In(1), "vrd_req_addr": Out(ADDR_BITS),
            "vrd_req_len": Out(LEN_BITS), "vrd_data_valid": In(1), "vrd_data": In(bus),
            "vwr_valid": Out(1), "vwr_ready": In(1), "vwr_addr": Out(ADDR_BITS), "vwr_data": Out(bus),
            "vwr_strb": Out(bus // 8), "vwr_resp_valid": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.fetch = fetch = FetchUnit()
        m.submodules.tokens = tok = TokenCounters()
        m.submodules.load = load = LoadDMA(cfg)
        m.submodules.compute = comp = ComputeStage(cfg)
        m.submodules.store = store = StoreDMA(cfg)
        queues = {}
        for name in ("load", "compute", "store"):
            q = queues[name] = SyncFIFO(width=INSTR_BITS, depth=cfg.queue_depth)
            m.submodules[f"{name}_queue"] = q
        bufs = {}
        for b in ("abuf", "wbuf", "pbuf", "obuf"):
            bufs[b] = m.submodules[b] = Buffer(cfg.entry_bits[b], cfg.entries(b))

        # Control.
        start = Signal()
        finish = Signal()
        m.d.comb += start.eq(self.start & ~self.busy)
        m.d.comb += finish.eq(self.busy & fetch.stopped
                              & ~queues["load"].r_rdy & ~queues["compute"].r_rdy & ~queues["store"].r_rdy
                              & ~load.busy & ~comp.busy & ~store.busy)
        with m.If(start):
            m.d.sync += [self.busy.eq(1), self.done.eq(0), self.cycles.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(finish):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        vec_fault = Signal()  # sticky: a VEC whose descriptor the vector unit could not process
        with m.If(start):
            m.d.sync += vec_fault.eq(0)
        with m.Elif(comp.vec_fault):
            m.d.sync += vec_fault.eq(1)
        m.d.comb += [fetch.start.eq(start), tok.clear.eq(start), self.error.eq(fetch.error | vec_fault),
                     self.error_code.eq(Mux(fetch.error, fetch.error_code,
                                            Mux(vec_fault, ErrorCode.VEC_FAULT, ErrorCode.NONE))),
                     self.error_pc.eq(Mux(fetch.error, fetch.error_pc, 0))]

        # Fetch -> queues -> stages.
        m.d.comb += [self.imem_addr.eq(fetch.imem_addr), fetch.imem_data.eq(self.imem_data),
                     fetch.imem_valid.eq(self.imem_valid)]
        for name, stage in (("load", load), ("compute", comp), ("store", store)):
            q = queues[name]
            m.d.comb += [q.w_data.eq(fetch.q_w_data), q.w_en.eq(getattr(fetch, f"{name}_w_en")),
                         getattr(fetch, f"{name}_w_rdy").eq(q.w_rdy),
                         stage.head_valid.eq(q.r_rdy), stage.head_word.eq(q.r_data), q.r_en.eq(stage.head_pop)]

        # Tokens.
        m.d.comb += [
            load.c2l_ok.eq(tok.c2l_avail), tok.c2l_dec.eq(load.c2l_dec), tok.l2c_inc.eq(load.l2c_inc),
            comp.l2c_ok.eq(tok.l2c_avail), comp.s2c_ok.eq(tok.s2c_avail),
            tok.l2c_dec.eq(comp.l2c_dec), tok.s2c_dec.eq(comp.s2c_dec),
            tok.c2l_inc.eq(comp.c2l_inc), tok.c2s_inc.eq(comp.c2s_inc),
            store.c2s_ok.eq(tok.c2s_avail), tok.c2s_dec.eq(store.c2s_dec), tok.s2c_inc.eq(store.s2c_inc),
        ]

        # DRAM ports.
        m.d.comb += [
            self.rd_req_valid.eq(load.rd_req_valid), load.rd_req_ready.eq(self.rd_req_ready),
            self.rd_req_addr.eq(load.rd_req_addr), self.rd_req_len.eq(load.rd_req_len),
            load.rd_data_valid.eq(self.rd_data_valid), load.rd_data.eq(self.rd_data),
            self.wr_req_valid.eq(store.wr_req_valid), store.wr_req_ready.eq(self.wr_req_ready),
            self.wr_req_addr.eq(store.wr_req_addr), self.wr_req_len.eq(store.wr_req_len),
            self.wr_data_valid.eq(store.wr_data_valid), store.wr_data_ready.eq(self.wr_data_ready),
            self.wr_data.eq(store.wr_data), store.wr_resp_valid.eq(self.wr_resp_valid),
            self.vrd_req_valid.eq(comp.vrd_req_valid), comp.vrd_req_ready.eq(self.vrd_req_ready),
            self.vrd_req_addr.eq(comp.vrd_req_addr), self.vrd_req_len.eq(comp.vrd_req_len),
            comp.vrd_data_valid.eq(self.vrd_data_valid), comp.vrd_data.eq(self.vrd_data),
            self.vwr_valid.eq(comp.vwr_valid), comp.vwr_ready.eq(self.vwr_ready), self.vwr_addr.eq(comp.vwr_addr),
            self.vwr_data.eq(comp.vwr_data), self.vwr_strb.eq(comp.vwr_strb),
            comp.vwr_resp_valid.eq(self.vwr_resp_valid),
        ]

        # Buffers.
        for b in ("abuf", "wbuf", "pbuf"):
            m.d.comb += [bufs[b].w_en.eq(getattr(load, f"{b}_w_en")),
                         bufs[b].w_addr.eq(getattr(load, f"{b}_w_addr")),
                         bufs[b].w_data.eq(getattr(load, f"{b}_w_data"))]
        for b in ("abuf", "wbuf", "pbuf"):
            m.d.comb += [bufs[b].r_en.eq(getattr(comp, f"{b}_r_en")),
                         bufs[b].r_addr.eq(getattr(comp, f"{b}_r_addr")),
                         getattr(comp, f"{b}_r_data").eq(bufs[b].r_data)]
        m.d.comb += [bufs["obuf"].w_en.eq(comp.obuf_w_en), bufs["obuf"].w_addr.eq(comp.obuf_w_addr),
                     bufs["obuf"].w_data.eq(comp.obuf_w_data),
                     bufs["obuf"].r_en.eq(store.obuf_r_en), bufs["obuf"].r_addr.eq(store.obuf_r_addr), store.obuf_r_data.eq(bufs["obuf"].r_data)]
        return m
