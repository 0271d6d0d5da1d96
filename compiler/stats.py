"""Parameters, bytes and operations of a binary BERT ensemble, and its savings against FP32 BERT.

    stats(EnsembleShape) -> dict            (see CONVENTION for every counting rule)
    stats_for(TARGET) -> dict               TARGET: 'synthetic:...' spec, package or run folder,
                                            or a program folder (its meta 'model', else its gemm:
                                            then `gemm_stats`, keys layer / fp32_layer / reduction)

Counts follow the model exactly as model/quant_bert.py builds it and model/package.py stores it
(tests/test_stats.py checks the parameter counts against an exported package). Operations are per
inference: one sequence of `seq` tokens through every member, then the weighted vote.

FLOPs follow the convention of the binary-BERT papers BEBERT compares with (BiBERT, Qin et al.,
ICLR 2022, after Bi-Real Net, Liu et al., ECCV 2018): a full-precision multiply-accumulate is 2
FLOPs, and a b_w-bit x b_a-bit MAC is b_w * b_a bit-plane MACs of 2 binary operations each (XNOR or
AND, then popcount-accumulate), a binary operation counting as 1/64 FLOP. Counting the matmuls,
as those tables do, BERT-base at 128 tokens is 22.35 GFLOPs (BiBERT, TinyBERT: 22.5G) and a
BinaryBERT 1-1-4 member 1.51 GFLOPs (BiBERT's table: 1.5G): 14.8x, the paper's "15x" -- for one
member. Elementwise work (softmax, LayerNorm, GELU, quantizers) is counted too, separately.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bebert.ensemble_shape import FP, EnsembleShape, member_shapes_from_package
from bebert.target import PackageTarget, ProgramTarget, SyntheticTarget, parse_target

from .errors import CompileError

BINOPS_PER_FLOP = 64
FP_BYTES = 4  # float32: every unquantized parameter (scales, biases, LayerNorm, steps, classifier)
MIB = 1 << 20
# FLOPs per element of the non-matmul work (full precision in every model, binary or not)
ELEMENTWISE = {"layernorm": 8, "gelu": 8, "tanh": 8, "softmax": 5, "score_scale_mask": 2, "bool": 1,
               "bias": 1, "residual": 1, "embedding_sum": 2, "dequant": 1, "act_quant": 3}

CONVENTION = {
    "per_inference": "one sequence of `seq` tokens through every member, then the weighted vote",
    "bytes": "1 bit per binary (1-bit) weight, b bits per b-bit weight, 4 bytes (float32) per other parameter "
             "(per-row weight scales, biases, LayerNorm, activation-quantizer steps, classifier, member alphas); "
             "MiB = 2^20 bytes (the papers' 'MB': BERT-base 109.5M params x 4 B = 418 MiB)",
    "binary_params": "1-bit weight matrices: Q, K, V, attention output, FFN in/out, pooler, and the word, "
                     "position and token-type embeddings when embed_bits = 1; TWS-split layers store [w1 | w2], "
                     "twice the weights",
    "fp_mac": "a full-precision multiply-accumulate = 2 FLOPs",
    "binary_op": "a b_w-bit weight x b_a-bit activation MAC = b_w * b_a bit-plane MACs = 2 * b_w * b_a binary "
                 "operations (XNOR/AND + popcount-accumulate); FLOP-equivalent = binary operations / 64 "
                 "(Bi-Real Net, as BiBERT and BEBERT count): a 1-bit x 1-bit MAC = 1/64 of a full-precision MAC",
    "attention": "scores Q K^T and context P V: seq^2 * hidden MACs each per layer, at attn_bits x attn_bits "
                 "(BiBERT: 1-bit bool(scores) x 1-bit V); full precision in FP32 BERT",
    "elementwise": "full-precision FLOPs per element: " + ", ".join(f"{k} {v}" for k, v in ELEMENTWISE.items())
                   + " (act_quant and dequant exist only in quantized models)",
    "head": "pooler on the [CLS] token only (quantized like the encoder), tanh, full-precision classifier",
    "reference": "FP32 BERT = one full-precision model of the same dimensions and seq (no TWS split), as the "
                 "paper compares the ensemble with one BERT-base",
}

PAPER = {
    "claims": {"size_reduction": 13, "flops_reduction": 15,
               "source": "Tian et al., BEBERT, ICASSP 2023 (arXiv 2210.15976), abstract: 'saving 15x and 13x in "
                         "FLOPs and model size'"},
    "figures": {
        "bert_base_fp32": {"size_mb": 418, "gflops": 22.5, "seq": 128},
        "binarybert_1_1_4": {"size_mb": 16.5, "gflops": 1.5},
        "bebert_1_1_4": {"size_mb": 33, "members_implied": 2},
        "sources": "BEBERT 1-1-4 = 33 MB next to BERT-base 418 MB and BinaryBERT 1-1-4 16.5 MB: BEBERT's comparison "
                   "table (as reproduced in Table 5.6 of a survey book on binary networks); 418/33 = 12.7 ('13x'), "
                   "so 2 members. 22.5 GFLOPs for BERT-base and 1.5 GFLOPs for BinaryBERT 1-1-4 at 128 tokens: BiBERT "
                   "(Qin et al., ICLR 2022) Table 1, consistent with its abstract's 56.3x = 22.5/0.4 and 31.2x = "
                   "418/13.4; 22.5/1.5 = 15 ('15x'). The FLOPs figures were not re-read verbatim here: the count in "
                   "this module reproduces them (22.35G, 1.51G) from the convention.",
    },
}


class _Tally:
    """Running counts of one member's parameters and operations."""

    def __init__(self) -> None:
        self.params = {"binary": 0, "low_bit": 0, "full_precision": 0}
        self.low_bit_bits = 0
        self.binary_macs = 0
        self.fp_macs = 0
        self.parts = {"projections": [0, 0], "attention_matmuls": [0, 0], "head": [0, 0], "elementwise": [0, 0]}
        # parts[name] = [binary operations, full-precision FLOPs]

    def weight(self, rows: int, cols: int, bits: int) -> None:
        if bits == FP:
            self.params["full_precision"] += rows * cols
            return
        if bits == 1:
            self.params["binary"] += rows * cols
        else:
            self.params["low_bit"] += rows * cols
            self.low_bit_bits += rows * cols * bits
        self.params["full_precision"] += rows  # per-row scale

    def fp(self, n: int) -> None:
        self.params["full_precision"] += n

    def matmul(self, part: str, macs: int, wbits: int, abits: int) -> None:
        if FP in (wbits, abits):
            self.fp_macs += macs
            self.parts[part][1] += 2 * macs
        else:
            self.binary_macs += macs
            self.parts[part][0] += 2 * macs * wbits * abits

    def elementwise(self, kind: str, n: int) -> None:
        self.parts["elementwise"][1] += ELEMENTWISE[kind] * n


