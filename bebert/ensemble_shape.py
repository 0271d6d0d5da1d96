"""The shape of a binary BERT ensemble: what `stats` counts and synthetic models are built from.

    synthetic:PRESET[,members=M][,abits=B][,seq=T][,base=binarybert|bibert][,tws=0|1|half][,labels=L][,vote=V]

Presets (BERT's HF configs): bert-base 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522;
minilm-l6 6 / 384 / 12 / 1536 / 30522 (both 512 positions, seq 128, 3 members, as `bebert
train`); tiny 2 / 64 / 2 / 128 / 1000 (64 positions, seq 16, 2 members) for fast tests.
`base` picks the quantization of the members (BinaryBERT 1-1-4: binary weights and embeddings,
`abits`-bit activations, Q/K/V and attention probabilities; BiBERT 1-1-1 with Bi-Attention);
`tws=1` gives the members TWS-split layers (inputs duplicated, weights [w1 | w2]: twice the
binary weights) with one scale per row; `tws=half` with a scale per half (alpha1 sign(w1) +
alpha2 sign(w2), BinaryBERT's and `bebert train`'s default); `labels` the classifier width (2);
`vote` the ensemble's integer vote (model/vote.py: samme, samme.r, average; mean or median
with labels=1, STS-B's). A `seq` beyond the preset's positions grows the position table with it.

`shape_from_package` reads the same shape from a trained package's manifest.json (no weights
are loaded): `BertShape` under "shape", one `QuantConfig` per member under "members", and
`max_seq_len` as the sequence length; `member_shapes_from_package` one shape per member (a
mixed ensemble: BinaryBERT and BiBERT members, each with its own shape and quantization).

A leaf (pure data, no PyTorch): `bebert.target` parses model targets into these shapes, the
compiler builds synthetic models from them (`compiler/synthetic.py`, which also turns a shape
into the model's `BertShape` / `QuantConfig`) and `compiler/stats.py` counts them. Errors are
`bebert.target.TargetError`, one line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path


class TargetError(ValueError):
    """A model target (spec, package, run or program folder) that cannot be taken; one line."""


FP = 32  # "bits" of an unquantized tensor, as in model/quant_bert.py
BASES = ("binarybert", "bibert", "fp")
PACKAGE_FORMAT = "bebert-ensemble-package"  # model/package.py FORMAT (not imported: that pulls in torch)
SPEC_FORMAT = ("synthetic:PRESET[,members=M][,abits=B][,seq=T][,base=binarybert|bibert][,tws=0|1|half][,labels=L]"
               "[,vote=samme|samme.r|average|mean|median]")
VOTES = ("samme", "samme.r", "average", "mean", "median")   # model/vote.py CLASS_VOTES + SCORE_VOTES
MAX_SEQ = 1 << 16


@dataclass(frozen=True)
class EnsembleShape:
    """Dimensions and bit widths of an ensemble of `members` identically shaped binary BERTs."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    max_position: int = 512
    type_vocab: int = 2
    num_labels: int = 2
    members: int = 3
    weight_bits: int = 1
    embed_bits: int = 1
    act_bits: int = 4
    attn_bits: int = 4  # Q, K, V and attention probabilities
    seq: int = 128
    base: str = "binarybert"
    tws: bool = False  # TWS-split layers: [x, x] @ [w1 | w2]^T
    tws_scales: str = "shared"  # split layers: one scale per row ("shared") or per row and half ("half")
    vote: str = "samme"  # the ensemble's integer vote (model/vote.py)

    def __post_init__(self) -> None:
        def bad(why: str) -> TargetError:
            return TargetError(f"model shape: {why}")

        for f in ("layers", "hidden", "heads", "intermediate", "vocab", "max_position", "type_vocab",
                  "num_labels", "members", "seq"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f"{f} = {v!r} is not a positive integer")
        if self.hidden % self.heads:
            raise bad(f"hidden {self.hidden} is not a multiple of heads {self.heads}")
        if self.seq > self.max_position:
            raise bad(f"seq {self.seq} exceeds max_position {self.max_position}")
        for f in ("weight_bits", "embed_bits", "act_bits", "attn_bits"):
            v = getattr(self, f)
            if v != FP and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 8):
                raise bad(f"{f} = {v!r} not in 1..8 or {FP} (full precision)")
        if self.base not in BASES:
            raise bad(f"base '{self.base}' not one of {', '.join(BASES)}")
        if self.base == "bibert" and self.attn_bits != 1:
            raise bad(f"bibert (Bi-Attention) needs attn_bits = 1, got {self.attn_bits}")
        if self.tws and self.weight_bits != 1:
            raise bad(f"tws (split) layers need weight_bits = 1, got {self.weight_bits}")
        if self.tws_scales not in ("shared", "half"):
            raise bad(f"tws_scales '{self.tws_scales}' not one of shared, half")
        if self.tws_scales == "half" and not self.tws:
            raise bad("tws_scales 'half' needs tws (split) layers")
        if self.vote not in VOTES:
            raise bad(f"vote '{self.vote}' not one of {', '.join(VOTES)}")
        if self.vote in ("mean", "median") and self.num_labels != 1:
            raise bad(f"vote '{self.vote}' (a score, STS-B) needs labels = 1, got {self.num_labels}")

    @property
    def bi_attention(self) -> bool:
        return self.base == "bibert"

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def to_dict(self) -> dict:
        return asdict(self)

    def fp32(self) -> "EnsembleShape":
        """One full-precision BERT of the same dimensions: the reference of the reduction factors."""
        return replace(self, members=1, weight_bits=FP, embed_bits=FP, act_bits=FP, attn_bits=FP, base="fp",
                       tws=False, tws_scales="shared")


