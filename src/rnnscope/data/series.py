"""The user's series made ready for a model: columns chosen, time index, gaps, splits, transforms.

    spec, prepared = prepare(data_cfg)                # training: fits the statistics on train rows
    prepared = prepare(data_cfg, spec=saved_spec)[1]  # predict / evaluate: reuses them

Rows are the points of a regular time grid (gaps the file skips become rows of missing values).
The split is chronological: train, then validation, then test (the last rows). Every statistic
(mean and std per column, the mean baseline, the MASE scale) is fitted on the train rows only.

Targets (what the model is trained to output at a row s, the forecast origin):
    difference 0:  y[s + k]               (normalized)
    difference 1:  y[s + k] − y[s]        (the change since the origin; a trend becomes a level)
for k = horizon (--data.steps one) or k = 1..horizon (--data.steps all, one output per step).
Inputs are the columns' values (difference 0) or their change since the row before (1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from rnnscope.data import gaps
from rnnscope.data.table import Table, concatenate, locate, numeric_column, pick, read_table, source_files
from rnnscope.data.timeindex import TimeIndex, build_index, find_time_column, stamp
from rnnscope.errors import UserError


@dataclass
class Prepared:
    """Model-ready arrays of one file on its time grid (R rows)."""

    x: np.ndarray  # float32 (R, I'): normalized, filled inputs (+ 0/1 missing channels)
    t: np.ndarray  # float32 (R, O'): normalized targets per origin row, NaN where unknown
    y: np.ndarray  # float64 (R, O): the raw target columns, NaN where missing
    y_past: np.ndarray  # float64 (R, O): y forward-filled (the last value known at each row)
    base: np.ndarray  # float64 (R, O): what a differenced target is added back to
    positions: np.ndarray  # int64 (R,): grid position of each row (for time stamps)
    bounds: list[int]  # [0, end of train, end of validation, R]
    spec: dict
    series_id: str | None = None  # which series these rows are (several series: data/many.py)


def _column_stats(values: np.ndarray, name: str, what: str, path, scratch: np.ndarray) -> tuple[float, float]:
    """Mean and std of one column over its non-missing values, computed without overflow
    (`scratch`: float64, at least as long as values, for the deviations)."""
    if values.size == 0:
        return 0.0, 1.0  # no complete window in the train rows: csv_dataset says so, with the fix
    mean = float(np.mean(values))
    if np.isfinite(mean):  # no gap: the common case, without nan-aware copies (np.std's arithmetic)
        deviation = np.subtract(values, mean, out=scratch[: values.size])
        std = float(np.sqrt(np.mean(np.multiply(deviation, deviation, out=deviation))))
        if np.isfinite(std):  # and no overflow
            return mean, (std if std > 1e-12 * max(abs(mean), 1.0) else 1.0)
    scale = float(np.nanmax(np.abs(values))) if values.size and not np.isnan(values).all() else 1.0
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0
    scaled = values / scale  # |scaled| ≤ 1: squares cannot overflow
    mean, std = float(np.nanmean(scaled)) * scale, float(np.nanstd(scaled)) * scale
    if not (np.isfinite(mean) and np.isfinite(std)):
        if np.isnan(values).all():
            raise UserError(f"{path} column {name!r} has no value in the train rows, so its {what} statistics "
                            "(mean, std) cannot be fitted; leave it out with --data.column / --data.target")
        raise UserError(f"{path} column {name!r}: the {what} statistics (mean, std) over the train rows are "
                        "not finite (its values overflow float64 arithmetic); rescale the column")
    return mean, (std if std > 1e-12 * max(abs(mean), 1.0) else 1.0)


def _columns(table: Table, data_cfg, time_name: str, exclude=frozenset()) -> tuple[list[str], list[str]]:
    """Input and target column names: asked for, or every numeric column but the time column."""
    if data_cfg.column:
        inputs = pick(table, data_cfg.column, "--data.column")
    else:
        inputs = [n for n in table.names if n != time_name and n not in exclude
                  and (n in table.numeric or (n in table.text and _numeric_text(table, n)))]
        if not inputs:
            raise UserError(f"{table.path} has no numeric column (columns: {', '.join(table.names)}); "
                            "name the columns with --data.column")
    targets = pick(table, data_cfg.target, "--data.target") if data_cfg.target else list(inputs)
    for name in inputs + targets:
        if name in exclude:
            raise UserError(f"{table.path} column {name!r} is the series id (--data.series_column); it is "
                            "never an input or a target: leave it out of --data.column / --data.target")
        if name == time_name:
            raise UserError(f"{table.path} column {name!r} is the time index; it is never an input or a "
                            "target unless you say so: set --data.time_column none to use it as a value")
    return inputs, targets


def _numeric_text(table: Table, name: str) -> bool:
    """A text column that is mostly numbers: it is meant as a value column (and will be refused
    with the line of its first bad cell) rather than silently left out."""
    from rnnscope.data.table import non_numbers

    return non_numbers(table, name) is not None


def read_series(data_cfg, spec: dict | None = None, table: Table | None = None, exclude=frozenset()):
    """(table, index, input names, target names, column names, values (R, C)) on the time grid."""
    if table is None:
        paths = source_files(data_cfg.csv)
        tables = [read_table(path) for path in paths]
        table = tables[0] if len(tables) == 1 else concatenate(tables, data_cfg.csv)
    if spec is None:
        taken = set(data_cfg.column) | set(data_cfg.target) | set(exclude)
        found = find_time_column(table, data_cfg.time_column, taken)
        inputs, targets = _columns(table, data_cfg, found[0] if found else "", exclude)
    else:
        inputs, targets = spec["inputs"], spec["targets"]
        pick(table, inputs + targets, "a column the model was trained on")
        asked = spec["time"]["name"] if spec["time"]["kind"] != "row" else "none"
        found = find_time_column(table, asked if asked in table.names or asked == "none" else "none", set())
    try:
        index = build_index(table, found)
    except UserError as exc:
        if not table.parts or "time" not in str(exc):
            raise
        raise UserError(f"{exc}; the files of {data_cfg.csv} are read as one series in name order: if each "
                        "file is a series of its own, add --data.files series") from None
    columns = list(dict.fromkeys(inputs + targets))
    rows = int(index.positions[-1]) + 1
    regular = rows == len(index.positions)  # no time step skipped: every grid row is a file row
    checked = [numeric_column(table, name, "--data.column") for name in columns]
    values = table.side_by_side(columns) if regular else None  # the file's own columns: no copy
    if values is None:  # column-major: each column one contiguous run for the per-column work that follows
        values = np.empty((rows, len(columns)), order="F")
        if not regular:
            values.fill(np.nan)  # the grid rows the file skips stay gaps
        rows_of_file = slice(None) if regular else index.positions
        for j, column in enumerate(checked):
            values[rows_of_file, j] = column
    table.numeric.clear()  # the file's own arrays are not needed past this point
    table.text.clear()
    table.block = None
    return table, index, inputs, targets, columns, values


def split_bounds(rows: int, val_fraction: float, test_fraction: float) -> list[int]:
    """[0, end of train, end of validation, rows]: the last rows are test, before them validation."""
    n_test = int(rows * test_fraction)
    n_val = int(rows * val_fraction)
    return [0, rows - n_val - n_test, rows - n_test, rows]


def prepare(data_cfg, spec: dict | None = None, missing: str | None = None, own_file: bool = False,
            table: Table | None = None) -> tuple[dict, Prepared | list[Prepared]]:
    """The spec (fitted on train rows, or the saved one) and the Prepared arrays of --data.csv:
    one Prepared, or one per series (several series: data/many.py).

    Args:
        spec: a saved spec to apply (predict, evaluate) instead of fitting one.
        missing: --data.missing for this file (default: the spec's, or data_cfg's).
        own_file: with a spec, the file is the run's own: keep its train/validation/test bounds.
        table: data already in memory (a DataFrame or an array) instead of the --data.csv file.
    """
    from rnnscope.data.many import series_column, series_tables

    many = series_tables(data_cfg, spec, table)
    if many is None and spec and (spec.get("series") or {}).get("normalize_by") == "series":
        raise UserError("the run was trained on one file per series, each scaled by its own train rows "
                        "(--data.normalize_by series), and this data does not say which series it is; "
                        "give its file with rnnscope predict RUN --data.csv FILE, or train with "
                        "--data.normalize_by global")
    if many is None:
        loaded = [_load(data_cfg, spec, missing, own_file, table)]
    else:
        exclude = {series_column(data_cfg, spec)} - {""}
        first = _load(data_cfg, spec, missing, own_file, many[0][1], many[0][0], exclude)
        known = spec or {"inputs": first["inputs"], "targets": first["targets"], "time": first["index"].to_dict()}
        loaded = [first] + [_load(data_cfg, known, missing, own_file, t, name, exclude) for name, t in many[1:]]
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow and empty columns are checked and named
        spec, parts = _model_arrays(data_cfg, spec, loaded, many is not None)
    return spec, (parts if many is not None else parts[0])


def _load(data_cfg, spec, missing, own_file, table, series_id: str | None = None, exclude=frozenset()) -> dict:
    """One series on its time grid, gaps refused or dropped, and its split bounds."""
    table, index, inputs, targets, columns, values = read_series(data_cfg, spec, table, exclude)
    path = table.path if series_id is None else f"{table.path} (series {series_id})"
    mode = missing or (spec.get("missing") if spec and "missing" in spec else data_cfg.missing)
    line_of = _line_of(table, index)
    regular = len(index.positions) == values.shape[0]  # then the index's positions are 0 … R−1 already
    positions = index.positions if regular else np.arange(values.shape[0], dtype=np.int64)
    if np.isnan(values).any():
        if mode == "error":
            gap_rows = np.ones(values.shape[0], dtype=bool)  # grid rows the file skips
            gap_rows[index.positions] = False
            try:
                gaps.refuse(path, columns, values, line_of, index.name, gap_rows)
            except UserError as exc:  # several series: the counts are this series'
                if series_id is None:
                    raise
                raise UserError(f"{exc} [counted in series {series_id!r}]") from None
        if mode == "drop":
            keep = gaps.drop_rows(~np.isnan(values).any(axis=1), positions, index.kind != "row",
                                  lambda k: stamp(index.to_dict(), k),
                                  "the series" if series_id is None else f"series {series_id!r}")
            values, positions = values[keep], positions[keep]
    R = values.shape[0]
    if spec is None or "x_mean" not in spec or own_file:
        bounds = split_bounds(R, data_cfg.val_fraction, data_cfg.test_fraction)
    else:  # a file given to predict or evaluate: all of its rows are one part
        bounds = [0, R, R, R]
    return {"table": table, "index": index, "inputs": inputs, "targets": targets, "columns": columns,
            "values": values, "positions": positions, "bounds": bounds, "mode": mode, "id": series_id,
            "path": path}


def _model_arrays(data_cfg, spec, loaded: list[dict], many: bool):
    """The filled, transformed, normalized arrays of each series (and the spec fitted on the train
    rows when new: over all series, or per series with --data.normalize_by series)."""
    for s in loaded:
        columns = s["columns"]
        s["filled"] = gaps.fill(s["values"], s["mode"], s["bounds"])  # (R, C) without NaN
        s["x_raw"], s["x_filled"] = _select(s["values"], s["inputs"], columns), _select(s["filled"], s["inputs"], columns)
        s["y_raw"], s["y_filled"] = _select(s["values"], s["targets"], columns), _select(s["filled"], s["targets"], columns)
    if spec is None:
        spec = _fit_spec(data_cfg, loaded, many)
    parts = []
    for s in loaded:
        own = series_spec(spec, s["id"]) if many else dict(spec)
        if s["index"].kind == spec["time"]["kind"]:  # the times of these rows, not of the training file's
            own["time"] = s["index"].to_dict()
        scratch = np.empty(s["values"].shape[0])  # one float64 column, reused for every scaled column
        x = _inputs(own, s["x_raw"], s["x_filled"], s["path"], scratch)
        t = _targets(own, s["y_raw"] if own["missing"] == "mask" else s["y_filled"], s["y_filled"], s["path"], scratch)
        parts.append(Prepared(x=x, t=t, y=s["y_raw"], y_past=gaps.forward_fill(s["y_raw"]), base=s["y_filled"],
                              positions=s["positions"], bounds=s["bounds"], spec=own, series_id=s["id"]))
    return spec, parts


def series_spec(spec: dict, series_id: str | None) -> dict:
    """The spec one series is forecast with: the run's, with that series' own statistics."""
    info = spec.get("series")
    if not info or series_id is None:
        return dict(spec)
    stats = info["stats"].get(series_id)
    if stats is None:
        if info["normalize_by"] == "series":
            known = ", ".join(list(info["stats"])[:5]) + (" …" if len(info["stats"]) > 5 else "")
            raise UserError(f"series {series_id!r} was not in the run's training data, and the run scales each "
                            f"series by its own train rows (--data.normalize_by series; its series: {known}); "
                            "forecast known series, or train with --data.normalize_by global")
        return dict(spec)  # a new series: the statistics over all the run's series
    return spec | stats


def _select(values: np.ndarray, names: list[str], columns: list[str]) -> np.ndarray:
    """The named columns of values: a view when they are neighbours in order (no copy)."""
    idx = [columns.index(n) for n in names]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return values[:, idx[0] : idx[0] + len(idx)]
    return values[:, idx]


def _line_of(table: Table, index: TimeIndex):
    """Grid row -> `file line N` of the file row holding it (for a gap row: the next file row)."""
    def line_of(row: int) -> str:
        file_row = int(np.searchsorted(index.positions, row, side="left"))
        return locate(table, min(file_row, table.rows - 1))
    return line_of


def steps_ahead(spec: dict) -> list[int]:
    """The k of each output group: [horizon], or 1..horizon."""
    h = spec["horizon"]
    return list(range(1, h + 1)) if spec["steps"] == "all" else [h]


def _change(spec: dict, y: np.ndarray, base: np.ndarray, k: int, j: int, origins: int) -> np.ndarray:
    """Raw target of column j, k steps ahead, for origin rows 0..origins-1: y[s+k] (− base[s])."""
    ahead = y[k : k + origins, j]
    return ahead - base[:origins, j] if spec["difference"] else ahead


def _input_column(spec: dict, x_filled: np.ndarray, j: int) -> np.ndarray:
    """Input column j as the model sees it before scaling: the value, or its change since the row before."""
    if not spec["difference"]:
        return x_filled[:, j]
    return np.concatenate([[0.0], np.diff(x_filled[:, j])])


def _fit_spec(data_cfg, loaded: list[dict], many: bool) -> dict:
    """Everything fitted on the train rows, in plain values for the checkpoint. Several series:
    the statistics over all their train rows, and per series (their own time index, the mean
    baseline and MASE scale always; the scaling too with --data.normalize_by series)."""
    first = loaded[0]
    spec = {"inputs": first["inputs"], "targets": first["targets"], "missing": first["mode"],
            "time": first["index"].to_dict(), "horizon": data_cfg.horizon, "steps": data_cfg.steps,
            "difference": data_cfg.difference, "scale": data_cfg.scale,
            "season": data_cfg.season or first["index"].season, "train_rows": first["bounds"][1]}
    spec |= _fit_stats(spec, loaded, first["path"])
    if many:
        per_series = data_cfg.normalize_by == "series"
        stats = {}
        for s in loaded:
            own = _fit_stats(spec, [s], s["path"], scaling=per_series)
            keep = own if per_series else {k: own[k] for k in ("y_train_mean", "mase_scale")}
            stats[s["id"]] = keep | {"train_rows": s["bounds"][1], "rows": int(s["values"].shape[0])}
        spec["series"] = {"column": data_cfg.series_column, "by": "column" if data_cfg.series_column else "file",
                          "normalize_by": data_cfg.normalize_by, "stats": stats}
    return spec


def _fit_stats(spec: dict, loaded: list[dict], path, scaling: bool = True) -> dict:
    """Mean and std per input and target, the train mean and the MASE scale, over the train rows
    of the series in `loaded` (each column's values are pooled across them; shifts stay inside
    one series)."""
    inputs, targets, mode = spec["inputs"], spec["targets"], spec["missing"]
    ks = steps_ahead(spec)

    def pooled(piece) -> np.ndarray:  # one series: its own array, no copy
        pieces = [piece(s, s["bounds"][1]) for s in loaded]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    x_stats = [(0.0, 1.0)] * len(inputs)
    t_stats = [(0.0, 1.0)] * (len(ks) * len(targets))
    if spec["scale"] == "standard" and scaling:
        scratch = np.empty(sum(s["bounds"][1] for s in loaded))  # one for every column's deviations
        x_stats = [_column_stats(pooled(lambda s, n, j=j: _input_column(spec, s["x_filled"], j)[:n]),
                                 name, "input", path, scratch) for j, name in enumerate(inputs)]
        t_stats = [_column_stats(pooled(lambda s, n, j=j, k=k: _change(
                       spec, s["y_raw"] if mode == "mask" else s["y_filled"], s["y_filled"], k, j, max(n - k, 0))),
                                 name, "target", path, scratch)  # origins whose target row is a train row
                   for k in ks for j, name in enumerate(targets)]
    m = spec["season"] if spec["season"] > 1 else 1
    train_y = [s["y_raw"][: s["bounds"][1]] for s in loaded]
    scale = []
    for j in range(len(targets)):
        steps = [_seasonal_steps(y[:, j], m) for y in train_y if len(y) > m]
        scale.append(_nanmean(steps[0] if len(steps) == 1 else np.concatenate(steps)) if steps else np.nan)
    return {"x_mean": [a for a, _ in x_stats], "x_std": [b for _, b in x_stats],
            "t_mean": [a for a, _ in t_stats], "t_std": [b for _, b in t_stats],
            "y_train_mean": [float(_nanmean(train_y[0][:, j] if len(train_y) == 1
                                            else np.concatenate([y[:, j] for y in train_y])))
                             for j in range(len(targets))],
            "mase_scale": [float(v) if np.isfinite(v) and v > 0 else None for v in scale]}


def _seasonal_steps(y: np.ndarray, m: int) -> np.ndarray:
    """|y[s] − y[s − m]| for s = m … R−1, in one new array."""
    steps = y[m:] - y[:-m]
    return np.abs(steps, out=steps)


def _nanmean(values: np.ndarray) -> float:
    """np.nanmean, in one pass when nothing is missing (nanmean copies the array first)."""
    mean = np.mean(values)
    return mean if not np.isnan(mean) else np.nanmean(values)


def _inputs(spec: dict, x_raw: np.ndarray, x_filled: np.ndarray, path, scratch: np.ndarray) -> np.ndarray:
    """(R, I') float32: normalized inputs, and with --data.missing mask a 0/1 channel per column.
    Built column by column through `scratch` (float64 (R,)): no full-size float64 temporary."""
    names = input_names(spec)
    I = len(spec["inputs"])
    x = np.empty((x_filled.shape[0], len(names)), dtype=np.float32)
    for j in range(I):
        np.subtract(_input_column(spec, x_filled, j), spec["x_mean"][j], out=scratch)
        np.divide(scratch, spec["x_std"][j], out=x[:, j], casting="same_kind")  # float64 math, stored float32
        if spec["missing"] == "mask":
            x[:, I + j] = np.isnan(x_raw[:, j])
    if not np.isfinite(x).all():  # one pass over x rather than one per column; which one, only then
        j = int(np.flatnonzero(~np.isfinite(x[:, :I]).all(axis=0))[0])
        raise UserError(f"{path} column {names[j]!r}: normalized values overflow float32 "
                        "(values far from the train rows' range); rescale the column")
    return x


def _targets(spec: dict, y: np.ndarray, y_filled: np.ndarray, path, scratch: np.ndarray) -> np.ndarray:
    """(R, K·O) float32 normalized targets per origin row (NaN: unknown or past the end), built
    column by column through `scratch` (float64 (R,))."""
    R, O = y.shape
    ks = steps_ahead(spec)
    t = np.empty((R, len(ks) * O), dtype=np.float32)
    for g, k in enumerate(ks):
        for j in range(O):
            c = g * O + j
            t[max(R - k, 0) :, c] = np.nan  # no row k steps ahead in the file
            if k < R:
                np.subtract(_change(spec, y, y_filled, k, j, R - k), spec["t_mean"][c], out=scratch[: R - k])
                np.divide(scratch[: R - k], spec["t_std"][c], out=t[: R - k, c], casting="same_kind")
    if np.isinf(t).any():  # one pass over t rather than one per column; which one, only then
        j = int(np.flatnonzero(np.isinf(t).any(axis=0))[0]) % O
        raise UserError(f"{path} column {spec['targets'][j]!r}: the target values overflow float32 "
                        "after normalization (values far beyond the train rows' range, or their "
                        "differences overflow); rescale the column")
    return t


def input_names(spec: dict) -> list[str]:
    """The model's input channels."""
    return spec["inputs"] + ([f"{n}_missing" for n in spec["inputs"]] if spec["missing"] == "mask" else [])


def output_names(spec: dict) -> list[str]:
    """The model's outputs: one per target column and step ahead."""
    ks = steps_ahead(spec)
    if len(ks) == 1 and ks[0] == spec["horizon"] and spec["steps"] == "one":
        return list(spec["targets"])
    return [f"{n}(t+{k})" for k in ks for n in spec["targets"]]


def to_data_units(spec: dict, t_hat: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Model outputs (N, K·O), normalized, back to the file's units: (N, K, O)."""
    N, O = t_hat.shape[0], len(spec["targets"])
    values = t_hat * np.array(spec["t_std"]) + np.array(spec["t_mean"])
    values = values.reshape(N, len(steps_ahead(spec)), O)
    if spec["difference"]:
        values = values + base[:, None, :]
    return values