def _linear(t: _Tally, s: EnsembleShape, part: str, tokens: int, k: int, n: int) -> None:
    """A QLinear k -> n applied to `tokens` rows: weights, bias, scale, activation step, its work."""
    kk = 2 * k if s.tws else k  # TWS: [x, x] @ [w1 | w2]^T
    t.weight(n, kk, s.weight_bits)
    t.fp(n)  # bias
    if s.act_bits != FP:
        t.fp(1)  # LSQ step
        t.elementwise("act_quant", tokens * k)
    t.matmul(part, tokens * n * kk, s.weight_bits, s.act_bits)
    t.elementwise("bias", tokens * n)
    if s.weight_bits != FP or s.act_bits != FP:
        t.elementwise("dequant", tokens * n)


def _member(s: EnsembleShape) -> _Tally:
    t = _Tally()
    T, H, I, nh = s.seq, s.hidden, s.intermediate, s.heads
    # embeddings: three tables, summed, LayerNorm
    for rows in (s.vocab, s.max_position, s.type_vocab):
        t.weight(rows, H, s.embed_bits)
        if s.embed_bits != FP:
            t.elementwise("dequant", T * H)
    t.elementwise("embedding_sum", T * H)
    t.fp(2 * H)
    t.elementwise("layernorm", T * H)
    for _ in range(s.layers):
        for _qkv in range(3):
            _linear(t, s, "projections", T, H, H)
        if s.attn_bits != FP:  # q_quant, k_quant, v_quant
            t.fp(3)
            t.elementwise("act_quant", 3 * T * H)
        scores = nh * T * T
        t.matmul("attention_matmuls", T * T * H, s.attn_bits, s.attn_bits)  # Q K^T
        t.elementwise("score_scale_mask", scores)
        if s.bi_attention:
            t.elementwise("bool", scores)
        else:
            t.elementwise("softmax", scores)
            if s.attn_bits != FP:  # p_quant
                t.fp(1)
                t.elementwise("act_quant", scores)
        t.matmul("attention_matmuls", T * T * H, s.attn_bits, s.attn_bits)  # P V
        _linear(t, s, "projections", T, H, H)  # attention output
        t.elementwise("residual", T * H)
        t.fp(2 * H)
        t.elementwise("layernorm", T * H)
        _linear(t, s, "projections", T, H, I)
        t.elementwise("gelu", T * I)
        _linear(t, s, "projections", T, I, H)
        t.elementwise("residual", T * H)
        t.fp(2 * H)
        t.elementwise("layernorm", T * H)
    _linear(t, s, "head", 1, H, H)  # pooler on [CLS]
    t.elementwise("tanh", H)
    t.fp(s.num_labels * H + s.num_labels)  # classifier, full precision
    t.matmul("head", s.num_labels * H, FP, FP)
    t.elementwise("bias", s.num_labels)
    return t


