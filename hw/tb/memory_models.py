"""Behavioural models of what sits behind the accelerator's ports, cycle by cycle.

All are driven once per clock cycle t: the DUT's outputs in cycle t in, the DUT's inputs for
cycle t out (docs/MACHINE_V3.md, "Nominal memory and ports"). With `stall` = 0 they are the
nominal memories of the configuration, the ones the simulator's cycle count assumes:

- instruction words one cycle after their address (a block RAM);
- a read port takes a request per cycle; a burst of n beats taken in cycle r returns beat j in
  cycle r + L + j, one beat per cycle on the port: with several requests outstanding (the
  vector unit's `vrd`) their beats come in request order, each at the earliest cycle that is
  at least r + L + j and after the previous beat;
- a write port takes a single-beat write per cycle (byte strobes) and answers it L cycles
  later, in order.

With `stall` > 0 (a probability) they are slower, never faster, and seeded: ready signals
drop, read beats skip cycles, write responses and instruction words come late. Every port
reads and writes one shared `DramImage` at once (a write lands when it is taken, so a read
requested after the write's response sees it).
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np


class InstructionMemory:
    """A synchronous ROM behind `imem_addr` / `imem_data` / `imem_valid`; 0 past the end.

    Nominal: the word at the address presented in cycle t is on `imem_data` in t+1 with
    `imem_valid` high. Slow (`stall` > 0): after the address changes the word comes 0..3
    cycles later; until then `imem_valid` is low. The fetch unit keeps the address steady
    while it waits, which is what lets a slow memory answer.
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


class DramImage:
    """The DRAM bytes every port shares; accesses wrap at the end, as a real memory aliases them."""

    def __init__(self, image: np.ndarray, bytes_per_beat: int):
        self.mem = bytearray(np.asarray(image, np.uint8).tobytes())
        self.bpb = bytes_per_beat

    def get(self, addr: int) -> int:
        """The beat at byte address `addr`."""
        n, b = len(self.mem), self.bpb
        addr %= n
        if addr + b <= n:
            return int.from_bytes(self.mem[addr:addr + b], "little")
        return int.from_bytes(bytes(self.mem[(addr + i) % n] for i in range(b)), "little")

    def put(self, addr: int, value: int, strb: int) -> None:
        """Byte i of `value` to `addr + i` where bit i of `strb` is set."""
        n = len(self.mem)
        if strb == (1 << self.bpb) - 1 and addr % n + self.bpb <= n:
            self.mem[addr % n:addr % n + self.bpb] = value.to_bytes(self.bpb, "little")
            return
        for i in range(self.bpb):
            if strb >> i & 1:
                self.mem[(addr + i) % n] = value >> (8 * i) & 0xFF

    def image(self) -> np.ndarray:
        return np.frombuffer(bytes(self.mem), np.uint8).copy()


class _Port:
    def __init__(self, dram: DramImage, latency: int, stall: float, seed: int):
        self.dram, self.latency, self.stall = dram, latency, stall
        self.rng = random.Random(seed)

    def _stalled(self) -> bool:
        return bool(self.stall) and self.rng.random() < self.stall

    def ready(self) -> int:
        """This cycle's `req_ready` / `ready` (drawn every cycle, whether or not a request waits)."""
        return int(not self._stalled())


class ReadPortModel(_Port):
    """A burst-read port (`rd`, `vrd`): requests in order, beats in request order (module doc)."""

    def __init__(self, dram: DramImage, latency: int, *, stall: float = 0.0, seed: int = 0):
        super().__init__(dram, latency, stall, seed)
        self.reads: deque[list[int]] = deque()  # [cycle of the next beat at the earliest, addr, beats left]
        self.last_beat = -1

    def request(self, cycle: int, addr: int, beats: int) -> None:
        if beats > 0:
            self.reads.append([cycle + self.latency, addr, beats])

    def beat(self, cycle: int) -> int | None:
        """The beat on `data` in `cycle`, or None when `data_valid` is low."""
        if not self.reads or self.reads[0][0] > cycle or self._stalled():
            return None
        r = self.reads[0]
        data = self.dram.get(r[1])
        r[0], r[1], r[2] = cycle + 1, r[1] + self.dram.bpb, r[2] - 1  # beat j + 1 no earlier than r + L + j + 1
        if r[2] == 0:
            self.reads.popleft()
        self.last_beat = cycle
        return data

    @property
    def idle(self) -> bool:
        return not self.reads


class WritePortModel(_Port):
    """A single-beat write port with byte strobes (`owr`, `vwr`): the write lands when taken; its
    response pulse comes L cycles later nominally, up to 3 more when stalled, in order, one per cycle."""

    def __init__(self, dram: DramImage, latency: int, *, stall: float = 0.0, seed: int = 0):
        super().__init__(dram, latency, stall, seed)
        self.resps: deque[int] = deque()

    def write(self, cycle: int, addr: int, data: int, strb: int) -> None:
        self.dram.put(addr, data, strb)
        late = self.rng.randrange(4) if self._stalled() else 0
        self.resps.append(max(cycle + self.latency + late, self.resps[-1] + 1 if self.resps else 0))

    def response(self, cycle: int) -> bool:
        if self.resps and self.resps[0] <= cycle:
            self.resps.popleft()
            return True
        return False

    @property
    def idle(self) -> bool:
        return not self.resps
