"""Missing values (--data.missing): refused, dropped, filled forward, interpolated, or masked.

No fill looks across a split boundary into the future: a gap is filled from values of its own
split or earlier rows (the past), never from a later split. Interpolation draws a line to the
next known value only when that value lies in the same split; otherwise the last known value is
carried forward. A gap before any known value of a series is filled with the first known value
of its own split.
"""

from __future__ import annotations

import logging

import numpy as np

from rnnscope.errors import UserError

log = logging.getLogger(__name__)


def refuse(path, names: list[str], values: np.ndarray, line_of, time_name: str, gap_rows: np.ndarray) -> None:
    """--data.missing error: name the first empty cell (or skipped time), the count and the options."""
    options = "choose --data.missing drop, ffill, interpolate or mask (or fill the cells)"
    if gap_rows.any():  # whole rows the time index says are absent
        first = int(np.flatnonzero(gap_rows)[0])
        raise UserError(f"{line_of(first)}: the time column {time_name!r} skips {int(gap_rows.sum())} time "
                        f"steps in all (the first just before this line); {options}")
    missing = np.isnan(values)
    row, col = (int(i) for i in np.argwhere(missing)[0])
    raise UserError(f"{line_of(row)}, column {names[col]!r}: the cell is empty or marks a "
                    f"missing value ({int(missing.sum())} such cells in the file); {options}")


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Each NaN replaced by the last value above it in its column (leading NaNs stay); values
    itself, not a copy, when nothing is missing."""
    if not np.isnan(values).any():
        return values
    out = values.copy()
    for c in range(values.shape[1]):
        col = out[:, c]
        known = ~np.isnan(col)
        if known.all():
            continue
        last = np.maximum.accumulate(np.where(known, np.arange(len(col)), -1))
        filled = col[np.maximum(last, 0)]
        out[:, c] = np.where(last >= 0, filled, np.nan)
    return out


def fill(values: np.ndarray, mode: str, bounds: list[int]) -> np.ndarray:
    """Inputs without NaN: forward-filled or interpolated inside each split [bounds[i], bounds[i+1])
    (values itself when nothing is missing)."""
    if not np.isnan(values).any():
        return values
    out = forward_fill(values) if mode in ("ffill", "mask") else values.copy()
    for c in range(values.shape[1]):
        col = values[:, c]
        if mode == "interpolate":
            for a, b in zip(bounds[:-1], bounds[1:]):
                out[a:b, c] = _interpolate_segment(col, a, b)
        still = np.isnan(out[:, c])
        if still.any():  # before the first known value: the first known value of the same split
            for a, b in zip(bounds[:-1], bounds[1:]):
                seg = out[a:b, c]
                known = np.flatnonzero(~np.isnan(seg))
                if len(known):
                    seg[: known[0]] = seg[known[0]]
            if np.isnan(out[:, c]).all():
                out[:, c] = 0.0
    return out


def _interpolate_segment(col: np.ndarray, a: int, b: int) -> np.ndarray:
    """Rows a..b-1 of col, gaps drawn linearly from the last known value (possibly before a) to the
    next known value inside [a, b); past the last known value, that value is carried forward."""
    before = np.flatnonzero(~np.isnan(col[:a]))
    start = int(before[-1]) if len(before) else a
    seg = col[start:b]
    known = np.flatnonzero(~np.isnan(seg))
    if len(known) == 0:
        return col[a:b].copy()
    filled = np.interp(np.arange(len(seg)), known, seg[known], left=np.nan)  # right: carried forward
    return filled[a - start :]


def drop_rows(keep: np.ndarray, positions: np.ndarray, has_time: bool, describe, name: str = "the series") -> np.ndarray:
    """--data.missing drop: the rows to keep, with a warning when dropping joins distant times."""
    dropped = np.flatnonzero(~keep)
    if len(dropped) == 0:
        return keep
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        raise UserError("--data.missing drop leaves no rows: every row has a missing value; "
                        "use --data.missing interpolate or mask")
    inner = dropped[(dropped > kept[0]) & (dropped < kept[-1])]
    if len(inner):
        where = f"e.g. {describe(positions[inner[0] - 1])} is followed by {describe(positions[inner[0] + 1])}" \
            if has_time else "the time between rows is no longer one step"
        log.warning(f"--data.missing drop removed {len(inner)} rows inside {name}, so windows join "
                    f"times that are not one step apart ({where}); --data.missing interpolate or mask "
                    "keeps the spacing")
    return keep
