"""The RTL vector unit (hw/vector_unit.py) alone, against a DRAM model, held to `bebert.vector`:

- every kernel's final DRAM image equals `run_vec`'s byte for byte, on random data and
  descriptors (stream and packed outputs, the fused add, the key mask, the packed
  requantize, partial last tiles, 1..16 lanes);
- at the nominal memory `busy` lasts exactly `vec_cycles(fn, rows, cols, bits, aux, io)`;
- a slower memory (random backpressure) gives the same bytes in more cycles;
- a descriptor `run_vec` refuses (`VecError`) raises `fault`.

The unit runs in Amaranth's simulator; the cases of a test share one simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from bebert.config import AccelConfig
from bebert.vector import VecError, VecFn, decode_desc, encode_desc, run_vec, vec_cycles
from test_hw_vector_arith import TINY
from conftest import small4_config
from vec_cases import scalar_case, tile_case, vote_case
from vec_dram import run_units

SMALL = AccelConfig.from_toml(__import__("pathlib").Path(__file__).resolve().parents[1] / "configs" / "small.toml")
TILE = [VecFn.REQUANT, VecFn.ADD, VecFn.GELU, VecFn.LAYERNORM, VecFn.SOFTMAX]


def check(config, cases, stall: float = 0.0, seed: int = 0):
    """Run the cases; every image must equal run_vec's; return the results."""
    res = run_units(config, [(c.dram, c.args) for c in cases], stall=stall, seed=seed)
    for c, r in zip(cases, res):
        a = c.args
        assert not r["fault"], a
        assert not r["complaints"], r["complaints"][:3]
        assert r["left"] == (0, 0), "reads or write answers still pending after busy fell"
        gold = c.golden()
        diff = (r["dram"] != gold).nonzero()[0]
        assert diff.size == 0, f"{VecFn(a['fn']).name} {a}: {diff.size} bytes differ, first at 0x{diff[0]:x}"
    return res


def cycles_of(config, c):
    a = c.args
    return vec_cycles(a["fn"], a["rows"], a["cols"], a["bits"], a["aux"], a["io"], config)


@pytest.mark.parametrize("fn", TILE, ids=lambda f: f.name)
def test_tile_kernel_matches_run_vec_and_takes_vec_cycles(fn):
    cases = [tile_case(TINY, fn, 1000 * int(fn) + s) for s in range(8)]
    for c, r in zip(cases, check(TINY, cases)):
        assert r["cycles"] == cycles_of(TINY, c), c.args


def test_row_kernels_cover_fused_add_mask_and_packed_requantize():
    cases = []
    for i, (fn, second, rq, pm1) in enumerate([(VecFn.LAYERNORM, True, True, False), (VecFn.LAYERNORM, False, True, True),
                                               (VecFn.SOFTMAX, True, True, False), (VecFn.SOFTMAX, True, False, True),
                                               (VecFn.LAYERNORM, True, False, False), (VecFn.SOFTMAX, False, True, True)]):
        cases.append(tile_case(TINY, fn, 77 + i, second=second, pack_rq=rq, bits=1 if pm1 else 3, pm1=pm1,
                               stream_out=True))
    for c, r in zip(cases, check(TINY, cases)):
        assert r["cycles"] == cycles_of(TINY, c), c.args


@pytest.mark.parametrize("lanes", [1, 2, 8])
def test_lane_counts_on_the_small_config(lanes):
    cfg = SMALL.replace(name=f"small{lanes}", vec_lanes=lanes, vec_row_elems=64)
    cases = [tile_case(cfg, fn, 300 * lanes + i) for i, fn in enumerate(TILE)]
    for c, r in zip(cases, check(cfg, cases)):
        assert r["cycles"] == cycles_of(cfg, c), c.args


@pytest.mark.slow
def test_sixteen_lanes_and_a_wide_bus():
    cfg = SMALL.replace(name="small16", vec_lanes=16, vec_row_elems=64, dram_bytes_per_cycle=32, xnor_width=64,
                        abuf_bytes=16384, wbuf_bytes=16384, pbuf_bytes=4096, dram_latency_cycles=12)
    cases = [tile_case(cfg, fn, 4000 + i) for i, fn in enumerate(TILE * 2)]
    for c, r in zip(cases, check(cfg, cases)):
        assert r["cycles"] == cycles_of(cfg, c), c.args


SCALAR = [VecFn.EMBED, VecFn.LUT, VecFn.DOT, VecFn.COMBINE, VecFn.VOTE, VecFn.VOTE_AVERAGE, VecFn.VOTE_MEAN,
          VecFn.VOTE_MEDIAN]


