"""A trained model's forecasts in the data's units, streamed in batches, scored beside the baselines.

    forecasts = forecast(model, prepared, origins, seq_len)          # (N, K, O), data units
    table = score_split(model, prepared, part=2, seq_len=seq_len)    # test split vs naive, seasonal, mean

The windows are views (data/csv.py); each batch is copied once into the model and dropped, so
memory stays at the size of the file's arrays however many windows there are.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnscope.data.csv import all_origins, window_origins, window_views
from rnnscope.data.csv import origins as split_origins
from rnnscope.data.ragged import MIN_STEPS
from rnnscope.data.scores import Scoreboard, baselines
from rnnscope.data.series import Prepared, steps_ahead, to_data_units
from rnnscope.errors import UserError

BATCH = 4096  # windows per forward pass


@torch.no_grad()
def forecast(model, prepared: Prepared, span: range, seq_len: int, batch: int = BATCH):
    """Yield (origins (B,), forecasts (B, K, O) in data units) batch by batch over span."""
    was_training = model.training
    model.eval()
    try:
        for lo in range(span.start, span.stop, batch * span.step):
            part = range(lo, min(lo + batch * span.step, span.stop), span.step)
            x, _ = window_views(prepared, part, seq_len, every_step=False)
            y_hat, _ = model(x.contiguous())
            if y_hat.dim() == 3:
                y_hat = y_hat[:, -1]  # (B, O'): the forecast from the window's last row
            t_hat = y_hat.double().numpy()
            o = np.arange(part.start, part.stop, part.step)
            values = to_data_units(prepared.spec, t_hat, prepared.base[o])
            if not np.isfinite(values).all():
                bad = int(np.argwhere(~np.isfinite(values))[0][0])
                raise UserError(f"the model's forecast from row {o[bad] + 1} is not a finite number "
                                f"({values[bad].ravel()[0]}); the run's weights or its data are broken: "
                                "train again (lower --optim.lr, check the columns' scale)")
            yield o, values
    finally:
        model.train(was_training)


def actual_values(prepared: Prepared, o: np.ndarray, ks: list[int]) -> np.ndarray:
    """(N, K, O) actual target values at o + k, NaN where missing or past the end."""
    R = prepared.y.shape[0]
    out = np.full((len(o), len(ks), prepared.y.shape[1]), np.nan)
    for g, k in enumerate(ks):
        ok = o + k < R
        out[ok, g] = prepared.y[o[ok] + k]
    return out


def _board(model, prepared: Prepared, span: range, seq_len: int) -> tuple[Scoreboard, int]:
    """The running metrics of the model and the baselines over the forecasts from span."""
    ks = steps_ahead(prepared.spec)
    board, count = Scoreboard(prepared.spec, ks), 0
    for o, values in forecast(model, prepared, span, seq_len):
        actual = actual_values(prepared, o, ks)
        board.add("model", values, actual)
        for name, others in baselines(prepared.spec, prepared.y_past, o, ks).items():
            board.add(name, others, actual)
        count += len(o)
    return board, count


def score_origins(model, prepared: Prepared, span: range, seq_len: int) -> dict:
    """Metrics of the model and the baselines over the forecasts from the origins in span,
    accumulated batch by batch (no forecast is kept)."""
    board, count = _board(model, prepared, span, seq_len)
    return {"forecasts": count, "targets": board.result()}


def shorter_span(p: Prepared, part: int, seq_len: int) -> tuple[range, int]:
    """(origins, window rows) to forecast split `part` of one series from: every origin of a full
    window, else the origin of the split's one shorter window (data/ragged.py) and its rows;
    an empty range when not even MIN_STEPS rows fit."""
    span = window_origins(p, part, seq_len)  # a short window starts at the series' first row
    return span, (min(seq_len, span[0] + 1 - p.spec["difference"]) if len(span) else seq_len)


def every_span(p: Prepared, seq_len: int) -> tuple[range, int]:
    """(origins, window rows) of every forecast of one series (predict): every origin of a full
    window, else one window of all its rows, ending at its last row (empty under MIN_STEPS)."""
    span, R = all_origins(p, seq_len), p.x.shape[0]
    if len(span) or R - p.spec["difference"] < min(MIN_STEPS, seq_len):
        return span, seq_len
    return range(R - 1, R), R - p.spec["difference"]


def parts_of(series) -> list[Prepared]:
    """The Prepared arrays of each series (one series: a list of one)."""
    return series if isinstance(series, list) else [series]


def score_series(model, parts: list[Prepared], part: int, seq_len: int) -> dict:
    """Split `part` of every series scored: the metrics over all series' forecasts together (each
    series' naive forecast from its own past; MASE with each series' own scale) and per series
    under "series"."""
    total, count, per = None, 0, {}
    for p in parts:
        span, window = shorter_span(p, part, seq_len)  # a short series: its one shorter window (data/ragged.py)
        if len(span) == 0:
            continue
        board, n = _board(model, p, span, window)
        per[p.series_id] = {"forecasts": n, "targets": board.result()}
        if total is None:
            total = Scoreboard(p.spec, board.ks)
        total.merge(board)
        count += n
    return {"forecasts": count, "targets": total.result() if total else {}, "series": per}


def score_split(model, prepared, part: int, seq_len: int) -> dict:
    """score_origins over every origin of split `part` (0 train, 1 validation, 2 test); for
    several series, score_series."""
    if isinstance(prepared, list):
        return score_series(model, prepared, part, seq_len)
    return score_origins(model, prepared, split_origins(prepared, part, seq_len), seq_len)


def versus_naive(scores: dict) -> list[tuple[str, float, float, float | None]]:
    """[(target, model RMSE, naive RMSE, ratio)] for the summary line."""
    rows = []
    for name, entry in scores["targets"].items():
        rows.append((name, entry["model"]["rmse"], entry["baselines"]["naive"]["rmse"], entry["rmse_vs_naive"]))
    return rows


def validation_forecast(model, dataset, seq_len: int) -> dict | None:
    """For a CSV run: what the summary reports (time index, columns) and the model beside the
    baselines on the validation split; None for a built-in task."""
    from rnnscope.data.timeindex import describe

    prepared = dataset.series
    if prepared is None:
        return None
    parts = parts_of(prepared)
    spec = parts[0].spec
    has_val = any(p.bounds[2] > p.bounds[1] and len(shorter_span(p, 1, seq_len)[0]) for p in parts)
    time = describe(spec["time"]) + (f"; {len(parts)} series" if isinstance(prepared, list) else "")
    return {"time": time, "inputs": spec["inputs"], "targets": spec["targets"],
            "season": spec["season"], "missing": spec["missing"],
            "validation": score_split(model, prepared, part=1, seq_len=seq_len) if has_val else None}


def time_axis(spec: dict, positions: np.ndarray) -> np.ndarray:
    """Grid positions as plottable times: datetime64 for dates, integers otherwise."""
    index = spec["time"]
    value = index["start"] + positions.astype(np.int64) * index["step"]
    if index["kind"] != "datetime":
        return value
    if index["unit"] == "month":
        return (value - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]")
    return value.astype("datetime64[s]")


def forecast_frame(model, prepared: Prepared, seq_len: int, max_points: int = 5000) -> dict:
    """What the forecast picture draws: actual values, the model's and the naive forecast of the
    first step ahead, per target, over time, with the split boundaries (at most max_points each)."""
    spec, R = prepared.spec, prepared.x.shape[0]
    k = steps_ahead(spec)[0]
    span, window = every_span(prepared, seq_len)  # a short series: one window of all its rows
    every = max(1, len(span) // max_points)
    span = range(span.start, span.stop, every)
    chunks = list(forecast(model, prepared, span, window))
    o = np.concatenate([c[0] for c in chunks])
    values = np.concatenate([c[1] for c in chunks])[:, 0]  # (N, O) at step k
    rows = np.arange(0, R, max(1, R // max_points))
    last = prepared.positions[-1]
    target_pos = np.where(o + k < R, prepared.positions[np.minimum(o + k, R - 1)], last + (o + k - (R - 1)))
    return {"targets": spec["targets"], "step": k, "time_name": spec["time"]["name"] or "row",
            "time": time_axis(spec, prepared.positions[rows]), "actual": prepared.y[rows],
            "forecast_time": time_axis(spec, target_pos), "forecast": values,
            "naive": prepared.y_past[o],
            "bounds": [time_axis(spec, prepared.positions[np.array([b])])[0]
                       for b in prepared.bounds[1:3] if 0 < b < R]}
