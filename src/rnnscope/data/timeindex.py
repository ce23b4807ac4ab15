"""The time index of a series: which column it is, its step, and where the file skips steps.

A time column is a date/time column (ISO dates are parsed by the reader; a few other common
formats are tried on text columns) or a strictly increasing integer column such as a year. It is
never an input or a target. Its values must increase; the step is the smallest difference (whole
months for monthly and yearly dates); a larger difference that is a multiple of the step is a gap
(rows of missing values are put there, handled by --data.missing); anything else is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from rnnscope.data.table import Table, first_text, locate
from rnnscope.errors import UserError

DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%Y-%m", "%Y-%m-%d %H:%M", "%Y%m%d")
_SEASONS_BY_SECONDS = {900: 96, 1800: 48, 3600: 24, 86400: 7, 604800: 52}  # step -> season (day, week, year)
_SEASONS_BY_MONTHS = {1: 12, 3: 4}  # monthly -> yearly, quarterly -> yearly
MAX_GAP_ROWS = 10  # a file whose gaps would add more than 10x its rows has the wrong step


@dataclass
class TimeIndex:
    """A regular time axis: grid position k is the time start + k * step (in `unit`)."""

    name: str  # the column ("" when the rows themselves are the index)
    kind: str  # "datetime", "integer" or "row"
    unit: str  # "s", "month" or "1"
    start: int
    step: int
    positions: np.ndarray  # int64 (R,): each file row's place on the grid

    def to_dict(self) -> dict:
        """Plain values for the checkpoint (no positions)."""
        return {"name": self.name, "kind": self.kind, "unit": self.unit, "start": self.start, "step": self.step}

    @property
    def season(self) -> int:
        """The obvious seasonal period of this step (0 when there is none)."""
        if self.unit == "s":
            return _SEASONS_BY_SECONDS.get(self.step, 0)
        if self.unit == "month":
            return _SEASONS_BY_MONTHS.get(self.step, 0)
        return 0

def step_text(unit: str, step: int) -> str:
    """'day', '3 months', '1 row'."""
    if unit == "month":
        return "month" if step == 1 else ("year" if step == 12 else f"{step} months")
    if unit == "s":
        for size, word in ((86400 * 7, "week"), (86400, "day"), (3600, "hour"), (60, "minute")):
            if step % size == 0:
                n = step // size
                return word if n == 1 else f"{n} {word}s"
        return f"{step} s"
    return str(step)


def describe(index: dict) -> str:
    """One phrase for the summary: `date (every day, from 2020-01-01)`."""
    if index["kind"] == "row":
        return "row numbers (no time column found; name one with --data.time_column)"
    return f"{index['name']} (every {step_text(index['unit'], index['step'])}, from {stamp(index, 0)})"


def stamp(index: dict, k):
    """The time of grid position(s) k: a date or timestamp as ISO text, or an integer."""
    value = index["start"] + np.asarray(k, dtype=np.int64) * index["step"]
    if index["kind"] in ("integer", "row"):
        return value if np.ndim(value) else int(value)
    if index["unit"] == "month":
        text = np.datetime_as_string((value - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]"))
    else:
        moments = value.astype("datetime64[s]")
        midnight = bool(np.all(value % 86400 == 0))
        text = np.datetime_as_string(moments.astype("datetime64[D]") if midnight else moments)
        if not midnight:
            text = np.char.replace(text, "T", " ")
    return text if np.ndim(value) else str(text)


def _parse_text_dates(table: Table, name: str, named: bool) -> np.ndarray | None:
    """Seconds since 1970 for the text column `name` of dates in one of DATE_FORMATS, or None
    when its first cells are not dates. When they are, a later cell that is not a date in the
    same format (or is empty) is a UserError naming its line (`named`: the user named the column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.text[name]
    sample = [c.strip() for c in column.slice(0, 50).to_pylist() if c and c.strip()]
    if not sample:
        return None
    for fmt in DATE_FORMATS:
        try:
            for c in sample:
                dt.datetime.strptime(c, fmt)
        except ValueError:
            continue
        parsed = pc.strptime(pc.utf8_trim_whitespace(column), format=fmt, unit="s", error_is_null=True)
        if parsed.null_count:
            row = int(np.flatnonzero(parsed.is_null().to_numpy(zero_copy_only=False))[0])
            raise _not_a_date(table, name, row, named)
        return parsed.cast(pa.int64()).combine_chunks().to_numpy(zero_copy_only=False)
    return None


def _not_a_date(table: Table, name: str, row: int, named: bool) -> UserError:
    """The error for a date column with a cell that is not a date (row 0-based)."""
    from rnnscope.data.table import locate

    cell = table.text[name][row].as_py()
    what = repr(cell.strip()) if cell and cell.strip() else "an empty cell"
    way = ("" if named else
           " (it was taken for the time column: its first rows are dates; --data.time_column none "
           "uses row numbers instead)")
    return UserError(f"{locate(table, row)}, column {name!r}: {what} is not a date like the rows "
                     f"before it{way}; fix or remove the row, or write every date the same way "
                     "(ISO 8601: 2020-01-31 or 2020-01-31 14:00)")


def _evenly_increasing(values: np.ndarray) -> bool:
    """Strictly increasing integers, the smallest step the most common (a year column)."""
    if len(values) < 3 or not (np.diff(values[:1000]) > 0).all():  # most columns fail here, cheaply
        return False
    d = np.diff(values)
    if not (d > 0).all():  # a NaN fails here too
        return False
    if not np.all(values == np.rint(values)):
        return False
    step = d.min()
    if (d == step).all():  # evenly spaced, no step skipped: the common case, without a division
        return True
    return bool(np.all(d % step == 0) and np.mean(d == step) > 0.5)


def find_time_column(table: Table, asked: str, taken: set[str]) -> tuple[str, str, np.ndarray] | None:
    """(name, kind, values) of the time column: the one asked for, or one detected; None when none."""
    if asked.lower() == "none":
        return None
    if asked:
        if asked not in table.names:
            from rnnscope.data.table import pick

            pick(table, [asked], "--data.time_column")
        if asked in table.times:
            return asked, "datetime", table.times[asked]
        if asked in table.numeric:
            values = table.numeric[asked]
            if np.isnan(values).any() or not np.all(values == np.round(values)):
                raise UserError(f"{table.path} column {asked!r} (--data.time_column) has empty or "
                                "fractional values; a time column needs dates or whole numbers in every row")
            return asked, "integer", values.astype(np.int64)
        parsed = _parse_text_dates(table, asked, named=True)
        if parsed is None:
            first = first_text(table, asked)
            raise UserError(f"{table.path} column {asked!r} (--data.time_column): cannot read {first!r} as a "
                            "date; write dates as 2020-01-31 or 2020-01-31 14:00 (ISO 8601)")
        return asked, "datetime", parsed
    for name in table.names:  # detected: a date column first, then text dates, then a year-like column
        if name in table.times and name not in taken:
            return name, "datetime", table.times[name]
    for name in table.names:
        if name in table.text and name not in taken:
            parsed = _parse_text_dates(table, name, named=False)
            if parsed is not None:
                return name, "datetime", parsed
    # a year-like column: only the first column, and only when other numeric columns remain as values
    # (a lone column 1, 2, 3 … is a series, not an index)
    name = table.names[0]
    others = [n for n in table.numeric if n != name]
    if name in table.integer and name not in taken and others and _evenly_increasing(table.numeric[name]):
        return name, "integer", table.numeric[name].astype(np.int64)
    return None


def _months(seconds: np.ndarray) -> np.ndarray | None:
    """Whole months since 1970 when every time is midnight on the same day of a month, else None."""
    days = seconds // 86400
    if np.any(seconds % 86400):
        return None
    dates = days.astype("datetime64[D]")
    month = dates.astype("datetime64[M]")
    day_of_month = (dates - month.astype("datetime64[D]")).astype(np.int64)
    if len(np.unique(day_of_month)) != 1:
        return None
    return month.astype(np.int64) + 1970 * 12


def build_index(table: Table, found: tuple[str, str, np.ndarray] | None) -> TimeIndex:
    """The regular grid of the time column (or of the rows), checked for order and spacing."""
    if found is None:
        return TimeIndex("", "row", "1", 1, 1, np.arange(table.rows, dtype=np.int64))
    name, kind, values = found
    unit = "s" if kind == "datetime" else "1"
    d = np.diff(values)
    if kind == "datetime" and len(d) and d.min() > 0 and (d != d[0]).any():  # steps of several sizes
        months = _months(values)
        if months is not None and len(np.unique(np.diff(months))) < len(np.unique(d)):
            values, unit, d = months, "month", np.diff(months)
    if (d <= 0).any():
        i = int(np.flatnonzero(d <= 0)[0]) + 1
        what = "repeats the time of the row before" if d[i - 1] == 0 else "goes back in time"
        raise UserError(f"{locate(table, i)}, column {name!r}: the row {what}; "
                        f"sort the file by {name} and keep one row per time")
    if len(d) == 0:
        return TimeIndex(name, kind, unit, int(values[0]), 1, np.zeros(1, dtype=np.int64))
    step = int(d.min())
    if (d == step).all():  # every row one step after the one before: no gap, nothing uneven
        return TimeIndex(name, kind, unit, int(values[0]), step, np.arange(len(values), dtype=np.int64))
    uneven = d % step != 0
    if uneven.any():
        i = int(np.flatnonzero(uneven)[0]) + 1
        raise UserError(f"{locate(table, i)}, column {name!r}: this row comes "
                        f"{step_text(unit, int(d[i - 1]))} after the one before, not a multiple of the step "
                        f"({step_text(unit, step)}); the time index must be evenly spaced (resample the file)")
    positions = (values - values[0]) // step
    if positions[-1] + 1 > MAX_GAP_ROWS * len(values):
        raise UserError(f"{table.path} column {name!r}: with a step of {step_text(unit, step)} its "
                        f"{len(values)} rows would span {positions[-1] + 1} steps (mostly gaps); "
                        "resample the file to a regular step")
    return TimeIndex(name, kind, unit, int(values[0]), step, positions.astype(np.int64))
