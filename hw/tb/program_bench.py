"""cocotb test: run one program on `bebert_accel` and record what it did.

Inputs come through environment variables set by `bebert.hw.verify.run_rtl`:
BEBERT_TB_INPUT (an .npz with the instruction words, the DRAM image, the config's bus width
and latency, the timeout, and the memories' stall probability (per mille) and seed) and
BEBERT_TB_OUTPUT (a directory for `result.json` and `dram.npy`). Stall 0 gives the nominal
memories, the ones the simulator's cycle count assumes.

The ports (docs/MACHINE_V3.md, "RTL structure and interfaces"): `rd_*` (LOAD's burst reads),
`owr_*` (the output path's single-beat writes), `vrd_*` / `vwr_*` (the vector unit's reads
and writes), all on one DRAM image (`bebert.hw.tb.memory_models`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from bebert.hw.tb.memory_models import DramImage, InstructionMemory, ReadPortModel, WritePortModel


class _Drive:
    """Writes a DUT input only when its value changes (far fewer VPI calls under Icarus)."""

    def __init__(self, dut):
        self.dut, self.held = dut, {}

    def __call__(self, name: str, value: int) -> None:
        if self.held.get(name) != value:
            getattr(self.dut, name).value = self.held[name] = value


class _ReadPort:
    """A `read_port` group of the DUT (`prefix` rd / vrd) in front of a `ReadPortModel`."""

    def __init__(self, dut, prefix: str, model: ReadPortModel, drive: _Drive):
        self.dut, self.p, self.model, self.drive = dut, prefix, model, drive
        self.req_valid = getattr(dut, f"{prefix}_req_valid")

    def drive_inputs(self, t: int) -> None:
        self.ready = self.model.ready()
        self.drive(f"{self.p}_req_ready", self.ready)
        beat = self.model.beat(t)
        if beat is not None:
            self.drive(f"{self.p}_data", beat)
        self.drive(f"{self.p}_data_valid", int(beat is not None))

    def sample_outputs(self, t: int) -> None:
        if self.ready and int(self.req_valid.value):
            self.model.request(t, int(getattr(self.dut, f"{self.p}_req_addr").value),
                               int(getattr(self.dut, f"{self.p}_req_len").value))


class _WritePort:
    """A `write_port` group of the DUT (`prefix` owr / vwr) in front of a `WritePortModel`."""

    def __init__(self, dut, prefix: str, model: WritePortModel, drive: _Drive):
        self.dut, self.p, self.model, self.drive = dut, prefix, model, drive
        self.valid = getattr(dut, f"{prefix}_valid")

    def drive_inputs(self, t: int) -> None:
        self.ready = self.model.ready()
        self.drive(f"{self.p}_ready", self.ready)
        self.drive(f"{self.p}_resp_valid", int(self.model.response(t)))

    def sample_outputs(self, t: int) -> None:
        if self.ready and int(self.valid.value):
            d = self.dut
            self.model.write(t, int(getattr(d, f"{self.p}_addr").value), int(getattr(d, f"{self.p}_data").value),
                             int(getattr(d, f"{self.p}_strb").value))


@cocotb.test()
async def run_program(dut):
    inp = np.load(os.environ["BEBERT_TB_INPUT"])
    out = Path(os.environ["BEBERT_TB_OUTPUT"])
    words = [int.from_bytes(inp["code"][i:i + 16].tobytes(), "little") for i in range(0, inp["code"].size, 16)]
    bpb, latency, timeout, stall_permille, seed = (int(x) for x in inp["params"])
    stall = stall_permille / 1000
    imem = InstructionMemory(words, stall=stall, seed=seed)
    dram = DramImage(inp["dram"], bpb)
    drive = _Drive(dut)
    ports = [_ReadPort(dut, "rd", ReadPortModel(dram, latency, stall=stall, seed=seed + 1), drive),
             _WritePort(dut, "owr", WritePortModel(dram, latency, stall=stall, seed=seed + 2), drive),
             _ReadPort(dut, "vrd", ReadPortModel(dram, latency, stall=stall, seed=seed + 3), drive),
             _WritePort(dut, "vwr", WritePortModel(dram, latency, stall=stall, seed=seed + 4), drive)]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in ("start", "imem_data", "imem_valid", "rd_req_ready", "rd_data_valid", "rd_data", "owr_ready",
                 "owr_resp_valid", "vrd_req_ready", "vrd_data_valid", "vrd_data", "vwr_ready", "vwr_resp_valid"):
        drive(name, 0)
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    dut.start.value = 1  # sampled at the end of this cycle: cycle -1
    t = -1
    done = timed_out = False
    # Every cycle t: at the falling edge drive the inputs of cycle t (from the memories' state
    # and the registered `imem_addr`), then, once they have settled (ReadOnly), sample the
    # outputs of cycle t: a request or write may depend on this cycle's inputs combinationally.
    while True:
        await FallingEdge(dut.clk)
        t += 1
        if t == 0:
            dut.start.value = 0
        if int(dut.done.value):
            done = True
            break
        if t > timeout:
            timed_out = True
            break
        word, valid = imem.step(int(dut.imem_addr.value))
        drive("imem_data", word)
        drive("imem_valid", valid)
        for port in ports:
            port.drive_inputs(t)
        await ReadOnly()
        for port in ports:
            port.sample_outputs(t)
    np.save(out / "dram.npy", dram.image())
    result = {"done": done, "timed_out": timed_out, "cycles": int(dut.cycles.value),
              "observed_cycles": t, "error": bool(int(dut.error.value)),
              "error_code": int(dut.error_code.value), "error_pc": int(dut.error_pc.value)}
    (out / "result.json").write_text(json.dumps(result))
