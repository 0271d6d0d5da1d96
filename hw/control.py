"""The machine's control path: fetch, the four stage queues, the token counters, start / done."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS, N_STAGES

from .fetch import ERROR_CODE_BITS, IMEM_ADDR_BITS, ErrorCode, FetchUnit
from .issue import StageSignature
from .queue import StageQueue
from .token import TokenCounters

CYCLE_BITS = 32


class ControlPath(wiring.Component):
    """Everything of the machine but the stages' datapaths (docs/MACHINE_V3.md, "Stages and tokens").

    `stages[s]` is the `StageSignature` of stage s (LOAD 0, COMPUTE 1, OUTPUT 2, VECTOR 3),
    flipped: the head of queue s and the token port of stage s are driven from here, the
    stage's `busy` comes in. `wiring.connect(m, stage.ctl, control.stages[s])` joins them.

    Control: a `start` pulse (sampled at a clock edge while not `busy`) clears `done`, `error`,
    `cycles` and the token counters and begins fetching at instruction 0 in the next cycle
    (cycle 0). `busy` is high from cycle 0 to the finishing cycle T, the first cycle in which
    fetch has stopped, every queue is empty and every stage idle. At the end of T `done` rises
    (and stays high until the next `start`) and `cycles` holds T + 1. `error` is high once fetch
    has stopped on an illegal word (`error_code` ILLEGAL, `error_pc` its index: the machine
    drains and finishes normally) or once `vec_fault` (the vector stage's fault) has been high
    since the start (`error_code` VEC_FAULT, `error_pc` 0; fetch goes on, DRAM unspecified).
    An illegal word takes precedence in `error_code`.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"ControlPath needs an AccelConfig, got {type(config).__name__}")
        self.config = config
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "cycles": Out(CYCLE_BITS),
            "error": Out(1), "error_code": Out(ERROR_CODE_BITS), "error_pc": Out(IMEM_ADDR_BITS),
            "vec_fault": In(1),
            "imem_addr": Out(IMEM_ADDR_BITS), "imem_data": In(INSTR_BITS), "imem_valid": In(1),
            "stages": In(StageSignature).array(N_STAGES),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch = fetch = FetchUnit(self.config)
        m.submodules.tokens = tok = TokenCounters()
        for s, stage in enumerate(self.stages):
            m.submodules[f"queue{s}"] = q = StageQueue(self.config.queue_depth)
            wiring.connect(m, fetch.queues[s], q.w)
            wiring.connect(m, q.head, wiring.flipped(stage.head))
            wiring.connect(m, wiring.flipped(stage.tokens), tok.stages[s])

        start, finish = Signal(), Signal()
        idle = [~st.head.valid & ~st.busy for st in self.stages]
        m.d.comb += [start.eq(self.start & ~self.busy),
                     finish.eq(self.busy & fetch.stopped & idle[0] & idle[1] & idle[2] & idle[3])]
        with m.If(start):
            m.d.sync += [self.busy.eq(1), self.done.eq(0), self.cycles.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(finish):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]

        vec_fault = Signal()  # sticky from the first fault until the next start
        with m.If(start):
            m.d.sync += vec_fault.eq(0)
        with m.Elif(self.vec_fault & self.busy):
            m.d.sync += vec_fault.eq(1)
        m.d.comb += [
            fetch.start.eq(start), tok.clear.eq(start),
            self.imem_addr.eq(fetch.imem_addr), fetch.imem_data.eq(self.imem_data),
            fetch.imem_valid.eq(self.imem_valid),
            self.error.eq(fetch.error | vec_fault),
            self.error_code.eq(Mux(fetch.error, fetch.error_code, Mux(vec_fault, ErrorCode.VEC_FAULT, ErrorCode.NONE))),
            self.error_pc.eq(Mux(fetch.error, fetch.error_pc, 0)),
        ]
        return m
