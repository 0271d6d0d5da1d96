"""VECTOR stage: VEC on the vector unit (`hw/vector_unit.py VectorUnit`), SYNC."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from bebert.config import SYNC_CYCLES, AccelConfig
from bebert.isa import Op

from .issue import StageIssuer, StageSignature
from .ports import read_port, write_port
from .vector_unit import VectorUnit


class VectorStage(wiring.Component):
    """Executes VEC and SYNC from the head of the VECTOR queue (`ctl`, `StageSignature`).

    A VEC issued in cycle t starts the vector unit in t (`start` with the head word) and runs
    until the unit has ended: the unit is busy t+1 .. X and signals its last busy cycle X with
    `done`; the instruction's last cycle is X (its pushes count from X+1, when the stage may
    issue again). At the nominal memory X = t + `bebert.vector.vec_cycles(...)` (the unit's
    contract), so D = vec_cycles; a slower memory stretches it. The issuer is given D = 1 and
    `hold` = "the unit has not reached its last cycle": the unit's own schedule is the one
    count of vec_cycles in the hardware. A SYNC runs for SYNC_CYCLES and only moves tokens.

    `vrd` / `vwr` are the unit's DRAM ports (`hw/ports.py read_port` / `write_port`), passed
    through; `fault` is the unit's fault flag (the control path keeps it sticky).
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"VectorStage needs an AccelConfig, got {type(config).__name__}")
        self.config = config
        super().__init__({"ctl": Out(StageSignature), "vrd": Out(read_port(config.bus_bits)),
                          "vwr": Out(write_port(config.bus_bits)), "fault": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.issuer = iss = StageIssuer()
        m.submodules.unit = unit = VectorUnit(self.config)
        wiring.connect(m, wiring.flipped(self.ctl), iss.ctl)
        wiring.connect(m, wiring.flipped(self.vrd), unit.vrd)
        wiring.connect(m, wiring.flipped(self.vwr), unit.vwr)
        is_vec = self.ctl.head.word[0:8] == Op.VEC
        with m.If(is_vec):
            m.d.comb += iss.duration.eq(1)
        with m.Else():
            m.d.comb += iss.duration.eq(SYNC_CYCLES)
        m.d.comb += [
            unit.start.eq(iss.issue & is_vec), unit.word.eq(self.ctl.head.word),
            iss.hold.eq(unit.busy & ~unit.done),
            self.fault.eq(unit.fault),
        ]
        return m
