"""Random legal v3 programs for differential tests (golden == simulator == RTL), seeded.

Two generators, both returning a whole `Program` (instructions and the DRAM image they need):

- `random_program`: race-free, so every back end computes the same DRAM bytes. It mixes all
  four stages: double-buffered tiles (tile i LOADs into half i % 2 of ABUF, WBUF and PBUF),
  GEMM groups (XNOR or AND mode, any activation width of the config, wbits, signed operands,
  init) that end in a `snap`, POSTCFG segments (stream elements of 1, 2, 4 bytes, packed and
  packed-transposed bit-planes, pm1) whose POSTs write an output tensor tile by tile, VEC jobs
  (every kernel, legal descriptors) that read those tensors or data of their own, and SYNCs in
  every stage. Every cross-stage hazard is ordered by a token: LOAD -> GEMM / POST (buffer
  RAW), GEMM / POST -> the LOAD two tiles later (buffer WAR), snap GEMM -> POST and POST -> the
  next snap GEMM (the snapshot register; a SYNC in OUTPUT primes the first), POST -> VEC
  (DRAM RAW). LOADs read a region nobody writes; POSTs and VECs write fresh allocations.
- `random_token_program`: unstructured timing traffic. Random instructions in random stages
  with random tokens; buffer and DRAM contents may race, so only cycles and errors are
  meaningful. VECs still use legal descriptors whose data no one overwrites (their timing
  never depends on data, and their indices stay in range), POSTs write only their own region.

Token discipline (both): every pop is preceded in program order by its push
(`bebert/tokens.py check_tokens`), which never deadlocks for any queue depth, and every
counter ends at 0. In `random_program` the tokens of each counter are also FIFO-matched (the
k-th pop is meant for the k-th push), so each one orders exactly the pair it was placed for;
random extra pairs between stages (often on SYNCs) only add order.

`features` (a subset of `ALL_FEATURES`) leaves parts out: "and" (AND-mode GEMMs), "packed"
(packed POSTCFG formats), "vec" (VEC jobs). `RTL_FEATURES` is what the RTL runs: everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.isa import Instr, Op, PostFmt, Stage, halt
from bebert.program import Program
from bebert.vector import (VOTE_KERNELS, Packed, VecFn, View, consts_words, embed_io, encode_desc, io_word,
                           vote_consts_words)

ALL_FEATURES = frozenset({"and", "packed", "vec"})
RTL_FEATURES = ALL_FEATURES  # the v3 RTL runs every instruction and kernel
MAX_VEC_COLS = 24  # keep VEC durations of the order of a few GEMMs
TOKEN_CAP = 4  # random token programs keep every counter at most this high


def _features(features) -> frozenset[str]:
    f = frozenset(features)
    if f - ALL_FEATURES:
        raise ValueError(f"unknown feature(s) {sorted(f - ALL_FEATURES)}; known: {sorted(ALL_FEATURES)}")
    return f


def load_region_bytes(config: AccelConfig) -> int:
    """Bytes of the DRAM region LOADs read (nobody writes it): enough to fill every buffer once."""
    return max(config.abuf_bytes, config.wbuf_bytes, config.pbuf_bytes)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _up(a: int, b: int) -> int:
    return _ceil(a, b) * b


def _pow2_up(a: int) -> int:
    return 1 << max(0, a - 1).bit_length()


# == the DRAM image ============================================================================
class _Image:
    """The initial DRAM image: the LOAD region (random bytes), then bump-allocated blocks."""

    def __init__(self, rng: np.random.Generator, config: AccelConfig):
        self.rng, self.config = rng, config
        # Every base, pitch and group stride is a multiple of this power of two: a bus beat, a
        # stream run (up to 4 * max(T, R) bytes), a packed run (up to max(R, C, T) row-words).
        c = config
        self.align = max(c.dram_bytes_per_cycle, 4 * max(c.vec_lanes, c.pe_rows),
                         max(c.pe_rows, c.pe_cols, c.vec_lanes) * c.xnor_width // 8)
        self.blocks: list[tuple[int, np.ndarray]] = [(0, rng.integers(0, 256, load_region_bytes(config), np.uint8))]
        self.top = load_region_bytes(config)

    def alloc(self, nbytes: int, data=None) -> int:
        """`nbytes` bytes (zero, or `data`), aligned for any port and any stream or packed run."""
        at = _up(self.top, self.align)
        if data is not None:
            b = np.frombuffer(bytes(data), np.uint8) if isinstance(data, (bytes, bytearray)) else \
                np.ascontiguousarray(data).view(np.uint8).reshape(-1)
            self.blocks.append((at, b))
            nbytes = max(nbytes, b.size)
        self.top = at + max(nbytes, 1)
        return at

    def random_codes(self, shape, lo: int, hi: int) -> np.ndarray:
        return self.rng.integers(lo, hi + 1, shape)

    def image(self) -> np.ndarray:
        out = np.zeros(_up(self.top, self.align) + self.align, np.uint8)
        for at, b in self.blocks:
            out[at:at + b.size] = b
        return out


# == instructions under construction =============================================================
@dataclass(eq=False)
class _Ins:
    """An instruction whose tokens are still being placed."""

    op: Op
    args: dict
    pops: set = field(default_factory=set)
    pushes: set = field(default_factory=set)

    @property
    def stage(self) -> Stage:
        return Stage(self.args["stage"]) if self.op == Op.SYNC else {
            Op.LOAD: Stage.LOAD, Op.GEMM: Stage.COMPUTE, Op.POSTCFG: Stage.OUTPUT, Op.POST: Stage.OUTPUT,
            Op.VEC: Stage.VECTOR}[self.op]

    def instr(self) -> Instr:
        return Instr(self.op, self.args, frozenset(self.pops), frozenset(self.pushes))


def _sync(stage: Stage) -> _Ins:
    return _Ins(Op.SYNC, {"stage": int(stage)})


class _Tokens:
    """Token pairs over a fixed program order, kept FIFO-matched per counter."""

    def __init__(self, order: list[_Ins]):
        self.pos = {id(x): i for i, x in enumerate(order)}
        self.pairs: dict[tuple[Stage, Stage], list[tuple[int, int]]] = {}

    def link(self, a: _Ins, b: _Ins, *, required: bool = True) -> bool:
        """Order b after a (a earlier in program order, another stage): a pushes, b pops."""
        s, d = a.stage, b.stage
        pa, pb = self.pos[id(a)], self.pos[id(b)]
        ok = s != d and pa < pb and d not in a.pushes and s not in b.pops
        ok = ok and all((x < pa) == (y < pb) for x, y in self.pairs.get((s, d), ()))
        if not ok:
            if required:
                raise AssertionError(f"cannot order {b.op.name} after {a.op.name} with a token")
            return False
        a.pushes.add(d)
        b.pops.add(s)
        self.pairs.setdefault((s, d), []).append((pa, pb))
        return True


# == the pieces of a tile ========================================================================
class _Builder:
    """Random instruction fields for one configuration (shared by both generators)."""

    def __init__(self, rng: np.random.Generator, config: AccelConfig, features: frozenset[str], img: _Image,
                 max_n: int, max_k: int):
        self.rng, self.cfg, self.features, self.img = rng, config, features, img
        self.max_n, self.max_k = max_n, max_k

    def r(self, lo: int, hi: int) -> int:
        """A random integer in lo..hi (inclusive)."""
        return int(self.rng.integers(lo, hi + 1))

    def coin(self, p: float = 0.5) -> bool:
        return bool(self.rng.random() < p)

    # -- LOAD, GEMM -------------------------------------------------------------------------
    def load(self, buf: str, half: int) -> _Ins:
        cfg = self.cfg
        entries = cfg.entries(buf) // 2
        n = self.r(1, min(self.max_n, entries))
        addr = half * entries + self.r(0, entries - n)
        span = load_region_bytes(cfg) - n * cfg.entry_bytes(buf)
        dram = self.r(0, span // cfg.dram_bytes_per_cycle) * cfg.dram_bytes_per_cycle
        return _Ins(Op.LOAD, {"buf": ("abuf", "wbuf", "pbuf").index(buf), "dram": dram, "addr": addr, "n": n})

    def gemm(self, half: int, init: bool, snap: bool) -> _Ins:
        cfg = self.cfg
        a_half, w_half = cfg.abuf_entries // 2, cfg.wbuf_entries // 2
        bits = int(self.rng.choice(cfg.act_bits))
        and_mode = "and" in self.features and self.coin()
        wbits = self.r(1, 8) if and_mode else 1
        k = self.r(1, max(1, min(self.max_k, w_half // wbits, a_half // bits)))
        stride = self.r(k, max(k, min(a_half // bits, 0xFFFF)))
        wstride = self.r(k, max(k, min(w_half // wbits, 0xFFFF))) if wbits > 1 else self.r(0, 3)
        a = half * a_half + self.r(0, a_half - (bits - 1) * stride - k)
        w = half * w_half + self.r(0, w_half - (wbits - 1) * (wstride if wbits > 1 else 0) - k)
        return _Ins(Op.GEMM, {"a": a, "w": w, "k": k, "stride": stride, "wstride": wstride, "bits": bits,
                              "wbits": wbits, "signed": self.r(0, 1), "wsigned": int(and_mode and self.coin()),
                              "mode": int(and_mode), "init": int(init), "snap": int(snap)})

    # -- POSTCFG + POSTs of one output tensor -----------------------------------------------------
    def output_tensor(self, half: int, max_tiles: int = 4) -> tuple[_Ins, list[list[_Ins]], dict]:
        """A POSTCFG and its POSTs, grouped by the snapshot each reads (one group per array
        tile, in the order the format needs), and the tensor written (stream: a layout dict)."""
        cfg = self.cfg
        R, C, W, T = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width, cfg.vec_lanes
        fmt = PostFmt.STREAM if "packed" not in self.features or self.coin(0.5) else \
            PostFmt(self.r(int(PostFmt.PACKED), int(PostFmt.TRANSPOSED)))
        mt = self.r(1, 2)
        nt = self.r(1, max(1, max_tiles // mt))
        M, N = self.r((mt - 1) * R + 1, mt * R), self.r((nt - 1) * C + 1, nt * C)
        shift = self.r(0, 40)
        if fmt == PostFmt.STREAM:
            elem = self.r(0, 2)
            e = 1 << elem
            obits = self.r(0, 16)
            L = lay.stream_layout(M, N, T, e, True, row_align=R)
            L = lay.stream_layout(M, N, T, e, True, row_align=R, pitch=_up(L["pitch"], self.img.align))
            base = self.img.alloc(lay.stream_nbytes(L))
            cfg_ins = _Ins(Op.POSTCFG, {"fmt": int(fmt), "elem": elem, "shift": shift, "obits": obits,
                                        "osigned": self.r(0, 1), "pitch": L["pitch"], "gstride": 0, "group": 1,
                                        "pm1": 0})
            groups = [[self._post(self._pbuf(half), base + int(lay.stream_addr(L, mi * R, ni * C)),
                                  min(C, N - ni * C), min(R, M - mi * R))] for mi in range(mt) for ni in range(nt)]
            return cfg_ins, groups, {"kind": "stream", "base": base, "layout": L}
        planes = self.r(1, 8)
        pm1 = int(planes == 1 and self.coin())
        G = int(self.rng.choice([g for g in (1, 2, R, C, 2 * R) if g <= 128]))
        lines, words = (M, N) if fmt == PostFmt.PACKED else (N, M)  # row-words along `words`
        kw = _ceil(words, W)
        run = max(R, C, G)
        gstride = _pow2_up(max(kw * G * W // 8, self.img.align))
        pitch = _ceil(_up(lines, run), G) * gstride
        base = self.img.alloc(planes * pitch)
        cfg_ins = _Ins(Op.POSTCFG, {"fmt": int(fmt), "elem": 0, "shift": shift, "obits": planes,
                                    "osigned": self.r(0, 1), "pitch": pitch, "gstride": gstride, "group": G,
                                    "pm1": pm1})

        def addr(line0: int, j: int) -> int:  # row-word (line0, plane 0, word j)
            return base + (line0 // G) * gstride + (line0 % G) * W // 8 + j * G * W // 8

        groups = []
        if fmt == PostFmt.PACKED:  # the tiles of one word consecutive, the last one flushes
            for mi in range(mt):
                for j in range(kw):
                    tiles = [ni for ni in range(nt) if j * W <= ni * C < (j + 1) * W]
                    for ni in tiles:
                        groups.append([self._post(self._pbuf(half), addr(mi * R, j), min(C, N - ni * C), min(R, M - mi * R),
                                                  pos=ni * C % W, flush=ni == tiles[-1])])
        else:  # transposed: the m-tiles of one token-word consecutive
            for ni in range(nt):
                for j in range(kw):
                    tiles = [mi for mi in range(mt) if j * W <= mi * R < (j + 1) * W]
                    for mi in tiles:
                        groups.append([self._post(self._pbuf(half), addr(ni * C, j), min(C, N - ni * C), min(R, M - mi * R),
                                                  flush=mi == tiles[-1])])
        return cfg_ins, groups, {"kind": "packed"}

    def _pbuf(self, half: int) -> int:
        p_half = self.cfg.pbuf_entries // 2
        return half * p_half + self.r(0, p_half - 1)

    def _post(self, p: int, dram: int, cols: int, rows: int, *, pos: int = 0, flush: bool = False) -> _Ins:
        return _Ins(Op.POST, {"p": p, "dram": dram, "pos": pos, "cols": cols, "rows": rows, "flush": int(flush)})

    def stray_post(self) -> list[_Ins]:
        """A POSTCFG and one POST anywhere in a scratch block (token programs: data races allowed)."""
        cfg_ins, groups, _ = self.output_tensor(self.r(0, 1), max_tiles=1)
        return [cfg_ins, groups[0][0]]


# == VEC jobs ======================================================================================
class _VecJobs:
    """Legal VEC words with their descriptors, constants and inputs in the DRAM image."""

    TILE = (VecFn.ADD, VecFn.REQUANT, VecFn.LAYERNORM, VecFn.SOFTMAX, VecFn.GELU)
    SCALAR = (VecFn.EMBED, VecFn.LUT, VecFn.DOT, VecFn.COMBINE, VecFn.VOTE, VecFn.VOTE_AVERAGE, VecFn.VOTE_MEAN,
              VecFn.VOTE_MEDIAN)

    def __init__(self, b: _Builder):
        self.b, self.img, self.cfg = b, b.img, b.cfg
        self.T = b.cfg.vec_lanes

    def any(self) -> _Ins:
        fn = VecFn(int(self.b.rng.choice([int(f) for f in self.TILE + self.SCALAR])))
        return self.tile(fn) if fn in self.TILE else self.scalar(fn)

    # -- operands ---------------------------------------------------------------------------------
    def _stream(self, rows: int, cols: int, elem: int) -> dict:
        """A stream layout whose row tiles start on the image's alignment (a bus beat at least)."""
        L = lay.stream_layout(rows, cols, self.T, elem, True, row_align=self.cfg.pe_rows)
        return lay.stream_layout(rows, cols, self.T, elem, True, row_align=self.cfg.pe_rows,
                                 pitch=_up(L["pitch"], self.img.align))

    def _stream_in(self, rows: int, cols: int, elem: int) -> View:
        L = self._stream(rows, cols, elem)
        hi = (1 << (8 * elem - 1)) - 1
        x = self.img.random_codes((rows, cols), -min(hi + 1, 3000), min(hi, 3000))
        return View.stream(self.img.alloc(0, lay.pack_stream(x, L)), L)

    def _stream_out(self, rows: int, cols: int, elem: int) -> View:
        L = self._stream(rows, cols, elem)
        return View.stream(self.img.alloc(lay.stream_nbytes(L)), L)

    def _packed_out(self, rows: int, cols: int, bits: int) -> Packed:
        """A packed output: groups of at least min(T, row-words per beat) row-words (the
        unit's writer fills whole beats of one group)."""
        cfg, b = self.cfg, self.b
        W, B = cfg.xnor_width, cfg.dram_bytes_per_cycle
        gmin = min(self.T, max(1, 8 * B // W))
        G = int(b.rng.choice([g for g in (gmin, self.T, cfg.pe_rows) if g >= gmin]))
        kw = _ceil(cols, W)
        gstride = _pow2_up(max(kw * G * W // 8, self.img.align))
        pitch = _ceil(_up(rows, max(G, self.T, cfg.pe_rows)), G) * gstride
        pm1 = bits == 1 and b.coin()
        return Packed(self.img.alloc(bits * pitch), pitch, gstride, G, G * W // 8, b.coin(), pm1, 0)

    def _row_major(self, rows: int, cols: int, elem: int, lo: int, hi: int) -> View:
        x = self.img.random_codes((rows, cols), lo, hi).astype(f"<i{elem}")
        return View.row_major(self.img.alloc(0, x), cols, elem)

    def _word(self, fn: VecFn, rows: int, cols: int, desc: bytes, *, bits=0, aux=0, io=0) -> _Ins:
        return _Ins(Op.VEC, {"fn": int(fn), "desc": self.img.alloc(0, desc), "rows": rows, "cols": cols,
                             "bits": bits, "aux": aux, "io": io})

    # -- the tile engine ---------------------------------------------------------------------------
    def tile(self, fn: VecFn, src: tuple[View, int, int, int] | None = None) -> _Ins:
        """A tile-engine kernel over a fresh stream input, or over `src` = (view, rows, cols,
        element bytes), a stream tensor some POSTs wrote."""
        b, rng = self.b, self.b.rng
        if src is None:
            rows, cols, ein = b.r(1, 2 * self.T), b.r(2, MAX_VEC_COLS), int(rng.choice([1, 2, 4]))
            a = self._stream_in(rows, cols, ein)
        else:
            a, rows, cols, ein = src
        cols = min(cols, self.cfg.vec_row_elems)
        if fn == VecFn.LAYERNORM and cols < 2:  # a LayerNorm over one element is not defined
            fn = VecFn.REQUANT
        eout = int(rng.choice([1, 2, 4]))
        bits = b.r(1, 8) if b.coin(0.4) else 0
        stream_out = not bits or b.coin()
        second = fn in (VecFn.LAYERNORM, VecFn.SOFTMAX) and b.coin()
        out = self._stream_out(rows, cols, eout) if stream_out else None
        pout = self._packed_out(rows, cols, bits) if bits else None
        f = {"out": out, "pout": pout}
        s_in = 0.002 + rng.random() * 0.05
        ob, osg = b.r(2, 16), b.coin()
        if fn == VecFn.REQUANT:
            f |= {"src": a, "consts": self.img.alloc(0, consts_words(fn, I.prepare_requant(
                s_in, s_in * (0.5 + 4 * rng.random()), b.r(0, 16), osg, in_bits=8 * ein)))}
        elif fn == VecFn.ADD:
            f |= {"a": a, "b": self._stream_in(rows, cols, ein), "consts": self.img.alloc(0, consts_words(
                fn, I.prepare_add(s_in, 0.01 + rng.random() * 0.05, None, ob, osg, in_bits=8 * ein)))}
        elif fn == VecFn.GELU:
            f |= {"src": a, "consts": self.img.alloc(0, consts_words(fn, I.prepare_gelu(
                s_in, 0.01 + 0.05 * rng.random(), ob, osg)))}
        elif fn == VecFn.SOFTMAX:
            mask = self._row_major(1, cols, 4, 0, 1) if second else None
            f |= {"src": a, "mask": mask, "consts": self.img.alloc(0, consts_words(fn, I.prepare_softmax(
                s_in, out_bits=ob)))}
        else:  # LAYERNORM, optionally of a fused residual add
            ln = I.prepare_layernorm(s_in, 1 + 0.2 * rng.standard_normal(cols), 0.1 * rng.standard_normal(cols),
                                     0.01 + 0.05 * rng.random(), ob, osg, in_bits=min(16, 8 * ein))
            f |= {"a": a, "consts": self.img.alloc(0, consts_words(fn, ln, (ln.mult, ln.bias)))}
            if second:
                f |= {"b": self._stream_in(rows, cols, ein), "add_consts": self.img.alloc(0, consts_words(
                    VecFn.ADD, I.prepare_add(s_in, s_in * 2, s_in, 16, True, in_bits=8 * ein)))}
        io = io_word(stream_out, second, ein, eout)
        return self._word(fn, rows, cols, encode_desc(fn, **f), bits=bits, io=io)

    # -- the scalar engine -------------------------------------------------------------------------
    def scalar(self, fn: VecFn) -> _Ins:
        b = self.b
        rows, cols = b.r(1, 4), b.r(1, 8)
        if fn == VecFn.LUT:
            table = self.img.alloc(0, self.img.random_codes(256, -1000, 1000).astype("<i4"))
            f = {"src": self._row_major(rows, cols, 1, -128, 127), "out": self._row_major(rows, cols, 4, 0, 0),
                 "table": table, "offset": 128, "size": 256}
            return self._word(fn, rows, cols, encode_desc(fn, **f))
        if fn == VecFn.DOT:
            aux = b.r(1, 3)
            f = {"src": self._row_major(rows, cols, 2, -300, 300), "weight": self._row_major(aux, cols, 2, -300, 300),
                 "bias": self.img.alloc(0, self.img.random_codes(aux, -1 << 30, 1 << 30).astype("<i8")),
                 "out": self._row_major(rows, aux, 8, 0, 0)}
            return self._word(fn, rows, cols, encode_desc(fn, **f), aux=aux)
        if fn == VecFn.COMBINE:
            aux = b.r(1, 3)
            f = {"out": self._row_major(rows, cols, 8, 0, 0),
                 "weights": self.img.alloc(0, self.img.random_codes(aux, -50, 50).astype("<i8")),
                 "inputs": [self._row_major(rows, cols, 8, -1 << 20, 1 << 20) for _ in range(aux)]}
            return self._word(fn, rows, cols, encode_desc(fn, **f), aux=aux)
        if fn in VOTE_KERNELS:  # rows examples of aux members' accumulators (VOTE: samme or samme.r)
            aux = b.r(1, 5)
            labels = 1 if fn in (VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN) else b.r(1, 4)
            shifts = [b.r(0, 40) for _ in range(aux)]
            consts = vote_consts_words(shifts, self.img.random_codes(aux, int(fn != VecFn.VOTE), 1 << 20),
                                       self.img.random_codes((aux, labels), 1, 1 << 20))
            f = {"src": self._row_major(rows * aux, labels, 8, -1 << 40, 1 << 40),
                 "out": self._row_major(rows * (aux + 1), 1, 8, 0, 0), "consts": self.img.alloc(0, consts),
                 **({"method": b.r(0, 1)} if fn == VecFn.VOTE else {})}
            return self._word(fn, rows, labels, encode_desc(fn, **f), aux=aux)
        # EMBED: dense word / position / token-type tables, ids and types in range
        vocab = b.r(2, 6)
        table = lambda n: (0, self.img.alloc(0, self.img.random_codes((n, cols), -500, 500).astype("<i4")),  # noqa: E731
                           4 * cols, n, 4, 0)
        f = {"ids": self._row_major(rows, 1, 4, 0, vocab - 1), "types": self._row_major(rows, 1, 4, 0, 1),
             "word": table(vocab), "position": table(rows), "token_type": table(2),
             "out": self._stream_out(rows, cols, 2)}
        return self._word(fn, rows, cols, encode_desc(fn, **f), io=embed_io((0, 0, 0), 2))


# == the race-free generator ========================================================================
def random_program(rng: np.random.Generator, config: AccelConfig, n_instrs: int, *, max_n: int = 8,
                   max_k: int = 8, features=RTL_FEATURES) -> Program:
    """A race-free program of about `n_instrs` instructions + HALT (see the module docstring).

    Tiles are added while the program is shorter than `n_instrs`, so it may be longer. `max_n`
    bounds LOAD entries, `max_k` GEMM words (keep them small for RTL simulation).
    """
    features = _features(features)
    img = _Image(rng, config)
    b = _Builder(rng, config, features, img, max_n, max_k)
    vec = _VecJobs(b)
    tiles = []
    count = 0
    while count < max(n_instrs, 1):
        t = _tile(b, vec, len(tiles) % 2)
        tiles.append(t)
        count += sum(len(x) for x in t.values() if isinstance(x, list))
    order, prime, drain = _program_order(b, tiles)
    tok = _Tokens(order)
    _place_tokens(tok, tiles, prime, drain)
    _random_links(b, tok, order)
    instrs = [x.instr() for x in order] + [halt()]
    return Program(config=config, instrs=instrs, dram=img.image(),
                   meta={"generator": "random_program", "features": sorted(features)})


def _tile(b: _Builder, vec: _VecJobs, half: int) -> dict:
    """One tile's instructions, by stage, with what the tokens need to know."""
    loads = [b.load(buf, half) for buf in b.rng.choice(["abuf", "wbuf", "pbuf"], b.r(1, 3))]
    body: list[_Ins] = []  # COMPUTE and OUTPUT instructions in program order
    snaps: list[tuple[_Ins, list[_Ins]]] = []  # (snap GEMM, the POSTs that read its snapshot)
    outputs, vecs = [], []
    for _ in range(b.r(1, 2)):
        cfg_ins, groups, tensor = b.output_tensor(half)
        body.append(cfg_ins)
        for posts in groups:
            gemms = [b.gemm(half, init=i == 0 or b.coin(0.2), snap=False) for i in range(b.r(1, 2))]
            gemms[-1].args["snap"] = 1
            body += gemms
            if b.coin(0.2):
                body.append(_sync(Stage(int(b.rng.choice([Stage.COMPUTE, Stage.OUTPUT])))))
            if b.coin(0.3):  # a second POST of the same snapshot
                posts = posts + [b._post(posts[0].args["p"], b.img.alloc(64), 1, 1)] \
                    if tensor["kind"] == "stream" else posts
            body += posts
            snaps.append((gemms[-1], posts))
        outputs.append(body[-1])
        if "vec" in b.features and b.coin(0.6):
            L = tensor.get("layout")
            if L is not None and b.coin():  # consume the tensor the POSTs wrote
                view = View.stream(tensor["base"], L)
                fn = VecFn(int(b.rng.choice([int(f) for f in _VecJobs.TILE])))
                vecs.append((body[-1], vec.tile(fn, (view, L["M"], L["N"], L["elem"]))))
            else:
                vecs.append((None, vec.any()))
    return {"loads": loads, "body": body, "snaps": snaps, "vecs": vecs, "outputs": outputs}


def _program_order(b: _Builder, tiles: list[dict]) -> tuple[list[_Ins], _Ins, _Ins]:
    """Program order: loads of tile i + 1 before the body of tile i when the rng says so (a
    software pipeline), VECs after the POSTs they read, SYNCs here and there; a SYNC in OUTPUT
    first (the snapshot's first token) and a SYNC in COMPUTE last (takes the last one)."""
    prime, drain = _sync(Stage.OUTPUT), _sync(Stage.COMPUTE)
    ahead = b.coin()
    order = [prime]
    if ahead:
        order += tiles[0]["loads"]
    for i, t in enumerate(tiles):
        if not ahead:
            order += t["loads"]
        elif i + 1 < len(tiles):
            order += tiles[i + 1]["loads"]
        order += t["body"] + [v for _, v in t["vecs"]]
        if b.coin(0.3):
            order.append(_sync(Stage(b.r(0, 3))))
    return order + [drain], prime, drain


def _place_tokens(tok: _Tokens, tiles: list[dict], prime: _Ins, drain: _Ins) -> None:
    """The tokens that order every cross-stage hazard (module docstring), FIFO per counter."""
    def first(xs, stage):
        return next(x for x in xs if x.stage == stage)

    def last(xs, stage):
        return [x for x in xs if x.stage == stage][-1]

    for i, t in enumerate(tiles):  # buffer RAW: the tile's last LOAD before its GEMMs and POSTs
        tok.link(t["loads"][-1], first(t["body"], Stage.COMPUTE))
        tok.link(t["loads"][-1], first(t["body"], Stage.OUTPUT))
    prev_posts = None  # the snapshot: snap GEMM -> its POSTs -> the next snap GEMM
    for t in tiles:
        for gemm, posts in t["snaps"]:
            tok.link(prime if prev_posts is None else prev_posts[-1], gemm)
            tok.link(gemm, posts[0])
            prev_posts = posts
    tok.link(prev_posts[-1], drain)
    for i, t in enumerate(tiles[:-2]):  # buffer WAR: tile i's readers before tile i+2's LOADs
        tok.link(last(t["body"], Stage.COMPUTE), tiles[i + 2]["loads"][0])
        tok.link(last(t["body"], Stage.OUTPUT), tiles[i + 2]["loads"][0])
    for t in tiles:  # DRAM RAW: a POST that finished a tensor before the VEC reading it
        for producer, v in t["vecs"]:
            if producer is not None:
                tok.link(producer, v)


def _random_links(b: _Builder, tok: _Tokens, order: list[_Ins]) -> None:
    """Extra order between random pairs of stages (never crossing a counter's pairs)."""
    for _ in range(b.r(0, len(order) // 3 + 1)):
        i, j = sorted(int(x) for x in b.rng.choice(len(order), 2, replace=False))
        tok.link(order[i], order[j], required=False)


# == the unstructured generator ======================================================================
def random_token_program(rng: np.random.Generator, config: AccelConfig, n_instrs: int, *, max_n: int = 16,
                         max_k: int = 16, p_token: float = 0.5, features=RTL_FEATURES) -> Program:
    """`n_instrs` random instructions (+ a token drain + HALT) with random, satisfiable tokens.

    Only timing and errors are meaningful (module docstring). Every pop takes a token an
    earlier instruction pushed; no counter exceeds `TOKEN_CAP`.
    """
    features = _features(features)
    img = _Image(rng, config)
    b = _Builder(rng, config, features, img, max_n, max_k)
    vec = _VecJobs(b)
    menu = [vec.any() for _ in range(3)] if "vec" in features else []
    level = {(s, d): 0 for s in Stage if s != Stage.FETCH for d in Stage if d not in (s, Stage.FETCH)}
    out: list[_Ins] = [b.stray_post()[0]]  # the output path has a configuration from the start
    kinds = ["load", "gemm", "post", "sync"] + (["vec"] if menu else [])
    while len(out) < n_instrs:
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "load":
            batch = [b.load(str(rng.choice(["abuf", "wbuf", "pbuf"])), b.r(0, 1))]
        elif kind == "gemm":
            batch = [b.gemm(b.r(0, 1), b.coin(), b.coin())]
        elif kind == "post":
            batch = b.stray_post()
        elif kind == "vec":
            m = menu[int(rng.integers(len(menu)))]
            batch = [_Ins(m.op, dict(m.args))]
        else:
            batch = [_sync(Stage(b.r(0, 3)))]
        for ins in batch:
            s = ins.stage
            for (src, dst), n in level.items():
                if dst == s and n > 0 and rng.random() < p_token:
                    ins.pops.add(src)
                    level[(src, dst)] -= 1
            for (src, dst), n in level.items():
                if src == s and n < TOKEN_CAP and rng.random() < p_token:
                    ins.pushes.add(dst)
                    level[(src, dst)] += 1
            out.append(ins)
    while any(level.values()):  # drain: a SYNC per destination takes one token of each source
        for dst in {d for (_, d), n in level.items() if n}:
            srcs = {s for (s, d), n in level.items() if d == dst and n}
            out.append(_Ins(Op.SYNC, {"stage": int(dst)}, pops=srcs))
            for s in srcs:
                level[(s, dst)] -= 1
    instrs = [x.instr() for x in out] + [halt()]
    return Program(config=config, instrs=instrs, dram=img.image(),
                   meta={"generator": "random_token_program", "features": sorted(features)})


def random_test_program(rng: np.random.Generator, config: AccelConfig, n_instrs: int, *, tokens: bool = False,
                        **kw) -> Program:
    """`random_program` (race-free) or, with `tokens`, `random_token_program` (timing only)."""
    return (random_token_program if tokens else random_program)(rng, config, n_instrs, **kw)
