"""The user's series (--data.csv: CSV or Parquet) as a Dataset: windows over train, validation, test.

A window is seq_len rows of inputs ending at its forecast origin o; its target is what
data/series.py puts at o (and, with --data.predict every_step, at each earlier row too). A window
belongs to the split that holds all the rows it forecasts (o + first step … o + horizon), so no
training target lies in validation or test; its inputs may reach back into earlier splits, which
is the past at that origin. Train windows start every --data.stride rows; validation and test use
every origin.

Windows are views into one (R, I) array (torch's unfold), never copies of the file: a batch is
copied when the loop indexes it.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnscope.data.dataset import Dataset
from rnnscope.data.ragged import MIN_STEPS, ragged_splits
from rnnscope.data.series import Prepared, input_names, output_names, prepare, steps_ahead
from rnnscope.errors import UserError


def origins(prepared: Prepared, part: int, seq_len: int, stride: int = 1) -> range:
    """Forecast origins whose forecast rows all lie in split `part` (0 train, 1 validation, 2 test)."""
    ks = steps_ahead(prepared.spec)
    first, last = ks[0], ks[-1]
    a, b = prepared.bounds[part], prepared.bounds[part + 1]
    lo = max(a - first, seq_len - 1 + prepared.spec["difference"])
    return range(lo, b - last, stride)


def window_origins(prepared: Prepared, part: int, seq_len: int, stride: int = 1) -> range:
    """The forecast origins of split `part`: every full window's (every `stride`-th), else the
    origin of the split's one shorter window (at least MIN_STEPS rows; data/ragged.py), else none."""
    span = origins(prepared, part, seq_len, stride)
    return span if len(span) else origins(prepared, part, min(MIN_STEPS, seq_len))[-1:]


def all_origins(prepared: Prepared, seq_len: int) -> range:
    """Every origin with a full window, including those that forecast past the end of the file."""
    return range(seq_len - 1 + prepared.spec["difference"], prepared.x.shape[0])


def window_views(prepared: Prepared, span: range, seq_len: int, every_step: bool):
    """(inputs (N, T, I'), targets (N, T, O') or (N, O')) for the origins in span, as views."""
    x = torch.from_numpy(prepared.x)
    t = torch.from_numpy(prepared.t)
    start, stop, step = span.start - seq_len + 1, span.stop - seq_len + 1, span.step
    xs = x.unfold(0, seq_len, 1).transpose(1, 2)[start:stop:step]  # (N, T, I') view
    if every_step:
        ys = t.unfold(0, seq_len, 1).transpose(1, 2)[start:stop:step]  # (N, T, O') view
    else:
        ys = t[span.start : span.stop : span.step]  # (N, O') view
    return xs, ys


def csv_dataset(data_cfg, normalization: dict | None = None) -> Dataset:
    """The Dataset from --data.csv; `normalization` is a saved spec to reuse instead of fitting."""
    if not 0 <= data_cfg.test_fraction < 1 or data_cfg.val_fraction + data_cfg.test_fraction >= 1:
        raise UserError(f"--data.val_fraction ({data_cfg.val_fraction}) + --data.test_fraction "
                        f"({data_cfg.test_fraction}) must be below 1, each ≥ 0: the rest is for training")
    if data_cfg.difference not in (0, 1):
        raise UserError(f"--data.difference must be 0 or 1, got {data_cfg.difference}")
    if data_cfg.season < 0:
        raise UserError(f"--data.season must be ≥ 0 (0: from the time step), got {data_cfg.season}")
    spec = normalization.get("spec") if normalization else None
    spec, prepared = prepare(data_cfg, spec=spec, own_file=True)  # a saved spec: resume, diagnose
    L, every_step = data_cfg.seq_len, data_cfg.predict != "last_step"
    if isinstance(prepared, list):
        return _many_dataset(data_cfg, spec, prepared, L, every_step)
    need = L + prepared.spec["difference"] + steps_ahead(spec)[-1]
    parts = []
    for part, name in enumerate(("train", "validation", "test")):
        span = origins(prepared, part, L, data_cfg.stride if part == 0 else 1)
        rows = prepared.bounds[part + 1] - prepared.bounds[part]
        if len(span) == 0 and (part == 0 or rows > 0):
            option = {0: "lower --data.val_fraction or --data.test_fraction",
                      1: "raise --data.val_fraction or set it to 0", 2: "raise --data.test_fraction or set it to 0"}
            raise UserError(
                f"{data_cfg.csv}: the {name} part ({rows} of {prepared.x.shape[0]} rows) holds no complete "
                f"forecast (a window needs seq_len {L} rows and its target {steps_ahead(spec)[-1]} later, "
                f"{need} rows in all, the first in this part or before); lower --data.seq_len, {option[part]}, "
                "or add rows")
        parts.append(window_views(prepared, span, L, every_step))
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = parts
    norm = {"columns": spec["inputs"], "mean": spec["x_mean"], "std": spec["x_std"], "spec": spec}
    return Dataset(x_tr, y_tr, x_va, y_va, kind="regression", every_step=every_step,
                   input_size=x_tr.shape[-1], output_size=y_tr.shape[-1], name=str(data_cfg.csv),
                   input_names=input_names(spec), target_names=output_names(spec), normalization=norm,
                   x_test=x_te, y_test=y_te, series=prepared)


