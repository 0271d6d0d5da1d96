"""The accelerator: the control path, three buffers and the four stages, wired (docs/MACHINE_V3.md)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import AccelConfig
from bebert.isa import INSTR_BITS, Stage

from .buffer import buffer_of
from .compute import ComputeStage
from .control import CYCLE_BITS, ControlPath
from .fetch import ERROR_CODE_BITS, IMEM_ADDR_BITS
from .load_dma import LoadStage
from .output_stage import OutputStage
from .ports import read_port, write_port
from .vector_stage import VectorStage


class Accelerator(wiring.Component):
    """The whole v3 machine, parameterised by an `AccelConfig`; it only wires components:

        ControlPath (fetch, 4 queues, 12 token counters) --StageSignature--> the four stages
        LoadStage --rd--> DRAM;  LoadStage --> ABUF, WBUF, PBUF (write ports)
        ComputeStage <-- ABUF, WBUF;  ComputeStage --snapshot (acc + snap)--> OutputStage
        OutputStage <-- PBUF;  OutputStage --owr--> DRAM
        VectorStage --vrd / vwr--> DRAM

    Control and status (`ControlPath`): a `start` pulse while not `busy` begins a run at
    instruction 0; `busy`, then `done` with `cycles` = T + 1; `error` / `error_code`
    (`ErrorCode`: ILLEGAL, VEC_FAULT) / `error_pc`. The instruction port (`imem_addr`,
    `imem_data`, `imem_valid`) and the DRAM port groups `rd`, `owr`, `vrd`, `vwr`
    (`hw/ports.py`; Verilog ports `rd_req_valid`, ...) follow docs/MACHINE_V3.md, "Nominal
    memory and ports": at the nominal memory of the config the cycle count is the simulator's;
    a slower memory stretches it and changes nothing else.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"Accelerator needs an AccelConfig, got {type(config).__name__}")
        # AccelConfig has already refused what the RTL cannot build (e.g. buffer entry counts
        # that are not powers of two).
        self.config = config
        bus = config.bus_bits
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "error_code": Out(ERROR_CODE_BITS), "error_pc": Out(IMEM_ADDR_BITS), "cycles": Out(CYCLE_BITS),
            "imem_addr": Out(IMEM_ADDR_BITS), "imem_data": In(INSTR_BITS), "imem_valid": In(1),
            "rd": Out(read_port(bus)), "owr": Out(write_port(bus)),
            "vrd": Out(read_port(bus)), "vwr": Out(write_port(bus)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.control = ctl = ControlPath(cfg)
        m.submodules.load = load = LoadStage(cfg)
        m.submodules.compute = comp = ComputeStage(cfg)
        m.submodules.output = out = OutputStage(cfg)
        m.submodules.vector = vec = VectorStage(cfg)
        for b in ("abuf", "wbuf", "pbuf"):
            m.submodules[b] = buffer_of(cfg, b)
        bufs = {b: m.submodules[b] for b in ("abuf", "wbuf", "pbuf")}

        # Control: status out, the instruction port in, each stage on its queue and tokens.
        m.d.comb += [ctl.start.eq(self.start), self.busy.eq(ctl.busy), self.done.eq(ctl.done),
                     self.cycles.eq(ctl.cycles), self.error.eq(ctl.error), self.error_code.eq(ctl.error_code),
                     self.error_pc.eq(ctl.error_pc), ctl.vec_fault.eq(vec.fault),
                     self.imem_addr.eq(ctl.imem_addr), ctl.imem_data.eq(self.imem_data),
                     ctl.imem_valid.eq(self.imem_valid)]
        for s, stage in ((Stage.LOAD, load), (Stage.COMPUTE, comp), (Stage.OUTPUT, out), (Stage.VECTOR, vec)):
            wiring.connect(m, stage.ctl, ctl.stages[s])

        # Buffers: LOAD writes all three; COMPUTE reads ABUF and WBUF, OUTPUT reads PBUF.
        for b in ("abuf", "wbuf", "pbuf"):
            wiring.connect(m, getattr(load, b), bufs[b].w)
        wiring.connect(m, comp.abuf, bufs["abuf"].r)
        wiring.connect(m, comp.wbuf, bufs["wbuf"].r)
        wiring.connect(m, out.pbuf, bufs["pbuf"].r)
        wiring.connect(m, comp.snapshot, out.snapshot)

        # DRAM ports.
        wiring.connect(m, wiring.flipped(self.rd), load.rd)
        wiring.connect(m, wiring.flipped(self.owr), out.owr)
        wiring.connect(m, wiring.flipped(self.vrd), vec.vrd)
        wiring.connect(m, wiring.flipped(self.vwr), vec.vwr)
        return m
