"""Forecasting metrics against hand computations, and the baselines from what the origin knows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnscope.data.scores import baselines, metrics, score


def test_metrics_by_hand():
    forecast = np.array([2.0, 4.0, 0.0, 5.0])
    actual = np.array([1.0, 4.0, 0.0, np.nan])  # the missing actual counts for nothing
    m = metrics(forecast, actual, mase_scale=0.5)
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert m["smape"] == pytest.approx(100 * (2 * 1 / 3 + 0 + 0) / 3)  # 0/0 counts as 0
    assert m["mase"] == pytest.approx((1 / 3) / 0.5)
    assert metrics(forecast, np.full(4, np.nan), 1.0) == dict.fromkeys(("mae", "rmse", "smape", "mase"))


def test_baselines_use_only_what_the_origin_knows():
    y_past = np.arange(20, dtype=float)[:, None]  # (R, 1): value = row
    spec = {"season": 4, "y_train_mean": [7.5], "targets": ["v"]}
    origins = np.array([10, 11])
    b = baselines(spec, y_past, origins, ks=[1, 2, 5])
    np.testing.assert_allclose(b["naive"][:, :, 0], [[10, 10, 10], [11, 11, 11]])
    # the value at o + k one season back: o + k − 4·ceil(k / 4)
    np.testing.assert_allclose(b["seasonal_naive"][:, :, 0], [[7, 8, 7], [8, 9, 8]])
    np.testing.assert_allclose(b["mean"][:, :, 0], 7.5)
    assert "seasonal_naive" not in baselines(dict(spec, season=0), y_past, origins, ks=[1])


def test_score_ranks_the_baselines_and_gives_the_ratio():
    spec = {"targets": ["v"], "mase_scale": [1.0]}
    actual = np.array([[[1.0]], [[2.0]], [[3.0]]])
    result = score(spec, actual + 0.5, actual, {"naive": actual + 1.0, "mean": actual + 2.0}, ks=[1])
    entry = result["v"]
    assert entry["best_baseline"] == "naive"
    assert entry["rmse_vs_best_baseline"] == pytest.approx(0.5) and entry["rmse_vs_naive"] == pytest.approx(0.5)
