"""Pass 4, bit-plane decomposition: model-level nodes -> machine-level nodes (`gemm`, `vec`).

Every tensor gets the layout its consumer reads (docs/MACHINE_V3.md, "Layouts"), so that no
kernel ever moves data only to re-lay it out:

linear      gemm XNOR over the input's ABUF bit-planes; the output path writes the result
            requantized: packed per head for Q (ABUF) and K (WBUF planes), packed-transposed
            V_h^T (WBUF planes of P V), or a stream tensor (elements of the smallest of 1 / 2 /
            4 bytes that hold out_bits) for what the vector unit reads; a TWS split layer with a
            scale per half: two int32 GEMMs and a VEC ADD (compiler/split_scales.py)
attention   per head Q K^T (AND mode) -> stream scores (int16 when |q k| fits) -> SOFTMAX with
            the key mask, writing P packed with the probability requantize -> per head group
            (the heads sharing a packed word) P V (AND mode) -> the context packed straight into
            the next linear's ABUF layout, its input requantize done by the output path;
            Bi-Attention (BiBERT): Q K^T and A V in XNOR mode, the 0/1 map packed by the POST
            (compiler/attention.py)
add         fused into the LayerNorm that follows it (LAYERNORM's second input)
layernorm   LAYERNORM per row block: a stream output (the next residual) and packed outputs
            for the next linears (their input requantize folded into `Packed.consts`)
gelu        GELU per row block, written packed as the next linear's input (1-bit: the sign, one
            REQUANT; when it is FFN1's only reader, FFN1's POST packs the sign itself and
            no VEC runs)
others      one VEC each (EMBED, LUT, DOT) with its constant block

Machine nodes carry `attrs["reads"]` / `attrs["writes"]`: (tensor, first row, end row) in the
tensor's own rows, what the ordering step and the scheduler build their dependencies from.
VEC operands are references resolved to `bebert.vector.View` / `Packed` once addresses exist:
("stream", t, r0), ("rows", t), ("packed", t, r0, consts), ("addr", t), tables (dicts), ints.
Attention pads the tokens to a multiple of lcm(pe_rows, vec_lanes) (`meta["tokens"]`) and masks
the padding keys; the last layer's query side computes only the first row block (the pooler
reads token 0 alone).
"""

from __future__ import annotations

import copy

import numpy as np

from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.integer_ops import RequantConsts
from bebert.isa import PostFmt
from bebert.numerics import INT32_MAX, INT32_MIN
from bebert.vector import (EMBED_TABLES, VOTE_KERNEL_OF, VecFn, consts_words, embed_io, io_word, vote_consts_words,
                           vote_method_word)

from .errors import CompileError
from .gemm_plan import ATensor, GemmOp, NTile, OutFmt, WTensor, ceil_div, elem_bytes, plan_gemm
from .ir import Graph, Node, TensorRec
from .attention import AttentionLowering, act_key
from .split_scales import SplitScaleLowering, has_half_scales
from .order import order_nodes

IDENT = "identity.p"  # one PBUF entry of (mult 1, bias 0): the scores of Q K^T


def fold_pm1(mult: np.ndarray, bias: np.ndarray, shift: int, S: np.ndarray):
    """(mult', bias', shift') computing POST(2 acc_b - S) from acc_b = sum_k b w exactly, b = (x + 1) / 2,
    or None when it does not fit int32 (compiler/lower.py documents the arithmetic)."""
    mult = np.asarray(mult, np.int64)
    bias = np.asarray(bias, np.int64) - mult * S
    fits = lambda v: bool(np.all((v >= INT32_MIN) & (v <= INT32_MAX)))  # noqa: E731
    if fits(2 * mult) and fits(bias):
        return 2 * mult, bias, shift
    if shift >= 1:
        half = bias // 2 if shift >= 2 else -((-bias) // 2)
        if fits(half):
            return mult, half, shift - 1
    return None