PRESETS = {
    "bert-base": EnsembleShape(layers=12, hidden=768, heads=12, intermediate=3072, vocab=30522),
    "minilm-l6": EnsembleShape(layers=6, hidden=384, heads=12, intermediate=1536, vocab=30522),
    "tiny": EnsembleShape(layers=2, hidden=64, heads=2, intermediate=128, vocab=1000, max_position=64,
                          members=2, seq=16),
}
OPTIONS = ("members", "abits", "seq", "base", "tws", "labels", "vote")


def parse_model_spec(spec: str) -> EnsembleShape:
    """'synthetic:bert-base,members=3,abits=4,seq=128' -> EnsembleShape; TargetError if malformed."""
    def bad(why: str) -> TargetError:
        return TargetError(f"model {spec!r}: {why} (expected {SPEC_FORMAT})")

    if not isinstance(spec, str):
        raise TargetError(f"model {spec!r}: not a string (expected {SPEC_FORMAT})")
    kind, sep, rest = spec.strip().partition(":")
    if not sep or kind.strip().lower() != "synthetic":
        raise bad("unknown kind" if sep else "missing 'synthetic:'")
    name, *opts = [p.strip() for p in rest.split(",")]
    if name.lower() not in PRESETS:
        raise bad(f"unknown preset '{name}' (presets: {', '.join(PRESETS)})")
    shape = PRESETS[name.lower()]
    seen: dict[str, str] = {}
    for opt in opts:
        key, eq, val = (s.strip() for s in opt.partition("="))
        key = key.lower()
        if not eq or key not in OPTIONS:
            raise bad(f"unknown option '{opt}' (options: {', '.join(OPTIONS)})")
        if key in seen:
            raise bad(f"option '{key}' given twice")
        seen[key] = val
    ints = {}
    for key in ("members", "abits", "seq", "labels"):
        if key in seen:
            if not seen[key].isdigit() or int(seen[key]) < 1:
                raise bad(f"{key} = {seen[key]!r} is not a positive integer")
            ints[key] = int(seen[key])
    base = seen.get("base", shape.base).lower()
    if base not in ("binarybert", "bibert"):
        raise bad(f"base = {base!r} not one of binarybert, bibert")
    tws = seen.get("tws", "0").lower()
    if tws not in ("0", "1", "false", "true", "half"):
        raise bad(f"tws = {tws!r} not one of 0, 1, half")
    if "members" in ints and ints["members"] > 64:
        raise bad(f"members = {ints['members']} outside 1..64")
    if "seq" in ints and ints["seq"] > MAX_SEQ:
        raise bad(f"seq = {ints['seq']} outside 1..{MAX_SEQ}")
    abits = ints.get("abits", 1 if base == "bibert" else shape.act_bits)
    if not 1 <= abits <= 8:
        raise bad(f"abits = {abits} outside 1..8")
    if base == "bibert" and abits != 1:
        raise bad(f"abits = {abits}: bibert has 1-bit activations")
    seq = ints.get("seq", shape.seq)
    try:
        return replace(shape, members=ints.get("members", shape.members), act_bits=abits, attn_bits=abits,
                       seq=seq, max_position=max(shape.max_position, seq), base=base, tws=tws in ("1", "true", "half"),
                       tws_scales="half" if tws == "half" else "shared",
                       num_labels=ints.get("labels", shape.num_labels), vote=seen.get("vote", shape.vote).lower())
    except TargetError as e:
        raise bad(str(e).removeprefix("model shape: ")) from None


