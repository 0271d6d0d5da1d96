"""Fetch unit: reads instructions and dispatches them, in order, to the four stage queues."""

from enum import IntEnum

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS, N_STAGES

from .decoder import InstructionDecoder
from .ports import queue_write

IMEM_ADDR_BITS = 32
ERROR_CODE_BITS = 4


class ErrorCode(IntEnum):
    """The `error_code` register: why the machine reports `error` (docs/MACHINE_V3.md)."""

    NONE = 0
    ILLEGAL = 1  # fetch stopped on a word `bebert.isa.decode` / `check_config` refuses
    VEC_FAULT = 3  # a VEC whose descriptor the vector unit cannot process


class FetchUnit(wiring.Component):
    """Alternates FETCH (present `imem_addr = pc`) and DECODE (look at `imem_data`).

    `start` (a pulse, sampled at a clock edge) resets pc to 0 and enters FETCH in the next
    cycle (cycle 0). DECODE waits while `imem_valid` is low (a slow instruction memory;
    `imem_addr` keeps presenting pc). With the word valid: an illegal word (`InstructionDecoder`
    of this config) sets `error`, `error_code` = ILLEGAL and `error_pc` = pc and stops; HALT
    stops; otherwise the word is written into the queue of its stage (`queues[s]`, SYNC by its
    `stage` field) if that queue's `rdy` is high, and fetch returns to FETCH with pc + 1, else
    it stays in DECODE (`imem_addr` keeps presenting pc, so `imem_data` stays valid).
    `stopped` is registered: high from the cycle after the one that decoded HALT or an
    illegal word until the next `start`. `start` clears `error`, `error_code` and `error_pc`.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"FetchUnit needs an AccelConfig, got {type(config).__name__}")
        self.config = config
        super().__init__({
            "start": In(1), "imem_addr": Out(IMEM_ADDR_BITS), "imem_data": In(INSTR_BITS), "imem_valid": In(1),
            "queues": Out(queue_write()).array(N_STAGES),
            "stopped": Out(1), "error": Out(1), "error_code": Out(ERROR_CODE_BITS), "error_pc": Out(IMEM_ADDR_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = dec = InstructionDecoder(self.config)
        pc = Signal(IMEM_ADDR_BITS)
        m.d.comb += [self.imem_addr.eq(pc), dec.word.eq(self.imem_data)]
        rdy = Signal()  # the word's queue has room
        m.d.comb += rdy.eq((dec.queue & Cat(*(q.rdy for q in self.queues))).any())

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
                with m.Elif(dec.illegal):
                    m.d.sync += [self.error.eq(1), self.error_pc.eq(pc), self.error_code.eq(ErrorCode.ILLEGAL)]
                    m.next = "STOPPED"
                with m.Elif(dec.halt):
                    m.next = "STOPPED"
                with m.Elif(rdy):
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
            with m.State("STOPPED"):
                m.d.comb += self.stopped.eq(1)
                with m.If(self.start):
                    m.d.sync += clear
                    m.next = "FETCH"
        # The enables are driven outside the FSM so that they do not become `case`s on the
        # state that leave the other states out (verilator CASEINCOMPLETE).
        dispatch = fsm.ongoing("DECODE") & self.imem_valid
        for s, q in enumerate(self.queues):
            m.d.comb += [q.data.eq(self.imem_data), q.en.eq(dispatch & dec.queue[s] & q.rdy)]
        return m
