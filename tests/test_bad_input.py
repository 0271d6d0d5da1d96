"""Bad input and faults as a user meets them: one clear line, a non-zero exit, nothing lost, no hang.

Programs are validated once, where they are read (`bebert.program_check`), so `run`, `sim` and
`verify` refuse the same programs with the same line (exit 1: the program cannot run) before
any back end starts; an unreadable or edited program is exit 2, like any bad input.
"""

import json

import numpy as np
import pytest

from bebert import isa
from bebert.config import AccelConfig
from bebert.program import Program, _manifest_sha
from conftest import CONFIGS

SMALL = AccelConfig.from_toml(CONFIGS / "small.toml")
RUNNERS = ("run", "sim", "verify")


def hand_program(tmp_path, instrs, name="p", dram_bytes=4096):
    """Write a program of hand-made instructions (the Program constructor checks nothing of them)."""
    d = tmp_path / name
    Program(SMALL, instrs, np.zeros(dram_bytes, np.uint8), meta={"kind": "hand"}).write(d)
    return d


def refused_alike(cli, d, words):
    """`run`, `sim` and `verify` all exit 1 with the same one line naming `words`."""
    lines = set()
    for cmd in RUNNERS:
        r = cli(cmd, d)
        assert r.code == 1, (cmd, r.code, r.err)
        lines.add(r.one_line_error())
    assert len(lines) == 1, lines
    assert words in lines.pop()


def test_a_load_far_past_its_buffer_is_refused_at_once_by_run_sim_and_verify(cli, tmp_path):
    """The probe that made `verify` run for hours: 16M entries into a 32-entry buffer."""
    d = hand_program(tmp_path, [isa.load("abuf", 0, 0, (1 << 24) - 1), isa.halt()])
    refused_alike(cli, d, f"abuf entries [0, {(1 << 24) - 1}) but abuf holds {SMALL.abuf_entries}")


def test_dram_accesses_outside_the_image_are_refused(cli, tmp_path):
    d = hand_program(tmp_path, [isa.load("wbuf", 4096, 0, 1), isa.halt()])
    refused_alike(cli, d, "lies outside the 4096-byte image")
    d = hand_program(tmp_path, [isa.postcfg(0, 0, True, elem=2, pitch=64), isa.post(0, 1 << 20, 1, 1), isa.halt()],
                     name="post")
    refused_alike(cli, d, "outside the 4096-byte image")


def test_a_program_without_halt_says_so(cli, tmp_path):
    refused_alike(cli, hand_program(tmp_path, [isa.sync("compute")]), "program has no HALT")


def test_a_deadlock_and_leftover_tokens_are_refused(cli, tmp_path):
    d = hand_program(tmp_path, [isa.gemm(0, 0, 1, 1, 1, False, True, pop=["load"]), isa.halt()])
    refused_alike(cli, d, "pops load->compute before any push")
    d = hand_program(tmp_path, [isa.load("abuf", 0, 0, 1, push=["compute"]), isa.halt()], name="left")
    refused_alike(cli, d, "load->compute=1")


@pytest.fixture(scope="module")
def gemm_program(tmp_path_factory):
    from bebert import api

    d = tmp_path_factory.mktemp("gemm") / "g"
    api.compile("gemm:8,64,16,2", "small").write(d)
    return d


