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

from dataclasses import dataclass

import numpy as np

from rnnscope.data import gaps
from rnnscope.data.table import Table, data_line, numeric_column, pick, read_table, source_files
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


def _stats(values: np.ndarray, names: list[str], what: str, path) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per column over the non-missing values, computed without overflow."""
    scale = np.nanmax(np.abs(values), axis=0) if values.size else np.ones(values.shape[1])
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    mean = np.nanmean(values / scale, axis=0) * scale
    std = np.nanstd(values / scale, axis=0) * scale
    for j, name in enumerate(names):
        if not (np.isfinite(mean[j]) and np.isfinite(std[j])):
            cause = ("it has no value in the train rows" if np.isnan(values[:, j]).all()
                     else "its values overflow float64 arithmetic")
            raise UserError(f"{path} column {name!r}: the {what} statistics (mean, std) over the train rows "
                            f"are not finite ({cause}); rescale the column or choose other columns")
    return mean, np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)


def _columns(table: Table, data_cfg, time_name: str) -> tuple[list[str], list[str]]:
    """Input and target column names: asked for, or every numeric column but the time column."""
    if data_cfg.column:
        inputs = pick(table, data_cfg.column, "--data.column")
    else:
        inputs = [n for n in table.names if n != time_name
                  and (n in table.numeric or (n in table.text and _numeric_text(table, n)))]
        if not inputs:
            raise UserError(f"{table.path} has no numeric column (columns: {', '.join(table.names)}); "
                            "name the columns with --data.column")
    targets = pick(table, data_cfg.target, "--data.target") if data_cfg.target else list(inputs)
    for name in inputs + targets:
        if name == time_name:
            raise UserError(f"{table.path} column {name!r} is the time index; it is never an input or a "
                            "target unless you say so: set --data.time_column none to use it as a value")
    return inputs, targets


def _numeric_text(table: Table, name: str) -> bool:
    """A text column that is mostly numbers: it is meant as a value column (and will be refused
    with the line of its first bad cell) rather than silently left out."""
    from rnnscope.data.table import non_numbers

    return non_numbers(table, name) is not None


def read_series(data_cfg, spec: dict | None = None, table: Table | None = None):
    """(table, index, input names, target names, column names, values (R, C)) on the time grid."""
    if table is None:
        paths = source_files(data_cfg.csv)
        if len(paths) > 1:
            raise UserError(f"--data.csv {data_cfg.csv} matches {len(paths)} files; give one file "
                            "(several files are not supported yet: concatenate them)")
        table = read_table(paths[0])
    if spec is None:
        taken = set(data_cfg.column) | set(data_cfg.target)
        found = find_time_column(table, data_cfg.time_column, taken)
        inputs, targets = _columns(table, data_cfg, found[0] if found else "")
    else:
        inputs, targets = spec["inputs"], spec["targets"]
        pick(table, inputs + targets, "a column the model was trained on")
        asked = spec["time"]["name"] if spec["time"]["kind"] != "row" else "none"
        found = find_time_column(table, asked if asked in table.names or asked == "none" else "none", set())
    index = build_index(table, found)
    columns = list(dict.fromkeys(inputs + targets))
    values = np.full((int(index.positions[-1]) + 1, len(columns)), np.nan)
    for j, name in enumerate(columns):
        values[index.positions, j] = numeric_column(table, name, "--data.column")
    return table, index, inputs, targets, columns, values


def split_bounds(rows: int, val_fraction: float, test_fraction: float) -> list[int]:
    """[0, end of train, end of validation, rows]: the last rows are test, before them validation."""
    n_test = int(rows * test_fraction)
    n_val = int(rows * val_fraction)
    return [0, rows - n_val - n_test, rows - n_test, rows]


def prepare(data_cfg, spec: dict | None = None, missing: str | None = None, own_file: bool = False,
            table: Table | None = None) -> tuple[dict, Prepared]:
    """The spec (fitted on train rows, or the saved one) and the Prepared arrays of --data.csv.

    Args:
        spec: a saved spec to apply (predict, evaluate) instead of fitting one.
        missing: --data.missing for this file (default: the spec's, or data_cfg's).
        own_file: with a spec, the file is the run's own: keep its train/validation/test bounds.
        table: data already in memory (a DataFrame or an array) instead of the --data.csv file.
    """
    table, index, inputs, targets, columns, values = read_series(data_cfg, spec, table)
    path = table.path
    mode = missing or (spec["missing"] if spec else data_cfg.missing)
    line_of = _line_of(table, index)
    gap_rows = np.ones(values.shape[0], dtype=bool)
    gap_rows[index.positions] = False
    positions = np.arange(values.shape[0], dtype=np.int64)
    if np.isnan(values).any():
        if mode == "error":
            gaps.refuse(path, columns, values, line_of, index.name, gap_rows)
        if mode == "drop":
            keep = gaps.drop_rows(~np.isnan(values).any(axis=1), positions, index.kind != "row",
                                  lambda k: stamp(index.to_dict(), k))
            values, positions = values[keep], positions[keep]
    R = values.shape[0]
    if spec is None or own_file:
        bounds = split_bounds(R, data_cfg.val_fraction, data_cfg.test_fraction)
    else:  # a file given to predict or evaluate: all of its rows are one part
        bounds = [0, R, R, R]
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked and named below
        return _model_arrays(data_cfg, spec, table, index, inputs, targets, columns, values, positions, bounds, mode)


def _model_arrays(data_cfg, spec, table, index, inputs, targets, columns, values, positions, bounds, mode):
    """The filled, transformed, normalized arrays (and the spec fitted on the train rows when new)."""
    path = table.path
    filled = gaps.fill(values, mode, bounds)  # (R, C) without NaN
    col = {name: j for j, name in enumerate(columns)}
    x_raw, x_filled = values[:, [col[n] for n in inputs]], filled[:, [col[n] for n in inputs]]
    y_raw, y_filled = values[:, [col[n] for n in targets]], filled[:, [col[n] for n in targets]]
    if spec is None:
        spec = _fit_spec(data_cfg, index, inputs, targets, mode, x_filled, y_raw, y_filled, bounds, path)
    x = _inputs(spec, x_raw, x_filled, path)
    t = _targets(spec, y_raw if mode == "mask" else y_filled, y_filled, path)
    prepared = Prepared(x=x, t=t, y=y_raw, y_past=gaps.forward_fill(y_raw), base=y_filled,
                        positions=positions, bounds=bounds, spec=spec)
    return spec, prepared


def _line_of(table: Table, index: TimeIndex):
    """Grid row -> the file line holding it (the line before a gap row)."""
    def line_of(row: int) -> int:
        file_row = int(np.searchsorted(index.positions, row, side="right")) - 1
        return data_line(table.path, max(file_row, 0)) + (0 if index.positions[max(file_row, 0)] == row else 1)
    return line_of


def steps_ahead(spec: dict) -> list[int]:
    """The k of each output group: [horizon], or 1..horizon."""
    h = spec["horizon"]
    return list(range(1, h + 1)) if spec["steps"] == "all" else [h]


def _changes(spec: dict, y: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(R, K·O) raw targets per origin row: y[s+k] (− base[s] when differenced), NaN past the end."""
    R, O = y.shape
    out = np.full((R, len(steps_ahead(spec)) * O), np.nan)
    for g, k in enumerate(steps_ahead(spec)):
        if k < R:
            out[: R - k, g * O : (g + 1) * O] = y[k:] - (base[: R - k] if spec["difference"] else 0.0)
    return out


