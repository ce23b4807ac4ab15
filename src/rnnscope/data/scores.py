"""Forecasting metrics and the baselines every model is measured beside, in the data's units.

    MAE   = mean |ŷ − y|
    RMSE  = sqrt(mean (ŷ − y)²)
    sMAPE = 100 · mean 2|ŷ − y| / (|y| + |ŷ|)          (percent; 0 where both are 0)
    MASE  = MAE / mean |y_t − y_{t−m}| over the train rows  (m = season, or 1; Hyndman & Koehler)

Baselines, from what is known at the forecast origin o, for the value at o + k:
    naive           y[o], the last known value
    seasonal_naive  y[o + k − m·ceil(k/m)], the last known value one season back (m = season ≥ 2)
    mean            the mean of the train rows
Only rows whose actual value is known are scored (missing targets count for nothing).
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("mae", "rmse", "smape", "mase")


def metrics(forecast: np.ndarray, actual: np.ndarray, mase_scale: float | None) -> dict[str, float | None]:
    """MAE, RMSE, sMAPE and MASE of one column over the cells where both are known."""
    known = ~(np.isnan(actual) | np.isnan(forecast))
    if not known.any():
        return dict.fromkeys(METRICS)
    error = forecast[known] - actual[known]
    mae = float(np.mean(np.abs(error)))
    denominator = np.abs(actual[known]) + np.abs(forecast[known])
    ratio = np.divide(2 * np.abs(error), denominator, out=np.zeros_like(error), where=denominator > 0)
    return {"mae": mae, "rmse": float(math.sqrt(np.mean(error**2))), "smape": float(100 * np.mean(ratio)),
            "mase": mae / mase_scale if mase_scale else None}


def baselines(spec: dict, y_past: np.ndarray, origins: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    """Each baseline's forecast (N, K, O) from the origins, for the steps ks."""
    N, K, O = len(origins), len(ks), y_past.shape[1]
    naive = np.repeat(y_past[origins][:, None, :], K, axis=1)
    out = {"naive": naive}
    m = spec["season"]
    if m and m > 1:
        seasonal = np.full((N, K, O), np.nan)
        for g, k in enumerate(ks):
            back = origins + k - m * math.ceil(k / m)  # the same phase, one season (or more) earlier
            ok = back >= 0
            seasonal[ok, g] = y_past[back[ok]]
        out["seasonal_naive"] = seasonal
    out["mean"] = np.broadcast_to(np.array(spec["y_train_mean"])[None, None, :], (N, K, O))
    return out


def score(spec: dict, forecast: np.ndarray, actual: np.ndarray, others: dict[str, np.ndarray],
          ks: list[int]) -> dict[str, dict]:
    """Per target column: the model's metrics, each baseline's, the best baseline and the ratio.

    Args:
        forecast: the model's (N, K, O) forecasts in data units.
        actual: (N, K, O) actual values, NaN where unknown.
        others: baseline name -> (N, K, O) forecasts.
        ks: the steps ahead of the K groups.
    """
    result = {}
    for j, name in enumerate(spec["targets"]):
        scale = spec["mase_scale"][j]
        model = metrics(forecast[:, :, j], actual[:, :, j], scale)
        base = {b: metrics(f[:, :, j], actual[:, :, j], scale) for b, f in others.items()}
        ranked = [b for b in base if base[b]["rmse"] is not None]
        best = min(ranked, key=lambda b: base[b]["rmse"]) if ranked else None
        entry = {"model": model, "baselines": base, "best_baseline": best,
                 "rmse_vs_best_baseline": (model["rmse"] / base[best]["rmse"]
                                           if best and model["rmse"] is not None and base[best]["rmse"] else None),
                 "rmse_vs_naive": (model["rmse"] / base["naive"]["rmse"]
                                   if model["rmse"] is not None and base["naive"]["rmse"] else None)}
        if len(ks) > 1:
            entry["per_step"] = {f"t+{k}": metrics(forecast[:, g, j], actual[:, g, j], scale)
                                 for g, k in enumerate(ks)}
        result[name] = entry
    return result
