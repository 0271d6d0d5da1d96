"""Behavioural models of what sits behind the accelerator's ports, cycle by cycle.

Both are driven once per clock cycle t: `outputs of the DUT in cycle t` in, `inputs of the
DUT for cycle t` out (docs/ARCHITECTURE.md, "External interface").
"""

from __future__ import annotations

from collections import deque

import numpy as np


class InstructionMemory:
    """Synchronous ROM: the word at the address presented in cycle t is returned in t+1; 0 past the end."""

    def __init__(self, words: list[int]):
        self.words = list(words)
        self.prev_addr = None

    def step(self, addr: int) -> int:
        prev, self.prev_addr = self.prev_addr, addr
        if prev is None or prev >= len(self.words):
            return 0
        return self.words[prev]


class DramModel:
    """DRAM with a fixed latency L behind the read and write ports.

    Read: a request (addr, len) in cycle r returns beat j in cycle r + L + j.
    Write: a request in cycle w, then `len` beats in the cycles that carry `wr_data_valid`;
    the response pulse comes L cycles after the cycle of the last beat. Accesses wrap at the
    end of the image, as a real memory would alias them.
    """

    def __init__(self, image: np.ndarray, bytes_per_beat: int, latency: int):
        self.mem = bytearray(np.asarray(image, np.uint8).tobytes())
        self.bpb = bytes_per_beat
        self.latency = latency
        self.reads: deque[list[int]] = deque()  # [first cycle, addr, beats left]
        self.writes: deque[list[int]] = deque()  # [addr, beats left]
        self.resps: deque[int] = deque()

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

    def read_request(self, cycle: int, addr: int, beats: int) -> None:
        self.reads.append([cycle + self.latency, addr, beats])

    def read_beat(self, cycle: int) -> int | None:
        """The beat on `rd_data` in `cycle`, or None when `rd_data_valid` is low."""
        if self.reads and self.reads[0][0] <= cycle:
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
            self.resps.append(cycle + self.latency)

    def write_response(self, cycle: int) -> bool:
        if self.resps and self.resps[0] == cycle:
            self.resps.popleft()
            return True
        return False

    def image(self) -> np.ndarray:
        return np.frombuffer(bytes(self.mem), np.uint8).copy()
