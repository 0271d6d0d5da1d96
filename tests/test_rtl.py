"""Whole programs on the v3 RTL (cocotb) through `bebert.hw.verify.verify`.

Every run is held to the golden executor (DRAM bytes) and the simulator (cycle count and error
flag): hand-assembled programs covering every opcode, illegal words, random race-free programs
mixing the four stages, random token traffic (timing only) and a slow memory (same bytes, more
cycles). Builds are cached (~/.cache/bebert/rtl), so only the first run per config pays for
Verilog generation and compilation. The default suite runs the small config; other lane
counts and configs are `slow`.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from bebert import integer_ops as I
from bebert import layout as lay
from bebert.config import AccelConfig
from bebert.hw import simulators
from bebert.isa import FIELDS, POP_LSB, PUSH_LSB, Op, encode, gemm, halt, load, post, postcfg, sync, vec
from bebert.program import Program
from bebert.vector import VecFn, View, consts_words, encode_desc, io_word
from conftest import small4_config

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not simulators.installed(), reason="no RTL simulator installed (Verilator or Icarus)")]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = {n: AccelConfig.from_toml(CONFIG_DIR / f"{n}.toml") for n in ("small", "default", "wide")}
SMALL = small4_config()  # small with 4 lanes: what the hand computations assume


def verify(*args, **kw):
    from bebert.hw.verify import verify as _verify
    return _verify(*args, **kw)


def run_rtl(*args, **kw):
    from bebert.hw.verify import run_rtl as _run_rtl
    return _run_rtl(*args, **kw)


def small_program(instrs, dram_bytes=8192, seed=0, config=SMALL):
    rng = np.random.default_rng(seed)
    return Program(config=config, instrs=instrs, dram=rng.integers(0, 256, dram_bytes, dtype=np.uint8))


def one_off_simulator():
    """For a test that needs a build of its own (waveforms, a config no other test uses): Icarus,
    which compiles a design in seconds where Verilator's C++ takes about a minute; a simulator asked for
    (`--simulator`, $BEBERT_SIMULATOR) wins, and without Icarus the default one runs it."""
    return None if simulators.requested() or simulators.find("icarus") is None else "icarus"


def assert_passed(res):
    assert res["passed"], res
    assert res["rtl_cycles"] == res["sim_cycles"] == res["rtl_observed_cycles"]


def test_halt_only_takes_three_cycles():
    res = verify(small_program([halt()]))
    assert_passed(res)
    assert res["rtl_cycles"] == 3  # FETCH 0, DECODE HALT 1, stopped and idle in 2


def test_load_then_sync_hand_timed():
    # LOAD issues in cycle 2 and runs D = L + n * beats = 4 + 2 cycles (3..8); its token is
    # visible in 9, when the SYNC (queued since 5) issues; the SYNC runs in 10, all idle in 11.
    res = verify(small_program([load("abuf", 0, 0, 1, push=["compute"]), sync("compute", pop=["load"]), halt()]))
    assert_passed(res)
    assert res["rtl_cycles"] == 12


# -- every opcode, by hand ---------------------------------------------------------------------
def every_kind_program(config=SMALL) -> Program:
    """Each opcode and buffer, GEMM in XNOR and AND mode (wbits, signed operands, snap), the three
    output formats (stream elements, packed planes over two tiles of one word, transposed pm1),
    a tile-engine and a scalar-engine VEC, SYNC in all four stages, tokens between every pair
    of stages that has a hazard."""
    c = config
    R, C, T, W = c.pe_rows, c.pe_cols, c.vec_lanes, c.xnor_width
    rng = np.random.default_rng(5)
    dram = rng.integers(0, 256, 16384, dtype=np.uint8)
    dram[0x1000:] = 0
    params = np.stack([rng.integers(-1 << 12, 1 << 12, 2 * C), rng.integers(-1 << 10, 1 << 10, 2 * C)], 1)
    dram[0x200:0x200 + 16 * C] = np.frombuffer(params.astype("<i4").tobytes(), np.uint8)  # PBUF: (mult, bias)

    def put(at: int, data: bytes) -> int:
        dram[at:at + len(data)] = np.frombuffer(data, np.uint8)
        return at

    S = lay.stream_layout(R - 1, C, T, 2, True, row_align=R)  # stream tensor of int16, R - 1 rows
    S_AT, P_AT, X_AT = 0x1000, 0x1400, 0x1800
    rq = put(0x2000, consts_words(VecFn.REQUANT, I.prepare_requant(0.01, 0.07, 6, True, in_bits=16)))
    rq_out = lay.stream_layout(R - 1, C, T, 1, True, row_align=R)
    rq_desc = put(0x2100, encode_desc(VecFn.REQUANT, src=View.stream(S_AT, S), consts=rq,
                                      out=View.stream(0x2200, rq_out)))
    x = put(0x2400, rng.integers(-100, 100, (2, 5)).astype("<i2").tobytes())
    wt = put(0x2480, rng.integers(-100, 100, (3, 5)).astype("<i2").tobytes())
    bias = put(0x2500, rng.integers(-1000, 1000, 3).astype("<i8").tobytes())
    dot_desc = put(0x2600, encode_desc(VecFn.DOT, src=View.row_major(x, 5, 2), weight=View.row_major(wt, 5, 2),
                                       bias=bias, out=View.row_major(0x2700, 3, 8)))
    instrs = [
        sync("output", push=["compute"]),                        # the snapshot is free
        load("wbuf", 0x000, 0, 8),
        load("pbuf", 0x200, 0, 2, push=["output"]),
        load("abuf", 0x300, 0, 8, push=["compute"]),
        gemm(0, 0, 2, 2, 3, True, True, pop=["load"]),           # XNOR, 3 signed planes
        gemm(0, 2, 2, 2, 3, True, False, pop=["output"], push=["output"], mode=1, wbits=2, wstride=2,
             wsigned=True, snap=True),                           # AND, 2 signed weight planes, snap
        postcfg(0, 12, True, 6, elem=1, pitch=S["pitch"], pop=["load"]),
        post(0, S_AT, C, R - 1, pop=["compute"], push=["compute", "vec"]),  # stream; tells VECTOR: waits for responses
        gemm(4, 6, 1, 1, 8, False, True, pop=["output"], push=["output"], snap=True),
        postcfg(1, 2, True, 9, group=R, pitch=0x100, gstride=0x80),
        post(1, P_AT, C, R, pos=0, pop=["compute"]),             # packed: two tiles of one word
        post(1, P_AT, C - 1, R, pos=C, flush=True, push=["compute"]),
        vec(VecFn.REQUANT, rq_desc, R - 1, C, pop=["output"], push=["load"], io=io_word(True, False, 2, 1)),
        sync("load", pop=["vec"], push=["compute"]),
        sync("compute", pop=["output", "load"]),
        gemm(0, 0, 1, 1, 1, False, True, push=["output"], snap=True),
        postcfg(2, 1, pm1=True, group=C, pitch=0x100, gstride=0x80),
        post(0, X_AT, C, R, flush=True, pop=["compute"], push=["vec"]),  # transposed, +-1
        vec(VecFn.DOT, dot_desc, 2, 5, aux=3, pop=["output"]),
        sync("vec"),
        halt(),
    ]
    return Program(config=config, instrs=instrs, dram=dram)


def test_every_instruction_kind_matches_golden_and_simulator():
    from bebert.tokens import check_tokens

    prog = every_kind_program()
    check_tokens(prog.instrs)
    assert {i.op for i in prog.instrs} == set(Op)
    assert_passed(verify(prog))


# -- illegal words ---------------------------------------------------------------------------------
def _set(word: int, op: Op, name: str, value: int) -> int:
    lsb, width = FIELDS[op][name]
    return word & ~(((1 << width) - 1) << lsb) | value << lsb


G1, PC1, P1 = (encode(i) for i in (gemm(0, 0, 1, 1, 1, False, True), postcfg(1, 2), post(0, 0, 1, 1)))
ILLEGAL = {
    "zero word": 0,
    "v2 STORE": 0x02,
    "unknown opcode 0x30": 0x30,
    "own-stage pop": encode(load("abuf", 0, 0, 1)) | 1 << POP_LSB,
    "own-stage push (SYNC)": encode(sync("vec")) | 1 << PUSH_LSB + 3,
    "HALT with a token": encode(halt()) | 1 << POP_LSB + 1,
    "LOAD buf=3": _set(encode(load("abuf", 0, 0, 1)), Op.LOAD, "buf", 3),
    "LOAD n=0": _set(encode(load("abuf", 0, 0, 1)), Op.LOAD, "n", 0),
    "GEMM bits=0": _set(G1, Op.GEMM, "bits", 0),
    "GEMM bits=9": _set(G1, Op.GEMM, "bits", 9),
    "GEMM k=0": _set(G1, Op.GEMM, "k", 0),
    "XNOR GEMM wbits=2": _set(G1, Op.GEMM, "wbits", 2),
    "POSTCFG fmt=3": _set(PC1, Op.POSTCFG, "fmt", 3),
    "POSTCFG packed obits=9": _set(PC1, Op.POSTCFG, "obits", 9),
    "POSTCFG stream obits=17": _set(_set(PC1, Op.POSTCFG, "fmt", 0), Op.POSTCFG, "obits", 17),
    "POSTCFG group=3": _set(PC1, Op.POSTCFG, "group", 3),
    "POST cols=0": _set(P1, Op.POST, "cols", 0),
    "POST rows past the array": _set(P1, Op.POST, "rows", SMALL.pe_rows + 1),
    "POST pos past the word": _set(P1, Op.POST, "pos", SMALL.xnor_width),
    "VEC unknown fn": _set(encode(vec(VecFn.GELU, 0, 1, 1, io=1)), Op.VEC, "fn", 99),
    "VEC without an output": encode(vec(VecFn.GELU, 0, 1, 1, io=1)) & ~(1 << FIELDS[Op.VEC]["io"][0]),
}


# The decoder equals `decode` + `check_config` on thousands of words (tests/test_hw_control.py);
# here a few words per kind go through the whole machine, the rest are `slow`.
FAST_ILLEGAL = ("zero word", "v2 STORE", "own-stage pop", "LOAD n=0", "POSTCFG group=3", "POST rows past the array",
                "VEC unknown fn")


@pytest.mark.parametrize("name", [n if n in FAST_ILLEGAL else pytest.param(n, marks=pytest.mark.slow)
                                  for n in ILLEGAL])
def test_illegal_word_stops_fetch_with_error_and_the_machine_drains(name):
    words = [encode(i) for i in (load("abuf", 0, 0, 2, push=["compute"]), sync("compute", pop=["load"]),
                                 sync("output", push=["vec"]), sync("vec", pop=["output"]))]
    words += [ILLEGAL[name], encode(sync("load")), encode(halt())]
    res = verify(small_program([halt()]), raw_words=words)
    assert res["rtl_error"] and res["sim_error"], res
    assert res["rtl_error_code"] == 1 and res["rtl_error_pc"] == 4
    assert_passed(res)


def test_illegal_first_word():
    res = verify(small_program([halt()]), raw_words=[0])
    assert res["rtl_error"] and res["rtl_cycles"] == 3
    assert_passed(res)


def test_a_width_the_machine_is_not_built_for_is_illegal():
    cfg = SMALL.replace(name="small-w124", act_bits=(1, 2, 4))
    words = [encode(sync("load")), encode(gemm(0, 0, 1, 1, 3, False, True)), encode(halt())]
    res = run_rtl(cfg, words, np.zeros(64, np.uint8), simulator=one_off_simulator())
    assert res["done"] and (res["error"], res["error_code"], res["error_pc"]) == (True, 1, 1)


def test_vec_fault_is_reported_and_the_machine_finishes():
    """A VEC whose descriptor the vector unit cannot process (its constant block is zero)."""
    from bebert.hw import ErrorCode

    desc = encode_desc(VecFn.REQUANT, src=View.row_major(0x100, 4), consts=0x300, out=View.row_major(0x200, 4))
    dram = np.zeros(1024, np.uint8)
    dram[0x40:0x40 + len(desc)] = np.frombuffer(desc, np.uint8)
    res = run_rtl(SMALL, [encode(vec(VecFn.REQUANT, 0x40, 1, 4, io=io_word())), encode(halt())], dram)
    assert res["done"] and (res["error"], res["error_code"]) == (True, ErrorCode.VEC_FAULT)


# -- random programs -------------------------------------------------------------------------------
def random_program(seed, config=SMALL, n=24, **kw):
    from bebert.sim.random_programs import random_test_program
    return random_test_program(np.random.default_rng(seed), config, n, **kw)


@pytest.mark.parametrize("seed", range(3))
def test_random_race_free_programs_match_golden_and_simulator(seed):
    assert_passed(verify(random_program(seed)))


@pytest.mark.parametrize("fn", [VecFn.VOTE, VecFn.VOTE_AVERAGE, VecFn.VOTE_MEAN, VecFn.VOTE_MEDIAN],
                         ids=lambda f: f.name)
def test_a_random_program_with_the_vote_matches_golden_and_simulator(fn):
    """A vote kernel among the other instructions (random programs draw each rarely: the first seed that does)."""
    seed = next(s for s in range(400) if any(i.op == Op.VEC and i.args["fn"] == fn
                                             for i in random_program(s).instrs))
    assert_passed(verify(random_program(seed)))


@pytest.mark.parametrize("seed", range(2))
def test_random_token_traffic_keeps_the_simulators_cycles(seed):
    """Unstructured token traffic: buffer and DRAM contents may race, so only timing and errors count."""
    res = verify(random_program(100 + seed, n=30, tokens=True, max_n=8, max_k=8))
    assert res["cycles_match"] and res["rtl_error"] == res["sim_error"] == False, res  # noqa: E712


@pytest.mark.parametrize("seed", [0, 1])
def test_backpressure_changes_cycles_not_results(seed):
    """A slow memory (requests and writes refused, read beats and instruction words late, late
    write responses on all four ports): the golden DRAM image, bit for bit, in more cycles."""
    from bebert.compiler import golden
    from bebert.sim import simulate

    prog = every_kind_program() if seed == 0 else random_program(7)
    slow = run_rtl(SMALL, [encode(i) for i in prog.instrs], prog.dram, stall=0.3, seed=seed)
    assert slow["done"] and not slow["error"]
    assert np.array_equal(slow["dram"], golden.execute(prog))
    assert slow["cycles"] > simulate(prog).cycles


@pytest.mark.parametrize("lanes", [1, 16] + [pytest.param(t, marks=pytest.mark.slow) for t in (2, 8)])
def test_random_programs_on_every_lane_count(lanes):
    """The stream layout's row tiles, the output path's runs and the vector unit's tiles follow
    `vec_lanes` (one build per lane count: 1 and 16 in the default suite)."""
    cfg = SMALL.replace(name=f"small-t{lanes}", vec_lanes=lanes)
    for seed in range(1 if lanes in (1, 16) else 3):
        assert_passed(verify(random_program(seed, cfg)))


@pytest.mark.slow
@pytest.mark.parametrize("config", ["small", "default", "wide"])
def test_random_programs_many_seeds(config):
    for seed in range(10, 16):
        assert_passed(verify(random_program(seed, CONFIGS[config], 30)))
        res = verify(random_program(seed, CONFIGS[config], 30, tokens=True))
        assert res["cycles_match"] and res["rtl_error"] == res["sim_error"], res


@pytest.mark.slow
def test_backpressure_on_many_random_programs():
    from bebert.compiler import golden

    for seed in range(20, 26):
        prog = random_program(seed, n=30)
        slow = run_rtl(SMALL, [encode(i) for i in prog.instrs], prog.dram, stall=0.5, seed=seed)
        assert slow["done"] and np.array_equal(slow["dram"], golden.execute(prog))


# -- compiled programs -------------------------------------------------------------------------------
def compiled(spec, config):
    from bebert.compiler import compile_spec
    return compile_spec(spec, config)


@pytest.mark.parametrize("spec", ["gemm:13,70,9,2", "gemm:5,33,7,3", "gemm:16,64,16,5"])
def test_compiled_gemms_on_small(spec):
    """The compiler's programs (any activation width): golden bytes and simulator cycles."""
    assert_passed(verify(compiled(spec, SMALL)))


