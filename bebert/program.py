"""The program container: what the compiler writes and every back end runs.

A program directory holds three files:

- `program.bin`   the instruction stream, 16 bytes per instruction (see `bebert.isa`);
- `dram.bin`      the initial DRAM image: weights, parameters, inputs, zeroed outputs;
- `manifest.json` format and ISA versions, the accelerator configuration the program
                  was compiled for, the named tensors in the DRAM image (offset, size,
                  shape, layout), free-form metadata, the SHA-256 of both binaries and
                  of the manifest itself (format version 2: an edited manifest -- a
                  config field, a tensor, the metadata -- is detected like a damaged binary).

Files are written atomically (temporary file + rename) with the manifest last, so a
crash leaves either the old program or one whose checksums expose the damage. `write`
refuses a folder that holds anything but a program, and removes what was derived from
the program it replaces (`DERIVED`: outputs.npz, plots). `Program.read` validates
everything -- the files, the manifest, then `bebert.program_check` (accesses in range,
HALT, balanced tokens, the metadata's schema) -- and raises `ProgramError` with one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bebert.config import AccelConfig, ConfigError
from bebert.files import atomic_write, claim_output_dir, json_ready, to_json  # atomic_write: also from here
from bebert.isa import INSTR_BYTES, ISA_VERSION, Instr, IsaError, from_bytes, to_bytes
from bebert.program_check import ProgramError, ProgramRejected, check_program

FORMAT = "bebert-program"
FORMAT_VERSION = 2  # 2: the manifest carries its own SHA-256
PROGRAM_FILE = "program.bin"
DRAM_FILE = "dram.bin"
MANIFEST_FILE = "manifest.json"
ROLES = ("input", "output", "weight", "param", "scratch")
# What the toolkit derives from a program inside its folder (`bebert run`'s outputs, `bebert sim
# --plot`'s figures): removed when a new program is written there, so nothing outdated stays.
DERIVED = ("*.npz", "*.png")
__all__ = ["DERIVED", "FORMAT", "FORMAT_VERSION", "Program", "ProgramError", "ProgramRejected", "Tensor", "atomic_write",
           "is_program_dir"]


@dataclass(frozen=True)
class Tensor:
    """A named region of the DRAM image and how its bytes are laid out."""

    name: str
    role: str
    offset: int
    nbytes: int
    shape: tuple[int, ...] = ()
    layout: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "offset": self.offset, "nbytes": self.nbytes,
                "shape": list(self.shape), "layout": self.layout}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tensor":
        """From the manifest, strictly: names are strings, sizes are integers (not 4.5, not "4")."""
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("role"), str):
            raise ProgramError(f"tensor entry {d!r}: needs a name and a role (strings)")
        shape, layout = d.get("shape", []), d.get("layout", {})
        ints = [d.get("offset"), d.get("nbytes"), *(shape if isinstance(shape, list) else [None])]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints) or not isinstance(layout, dict):
            raise ProgramError(f"tensor '{d['name']}': offset, nbytes and shape must be integers, layout an object")
        return cls(name=d["name"], role=d["role"], offset=d["offset"], nbytes=d["nbytes"], shape=tuple(shape),
                   layout=layout)


@dataclass(frozen=True)
class Program:
    """An instruction stream with the DRAM image it runs on."""

    config: AccelConfig
    instrs: tuple[Instr, ...]
    dram: np.ndarray  # uint8, the initial DRAM image
    tensors: tuple[Tensor, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instrs", tuple(self.instrs))
        object.__setattr__(self, "tensors", tuple(self.tensors))
        dram = np.ascontiguousarray(self.dram, dtype=np.uint8).reshape(-1)
        object.__setattr__(self, "dram", dram)
        self._validate()

    def _validate(self) -> None:
        if self.dram.size % self.config.dram_bytes_per_cycle:
            raise ProgramError(f"DRAM image of {self.dram.size} bytes is not a whole number of "
                               f"{self.config.dram_bytes_per_cycle}-byte bus beats")
        names = set()
        for t in self.tensors:
            if t.name in names:
                raise ProgramError(f"tensor '{t.name}' is declared twice")
            names.add(t.name)
            if t.role not in ROLES:
                raise ProgramError(f"tensor '{t.name}': unknown role '{t.role}'")
            if t.offset < 0 or t.nbytes < 0 or t.offset + t.nbytes > self.dram.size:
                raise ProgramError(f"tensor '{t.name}' [{t.offset}, {t.offset + t.nbytes}) lies "
                                   f"outside the {self.dram.size}-byte DRAM image")

    def tensor(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise ProgramError(f"program has no tensor '{name}'")

    def by_role(self, role: str) -> list[Tensor]:
        return [t for t in self.tensors if t.role == role]

    # -- files ------------------------------------------------------------------------
    def write(self, directory: str | Path) -> Path:
        """Write the three files into `directory` (new, empty or holding a program; see the module doc)."""
        d = claim_program_dir(directory)
        code = to_bytes(list(self.instrs))
        image = self.dram.tobytes()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "isa_version": ISA_VERSION,
            "config": self.config.to_dict(),
            "n_instructions": len(self.instrs),
            "dram_bytes": len(image),
            "sha256": {PROGRAM_FILE: _sha(code), DRAM_FILE: _sha(image)},
            "tensors": [t.to_dict() for t in self.tensors],
            "meta": self.meta,
        }
        manifest = json_ready(manifest)
        manifest["sha256"]["manifest"] = _manifest_sha(manifest)
        atomic_write(d / PROGRAM_FILE, code)
        atomic_write(d / DRAM_FILE, image)
        atomic_write(d / MANIFEST_FILE, to_json(manifest) + "\n")
        return d

    @classmethod
    def read(cls, directory: str | Path, *, check: bool = True) -> "Program":
        """The program in `directory`, validated (`check=False` skips `bebert.program_check`,
        for tools that show a program as it is, such as `bebert disasm`)."""
        d = Path(directory)
        if not d.is_dir():
            raise ProgramError(f"program directory not found: {d}")
        paths = {n: d / n for n in (MANIFEST_FILE, PROGRAM_FILE, DRAM_FILE)}
        for n, p in paths.items():
            if not p.is_file():
                raise ProgramError(f"{d}: missing {n} (not a program directory?)")
        try:
            m = json.loads(paths[MANIFEST_FILE].read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProgramError(f"{paths[MANIFEST_FILE]}: not valid JSON ({e})") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ProgramError(f"{paths[MANIFEST_FILE]}: not a {FORMAT} manifest")
        if m.get("format_version") != FORMAT_VERSION:
            raise ProgramError(f"{d}: program format version {m.get('format_version')} "
                               f"is not supported (expected {FORMAT_VERSION}); recompile it")
        if m.get("isa_version") != ISA_VERSION:
            raise ProgramError(f"{d}: compiled for ISA version {m.get('isa_version')}, "
                               f"this toolkit implements version {ISA_VERSION}; recompile it")
        code = paths[PROGRAM_FILE].read_bytes()
        image = paths[DRAM_FILE].read_bytes()
        try:
            sums = m["sha256"]
            if not isinstance(sums, dict) or sums.get("manifest") != _manifest_sha(m):
                raise ProgramError(f"{paths[MANIFEST_FILE]}: checksum mismatch (the manifest was edited or "
                                   "damaged; recompile the program)")
            if len(code) != int(m["n_instructions"]) * INSTR_BYTES:
                raise ProgramError(f"{paths[PROGRAM_FILE]}: {len(code)} bytes, expected "
                                   f"{int(m['n_instructions']) * INSTR_BYTES} (truncated?)")
            if len(image) != int(m["dram_bytes"]):
                raise ProgramError(f"{paths[DRAM_FILE]}: {len(image)} bytes, expected "
                                   f"{int(m['dram_bytes'])} (truncated?)")
            if _sha(code) != sums[PROGRAM_FILE]:
                raise ProgramError(f"{paths[PROGRAM_FILE]}: checksum mismatch (corrupted)")
            if _sha(image) != sums[DRAM_FILE]:
                raise ProgramError(f"{paths[DRAM_FILE]}: checksum mismatch (corrupted)")
            config = AccelConfig.from_dict(m["config"], source=f"{paths[MANIFEST_FILE]} config")
            instrs = from_bytes(code)
            tensors = tuple(Tensor.from_dict(t) for t in m.get("tensors", []))
            meta = m.get("meta", {})
            program = cls(config=config, instrs=instrs, dram=np.frombuffer(image, dtype=np.uint8).copy(),
                          tensors=tensors, meta=meta)
        except ProgramError as e:
            raise ProgramError(str(e) if str(e).startswith(str(d)) else f"{d}: {e}") from None
        except (ConfigError, IsaError) as e:
            raise ProgramError(f"{d}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise ProgramError(f"{paths[MANIFEST_FILE]}: malformed manifest ({type(e).__name__}: {e})") from None
        if check:
            try:
                check_program(program.config, program.instrs, program.dram, program.tensors, program.meta)
            except ProgramError as e:
                raise type(e)(f"{d}: {e}") from None
        return program


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_sha(manifest: dict) -> str:
    """SHA-256 of the manifest's canonical JSON, its own checksum left out."""
    body = dict(manifest)
    body["sha256"] = {k: v for k, v in manifest.get("sha256", {}).items() if k != "manifest"} \
        if isinstance(manifest.get("sha256"), dict) else manifest.get("sha256")
    return _sha(json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())


def is_program_dir(directory: str | Path) -> bool:
    """Whether `directory` holds a program (its manifest says so; any format version)."""
    mf = Path(directory) / MANIFEST_FILE
    try:
        m = json.loads(mf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(m, dict) and m.get("format") == FORMAT


def claim_program_dir(directory: str | Path) -> Path:
    """`directory` ready for a program: new, empty or holding one (its `DERIVED` files removed);
    `bebert.files.OutputError` (one line) if it holds anything else, such as a trained package."""
    return claim_output_dir(directory, "program", is_program_dir, stale=DERIVED)
