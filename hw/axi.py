"""The accelerator behind AXI: AXI4 masters for its DRAM ports, AXI4-Lite for start / status.

`AxiAccelerator(config)` (Verilog top `bebert_axi`, written by `bebert rtl` next to
`bebert_accel.v`) wraps `Accelerator`. Its DRAM ports are listed as port *groups*
(`PORT_GROUPS`), each a prefix of the accelerator's ports and a kind; every group becomes
its own AXI4 master `m_axi_<prefix>_*` (read-only or write-only, ARID = AWID = 0), so
when the accelerator's port set changes the wrapper follows by editing that list:

- `ReadGroup(prefix, aligned)`: `<p>_req_valid/ready/addr/len`, `<p>_data_valid/data`
  (docs/ARCHITECTURE.md, "External interface"). AR: ARADDR = the address rounded down to
  the bus, ARSIZE = log2(B/8), ARBURST = INCR, ARLEN = beats - 1, a request split into
  bursts of at most 256 beats that never cross a 4 KiB boundary (AXI4's two limits).
  `<p>_req_ready` is high when the bridge can take a request (its bookkeeping FIFO has room).
  R: RREADY = 1 (the accelerator takes every beat); beats are registered once. An unaligned
  group (`aligned=False`, the vector unit's `vrd`: beat j carries the bytes from addr + j B/8)
  reads one aligned beat more and shifts each pair of beats by the offset.
- `WriteGroup(prefix)`: `<p>_req_*`, `<p>_data_valid/ready/data` (and `<p>_data_strb` when
  the group has byte strobes), `<p>_resp_valid`. AW split as AR; W: the data beats in order,
  WSTRB all ones (or the strobes), WLAST on the last beat of every burst; B: BREADY = 1,
  `<p>_resp_valid` pulses once every burst of a request has its response.
- `StrobedWriteGroup(prefix)`: single beats at any byte address with strobes (`vwr`): one
  AXI write (AWLEN = 0) of the beat shifted to the bus, and a second one for the bytes that
  spill into the next bus word; `<p>_resp_valid` once both are answered.

The instruction port is an AXI4 read master too (`m_axi_imem_*`): the wrapper reads the
16-byte word `PROG_BASE + 16 * imem_addr` from memory whenever fetch presents a new index
(no prefetch: every word waits for a read round trip, which stretches the cycle count and
changes nothing else, per the architecture document's rule on slower memories).

AXI4-Lite slave `s_axil_*` (32-bit data, byte addresses; writes need AW and W, reads answer
the cycle after AR; BRESP = RRESP = OKAY):

| offset | name | access | meaning |
| --- | --- | --- | --- |
| 0x00 | CONTROL | W | bit 0: start (taken while not busy) |
| 0x00 | STATUS | R | bit 0 busy, bit 1 done, bit 2 error |
| 0x04 | ERROR_CODE | R | `bebert.hw.ErrorCode` |
| 0x08 | ERROR_PC | R | index of the word fetch stopped on |
| 0x0C | CYCLES | R | the run's cycle count |
| 0x10 | PROG_BASE | RW | byte address of instruction 0 in memory |
| 0x14 | BUS_BYTES | R | B/8, the data width of every master in bytes |

One clock (`clk`) and one synchronous active-high reset (`rst`) for everything: an AXI
system with ARESETn inverts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS

from .load_dma import ADDR_BITS, LEN_BITS
from .top import Accelerator

MAX_BURST = 256  # AXI4 INCR bursts: at most 256 beats ...
BOUNDARY = 4096  # ... and never across a 4 KiB boundary
OUTSTANDING = 4  # requests a bridge keeps in flight
ID_BITS = 1  # AXI IDs: one ID (0) per master, so every response comes back in order


@dataclass(frozen=True)
class ReadGroup:
    """A DRAM read port of the accelerator: `<prefix>_req_*` and `<prefix>_data*`."""

    prefix: str
    aligned: bool = True

    def accel_fields(self, bus: int) -> dict[str, tuple[str, int]]:  # name -> (direction seen by the accelerator, width)
        return {"req_valid": ("out", 1), "req_ready": ("in", 1), "req_addr": ("out", ADDR_BITS),
                "req_len": ("out", LEN_BITS), "data_valid": ("in", 1), "data": ("in", bus)}


@dataclass(frozen=True)
class WriteGroup:
    """A DRAM burst write port: `<prefix>_req_*`, `<prefix>_data*` (optional strobes), `<prefix>_resp_valid`."""

    prefix: str
    strobes: bool = False

    def accel_fields(self, bus: int) -> dict[str, tuple[str, int]]:
        f = {"req_valid": ("out", 1), "req_ready": ("in", 1), "req_addr": ("out", ADDR_BITS),
             "req_len": ("out", LEN_BITS), "data_valid": ("out", 1), "data_ready": ("in", 1),
             "data": ("out", bus), "resp_valid": ("in", 1)}
        return f | ({"data_strb": ("out", bus // 8)} if self.strobes else {})


@dataclass(frozen=True)
class StrobedWriteGroup:
    """Single-beat writes at any byte address: `<prefix>_valid/ready/addr/data/strb`, `<prefix>_resp_valid`."""

    prefix: str

    def accel_fields(self, bus: int) -> dict[str, tuple[str, int]]:
        return {"valid": ("out", 1), "ready": ("in", 1), "addr": ("out", ADDR_BITS), "data": ("out", bus),
                "strb": ("out", bus // 8), "resp_valid": ("in", 1)}


# The accelerator's DRAM ports today (ISA v2): LOAD reads, STORE writes, the vector unit's
# reads (any alignment) and single-beat strobed writes. A new port set is a new list.
PORT_GROUPS = (ReadGroup("rd"), WriteGroup("wr"), ReadGroup("vrd", aligned=False), StrobedWriteGroup("vwr"))


def axi_read_members(bus: int) -> dict[str, tuple[str, int]]:
    """AXI4 read master signals (direction seen by the master)."""
    return {"arid": ("out", ID_BITS), "araddr": ("out", ADDR_BITS), "arlen": ("out", 8), "arsize": ("out", 3), "arburst": ("out", 2),
            "arvalid": ("out", 1), "arready": ("in", 1),
            "rid": ("in", ID_BITS), "rdata": ("in", bus), "rresp": ("in", 2), "rlast": ("in", 1), "rvalid": ("in", 1), "rready": ("out", 1)}


def axi_write_members(bus: int) -> dict[str, tuple[str, int]]:
    """AXI4 write master signals (direction seen by the master)."""
    return {"awid": ("out", ID_BITS), "awaddr": ("out", ADDR_BITS), "awlen": ("out", 8), "awsize": ("out", 3), "awburst": ("out", 2),
            "awvalid": ("out", 1), "awready": ("in", 1),
            "wdata": ("out", bus), "wstrb": ("out", bus // 8), "wlast": ("out", 1), "wvalid": ("out", 1),
            "wready": ("in", 1), "bid": ("in", ID_BITS), "bresp": ("in", 2), "bvalid": ("in", 1), "bready": ("out", 1)}


AXIL_MEMBERS = {"awaddr": ("in", 12), "awvalid": ("in", 1), "awready": ("out", 1),
                "wdata": ("in", 32), "wstrb": ("in", 4), "wvalid": ("in", 1), "wready": ("out", 1),
                "bresp": ("out", 2), "bvalid": ("out", 1), "bready": ("in", 1),
                "araddr": ("in", 12), "arvalid": ("in", 1), "arready": ("out", 1),
                "rdata": ("out", 32), "rresp": ("out", 2), "rvalid": ("out", 1), "rready": ("in", 1)}


def _members(fields: dict[str, tuple[str, int]], flip: bool = False) -> dict:
    """Signature members from {name: (direction, width)}: "out" is Out, "in" is In (`flip`: the reverse)."""
    return {n: (In(w) if (d == "out") == flip else Out(w)) for n, (d, w) in fields.items()}


def _signature(fields: dict[str, tuple[str, int]], flip: bool = False) -> wiring.Signature:
    return wiring.Signature(_members(fields, flip))


class _Splitter(wiring.Component):
    """Cuts (addr, beats) into AXI4 bursts: at most 256 beats, none across 4 KiB. `start`
    loads a request (addr aligned to the bus); each burst is offered on `burst_*` until
    `burst_ready`; `idle` when the last one is taken; `burst_last` marks it."""

    def __init__(self, bus: int):
        self.lg = (bus // 8).bit_length() - 1
        super().__init__({"start": In(1), "addr": In(ADDR_BITS), "beats": In(LEN_BITS + 1), "idle": Out(1),
                          "burst_valid": Out(1), "burst_ready": In(1), "burst_addr": Out(ADDR_BITS),
                          "burst_len": Out(9), "burst_last": Out(1)})

    def elaborate(self, platform):
        m = Module()
        addr, left = Signal(ADDR_BITS), Signal(LEN_BITS + 1)
        to_boundary = Signal(range(BOUNDARY + 1))
        n = Signal(9)
        m.d.comb += to_boundary.eq((BOUNDARY - addr[:12]) >> self.lg)
        m.d.comb += n.eq(Mux(left < MAX_BURST, left, MAX_BURST))
        m.d.comb += self.idle.eq((left == 0) & ~self.burst_valid)
        with m.If(self.start):
            m.d.sync += [addr.eq(self.addr), left.eq(self.beats)]
        with m.Elif(self.burst_valid):
            with m.If(self.burst_ready):
                m.d.sync += self.burst_valid.eq(0)
        with m.Elif(left != 0):  # register the next burst
            length = Mux(n < to_boundary, n, to_boundary)
            m.d.sync += [self.burst_valid.eq(1), self.burst_addr.eq(addr), self.burst_len.eq(length),
                         self.burst_last.eq(length == left), addr.eq(addr + (length << self.lg)),
                         left.eq(left - length)]
        return m


class ReadBridge(wiring.Component):
    """One accelerator read port (`port`, the accelerator's view flipped) onto an AXI4 read master (`axi`)."""

    def __init__(self, bus: int, aligned: bool):
        self.bus, self.aligned, self.nb = bus, aligned, bus // 8
        super().__init__({"port": Out(_signature(ReadGroup("").accel_fields(bus), flip=True)),
                          "axi": Out(_signature(axi_read_members(bus)))})

    def elaborate(self, platform):
        m = Module()
        p, a, nb = self.port, self.axi, self.nb
        lg = nb.bit_length() - 1
        off_bits = max(1, lg)
        m.submodules.split = sp = _Splitter(self.bus)
        m.submodules.info = info = SyncFIFO(width=off_bits + LEN_BITS, depth=OUTSTANDING)  # (offset, beats out)
        off = Signal(off_bits)
        m.d.comb += off.eq(p.req_addr[:lg] if lg and not self.aligned else 0)
        take = Signal()
        m.d.comb += [p.req_ready.eq(sp.idle & info.w_rdy), take.eq(p.req_valid & p.req_ready),
                     sp.start.eq(take), sp.addr.eq(p.req_addr & ~Const(nb - 1, ADDR_BITS)),
                     sp.beats.eq(p.req_len + (off != 0)), info.w_en.eq(take), info.w_data.eq(Cat(off, p.req_len))]
        m.d.comb += [a.arvalid.eq(sp.burst_valid), sp.burst_ready.eq(a.arready), a.araddr.eq(sp.burst_addr),
                     a.arlen.eq(sp.burst_len - 1), a.arsize.eq(lg), a.arburst.eq(1), a.rready.eq(1)]
        # R: realign and count the beats of the request at the head of `info`.
        h_off, h_len = info.r_data[:off_bits], info.r_data[off_bits:]
        prev, primed, sent = Signal(self.bus), Signal(), Signal(LEN_BITS)
        pair = Cat(prev, a.rdata)
        shifted = Signal(self.bus)
        with m.Switch(h_off):
            for o in range(nb if not self.aligned else 1):
                with m.Case(o):
                    m.d.comb += shifted.eq(pair[8 * o:8 * o + self.bus] if o else a.rdata)
        emit = Signal()
        m.d.comb += emit.eq(a.rvalid & info.r_rdy & ((h_off == 0) | primed))
        m.d.sync += [p.data_valid.eq(emit), p.data.eq(Mux(emit, shifted, p.data))]
        with m.If(a.rvalid & info.r_rdy):
            m.d.sync += prev.eq(a.rdata)
            with m.If(h_off != 0):
                m.d.sync += primed.eq(1)
        m.d.comb += info.r_en.eq(emit & (sent + 1 == h_len))
        with m.If(emit):
            m.d.sync += sent.eq(Mux(sent + 1 == h_len, 0, sent + 1))
            with m.If(sent + 1 == h_len):
                m.d.sync += primed.eq(0)
        return m


class WriteBridge(wiring.Component):
    """One accelerator burst write port onto an AXI4 write master."""

    def __init__(self, bus: int, strobes: bool = False):
        self.bus, self.strobes = bus, strobes
        super().__init__({"port": Out(_signature(WriteGroup("", strobes).accel_fields(bus), flip=True)),
                          "axi": Out(_signature(axi_write_members(bus)))})

    def elaborate(self, platform):
        m = Module()
        p, a = self.port, self.axi
        lg = (self.bus // 8).bit_length() - 1
        m.submodules.split = sp = _Splitter(self.bus)
        m.submodules.wq = wq = SyncFIFO(width=9, depth=OUTSTANDING * 2)  # burst lengths, for WLAST
        m.submodules.bq = bq = SyncFIFO(width=1, depth=OUTSTANDING * 2)  # per burst: last of its request?
        take = Signal()
        m.d.comb += [p.req_ready.eq(sp.idle), take.eq(p.req_valid & p.req_ready), sp.start.eq(take),
                     sp.addr.eq(p.req_addr), sp.beats.eq(p.req_len)]
        m.d.comb += [a.awvalid.eq(sp.burst_valid & wq.w_rdy & bq.w_rdy), a.awaddr.eq(sp.burst_addr),
                     a.awlen.eq(sp.burst_len - 1), a.awsize.eq(lg), a.awburst.eq(1),
                     sp.burst_ready.eq(a.awready & wq.w_rdy & bq.w_rdy)]
        aw = Signal()
        m.d.comb += [aw.eq(a.awvalid & a.awready), wq.w_en.eq(aw), wq.w_data.eq(sp.burst_len),
                     bq.w_en.eq(aw), bq.w_data.eq(sp.burst_last)]
        # W: the accelerator's beats, WLAST at the end of each burst.
        beat = Signal(9)
        m.d.comb += [a.wvalid.eq(p.data_valid & wq.r_rdy), p.data_ready.eq(a.wready & wq.r_rdy), a.wdata.eq(p.data),
                     a.wstrb.eq(p.data_strb if self.strobes else Const(-1, self.bus // 8)),
                     a.wlast.eq(beat + 1 == wq.r_data)]
        with m.If(a.wvalid & a.wready):
            m.d.sync += beat.eq(Mux(a.wlast, 0, beat + 1))
        m.d.comb += wq.r_en.eq(a.wvalid & a.wready & a.wlast)
        # B: one pulse per request, when its last burst is answered.
        m.d.comb += [a.bready.eq(1), bq.r_en.eq(a.bvalid & bq.r_rdy)]
        m.d.sync += p.resp_valid.eq(a.bvalid & bq.r_rdy & bq.r_data)
        return m


class StrobedWriteBridge(wiring.Component):
    """Single-beat strobed writes at any byte address onto an AXI4 write master (one or two
    single-beat AXI writes each: the bus word holding the first byte, and the next one when
    bytes spill into it)."""

    def __init__(self, bus: int):
        self.bus = bus
        super().__init__({"port": Out(_signature(StrobedWriteGroup("").accel_fields(bus), flip=True)),
                          "axi": Out(_signature(axi_write_members(bus)))})

    def elaborate(self, platform):
        m = Module()
        p, a, bus, nb = self.port, self.axi, self.bus, self.bus // 8
        lg = nb.bit_length() - 1
        m.submodules.bq = bq = SyncFIFO(width=1, depth=OUTSTANDING * 2)  # per AXI write: last of its beat?
        off = Signal(max(1, lg))
        m.d.comb += off.eq(p.addr[:lg] if lg else 0)
        wide_data, wide_strb = Signal(2 * bus), Signal(2 * nb)
        m.d.comb += [wide_data.eq(p.data << (off * 8)), wide_strb.eq(p.strb << off)]
        # Two slots (low word, high word), each an AW + W to send; a beat is taken when both are free.
        addr = [Signal(ADDR_BITS, name=f"addr{i}") for i in range(2)]
        data = [Signal(bus, name=f"data{i}") for i in range(2)]
        strb = [Signal(nb, name=f"strb{i}") for i in range(2)]
        aw_due = [Signal(name=f"aw_due{i}") for i in range(2)]
        w_due = [Signal(name=f"w_due{i}") for i in range(2)]
        idle = Signal()
        m.d.comb += idle.eq(~(aw_due[0] | aw_due[1] | w_due[0] | w_due[1]))
        m.d.comb += p.ready.eq(idle & (bq.level <= OUTSTANDING * 2 - 2))
        base = p.addr & ~Const(nb - 1, ADDR_BITS)
        with m.If(p.valid & p.ready):
            spill = wide_strb[nb:] != 0
            m.d.sync += [addr[0].eq(base), data[0].eq(wide_data[:bus]), strb[0].eq(wide_strb[:nb]),
                         addr[1].eq(base + nb), data[1].eq(wide_data[bus:]), strb[1].eq(wide_strb[nb:]),
                         aw_due[0].eq(1), w_due[0].eq(1), aw_due[1].eq(spill), w_due[1].eq(spill)]
        # AW and W go one slot at a time, low word first, each on its own handshake.
        cur = Signal()  # the slot being sent
        m.d.comb += cur.eq(~(aw_due[0] | w_due[0]))
        m.d.comb += [a.awvalid.eq(Mux(cur, aw_due[1], aw_due[0])), a.awaddr.eq(Mux(cur, addr[1], addr[0])),
                     a.awlen.eq(0), a.awsize.eq(lg), a.awburst.eq(1),
                     a.wvalid.eq(Mux(cur, w_due[1], w_due[0])), a.wdata.eq(Mux(cur, data[1], data[0])),
                     a.wstrb.eq(Mux(cur, strb[1], strb[0])), a.wlast.eq(1)]
        for i in range(2):
            with m.If((cur == i) & a.awvalid & a.awready):
                m.d.sync += aw_due[i].eq(0)
            with m.If((cur == i) & a.wvalid & a.wready):
                m.d.sync += w_due[i].eq(0)
        # B: count the AXI writes of each beat (bq: 1 = the beat's last write).
        m.d.comb += [bq.w_en.eq(a.awvalid & a.awready),
                     bq.w_data.eq(Mux(cur, 1, ~aw_due[1])), a.bready.eq(1), bq.r_en.eq(a.bvalid & bq.r_rdy)]
        m.d.sync += p.resp_valid.eq(a.bvalid & bq.r_rdy & bq.r_data)
        return m


class InstructionFetch(wiring.Component):
    """The instruction port served from memory through a read port (`mem`, any alignment):
    while `active` (the accelerator is busy), a new index on `imem_addr` starts a read of its
    16 bytes at `base + 16 * index`; the word is then shown with `imem_valid` (the cycle after
    the index is presented) until the index changes. `flush` (a new run) forgets the word held
    and the one in flight."""

    def __init__(self, bus: int):
        self.bus = bus
        self.beats = -(-INSTR_BITS // bus)
        super().__init__({"imem_addr": In(ADDR_BITS), "imem_data": Out(INSTR_BITS), "imem_valid": Out(1),
                          "base": In(ADDR_BITS), "active": In(1), "flush": In(1),
                          "mem": Out(_signature(ReadGroup("").accel_fields(bus)))})

    def elaborate(self, platform):
        m = Module()
        r = self.mem
        word, word_addr, fetch_addr = Signal(self.beats * self.bus), Signal(ADDR_BITS), Signal(ADDR_BITS)
        have, busy, discard, got = Signal(), Signal(), Signal(), Signal(range(self.beats + 1))
        hit = Signal()
        m.d.comb += hit.eq(have & (word_addr == self.imem_addr))
        m.d.sync += [self.imem_valid.eq(hit & ~self.flush), self.imem_data.eq(word[:INSTR_BITS])]
        m.d.comb += [r.req_addr.eq(self.base + (fetch_addr << 4)), r.req_len.eq(self.beats)]
        with m.If(self.active & ~busy & ~r.req_valid & ~self.flush & ~hit):
            m.d.sync += [r.req_valid.eq(1), fetch_addr.eq(self.imem_addr)]
        with m.If(r.req_valid & r.req_ready):
            m.d.sync += [r.req_valid.eq(0), busy.eq(1), got.eq(0), have.eq(0)]
        with m.If(busy & r.data_valid):
            m.d.sync += [word.eq(Cat(word[self.bus:], r.data)) if self.beats > 1 else word.eq(r.data),
                         got.eq(got + 1)]
            with m.If(got + 1 == self.beats):
                m.d.sync += [busy.eq(0), have.eq(~discard & ~self.flush), discard.eq(0), word_addr.eq(fetch_addr)]
        with m.If(self.flush):
            m.d.sync += have.eq(0)
            with m.If(busy | r.req_valid):
                m.d.sync += discard.eq(1)
        return m


class ControlRegisters(wiring.Component):
    """The AXI4-Lite register file of the module docstring, wired to the accelerator's control port."""

    def __init__(self, bus: int):
        self.bus = bus
        super().__init__({"axil": Out(_signature(AXIL_MEMBERS)), "start": Out(1), "base": Out(ADDR_BITS),
                          "busy": In(1), "done": In(1), "error": In(1), "error_code": In(4),
                          "error_pc": In(32), "cycles": In(32)})

    def elaborate(self, platform):
        m = Module()
        s = self.axil
        # Writes: hold AW and W until both have come, answer with B.
        aw_got, w_got, waddr, wdata = Signal(), Signal(), Signal(12), Signal(32)
        m.d.comb += [s.awready.eq(~aw_got & ~s.bvalid), s.wready.eq(~w_got & ~s.bvalid), s.bresp.eq(0)]
        with m.If(s.awvalid & s.awready):
            m.d.sync += [aw_got.eq(1), waddr.eq(s.awaddr)]
        with m.If(s.wvalid & s.wready):
            m.d.sync += [w_got.eq(1), wdata.eq(s.wdata)]
        m.d.sync += self.start.eq(0)
        with m.If(aw_got & w_got):
            m.d.sync += [aw_got.eq(0), w_got.eq(0), s.bvalid.eq(1)]
            with m.Switch(waddr[2:]):
                with m.Case(0x00 >> 2):
                    m.d.sync += self.start.eq(wdata[0])
                with m.Case(0x10 >> 2):
                    m.d.sync += self.base.eq(wdata)
        with m.If(s.bvalid & s.bready):
            m.d.sync += s.bvalid.eq(0)
        # Reads: one cycle after AR.
        m.d.comb += [s.arready.eq(~s.rvalid), s.rresp.eq(0)]
        with m.If(s.arvalid & s.arready):
            m.d.sync += s.rvalid.eq(1)
            with m.Switch(s.araddr[2:]):
                regs = {0x00: Cat(self.busy, self.done, self.error), 0x04: self.error_code, 0x08: self.error_pc,
                        0x0C: self.cycles, 0x10: self.base, 0x14: Const(self.bus // 8, 32)}
                for at, value in regs.items():
                    with m.Case(at >> 2):
                        m.d.sync += s.rdata.eq(value)
                with m.Default():
                    m.d.sync += s.rdata.eq(0)
        with m.If(s.rvalid & s.rready):
            m.d.sync += s.rvalid.eq(0)
        return m


def _bridge(group, bus: int) -> wiring.Component:
    if isinstance(group, ReadGroup):
        return ReadBridge(bus, group.aligned)
    if isinstance(group, WriteGroup):
        return WriteBridge(bus, group.strobes)
    return StrobedWriteBridge(bus)


def _axi_members(group, bus: int) -> dict[str, tuple[str, int]]:
    return axi_read_members(bus) if isinstance(group, ReadGroup) else axi_write_members(bus)


class AxiAccelerator(wiring.Component):
    """`Accelerator(config)` with an AXI4 master per port group (`groups`, default
    `PORT_GROUPS`) and one for instructions, and the AXI4-Lite control registers (module docstring)."""

    def __init__(self, config: AccelConfig, groups=PORT_GROUPS):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"AxiAccelerator needs an AccelConfig, got {type(config).__name__}")
        self.config, self.groups = config, tuple(groups)
        bus = config.bus_bits
        members = {}
        for g in self.groups + (ReadGroup("imem", aligned=False),):
            members |= _members({f"m_axi_{g.prefix}_{n}": dw for n, dw in _axi_members(g, bus).items()})
        members |= _members({f"s_axil_{n}": dw for n, dw in AXIL_MEMBERS.items()})
        members |= {"irq_done": Out(1)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.config.bus_bits
        m.submodules.accel = acc = Accelerator(self.config)
        m.submodules.regs = regs = ControlRegisters(bus)
        m.submodules.fetch_mem = fmem = ReadBridge(bus, aligned=False)
        m.submodules.imem = imem = InstructionFetch(bus)
        # Control and status.
        m.d.comb += [acc.start.eq(regs.start), regs.busy.eq(acc.busy), regs.done.eq(acc.done),
                     regs.error.eq(acc.error), regs.error_code.eq(acc.error_code), regs.error_pc.eq(acc.error_pc),
                     regs.cycles.eq(acc.cycles), self.irq_done.eq(acc.done)]
        self._to_axi(m, regs.axil, "s_axil", AXIL_MEMBERS)
        # Instructions: fetch -> InstructionFetch -> a read bridge -> m_axi_imem.
        m.d.comb += [imem.imem_addr.eq(acc.imem_addr), acc.imem_data.eq(imem.imem_data),
                     acc.imem_valid.eq(imem.imem_valid), imem.base.eq(regs.base), imem.active.eq(acc.busy),
                     imem.flush.eq(regs.start & ~acc.busy)]
        wiring.connect(m, imem.mem, fmem.port)
        self._to_axi(m, fmem.axi, "m_axi_imem", axi_read_members(bus))
        # DRAM port groups: the accelerator's `<prefix>_*` ports -> a bridge -> m_axi_<prefix>.
        for g in self.groups:
            br = m.submodules[f"{g.prefix}_bridge"] = _bridge(g, bus)
            for name, (direction, _) in g.accel_fields(bus).items():
                ours, theirs = getattr(br.port, name), getattr(acc, f"{g.prefix}_{name}")
                m.d.comb += ours.eq(theirs) if direction == "out" else theirs.eq(ours)
            self._to_axi(m, br.axi, f"m_axi_{g.prefix}", _axi_members(g, bus))
        return m

    def _to_axi(self, m, inner, prefix: str, fields: dict) -> None:
        """Wire a bridge's AXI members to the top's flat `prefix_*` ports."""
        for n, (d, _) in fields.items():
            ours, top = getattr(inner, n), getattr(self, f"{prefix}_{n}")
            m.d.comb += top.eq(ours) if d == "out" else ours.eq(top)
