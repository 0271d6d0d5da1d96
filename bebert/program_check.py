"""Program validation: what must hold of a program before any back end runs it.

`Program.read` calls `check_program` on every program it reads, so `bebert run`, `sim` and
`verify` (and the API on a program folder) refuse the same programs with the same line:

- the manifest's metadata: an object, and for a whole-model program (kind "model") or a
  layer (kind "gemm") the fields their hosts read, of the right types and consistent with the
  tensors (one output per member, the inputs, one alpha and one scale row per member);
- every access in range: LOAD / GEMM / POST buffer entries inside the configuration's
  buffers, LOAD DRAM bytes inside the image and bus-aligned, POST's writes inside the image (by
  the output mode of the POSTCFG before it), VEC descriptors inside the image (the hardware would wrap a buffer address; the golden executor refuses, so do we);
- HALT, once, last, and the dependency tokens: the stream finishes on the machine with its
  queue depth and leaves every counter at zero (`bebert.tokens.check_tokens`, which reads the
  ISA's token table; nothing here names a stage or a counter).

The manifest's own checksum (`bebert.program`) catches edits; these checks catch programs
that were built wrong. A leaf; a violation is a `ProgramError` with one line.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bebert.config import AccelConfig
from bebert.isa import BUF_NAMES, Buf, Instr, Op, PostFmt, check_config, disassemble
from bebert.tokens import TokenError, check_tokens
from bebert.vector import VecError, decode_desc


class ProgramError(ValueError):
    """A program directory that is missing, truncated, corrupted or inconsistent."""


class ProgramRejected(ProgramError):
    """A program that reads fine but cannot run: an access out of range, no HALT, a deadlock,
    tokens left over. The command line exits 1 (the program fails), not 2 (unreadable input)."""


def check_program(config: AccelConfig, instrs, dram: np.ndarray, tensors, meta: Any) -> None:
    """Every check above, cheapest first; `ProgramError` (one line) on the first violation."""
    check_meta(meta, {t.name: t.role for t in tensors})
    check_accesses(config, instrs, dram)
    try:
        check_tokens(instrs, config.queue_depth)
    except TokenError as e:
        raise ProgramRejected(str(e)) from None


# -- metadata -------------------------------------------------------------------------------
def _is_int(v: Any, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_meta(meta: Any, roles: dict[str, str]) -> None:
    """The metadata's schema for the kinds of program whose hosts read it (`roles`: tensor -> role)."""
    if not isinstance(meta, dict):
        raise ProgramError(f"manifest meta must be an object, got {type(meta).__name__}")
    kind = meta.get("kind")
    if kind == "model":
        _check_model_meta(meta, roles)
    elif kind == "gemm":
        for k in ("M", "K", "N", "in_bits"):
            if not _is_int(meta.get(k), 1):
                raise ProgramError(f"gemm program: meta '{k}' must be a positive integer, got {meta.get(k)!r}")
        out = meta.get("output")
        if not isinstance(out, str) or roles.get(out) != "output":
            raise ProgramError(f"gemm program: meta 'output' {out!r} names no output tensor")


def _check_model_meta(meta: dict, roles: dict[str, str]) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ProgramError(f"model program: meta {what}")

    n = meta.get("members")
    need(_is_int(n, 1), f"'members' must be a positive integer, got {n!r}")
    need(_is_int(meta.get("seq"), 1), f"'seq' must be a positive integer, got {meta.get('seq')!r}")
    alphas = meta.get("alphas")
    need(isinstance(alphas, list) and len(alphas) == n and all(_is_real(a) for a in alphas),
         f"'alphas' must be {n} finite numbers (one per member), got {alphas!r}")
    scales = meta.get("cls_scale")
    need(isinstance(scales, list) and len(scales) == n
         and all(isinstance(s, list) and s and all(_is_real(x) for x in s) for s in scales),
         f"'cls_scale' must be {n} lists of finite numbers (one per member)")
    vote = meta.get("vote")
    need(vote is None or (isinstance(vote, dict) and vote.get("on") in ("device", "host")
                          and isinstance(vote.get("method"), str) and isinstance(vote.get("record"), dict)),
         f"'vote' must be an object with 'method', 'on' (device / host) and 'record', got {vote!r}")
    outputs = [f"acc{i}" for i in range(n)] + (["votes"] if vote and vote["on"] == "device" else [])
    need(meta.get("outputs") == outputs, f"'outputs' must be {outputs} for {n} members, got {meta.get('outputs')!r}")
    for name in outputs:
        need(roles.get(name) == "output", f"names output '{name}' but the program has no such output tensor")
    for name in meta.get("inputs", ()):
        need(roles.get(name) == "input", f"names input {name!r} but the program has no such input tensor")
    if "regression" in meta:
        need(isinstance(meta["regression"], bool), f"'regression' must be true or false, got {meta['regression']!r}")


