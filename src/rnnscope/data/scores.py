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


class Scoreboard:
    """Running sums of the metrics per forecaster (the model, each baseline), step ahead and
    target column, so that forecasts can be scored batch by batch without being kept."""

    def __init__(self, spec: dict, ks: list[int]) -> None:
        self.spec, self.ks = spec, ks
        # name -> (5, K, O): |e|, e², sMAPE term, count, |e| / MASE scale (NaN where there is no scale)
        self.sums: dict[str, np.ndarray] = {}

    def add(self, name: str, forecast: np.ndarray, actual: np.ndarray) -> None:
        """Add (B, K, O) forecasts of one forecaster against the (B, K, O) actual values."""
        known = ~(np.isnan(actual) | np.isnan(forecast))
        error = np.where(known, forecast - actual, 0.0)
        denominator = np.where(known, np.abs(actual) + np.abs(forecast), 0.0)
        ratio = np.divide(2 * np.abs(error), denominator, out=np.zeros_like(error), where=denominator > 0)
        scale = np.array([v if v else np.nan for v in self.spec["mase_scale"]])  # (O,)
        batch = np.stack([np.abs(error).sum(0), (error**2).sum(0), ratio.sum(0), known.sum(0),
                          np.abs(error).sum(0) / scale])
        self.sums[name] = self.sums.get(name, 0) + batch

    def merge(self, other: "Scoreboard") -> None:
        """Add another board's sums (another series' forecasts): metrics over all of them. MASE
        then is the mean of each error scaled by its own series' scale."""
        for name, sums in other.sums.items():
            self.sums[name] = self.sums.get(name, 0) + sums

    def _metrics(self, sums: np.ndarray, scale: float | None) -> dict[str, float | None]:
        abs_error, squared, smape, count, scaled = sums
        if count == 0:
            return dict.fromkeys(METRICS)
        mae = float(abs_error / count)
        return {"mae": mae, "rmse": float(math.sqrt(squared / count)), "smape": float(100 * smape / count),
                "mase": float(scaled / count) if np.isfinite(scaled) else None}

    def result(self) -> dict[str, dict]:
        """Per target column: the model's metrics, each baseline's, the best baseline and the ratios."""
        result = {}
        for j, name in enumerate(self.spec["targets"]):
            scale = self.spec["mase_scale"][j]
            overall = {f: self._metrics(s[:, :, j].sum(axis=1), scale) for f, s in self.sums.items()}
            model = overall.pop("model", dict.fromkeys(METRICS))
            ranked = [b for b in overall if overall[b]["rmse"] is not None]
            best = min(ranked, key=lambda b: overall[b]["rmse"]) if ranked else None
            naive = overall.get("naive", {}).get("rmse")
            entry = {"model": model, "baselines": overall, "best_baseline": best,
                     "rmse_vs_best_baseline": (model["rmse"] / overall[best]["rmse"]
                                               if best and model["rmse"] is not None and overall[best]["rmse"]
                                               else None),
                     "rmse_vs_naive": model["rmse"] / naive if model["rmse"] is not None and naive else None}
            if len(self.ks) > 1 and "model" in self.sums:
                entry["per_step"] = {f"t+{k}": self._metrics(self.sums["model"][:, g, j], scale)
                                     for g, k in enumerate(self.ks)}
            result[name] = entry
        return result


def score(spec: dict, forecast: np.ndarray, actual: np.ndarray, others: dict[str, np.ndarray],
          ks: list[int]) -> dict[str, dict]:
    """Scoreboard.result for forecasts held in memory: the model's (N, K, O) and each baseline's."""
    board = Scoreboard(spec, ks)
    board.add("model", forecast, actual)
    for name, values in others.items():
        board.add(name, values, actual)
    return board.result()
