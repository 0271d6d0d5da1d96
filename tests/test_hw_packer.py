"""The row-word packer (hw/packer.py) against a Python model of its contract (Amaranth simulator)."""

import gc
import random
import warnings

import pytest
from amaranth.sim import Simulator

from bebert.hw.packer import Packer


class PackerModel:
    """The packer's contract in Python: words[w][p] as integers."""

    def __init__(self, rows, planes, width, bus_bits, cols=None):
        self.R, self.P, self.W, self.B = rows, planes, width, bus_bits
        self.H = max(1, (cols or rows) // rows) if cols else 1
        self.words = [[0] * planes for _ in range(self.H * rows)]

    def clear(self):
        self.words = [[0] * self.P for _ in self.words]

    def shift(self, groups, codes, mask, hold=0):
        for w, row in enumerate(self.words):
            h, r = divmod(w, self.R)
            if groups >> h & 1:
                for p in range(self.P):
                    if hold >> p & 1:
                        continue
                    bit = (codes[r] >> p & 1) if mask >> r & 1 else 0
                    row[p] = (row[p] >> 1) | (bit << (self.W - 1))

    def beat(self, words, word, part, run):
        """One beat of a list of W-bit words per the read contract."""
        W, B = self.W, self.B
        if W >= B:
            return (words[word] >> (part * B)) & ((1 << B) - 1)
        wpb = B // W
        n = 1 << min(run, wpb.bit_length() - 1)
        first = word - word % n
        out = 0
        for q in range(wpb):
            w = first + q % n
            out |= (words[w] if w < len(words) else 0) << (q * W)
        return out


def transposed_words(tiles, R, C, W, P):
    """V^T words per the contract: tiles[t][c][r] codes (None: shifted a zero)."""
    n = len(tiles)
    out = [[0] * C for _ in range(P)]
    for t, tile in enumerate(tiles):
        for c in range(C):
            for r in range(R):
                code = tile[c][r]
                for p in range(P):
                    if code is not None and code >> p & 1:
                        out[p][c] |= 1 << (W - n * R + t * R + r)
    return out


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _codes(dut, ctx, codes):
    ctx.set(dut.codes, list(codes))


SHAPES = [  # rows, planes, width, bus_bits, transpose_cols
    (4, 3, 32, 64, 4), (4, 2, 16, 64, None), (2, 2, 16, 64, 4), (4, 2, 16, 32, 2),
    (2, 1, 8, 8, 2), (4, 2, 32, 16, 4), (1, 2, 8, 32, None),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, (v or 0 for v in s))))
def test_row_words_shift_codes_in_at_the_top_held_planes_keep_theirs_read_as_runs(shape):
    R, P, W, B, C = shape
    rng = random.Random(hash(shape) & 0xFFFF)
    dut = Packer(R, P, W, B, transpose_cols=C)
    model = PackerModel(R, P, W, B, C)

    async def bench(ctx):
        for step in range(3 * W):
            op = rng.random()
            if op < 0.05:
                ctx.set(dut.clear, 1)
                model.clear()
            else:
                groups = rng.getrandbits(dut.groups) if op < 0.9 else 0
                codes = [rng.getrandbits(P) for _ in range(R)]
                mask = rng.getrandbits(R)
                hold = rng.getrandbits(P) if rng.random() < 0.3 else 0
                ctx.set(dut.shift, groups)
                _codes(dut, ctx, codes)
                ctx.set(dut.mask, mask)
                ctx.set(dut.hold, hold)
                model.shift(groups, codes, mask, hold)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            ctx.set(dut.shift, 0)
            ctx.set(dut.hold, 0)
            if step % 17 == 16:
                for _ in range(12):
                    p, part, run = rng.randrange(P), rng.randrange(dut.parts), rng.randrange(4)
                    word = rng.randrange(dut.words)
                    ctx.set(dut.rd_plane, p)
                    ctx.set(dut.rd_word, word)
                    ctx.set(dut.rd_part, part)
                    ctx.set(dut.rd_run, run)
                    ctx.set(dut.rd_transposed, 0)
                    rows = [model.words[w][p] for w in range(dut.words)]
                    assert ctx.get(dut.rd_data) == model.beat(rows, word, part, run)

    _run(dut, bench)


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[4]], ids=lambda s: "x".join(map(str, s)))
def test_transposed_view_takes_a_columns_codes_at_once_through_the_transposer(shape):
    R, P, W, B, C = shape
    rng = random.Random(7 + (hash(shape) & 0xFFFF))
    dut = Packer(R, P, W, B, transpose_cols=C)
    model = PackerModel(R, P, W, B, C)

    async def bench(ctx):
        for trial in range(3):
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            n = rng.randint(1, W // R)
            tiles = []
            for _ in range(n):
                rows, cols = rng.randint(1, R), rng.randint(1, C)
                tile = [[rng.getrandbits(P) if (r < rows and c < cols) else None for r in range(R)]
                        for c in range(C)]
                tiles.append(tile)
                for c in range(C):
                    ctx.set(dut.shift, (1 << (c // R)) if C > R else (1 << dut.groups) - 1)
                    _codes(dut, ctx, [v or 0 for v in tile[c]])
                    ctx.set(dut.mask, sum(1 << r for r in range(R) if tile[c][r] is not None))
                    await ctx.tick()
            ctx.set(dut.shift, 0)
            want = transposed_words(tiles, R, C, W, P)
            Q = min(R, C)
            slots = max(1, R * W // B)
            for p in rng.sample(range(P), P):
                for h in range(dut.groups):
                    ctx.set(dut.rd_plane, p)
                    ctx.set(dut.tload, 1)
                    for i in rng.sample(range(slots), slots):  # any order: slots are addressed
                        word, part = (i // dut.parts, i % dut.parts) if W >= B else (i * (B // W), 0)
                        ctx.set(dut.rd_word, h * R + word)
                        ctx.set(dut.rd_part, part)
                        ctx.set(dut.rd_run, R.bit_length() - 1)
                        await ctx.tick()
                    ctx.set(dut.tload, 0)
                    ctx.set(dut.rd_transposed, 1)
                    ctx.set(dut.rd_plane, rng.randrange(P))  # ignored
                    for c in range(h * Q, h * Q + Q):
                        for part in range(dut.parts):
                            for run in range(3):
                                ctx.set(dut.rd_word, c)
                                ctx.set(dut.rd_part, part)
                                ctx.set(dut.rd_run, run)
                                got = ctx.get(dut.rd_data)
                                assert got == model.beat(want[p][h * Q:h * Q + Q], c % Q, part, run), (trial, p, c)
                    ctx.set(dut.rd_transposed, 0)

    _run(dut, bench)


def refused(make, match):
    """`make()` raises ValueError(match), without Amaranth's UnusedElaboratable warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=match):
            make()
        gc.collect()


def test_packer_refuses_shapes_it_cannot_hold():
    refused(lambda: Packer(3, 2, 32, 64), "power of two")
    refused(lambda: Packer(64, 2, 32, 64), "must not exceed")
    refused(lambda: Packer(4, 0, 32, 64), "planes")
    refused(lambda: Packer(4, 2, 32, 64, transpose_cols=3), "transpose_cols")