def _summary(t: _Tally, members: int, extra_fp_params: int = 0, extra_flops: int = 0) -> dict:
    params = {k: v * members for k, v in t.params.items()}
    params["full_precision"] += extra_fp_params
    params["total"] = sum(params.values())
    nbytes = {"binary": params["binary"] / 8, "low_bit": t.low_bit_bits * members / 8,
              "full_precision": params["full_precision"] * FP_BYTES}
    nbytes["total"] = sum(nbytes.values())
    binops = sum(b for b, _ in t.parts.values()) * members
    fp_flops = sum(f for _, f in t.parts.values()) * members + extra_flops
    parts = {k: (b / BINOPS_PER_FLOP + f) * members for k, (b, f) in t.parts.items()}
    parts["elementwise"] += extra_flops
    return {
        "params": params,
        "bytes": nbytes,
        "mib": nbytes["total"] / MIB,
        "ops": {"binary_macs": t.binary_macs * members, "binary_ops": binops,
                "fp_macs": t.fp_macs * members, "fp_flops": fp_flops,
                "flops_equivalent": fp_flops + binops / BINOPS_PER_FLOP,
                "matmul_flops_equivalent": sum(v for k, v in parts.items() if k != "elementwise"),
                "flops_equivalent_by_part": parts},
    }


def _explain(s: EnsembleShape, member: dict, ensemble: dict, ref: dict) -> str:
    size1 = ref["bytes"]["total"] / member["bytes"]["total"]
    flops1 = ref["ops"]["flops_equivalent"] / member["ops"]["flops_equivalent"]
    mm1 = ref["ops"]["matmul_flops_equivalent"] / member["ops"]["matmul_flops_equivalent"]
    sizeM = ref["bytes"]["total"] / ensemble["bytes"]["total"]
    flopsM = ref["ops"]["flops_equivalent"] / ensemble["ops"]["flops_equivalent"]
    lines = [f"FP32 BERT of this shape: {ref['mib']:.1f} MiB, {ref['ops']['flops_equivalent'] / 1e9:.2f} GFLOPs "
             f"at seq {s.seq}; one member: {member['mib']:.2f} MiB, "
             f"{member['ops']['flops_equivalent'] / 1e9:.3f} GFLOPs ({size1:.1f}x smaller, {flops1:.1f}x fewer "
             f"FLOPs, {mm1:.1f}x counting matmuls only); the {s.members}-member ensemble: {sizeM:.1f}x smaller, "
             f"{flopsM:.1f}x fewer FLOPs."]
    if (s.layers, s.hidden, s.intermediate, s.vocab) == (12, 768, 3072, 30522):
        lines.append(
            "Paper: 13x size = 418 MB / 33 MB, i.e. two BinaryBERT members of 16.5 MB; 15x FLOPs = 22.5G / 1.5G, "
            "the FLOPs of ONE BinaryBERT counting matmuls only (what the matmul-only figure above reproduces): "
            "an ensemble of M members does M times the work, so by the same count the ensemble saves about 15x / M "
            "(the paper's 15x holds per member, or for latency with the members run in parallel). The full "
            "count adds the full-precision elementwise work (softmax, LayerNorm, GELU, quantize/dequantize), "
            f"which the binary member cannot shrink. Our member is {member['mib']:.1f} MiB against BinaryBERT's "
            "16.5 MB: here the position and token-type embeddings and the pooler are binary too, so 2 members "
            "give ~15x and 3 members ~10x in size.")
        if s.tws:
            lines.append("tws=1: this repo's TWS split keeps full-size ternary layers and doubles them ([w1 | w2]), "
                         "so binary weights and binary operations are twice BinaryBERT's (which splits a "
                         "half-sized ternary model into a full-size binary one).")
        if s.act_bits != 4 or s.base != "binarybert":
            lines.append("The paper's figures are for BinaryBERT 1-1-4 members; this shape differs in bit widths.")
        if s.seq != 128:
            lines.append("The paper's FLOPs are at seq 128.")
    else:
        lines.append("The paper's 13x / 15x are for BERT-base (12 layers, 768 hidden, seq 128); not comparable.")
    return " ".join(lines)


