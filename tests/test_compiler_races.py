"""On the concurrent machine (the simulator's schedule), compiled programs access every shared resource
in program order (compiler/races.py); the same programs with a class of tokens taken out do not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bebert.compiler import compile_model, compile_spec
from bebert.compiler.races import RaceError, check_races
from bebert.compiler.spec import random_config
from bebert.config import AccelConfig
from bebert.isa import Instr, Stage
from bebert.sim.simulator import simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = {n: AccelConfig.from_toml(CONFIGS / f"{n}.toml") for n in ("default", "small", "wide")}


def race_free(prog) -> int:
    return check_races(prog, simulate(prog, trace=True).trace)


@pytest.mark.parametrize("cfg", list(SHIPPED.values()) + [random_config(3), random_config(7, small=False)],
                         ids=list(SHIPPED) + ["random3", "random7"])
def test_compiled_layers_are_race_free(cfg):
    for spec in ("gemm:37,300,129,3", "gemm:20,700,40,2,0"):
        try:
            prog = compile_spec(spec, cfg)
        except Exception as e:   # a tiny random buffer that cannot hold the planes: one CompileError line
            assert "needs" in str(e) or "not supported" in str(e)
            continue
        assert race_free(prog) == len(prog.instrs) - 1


@pytest.mark.parametrize("cfg", list(SHIPPED), ids=list(SHIPPED))
def test_compiled_ensembles_are_race_free(cfg):
    prog = compile_model("synthetic:tiny,members=2,seq=12", SHIPPED[cfg])
    assert race_free(prog) == len(prog.instrs) - 1


def _without_pops(prog, stage: Stage, source: Stage):
    """The program with every `source` -> `stage` pop taken out (the pushes stay: no deadlock)."""
    instrs = [Instr(i.op, i.args, i.pops - {source}, i.pushes) if i.stage == stage else i for i in prog.instrs]
    return replace(prog, instrs=instrs)


@pytest.mark.parametrize("stage, source, what", [
    (Stage.VECTOR, Stage.OUTPUT, "DRAM"),       # a VEC reading what POSTs have not written yet
    (Stage.COMPUTE, Stage.LOAD, "ABUF|WBUF"),   # a GEMM before its operands are loaded
    (Stage.COMPUTE, Stage.OUTPUT, "snapshot"),  # a snap GEMM over a snapshot not yet POSTed
    (Stage.OUTPUT, Stage.COMPUTE, "snapshot"),  # a POST before its snap GEMM
    (Stage.LOAD, Stage.COMPUTE, "ABUF|WBUF"),   # a LOAD over a buffer half still being read
])
def test_taking_out_a_class_of_tokens_is_a_race(stage, source, what):
    prog = compile_model("synthetic:tiny,members=1,seq=12", SHIPPED["small"])
    with pytest.raises(RaceError, match=what):
        race_free(_without_pops(prog, stage, source))
