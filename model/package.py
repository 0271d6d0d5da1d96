"""The ensemble package: what the compiler reads and what `bebert eval` runs.

A package is a folder:

    manifest.json        format, task, labels, max_seq_len, BertShape, and per member its
                         QuantConfig and AdaBoost alpha; sha256 of weights.safetensors
    weights.safetensors  per member `m<i>.<module>.<tensor>`:
                           1-bit weights / embeddings: `sign` (uint8, np.packbits of w >= 0 along
                             each row, big-endian bit order), `scale` (float32, per row), `cols`
                           2/4/8-bit: `codes` (int8) and `scale`;  full precision: `weight`
                           `bias` of every linear; `step` of every activation quantizer (LSQ)
                           LayerNorm `weight`/`bias`; the classifier `weight`/`bias` (float32)
    tokenizer/           the tokenizer files of the backbone

`load_package` rebuilds every member with frozen (codes, scale) weights, which computes the
same floats as the trained model: logits reload bit-exactly (tests/test_model_package.py).
Anything that does not match raises `PackageError`, one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .binary_linear import ActQuantizer
from .quant_bert import FP, BertShape, QEmbedding, QLinear, QuantBert, QuantConfig

FORMAT = "bebert-ensemble-package"
VERSION = 1


class PackageError(ValueError):
    """A package that is corrupted or does not match what it claims to hold."""


@dataclass
class Package:
    path: Path
    task: str
    labels: list[str] | None
    max_seq_len: int
    shape: BertShape
    members: list[QuantBert]
    alphas: list[float]
    manifest: dict

    @property
    def regression(self) -> bool:
        return self.labels is None

    def tokenizer(self):
        import transformers

        return transformers.AutoTokenizer.from_pretrained(str(self.path / "tokenizer"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and os.replace: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_save_safetensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- export -------------------------------------------------------------------------------------
def _pack_weight(prefix: str, mod, out: dict) -> None:
    codes, scale = mod.codes_and_scale()
    if mod.weight_bits == FP and mod.frozen_scale is None:
        out[f"{prefix}.weight"] = mod.weight.detach().float().clone()
        return
    if mod.weight_bits == 1:
        bits = np.packbits((codes >= 0).numpy(), axis=1)
        out[f"{prefix}.sign"] = torch.from_numpy(bits)
        out[f"{prefix}.cols"] = torch.tensor([codes.shape[1]], dtype=torch.int64)
    else:
        out[f"{prefix}.codes"] = codes.round().to(torch.int8)
    out[f"{prefix}.scale"] = scale.float().clone()


def member_tensors(model: QuantBert, prefix: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, mod in model.named_modules():
        p = f"{prefix}.{name}"
        if isinstance(mod, (QLinear, QEmbedding)):
            _pack_weight(p, mod, out)
            if isinstance(mod, QLinear):
                out[f"{p}.bias"] = mod.bias.detach().float().clone()
        elif isinstance(mod, ActQuantizer):
            out[f"{p}.step"] = mod.step.detach().float().reshape(1).clone()
        elif isinstance(mod, (nn.LayerNorm, nn.Linear)) and not isinstance(mod, QLinear):
            out[f"{p}.weight"] = mod.weight.detach().float().clone()
            out[f"{p}.bias"] = mod.bias.detach().float().clone()
    return out


def export_package(out_dir: str | Path, members: list[QuantBert], alphas: list[float], *, task: str,
                   labels: list[str] | None, max_seq_len: int, tokenizer_dir: str | Path | None = None,
                   extra: dict | None = None) -> Path:
    """Write the package folder (replacing the files it holds); returns its path."""
    if not members or len(members) != len(alphas):
        raise PackageError(f"{len(members)} members and {len(alphas)} alphas: need one alpha per member, at least one")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for i, m in enumerate(members):
        if m.shape != members[0].shape:
            raise PackageError(f"member {i} has shape {m.shape}, member 0 has {members[0].shape}")
        tensors.update(member_tensors(m, f"m{i}"))
    atomic_save_safetensors(tensors, out / "weights.safetensors")
    tok_files = []
    if tokenizer_dir is not None:
        (out / "tokenizer").mkdir(exist_ok=True)
        for f in sorted(Path(tokenizer_dir).iterdir()):
            if f.is_file():
                shutil.copyfile(f, out / "tokenizer" / f.name)
                tok_files.append(f.name)
    manifest = {
        "format": FORMAT, "version": VERSION, "task": task, "labels": labels, "max_seq_len": max_seq_len,
        "shape": members[0].shape.to_dict(),
        "members": [{"quant": m.quant.to_dict(), "alpha": float(a)} for m, a in zip(members, alphas)],
        "weights_sha256": _sha256(out / "weights.safetensors"), "tokenizer": tok_files,
        **(extra or {}),
    }
    atomic_json(out / "manifest.json", manifest)  # written last: a package is complete once it exists
    return out


# -- load ---------------------------------------------------------------------------------------
def _take(t: dict, key: str, used: set) -> torch.Tensor:
    if key not in t:
        raise PackageError(f"package weights lack tensor '{key}'")
    used.add(key)
    return t[key]


def _check(key: str, got: torch.Tensor, want: tuple) -> torch.Tensor:
    if tuple(got.shape) != tuple(want):
        raise PackageError(f"package tensor '{key}' has shape {tuple(got.shape)}, the model expects {tuple(want)}")
    return got


@torch.no_grad()
def _load_member(t: dict, prefix: str, shape: BertShape, quant: QuantConfig, used: set) -> QuantBert:
    model = QuantBert(shape, quant)
    for name, mod in model.named_modules():
        p = f"{prefix}.{name}"
        if isinstance(mod, (QLinear, QEmbedding)):
            rows, cols = mod.weight.shape
            if mod.weight_bits == FP:
                mod.weight.copy_(_check(f"{p}.weight", _take(t, f"{p}.weight", used), (rows, cols)))
            else:
                if mod.weight_bits == 1:
                    ncols = int(_take(t, f"{p}.cols", used).reshape(-1)[0])
                    packed = _take(t, f"{p}.sign", used).numpy()
                    if ncols != cols or packed.shape != (rows, (cols + 7) // 8):
                        raise PackageError(f"package tensor '{p}.sign' has shape {packed.shape} for {ncols} columns, "
                                           f"the model expects ({rows}, {(cols + 7) // 8}) for {cols}")
                    bits = np.unpackbits(packed, axis=1, count=cols).astype(bool)
                    codes = torch.from_numpy(np.where(bits, 1.0, -1.0).astype(np.float32))
                else:
                    codes = _check(f"{p}.codes", _take(t, f"{p}.codes", used), (rows, cols)).float()
                mod.freeze(codes, _check(f"{p}.scale", _take(t, f"{p}.scale", used), (rows,)))
            if isinstance(mod, QLinear):
                mod.bias.copy_(_check(f"{p}.bias", _take(t, f"{p}.bias", used), (rows,)))
        elif isinstance(mod, ActQuantizer):
            mod.step.copy_(_check(f"{p}.step", _take(t, f"{p}.step", used), (1,))[0])
            mod.initialized.fill_(True)
        elif isinstance(mod, (nn.LayerNorm, nn.Linear)) and not isinstance(mod, QLinear):
            mod.weight.copy_(_check(f"{p}.weight", _take(t, f"{p}.weight", used), tuple(mod.weight.shape)))
            mod.bias.copy_(_check(f"{p}.bias", _take(t, f"{p}.bias", used), tuple(mod.bias.shape)))
    return model.eval()


def load_package(path: str | Path) -> Package:
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise PackageError(f"{path} is not an ensemble package (no manifest.json)")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PackageError(f"{mf}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageError(f"{mf}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise PackageError(f"{mf}: package version {manifest.get('version')!r}, this bebert reads version {VERSION}")
    wf = path / "weights.safetensors"
    if not wf.is_file():
        raise PackageError(f"{path}: weights.safetensors is missing")
    if _sha256(wf) != manifest.get("weights_sha256"):
        raise PackageError(f"{wf}: checksum does not match the manifest (corrupted or replaced)")
    try:
        shape = BertShape(**manifest["shape"])
        quants = [QuantConfig(**m["quant"]) for m in manifest["members"]]
        alphas = [float(m["alpha"]) for m in manifest["members"]]
        task, labels, max_len = str(manifest["task"]), manifest["labels"], int(manifest["max_seq_len"])
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{mf}: malformed manifest ({type(e).__name__}: {e})") from None
    if not quants:
        raise PackageError(f"{mf}: the package has no members")
    try:
        tensors = load_file(str(wf))
    except (SafetensorError, OSError) as e:
        raise PackageError(f"{wf}: cannot read safetensors ({e})") from None
    used: set = set()
    members = [_load_member(tensors, f"m{i}", shape, q, used) for i, q in enumerate(quants)]
    extra = sorted(set(tensors) - used)
    if extra:
        raise PackageError(f"{wf}: {len(extra)} tensors the manifest does not describe, e.g. '{extra[0]}'")
    return Package(path, task, labels, max_len, shape, members, alphas, manifest)


# -- inference ----------------------------------------------------------------------------------
@torch.no_grad()
def member_logits(package: Package, batch: dict) -> list[torch.Tensor]:
    return [m(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]) for m in package.members]


class IntegerPathUnavailable(NotImplementedError, ValueError):
    """The integer inference path cannot run this package."""


# The integer path of one member (I-BERT style, model/integer_ops.py for the non-linear kernels):
#   embeddings   integer tables on one grid, summed, integer LayerNorm -> 16-bit residual stream
#   projections  activation codes (requantized to the layer's LSQ step), BinaryLinear.to_integer
#   attention    Q/K/V codes straight from the POST unit, int scores, i-softmax (16-bit) requantized
#                to the probability quantizer's step, int context
#   residuals    integer add then integer LayerNorm; FFN: i-GELU straight into FFN2's input codes
#   pooler       integer linear; tanh and the classifier run on the host in float
# The 16-bit grids of the residual stream (embedding sums, linear outputs, residual sums, LayerNorm
# outputs) are calibrated on the batch itself: max |x| of the float model / (2^15 - 1).
_R_BITS = 16


def _grid(v: torch.Tensor) -> float:
    return max(float(v.detach().abs().max()), 1e-6) / ((1 << (_R_BITS - 1)) - 1)


@torch.no_grad()
def _calibrate(model: QuantBert, batch: dict) -> dict:
    seen: dict = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.LayerNorm, QLinear)):
            def hook(m, inp, out, name=name):
                seen[name] = (_grid(inp[0]), _grid(out))
            hooks.append(mod.register_forward_hook(hook))
    try:
        model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    finally:
        for h in hooks:
            h.remove()
    return seen


def _supports_integer(q: QuantConfig) -> str | None:
    if q.weight_bits != 1 or q.embed_bits == FP:
        return "weights and embeddings must be binary"
    if q.bi_attention or 1 in (q.act_bits, q.attn_bits) or FP in (q.act_bits, q.attn_bits):
        return "activations must be 2..8 bits with softmax attention (BinaryBERT); BiBERT's are not supported"
    return None


def _act_codes(x: torch.Tensor, scale: float, quant) -> torch.Tensor:
    from .integer_ops import requant

    return requant(x, scale, float(quant.step.abs()), quant.bits, quant.signed)


def _linear(layer: QLinear, a: torch.Tensor, out_step: float, out_bits: int, out_signed: bool = True):
    if layer.split:  # TWS: [x, x] @ [w1 | w2]^T
        a = torch.cat([a, a], dim=-1)
    return layer.integer_forward(a, layer.to_integer(out_step, out_bits, out_signed)).to(torch.int64)


@torch.no_grad()
def integer_member_logits(model: QuantBert, batch: dict) -> torch.Tensor:
    """One member's logits on the integer path (float only in tanh and the classifier)."""
    from . import integer_ops as I

    why = _supports_integer(model.quant)
    if why:
        raise IntegerPathUnavailable(f"--integer: {why}")
    model.eval()
    cal = _calibrate(model, batch)
    ids, tt, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    step = lambda q: float(q.step.abs())  # noqa: E731
    emb = model.embeddings
    s_e = cal["embeddings.ln"][0]
    pos = torch.arange(ids.shape[1])[None, :].expand_as(ids)
    e = sum(torch.floor(qe(i) / s_e + 0.5).to(torch.int64) for qe, i in
            ((emb.word, ids), (emb.position, pos), (emb.token_type, tt)))
    s_x = cal["embeddings.ln"][1]
    x, s_x = I.int_layernorm(e, s_e, emb.ln.weight, emb.ln.bias, s_x, _R_BITS, eps=emb.ln.eps, in_bits=20)
    x = x.to(torch.int64)
    keys = mask.bool()[:, None, None, :]
    for li, layer in enumerate(model.layers):
        at, p = layer.attn, f"layers.{li}"
        b, t, h = x.shape
        heads = lambda z: z.view(b, t, at.heads, at.head_dim).transpose(1, 2)  # noqa: E731
        q = heads(_linear(at.query, _act_codes(x, s_x, at.query.act_quant), step(at.q_quant), at.q_quant.bits))
        k = heads(_linear(at.key, _act_codes(x, s_x, at.key.act_quant), step(at.k_quant), at.k_quant.bits))
        v = heads(_linear(at.value, _act_codes(x, s_x, at.value.act_quant), step(at.v_quant), at.v_quant.bits))
        s_scores = step(at.q_quant) * step(at.k_quant) / math.sqrt(at.head_dim)
        probs, s_p16 = I.int_softmax(q @ k.transpose(-2, -1), s_scores, out_bits=16, mask=keys)
        pc = I.requant(probs, s_p16, step(at.p_quant), at.p_quant.bits, signed=False).to(torch.int64)
        ctx = (pc @ v).transpose(1, 2).reshape(b, t, h)
        s_ctx = step(at.p_quant) * step(at.v_quant)
        s_ao = cal[f"{p}.attn_out"][1]
        a = _linear(layer.attn_out, _act_codes(ctx, s_ctx, layer.attn_out.act_quant), s_ao, _R_BITS)
        s_sum = cal[f"{p}.attn_ln"][0]
        r = I.int_add(x, s_x, a, s_ao, s_sum, _R_BITS)[0]
        x, s_x = I.int_layernorm(r, s_sum, layer.attn_ln.weight, layer.attn_ln.bias, cal[f"{p}.attn_ln"][1],
                                 _R_BITS, eps=layer.attn_ln.eps, in_bits=_R_BITS)
        x = x.to(torch.int64)
        s_fi = cal[f"{p}.ffn_in"][1]
        f = _linear(layer.ffn_in, _act_codes(x, s_x, layer.ffn_in.act_quant), s_fi, _R_BITS)
        fo = layer.ffn_out.act_quant
        g = I.int_gelu(f, s_fi, step(fo), fo.bits, fo.signed)[0].to(torch.int64)  # FFN2's input codes
        s_fo = cal[f"{p}.ffn_out"][1]
        f = _linear(layer.ffn_out, g, s_fo, _R_BITS)
        s_sum = cal[f"{p}.ffn_ln"][0]
        r = I.int_add(x, s_x, f, s_fo, s_sum, _R_BITS)[0]
        x, s_x = I.int_layernorm(r, s_sum, layer.ffn_ln.weight, layer.ffn_ln.bias, cal[f"{p}.ffn_ln"][1],
                                 _R_BITS, eps=layer.ffn_ln.eps, in_bits=_R_BITS)
        x = x.to(torch.int64)
    s_pool = cal["pooler"][1]
    pooled = _linear(model.pooler, _act_codes(x[:, 0], s_x, model.pooler.act_quant), s_pool, _R_BITS)
    return model.classifier(torch.tanh(pooled.double() * s_pool).float())


def integer_logits(package: Package, batch: dict, batch_size: int = 64) -> list[torch.Tensor]:
    """Per-member logits on the integer path: BinaryLinear.to_integer for every projection and
    the I-BERT kernels of model/integer_ops.py for softmax, GELU, LayerNorm and residual adds."""
    try:
        from . import integer_ops  # noqa: F401
    except ImportError:
        raise IntegerPathUnavailable("--integer needs model/integer_ops.py (integer softmax, LayerNorm, GELU), "
                                     "which is not in this build") from None
    n = batch["input_ids"].shape[0]
    out = []
    for m in package.members:
        parts = [integer_member_logits(m, {k: v[i:i + batch_size] for k, v in batch.items()})
                 for i in range(0, n, batch_size)]
        out.append(torch.cat(parts))
    return out
