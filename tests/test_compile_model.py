"""The whole-ensemble compiler: programs equal the integer reference (`apply_integer_member`) bit
for bit, their tokens are proven correct, and what the configuration cannot hold is one CompileError."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bebert.cli import main
from bebert.compiler import CompileError, check_tokens, compile_model, golden, host
from bebert.ensemble_shape import EnsembleShape, parse_model_spec
from bebert.compiler.synthetic import synthetic_model
from bebert.config import AccelConfig
from bebert.isa import Op
from bebert.model.package import apply_integer_member

SMALL = AccelConfig(name="small4", pe_rows=4, pe_cols=8, xnor_width=16, abuf_bytes=1024, wbuf_bytes=2048,
                    pbuf_bytes=512, dram_bytes_per_cycle=8, vec_lanes=8)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SHIPPED = {n: AccelConfig.from_toml(CONFIGS / f"{n}.toml") for n in ("default", "small", "wide")}


def reference_logits(model, ids, types, mask) -> list[torch.Tensor]:
    b = {"input_ids": torch.tensor(ids)[None], "token_type_ids": torch.tensor(types)[None],
         "attention_mask": torch.tensor(mask)[None]}
    return [apply_integer_member(m, b) for m in model.members]


def program_logits(prog, ids, types, mask) -> list[torch.Tensor]:
    p = host.with_inputs(prog, ids, types, mask)
    check_tokens(p.instrs, p.config.queue_depth)
    out = golden.outputs(p, golden.execute(p, strict_tokens=True))
    acc = np.stack([out[f"acc{i}"][0] for i in range(prog.meta["members"])])[None]
    return host.logits(acc, prog)


def assert_equal_to_reference(model, prog, seed: int = 0) -> None:
    seq = prog.meta["seq"]
    rng = np.random.default_rng(seed)
    vocab = prog.meta["vocab"]
    ids, types = rng.integers(0, vocab, seq), rng.integers(0, 2, seq)
    mask = (np.arange(seq) < max(1, seq - int(rng.integers(0, seq)))).astype(np.int64)
    want = reference_logits(model, ids, types, mask)
    got = program_logits(prog, ids, types, mask)
    for w, g in zip(want, got):
        assert torch.equal(w, g.reshape(w.shape))


def test_tiny_ensemble_equals_the_integer_reference():
    spec = "synthetic:tiny"
    model = synthetic_model(parse_model_spec(spec), seed=0)
    prog = compile_model(spec, AccelConfig())
    assert prog.meta["members"] == 2 and prog.meta["kind"] == "model"
    for seed in range(2):
        assert_equal_to_reference(model, prog, seed)


def test_tws_split_layers_and_a_small_machine():
    shape = replace(parse_model_spec("synthetic:tiny,tws=1,members=1,seq=12"))
    model = synthetic_model(shape, seed=3)
    assert_equal_to_reference(model, compile_model(model, SMALL), 1)


@pytest.mark.parametrize("cfg", ["small4", "default", "wide"])
def test_split_layers_with_a_scale_per_half_equal_the_reference(cfg):
    """v = acc_lo mult + acc_hi mult_hi + bias, one rounding: two int32 GEMMs and one VEC ADD per
    layer, Q / K / V re-laid for attention by identity GEMMs (compiler/split_scales.py)."""
    model = synthetic_model(parse_model_spec("synthetic:tiny,tws=half,members=1,seq=12"), seed=4)
    assert model.members[0].layers[0].ffn_in.mult_hi is not None
    prog = compile_model(model, SMALL if cfg == "small4" else SHIPPED[cfg])
    for seed in range(2):
        assert_equal_to_reference(model, prog, seed)


def test_a_half_product_beyond_int32_is_refused_with_one_line():
    """The halves are written as int32 streams: a multiplier that could overflow one is named."""
    model = synthetic_model(parse_model_spec("synthetic:tiny,tws=half,members=1"), seed=0)
    L = model.members[0].layers[0]
    big = replace(L, value=replace(L.value, mult_hi=np.full_like(L.value.mult_hi, 1 << 30)))
    model.members[0].layers = (big,) + tuple(model.members[0].layers[1:])
    with pytest.raises(CompileError, match=r"'m0\.l0\.value': a half's product can reach \d+, beyond the int32"):
        compile_model(model, AccelConfig())


@pytest.mark.parametrize("abits", [3, 5, 6, 7])
@pytest.mark.parametrize("cfg", ["small", "wide"])
def test_any_activation_width_through_the_whole_model(abits, cfg):
    shape = parse_model_spec(f"synthetic:tiny,members=1,abits={abits},seq=9")
    model = synthetic_model(shape, seed=abits)
    assert_equal_to_reference(model, compile_model(model, SHIPPED[cfg]), abits)


def test_heads_narrower_than_a_word_share_it_and_heads_across_words_are_cut():
    # hidden 24 in 4 heads of 6 on 16-bit words: head 2 straddles the word boundary
    shape = EnsembleShape(layers=1, hidden=24, heads=4, intermediate=16, vocab=40, max_position=24, members=1,
                          act_bits=4, attn_bits=4, seq=12)
    model = synthetic_model(shape, 7)
    prog = compile_model(model, SMALL)
    assert_equal_to_reference(model, prog, 7)
    assert any(r["name"].startswith("m0.l0.attention") for r in prog.meta["regions"])


def test_members_run_one_after_another_with_the_next_embedding_overlapping():
    prog = compile_model("synthetic:tiny,members=2", AccelConfig())
    first = {}
    for r in prog.meta["regions"]:
        if "member" in r:            # the vote's region is the ensemble's, no member's
            first.setdefault(r["member"], r["start"])
    assert prog.meta["regions"][-1]["name"] == "vote" and "member" not in prog.meta["regions"][-1]
    assert first[0] < first[1]
    last0 = max(r["end"] for r in prog.meta["regions"] if r.get("member") == 0)
    first1 = min(r["start"] for r in prog.meta["regions"] if r.get("member") == 1)
    assert first1 < last0   # member 1 starts (its embedding) before member 0 ends


def test_compiled_in_example_is_the_default_input():
    prog = compile_model("synthetic:tiny,members=1", AccelConfig(), seed=5)
    ids, types, mask = host.default_input(prog.meta["seq"], prog.meta["vocab"], 5)
    acc = host.run_once(prog)
    again = host.run_once(host.with_inputs(prog, ids, types, mask))
    assert np.array_equal(acc, again)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hidden=st.sampled_from([16, 24, 32]), heads=st.sampled_from([1, 2]), inter=st.sampled_from([16, 40]),
       seq=st.integers(2, 20), abits=st.sampled_from([2, 4, 8]), tws=st.sampled_from(["no", "shared", "half"]),
       seed=st.integers(0, 99),
       small=st.booleans())
def test_property_random_small_models_equal_the_reference(hidden, heads, inter, seq, abits, tws, seed, small):
    shape = EnsembleShape(layers=1, hidden=hidden, heads=heads, intermediate=inter, vocab=40, max_position=24,
                          members=1, act_bits=abits, attn_bits=abits, seq=seq, tws=tws != "no",
                          tws_scales="half" if tws == "half" else "shared")
    model = synthetic_model(shape, seed)
    prog = compile_model(model, SMALL if small else AccelConfig())
    assert_equal_to_reference(model, prog, seed)


@pytest.mark.parametrize("spec,config,match", [
    ("synthetic:tiny,base=bibert,tws=1", AccelConfig(), "no TWS-split layers"),
    ("synthetic:tiny,base=bibert", AccelConfig(act_bits=(1, 4)), "activation bits 2 not supported"),
    ("synthetic:tiny,abits=2", AccelConfig(act_bits=(4,)), "activation bits 2 not supported"),
    ("synthetic:tiny,abits=8", AccelConfig(pe_rows=2, pe_cols=2, xnor_width=64, abuf_bytes=64, wbuf_bytes=64,
                                            pbuf_bytes=32, dram_bytes_per_cycle=8), "8 bit-planes"),
])
def test_what_the_machine_cannot_hold_is_one_compile_error(spec, config, match):
    with pytest.raises(CompileError, match=match) as e:
        compile_model(spec, config)
    assert "\n" not in str(e.value)


def test_dram_beyond_32_bit_addresses_is_a_compile_error(monkeypatch):
    from bebert.compiler import alloc

    monkeypatch.setattr(alloc, "DRAM_LIMIT", 1 << 16)
    with pytest.raises(CompileError, match="32-bit"):
        compile_model("synthetic:tiny", AccelConfig())


def test_cli_compile_run_and_dump_ir(tmp_path, capsys):
    out = tmp_path / "bb"
    assert main(["compile", "--model", "synthetic:tiny,members=1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["examples"] == 1 and len(res["member_logits"]) == 1 and res["predictions"][0] in (0, 1)
    # one member: the device's vote is that member's class, read from the program's `votes`
    assert res["vote"] == {"method": "samme", "on": "device"} and res["member_predictions"] == [res["predictions"]]
    assert main(["disasm", str(out)]) == 0
    vote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("VEC vote ")]
    assert len(vote) == 1 and "aux=1" in vote[0]
    assert main(["compile", "--model", "synthetic:tiny", "--dump-ir", "bitplane"]) == 0
    text = capsys.readouterr().out
    assert "graph after 'bitplane'" in text and "vec SOFTMAX" in text and "gemm" in text
    assert main(["compile", "--model", "synthetic:tiny", "--dump-ir", "nonsense"]) == 2
    assert "unknown pass" in capsys.readouterr().err
    assert main(["compile", "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "nor an existing package" in capsys.readouterr().err
    assert main(["run", str(out), "--task", "sst2"]) == 2
    assert "synthetic" in capsys.readouterr().err


def test_the_command_line_parser_does_not_import_torch():
    """`bebert compile` must not pay for PyTorch (the 10 s compile target); model/cli.py keeps a copy
    of quant_bert.BASES for that, held equal here."""
    import subprocess
    import sys

    from bebert.model.quant_bert import BASES

    code = "import sys; from bebert.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    import inspect

    from bebert.model import cli as model_cli

    src = inspect.getsource(model_cli.register)
    assert "BASES = (" + ", ".join(f'"{b}"' for b in BASES) + ")" in src


@pytest.mark.parametrize("spec, method", [("synthetic:tiny,members=3", "samme"),
                                          ("synthetic:tiny,members=2,vote=samme.r", "samme.r"),
                                          ("synthetic:tiny,members=3,vote=average", "average"),
                                          ("synthetic:tiny,members=3,labels=3,vote=average", "average"),
                                          ("synthetic:tiny,members=3,labels=1,vote=mean", "mean"),
                                          ("synthetic:tiny,members=4,labels=1,vote=median", "median")])
def test_the_device_vote_is_the_integer_paths_vote(spec, method):
    """The program's `votes` (its vote kernel: VOTE samme / samme.r, VOTE_AVERAGE, VOTE_MEAN,
    VOTE_MEDIAN) are model/vote.py apply_vote of the integer path's accumulators, member
    predictions (STS-B: member scores) included; host.predict only reads them."""
    from bebert.model.package import integer_accumulators
    from bebert.model.vote import apply_vote
    from bebert.vector import VOTE_KERNEL_OF

    model = synthetic_model(parse_model_spec(spec), seed=3)
    prog = compile_model(spec, SMALL, seed=3)
    assert prog.meta["vote"]["method"] == method and prog.meta["vote"]["on"] == "device"
    assert "votes" in prog.meta["outputs"]
    assert bool(prog.meta.get("regression")) == (method in ("mean", "median"))     # bebert run shows scores
    assert sum(i.op == Op.VEC and i.args["fn"] == VOTE_KERNEL_OF[method] for i in prog.instrs) == 1
    rng = np.random.default_rng(3)
    seq, vocab = prog.meta["seq"], prog.meta["vocab"]
    outs, accs = [], []
    for _ in range(3):
        ids, types = rng.integers(0, vocab, seq), rng.integers(0, 2, seq)
        mask = (np.arange(seq) < int(rng.integers(1, seq + 1))).astype(np.int64)
        outs.append(host.run_outputs(host.with_inputs(prog, ids, types, mask)))
        b = {"input_ids": torch.tensor(ids)[None], "token_type_ids": torch.tensor(types)[None],
             "attention_mask": torch.tensor(mask)[None]}
        accs.append([integer_accumulators(m, b).numpy() for m in model.members])
    want_members, want = apply_vote(model.vote, [np.concatenate([a[i] for a in accs]) for i in range(len(model.members))])
    got_members, got = host.predict(outs, prog)
    assert np.array_equal(got, want) and np.array_equal(got_members, np.stack(want_members, 1))