@pytest.mark.slow
@pytest.mark.parametrize("spec,config", [("gemm:37,300,129,3", "default"), ("gemm:30,300,20,7", "wide"),
                                         ("gemm:40,200,24,8", "small"), ("gemm:64,256,64,1", "small")])
def test_compiled_gemms_larger(spec, config):
    assert_passed(verify(compiled(spec, CONFIGS[config])))


# -- the build, the ports, the tools ---------------------------------------------------------------
def test_generated_verilog_is_deterministic_with_the_documented_ports(tmp_path):
    from bebert.hw import generate_verilog
    from bebert.hw.verify import cached_verilog

    a = generate_verilog(SMALL, tmp_path / "a").read_text()
    b = cached_verilog(SMALL)  # generated by another run, usually in another process
    assert a == b and "module bebert_accel(" in a
    bus = SMALL.bus_bits
    for port, width in (("rd_req_valid", 1), ("rd_req_len", 32), ("rd_data", bus), ("owr_strb", bus // 8),
                        ("owr_resp_valid", 1), ("vrd_req_addr", 32), ("vwr_data", bus), ("imem_data", 128),
                        ("error_code", 4), ("cycles", 32)):
        decl = f"[{width - 1}:0] {port};" if width > 1 else f"{port};"
        assert re.search(rf"^\s*(input|output) {re.escape(decl)}", a, re.M), port


@pytest.mark.skipif(simulators.find("verilator") is None, reason="verilator not installed")
@pytest.mark.parametrize("config", ["small", pytest.param("wide", marks=pytest.mark.slow),
                                    pytest.param("default", marks=pytest.mark.slow)])
def test_verilator_lint(tmp_path, config):
    """Amaranth's Verilog always carries WIDTH and the backend's case / constant warnings
    (`simulators.GENERATED_KINDS`); anything else (a multi-driven signal, a combinational loop,
    an undriven output) is a regression."""
    from bebert.hw import generate_verilog
    path = generate_verilog(CONFIGS[config], tmp_path)
    kinds = simulators.lint(path, "bebert_accel")
    assert kinds <= simulators.LINT_CLEAN, sorted(kinds)


def test_deadlock_times_out_instead_of_hanging():
    res = run_rtl(SMALL, [encode(sync("compute", pop=["load"])), encode(halt())], np.zeros(64, np.uint8),
                  timeout_cycles=200)
    assert res["timed_out"] and not res["done"]
    # verify: the simulator reports the deadlock and the RTL does not finish either, yet a
    # deadlock is a failure with its reason, never a pass
    res = verify(small_program([halt()]), raw_words=[encode(sync("compute", pop=["load"])), encode(halt())],
                 timeout_cycles=300)
    assert not res["passed"] and res["rtl_timed_out"] and res["cycles_match"], res
    assert res["reason"].startswith("deadlock at cycle") and "the RTL did not finish either" in res["reason"]


def test_past_the_cycle_budget_verify_fails_with_the_reason():
    res = verify(small_program([load("abuf", 0, 0, 1, push=["compute"]), sync("compute", pop=["load"]), halt()]),
                 timeout_cycles=5)
    assert not res["passed"] and res["rtl_timed_out"]
    assert "did not finish within the cycle budget of 5 cycles" in res["reason"]


def _waves_are_dumped(tmp_path, monkeypatch, simulator):
    prog = small_program([load("abuf", 0, 0, 1, push=["compute"]), sync("compute", pop=["load"]), halt()])
    prog.write(tmp_path / "tiny")
    res = verify(tmp_path / "tiny", waves=tmp_path / "w", simulator=simulator)
    assert_passed(res)
    assert res["waves"] == str(tmp_path / "w" / "tiny.fst") and Path(res["waves"]).stat().st_size > 0
    monkeypatch.setenv("BEBERT_WAVES", str(tmp_path / "env"))
    res = verify(prog, simulator=simulator)
    assert res["waves"] == str(tmp_path / "env" / "waves.fst") and Path(res["waves"]).is_file()


def test_waves_are_dumped(tmp_path, monkeypatch):
    """A waveform build is a build of its own: on Icarus in the default suite (seconds)."""
    _waves_are_dumped(tmp_path, monkeypatch, one_off_simulator())


@pytest.mark.slow
@pytest.mark.skipif(simulators.find("verilator") is None, reason="verilator not installed")
def test_waves_are_dumped_by_verilator(tmp_path, monkeypatch):
    """Verilator's `--trace-fst` build (minutes of C++)."""
    _waves_are_dumped(tmp_path, monkeypatch, "verilator")


def test_bad_waves_request_is_one_clear_error(tmp_path):
    from bebert.hw.verify import WavesError, waves_request

    (tmp_path / "file").write_text("")
    with pytest.raises(WavesError, match="cannot create waveform directory"):
        waves_request(tmp_path / "file" / "sub")
    assert issubclass(WavesError, OSError)


def test_cli_verify_passes_every_kind_program(capsys, tmp_path):
    from bebert.cli import main

    every_kind_program().write(tmp_path / "v")
    assert main(["verify", str(tmp_path / "v")]) == 0
