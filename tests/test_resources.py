"""Resource figures from Yosys (`bebert.hw.resources`): a real synth_xilinx run on configs/small.toml.

The small config synthesizes in about half a minute; it runs once per session (module
fixture). The default and wide configs take minutes and are left to bench/bench_resources.py.
"""

import shutil
from pathlib import Path

import pytest

from bebert.config import AccelConfig
from bebert.hw.resources import (SUMMARY_KEYS, SynthesisError, block_of, parse_stat, report_from_stat,
                                 resource_report)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIG_DIR / "small.toml")
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None,
                                 reason="yosys not installed (Debian: apt-get install yosys)")


@pytest.fixture(scope="module")
def small_rtl(tmp_path_factory):
    """`bebert rtl --config configs/small.toml --out DIR --report`, as a user runs it: the
    Verilog and resources.json in DIR (one synthesis shared by the tests below)."""
    import contextlib
    import io
    import json

    from bebert.cli import main

    out = tmp_path_factory.mktemp("rtl_small")
    with contextlib.redirect_stdout(io.StringIO()) as printed, contextlib.redirect_stderr(io.StringIO()):
        code = main(["rtl", "--config", str(CONFIG_DIR / "small.toml"), "--out", str(out), "--report"])
    assert code == 0
    summary = json.loads(printed.getvalue())
    assert summary["verilog"] == str(out / "bebert_accel.v") and summary["report"] == str(out / "resources.json")
    return out


@pytest.fixture(scope="module")
def small_report(small_rtl):
    import json
    return json.loads((small_rtl / "resources.json").read_text())


def lint_kinds(verilog: Path) -> set[str]:
    """Verilator's warning / error kinds on `verilog` (it must exit 0 with -Wno-fatal)."""
    import re
    import subprocess

    r = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "--top-module", "bebert_accel", str(verilog)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return set(re.findall(r"^%(Warning-[A-Z0-9_]+|Error[^:]*)", r.stderr, re.M))


needs_verilator = pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")


@needs_yosys
@needs_verilator
def test_cli_rtl_report_verilog_lints_with_width_warnings_only(small_rtl):
    assert lint_kinds(small_rtl / "bebert_accel.v") <= {"Warning-WIDTH"}


@needs_verilator
@pytest.mark.slow
def test_default_config_verilog_lints_with_width_warnings_only(tmp_path):
    from bebert.cli import main

    assert main(["rtl", "--config", str(CONFIG_DIR / "default.toml"), "--out", str(tmp_path)]) == 0
    assert lint_kinds(tmp_path / "bebert_accel.v") <= {"Warning-WIDTH"}


@needs_yosys
def test_small_report_has_positive_luts_and_flip_flops(small_report):
    r = small_report
    assert r["flow"] == "synth_xilinx" and r["tool"].startswith("yosys ")
    assert r["config"] == "small" and r["clock_mhz"] == SMALL.clock_mhz
    assert r["total"]["luts"] > 0 and r["total"]["luts_total"] >= r["total"]["luts"]
    assert r["total"]["ffs"] > 0
    assert "synth_seconds" in r
    assert r["peak_binary_ops_per_s_per_lut"] > 0


@needs_yosys
def test_blocks_sum_to_the_total(small_report):
    r = small_report
    for key in SUMMARY_KEYS:
        assert sum(b[key] for b in r["blocks"].values()) == pytest.approx(r["total"][key]), key
    modules = [m for b in r["blocks"].values() for m in b["modules"]]
    assert sorted(modules) == sorted(r["modules"])  # every module in exactly one block


@needs_yosys
def test_every_top_level_block_is_reported(small_report):
    blocks = small_report["blocks"]
    for b in ("control", "fetch", "tokens", "queues", "load_dma", "store_dma", "compute_control",
              "popcount_array", "bitserial_accumulator", "post", "abuf", "wbuf", "pbuf", "obuf"):
        assert b in blocks, b
    # The PE array is where the logic is.
    array = blocks["popcount_array"]["luts"] + blocks["bitserial_accumulator"]["luts"]
    assert array > blocks["fetch"]["luts"] + blocks["load_dma"]["luts"] + blocks["store_dma"]["luts"]


