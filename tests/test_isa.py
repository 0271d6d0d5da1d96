"""The ISA (version 3): encoding, decoding, text form and legality are one consistent definition."""

import random
import re

import pytest

from bebert import isa
from bebert.config import AccelConfig
from bebert.isa import COUNTERS, DEFAULTS, FIELDS, IsaError, Instr, Op, PostFmt, Stage
from bebert.vector import COMBINE_MAX_MEMBERS, KERNELS, VOTE_EXACT, VOTE_MAX_MEMBERS, VecFn, io_word


def random_instr(rng: random.Random) -> Instr:
    op = rng.choice(list(Op))
    args = {k: rng.randrange(1 << w) for k, (_, w) in FIELDS[op].items()}
    if op == Op.LOAD:
        args["buf"] = rng.choice([0, 1, 2])
        args["n"] = max(1, args["n"])
    elif op == Op.GEMM:
        args["bits"], args["k"] = rng.randint(1, 8), max(1, args["k"])
        args["wbits"] = rng.randint(1, 8) if args["mode"] else 1
        if not args["mode"]:
            args["wsigned"] = 0
    elif op == Op.POSTCFG:
        args["fmt"] = rng.choice([0, 1, 2])
        args["elem"] = rng.choice([0, 1, 2])
        args["obits"] = rng.randint(0, 16) if args["fmt"] == PostFmt.STREAM else rng.randint(1, 8)
        args["group"] = 1 << rng.randrange(8)
        args["pm1"] = int(args["fmt"] != PostFmt.STREAM and args["obits"] == 1 and rng.random() < 0.5)
    elif op == Op.POST:
        args["cols"], args["rows"] = max(1, args["cols"]), max(1, args["rows"])
    elif op == Op.VEC:
        k = KERNELS[rng.choice(list(VecFn))]
        args["fn"] = int(k.fn)
        args["rows"], args["cols"] = max(1, args["rows"]), max(1, args["cols"])
        args["bits"] = rng.randint(0, 8) if k.packs else 0
        args["aux"] = max(1, args["aux"]) if k.aux else 0
        if k.fn == VecFn.COMBINE:
            args["aux"] = 1 + args["aux"] % COMBINE_MAX_MEMBERS
        if k.fn in VOTE_EXACT:
            args["aux"] = 1 + args["aux"] % VOTE_MAX_MEMBERS
        if k.fn in (VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN):
            args["cols"] = 1
        args["io"] = io_word(stream_out=args["bits"] == 0 or rng.random() < 0.5,
                             second_in=bool(k.io & 2) and rng.random() < 0.5) if k.engine == "tile" else 0
    if op == Op.HALT:
        return Instr(op, args)
    st = isa.stage_of(op, args)
    others = [s for s in isa.EXEC_STAGES if s != st]
    return Instr(op, args, frozenset(s for s in others if rng.random() < 0.4),
                 frozenset(s for s in others if rng.random() < 0.4))


def test_encode_decode_and_text_round_trip_on_random_instructions():
    rng = random.Random(1)
    for _ in range(3000):
        ins = random_instr(rng)
        word = isa.encode(ins)
        assert 0 <= word < 1 << isa.INSTR_BITS
        assert isa.decode(word) == ins
        text = isa.disassemble(ins)
        assert isa.assemble_line(text) == ins
        assert isa.disassemble(word) == text


def test_program_bytes_round_trip():
    rng = random.Random(2)
    prog = [random_instr(rng) for _ in range(200)] + [isa.halt()]
    data = isa.to_bytes(prog)
    assert len(data) == isa.INSTR_BYTES * len(prog)
    assert isa.from_bytes(data) == prog
    assert isa.assemble(isa.disassemble_program(prog)) == prog


def test_opcode_masks_and_fields_sit_where_the_documentation_says():
    g = isa.gemm(5, 7, 3, 9, 4, True, True, pop=["load"], push=["output", "load"], mode=1, wbits=2, wstride=6,
                 snap=True)
    word = isa.encode(g)
    assert word & 0xFF == 0x03
    assert (word >> 8) & 0xF == 0b0001 and (word >> 12) & 0xF == 0b0101  # pop load; push load, output
    assert (word >> 16) & 0xFFFFF == 5 and (word >> 36) & 0xFFFFF == 7 and (word >> 56) & 0xFFF == 3
    assert (word >> 68) & 0xFFFF == 9 and (word >> 84) & 0xFFFF == 6
    assert (word >> 100) & 0xF == 4 and (word >> 104) & 0xF == 2 and (word >> 110) & 1 == 1 and word >> 112 == 1 | 0
    assert g.stage == Stage.COMPUTE


def test_twelve_counters_one_per_ordered_pair_of_stages():
    assert len(COUNTERS) == 12 and len(set(COUNTERS)) == 12
    assert all(s != d for s, d in COUNTERS)
    ins = isa.post(0, 0, 1, 1, pop=["compute", "load"], push=["vec"])
    assert [isa.COUNTER_NAMES[c] for c in isa.popped(ins)] == ["load->output", "compute->output"]
    assert [isa.COUNTER_NAMES[c] for c in isa.pushed(ins)] == ["output->vec"]


def test_sync_runs_in_the_stage_its_field_names():
    for st in isa.EXEC_STAGES:
        s = isa.sync(st)
        assert s.stage == st and isa.decode(isa.encode(s)).stage == st
        assert isa.assemble_line(isa.disassemble(s)) == s