def edited(src, dst, edit, resign=False):
    """A copy of program `src` at `dst` with its manifest edited (and re-signed, as a tool would)."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    m = json.loads((dst / "manifest.json").read_text())
    edit(m)
    if resign:
        m["sha256"]["manifest"] = _manifest_sha(m)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize("name, edit", [
    ("pe_rows", lambda m: m["config"].update(pe_rows=2 * m["config"]["pe_rows"])),
    ("tensors", lambda m: m["tensors"][0].update(offset=16)),
    ("members", lambda m: m["meta"].update(members=3)),
    ("kind", lambda m: m["meta"].update(kind="model")),
    ("meta", lambda m: m.update(meta=[1])),
])
def test_an_edited_manifest_is_detected(cli, gemm_program, tmp_path, name, edit):
    d = edited(gemm_program, tmp_path / name, edit)
    for cmd in RUNNERS:
        r = cli(cmd, d)
        assert r.code == 2 and "manifest.json: checksum mismatch" in r.one_line_error(), (cmd, r.err)


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.update(meta=[1]), "manifest meta must be an object"),
    (lambda m: m["meta"].update(kind="model"), "model program: meta 'members' must be a positive integer"),
    (lambda m: m["meta"].update(output="nope"), "gemm program: meta 'output' 'nope' names no output tensor"),
    (lambda m: m["tensors"][0].update(offset=4.5), "offset, nbytes and shape must be integers"),
])
def test_a_resigned_manifest_still_meets_its_schema(cli, gemm_program, tmp_path, edit, words):
    d = edited(gemm_program, tmp_path / "p", edit, resign=True)
    for cmd in RUNNERS:
        r = cli(cmd, d)
        assert r.code == 2 and words in r.one_line_error(), (cmd, r.err)


def test_compile_never_overwrites_a_trained_package(cli, tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "manifest.json").write_text('{"format": "bebert-ensemble-package"}')
    (pkg / "weights.safetensors").write_bytes(b"trained weights")
    r = cli("compile", "--model", "gemm:4,64,8,2", "--config", "small", "--out", pkg)
    assert r.code == 2 and "not a program; refusing to overwrite it" in r.one_line_error()
    assert (pkg / "manifest.json").read_text() == '{"format": "bebert-ensemble-package"}'
    assert sorted(p.name for p in pkg.iterdir()) == ["manifest.json", "weights.safetensors"]


def test_a_recompile_removes_the_outputs_and_plots_of_the_old_program(cli, tmp_path):
    d = tmp_path / "g"
    assert cli("compile", "--model", "gemm:4,64,8,2", "--config", "small", "--out", d).code == 0
    assert cli("run", d).code == 0 and cli("sim", d, "--plot", d).code == 0
    assert (d / "outputs.npz").is_file() and (d / "timeline.png").is_file()
    assert cli("compile", "--model", "gemm:4,64,8,4", "--config", "small", "--out", d).code == 0
    assert sorted(p.name for p in d.iterdir()) == ["dram.bin", "manifest.json", "program.bin"]


def test_run_writes_its_outputs_only_to_an_npz_file(cli, gemm_program, tmp_path):
    r = cli("run", gemm_program, "--out", gemm_program / "manifest.json")
    assert r.code == 2 and "must be a .npz file" in r.one_line_error()
    assert cli("sim", gemm_program).code == 0  # the manifest is intact


@pytest.mark.parametrize("argv, words", [
    (("compile", "--model", "gemm:1048576,1048576,1048576,4", "--out", "{tmp}/g"), "elements; at most"),
    (("compile", "--model", "gemm:4,64,8,2", "--config", "{tmp}/c.toml", "--out", "{tmp}/g"),
     "'accelerator' must be a table"),
    (("stats", "{tmp}/c.toml"), "neither an ensemble package nor a run folder"),
])
def test_bad_command_lines_are_one_line(cli, tmp_path, argv, words):
    (tmp_path / "c.toml").write_text("accelerator = 5\n")
    r = cli(*(a.format(tmp=tmp_path) for a in argv))
    assert r.code == 2 and words in r.one_line_error()
    assert not (tmp_path / "g").exists()


def test_rtl_writes_only_into_a_folder_of_verilog(cli, gemm_program):
    r = cli("rtl", "--config", "small", "--out", gemm_program)
    assert r.code == 2 and "not a Verilog build; refusing to overwrite it" in r.one_line_error()
    assert sorted(p.name for p in gemm_program.iterdir()) == ["dram.bin", "manifest.json", "program.bin"]


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999"])
def test_a_seed_out_of_range_is_one_line(cli, tmp_path, seed):
    r = cli("compile", "--model", "synthetic:tiny", "--seed", seed, "--out", tmp_path / "s")
    assert r.code == 2 and "seed must be an integer in 0..4294967295" in r.one_line_error()
