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

Bi-Attention (BiBERT, `bi_attention`; docs/NUMERICS.md "BiBERT") uses the same array in XNOR mode
with no hardware of its own: +-1 Q, K, V written as single sign planes, Q K^T over a 2-plane signed
Q (a constant ones plane loaded beside b_q) whose POST packs the 0/1 map with the key mask as
per-column parameters (`mask.p`, a program input), and A V packing sign(ctx) into attn_out's input.
"""

from __future__ import annotations

import numpy as np

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
        check_operand_bits(n, att, bits, which)
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
        check_operand_bits(n, att, bits, "values")
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
        if n.attrs.get("bi_attention"):
            return self.bi_attention(n, qs, ks, vts)
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
        dw = ceil_div(d, self.W)
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
        _, ctx = self.context_input(n, act.bits, act.signed, act.bits == 1)
        self.context_products(n, ps, vts, ctx, bits=pb, signed=False, wbits=vb, wsigned=True, mode=1,
                              p_tensors=(self.shared_params(act.mult),),
                              out=OutFmt(PostFmt.PACKED, act.bits, bool(act.signed), int(act.shift), pm1=act.bits == 1))

    def context_input(self, n: Node, bits: int, signed: bool, pm1: bool) -> tuple[Node, str]:
        """The linear reading the context (attn_out) and the packed input tensor P V writes for it."""
        ao = next(c for c in self.consumers[n.outs["y"]] if c.op == "linear")
        a = n.attrs
        ctx = self.abuf(f"{n.outs['y']}.x", a["head_dim"] * a["heads"], bits, signed, pm1, n.member)
        self.packed_of.setdefault(n.outs["y"], {})[act_key(ao.attrs["lin"])] = ctx
        return ao, ctx

    def context_products(self, n: Node, ps: list[str], vts: list[str], ctx: str, **op) -> None:
        """P V (or Bi-Attention's A V) per group of heads that share a word of the context, written
        packed into the next linear's input `ctx`; `op`: the GemmOp fields that differ."""
        a = n.attrs
        d, heads = a["head_dim"], a["heads"]
        rows = self.live_rows.get(n.outs["y"], self.seq)
        tw = ceil_div(self.tokens, self.W)
        ctiles = self.context_tiles(d, heads)
        seg_of = {t[0]: s for h in range(heads) for s, t in enumerate(a["v_segments"][h])}
        for grp in _head_groups(ctiles):
            hs = sorted({t[2] for t in grp})
            ai = {h: i for i, h in enumerate(hs)}
            tiles = tuple(NTile(n0=t[0], cols=t[1], a=ai[t[2]], w=ai[t[2]], wt=seg_of[t[0]], p=0, pe=0, dst=0,
                                col=t[3], word=t[4], pos=t[6], last=t[5]) for t in grp)
            name = f"{n.name}.pv{hs[0]}" + (f"-{hs[-1]}" if len(hs) > 1 else "")
            bits, wbits = op["bits"], op["wbits"]
            g = GemmOp(name=name, M=rows, mtiles=ceil_div(rows, self.R), segs=((0, 0, tw),),
                       a_tensors=tuple(ATensor(ps[h], self.tokens // self.R, bits, tw) for h in hs),
                       w_tensors=tuple(WTensor(vts[h], self.g.t(vts[h]).layout["ntiles"], wbits, tw) for h in hs),
                       tiles=tiles, dsts=(ctx,), **op)
            self.gemm(n, name, g)

    # -- Bi-Attention (BiBERT) --------------------------------------------------------------
    def bi_attention(self, n: Node, qs: list[str], ks: list[str], vts: list[str]) -> None:
        """BiBERT's Bi-Attention on the XNOR-mode PE array, no hardware of its own (docs/NUMERICS.md,
        "BiBERT"). Per head: Q K^T with Q as a 2-plane signed operand, plane 0 the constant ones
        (`ones_plane`, loaded beside the one plane b_q = (q + 1) / 2 the Q projection wrote) and
        plane 1 b_q: acc = sum_d k - 2 sum_d b_q k = -(q . k). Its POST (mult -1, bias 0 on real keys;
        mult 0, bias -1 on masked ones: `key_mask`, the per-inference input the host writes) packs
        the bit [q . k >= 0 and the key is real] into the 1-plane 0/1 map A. A V (XNOR over V^T's
        signs, one plane) gives sum_j A_ij v_j exactly, and its POST packs sign(ctx) (0 -> +1) as
        the +-1 input plane of attn_out."""
        a = n.attrs
        d, heads, Tk, mid = a["head_dim"], a["heads"], self.tokens, n.member
        rows = self.live_rows.get(n.outs["y"], self.seq)
        dw = ceil_div(d, self.W)
        ones, keys = self.ones_plane(d), self.key_mask()
        ktiles = self.context_tiles(Tk, 1)          # the map's key columns, cut at words and pe_cols
        ps = []
        for h in range(heads):
            hn = f"{n.name}.h{h}"
            p = self.abuf(f"{hn}.p", Tk, 1, False, False, mid)
            ps.append(p)
            tiles = tuple(NTile(n0=c, cols=cols, a=0, w=0, wt=c // self.C, p=0, pe=c // self.C, dst=0, col=J,
                                word=J, pos=pos, last=last) for c, cols, _, J, _, last, pos in ktiles)
            op = GemmOp(name=f"{hn}.qk", M=rows, mtiles=ceil_div(rows, self.R), bits=2, signed=True, wbits=1,
                        wsigned=False, mode=0, segs=((0, 0, dw),), a_tensors=(ATensor(qs[h], Tk // self.R, 1, dw),),
                        w_tensors=(WTensor(ks[h], ceil_div(Tk, self.C), 1, dw),), p_tensors=(keys,), tiles=tiles,
                        out=OutFmt(PostFmt.PACKED, 1, False, 0, pm1=True), dsts=(p,), ones=ones)
            self.gemm(n, op.name, op)
        ao, ctx = self.context_input(n, 1, True, True)
        L = ao.attrs["lin"]
        if L.act is not None or L.layer.in_bits != 1:
            raise CompileError(f"node '{ao.name}': Bi-Attention's context enters as +-1 codes (1-bit, no input "
                               "requantize)")
        self.context_products(n, ps, vts, ctx, bits=1, signed=False, wbits=1, wsigned=False, mode=0,
                              p_tensors=(self.shared_params(1),), out=OutFmt(PostFmt.PACKED, 1, True, 0, pm1=True))

    def ones_plane(self, d: int) -> str:
        """The constant plane 0 of Bi-Attention's Q operand: one m-tile of row-words with a 1 at each of
        the head's d valid bits (a partial word's at its top, its padding 0), shared by every head."""
        key = ("ones", d)
        if key not in self.shared:
            L = lay.act_layout(self.R, d, self.R, self.W, 1, False)
            self.shared[key] = self.tensor(f"ones{d}.a", "const", "abuf", (self.R, d), layout=L,
                                           data=lay.pack_activations(np.ones((self.R, d), np.int64), L))
        return self.shared[key]

    def key_mask(self) -> str:
        """The key mask of Bi-Attention as per-column POST parameters, one PBUF entry per pe_cols keys:
        (mult -1, bias 0) for a real key, (0, -1) for a masked one (the bit is then 0). A program
        input: the host writes it from the attention mask (compiler/host.py `with_inputs`); compiled
        in, every key of the sequence is real and the padding tokens are masked."""
        if ("keys",) not in self.shared:
            L = dict(lay.param_layout(self.tokens, self.C), seq=self.seq)
            self.shared[("keys",)] = self.tensor(KEY_MASK, "input", "pbuf", (self.tokens, 2), layout=L,
                                                 data=key_mask_params(np.ones(self.seq), L))
        return self.shared[("keys",)]

    def softmax(self, n: Node, name: str, sc: str, p: str, sm: str, pr: str, r0: int, r1: int, se: int,
                pb: int) -> None:
        """SOFTMAX of query rows [r0, r1) of one head (the key mask read as a row of int32)."""
        fields = {"src": ("stream", sc, r0), "mask": ("rows", "mask"), "consts": ("addr", sm),
                  "pout": ("packed", p, r0, pr)}
        self.vec(n, name, VecFn.SOFTMAX, r1 - r0, self.tokens, fields,
                 reads=[(sc, r0, r1), ("mask", 0, 1)], writes=[(p, r0, r1)], bits=pb,
                 io=io_word(stream_out=False, second_in=True, in_elem=se, out_elem=2))

    # -- vector kernels --------------------------------------------------------------------


KEY_MASK = "mask.p"   # Bi-Attention's key mask as POST parameters (a program input)


def key_mask_params(mask, layout: dict) -> np.ndarray:
    """The bytes of the key-mask input from an attention mask (one value per position, nonzero =
    real): per key column (mult, bias) = (-1, 0) real, (0, -1) masked; keys past the sequence (the
    padding tokens) are masked."""
    N = layout["N"]
    real = np.zeros(N, bool)
    m = np.asarray(mask).reshape(-1)[:min(N, layout["seq"])] != 0
    real[:m.size] = m
    return lay.pack_params(np.where(real, -1, 0), np.where(real, 0, -1), layout).reshape(-1)


def check_operand_bits(n: Node, att: Node, bits: int, which: str) -> None:
    """Q, K, V widths: 2..8-bit AND-mode operands, or Bi-Attention's 1-bit (+-1) XNOR-mode ones."""
    if att.attrs.get("bi_attention"):
        if bits != 1:
            raise CompileError(f"tensor '{n.name}': Bi-Attention takes 1-bit {which}, got {bits} bits")
    elif not 2 <= bits <= 8:
        raise CompileError(f"tensor '{n.name}': {bits}-bit {which} cannot be an AND-mode operand (2..8 bits)")


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
