"""A trained run used from Python: forecast a pandas DataFrame or a NumPy array.

    import rnnscope
    model = rnnscope.load_run("runs/sales")
    forecasts = model.predict(df)        # DataFrame: time, step, <target>_predicted per forecast
    values = model.predict(array)        # ndarray (N, K, O): N windows, K steps ahead, O targets

The data gets exactly what `rnnscope predict` does to a file: the run's columns, its missing-value
handling, its normalization and transforms; forecasts come back in the data's units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnscope.data.csv import all_origins
from rnnscope.data.series import prepare, steps_ahead
from rnnscope.data.table import table_from_columns
from rnnscope.data.timeindex import stamp
from rnnscope.errors import UserError
from rnnscope.train.forecasting import every_span, forecast
from rnnscope.train.restore import load_run, restore_model


class Forecaster:
    """A run's model with the series spec it was trained with."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best") -> None:
        self.cfg, ckpt = load_run(run_dir, checkpoint)
        self.spec = (ckpt.get("normalization") or {}).get("spec")
        if self.spec is None:
            raise UserError(f"the run in {run_dir} was not trained on a CSV series; "
                            "load_run(...).predict needs a run trained with --data.csv")
        self.model = restore_model(self.cfg, ckpt)
        self.step = ckpt["step"]

    @property
    def columns(self) -> list[str]:
        """The columns predict needs, in the order an array's columns must have."""
        return list(dict.fromkeys(self.spec["inputs"] + self.spec["targets"]))

    def predict(self, data, missing: str | None = None):
        """Forecasts from every window of `data` (a DataFrame, or an array (R, C) with C = len(columns)).

        Args:
            data: a pandas DataFrame with the run's columns (and its time column, or a
                DatetimeIndex), or a NumPy array whose columns are `self.columns`.
            missing: how to handle NaN cells (default: as the run was trained).
        Returns:
            For a DataFrame, a DataFrame (time, step, <target>_predicted); for an array, an
            ndarray (N, K, O): one forecast per window end, K steps ahead, O target columns.
        """
        is_frame = hasattr(data, "columns") and hasattr(data, "index")
        table = table_from_columns(self._columns_of(data, is_frame), "the DataFrame" if is_frame else "the array")
        prepared = prepare(self.cfg.data, spec=self.spec, missing=missing, table=table)[1]
        many = isinstance(prepared, list)
        results = [self._forecast(p, is_frame, many) for p in (prepared if many else [prepared])]
        if not is_frame:
            return np.concatenate(results) if many else results[0]
        import pandas as pd

        return pd.concat(results, ignore_index=True) if len(results) > 1 else results[0]

    def _forecast(self, prepared, is_frame: bool, many: bool):
        """One series' forecasts: an array (N, K, O), or a DataFrame (with the series id when several)."""
        seq_len = self.cfg.data.seq_len
        span, window = every_span(prepared, seq_len) if many else (all_origins(prepared, seq_len), seq_len)
        chunks = list(forecast(self.model, prepared, span, window))  # a short series: one window of all its rows
        ks = steps_ahead(self.spec)
        if not chunks:
            which = f"series {prepared.series_id!r} has" if many else "the data has"
            raise UserError(f"{which} {prepared.x.shape[0]} rows, fewer than one window of {seq_len} "
                            "(the run's --data.seq_len); give more rows")
        origins = np.concatenate([c[0] for c in chunks])
        values = np.concatenate([c[1] for c in chunks])  # (N, K, O)
        if not is_frame:
            return values
        import pandas as pd

        R, frames = prepared.x.shape[0], []
        for g, k in enumerate(ks):
            target = origins + k
            pos = prepared.positions[np.minimum(target, R - 1)] + np.maximum(target - (R - 1), 0)
            frame = {self.spec["series"]["column"]: prepared.series_id} if many else {}
            frame |= {"time": stamp(prepared.spec["time"], pos), "step": k}
            frame |= {f"{n}_predicted": values[:, g, j] for j, n in enumerate(self.spec["targets"])}
            frames.append(pd.DataFrame(frame))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _columns_of(self, data, is_frame: bool) -> dict[str, np.ndarray]:
        """The data as named NumPy columns (the DataFrame's index too when it holds the times)."""
        if is_frame:
            columns = {str(c): data[c].to_numpy() for c in data.columns}
            time_name = self.spec["time"]["name"]
            if time_name and time_name not in columns and "datetime" in str(getattr(data.index, "dtype", "")):
                columns = {time_name: data.index.to_numpy()} | columns
            return columns
        array = np.asarray(data, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] != len(self.columns):
            raise UserError(f"predict got an array of shape {array.shape}; it needs (rows, {len(self.columns)}) "
                            f"with the columns {', '.join(self.columns)} in that order")
        return {name: array[:, j] for j, name in enumerate(self.columns)}
