"""Model targets: what `--model`, `bebert stats TARGET`, a dse workload and `bebert.api.compile` name.

    gemm:M,K,N,ABITS[,OBITS]             GemmTarget       one seeded random binary layer
    synthetic:PRESET[,members=,...]      SyntheticTarget  a seeded synthetic ensemble of that shape
    PATH                                 PackageTarget    a trained package, or a run folder with package/
    PATH (where programs are taken)      ProgramTarget    a compiled program folder (`bebert stats`)

`parse_target(text)` is the one parser of these forms; everything that takes a target (the API,
the command line, the design-space loader, `stats`, the compiler pipeline) calls it and then
dispatches on the type it returns. A malformed target is a `TargetError` with one line.

gemm: M rows of input, K input features, N output features, ABITS activation bits (1..8;
a trailing 'u' as in '4u' makes them unsigned), OBITS output bits (default ABITS; 0 = raw
int32, 1 = sign). The layer is built in float32 with PyTorch before it is quantized, so
M x K, K x N and M x N are each held to MAX_ELEMENTS. synthetic: `bebert.ensemble_shape`
documents the presets and options. A leaf: no PyTorch, nothing from the compiler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Union

from bebert.ensemble_shape import EnsembleShape, TargetError, parse_model_spec, read_package_manifest
from bebert.program import FORMAT as PROGRAM_FORMAT

GEMM_FORMAT = "gemm:M,K,N,ABITS[,OBITS]"
MAX_DIM = 1 << 20
MAX_ELEMENTS = 1 << 26  # per float32 matrix of the layer being built: 256 MiB

__all__ = ["GemmTarget", "PackageTarget", "ProgramTarget", "SyntheticTarget", "Target", "TargetError",
           "parse_target"]


@dataclass(frozen=True)
class GemmTarget:
    """One binary linear layer: y (M x N) = x (M x K) @ sign(W) (K x N), ABITS-bit activations."""

    kind: ClassVar[str] = "gemm"
    text: str
    M: int
    K: int
    N: int
    abits: int
    asigned: bool
    obits: int

    def as_dict(self) -> dict:
        return {"M": self.M, "K": self.K, "N": self.N, "abits": self.abits, "asigned": self.asigned,
                "obits": self.obits}


@dataclass(frozen=True)
class SyntheticTarget:
    """A synthetic ensemble (seeded random weights) of a preset shape."""

    kind: ClassVar[str] = "synthetic"
    text: str
    shape: EnsembleShape

    @property
    def abits(self) -> int:
        return self.shape.act_bits


@dataclass(frozen=True)
class PackageTarget:
    """A trained ensemble package (`path`: the package folder itself, also for a run folder)."""

    kind: ClassVar[str] = "package"
    text: str
    path: Path
    n_members: int
    act_bits: tuple[int, ...]  # the members' activation widths
    max_seq_len: int


@dataclass(frozen=True)
class ProgramTarget:
    """A compiled program folder (its manifest says `bebert-program`)."""

    kind: ClassVar[str] = "program"
    text: str
    path: Path


Target = Union[GemmTarget, SyntheticTarget, PackageTarget, ProgramTarget]
TARGET_TYPES = (GemmTarget, SyntheticTarget, PackageTarget, ProgramTarget)


def parse_target(target: str | Path | Target, *, programs: bool = False) -> Target:
    """The typed target of `target` (a parsed target is returned as it is); `programs` lets a
    compiled program folder through (for `stats`), otherwise it is refused with one line."""
    if isinstance(target, TARGET_TYPES):
        return target
    if not isinstance(target, (str, Path)) or not str(target).strip():
        raise TargetError(f"model target {target!r}: expected '{GEMM_FORMAT}', 'synthetic:PRESET[,...]' "
                          "or a package / run folder")
    text = str(target).strip()
    kind = text.partition(":")[0].strip().lower()
    if kind == "gemm":
        return parse_gemm(text)
    if kind == "synthetic":
        return SyntheticTarget(text, parse_model_spec(text))
    path = Path(text).expanduser()
    if not path.exists():
        folders = "package, run or program folder" if programs else "package or run folder"
        raise TargetError(f"model target {text!r}: not gemm:..., synthetic:... nor an existing {folders}")
    if _is_program(path):
        if not programs:
            raise TargetError(f"model target {text!r} is a compiled program, not a model; "
                              "compile a package, run folder or spec")
        return ProgramTarget(text, path)
    pkg, manifest = read_package_manifest(path)
    bits = tuple(sorted({m["quant"].get("act_bits") for m in manifest["members"]}))
    return PackageTarget(text, pkg.resolve(), n_members=len(manifest["members"]), act_bits=bits,
                         max_seq_len=manifest["max_seq_len"])


def parse_gemm(spec: str | GemmTarget) -> GemmTarget:
    """'gemm:M,K,N,ABITS[,OBITS]' -> GemmTarget; TargetError if malformed or too large to build."""
    def bad(why: str) -> TargetError:
        return TargetError(f"spec {spec!r}: {why} (expected {GEMM_FORMAT})")

    if isinstance(spec, GemmTarget):
        return spec
    if not isinstance(spec, str):
        raise TargetError(f"spec {spec!r}: not a string (expected {GEMM_FORMAT})")
    kind, sep, rest = spec.strip().partition(":")
    if not sep or kind.strip().lower() != "gemm":
        raise bad("unknown kind" if sep else "missing 'gemm:'")
    parts = [p.strip() for p in rest.split(",")]
    if len(parts) not in (4, 5):
        raise bad(f"{len(parts)} fields")
    asigned = True
    if parts[3].lower().endswith("u"):
        parts[3], asigned = parts[3][:-1], False
    vals = []
    for label, p in zip(("M", "K", "N", "ABITS", "OBITS"), parts):
        if not p.isdigit():
            raise bad(f"{label} = {p!r} is not a non-negative integer")
        vals.append(int(p))
    M, K, N, abits = vals[:4]
    obits = vals[4] if len(vals) == 5 else abits
    for label, v in (("M", M), ("K", K), ("N", N)):
        if not 1 <= v <= MAX_DIM:
            raise bad(f"{label} = {v} outside 1..{MAX_DIM}")
    for label, n in (("M x K", M * K), ("K x N", K * N), ("M x N", M * N)):
        if n > MAX_ELEMENTS:
            raise bad(f"{label} = {n:,} elements; at most {MAX_ELEMENTS:,} per matrix (the layer is built "
                      f"in float32)")
    if not 1 <= abits <= 8:
        raise bad(f"ABITS = {abits} outside 1..8")
    if not 0 <= obits <= 8:
        raise bad(f"OBITS = {obits} outside 0..8")
    return GemmTarget(spec.strip(), M, K, N, abits, asigned or abits == 1, obits)


def _is_program(path: Path) -> bool:
    mf = path / "manifest.json"
    if not mf.is_file():
        return False
    try:
        m = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(m, dict) and m.get("format") == PROGRAM_FORMAT
