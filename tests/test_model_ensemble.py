"""AdaBoost (SAMME) weight updates against hand-computed rounds, and the weighted vote."""

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


def test_combine_weighted_vote():
    z1 = torch.log(torch.tensor([[0.9, 0.1], [0.4, 0.6]]))
    z2 = torch.log(torch.tensor([[0.2, 0.8], [0.3, 0.7]]))
    out = E.combine([z1, z2], [3.0, 1.0])
    assert torch.allclose(out, torch.tensor([[0.725, 0.275], [0.375, 0.625]]), atol=1e-6)
    assert list(E.predictions(out)) == [0, 1]


def test_combine_regression_average():
    out = E.combine([torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]])], [1, 1], regression=True)
    assert list(E.predictions(out, regression=True)) == [2.0, 3.0]


def test_combine_rejects_bad_alphas():
    with pytest.raises(ValueError):
        E.combine([torch.zeros(1, 2)], [0.0])
    with pytest.raises(ValueError):
        E.combine([torch.zeros(1, 2)], [1.0, 2.0])


def test_bootstrap_weights_are_seeded_counts():
    a, b = E.bootstrap_weights(50, 7), E.bootstrap_weights(50, 7)
    assert np.array_equal(a, b) and a.sum() == pytest.approx(1.0)
    assert np.allclose(a * 50, np.round(a * 50))