def _ratios(ref: dict, s: dict) -> dict:
    """How many times smaller and cheaper `s` is than the reference `ref` (two `_summary`s)."""
    return {"size": ref["bytes"]["total"] / s["bytes"]["total"],
            "flops": ref["ops"]["flops_equivalent"] / s["ops"]["flops_equivalent"],
            "flops_matmul_only": ref["ops"]["matmul_flops_equivalent"] / s["ops"]["matmul_flops_equivalent"]}


def stats(shape: EnsembleShape) -> dict:
    """Parameters, bytes, binary and full-precision operations of `shape`, and its reductions."""
    t = _member(shape)
    member = _summary(t, 1)
    # the vote: one alpha per member, alpha * logits summed
    ensemble = _summary(t, shape.members, extra_fp_params=shape.members,
                        extra_flops=2 * shape.members * shape.num_labels)
    ref = _summary(_member(shape.fp32()), 1)
    out = {
        "shape": shape.to_dict(),
        "member": member,
        "ensemble": ensemble,
        "fp32_bert": ref,
        # the papers' tables count the matmuls only (elementwise work is < 1% of FP32 BERT's FLOPs)
        "reduction": {**_ratios(ref, ensemble), **{f"{k}_per_member": v for k, v in _ratios(ref, member).items()}},
        "convention": dict(CONVENTION, elementwise_flops_per_element=dict(ELEMENTWISE)),
        "paper": dict(PAPER, explanation=_explain(shape, member, ensemble, ref)),
    }
    return out


def _add(a: dict, b: dict) -> dict:
    return {k: _add(v, b[k]) if isinstance(v, dict) else v + b[k] for k, v in a.items()}


def mixed_stats(shapes: list[EnsembleShape]) -> dict:
    """`stats` of an ensemble whose members differ (BinaryBERT and BiBERT members, each with its
    own shape): every member counted as its own shape, summed; the reference is the FP32 BERT of
    the widest member (the backbone both were trained from)."""
    members = [_summary(_member(sh), 1) for sh in shapes]
    vote = _summary(_Tally(), 1, extra_fp_params=len(shapes), extra_flops=2 * len(shapes) * shapes[0].num_labels)
    ensemble = members[0]
    for m in members[1:] + [vote]:
        ensemble = _add(ensemble, m)
    ensemble["mib"] = ensemble["bytes"]["total"] / MIB
    widest = max(shapes, key=lambda sh: (sh.heads * sh.head_dim, sh.intermediate, not sh.tws))
    ref = _summary(_member(widest.fp32()), 1)
    return {
        "shape": {"mixed": True, "members": [sh.to_dict() for sh in shapes]},
        "members": members,
        "ensemble": ensemble,
        "fp32_bert": ref,
        "reduction": {**_ratios(ref, ensemble),
                      **{f"{k}_per_member": [_ratios(ref, m)[k] for m in members] for k in _ratios(ref, ensemble)}},
        "convention": dict(CONVENTION, elementwise_flops_per_element=dict(ELEMENTWISE)),
    }


def gemm_stats(meta: dict) -> dict:
    """Stats of one compiled binary linear layer (a gemm program's meta: M, K, N, in_bits)."""
    try:
        M, K, N, abits = (int(meta[k]) for k in ("M", "K", "N", "in_bits"))
    except (KeyError, TypeError, ValueError) as e:
        raise CompileError(f"program meta lacks the gemm dimensions ({type(e).__name__}: {e})") from None
    macs = M * K * N
    binops = 2 * macs * abits
    fp_flops = 2 * M * N  # the POST unit: per-channel multiplier and bias
    layer = {"params": {"binary": N * K, "low_bit": 0, "full_precision": 2 * N, "total": N * K + 2 * N},
             "bytes": {"binary": N * K / 8, "low_bit": 0, "full_precision": 2 * N * FP_BYTES,
                       "total": N * K / 8 + 2 * N * FP_BYTES},
             "ops": {"binary_macs": macs, "binary_ops": binops, "fp_macs": 0, "fp_flops": fp_flops,
                     "flops_equivalent": fp_flops + binops / BINOPS_PER_FLOP}}
    ref = {"params": {"full_precision": N * K + N, "total": N * K + N}, "bytes": {"total": (N * K + N) * FP_BYTES},
           "ops": {"fp_macs": macs, "flops_equivalent": 2 * macs + M * N}}
    return {"shape": {"kind": "gemm", "M": M, "K": K, "N": N, "in_bits": abits}, "layer": layer, "fp32_layer": ref,
            "reduction": {"size": ref["bytes"]["total"] / layer["bytes"]["total"],
                          "flops": ref["ops"]["flops_equivalent"] / layer["ops"]["flops_equivalent"]},
            "convention": dict(CONVENTION, layer="weights 1 bit, per-channel multiplier and bias 4 bytes each; "
                                                 "FP32 layer: weights and bias, 2 FLOPs per MAC + bias add")}


