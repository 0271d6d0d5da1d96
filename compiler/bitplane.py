"""Pass 4, bit-plane decomposition: model-level nodes -> machine-level nodes (`vec`, `gemm`).

Every matrix product reads its left operand as ABUF bit-planes and its right operand as WBUF
words, so this pass inserts the packing kernels and lays out the constant tensors:

linear     PACK_A (the layer's input requantize and the TWS [x, x] folded into the read) ->
           gemm XNOR (weight signs, (mult, bias) per channel) -> int32 output tiles
attention  per head h: PACK_A(Q_h); PACK_W(K_h, k_bits planes); gemm AND -> scores tiles;
           SOFTMAX (key mask) -> 16-bit probabilities; PACK_A with the probability requantize;
           PACK_W(V_h^T, v_bits planes); gemm AND -> context tiles; REQUANT (identity) into
           columns [h d, (h+1) d) of the row-major context
others     one VEC each (EMBED, LAYERNORM, ADD, GELU, LUT, DOT) with its constant block

Operands of a VEC are *view references* {t: tensor, r0, c0, T (transpose), split (K), bcast
(row stride 0)}; the schedule pass turns them into `bebert.vector.View`s once addresses exist.
"""

from __future__ import annotations

import numpy as np

from bebert.config import AccelConfig
from bebert.vector import VecFn, consts_words

from bebert import layout as lay
from .errors import CompileError
from .ir import Graph, Node, TensorRec

IDENT = "identity.p"  # shared (mult 1, bias 0) parameters of the AND-mode products


def ref(t: str, **kw) -> dict:
    return {"t": t, **kw}


