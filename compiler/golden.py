"""The golden executor: runs a program's instructions functionally, in program order.

It is the reference the simulator and the RTL are held to, so it follows
docs/ARCHITECTURE.md literally:

- LOAD / STORE copy whole entries between DRAM and a buffer; an entry's DRAM bytes are
  its little-endian bit string (entry bit i = byte i // 8, bit i % 8), so beats are
  consecutive slices and need no reordering.
- GEMM: for plane p < bits and word j < k, PE (r, c) adds
  (2 popcount(a & s) - popcount(a)) << p, the top plane subtracted when signed, with
  a = row r of ABUF entry a + p*stride + j and s = column c of WBUF entry w + j.
  Accumulators wrap modulo 2^32; init clears them first.
- POST: `bebert.numerics.requantize` of the accumulators with PBUF entry p, written
  as int32 rows to OBUF entries o .. o + pe_rows - 1.
- GEMM mode=1 (AND): the WBUF word is one 0/1 bit-plane of an activation tensor;
  PE (r, c) adds sign * (popcount(a & w) << (p + wshift)), sign = -1 when exactly one of
  (p is the signed top plane, wneg) holds.
- VEC: `bebert.vector.run_vec` (the kernel's reference semantics on the DRAM image).
- SYNC moves tokens only; HALT ends the program.

Buffer or DRAM accesses out of range, or a DRAM address off the bus alignment, raise
`GoldenError` (the hardware would wrap; the compiler never emits them). Tokens do not
change results here; `execute` only counts them: a pop that no push in the whole
program can ever satisfy is an error (a certain deadlock); `run` ignores them. With `strict_tokens=True` every pop
must find a token pushed earlier in program order and all counters must end at 0.

Vectorised: one numpy step per instruction; a GEMM ANDs whole xnor words (viewed as
unsigned integers) of all planes, words, rows and columns at once and counts bits
with np.bitwise_count.
"""

from __future__ import annotations

import numpy as np

from bebert.config import AccelConfig
from bebert.isa import BUF_NAMES, COUNTERS, Buf, Instr, Op, disassemble
from bebert.numerics import requantize, wrap_int32
from bebert.program import Program
from bebert.vector import VecError, run_vec

from bebert import layout as lay


class GoldenError(ValueError):
    """A program the golden executor refuses: an out-of-range access or a hopeless token wait."""


class Machine:
    """Architectural state: DRAM, the four buffers (entries x bytes) and the accumulators."""

    def __init__(self, config: AccelConfig, dram: np.ndarray):
        self.config = config
        self.dram = np.array(dram, dtype=np.uint8).reshape(-1)
        self.buf = {b: np.zeros((config.entries(b), config.entry_bytes(b)), np.uint8)
                    for b in ("abuf", "wbuf", "pbuf", "obuf")}
        self.acc = np.zeros((config.pe_rows, config.pe_cols), np.int64)


def _span(m: Machine, buf: str, first: int, n: int, pc: int, what: str) -> slice:
    entries = m.buf[buf].shape[0]
    if first < 0 or first + n > entries:
        raise GoldenError(f"instruction {pc}: {what} reads/writes {buf} entries "
                          f"[{first}, {first + n}) but {buf} holds {entries}")
    return slice(first, first + n)


def _dram_span(m: Machine, ins: Instr, nbytes: int, pc: int) -> slice:
    bus = m.config.dram_bytes_per_cycle
    if ins.dram % bus:
        raise GoldenError(f"instruction {pc}: DRAM address 0x{ins.dram:x} is not aligned to "
                          f"the {bus}-byte bus")
    if ins.dram + nbytes > m.dram.size:
        raise GoldenError(f"instruction {pc}: DRAM [0x{ins.dram:x}, 0x{ins.dram + nbytes:x}) lies "
                          f"outside the {m.dram.size}-byte image")
    return slice(ins.dram, ins.dram + nbytes)


