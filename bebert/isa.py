"""The bebert instruction set: the single source of truth for encoding and text form.

Every instruction is one 128-bit little-endian word. Bits [7:0] hold the opcode,
bits [11:8] the four dependency-token flags, bits [15:12] are reserved (zero);
the operands of each opcode occupy the fields listed in `FIELDS`.

The machine has three decoupled stages fed in program order by a fetch unit
(the BISMO / VTA arrangement): LOAD (DRAM -> on-chip buffers), COMPUTE (GEMM,
post-processing, sync) and STORE (output buffer -> DRAM). Stages synchronise
through token counters. An instruction may wait for ("pop") a token from its
previous and/or next stage before it starts and send ("push") one to either when
it ends. `TOKEN_FLAGS` is the one table of which flag of which stage pops or pushes
which counter (`COUNTERS`); the flags a stage may carry, the token checker
(`bebert.tokens`), the golden executor, the simulator and the RTL's counters all
derive from it:

    stage     pop_prev        pop_next        push_prev       push_next
    LOAD      (illegal)       c2l             (illegal)       l2c
    COMPUTE   l2c             s2c             c2l             c2s
    STORE     c2s             (illegal)       s2c             (illegal)

Opcode map (room is reserved, documented, for what later versions add):
    0x00        illegal (an all-zero word stops the machine with an error)
    0x01-0x0E   the spine: LOAD, STORE, GEMM, POST, SYNC
    0x0F        HALT
    0x10        VEC: one row-wise vector / special-function kernel over DRAM
                tensors (embedding gather, residual add, requantize, LayerNorm,
                softmax, GELU, bit-plane packing, table lookup, small integer
                dot products, ensemble combination); `bebert.vector` defines
                the kernels, their descriptors and their cycle cost
    0x11-0x2F   reserved: further vector / special-function instructions
    0x30-0xFF   reserved

Version 2 added VEC and GEMM's `mode` / `wneg` / `wshift` (activation x activation
products, bit-serial on both operands: the WBUF operand is one bit-plane of an
activation tensor, AND-popcount instead of XNOR-popcount). A version-1 word decodes
to the same instruction under version 2.

Text form (one instruction per line, `#` starts a comment):
    LOAD wbuf dram=0x1000 addr=0 n=12 @pop_next @push_next
    GEMM a=0 w=0 k=8 stride=8 bits=4 signed=1 init=1 @pop_prev
    POST p=0 o=0 shift=16 obits=8 osigned=1 @push_next
    STORE obuf dram=0x8000 addr=0 n=16 @pop_prev @push_prev
    SYNC @pop_prev @push_prev
    VEC fn=4 desc=0x2000 rows=128 cols=768 @pop_next @push_prev
    HALT
GEMM's mode/wneg/wshift and VEC's bits/aux may be left out (they read 0, and
the disassembler omits them when 0). The disassembler prints exactly this canonical form; `assemble(disassemble(w))`
returns `w` for every legal word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum

ISA_VERSION = 2
INSTR_BITS = 128
INSTR_BYTES = INSTR_BITS // 8


class IsaError(ValueError):
    """An instruction word or text line that is not a legal instruction."""


class Op(IntEnum):
    LOAD = 0x01
    STORE = 0x02
    GEMM = 0x03
    POST = 0x04
    SYNC = 0x05
    HALT = 0x0F
    VEC = 0x10


class Stage(IntEnum):
    LOAD = 0
    COMPUTE = 1
    STORE = 2
    FETCH = 3  # HALT is consumed by the fetch unit itself


# The stages that execute instructions, in pipeline order (FETCH consumes HALT itself).
PIPELINE = (Stage.LOAD, Stage.COMPUTE, Stage.STORE)

STAGE_OF = {
    Op.LOAD: Stage.LOAD,
    Op.STORE: Stage.STORE,
    Op.GEMM: Stage.COMPUTE,
    Op.POST: Stage.COMPUTE,
    Op.SYNC: Stage.COMPUTE,
    Op.VEC: Stage.COMPUTE,
    Op.HALT: Stage.FETCH,
}


class Buf(IntEnum):
    """On-chip buffers, as named in LOAD / STORE operands."""

    ABUF = 0  # activation bit-planes, entry = pe_rows * xnor_width bits
    WBUF = 1  # weight signs, entry = pe_cols * xnor_width bits
    PBUF = 2  # post-processing parameters, entry = pe_cols * (int32 mult, int32 bias)
    OBUF = 3  # outputs, entry = pe_cols * int32


BUF_NAMES = {Buf.ABUF: "abuf", Buf.WBUF: "wbuf", Buf.PBUF: "pbuf", Buf.OBUF: "obuf"}

# Dependency flags, bits 8..11.
FLAG_BITS = {"pop_prev": 8, "pop_next": 9, "push_prev": 10, "push_next": 11}
FLAG_NAMES = tuple(FLAG_BITS)

# Dependency-token counters, in the bit order of the simulator's masks and the RTL's
# counters: l2c = load -> compute, c2l = compute -> load, c2s, s2c likewise.
COUNTERS = ("l2c", "c2l", "c2s", "s2c")

# The token table: per stage, the counter each of its flags pops (pop_*) or pushes (push_*).
# A flag a stage does not list is illegal for it. Every counter has exactly one stage that
# pushes it and one that pops it (tests/test_isa.py), which makes whether a program finishes
# independent of timing (bebert.tokens).
TOKEN_FLAGS: dict[Stage, dict[str, str]] = {
    Stage.LOAD: {"pop_next": "c2l", "push_next": "l2c"},
    Stage.COMPUTE: {"pop_prev": "l2c", "pop_next": "s2c", "push_prev": "c2l", "push_next": "c2s"},
    Stage.STORE: {"pop_prev": "c2s", "push_prev": "s2c"},
    Stage.FETCH: {},
}

# Flags each stage may legally carry (derived from the token table).
LEGAL_FLAGS = {stage: set(flags) for stage, flags in TOKEN_FLAGS.items()}


def token_moves(op: "Op", flags: frozenset[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(counters popped, counters pushed) by an instruction of `op` carrying `flags`."""
    key = (op, flags)
    moves = _MOVES.get(key)
    if moves is None:
        table = TOKEN_FLAGS[STAGE_OF[op]]
        mine = [f for f in FLAG_NAMES if f in flags and f in table]
        moves = _MOVES[key] = (tuple(table[f] for f in mine if f.startswith("pop")),
                               tuple(table[f] for f in mine if f.startswith("push")))
    return moves