@pytest.mark.parametrize("word, why", [
    (0, "unknown opcode 0x00"),
    (0x02, "unknown opcode 0x02"),  # v2's STORE
    (0x7F, "unknown opcode 0x7f"),
    (isa.encode(isa.load("abuf", 0, 0, 1)) | (1 << 8), "its own stage"),  # LOAD pops from LOAD
    (isa.encode(isa.gemm(0, 0, 1, 1, 1, False, True)) | (1 << 13), "its own stage"),  # GEMM pushes to COMPUTE
    (isa.encode(isa.halt()) | (1 << 9), "moves no tokens"),
    ((isa.encode(isa.load("abuf", 0, 0, 1)) & ~(0xF << 16)) | (3 << 16), "not a legal target"),
    (isa.encode(isa.load("abuf", 0, 0, 1)) & ~(0xFFFFFF << 88), "n must be at least 1"),
    (isa.encode(isa.gemm(0, 0, 1, 1, 1, False, True)) & ~(0xF << 100) | (9 << 100), "must be in 1..8"),
    (isa.encode(isa.gemm(0, 0, 1, 1, 1, False, True)) & ~(0xFFF << 56), "k must be at least 1"),
    (isa.encode(isa.gemm(0, 0, 1, 1, 1, False, True)) & ~(0xF << 104) | (2 << 104), "XNOR mode"),
    (isa.encode(isa.gemm(0, 0, 1, 1, 1, False, True)) | (1 << 109), "XNOR mode"),
    (isa.encode(isa.postcfg(0, 0)) | (3 << 16), "fmt=3"),
    (isa.encode(isa.postcfg(0, 0)) | (3 << 18), "elem=3"),
    (isa.encode(isa.postcfg(0, 0)) | (17 << 26), "stream obits=17"),
    (isa.encode(isa.postcfg(1, 1)) & ~(0x1F << 26), "packed obits=0"),
    (isa.encode(isa.postcfg(1, 1)) & ~(0xFF << 96) | (3 << 96), "group=3"),
    (isa.encode(isa.postcfg(0, 1)) | (1 << 104), "pm1 needs a packed format"),
    (isa.encode(isa.post(0, 0, 1, 1)) & ~(0xFF << 76), "cols and rows"),
])
def test_illegal_words_are_rejected_with_the_reason(word, why):
    with pytest.raises(IsaError, match=re.escape(why)):
        isa.decode(word)


@pytest.mark.parametrize("text,why", [
    ("VEC fn=0 desc=0x0 rows=1 cols=1", "unknown vector function"),
    ("VEC fn=7 desc=0x0 rows=1 cols=1 io=1", "unknown vector function"),  # v2's PACK_A is gone
    ("VEC fn=2 desc=0x0 rows=0 cols=1 io=1", "rows and cols"),
    ("VEC fn=2 desc=0x0 rows=1 cols=1", "no output"),
    ("VEC fn=2 desc=0x0 rows=1 cols=1 io=2", "io flags"),
    ("VEC fn=9 desc=0x0 rows=1 cols=1 bits=1", "bits must be 0"),
    ("VEC fn=10 desc=0x0 rows=1 cols=1", "aux (output columns)"),
    ("VEC fn=3 desc=0x0 rows=1 cols=1 aux=3 io=1", "aux must be 0"),
    ("VEC fn=9 desc=0x0 rows=1 cols=1 io=1", "io must be 0"),
    ("SYNC stage=compute @pop=compute", "its own stage"),
    ("LOAD abuf dram=0x0 addr=0 n=1 @push=mars", "unknown stage 'mars'"),
])
def test_illegal_text_is_refused_with_the_reason(text, why):
    with pytest.raises(IsaError, match=re.escape(why)):
        isa.assemble(text)


def test_what_needs_the_machine_is_checked_against_its_configuration():
    small = AccelConfig(name="s", pe_rows=4, pe_cols=4, xnor_width=32, abuf_bytes=4096, wbuf_bytes=4096,
                        pbuf_bytes=1024, dram_bytes_per_cycle=8, vec_lanes=4, act_bits=(2, 4))
    assert isa.check_config(isa.post(0, 0, 4, 4), small) is None
    assert "exceed" in isa.check_config(isa.post(0, 0, 5, 4), small)
    assert "pos=32" in isa.check_config(isa.post(0, 0, 4, 4, pos=32), small)
    assert "bits=3" in isa.check_config(isa.gemm(0, 0, 1, 1, 3, True, True), small)


def test_reserved_bits_are_ignored_like_the_hardware_does():
    word = isa.encode(isa.sync("compute", pop=["load"])) | (1 << 100)
    assert isa.decode(word) == isa.sync("compute", pop=["load"])


def test_defaults_may_be_left_out_and_are_not_printed():
    ins = isa.assemble_line("GEMM a=3 w=4 k=8 stride=8 bits=4 signed=1 init=1 @pop=load")
    assert (ins.mode, ins.wbits, ins.wstride, ins.snap) == (0, 1, 0, 0)
    assert isa.disassemble(ins) == "GEMM a=3 w=4 k=8 stride=8 bits=4 signed=1 init=1 @pop=load"
    assert set(DEFAULTS[Op.GEMM]) <= set(FIELDS[Op.GEMM])


def test_assembler_errors_name_the_line():
    with pytest.raises(IsaError, match="line 2: unknown mnemonic 'FOO'"):
        isa.assemble("HALT\nFOO 1\n")
    with pytest.raises(IsaError, match="missing operand"):
        isa.assemble("GEMM a=0 w=0\n")
    with pytest.raises(IsaError, match="does not fit"):
        isa.assemble("LOAD abuf dram=0x1 addr=0 n=99999999999\n")
    with pytest.raises(IsaError, match="truncated"):
        isa.from_bytes(b"\x0f" * 17)
    assert isa.assemble("# only a comment\n\n  HALT  # trailing\n") == [isa.halt()]