def _load(m: Machine, ins: Instr, pc: int) -> None:
    buf = BUF_NAMES[Buf(ins.buf)]
    rows = _span(m, buf, ins.addr, ins.n, pc, "LOAD")
    eb = m.buf[buf].shape[1]
    src = _dram_span(m, ins, ins.n * eb, pc)
    m.buf[buf][rows] = m.dram[src].reshape(ins.n, eb)


def _store(m: Machine, ins: Instr, pc: int) -> None:
    rows = _span(m, "obuf", ins.addr, ins.n, pc, "STORE")
    dst = _dram_span(m, ins, ins.n * m.buf["obuf"].shape[1], pc)
    m.dram[dst] = m.buf["obuf"][rows].reshape(-1)


def _lanes(data: np.ndarray, groups: int, width: int) -> np.ndarray:
    """Entries (..., groups * width / 8) bytes -> (..., groups, lanes) unsigned words."""
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}.get(width, np.uint64)
    lanes = max(width // 64, 1)
    v = np.ascontiguousarray(data).view(np.dtype(dtype).newbyteorder("<"))
    return v.reshape(*data.shape[:-1], groups, lanes)


_BLOCK = 1 << 22  # elements of the (bits, k, R, C, lanes) AND temporary per step


_WEIGHTS: dict[tuple, np.ndarray] = {}


def _plane_weights(bits: int, mode: int, signed: int, wneg: int, wshift: int) -> np.ndarray:
    """Signed significance of each activation plane: 2^p (XNOR: the signed top plane negative;
    AND: times 2^wshift, negative when exactly one of (signed top plane, wneg) holds)."""
    key = (bits, mode, signed, wneg, wshift)
    if key not in _WEIGHTS:
        weight = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
        top = np.zeros(bits, bool)
        top[-1] = bool(signed)
        if mode == 0:
            weight = np.where(top, -weight, weight)
        else:
            weight = np.where(top != bool(wneg), -(weight << wshift), weight << wshift)
        _WEIGHTS[key] = weight
    return _WEIGHTS[key]


def _gemm(m: Machine, ins: Instr, pc: int) -> None:
    cfg = m.config
    R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
    g = ins.args
    bits, k = g["bits"], g["k"]
    idx = g["a"] + g["stride"] * np.arange(bits)[:, None] + np.arange(k)[None, :]  # (bits, k)
    if idx.min() < 0 or idx.max() >= m.buf["abuf"].shape[0]:
        raise GoldenError(f"instruction {pc}: GEMM reads abuf entries up to {int(idx.max())} "
                          f"but abuf holds {m.buf['abuf'].shape[0]}")
    _span(m, "wbuf", g["w"], k, pc, "GEMM")
    a = _lanes(m.buf["abuf"][idx], R, W)  # (bits, k, R, lanes)
    s = _lanes(m.buf["wbuf"][g["w"]:g["w"] + k], C, W)  # (k, C, lanes)
    # XNOR: dot = 2 popcount(a & s) - popcount(a); AND: dot = popcount(a & w); per plane,
    # summed over words and lanes.
    step = max(1, _BLOCK // (bits * R * C * a.shape[-1]))
    if step >= k:
        pc_as = np.bitwise_count(a[:, :, :, None, :] & s[None, :, None, :, :]).sum(axis=(1, 4), dtype=np.int64)
    else:
        pc_as = np.zeros((bits, R, C), np.int64)
        for j in range(0, k, step):
            both = a[:, j:j + step, :, None, :] & s[None, j:j + step, None, :, :]
            pc_as += np.bitwise_count(both).sum(axis=(1, 4), dtype=np.int64)
    if g["mode"] == 0:  # XNOR: the WBUF word holds +-1 signs
        pc_a = np.bitwise_count(a).sum(axis=(1, 3), dtype=np.int64)  # (bits, R)
        dots = 2 * pc_as - pc_a[:, :, None]
    else:  # AND: the WBUF word is one 0/1 plane of significance wshift, negative when wneg
        dots = pc_as
    weight = _plane_weights(bits, g["mode"], g["signed"], g["wneg"], g["wshift"])
    total = (weight @ dots.reshape(bits, R * C)).reshape(R, C)
    base = 0 if g["init"] else m.acc
    m.acc = wrap_int32(base + wrap_int32(total))


def _post(m: Machine, ins: Instr, pc: int) -> None:
    cfg = m.config
    _span(m, "pbuf", ins.p, 1, pc, "POST")
    rows = _span(m, "obuf", ins.o, cfg.pe_rows, pc, "POST")
    params = m.buf["pbuf"][ins.p].view("<i4").reshape(cfg.pe_cols, 2)
    out = requantize(m.acc, params[:, 0], params[:, 1], ins.shift, ins.obits, bool(ins.osigned))
    m.buf["obuf"][rows] = out.astype("<i4").view(np.uint8).reshape(cfg.pe_rows, -1)


def _vec(m: Machine, ins: Instr, pc: int) -> None:
    try:
        run_vec(m.dram, ins.args)
    except VecError as e:
        raise GoldenError(f"instruction {pc} ({disassemble(ins)}): {e}") from None


_EXEC = {Op.LOAD: _load, Op.STORE: _store, Op.GEMM: _gemm, Op.POST: _post, Op.VEC: _vec}


def _check_pops_satisfiable(instrs) -> None:
    pushed = dict.fromkeys(COUNTERS, 0)
    popped = dict.fromkeys(COUNTERS, 0)
    for ins in instrs:
        if ins.op == Op.HALT:
            break
        for c in ins.pops:
            popped[c] += 1
        for c in ins.pushes:
            pushed[c] += 1
    for c in COUNTERS:
        if popped[c] > pushed[c]:
            raise GoldenError(f"program pops {c} {popped[c]} times but pushes it only "
                              f"{pushed[c]} times: some instruction would wait forever")


def run(config: AccelConfig, instrs, dram: np.ndarray, *, strict_tokens: bool = False) -> Machine:
    """Execute `instrs` on a fresh machine over a copy of `dram`; returns the final state.

    Tokens are ignored unless `strict_tokens` (see the module doc); `execute` adds the
    check that no pop is hopeless.
    """
    instrs = list(instrs)
    m = Machine(config, dram)
    level = dict.fromkeys(COUNTERS, 0)
    for pc, ins in enumerate(instrs):
        if ins.op == Op.HALT:
            break
        if strict_tokens:
            for c in ins.pops:
                if level[c] == 0:
                    raise GoldenError(f"instruction {pc} ({disassemble(ins)}) pops {c} before "
                                      "any earlier instruction pushed it")
                level[c] -= 1
            for c in ins.pushes:
                level[c] += 1
        fn = _EXEC.get(ins.op)
        if fn is not None:
            fn(m, ins, pc)
    else:
        raise GoldenError("program has no HALT")
    if strict_tokens and any(level.values()):
        left = ", ".join(f"{c}={v}" for c, v in level.items() if v)
        raise GoldenError(f"unbalanced tokens at HALT: {left}")
    return m


def execute(program: Program, *, strict_tokens: bool = False) -> np.ndarray:
    """Run `program`; returns the final DRAM image (uint8)."""
    _check_pops_satisfiable(program.instrs)
    return run(program.config, program.instrs, program.dram, strict_tokens=strict_tokens).dram


def outputs(program: Program, dram: np.ndarray) -> dict[str, np.ndarray]:
    """Each output tensor of `program`, unpacked from `dram` to its logical shape."""
    dram = np.asarray(dram, np.uint8).reshape(-1)
    res = {}
    for t in program.by_role("output"):
        res[t.name] = lay.unpack(dram[t.offset:t.offset + t.nbytes], t.layout)
    return res