_MOVES: dict[tuple, tuple[tuple[str, ...], tuple[str, ...]]] = {}

# Operand fields: name -> (lsb, width). Text keys are the names used by the assembler.
FIELDS: dict[Op, dict[str, tuple[int, int]]] = {
    Op.LOAD: {"buf": (16, 4), "dram": (32, 32), "addr": (64, 24), "n": (88, 24)},
    Op.STORE: {"buf": (16, 4), "dram": (32, 32), "addr": (64, 24), "n": (88, 24)},
    Op.GEMM: {
        "a": (32, 24),  # ABUF entry of (plane 0, k-word 0)
        "w": (56, 24),  # WBUF entry of k-word 0
        "k": (80, 16),  # k-words (xnor_width bits each) to reduce over
        "stride": (96, 16),  # ABUF entries between consecutive bit-planes
        "bits": (112, 4),  # activation bit-planes
        "signed": (116, 1),  # the top plane has weight -2^(bits-1)
        "init": (117, 1),  # clear the accumulators before the first plane
        "mode": (118, 1),  # 0: XNOR (WBUF = +-1 signs); 1: AND (WBUF = one 0/1 bit-plane)
        "wneg": (119, 1),  # AND mode: the WBUF plane has negative weight (signed top plane)
        "wshift": (120, 3),  # AND mode: significance of the WBUF plane (0..7)
    },
    Op.POST: {
        "p": (32, 24),  # PBUF entry with this column tile's (mult, bias)
        "o": (56, 24),  # first OBUF entry written (pe_rows consecutive entries)
        "shift": (80, 6),  # arithmetic right shift with round-half-up
        "obits": (88, 6),  # 0: int32 (saturate); 1: sign (+1/-1); 2..8: clamp to k bits
        "osigned": (94, 1),  # signed or unsigned clamp range for obits >= 2
    },
    Op.SYNC: {},
    Op.HALT: {},
    Op.VEC: {
        "fn": (16, 8),  # the kernel, `bebert.vector.VecFn`
        "bits": (24, 4),  # PACK kernels: bit-planes written (1..8); 0 otherwise
        "desc": (32, 32),  # DRAM byte address of the kernel's descriptor
        "rows": (64, 16),  # rows processed (>= 1)
        "cols": (80, 16),  # elements per row (>= 1)
        "aux": (96, 16),  # kernel-specific count (DOT: output columns; 0 otherwise)
    },
}

