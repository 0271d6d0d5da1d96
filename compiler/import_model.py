"""Pass 1, import: an integer model (a trained package's `IntegerModel` or a synthetic one) ->
the model-level graph.

The nodes follow `model/package.py apply_integer_member` step by step, per member:

    embed (ids, types) -> layernorm -> per layer [linear q, k, v -> attention (mask) ->
    linear attn_out -> add -> layernorm -> linear ffn_in -> gelu -> linear ffn_out -> add ->
    layernorm] -> linear pooler (token 0) -> lut (tanh) -> dot (classifier: int64 accumulators)

Each member's accumulators are a program output. After the members, one `vote` node reads
them all and writes `votes` (members + 1 int64: each member's class, then the ensemble's
prediction; STS-B: each member's Q15.16 score code, then the ensemble's): model/vote.py's
vote on the device, every method (VOTE samme / samme.r, VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN;
docs/NUMERICS.md, "The vote on the device"), its constants the model's `vote` (a trained
package's `integer_vote`, a synthetic model's seeded one).
The per-inference inputs `ids`, `types`, `mask` (int32, one per position) are shared by all
members. Shapes are left to the shape pass.
"""

from __future__ import annotations

from .errors import CompileError
from .ir import Graph, Node, TensorRec

INPUTS = ("ids", "types", "mask")


def import_model(model, seq: int, name: str = "model") -> Graph:
    """The model-level graph of `model` for sequences of `seq` tokens."""
    members = getattr(model, "members", None)
    if not members:
        raise CompileError(f"model '{name}': no members to compile")
    g = Graph(meta={"model": name, "seq": int(seq), "members": len(members),
                    "alphas": [float(a) for a in model.alphas]})
    for n in INPUTS:
        g.add(TensorRec(n, "input", "rows", elem=4))
    for i, m in enumerate(members):
        _member(g, i, m)
    _vote(g, getattr(model, "vote", None), len(members))
    g.stage = "import"
    return g


def _vote(g: Graph, vote, members: int) -> None:
    """The ensemble's vote: a `vote` node (every model/vote.py method has a kernel) and its record."""
    from bebert.vector import VOTE_KERNEL_OF

    if vote is None:
        raise CompileError("model: no integer vote (a package without `integer_vote` calibration?)")
    if len(vote.members) != members:
        raise CompileError(f"model: the vote has {len(vote.members)} members, the model {members}")
    device = vote.method in VOTE_KERNEL_OF
    g.meta["vote"] = {"method": vote.method, "on": "device" if device else "host", "record": vote.to_dict()}
    if device:
        g.add(TensorRec("votes", "output", "rows", elem=8))
        g.nodes.append(Node("vote", "vote", {f"acc{i}": f"acc{i}" for i in range(members)}, {"y": "votes"},
                            {"vote": vote}, region="vote", kind="vote"))


def _member(g: Graph, i: int, m) -> None:
    p = f"m{i}"

    def scratch(n: str) -> str:
        g.add(TensorRec(f"{p}.{n}", "scratch", member=i))
        return f"{p}.{n}"

    def node(op: str, n: str, ins: dict, out: str, layer=None, kind="", **attrs) -> str:
        g.nodes.append(Node(op, f"{p}.{n}", ins, {"y": out}, attrs, member=i, layer=layer,
                            region=f"{p}.{kind}" if layer is None else f"{p}.l{layer}.{kind}",
                            kind=kind or n))
        return out

    x = node("embed", "embed", {"ids": "ids", "types": "types"}, scratch("emb"), kind="embed",
             word=getattr(m, "word_binary", None) or m.word, position=m.position, token_type=m.token_type)
    x = node("layernorm", "embed_ln", {"x": x}, scratch("x"), kind="embed", consts=m.embed_ln)
    for li, L in enumerate(m.layers):
        q = f"l{li}"
        lin = lambda n, src, which, kind: node("linear", f"{q}.{n}", {"x": src}, scratch(f"{q}.{n}"),  # noqa: E731
                                               li, kind, lin=which)
        qq = lin("query", x, L.query, "attention")
        kk = lin("key", x, L.key, "attention")
        vv = lin("value", x, L.value, "attention")
        ctx = node("attention", f"{q}.attention", {"q": qq, "k": kk, "v": vv, "mask": "mask"}, scratch(f"{q}.ctx"),
                   li, "attention", heads=L.heads, head_dim=L.head_dim, softmax=L.softmax, probs=L.probs,
                   bi_attention=bool(getattr(L, "bi_attention", False)),
                   q_bits=L.query.layer.out_bits, k_bits=L.key.layer.out_bits, v_bits=L.value.layer.out_bits)
        a = lin("attn_out", ctx, L.attn_out, "attention")
        s = node("add", f"{q}.attn_add", {"a": x, "b": a}, scratch(f"{q}.attn_sum"), li, "attention",
                 consts=L.attn_add)
        x = node("layernorm", f"{q}.attn_ln", {"x": s}, scratch(f"{q}.x_attn"), li, "attention", consts=L.attn_ln)
        f = lin("ffn_in", x, L.ffn_in, "ffn")
        gg = node("gelu", f"{q}.gelu", {"x": f}, scratch(f"{q}.gelu"), li, "ffn", consts=L.gelu)
        o = lin("ffn_out", gg, L.ffn_out, "ffn")
        s = node("add", f"{q}.ffn_add", {"a": x, "b": o}, scratch(f"{q}.ffn_sum"), li, "ffn", consts=L.ffn_add)
        x = node("layernorm", f"{q}.ffn_ln", {"x": s}, scratch(f"{q}.x"), li, "ffn", consts=L.ffn_ln)
    pooled = node("linear", "pooler", {"x": x}, scratch("pooled"), kind="head", lin=m.pooler, first_row=True)
    hid = node("lut", "tanh", {"x": pooled}, scratch("hidden"), kind="head", table=m.tanh_lut)
    acc = f"acc{i}"
    g.add(TensorRec(acc, "output", "rows", elem=8, member=i))
    node("dot", "classifier", {"x": hid}, acc, kind="head", weight=m.cls_codes, bias=m.cls_bias)
    g.meta.setdefault("cls_scale", []).append([float(s) for s in m.cls_scale])
