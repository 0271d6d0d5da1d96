"""The golden executor (ISA v3): runs a program's instructions functionally, in program order.

It is the reference the simulator and the RTL are held to, so it follows docs/ARCHITECTURE.md
literally (program order is a valid sequential execution of a correctly tokened program):

- LOAD copies whole entries from DRAM into ABUF / WBUF / PBUF; an entry's DRAM bytes are its
  little-endian bit string (entry bit i = byte i // 8, bit i % 8).
- GEMM: for weight plane q < wbits, activation plane p < bits and word j < k, PE (r, c) adds
  dot << (p + q), subtracted when exactly one of (signed, p = bits-1) and (wsigned,
  q = wbits-1) holds; dot = 2 popcount(a & s) - popcount(a) (XNOR) or popcount(a & s) (AND),
  a = row r of ABUF entry a + p*stride + j, s = column c of WBUF entry w + q*wstride + j.
  Accumulators wrap modulo 2^32; init makes the first term replace them; snap copies them to
  the output path's snapshot afterwards.
- POSTCFG sets the output path's mode and clears the packer; POST post-processes the snapshot with PBUF entry p
  (`bebert.numerics.requantize`) and writes stream elements, or shifts the codes into the
  packer (normal: one row-word per tile row; transposed: one word per tile column) and, with
  flush, writes the assembled words and clears them.
- VEC: `bebert.vector.run_vec`. SYNC moves tokens only; HALT ends the program.

Buffer or DRAM accesses out of range, a misaligned LOAD, or a word the configuration cannot run
(`bebert.isa.check_config`) raise `GoldenError` (the hardware would wrap; the compiler never
emits them). Tokens do not change results here; `execute` checks that no pop is hopeless, and
with `strict_tokens=True` every pop must find a token pushed earlier in program order and all
counters must end at 0.

Vectorised: one numpy step per instruction; a GEMM ANDs whole xnor words (viewed as unsigned
integers) of all planes, words, rows and columns at once and counts bits with np.bitwise_count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.isa import (BUF_NAMES, COUNTER_NAMES, COUNTERS, Buf, Instr, Op, PostFmt, check_config, disassemble,
                        popped, pushed)
from bebert.numerics import requantize, wrap_int32
from bebert.program import Program
from bebert.vector import VecError, run_vec


class GoldenError(ValueError):
    """A program the golden executor refuses: an out-of-range access or a hopeless token wait."""


@dataclass
class OutputMode:
    """The output path's registers, set by POSTCFG."""

    fmt: int = 0
    elem: int = 0
    shift: int = 0
    obits: int = 0
    osigned: int = 0
    pitch: int = 0
    gstride: int = 0
    group: int = 1
    pm1: int = 0


class Machine:
    """Architectural state: DRAM, the three buffers, the accumulators, the snapshot, the output
    path's mode and packer."""

    def __init__(self, config: AccelConfig, dram: np.ndarray):
        self.config = config
        self.dram = np.array(dram, dtype=np.uint8).reshape(-1)
        self.buf = {b: np.zeros((config.entries(b), config.entry_bytes(b)), np.uint8)
                    for b in ("abuf", "wbuf", "pbuf")}
        R, C, W = config.pe_rows, config.pe_cols, config.xnor_width
        self.acc = np.zeros((R, C), np.int64)
        self.snap = np.zeros((R, C), np.int64)
        self.mode = OutputMode()
        # packer: (planes, words, W) bits; normal mode uses words = R, transposed words = C
        self.packer = np.zeros((8, max(R, C), W), np.uint8)


def _span(m: Machine, buf: str, first: int, n: int, pc: int, what: str) -> slice:
    entries = m.buf[buf].shape[0]
    if first < 0 or first + n > entries:
        raise GoldenError(f"instruction {pc}: {what} reads/writes {buf} entries "
                          f"[{first}, {first + n}) but {buf} holds {entries}")
    return slice(first, first + n)


def _dram_check(m: Machine, lo: int, hi: int, pc: int) -> None:
    if lo < 0 or hi > m.dram.size:
        raise GoldenError(f"instruction {pc}: DRAM [0x{lo:x}, 0x{hi:x}) lies outside the {m.dram.size}-byte image")