# Operands the text form may leave out (they then read 0) and that the disassembler
# prints only when non-zero, so version-1 text assembles unchanged.
OPTIONAL: dict[Op, frozenset[str]] = {Op.GEMM: frozenset({"mode", "wneg", "wshift"}),
                                      Op.VEC: frozenset({"bits", "aux"})}

_STAGE_BUFS = {Op.LOAD: (Buf.ABUF, Buf.WBUF, Buf.PBUF), Op.STORE: (Buf.OBUF,)}


@dataclass(frozen=True)
class Instr:
    """A decoded instruction: opcode, dependency flags and operands."""

    op: Op
    args: dict[str, int] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", Op(self.op))
        object.__setattr__(self, "flags", frozenset(self.flags))
        full = {k: 0 for k in FIELDS[self.op]}
        for k, v in self.args.items():
            if k not in full:
                raise IsaError(f"{self.op.name}: unknown operand '{k}'")
            full[k] = int(v)
        object.__setattr__(self, "args", full)
        _check(self)

    @property
    def stage(self) -> Stage:
        return STAGE_OF[self.op]

    @property
    def pops(self) -> tuple[str, ...]:
        """The token counters this instruction waits on (`TOKEN_FLAGS`)."""
        return token_moves(self.op, self.flags)[0]

    @property
    def pushes(self) -> tuple[str, ...]:
        """The token counters this instruction sends to when it ends."""
        return token_moves(self.op, self.flags)[1]

    def __getattr__(self, name: str) -> int:
        args = self.__dict__.get("args", {})
        if name in args:
            return args[name]
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash(encode(self))


def _check(ins: Instr) -> None:
    bad = set(ins.flags) - set(FLAG_NAMES)
    if bad:
        raise IsaError(f"{ins.op.name}: unknown flag(s) {sorted(bad)}")
    for k, (_, width) in FIELDS[ins.op].items():
        v = ins.args[k]
        if not 0 <= v < (1 << width):
            raise IsaError(f"{ins.op.name}: operand {k}={v} does not fit in {width} bits")
    _check_rules(ins.op, ins.args, ins.flags)


