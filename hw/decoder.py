"""Instruction decoder: one 128-bit word -> the stage queue it goes to, HALT, or illegal."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import FIELDS, INSTR_BITS, N_STAGES, POP_LSB, PUSH_LSB, STAGE_OF, Buf, Op, PostFmt, Stage
from bebert.vector import COMBINE_MAX_MEMBERS, KERNELS, TILE_IN_ELEMS, VOTE_EXACT, VOTE_MAX_MEMBERS, Io, VecFn


def field(word, op: Op, name: str):
    """The operand `name` of opcode `op`, sliced from `word` at the position in `bebert.isa.FIELDS`."""
    lsb, width = FIELDS[op][name]
    return word[lsb:lsb + width]


def _pow2_or_zero(v):
    return (v & (v - 1)) == 0


class InstructionDecoder(wiring.Component):
    """Combinational decoder used by the fetch unit, built for one `AccelConfig`.

    `illegal` is high for exactly the words that `bebert.isa.decode` refuses or that
    `bebert.isa.check_config` refuses on this configuration: an unknown opcode (0x00 and v2's
    STORE 0x02 included), a pop / push bit naming the instruction's own stage or any on HALT,
    LOAD buf > 2 or n = 0, GEMM bits / wbits outside 1..8 (or bits not in `config.act_bits`),
    k = 0, an XNOR GEMM with wbits != 1 or wsigned, POSTCFG fmt 3, a stream POSTCFG with elem 3
    or obits > 16, a packed one with obits outside 1..8, group not a power of two, pm1 off a
    1-bit packed format, POST cols / rows outside 1..pe_cols / 1..pe_rows or pos >= xnor_width,
    and a VEC word `bebert.vector.check_vec` refuses (read from the kernel records).

    Otherwise `halt` is high for HALT, or exactly one bit of `queue` names the stage whose
    queue takes the word (SYNC: its `stage` field). Reserved bits are ignored. No latency:
    the outputs follow `word` in the same cycle.
    """

    word: In(INSTR_BITS)
    illegal: Out(1)
    halt: Out(1)
    queue: Out(N_STAGES)

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"InstructionDecoder needs an AccelConfig, got {type(config).__name__}")
        self.config = config
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        w = self.word
        pop, push = w[POP_LSB:POP_LSB + N_STAGES], w[PUSH_LSB:PUSH_LSB + N_STAGES]
        stage = Signal(range(N_STAGES + 1))  # Stage.FETCH for HALT
        known, bad = Signal(), Signal()
        rules = {Op.LOAD: self._load_bad, Op.GEMM: self._gemm_bad, Op.POSTCFG: self._postcfg_bad,
                 Op.POST: self._post_bad, Op.VEC: self._vec_bad}
        # Every rule is computed outside the opcode switch (no nested, partial `case`).
        bad_of = {op: rule(m, w) for op, rule in rules.items()}
        with m.Switch(w[0:8]):
            for op in Op:
                with m.Case(op):
                    st = field(w, Op.SYNC, "stage") if op == Op.SYNC else STAGE_OF[op]
                    m.d.comb += [known.eq(1), stage.eq(st), bad.eq(bad_of.get(op, Const(0)))]
            with m.Default():  # explicit zeros: every output's `case` has a default arm
                m.d.comb += [known.eq(0), stage.eq(Stage.FETCH), bad.eq(0)]
        # A token bit for the instruction's own stage (HALT: any bit).
        own = Signal()
        m.d.comb += own.eq(((pop | push) >> stage)[0] | ((stage == Stage.FETCH) & (pop | push).any()))
        m.d.comb += [self.illegal.eq(~known | bad | own), self.halt.eq(~self.illegal & (stage == Stage.FETCH))]
        with m.If(~self.illegal & (stage != Stage.FETCH)):
            m.d.comb += self.queue.eq(Const(1, N_STAGES) << stage)
        return m

    # -- the rules of `bebert.isa._check_rules` and `check_config`, one opcode each ----------
    @staticmethod
    def _in_1_8(v):
        return (v >= 1) & (v <= 8)

    def _load_bad(self, m, w):
        return (field(w, Op.LOAD, "buf") > Buf.PBUF) | (field(w, Op.LOAD, "n") == 0)

    def _gemm_bad(self, m, w):
        f = lambda name: field(w, Op.GEMM, name)  # noqa: E731
        bits = f("bits")
        machine_bits = Signal(name="gemm_bits_built")
        m.d.comb += machine_bits.eq(sum((bits == b) for b in self.config.act_bits) != 0)
        xnor_bad = ~f("mode") & ((f("wbits") != 1) | f("wsigned"))
        return ~self._in_1_8(bits) | ~self._in_1_8(f("wbits")) | (f("k") == 0) | xnor_bad | ~machine_bits

    def _postcfg_bad(self, m, w):
        f = lambda name: field(w, Op.POSTCFG, name)  # noqa: E731
        fmt, obits = f("fmt"), f("obits")
        stream = fmt == PostFmt.STREAM
        stream_bad = stream & ((f("elem") == 3) | (obits > 16))
        packed_bad = ~stream & ~self._in_1_8(obits)
        group_bad = (f("group") == 0) | ~_pow2_or_zero(f("group"))
        pm1_bad = f("pm1") & (stream | (obits != 1))
        return (fmt == 3) | stream_bad | packed_bad | group_bad | pm1_bad

    def _post_bad(self, m, w):
        cfg = self.config
        f = lambda name: field(w, Op.POST, name)  # noqa: E731
        cols, rows = f("cols"), f("rows")
        return ((cols == 0) | (rows == 0) | (cols > cfg.pe_cols) | (rows > cfg.pe_rows)
                | (f("pos") >= cfg.xnor_width))

    def _vec_bad(self, m, w):
        """`bebert.vector.check_vec`, from the kernel records: unknown fn, rows or cols 0,
        packed bits on a kernel that writes none or above 8, aux missing or extra (COMBINE: at
        most COMBINE_MAX_MEMBERS; VOTE_AVERAGE / MEAN / MEDIAN at most VOTE_MAX_MEMBERS, MEAN
        and MEDIAN one column), and the io rules (tile: flags the kernel takes, some output,
        an input element of TILE_IN_ELEMS bytes, bits 6-7 zero; EMBED: io bits 3, 6, 7 zero; the
        other scalar kernels: io 0)."""
        f = lambda name: field(w, Op.VEC, name)  # noqa: E731
        bits, aux, io = f("bits"), f("aux"), f("io")
        kernel_bad = Signal(name="vec_kernel_bad")
        with m.Switch(f("fn")):
            for fn, k in KERNELS.items():
                with m.Case(int(fn)):
                    rule = ((bits != 0) if not k.packs else (bits > 8))
                    rule = rule | ((aux == 0) if k.aux else (aux != 0))
                    if fn == VecFn.COMBINE:
                        rule = rule | (aux > COMBINE_MAX_MEMBERS)
                    if fn in VOTE_EXACT:
                        rule = rule | (aux > VOTE_MAX_MEMBERS)
                    if fn in (VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN):
                        rule = rule | (f("cols") != 1)
                    if k.engine == "tile":
                        flags = io[0:2]  # Io.STREAM_OUT, Io.SECOND_IN
                        no_output = ((io & int(Io.STREAM_OUT)) == 0) & (bits == 0)
                        in_elem = io[2:4]  # log2 of the input's element bytes
                        in_ok = sum((in_elem == e.bit_length() - 1) for e in TILE_IN_ELEMS) != 0
                        rule = (rule | ((flags & ~Const(int(k.io), 2)) != 0) | no_output | ~in_ok
                                | (io[6:8] != 0))
                    elif fn == VecFn.EMBED:      # io bits 0-2: which tables are binary, 4-5: out elem
                        rule = rule | io[3] | (io[6:8] != 0)
                    else:
                        rule = rule | (io != 0)
                    m.d.comb += kernel_bad.eq(rule)
            with m.Default():  # an unknown kernel
                m.d.comb += kernel_bad.eq(1)
        return kernel_bad | (f("rows") == 0) | (f("cols") == 0)
