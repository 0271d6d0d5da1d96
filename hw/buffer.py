"""An on-chip buffer: one synchronous read port, one write port."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from .ports import buffer_read, buffer_write


class Buffer(wiring.Component):
    """`depth` entries of `width` bits (depth a power of two: addresses wrap).

    Read (`r`, `hw/ports.py buffer_read` flipped): with `r.en` in cycle t, the entry at
    `r.addr` is on `r.data` in cycle t+1 and stays there until the next read (not transparent:
    a write at the end of cycle t is seen by a read presented in cycle t+1). Reading only when
    needed keeps `r.data`, and the logic it feeds, still, which matters for simulation speed.
    Write (`w`, `buffer_write` flipped): `w.data` is stored at `w.addr` at the end of a cycle
    with `w.en`.
    """

    def __init__(self, width: int, depth: int):
        if not isinstance(width, int) or width <= 0:
            raise ValueError(f"buffer width must be a positive integer, got {width!r}")
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            raise ValueError(f"buffer depth must be a power of two >= 2, got {depth!r}")
        self.width, self.depth = width, depth
        self.abits = depth.bit_length() - 1
        super().__init__({"r": In(buffer_read(width, self.abits)), "w": In(buffer_write(width, self.abits))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()
        m.d.comb += [rd.en.eq(self.r.en), rd.addr.eq(self.r.addr), self.r.data.eq(rd.data),
                     wr.addr.eq(self.w.addr), wr.data.eq(self.w.data), wr.en.eq(self.w.en)]
        return m


def buffer_of(config, name: str) -> Buffer:
    """The buffer `name` (abuf, wbuf, pbuf) of `config`: its entry width and count."""
    return Buffer(config.entry_bits[name], config.entries(name))


def address_bits(config, name: str) -> int:
    """Address bits of buffer `name` of `config` (its entry count is a power of two)."""
    return config.entries(name).bit_length() - 1