def _load(m: Machine, ins: Instr, pc: int) -> None:
    buf = BUF_NAMES[Buf(ins.buf)]
    rows = _span(m, buf, ins.addr, ins.n, pc, "LOAD")
    eb = m.buf[buf].shape[1]
    bus = m.config.dram_bytes_per_cycle
    if ins.dram % bus:
        raise GoldenError(f"instruction {pc}: DRAM address 0x{ins.dram:x} is not aligned to the {bus}-byte bus")
    _dram_check(m, ins.dram, ins.dram + ins.n * eb, pc)
    m.buf[buf][rows] = m.dram[ins.dram:ins.dram + ins.n * eb].reshape(ins.n, eb)


def _lanes(data: np.ndarray, groups: int, width: int) -> np.ndarray:
    """Entries (..., groups * width / 8) bytes -> (..., groups, lanes) unsigned words."""
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}.get(width, np.uint64)
    lanes = max(width // 64, 1)
    v = np.ascontiguousarray(data).view(np.dtype(dtype).newbyteorder("<"))
    return v.reshape(*data.shape[:-1], groups, lanes)


_BLOCK = 1 << 22  # elements of the (bits, k, R, C, lanes) AND temporary per step


def _popcounts(a: np.ndarray, s: np.ndarray, R: int, C: int) -> np.ndarray:
    """sum over words and lanes of popcount(a & s): a (bits, k, R, lanes), s (k, C, lanes) -> (bits, R, C)."""
    bits, k = a.shape[:2]
    step = max(1, _BLOCK // (bits * R * C * a.shape[-1]))
    out = np.zeros((bits, R, C), np.int64)
    for j in range(0, k, step):
        both = a[:, j:j + step, :, None, :] & s[None, j:j + step, None, :, :]
        out += np.bitwise_count(both).sum(axis=(1, 4), dtype=np.int64)
    return out


def _gemm(m: Machine, ins: Instr, pc: int) -> None:
    cfg = m.config
    R, C, W = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width
    g = ins.args
    bits, wbits, k = g["bits"], g["wbits"], g["k"]
    idx = g["a"] + g["stride"] * np.arange(bits)[:, None] + np.arange(k)[None, :]  # (bits, k)
    if idx.max() >= m.buf["abuf"].shape[0]:
        raise GoldenError(f"instruction {pc}: GEMM reads abuf entries up to {int(idx.max())} "
                          f"but abuf holds {m.buf['abuf'].shape[0]}")
    a = _lanes(m.buf["abuf"][idx], R, W)  # (bits, k, R, lanes)
    pa = np.bitwise_count(a).sum(axis=(1, 3), dtype=np.int64)  # (bits, R)
    total = np.zeros((R, C), np.int64)
    for q in range(wbits):
        w0 = g["w"] + q * g["wstride"]
        _span(m, "wbuf", w0, k, pc, "GEMM")
        s = _lanes(m.buf["wbuf"][w0:w0 + k], C, W)  # (k, C, lanes)
        pas = _popcounts(a, s, R, C)
        dots = 2 * pas - pa[:, :, None] if g["mode"] == 0 else pas
        for p in range(bits):
            neg = (bool(g["signed"]) and p == bits - 1) != (bool(g["wsigned"]) and q == wbits - 1)
            term = dots[p] << (p + q)
            total = total - term if neg else total + term
    base = 0 if g["init"] else m.acc
    m.acc = wrap_int32(base + wrap_int32(total))
    if g["snap"]:
        m.snap = m.acc.copy()


def _postcfg(m: Machine, ins: Instr, pc: int) -> None:
    m.mode = OutputMode(**{k: ins.args[k] for k in OutputMode.__dataclass_fields__})
    m.packer[:] = 0  # a word the POSTs before left unflushed is dropped


def stream_elem_signed(mode: OutputMode) -> bool:
    """Whether the output path's stream elements are two's complement (else unsigned)."""
    return mode.obits in (0, 1) or bool(mode.osigned)


def _post(m: Machine, ins: Instr, pc: int) -> None:
    cfg, md = m.config, m.mode
    R, C, W, T = cfg.pe_rows, cfg.pe_cols, cfg.xnor_width, cfg.vec_lanes
    _span(m, "pbuf", ins.p, 1, pc, "POST")
    params = m.buf["pbuf"][ins.p].view("<i4").reshape(C, 2)
    planes = 0 if md.fmt == PostFmt.STREAM else md.obits
    obits = md.obits if md.fmt == PostFmt.STREAM else (1 if md.pm1 else md.obits)
    out = requantize(m.snap, params[:, 0], params[:, 1], md.shift, obits, bool(md.osigned))
    rows, cols = ins.rows, ins.cols
    if md.fmt == PostFmt.STREAM:
        e = 1 << md.elem
        t = min(T, R)
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        addr = ins.dram + (r // t) * md.pitch + c * T * e + (r % t) * e
        _dram_check(m, int(addr.min()), int(addr.max()) + e, pc)
        dt = np.dtype(f"<{'i' if stream_elem_signed(md) else 'u'}{e}")
        info = np.iinfo(dt)
        vals = np.clip(out[:rows, :cols], info.min, info.max).astype(dt)
        m.dram[addr[..., None] + np.arange(e)] = vals.reshape(rows, cols, 1).view(np.uint8).reshape(rows, cols, e)
        return
    if ins.pos + cols > W:
        raise GoldenError(f"instruction {pc}: POST pos={ins.pos} + cols={cols} pass the {W}-bit word")
    codes = np.where(out >= 0, 1, 0) if md.pm1 else out  # pm1: +-1 stored as (x + 1) / 2
    bitsv = (codes[None] >> np.arange(planes)[:, None, None]) & 1  # (planes, R, C)
    pk = m.packer
    if md.fmt == PostFmt.PACKED:
        bitsv[:, rows:, :] = 0
        for c in range(cols):  # shift each valid column in at the top of every row's word
            pk[:planes, :R, :-1] = pk[:planes, :R, 1:]
            pk[:planes, :R, -1] = bitsv[:, :, c]
        nwords = R
    else:  # transposed: column c's R bits shift in together at the top of column c's word
        bitsv[:, rows:, :] = 0
        pk[:planes, :C, :W - R] = pk[:planes, :C, R:].copy()
        pk[:planes, :C, W - R:] = bitsv.transpose(0, 2, 1)
        nwords = C
    if ins.flush:
        gg = min(md.group, nwords)
        i = np.arange(nwords)
        offs = (i // gg) * md.gstride + (i % gg) * (W // 8)
        data = lay._pack_bits(pk[:planes, :nwords])  # (planes, nwords, W / 8)
        for p in range(planes):
            addr = ins.dram + p * md.pitch + offs
            _dram_check(m, int(addr.min()), int(addr.max()) + W // 8, pc)
            m.dram[addr[:, None] + np.arange(W // 8)] = data[p]
        pk[:] = 0


def _vec(m: Machine, ins: Instr, pc: int) -> None:
    try:
        run_vec(m.dram, ins.args, m.config)
    except VecError as e:
        raise GoldenError(f"instruction {pc} ({disassemble(ins)}): {e}") from None


_EXEC = {Op.LOAD: _load, Op.GEMM: _gemm, Op.POSTCFG: _postcfg, Op.POST: _post, Op.VEC: _vec}


def _check_pops_satisfiable(instrs) -> None:
    pushes = [0] * len(COUNTERS)
    pops = [0] * len(COUNTERS)
    for ins in instrs:
        if ins.op == Op.HALT:
            break
        for c in popped(ins):
            pops[c] += 1
        for c in pushed(ins):
            pushes[c] += 1
    for c, name in enumerate(COUNTER_NAMES):
        if pops[c] > pushes[c]:
            raise GoldenError(f"program pops {name} {pops[c]} times but pushes it only "
                              f"{pushes[c]} times: some instruction would wait forever")


def run(config: AccelConfig, instrs, dram: np.ndarray, *, strict_tokens: bool = False) -> Machine:
    """Execute `instrs` on a fresh machine over a copy of `dram`; returns the final state.

    Tokens are ignored unless `strict_tokens` (see the module doc); `execute` adds the check
    that no pop is hopeless."""
    instrs = list(instrs)
    m = Machine(config, dram)
    level = [0] * len(COUNTERS)
    for pc, ins in enumerate(instrs):
        if ins.op == Op.HALT:
            break
        why = check_config(ins, config)
        if why:
            raise GoldenError(f"instruction {pc}: {why}")
        if strict_tokens:
            for c in popped(ins):
                if level[c] == 0:
                    raise GoldenError(f"instruction {pc} ({disassemble(ins)}) pops {COUNTER_NAMES[c]} before "
                                      "any earlier instruction pushed it")
                level[c] -= 1
            for c in pushed(ins):
                level[c] += 1
        fn = _EXEC.get(ins.op)
        if fn is not None:
            fn(m, ins, pc)
    else:
        raise GoldenError("program has no HALT")
    if strict_tokens and any(level):
        left = ", ".join(f"{COUNTER_NAMES[c]}={v}" for c, v in enumerate(level) if v)
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
