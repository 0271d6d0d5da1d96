"""The issue-6 acceptance on the RTL: whole inferences of compiled ensembles pass `bebert verify`
(every output tensor bit-identical to the golden executor, RTL cycles == simulator cycles).

Whole inferences are over a million RTL cycles under cocotb + Icarus (minutes each), so these
cases are `slow` (they run in `make bench`; bench/bench_rtl_ensemble.py records them). The
default suite's smoke case is tests/test_rtl.py::test_vec_after_gemm_and_store_verifies.
"""

from pathlib import Path

import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators

pytestmark = [pytest.mark.rtl, pytest.mark.slow,
              pytest.mark.skipif(not simulators.installed(), reason="no RTL simulator installed (Verilator or Icarus)")]

SMALL = AccelConfig.from_toml(Path(__file__).resolve().parents[1] / "configs" / "small.toml")


def test_tiny_two_member_two_layer_ensemble_verifies_on_rtl():
    from bebert.compiler import compile_model
    from bebert.hw.verify import verify

    prog = compile_model("synthetic:tiny,members=2,seq=16", SMALL)
    assert sum(i.op.name == "VEC" for i in prog.instrs) > 50  # embeddings to classifier, on the vector unit
    res = verify(prog)
    assert res["passed"] and res["outputs_match"] and not res["mismatched"], res
    assert res["rtl_cycles"] == res["sim_cycles"] == res["rtl_observed_cycles"]