@pytest.mark.parametrize("fn", SCALAR, ids=lambda f: f.name)
def test_scalar_kernel_matches_run_vec_and_takes_vec_cycles(fn):
    cases = [scalar_case(TINY, fn, 2000 * int(fn) + s) for s in range(5)]
    for c, r in zip(cases, check(TINY, cases)):
        assert r["cycles"] == cycles_of(TINY, c), c.args


def test_scalar_kernels_on_a_longer_latency_and_a_wider_bus():
    cfg = TINY.replace(name="tiny_l13_b16", dram_latency_cycles=13, dram_bytes_per_cycle=16, xnor_width=64,
                       abuf_bytes=8192, wbuf_bytes=8192, pbuf_bytes=2048)
    cases = [scalar_case(cfg, fn, 31 + i) for i, fn in enumerate(SCALAR * 2)]
    for c, r in zip(cases, check(cfg, cases)):
        assert r["cycles"] == cycles_of(cfg, c), c.args


def test_backpressure_gives_the_same_bytes_in_more_cycles():
    cases = [tile_case(TINY, fn, 555 + i, bits=2) for i, fn in enumerate(TILE)]
    cases += [scalar_case(TINY, fn, 556 + i) for i, fn in enumerate(SCALAR)]
    for c, r in zip(cases, check(TINY, cases, stall=0.3, seed=9)):
        assert r["cycles"] > cycles_of(TINY, c)


def _vote_edges(config):
    """VOTE's edge cases: ties (first maximum: of a member's codes, of the votes), one member,
    two and three labels, logit codes saturating to int32, a zero alpha, many members."""
    tie = np.zeros((1, 3, 2), np.int64)                       # every code 0: every member says 0
    sat = np.array([[[1 << 62, -(1 << 62), 5], [-(1 << 62), 1 << 62, 5]]])  # codes clamp to +-(2^31)
    even = np.array([[[9, 1], [1, 9]]])                       # equal alphas: the votes tie, class 0 wins
    big = np.array([[[1 << 40, 3], [2, 1 << 41], [7, 7]]])
    cases = []
    for i, method in enumerate(("samme", "samme.r")):
        s = 900 + 10 * i
        cases += [
            vote_case(config, s, acc=tie, shifts=[0] * 3, alphas=[1, 2, 3], mults=np.ones((3, 2), int), method=method),
            vote_case(config, s + 1, acc=sat, shifts=[0, 0], alphas=[5, 5], mults=np.ones((2, 3), int), method=method),
            vote_case(config, s + 2, acc=even, shifts=[1, 1], alphas=[7, 7], mults=np.ones((2, 2), int),
                      method=method),
            vote_case(config, s + 3, acc=big, shifts=[16, 63, 3], alphas=[3, 0, 1], mults=np.full((3, 2), 1 << 20),
                      method=method),
            vote_case(config, s + 4, members=1, labels=2, method=method),
            vote_case(config, s + 5, members=1, labels=3, rows=3, method=method),
            vote_case(config, s + 6, members=16, labels=3, method=method),
            vote_case(config, s + 7, members=40, labels=2, method=method),   # beyond COMBINE's 16 views
        ]
    return cases


