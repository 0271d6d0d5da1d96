"""Instruction decoder: one 128-bit word -> its stage, HALT, illegal, or not implemented here."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.isa import FIELDS, FLAG_BITS, INSTR_BITS, Buf, Op
from bebert.vector import VecFn


def field(word, op: Op, name: str):
    """The operand `name` of opcode `op`, sliced from `word` at the position in `bebert.isa.FIELDS`."""
    lsb, width = FIELDS[op][name]
    return word[lsb:lsb + width]


def flag(word, name: str):
    return word[FLAG_BITS[name]]


# VEC kernels whose `bits` / `aux` operands must be non-zero (`bebert.vector.check_vec`;
# tests/test_hw_blocks.py holds the decoder to `bebert.isa.decode` on random VEC words).
_VEC_BITS_FNS = (VecFn.PACK_A, VecFn.PACK_W)
_VEC_AUX_FNS = (VecFn.DOT,)


class InstructionDecoder(wiring.Component):
    """Combinational decoder used by the fetch unit.

    `illegal` is high for exactly the words that `bebert.isa.decode` rejects: an unknown
    opcode (0x00 included), a dependency flag the stage cannot carry, a LOAD to obuf or a
    STORE from anything but obuf, GEMM bits outside 1..8 or k = 0, GEMM wneg / wshift
    without mode = 1 (AND), LOAD/STORE n = 0, POST obits > 8, and a VEC word that
    `bebert.vector.check_vec` refuses.

    `unsupported` is high for a *legal* VEC word whose kernel the vector unit does not
    run (`bebert.hw.vector_unit.IMPLEMENTED`). It never coincides with `illegal`. Otherwise (neither) exactly one of
    `to_load`, `to_compute`, `to_store`, `halt` is high. Reserved bits are ignored.
    No latency: outputs follow `word` in the same cycle.
    """

    word: In(INSTR_BITS)
    illegal: Out(1)
    unsupported: Out(1)
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
        is_vec = Signal()
        vec_bad = self._vec_bad(m, w)  # outside the opcode switch: no nested, partial `case`
        from .vector_unit import IMPLEMENTED
        vfn = field(w, Op.VEC, "fn")
        runs = Signal(name="vec_runs")  # a kernel the vector unit runs
        m.d.comb += runs.eq(sum((vfn == int(f)) for f in IMPLEMENTED) != 0)
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
                xnor_with_and_operands = (~field(w, Op.GEMM, "mode")
                                          & (field(w, Op.GEMM, "wneg") | field(w, Op.GEMM, "wshift").any()))
                m.d.comb += [known.eq(1), self.to_compute.eq(1),
                             bad.eq((bits == 0) | (bits > 8) | (field(w, Op.GEMM, "k") == 0)
                                    | xnor_with_and_operands)]
            with m.Case(Op.POST):
                m.d.comb += [known.eq(1), self.to_compute.eq(1),
                             bad.eq(field(w, Op.POST, "obits") > 8)]
            with m.Case(Op.SYNC):
                m.d.comb += [known.eq(1), self.to_compute.eq(1)]
            with m.Case(Op.HALT):
                m.d.comb += [known.eq(1), self.halt.eq(1), bad.eq(any_flag)]
            with m.Case(Op.VEC):
                m.d.comb += [known.eq(1), is_vec.eq(1), self.to_compute.eq(runs), bad.eq(vec_bad)]
            with m.Default():  # unknown opcode: illegal through ~known. Explicit zeros give
                # every output's `case` a default arm (verilator CASEINCOMPLETE otherwise).
                m.d.comb += [known.eq(0), bad.eq(0), is_vec.eq(0), self.halt.eq(0), self.to_load.eq(0),
                             self.to_compute.eq(0), self.to_store.eq(0)]
        m.d.comb += [self.illegal.eq(~known | bad), self.unsupported.eq(is_vec & ~bad & ~runs)]
        return m

    @staticmethod
    def _vec_bad(m: Module, w) -> Signal:
        """The words `bebert.vector.check_vec` refuses: unknown fn, rows or cols 0, bits / aux
        set where the kernel takes none or missing where it needs them."""
        fn, bits, aux = field(w, Op.VEC, "fn"), field(w, Op.VEC, "bits"), field(w, Op.VEC, "aux")
        bad = Signal(name="vec_bad")
        bits_ok, aux_ok = Signal(name="vec_bits_ok"), Signal(name="vec_aux_ok")
        known_fn = Signal(name="vec_known_fn")
        with m.Switch(fn):
            for f in VecFn:
                with m.Case(int(f)):
                    m.d.comb += [
                        known_fn.eq(1),
                        bits_ok.eq(((bits >= 1) & (bits <= 8)) if f in _VEC_BITS_FNS else (bits == 0)),
                        aux_ok.eq((aux != 0) if f in _VEC_AUX_FNS else (aux == 0)),
                    ]
            with m.Default():
                m.d.comb += [known_fn.eq(0), bits_ok.eq(0), aux_ok.eq(0)]
        m.d.comb += bad.eq(~known_fn | (field(w, Op.VEC, "rows") == 0) | (field(w, Op.VEC, "cols") == 0)
                           | ~bits_ok | ~aux_ok)
        return bad
