"""The random program generators (sim/random_programs.py): legal on their config, token-correct in
program order, and covering every instruction, format, kernel, activation width and lane count."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bebert.tokens import check_tokens
from bebert.config import AccelConfig
from bebert.isa import Op, check_config, decode, encode
from bebert.sim.random_programs import ALL_FEATURES, random_program, random_test_program, random_token_program
from bebert.vector import VecFn, run_vec

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SMALL = AccelConfig.from_toml(CONFIG_DIR / "small.toml")
LANES = [SMALL.replace(name=f"lanes{t}", vec_lanes=t) for t in (1, 2, 8, 16)]


def census(programs) -> Counter:
    seen = Counter()
    for p in programs:
        for ins in p.instrs:
            seen[ins.op] += 1
            if ins.op == Op.GEMM:
                seen[("bits", ins.bits)] += 1
                seen[("mode", ins.mode)] += 1
                seen["snap"] += ins.snap
            elif ins.op == Op.POSTCFG:
                seen[("fmt", ins.fmt)] += 1
            elif ins.op == Op.VEC:
                seen[VecFn(ins.fn)] += 1
            elif ins.op == Op.SYNC:
                seen[("sync", ins.stage)] += 1
    return seen


@pytest.mark.parametrize("tokens", [False, True], ids=["race_free", "token_traffic"])
@pytest.mark.parametrize("config", [SMALL] + LANES, ids=lambda c: c.name)
def test_generated_programs_are_legal_and_token_correct(config, tokens):
    """Every word decodes to itself and runs on its config, every pop follows its push in
    program order (so no queue depth deadlocks), and every VEC's descriptor is one the
    reference semantics accepts, in program order on the program's own DRAM image."""
    for seed in range(4):
        p = random_test_program(np.random.default_rng(seed), config, 40, tokens=tokens)
        assert p.instrs[-1].op == Op.HALT
        check_tokens(p.instrs, 1)
        dram = p.dram.copy()
        for ins in p.instrs:
            assert decode(encode(ins)) == ins and check_config(ins, config) is None, ins
            if ins.op == Op.VEC:
                run_vec(dram, ins.args, config)


def test_race_free_programs_cover_every_instruction_format_kernel_and_width():
    programs = [random_program(np.random.default_rng(seed), SMALL, 40) for seed in range(25)]
    seen = census(programs)
    for key in [*Op, *VecFn, "snap", *[("bits", b) for b in range(1, 9)], *[("mode", m) for m in (0, 1)],
                *[("fmt", f) for f in range(3)], *[("sync", s) for s in range(4)]]:
        assert seen[key] > 0, key


def test_features_leave_parts_out():
    p = random_program(np.random.default_rng(0), SMALL, 60, features=())
    seen = census([p])
    assert seen[Op.VEC] == 0 and seen[("mode", 1)] == 0 and seen[("fmt", 1)] == seen[("fmt", 2)] == 0
    assert census([random_token_program(np.random.default_rng(0), SMALL, 60, features=())])[Op.VEC] == 0
    with pytest.raises(ValueError, match="unknown feature"):
        random_program(np.random.default_rng(0), SMALL, 10, features={"fp32"})
    assert ALL_FEATURES == {"and", "packed", "vec"}


def test_the_same_seed_gives_the_same_program():
    a, b = (random_test_program(np.random.default_rng(3), SMALL, 30) for _ in range(2))
    assert a.instrs == b.instrs and np.array_equal(a.dram, b.dram)


def test_activation_widths_follow_the_config():
    cfg = SMALL.replace(name="w35", act_bits=(3, 5))
    seen = census([random_program(np.random.default_rng(s), cfg, 40) for s in range(5)])
    assert {k[1] for k in seen if isinstance(k, tuple) and k[0] == "bits"} == {3, 5}