def stats_for(target: str) -> dict:
    """`stats` of a 'synthetic:...' spec, a package or run folder, or a program folder."""
    t = parse_target(target, programs=True)
    if isinstance(t, SyntheticTarget):
        return stats(t.shape)
    if isinstance(t, ProgramTarget):
        return _program_stats(t.path)
    if isinstance(t, PackageTarget):
        shapes = member_shapes_from_package(t.path)
        if all(sh == shapes[0] for sh in shapes):
            return stats(replace(shapes[0], members=len(shapes)))
        return mixed_stats(shapes)
    raise CompileError(f"{t.text}: a gemm spec has no model to count; compile it and run `bebert stats` on the "
                       "program folder")


def _program_stats(path: Path) -> dict:
    from bebert.program import Program, ProgramError

    try:
        prog = Program.read(path)
    except ProgramError as e:
        raise CompileError(str(e)) from None
    meta = prog.meta
    if meta.get("kind") == "model":  # a whole-ensemble program: the model's counts + what the program issues
        res = stats_for(meta["model"])
        res["program"] = program_counts(prog)
        return res
    model = meta.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise CompileError(f"{path}: program meta 'model' is {type(model).__name__}, expected a spec or path")
        if ":" not in model and not Path(model).is_absolute() and (path / model).is_dir():
            model = str(path / model)
        return stats_for(model)
    if meta.get("kind") == "gemm":
        return gemm_stats(meta)
    raise CompileError(f"{path}: program meta names no model and is not a gemm program")


def program_counts(prog) -> dict:
    """What a compiled program issues per inference, counted from its instructions (padding of
    partial tiles included: the array computes whole tiles): binary operations of the PE array
    (XNOR and AND mode; 2 per bit-plane MAC, the convention above), vector-unit lane operations,
    DRAM bytes of the image (weights as stored, scratch, descriptors)."""
    from collections import Counter

    from bebert.isa import Op
    from bebert.vector import vec_bytes, vec_elementwise_ops

    cfg = prog.config
    per_gemm = cfg.pe_rows * cfg.pe_cols * cfg.xnor_width
    ops = Counter()
    xnor = and_ = lane = vrd = vwr = 0
    for ins in prog.instrs:
        ops[ins.op.name] += 1
        a = ins.args
        if ins.op == Op.GEMM:
            bit_macs = a["bits"] * a["wbits"] * a["k"] * per_gemm
            if a["mode"]:
                and_ += bit_macs
            else:
                xnor += bit_macs
        elif ins.op == Op.VEC:
            lane += vec_elementwise_ops(a["fn"], a["rows"], a["cols"], a["aux"])
            r, w = vec_bytes(a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], a["io"], cfg)
            vrd, vwr = vrd + r, vwr + w
    weights = sum(t.nbytes for t in prog.tensors if t.role == "weight")
    return {"instructions": len(prog.instrs), "by_opcode": dict(sorted(ops.items())),
            "binary_ops": {"xnor": 2 * xnor, "and": 2 * and_, "total": 2 * (xnor + and_)},
            "flops_equivalent_array": 2 * (xnor + and_) / BINOPS_PER_FLOP,
            "vector_lane_ops": lane, "vector_dram_bytes": {"read": vrd, "write": vwr},
            "dram_image_bytes": int(prog.dram.size), "weight_bytes_packed": weights,
            "scratch_bytes": prog.meta.get("scratch_bytes"),
            "scratch_bytes_without_reuse": prog.meta.get("scratch_bytes_without_reuse"),
            "convention": "counted from the instructions: a GEMM is bits * wbits * k * pe_rows * pe_cols * xnor_width "
                          "bit-plane MACs (whole tiles, padding included), 2 binary operations each; "
                          "weight_bytes_packed = WBUF-layout weight tensors (tile padding included)"}
