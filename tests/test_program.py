"""The program container: written atomically, read back with validation."""

import json

import numpy as np
import pytest

from bebert import isa
from bebert.config import AccelConfig
from bebert.program import FORMAT_VERSION, Program, ProgramError, Tensor, _manifest_sha


def rewrite_manifest(d, m):
    """Write manifest `m` into program folder `d` re-signed, as a tool that edits programs would."""
    m["sha256"]["manifest"] = _manifest_sha(m)
    (d / "manifest.json").write_text(json.dumps(m))


def small_program() -> Program:
    cfg = AccelConfig().replace(name="t")
    instrs = [isa.load("wbuf", 0, 0, 1, push=["compute"]), isa.sync("compute", pop=["load"]), isa.halt()]
    dram = np.arange(512, dtype=np.uint8)
    tensors = [Tensor("w", "weight", 0, 128, (16, 64)), Tensor("y", "output", 256, 256, (1, 64))]
    return Program(cfg, instrs, dram, tensors, meta={"kind": "test"})


def test_write_then_read_gives_the_same_program(tmp_path):
    p = small_program()
    p.write(tmp_path / "p")
    q = Program.read(tmp_path / "p")
    assert q.config == p.config and q.instrs == p.instrs and q.tensors == p.tensors
    assert np.array_equal(q.dram, p.dram) and q.meta == p.meta
    assert not list((tmp_path / "p").glob(".*.tmp")), "no temporary files left behind"


def test_corruption_and_truncation_are_detected(tmp_path):
    d = small_program().write(tmp_path / "p")
    code = (d / "program.bin").read_bytes()
    (d / "program.bin").write_bytes(code[:-3])
    with pytest.raises(ProgramError, match="truncated"):
        Program.read(d)
    (d / "program.bin").write_bytes(code[:-1] + b"\x55")
    with pytest.raises(ProgramError, match="checksum mismatch"):
        Program.read(d)
    (d / "program.bin").write_bytes(code)
    image = bytearray((d / "dram.bin").read_bytes())
    image[7] ^= 1
    (d / "dram.bin").write_bytes(bytes(image))
    with pytest.raises(ProgramError, match="dram.bin: checksum mismatch"):
        Program.read(d)


def test_malformed_or_missing_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(ProgramError, match="not found"):
        Program.read(tmp_path / "nothing")
    d = small_program().write(tmp_path / "p")
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ProgramError, match="not valid JSON"):
        Program.read(d)
    m = json.loads(json.dumps({"format": "bebert-program", "format_version": FORMAT_VERSION, "isa_version": 99}))
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ProgramError, match="ISA version 99"):
        Program.read(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ProgramError, match="missing manifest.json"):
        Program.read(d)


def test_unknown_opcode_in_a_program_file_is_refused(tmp_path):
    d = small_program().write(tmp_path / "p")
    m = json.loads((d / "manifest.json").read_text())
    bad = bytes(16)  # opcode 0x00
    (d / "program.bin").write_bytes(bad)
    import hashlib
    m["n_instructions"] = 1
    m["sha256"]["program.bin"] = hashlib.sha256(bad).hexdigest()
    rewrite_manifest(d, m)
    with pytest.raises(ProgramError, match="instruction 0: unknown opcode 0x00"):
        Program.read(d)


def test_tensors_must_lie_inside_the_image():
    with pytest.raises(ProgramError, match="outside"):
        Program(AccelConfig(), [isa.halt()], np.zeros(64, np.uint8), [Tensor("y", "output", 32, 64)])
    with pytest.raises(ProgramError, match="bus beats"):
        Program(AccelConfig(), [isa.halt()], np.zeros(65, np.uint8))
