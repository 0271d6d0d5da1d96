"""Fetch unit: reads instructions and dispatches them, in order, to the stage queues."""

from enum import IntEnum

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import INSTR_BITS

from .decoder import InstructionDecoder

IMEM_ADDR_BITS = 32
ERROR_CODE_BITS = 4


class ErrorCode(IntEnum):
    """The `error_code` register: why fetch stopped with `error` (docs/ARCHITECTURE.md, "RTL ports")."""

    NONE = 0
    ILLEGAL = 1  # a word `bebert.isa.decode` refuses
    UNSUPPORTED = 2  # a legal VEC word whose kernel this RTL's vector unit does not run
    VEC_FAULT = 3  # a VEC whose descriptor the vector unit cannot process (hw/vector_unit.py)


class FetchUnit(wiring.Component):
    """Alternates FETCH (present `imem_addr = pc`) and DECODE (look at `imem_data`).

    `start` (a pulse, sampled at a clock edge) resets pc to 0 and enters FETCH in the next
    cycle (cycle 0). DECODE waits while `imem_valid` is low (a slow instruction memory;
    `imem_addr` keeps presenting pc). With the word valid: an illegal word sets `error`,
    `error_code` = ILLEGAL and `error_pc` = pc and stops; a legal word this RTL does not
    implement (VEC) does the same with `error_code` = UNSUPPORTED; HALT stops; otherwise
    the word is pushed (`q_w_data`, the stage's `*_w_en`) if that queue's `*_w_rdy` is high
    and fetch returns to FETCH with pc + 1, else it stays in DECODE (`imem_addr` keeps
    presenting pc, so `imem_data` stays valid). `stopped` is registered: high from the
    cycle after the one that decoded HALT or a stopping word until the next `start`.
    `start` clears `error`, `error_code` and `error_pc`.
    """

    start: In(1)
    imem_addr: Out(IMEM_ADDR_BITS)
    imem_data: In(INSTR_BITS)
    imem_valid: In(1)
    q_w_data: Out(INSTR_BITS)
    load_w_en: Out(1)
    load_w_rdy: In(1)
    compute_w_en: Out(1)
    compute_w_rdy: In(1)
    store_w_en: Out(1)
    store_w_rdy: In(1)
    stopped: Out(1)
    error: Out(1)
    error_code: Out(ERROR_CODE_BITS)
    error_pc: Out(IMEM_ADDR_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = dec = InstructionDecoder()
        pc = Signal(IMEM_ADDR_BITS)
        m.d.comb += [self.imem_addr.eq(pc), dec.word.eq(self.imem_data),
                     self.q_w_data.eq(self.imem_data)]

        clear = [pc.eq(0), self.error.eq(0), self.error_code.eq(ErrorCode.NONE), self.error_pc.eq(0)]
        with m.FSM(name="fetch") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += clear
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.next = "DECODE"
            with m.State("DECODE"):
                with m.If(~self.imem_valid):
                    pass  # the word is not there yet: keep presenting pc
                with m.Elif(dec.illegal | dec.unsupported):
                    m.d.sync += [self.error.eq(1), self.error_pc.eq(pc),
                                 self.error_code.eq(Mux(dec.illegal, ErrorCode.ILLEGAL, ErrorCode.UNSUPPORTED))]
                    m.next = "STOPPED"
                with m.Elif(dec.halt):
                    m.next = "STOPPED"
                with m.Else():
                    rdy = ((dec.to_load & self.load_w_rdy) | (dec.to_compute & self.compute_w_rdy)
                           | (dec.to_store & self.store_w_rdy))
                    with m.If(rdy):
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "FETCH"
            with m.State("STOPPED"):
                m.d.comb += self.stopped.eq(1)
                with m.If(self.start):
                    m.d.sync += clear
                    m.next = "FETCH"
        # The enables are driven outside the FSM so that they do not become `case`s on the
        # state that leave the other states out (verilator CASEINCOMPLETE).
        dispatch = fsm.ongoing("DECODE") & self.imem_valid & ~dec.illegal & ~dec.unsupported & ~dec.halt
        m.d.comb += [self.load_w_en.eq(dispatch & dec.to_load & self.load_w_rdy),
                     self.compute_w_en.eq(dispatch & dec.to_compute & self.compute_w_rdy),
                     self.store_w_en.eq(dispatch & dec.to_store & self.store_w_rdy)]
        return m
