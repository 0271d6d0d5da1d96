"""The vector unit's setup: the descriptor and constant blocks of a VEC, fetched and parsed.

In order, each step starting when the one before has ended (timing: `setup_cycles`):

1. one burst of `desc_beats` beats from the bus-aligned address below `desc` into the setup
   buffer (`SBUF`, one beat per entry);
2. the descriptor's words, one per cycle, into fixed *slots* (`SLOT_OF`: each kernel's
   fields at the same place: its first view in V0, its second in V1, `out` in V2, `pout` in
   P, its words in C0..C2, EMBED's tables in T0..T2);
3. the constant blocks (`const_blocks`: the kernel's constants, LAYERNORM's whole block with
   mult and bias, the fused add's constants, the packed requantize's, SOFTMAX's key mask),
   requested back to back into consecutive regions of the buffer;
4. the constants, one int64 word per cycle, into the registers K (the kernel's), A (the
   fused add's), G (the packed requantize's).

The buffer then holds the descriptor (COMBINE reads its members' views from it) and the
big blocks the engines read per column (LAYERNORM's mult / bias, SOFTMAX's mask).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.vector import (ADD_CONSTS, CONST_WORDS, KERNELS, PACKED_WORDS, REQUANT_CONSTS, TABLE_WORDS, VIEW_WORDS,
                           VecFn, desc_beats, parsed_desc_words)
from bebert.vector import _block_beats as block_beats

from .reader import ReadPort

SLOTS = {"V0": 0, "V1": 10, "V2": 20, "P": 30, "C0": 37, "C1": 38, "C2": 39, "T0": 40, "T1": 46, "T2": 52}
NSLOTS = 58
K_WORDS, A_WORDS, G_WORDS = 11, len(ADD_CONSTS), len(REQUANT_CONSTS)
_FIELD_SLOT = {
    VecFn.ADD: {"a": "V0", "b": "V1", "consts": "C0", "out": "V2", "pout": "P"},
    VecFn.REQUANT: {"src": "V0", "consts": "C0", "out": "V2", "pout": "P"},
    VecFn.LAYERNORM: {"a": "V0", "b": "V1", "add_consts": "C1", "consts": "C0", "out": "V2", "pout": "P"},
    VecFn.SOFTMAX: {"src": "V0", "mask": "V1", "consts": "C0", "out": "V2", "pout": "P"},
    VecFn.GELU: {"src": "V0", "consts": "C0", "out": "V2", "pout": "P"},
    VecFn.EMBED: {"ids": "V0", "types": "V1", "word": "T0", "position": "T1", "token_type": "T2", "out": "V2"},
    VecFn.LUT: {"src": "V0", "out": "V2", "table": "C0", "offset": "C1", "size": "C2"},
    VecFn.DOT: {"src": "V0", "weight": "V1", "bias": "C0", "out": "V2"},
    VecFn.COMBINE: {"out": "V2", "weights": "C0"},
    VecFn.VOTE: {"src": "V0", "out": "V2", "consts": "C0", "method": "C1"},
    VecFn.VOTE_AVERAGE: {"src": "V0", "out": "V2", "consts": "C0"},
    VecFn.VOTE_MEAN: {"src": "V0", "out": "V2", "consts": "C0"},
    VecFn.VOTE_MEDIAN: {"src": "V0", "out": "V2", "consts": "C0"},
}
_SIZE = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS, "packed": PACKED_WORDS}


def slot_map(fn: VecFn) -> list[int]:
    """The slot of each descriptor word of kernel `fn` (COMBINE: up to its first member)."""
    out = []
    for name, kind in KERNELS[fn].desc:
        if kind == "views":
            break
        base = SLOTS[_FIELD_SLOT[fn][name]]
        out += [base + i for i in range(_SIZE[kind])]
    return out


def parsed_words(fn: int) -> int:
    return len(slot_map(VecFn(fn)))


assert all(parsed_words(f) == parsed_desc_words(f) for f in VecFn)
assert K_WORDS + A_WORDS + G_WORDS == CONST_WORDS


def sbuf_depth(config: AccelConfig) -> int:
    """Setup-buffer entries: the longest descriptor, the small blocks, the biggest block."""
    from bebert.vector import COMBINE_MAX_MEMBERS
    B = config.dram_bytes_per_cycle
    d = max(desc_beats(f, COMBINE_MAX_MEMBERS if f == VecFn.COMBINE else 0, config) for f in VecFn)
    big = block_beats(8 * (8 + 2 * config.vec_row_elems), 8, config)
    small = 2 * block_beats(8 * K_WORDS, 8, config)
    return 1 << (d + small + big - 1).bit_length()


class Setup(wiring.Component):
    """Fetches and parses a VEC's descriptor and constants (see the module docstring).

    `start` with the VEC's fields; `done` (one cycle) when the registers hold everything;
    `regions` give where each block kind landed in the buffer (its first entry) and
    `offsets` its first word's position in that beat (int64 words; the mask: int32 words)."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.B = config.dram_bytes_per_cycle
        self.depth = sbuf_depth(config)
        bus = 8 * self.B
        super().__init__({
            "start": In(1), "fn": In(8), "desc": In(32), "cols": In(16), "aux": In(16), "io": In(8), "bits": In(4),
            "port": Out(ReadPort(bus)), "done": Out(1), "busy": Out(1),
            "slots": Out(32 * NSLOTS), "k": Out(64 * K_WORDS), "a": Out(64 * A_WORDS), "g": Out(64 * G_WORDS),
            "reg_k": Out(range(self.depth)), "reg_m": Out(range(self.depth)), "off_k": Out(5), "off_m": Out(6),
            "reg_b": Out(range(self.depth)), "off_b": Out(5),
            "rd_addr": In(range(self.depth)), "rd_en": In(1), "rd_data": Out(bus),
            "rd2_addr": In(range(self.depth)), "rd2_en": In(1), "rd2_data": Out(bus),
            "own_read": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.B
        bus = 8 * B
        m.submodules.sbuf = sbuf = Memory(shape=bus, depth=self.depth, init=[])
        wr, rd, rd2 = sbuf.write_port(), sbuf.read_port(), sbuf.read_port()
        m.d.comb += [rd2.addr.eq(self.rd2_addr), rd2.en.eq(self.rd2_en), self.rd_data.eq(rd.data),
                     self.rd2_data.eq(rd2.data)]
        p = self.port
        phase = Signal(3)                         # 0 idle, 1 desc, 2 parse, 3 const requests, 4 const words
        wptr = Signal(range(self.depth + 1))      # next buffer entry a beat lands in
        need = Signal(range(self.depth + 1))      # beats requested so far
        nw = Signal(8)                            # descriptor words parsed
        woff = Signal(6)                          # desc's first word in its beat (int32 words)
        slots = [Signal(32, name=f"slot{i}") for i in range(NSLOTS)]
        m.d.comb += self.slots.eq(Cat(*slots))
        m.d.comb += [wr.addr.eq(wptr), wr.data.eq(p.data), wr.en.eq(p.data_valid)]
        with m.If(p.data_valid):
            m.d.sync += wptr.eq(wptr + 1)
        m.d.comb += [self.busy.eq(phase != 0), self.own_read.eq(phase != 0)]
        rd_addr = Signal(range(self.depth))
        m.d.comb += [rd.addr.eq(Mux(phase != 0, rd_addr, self.rd_addr)), rd.en.eq((phase != 0) | self.rd_en)]
        self._desc(m, phase, wptr, need, nw, woff, slots, rd_addr, rd)
        self._consts(m, phase, wptr, need, slots, rd_addr, rd)
        return m

    def _desc(self, m, phase, wptr, need, nw, woff, slots, rd_addr, rd):
        """Phases 1 and 2: the descriptor burst, then its words into the slots."""
        B, p = self.B, self.port
        fn = self.fn
        beats = Signal(16)
        words = Signal(8)
        rom = Array(Array(slot_map(f) + [NSLOTS] * (64 - len(slot_map(f)))) if f in list(VecFn) else
                    Array([NSLOTS] * 64) for f in range(16))
        with m.Switch(fn):
            for f in VecFn:
                with m.Case(int(f)):
                    m.d.comb += words.eq(parsed_words(f))
                    if f == VecFn.COMBINE:
                        from bebert.vector import desc_words
                        m.d.comb += beats.eq((4 * (desc_words(f, 0) + VIEW_WORDS * self.aux) + B - 4 + B - 1) // B)
                    else:
                        m.d.comb += beats.eq(desc_beats(f, 0, self.config))
        with m.If(self.start):
            m.d.sync += [phase.eq(1), wptr.eq(0), need.eq(0), nw.eq(0), woff.eq(self.desc[2:2 + B.bit_length() - 3])]
        with m.If(phase == 1):
            m.d.comb += [p.req_valid.eq(1), p.req_addr.eq(self.desc & ~(B - 1)), p.req_len.eq(beats)]
            with m.If(p.req_ready):
                m.d.sync += [phase.eq(2), need.eq(beats)]
        # parse word nw when its beat is in: read it (one cycle), store it the cycle after
        wpb = B // 4
        pos = woff + nw
        beat_of = pos >> (wpb.bit_length() - 1)
        can = (phase == 2) & (nw < words) & (beat_of < wptr)
        m.d.comb += rd_addr.eq(beat_of)
        got, gpos, gslot = Signal(), Signal(6), Signal(range(NSLOTS + 1))
        m.d.sync += [got.eq(can), gpos.eq(pos), gslot.eq(rom[fn][nw])]
        with m.If(can):
            m.d.sync += nw.eq(nw + 1)
        word = rd.data.word_select(gpos[:max(1, wpb.bit_length() - 1)], 32) if wpb > 1 else rd.data[:32]
        with m.If(got):
            for i in range(NSLOTS):
                with m.If(gslot == i):
                    m.d.sync += slots[i].eq(word)
        with m.If((phase == 2) & (nw == words) & ~got & (wptr == need)):
            m.d.sync += phase.eq(3)
        self._word = word

    def _consts(self, m, phase, wptr, need, slots, rd_addr, rd):
        """Phases 3 and 4: the constant blocks (one request per cycle for each of the kinds
        K, A, G, M, B in turn, if the VEC has it), then the 22 words of K, A and G."""
        B, p, cfg = self.B, self.port, self.config
        fn, io, cols, aux = self.fn, self.io, self.cols, self.aux
        kind = Signal(3)
        tile = Cat(*[fn == int(f) for f in (VecFn.ADD, VecFn.REQUANT, VecFn.LAYERNORM, VecFn.SOFTMAX,
                                           VecFn.GELU)]).any()
        second = io[1]
        ln, sm = fn == int(VecFn.LAYERNORM), fn == int(VecFn.SOFTMAX)
        rq = (ln | sm) & (self.bits != 0)     # the packed pass: its constants (address 0: a dummy read)
        dot_comb = (fn == int(VecFn.DOT)) | (fn == int(VecFn.COMBINE))
        nk = Signal(16)
        with m.Switch(fn):
            for f in VecFn:
                with m.Case(int(f)):
                    m.d.comb += nk.eq(len(KERNELS[f].consts))
        slot = lambda name, i=0: slots[SLOTS[name] + i]    # noqa: E731
        # kind: (enabled, address, bytes, alignment of its words)
        kinds = [(tile, slot("C0"), Mux(ln, 8 * (8 + 2 * cols), 8 * nk), 8),
                 (ln & second, slot("C1"), 8 * A_WORDS, 8),
                 (rq, slot("P", 6), 8 * G_WORDS, 8),
                 (sm & second, slot("V1"), 4 * cols, 4),
                 (dot_comb, slot("C0"), 8 * aux, 8)]
        regs = [self.reg_k, None, None, self.reg_m, self.reg_b]
        offs = [self.off_k, None, None, self.off_m, self.off_b]
        self._starts = starts = [Signal(range(self.depth), name=f"region_{k}") for k in "KAGMB"]
        m.d.comb += [self.reg_k.eq(starts[0]), self.reg_m.eq(starts[3]), self.reg_b.eq(starts[4])]
        offsets = [Signal(6, name=f"off_{k}") for k in "KAGMB"]
        for r, o, off in zip(regs, offs, offsets):
            if o is not None:
                m.d.comb += o.eq(off)
        with m.If(phase == 3):
            for i, (en, addr, nbytes, align) in enumerate(kinds):
                with m.If(kind == i):
                    beats = Signal(16, name=f"beats_{i}")
                    m.d.comb += beats.eq((nbytes + B - align + B - 1) >> (B.bit_length() - 1))
                    m.d.comb += [p.req_valid.eq(en), p.req_addr.eq(addr & ~(B - 1)), p.req_len.eq(beats)]
                    with m.If(~en | p.req_ready):
                        m.d.sync += kind.eq(kind + 1)
                        with m.If(en):
                            m.d.sync += [need.eq(need + beats), starts[i].eq(need),
                                         offsets[i].eq((addr & (B - 1)) >> (align.bit_length() - 1))]
                        with m.If(i == len(kinds) - 1):
                            m.d.sync += [phase.eq(4), kind.eq(0)]
        self._words(m, phase, wptr, need, rd_addr, rd, starts, offsets)

    def _words(self, m, phase, wptr, need, rd_addr, rd, starts, offsets):
        """Phase 4: once every beat is in, the 22 int64 words of K, A, G, one per cycle."""
        B = self.B
        wpb = max(1, B // 8)
        j = Signal(6)
        block = Mux(j < K_WORDS, 0, Mux(j < K_WORDS + A_WORDS, 1, 2))
        idx = Mux(j < K_WORDS, j, Mux(j < K_WORDS + A_WORDS, j - K_WORDS, j - K_WORDS - A_WORDS))
        start = Array(starts[:3])[block]
        off = Array(offsets[:3])[block]
        pos = off + idx
        can = (phase == 4) & (wptr == need) & (j < K_WORDS + A_WORDS + G_WORDS)
        with m.If(phase == 4):
            m.d.comb += rd_addr.eq(start + (pos >> (wpb.bit_length() - 1)))
        got, gj, gpos = Signal(), Signal(6), Signal(6)
        m.d.sync += [got.eq(can), gj.eq(j), gpos.eq(pos)]
        with m.If(can):
            m.d.sync += j.eq(j + 1)
        word = rd.data.word_select(gpos[:wpb.bit_length() - 1], 64) if wpb > 1 else rd.data[:64]
        regs = [self.k.word_select(i, 64) for i in range(K_WORDS)] + \
               [self.a.word_select(i, 64) for i in range(A_WORDS)] + [self.g.word_select(i, 64) for i in range(G_WORDS)]
        store = [Signal(64, name=f"const{i}") for i in range(len(regs))]
        for i, st in enumerate(store):
            m.d.comb += regs[i].eq(st)
            with m.If(got & (gj == i)):
                m.d.sync += st.eq(word)
        with m.If((phase == 4) & ~can & ~got & (j == K_WORDS + A_WORDS + G_WORDS)):
            m.d.sync += [phase.eq(0), j.eq(0)]
            m.d.comb += self.done.eq(1)
