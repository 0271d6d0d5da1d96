"""The accelerator's port groups, declared once (docs/MACHINE_V3.md, "RTL structure and interfaces").

Every group is a `wiring.Signature` seen from the side that *drives the request* (the
accelerator's stage for a DRAM port, the writer for a buffer, fetch for a queue, the queue for
its head, the token counters for a stage's token port); the other side takes it flipped
(`In(...)`), and `wiring.connect` joins the two. The groups of the top module keep their names
(`rd`, `owr`, `vrd`, `vwr`), and the Verilog ports are named `<group>_<member>`
(`rd_req_valid`, `owr_strb`, ...: `bebert.hw.verilog.top_ports`).

DRAM ports (byte addresses, aligned to the bus; B = `AccelConfig.bus_bits`):

- `read_port(B)`: a burst read. `req_valid` / `req_ready` hand over one request (`req_addr`,
  `req_len` beats); its beats come back in request order on `data` with `data_valid`, one per
  cycle at most, beat j holding the bytes from `req_addr + j * B / 8` (always accepted). The
  nominal memory returns beat j of a request taken in cycle r in cycle r + L + j.
- `write_port(B)`: single-beat writes. `valid` / `ready` hand over one beat: byte i of `data`
  goes to `addr + i` where bit i of `strb` is set. Every write is answered by one
  `resp_valid` pulse, in order (the nominal memory answers a write taken in w in w + L).

On-chip ports:

- `buffer_write(width, abits)` / `buffer_read(width, abits)`: `hw/buffer.py`'s write port
  (`en`, `addr`, `data` stored at the end of the cycle) and read port (`en` + `addr` in t,
  `data` valid from t+1 until the next read).
- `snapshot_port(rows, cols)`: the COMPUTE stage's accumulators to the OUTPUT stage: `acc`
  (R x C int32, element (r, c) at bits [32 (r C + c), 32 (r C + c) + 32), registered), `row`
  (R int32, row r at bits [32 r, 32 r + 32): PE (r, c)'s accumulator is acc[r][c] + row[r]
  modulo 2^32, `hw/bitserial_accumulator.py`) and the `snap` pulse in the cycle the OUTPUT
  stage's snapshot register takes them.
- `queue_write()` (fetch -> a stage queue: `data`, `en`, `rdy`) and `queue_head()` (a queue ->
  its stage: `valid`, `word`, `pop`); `token_port()` (the token counters -> a stage: `pop_ok`,
  `pop`, `push`, one bit per stage). `bebert.hw.issue.StageSignature` combines the last two.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bebert.config import ACC_BITS
from bebert.isa import INSTR_BITS, N_STAGES

ADDR_BITS = 32  # DRAM byte addresses
LEN_BITS = 32  # burst lengths in beats


def _check_bus(bus_bits: int) -> None:
    if not isinstance(bus_bits, int) or bus_bits < 8 or bus_bits % 8:
        raise ValueError(f"a DRAM port is a whole number of bytes wide, got {bus_bits!r} bits")


def read_port(bus_bits: int) -> wiring.Signature:
    """A DRAM burst-read port, from the reading stage's side."""
    _check_bus(bus_bits)
    return wiring.Signature({
        "req_valid": Out(1), "req_ready": In(1), "req_addr": Out(ADDR_BITS), "req_len": Out(LEN_BITS),
        "data_valid": In(1), "data": In(bus_bits),
    })


def write_port(bus_bits: int) -> wiring.Signature:
    """A DRAM single-beat write port with byte strobes, from the writing stage's side."""
    _check_bus(bus_bits)
    return wiring.Signature({
        "valid": Out(1), "ready": In(1), "addr": Out(ADDR_BITS), "data": Out(bus_bits),
        "strb": Out(bus_bits // 8), "resp_valid": In(1),
    })


def buffer_write(width: int, abits: int) -> wiring.Signature:
    """A buffer's write port, from the writer's side."""
    return wiring.Signature({"en": Out(1), "addr": Out(abits), "data": Out(width)})


def buffer_read(width: int, abits: int) -> wiring.Signature:
    """A buffer's synchronous read port, from the reader's side."""
    return wiring.Signature({"en": Out(1), "addr": Out(abits), "data": In(width)})


def snapshot_port(rows: int, cols: int) -> wiring.Signature:
    """The accumulators and the snap pulse, from the COMPUTE stage's side."""
    return wiring.Signature({"acc": Out(rows * cols * ACC_BITS), "row": Out(rows * ACC_BITS), "snap": Out(1)})


def queue_write() -> wiring.Signature:
    """Fetch's side of one stage queue: `data` is stored at the end of a cycle with `en`,
    which fetch raises only with `rdy` (the queue is not full at the start of the cycle)."""
    return wiring.Signature({"data": Out(INSTR_BITS), "en": Out(1), "rdy": In(1)})


def queue_head() -> wiring.Signature:
    """A stage queue's side of its head: `valid` / `word` (the oldest instruction) and `pop`
    (the stage takes it at the end of the cycle)."""
    return wiring.Signature({"valid": Out(1), "word": Out(INSTR_BITS), "pop": In(1)})


def token_port() -> wiring.Signature:
    """The token counters' side of one stage's port: bit s of `pop_ok` is c[s -> stage] > 0;
    bit s of `pop` takes a token from c[s -> stage], bit d of `push` gives one to
    c[stage -> d] (one-cycle pulses, at the end of the cycle)."""
    return wiring.Signature({"pop_ok": Out(N_STAGES), "pop": In(N_STAGES), "push": In(N_STAGES)})
