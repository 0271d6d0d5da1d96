"""COMPUTE stage: GEMM on the PE array (ABUF x WBUF -> accumulators -> the OUTPUT stage's snapshot), SYNC."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import GEMM_PIPELINE_CYCLES, SNAP_CYCLES, SYNC_CYCLES, AccelConfig
from bebert.isa import INSTR_BITS, Op

from .bitserial_accumulator import SHIFT_BITS, BitserialAccumulator
from .buffer import address_bits
from .decoder import field
from .issue import StageIssuer, StageSignature
from .popcount_array import PopcountArray
from .ports import buffer_read, snapshot_port

_LOOP_FIELDS = ("a", "w", "k", "stride", "wstride", "bits", "wbits", "signed", "wsigned", "mode", "init", "snap")


class GemmSequencer(wiring.Component):
    """The loops of one GEMM, one term per cycle, and the control that travels with each term.

    `start` (with `word`, a GEMM) in cycle t: in cycles t+1 .. t+n, n = bits * wbits * k, for
    q < wbits (outer), p < bits, j < k (inner) it presents `valid` with `a_addr` = a + p*stride
    + j and `w_addr` = w + q*wstride + j (modulo the buffer sizes) and the term's control:
    `first` (q = p = j = 0), `negate` (exactly one of (signed, p = bits-1), (wsigned,
    q = wbits-1)), `shift` = p + q + (1 in XNOR mode), `row_shift` = p, `xnor` (mode 0) and
    `init`. A snap GEMM then drains for GEMM_PIPELINE_CYCLES and raises `snap` in t+n+3 = t+D
    (D = n + SNAP_CYCLES), when the last term is in the accumulators. `last` is high in the
    GEMM's last cycle (t+n, or t+D with snap), `busy` from t+1 to its last cycle.
    """

    def __init__(self, config: AccelConfig):
        self.config = config
        super().__init__({
            "start": In(1), "word": In(INSTR_BITS),
            "valid": Out(1), "a_addr": Out(address_bits(config, "abuf")), "w_addr": Out(address_bits(config, "wbuf")),
            "first": Out(1), "negate": Out(1), "shift": Out(SHIFT_BITS), "row_shift": Out(SHIFT_BITS),
            "xnor": Out(1), "init": Out(1), "snap": Out(1), "busy": Out(1), "last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        g = {name: Signal(len(field(self.word, Op.GEMM, name)), name=f"g_{name}") for name in _LOOP_FIELDS}
        with m.If(self.start):
            m.d.sync += [g[n].eq(field(self.word, Op.GEMM, n)) for n in _LOOP_FIELDS]
        a_base, w_base = Signal(24), Signal(24)  # a + p*stride, w + q*wstride
        j, p, q = Signal(12), Signal(4), Signal(4)
        run = Signal()  # addressing
        drain = Signal(range(SNAP_CYCLES + 1))  # snap: cycles left after the last address
        end_j, end_p, end_q = j == g["k"] - 1, p == g["bits"] - 1, q == g["wbits"] - 1
        with m.If(self.start):
            m.d.sync += [run.eq(1), j.eq(0), p.eq(0), q.eq(0), a_base.eq(field(self.word, Op.GEMM, "a")),
                         w_base.eq(field(self.word, Op.GEMM, "w"))]
        with m.Elif(run):
            m.d.sync += j.eq(j + 1)
            with m.If(end_j):
                m.d.sync += [j.eq(0), p.eq(p + 1), a_base.eq(a_base + g["stride"])]
                with m.If(end_p):
                    m.d.sync += [p.eq(0), q.eq(q + 1), a_base.eq(g["a"]), w_base.eq(w_base + g["wstride"])]
                    with m.If(end_q):
                        m.d.sync += [run.eq(0), drain.eq(Mux(g["snap"], SNAP_CYCLES, 0))]
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        last_term = run & end_j & end_p & end_q
        m.d.comb += [
            self.valid.eq(run), self.a_addr.eq(a_base + j), self.w_addr.eq(w_base + j),
            self.first.eq((j == 0) & (p == 0) & (q == 0)),
            self.negate.eq((g["signed"] & end_p) ^ (g["wsigned"] & end_q)),
            self.shift.eq(p + q + ~g["mode"]), self.row_shift.eq(p), self.xnor.eq(~g["mode"]),
            self.init.eq(g["init"]),
            self.snap.eq(drain == 1),
            self.busy.eq(run | (drain != 0)),
            self.last.eq((last_term & ~g["snap"]) | (drain == 1)),
        ]
        return m


class ComputeStage(wiring.Component):
    """Executes GEMM and SYNC from the head of the COMPUTE queue (`ctl`, `StageSignature`).

    A GEMM issued in cycle t runs t+1 .. t+D, D = `bebert.timing.gemm_cycles` = bits * wbits * k
    (+ SNAP_CYCLES with snap), one term per cycle (`GemmSequencer`): term i's ABUF / WBUF
    entries are read in t+1+i (`abuf`, `wbuf`: `hw/ports.py buffer_read`), the popcount array
    registers popcount(a & s) and popcount(a) at the end of t+2+i, the accumulators take the
    term at the end of t+3+i (`BitserialAccumulator`; an init GEMM clears them at the end of
    t+2, before its first term). Without snap the last two terms drain during the next
    instruction (the same accumulators, in order; the next GEMM's first term reaches them no
    earlier than t+D+4), so consecutive GEMMs of one tile leave only the one-cycle issue gap.
    With snap, `snapshot.snap` is high in t+D and `snapshot.acc` / `snapshot.row` (the
    registered accumulators: PE (r, c) holds acc[r][c] + row[r], modulo 2^32) are final from
    t+D-1 until the next GEMM's first term. A SYNC runs for SYNC_CYCLES and moves tokens.

    The stage keeps D by its own loop counters: the issuer is given D = 1 and `hold` while the
    sequencer has not reached its last cycle (the same count as `gemm_cycles`, held by tests).
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"ComputeStage needs an AccelConfig, got {type(config).__name__}")
        if GEMM_PIPELINE_CYCLES != 2 or SNAP_CYCLES != GEMM_PIPELINE_CYCLES + 1 or SYNC_CYCLES != 1:
            raise ValueError("ComputeStage implements a 2-cycle GEMM pipeline (buffer read + popcount "
                             "register, accumulate), a 1-cycle snapshot copy and gives its issuer D = 1 "
                             "(a SYNC's); bebert/config.py says otherwise")
        self.config = config
        eb = config.entry_bits
        super().__init__({
            "ctl": Out(StageSignature),
            "abuf": Out(buffer_read(eb["abuf"], address_bits(config, "abuf"))),
            "wbuf": Out(buffer_read(eb["wbuf"], address_bits(config, "wbuf"))),
            "snapshot": Out(snapshot_port(config.pe_rows, config.pe_cols)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
        m.submodules.issuer = iss = StageIssuer()
        m.submodules.sequencer = seq = GemmSequencer(cfg)
        m.submodules.popcount = pop = PopcountArray(R, C, W)
        m.submodules.accumulator = accu = BitserialAccumulator(R, C, W.bit_length())
        wiring.connect(m, wiring.flipped(self.ctl), iss.ctl)
        word = self.ctl.head.word
        is_gemm = word[0:8] == Op.GEMM
        m.d.comb += [
            iss.duration.eq(SYNC_CYCLES),  # GEMM: 1, then held until the sequencer's last cycle
            seq.start.eq(iss.issue & is_gemm), seq.word.eq(word),
            iss.hold.eq(seq.busy & ~seq.last),
            self.abuf.en.eq(seq.valid), self.abuf.addr.eq(seq.a_addr),
            self.wbuf.en.eq(seq.valid), self.wbuf.addr.eq(seq.w_addr),
        ]

        # Control travels beside the data: address cycle -> popcount cycle -> accumulate cycle.
        s1 = {n: Signal(len(getattr(seq, n)), name=f"s1_{n}")
              for n in ("valid", "first", "negate", "shift", "row_shift", "xnor", "init")}
        s2 = {n: Signal(len(s1[n]), name=f"s2_{n}") for n in s1}
        m.d.sync += [s1[n].eq(getattr(seq, n)) for n in s1]
        m.d.sync += [s2[n].eq(s1[n]) for n in s1]
        m.d.comb += [
            pop.en.eq(s1["valid"]), pop.a.eq(self.abuf.data), pop.s.eq(self.wbuf.data),
            accu.zero.eq(s1["valid"] & s1["first"] & s1["init"]),
            accu.en.eq(s2["valid"]), accu.negate.eq(s2["negate"]), accu.shift.eq(s2["shift"]),
            accu.row_shift.eq(s2["row_shift"]), accu.row_en.eq(s2["xnor"]),
            accu.pas.eq(pop.pas), accu.pa.eq(pop.pa),
            self.snapshot.acc.eq(accu.acc), self.snapshot.row.eq(accu.row), self.snapshot.snap.eq(seq.snap),
        ]
        return m
