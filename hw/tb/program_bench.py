"""cocotb test: run one program on `bebert_accel` and record what it did.

Inputs come through environment variables set by `bebert.hw.verify.run_rtl`:
BEBERT_TB_INPUT (an .npz with the instruction words, the DRAM image and the config's bus
width and latency) and BEBERT_TB_OUTPUT (a directory for `result.json` and `dram.npy`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from bebert.hw.tb.memory_models import DramModel, InstructionMemory


@cocotb.test()
async def run_program(dut):
    inp = np.load(os.environ["BEBERT_TB_INPUT"])
    out = Path(os.environ["BEBERT_TB_OUTPUT"])
    words = [int.from_bytes(inp["code"][i:i + 16].tobytes(), "little") for i in range(0, inp["code"].size, 16)]
    bpb, latency, timeout = (int(x) for x in inp["params"])
    imem = InstructionMemory(words)
    dram = DramModel(inp["dram"], bpb, latency)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for s in (dut.start, dut.imem_data, dut.rd_data_valid, dut.rd_data, dut.wr_resp_valid):
        s.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    dut.start.value = 1  # sampled at the end of this cycle: cycle -1
    t = -1
    rd_valid = wr_resp = 0
    done = timed_out = False
    # Sample the DUT's outputs and drive its inputs at the falling edge of every cycle t.
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
        dut.imem_data.value = imem.step(int(dut.imem_addr.value))
        if int(dut.rd_req_valid.value):
            dram.read_request(t, int(dut.rd_req_addr.value), int(dut.rd_req_len.value))
        if int(dut.wr_req_valid.value):
            dram.write_request(int(dut.wr_req_addr.value), int(dut.wr_req_len.value))
        if int(dut.wr_data_valid.value):
            dram.write_beat(t, int(dut.wr_data.value))
        beat = dram.read_beat(t)
        if beat is not None:
            dut.rd_data.value = beat
            if not rd_valid:
                dut.rd_data_valid.value = rd_valid = 1
        elif rd_valid:
            dut.rd_data_valid.value = rd_valid = 0
        resp = int(dram.write_response(t))
        if resp != wr_resp:
            dut.wr_resp_valid.value = wr_resp = resp
    np.save(out / "dram.npy", dram.image())
    result = {"done": done, "timed_out": timed_out, "cycles": int(dut.cycles.value),
              "observed_cycles": t, "error": bool(int(dut.error.value))}
    (out / "result.json").write_text(json.dumps(result))