def _exact_vote_edges(config):
    """VOTE_AVERAGE / MEAN / MEDIAN's edge cases: ties (equal codes: the first maximum; equal
    scores: the median's stable order), one member, a zero alpha, codes saturating to int32,
    negative scores, an even split of the weight (2 W == T: the lower score), the most members
    the row buffer holds (at most 64)."""
    R = config.vec_row_elems
    cases, ones = [], lambda m, k: np.ones((m, k), int)     # noqa: E731
    sat = np.array([[[1 << 62, -(1 << 62)], [-(1 << 62), 1 << 62], [5, 5]]])
    for i, (method, k) in enumerate((("average", 2), ("average", 3), ("mean", 1), ("median", 1))):
        s = 1200 + 20 * i
        most = min(64, R // k - 1)
        cases += [
            vote_case(config, s, acc=np.zeros((1, 3, k), np.int64), shifts=[0] * 3, alphas=[1, 2, 3], mults=ones(3, k),
                      method=method),
            vote_case(config, s + 1, acc=sat[:, :, :k], shifts=[0] * 3, alphas=[5, 5, 1], mults=ones(3, k),
                      method=method),
            vote_case(config, s + 2, acc=-np.arange(1, 4 * k + 1).reshape(1, 4, k) << 20, shifts=[4] * 4,
                      alphas=[0, 3, 0, 3], mults=ones(4, k), method=method),          # zero alphas, negative codes
            vote_case(config, s + 3, acc=np.array([[[3] * k, [7] * k]]), shifts=[0, 0], alphas=[9, 9],
                      mults=ones(2, k), method=method),                               # an even split
            vote_case(config, s + 4, acc=np.array([[[7] * k, [3] * k, [3] * k]]), shifts=[0] * 3, alphas=[1, 0, 0],
                      mults=ones(3, k), method=method),                               # the weight on one member
            vote_case(config, s + 5, members=1, labels=k, rows=3, method=method),
            vote_case(config, s + 6, members=most, labels=k, method=method),
            vote_case(config, s + 7, members=5, labels=k, rows=2, method=method,
                      alphas=[(1 << 22) - 1] * 5),                                    # the largest alpha_q
        ]
    return cases


@pytest.mark.parametrize("edges", [_vote_edges, _exact_vote_edges], ids=["VOTE", "exact"])
@pytest.mark.parametrize("config", [TINY, SMALL, small4_config()], ids=lambda c: c.name)
def test_vote_edge_cases_match_run_vec_and_take_vec_cycles(config, edges):
    cases = edges(config)
    for c, r in zip(cases, check(config, cases)):
        assert r["cycles"] == cycles_of(config, c), c.args


@pytest.mark.parametrize("config", [TINY, small4_config()], ids=lambda c: c.name)
def test_exact_votes_on_random_instances_match_run_vec_and_take_vec_cycles(config):
    """... and a slow memory (the row sequencer holds with the write port) gives the same bytes."""
    cases = [vote_case(config, 3000 + s, method=("average", "mean", "median")[s % 3]) for s in range(24)]
    for c, r in zip(cases, check(config, cases)):
        assert r["cycles"] == cycles_of(config, c), c.args
    for c, r in zip(cases, check(config, cases, stall=0.5, seed=3)):
        assert r["cycles"] > cycles_of(config, c), c.args


def test_vote_softmax_steps_fit_the_widths_the_row_sequencer_gives_them():
    """VOTE_AVERAGE's i-exp (hw/vec/vote_seq.py) is as wide as its fixed constants need: z =
    (t div_mult) >> div_shift is floor(t / ln2) for every t the clamp lets through, so p lies in
    (poly_b - ln2, poly_b] and e = (p^2 + poly_c) >> z below 2^30."""
    from bebert.hw.vec import vote_seq as vs
    sm = vs.SM
    t = np.arange(sm.t_max + 1, dtype=np.int64)
    z = (t * sm.div_mult) >> sm.div_shift
    assert np.array_equal(z, t // sm.ln2) and z.max() == vs.Z_MAX
    p = sm.poly_b - (t - z * sm.ln2)
    assert p.min() >= vs.P_MIN and p.max() <= sm.poly_b
    e = (p * p + sm.poly_c) >> z
    assert e.max() == vs.E_MAX < 1 << 30


def test_vote_is_model_vote_apply_vote():
    """The vote kernels' reference is model/vote.py's apply_vote, every method, on the same constants."""
    from bebert.model.vote import MemberLogits, _make, apply_vote
    from bebert.vector import vote_reference
    rng = np.random.default_rng(5)
    for method in ("samme", "samme.r", "average", "mean", "median"):
        for members, labels in ((1, 2), (3, 2), (4, 3), (5, 5), (16, 2), (64, 1)):
            labels = 1 if method in ("mean", "median") else labels
            mult = rng.integers(1, 1 << 30, (members, labels))
            shift = rng.integers(20, 63, members)
            alphas = tuple(int(a) for a in rng.integers(1, 1 << 22, members))
            vote = _make(method, alphas, tuple(MemberLogits(tuple(int(x) for x in m), int(s))
                                              for m, s in zip(mult, shift)))
            acc = rng.integers(-(1 << 40), 1 << 40, (7, members, labels))
            acc[:3] = rng.integers(-2, 3, (3, members, labels)) << 36                  # ties
            preds, pred = apply_vote(vote, [acc[:, i] for i in range(members)])
            got = vote_reference(acc, shift, alphas, mult, method)
            assert np.array_equal(got[:, :members], np.stack(preds, 1)) and np.array_equal(got[:, -1], pred)


# -- faults -----------------------------------------------------------------------------------
def _mutate(case, **changes):
    """The case with descriptor fields replaced (views / packed by dataclass fields)."""
    a = case.args
    d = decode_desc(case.dram, a["fn"], a["desc"], a["aux"])
    for name, f in changes.items():
        d[name] = f(d[name])
    blob = encode_desc(VecFn(a["fn"]), **d)
    case.dram[a["desc"]:a["desc"] + len(blob)] = list(blob)
    return case


def _fault_cases():
    from dataclasses import replace
    mk = lambda fn, seed, **kw: tile_case(TINY, fn, seed, **kw)   # noqa: E731
    out = [
        ("element size differs from io", _mutate(mk(VecFn.REQUANT, 1, in_elem=2), src=lambda v: replace(v, elem=4))),
        ("not a stream view (rtile)", _mutate(mk(VecFn.GELU, 2), src=lambda v: replace(v, rtile=TINY.vec_lanes * 2))),
        ("not a stream view (column stride)", _mutate(mk(VecFn.ADD, 3), b=lambda v: replace(v, s_c=v.s_c * 2))),
        ("stream view not bus-aligned", _mutate(mk(VecFn.REQUANT, 4, stream_out=True), out=lambda v: replace(v, base=v.base + 4))),
        ("constant block missing", _mutate(mk(VecFn.REQUANT, 5), consts=lambda x: 0)),
        ("constant block misaligned", _mutate(mk(VecFn.GELU, 6), consts=lambda x: x + 4)),
        ("packed group not a power of two", _mutate(mk(VecFn.REQUANT, 7, bits=2), pout=lambda p: replace(p, group=3))),
        ("packed consts on a REQUANT", _mutate(mk(VecFn.REQUANT, 8, bits=2), pout=lambda p: replace(p, consts=64))),
        ("key mask not a plain int32 row", _mutate(mk(VecFn.SOFTMAX, 9, second=True), mask=lambda v: replace(v, s_c=8))),
    ]
    c = mk(VecFn.REQUANT, 10)
    c.args = {**c.args, "desc": c.args["desc"] + 2}
    out.append(("descriptor not 4-byte aligned", c))
    c = mk(VecFn.LAYERNORM, 11)
    k = decode_desc(c.dram, c.args["fn"], c.args["desc"])["consts"]
    c.dram[k:k + 8] = list((c.args["cols"] + 1).to_bytes(8, "little"))
    out.append(("LAYERNORM hidden != cols", c))
    sc = lambda fn, seed: scalar_case(TINY, fn, seed)   # noqa: E731
    c = sc(VecFn.EMBED, 12)
    d = decode_desc(c.dram, c.args["fn"], c.args["desc"])
    ids = d["ids"]
    from bebert.vector import write_view
    write_view(c.dram, ids, np.full((c.args["rows"], 1), d["word"][3]))     # an id past the word table
    out.append(("EMBED id outside its table", c))
    c = sc(VecFn.EMBED, 20)
    c.args = {**c.args, "io": c.args["io"] ^ 1}
    out.append(("EMBED word table kind differs from io", c))
    out.append(("EMBED out not a stream view", _mutate(sc(VecFn.EMBED, 21), out=lambda v: replace(v, s_c=v.s_c * 2))))
    c = sc(VecFn.LUT, 13)
    out.append(("LUT index outside its table", _mutate(c, size=lambda n: 1)))
    out.append(("scalar view not element-aligned", _mutate(sc(VecFn.DOT, 14), src=lambda v: replace(v, base=v.base + 1))))
    out.append(("DOT bias misaligned", _mutate(sc(VecFn.DOT, 15), bias=lambda b: b + 4)))
    c = sc(VecFn.COMBINE, 16)
    out.append(("COMBINE member view misaligned",
                _mutate(c, inputs=lambda vs: [replace(vs[0], s_c=vs[0].s_c + 1)] + vs[1:])))
    out.append(("VOTE method not samme / samme.r", _mutate(vote_case(TINY, 17), method=lambda x: 2)))
    out.append(("VOTE logit shift beyond 63", vote_case(TINY, 18, members=2, shifts=[3, 64])))
    out.append(("VOTE constants missing", _mutate(vote_case(TINY, 19), consts=lambda x: 0)))
    out.append(("VOTE_AVERAGE alpha_q beyond 2^22", vote_case(TINY, 20, members=2, method="average",
                                                              alphas=[1, 1 << 22])))
    out.append(("VOTE_MEAN negative alpha_q", vote_case(TINY, 21, members=3, method="mean", alphas=[4, -1, 2])))
    out.append(("VOTE_MEDIAN alphas all 0", vote_case(TINY, 22, members=3, method="median", alphas=[0, 0, 0])))
    out.append(("VOTE_AVERAGE beyond the row buffer", vote_case(TINY, 23, members=16, labels=4, method="average")))
    return out


def test_descriptors_run_vec_refuses_raise_fault():
    cases = _fault_cases()
    for why, c in cases:
        with pytest.raises(VecError):
            run_vec(c.dram.copy(), c.args, TINY)
    res = run_units(TINY, [(c.dram, c.args) for _, c in cases])
    for (why, c), r in zip(cases, res):
        assert r["fault"], why
        assert r["left"] == (0, 0), why