def package_dir(path: Path) -> Path:
    """A package folder, or the `package/` folder of a training run."""
    if (path / "manifest.json").is_file():
        return path
    if (path / "package" / "manifest.json").is_file():
        return path / "package"
    raise TargetError(f"{path}: neither an ensemble package nor a run folder holding package/manifest.json")


def _count(v, what: str) -> int:
    """A manifest integer, strictly: 16.5 or "16" is an error, not 16."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{what} = {v!r} is not an integer")
    return v


def read_package_manifest(path: str | Path) -> tuple[Path, dict]:
    """(package folder, its manifest) of a package or run folder, with the fields a shape is read
    from checked: integers that are integers, max_seq_len within the position table, members."""
    mf = package_dir(Path(path)) / "manifest.json"
    try:
        m = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TargetError(f"{mf}: cannot read the package manifest ({type(e).__name__}: {e})") from None
    if not isinstance(m, dict) or m.get("format") != PACKAGE_FORMAT:
        raise TargetError(f"{mf}: not a {PACKAGE_FORMAT} manifest")
    try:
        s, members = m["shape"], m["members"]
        for k in SHAPE_KEYS:
            if _count(s[k], k) < 1:
                raise ValueError(f"{k} = {s[k]} is not positive")
        seq = _count(m["max_seq_len"], "max_seq_len")
        if not 1 <= seq <= s["max_position"]:
            raise ValueError(f"max_seq_len = {seq} outside 1..{s['max_position']} (the position table)")
        if not isinstance(members, list) or not members or not all(isinstance(q, dict) for q in members):
            raise ValueError("members must be a non-empty list of member tables")
        for q in members:
            dict(q["quant"])
    except (KeyError, TypeError, ValueError) as e:
        raise TargetError(f"{mf}: malformed manifest ({type(e).__name__}: {e})") from None
    return mf.parent, m


SHAPE_KEYS = ("num_layers", "hidden_size", "num_heads", "intermediate_size", "vocab_size", "max_position",
              "type_vocab_size", "num_labels")


def member_shapes_from_package(path: str | Path) -> list[EnsembleShape]:
    """Per member, its EnsembleShape (members = 1) from a package's manifest: the package's
    BertShape or the member's own (a mixed ensemble, manifest version 4), its QuantConfig."""
    pkg, m = read_package_manifest(path)
    mf = pkg / "manifest.json"
    out = []
    for i, rec in enumerate(m["members"]):
        s, q = rec.get("shape", m["shape"]), dict(rec["quant"])
        try:
            dims = dict(layers=s["num_layers"], hidden=s["hidden_size"], heads=s["num_heads"],
                        intermediate=s["intermediate_size"], vocab=s["vocab_size"], max_position=s["max_position"],
                        type_vocab=s["type_vocab_size"], num_labels=s["num_labels"])
            if bool(q.get("bi_attention", False)) != (q.get("base") == "bibert"):
                raise TargetError(f"bi_attention = {q.get('bi_attention')} with base '{q.get('base')}' is not counted")
            bits = {k: _count(q[k], k) for k in ("weight_bits", "embed_bits", "act_bits", "attn_bits")}
            out.append(EnsembleShape(**dims, members=1, **bits, seq=m["max_seq_len"], base=str(q["base"]),
                                     tws=bool(q["split"]),
                                     tws_scales=str(q.get("split_scales", "shared")) if q["split"] else "shared"))
        except (KeyError, TypeError, ValueError) as e:
            why = str(e).removeprefix("model shape: ") if isinstance(e, TargetError) else e
            raise TargetError(f"{mf}: member {i}: {why}") from None
    return out


def shape_from_package(path: str | Path) -> EnsembleShape:
    """The EnsembleShape of a trained package (or run folder) whose members share one shape;
    TargetError, one line, otherwise (`member_shapes_from_package` reads a mixed one)."""
    shapes = member_shapes_from_package(path)
    if any(sh != shapes[0] for sh in shapes):
        raise TargetError(f"{package_dir(Path(path)) / 'manifest.json'}: members are quantized differently; "
                          "one shape needs one quantization for all members (a mixed ensemble: "
                          "member_shapes_from_package)")
    return replace(shapes[0], members=len(shapes))