def _check_rules(op: Op, a: dict[str, int], flags: frozenset[str]) -> None:
    """The legality rules beyond field widths (the ones the RTL decoder flags)."""
    if not flags <= LEGAL_FLAGS[STAGE_OF[op]]:
        illegal = set(flags) - LEGAL_FLAGS[STAGE_OF[op]]
        raise IsaError(f"{op.name}: flag(s) {sorted(illegal)} are illegal for the "
                       f"{STAGE_OF[op].name} stage")
    if op in _STAGE_BUFS and a["buf"] not in _STAGE_BUFS[op]:
        raise IsaError(f"{op.name}: buffer {a['buf']} is not a legal target "
                       f"(allowed: {', '.join(BUF_NAMES[b] for b in _STAGE_BUFS[op])})")
    if op == Op.GEMM:
        if not 1 <= a["bits"] <= 8:
            raise IsaError(f"GEMM: bits={a['bits']} must be in 1..8")
        if a["k"] == 0:
            raise IsaError("GEMM: k must be at least 1")
        if a["mode"] == 0 and (a["wneg"] or a["wshift"]):
            raise IsaError("GEMM: wneg and wshift need mode=1 (AND)")
    elif op == Op.POST and a["obits"] > 8:
        raise IsaError(f"POST: obits={a['obits']} must be 0 (int32), 1 (sign) or 2..8")
    elif op in (Op.LOAD, Op.STORE) and a["n"] == 0:
        raise IsaError(f"{op.name}: n must be at least 1")
    elif op == Op.VEC:
        from bebert.vector import check_vec  # the kernel table lives with the kernels
        why = check_vec(a)
        if why:
            raise IsaError(f"VEC: {why}")


# -- binary form ------------------------------------------------------------------------
def encode(ins: Instr) -> int:
    word = int(ins.op)
    for f in ins.flags:
        word |= 1 << FLAG_BITS[f]
    for k, (lsb, _) in FIELDS[ins.op].items():
        word |= ins.args[k] << lsb
    return word


def decode(word: int) -> Instr:
    """Decode a 128-bit word; raises IsaError for an illegal one.

    Illegal means: an unknown opcode, a dependency flag its stage cannot carry, a
    LOAD/STORE buffer it cannot target, GEMM bits outside 1..8 or k = 0, GEMM wneg or
    wshift without mode=1, LOAD/STORE n = 0, POST obits > 8, a VEC word that
    `bebert.vector.check_vec` refuses. The RTL decoder raises its error flag on exactly these.
    """
    if not 0 <= word < (1 << INSTR_BITS):
        raise IsaError(f"instruction word does not fit in {INSTR_BITS} bits")
    opcode = word & 0xFF
    op = _OP_BY_CODE.get(opcode)
    if op is None:
        raise IsaError(f"unknown opcode 0x{opcode:02x}")
    flags = _FLAG_SETS[(word >> 8) & 0xF]
    args = {k: (word >> lsb) & mask for k, lsb, mask in _SLICES[op]}
    # Reserved bits are ignored, as the hardware ignores them; the legality rules
    # (`_check_rules`) are exactly the ones the RTL's decoder flags as illegal. Fields are
    # in range by construction, so the Instr is built without re-checking them (fast path
    # for programs of a million words).
    _check_rules(op, args, flags)
    ins = object.__new__(Instr)
    object.__setattr__(ins, "op", op)
    object.__setattr__(ins, "args", args)
    object.__setattr__(ins, "flags", flags)
    return ins


_OP_BY_CODE = {int(o): o for o in Op}
_FLAG_SETS = [frozenset(f for f, b in FLAG_BITS.items() if (m << 8) >> b & 1) for m in range(16)]
_SLICES = {op: tuple((k, lsb, (1 << w) - 1) for k, (lsb, w) in fs.items()) for op, fs in FIELDS.items()}


def to_bytes(instrs: list[Instr]) -> bytes:
    return b"".join(encode(i).to_bytes(INSTR_BYTES, "little") for i in instrs)


def words_from_bytes(data: bytes) -> list[int]:
    if len(data) % INSTR_BYTES:
        raise IsaError(f"instruction stream of {len(data)} bytes is not a whole number of "
                       f"{INSTR_BYTES}-byte instructions (truncated?)")
    return [int.from_bytes(data[i:i + INSTR_BYTES], "little") for i in range(0, len(data), INSTR_BYTES)]


def from_bytes(data: bytes) -> list[Instr]:
    out = []
    for pc, w in enumerate(words_from_bytes(data)):
        try:
            out.append(decode(w))
        except IsaError as e:
            raise IsaError(f"instruction {pc}: {e}") from None
    return out


