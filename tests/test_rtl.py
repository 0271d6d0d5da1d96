"""Whole programs on the RTL (cocotb + Icarus) through `bebert.hw.verify.verify`.

Every run is held to the golden executor (output bytes) and the simulator (cycle count and
error flag). Builds are cached (~/.cache/bebert/rtl), so only the first run per config pays
for Verilog generation and compilation.
"""

from pathlib import Path

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators
from bebert.isa import encode, gemm, halt, load, post, store, sync, vec
from bebert.vector import VecFn
from bebert.program import Program

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not simulators.installed(), reason="no RTL simulator installed (Verilator or Icarus)")]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = {n: AccelConfig.from_toml(CONFIG_DIR / f"{n}.toml") for n in ("small", "default", "wide")}
SMALL = CONFIGS["small"]


def verify(*args, **kw):
    from bebert.hw.verify import verify as _verify
    return _verify(*args, **kw)


def small_program(instrs, dram_bytes=2048, seed=0):
    rng = np.random.default_rng(seed)
    return Program(config=SMALL, instrs=instrs, dram=rng.integers(0, 256, dram_bytes, dtype=np.uint8))


def assert_passed(res):
    assert res["passed"], res
    assert res["rtl_cycles"] == res["sim_cycles"] == res["rtl_observed_cycles"]


def test_halt_only_takes_three_cycles():
    res = verify(small_program([halt()]))
    assert_passed(res)
    assert res["rtl_cycles"] == 3  # FETCH 0, DECODE HALT 1, stopped and idle in 2


def test_load_then_sync_hand_timed():
    # LOAD issues in cycle 2 and runs D = L + n*beats = 4 + 2 cycles (3..8); its l2c token is
    # visible in 9, when SYNC (queued since 3) issues; SYNC runs in 10, all idle in 11.
    res = verify(small_program([load("abuf", 0, 0, 1, "push_next"), sync("pop_prev"), halt()]))
    assert_passed(res)
    assert res["rtl_cycles"] == 12


def every_kind_program():
    """Each opcode, each buffer, every flag a stage can carry."""
    c = SMALL
    return [
        load("wbuf", 0x000, 0, 4),
        load("pbuf", 0x200, 0, 1),
        load("abuf", 0x300, c.abuf_entries - 8, 8, "push_next"),
        gemm(c.abuf_entries - 8, 0, 2, 4, 2, True, True, "pop_prev"),
        gemm(c.abuf_entries - 8, 0, 1, 2, 1, False, False),
        post(0, 0, 3, 0, True, "push_next"),
        post(0, c.pe_rows, 5, 4, False),
        post(0, 2 * c.pe_rows, 0, 1, True, "push_next"),
        store(0x600, 0, c.pe_rows, "pop_prev", "push_prev"),
        sync("pop_next", "push_prev"),
        load("abuf", 0x400, 0, 2, "pop_next", "push_next"),
        gemm(0, 1, 2, 1, 8, True, True, "pop_prev"),
        post(0, c.obuf_entries - c.pe_rows, 12, 8, True, "push_next"),
        store(0x700, 2 * c.pe_rows - c.pe_rows, 2 * c.pe_rows, "pop_prev"),
        store(0x780, c.obuf_entries - 2, 2, "pop_prev"),
        halt(),
    ]


def test_every_instruction_kind_and_flag():
    assert_passed(verify(small_program(every_kind_program(), seed=1)))


def test_buffer_addresses_wrap():
    """Hardware wraps buffer addresses modulo the entry count (the golden executor refuses
    them): a wrapping program must leave the same DRAM as its split, non-wrapping twin."""
    from bebert.compiler import golden
    from bebert.hw.verify import run_rtl
    from bebert.sim import simulate

    c = SMALL
    E, W, O, R = c.abuf_entries, c.wbuf_entries, c.obuf_entries, c.pe_rows
    ea, ew = c.entry_bytes("abuf"), c.entry_bytes("wbuf")
    wrap = [load("abuf", 0x300, E - 1, 2), load("wbuf", 0, W - 1, 2), load("pbuf", 0x200, 0, 1, "push_next"),
            gemm(E - 1, W - 1, 2, 1, 1, True, True, "pop_prev"),
            post(0, O - 2, 4, 0, True, "push_next"), store(0x600, O - 2, R, "pop_prev"), halt()]
    split = [load("abuf", 0x300, E - 1, 1), load("abuf", 0x300 + ea, 0, 1),
             load("wbuf", 0, W - 1, 1), load("wbuf", ew, 0, 1), load("pbuf", 0x200, 0, 1),
             gemm(E - 1, W - 1, 1, 1, 1, True, True), gemm(0, 0, 1, 1, 1, True, False),
             post(0, 0, 4, 0, True), store(0x600, 0, R), halt()]
    prog = small_program(wrap, seed=3)
    res = run_rtl(SMALL, [encode(i) for i in wrap], prog.dram)
    want = golden.execute(small_program(split, seed=3))
    assert res["done"] and not res["error"] and res["cycles"] == simulate(prog).cycles
    assert np.array_equal(res["dram"], want)


