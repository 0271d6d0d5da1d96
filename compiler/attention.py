"""The attention part of the bitplane lowering: Q, K and V projections written per head in the
layouts of the attention products, Q K^T, SOFTMAX, and P V into the next linear's input.

Per head h: Q_h is packed into ABUF planes and K_h into the WBUF planes of Q K^T's AND-mode
operand (one word per d-wide axis word: heads narrower than a word take its top bits); V_h^T is
written packed-transposed into the WBUF planes of P V, its rows cut as the context's tiles. Q K^T
(AND mode, q_bits x k_bits planes) writes the scores as a stream (int16 when d |q| |k| fits);
SOFTMAX (the key mask; the padding keys read as 0) writes P packed with the probability
requantize; P V of each group of heads that share a word of the context writes the context
packed into the next linear's ABUF planes, that linear's input requantize done by the output
path (POST: mult per column, its shift and width). A mixin of `bitplane._Lower`.
"""

from __future__ import annotations

from bebert import layout as lay
from bebert.isa import PostFmt
from bebert.vector import VecFn, consts_words, io_word

from .errors import CompileError
from .gemm_plan import ATensor, GemmOp, NTile, OutFmt, WTensor, ceil_div
from .ir import Node


class AttentionLowering:
    def head_words(self, d: int) -> list[tuple[int, int]]:
        """(first element, elements) of the words of one head's d-wide axis."""
        return [(j, min(self.W, d - j)) for j in range(0, d, self.W)]

    def qk_linear(self, n: Node, att: Node, which: str) -> list[str]:
        """Q or K projection, written packed per head: Q_h into ABUF, K_h into WBUF planes."""
        L = n.attrs["lin"].layer
        a = att.attrs
        d, heads, bits = a["head_dim"], a["heads"], L.out_bits
        if not 2 <= bits <= 8:
            raise CompileError(f"tensor '{n.name}': {bits}-bit {which} cannot be an AND-mode operand (2..8 bits)")
        dsts = []
        for h in range(heads):
            name = f"{att.name}.h{h}.{which}"
            if which == "q":
                dsts.append(self.abuf(name, d, bits, bool(L.out_signed), bits == 1, n.member))
            else:
                dsts.append(self.wplanes(name, self.tokens, d, bits, n.member))
        tiles = []
        for h in range(heads):
            for j, (w0, wn) in enumerate(self.head_words(d)):
                for c0 in range(0, wn, self.C):
                    cols = min(self.C, wn - c0)
                    tiles.append((h * d + w0 + c0, cols, h, j, 0, c0 + cols == wn, self.W - wn + c0))
        tiles = _renumber_words(tiles)
        out = OutFmt(PostFmt.PACKED, bits, bool(L.out_signed), 0, pm1=bits == 1)
        M = self.live_rows.get(att.outs["y"], self.seq) if which == "q" else self.seq
        self.gemm(n, n.name, self.linear_op(n, tiles, out, tuple(dsts), M, ceil_div(M, self.R)))
        return dsts

    def context_tiles(self, d: int, heads: int) -> list[tuple[int, int, int, int, int, bool, int]]:
        """Context columns (the next linear's input) cut at head, word and pe_cols boundaries:
        (n0, cols, head, word, word id, last of word, pos)."""
        H, W = d * heads, self.W
        out = []
        for J in range(0, ceil_div(H, W)):
            w0, w1 = J * W, min(H, (J + 1) * W)
            wn = w1 - w0
            c = w0
            while c < w1:
                h = c // d
                end = min(w1, (h + 1) * d, c + self.C)
                out.append((c, end - c, h, J, J, end == w1, W - wn + (c - w0)))
                c = end
        return out

    def v_linear(self, n: Node, att: Node) -> list[str]:
        """V projection, written packed-transposed: V_h^T in the WBUF planes of P V, its rows cut as
        the context's tiles (one segment per tile of head h)."""
        L = n.attrs["lin"].layer
        a = att.attrs
        d, heads, bits = a["head_dim"], a["heads"], L.out_bits
        if not 2 <= bits <= 8:
            raise CompileError(f"tensor '{n.name}': {bits}-bit values cannot be an AND-mode operand (2..8 bits)")
        ctx = self.context_tiles(d, heads)
        segs = [[t for t in ctx if t[2] == h] for h in range(heads)]
        rows = max(len(sg) for sg in segs) * self.C   # one geometry for all heads: one POSTCFG
        dsts = [self.wplanes(f"{att.name}.h{h}.vt", rows, self.tokens, bits, n.member) for h in range(heads)]
        tiles = []
        for h in range(heads):
            for s, t in enumerate(segs[h]):
                tiles.append((t[0], t[1], h, s, len(tiles), True, 0))
        out = OutFmt(PostFmt.TRANSPOSED, bits, bool(L.out_signed), 0, pm1=bits == 1)
        self.gemm(n, n.name, self.linear_op(n, tiles, out, tuple(dsts), self.seq, self.tokens // self.R))
        att.attrs["v_segments"] = segs
        return dsts

    # -- attention -----------------------------------------------------------------------
    def attention(self, n: Node, qs: list[str], ks: list[str], vts: list[str]) -> None:
        a = n.attrs
        d, heads = a["head_dim"], a["heads"]
        qb, kb, vb, pb = a["q_bits"], a["k_bits"], a["v_bits"], a["probs"].bits
        Tk = self.tokens
        mid = n.member
        rows = self.live_rows.get(n.outs["y"], self.seq)
        qmax = max(abs(v) for v in lay.code_range(qb, True))
        kmax = max(abs(v) for v in lay.code_range(kb, True))
        se = 2 if d * qmax * kmax < (1 << 15) else 4
        sm = self.const(f"{n.name}.softmax", consts_words(VecFn.SOFTMAX, a["softmax"]), mid)
        pr = self.const(f"{n.name}.probs", consts_words(VecFn.REQUANT, a["probs"]), mid)
        ident = self.shared_params(1)
        dw, tw = ceil_div(d, self.W), ceil_div(Tk, self.W)
        ps = []
        for h in range(heads):
            hn = f"{n.name}.h{h}"
            sc = self.stream(f"{hn}.scores", self.seq, Tk, se, mid)
            tiles = tuple(NTile(n0=c, cols=min(self.C, Tk - c), a=0, w=0, wt=i, p=0, pe=0, dst=0, col=c, word=i)
                          for i, c in enumerate(range(0, Tk, self.C)))
            op = GemmOp(name=f"{hn}.qk", M=rows, mtiles=ceil_div(rows, self.R), bits=qb, signed=True, wbits=kb,
                        wsigned=True, mode=1, segs=((0, 0, dw),),
                        a_tensors=(ATensor(qs[h], Tk // self.R, qb, dw),),
                        w_tensors=(WTensor(ks[h], ceil_div(Tk, self.C), kb, dw),), p_tensors=(ident,), tiles=tiles,
                        out=OutFmt(PostFmt.STREAM, 16 if se == 2 else 0, True, 0, elem=se.bit_length() - 1),
                        dsts=(sc,))
            self.gemm(n, op.name, op)
            p = self.abuf(f"{hn}.p", Tk, pb, False, False, mid)
            ps.append(p)
            self.softmax(n, f"{hn}.softmax", sc, p, sm, pr, 0, rows, se, pb)
        # P V per head group (heads sharing a word of the context), into the next linear's input
        ao = next(c for c in self.consumers[n.outs["y"]] if c.op == "linear")
        act = ao.attrs["lin"].act
        if act is None:
            raise CompileError(f"node '{ao.name}': the context needs an input requantize to be packed")
        if not 2 <= act.bits <= 8:
            raise CompileError(f"node '{ao.name}': {act.bits}-bit context activations are not supported (2..8)")
        bound = Tk * ((1 << pb) - 1) * (1 << (vb - 1))
        if bound > (1 << (act.in_bits - 1)) - 1:
            raise CompileError(f"node '{ao.name}': the context (|x| <= {bound}) exceeds the input requantize's "
                               f"{act.in_bits}-bit range; the output path cannot apply it")
        ctx = self.abuf(f"{n.outs['y']}.x", d * heads, act.bits, act.signed, act.bits == 1, mid)
        self.packed_of.setdefault(n.outs["y"], {})[act_key(ao.attrs["lin"])] = ctx
        rq = self.shared_params(act.mult)
        ctiles = self.context_tiles(d, heads)
        seg_of = {t[0]: s for h in range(heads) for s, t in enumerate(a["v_segments"][h])}
        for grp in _head_groups(ctiles):
            hs = sorted({t[2] for t in grp})
            ai = {h: i for i, h in enumerate(hs)}
            tiles = tuple(NTile(n0=t[0], cols=t[1], a=ai[t[2]], w=ai[t[2]], wt=seg_of[t[0]], p=0, pe=0, dst=0,
                                col=t[3], word=t[4], pos=t[6], last=t[5]) for t in grp)
            name = f"{n.name}.pv{hs[0]}" + (f"-{hs[-1]}" if len(hs) > 1 else "")
            op = GemmOp(name=name, M=rows, mtiles=ceil_div(rows, self.R), bits=pb, signed=False, wbits=vb,
                        wsigned=True, mode=1, segs=((0, 0, tw),),
                        a_tensors=tuple(ATensor(ps[h], Tk // self.R, pb, tw) for h in hs),
                        w_tensors=tuple(WTensor(vts[h], self.g.t(vts[h]).layout["ntiles"], vb, tw) for h in hs),
                        p_tensors=(rq,), tiles=tiles,
                        out=OutFmt(PostFmt.PACKED, act.bits, bool(act.signed), int(act.shift), pm1=act.bits == 1),
                        dsts=(ctx,))
            self.gemm(n, name, op)

    def softmax(self, n: Node, name: str, sc: str, p: str, sm: str, pr: str, r0: int, r1: int, se: int,
                pb: int) -> None:
        """SOFTMAX of query rows [r0, r1) of one head (the key mask read as a row of int32)."""
        fields = {"src": ("stream", sc, r0), "mask": ("rows", "mask"), "consts": ("addr", sm),
                  "pout": ("packed", p, r0, pr)}
        self.vec(n, name, VecFn.SOFTMAX, r1 - r0, self.tokens, fields,
                 reads=[(sc, r0, r1), ("mask", 0, 1)], writes=[(p, r0, r1)], bits=pb,
                 io=io_word(stream_out=False, second_in=True, in_elem=se, out_elem=2))

    # -- vector kernels --------------------------------------------------------------------


def _renumber_words(tiles):
    """Word ids: consecutive tiles of the same (dst, word) share one."""
    out, wid, prev = [], -1, None
    for t in tiles:
        key = (t[2], t[3])
        if key != prev:
            wid += 1
            prev = key
        out.append((t[0], t[1], t[2], t[3], wid, t[5], t[6]))
    return out


def _head_groups(ctiles):
    """The context tiles cut into groups of heads that share words (one P V node each)."""
    groups, cur, heads = [], [], set()
    for i, t in enumerate(ctiles):
        cur.append(t)
        heads.add(t[2])
        end_of_word = t[5]
        head_ends = i + 1 == len(ctiles) or ctiles[i + 1][2] != t[2]
        if end_of_word and head_ends:
            groups.append(cur)
            cur, heads = [], set()
    if cur:
        groups.append(cur)
    return groups


def act_key(lin) -> tuple:
    """What makes two linears' packed inputs the same: width, signedness, TWS split, input requantize."""
    L = lin.layer
    a = lin.act
    return (L.in_bits, bool(L.in_signed), lin.split, None if a is None else
            (a.mult, a.shift, a.bits, bool(a.signed), a.in_bits))
