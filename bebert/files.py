"""Writing results safely: atomic files, valid JSON, output folders that lose nothing.

    atomic_write(path, data)          readers see the old file or the new one, never half
    atomic_path(path)                 the same for a writer that wants a path (savefig, safetensors)
    write_json(path, obj)             atomic, and always valid JSON (see `to_json`)
    to_json(obj)                      JSON text: numpy values as numbers, non-finite floats as null
    claim_output_dir(path, kind, ...) an output folder that is new, empty or already of that kind,
                                      with the files derived from its old contents removed

Every part of the toolkit writes through these (one helper, not one per module). A leaf: it
imports nothing from the rest of bebert.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


class OutputError(OSError):
    """An output folder that holds something else, which writing there would destroy."""


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write `data` (bytes, or text as UTF-8) to `path` through a temporary file and a rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends
    without an error, removed otherwise. Parent folders are created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a result is as readable as any file
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_ready(obj: Any) -> Any:
    """`obj` with numpy scalars and arrays as Python numbers and lists, paths as strings,
    tuples as lists, and NaN / infinity as None: what strict JSON can hold."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    item = getattr(obj, "tolist", None)  # numpy scalars and arrays, without importing numpy
    if callable(item):
        return json_ready(item())
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON text of `obj` (see `json_ready`): never NaN or Infinity, which JSON lacks."""
    return json.dumps(json_ready(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    atomic_write(path, to_json(obj, indent=indent, sort_keys=sort_keys) + "\n")


def check_output_dir(path: str | Path, kind: str, holds: Callable[[Path], bool]) -> Path:
    """Raise `OutputError` (one line) unless `path` is missing, an empty folder, or a folder that
    `holds(path)` says already holds a `kind`; changes nothing (a command checks before working)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p} exists and is not a folder; refusing to write a {kind} there")
    if p.is_dir() and any(p.iterdir()) and not holds(p):
        raise OutputError(f"{p} already holds something that is not a {kind}; refusing to overwrite it "
                          f"(choose another output folder, or empty this one)")
    return p


def claim_output_dir(path: str | Path, kind: str, holds: Callable[[Path], bool], *,
                     stale: Iterable[str] = ()) -> Path:
    """The folder `path`, ready for a `kind` (e.g. "program") to be written into it.

    It is created when missing and taken when empty or when `holds(path)` says it already
    holds a `kind`; then the files matching the glob patterns in `stale` (results derived from
    the old contents, e.g. a program's outputs.npz and plots) are removed, so nothing outdated
    survives the rewrite. Anything else (a file, a trained package, another tool's folder)
    raises `OutputError` with one line: the toolkit never overwrites what it did not write.
    """
    p = check_output_dir(path, kind, holds)
    p.mkdir(parents=True, exist_ok=True)
    for pattern in stale:
        for f in p.glob(pattern):
            if f.is_file() or f.is_symlink():
                f.unlink()
    return p
