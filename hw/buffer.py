"""An on-chip buffer: one synchronous read port, one write port."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class Buffer(wiring.Component):
    """`depth` entries of `width` bits (depth a power of two: addresses wrap).

    Read: with `r_en` in cycle t, the entry at `r_addr` is on `r_data` in cycle t+1 and
    stays there until the next read (not transparent: a write at the end of cycle t is
    seen by a read presented in cycle t+1). Reading only when needed keeps `r_data`, and
    the logic it feeds, still, which matters for simulation speed.
    Write: `w_data` is stored at `w_addr` at the end of a cycle with `w_en`.
    """

    def __init__(self, width: int, depth: int):
        if width <= 0:
            raise ValueError(f"buffer width must be positive, got {width}")
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"buffer depth must be a power of two >= 2, got {depth}")
        self.width, self.depth = width, depth
        abits = depth.bit_length() - 1
        super().__init__({"r_en": In(1), "r_addr": In(abits), "r_data": Out(width),
                          "w_en": In(1), "w_addr": In(abits), "w_data": In(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()
        m.d.comb += [rd.en.eq(self.r_en), rd.addr.eq(self.r_addr), self.r_data.eq(rd.data),
                     wr.addr.eq(self.w_addr), wr.data.eq(self.w_data), wr.en.eq(self.w_en)]
        return m