# -- accesses -------------------------------------------------------------------------------
def check_accesses(config: AccelConfig, instrs, dram: np.ndarray) -> None:
    """Every buffer entry and DRAM byte each instruction touches lies inside the machine (POST's
    writes by the output mode of the POSTCFG before it, as the OUTPUT stage runs them in order)."""
    entries = {name: config.entries(name) for name in BUF_NAMES.values()}
    entry_bytes = {name: config.entry_bytes(name) for name in BUF_NAMES.values()}
    bus, size = config.dram_bytes_per_cycle, int(dram.size)
    mode = None
    for pc, ins in enumerate(instrs):
        if ins.op == Op.POSTCFG:
            mode = ins.args
        why = check_config(ins, config) or _access_error(ins, config, entries, entry_bytes, bus, size, dram, mode)
        if why:
            raise ProgramRejected(f"instruction {pc} ({disassemble(ins)}): {why}")


def _post_extent(a: dict, mode: dict, config: AccelConfig) -> tuple[int, int] | None:
    """[first, last byte + 1) a POST writes in DRAM (None: it writes nothing)."""
    R, C, W, T = config.pe_rows, config.pe_cols, config.xnor_width, config.vec_lanes
    if mode["fmt"] == PostFmt.STREAM:
        e, t = 1 << mode["elem"], min(T, R)
        r, c = a["rows"] - 1, a["cols"] - 1
        return a["dram"], a["dram"] + (r // t) * mode["pitch"] + c * T * e + (r % t) * e + e
    if not a["flush"]:
        return None
    words = R if mode["fmt"] == PostFmt.PACKED else C
    g = min(mode["group"], words)
    w = words - 1
    return a["dram"], a["dram"] + (mode["obits"] - 1) * mode["pitch"] + (w // g) * mode["gstride"] + (w % g + 1) * W // 8


def _span(buf: str, first: int, n: int, entries: dict[str, int]) -> str | None:
    if first + n > entries[buf]:
        return f"{buf} entries [{first}, {first + n}) but {buf} holds {entries[buf]}"
    return None


def _access_error(ins: Instr, config, entries, entry_bytes, bus: int, size: int, dram, mode) -> str | None:
    a = ins.args
    if ins.op == Op.LOAD:
        buf = BUF_NAMES[Buf(a["buf"])]
        nbytes = a["n"] * entry_bytes[buf]
        if a["dram"] % bus:
            return f"DRAM address 0x{a['dram']:x} is not aligned to the {bus}-byte bus"
        if a["dram"] + nbytes > size:
            return (_span(buf, a["addr"], a["n"], entries)
                    or f"DRAM [0x{a['dram']:x}, 0x{a['dram'] + nbytes:x}) lies outside the {size}-byte image")
        return _span(buf, a["addr"], a["n"], entries)
    if ins.op == Op.GEMM:
        last = a["a"] + a["stride"] * (a["bits"] - 1) + a["k"]
        if last > entries["abuf"]:
            return f"reads abuf entries up to {last - 1} but abuf holds {entries['abuf']}"
        return _span("wbuf", a["w"] + a["wstride"] * (a["wbits"] - 1), a["k"], entries)
    if ins.op == Op.POST:
        if mode is None:
            return "POST before any POSTCFG: the output path has no mode"
        extent = _post_extent(a, mode, config)
        if extent and extent[1] > size:
            return f"writes DRAM [0x{extent[0]:x}, 0x{extent[1]:x}) outside the {size}-byte image"
        return _span("pbuf", a["p"], 1, entries)
    if ins.op == Op.VEC:
        try:
            decode_desc(dram, a["fn"], a["desc"], a["aux"])
        except VecError as e:
            return str(e)
    return None
