"""The command line: bad input gives one clear line and a non-zero exit, never a traceback."""

import pytest

from bebert.cli import main


# Keys every `bebert sim --json` summary carries (their presence, not their values).
SIM_SUMMARY_KEYS = {"cycles", "seconds", "dram_bytes", "utilization"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bebert: error:"), err
    assert words in lines[0], lines[0]


def test_missing_program_directory(capsys, tmp_path):
    for cmd in ("run", "sim", "verify", "disasm"):
        code, _, err = run(capsys, cmd, str(tmp_path / "nope"))
        assert_one_line_error(code, err, "program directory not found")


def test_invalid_config_file(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[accelerator]\npe_rows = 5\n")
    code, _, err = run(capsys, "rtl", "--config", str(cfg), "--out", str(tmp_path / "rtl"))
    assert_one_line_error(code, err, "pe_rows must be a power of two")
    code, _, err = run(capsys, "compile", "--model", "gemm:4,4,4,4", "--config", str(tmp_path / "x.toml"),
                       "--out", str(tmp_path / "p"))
    assert_one_line_error(code, err, "config file not found")


def test_corrupted_program(capsys, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "manifest.json").write_text("{}")
    (d / "program.bin").write_bytes(b"\x00" * 5)
    (d / "dram.bin").write_bytes(b"")
    code, _, err = run(capsys, "sim", str(d))
    assert_one_line_error(code, err, "not a bebert-program manifest")


def test_usage_errors_exit_non_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2


@pytest.mark.rtl
def test_compile_run_sim_disasm_verify_as_a_user_would(capsys, tmp_path):
    import json
    from pathlib import Path

    import numpy as np

    from bebert import isa

    cfg = Path(__file__).resolve().parents[1] / "configs" / "small.toml"
    prog = tmp_path / "g"
    code, out, _ = run(capsys, "compile", "--model", "gemm:13,70,9,2", "--config", str(cfg), "--out", str(prog))
    assert code == 0 and json.loads(out)["instructions"] > 0
    code, out, _ = run(capsys, "run", str(prog))
    assert code == 0 and np.load(prog / "outputs.npz")["y"].shape == (13, 9)
    code, out, _ = run(capsys, "sim", str(prog), "--json")
    sim = json.loads(out)
    assert code == 0 and SIM_SUMMARY_KEYS <= set(sim)
    code, out, _ = run(capsys, "disasm", str(prog))
    assert code == 0 and isa.assemble(out)[-1] == isa.halt()
    code, out, _ = run(capsys, "verify", str(prog))
    v = json.loads(out)
    assert code == 0 and v["outputs_match"] and v["rtl_cycles"] == v["sim_cycles"] == sim["cycles"]
