"""Instruction decoder: one 128-bit word -> its stage, HALT, or illegal."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import FIELDS, FLAG_BITS, INSTR_BITS, Buf, Op


def field(word, op: Op, name: str):
    """The operand `name` of opcode `op`, sliced from `word` at the position in `bebert.isa.FIELDS`."""
    lsb, width = FIELDS[op][name]
    return word[lsb:lsb + width]


def flag(word, name: str):
    return word[FLAG_BITS[name]]


class InstructionDecoder(wiring.Component):
    """Combinational decoder used by the fetch unit.

    `illegal` is high for exactly the words that `bebert.isa.decode` rejects: an unknown
    opcode (0x00 included), a dependency flag the stage cannot carry, a LOAD to obuf or a
    STORE from anything but obuf, GEMM bits outside 1..8 or k = 0, LOAD/STORE n = 0 and
    POST obits > 8. Otherwise exactly one of `to_load`, `to_compute`, `to_store`, `halt`
    is high. Reserved bits are ignored. No latency: outputs follow `word` in the same cycle.
    """

    word: In(INSTR_BITS)
    illegal: Out(1)
    halt: Out(1)
    to_load: Out(1)
    to_compute: Out(1)
    to_store: Out(1)

    def elaborate(self, platform):
        m = Module()
        w = self.word
        opcode = w[0:8]
        pop_prev, pop_next = flag(w, "pop_prev"), flag(w, "pop_next")
        push_prev, push_next = flag(w, "push_prev"), flag(w, "push_next")
        any_flag = pop_prev | pop_next | push_prev | push_next
        bad = Signal()
        known = Signal()
        with m.Switch(opcode):
            with m.Case(Op.LOAD):
                buf = field(w, Op.LOAD, "buf")
                m.d.comb += [known.eq(1), self.to_load.eq(1),
                             bad.eq(pop_prev | push_prev | (buf > Buf.PBUF)
                                    | (field(w, Op.LOAD, "n") == 0))]
            with m.Case(Op.STORE):
                buf = field(w, Op.STORE, "buf")
                m.d.comb += [known.eq(1), self.to_store.eq(1),
                             bad.eq(pop_next | push_next | (buf != Buf.OBUF)
                                    | (field(w, Op.STORE, "n") == 0))]
            with m.Case(Op.GEMM):
                bits = field(w, Op.GEMM, "bits")
                m.d.comb += [known.eq(1), self.to_compute.eq(1),
                             bad.eq((bits == 0) | (bits > 8) | (field(w, Op.GEMM, "k") == 0))]
            with m.Case(Op.POST):
                m.d.comb += [known.eq(1), self.to_compute.eq(1),
                             bad.eq(field(w, Op.POST, "obits") > 8)]
            with m.Case(Op.SYNC):
                m.d.comb += [known.eq(1), self.to_compute.eq(1)]
            with m.Case(Op.HALT):
                m.d.comb += [known.eq(1), self.halt.eq(1), bad.eq(any_flag)]
            with m.Default():  # unknown opcode: illegal through ~known. Explicit zeros give
                # every output's `case` a default arm (verilator CASEINCOMPLETE otherwise).
                m.d.comb += [known.eq(0), bad.eq(0), self.halt.eq(0), self.to_load.eq(0),
                             self.to_compute.eq(0), self.to_store.eq(0)]
        m.d.comb += self.illegal.eq(~known | bad)
        return m
