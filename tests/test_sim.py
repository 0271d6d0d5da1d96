"""The cycle-accurate simulator (ISA v3) against hand-computed timings and its cycle-stepped reference.

Hand-computed cases use configs/small.toml: L = 4, a 64-bit bus (8 bytes per beat), so ABUF,
WBUF entries (128 bits) take 2 beats and PBUF entries (256 bits) 4; 4 x 4 PEs; T = 4 lanes;
queue_depth = 4. Timing rules (docs/ARCHITECTURE.md, "Timing"): fetch presents pc in even
cycles and decodes in the odd ones while nothing stalls, so instruction j enters its queue at
the end of cycle 2j + 1 and can issue from 2j + 2; a stage issuing in t executes t+1 .. t+D,
is idle again (and its tokens visible) in t+D+1; HALT decoded in t stops fetch from t + 1;
cycles = T + 1 for the first T in which fetch has stopped and every queue and stage is idle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bebert.config import POST_PIPELINE_CYCLES, SNAP_CYCLES, AccelConfig
from bebert.isa import Stage, gemm, halt, load, post, postcfg, sync, vec
from bebert.program import Program
from bebert.sim import SimError, simulate
from bebert.sim import kernel as K
from bebert.timing import OutputMode, post_cycles
from bebert.vector import VecFn, io_word, vec_cycles
from conftest import small4_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = small4_config()  # small with 4 lanes: what the hand computations assume


def run(instrs, config=SMALL, **kw):
    """Simulate with the fast kernel and check the cycle-stepped reference agrees exactly."""
    p = Program(config=config, instrs=instrs, dram=np.zeros(1 << 14, np.uint8))
    fast = simulate(p, **kw)
    assert simulate(p, kernel=K.run_reference, **kw) == fast
    return fast


def test_small_config_is_what_the_hand_computations_assume():
    assert (SMALL.dram_latency_cycles, SMALL.queue_depth, SMALL.pe_rows, SMALL.vec_lanes) == (4, 4, 4, 4)
    assert [SMALL.beats_per_entry(b) for b in ("abuf", "wbuf", "pbuf")] == [2, 2, 4]


def test_halt_alone_takes_three_cycles():
    r = run([halt()])
    assert r.cycles == 3 and not r.error and r.instructions["HALT"] == 1


def test_one_load_is_latency_plus_beats():
    # LOAD decoded in 1, issued in 2, runs 3 .. 2 + D with D = L + 8 entries * 2 beats = 20;
    # HALT decoded in 3; T = 23.
    r = run([load("abuf", 0, 0, 8), halt()])
    assert r.cycles == 24 and r.busy["load"] == 20 and r.port_bytes["load_read"] == 8 * 16


def test_a_chain_through_all_four_stages_follows_the_tokens():
    """LOAD -> GEMM -> POST -> VEC, each waiting for the token of the one before."""
    prog = [load("abuf", 0, 0, 8, push=["compute"]),                 # issue 2, runs 3..22, token at 23
            load("wbuf", 0, 0, 2, push=["compute"]),                 # issue 23, runs 24..31, token at 32
            load("pbuf", 0, 0, 1, push=["output"]),                  # issue 32, runs 33..40, token at 41
            sync("output", push=["compute"]),                        # issue 8, runs 9: primes the snapshot
            gemm(0, 0, 2, 2, 4, True, True, pop=["load"]),           # issue 23, D = 8: runs 24..31
            gemm(0, 0, 2, 2, 4, True, False, pop=["load", "output"], push=["output"], snap=True),  # issue 32, D = 11
            postcfg(0, 8, True, 2, pitch=64, pop=["load"]),          # issue 41 (PBUF loaded), runs 42
            post(0, 0, 4, 4, pop=["compute"], push=["vec"]),         # issue 44, D = P + 4 columns + L
            vec(VecFn.REQUANT, 0x100, 4, 4, pop=["output"], io=io_word(True, False, 1, 1)),  # issue 45 + D
            halt()]
    d_vec = vec_cycles(VecFn.REQUANT, 4, 4, 0, 0, io_word(True, False, 1, 1), SMALL)
    d_post = POST_PIPELINE_CYCLES + 4 + SMALL.dram_latency_cycles
    r = run(prog)
    assert r.cycles == 45 + d_post + d_vec + 1 + 1
    assert r.busy["gemm"] == 8 + 8 + SNAP_CYCLES and r.busy["post"] == 1 + d_post and r.busy["vector_unit"] == d_vec


def test_the_vector_stage_runs_beside_the_array():
    """A long VEC and a string of GEMMs with no token between them overlap completely."""
    v = vec(VecFn.GELU, 0x100, 64, 64, io=io_word(True, False, 2, 2))
    d_vec = vec_cycles(VecFn.GELU, 64, 64, 0, 0, io_word(True, False, 2, 2), SMALL)
    gemms = [gemm(0, 0, 8, 8, 4, True, True) for _ in range(3)]  # 32 cycles each + 1 issue cycle
    alone = run([v, halt()]).cycles
    both = run([v, *gemms, halt()]).cycles
    assert both == alone and d_vec > 3 * 33


def test_post_durations_follow_the_output_mode():
    p = post(0, 0, 3, 4)
    stream16 = OutputMode(fmt=0, elem=1, obits=16)
    P = POST_PIPELINE_CYCLES
    assert post_cycles(p, stream16, SMALL) == P + 3  # one 8-byte beat per column of 4 int16
    assert post_cycles(post(0, 0, 3, 4, push=["vec"]), stream16, SMALL) == P + 3 + 4  # waits for responses
    assert post_cycles(post(0, 0, 3, 4, push=["compute"]), stream16, SMALL) == P + 3  # the snapshot only
    packed = OutputMode(fmt=1, obits=3, group=4)
    assert post_cycles(p, packed, SMALL) == P + 4  # shifts only
    # flush: 3 planes x 4 row-words x 32 bits = 48 bytes = 6 beats
    assert post_cycles(post(0, 0, 3, 4, flush=True), packed, SMALL) == P + 4 + 6
    # transposed: the same 6 beats after the transposer's loads, per plane 4 x 32 / 64 = 2 beats
    transposed = OutputMode(fmt=2, obits=3, group=4)
    assert post_cycles(post(0, 0, 3, 4, flush=True), transposed, SMALL) == P + 4 + 6 + 3 * 2


def test_a_program_whose_pop_is_never_pushed_deadlocks_with_a_diagnosis():
    with pytest.raises(SimError, match="deadlock.*compute head.*waits"):
        run([gemm(0, 0, 1, 1, 1, False, True, pop=["vec"]), halt()])


def test_a_program_without_halt_reports_an_error():
    r = run([sync("vec")])
    assert r.error


def test_a_full_queue_stalls_fetch_and_is_counted():
    # Four VECs fill the vector queue (depth 4) while the first runs: fetch waits.
    vs = [vec(VecFn.GELU, 0x100, 16, 16, io=io_word(True, False, 2, 2)) for _ in range(6)]
    r = run(vs + [halt()])
    assert r.stall_cycles["fetch"] > 0 and r.instructions["VEC"] == 6


def test_stats_per_stage_and_port_add_up():
    prog = [load("abuf", 0, 0, 4), sync("output", push=["compute"]),
            gemm(0, 0, 1, 1, 2, False, True, snap=True, pop=["output"], push=["output"]),
            postcfg(0, 0, True, 0, elem=2, pitch=64), post(0, 0, 4, 4, pop=["compute"]),
            vec(VecFn.ADD, 0x100, 4, 4, io=io_word(True, False, 2, 2)), halt()]
    r = run(prog)
    assert r.busy["load"] + r.busy["compute"] + r.busy["output"] + r.busy["vec"] == \
        r.busy["gemm"] + r.busy["post"] + r.busy["sync"] + r.busy["vector_unit"] + r.busy["load"]
    assert r.port_bytes["output_write"] == 4 * 4 * 4
    assert r.dram_bytes == sum(r.port_bytes.values())
    assert r.utilization["pe_array"] == pytest.approx(2 * SMALL.binary_ops_per_cycle / (r.cycles * SMALL.binary_ops_per_cycle))


def test_trace_records_when_each_instruction_ran():
    prog = [load("abuf", 0, 0, 8, push=["compute"]), gemm(0, 0, 1, 1, 1, False, True, pop=["load"]), halt()]
    r = run(prog, trace=True)
    assert list(r.trace.issue[:2]) == [2, 23] and list(r.trace.end[:2]) == [23, 25]
    assert r.trace.stage[1] == Stage.COMPUTE


@pytest.mark.parametrize("tokens", [False, True], ids=["race_free", "token_traffic"])
@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_event_kernel_equals_the_cycle_stepped_reference_on_random_programs(tokens, lanes):
    from bebert.sim.random_programs import random_test_program

    cfg = SMALL.replace(name=f"lanes{lanes}", vec_lanes=lanes)
    rng = np.random.default_rng(lanes * 2 + tokens)
    for _ in range(8):
        p = random_test_program(rng, cfg, 40, tokens=tokens)
        fast, ref = simulate(p), simulate(p, kernel=K.run_reference)
        assert fast == ref and not fast.error
        traced = simulate(p, trace=True)
        assert traced == fast and traced.trace.end.max() < fast.cycles


def test_random_programs_run_the_golden_executor_with_strict_tokens():
    from bebert.compiler import golden
    from bebert.sim.random_programs import random_program

    rng = np.random.default_rng(7)
    for _ in range(4):
        p = random_program(rng, SMALL, 40)
        golden.execute(p, strict_tokens=True)
