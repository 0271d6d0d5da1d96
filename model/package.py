"""The ensemble package: what the compiler reads and what `bebert eval` runs.

A package is a folder:

    manifest.json        format, task, labels, max_seq_len, BertShape (member 0's), and per member
                         its QuantConfig, its BertShape where it differs from member 0's (a mixed
                         ensemble: half-width TWS BinaryBERT beside full-width BiBERT members),
                         AdaBoost alpha and `integer_scales` (the 16-bit grids of
                         the integer path, calibrated once at export; null where the member has
                         no integer path or the package was exported without calibration data);
                         `integer_calibration` (examples, source, headroom); `vote`: the
                         ensemble's combination (method, fixed-point alphas and per member the
                         logit-code constants, model/vote.py; null without an integer path);
                         sha256 of weights.safetensors
    weights.safetensors  per member `m<i>.<module>.<tensor>`:
                           1-bit weights / embeddings: `sign` (uint8, np.packbits of w >= 0 along
                             each row, big-endian bit order), `scale` (float32, per row), `cols`;
                             a split layer with a scale per half (BinaryBERT TWS) has `scale` for
                             the first half of the row and `scale_hi` for the second
                           2/4/8-bit: `codes` (int8) and `scale`;  full precision: `weight`
                           `bias` of every linear; `step` of every activation quantizer (LSQ)
                           LayerNorm `weight`/`bias`; the classifier `weight`/`bias` (float32)
    tokenizer/           the tokenizer files of the backbone

`load_package` rebuilds every member with frozen (codes, scale) weights, which computes the
same floats as the trained model: logits reload bit-exactly (tests/test_model_package.py).
Anything that does not match raises `PackageError`, one line. The integer path a package fixes
(`integer_model`, `integer_predictions`, ...) is model/integer_path.py; its names are also
reachable from this module.
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
VERSION = 3  # 3: per-half split scales, head_size, the vote record; 2: integer_scales at export
MIXED_VERSION = 4  # written only when a member has its own shape (a mixed ensemble)
READS = (2, 3, 4)  # a version-2 package is read as: shared split scales, the "average" vote


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
    integer_scales: list[dict | None] | None = None  # per member {module: (in_grid, out_grid)}
    vote: str = "samme"  # how the members combine (model/ensemble.py VOTES / REGRESSION_VOTES)

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
    if scale.dim() == 2:  # a scale per half of a split row
        out[f"{prefix}.scale"] = scale[:, 0].float().clone()
        out[f"{prefix}.scale_hi"] = scale[:, 1].float().clone()
    else:
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
                   extra: dict | None = None, calibration: dict | None = None,
                   calibration_source: str = "given batch", vote: str | None = None,
                   fixed_grids: list | None = None) -> Path:
    """Write the package folder (replacing the files it holds); returns its path.

    `calibration` (input_ids, token_type_ids, attention_mask): the fixed examples the integer
    path's 16-bit grids are calibrated on, once, here; they are stored in the manifest and the
    integer path reads them from there. Without it the package has no integer path.
    `vote`: how the members combine (default "samme", "mean" for regression); with an integer
    path its fixed-point record is stored too. `fixed_grids` (per member, grids or None): a member's
    grids fixed already (its integer stage trained on them, model/integer_training.py); the
    others are calibrated."""
    if not members or len(members) != len(alphas):
        raise PackageError(f"{len(members)} members and {len(alphas)} alphas: need one alpha per member, at least one")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for i, m in enumerate(members):
        if (m.shape.vocab_size, m.shape.num_labels, m.shape.max_position) != \
                (members[0].shape.vocab_size, members[0].shape.num_labels, members[0].shape.max_position):
            raise PackageError(f"member {i} has vocabulary / labels / positions {m.shape.vocab_size} / "
                               f"{m.shape.num_labels} / {m.shape.max_position}, member 0 "
                               f"{members[0].shape.vocab_size} / {members[0].shape.num_labels} / "
                               f"{members[0].shape.max_position}: not one ensemble")
        tensors.update(member_tensors(m, f"m{i}"))
    from .ensemble import REGRESSION_VOTES, VOTES
    from .integer_path import _R_BITS, CAL_HEADROOM, _acc_bound, _head, _supports_integer, calibrate_scales

    vote = vote or ("mean" if labels is None else "samme")
    if vote not in (REGRESSION_VOTES if labels is None else VOTES):
        raise PackageError(f"vote '{vote}' does not apply to a {'regression' if labels is None else 'class'} task")
    fixed = list(fixed_grids) if fixed_grids is not None else [None] * len(members)
    if len(fixed) != len(members):
        raise PackageError(f"{len(fixed)} grids for {len(members)} members")
    scales = [None] * len(members)
    cal_info = None
    if calibration is not None:
        n_cal = int(calibration["input_ids"].shape[0])
        if n_cal < 1:
            raise PackageError("calibration set is empty")
        cal_info = {"examples": n_cal, "source": str(calibration_source), "headroom": CAL_HEADROOM,
                    "bits": _R_BITS}
        scales = [None if _supports_integer(m.quant) else (fx if fx is not None else calibrate_scales(m, calibration))
                  for m, fx in zip(members, fixed)]
        if any(fx is not None for fx in fixed):
            cal_info["trained_on"] = [fx is not None for fx in fixed]   # grids kept from an integer stage
    atomic_save_safetensors(tensors, out / "weights.safetensors")
    tok_files = []
    if tokenizer_dir is not None:
        (out / "tokenizer").mkdir(exist_ok=True)
        for f in sorted(Path(tokenizer_dir).iterdir()):
            if f.is_file():
                shutil.copyfile(f, out / "tokenizer" / f.name)
                tok_files.append(f.name)
    vote_rec = None
    if all(sc is not None for sc in scales):
        heads = [_head(m.classifier, sc["pooler"][1]) for m, sc in zip(members, scales)]
        from .vote import prepare_vote

        vote_rec = prepare_vote(vote, alphas, [h["cls_scale"] for h in heads],
                                  [_acc_bound(h) for h in heads]).to_dict()
    manifest = {
        "format": FORMAT,
        "version": MIXED_VERSION if any(m.shape != members[0].shape for m in members) else VERSION, "task": task, "labels": labels, "max_seq_len": max_seq_len,
        "shape": members[0].shape.to_dict(),
        "members": [{"quant": m.quant.to_dict(), "alpha": float(a), "integer_scales": sc,
                     **({"shape": m.shape.to_dict()} if m.shape != members[0].shape else {})}
                    for m, a, sc in zip(members, alphas, scales)],
        "integer_calibration": cal_info, "vote": vote, "integer_vote": vote_rec,
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
                scale = _check(f"{p}.scale", _take(t, f"{p}.scale", used), (rows,))
                if mod._halves() == 2:
                    hi = _check(f"{p}.scale_hi", _take(t, f"{p}.scale_hi", used), (rows,))
                    scale = torch.stack([scale, hi], dim=1)
                mod.freeze(codes, scale)
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
    if manifest.get("version") not in READS:
        raise PackageError(f"{mf}: package version {manifest.get('version')!r}, this bebert reads versions "
                           f"{', '.join(map(str, READS))}")
    wf = path / "weights.safetensors"
    if not wf.is_file():
        raise PackageError(f"{path}: weights.safetensors is missing")
    if _sha256(wf) != manifest.get("weights_sha256"):
        raise PackageError(f"{wf}: checksum does not match the manifest (corrupted or replaced)")
    try:
        shape = BertShape(**manifest["shape"])
        quants = [QuantConfig(**m["quant"]) for m in manifest["members"]]
        shapes = [BertShape(**m["shape"]) if "shape" in m else shape for m in manifest["members"]]
        alphas = [float(m["alpha"]) for m in manifest["members"]]
        task, labels, max_len = str(manifest["task"]), manifest["labels"], int(manifest["max_seq_len"])
        # version 2 predates the vote record: it combined by probability averaging (score mean)
        vote = str(manifest.get("vote") or ("average" if labels is not None else "mean"))
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{mf}: malformed manifest ({type(e).__name__}: {e})") from None
    if not quants:
        raise PackageError(f"{mf}: the package has no members")
    int_scales = [_parse_scales(mf, i, m.get("integer_scales")) for i, m in enumerate(manifest["members"])]
    try:
        tensors = load_file(str(wf))
    except (SafetensorError, OSError) as e:
        raise PackageError(f"{wf}: cannot read safetensors ({e})") from None
    used: set = set()
    members = [_load_member(tensors, f"m{i}", s, q, used) for i, (s, q) in enumerate(zip(shapes, quants))]
    extra = sorted(set(tensors) - used)
    if extra:
        raise PackageError(f"{wf}: {len(extra)} tensors the manifest does not describe, e.g. '{extra[0]}'")
    return Package(path, task, labels, max_len, shape, members, alphas, manifest, int_scales, vote)


def _parse_scales(mf: Path, i: int, sc) -> dict | None:
    if sc is None:
        return None
    ok = isinstance(sc, dict) and all(
        isinstance(k, str) and isinstance(v, list) and len(v) == 2 and
        all(isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) and g > 0 for g in v)
        for k, v in sc.items())
    if not ok:
        raise PackageError(f"{mf}: member {i} has malformed integer_scales (want {{module: [in_grid, out_grid]}})")
    return {k: (float(v[0]), float(v[1])) for k, v in sc.items()}


# -- inference ----------------------------------------------------------------------------------
@torch.no_grad()
def member_logits(package: Package, batch: dict) -> list[torch.Tensor]:
    return [m(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]) for m in package.members]


# The integer path lives in model/integer_path.py; its names are reachable from here too (the
# compiler, the demo and the benches import them from bebert.model.package).
_INTEGER_PATH = frozenset({"IntegerPathUnavailable", "CAL_HEADROOM", "calibrate_scales", "IntLinear", "IntegerLayer", "IntegerMember", "IntegerModel", "integer_member", "integer_model", "imatmul", "integer_accumulators", "apply_integer_member", "integer_member_accumulators", "integer_predictions", "integer_logits"})


def __getattr__(name: str):
    if name in _INTEGER_PATH:
        from . import integer_path

        return getattr(integer_path, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
