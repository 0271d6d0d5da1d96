"""GLUE metrics against values computed by hand (and by scikit-learn / scipy, quoted)."""

import math

import pytest

from bebert.model import metrics as M


def test_accuracy():
    assert M.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_f1_positive_class():
    # tp = 2, fp = 1, fn = 1 -> 2*2 / (2*2 + 1 + 1)
    assert M.f1([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(4 / 6)
    assert M.f1([0, 0], [1, 1]) == 0.0


def test_matthews_binary():
    # tp = 2, tn = 1, fp = 1, fn = 1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    assert M.matthews_corr([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(1 / 6)
    # sklearn's docstring example: -0.33...
    assert M.matthews_corr([1, -1, 1, 1], [1, 1, 1, -1]) == pytest.approx(-1 / 3)
    assert M.matthews_corr([1, 1, 1], [0, 1, 0]) == 0.0  # constant prediction


def test_matthews_multiclass():
    # sklearn.metrics.matthews_corrcoef([0,1,2,0,1,2], [0,2,1,0,0,1]) = -0.0909...? compute by hand:
    # confusion C[true, pred]: rows t0:(2,0,0) t1:(1,0,1) t2:(0,2,0); s=6, c=2
    # t=(2,2,2), p=(3,2,1): (2*6 - (6+4+2)) / sqrt((36-14)*(36-12)) = 0
    assert M.matthews_corr([0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2]) == pytest.approx(0.0)
    assert M.matthews_corr([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)


def test_pearson():
    assert M.pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert M.pearson([1, 1, 1], [1, 2, 3]) == 0.0


def test_spearman_with_ties():
    # scipy.stats.spearmanr([1, 2, 2, 3], [1, 2, 3, 4]).statistic = 0.9486832980505138
    assert M.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    assert M.spearman([10, 20, 30], [1, 5, 100]) == pytest.approx(1.0)
    # ranks (1, 3, 2) vs (1, 2, 3): 1 - 6*2/(3*8) = 0.5
    assert M.spearman([0.1, 0.9, 0.5], [1, 2, 3]) == pytest.approx(0.5)


def test_bad_input():
    with pytest.raises(ValueError):
        M.accuracy([1, 2], [1])
    with pytest.raises(ValueError):
        M.pearson([], [])


def test_rank_average_ties():
    assert list(M._rank(__import__("numpy").array([3.0, 1.0, 3.0, 2.0]))) == [3.5, 1.0, 3.5, 2.0]
    assert not math.isnan(M.spearman([1, 1], [1, 2]))
