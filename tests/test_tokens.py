"""The program-order token checker (bebert/tokens.py) on the v3 machine's 12 counters."""

import pytest

from bebert.tokens import COUNTERS, TokenError, check_tokens, pops, pushes
from bebert.isa import COUNTER_NAMES, gemm, halt, load, post, postcfg, sync, vec
from bebert.vector import VecFn


def test_counters_are_the_isas_twelve_by_name():
    assert COUNTERS == COUNTER_NAMES and len(COUNTERS) == 12
    ins = post(0, 0, 4, 4, pop=["compute", "vec"], push=["load", "compute"])
    assert pops(ins) == ["compute->output", "vec->output"]
    assert pushes(ins) == ["output->load", "output->compute"]
    assert pops(sync("vec", pop=["load"])) == ["load->vec"]


def test_every_pop_after_its_push_passes_for_any_depth():
    instrs = [load("abuf", 0, 0, 1, push=["compute"]), load("pbuf", 0, 0, 1, push=["output"]),
              sync("output", push=["compute"]),
              gemm(0, 0, 1, 1, 1, False, True, pop=["load", "output"], push=["output"], snap=True),
              postcfg(0, 0, pop=["load"]), post(0, 0, 4, 4, pop=["compute"], push=["vec", "load"]),
              vec(VecFn.GELU, 0x40, 4, 4, pop=["output"], push=["load"], io=1),
              sync("load", pop=["output", "vec"]), halt()]
    for depth in (1, 2, 8):
        report = check_tokens(instrs, depth)
    assert report.pushed["output->vec"] == 1 and report.pushed["load->compute"] == 1
    assert report.max_level["output->load"] == 1 and report.instructions == len(instrs)


def test_a_pop_before_its_push_in_program_order_is_refused():
    """Even where the concurrent machine would finish (the push is in another stage), the
    golden executor's program order would read before the producer wrote."""
    instrs = [sync("compute", pop=["load"]), load("wbuf", 0, 0, 1, push=["compute"]), halt()]
    with pytest.raises(TokenError, match=r"instruction 0 \(SYNC stage=compute @pop=load\) pops load->compute"):
        check_tokens(instrs)


def test_a_token_cycle_is_refused():
    instrs = [load("wbuf", 0, 0, 1, pop=["compute"], push=["compute"]),
              gemm(0, 0, 1, 1, 1, False, True, pop=["load"], push=["load"]), halt()]
    with pytest.raises(TokenError, match="pops compute->load"):
        check_tokens(instrs)


def test_unbalanced_and_unhalted_programs():
    with pytest.raises(TokenError, match="unbalanced tokens: load->compute=1"):
        check_tokens([load("wbuf", 0, 0, 1, push=["compute"]), halt()])
    with pytest.raises(TokenError, match="no HALT"):
        check_tokens([sync("load")])
    with pytest.raises(TokenError, match="follow it"):
        check_tokens([halt(), sync("load")])
    with pytest.raises(TokenError, match="queue_depth"):
        check_tokens([halt()], 0)
