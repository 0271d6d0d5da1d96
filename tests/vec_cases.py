"""Random VEC cases on a DRAM image: constants from `bebert.integer_ops.prepare_*`, operands
in the layouts the compiler uses (stream tensors for the tile kernels, packed bit-planes
for packed outputs), descriptors from `bebert.vector.encode_desc`. The golden semantics
`bebert.vector.run_vec` on a copy of the image is every test's reference."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.vector import (ADD_CONSTS, GELU_CONSTS, LN_CONSTS, REQUANT_CONSTS, SM_CONSTS, VOTE_KERNEL_OF, Packed,
                           VecFn, View, consts_words, embed_io, encode_desc, io_word, vote_consts_words,
                           vote_method_word)


@dataclass
class Case:
    """One VEC on an image: `args` (the VEC word's operands), where its tensors are."""

    config: AccelConfig
    dram: np.ndarray
    args: dict
    views: dict = field(default_factory=dict)     # name -> (View, rows, cols) of stream tensors
    packed: tuple | None = None                   # (Packed, layout) of the packed output
    consts: dict = field(default_factory=dict)    # block name -> {field: value}

    def golden(self) -> np.ndarray:
        from bebert.vector import run_vec
        img = self.dram.copy()
        run_vec(img, self.args, self.config)
        return img


class Image:
    """A DRAM image with an aligned bump allocator; random bytes everywhere."""

    def __init__(self, config: AccelConfig, size: int, rng: random.Random):
        self.rng = rng
        self.B = config.dram_bytes_per_cycle
        self.dram = np.frombuffer(rng.randbytes(size), np.uint8).copy()
        self.top = 64

    def alloc(self, n: int, align: int | None = None) -> int:
        a = max(align or self.B, 8)
        at = -(-self.top // a) * a
        self.top = at + n
        if self.top > self.dram.size:
            raise ValueError("image too small")
        return at

    def put(self, data: bytes, align: int = 8) -> int:
        at = self.alloc(len(data), align)
        self.dram[at:at + len(data)] = np.frombuffer(data, np.uint8)
        return at


def _stream(img: Image, cfg: AccelConfig, x: np.ndarray, elem: int, signed: bool = True, sat: int = 0) -> View:
    """A stream tensor holding x (its padding rows random), as a tile-engine view."""
    T, B = cfg.vec_lanes, cfg.dram_bytes_per_cycle
    rows, cols = x.shape
    pitch = -(-cols * T * elem // B) * B
    L = lay.stream_layout(rows, cols, T, elem, signed, pitch=pitch)
    base = img.alloc(lay.stream_nbytes(L))
    raw = np.frombuffer(img.rng.randbytes(lay.stream_nbytes(L)), np.uint8).copy()
    body = lay.pack_stream(np.zeros((rows, cols), np.int64), L)
    mask = lay.pack_stream(np.full((rows, cols), -1 if signed else (1 << (8 * elem)) - 1, np.int64), L) != 0
    data = np.where(mask, lay.pack_stream(x, L), raw)
    del body
    img.dram[base:base + data.size] = data
    return View.stream(base, L, sat=sat)


def _out_stream(img: Image, cfg: AccelConfig, rows: int, cols: int, elem: int, signed: bool = True) -> View:
    T, B = cfg.vec_lanes, cfg.dram_bytes_per_cycle
    pitch = -(-cols * T * elem // B) * B
    L = lay.stream_layout(rows, cols, T, elem, signed, pitch=pitch)
    return View.stream(img.alloc(lay.stream_nbytes(L)), L)


def _packed(img: Image, cfg: AccelConfig, rows: int, cols: int, bits: int, signed: bool, pm1: bool,
            consts: int) -> tuple[Packed, dict]:
    T, W = cfg.vec_lanes, cfg.xnor_width
    group = max(T, cfg.pe_rows)
    L = lay.act_layout(-(-rows // group) * group, cols, group, W, 1 if pm1 else bits, signed, pm1)
    entry = group * W // 8
    geo = lay.abuf_geometry(L, entry)
    base = img.alloc(lay.nbytes(L, entry), align=max(cfg.dram_bytes_per_cycle, 8))
    return Packed.of(base, geo, signed, pm1, consts), L


def _codes(rng: random.Random, shape, lo: int, hi: int, npr: np.random.Generator) -> np.ndarray:
    kind = rng.randrange(4)
    if kind == 0:
        return npr.integers(lo, hi + 1, shape)
    if kind == 1:                       # near zero
        return npr.integers(max(lo, -40), min(hi, 40) + 1, shape)
    if kind == 2:                       # extremes
        return npr.choice([lo, hi, 0, -1 if lo < 0 else 1, lo + 1, hi - 1], shape)
    return npr.integers(lo // 64, hi // 64 + 1, shape)


def _requant_consts(rng: random.Random, bits_choices=(0, 2, 4, 8, 16)) -> I.RequantConsts:
    return I.prepare_requant(10 ** rng.uniform(-3, 1), 10 ** rng.uniform(-3, 1), rng.choice(bits_choices),
                             rng.random() < 0.7, in_bits=rng.choice([8, 16, 24, 32]))


def tile_case(config: AccelConfig, fn: VecFn, seed: int, *, rows: int | None = None, cols: int | None = None,
              bits: int | None = None, second: bool | None = None, stream_out: bool | None = None,
              pack_rq: bool | None = None, pm1: bool | None = None, in_elem: int | None = None,  # rq: Packed.consts
              out_elem: int | None = None) -> Case:
    """A random tile-engine VEC (ADD, REQUANT, GELU, LAYERNORM, SOFTMAX)."""
    rng = random.Random(seed)
    npr = np.random.default_rng(seed)
    T, W = config.vec_lanes, config.xnor_width
    fn = VecFn(fn)
    rows = rows or rng.randrange(1, 3 * T + 1)
    cols = cols or rng.randrange(2, 20)
    bits = rng.choice([0, 0, 1, 2, 3, 4, 8]) if bits is None else bits
    pm1 = (bits == 1 and rng.random() < 0.5) if pm1 is None else pm1
    if second is None:
        second = fn in (VecFn.LAYERNORM, VecFn.SOFTMAX) and rng.random() < 0.5
    if stream_out is None:
        stream_out = not bits or rng.random() < 0.5
    if pack_rq is None:
        pack_rq = bool(bits) and fn in (VecFn.LAYERNORM, VecFn.SOFTMAX) and rng.random() < 0.5
    in_elem = in_elem or rng.choice([1, 2, 4])
    out_elem = out_elem or rng.choice([1, 2, 4, 8])
    img = Image(config, 1 << 17, rng)
    lo, hi = -(1 << (8 * in_elem - 1)), (1 << (8 * in_elem - 1)) - 1
    sat = rng.choice([0, 0, 0, rng.randrange(1, 33)])
    x = _codes(rng, (rows, cols), lo, hi, npr)
    cs: dict = {}
    desc: dict = {}
    views: dict = {}
    if fn == VecFn.REQUANT:
        c = _requant_consts(rng)
        cs["consts"] = {f: int(getattr(c, f)) for f in REQUANT_CONSTS}
        desc["src"] = _stream(img, config, x, in_elem, sat=sat)
        views["src"] = desc["src"]
        desc["consts"] = img.put(consts_words(fn, c))
    elif fn == VecFn.ADD:
        c = I.prepare_add(10 ** rng.uniform(-3, 0), 10 ** rng.uniform(-3, 0), None, rng.choice([0, 8, 16, 32]),
                          rng.random() < 0.8, in_bits=rng.choice([8, 16, 32]))
        cs["consts"] = {f: int(getattr(c, f)) for f in ADD_CONSTS}
        desc["a"] = _stream(img, config, x, in_elem, sat=sat)
        desc["b"] = _stream(img, config, _codes(rng, (rows, cols), lo, hi, npr), in_elem, signed=rng.random() < 0.8)
        desc["consts"] = img.put(consts_words(fn, c))
    elif fn == VecFn.GELU:
        scale = 10 ** rng.uniform(-4, 0)
        while True:
            try:
                c = I.prepare_gelu(scale, scale * 10 ** rng.uniform(-1, 1.5), rng.choice([2, 4, 8, 16]),
                                   rng.random() < 0.7, frac_bits=rng.choice([6, 8, 10, 12]))
                break
            except ValueError:
                scale *= 2
        cs["consts"] = {f: int(getattr(c, f)) for f in GELU_CONSTS}
        desc["src"] = _stream(img, config, x, in_elem, sat=sat)
        desc["consts"] = img.put(consts_words(fn, c))
    elif fn == VecFn.LAYERNORM:
        in_bits = rng.choice([8, 16, 16, 24, 32])
        c = I.prepare_layernorm(10 ** rng.uniform(-4, 0), [rng.uniform(-2, 2) for _ in range(cols)],
                                [rng.uniform(-1, 1) for _ in range(cols)], 10 ** rng.uniform(-2, 0),
                                rng.choice([2, 4, 8, 16]), rng.random() < 0.8, eps=rng.choice([0.0, 1e-12, 1e-5]),
                                in_bits=in_bits, norm_bits=rng.randrange(8, 31))
        k = {f: (c.hidden if f == "hidden" else int(getattr(c, f))) for f in LN_CONSTS}
        cs["consts"] = k
        cs["ln_params"] = (list(c.mult), list(c.bias))
        desc["a"] = _stream(img, config, x, in_elem, sat=sat)
        if second:
            ac = I.prepare_add(10 ** rng.uniform(-3, 0), 10 ** rng.uniform(-3, 0), None, rng.choice([0, 16, 32]),
                               True, in_bits=rng.choice([16, 32]))
            cs["add_consts"] = {f: int(getattr(ac, f)) for f in ADD_CONSTS}
            desc["b"] = _stream(img, config, _codes(rng, (rows, cols), lo, hi, npr), in_elem)
            desc["add_consts"] = img.put(consts_words(VecFn.ADD, ac))
        desc["consts"] = img.put(consts_words(fn, c, (np.array(c.mult), np.array(c.bias))))
    elif fn == VecFn.SOFTMAX:
        c = I.prepare_softmax(10 ** rng.uniform(-5, 1), rng.choice([2, 4, 8, 16]), frac_bits=rng.choice([6, 9, 13]))
        cs["consts"] = {f: int(getattr(c, f)) for f in SM_CONSTS}
        desc["src"] = _stream(img, config, x, in_elem, sat=sat)
        if second:
            m = np.array([rng.random() < 0.8 for _ in range(cols)], np.int64)
            if rng.random() < 0.1:
                m[:] = 0
            mval = np.where(m != 0, npr.integers(1, 1 << 31, cols), 0).astype("<i4")
            desc["mask"] = View.row_major(img.put(mval.tobytes(), 4), cols)
        desc["consts"] = img.put(consts_words(fn, c))
    else:
        raise ValueError(fn)
    if stream_out:
        desc["out"] = _out_stream(img, config, rows, cols, out_elem, rng.random() < 0.8)
        views["out"] = desc["out"]
    packed = None
    if bits:
        rq = 0
        if pack_rq:
            g = _requant_consts(rng, (0, 1, 2, 4, 8))
            cs["pout"] = {f: int(getattr(g, f)) for f in REQUANT_CONSTS}
            rq = img.put(consts_words(VecFn.REQUANT, g))
        p, L = _packed(img, config, rows, cols, bits, signed=rng.random() < 0.6 and not pm1, pm1=pm1, consts=rq)
        desc["pout"] = p
        packed = (p, L)
    d = img.put(encode_desc(fn, **desc), 4)
    args = {"fn": int(fn), "desc": d, "rows": rows, "cols": cols, "bits": bits, "aux": 0,
            "io": io_word(stream_out, second, in_elem, out_elem)}
    return Case(config, img.dram, args, views, packed, cs)


# -- the scalar kernels: any views --------------------------------------------------------------
def rand_view(img: Image, rows: int, cols: int, elem: int, signed: bool = True, sat: int = 0) -> View:
    """A random view of a (rows, cols) tensor: row-major, transposed or tiled, maybe a window
    (r0, c0) of a bigger one; element addresses multiples of the element size."""
    rng = img.rng
    kind = rng.randrange(4)
    r0, c0 = (rng.randrange(3), rng.randrange(3)) if rng.random() < 0.4 else (0, 0)
    R, C = rows + r0, cols + c0
    if kind == 0:       # row-major
        v = View(0, elem, signed, s_r=C * elem, s_c=elem, r0=r0, c0=c0, sat=sat)
        size = R * C * elem
    elif kind == 1:     # transposed
        v = View(0, elem, signed, s_r=elem, s_c=R * elem, r0=r0, c0=c0, sat=sat)
        size = R * C * elem
    else:               # tiles of rt x ct, column-major inside a tile
        rt, ct = rng.choice([1, 2, 3, 4]), rng.choice([1, 2, 5])
        ntr, ntc = -(-R // rt), -(-C // ct)
        s_c = rt * elem
        s_ct = ct * s_c
        s_rt = ntc * s_ct
        v = View(0, elem, signed, rtile=rt, ctile=ct, s_rt=s_rt, s_r=elem, s_ct=s_ct, s_c=s_c, r0=r0, c0=c0, sat=sat)
        size = ntr * s_rt
    base = img.alloc(size + 8, align=8)
    return View(base, v.elem, v.signed, v.rtile, v.ctile, v.s_rt, v.s_r, v.s_ct, v.s_c, v.r0, v.c0, v.sat)


def _put_view(img: Image, v: View, x: np.ndarray) -> None:
    from bebert.vector import write_view
    write_view(img.dram, v, x)


def scalar_case(config: AccelConfig, fn: VecFn, seed: int, *, rows: int | None = None, cols: int | None = None,
                aux: int | None = None) -> Case:
    """A random scalar-engine VEC (EMBED, LUT, DOT, COMBINE, VOTE)."""
    if fn in VOTE_BY_KERNEL:
        return vote_case(config, seed, rows=rows, labels=cols, members=aux,
                         method=None if fn == VecFn.VOTE else VOTE_BY_KERNEL[fn][0])
    rng = random.Random(seed)
    npr = np.random.default_rng(seed)
    fn = VecFn(fn)
    img = Image(config, 1 << 17, rng)
    rows = rows or rng.randrange(1, 6)
    cols_given = cols
    cols = cols or rng.randrange(1, 12)
    desc: dict = {}
    aux_v = 0
    elem = lambda: rng.choice([1, 2, 4, 8])   # noqa: E731
    kinds = []
    if fn == VecFn.EMBED:
        if cols_given is None and rng.random() < 0.4:    # rows that cross beats of binary tables
            cols = rng.randrange(max(1, min(8 * config.dram_bytes_per_cycle - 20, config.vec_row_elems // 2)),
                                 config.vec_row_elems + 1)
            rows = min(rows, 3)
        all_binary = rng.random() < 0.4
        nrows = [rng.randrange(3, 9), rows + rng.randrange(3), rng.randrange(1, 4)]
        ids = npr.integers(0, nrows[0], (rows, 1))
        tts = npr.integers(0, nrows[2], (rows, 1))
        for name, vals in (("ids", ids), ("types", tts)):
            v = rand_view(img, rows, 1, rng.choice([2, 4, 8]))
            _put_view(img, v, vals)
            desc[name] = v
        for name, n in zip(("word", "position", "token_type"), nrows):
            if all_binary or rng.random() < (0.6 if name == "word" else 0.3):  # binary: signs, (+1, -1) pairs
                kinds.append(1)
                stride = -(-cols // 8) + rng.randrange(2)
                base = img.put(rng.randbytes(n * stride), 1)
                pairs = img.put(npr.integers(-3000, 3000, (n, 2)).astype("<i4").tobytes(), 8)
                desc[name] = (1, base, stride, n, 0, pairs)
            else:
                kinds.append(0)
                e = elem()
                stride = cols * e + e * rng.randrange(2)
                base = img.alloc(n * stride, align=8)
                lo = -(1 << (8 * e - 1)) if e < 8 else -(1 << 40)
                t = npr.integers(lo // 2, -lo // 2, (n, cols))
                _put_view(img, View(base, e, True, s_r=stride, s_c=e), t)
                desc[name] = (0, base, stride, n, e, 0)
        out_elem = rng.choice([1, 2, 4, 8])
        desc["out"] = _out_stream(img, config, rows, cols, out_elem, rng.random() < 0.8)
    elif fn == VecFn.LUT:
        size = rng.randrange(4, 64)
        off = rng.randrange(-20, 20)
        e = rng.choice([1, 2, 4, 8])
        x = npr.integers(-off, size - off, (rows, cols))
        v = rand_view(img, rows, cols, e)
        _put_view(img, v, x)
        desc.update(src=v, table=img.put(npr.integers(-(1 << 31), 1 << 31, size).astype("<i4").tobytes(), 8),
                    offset=off & 0xFFFFFFFF, size=size, out=rand_view(img, rows, cols, rng.choice([2, 4, 8])))
    elif fn == VecFn.DOT:
        aux_v = aux or rng.randrange(1, 4)
        x = npr.integers(-1000, 1000, (rows, cols))
        w = npr.integers(-1000, 1000, (aux_v, cols))
        vx, vw = rand_view(img, rows, cols, rng.choice([2, 4, 8])), rand_view(img, aux_v, cols, rng.choice([2, 4, 8]))
        _put_view(img, vx, x)
        _put_view(img, vw, w)
        desc.update(src=vx, weight=vw, bias=img.put(npr.integers(-10**9, 10**9, aux_v).astype("<i8").tobytes(), 8),
                    out=rand_view(img, rows, aux_v, 8))
    elif fn == VecFn.COMBINE:
        aux_v = aux or rng.randrange(1, 4)
        views = []
        for _ in range(aux_v):
            v = rand_view(img, rows, cols, rng.choice([4, 8]))
            _put_view(img, v, npr.integers(-10**6, 10**6, (rows, cols)))
            views.append(v)
        desc.update(out=rand_view(img, rows, cols, 8), inputs=views,
                    weights=img.put(npr.integers(-100, 100, aux_v).astype("<i8").tobytes(), 8))
    else:
        raise ValueError(fn)
    d = img.put(encode_desc(fn, **desc), 4)
    args = {"fn": int(fn), "desc": d, "rows": rows, "cols": cols, "bits": 0, "aux": aux_v, "io": embed_io(kinds, out_elem) if kinds else 0}
    return Case(config, img.dram, args)


def vote_case(config: AccelConfig, seed: int, *, rows: int | None = None, members: int | None = None,
              labels: int | None = None, method: str | None = None, acc: np.ndarray | None = None,
              shifts=None, alphas=None, mults=None) -> Case:
    """A random vote kernel: accumulators (rows, members, labels) behind any view, per member a
    logit shift, alpha_q and per-class mults like model/vote.py's (or the ones given), any
    model/vote.py method (VOTE: samme or samme.r; VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN; the
    score votes take one label). Near-ties and saturating logit codes are drawn often."""
    rng = random.Random(seed)
    npr = np.random.default_rng(seed)
    img = Image(config, 1 << 17, rng)
    if acc is not None:
        rows, members, labels = np.shape(acc)
    method = method or rng.choice(["samme", "samme.r"])
    rows = rows or rng.randrange(1, 3)
    members = members or rng.randrange(1, 6)
    labels = 1 if method in ("mean", "median") else labels or rng.randrange(1, 5)
    if shifts is None:
        shifts = [rng.choice([0, 1, rng.randrange(20, 40), 62, 63]) for _ in range(members)]
    if mults is None:
        mults = npr.integers(-(1 << 31), 1 << 31, (members, labels)) if rng.random() < 0.3 else \
            npr.integers(1, 1 << 20, (members, labels))
    if alphas is None:
        alphas = npr.integers(0, 1 << 22, members) if rng.random() < 0.7 else npr.integers(0, 3, members)
        if method not in ("samme", "samme.r") and not np.any(alphas):
            alphas[rng.randrange(members)] = 1             # the exact votes need a positive sum
    if acc is None:
        kind = rng.randrange(3)
        if kind == 0:                       # ties: few distinct values
            acc = npr.integers(-2, 3, (rows, members, labels)) << rng.randrange(0, 30)
        elif kind == 1:                     # saturating codes
            acc = npr.integers(-(1 << 62), 1 << 62, (rows, members, labels))
        else:
            acc = npr.integers(-(1 << 40), 1 << 40, (rows, members, labels))
    elem = rng.choice([8, 8, 4]) if np.abs(acc).max(initial=0) < (1 << 31) else 8
    src = rand_view(img, rows * members, labels, elem)
    _put_view(img, src, np.asarray(acc, np.int64).reshape(rows * members, labels))
    consts = img.put(vote_consts_words(shifts, alphas, mults), 8)
    out = rand_view(img, rows * (members + 1), 1, 8)
    fn = VOTE_KERNEL_OF[method]
    d = img.put(encode_desc(fn, src=src, out=out, consts=consts, **vote_method_word(method)), 4)
    args = {"fn": int(fn), "desc": d, "rows": rows, "cols": labels, "bits": 0, "aux": members, "io": 0}
    return Case(config, img.dram, args)


VOTE_BY_KERNEL = {}
for _method, _fn in VOTE_KERNEL_OF.items():
    VOTE_BY_KERNEL.setdefault(_fn, []).append(_method)