def prediction_windows(x: np.ndarray, seq_len: int) -> torch.Tensor:
    """Every window of seq_len rows, one per start row (stride 1): (N, T, I) view, N = R − T + 1."""
    if x.shape[0] < seq_len:
        raise UserError(f"the data has {x.shape[0]} rows, fewer than one window of "
                        f"{seq_len} (the run's --data.seq_len); give more rows")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unfold(0, seq_len, 1).transpose(1, 2)


class Rows:
    """Rows of a tensor picked by an index, read only when indexed: the windows of several series
    as (window view, start) pairs, without a copy of every window. `rows[idx]` is a tensor (a copy
    of just those rows, as indexing a view would be); shape, len, `.to` and slicing work as on a
    tensor, so the training loop and evaluation take it in place of one."""

    def __init__(self, base: torch.Tensor, index: torch.Tensor) -> None:
        self.base, self.index = base, index  # base (W, ...) view; index (N,) int64 rows of base

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.base.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key):
        """rows[idx] as a tensor; rows[idx, a:b] (more than the first axis) stays lazy: Rows again."""
        if isinstance(key, tuple):
            return Rows(self.base[(slice(None), *key[1:])], self.index[key[0]])
        return self.base[self.index[key]]

    def to(self, device, *args, **kwargs):
        """Itself on the CPU (nothing is copied); the picked rows as a tensor on another device."""
        if torch.device(device).type == "cpu" and not args and not kwargs:
            return self
        return self.base[self.index].to(device, *args, **kwargs)

    def contiguous(self) -> torch.Tensor:
        return self.base[self.index]

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]


def stack_series(parts: list[Prepared]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The series' x and t one after another in one array each (one copy), each part's x and t
    then views into them; and each series' first row in the stack."""
    offsets = np.cumsum([0] + [p.x.shape[0] for p in parts]).tolist()
    x, t = np.concatenate([p.x for p in parts]), np.concatenate([p.t for p in parts])
    for p, a, b in zip(parts, offsets[:-1], offsets[1:]):
        p.x, p.t = x[a:b], t[a:b]
    return x, t, offsets


def _many_dataset(data_cfg, spec: dict, parts: list[Prepared], L: int, every_step: bool) -> Dataset:
    """Windows of several series: each series cut into its own train, validation and test origins,
    and a window index (the window's first row in the stacked arrays) per split. A window lies in
    one series by construction: its rows are [origin − L + 1, origin] of that series."""
    x, t, offsets = stack_series(parts)
    ks = steps_ahead(spec)
    need = L + spec["difference"] + ks[-1]
    starts = [[], [], []]
    for p, offset in zip(parts, offsets):
        R = p.x.shape[0]
        for part, name in enumerate(("train", "validation", "test")):
            span = window_origins(p, part, L, data_cfg.stride if part == 0 else 1)
            rows = p.bounds[part + 1] - p.bounds[part]
            if len(span) == 0 and (part == 0 or rows > 0):
                raise UserError(
                    f"{data_cfg.csv}: series {p.series_id!r} has {R} rows, too few for a {name} window of its own "
                    f"(its {name} part is {rows} rows; a window needs seq_len {L} rows and its target "
                    f"{ks[-1]} later, {need} rows in all, {need - L + MIN_STEPS} for a shorter one); lower "
                    "--data.seq_len, give that series more rows, or leave it out of the file")
            starts[part].append(np.asarray(span, dtype=np.int64) + offset)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    x_windows = xt.unfold(0, L, 1).transpose(1, 2)  # (W, T, I') view: every window of the stack
    y_windows = tt.unfold(0, L, 1).transpose(1, 2) if every_step else tt
    split = ragged_splits(x, t, offsets, starts, L, spec["difference"], every_step) or []  # short windows
    for origin in starts if not split else ():
        o = torch.from_numpy(np.concatenate(origin))
        split.append((Rows(x_windows, o - L + 1), Rows(y_windows, o - L + 1 if every_step else o)))
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = split
    norm = {"columns": spec["inputs"], "mean": spec["x_mean"], "std": spec["x_std"], "spec": spec}
    return Dataset(x_tr, y_tr, x_va, y_va, kind="regression", every_step=every_step,
                   input_size=x_tr.shape[-1], output_size=y_tr.shape[-1], name=str(data_cfg.csv),
                   input_names=input_names(spec), target_names=output_names(spec), normalization=norm,
                   x_test=x_te, y_test=y_te, series=parts)
