"""The user's time series from a CSV file: validated, split in time, normalized, cut into windows.

The file has a header row; each later row is one time step. Every mistake gets one line naming
the file, the line or column, and the fix. The train/validation split is chronological (the
last `val_fraction` of the rows is validation) and the normalization (mean, std per column) is
fitted on the training rows only, then saved with the model so predictions can be de-normalized.
"""

from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path

import numpy as np
import torch

from rnnscope.data.dataset import Dataset
from rnnscope.errors import UserError


def read_table(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows of a CSV file, with ragged rows refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; check the --data.csv path")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f)]
    except UnicodeDecodeError as exc:
        raise UserError(f"data file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise UserError(f"data file {path} is not a readable CSV ({exc}); check its quoting") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]  # blank lines carry nothing
    if not rows:
        raise UserError(f"data file {path} is empty; it needs a header row and one row per time step")
    header = [name.strip() for name in rows[0]]
    if len(rows) == 1:
        raise UserError(f"data file {path} has a header but no data rows; add one row per time step")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UserError(f"{path} line {line}: {len(row)} cells, but the header has {len(header)}; "
                            "every row needs one cell per column")
    return header, rows[1:]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick(path: Path, header: list[str], wanted: list[str], option: str) -> list[int]:
    """Indices of the named columns; an unknown name gets the closest one and the list."""
    indices = []
    for name in wanted:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"{path} has no column {name!r} ({option}); {hint}"
                            f"its columns are: {', '.join(header)}")
        indices.append(header.index(name))
    return indices


def _numbers(path: Path, header: list[str], rows: list[list[str]], columns: list[int]) -> np.ndarray:
    """The chosen columns as float64 (R, C); a non-numeric, NaN or inf cell names its line."""
    values = np.empty((len(rows), len(columns)))
    for r, row in enumerate(rows):
        for c, col in enumerate(columns):
            cell = row[col].strip()
            try:
                value = float(cell)
            except ValueError:
                what = "is empty" if not cell else f"{cell!r} is not a number"
                raise UserError(f"{path} line {r + 2}, column {header[col]!r}: {what}; fix the cell "
                                "or leave the column out with --data.column") from None
            if not math.isfinite(value):
                raise UserError(f"{path} line {r + 2}, column {header[col]!r}: {cell} is not a finite "
                                "number; fill in the value or drop the row")
            values[r, c] = value
    return values


def load_columns(data_cfg) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(input names, target names, inputs (R, I), targets (R, O)) from --data.csv."""
    path = Path(data_cfg.csv)
    header, rows = read_table(path)
    if data_cfg.column:
        inputs = _pick(path, header, data_cfg.column, "--data.column")
    else:  # every column whose first cell is a number (a date column is left out)
        inputs = [i for i, cell in enumerate(rows[0]) if _is_number(cell.strip())]
        if not inputs:
            raise UserError(f"{path} has no numeric column in its first data row; "
                            "name the columns with --data.column")
    targets = _pick(path, header, data_cfg.target, "--data.target") if data_cfg.target else inputs
    x = _numbers(path, header, rows, inputs)  # (R, I)
    y = _numbers(path, header, rows, targets)  # (R, O)
    return [header[i] for i in inputs], [header[i] for i in targets], x, y


def fit_normalization(names: list[str], values: np.ndarray) -> dict:
    """Mean and std per column of the training rows (a constant column gets std 1)."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return {"columns": list(names), "mean": mean.tolist(), "std": std.tolist()}


def normalize(names: list[str], values: np.ndarray, normalization: dict, source: str) -> np.ndarray:
    """(values − mean) / std per named column, with the saved statistics."""
    missing = [n for n in names if n not in normalization["columns"]]
    if missing:
        raise UserError(f"column {missing[0]!r} of {source} was not part of the training data "
                        f"(columns: {', '.join(normalization['columns'])})")
    idx = [normalization["columns"].index(n) for n in names]
    mean = np.array(normalization["mean"])[idx]
    std = np.array(normalization["std"])[idx]
    return (values - mean) / std


def denormalize(names: list[str], values: np.ndarray, normalization: dict) -> np.ndarray:
    """The inverse of normalize: back to the CSV's units."""
    idx = [normalization["columns"].index(n) for n in names]
    return values * np.array(normalization["std"])[idx] + np.array(normalization["mean"])[idx]


def windows(x: np.ndarray, y: np.ndarray, seq_len: int, horizon: int, stride: int, every_step: bool):
    """Cut (R, I) and (R, O) into (N, T, I) inputs and (N, T, O) or (N, O) targets."""
    starts = range(0, x.shape[0] - seq_len - horizon + 1, stride)
    xs = np.stack([x[i : i + seq_len] for i in starts])  # (N, T, I)
    if every_step:
        ys = np.stack([y[i + horizon : i + seq_len + horizon] for i in starts])  # (N, T, O)
    else:
        ys = np.stack([y[i + seq_len - 1 + horizon] for i in starts])  # (N, O)
    return torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.float32)


