"""Split layers with a scale per half (BinaryBERT's TWS, `IntLinear.mult_hi`; docs/NUMERICS.md,
"Split layers"): v = acc_lo * mult + acc_hi * mult_hi + bias, out = sat(rnd(v, shift)).

The output path has one multiplier per column, so such a layer runs as
- two GEMMs over the same packed input, one per half of the weight, each writing its exact
  product as an int32 stream (POST obits 0, shift 0): t_lo = acc_lo * mult + bias and
  t_hi = acc_hi * mult_hi. They are exact because the export keeps K max|x| |mult_h| + |bias|
  inside int32 (`QLinear.to_integer_halves`), which is checked here;
- one VEC ADD (mult1 = mult2 = 1, in_bits 32, the layer's shift, width and sign) that rounds
  t_lo + t_hi once: the integer path's arithmetic, bit for bit, with no new hardware.

The ADD writes what the layer's readers take: a stream (the residual add, GELU, the pooler) or,
for attention's Q, K and V, the codes packed into ABUF planes. Only the output path writes the
attention operands' layouts (Q_h and K_h planes, V_h^T transposed), so one AND-mode GEMM of
those planes against 0/1 identity planes (POST mult 1: the codes unchanged) re-lays them: the
`relay` node the attention lowering then takes as its projection. The cost is a third GEMM of
1 x out_bits planes and two int32 round trips per layer; a two-bank accumulator with a second
POST multiplier would remove both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bebert import layout as lay
from bebert.integer_ops import AddConsts
from bebert.isa import PostFmt
from bebert.numerics import INT32_MAX, act_range
from bebert.vector import VecFn, consts_words, io_word

from .errors import CompileError
from .attention import act_key
from .gemm_plan import ATensor, GemmOp, NTile, OutFmt, WTensor, ceil_div, elem_bytes
from .ir import Node


def has_half_scales(lin) -> bool:
    return getattr(lin, "mult_hi", None) is not None


@dataclass(frozen=True)
class _Half:
    """One half of a split layer as a plain (unsplit) linear: its signs, multiplier and bias."""

    layer: object
    act: object
    split: bool = False


class SplitScaleLowering:
    """A mixin of `bitplane._Lower`."""

    def half_scale_linear(self, n: Node, attention: bool) -> Node | None:
        """Lower split linear `n` with a scale per half; when it feeds attention, return the relay
        node whose GEMM writes the attention operand (`qk_linear` / `v_linear` take it)."""
        lin = n.attrs["lin"]
        L = lin.layer
        y = n.outs["y"]
        full, N, K = self.g.t(y).shape[0], L.out_features, L.in_features // 2
        M = self.live_rows.get(y, full)
        self._check_halves(n, lin, K)
        sign = np.asarray(L.sign, bool)
        halves = (("lo", sign[:, :K], L.mult, L.bias), ("hi", sign[:, K:], lin.mult_hi, np.zeros_like(L.bias)))
        tiles = self.stream_tiles(N)
        sums = []
        for tag, s, mult, bias in halves:
            part = replace(L, sign=s, mult=np.asarray(mult, np.int32), bias=np.asarray(bias, np.int32), shift=0,
                           out_bits=0, out_signed=True)
            half = Node("linear", f"{n.name}.{tag}", n.ins, n.outs, {"lin": _Half(part, lin.act), "act_key": act_key(lin)},
                        n.member, n.layer, n.region, n.kind)
            t = self.stream(f"{y}.{tag}", full, N, 4, n.member)
            out = OutFmt(PostFmt.STREAM, 0, True, 0, elem=2)
            self.gemm(half, half.name, self.linear_op(half, tiles, out, (t,), M, ceil_div(M, self.R)))
            sums.append(t)
        if attention:
            codes = self.abuf(f"{y}.codes", N, L.out_bits, bool(L.out_signed), False, n.member)
            self._sum(n, sums, M, N, pout=codes)
            return Node("linear", f"{n.name}.relay", {"x": y}, n.outs, {"lin": lin, "relay": codes},
                        n.member, n.layer, n.region, n.kind)
        ys = self.stream(f"{y}.s", full, N, elem_bytes(L.out_bits), n.member)
        self.stream_of[y] = ys
        self._sum(n, sums, M, N, out=ys)
        return None

    def _check_halves(self, n: Node, lin, K: int) -> None:
        L = lin.layer
        if L.in_bits == 1:
            raise CompileError(f"node '{n.name}': a split layer with a scale per half on +-1 inputs has no lowering")
        if not (L.out_bits == 0 or 2 <= L.out_bits <= 16):
            raise CompileError(f"node '{n.name}': a split layer with a scale per half writes {L.out_bits}-bit codes "
                               "(0 or 2..16 here)")
        lo, hi = act_range(L.in_bits, L.in_signed)
        acc = K * max(abs(lo), abs(hi))
        reach = max(int(np.max(acc * np.abs(np.asarray(L.mult, np.int64)) + np.abs(np.asarray(L.bias, np.int64)))),
                    int(np.max(acc * np.abs(np.asarray(lin.mult_hi, np.int64)))))
        if reach > INT32_MAX:
            raise CompileError(f"node '{n.name}': a half's product can reach {reach}, beyond the int32 stream the "
                               "output path writes it to (a package's export keeps it inside)")

    def _sum(self, n: Node, sums: list[str], M: int, N: int, out: str | None = None, pout: str | None = None):
        """VEC ADD t_lo + t_hi, rounded once to the layer's codes, per row block."""
        L = n.attrs["lin"].layer
        c = AddConsts(mult1=1, mult2=1, shift=int(L.shift), in_bits=32, out_bits=int(L.out_bits),
                      out_signed=bool(L.out_signed), scale1=1.0, scale2=1.0, out_scale=1.0)
        k = self.const(f"{n.name}.sum", consts_words(VecFn.ADD, c), n.member)
        lo, hi = sums
        for bi, (r0, nr) in enumerate(self.row_blocks(M)):
            fields = {"a": ("stream", lo, r0), "b": ("stream", hi, r0), "consts": ("addr", k)}
            if out:
                fields["out"] = ("stream", out, r0)
            if pout:
                fields["pout"] = ("packed", pout, r0, None)
            self.vec(n, f"{n.name}.sum.r{bi}", VecFn.ADD, nr, N, fields,
                     reads=[(lo, r0, r0 + nr), (hi, r0, r0 + nr)], writes=[(out or pout, r0, r0 + nr)],
                     bits=int(L.out_bits) if pout else 0,
                     io=io_word(stream_out=out is not None, in_elem=4, out_elem=elem_bytes(L.out_bits)))

    def relay_op(self, n: Node, tiles, out: OutFmt, dsts: tuple[str, ...], M: int, mtiles: int) -> GemmOp:
        """The identity GEMM (AND mode, 0/1 planes) moving packed codes into the layout of `tiles`."""
        x = n.attrs["relay"]
        xl = self.g.t(x).layout
        N, KW, C = xl["K"], xl["kwords"], self.C
        eye = np.zeros((len(tiles) * C, N), np.int64)
        for t, (n0, cols, *_rest) in enumerate(tiles):
            eye[t * C + np.arange(cols), n0 + np.arange(cols)] = 1
        wl = lay.wplanes_layout(eye.shape[0], N, C, self.W, 1, False)
        w = self.tensor(f"{n.name}.w", "weight", "wplanes", eye.shape, data=lay.pack_weight_planes(eye, wl),
                        layout=wl, member=n.member)
        nt = tuple(NTile(n0=a, cols=b, a=0, w=0, wt=i, p=0, pe=0, dst=d, col=c, word=wd, last=last, pos=pos)
                   for i, (a, b, d, c, wd, last, pos) in enumerate(tiles))
        return GemmOp(name=n.name, M=M, mtiles=mtiles, bits=xl["bits"], signed=bool(xl["signed"]), wbits=1,
                      wsigned=False, mode=1, segs=((0, 0, KW),), a_tensors=(ATensor(x, xl["mtiles"], xl["bits"], KW),),
                      w_tensors=(WTensor(w, len(tiles), 1, KW),), p_tensors=(self.shared_params(1),), tiles=nt,
                      out=OutFmt(out.fmt, out.obits, out.osigned, 0, out.elem, out.pm1), dsts=dsts)