class _Lower:
    def __init__(self, g: Graph, config: AccelConfig):
        self.g, self.cfg = g, config
        self.out: list[Node] = []
        self.R, self.C, self.W = config.pe_rows, config.pe_cols, config.xnor_width
        self.eb = {b: config.entry_bytes(b) for b in ("abuf", "wbuf", "pbuf", "obuf")}
        self.ident_n = 0

    # -- helpers -----------------------------------------------------------------------
    def tensor(self, name: str, role: str, form: str, shape=(), data=None, layout=None, nbytes=0,
               member=None, **kw) -> str:
        if data is not None:
            data = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
            nbytes = nbytes or data.size
        self.g.add(TensorRec(name, role, form, tuple(shape), data=data, layout=layout or {}, nbytes=nbytes,
                             member=member, **kw))
        return name

    def const(self, name: str, blob: bytes, member) -> str:
        return self.tensor(name, "const", "bytes", data=np.frombuffer(blob, np.uint8), member=member)

    def vec(self, src: Node, name: str, fn: VecFn, rows: int, cols: int, fields: dict, outs: list[str],
            bits: int = 0, aux: int = 0) -> None:
        if fn in (VecFn.LAYERNORM, VecFn.SOFTMAX) and cols > self.cfg.vec_row_elems:
            # The vector unit holds one such row in its row memories (AccelConfig.vec_row_elems).
            raise CompileError(f"{name}: {fn.name} row of {cols} elements exceeds the vector unit's row "
                               f"memory (vec_row_elems = {self.cfg.vec_row_elems})")
        ins = sorted(set(_names(fields)) - set(outs))
        self.out.append(Node("vec", name, {f"i{k}": t for k, t in enumerate(ins)},
                             {f"o{k}": t for k, t in enumerate(outs)},
                             {"fn": fn, "rows": rows, "cols": cols, "bits": bits, "aux": aux, "fields": fields},
                             src.member, src.layer, src.region, src.kind))

    def gemm(self, src: Node, name: str, x: str, w: str, p: str, y: str, tiling, post: dict,
             wpasses=None) -> None:
        self.out.append(Node("gemm", name, {"x": x, "w": w, "p": p}, {"y": y},
                             {"tiling": tiling, "post": post, "wpasses": wpasses}, src.member, src.layer,
                             src.region, src.kind))

    def abuf(self, name: str, M: int, K: int, bits: int, signed: bool, chunk: int, member) -> str:
        L = lay.act_layout(M, K, self.R, self.W, bits, signed, chunk=chunk)
        return self.tensor(name, "scratch", "abuf", (M, K), layout=L, nbytes=lay.nbytes(L, self.eb["abuf"]),
                           member=member)

    # -- nodes -------------------------------------------------------------------------
    def linear(self, n: Node) -> None:
        g, a = self.g, n.attrs
        lin, t = a["lin"], a["tiling"]
        L = lin.layer
        x = g.t(n.ins["x"])
        M, K, N = t.M, L.in_features, L.out_features
        xp = self.abuf(f"{n.name}.xp", M, K, L.in_bits, L.in_signed, t.a_chunk, n.member)
        src = ref(x.name, split=x.shape[1] if lin.split else 0)
        consts = 0
        if lin.act is not None:
            consts = ("addr", self.const(f"{n.name}.act", consts_words(VecFn.PACK_A, lin.act), n.member))
        self.vec(n, f"{n.name}.pack", VecFn.PACK_A, M, K,
                 {"src": src, "out": ("addr", xp), "consts": consts, "array_rows": self.R, "width": self.W,
                  "signed": int(L.in_signed), "chunk": t.a_chunk}, [xp], bits=L.in_bits)
        wl = lay.weight_layout(N, K, self.C, self.W)
        w = self.tensor(f"{n.name}.w", "weight", "wbuf", (N, K), data=lay.pack_weights(L.sign, wl), layout=wl,
                        member=n.member)
        pl = lay.param_layout(N, self.C)
        p = self.tensor(f"{n.name}.p", "param", "pbuf", (N, 2), data=lay.pack_params(L.mult, L.bias, pl),
                        layout=pl, member=n.member)
        y = g.t(n.outs["y"])
        self.as_tiles(y)
        obits = L.out_bits if L.out_bits <= 8 else 0   # 16-bit outputs: int32 here, saturated on read
        self.gemm(n, n.name, xp, w, p, y.name, t,
                  {"shift": int(L.shift), "obits": obits, "osigned": bool(L.out_signed), "signed": bool(L.in_signed)})

    def as_tiles(self, t: TensorRec) -> None:
        M, N = t.shape
        t.form = "tiles"
        t.layout = lay.output_layout(M, N, self.R, self.C)
        t.nbytes = lay.nbytes(t.layout, self.eb["obuf"])

    def attention(self, n: Node) -> None:
        g, a = self.g, n.attrs
        T, H = g.t(n.outs["y"]).shape
        d, heads = a["head_dim"], a["heads"]
        ts, tc = a["scores_tiling"], a["context_tiling"]
        qb, kb, vb, pb = a["q_bits"], a["k_bits"], a["v_bits"], a["probs"].bits
        self.ident_n = max(self.ident_n, T, d)
        ident = IDENT
        mid = n.member
        sm = self.const(f"{n.name}.softmax", consts_words(VecFn.SOFTMAX, a["softmax"]), mid)
        pr = self.const(f"{n.name}.probs", consts_words(VecFn.PACK_A, a["probs"]), mid)
        from bebert.integer_ops import RequantConsts
        copy = self.const(f"{n.name}.copy", consts_words(VecFn.REQUANT, RequantConsts(1, 0, 0, True, 32, 1.0, 1.0)),
                          mid)
        ctx = g.t(n.outs["y"])
        ctx.form, ctx.elem = "rows", 4
        for h in range(heads):
            hn = f"{n.name}.h{h}"
            c0 = h * d
            qp = self.abuf(f"{hn}.qp", T, d, qb, True, ts.a_chunk, mid)
            self.vec(n, f"{hn}.pack_q", VecFn.PACK_A, T, d,
                     {"src": ref(n.ins["q"], c0=c0), "out": ("addr", qp), "consts": 0, "array_rows": self.R,
                      "width": self.W, "signed": 1, "chunk": ts.a_chunk}, [qp], bits=qb)
            kl = lay.weight_layout(T, d, self.C, self.W)
            kplane = lay.nbytes(kl, self.eb["wbuf"])
            kp = self.tensor(f"{hn}.kp", "scratch", "wbuf", (kb, T, d), layout=kl, nbytes=kb * kplane, member=mid)
            self.vec(n, f"{hn}.pack_k", VecFn.PACK_W, T, d,
                     {"src": ref(n.ins["k"], c0=c0), "out": ("addr", kp), "array_cols": self.C, "width": self.W,
                      "plane_bytes": kplane}, [kp], bits=kb)
            sc = self.tensor(f"{hn}.scores", "scratch", "tiles", (T, T), member=mid)
            self.as_tiles(g.t(sc))
            self.gemm(n, f"{hn}.scores", qp, kp, ident, sc, ts, _ident_post(True),
                      [(p * kplane, p == kb - 1, p) for p in range(kb)])
            probs = self.tensor(f"{hn}.p16", "scratch", "rows", (T, T), nbytes=T * T * 4, member=mid)
            self.vec(n, f"{hn}.softmax", VecFn.SOFTMAX, T, T,
                     {"src": ref(sc), "mask": ref(n.ins["mask"], bcast=True), "out": ref(probs),
                      "consts": ("addr", sm)}, [probs])
            pp = self.abuf(f"{hn}.pp", T, T, pb, False, tc.a_chunk, mid)
            self.vec(n, f"{hn}.pack_p", VecFn.PACK_A, T, T,
                     {"src": ref(probs), "out": ("addr", pp), "consts": ("addr", pr), "array_rows": self.R,
                      "width": self.W, "signed": 0, "chunk": tc.a_chunk}, [pp], bits=pb)
            vl = lay.weight_layout(d, T, self.C, self.W)
            vplane = lay.nbytes(vl, self.eb["wbuf"])
            vp = self.tensor(f"{hn}.vp", "scratch", "wbuf", (vb, d, T), layout=vl, nbytes=vb * vplane, member=mid)
            self.vec(n, f"{hn}.pack_v", VecFn.PACK_W, d, T,
                     {"src": ref(n.ins["v"], c0=c0, T=True), "out": ("addr", vp), "array_cols": self.C,
                      "width": self.W, "plane_bytes": vplane}, [vp], bits=vb)
            cx = self.tensor(f"{hn}.context", "scratch", "tiles", (T, d), member=mid)
            self.as_tiles(g.t(cx))
            self.gemm(n, f"{hn}.context", pp, vp, ident, cx, tc, _ident_post(False),
                      [(p * vplane, p == vb - 1, p) for p in range(vb)])
            self.vec(n, f"{hn}.gather", VecFn.REQUANT, T, d,
                     {"src": ref(cx), "out": ref(ctx.name, c0=c0), "consts": ("addr", copy)},
                     [ctx.name] if h == 0 else [])

    def simple(self, n: Node) -> None:
        g, a = self.g, n.attrs
        y = g.t(n.outs["y"])
        rows, cols = y.shape
        mid = n.member
        if n.op == "embed":
            y.form = "rows"
            tables = {k: self.table(f"{n.name}.{k}", a[k], mid) for k in ("word", "position", "token_type")}
            self.vec(n, n.name, VecFn.EMBED, rows, cols,
                     {"ids": ref(n.ins["ids"]), "types": ref(n.ins["types"]), **tables, "out": ref(y.name)}, [y.name])
            return
        fn = {"layernorm": VecFn.LAYERNORM, "add": VecFn.ADD, "gelu": VecFn.GELU}.get(n.op)
        if fn is not None:
            c = a["consts"]
            extra = (c.mult, c.bias) if fn == VecFn.LAYERNORM else ()
            k = self.const(f"{n.name}.consts", consts_words(fn, c, extra), mid)
            if fn == VecFn.ADD:
                fields = {"a": ref(n.ins["a"]), "b": ref(n.ins["b"]), "out": ref(y.name), "consts": ("addr", k)}
            else:
                fields = {"src": ref(n.ins["x"]), "out": ref(y.name), "consts": ("addr", k)}
            self.vec(n, n.name, fn, rows, cols, fields, [y.name])
            return
        if n.op == "lut":
            table = np.asarray(a["table"], "<i4")
            tb = self.tensor(f"{n.name}.table", "const", "bytes", data=table, member=mid)
            self.vec(n, n.name, VecFn.LUT, rows, cols,
                     {"src": ref(n.ins["x"]), "out": ref(y.name), "table": ("addr", tb),
                      "offset": 1 << 15, "size": table.size}, [y.name])  # index = 16-bit code + 2^15
            return
        if n.op == "dot":
            w = np.asarray(a["weight"], np.int64)
            if np.abs(w).max(initial=0) >= 1 << 31:
                raise CompileError(f"weight '{n.name}': classifier codes beyond int32")
            wt = self.tensor(f"{n.name}.w", "const", "rows", w.shape, data=w.astype("<i4"), member=mid)
            bt = self.tensor(f"{n.name}.b", "const", "bytes", data=np.asarray(a["bias"], "<i8"), member=mid)
            y.elem = 8
            y.layout = {"kind": "rows", "rows": rows, "cols": cols, "elem": 8, "signed": True}
            self.vec(n, n.name, VecFn.DOT, rows, g.t(n.ins["x"]).shape[1],
                     {"src": ref(n.ins["x"]), "weight": ref(wt), "bias": ("addr", bt), "out": ref(y.name)},
                     [y.name], aux=cols)
            return
        raise CompileError(f"node '{n.name}': no lowering for op '{n.op}'")

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


def _names(fields: dict) -> list[str]:
    """The tensors a VEC's descriptor fields name (views, addresses, tables)."""
    out = []
    for v in fields.values():
        if isinstance(v, dict):
            out += [v[k] for k in ("t", "table", "pairs") if k in v]
        elif isinstance(v, tuple) and v[0] == "addr":
            out.append(v[1])
    return out


def _ident_post(signed: bool) -> dict:
    return {"shift": 0, "obits": 0, "osigned": True, "signed": signed}


def bitplane(g: Graph, config: AccelConfig) -> Graph:
    g.require("tile", "bitplane")
    low = _Lower(g, config)
    for n in g.nodes:
        if n.op == "linear":
            low.linear(n)
        elif n.op == "attention":
            low.attention(n)
        else:
            low.simple(n)
    if low.ident_n:
        pl = lay.param_layout(low.ident_n, low.C)
        low.tensor(IDENT, "param", "pbuf", (low.ident_n, 2),
                   data=lay.pack_params(np.ones(low.ident_n), np.zeros(low.ident_n), pl), layout=pl)
    g.nodes = low.out
    g.stage = "bitplane"
    return g