# -- text form --------------------------------------------------------------------------
def disassemble(ins: Instr | int) -> str:
    if isinstance(ins, int):
        ins = decode(ins)
    parts = [ins.op.name]
    for k in FIELDS[ins.op]:
        v = ins.args[k]
        if k in OPTIONAL.get(ins.op, ()) and v == 0:
            continue
        if k == "buf":
            parts.insert(1, BUF_NAMES[Buf(v)])
        elif k in ("dram", "desc"):
            parts.append(f"{k}=0x{v:x}")
        else:
            parts.append(f"{k}={v}")
    parts += [f"@{f}" for f in FLAG_NAMES if f in ins.flags]
    return " ".join(parts)


_BUF_BY_NAME = {v: k for k, v in BUF_NAMES.items()}
_TOKEN = re.compile(r"^(\w+)=(0x[0-9a-fA-F]+|\d+)$")


def assemble_line(line: str) -> Instr | None:
    """Parse one line of text form; returns None for blank or comment-only lines."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    toks = text.split()
    try:
        op = Op[toks[0].upper()]
    except KeyError:
        raise IsaError(f"unknown mnemonic '{toks[0]}'") from None
    args: dict[str, int] = {}
    flags = set()
    for t in toks[1:]:
        if t.startswith("@"):
            flags.add(t[1:])
        elif t.lower() in _BUF_BY_NAME and "buf" in FIELDS[op]:
            args["buf"] = int(_BUF_BY_NAME[t.lower()])
        elif m := _TOKEN.match(t):
            args[m.group(1)] = int(m.group(2), 0)
        else:
            raise IsaError(f"{op.name}: cannot parse operand '{t}'")
    missing = [k for k in FIELDS[op] if k not in args and k not in OPTIONAL.get(op, ())]
    if missing:
        raise IsaError(f"{op.name}: missing operand(s) {', '.join(missing)}")
    return Instr(op, args, frozenset(flags))


def assemble(text: str) -> list[Instr]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            ins = assemble_line(line)
        except IsaError as e:
            raise IsaError(f"line {n}: {e}") from None
        if ins is not None:
            out.append(ins)
    return out


def disassemble_program(instrs: list[Instr]) -> str:
    return "\n".join(disassemble(i) for i in instrs) + "\n"


# -- helpers for constructing instructions ------------------------------------------------
def load(buf: Buf | str, dram: int, addr: int, n: int, *flags: str) -> Instr:
    b = _BUF_BY_NAME[buf] if isinstance(buf, str) else Buf(buf)
    return Instr(Op.LOAD, {"buf": int(b), "dram": dram, "addr": addr, "n": n}, frozenset(flags))


def store(dram: int, addr: int, n: int, *flags: str) -> Instr:
    return Instr(Op.STORE, {"buf": int(Buf.OBUF), "dram": dram, "addr": addr, "n": n}, frozenset(flags))


def gemm(a: int, w: int, k: int, stride: int, bits: int, signed: bool, init: bool, *flags: str,
         mode: int = 0, wneg: bool = False, wshift: int = 0) -> Instr:
    return Instr(Op.GEMM, {"a": a, "w": w, "k": k, "stride": stride, "bits": bits,
                           "signed": int(signed), "init": int(init), "mode": int(mode),
                           "wneg": int(wneg), "wshift": int(wshift)}, frozenset(flags))


def post(p: int, o: int, shift: int, obits: int, osigned: bool, *flags: str) -> Instr:
    return Instr(Op.POST, {"p": p, "o": o, "shift": shift, "obits": obits, "osigned": int(osigned)},
                 frozenset(flags))


def sync(*flags: str) -> Instr:
    return Instr(Op.SYNC, {}, frozenset(flags))


def vec(fn: int, desc: int, rows: int, cols: int, *flags: str, bits: int = 0, aux: int = 0) -> Instr:
    return Instr(Op.VEC, {"fn": int(fn), "bits": bits, "desc": desc, "rows": rows, "cols": cols,
                          "aux": aux}, frozenset(flags))


def halt() -> Instr:
    return Instr(Op.HALT)