ILLEGAL = {
    "zero word": 0,
    "unknown opcode": 0x06,
    "reserved opcode 0x30": 0x30,
    "GEMM wshift in XNOR mode": encode(gemm(0, 0, 1, 1, 1, False, True)) | (3 << 120),
    "VEC with an unknown fn": encode(vec(VecFn.GELU, 0, 1, 1)) & ~(0xFF << 16) | (99 << 16),
    "LOAD to obuf": encode(load("abuf", 0, 0, 1)) | (3 << 16),
    "LOAD pop_prev": encode(load("abuf", 0, 0, 1)) | (1 << 8),
    "STORE from abuf": encode(store(0, 0, 1)) & ~(0xF << 16),
    "STORE push_next": encode(store(0, 0, 1)) | (1 << 11),
    "LOAD n=0": encode(load("abuf", 0, 0, 1)) & ~(((1 << 24) - 1) << 88),
    "GEMM bits=0": encode(gemm(0, 0, 1, 1, 1, False, True)) & ~(0xF << 112),
    "GEMM bits=9": (encode(gemm(0, 0, 1, 1, 1, False, True)) & ~(0xF << 112)) | (9 << 112),
    "GEMM k=0": encode(gemm(0, 0, 1, 1, 1, False, True)) & ~(0xFFFF << 80),
    "POST obits=9": encode(post(0, 0, 0, 8, True)) + (1 << 88),
    "HALT with a flag": encode(halt()) | (1 << 9),
}


@pytest.mark.parametrize("name", list(ILLEGAL))
def test_illegal_instruction_sets_error_and_drains(name):
    words = [encode(i) for i in (load("abuf", 0, 0, 2, "push_next"), gemm(0, 0, 2, 1, 1, False, True, "pop_prev"),
                                 post(0, 0, 0, 0, True, "push_next"), store(0x400, 0, 4, "pop_prev"))]
    words += [ILLEGAL[name], encode(sync()), encode(halt())]
    res = verify(small_program([halt()]), raw_words=words)
    assert res["rtl_error"] and res["sim_error"], res
    assert_passed(res)


def test_illegal_first_word():
    res = verify(small_program([halt()]), raw_words=[0])
    assert res["rtl_error"] and res["rtl_cycles"] == 3
    assert_passed(res)


