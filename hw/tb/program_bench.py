"""cocotb test: run one program on `bebert_accel` and record what it did.

Inputs come through environment variables set by `bebert.hw.verify.run_rtl`:
BEBERT_TB_INPUT (an .npz with the instruction words, the DRAM image, the config's bus
width and latency, the timeout, and the memories' stall probability (per mille) and seed)
and BEBERT_TB_OUTPUT (a directory for `result.json` and `dram.npy`). Stall 0 gives the
nominal memories, the ones the simulator's cycle count assumes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from bebert.hw.tb.memory_models import DramModel, InstructionMemory, VecPortModel


@cocotb.test()
async def run_program(dut):
    inp = np.load(os.environ["BEBERT_TB_INPUT"])
    out = Path(os.environ["BEBERT_TB_OUTPUT"])
    words = [int.from_bytes(inp["code"][i:i + 16].tobytes(), "little") for i in range(0, inp["code"].size, 16)]
    bpb, latency, timeout, stall_permille, seed = (int(x) for x in inp["params"])
    stall = stall_permille / 1000
    imem = InstructionMemory(words, stall=stall, seed=seed)
    dram = DramModel(inp["dram"], bpb, latency, stall=stall, seed=seed)
    vport = VecPortModel(dram, stall=stall, seed=seed)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for s in (dut.start, dut.imem_data, dut.imem_valid, dut.rd_req_ready, dut.rd_data_valid, dut.rd_data,
              dut.wr_req_ready, dut.wr_data_ready, dut.wr_resp_valid, dut.vrd_req_ready, dut.vrd_data_valid,
              dut.vrd_data, dut.vwr_ready, dut.vwr_resp_valid):
        s.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    dut.start.value = 1  # sampled at the end of this cycle: cycle -1
    t = -1
    held = {}  # last value driven on each input, to write only changes (faster under Icarus)

    def drive(sig, name, value):
        if held.get(name) != value:
            sig.value = held[name] = value

    rd_valid = wr_resp = vrd_valid = vwr_resp = 0
    done = timed_out = False
    # Sample the DUT's outputs (all registered: none depends on this cycle's inputs) and
    # drive its inputs at the falling edge of every cycle t.
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
        dut.imem_data.value = word
        drive(dut.imem_valid, "imem_valid", valid)
        rd_ready, wr_ready, wd_ready = dram.rd_req_ready(), dram.wr_req_ready(), dram.wr_data_ready()
        drive(dut.rd_req_ready, "rd_req_ready", rd_ready)
        drive(dut.wr_req_ready, "wr_req_ready", wr_ready)
        drive(dut.wr_data_ready, "wr_data_ready", wd_ready)
        if rd_ready and int(dut.rd_req_valid.value):
            dram.read_request(t, int(dut.rd_req_addr.value), int(dut.rd_req_len.value))
        if wr_ready and int(dut.wr_req_valid.value):
            dram.write_request(int(dut.wr_req_addr.value), int(dut.wr_req_len.value))
        if wd_ready and int(dut.wr_data_valid.value):
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
        # The vector unit's port (same image; reads and single-beat strobed writes).
        v_rd_ready, v_wr_ready = vport.rd_req_ready(), vport.wr_ready()
        drive(dut.vrd_req_ready, "vrd_req_ready", v_rd_ready)
        drive(dut.vwr_ready, "vwr_ready", v_wr_ready)
        if v_rd_ready and int(dut.vrd_req_valid.value):
            vport.read_request(t, int(dut.vrd_req_addr.value), int(dut.vrd_req_len.value))
        if v_wr_ready and int(dut.vwr_valid.value):
            vport.write(t, int(dut.vwr_addr.value), int(dut.vwr_data.value), int(dut.vwr_strb.value))
        vbeat = vport.read_beat(t)
        if vbeat is not None:
            dut.vrd_data.value = vbeat
            if not vrd_valid:
                dut.vrd_data_valid.value = vrd_valid = 1
        elif vrd_valid:
            dut.vrd_data_valid.value = vrd_valid = 0
        vresp = int(vport.write_response(t))
        if vresp != vwr_resp:
            dut.vwr_resp_valid.value = vwr_resp = vresp
    np.save(out / "dram.npy", dram.image())
    result = {"done": done, "timed_out": timed_out, "cycles": int(dut.cycles.value),
              "observed_cycles": t, "error": bool(int(dut.error.value)),
              "error_code": int(dut.error_code.value), "error_pc": int(dut.error_pc.value)}
    (out / "result.json").write_text(json.dumps(result))
