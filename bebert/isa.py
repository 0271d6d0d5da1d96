"""The bebert instruction set (version 3): the single source of truth for encoding and text form.

Every instruction is one 128-bit little-endian word. Bits [7:0] hold the opcode, bits [11:8]
the *pop mask* and bits [15:12] the *push mask* over the four execution stages; the operands
of each opcode occupy the fields listed in `FIELDS` (docs/ARCHITECTURE.md, "The ISA").

The machine has four decoupled stages fed in program order by a fetch unit (the BISMO / VTA
arrangement, with one more stage): LOAD (DRAM -> ABUF / WBUF / PBUF), COMPUTE (GEMM on the PE
array), OUTPUT (the output path: POSTCFG, POST: accumulator snapshot -> requantize -> DRAM in
the consumer's layout) and VECTOR (VEC kernels on the vector unit). One token counter exists
for every ordered pair of different stages (`COUNTERS`, 12 of them): an instruction of stage
s with pop-mask bit d set waits until c[d -> s] > 0 and takes one token as it issues; with
push-mask bit d set it gives one token to c[s -> d] when it ends. A bit naming the
instruction's own stage is illegal. SYNC (any stage, by its `stage` field) only moves tokens.

Opcode map (0x00 and every unlisted code are illegal):
    0x01 LOAD   0x03 GEMM   0x04 POST   0x05 SYNC   0x06 POSTCFG   0x0F HALT   0x10 VEC
    (0x02, v2's STORE, is illegal in v3: the output path writes DRAM itself.)

Text form (one instruction per line, `#` starts a comment):
    LOAD wbuf dram=0x1000 addr=0 n=12 @pop=compute @push=compute
    GEMM a=0 w=0 k=8 stride=8 bits=4 signed=1 init=1 snap=1 @pop=load,output @push=load,output
    POSTCFG fmt=1 obits=4 osigned=1 shift=16 pitch=0x600 group=16 @pop=load
    POST p=0 dram=0x8000 cols=16 rows=16 flush=1 @pop=compute @push=compute,vec
    SYNC stage=output @push=compute
    VEC layernorm desc=0x2000 rows=128 cols=768 io=1 @pop=output @push=load
    HALT
Fields equal to their default (`DEFAULTS`) may be left out, and the disassembler omits them.
A VEC's kernel is written by its name (`bebert.vector.VecFn`, any case) or as `fn=N`.
`assemble(disassemble(w))` returns `w` for every legal word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum

ISA_VERSION = 3
INSTR_BITS = 128
INSTR_BYTES = INSTR_BITS // 8


class IsaError(ValueError):
    """An instruction word or text line that is not a legal instruction."""


class Op(IntEnum):
    LOAD = 0x01
    GEMM = 0x03
    POST = 0x04
    SYNC = 0x05
    POSTCFG = 0x06
    HALT = 0x0F
    VEC = 0x10


class Stage(IntEnum):
    LOAD = 0
    COMPUTE = 1
    OUTPUT = 2
    VECTOR = 3
    FETCH = 4  # HALT is consumed by the fetch unit itself


EXEC_STAGES = (Stage.LOAD, Stage.COMPUTE, Stage.OUTPUT, Stage.VECTOR)
PIPELINE = EXEC_STAGES  # the stages that execute instructions, in pipeline order
N_STAGES = len(EXEC_STAGES)
STAGE_NAMES = {Stage.LOAD: "load", Stage.COMPUTE: "compute", Stage.OUTPUT: "output", Stage.VECTOR: "vec"}
_STAGE_BY_NAME = {v: k for k, v in STAGE_NAMES.items()}

# The stage of each opcode (SYNC: its `stage` field; see `stage_of`).
STAGE_OF = {Op.LOAD: Stage.LOAD, Op.GEMM: Stage.COMPUTE, Op.POSTCFG: Stage.OUTPUT, Op.POST: Stage.OUTPUT,
            Op.VEC: Stage.VECTOR, Op.HALT: Stage.FETCH, Op.SYNC: None}

# Token counters: one per ordered pair (src, dst) of different execution stages, in this order
# (the index is the counter's number in the simulator and the RTL).
COUNTERS: tuple[tuple[Stage, Stage], ...] = tuple((s, d) for s in EXEC_STAGES for d in EXEC_STAGES if s != d)
COUNTER_INDEX = {pair: i for i, pair in enumerate(COUNTERS)}
COUNTER_NAMES = tuple(f"{STAGE_NAMES[s]}->{STAGE_NAMES[d]}" for s, d in COUNTERS)
POP_LSB, PUSH_LSB = 8, 12  # pop mask bits [11:8], push mask bits [15:12], bit = stage index
TOKEN_BITS = 16  # width of each counter in the RTL


class Buf(IntEnum):
    """On-chip buffers, as named in LOAD operands."""

    ABUF = 0  # activation bit-planes, entry = pe_rows * xnor_width bits
    WBUF = 1  # weight signs / planes, entry = pe_cols * xnor_width bits
    PBUF = 2  # post-processing parameters, entry = pe_cols * (int32 mult, int32 bias)


BUF_NAMES = {Buf.ABUF: "abuf", Buf.WBUF: "wbuf", Buf.PBUF: "pbuf"}
_BUF_BY_NAME = {v: k for k, v in BUF_NAMES.items()}


class PostFmt(IntEnum):
    """What the output path writes (POSTCFG fmt)."""

    STREAM = 0      # e-byte elements in the stream layout (the vector unit's input)
    PACKED = 1      # bit-plane row-words, one per tile row (an ABUF / WBUF operand)
    TRANSPOSED = 2  # bit-plane words, one per tile column, bits over rows (V^T as a WBUF operand)


# Operand fields: name -> (lsb, width). Text keys are the names used by the assembler.
FIELDS: dict[Op, dict[str, tuple[int, int]]] = {
    Op.LOAD: {
        "buf": (16, 4),  # target buffer: 0 abuf, 1 wbuf, 2 pbuf
        "dram": (32, 32),  # DRAM byte address of the first entry (bus-aligned)
        "addr": (64, 24),  # first buffer entry written
        "n": (88, 24),  # entries moved (>= 1)
    },
    Op.GEMM: {
        "a": (16, 20),  # ABUF entry of (activation plane 0, word 0)
        "w": (36, 20),  # WBUF entry of (weight plane 0, word 0)
        "k": (56, 12),  # words (xnor_width bits each) to reduce over (>= 1)
        "stride": (68, 16),  # ABUF entries between consecutive activation planes
        "wstride": (84, 16),  # WBUF entries between consecutive weight planes (AND mode)
        "bits": (100, 4),  # activation planes (1..8)
        "wbits": (104, 4),  # weight planes: 1 in XNOR mode, 1..8 in AND mode
        "signed": (108, 1),  # the top activation plane has weight -2^(bits-1)
        "wsigned": (109, 1),  # AND mode: the top weight plane has weight -2^(wbits-1)
        "mode": (110, 1),  # 0: XNOR (WBUF = +-1 signs); 1: AND (WBUF = 0/1 bit-planes)
        "init": (111, 1),  # the first term replaces the accumulators
        "snap": (112, 1),  # after the last term, copy the accumulators to the output snapshot
    },
    Op.POSTCFG: {
        "fmt": (16, 2),  # 0 stream elements, 1 packed row-words, 2 packed transposed (PostFmt)
        "elem": (18, 2),  # stream: element bytes 1 << elem (1, 2, 4)
        "shift": (20, 6),  # arithmetic right shift with round-half-up
        "obits": (26, 5),  # stream: 0 int32, 1 sign, 2..16 clamp; packed: planes 1..8
        "osigned": (31, 1),  # signed or unsigned clamp range for obits >= 2
        "pitch": (32, 32),  # stream: bytes between row tiles; packed: bytes between planes
        "gstride": (64, 32),  # packed: bytes between groups of `group` row-words
        "group": (96, 8),  # packed: row-words per group (a power of two)
        "pm1": (104, 1),  # packed 1-bit: codes are +-1, stored as the plane (x + 1) / 2
    },
    Op.POST: {
        "p": (16, 20),  # PBUF entry with this column tile's (mult, bias)
        "dram": (36, 32),  # stream: element (m0, n0); packed: row-word (m0, plane 0, word); transposed: word (n0, plane 0, word)
        "pos": (68, 8),  # packed: bit of this tile's first element in its word (pos + cols <= W)
        "cols": (76, 8),  # valid tile columns (1..pe_cols)
        "rows": (84, 8),  # valid tile rows (1..pe_rows)
        "flush": (92, 1),  # packed: write the assembled words after this tile, then clear them
    },
    Op.SYNC: {
        "stage": (16, 2),  # the stage whose queue runs it: 0 load, 1 compute, 2 output, 3 vec
    },
    Op.HALT: {},
    Op.VEC: {
        "fn": (16, 8),  # the kernel, `bebert.vector.VecFn`
        "desc": (24, 32),  # DRAM byte address of the kernel's descriptor (4-byte aligned)
        "rows": (56, 16),  # rows processed (>= 1)
        "cols": (72, 16),  # elements per row (>= 1)
        "bits": (88, 4),  # planes of the packed output (0: none)
        "aux": (92, 16),  # kernel-specific count (DOT: output columns; COMBINE: members)
        "io": (108, 8),  # kernel-specific operand flags that change the timing (`bebert.vector.Io`)
    },
}

# Values an operand takes when the text form leaves it out; the disassembler omits them.
DEFAULTS: dict[Op, dict[str, int]] = {
    Op.GEMM: {"wstride": 0, "wbits": 1, "signed": 0, "wsigned": 0, "mode": 0, "init": 0, "snap": 0},
    Op.POSTCFG: {"fmt": 0, "elem": 0, "shift": 0, "osigned": 0, "pitch": 0, "gstride": 0, "group": 1, "pm1": 0},
    Op.POST: {"pos": 0, "flush": 0},
    Op.VEC: {"bits": 0, "aux": 0, "io": 0},
    Op.SYNC: {},
}


def stage_of(op: Op, args: dict[str, int]) -> Stage:
    """The stage whose queue an instruction goes to."""
    return Stage(args["stage"]) if op == Op.SYNC else STAGE_OF[op]


@dataclass(frozen=True)
class Instr:
    """A decoded instruction: opcode, operands, and the stages it pops from / pushes to."""

    op: Op
    args: dict[str, int] = field(default_factory=dict)
    pops: frozenset[Stage] = frozenset()
    pushes: frozenset[Stage] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", Op(self.op))
        object.__setattr__(self, "pops", frozenset(Stage(s) for s in self.pops))
        object.__setattr__(self, "pushes", frozenset(Stage(s) for s in self.pushes))
        full = {k: DEFAULTS.get(self.op, {}).get(k, 0) for k in FIELDS[self.op]}
        for k, v in self.args.items():
            if k not in full:
                raise IsaError(f"{self.op.name}: unknown operand '{k}'")
            full[k] = int(v)
        object.__setattr__(self, "args", full)
        _check(self)

    @property
    def stage(self) -> Stage:
        return stage_of(self.op, self.args)

    @property
    def pop_mask(self) -> int:
        return sum(1 << int(s) for s in self.pops)

    @property
    def push_mask(self) -> int:
        return sum(1 << int(s) for s in self.pushes)

    def __getattr__(self, name: str) -> int:
        args = self.__dict__.get("args", {})
        if name in args:
            return args[name]
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash(encode(self))


def popped(ins: Instr) -> tuple[int, ...]:
    """Counter indices (`COUNTERS`) that the instruction pops: c[src -> its stage] for each pop."""
    st = ins.stage
    return () if st == Stage.FETCH else tuple(COUNTER_INDEX[(s, st)] for s in sorted(ins.pops))


def pushed(ins: Instr) -> tuple[int, ...]:
    """Counter indices that the instruction pushes: c[its stage -> dst] for each push."""
    st = ins.stage
    return () if st == Stage.FETCH else tuple(COUNTER_INDEX[(st, d)] for d in sorted(ins.pushes))


def _check(ins: Instr) -> None:
    for k, (_, width) in FIELDS[ins.op].items():
        v = ins.args[k]
        if not 0 <= v < (1 << width):
            raise IsaError(f"{ins.op.name}: operand {k}={v} does not fit in {width} bits")
    _check_rules(ins.op, ins.args, ins.pop_mask, ins.push_mask)


def _check_rules(op: Op, a: dict[str, int], pop: int, push: int) -> None:
    """The legality rules beyond field widths (the ones the RTL decoder flags)."""
    st = stage_of(op, a)
    if st == Stage.FETCH:
        if pop or push:
            raise IsaError(f"{op.name}: the fetch unit's instruction moves no tokens")
    elif (pop | push) >> int(st) & 1:
        raise IsaError(f"{op.name}: a {STAGE_NAMES[st]}-stage instruction cannot pop from or push to its own stage")
    if op == Op.LOAD:
        if a["buf"] > 2:
            raise IsaError(f"LOAD: buffer {a['buf']} is not a legal target (abuf, wbuf, pbuf)")
        if a["n"] == 0:
            raise IsaError("LOAD: n must be at least 1")
    elif op == Op.GEMM:
        if not 1 <= a["bits"] <= 8 or not 1 <= a["wbits"] <= 8:
            raise IsaError(f"GEMM: bits={a['bits']} and wbits={a['wbits']} must be in 1..8")
        if a["k"] == 0:
            raise IsaError("GEMM: k must be at least 1")
        if a["mode"] == 0 and (a["wbits"] != 1 or a["wsigned"]):
            raise IsaError("GEMM: XNOR mode (mode=0) takes wbits=1 and wsigned=0")
    elif op == Op.POSTCFG:
        if a["fmt"] == 3:
            raise IsaError("POSTCFG: fmt=3 is not a format (0 stream, 1 packed, 2 transposed)")
        if a["fmt"] == PostFmt.STREAM:
            if a["elem"] == 3:
                raise IsaError("POSTCFG: elem=3 (8-byte elements) is not supported")
            if a["obits"] > 16:
                raise IsaError(f"POSTCFG: stream obits={a['obits']} must be 0 (int32), 1 (sign) or 2..16")
        elif not 1 <= a["obits"] <= 8:
            raise IsaError(f"POSTCFG: packed obits={a['obits']} (planes) must be in 1..8")
        if a["group"] == 0 or a["group"] & (a["group"] - 1):
            raise IsaError(f"POSTCFG: group={a['group']} must be a power of two")
        if a["pm1"] and (a["fmt"] == PostFmt.STREAM or a["obits"] != 1):
            raise IsaError("POSTCFG: pm1 needs a packed format with obits=1")
    elif op == Op.POST:
        if a["cols"] == 0 or a["rows"] == 0:
            raise IsaError("POST: cols and rows must be at least 1")
    elif op == Op.VEC:
        from bebert.vector import check_vec  # the kernel table lives with the kernels
        why = check_vec(a)
        if why:
            raise IsaError(f"VEC: {why}")


def check_config(ins: Instr, config) -> str | None:
    """Why a legal word cannot run on `config` (an `AccelConfig`), or None. The RTL built for
    that configuration raises ILLEGAL on exactly these, as on the words `decode` refuses."""
    a = ins.args
    if ins.op == Op.POST and (a["cols"] > config.pe_cols or a["rows"] > config.pe_rows):
        return f"POST: cols={a['cols']} / rows={a['rows']} exceed the {config.pe_rows}x{config.pe_cols} array"
    if ins.op == Op.POST and a["pos"] >= config.xnor_width:
        return f"POST: pos={a['pos']} is past the {config.xnor_width}-bit word"
    if ins.op == Op.GEMM and a["bits"] not in config.act_bits:
        return f"GEMM: bits={a['bits']} is not an activation width of this machine {config.act_bits}"
    return None


# -- binary form ------------------------------------------------------------------------
def encode(ins: Instr) -> int:
    word = int(ins.op) | ins.pop_mask << POP_LSB | ins.push_mask << PUSH_LSB
    for k, (lsb, _) in FIELDS[ins.op].items():
        word |= ins.args[k] << lsb
    return word


def decode(word: int) -> Instr:
    """Decode a 128-bit word; raises IsaError for an illegal one.

    Illegal: an unknown opcode, a pop / push bit for the own stage (or any on HALT), a LOAD
    buffer above 2 or n = 0, GEMM bits / wbits outside 1..8 or k = 0 or an XNOR GEMM with
    wbits != 1 or wsigned, a POSTCFG with fmt 3, elem 3, obits out of its format's range, a
    group that is not a power of two or pm1 off a 1-bit packed format, POST cols or rows 0, a
    VEC word `bebert.vector.check_vec` refuses. The RTL decoder raises its error flag on
    exactly these (and on `check_config`'s, which need the machine).
    """
    if not 0 <= word < (1 << INSTR_BITS):
        raise IsaError(f"instruction word does not fit in {INSTR_BITS} bits")
    opcode = word & 0xFF
    op = _OP_BY_CODE.get(opcode)
    if op is None:
        raise IsaError(f"unknown opcode 0x{opcode:02x}")
    pop, push = (word >> POP_LSB) & 0xF, (word >> PUSH_LSB) & 0xF
    args = {k: (word >> lsb) & mask for k, lsb, mask in _SLICES[op]}
    # Reserved bits are ignored, as the hardware ignores them. Fields are in range by
    # construction, so the Instr is built without re-checking them (fast path for programs
    # of a million words).
    _check_rules(op, args, pop, push)
    ins = object.__new__(Instr)
    object.__setattr__(ins, "op", op)
    object.__setattr__(ins, "args", args)
    object.__setattr__(ins, "pops", _STAGE_SETS[pop])
    object.__setattr__(ins, "pushes", _STAGE_SETS[push])
    return ins


_OP_BY_CODE = {int(o): o for o in Op}
_STAGE_SETS = [frozenset(s for s in EXEC_STAGES if m >> int(s) & 1) for m in range(16)]
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
_HEX_FIELDS = {"dram", "desc", "pitch", "gstride"}


def disassemble(ins: Instr | int) -> str:
    if isinstance(ins, int):
        ins = decode(ins)
    parts = [ins.op.name]
    defaults = DEFAULTS.get(ins.op, {})
    for k in FIELDS[ins.op]:
        v = ins.args[k]
        if k in defaults and v == defaults[k]:
            continue
        if ins.op == Op.LOAD and k == "buf":
            parts.insert(1, BUF_NAMES[Buf(v)])
        elif ins.op == Op.VEC and k == "fn" and v in _vec_names():
            parts.insert(1, _vec_names()[v])
        elif ins.op == Op.SYNC and k == "stage":
            parts.append(f"stage={STAGE_NAMES[Stage(v)]}")
        elif k in _HEX_FIELDS:
            parts.append(f"{k}=0x{v:x}")
        else:
            parts.append(f"{k}={v}")
    for tag, stages in (("pop", ins.pops), ("push", ins.pushes)):
        if stages:
            parts.append(f"@{tag}=" + ",".join(STAGE_NAMES[s] for s in sorted(stages)))
    return " ".join(parts)


def _vec_names() -> dict[int, str]:
    """fn -> the VEC kernel's name in text form (lower case), from the kernel records."""
    from bebert.vector import VecFn

    return {int(f): f.name.lower() for f in VecFn}


_TOKEN = re.compile(r"^(\w+)=(0x[0-9a-fA-F]+|\d+)$")
_FLAG = re.compile(r"^@(pop|push)=([a-z,]+)$")


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
    stages: dict[str, set[Stage]] = {"pop": set(), "push": set()}
    for t in toks[1:]:
        if m := _FLAG.match(t):
            for name in m.group(2).split(","):
                if name not in _STAGE_BY_NAME:
                    raise IsaError(f"{op.name}: unknown stage '{name}' in '{t}' "
                                   f"(stages: {', '.join(_STAGE_BY_NAME)})")
                stages[m.group(1)].add(_STAGE_BY_NAME[name])
        elif op == Op.LOAD and t.lower() in _BUF_BY_NAME:
            args["buf"] = int(_BUF_BY_NAME[t.lower()])
        elif op == Op.VEC and t.lower() in _vec_names().values():
            args["fn"] = {n: f for f, n in _vec_names().items()}[t.lower()]
        elif op == Op.SYNC and t.startswith("stage=") and t[6:] in _STAGE_BY_NAME:
            args["stage"] = int(_STAGE_BY_NAME[t[6:]])
        elif m := _TOKEN.match(t):
            args[m.group(1)] = int(m.group(2), 0)
        else:
            raise IsaError(f"{op.name}: cannot parse operand '{t}'")
    missing = [k for k in FIELDS[op] if k not in args and k not in DEFAULTS.get(op, {})]
    if missing:
        raise IsaError(f"{op.name}: missing operand(s) {', '.join(missing)}")
    return Instr(op, args, frozenset(stages["pop"]), frozenset(stages["push"]))


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
def _stages(names) -> frozenset[Stage]:
    return frozenset(_STAGE_BY_NAME[n] if isinstance(n, str) else Stage(n) for n in names)


def load(buf: Buf | str, dram: int, addr: int, n: int, pop=(), push=()) -> Instr:
    b = _BUF_BY_NAME[buf] if isinstance(buf, str) else Buf(buf)
    return Instr(Op.LOAD, {"buf": int(b), "dram": dram, "addr": addr, "n": n}, _stages(pop), _stages(push))


def gemm(a: int, w: int, k: int, stride: int, bits: int, signed: bool, init: bool, pop=(), push=(), *,
         mode: int = 0, wbits: int = 1, wstride: int = 0, wsigned: bool = False, snap: bool = False) -> Instr:
    return Instr(Op.GEMM, {"a": a, "w": w, "k": k, "stride": stride, "bits": bits, "signed": int(signed),
                           "init": int(init), "mode": int(mode), "wbits": wbits, "wstride": wstride,
                           "wsigned": int(wsigned), "snap": int(snap)}, _stages(pop), _stages(push))


def postcfg(fmt: int, obits: int, osigned: bool = False, shift: int = 0, *, elem: int = 0, pitch: int = 0,
            gstride: int = 0, group: int = 1, pm1: bool = False, pop=(), push=()) -> Instr:
    return Instr(Op.POSTCFG, {"fmt": int(fmt), "elem": elem, "shift": shift, "obits": obits,
                              "osigned": int(osigned), "pitch": pitch, "gstride": gstride, "group": group,
                              "pm1": int(pm1)}, _stages(pop), _stages(push))


def post(p: int, dram: int, cols: int, rows: int, *, pos: int = 0, flush: bool = False, pop=(), push=()) -> Instr:
    return Instr(Op.POST, {"p": p, "dram": dram, "pos": pos, "cols": cols, "rows": rows, "flush": int(flush)},
                 _stages(pop), _stages(push))


def sync(stage: Stage | str, pop=(), push=()) -> Instr:
    s = _STAGE_BY_NAME[stage] if isinstance(stage, str) else Stage(stage)
    return Instr(Op.SYNC, {"stage": int(s)}, _stages(pop), _stages(push))


def vec(fn: int, desc: int, rows: int, cols: int, pop=(), push=(), *, bits: int = 0, aux: int = 0,
        io: int = 0) -> Instr:
    return Instr(Op.VEC, {"fn": int(fn), "desc": desc, "rows": rows, "cols": cols, "bits": bits, "aux": aux,
                          "io": io}, _stages(pop), _stages(push))


def halt() -> Instr:
    return Instr(Op.HALT)