@needs_yosys
def test_buffers_map_to_block_or_distributed_ram(small_report):
    blocks = small_report["blocks"]
    for b in ("abuf", "wbuf", "pbuf", "obuf"):
        memory = blocks[b]["bram36_equiv"] + blocks[b]["lutram_luts"]
        assert memory > 0, f"{b} was not mapped to RAM: {blocks[b]['cells']}"
        assert blocks[b]["luts"] == 0, f"{b} built from logic: {blocks[b]['cells']}"
        # only the registered read port may use flip-flops, never the storage itself
        assert blocks[b]["ffs"] <= SMALL.entry_bits[b]
    # 4 KiB ABUF and WBUF are block RAM.
    assert blocks["abuf"]["bram36_equiv"] > 0 and blocks["wbuf"]["bram36_equiv"] > 0


@needs_yosys
def test_peak_throughput_per_lut(small_report):
    r = small_report
    ops = 2 * SMALL.pe_rows * SMALL.pe_cols * SMALL.xnor_width * SMALL.clock_hz
    assert r["peak_binary_ops_per_s"] == ops
    assert r["peak_binary_ops_per_s_per_lut"] == pytest.approx(ops / r["total"]["luts_total"])
    assert r["peak_binary_ops_per_s_per_array_lut"] > r["peak_binary_ops_per_s_per_lut"]


STAT = """
=== top ===

   Number of wires:                  4
   Number of cells:                  5
     FDRE                            2
     LUT6                            1
     top.kid                         2

=== top.kid ===

   Number of cells:                  4
     LUT2                            1
     RAM32M                          1
     RAMB18E1                        1
     DSP48E1                         1

=== design hierarchy ===

   top                               1
     top.kid                         2
"""


def test_stat_parsing_counts_instances():
    mods = parse_stat(STAT)
    assert mods == {"top": {"FDRE": 2, "LUT6": 1, "top.kid": 2},
                    "top.kid": {"LUT2": 1, "RAM32M": 1, "RAMB18E1": 1, "DSP48E1": 1}}
    r = report_from_stat(SMALL, STAT, top="top")
    t = r["total"]
    assert (t["luts"], t["lutram_luts"], t["luts_total"], t["ffs"]) == (3, 8, 11, 2)
    assert (t["bram18"], t["bram36_equiv"], t["dsp"]) == (2, 1.0, 2)
    assert r["modules"]["top.kid"]["instances"] == 2


def test_block_names():
    assert block_of("bebert_accel") == "control"
    assert block_of("bebert_accel.compute.popcount") == "popcount_array"
    assert block_of("bebert_accel.load.issuer") == "load_dma"
    assert block_of("bebert_accel.something_new.inner") == "something_new"


def test_missing_yosys_is_one_clear_error(tmp_path):
    (tmp_path / "bebert_accel.v").write_text("module bebert_accel(); endmodule\n")
    with pytest.raises(SynthesisError, match="not found on PATH"):
        resource_report(SMALL, tmp_path, yosys="yosys-that-does-not-exist")
    assert issubclass(SynthesisError, ValueError)


def test_missing_verilog_is_one_clear_error(tmp_path):
    with pytest.raises(SynthesisError, match="no Verilog"):
        resource_report(SMALL, tmp_path)


@needs_yosys
def test_timeout_is_one_clear_error(tmp_path):
    from bebert.hw import generate_verilog
    generate_verilog(SMALL, tmp_path)
    with pytest.raises(SynthesisError, match="timed out after 0.5 s"):
        resource_report(SMALL, tmp_path, timeout_s=0.5)
