"""Several series in one run: a long-format file with a series column, or several files.

    tables = series_tables(data_cfg, spec, table)   # None: one series; else [(series id, Table)]

Long format (`--data.series_column store`): the rows of each id, in file order, are one series;
ids keep the order of their first row. Several files (a glob) with `--data.files series`: each
file is one series, its id the file's name. Every series then gets its own time index, gaps,
chronological split and transforms (data/series.py); windows are cut inside one series only
(data/csv.py), so no window crosses from one series into the next; a series too short for a
window of --data.seq_len gives a shorter one, and its batches run packed (data/ragged.py).
"""

from __future__ import annotations

import numpy as np

from rnnscope.data.table import Table, locate, pick, read_table, source_files, take_rows
from rnnscope.errors import UserError


def series_column(data_cfg, spec: dict | None) -> str:
    """The id column: the saved run's (predict, evaluate), else --data.series_column."""
    if spec is not None:
        return (spec.get("series") or {}).get("column", "")
    return data_cfg.series_column


def by_files(data_cfg, spec: dict | None) -> bool:
    """Whether each file of a glob is its own series."""
    if spec is not None:
        return (spec.get("series") or {}).get("by") == "file"
    return data_cfg.files == "series"


def series_tables(data_cfg, spec: dict | None, table: Table | None) -> list[tuple[str, Table]] | None:
    """[(id, the series' rows as a Table)] for several series; None for one series."""
    column = series_column(data_cfg, spec)
    if spec is None and column and data_cfg.files == "series":
        raise UserError(f"--data.series_column {column} and --data.files series both say where series "
                        "begin; keep one (the id column also works across several files)")
    if table is None:
        paths = source_files(data_cfg.csv)
        if by_files(data_cfg, spec) and not column:
            return _file_series(paths, data_cfg.csv)
        if not column:
            return None  # one series: read_series reads the file, once
        from rnnscope.data.table import concatenate

        tables = [read_table(path) for path in paths]
        table = tables[0] if len(tables) == 1 else concatenate(tables, data_cfg.csv)
    if not column:
        return None
    return split_by_id(table, column)


def _file_series(paths, pattern: str) -> list[tuple[str, Table]]:
    """Each file one series, named by its file name (its path when two names are alike)."""
    tables = [read_table(path) for path in paths]
    for t in tables[1:]:
        if t.names != tables[0].names:
            raise UserError(f"{t.path} has the columns {', '.join(t.names)} but {tables[0].path} has "
                            f"{', '.join(tables[0].names)}; every file of {pattern} needs the same header")
    names = [p.name for p in paths]
    ids = names if len(set(names)) == len(names) else [str(p) for p in paths]
    return list(zip(ids, tables))


def _id_texts(table: Table, column: str) -> np.ndarray:
    """The id of every row as text (whole numbers without a .0); a missing id names its line."""
    if column in table.numeric:
        values = table.numeric[column]
        missing = np.isnan(values)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise UserError(f"{locate(table, row)}, column {column!r} (--data.series_column): the series id is "
                            "empty; every row needs the id of its series")
        whole = np.all(values == np.round(values))
        return values.astype(np.int64).astype(str) if whole else values.astype(str)
    if column in table.times:
        raise UserError(f"{table.path} column {column!r} (--data.series_column) holds dates; name the column "
                        "that says which series a row belongs to")
    cells = table.text[column]
    texts = np.char.strip(np.asarray(cells.fill_null("").to_numpy(zero_copy_only=False)).astype(str))
    empty = texts == ""
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise UserError(f"{locate(table, row)}, column {column!r} (--data.series_column): the series id is "
                        "empty; every row needs the id of its series")
    return texts


def split_by_id(table: Table, column: str) -> list[tuple[str, Table]]:
    """[(id, its rows)] in the order of each id's first row; rows keep the file's order."""
    if column not in table.names:
        pick(table, [column], "--data.series_column")
    ids = _id_texts(table, column)
    unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first)  # ids by their first row
    rows = np.argsort(inverse, kind="stable")  # rows grouped by id, file order inside each
    ends = np.cumsum(np.bincount(inverse, minlength=len(unique)))
    starts = ends - np.bincount(inverse, minlength=len(unique))
    return [(str(unique[u]), take_rows(table, rows[starts[u] : ends[u]])) for u in order]
