"""A bench for the tile engine alone (hw/vec/tile_engine.py): tile columns fed from Python, the
parameter unit answering one cycle after `par_col`, a writer taking columns (always, or with
a seeded probability), every taken column recorded with its cycle."""

from __future__ import annotations

import random

import numpy as np
from amaranth.sim import Simulator

from bebert.hw.vec.tile_engine import TileEngine


def set_tree(ctx, port, values: dict) -> None:
    """Set a (nested) signature port from a (nested) dict of ints."""
    for name, v in values.items():
        sub = getattr(port, name)
        if isinstance(v, dict):
            set_tree(ctx, sub, v)
        else:
            ctx.set(sub, int(v))


def column_words(cols_a: np.ndarray, elem: int, T: int) -> list[int]:
    """(rows T, cols) int codes -> per column the 32T-bit input word (lane l at bytes l e)."""
    out = []
    for c in range(cols_a.shape[1]):
        word = 0
        for lane in range(T):
            word |= (int(cols_a[lane, c]) & ((1 << (8 * elem)) - 1)) << (8 * elem * lane)
        out.append(word)
    return out


class TileBench:
    def __init__(self, config, tc: dict, lc: dict, tiles_a: list, tiles_b: list | None, params: dict,
                 accept: float = 1.0, ready: float = 1.0, seed: int = 0):
        self.config, self.tc, self.lc = config, tc, lc
        self.a, self.b = tiles_a, tiles_b
        self.params = params            # {"mult": [...], "bias": [...], "mask": [...]}
        self.accept, self.ready, self.rng = accept, ready, random.Random(seed)
        self.got: list[tuple] = []      # (cycle, tile, col, ys[T], code[T])
        self.go_cycles: list[int] = []
        self.cycles = 0

    def run(self, limit: int = 200_000) -> "TileBench":
        dut = TileEngine(self.config)
        T = self.config.vec_lanes
        cols_a = [w for tile in self.a for w in tile]
        cols_b = [w for tile in self.b for w in tile] if self.b else [0] * len(cols_a)
        stride = len(self.a[0])

        async def bench(ctx):
            set_tree(ctx, dut.tc, self.tc)
            set_tree(ctx, dut.lc, self.lc)
            await ctx.tick()    # the settings a cycle before `start`, as the unit's setup holds them
            ctx.set(dut.start, 1)
            nxt, pend_col, pend_en, ready = 0, 0, 0, False
            for cycle in range(limit):
                # an assembled column stays ready until it is taken
                ready = nxt < len(cols_a) and (ready or self.rng.random() < self.ready)
                ctx.set(dut.in_ready, int(ready))
                if nxt < len(cols_a):
                    ctx.set(dut.in_a, cols_a[nxt])
                    ctx.set(dut.in_b, cols_b[nxt])
                acc = int(self.rng.random() < self.accept)
                ctx.set(dut.out_accept, acc)
                if pend_en:
                    c = pend_col
                    ctx.set(dut.par_mult, self.params.get("mult", [0] * (c + 1))[c] if "mult" in self.params else 0)
                    ctx.set(dut.par_bias, self.params["bias"][c] if "bias" in self.params else 0)
                    ctx.set(dut.par_mask, self.params["mask"][c] if "mask" in self.params else 1)
                if cycle and not ctx.get(dut.busy) and not ctx.get(dut.start):
                    self.cycles = cycle
                    return
                if ctx.get(dut.rd_go):
                    self.go_cycles.append(cycle)
                if ctx.get(dut.out_valid) and acc:
                    ys = ctx.get(dut.out_ys)
                    code = ctx.get(dut.out_code)
                    self.got.append((cycle, ctx.get(dut.out_tile), ctx.get(dut.out_col),
                                     [((ys >> (32 * i)) & 0xFFFFFFFF) for i in range(T)],
                                     [(code >> (8 * i)) & 0xFF for i in range(T)]))
                took = ctx.get(dut.in_take) and ready
                pend_en, pend_col = ctx.get(dut.par_en), ctx.get(dut.par_col)
                await ctx.tick()
                ctx.set(dut.start, 0)
                if took:
                    nxt, ready = nxt + 1, False
            raise AssertionError("tile engine did not finish")

        del stride
        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return self
