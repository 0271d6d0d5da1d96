"""The v3 vector unit: runs one VEC instruction (`bebert.vector`) over its own DRAM ports.

Ports (docs/MACHINE_V3.md, "RTL structure and interfaces"): `start` (a pulse, with the VEC
word on `word`), `busy` (from the next cycle until the VEC has ended, every write answered),
`fault` (the VEC's descriptor is one the unit cannot process; sticky until the next
`start`), the read port `vrd_*` (bursts at bus-aligned addresses, several outstanding, beats
in request order) and the write port `vwr_*` (single beats, byte strobes, answered in order).

Parts (hw/vec/): `Setup` fetches and parses the descriptor and the constant blocks, `Derive`
turns them into the engines' settings and checks them (a failed check is a fault: the VEC
ends at once), then the tile engine (`TileEngine`: T lanes, the row tile's rows; with the
`StreamReader`, `ColumnAssembler`, `Params` and `Writer`) or the scalar engine runs it.

Timing: at the nominal memory `busy` lasts exactly `bebert.vector.vec_cycles(...)` cycles,
a function of the VEC word and the configuration only (see that module's table); a slower
memory stretches it and changes nothing else.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import FIELDS, INSTR_BITS, Op
from bebert.vector import VecFn

from .vec.derive import Derive
from .vec.params import Params
from .vec.reader import ColumnAssembler, ReadPort, StreamReader
from .vec.scalar import ScalarEngine
from .vec.setup import Setup
from .vec.tile_engine import K_LN, K_SM, TileEngine
from .vec.writer import WritePort, Writer

IMPLEMENTED = tuple(VecFn)
TILE_FNS = (VecFn.ADD, VecFn.REQUANT, VecFn.LAYERNORM, VecFn.SOFTMAX, VecFn.GELU)


def _field(word, name: str):
    lsb, width = FIELDS[Op.VEC][name]
    return word[lsb:lsb + width]


class VectorUnit(wiring.Component):
    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"VectorUnit needs an AccelConfig, got {type(config).__name__}")
        if config.dram_bytes_per_cycle < 8:
            raise ValueError(f"VectorUnit needs a bus of at least 8 bytes, got dram_bytes_per_cycle="
                             f"{config.dram_bytes_per_cycle}")
        self.config = config
        bus = config.bus_bits
        super().__init__({
            "start": In(1), "word": In(INSTR_BITS), "busy": Out(1), "done": Out(1), "fault": Out(1),
            "vrd": Out(ReadPort(bus)), "vwr": Out(WritePort(bus)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.setup = su = Setup(cfg)
        m.submodules.derive = dv = Derive(cfg)
        m.submodules.engine = eng = TileEngine(cfg)
        m.submodules.reader = rdr = StreamReader(cfg)
        m.submodules.columns = asm = ColumnAssembler(cfg)
        m.submodules.params = par = Params(cfg, su.depth)
        m.submodules.writer = wr = Writer(cfg)
        m.submodules.scalar = sc = ScalarEngine(cfg, su.depth)
        fields = {n: Signal(FIELDS[Op.VEC][n][1], name=f"vec_{n}") for n in ("fn", "desc", "rows", "cols", "bits",
                                                                               "aux", "io")}
        phase = Signal(3)               # 0 idle, 1 setup, 2 check, 3 run, 4 drain
        go = Signal()
        with m.If(self.start):
            m.d.sync += [f.eq(_field(self.word, n)) for n, f in fields.items()]
            m.d.sync += [phase.eq(1), go.eq(1), self.fault.eq(0)]
        m.d.sync += go.eq(self.start)
        m.d.comb += [su.start.eq(go), su.fn.eq(fields["fn"]), su.desc.eq(fields["desc"]), su.cols.eq(fields["cols"]),
                     su.aux.eq(fields["aux"]), su.io.eq(fields["io"]), su.bits.eq(fields["bits"])]
        m.d.comb += [dv.fn.eq(fields["fn"]), dv.rows.eq(fields["rows"]), dv.cols.eq(fields["cols"]),
                     dv.bits.eq(fields["bits"]), dv.aux.eq(fields["aux"]), dv.io.eq(fields["io"]), dv.desc.eq(fields["desc"]),
                     dv.slots.eq(su.slots), dv.k.eq(su.k), dv.a.eq(su.a), dv.g.eq(su.g)]
        tile = Signal()
        m.d.comb += tile.eq(sum((fields["fn"] == int(f)) for f in TILE_FNS) != 0)
        self._ports(m, su, rdr, wr, sc, tile)
        self._tile(m, dv, eng, rdr, asm, par, wr, su, fields)
        m.d.comb += [sc.fn.eq(fields["fn"]), sc.rows.eq(fields["rows"]), sc.cols.eq(fields["cols"]), sc.io.eq(fields["io"]),
                     sc.aux.eq(fields["aux"]), sc.desc.eq(fields["desc"]), sc.slots.eq(su.slots),
                     sc.reg_b.eq(su.reg_b), sc.off_b.eq(su.off_b), sc.rd_data.eq(su.rd_data)]
        with m.If(~tile):
            m.d.comb += su.rd_addr.eq(sc.rd_addr)
        started = Signal()
        with m.Switch(phase):
            with m.Case(1):
                with m.If(su.done):
                    m.d.sync += phase.eq(2)
            with m.Case(2):
                with m.If(dv.fault):
                    m.d.sync += [self.fault.eq(1), phase.eq(0)]
                    m.d.comb += self.done.eq(1)
                with m.Elif(tile):
                    m.d.comb += [eng.start.eq(1), wr.start.eq(1)]
                    m.d.sync += [phase.eq(3), started.eq(0)]
                with m.Else():
                    m.d.comb += sc.start.eq(1)
                    m.d.sync += [phase.eq(3), started.eq(0)]
            with m.Case(3):
                m.d.sync += started.eq(1)
                with m.If(started & Mux(tile, ~eng.busy, ~sc.busy)):
                    m.d.sync += phase.eq(4)
                    with m.If(~tile & sc.fault):
                        m.d.sync += self.fault.eq(1)
            with m.Case(4):
                with m.If(Mux(tile, wr.idle & rdr.idle, sc.idle & (self._outstanding == 0))):
                    m.d.sync += phase.eq(0)
                    m.d.comb += self.done.eq(1)
        m.d.comb += self.busy.eq(phase != 0)
        return m

    def _ports(self, m, su, rdr, wr, sc, tile):
        """vrd: the setup's fetches during setup, then the tile reader's runs or the scalar
        engine's elements; vwr: the tile writer or the scalar engine."""
        r, w = self.vrd, self.vwr
        own = su.own_read
        eng_rd = Mux(tile, rdr.port.req_valid, sc.rd.req_valid)
        m.d.comb += [r.req_valid.eq(Mux(own, su.port.req_valid, eng_rd)),
                     r.req_addr.eq(Mux(own, su.port.req_addr, Mux(tile, rdr.port.req_addr, sc.rd.req_addr))),
                     r.req_len.eq(Mux(own, su.port.req_len, Mux(tile, rdr.port.req_len, sc.rd.req_len))),
                     su.port.req_ready.eq(own & r.req_ready), rdr.port.req_ready.eq(~own & tile & r.req_ready),
                     sc.rd.req_ready.eq(~own & ~tile & r.req_ready),
                     su.port.data.eq(r.data), rdr.port.data.eq(r.data), sc.rd.data.eq(r.data),
                     su.port.data_valid.eq(own & r.data_valid), rdr.port.data_valid.eq(~own & tile & r.data_valid),
                     sc.rd.data_valid.eq(~own & ~tile & r.data_valid)]
        for f in ("valid", "addr", "data", "strb"):
            m.d.comb += getattr(w, f).eq(Mux(tile, getattr(wr.port, f), getattr(sc.wr, f)))
        m.d.comb += [wr.port.ready.eq(tile & w.ready), sc.wr.ready.eq(~tile & w.ready),
                     wr.port.resp_valid.eq(tile & w.resp_valid), sc.wr.resp_valid.eq(~tile & w.resp_valid)]
        self._outstanding = n = Signal(16)
        m.d.sync += n.eq(n + (w.valid & w.ready) - w.resp_valid)

    def _tile(self, m, dv, eng, rdr, asm, par, wr, su, fields):
        """The tile engine with its reader, column assembler, parameters and writer."""
        wiring.connect(m, dv.tc, eng.tc)
        wiring.connect(m, dv.lc, eng.lc)
        wiring.connect(m, dv.rc, rdr.cfg)
        wiring.connect(m, dv.wc, wr.cfg)
        rows_kind = (dv.tc.kind == K_LN) | (dv.tc.kind == K_SM)
        m.d.comb += [rdr.go.eq(eng.rd_go), rdr.restart.eq(eng.start), rdr.ntiles.eq(Mux(rows_kind, 1, dv.tc.tiles))]
        m.d.comb += [asm.start.eq(eng.start), asm.cols.eq(fields["cols"]), asm.elem.eq(fields["io"][2:4]),
                     asm.two.eq(dv.tc.two),
                     asm.a_beat.eq(rdr.a_beat), asm.a_valid.eq(rdr.a_valid), rdr.a_pop.eq(asm.a_pop),
                     asm.b_beat.eq(rdr.b_beat), asm.b_valid.eq(rdr.b_valid), rdr.b_pop.eq(asm.b_pop),
                     eng.in_ready.eq(asm.ready), eng.in_a.eq(asm.col_a), eng.in_b.eq(asm.col_b),
                     asm.take.eq(eng.in_take)]
        m.d.comb += [par.col.eq(eng.par_col), par.en.eq(eng.par_en), par.cols.eq(fields["cols"]),
                     par.masked.eq(dv.tc.masked), par.reg_k.eq(su.reg_k), par.off_k.eq(su.off_k),
                     par.reg_m.eq(su.reg_m), par.off_m.eq(su.off_m),
                     su.rd_addr.eq(par.rd_addr), su.rd_en.eq(par.rd_en), par.rd_data.eq(su.rd_data),
                     su.rd2_addr.eq(par.rd2_addr), su.rd2_en.eq(par.rd2_en), par.rd2_data.eq(su.rd2_data),
                     eng.par_mult.eq(par.mult), eng.par_bias.eq(par.bias), eng.par_mask.eq(par.mask)]
        m.d.comb += [wr.valid.eq(eng.out_valid), eng.out_accept.eq(wr.accept), wr.col.eq(eng.out_col),
                     wr.tile.eq(eng.out_tile), wr.last.eq(eng.out_last), wr.ys.eq(eng.out_ys),
                     wr.code.eq(eng.out_code)]