class _Lower(AttentionLowering, SplitScaleLowering):
    """The lowering of one graph (module doc); attention's part is `compiler/attention.py`, split
    layers with a scale per half `compiler/split_scales.py`."""

    def __init__(self, g: Graph, config: AccelConfig, block: int = 1, cache: dict | None = None):
        self.g, self.cfg = g, config
        self.R, self.C, self.W, self.T = config.pe_rows, config.pe_cols, config.xnor_width, config.vec_lanes
        self.out: list[Node] = []
        self.eb = {b: config.entry_bytes(b) for b in ("abuf", "wbuf", "pbuf")}
        seq = g.meta["seq"]
        step = max(self.R, self.T)
        self.seq = seq
        self.tokens = ceil_div(seq, step) * step      # attention's padded token count
        self.block = step * block                      # rows of one LAYERNORM / GELU / EMBED VEC
        self.cache = {} if cache is None else cache    # packed weights, shared by trial lowerings
        self.consumers: dict[str, list[Node]] = {}
        for n in g.nodes:
            for t in n.ins.values():
                self.consumers.setdefault(t, []).append(n)
        self.packed_of: dict[str, dict] = {}           # model tensor -> {act key: packed tensor name}
        self.stream_of: dict[str, str] = {}            # model tensor -> its stream tensor
        self.shared: dict[tuple, str] = {}             # shared parameter / constant blocks
        self.live_rows: dict[str, int] = {}            # model tensor -> rows the rest of the member reads
        self.signed_by_post: set[str] = set()         # linear outputs whose sign the POST packs (`linear_sign`)

    # -- tensors -----------------------------------------------------------------------
    def tensor(self, name: str, role: str, form: str, shape=(), data=None, layout=None, nbytes=0,
               member=None, **kw) -> str:
        if data is not None:
            data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
            nbytes = nbytes or data.size
        self.g.add(TensorRec(name, role, form, tuple(shape), data=data, layout=layout or {}, nbytes=nbytes,
                             member=member, **kw))
        return name

    def const(self, name: str, blob: bytes, member=None) -> str:
        return self.tensor(name, "const", "bytes", data=np.frombuffer(blob, np.uint8), member=member)

    def stream(self, name: str, M: int, N: int, elem: int, member, signed=True) -> str:
        L = lay.stream_layout(M, N, self.T, elem, signed, row_align=self.R)
        return self.tensor(name, "scratch", "stream", (M, N), layout=L, nbytes=lay.nbytes(L), member=member)

    def abuf(self, name: str, K: int, bits: int, signed: bool, pm1: bool, member) -> str:
        L = lay.act_layout(self.tokens, K, self.R, self.W, bits, signed, pm1)
        return self.tensor(name, "scratch", "abuf", (self.tokens, K), layout=L,
                           nbytes=lay.nbytes(L, self.eb["abuf"]), member=member)

    def wplanes(self, name: str, N: int, K: int, bits: int, member) -> str:
        L = lay.wplanes_layout(N, K, self.C, self.W, bits, True)
        return self.tensor(name, "scratch", "wplanes", (N, K), layout=L, nbytes=lay.nbytes(L, self.eb["wbuf"]),
                           member=member)

    def shared_params(self, mult: int) -> str:
        key = ("params", mult)
        if key not in self.shared:
            name = IDENT if mult == 1 else f"requant{len(self.shared)}.p"
            pl = lay.param_layout(self.C, self.C)
            self.shared[key] = self.tensor(name, "param", "pbuf", (self.C, 2), layout=pl,
                                           data=lay.pack_params(np.full(self.C, mult), np.zeros(self.C), pl))
        return self.shared[key]

    # -- nodes -------------------------------------------------------------------------
    def vec(self, src: Node, name: str, fn: VecFn, rows: int, cols: int, fields: dict, reads, writes,
            bits: int = 0, aux: int = 0, io: int = 0) -> None:
        if fn in (VecFn.LAYERNORM, VecFn.SOFTMAX) and cols > self.cfg.vec_row_elems:
            raise CompileError(f"{name}: {fn.name} row of {cols} elements exceeds the vector unit's row "
                               f"memory (vec_row_elems = {self.cfg.vec_row_elems})")
        ins = sorted({t for t, _, _ in reads} | set(_const_names(fields)))
        outs = sorted({t for t, _, _ in writes})
        self.out.append(Node("vec", name, {f"i{k}": t for k, t in enumerate(ins)},
                             {f"o{k}": t for k, t in enumerate(outs)},
                             {"fn": fn, "rows": rows, "cols": cols, "bits": bits, "aux": aux, "io": io,
                              "fields": fields, "reads": list(reads), "writes": list(writes)},
                             src.member, src.layer, src.region, src.kind))

    def gemm(self, src: Node, name: str, op: GemmOp):
        plan = plan_gemm(op, self.cfg, name)
        R = self.R
        w_reads = [(w.name, 0, self.g.t(w.name).shape[0]) for w in op.w_tensors
                   if self.g.t(w.name).role == "scratch"]
        for gi, mt in enumerate(plan.groups(op)):
            r0, r1 = mt[0] * R, (mt[-1] + 1) * R
            reads = [(a.name, r0, r1) for a in op.a_tensors] + w_reads
            writes = []
            for d in op.dsts:
                t = self.g.t(d)
                writes.append((d, 0, t.shape[0]) if op.out.fmt == PostFmt.TRANSPOSED else (d, r0, r1))
            statics = [w.name for w in op.w_tensors if self.g.t(w.name).role != "scratch"] + list(op.p_tensors)
            ins = sorted({t for t, _, _ in reads} | set(statics))
            self.out.append(Node("gemm", f"{name}.g{gi}" if len(plan.groups(op)) > 1 else name,
                                 {f"i{k}": t for k, t in enumerate(ins)},
                                 {f"o{k}": t for k, t in enumerate(sorted({t for t, _, _ in writes}))},
                                 {"gemm": op, "plan": plan, "mt": mt, "reads": reads, "writes": writes},
                                 src.member, src.layer, src.region, src.kind))
        return plan.groups(op)

    # -- linear layers -------------------------------------------------------------------
    def act_input(self, n: Node) -> tuple[str, bool]:
        """The packed input tensor of linear `n` (made by whoever writes it) and whether it is pm1."""
        key = n.attrs.get("act_key") or act_key(n.attrs["lin"])  # (a half of a split layer: the layer's key)
        src = n.ins["x"]
        name = self.packed_of.get(src, {}).get(key)
        if name is None:
            raise CompileError(f"node '{n.name}': its input '{src}' has no packed form (unsupported producer)")
        return name, self.g.t(name).layout["pm1"]

    def weights(self, n: Node, tiles: list[tuple[int, int]], pm1: bool) -> tuple[str, str, int]:
        """Weight signs and (mult, bias) packed per n-tile of `tiles` [(n0, cols)]; their words per tile."""
        key = (n.name, tuple(tiles), pm1)
        if key not in self.cache:
            self.cache[key] = self.pack_weights(n, tiles, pm1)
        wd, wl, pd, pl, shift, KW = self.cache[key]
        L = n.attrs["lin"].layer
        w = self.tensor(f"{n.name}.w", "weight", "wbuf", (L.out_features, L.in_features), data=wd, layout=wl,
                        member=n.member)
        p = self.tensor(f"{n.name}.p", "param", "pbuf", (L.out_features, 2), data=pd, layout=pl, member=n.member)
        return w, p, shift, KW

    def pack_weights(self, n: Node, tiles: list[tuple[int, int]], pm1: bool):
        lin = n.attrs["lin"]
        L = lin.layer
        C, W = self.C, self.W
        sign = np.asarray(L.sign, bool)
        halves = [sign[:, :L.in_features // 2], sign[:, L.in_features // 2:]] if lin.split else [sign]
        K = halves[0].shape[1]
        KW = ceil_div(K, W)
        rows = np.zeros((len(tiles) * C, len(halves) * KW * W), np.uint8)
        mult = np.zeros(len(tiles) * C, np.int64)
        bias = np.zeros(len(tiles) * C, np.int64)
        pm, pb, shift = np.asarray(L.mult, np.int64), np.asarray(L.bias, np.int64), int(L.shift)
        if pm1:
            S = np.where(sign, 1, -1).sum(axis=1)
            folded = fold_pm1(pm, pb, shift, S)
            if folded is None:
                raise CompileError(f"weight '{n.name}': the +-1 activation correction does not fit int32")
            pm, pb, shift = folded
        for t, (n0, cols) in enumerate(tiles):
            for h, half in enumerate(halves):
                rows[t * C:t * C + cols, h * KW * W:(h + 1) * KW * W] = lay._to_words(
                    half[n0:n0 + cols].astype(np.uint8), K, W)
            mult[t * C:t * C + cols] = pm[n0:n0 + cols]
            bias[t * C:t * C + cols] = pb[n0:n0 + cols]
        wl = lay.weight_layout(len(tiles) * C, len(halves) * KW * W, C, W)
        pl = lay.param_layout(len(tiles) * C, C)
        return lay.pack_weights(rows, wl), wl, lay.pack_params(mult, bias, pl), pl, shift, KW

    def linear_op(self, n: Node, tiles: list[tuple[int, int, int, int, int, bool, int]], out: OutFmt,
                  dsts: tuple[str, ...], M: int, mtiles: int) -> GemmOp:
        """A linear's GemmOp over `tiles` [(n0, cols, dst, col, word, last, pos)]."""
        if "relay" in n.attrs:
            return self.relay_op(n, tiles, out, dsts, M, mtiles)
        lin = n.attrs["lin"]
        x, pm1 = self.act_input(n)
        w, p, shift, KW = self.weights(n, [(t[0], t[1]) for t in tiles], pm1)
        xl = self.g.t(x).layout
        planes = 1 if xl["pm1"] else xl["bits"]
        segs = ((0, 0, KW), (0, KW, KW)) if lin.split else ((0, 0, KW),)
        nt = [NTile(n0=a, cols=b, a=0, w=0, wt=i, p=0, pe=i, dst=d, col=c, word=wd, last=last, pos=pos)
              for i, (a, b, d, c, wd, last, pos) in enumerate(tiles)]
        return GemmOp(name=n.name, M=M, mtiles=mtiles, bits=planes, signed=bool(xl["signed"]) and not xl["pm1"],
                      wbits=1, wsigned=False, mode=0, segs=segs,
                      a_tensors=(ATensor(x, xl["mtiles"], planes, xl["kwords"]),),
                      w_tensors=(WTensor(w, len(tiles), 1, len(segs) * KW),), p_tensors=(p,), tiles=tuple(nt),
                      out=OutFmt(out.fmt, out.obits, out.osigned, shift, out.elem, out.pm1), dsts=dsts)

    def linear(self, n: Node) -> None:
        """A linear whose output the vector unit reads: a stream tensor (1 row for the pooler)."""
        L = n.attrs["lin"].layer
        y = n.outs["y"]
        M = self.live_rows.get(y, self.g.t(y).shape[0])
        N = L.out_features
        e = elem_bytes(L.out_bits)
        s = self.stream(f"{y}.s", self.g.t(y).shape[0], N, e, n.member)
        self.stream_of[y] = s
        tiles = self.stream_tiles(N)
        out = OutFmt(PostFmt.STREAM, L.out_bits, bool(L.out_signed), 0, elem=e.bit_length() - 1)
        self.gemm(n, n.name, self.linear_op(n, tiles, out, (s,), M, ceil_div(M, self.R)))

    def stream_tiles(self, N: int) -> list[tuple[int, int, int, int, int, bool, int]]:
        """`linear_op` tiles writing N columns of one stream: pe_cols at a time."""
        return [(n0, min(self.C, N - n0), 0, n0, i, True, 0) for i, n0 in enumerate(range(0, N, self.C))]

    def sign_of(self, n: Node) -> Node | None:
        """The GELU node that takes only the sign of linear `n`'s output (a 1-bit FFN2 input: a
        REQUANT to 1 bit with ratio 1), when it is that output's only reader; else None."""
        cs = self.consumers.get(n.outs["y"], [])
        c = cs[0].attrs.get("consts") if len(cs) == 1 and cs[0].op == "gelu" else None
        if isinstance(c, RequantConsts) and c.bits == 1 and c.mult == 1 << c.shift:
            return cs[0]
        return None

    def linear_sign(self, n: Node, gelu: Node) -> None:
        """FFN1 before a 1-bit FFN2 (BiBERT): the POST writes the sign of its codes straight into
        FFN2's +-1 input plane (obits 1, pm1), with no stream and no VEC: sign(GELU(f)) = sign(f),
        and the sign of a POST's clamped 16-bit code is its obits-1 result (the same rounding)."""
        packs = self.packed_outputs(gelu.outs["y"], n.member)
        if len(packs) != 1 or packs[0][1] is not None or packs[0][2] != 1:
            raise CompileError(f"node '{gelu.name}': a sign feeds one 1-bit linear without an input requantize")
        y = n.outs["y"]
        M = self.live_rows.get(y, self.g.t(y).shape[0])
        tiles = [(c, cols, 0, J, wid, last, pos) for c, cols, _, J, wid, last, pos in
                 self.context_tiles(n.attrs["lin"].layer.out_features, 1)]
        out = OutFmt(PostFmt.PACKED, 1, True, 0, pm1=True)
        self.gemm(n, n.name, self.linear_op(n, tiles, out, (packs[0][0],), M, ceil_div(M, self.R)))
        self.signed_by_post.add(y)

    def packed_outputs(self, y: str, member) -> list[tuple[str, str | None, int, bool]]:
        """The packed forms the linears reading `y` need: (tensor, requant consts, bits, pm1) each."""
        out, seen = [], {}
        for c in self.consumers.get(y, []):
            if c.op != "linear":
                continue
            lin = c.attrs["lin"]
            key = act_key(lin)
            if key in seen:
                continue
            L = lin.layer
            bits = L.in_bits
            pm1 = bits == 1
            consts = None
            if lin.act is not None:
                consts = self.const(f"{y}.act{len(seen)}", consts_words(VecFn.REQUANT, lin.act), member)
            name = self.abuf(f"{y}.x{len(seen)}", L.in_features // (2 if lin.split else 1), bits,
                             bool(L.in_signed), pm1, member)
            seen[key] = name
            out.append((name, consts, bits, pm1))
        self.packed_of[y] = dict(seen)
        return out

    def row_blocks(self, rows: int) -> list[tuple[int, int]]:
        return [(r, min(self.block, rows - r)) for r in range(0, rows, self.block)]

    def layernorm(self, n: Node, add: Node | None) -> None:
        g = self.g
        c = n.attrs["consts"]
        y = n.outs["y"]
        mid = n.member
        rows = self.live_rows.get(y, g.t(y).shape[0])
        H = c.hidden
        packs = self.packed_outputs(y, mid)
        residual = any(k.op == "add" for k in self.consumers.get(y, []))
        ys = self.stream(f"{y}.s", g.t(y).shape[0], H, elem_bytes(c.out_bits), mid) if residual or len(packs) > 1 \
            else None
        if ys:
            self.stream_of[y] = ys
        k = self.const(f"{n.name}.consts", consts_words(VecFn.LAYERNORM, c, (c.mult, c.bias)), mid)
        if add is not None:
            a_s, b_s = self.stream_of[add.ins["a"]], self.stream_of[add.ins["b"]]
            ea, eb_ = g.t(a_s).layout["elem"], g.t(b_s).layout["elem"]
            if ea != eb_:
                raise CompileError(f"node '{add.name}': residual inputs of {ea} and {eb_} bytes per element")
            ak = self.const(f"{add.name}.consts", consts_words(VecFn.ADD, add.attrs["consts"]), mid)
            srcs, ein = [a_s, b_s], ea
        else:
            srcs, ein = [self.stream_of[n.ins["x"]]], g.t(self.stream_of[n.ins["x"]]).layout["elem"]
            ak = 0
        first = packs[0] if packs else None
        for bi, (r0, nr) in enumerate(self.row_blocks(rows)):
            fields = {"a": ("stream", srcs[0], r0), "consts": ("addr", k)}
            if add is not None:
                fields.update(b=("stream", srcs[1], r0), add_consts=("addr", ak))
            if ys:
                fields["out"] = ("stream", ys, r0)
            writes = ([(ys, r0, r0 + nr)] if ys else [])
            if first:
                fields["pout"] = ("packed", first[0], r0, first[1])
                writes.append((first[0], r0, r0 + nr))
            self.vec(n, f"{n.name}.r{bi}" if rows > self.block else n.name, VecFn.LAYERNORM, nr, H, fields,
                     reads=[(s, r0, r0 + nr) for s in srcs], writes=writes, bits=first[2] if first else 0,
                     io=io_word(stream_out=ys is not None, second_in=add is not None, in_elem=ein,
                                out_elem=elem_bytes(c.out_bits)))
        for px, consts, bits, pm1 in packs[1:]:  # other input requantizes: one REQUANT each
            self.requant_pack(n, ys, px, consts, bits, rows, H, elem_bytes(c.out_bits))

    def requant_pack(self, n: Node, src: str, dst: str, consts: str | None, bits: int, rows: int, cols: int,
                     e: int) -> None:
        if consts is None:
            consts = self.const(f"{dst}.copy", consts_words(VecFn.REQUANT, RequantConsts(1, 0, 0, True, 32, 1.0, 1.0)),
                                n.member)
        for bi, (r0, nr) in enumerate(self.row_blocks(rows)):
            self.vec(n, f"{dst}.pack.r{bi}", VecFn.REQUANT, nr, cols,
                     {"src": ("stream", src, r0), "consts": ("addr", consts), "pout": ("packed", dst, r0, None)},
                     reads=[(src, r0, r0 + nr)], writes=[(dst, r0, r0 + nr)], bits=bits,
                     io=io_word(stream_out=False, in_elem=e))

    def gelu(self, n: Node) -> None:
        c = n.attrs["consts"]
        y = n.outs["y"]
        rows = self.live_rows.get(y, self.g.t(y).shape[0])
        src = self.stream_of[n.ins["x"]]
        packs = self.packed_outputs(y, n.member)
        if len(packs) != 1 or packs[0][1] is not None:
            raise CompileError(f"node '{n.name}': GELU feeds one linear without an input requantize")
        px, _, bits, pm1 = packs[0]
        if isinstance(c, RequantConsts):   # 1-bit FFN2 inputs: sign(GELU(x)) = sign(x), one REQUANT
            if bits != c.bits:
                raise CompileError(f"node '{n.name}': GELU writes {c.bits}-bit codes, the next linear takes {bits}")
            k = self.const(f"{n.name}.consts", consts_words(VecFn.REQUANT, c), n.member)
            self.requant_pack(n, src, px, k, bits, rows, self.g.t(y).shape[1], self.g.t(src).layout["elem"])
            return
        if bits != c.out_bits:
            raise CompileError(f"node '{n.name}': GELU writes {c.out_bits}-bit codes, the next linear takes {bits}")
        k = self.const(f"{n.name}.consts", consts_words(VecFn.GELU, c), n.member)
        e = self.g.t(src).layout["elem"]
        for bi, (r0, nr) in enumerate(self.row_blocks(rows)):
            self.vec(n, f"{n.name}.r{bi}" if rows > self.block else n.name, VecFn.GELU, nr,
                     self.g.t(y).shape[1], {"src": ("stream", src, r0), "consts": ("addr", k),
                                            "pout": ("packed", px, r0, None)},
                     reads=[(src, r0, r0 + nr)], writes=[(px, r0, r0 + nr)], bits=bits,
                     io=io_word(stream_out=False, in_elem=e))

    def embed(self, n: Node) -> None:
        a = n.attrs
        y = n.outs["y"]
        rows, cols = self.g.t(y).shape
        ys = self.stream(f"{y}.s", rows, cols, 4, n.member)
        self.stream_of[y] = ys
        tables = {k: self.table(f"{n.name}.{k}", a[k], n.member) for k in ("word", "position", "token_type")}
        eb = self.block
        blocks = [(r, min(eb, rows - r)) for r in range(0, rows, eb)]
        for bi, (r0, nr) in enumerate(blocks):  # per row block: embed_ln and the first projections follow
            pos = dict(tables["position"], first=r0)  # the block's positions start at row r0 of the table
            self.vec(n, f"{n.name}.r{bi}" if len(blocks) > 1 else n.name, VecFn.EMBED, nr, cols,
                     {"ids": ("rows", n.ins["ids"], r0), "types": ("rows", n.ins["types"], r0), "word": tables["word"],
                      "position": pos, "token_type": tables["token_type"], "out": ("stream", ys, r0)},
                     reads=[(n.ins["ids"], r0, r0 + nr), (n.ins["types"], r0, r0 + nr)], writes=[(ys, r0, r0 + nr)],
                     io=embed_io([tables[k]["kind"] for k in EMBED_TABLES], 4))

    def lut(self, n: Node) -> None:
        a = n.attrs
        y = n.outs["y"]
        rows, cols = self.g.t(y).shape
        table = np.asarray(a["table"], "<i4")
        tb = self.tensor(f"{n.name}.table", "const", "bytes", data=table, member=n.member)
        src = self.stream_of[n.ins["x"]]
        t = self.g.t(y)
        t.form, t.elem = "rows", 4
        t.layout = lay.rows_layout(rows, cols, 4, True)
        self.vec(n, n.name, VecFn.LUT, rows, cols,
                 {"src": ("stream", src, 0), "out": ("rows", y), "table": ("addr", tb),
                  "offset": 1 << 15, "size": table.size},
                 reads=[(src, 0, rows)], writes=[(y, 0, rows)])  # index = 16-bit code + 2^15

    def dot(self, n: Node) -> None:
        a = n.attrs
        y = n.outs["y"]
        rows, cols = self.g.t(y).shape
        w = np.asarray(a["weight"], np.int64)
        if np.abs(w).max(initial=0) >= 1 << 31:
            raise CompileError(f"weight '{n.name}': classifier codes beyond int32")
        wt = self.tensor(f"{n.name}.w", "const", "rows", w.shape, data=w.astype("<i4"), member=n.member)
        self.g.t(wt).layout = lay.rows_layout(w.shape[0], w.shape[1], 4, True)
        bt = self.tensor(f"{n.name}.b", "const", "bytes", data=np.asarray(a["bias"], "<i8"), member=n.member)
        t = self.g.t(y)
        t.elem = 8
        t.layout = lay.rows_layout(rows, cols, 8, True)
        x = n.ins["x"]
        self.vec(n, n.name, VecFn.DOT, rows, self.g.t(x).shape[1],
                 {"src": ("rows", x), "weight": ("rows", wt), "bias": ("addr", bt), "out": ("rows", y)},
                 reads=[(x, 0, rows)], writes=[(y, 0, rows)], aux=cols)

    def vote(self, n: Node) -> None:
        """The vote kernel of the model's method (VOTE samme / samme.r, VOTE_AVERAGE, VOTE_MEAN,
        VOTE_MEDIAN) over the members' accumulators (equally spaced output rows: one view) with
        the vote's constants (per member its logit shift, alpha_q and per-class logit mults)."""
        v = n.attrs["vote"]
        accs = list(n.ins.values())
        labels = self.g.t(accs[0]).shape[1]
        k = self.const(f"{n.name}.consts", vote_consts_words([m.shift for m in v.members], v.alpha_q,
                                                              [m.mult for m in v.members]))
        y = n.outs["y"]
        t = self.g.t(y)
        t.elem = 8
        t.layout = lay.rows_layout(t.shape[0], 1, 8, True)
        self.vec(n, n.name, VOTE_KERNEL_OF[v.method], 1, labels,
                 {"src": ("stack", accs), "out": ("rows", y), "consts": ("addr", k), **vote_method_word(v.method)},
                 reads=[(a, 0, 1) for a in accs], writes=[(y, 0, t.shape[0])], aux=len(accs))

    def table(self, name: str, t, member) -> dict:
        """An embedding table as a 'table' operand: binary (sign bits + per-row code pair) when every
        row holds at most two codes, else dense int32."""
        if isinstance(t, tuple):
            signs, pairs = t
        else:
            t = np.asarray(t, np.int64)
            hi, lo = t.max(axis=1), t.min(axis=1)
            if np.all((t == hi[:, None]) | (t == lo[:, None])):
                signs, pairs = t == hi[:, None], np.stack([hi, lo], 1)
            else:
                if np.abs(t).max(initial=0) >= 1 << 31:
                    raise CompileError(f"tensor '{name}': codes beyond int32")
                self.tensor(name, "const", "rows", t.shape, data=t.astype("<i4"), member=member)
                return {"table": name, "kind": 0, "stride": t.shape[1] * 4, "rows": t.shape[0], "elem": 4}
        signs = np.asarray(signs, bool)
        stride = -(-signs.shape[1] // 8)
        self.tensor(name, "const", "bytes", signs.shape, data=np.packbits(signs, axis=1, bitorder="little"),
                    member=member)
        self.tensor(name + ".pairs", "const", "bytes", data=np.asarray(pairs, "<i4"), member=member)
        return {"table": name, "kind": 1, "stride": stride, "rows": signs.shape[0], "elem": 4,
                "pairs": name + ".pairs"}

    # -- the member ------------------------------------------------------------------------
    def mark_live_rows(self) -> None:
        """Rows each tensor's readers need (`live_rows`, whole row blocks): the pooler reads token 0
        alone, so the last layer's query side computes only the first row block; K and V keep every
        token."""
        need: dict[str, int] = {}
        for n in reversed(self.g.nodes):
            y = n.outs["y"]
            full = self.g.t(y).shape[0]
            r = full if self.g.t(y).role == "output" else need.get(y, full)
            r = min(full, ceil_div(r, self.block) * self.block)
            self.live_rows[y] = r
            for key, x in n.ins.items():
                if self.g.t(x).role != "scratch":
                    continue
                if n.op == "linear" and n.attrs.get("first_row"):
                    rx = 1
                elif n.op == "attention" and key in ("k", "v"):
                    rx = self.g.t(x).shape[0]
                else:
                    rx = r
                need[x] = max(need.get(x, 0), rx)

    def run(self) -> None:
        self.mark_live_rows()
        nodes = list(self.g.nodes)
        att_of = {}
        for n in nodes:
            if n.op == "attention":
                for k in ("q", "k", "v"):
                    att_of[n.ins[k]] = (n, k)
        pos = {n.outs["y"]: i for i, n in enumerate(nodes)}
        for n in self.g.nodes:  # K before Q: every query row needs all of K (ties go to the earlier node)
            if n.op == "attention":
                i, j = pos[n.ins["q"]], pos[n.ins["k"]]
                if i < j:
                    nodes[i], nodes[j] = nodes[j], nodes[i]
        qkv: dict[str, dict[str, list[str]]] = {}
        fused = {n.ins["x"] for n in nodes if n.op == "layernorm" and n.ins["x"] in
                 {m.outs["y"] for m in nodes if m.op == "add"}}
        adds = {m.outs["y"]: m for m in nodes if m.op == "add"}
        for n in nodes:
            if n.op == "linear" and n.outs["y"] in att_of:
                att, k = att_of[n.outs["y"]]
                src = self.half_scale_linear(n, True) if has_half_scales(n.attrs["lin"]) else n
                made = self.v_linear(src, att) if k == "v" else self.qk_linear(src, att, k)
                qkv.setdefault(att.name, {})[k] = made
            elif n.op == "linear" and has_half_scales(n.attrs["lin"]):
                self.half_scale_linear(n, False)
            elif n.op == "linear" and self.sign_of(n):
                self.linear_sign(n, self.sign_of(n))
            elif n.op == "linear":
                self.linear(n)
            elif n.op == "attention":
                h = qkv[n.name]
                self.attention(n, h["q"], h["k"], h["v"])
            elif n.op == "add":
                if n.outs["y"] not in fused:
                    raise CompileError(f"node '{n.name}': a residual add must feed a LayerNorm")
            elif n.op == "layernorm":
                self.layernorm(n, adds.get(n.ins["x"]))
            elif n.op == "gelu":
                if n.ins["x"] not in self.signed_by_post:
                    self.gelu(n)
            elif n.op == "embed":
                self.embed(n)
            elif n.op == "lut":
                self.lut(n)
            elif n.op == "dot":
                self.dot(n)
            elif n.op == "vote":
                self.vote(n)
            else:
                raise CompileError(f"node '{n.name}': no lowering for op '{n.op}'")
        # linears whose packed input a LayerNorm / GELU / attention must write come after their producer;
        # the import order guarantees it, since producers precede consumers.


def _const_names(fields: dict) -> list[str]:
    out = []
    for v in fields.values():
        if isinstance(v, dict):
            out += [v[k] for k in ("table", "pairs") if k in v]
        elif isinstance(v, tuple) and v and v[0] == "addr":
            out.append(v[1])
        elif isinstance(v, tuple) and v and v[0] == "packed" and v[3]:
            out.append(v[3])
        elif isinstance(v, tuple) and v and v[0] == "rows" and v[1] == "mask":
            out.append("mask")
    return out


def _lowered(g: Graph, config: AccelConfig, block: int, cache: dict) -> tuple[Graph, list[Node]]:
    """A trial lowering of `g` with row blocks of `block` x max(pe_rows, vec_lanes) rows, ordered."""
    trial = Graph(tensors={k: copy.copy(v) for k, v in g.tensors.items()}, nodes=g.nodes, meta=dict(g.meta),
                  stage=g.stage)
    low = _Lower(trial, config, block, cache)
    trial.t("mask").nbytes = 4 * low.tokens   # the padding keys read as 0 (masked)
    low.run()
    trial.meta["tokens"] = low.tokens
    used = {t for n in low.out for t in list(n.ins.values()) + list(n.outs.values())}
    for name in [t.name for t in trial.tensors.values() if t.role == "scratch" and t.name not in used]:
        del trial.tensors[name]   # model-level tensors that took another form (stream, packed)
    return trial, order_nodes(low.out, trial, config)


def bitplane(g: Graph, config: AccelConfig) -> Graph:
    """Lower with vector row blocks of one and of two row tiles; keep the one whose list schedule is
    shorter (per-VEC overheads against overlap: a vector-bound model may want fewer, longer VECs)."""
    g.require("tile", "bitplane")
    cache: dict = {}
    step = max(config.pe_rows, config.vec_lanes)
    tokens = -(-g.meta["seq"] // step) * step
    blocks = (1, 2) if tokens >= 8 * step else (1,)
    trials = [_lowered(g, config, b, cache) for b in blocks]
    trial, nodes = min(trials, key=lambda tn: tn[0].meta["order_estimate_cycles"])
    g.tensors, g.meta = trial.tensors, trial.meta
    g.nodes = nodes
    g.stage = "bitplane"
    return g