def _input_values(spec: dict, x_filled: np.ndarray) -> np.ndarray:
    if not spec["difference"]:
        return x_filled
    return np.vstack([np.zeros((1, x_filled.shape[1])), np.diff(x_filled, axis=0)])


def _fit_spec(data_cfg, index, inputs, targets, mode, x_filled, y_raw, y_filled, bounds, path) -> dict:
    """Everything fitted on the train rows, in plain values for the checkpoint."""
    n_train = bounds[1]
    spec = {"inputs": inputs, "targets": targets, "missing": mode, "time": index.to_dict(),
            "horizon": data_cfg.horizon, "steps": data_cfg.steps, "difference": data_cfg.difference,
            "scale": data_cfg.scale, "season": data_cfg.season or index.season, "train_rows": n_train}
    changes = _changes(spec, y_raw if mode == "mask" else y_filled, y_filled)[:n_train]
    if data_cfg.scale == "standard":
        x_mean, x_std = _stats(_input_values(spec, x_filled)[:n_train], inputs, "input", path)
        t_names = [f"{n}(t+{k})" for k in steps_ahead(spec) for n in targets]
        t_mean, t_std = _stats(changes, t_names, "target", path)
    else:
        x_mean, x_std = np.zeros(len(inputs)), np.ones(len(inputs))
        t_mean, t_std = np.zeros(changes.shape[1]), np.ones(changes.shape[1])
    train_y = y_raw[:n_train]
    m = spec["season"] if spec["season"] > 1 else 1
    scale = np.nanmean(np.abs(train_y[m:] - train_y[:-m]), axis=0) if n_train > m else np.full(len(targets), np.nan)
    spec |= {"x_mean": x_mean.tolist(), "x_std": x_std.tolist(), "t_mean": t_mean.tolist(),
             "t_std": t_std.tolist(), "y_train_mean": np.nanmean(train_y, axis=0).tolist(),
             "mase_scale": [float(s) if np.isfinite(s) and s > 0 else None for s in scale]}
    return spec


def _inputs(spec: dict, x_raw: np.ndarray, x_filled: np.ndarray, path) -> np.ndarray:
    """(R, I') float32: normalized inputs, and with --data.missing mask a 0/1 channel per column."""
    x = (_input_values(spec, x_filled) - np.array(spec["x_mean"])) / np.array(spec["x_std"])
    if spec["missing"] == "mask":
        x = np.hstack([x, np.isnan(x_raw).astype(np.float64)])
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        j = int(np.argwhere(~np.isfinite(x))[0][1])
        raise UserError(f"{path} column {input_names(spec)[j]!r}: normalized values overflow float32 "
                        "(values far from the train rows' range); rescale the column")
    return x


def _targets(spec: dict, y: np.ndarray, y_filled: np.ndarray, path) -> np.ndarray:
    """(R, K·O) float32 normalized targets per origin row (NaN: unknown)."""
    t = ((_changes(spec, y, y_filled) - np.array(spec["t_mean"])) / np.array(spec["t_std"])).astype(np.float32)
    if np.isinf(t).any():
        j = int(np.argwhere(np.isinf(t))[0][1]) % len(spec["targets"])
        raise UserError(f"{path} column {spec['targets'][j]!r}: the target values overflow float32 after "
                        "normalization (values far beyond the train rows' range, or their differences "
                        "overflow); rescale the column")
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
