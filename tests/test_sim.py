"""The cycle-accurate simulator against hand-computed timings and its cycle-stepped reference.

Hand-computed cases use configs/small.toml: L = dram_latency_cycles = 4, a 64-bit bus
(8 bytes per beat), so ABUF, WBUF and OBUF entries (128 bits) take 2 beats and PBUF entries
(256 bits) 4; pe_rows = 4; queue_depth = 4. Timing rules (docs/ARCHITECTURE.md, "Timing"):
fetch presents pc in even cycles 0, 2, ... and decodes in the odd ones while nothing stalls,
so instruction j enters its queue at the end of cycle 2j + 1 and can issue from 2j + 2; a
stage issuing in t executes t+1 .. t+D, is idle again (and its tokens visible) in t+D+1;
HALT decoded in t stops fetch from t + 1; cycles = T + 1 for the first T in which fetch
has stopped and every queue and stage is empty / idle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.isa import Op, decode, encode, gemm, halt, load, post, store, sync, vec
from bebert.program import Program
from bebert.sim import SimError, SimResult, duration, simulate
from bebert.sim import kernel as K
from bebert.sim.simulator import decode_words, stream_arrays
from bebert.sim.random_programs import (ALL_FEATURES, RTL_FEATURES, dram_image_bytes, random_program,
                                        random_test_program, random_token_program)
from bebert.vector import VecFn, vec_bytes, vec_cycles

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIGS / "small.toml")


def prog(instrs, config=SMALL) -> Program:
    return Program(config=config, instrs=instrs, dram=np.zeros(dram_image_bytes(config), np.uint8))


def run(instrs, config=SMALL, **kw) -> SimResult:
    """Simulate with the fast kernel and check the reference kernel agrees exactly."""
    p = prog(instrs, config)
    fast = simulate(p, **kw)
    ref = simulate(p, kernel=K.run_reference, **kw)
    assert fast == ref
    return fast


def test_small_config_is_what_the_hand_computations_assume():
    assert SMALL.dram_latency_cycles == 4 and SMALL.queue_depth == 4 and SMALL.pe_rows == 4
    assert [SMALL.beats_per_entry(b) for b in ("abuf", "wbuf", "pbuf", "obuf")] == [2, 2, 4, 2]


def test_halt_alone():
    # FETCH in 0, DECODE HALT in 1, fetch stopped from 2: T = 2.
    r = run([halt()])
    assert r.cycles == 3 and not r.error
    assert r.instructions["HALT"] == 1 and sum(r.busy.values()) == 0


def test_one_load():
    # LOAD wbuf n=1: D = L + 1 * 2 beats = 6. Decoded in 1, issues in 2, executes 3..8,
    # idle in 9; HALT decoded in 3 -> stopped from 4. T = 9, cycles = 10 (= D + 4).
    r = run([load("wbuf", 0, 0, 1), halt()])
    assert r.cycles == 10
    assert r.busy["load"] == 6
    assert r.dram_read_bytes == 16 and r.dram_write_bytes == 0 and r.dram_bytes == 16
    assert r.seconds == pytest.approx(10 / SMALL.clock_hz)


def test_one_load_on_default_config():
    # default: L = 32, WBUF entry 16 * 64 bits = 8 beats of 128 bits: D = 40, cycles = 44.
    config = AccelConfig.from_toml(CONFIGS / "default.toml")
    assert run([load("wbuf", 0, 0, 1), halt()], config).cycles == 44


@pytest.mark.parametrize("ins, d", [
    (gemm(0, 0, 3, 3, 2, False, True), 2 * 3 + 2),  # bits * k + GEMM_PIPELINE_CYCLES
    (post(0, 0, 0, 0, False), 4 + 2),  # pe_rows + POST_PIPELINE_CYCLES
    (sync(), 1),  # SYNC_CYCLES
    (store(0, 0, 1), 1 + 2 + 4),  # request + 1 entry * 2 beats + L
    (load("pbuf", 0, 0, 3), 4 + 3 * 4),  # L + 3 entries * 4 beats
])
def test_single_instruction_takes_d_plus_4(ins, d):
    r = run([ins, halt()])
    assert r.cycles == d + 4
    assert r.busy[{"LOAD": "load", "STORE": "store"}.get(ins.op.name, "compute")] == d


@pytest.mark.parametrize("fn, rows, cols, bits, aux", [
    (VecFn.LAYERNORM, 2, 20, 0, 0), (VecFn.SOFTMAX, 3, 128, 0, 0), (VecFn.PACK_A, 4, 64, 4, 0),
    (VecFn.DOT, 1, 96, 0, 2), (VecFn.EMBED, 2, 16, 0, 0), (VecFn.COMBINE, 1, 3, 0, 0)])
def test_vec_takes_the_vector_units_cost_contract(fn, rows, cols, bits, aux):
    # D comes from bebert.vector.vec_cycles, bytes from vec_bytes; the word runs in COMPUTE.
    d = vec_cycles(fn, rows, cols, bits, aux, SMALL)
    rd, wr = vec_bytes(fn, rows, cols, bits, aux)
    r = run([vec(fn, 0x40, rows, cols, bits=bits, aux=aux), halt()])
    assert r.cycles == d + 4 and r.busy["vector"] == r.busy["compute"] == d
    assert (r.dram_read_bytes, r.dram_write_bytes) == (rd, wr)
    assert r.instructions["VEC"] == 1 and r.binary_ops == 0
    assert r.utilization["vector"] == d / r.cycles


def test_layernorm_vec_by_hand():
    # LAYERNORM 2 rows x 20 on small (L = 4, 8-byte bus: rd = L + 1 = 5, wr = 1), as the RTL:
    # descriptor 21 words L + 11 = 15, constants 8 int64 L + 8 = 12; mult / bias once (serial
    # reads) 20 x (2 rd + 3) = 260; per row 2 + 20 (1 POP + 3) + LayerNormRow (3 x 20 + 105) + 1
    # + 20 (3 + wr) + 1 = 329; the streamer's prime once L + 1 + 1 = 6; tail L = 4.
    # D = 15 + 12 + 260 + 658 + 6 + 4 = 955; cycles = D + 4.
    r = run([vec(VecFn.LAYERNORM, 0, 2, 20), halt()])
    assert r.cycles == 959 and r.busy["vector"] == 955


def test_vec_holds_the_compute_stage_and_moves_tokens():
    # j 0 VEC REQUANT rows=2 cols=8 @push_next: D = 147 (tests/test_energy.py), issues 2, idle 150
    # j 1 GEMM bits=1 k=1: queued end of 3, waits behind the VEC, issues 150, D = 3, idle 154
    # j 2 STORE n=1 @pop_prev: c2s from 150, issues 150, D = 1 + 2 + 4 = 7, idle 158. cycles = 159.
    r = run([vec(VecFn.REQUANT, 0, 2, 8, "push_next"), gemm(0, 0, 1, 1, 1, False, True),
             store(4096, 0, 1, "pop_prev"), halt()])
    assert r.cycles == 159 and r.stall_cycles["store"] == 150 - 6
    assert r.busy == {"load": 0, "compute": 150, "store": 7, "gemm": 3, "post": 0, "sync": 0, "vector": 147}


def test_and_mode_gemm_takes_as_long_as_xnor_and_counts_its_bits():
    xnor = run([gemm(0, 0, 3, 3, 2, True, True), halt()])
    and_ = run([gemm(0, 0, 3, 3, 2, True, True, mode=1, wneg=True, wshift=5), halt()])
    assert and_ == xnor and and_.cycles == 2 * 3 + 2 + 4 and and_.binary_ops == 3072


def test_gemm_counts_binary_ops():
    # GEMM bits=2, k=3 on 4 x 4 PEs of 32 bits: 2 * 3 * 32 * 16 = 3072 bit-ops in D = 8.
    r = run([gemm(0, 0, 3, 3, 2, True, True), halt()])
    assert r.binary_ops == 3072 and r.busy["gemm"] == 8
    assert r.utilization["pe_array"] == pytest.approx(3072 / (12 * 4 * 4 * 32))


def test_load_then_gemm_through_a_token():
    # I0 LOAD abuf n=2 @push_next: D = 4 + 2*2 = 8, issues 2, executes 3..10, l2c visible 11.
    # I1 GEMM @pop_prev: queued end of 3, head from 4, waits for l2c in 4..10 (7 stall
    # cycles), issues 11, D = 1*1 + 2 = 3, executes 12..14, idle 15. HALT stops fetch from 6.
    # T = 15, cycles = 16.
    r = run([load("abuf", 0, 0, 2, "push_next"), gemm(0, 0, 1, 1, 1, False, True, "pop_prev"), halt()])
    assert r.cycles == 16
    assert r.stall_cycles == {"fetch": 0, "load": 0, "compute": 7, "store": 0}


def test_load_gemm_post_store_chain():
    # j  instruction                       D   queued  issues  executes  idle
    # 0  LOAD abuf n=1                     6   2       2       3..8      9
    # 1  LOAD wbuf n=1 @push_next          6   4       9       10..15    16 (l2c from 16)
    # 2  GEMM bits=4 k=1 @pop_prev         6   6       16      17..22    23 (stalls 6..15: 10)
    # 3  POST @push_next                   6   8       23      24..29    30 (c2s from 30)
    # 4  STORE n=4 @pop_prev  1+4*2+4 =   13   10      30      31..43    44 (stalls 10..29: 20)
    # 5  HALT decoded in 11, stopped from 12.  T = 44, cycles = 45.
    r = run([
        load("abuf", 0, 0, 1),
        load("wbuf", 0, 0, 1, "push_next"),
        gemm(0, 0, 1, 1, 4, True, True, "pop_prev"),
        post(0, 0, 8, 8, True, "push_next"),
        store(4096, 0, 4, "pop_prev"),
        halt(),
    ])
    assert r.cycles == 45
    assert r.busy == {"load": 12, "compute": 12, "store": 13, "gemm": 6, "post": 6, "sync": 0, "vector": 0}
    assert r.stall_cycles == {"fetch": 0, "load": 0, "compute": 10, "store": 20}
    assert r.instructions == {"LOAD": 2, "STORE": 1, "GEMM": 1, "POST": 1, "SYNC": 0, "HALT": 1, "VEC": 0}
    assert r.dram_read_bytes == 2 * 16 and r.dram_write_bytes == 4 * 16


def test_full_queue_stalls_fetch():
    # queue_depth = 2; four LOAD wbuf n=1 (D = 6), then GEMM bits=8 k=4 (D = 34), HALT.
    # LOADs issue in 2, 9, 16, 23 (each D + 1 after the previous). L1 queued end of 3, L2
    # end of 5; decoding L3 in 7 finds the load queue full (L1, L2) in 7, 8 and 9 (L1 pops
    # at the end of 9, which makes room only from 10): 3 stall cycles, L3 queued end of 10.
    # The GEMM is fetched in 11, decoded in 12, issues 13, executes 14..47, idle 48.
    # The last LOAD is idle from 30. T = 48, cycles = 49.
    instrs = [load("wbuf", 0, 0, 1) for _ in range(4)] + [gemm(0, 0, 4, 4, 8, False, True), halt()]
    shallow = run(instrs, SMALL.replace(queue_depth=2))
    assert shallow.cycles == 49 and shallow.stall_cycles["fetch"] == 3
    # With depth 4 nothing stalls: GEMM decoded in 9, issues 10, idle 45: cycles = 46.
    deep = run(instrs, SMALL)
    assert deep.cycles == 46 and deep.stall_cycles["fetch"] == 0


def test_tokens_pushed_and_popped_in_the_same_cycle_add_up():
    # j  instruction                  D   queued  issues  executes  idle
    # 0  LOAD wbuf @push_next         6   2       2       3..8      9  (l2c 0 -> 1 in 9)
    # 1  LOAD wbuf @push_next         6   4       9       10..15    16 (pushes at the end of 15)
    # 2  GEMM bits=2 k=3              8   6       6       7..14     15
    # 3  GEMM bits=1 k=1 @pop_prev    3   8       15      16..18    19 (pops at the end of 15)
    # 4  GEMM bits=1 k=1 @pop_prev    3   10      19      20..22    23
    # In cycle 15 l2c = 1; GEMM 3 pops and LOAD 1 pushes at its end, so l2c = 1 - 1 + 1 = 1
    # in 16 and GEMM 4 issues as soon as compute is idle, in 19. T = 23, cycles = 24.
    r = run([
        load("wbuf", 0, 0, 1, "push_next"),
        load("wbuf", 0, 0, 1, "push_next"),
        gemm(0, 0, 3, 3, 2, False, True),
        gemm(0, 0, 1, 1, 1, False, True, "pop_prev"),
        gemm(0, 0, 1, 1, 1, False, True, "pop_prev"),
        halt(),
    ])
    assert r.cycles == 24 and r.stall_cycles["compute"] == 0


def test_illegal_word_stops_fetch_with_error():
    # LOAD (decoded 1, issues 2, idle 9), then an all-zero word decoded in 3: error, fetch
    # stopped from 4, the GEMM after it is never fetched. T = 9, cycles = 10.
    words = [encode(load("wbuf", 0, 0, 1)), 0, encode(gemm(0, 0, 1, 1, 1, False, True)), encode(halt())]
    r = run([halt()], raw_words=words)
    assert r.error and r.cycles == 10
    assert r.instructions["LOAD"] == 1 and r.instructions["GEMM"] == 0 and r.instructions["HALT"] == 0


def test_decode_words_stops_at_halt_or_the_first_illegal_word():
    ld, h = load("wbuf", 0, 0, 1), halt()
    assert decode_words([encode(ld), encode(h), 0]) == [ld, h]
    assert decode_words([encode(ld), 0, encode(h)]) == [ld, None]
    assert decode_words([encode(ld)]) == [ld]


def test_illegal_flag_is_an_illegal_word():
    # A STORE carrying pop_next (bit 9) is illegal: decoded in 1, stopped from 2: cycles = 3.
    r = run([halt()], raw_words=[encode(store(0, 0, 1)) | 1 << 9, encode(halt())])
    assert r.error and r.cycles == 3 and r.instructions["STORE"] == 0


def test_missing_halt_reads_zero_past_the_end():
    # Same timing as test_one_load, but pc 1 lies past the end: the word read is 0, illegal.
    r = run([load("wbuf", 0, 0, 1)])
    assert r.error and r.cycles == 10


def test_empty_program_is_an_error():
    # pc 0 lies past the end: the word 0 is decoded in 1, fetch stopped from 2: cycles = 3.
    r = run([])
    assert r.error and r.cycles == 3


def test_stream_arrays_durations_match_the_table():
    rng = np.random.default_rng(5)
    for config in _configs():
        instrs = random_token_program(rng, config, 200, features=ALL_FEATURES)
        stage, dur, *_ = stream_arrays(instrs, config)
        assert len(dur) == len(instrs)
        assert list(dur) == [duration(i, config) for i in instrs]
        assert list(stage[:3]) == [{"LOAD": 0, "STORE": 2}.get(i.op.name, 1) for i in instrs[:3]]


def test_deadlock_on_a_token_that_never_comes():
    with pytest.raises(SimError, match="deadlock"):
        simulate(prog([gemm(0, 0, 1, 1, 1, False, True, "pop_prev"), halt()]))
    with pytest.raises(SimError, match="deadlock"):
        simulate(prog([gemm(0, 0, 1, 1, 1, False, True, "pop_prev"), halt()]), kernel=K.run_reference)


def test_deadlock_behind_a_full_queue():
    # The GEMM's token comes from a LOAD that fetch never reaches: it stalls on the full
    # compute queue (depth 2) in front of it.
    g = gemm(0, 0, 1, 1, 1, False, True)
    instrs = [gemm(0, 0, 1, 1, 1, False, True, "pop_prev"), g, g, load("abuf", 0, 0, 1, "push_next"), halt()]
    config = SMALL.replace(queue_depth=2)
    with pytest.raises(SimError, match="full compute queue"):
        simulate(prog(instrs, config))
    with pytest.raises(SimError, match="deadlock"):
        simulate(prog(instrs, config), kernel=K.run_reference)
    # With a deeper queue the LOAD gets through and the program finishes.
    assert not run(instrs, SMALL).error


def test_result_sums_are_consistent():
    rng = np.random.default_rng(7)
    r = simulate(random_test_program(rng, SMALL, 200))
    assert r.busy["compute"] == r.busy["gemm"] + r.busy["post"] + r.busy["sync"]
    assert r.dram_bytes == r.dram_read_bytes + r.dram_write_bytes
    for u in ("load", "compute", "store"):
        assert r.utilization[u] == r.busy[u] / r.cycles
        assert 0 < r.utilization[u] <= 1
        assert r.busy[u] + r.stall_cycles[u] <= r.cycles
    assert 0 < r.utilization["pe_array"] <= r.utilization["compute"]
    assert r.instructions["HALT"] == 1
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d and d["cycles"] == r.cycles


def _configs():
    for name in ("small", "default", "wide"):
        yield AccelConfig.from_toml(CONFIGS / f"{name}.toml")


@pytest.mark.parametrize("features", [RTL_FEATURES, ALL_FEATURES], ids=["rtl", "v2"])
@pytest.mark.parametrize("tokens", [False, True], ids=["tiled", "tokens"])
def test_fast_kernel_equals_reference_on_random_programs(tokens, features):
    rng = np.random.default_rng(2024 + tokens + 2 * len(features))
    configs = list(_configs())
    for case in range(150):
        config = configs[case % 3].replace(queue_depth=int(rng.integers(2, 7)),
                                           dram_latency_cycles=int(rng.integers(1, 70)))
        p = random_test_program(rng, config, int(rng.integers(1, 150)), tokens=tokens, features=features)
        fast = simulate(p)
        ref = simulate(p, kernel=K.run_reference)
        assert fast == ref, f"case {case}: {fast.cycles} != {ref.cycles}"
        assert not fast.error
        assert sum(fast.instructions.values()) == len(p.instrs)


@pytest.mark.parametrize("features", [RTL_FEATURES, ALL_FEATURES], ids=["rtl", "v2"])
def test_pure_python_kernel_gives_the_same_result(features):
    for seed, tokens in ((3, True), (4, False)):
        p = random_test_program(np.random.default_rng(seed), SMALL, 40, tokens=tokens, features=features)
        assert simulate(p, kernel=K.run_events.py_func) == simulate(p)
        assert simulate(p, kernel=K.run_reference.py_func) == simulate(p)


def test_v2_random_programs_use_vec_and_and_mode_and_the_default_does_not():
    rng = np.random.default_rng(12)
    for tokens in (False, True):
        v2 = random_test_program(rng, SMALL, 300, tokens=tokens, features=ALL_FEATURES)
        ops = [i.op for i in v2.instrs]
        assert Op.VEC in ops and any(i.op == Op.GEMM and i.args["mode"] == 1 for i in v2.instrs)
        assert all(decode(encode(i)) == i for i in v2.instrs)  # every word is legal
        assert v2.meta["features"] == ["and", "vec"]
        rtl = random_test_program(rng, SMALL, 300, tokens=tokens)  # default: what the RTL runs
        assert Op.VEC not in [i.op for i in rtl.instrs] and RTL_FEATURES <= ALL_FEATURES
        assert any(i.op == Op.GEMM and i.args["mode"] == 1 for i in rtl.instrs) == ("and" in RTL_FEATURES)
    with pytest.raises(ValueError, match="unknown feature"):
        random_program(rng, SMALL, 10, features={"fp32"})


def test_without_features_the_generators_draw_v1_programs():
    # features=() draws the random numbers of the v1 generators (checked against them when
    # ISA v2 landed); here: only v1 words, and the same seed gives the same program.
    for gen in (random_program, random_token_program):
        a = gen(np.random.default_rng(8), SMALL, 80, features=())
        assert a == gen(np.random.default_rng(8), SMALL, 80, features=())
        assert all(i.op != Op.VEC and i.args.get("mode", 0) == 0 for i in a)
    assert "vec" not in RTL_FEATURES  # the RTL stops on VEC (unsupported) for now


def test_random_programs_are_legal_and_in_range():
    rng = np.random.default_rng(11)
    for config in _configs():
        for gen in (random_program, random_token_program):
            instrs = gen(rng, config, 300, features=ALL_FEATURES)
            assert instrs[-1].op.name == "HALT"
            load_region = dram_image_bytes(config) - config.obuf_bytes
            for ins in instrs:
                a = ins.args
                if ins.op.name == "LOAD":
                    buf = ("abuf", "wbuf", "pbuf")[a["buf"]]
                    assert a["addr"] + a["n"] <= config.entries(buf)
                    assert a["dram"] % config.dram_bytes_per_cycle == 0
                    assert a["dram"] + a["n"] * config.entry_bytes(buf) <= load_region
                elif ins.op.name == "STORE":
                    assert a["addr"] + a["n"] <= config.obuf_entries
                    assert load_region <= a["dram"]
                    assert a["dram"] + a["n"] * config.entry_bytes("obuf") <= dram_image_bytes(config)
                elif ins.op.name == "GEMM":
                    assert a["a"] + (a["bits"] - 1) * a["stride"] + a["k"] <= config.abuf_entries
                    assert a["w"] + a["k"] <= config.wbuf_entries
                elif ins.op.name == "POST":
                    assert a["p"] < config.pbuf_entries and a["o"] + config.pe_rows <= config.obuf_entries
                elif ins.op.name == "VEC":
                    assert a["desc"] % config.dram_bytes_per_cycle == 0 and a["desc"] < load_region


@pytest.mark.parametrize("spec", ["gemm:16,64,64,1", "gemm:33,100,70,8", "gemm:64,256,96,4"])
def test_fast_kernel_equals_reference_on_compiled_programs(spec):
    compiler = pytest.importorskip("bebert.compiler")
    if not hasattr(compiler, "compile_spec"):
        pytest.skip("bebert.compiler.compile_spec is not there yet")
    for config in _configs():
        p = compiler.compile_spec(spec, config)
        fast = simulate(p)
        assert fast == simulate(p, kernel=K.run_reference)
        assert not fast.error and fast.instructions["HALT"] == 1


@pytest.mark.slow
def test_bench_runs(tmp_path):
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_sim.py"
    spec = importlib.util.spec_from_file_location("bench_sim", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "sim_speed.json"
    assert bench.main(["--out", str(out), "--repeat", "1", "--no-ensemble", "--no-icarus"]) == 0
    report = json.loads(out.read_text())
    assert report["speed"]["cycles"] > 0 and report["speed"]["python"]["ratio"] > 1
