"""cocotb test: run one program on `bebert_axi` (the AXI wrapper) against cocotbext-axi's AXI RAM.

One memory (an mmap) serves every AXI4 master of the wrapper, each through its own
`AxiRamRead` / `AxiRamWrite` from cocotbext-axi: the program's DRAM image at address 0 and its
instruction words at PROG_BASE. The host side is an `AxiLiteMaster`: write PROG_BASE, write
CONTROL.start, wait for `irq_done`, read STATUS / ERROR_CODE / ERROR_PC / CYCLES.

Inputs come through BEBERT_TB_INPUT (an .npz: the words, the image, params = [prog_base,
timeout_cycles, stall (per mille: each AXI channel of the RAM pauses that often, seeded), seed],
and `groups`: one "prefix:read" / "prefix:write" per master) and results go
to BEBERT_TB_OUTPUT (`result.json`, `dram.npy`), as for `program_bench`.
"""

from __future__ import annotations

import json
import mmap
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiRamRead, AxiRamWrite, AxiReadBus, AxiWriteBus

# Every AXI4 / AXI4-Lite signal name cocotbext-axi looks for. cocotb-bus finds optional
# signals through dir(dut), which lists only the handles already looked up under cocotb 2.x:
# `_look_up` touches them all first (a missing one is simply absent).
AXI_SIGNALS = [f"{ch}{s}" for ch, names in (
    ("aw", "id addr len size burst lock cache prot qos region user valid ready"),
    ("w", "data strb last user valid ready"), ("b", "id resp user valid ready"),
    ("ar", "id addr len size burst lock cache prot qos region user valid ready"),
    ("r", "id data resp last user valid ready")) for s in names.split()]


def _look_up(dut, prefix: str) -> None:
    for s in AXI_SIGNALS:
        try:
            getattr(dut, f"{prefix}_{s}")
        except AttributeError:
            pass


REGS = {"CONTROL": 0x00, "STATUS": 0x00, "ERROR_CODE": 0x04, "ERROR_PC": 0x08, "CYCLES": 0x0C, "PROG_BASE": 0x10,
        "BUS_BYTES": 0x14}


@cocotb.test()
async def run_program(dut):
    inp = np.load(os.environ["BEBERT_TB_INPUT"])
    out = Path(os.environ["BEBERT_TB_OUTPUT"])
    prog_base, timeout, stall_permille, seed = (int(x) for x in inp["params"])
    rng = random.Random(seed)

    def pauses():  # a channel that is not ready (or valid) stall_permille / 1000 of the cycles
        while True:
            yield rng.random() < stall_permille / 1000
    image, code = inp["dram"].tobytes(), inp["code"].tobytes()
    size = 1 << max(12, (prog_base + len(code)).bit_length())
    mem = mmap.mmap(-1, size)
    mem[:len(image)] = image
    mem[prog_base:prog_base + len(code)] = code

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for g in (str(x) for x in inp["groups"]):
        prefix, kind = g.split(":")
        _look_up(dut, f"m_axi_{prefix}")
        if kind == "read":
            ram = AxiRamRead(AxiReadBus.from_prefix(dut, f"m_axi_{prefix}"), dut.clk, dut.rst, size=size, mem=mem)
            channels = (ram.ar_channel, ram.r_channel)
        else:
            ram = AxiRamWrite(AxiWriteBus.from_prefix(dut, f"m_axi_{prefix}"), dut.clk, dut.rst, size=size, mem=mem)
            channels = (ram.aw_channel, ram.w_channel, ram.b_channel)
        if stall_permille:
            for ch in channels:
                ch.set_pause_generator(pauses())
    _look_up(dut, "s_axil")
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)

    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    async def reg(name):
        return int.from_bytes((await host.read(REGS[name], 4)).data, "little")

    await host.write(REGS["PROG_BASE"], prog_base.to_bytes(4, "little"))
    await host.write(REGS["CONTROL"], (1).to_bytes(4, "little"))
    done = True
    try:
        await with_timeout(RisingEdge(dut.irq_done), timeout * 10, "ns")
    except cocotb.triggers.SimTimeoutError:
        done = False
    status = await reg("STATUS")
    result = {"done": done and bool(status & 2), "timed_out": not done, "busy": bool(status & 1),
              "error": bool(status & 4), "error_code": await reg("ERROR_CODE"), "error_pc": await reg("ERROR_PC"),
              "cycles": await reg("CYCLES"), "bus_bytes": await reg("BUS_BYTES")}
    np.save(out / "dram.npy", np.frombuffer(mem[:len(image)], np.uint8).copy())
    (out / "result.json").write_text(json.dumps(result))
