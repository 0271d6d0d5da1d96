"""AdaBoost (SAMME, SAMME.R, AdaBoost.R2) against hand-computed rounds, every vote, and resampling."""

import math

import numpy as np
import pytest
import torch

from bebert.model import ensemble as E


def test_samme_binary_round():
    w = E.initial_weights(4)
    new, alpha, err = E.samme_update(w, [True, False, False, False], num_classes=2)
    assert err == pytest.approx(0.25)
    assert alpha == pytest.approx(math.log(3))  # log(0.75 / 0.25) + log(1)
    # wrong example: 0.25 * 3 = 0.75; others 0.25; sum 1.5
    assert new == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6])


def test_samme_multiclass_round():
    new, alpha, err = E.samme_update(E.initial_weights(4), [True, False, False, False], num_classes=3)
    assert alpha == pytest.approx(math.log(3) + math.log(2))
    # 0.25 * 6 = 1.5 and 3 * 0.25: sum 2.25
    assert new == pytest.approx([2 / 3, 1 / 9, 1 / 9, 1 / 9])


def test_samme_second_round_uses_weights():
    w = np.array([0.5, 1 / 6, 1 / 6, 1 / 6])
    new, alpha, err = E.samme_update(w, [False, True, False, False], num_classes=2)
    assert err == pytest.approx(1 / 6)
    assert alpha == pytest.approx(math.log(5))
    assert new == pytest.approx(np.array([0.5, 5 / 6, 1 / 6, 1 / 6]) / (10 / 6))


def test_samme_clips_degenerate_errors():
    _, alpha_perfect, err = E.samme_update(E.initial_weights(3), [False] * 3, 2)
    assert err == E.ERR_MIN and math.isfinite(alpha_perfect)
    _, alpha_bad, _ = E.samme_update(E.initial_weights(4), [True, True, True, False], 2)
    assert 0 < alpha_bad < 1e-4  # worse than chance: barely votes


def test_samme_hard_vote_is_the_default():
    """SAMME's alpha-weighted vote of the members' classes: member 2 (alpha 3) outvotes 1 and 3."""
    z = [torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 5.0], [0.0, 1.0]]),
         torch.tensor([[1.0, 0.0], [1.0, 0.0]])]
    out = E.combine(z, [1.0, 3.0, 1.5])
    assert torch.equal(out, torch.tensor([[2.5, 3.0], [1.5, 4.0]]))
    assert list(E.predictions(out)) == [1, 1]
    tie = E.combine(z[:1] + z[2:], [1.0, 1.0])  # a tie goes to the lowest class
    assert list(E.predictions(E.combine([z[0], z[1]], [1.0, 1.0]))) == [0, 1] and tie.shape == (2, 2)


def test_probability_averaging_vote():
    z1 = torch.log(torch.tensor([[0.9, 0.1], [0.4, 0.6]]))
    z2 = torch.log(torch.tensor([[0.2, 0.8], [0.3, 0.7]]))
    out = E.combine([z1, z2], [3.0, 1.0], vote="average")
    assert torch.allclose(out, torch.tensor([[0.725, 0.275], [0.375, 0.625]]), atol=1e-6)
    assert list(E.predictions(out)) == [0, 1]


def test_samme_r_vote_sums_log_probabilities_unweighted():
    z1 = torch.log(torch.tensor([[0.9, 0.1]]))
    z2 = torch.log(torch.tensor([[0.2, 0.8]]))
    out = E.combine([z1, z2], [100.0, 1.0], vote="samme.r")  # alphas do not enter
    assert torch.allclose(out, torch.log(torch.tensor([[0.18, 0.08]])), atol=1e-6)
    h = lambda p: (torch.log(p) - torch.log(p).mean(-1, keepdim=True))  # noqa: E731  (K-1) h, K = 2
    ref = h(torch.tensor([[0.9, 0.1]])) + h(torch.tensor([[0.2, 0.8]]))
    assert E.predictions(out) == E.predictions(ref)


def test_samme_r_round():
    p = np.array([[0.8, 0.2], [0.4, 0.6]])
    new, alpha, err = E.samme_r_update(E.initial_weights(2), p, np.array([0, 0]))
    # y = (1, -1); w_i *= exp(-(1/2) y . log p_i)
    w = np.array([np.exp(-0.5 * (np.log(0.8) - np.log(0.2))), np.exp(-0.5 * (np.log(0.4) - np.log(0.6)))])
    assert new == pytest.approx(w / w.sum()) and alpha == 1.0 and err == pytest.approx(0.5)


def test_adaboost_r2_round_and_weighted_median():
    new, alpha, loss = E.r2_update(E.initial_weights(4), np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 2.0, 2.0, 3.0]))
    L = np.array([0, 0, 0.5, 1.0])  # |error| / max |error|
    assert loss == pytest.approx(L.mean())
    beta = 0.375 / 0.625
    assert alpha == pytest.approx(np.log(1 / beta))
    w = 0.25 * beta ** (1 - L)
    assert new == pytest.approx(w / w.sum())
    z = [torch.tensor([[1.0], [5.0]]), torch.tensor([[2.0], [4.0]]), torch.tensor([[9.0], [0.0]])]
    med = E.combine(z, [1.0, 1.0, 3.0], regression=True, vote="median")
    assert med.tolist() == [9.0, 0.0]  # the heavy member is the weighted median
    assert E.combine(z, [1.0, 1.0, 1.0], regression=True, vote="median").tolist() == [2.0, 4.0]


def test_resampling_draws_in_proportion_to_the_weights():
    g = torch.Generator().manual_seed(0)
    w = np.array([0.7, 0.1, 0.1, 0.1])
    idx = torch.cat([E.epoch_indices(w, 4, "resample", g) for _ in range(2000)])
    assert np.bincount(idx.numpy(), minlength=4) / len(idx) == pytest.approx(w, abs=0.02)
    uniform = E.epoch_indices(E.initial_weights(5), 5, "resample", g)  # uniform: a plain shuffled epoch
    assert sorted(uniform.tolist()) == list(range(5))
    assert sorted(E.epoch_indices(w, 4, "loss", g).tolist()) == [0, 1, 2, 3]  # weighted loss: each once


def test_combine_rejects_bad_alphas():
    with pytest.raises(ValueError):
        E.combine([torch.zeros(1, 2)], [0.0])
    with pytest.raises(ValueError):
        E.combine([torch.zeros(1, 2)], [1.0, 2.0])


def test_bootstrap_weights_are_seeded_counts():
    a, b = E.bootstrap_weights(50, 7), E.bootstrap_weights(50, 7)
    assert np.array_equal(a, b) and a.sum() == pytest.approx(1.0)
    assert np.allclose(a * 50, np.round(a * 50))
