"""The vector unit: runs one VEC instruction (`bebert.vector` semantics) over DRAM, element by element.

A simple, exact design (docs/ARCHITECTURE.md, "The vector unit"): one sequencer computing one
element at a time, its own DRAM port, and a read streamer. Every access is a single element:

- a read is one request of NB = max(1, 8 // dram_bytes_per_cycle) beats at the element's
  *byte* address (the port is byte-addressed). The kernels whose reads come in a fixed order
  (REQUANT, GELU, ADD, PACK_A / PACK_W, LAYERNORM / SOFTMAX row loads) get them from the
  streamer: one request per cycle, up to SD >= L + 24 slots ahead, beats into an in-order
  FIFO, so such a read costs the sequencer one cycle (POP) after one prime of L + K NB
  cycles per instruction. The other reads are serial: issued in one cycle, the last beat
  L + NB - 1 cycles later, L + NB cycles at the nominal memory;
- a write is NB single-beat writes (address, data, byte strobes), one per cycle; the
  responses are only counted, and the unit waits for all of them (and every streamed read)
  at the end.

Nothing the unit does depends on data except *what* it reads and writes, never *when*:
at the nominal memory its duration is a function of (fn, rows, cols, bits, aux) and the
config: `bebert.vector.vec_cycles`, the cost contract the simulator charges (the constructor
checks the engines' latencies against it). A slower memory only stretches it.

Descriptor and constant blocks are fetched in bursts first. Views are addressed by one
combinational address generator (two small dividers for the tile arithmetic, four
multipliers), shared by every access. Every kernel runs: EMBED (dense and binary tables),
LUT, DOT (int64), COMBINE, REQUANT / ADD / PACK_A's requantize (the POST arithmetic, inline),
PACK_A / PACK_W (bebert/layout.py's ABUF / WBUF layouts, padding included), GELU on
hw/vec's GeluElem, LAYERNORM / SOFTMAX on hw/vec's row engines over row memories of
`AccelConfig.vec_row_elems` words.

Faults: a descriptor the unit cannot process (an element size other than 1/2/4/8, a
misaligned descriptor or constant block, a LUT / EMBED index outside its table, a COMBINE
member count outside 1..`COMBINE_MAX_MEMBERS`, a table kind other than 0/1) sets `fault`
(sticky until the next `start`) and ends the instruction at once; DRAM is then unspecified
(the golden executor raises `VecError` for the same descriptors).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS, Op
from bebert.vector import (COMBINE_MAX_MEMBERS, CONST_COUNTS, DESC_LAYOUT, GELU_LATENCY, TABLE_WORDS, VIEW_WORDS,
                           VecFn, desc_words_fetched, layernorm_row_cycles, softmax_row_cycles, vec_cycles)

from .decoder import field
from .vec.elem import GeluElem
from .vec.layernorm import LayerNormRow
from .vec.softmax import SoftmaxRow

ADDR_BITS = 32
LEN_BITS = 32
DESC_BUF_WORDS = 64
CONST_BUF_WORDS = 12

# The kernels this RTL runs; the decoder reports the others as UNSUPPORTED.
IMPLEMENTED = tuple(VecFn)


def _desc_offsets(fn: VecFn) -> dict[str, int]:
    """Word offset of every descriptor field (COMBINE's `weights` follows the members' views)."""
    sizes = {"view": VIEW_WORDS, "word": 1, "table": TABLE_WORDS}
    out, at = {}, 0
    for name, kind in DESC_LAYOUT[fn]:
        out[name] = at
        at += VIEW_WORDS * COMBINE_MAX_MEMBERS if (fn == VecFn.COMBINE and name == "inputs") else sizes[kind]
    out["_words"] = at
    return out


OFF = {fn: _desc_offsets(fn) for fn in VecFn}
# Constant words fetched at setup: (descriptor word holding the address, int64 count).
CONSTS = {VecFn.REQUANT: ("consts", 5), VecFn.ADD: ("consts", 6), VecFn.GELU: ("consts", 8),
          VecFn.LAYERNORM: ("consts", 8), VecFn.SOFTMAX: ("consts", 11),
          VecFn.PACK_A: ("consts", 5), VecFn.COMBINE: ("weights", COMBINE_MAX_MEMBERS)}


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def desc_beats(fn: VecFn, config: AccelConfig) -> int:
    return _ceil(4 * OFF[VecFn(fn)]["_words"], config.dram_bytes_per_cycle)


def const_beats(fn: VecFn, config: AccelConfig) -> int:
    n = CONSTS.get(VecFn(fn), (None, 0))[1]
    return _ceil(8 * n, config.dram_bytes_per_cycle) if n else 0


def element_beats(config: AccelConfig) -> int:
    return max(1, 8 // config.dram_bytes_per_cycle)


def cycles(fn: int, rows: int, cols: int, bits: int, aux: int, config: AccelConfig) -> int:
    """The unit's duration at the nominal memory (issue to end): `bebert.vector.vec_cycles`,
    the cost contract this sequencer is written to (tests/test_hw_vector.py holds them equal)."""
    return vec_cycles(fn, rows, cols, bits, aux, config)


class VectorUnit(wiring.Component):
    """One VEC at a time. `start` (a pulse with the VEC word on `word`) begins it in the next
    cycle; `busy` is high until it has ended (every write answered). `fault` says the last
    VEC's descriptor could not be processed (see the module docstring).

    The DRAM port: read requests (`rd_req_*`, byte address, length in beats) and read beats
    (`rd_data_valid`, `rd_data`), as the LOAD port; writes are single beats (`wr_valid`,
    `wr_ready`, byte address `wr_addr`, `wr_data`, byte strobes `wr_strb`: byte i of the beat
    goes to `wr_addr + i` when strobe bit i is set), each answered by a `wr_resp_valid` pulse.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"VectorUnit needs an AccelConfig, got {type(config).__name__}")
        # The engines must keep the timing `bebert.vector.vec_cycles` charges.
        if (GeluElem.LATENCY != GELU_LATENCY
                or any(LayerNormRow.cycles(c) != layernorm_row_cycles(c) or SoftmaxRow.cycles(c) != softmax_row_cycles(c)
                       for c in (2, 3, 64))
                or {f: n for f, (_, n) in CONSTS.items()} != CONST_COUNTS
                or any(OFF[f]["_words"] != desc_words_fetched(f) for f in VecFn)):
            raise ValueError("hw/vec engine timing or the unit's fetch sizes differ from bebert.vector's cost "
                             "contract (vec_cycles)")
        self.config = config
        bus = config.bus_bits
        super().__init__({
            "start": In(1), "word": In(INSTR_BITS), "busy": Out(1), "fault": Out(1),
            "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_addr": Out(ADDR_BITS),
            "rd_req_len": Out(LEN_BITS), "rd_data_valid": In(1), "rd_data": In(bus),
            "wr_valid": Out(1), "wr_ready": In(1), "wr_addr": Out(ADDR_BITS), "wr_data": Out(bus),
            "wr_strb": Out(bus // 8), "wr_resp_valid": In(1),
        })

    def elaborate(self, platform):  # noqa: C901 - one sequencer, kernel by kernel
        m = Module()
        cfg = self.config
        bus, bpb = cfg.bus_bits, cfg.dram_bytes_per_cycle
        NB = element_beats(cfg)

        # -- instruction -------------------------------------------------------------------
        fn = Signal(8)
        rows, cols, aux = Signal(16), Signal(16), Signal(16)
        desc = Signal(32)
        with m.If(self.start):
            m.d.sync += [fn.eq(field(self.word, Op.VEC, "fn")), rows.eq(field(self.word, Op.VEC, "rows")),
                         cols.eq(field(self.word, Op.VEC, "cols")), aux.eq(field(self.word, Op.VEC, "aux")),
                         desc.eq(field(self.word, Op.VEC, "desc"))]

        # -- descriptor and constant buffers (burst targets) -------------------------------
        # Whole powers of two of bus words, so that a beat index covers them exactly.
        dwords_n = 1 << (_ceil(DESC_BUF_WORDS * 32, bus) - 1).bit_length()
        cwords_n = 1 << (_ceil(CONST_BUF_WORDS * 64, bus) - 1).bit_length()
        dbits, cbits = dwords_n * bus, cwords_n * bus
        dsel = max(1, (dwords_n - 1).bit_length())
        csel = max(1, (cwords_n - 1).bit_length())
        dbuf, cbuf = Signal(dbits), Signal(cbits)

        def dword(i):
            return dbuf.word_select(i, 32)

        def kconst(i):
            return cbuf.word_select(i, 64).as_signed()

        # -- state -------------------------------------------------------------------------
        names = ["IDLE", "DESC_REQ", "DESC_WAIT", "CONST_REQ", "CONST_WAIT", "ROW", "RD_REQ", "RD_WAIT", "WR",
                 "DRAIN", "RQ0", "RQ1", "RQ2", "AD0", "AD1", "AD2", "AD3", "LU0", "LU1", "LU2", "CB0", "CB1",
                 "CB2", "DT0", "DT1", "DT2", "DT3", "DT4", "EM0", "EM1", "EM2", "EM3", "EM4", "EM5", "EM6",
                 "EM7", "GE0", "GE1", "GE2", "LN0", "PM0", "PM1", "PM2", "LD0", "LD1", "LD2", "LD3",
                 "EN0", "EN1", "OW0", "OW1", "OW2", "RNEXT", "PKS", "PK0", "PKI", "PK1", "PK2", "PK3", "PK4",
                 "PK5", "NEXT", "POP"]
        S = {n: i for i, n in enumerate(names)}
        st, ret = Signal(range(len(names))), Signal(range(len(names)))
        m.d.comb += self.busy.eq(st != S["IDLE"])

        r, c, j = Signal(16), Signal(16), Signal(16)
        beat = Signal(LEN_BITS)
        # Element access: view (voff: descriptor word of the view; at (vr, vc)) or raw (ra, rfe, rfs).
        raw, ra, rfe, rfs = Signal(), Signal(32), Signal(4), Signal()
        voff, vr, vc = Signal(range(DESC_BUF_WORDS)), Signal(24), Signal(24)
        rraw = Signal(64)  # the element's bytes, as read
        re_, rs_, rsat = Signal(8), Signal(), Signal(8)  # format of the element being read
        wv = Signal(signed(64))  # value to write
        wb = Signal(range(NB + 1))
        outstanding = Signal(32)

        # View address generators (combinational): one for the sequencer's own accesses, one for
        # the read streamer's (see "Read streaming" below).
        def view_gen(voff, vr, vc, name):
            vw = [dword(voff + k) for k in range(VIEW_WORDS)]
            base, fmt, rtile, ctile, s_rt, s_r, s_ct, s_c, r0, c0 = vw
            R, C = Signal(24, name=f"{name}_R"), Signal(24, name=f"{name}_C")
            m.d.comb += [R.eq(vr + r0), C.eq(vc + c0)]
            qr, mr = Signal(24, name=f"{name}_qr"), Signal(24, name=f"{name}_mr")
            qc, mc = Signal(24, name=f"{name}_qc"), Signal(24, name=f"{name}_mc")
            rt16, ct16 = rtile[:16], ctile[:16]
            m.d.comb += [qr.eq(Mux(rt16 == 0, 0, R // rt16)), mr.eq(Mux(rt16 == 0, R, R % rt16)),
                         qc.eq(Mux(ct16 == 0, 0, C // ct16)), mc.eq(Mux(ct16 == 0, C, C % ct16))]
            addr = Signal(32, name=f"{name}_addr")
            m.d.comb += addr.eq(base + qr * s_rt + mr * s_r + qc * s_ct + mc * s_c)
            elem = fmt[0:8]
            bad = Signal(name=f"{name}_bad")
            m.d.comb += bad.eq(((elem != 1) & (elem != 2) & (elem != 4) & (elem != 8))
                               | (rtile[16:] != 0) | (ctile[16:] != 0))
            return addr, fmt, bad

        vaddr, fmt, vbad = view_gen(voff, vr, vc, "view")
        velem, vsigned, vsat = fmt[0:8], fmt[8], fmt[16:24]
        view_bad = Signal()
        m.d.comb += view_bad.eq(~raw & vbad)
        cur_elem = Mux(raw, rfe, velem)
        cur_signed = Mux(raw, rfs, vsigned)

        # The element read, sign-extended and saturated (from rraw and the latched format).
        xv = Signal(signed(64))
        ext = Signal(signed(64))
        with m.Switch(re_):
            for e in (1, 2, 4):
                with m.Case(e):
                    m.d.comb += ext.eq(Mux(rs_, rraw[:8 * e].as_signed(), rraw[:8 * e]))
            with m.Default():
                m.d.comb += ext.eq(rraw.as_signed())
        sat_lo, sat_hi = Signal(signed(66)), Signal(signed(66))
        m.d.comb += [sat_hi.eq((Const(1, 66) << (rsat - 1)[:7]) - 1), sat_lo.eq(-(sat_hi + 1))]
        with m.If((rsat == 0) | (rsat > 64)):
            m.d.comb += xv.eq(ext)
        with m.Elif(ext < sat_lo):
            m.d.comb += xv.eq(sat_lo)
        with m.Elif(ext > sat_hi):
            m.d.comb += xv.eq(sat_hi)
        with m.Else():
            m.d.comb += xv.eq(ext)

        # The value to write, saturated to the element type of the current target.
        wsat = Signal(64)
        e_lo, e_hi = Signal(signed(66)), Signal(signed(66))
        with m.Switch(cur_elem):
            for e in (1, 2, 4):
                with m.Case(e):
                    m.d.comb += [e_lo.eq(Mux(cur_signed, -(1 << (8 * e - 1)), 0)),
                                 e_hi.eq(Mux(cur_signed, (1 << (8 * e - 1)) - 1, (1 << (8 * e)) - 1))]
            with m.Default():
                m.d.comb += [e_lo.eq(Mux(cur_signed, -(1 << 63), 0)), e_hi.eq((1 << 63) - 1)]
        m.d.comb += wsat.eq(Mux(wv < e_lo, e_lo, Mux(wv > e_hi, e_hi, wv)))
        strb_all = Signal(8)
        m.d.comb += strb_all.eq(Mux(cur_elem == 1, 0x01, Mux(cur_elem == 2, 0x03, Mux(cur_elem == 4, 0x0F, 0xFF))))
        cur_addr = Mux(raw, ra, vaddr)

        # -- port outputs --------------------------------------------------------------------
        with m.If(self.wr_valid & self.wr_ready & ~self.wr_resp_valid):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~(self.wr_valid & self.wr_ready) & self.wr_resp_valid):
            m.d.sync += outstanding.eq(outstanding - 1)

        # -- helpers for the kernel states ------------------------------------------------------
        def goto(name):
            m.d.sync += st.eq(S[name])

        def read_view(off, row, col, then):
            m.d.sync += [raw.eq(0), voff.eq(off), vr.eq(row), vc.eq(col), ret.eq(S[then]), st.eq(S["RD_REQ"])]

        def read_raw(addr, elem, sgn, then):
            m.d.sync += [raw.eq(1), ra.eq(addr), rfe.eq(elem), rfs.eq(sgn), ret.eq(S[then]), st.eq(S["RD_REQ"])]

        def pop_view(off, row, col, then):  # the next streamed element (a read of view `off` at (row, col))
            m.d.sync += [raw.eq(0), voff.eq(off), vr.eq(row), vc.eq(col), ret.eq(S[then]), st.eq(S["POP"])]

        def write_view(off, row, col, value, then):
            m.d.sync += [raw.eq(0), voff.eq(off), vr.eq(row), vc.eq(col), wv.eq(value), wb.eq(0),
                         ret.eq(S[then]), st.eq(S["WR"])]

        def write_raw(addr, value, then):  # one unsigned byte
            m.d.sync += [raw.eq(1), ra.eq(addr), rfe.eq(1), rfs.eq(0), wv.eq(value), wb.eq(0),
                         ret.eq(S[then]), st.eq(S["WR"])]

        pf_go = Signal()  # the read streamer runs (see "Read streaming")
        s_inflight = Signal(range((1 << (cfg.dram_latency_cycles + 24 - 1).bit_length()) + 1))  # streamed, not landed

        def fault():
            m.d.sync += [self.fault.eq(1), st.eq(S["DRAIN"]), pf_go.eq(0)]

        def next_elem():  # column-major inner loop: c, then r; then drain
            m.d.sync += st.eq(S["NEXT"])

        # Kernel registers.
        xa, xb, acc = Signal(signed(64)), Signal(signed(64)), Signal(signed(64))
        p0, p1 = [Signal(signed(32), name=f"pair{i}") for i in range(3)], [Signal(signed(32), name=f"pair1_{i}") for i in range(3)]
        idx = [Signal(signed(64), name=f"idx{i}") for i in range(3)]
        tsel = Signal(2)
        idle = Signal(16)  # an idle slot standing in for a read that is not needed

        # Requantize (bebert.numerics.requantize with bias 0; the POST arithmetic), combinational.
        def requant(x, mult, shift, obits, osigned, in_bits, name):
            xin = Signal(signed(64), name=f"{name}_xin")
            ib = in_bits[:7]
            lo_in = Signal(signed(66), name=f"{name}_lo")
            hi_in = Signal(signed(66), name=f"{name}_hi")
            m.d.comb += [hi_in.eq((Const(1, 66) << (ib - 1)[:7]) - 1), lo_in.eq(-(hi_in + 1))]
            m.d.comb += xin.eq(Mux((ib == 0) | (ib > 64), x, Mux(x < lo_in, lo_in, Mux(x > hi_in, hi_in, x))))
            v = Signal(signed(64), name=f"{name}_v")
            vr_ = Signal(signed(64), name=f"{name}_vr")
            m.d.comb += v.eq((xin * mult)[:64].as_signed())
            sh = shift[:6]
            with m.If(shift != 0):
                m.d.comb += vr_.eq(((v + (Const(1, 64) << (sh - 1)[:6]))[:64].as_signed()) >> sh)
            with m.Else():
                m.d.comb += vr_.eq(v)
            lo, hi = Signal(signed(66), name=f"{name}_olo"), Signal(signed(66), name=f"{name}_ohi")
            ob = obits[:7]
            with m.If(ob == 0):
                m.d.comb += [lo.eq(-(1 << 31)), hi.eq((1 << 31) - 1)]
            with m.Elif(osigned != 0):
                m.d.comb += [hi.eq((Const(1, 66) << (ob - 1)[:7]) - 1), lo.eq(-((Const(1, 66) << (ob - 1)[:7])))]
            with m.Else():
                m.d.comb += [lo.eq(0), hi.eq((Const(1, 66) << ob) - 1)]
            out = Signal(signed(64), name=f"{name}_out")
            with m.If(ob == 1):
                m.d.comb += out.eq(Mux(vr_ >= 0, 1, -1))
            with m.Else():
                m.d.comb += out.eq(Mux(vr_ < lo, lo, Mux(vr_ > hi, hi, vr_)))
            return out

        # -- the sequencer --------------------------------------------------------------------
        fn_is = {f: (fn == int(f)) for f in VecFn}
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["IDLE"]):
                with m.If(self.start):
                    m.d.sync += [self.fault.eq(0), beat.eq(0), r.eq(0), c.eq(0), j.eq(0), pf_go.eq(0)]
                    goto("DESC_REQ")

        # Descriptor burst.
            with m.If(st == S["DESC_REQ"]):
                nbeats = Signal(LEN_BITS)
                m.d.comb += nbeats.eq(sum(Mux(fn_is[f], desc_beats(f, cfg), 0) for f in VecFn))
                m.d.comb += [self.rd_req_valid.eq(desc[:2] == 0), self.rd_req_addr.eq(desc),
                             self.rd_req_len.eq(nbeats)]
                with m.If(desc[:2] != 0):
                    fault()
                with m.Elif(self.rd_req_ready):
                    m.d.sync += [beat.eq(0), ret.eq(S["DESC_WAIT"])]
                    goto("DESC_WAIT")
            with m.If(st == S["DESC_WAIT"]):
                with m.If(self.rd_data_valid):
                    m.d.sync += [dbuf.word_select(beat[:dsel], bus).eq(self.rd_data), beat.eq(beat + 1)]
                    last = Signal()
                    m.d.comb += last.eq(beat == sum(Mux(fn_is[f], desc_beats(f, cfg) - 1, 0) for f in VecFn))
                    with m.If(last):
                        with m.If(sum(fn_is[f] for f in CONSTS) != 0):
                            goto("CONST_REQ")
                        with m.Else():
                            goto("ROW")

        # Constant burst (int64 words at an 8-byte aligned address named by the descriptor).
        caddr = Signal(32)
        cn = Signal(LEN_BITS)
        for f, (name, _n) in CONSTS.items():
            with m.If(fn_is[f]):
                if f == VecFn.COMBINE:  # `weights` follows the members' views
                    mem = dword(0)
                    m.d.comb += caddr.eq(dword(1 + VIEW_WORDS + VIEW_WORDS * mem[:6]))
                else:
                    m.d.comb += caddr.eq(dword(OFF[f][name]))
                m.d.comb += cn.eq(const_beats(f, cfg))
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["CONST_REQ"]):
                m.d.comb += [self.rd_req_valid.eq(caddr[:3] == 0), self.rd_req_addr.eq(caddr),
                             self.rd_req_len.eq(cn)]
                with m.If(caddr[:3] != 0):
                    fault()
                with m.Elif(self.rd_req_ready):
                    m.d.sync += beat.eq(0)
                    goto("CONST_WAIT")
            with m.If(st == S["CONST_WAIT"]):
                with m.If(self.rd_data_valid):
                    m.d.sync += [cbuf.word_select(beat[:csel], bus).eq(self.rd_data), beat.eq(beat + 1)]
                    with m.If(beat == cn - 1):
                        goto("ROW")

        # Per-kernel checks, then the first element.
            with m.If(st == S["ROW"]):
                with m.If(fn_is[VecFn.COMBINE] & ((dword(0) == 0) | (dword(0) > COMBINE_MAX_MEMBERS))):
                    fault()
                with m.Else():
                    first = {VecFn.PACK_A: "PKS", VecFn.PACK_W: "PKS", VecFn.LAYERNORM: "LN0", VecFn.SOFTMAX: "LD0", VecFn.GELU: "GE0", VecFn.REQUANT: "RQ0", VecFn.ADD: "AD0", VecFn.LUT: "LU0", VecFn.COMBINE: "CB0",
                             VecFn.DOT: "DT0", VecFn.EMBED: "EM0"}
                    with m.Switch(fn):
                        for f, s in first.items():
                            with m.Case(int(f)):
                                goto(s)
                        with m.Default():
                            fault()

        # Element read: one request, NB beats.
            with m.If(st == S["RD_REQ"]):
                m.d.comb += [self.rd_req_valid.eq(~view_bad), self.rd_req_addr.eq(cur_addr),
                             self.rd_req_len.eq(NB)]
                with m.If(view_bad):
                    fault()
                with m.Elif(self.rd_req_ready):
                    m.d.sync += [beat.eq(0), re_.eq(cur_elem), rs_.eq(cur_signed), rsat.eq(Mux(raw, 0, vsat))]
                    goto("RD_WAIT")
            with m.If(st == S["RD_WAIT"]):
                with m.If(self.rd_data_valid):
                    if NB == 1:
                        m.d.sync += rraw.eq(self.rd_data[:64])
                    else:
                        m.d.sync += rraw.word_select(beat[:max(1, (NB - 1).bit_length())], bus).eq(self.rd_data)
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == NB - 1):
                        m.d.sync += st.eq(ret)

        # Element write: NB single beats.
            with m.If(st == S["WR"]):
                data = Signal(64 if NB > 1 else bus)
                m.d.comb += data.eq(wsat)
                m.d.comb += [self.wr_valid.eq(~view_bad), self.wr_addr.eq(cur_addr + wb * bpb)]
                if NB == 1:
                    m.d.comb += [self.wr_data.eq(data), self.wr_strb.eq(strb_all)]
                else:
                    m.d.comb += [self.wr_data.eq(data.word_select(wb[:max(1, (NB - 1).bit_length())], bus)),
                                 self.wr_strb.eq(strb_all.word_select(wb[:max(1, (NB - 1).bit_length())], bpb))]
                with m.If(view_bad):
                    fault()
                with m.Elif(self.wr_ready):
                    m.d.sync += wb.eq(wb + 1)
                    with m.If(wb == NB - 1):
                        m.d.sync += st.eq(ret)

            with m.If(st == S["NEXT"]):
                with m.If(c == cols - 1):
                    m.d.sync += c.eq(0)
                    with m.If(r == rows - 1):
                        goto("DRAIN")
                    with m.Else():
                        m.d.sync += r.eq(r + 1)
                        goto("ROW")
                with m.Else():
                    m.d.sync += c.eq(c + 1)
                    goto("ROW")

            with m.If(st == S["DRAIN"]):
                with m.If((outstanding == 0) & (s_inflight == 0)):
                    goto("IDLE")

        # REQUANT: out = requant(src).
        o = OFF[VecFn.REQUANT]
        rq = requant(xa, kconst(0), kconst(1), kconst(2), kconst(3), kconst(4), "rq")
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["RQ0"]):
                pop_view(o["src"], r, c, "RQ1")
            with m.If(st == S["RQ1"]):
                m.d.sync += xa.eq(xv)
                goto("RQ2")
            with m.If(st == S["RQ2"]):
                write_view(o["out"], r, c, rq, "NEXT")

        # ADD: requantize(clamp(a) * mult1 + clamp(b) * mult2, 1, 0, shift, out_bits, out_signed).
        o = OFF[VecFn.ADD]
        in_bits = kconst(3)
        sum_ = Signal(signed(64))
        ca_in = Signal(signed(64))
        cb_in = Signal(signed(64))
        # Both operands clamp to in_bits first (apply_add).
        ib = in_bits[:7]
        hi_in, lo_in = Signal(signed(66)), Signal(signed(66))
        m.d.comb += [hi_in.eq((Const(1, 66) << (ib - 1)[:7]) - 1), lo_in.eq(-(hi_in + 1))]
        for x, y in ((xa, ca_in), (xb, cb_in)):
            m.d.comb += y.eq(Mux((ib == 0) | (ib > 64), x, Mux(x < lo_in, lo_in, Mux(x > hi_in, hi_in, x))))
        m.d.comb += sum_.eq((ca_in * kconst(0) + cb_in * kconst(1))[:64].as_signed())
        ad = requant(sum_, 1, kconst(2), kconst(4), kconst(5), Const(0, 7), "ad")
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["AD0"]):
                pop_view(o["a"], r, c, "AD1")
            with m.If(st == S["AD1"]):
                m.d.sync += xa.eq(xv)
                pop_view(o["b"], r, c, "AD2")
            with m.If(st == S["AD2"]):
                m.d.sync += xb.eq(xv)
                goto("AD3")
            with m.If(st == S["AD3"]):
                write_view(o["out"], r, c, ad, "NEXT")

        # GELU: hw/vec's pipelined engine (one element in flight, LATENCY cycles).
        m.submodules.gelu = gelu = GeluElem()
        m.d.comb += [gelu.valid.eq(st == S["GE1"]), gelu.x.eq(xv), gelu.in_clamp.eq(kconst(0)),
                     gelu.in_shift.eq(kconst(1)[:8]), gelu.erf_b.eq(kconst(2)), gelu.erf_c.eq(kconst(3)),
                     gelu.mult.eq(kconst(4)), gelu.shift.eq(kconst(5)[:6]), gelu.out_bits.eq(kconst(6)[:6]),
                     gelu.out_signed.eq(kconst(7)[0])]
        o = OFF[VecFn.GELU]
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["GE0"]):
                pop_view(o["src"], r, c, "GE1")
            with m.If(st == S["GE1"]):
                goto("GE2")
            with m.If(st == S["GE2"]):
                with m.If(gelu.out_valid):
                    write_view(o["out"], r, c, gelu.out, "NEXT")

        # LAYERNORM / SOFTMAX: hw/vec's row engines over row memories of `vec_row_elems` words.
        # Per row: load src (and the mask) into the row memories, run the engine, store the
        # output row memory. LAYERNORM loads its per-column mult / bias once (row 0).
        from amaranth.lib.memory import Memory

        H = cfg.vec_row_elems
        PAD_LN, PAD_SM = max(0, NB - 4), max(0, 2 * NB - 6)  # element loops of at least K * NB cycles
        m.submodules.ln = ln = LayerNormRow(H)
        m.submodules.sm = sm = SoftmaxRow(H)
        mems = {}
        for name, width in (("row_in", 64), ("row_out", 64), ("row_mult", 64), ("row_bias", 64), ("row_mask", 1)):
            mems[name] = m.submodules[name] = Memory(shape=width, depth=H, init=[])
        is_ln = fn_is[VecFn.LAYERNORM]
        w_in = mems["row_in"].write_port()
        w_mask = mems["row_mask"].write_port()
        w_mult = mems["row_mult"].write_port()
        w_bias = mems["row_bias"].write_port()
        w_out = mems["row_out"].write_port()
        r_in = mems["row_in"].read_port(transparent_for=())
        r_mask = mems["row_mask"].read_port(transparent_for=())
        r_mult = mems["row_mult"].read_port(transparent_for=())
        r_bias = mems["row_bias"].read_port(transparent_for=())
        r_out = mems["row_out"].read_port(transparent_for=())
        for eng, kfields in ((ln, ("hidden", "in_bits", "d_shift", "eps", "norm_bits", "shift", "out_bits",
                                   "out_signed")),
                             (sm, ("out_bits", "in_shift", "t_in_max", "t_max", "ln2", "div_mult", "div_shift",
                                   "poly_b", "poly_c", "recip_num", "recip_shift"))):
            for i, k in enumerate(kfields):
                if k in eng.CONSTS:
                    m.d.comb += getattr(eng, k).eq(kconst(i)[:len(getattr(eng, k))])
            m.d.comb += eng.cols.eq(cols)
        m.d.comb += [
            r_in.addr.eq(Mux(is_ln, ln.rd_addr, sm.rd_addr)), ln.rd_data.eq(r_in.data), sm.rd_data.eq(r_in.data),
            r_mask.addr.eq(sm.mask_addr), sm.mask_data.eq(r_mask.data),
            r_mult.addr.eq(ln.par_addr), r_bias.addr.eq(ln.par_addr), ln.par_mult.eq(r_mult.data),
            ln.par_bias.eq(r_bias.data),
            w_out.addr.eq(Mux(is_ln, ln.wr_addr, sm.wr_addr)), w_out.data.eq(Mux(is_ln, ln.wr_data, sm.wr_data)),
            w_out.en.eq(Mux(is_ln, ln.wr_en, sm.wr_en)),
            r_out.addr.eq(c),
            w_in.addr.eq(c), w_in.data.eq(xv), w_mask.addr.eq(c), w_mult.addr.eq(c), w_bias.addr.eq(c),
            w_mult.data.eq(xv), w_bias.data.eq(xv),
            ln.start.eq((st == S["EN0"]) & is_ln), sm.start.eq((st == S["EN0"]) & ~is_ln),
        ]
        eng_done = Mux(is_ln, ln.done, sm.done)
        lo_ = OFF[VecFn.LAYERNORM]
        so_ = OFF[VecFn.SOFTMAX]
        src_off = Mux(is_ln, lo_["src"], so_["src"])
        out_off = Mux(is_ln, lo_["out"], so_["out"])
        mask_base = dword(so_["mask"])
        ln_consts = dword(lo_["consts"])
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["LN0"]):  # LAYERNORM: the constants are for this row length and fit
                with m.If((kconst(0) != cols) | (cols > H) | (cols < 2)):
                    fault()
                with m.Elif(r == 0):
                    goto("PM0")
                with m.Else():
                    goto("LD0")
            with m.If(st == S["PM0"]):  # mult[c], then bias[c]
                read_raw(ln_consts + ((c + 8) << 3), 8, 1, "PM1")
            with m.If(st == S["PM1"]):
                m.d.comb += w_mult.en.eq(1)
                read_raw(ln_consts + ((c + 8 + cols) << 3), 8, 1, "PM2")
            with m.If(st == S["PM2"]):
                m.d.comb += w_bias.en.eq(1)
                with m.If(c == cols - 1):
                    m.d.sync += c.eq(0)
                    goto("LD0")
                with m.Else():
                    m.d.sync += c.eq(c + 1)
                    goto("PM0")
            with m.If(st == S["LD0"]):  # the row into row_in
                with m.If((cols > H) | (cols < 2)):
                    fault()
                with m.Else():
                    pop_view(src_off, r, c, "LD1")
            with m.If(st == S["LD1"]):
                m.d.comb += w_in.en.eq(1)
                with m.If(is_ln):
                    m.d.sync += idle.eq(PAD_LN)
                    goto("LD3")
                with m.Else():  # the mask (no mask: the streamer re-reads src, ignored: every key kept)
                    pop_view(so_["mask"], r, c, "LD2")
            with m.If(st == S["LD2"]):
                m.d.comb += [w_mask.data.eq((mask_base == 0) | (xv != 0)), w_mask.en.eq(1)]
                m.d.sync += idle.eq(PAD_SM)
                goto("LD3")
            with m.If(st == S["LD3"]):  # padded so that the streamer keeps up (only when NB > 1)
                with m.If(idle != 0):
                    m.d.sync += idle.eq(idle - 1)
                with m.Elif(c == cols - 1):
                    m.d.sync += c.eq(0)
                    goto("EN0")
                with m.Else():
                    m.d.sync += c.eq(c + 1)
                    goto("LD0")
            with m.If(st == S["EN0"]):
                goto("EN1")
            with m.If(st == S["EN1"]):
                with m.If(eng_done):
                    goto("OW0")
            with m.If(st == S["OW0"]):  # row_out[c] is read in this cycle
                goto("OW1")
            with m.If(st == S["OW1"]):
                write_view(out_off, r, c, r_out.data.as_signed(), "OW2")
            with m.If(st == S["OW2"]):
                with m.If(c == cols - 1):
                    m.d.sync += c.eq(0)
                    goto("RNEXT")
                with m.Else():
                    m.d.sync += c.eq(c + 1)
                    goto("OW0")
            with m.If(st == S["RNEXT"]):
                with m.If(r == rows - 1):
                    goto("DRAIN")
                with m.Else():
                    m.d.sync += r.eq(r + 1)
                    goto("ROW")

        # PACK_A / PACK_W: the codes into the ABUF / WBUF bit-plane layouts of bebert/layout.py,
        # every byte of the padded layout (padding is 0). Rows (padded to the array tile) by
        # groups of 8 columns: 8 element slots (a read, or an idle slot of a read's length in
        # the padding), then one byte per plane.
        is_pa = fn_is[VecFn.PACK_A]
        PAD_PK = max(0, NB - 4)
        Wd, lw = cfg.xnor_width, (cfg.xnor_width - 1).bit_length()
        Rr, lr = cfg.pe_rows, (cfg.pe_rows - 1).bit_length()
        Cc, lc = cfg.pe_cols, (cfg.pe_cols - 1).bit_length()
        pa, pw = OFF[VecFn.PACK_A], OFF[VecFn.PACK_W]
        bits_ = Signal(4)
        with m.If(self.start):
            m.d.sync += bits_.eq(field(self.word, Op.VEC, "bits"))
        pe, pp = Signal(3), Signal(4)
        real = Signal()
        pb = [Signal(8, name=f"plane{i}") for i in range(8)]
        kw_n = Signal(16)  # words of K: ceil(cols / W)
        m.d.comb += kw_n.eq((cols + Wd - 1) >> lw)
        kb_n = Signal(24)  # byte groups per row
        m.d.comb += kb_n.eq(kw_n << (lw - 3))
        n_rows = Signal(24)  # padded rows
        m.d.comb += n_rows.eq(Mux(is_pa, ((rows + Rr - 1) >> lr) << lr, ((rows + Cc - 1) >> lc) << lc))
        kk = Signal(24)
        m.d.comb += kk.eq(Cat(pe, j))  # column of the slot: j = byte group, pe = element
        jw, b0 = Signal(16), Signal(16)
        m.d.comb += [jw.eq(j >> (lw - 3)), b0.eq((j << 3) & (Wd - 1))]
        # PACK_W: out + p plane_bytes + ((n // C) KW + kw) EB + ((n % C) W + b0) / 8
        w_addr = Signal(32)
        m.d.comb += w_addr.eq(dword(pw["out"]) + pp * dword(pw["plane_bytes"])
                              + ((r >> lc) * kw_n + jw) * (Cc * Wd // 8) + ((((r & (Cc - 1)) << lw) + b0) >> 3))
        # PACK_A: entry = mt P KW + P j0 + p n_c + (j - j0), j0 = (j // ch) ch, n_c = min(ch, KW - j0)
        ch = Signal(16)
        m.d.comb += ch.eq(Mux(dword(pa["chunk"]) == 0, kw_n, dword(pa["chunk"])[:16]))
        j0, n_c = Signal(16), Signal(16)
        m.d.comb += [j0.eq((jw // ch) * ch), n_c.eq(Mux(ch < kw_n - j0, ch, kw_n - j0))]
        entry = Signal(32)
        m.d.comb += entry.eq((r >> lr) * bits_ * kw_n + bits_ * j0 + pp * n_c + (jw - j0))
        a_addr = Signal(32)
        m.d.comb += a_addr.eq(dword(pa["out"]) + entry * (Rr * Wd // 8) + ((((r & (Rr - 1)) << lw) + b0) >> 3))
        # The code of a slot: PACK_A optionally requantizes (consts != 0), then saturates to `bits`.
        pv = Signal(signed(64))
        psigned = dword(pa["signed"]) != 0
        plo, phi = Signal(signed(66)), Signal(signed(66))
        m.d.comb += [phi.eq(Mux(psigned, (Const(1, 66) << (bits_ - 1)[:4]) - 1, (Const(1, 66) << bits_) - 1)),
                     plo.eq(Mux(psigned, -(Const(1, 66) << (bits_ - 1)[:4]), 0))]
        pre = Signal(signed(64))
        m.d.comb += pre.eq(Mux(dword(pa["consts"]) != 0, rq, xa))
        m.d.comb += pv.eq(Mux(is_pa, Mux(pre < plo, plo, Mux(pre > phi, phi, pre)), xa))
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["PKS"]):  # the layout of this machine's arrays, nothing else
                ok = Mux(is_pa, (dword(pa["array_rows"]) == Rr) & (dword(pa["width"]) == Wd),
                         (dword(pw["array_cols"]) == Cc) & (dword(pw["width"]) == Wd))
                with m.If(~ok):
                    fault()
                with m.Else():
                    m.d.sync += [r.eq(0), j.eq(0), pe.eq(0), pp.eq(0)]
                    goto("PK0")
            with m.If(st == S["PK0"]):
                m.d.sync += [real.eq((r < rows) & (kk < cols)), idle.eq(PAD_PK)]
                with m.If((r < rows) & (kk < cols)):
                    pop_view(OFF[VecFn.PACK_A]["src"], r, kk, "PK1")
                with m.Else():  # padding: no read (the streamer skips it too), one cycle as a POP
                    goto("PKI")
            with m.If(st == S["PKI"]):
                goto("PK1")
            with m.If(st == S["PK1"]):  # padded so that the streamer keeps up (only when NB > 4)
                m.d.sync += xa.eq(Mux(real, xv, 0))
                with m.If(idle != 0):
                    m.d.sync += idle.eq(idle - 1)
                with m.Else():
                    goto("PK2")
            with m.If(st == S["PK2"]):
                for i in range(8):
                    m.d.sync += pb[i].bit_select(pe, 1).eq(real & pv[i])
                with m.If(pe == 7):
                    m.d.sync += [pe.eq(0), pp.eq(0)]
                    goto("PK3")
                with m.Else():
                    m.d.sync += pe.eq(pe + 1)
                    goto("PK0")
            with m.If(st == S["PK3"]):
                byte = Signal(8)
                m.d.comb += byte.eq(Cat(*pb).word_select(pp[:3], 8))
                write_raw(Mux(is_pa, a_addr, w_addr), byte, "PK4")
            with m.If(st == S["PK4"]):
                with m.If(pp == bits_ - 1):
                    m.d.sync += pp.eq(0)
                    goto("PK5")
                with m.Else():
                    m.d.sync += pp.eq(pp + 1)
                    goto("PK3")
            with m.If(st == S["PK5"]):
                with m.If(j == kb_n - 1):
                    m.d.sync += j.eq(0)
                    with m.If(r == n_rows - 1):
                        goto("DRAIN")
                    with m.Else():
                        m.d.sync += r.eq(r + 1)
                        goto("PK0")
                with m.Else():
                    m.d.sync += j.eq(j + 1)
                    goto("PK0")

        # LUT: out = table[src + offset] (int32 entries).
        o = OFF[VecFn.LUT]
        li = Signal(signed(65))
        m.d.comb += li.eq(xv + dword(o["offset"]).as_signed())
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["LU0"]):
                read_view(o["src"], r, c, "LU1")
            with m.If(st == S["LU1"]):
                with m.If((li < 0) | (li >= dword(o["size"]))):
                    fault()
                with m.Else():
                    read_raw(dword(o["table"]) + (li[:32] << 2), 4, 1, "LU2")
            with m.If(st == S["LU2"]):
                write_view(o["out"], r, c, xv, "NEXT")

        # COMBINE: out = sum_m in_m * w_m over COMBINE_MAX_MEMBERS slots (absent members: an
        # idle slot of one read's length, so that the duration does not depend on `members`).
        o = OFF[VecFn.COMBINE]
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["CB0"]):
                m.d.sync += [acc.eq(0), j.eq(0)]
                goto("CB1")
            with m.If(st == S["CB1"]):
                with m.If(j == COMBINE_MAX_MEMBERS):
                    write_view(o["out"], r, c, acc, "NEXT")
                with m.Elif(j < dword(0)):
                    read_view(o["inputs"] + VIEW_WORDS * j[:3], r, c, "CB2")
                with m.Else():
                    m.d.sync += idle.eq(cfg.dram_latency_cycles + NB)
                    goto("CB2")
            with m.If(st == S["CB2"]):
                with m.If(j < dword(0)):
                    m.d.sync += [acc.eq((acc + xv * kconst(j[:3]))[:64].as_signed()), j.eq(j + 1)]
                    goto("CB1")
                with m.Elif(idle == 0):
                    m.d.sync += j.eq(j + 1)
                    goto("CB1")
                with m.Else():
                    m.d.sync += idle.eq(idle - 1)

        # DOT: out[r, j] = bias[j] + sum_c src[r, c] * weight[j, c]  (int64, wrapping).
        o = OFF[VecFn.DOT]
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["DT0"]):  # once per (r, j): the bias
                read_raw(dword(o["bias"]) + (j << 3), 8, 1, "DT1")
            with m.If(st == S["DT1"]):
                m.d.sync += [acc.eq(xv), c.eq(0)]
                goto("DT2")
            with m.If(st == S["DT2"]):
                read_view(o["src"], r, c, "DT3")
            with m.If(st == S["DT3"]):
                m.d.sync += xa.eq(xv)
                read_view(o["weight"], j, c, "DT4")
            with m.If(st == S["DT4"]):
                prod = (acc + xa * xv)[:64].as_signed()
                with m.If(c == cols - 1):
                    m.d.sync += c.eq(0)
                    write_view(o["out"], r, j, prod, "DT0")
                    with m.If(j == aux - 1):
                        m.d.sync += j.eq(0)
                        with m.If(r == rows - 1):
                            m.d.sync += ret.eq(S["DRAIN"])
                        with m.Else():
                            m.d.sync += r.eq(r + 1)
                    with m.Else():
                        m.d.sync += j.eq(j + 1)
                with m.Else():
                    m.d.sync += [acc.eq(prod), c.eq(c + 1)]
                    goto("DT2")

        # EMBED: out[r, c] = word[ids[r]][c] + position[r][c] + token_type[types[r]][c].
        o = OFF[VecFn.EMBED]
        tabs = [o["word"], o["position"], o["token_type"]]

        def tword(k):  # word k of table `tsel`
            return dword(Mux(tsel == 0, tabs[0], Mux(tsel == 1, tabs[1], tabs[2])) + k)

        kind, tbase, tstride, tnrows, telem, tpairs = (tword(k) for k in range(TABLE_WORDS))
        cur_idx = Mux(tsel == 0, idx[0], Mux(tsel == 1, idx[1], idx[2]))
        row_addr = (tbase + cur_idx[:32] * tstride)[:32]
        if True:  # one If per state (a Switch here would lint CASEINCOMPLETE)
            with m.If(st == S["EM0"]):  # per row: the ids, then the types
                with m.If(c == 0):
                    read_view(o["ids"], r, 0, "EM1")
                with m.Else():
                    m.d.sync += [acc.eq(0), tsel.eq(0)]
                    goto("EM5")
            with m.If(st == S["EM1"]):
                m.d.sync += [idx[0].eq(xv), idx[1].eq(r)]
                read_view(o["types"], r, 0, "EM2")
            with m.If(st == S["EM2"]):
                m.d.sync += [idx[2].eq(xv), tsel.eq(0)]
                goto("EM3")
            with m.If(st == S["EM3"]):  # per row and table: check the index, read the pair
                with m.If((cur_idx < 0) | (cur_idx >= tnrows) | (kind > 1)
                          | ((kind == 0) & (telem != 1) & (telem != 2) & (telem != 4) & (telem != 8))):
                    fault()
                with m.Else():
                    read_raw(tpairs + (cur_idx[:32] << 3), 8, 1, "EM4")
            with m.If(st == S["EM4"]):
                for t in range(3):
                    with m.If(tsel == t):
                        m.d.sync += [p0[t].eq(rraw[:32].as_signed()), p1[t].eq(rraw[32:64].as_signed())]
                with m.If(tsel == 2):
                    m.d.sync += [tsel.eq(0), acc.eq(0)]
                    goto("EM5")
                with m.Else():
                    m.d.sync += tsel.eq(tsel + 1)
                    goto("EM3")
            with m.If(st == S["EM5"]):  # per element and table: a dense code or a sign byte
                with m.If(kind == 0):
                    read_raw(row_addr + (c * telem[:4])[:32], telem[:4], 1, "EM6")
                with m.Else():
                    read_raw(row_addr + (c >> 3), 1, 0, "EM6")
            with m.If(st == S["EM6"]):
                bit = (xv >> c[:3])[0]
                pv = Mux(tsel == 0, Mux(bit, p0[0], p1[0]), Mux(tsel == 1, Mux(bit, p0[1], p1[1]),
                                                                     Mux(bit, p0[2], p1[2])))
                m.d.sync += acc.eq((acc + Mux(kind == 0, xv, pv))[:64].as_signed())
                with m.If(tsel == 2):
                    goto("EM7")
                with m.Else():
                    m.d.sync += tsel.eq(tsel + 1)
                    goto("EM5")
            with m.If(st == S["EM7"]):
                write_view(o["out"], r, c, acc, "NEXT")

        # -- Read streaming ------------------------------------------------------------------
        # REQUANT, GELU, ADD, LAYERNORM's and SOFTMAX's row loads read their operands in a
        # fixed order, (r, c) with c inner and the operands of an element in turn, so a
        # streamer issues those reads ahead, one request per cycle, up to SD slots (issued, not
        # yet taken) ahead; the beats land in order in a FIFO, and the sequencer takes one
        # element per cycle (POP) where it used to wait a read. The streamer starts at the first
        # POP, which then waits PRIME cycles (the first element's reads, from the word alone),
        # after which, at the nominal memory, every POP finds its element: the kernels' element
        # loops are at least K * NB cycles long (LAYERNORM / SOFTMAX pad theirs by PAD_* when
        # NB > 1), so the beats keep ahead. A slower memory only stretches POP.
        L = cfg.dram_latency_cycles
        SD = 1 << (L + 24 - 1).bit_length()
        lsd = SD.bit_length() - 1
        two = fn_is[VecFn.ADD] | fn_is[VecFn.SOFTMAX]  # K = 2 operands per element
        prime = Signal(range(L + 2 * NB + 1))
        PRIME = Mux(two, L + 2 * NB, L + NB)
        s_k, s_r, s_c, s_done = Signal(), Signal(16), Signal(16), Signal()
        s_used = Signal(range(SD + 1))  # slots issued and not yet taken
        wp, rp = Signal(lsd + 1), Signal(lsd + 1)
        m.submodules.stream_fifo = sf = Memory(shape=64, depth=SD, init=[])
        sf_w = sf.write_port()
        sf_r = sf.read_port(domain="comb")
        m.d.comb += sf_r.addr.eq(rp[:lsd])
        s_off = Signal(range(DESC_BUF_WORDS))
        with m.Switch(fn):
            for f, offs in ((VecFn.REQUANT, ("src", "src")), (VecFn.GELU, ("src", "src")), (VecFn.ADD, ("a", "b")),
                            (VecFn.LAYERNORM, ("src", "src")), (VecFn.PACK_A, ("src", "src")),
                            (VecFn.PACK_W, ("src", "src"))):
                with m.Case(int(f)):
                    m.d.comb += s_off.eq(Mux(s_k, OFF[f][offs[1]], OFF[f][offs[0]]))
            with m.Case(int(VecFn.SOFTMAX)):
                so = OFF[VecFn.SOFTMAX]
                m.d.comb += s_off.eq(Mux(s_k & (mask_base != 0), so["mask"], so["src"]))
            with m.Default():  # not streamed: the streamer never starts
                m.d.comb += s_off.eq(0)
        # PACK_A / PACK_W walk their padded layout (rows n_rows, byte groups kb_n, 8 slots) and
        # skip the padding slots (no read) at one per cycle.
        is_pk = fn_is[VecFn.PACK_A] | fn_is[VecFn.PACK_W]
        s_pe = Signal(3)
        s_kk = Cat(s_pe, s_c)
        s_skip = Signal()
        m.d.comb += s_skip.eq(is_pk & ~((s_r < rows) & (s_kk < cols)))
        s_addr, _s_fmt, s_bad = view_gen(s_off, s_r, Mux(is_pk, s_kk, s_c), "stream")
        s_can = Signal()
        m.d.comb += s_can.eq(pf_go & ~s_done & (s_used < SD))
        do_issue, do_push, do_pop = Signal(), Signal(), Signal()
        with m.If(s_can & ~s_skip & ~s_bad):
            m.d.comb += [self.rd_req_valid.eq(1), self.rd_req_addr.eq(s_addr), self.rd_req_len.eq(NB),
                         do_issue.eq(self.rd_req_ready)]
        with m.If((do_issue | (s_can & s_skip)) & is_pk):
            m.d.sync += s_pe.eq(s_pe + 1)
            with m.If(s_pe == 7):
                with m.If(s_c == kb_n - 1):
                    m.d.sync += s_c.eq(0)
                    with m.If(s_r == n_rows - 1):
                        m.d.sync += s_done.eq(1)
                    with m.Else():
                        m.d.sync += s_r.eq(s_r + 1)
                with m.Else():
                    m.d.sync += s_c.eq(s_c + 1)
        with m.If(do_issue & ~is_pk):
            with m.If(s_k | ~two):
                m.d.sync += s_k.eq(0)
                with m.If(s_c == cols - 1):
                    m.d.sync += s_c.eq(0)
                    with m.If(s_r == rows - 1):
                        m.d.sync += s_done.eq(1)
                    with m.Else():
                        m.d.sync += s_r.eq(s_r + 1)
                with m.Else():
                    m.d.sync += s_c.eq(s_c + 1)
            with m.Else():
                m.d.sync += s_k.eq(1)
        # Beats of streamed reads (never in flight together with the sequencer's own reads).
        with m.If(self.rd_data_valid & (s_inflight != 0)):
            if NB == 1:
                m.d.comb += [sf_w.data.eq(self.rd_data[:64]), do_push.eq(1)]
            else:
                sb = Signal(range(NB))
                sbuf = Signal(64)
                lb = max(1, (NB - 1).bit_length())
                m.d.sync += [sbuf.word_select(sb[:lb], bus).eq(self.rd_data), sb.eq(Mux(sb == NB - 1, 0, sb + 1))]
                m.d.comb += [sf_w.data.eq(Cat(sbuf[:bus * (NB - 1)], self.rd_data)), do_push.eq(sb == NB - 1)]
        m.d.comb += [sf_w.addr.eq(wp[:lsd]), sf_w.en.eq(do_push)]
        with m.If(do_push):
            m.d.sync += wp.eq(wp + 1)
        m.d.sync += s_inflight.eq(s_inflight + do_issue - do_push)
        with m.If(prime != 0):
            m.d.sync += prime.eq(prime - 1)
        with m.If(st == S["POP"]):
            with m.If(~pf_go):
                m.d.sync += [pf_go.eq(1), prime.eq(PRIME)]
            with m.Elif((prime == 0) & (wp != rp)):
                m.d.comb += do_pop.eq(1)
                m.d.sync += [rraw.eq(sf_r.data), re_.eq(velem), rs_.eq(vsigned), rsat.eq(vsat), rp.eq(rp + 1),
                             st.eq(ret)]
        m.d.sync += s_used.eq(s_used + do_issue - do_pop)
        with m.If(st == S["IDLE"]):
            with m.If(self.start):
                m.d.sync += [s_k.eq(0), s_r.eq(0), s_c.eq(0), s_pe.eq(0), s_done.eq(0), s_used.eq(0), rp.eq(wp),
                             prime.eq(0)]
        with m.If(s_can & ~s_skip & s_bad):
            fault()
        return m