def csv_dataset(data_cfg, normalization: dict | None = None) -> Dataset:
    """The Dataset from --data.csv: chronological split, normalization fitted on the train rows."""
    path = Path(data_cfg.csv)
    in_names, out_names, x, y = load_columns(data_cfg)
    R, L, k = x.shape[0], data_cfg.seq_len, data_cfg.horizon
    need = L + k  # rows one window needs: seq_len inputs and the target `horizon` later
    n_train = int(R * (1 - data_cfg.val_fraction))
    if n_train < need:
        raise UserError(
            f"{path} has {R} data rows; its training part ({n_train} rows) is shorter than one "
            f"window (seq_len {L} + horizon {k} = {need} rows); lower --data.seq_len or add rows")
    n_val = R - n_train
    if data_cfg.val_fraction > 0 and n_val < need:
        raise UserError(
            f"{path}: the validation part ({n_val} of {R} rows, --data.val_fraction "
            f"{data_cfg.val_fraction}) is shorter than one window ({need} rows); raise "
            "--data.val_fraction, lower --data.seq_len, or set --data.val_fraction 0")
    every_step = data_cfg.predict != "last_step"
    columns = list(dict.fromkeys(in_names + out_names))
    both = np.concatenate([x, y], axis=1)[:, [(in_names + out_names).index(c) for c in columns]]
    if normalization is None:
        normalization = fit_normalization(columns, both[:n_train])
    x = normalize(in_names, x, normalization, str(path))
    y = normalize(out_names, y, normalization, str(path))
    x_tr, y_tr = windows(x[:n_train], y[:n_train], L, k, data_cfg.stride, every_step)
    if n_val:
        x_va, y_va = windows(x[n_train:], y[n_train:], L, k, data_cfg.stride, every_step)
    else:
        x_va, y_va = x_tr[:0], y_tr[:0]
    return Dataset(x_tr, y_tr, x_va, y_va, kind="regression", every_step=every_step,
                   input_size=len(in_names), output_size=len(out_names), name=str(path),
                   input_names=in_names, target_names=out_names, normalization=normalization)


def load_for_prediction(path: str | Path, input_names: list[str], target_names: list[str]):
    """(inputs (R, I), targets (R, O) or None when the file lacks them) for a trained model."""
    path = Path(path)
    header, rows = read_table(path)
    x = _numbers(path, header, rows, _pick(path, header, input_names, "a column the model was trained on"))
    if all(name in header for name in target_names):
        return x, _numbers(path, header, rows, _pick(path, header, target_names, "--data.target"))
    return x, None


def prediction_windows(x: np.ndarray, seq_len: int) -> torch.Tensor:
    """Every window of seq_len rows, one per start row (stride 1): (N, T, I), N = R − T + 1."""
    if x.shape[0] < seq_len:
        raise UserError(f"the data has {x.shape[0]} rows, fewer than one window of "
                        f"{seq_len} (the run's --data.seq_len); give more rows")
    starts = range(0, x.shape[0] - seq_len + 1)
    return torch.tensor(np.stack([x[i : i + seq_len] for i in starts]), dtype=torch.float32)
