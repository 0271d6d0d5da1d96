"""Behavioural models of what sits behind the accelerator's ports, cycle by cycle.

Both are driven once per clock cycle t: the DUT's outputs in cycle t in, the DUT's inputs
for cycle t out (docs/ARCHITECTURE.md, "External interface of the RTL"). With `stall` = 0
they are the nominal memories of the configuration, the ones the simulator's cycle count
assumes: always ready, read beat j of a request taken in cycle r in r + L + j, the write
response L cycles after the last beat, instruction words one cycle after their address.
With `stall` > 0 (a probability) they are slower, never faster, and seeded: ready signals
drop, read beats skip cycles, write responses and instruction words come late.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np


class InstructionMemory:
    """A synchronous ROM behind `imem_addr` / `imem_data` / `imem_valid`; 0 past the end.

    Nominal: the word at the address presented in cycle t is on `imem_data` in t+1 with
    `imem_valid` high (a block RAM). Slow (`stall` > 0): after the address changes the
    word comes 0..3 cycles later; until then `imem_valid` is low. The fetch unit keeps
    the address steady while it waits, which is what lets a slow memory answer.
    """

    def __init__(self, words: list[int], *, stall: float = 0.0, seed: int = 0):
        self.words = list(words)
        self.prev_addr = None
        self.stall = stall
        self.rng = random.Random(seed)
        self.wait = 0  # cycles the current address must still be held

    def step(self, addr: int) -> tuple[int, int]:
        """(`imem_data`, `imem_valid`) for the cycle in which the DUT presents `addr`."""
        prev, self.prev_addr = self.prev_addr, addr
        if prev is None:
            return 0, 0
        ready = self.wait == 0
        if addr != prev:  # a new address from the next cycle on
            self.wait = self.rng.randrange(4) if self.stall and self.rng.random() < self.stall else 0
        elif self.wait:
            self.wait -= 1
        if not ready:
            return 0, 0
        return (self.words[prev] if prev < len(self.words) else 0), 1


class DramModel:
    """DRAM behind the read and write ports: latency L, one bus beat per cycle at best.

    Read: a request (addr, len) taken in cycle r (`rd_req_valid` and `rd_req_ready`)
    returns beat j in cycle r + L + j nominally, later when stalled; the accelerator takes
    every beat. Write: a request taken in cycle w, then `len` beats, each taken in a cycle
    with `wr_data_valid` and `wr_data_ready`; the response pulse comes L cycles after the
    cycle of the last beat (nominal) or up to 3 cycles later (stalled). Accesses wrap at
    the end of the image, as a real memory would alias them.
    """

    def __init__(self, image: np.ndarray, bytes_per_beat: int, latency: int, *, stall: float = 0.0,
                 seed: int = 0):
        self.mem = bytearray(np.asarray(image, np.uint8).tobytes())
        self.bpb = bytes_per_beat
        self.latency = latency
        self.stall = stall
        self.rng = random.Random(seed + 1)
        self.reads: deque[list[int]] = deque()  # [first cycle, addr, beats left]
        self.writes: deque[list[int]] = deque()  # [addr, beats left]
        self.resps: deque[int] = deque()

    def _stalled(self) -> bool:
        return bool(self.stall) and self.rng.random() < self.stall

    def _get(self, addr: int) -> int:
        n = len(self.mem)
        if addr + self.bpb <= n:
            return int.from_bytes(self.mem[addr:addr + self.bpb], "little")
        return int.from_bytes(bytes(self.mem[(addr + i) % n] for i in range(self.bpb)), "little")

    def _put(self, addr: int, value: int) -> None:
        data = value.to_bytes(self.bpb, "little")
        n = len(self.mem)
        if addr + self.bpb <= n:
            self.mem[addr:addr + self.bpb] = data
        else:
            for i, b in enumerate(data):
                self.mem[(addr + i) % n] = b

    # Ready signals are drawn once per cycle, whether or not a request is waiting.
    def rd_req_ready(self) -> int:
        return int(not self._stalled())

    def wr_req_ready(self) -> int:
        return int(not self._stalled())

    def wr_data_ready(self) -> int:
        return int(not self._stalled())

    def read_request(self, cycle: int, addr: int, beats: int) -> None:
        self.reads.append([cycle + self.latency, addr, beats])

    def read_beat(self, cycle: int) -> int | None:
        """The beat on `rd_data` in `cycle`, or None when `rd_data_valid` is low."""
        if self.reads and self.reads[0][0] <= cycle and not self._stalled():
            r = self.reads[0]
            data = self._get(r[1] % len(self.mem))
            r[1] += self.bpb
            r[2] -= 1
            if r[2] == 0:
                self.reads.popleft()
            return data
        return None

    def write_request(self, addr: int, beats: int) -> None:
        self.writes.append([addr, beats])

    def write_beat(self, cycle: int, data: int) -> None:
        if not self.writes:
            raise RuntimeError(f"cycle {cycle}: write beat without a write request")
        w = self.writes[0]
        self._put(w[0] % len(self.mem), data)
        w[0] += self.bpb
        w[1] -= 1
        if w[1] == 0:
            self.writes.popleft()
            late = self.rng.randrange(4) if self._stalled() else 0
            self.resps.append(cycle + self.latency + late)

    def write_response(self, cycle: int) -> bool:
        if self.resps and self.resps[0] <= cycle:
            self.resps.popleft()
            return True
        return False

    def image(self) -> np.ndarray:
        return np.frombuffer(bytes(self.mem), np.uint8).copy()


class VecPortModel:
    """DRAM behind the vector unit's port, sharing the image of a `DramModel`.

    Reads as `DramModel` (byte-addressed: beat j of a request at `addr` carries the bytes
    from addr + j * B). Writes are single beats: one taken in cycle w (`vwr_valid` and
    `vwr_ready`) writes the bytes whose strobe bit is set from `vwr_addr` on, and its
    response pulse comes in w + L (nominal) or up to 3 cycles later (stalled), one per cycle.
    """

    def __init__(self, dram: DramModel, *, stall: float = 0.0, seed: int = 0):
        self.dram = dram
        self.stall = stall
        self.rng = random.Random(seed + 2)
        self.reads: deque[list[int]] = deque()
        self.resps: deque[int] = deque()

    def _stalled(self) -> bool:
        return bool(self.stall) and self.rng.random() < self.stall

    def rd_req_ready(self) -> int:
        return int(not self._stalled())

    def wr_ready(self) -> int:
        return int(not self._stalled())

    def read_request(self, cycle: int, addr: int, beats: int) -> None:
        self.reads.append([cycle + self.dram.latency, addr, beats])

    def read_beat(self, cycle: int) -> int | None:
        if self.reads and self.reads[0][0] <= cycle and not self._stalled():
            r = self.reads[0]
            data = self.dram._get(r[1] % len(self.dram.mem))
            r[1] += self.dram.bpb
            r[2] -= 1
            if r[2] == 0:
                self.reads.popleft()
            return data
        return None

    def write(self, cycle: int, addr: int, data: int, strb: int) -> None:
        mem, n = self.dram.mem, len(self.dram.mem)
        for i in range(self.dram.bpb):
            if strb >> i & 1:
                mem[(addr + i) % n] = data >> (8 * i) & 0xFF
        late = self.rng.randrange(4) if self._stalled() else 0
        self.resps.append(max(cycle + self.dram.latency + late, self.resps[-1] + 1 if self.resps else 0))

    def write_response(self, cycle: int) -> bool:
        if self.resps and self.resps[0] <= cycle:
            self.resps.popleft()
            return True
        return False