def and_mode_program(seed: int, config=SMALL):
    """Activation x activation on the PE array: GEMM AND mode, one WBUF bit-plane per GEMM.

    x (ABUF, `bits` planes, signed or not) times y (WBUF, `wb` planes of k words each,
    plane q at WBUF entry q*k): one AND GEMM per plane q with wshift = q and, for a signed
    y, wneg on its top plane; then an XNOR GEMM on top (init=0), so the mode changes
    between instructions. POST with mult 1, bias 0, shift 0, int32 output stores the raw
    accumulators. Returns (program, expected int32 accumulators (R, C)) with the
    expectation computed here from the ISA text (common spec), independently of golden.py.
    """
    R, C, W = config.pe_rows, config.pe_cols, config.xnor_width
    rng = np.random.default_rng(seed)
    bits, wb, k = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
    asigned, wsigned = bool(rng.integers(2)), bool(rng.integers(2))
    stride = k + int(rng.integers(0, 2))
    ea, ew = config.entry_bytes("abuf"), config.entry_bytes("wbuf")
    n_a, n_w = bits * stride, wb * k + k  # + k words of XNOR signs after the planes
    A_AT, W_AT, P_AT, O_AT = 0x000, 0x400, 0x900, 0xA00
    dram = rng.integers(0, 256, 0xC00, dtype=np.uint8)
    params = np.zeros((C, 2), "<i4")
    params[:, 0] = 1
    dram[P_AT:P_AT + params.nbytes] = params.view(np.uint8).reshape(-1)
    instrs = [load("abuf", A_AT, 0, n_a), load("wbuf", W_AT, 0, n_w), load("pbuf", P_AT, 0, 1, "push_next")]
    for q in range(wb):
        instrs.append(gemm(0, q * k, k, stride, bits, asigned, q == 0, *(["pop_prev"] if q == 0 else []),
                           mode=1, wneg=wsigned and q == wb - 1, wshift=q))
    instrs += [gemm(0, wb * k, k, stride, bits, asigned, False),
               post(0, 0, 0, 0, True, "push_next"), store(O_AT, 0, R, "pop_prev"), halt()]

    def rows(at, n, groups, width):  # entries -> (n, groups) Python ints of `width` bits
        out = []
        for e in range(n):
            v = int.from_bytes(dram[at + e * width * groups // 8:at + (e + 1) * width * groups // 8].tobytes(), "little")
            out.append([(v >> (g * width)) & ((1 << width) - 1) for g in range(groups)])
        return out

    a, w = rows(A_AT, n_a, R, W), rows(W_AT, n_w, C, W)
    acc = np.zeros((R, C), np.int64)
    for p in range(bits):
        for j in range(k):
            for r in range(R):
                x = a[p * stride + j][r]
                top = asigned and p == bits - 1
                for c in range(C):
                    for q in range(wb):
                        sign = -1 if top != (wsigned and q == wb - 1) else 1
                        acc[r, c] += sign * (bin(x & w[q * k + j][c]).count("1") << (p + q))
                    dot = 2 * bin(x & w[wb * k + j][c]).count("1") - bin(x).count("1")
                    acc[r, c] += (-1 if top else 1) * (dot << p)
    acc = (acc + (1 << 31)) % (1 << 32) - (1 << 31)
    prog = Program(config=config, instrs=instrs, dram=dram)
    return prog, acc, slice(O_AT, O_AT + R * config.entry_bytes("obuf"))


@pytest.mark.parametrize("seed", range(3))
def test_gemm_and_mode_matches_the_spec_and_the_simulator(seed):
    """AND mode (activation x activation, wshift, wneg, signed top planes): the RTL's
    accumulators equal the spec's, and its cycles the simulator's (timing as XNOR)."""
    from bebert.hw.verify import run_rtl
    from bebert.sim import simulate

    prog, want, out = and_mode_program(seed)
    res = run_rtl(SMALL, [encode(i) for i in prog.instrs], prog.dram)
    assert res["done"] and not res["error"]
    got = res["dram"][out].view("<i4").reshape(SMALL.pe_rows, SMALL.pe_cols)
    assert np.array_equal(got, want)
    assert res["cycles"] == simulate(prog).cycles == res["observed_cycles"]


@pytest.mark.parametrize("seed", range(2))
def test_gemm_and_mode_matches_golden(seed):
    """The whole-program contract: RTL == golden executor (with AND mode) == simulator."""
    from bebert.compiler import golden

    prog, want, out = and_mode_program(10 + seed)
    assert np.array_equal(golden.execute(prog)[out].view("<i4").reshape(want.shape), want)
    assert_passed(verify(prog))


def vec_program():
    """LOAD, GEMM, POST, STORE an int32 tile, then a VEC REQUANT of it (after the STORE's token)."""
    from bebert.integer_ops import RequantConsts
    from bebert.vector import View, consts_words, encode_desc

    prog = small_program([halt()])
    dram = prog.dram
    k = np.frombuffer(consts_words(VecFn.REQUANT, RequantConsts(77, 6, 8, True, 32, 1.0, 1.0)), np.uint8)
    dram[0x780:0x780 + k.size] = k
    d = np.frombuffer(encode_desc(VecFn.REQUANT, src=View.row_major(0x400, 4), out=View.row_major(0x600, 4, elem=1),
                                  consts=0x780), np.uint8)
    dram[0x700:0x700 + d.size] = d
    instrs = [load("abuf", 0, 0, 2, "push_next"), gemm(0, 0, 2, 1, 1, False, True, "pop_prev"),
              post(0, 0, 0, 0, True, "push_next"), store(0x400, 0, 4, "pop_prev", "push_prev"),
              vec(VecFn.REQUANT, 0x700, 4, 4, "pop_next"), halt()]
    return Program(config=SMALL, instrs=instrs, dram=dram)


def test_vec_after_gemm_and_store_verifies():
    """A VEC in the compute stage, ordered after a STORE by its token: DRAM equals the golden
    executor's, cycles the simulator's (`bebert.vector.vec_cycles`)."""
    assert_passed(verify(vec_program()))


def test_illegal_word_reports_code_and_pc():
    from bebert.hw import ErrorCode
    from bebert.hw.verify import run_rtl

    res = run_rtl(SMALL, [encode(sync()), encode(sync()), 0x30, encode(halt())], np.zeros(64, np.uint8))
    assert res["done"] and (res["error"], res["error_code"], res["error_pc"]) == (True, ErrorCode.ILLEGAL, 2)
    res = run_rtl(SMALL, [encode(sync()), encode(halt())], np.zeros(64, np.uint8))
    assert (res["error"], res["error_code"]) == (False, ErrorCode.NONE)


def test_verify_refuses_nothing_every_vec_kernel_runs():
    from bebert.hw.verify import RtlUnsupported, unsupported_words

    words = [encode(vec(f, 0x100, 2, 8, bits=2 if f in (VecFn.PACK_A, VecFn.PACK_W) else 0,
                        aux=1 if f == VecFn.DOT else 0)) for f in VecFn]
    assert unsupported_words(words) == []
    assert issubclass(RtlUnsupported, ValueError)


@pytest.mark.parametrize("seed", [0, 1])
def test_backpressure_changes_cycles_not_results(seed):
    """A slow memory (requests and write beats refused, read beats and instruction words
    late, late write responses): the same DRAM image, bit for bit, in more cycles."""
    from bebert.compiler import golden
    from bebert.hw.verify import run_rtl
    from bebert.sim import simulate

    prog = compiled("gemm:13,70,9,2", SMALL) if seed == 0 else and_mode_program(5)[0]
    words = [encode(i) for i in prog.instrs]
    slow = run_rtl(SMALL, words, prog.dram, stall=0.3, seed=seed)
    assert slow["done"] and not slow["error"]
    assert np.array_equal(slow["dram"], golden.execute(prog) if seed == 0 else
                          run_rtl(SMALL, words, prog.dram)["dram"])
    assert slow["cycles"] > simulate(prog).cycles


def compiled(spec, config):
    from bebert.compiler import compile_spec
    return compile_spec(spec, config)


@pytest.mark.parametrize("spec", ["gemm:13,70,9,2", "gemm:16,64,16,4", "gemm:5,33,7,1", "gemm:9,100,6,8"])
def test_compiled_gemm_small(spec):
    assert_passed(verify(compiled(spec, SMALL)))


@pytest.mark.parametrize("spec,config", [("gemm:64,512,96,4", "default"), ("gemm:20,100,40,2", "default"),
                                         ("gemm:30,300,20,4", "wide")])
def test_compiled_gemm_larger_configs(spec, config):
    assert_passed(verify(compiled(spec, CONFIGS[config])))


@pytest.mark.slow
@pytest.mark.parametrize("spec,config", [("gemm:128,768,128,8", "default"), ("gemm:100,1000,60,4", "wide"),
                                         ("gemm:40,200,24,8", "small"), ("gemm:64,256,64,1", "small")])
def test_compiled_gemm_large(spec, config):
    assert_passed(verify(compiled(spec, CONFIGS[config])))


@pytest.mark.parametrize("seed", range(4))
def test_random_tiled_programs_small(seed):
    from bebert.sim.random_programs import random_test_program
    assert_passed(verify(random_test_program(np.random.default_rng(seed), SMALL, 14)))


@pytest.mark.parametrize("seed", range(3))
def test_random_token_programs_small(seed):
    """Unstructured token traffic: buffer contents may race, so only timing and errors count."""
    from bebert.sim.random_programs import random_test_program
    res = verify(random_test_program(np.random.default_rng(100 + seed), SMALL, 20, tokens=True, max_n=8, max_k=8))
    assert res["cycles_match"] and res["rtl_error"] == res["sim_error"], res


@pytest.mark.parametrize("config", ["default", "wide"])
def test_random_tiled_programs_larger_configs(config):
    from bebert.sim.random_programs import random_test_program
    assert_passed(verify(random_test_program(np.random.default_rng(7), CONFIGS[config], 10)))


@pytest.mark.slow
@pytest.mark.parametrize("config", ["small", "default", "wide"])
def test_random_programs_many_seeds(config):
    from bebert.sim.random_programs import random_test_program
    for seed in range(10, 20):
        rng = np.random.default_rng(seed)
        assert_passed(verify(random_test_program(rng, CONFIGS[config], 24)))
        res = verify(random_test_program(rng, CONFIGS[config], 30, tokens=True, max_n=16, max_k=16))
        assert res["cycles_match"] and res["rtl_error"] == res["sim_error"], res


def test_generated_verilog_is_deterministic(tmp_path):
    from bebert.hw import generate_verilog
    a = generate_verilog(SMALL, tmp_path / "a").read_text()
    b = generate_verilog(SMALL, tmp_path / "b").read_text()
    assert a == b and "module bebert_accel(" in a


@pytest.mark.skipif(simulators.find("verilator") is None, reason="verilator not installed")
@pytest.mark.parametrize("config", ["small", "wide", pytest.param("default", marks=pytest.mark.slow)])
def test_verilator_lint(tmp_path, config):
    """Amaranth always emits WIDTH warnings; anything else (CASEINCOMPLETE from a `Switch`
    without a `Default`, or an FSM output assigned in only some states) is a regression."""
    from bebert.hw import generate_verilog
    path = generate_verilog(CONFIGS[config], tmp_path)
    kinds = simulators.lint(path, "bebert_accel")
    assert kinds <= simulators.WIDTH_KINDS, sorted(kinds)


def test_deadlock_times_out_instead_of_hanging():
    from bebert.hw.verify import run_rtl

    res = run_rtl(SMALL, [encode(sync("pop_prev")), encode(halt())], np.zeros(64, np.uint8), timeout_cycles=200)
    assert res["timed_out"] and not res["done"]
    # verify: the simulator reports the deadlock and the RTL does not finish either, yet a
    # deadlock is a failure with its reason, never a pass
    res = verify(small_program([halt()]), raw_words=[encode(sync("pop_prev")), encode(halt())], timeout_cycles=300)
    assert not res["passed"] and res["rtl_timed_out"] and res["cycles_match"], res
    assert res["reason"].startswith("deadlock at cycle") and "the RTL did not finish either" in res["reason"]


def test_past_the_cycle_budget_verify_fails_with_the_reason():
    res = verify(small_program([load("abuf", 0, 0, 1, "push_next"), sync("pop_prev"), halt()]), timeout_cycles=5)
    assert not res["passed"] and res["rtl_timed_out"]
    assert "did not finish within the cycle budget of 5 cycles" in res["reason"]


def test_waves_are_dumped(tmp_path, monkeypatch):
    prog = small_program([load("abuf", 0, 0, 1, "push_next"), sync("pop_prev"), halt()])
    prog.write(tmp_path / "tiny")
    res = verify(tmp_path / "tiny", waves=tmp_path / "w")
    assert_passed(res)
    assert res["waves"] == str(tmp_path / "w" / "tiny.fst") and Path(res["waves"]).stat().st_size > 0
    monkeypatch.setenv("BEBERT_WAVES", str(tmp_path / "env"))
    res = verify(prog)
    assert res["waves"] == str(tmp_path / "env" / "waves.fst") and Path(res["waves"]).is_file()


def test_bad_waves_request_is_one_clear_error(tmp_path):
    from bebert.hw.verify import WavesError, waves_request

    (tmp_path / "file").write_text("")
    with pytest.raises(WavesError, match="cannot create waveform directory"):
        waves_request(tmp_path / "file" / "sub")
    assert issubclass(WavesError, OSError)


def test_cli_verify_passes_a_vec_program(capsys, tmp_path):
    from bebert.cli import main

    vec_program().write(tmp_path / "v")
    assert main(["verify", str(tmp_path / "v")]) == 0


def test_cli_verify_writes_waves_to_dir(capsys, tmp_path):
    import json

    from bebert.cli import main

    small_program([load("abuf", 0, 0, 1, "push_next"), sync("pop_prev"), halt()]).write(tmp_path / "p")
    assert main(["verify", str(tmp_path / "p"), "--waves", str(tmp_path / "w")]) == 0
    assert json.loads(capsys.readouterr().out)["waves"] == str(tmp_path / "w" / "p.fst")
    assert (tmp_path / "w" / "p.fst").is_file()
