"""The ISA: encoding, decoding, text form and legality are one consistent definition."""

import random
import re

import pytest

from bebert import isa
from bebert.isa import FIELDS, IsaError, Instr, Op
from bebert.vector import VecFn


def random_instr(rng: random.Random) -> Instr:
    op = rng.choice(list(Op))
    args = {k: rng.randrange(1 << w) for k, (_, w) in FIELDS[op].items()}
    if op == Op.LOAD:
        args["buf"] = rng.choice([0, 1, 2])
    if op == Op.STORE:
        args["buf"] = 3
    if op == Op.GEMM:
        args["bits"] = rng.randint(1, 8)
        args["k"] = max(1, args["k"])
        if args["mode"] == 0:
            args["wneg"] = args["wshift"] = 0
    if op == Op.VEC:
        fn = rng.choice(list(VecFn))
        args["fn"] = int(fn)
        args["rows"], args["cols"] = max(1, args["rows"]), max(1, args["cols"])
        args["bits"] = rng.randint(1, 8) if fn in (VecFn.PACK_A, VecFn.PACK_W) else 0
        args["aux"] = max(1, args["aux"]) if fn == VecFn.DOT else 0
    if op == Op.POST:
        args["obits"] = rng.randint(0, 8)
    if op in (Op.LOAD, Op.STORE):
        args["n"] = max(1, args["n"])
    legal = sorted(isa.LEGAL_FLAGS[isa.STAGE_OF[op]])
    flags = frozenset(f for f in legal if rng.random() < 0.5)
    return Instr(op, args, flags)


def test_encode_decode_and_text_round_trip_on_random_instructions():
    rng = random.Random(1)
    for _ in range(2000):
        ins = random_instr(rng)
        word = isa.encode(ins)
        assert 0 <= word < 1 << isa.INSTR_BITS
        assert isa.decode(word) == ins
        text = isa.disassemble(ins)
        assert isa.assemble_line(text) == ins
        assert isa.disassemble(word) == text


def test_program_bytes_round_trip():
    rng = random.Random(2)
    prog = [random_instr(rng) for _ in range(100)] + [isa.halt()]
    data = isa.to_bytes(prog)
    assert len(data) == isa.INSTR_BYTES * len(prog)
    assert isa.from_bytes(data) == prog
    assert isa.assemble(isa.disassemble_program(prog)) == prog


def test_opcode_and_flags_sit_where_the_documentation_says():
    word = isa.encode(isa.gemm(5, 7, 3, 9, 4, True, True, "pop_prev", "push_next"))
    assert word & 0xFF == 0x03
    assert (word >> 8) & 0xF == 0b1001  # pop_prev (bit 8) and push_next (bit 11)
    assert (word >> 32) & 0xFFFFFF == 5 and (word >> 56) & 0xFFFFFF == 7
    assert (word >> 80) & 0xFFFF == 3 and (word >> 96) & 0xFFFF == 9
    assert (word >> 112) & 0xF == 4 and (word >> 116) & 1 == 1 and (word >> 117) & 1 == 1


@pytest.mark.parametrize("word, why", [
    (0, "unknown opcode 0x00"),
    (0x7F, "unknown opcode 0x7f"),
    (isa.encode(isa.load("abuf", 0, 0, 1)) | (1 << 8), "illegal for the LOAD stage"),  # pop_prev
    (isa.encode(isa.store(0, 0, 1)) | (1 << 11), "illegal for the STORE stage"),  # push_next
    ((isa.encode(isa.load("abuf", 0, 0, 1)) & ~(0xF << 16)) | (3 << 16), "not a legal target"),
    (isa.encode(isa.load("abuf", 0, 0, 1)) & ~(0xFFFFFF << 88), "n must be at least 1"),
    (0x03 | (1 << 80) | (9 << 112), "bits=9"),
    (0x03 | (1 << 112), "k must be at least 1"),
    (0x04 | (9 << 88), "obits=9"),
])
def test_illegal_words_are_rejected_with_the_reason(word, why):
    with pytest.raises(IsaError, match=re.escape(why)):
        isa.decode(word)


def test_reserved_bits_are_ignored_like_the_hardware_does():
    word = isa.encode(isa.sync("pop_prev")) | (0xF << 12) | (1 << 100)
    assert isa.decode(word) == isa.sync("pop_prev")


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


@pytest.mark.parametrize("text,why", [
    ("GEMM a=0 w=0 k=1 stride=1 bits=4 signed=1 init=1 wneg=1", "wneg and wshift need mode=1"),
    ("GEMM a=0 w=0 k=1 stride=1 bits=4 signed=1 init=1 wshift=2", "wneg and wshift need mode=1"),
    ("VEC fn=0 desc=0x0 rows=1 cols=1", "unknown vector function"),
    ("VEC fn=99 desc=0x0 rows=1 cols=1", "unknown vector function"),
    ("VEC fn=2 desc=0x0 rows=0 cols=1", "rows and cols"),
    ("VEC fn=7 desc=0x0 rows=1 cols=1", "bits=0 must be in 1..8"),
    ("VEC fn=7 desc=0x0 rows=1 cols=1 bits=9", "bits=9 must be in 1..8"),
    ("VEC fn=2 desc=0x0 rows=1 cols=1 bits=1", "bits must be 0"),
    ("VEC fn=10 desc=0x0 rows=1 cols=1", "aux (output columns)"),
    ("VEC fn=3 desc=0x0 rows=1 cols=1 aux=3", "aux must be 0"),
])
def test_illegal_version_2_words_are_refused_with_the_reason(text, why):
    with pytest.raises(IsaError, match=re.escape(why)):
        isa.assemble(text)


def test_version_1_text_assembles_unchanged_and_the_new_operands_default_to_zero():
    ins = isa.assemble_line("GEMM a=3 w=4 k=8 stride=8 bits=4 signed=1 init=1 @pop_prev")
    assert (ins.mode, ins.wneg, ins.wshift) == (0, 0, 0)
    assert isa.disassemble(ins) == "GEMM a=3 w=4 k=8 stride=8 bits=4 signed=1 init=1 @pop_prev"


def test_every_token_counter_has_one_producer_stage_and_one_consumer_stage():
    """The token table's invariant that makes completion independent of timing (bebert.tokens)."""
    for c in isa.COUNTERS:
        pushers = [s for s, t in isa.TOKEN_FLAGS.items() for f, x in t.items() if x == c and f.startswith("push")]
        poppers = [s for s, t in isa.TOKEN_FLAGS.items() for f, x in t.items() if x == c and f.startswith("pop")]
        assert len(pushers) == 1 and len(poppers) == 1 and pushers != poppers, c
    used = {x for t in isa.TOKEN_FLAGS.values() for x in t.values()}
    assert used == set(isa.COUNTERS)
    assert all(set(t) <= set(isa.FLAG_NAMES) for t in isa.TOKEN_FLAGS.values())


def test_an_instruction_names_the_counters_its_flags_move():
    ins = isa.gemm(0, 0, 1, 1, 1, False, True, "pop_prev", "pop_next", "push_next")
    assert ins.pops == ("l2c", "s2c") and ins.pushes == ("c2s",)
    assert isa.load("abuf", 0, 0, 1, "pop_next", "push_next").pops == ("c2l",)
    assert isa.halt().pops == isa.halt().pushes == ()
