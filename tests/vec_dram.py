"""The vector unit alone against a DRAM model (Amaranth's simulator), adapted from hw/tb's port
models for the v3 `vrd_*` / `vwr_*` ports.

Nominal memory (`stall` = 0; docs/MACHINE_V3.md, "Nominal memory and ports"): a read request
is taken in the cycle it is valid; beat j of a request taken in cycle r comes in r + L + j (one
beat per cycle, in request order); a write is taken at once and answered L cycles later, in
order. With `stall` > 0 (a probability, seeded) the memory is slower, never faster: requests
and writes wait, beats skip cycles, answers come late.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np
from amaranth.sim import Simulator

from bebert.config import AccelConfig
from bebert.isa import encode, vec
from bebert.hw.vector_unit import VectorUnit


class VecDram:
    def __init__(self, image: np.ndarray, config: AccelConfig, stall: float = 0.0, seed: int = 0):
        self.mem = bytearray(np.asarray(image, np.uint8).tobytes())
        self.B, self.L = config.dram_bytes_per_cycle, config.dram_latency_cycles
        self.stall, self.rng = stall, random.Random(seed)
        self.reads: deque = deque()       # [first cycle, addr, beats left]
        self.resps: deque = deque()
        self.bad: list[str] = []

    def stalled(self) -> bool:
        return bool(self.stall) and self.rng.random() < self.stall

    def request(self, cycle: int, addr: int, beats: int) -> None:
        if addr % self.B:
            self.bad.append(f"cycle {cycle}: read request at 0x{addr:x}, not bus-aligned")
        if beats <= 0:
            self.bad.append(f"cycle {cycle}: read request of {beats} beats")
        self.reads.append([cycle + self.L, addr, beats])

    def beat(self, cycle: int):
        if self.reads and self.reads[0][0] <= cycle and not self.stalled():
            r = self.reads[0]
            a = r[1]
            data = int.from_bytes(bytes(self.mem[(a + i) % len(self.mem)] for i in range(self.B)), "little")
            r[1] += self.B
            r[2] -= 1
            if r[2] == 0:
                self.reads.popleft()
            return data
        return None

    def write(self, cycle: int, addr: int, data: int, strb: int) -> None:
        if addr % self.B:
            self.bad.append(f"cycle {cycle}: write at 0x{addr:x}, not bus-aligned")
        for i in range(self.B):
            if strb >> i & 1:
                self.mem[(addr + i) % len(self.mem)] = data >> (8 * i) & 0xFF
        late = self.rng.randrange(4) if self.stalled() else 0
        self.resps.append(max(cycle + self.L + late, self.resps[-1] + 1 if self.resps else 0))

    def response(self, cycle: int) -> bool:
        if self.resps and self.resps[0] <= cycle:
            self.resps.popleft()
            return True
        return False

    def image(self) -> np.ndarray:
        return np.frombuffer(bytes(self.mem), np.uint8).copy()


def run_units(config: AccelConfig, cases: list, *, stall: float = 0.0, seed: int = 0, limit: int = 400_000,
              dut: VectorUnit | None = None) -> list[dict]:
    """VECs one after another on one unit (one simulation): `cases` are (image, args); per
    case the image after it, `cycles` (busy cycles), `fault`, the port log's complaints."""
    dut = dut or VectorUnit(config)
    results: list[dict] = []

    async def bench(ctx):
        for n, (image, args) in enumerate(cases):
            mem = VecDram(image, config, stall, seed + n)
            word = encode(vec(args["fn"], args["desc"], args["rows"], args["cols"], bits=args["bits"],
                              aux=args["aux"], io=args["io"]))
            for name in ("vrd.req_ready", "vrd.data_valid", "vwr.ready", "vwr.resp_valid"):
                obj = dut
                for part in name.split("."):
                    obj = getattr(obj, part)
                ctx.set(obj, 0)
            ctx.set(dut.word, word)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            busy, done_at = 0, None
            for cycle in range(1, limit):
                rd_ready = int(not mem.stalled())
                wr_ready = int(not mem.stalled())
                ctx.set(dut.vrd.req_ready, rd_ready)
                ctx.set(dut.vwr.ready, wr_ready)
                b = mem.beat(cycle)
                ctx.set(dut.vrd.data_valid, int(b is not None))
                ctx.set(dut.vrd.data, b or 0)
                ctx.set(dut.vwr.resp_valid, int(mem.response(cycle)))
                if not ctx.get(dut.busy):
                    break
                busy += 1
                done_at = busy if ctx.get(dut.done) else done_at
                if ctx.get(dut.vrd.req_valid) and rd_ready:
                    mem.request(cycle, ctx.get(dut.vrd.req_addr), ctx.get(dut.vrd.req_len))
                if ctx.get(dut.vwr.valid) and wr_ready:
                    mem.write(cycle, ctx.get(dut.vwr.addr), ctx.get(dut.vwr.data), ctx.get(dut.vwr.strb))
                await ctx.tick()
            else:
                raise AssertionError(f"case {n}: the vector unit is still busy after {limit} cycles")
            assert done_at == busy, f"case {n}: done in busy cycle {done_at}, the last is {busy}"
            results.append({"cycles": busy, "fault": ctx.get(dut.fault), "dram": mem.image(),
                             "complaints": mem.bad, "left": (len(mem.reads), len(mem.resps))})
            ctx.set(dut.vwr.resp_valid, 0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


def run_unit(config: AccelConfig, image: np.ndarray, args: dict, **kw) -> dict:
    """One VEC on the unit (see `run_units`)."""
    return run_units(config, [(image, args)], **kw)[0]
