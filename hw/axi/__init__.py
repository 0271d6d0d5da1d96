"""The accelerator behind AXI: AXI4 masters for its DRAM ports, AXI4-Lite for start / status.

`AxiAccelerator(config)` (Verilog top `bebert_axi`, written by `bebert rtl` next to
`bebert_accel.v`) wraps `Accelerator`. Its DRAM ports are listed as port *groups*
(`PORT_GROUPS`), each a prefix of the accelerator's ports and a kind; every group becomes
its own AXI4 master `m_axi_<prefix>_*` (read-only or write-only, ARID = AWID = 0), so
when the accelerator's port set changes the wrapper follows by editing that list:

- `ReadGroup(prefix, aligned)`: `<p>_req_valid/ready/addr/len`, `<p>_data_valid/data`
  (docs/ARCHITECTURE.md, "External interface"). AR: ARADDR = the address rounded down to
  the bus, ARSIZE = log2(B/8), ARBURST = INCR, ARLEN = beats - 1, a request split into
  bursts of at most 256 beats that never cross a 4 KiB boundary (AXI4's two limits).
  `<p>_req_ready` is high when the bridge can take a request (its bookkeeping FIFO has room).
  R: RREADY = 1 (the accelerator takes every beat); beats are registered once. An unaligned
  group (`aligned=False`, the vector unit's `vrd`: beat j carries the bytes from addr + j B/8)
  reads one aligned beat more and shifts each pair of beats by the offset.
- `WriteGroup(prefix)`: `<p>_req_*`, `<p>_data_valid/ready/data` (and `<p>_data_strb` when
  the group has byte strobes), `<p>_resp_valid`. AW split as AR; W: the data beats in order,
  WSTRB all ones (or the strobes), WLAST on the last beat of every burst; B: BREADY = 1,
  `<p>_resp_valid` pulses once every burst of a request has its response.
- `StrobedWriteGroup(prefix)`: single beats at any byte address with strobes (`vwr`): one
  AXI write (AWLEN = 0) of the beat shifted to the bus, and a second one for the bytes that
  spill into the next bus word; `<p>_resp_valid` once both are answered.

The instruction port is an AXI4 read master too (`m_axi_imem_*`): the wrapper reads the
16-byte word `PROG_BASE + 16 * imem_addr` from memory whenever fetch presents a new index
(no prefetch: every word waits for a read round trip, which stretches the cycle count and
changes nothing else, per the architecture document's rule on slower memories).

AXI4-Lite slave `s_axil_*` (32-bit data, byte addresses; writes need AW and W, reads answer
the cycle after AR; BRESP = RRESP = OKAY):

| offset | name | access | meaning |
| --- | --- | --- | --- |
| 0x00 | CONTROL | W | bit 0: start (taken while not busy) |
| 0x00 | STATUS | R | bit 0 busy, bit 1 done, bit 2 error |
| 0x04 | ERROR_CODE | R | `bebert.hw.ErrorCode` |
| 0x08 | ERROR_PC | R | index of the word fetch stopped on |
| 0x0C | CYCLES | R | the run's cycle count |
| 0x10 | PROG_BASE | RW | byte address of instruction 0 in memory |
| 0x14 | BUS_BYTES | R | B/8, the data width of every master in bytes |

One clock (`clk`) and one synchronous active-high reset (`rst`) for everything: an AXI
system with ARESETn inverts it.
"""

from .ports import PORT_GROUPS, ReadGroup, StrobedWriteGroup, WriteGroup
from .wrapper import AxiAccelerator

AXI_TOP = "bebert_axi"  # the wrapper's Verilog module (and file) name

__all__ = ["AXI_TOP", "AxiAccelerator", "PORT_GROUPS", "ReadGroup", "StrobedWriteGroup", "WriteGroup"]
