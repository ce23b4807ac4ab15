"""Reading the user's file with pyarrow: CSV or Parquet, columns typed, every mistake one line.

    table = read_table("series.csv")
    table.numeric["temp"]   # float64 (R,), NaN where the cell was empty or a missing marker
    table.times["date"]     # int64 (R,) seconds (a date or timestamp column)

pyarrow parses the file in C++ (no Python loop per cell). What it cannot say well (which line
of the file a bad row is on, where a byte is not UTF-8) is found afterwards by a Python scan of
that file, which runs only on the way to an error message.
"""

from __future__ import annotations

import csv
import difflib
import glob
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnscope.errors import UserError

# cells read as "no value here" (a gap), as people and spreadsheets write them
MISSING_MARKERS = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "None", "-", "?"]
BLOCK_BYTES = 16 << 20  # the reader's block (one chunk of each column)
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_DATE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}([-/.]\d{1,4})?([ T][\d:.]+)?\s*$")  # 2020-01-31, 31.01.2020


@dataclass
class Table:
    """The columns of one file, by kind, in the file's order."""

    path: Path
    names: list[str]  # every column, stripped
    rows: int
    numeric: dict[str, np.ndarray] = field(default_factory=dict)  # float64 (R,), NaN = missing
    integer: set[str] = field(default_factory=set)  # numeric columns whose cells are all integers
    times: dict[str, np.ndarray] = field(default_factory=dict)  # int64 (R,) seconds since 1970
    text: dict[str, object] = field(default_factory=dict)  # pyarrow string arrays (labels, odd dates)
    parts: list[tuple[Path, int]] = field(default_factory=list)  # (file, its first row) when several
    origin: np.ndarray | None = None  # a series cut out of a file: each row's row in that file (for lines)
    block: np.ndarray | None = None  # float64 (R, N) column-major: the numeric columns side by side, in order

    def side_by_side(self, names: list[str]) -> np.ndarray | None:
        """The numeric columns `names` as one (R, C) view of the block, when they are neighbours
        there in this order (no copy); None otherwise."""
        order = list(self.numeric)
        if self.block is None or not names or any(n not in self.numeric for n in names):
            return None
        first = order.index(names[0])
        if order[first : first + len(names)] != names:
            return None
        return self.block[:, first : first + len(names)]


def source_files(spec: str, option: str = "--data.csv") -> list[Path]:
    """The files a --data.csv value names: a path, or a glob pattern (sorted); checked to be files."""
    if any(ch in spec for ch in "*?["):
        paths = [Path(p) for p in sorted(glob.glob(spec))]
        if not paths:
            raise UserError(f"{option} {spec}: no file matches this pattern; check the path")
    else:
        paths = [Path(spec)]
    for path in paths:
        check_file(path, option)
    return paths


def check_file(path: Path, option: str) -> None:
    """A regular, readable file, or one line that says what the path really is."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"data file {path} does not exist; check the {option} path") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission on a folder
        raise UserError(f"data file {path} cannot be opened ({exc.strerror}); check the {option} path") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"data file {path} is a directory; give a CSV or Parquet file inside it ({option})")
    if not stat.S_ISREG(mode):
        what = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise UserError(f"data file {path} is {what}; save the data to a regular file and give that ({option})")
    if not os.access(path, os.R_OK):
        raise UserError(f"data file {path} is not readable (permission denied); check its permissions")


def read_table(path: Path) -> Table:
    """One CSV or Parquet file as a Table; bad content gets one line with the line and column."""
    if path.suffix.lower() in (".parquet", ".pq"):
        names, chunks, whole = _columns(_read_parquet(path))
    else:
        if path.stat().st_size == 0:
            raise UserError(f"data file {path} is empty; it needs a header row and one row per time step")
        names, chunks, whole = _columns(_read_csv(path))  # the pyarrow table itself is gone here
    return _from_columns(names, chunks, path, whole)


def from_arrow(arrow, path: Path) -> Table:
    """A Table from a pyarrow table (read from a file, or built from a DataFrame in memory)."""
    names, chunks, whole = _columns(arrow)
    return _from_columns(names, chunks, path, whole)


def _columns(arrow) -> tuple[list[str], list[list], set[str]]:
    """(names, per column its list of pyarrow chunks, integer columns) of a pyarrow table, so the
    table can be let go and each column's memory freed as soon as it is converted."""
    import pyarrow as pa

    whole = {f.name for f in arrow.schema if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)}
    return arrow.column_names, [list(c.chunks) for c in arrow.columns], whole


def _from_columns(raw_names: list[str], chunks: list[list], path: Path, whole: set[str]) -> Table:
    """A Table from each column's pyarrow chunks, converted one column at a time into the numeric
    block (each column's chunks are released once copied: the peak is the file's data and the block)."""
    import pyarrow as pa

    names = [str(n).strip() for n in raw_names]
    rows = sum(len(c) for c in chunks[0]) if chunks else 0
    _check_header(path, names, rows)
    table = Table(path, names, rows)
    kinds = [c[0].type if c else pa.float64() for c in chunks]
    numbers = [pa.types.is_integer(k) or pa.types.is_floating(k) or pa.types.is_boolean(k)
               or pa.types.is_null(k) for k in kinds]  # null: every cell empty, a column of gaps
    table.block = _pooled_block(rows, sum(numbers))  # each column one contiguous run
    pool = pa.default_memory_pool()
    for i, name in enumerate(names):
        kind = kinds[i]
        if numbers[i]:
            column = table.block[:, len(table.numeric)]
            _drain(chunks[i], column, pa.float64())  # nulls -> NaN
            table.numeric[name] = column
            if raw_names[i] in whole:
                table.integer.add(name)
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            nulls = sum(c.null_count for c in chunks[i])
            valid = pa.chunked_array(chunks[i]).is_valid() if nulls else None
            table.times[name] = _drain(chunks[i], np.empty(rows, dtype=np.int64), pa.timestamp("s"))
            if nulls:
                row = int(np.flatnonzero(~valid.to_numpy(zero_copy_only=False))[0])
                raise UserError(f"{path} line {data_line(path, row)}, column {name!r}: the time stamp is "
                                "empty; every row needs its time (leave the row out, the gap is seen)")
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise UserError(f"data file {path} is not UTF-8 text (column {name!r}); save it as UTF-8 CSV")
        else:
            table.text[name] = pa.chunked_array(chunks[i], kind)
        chunks[i] = None
        pool.release_unused()  # give the converted column's pyarrow memory back to the system now
    return table


def _pooled_block(rows: int, n: int) -> np.ndarray:
    """float64 (rows, n) column-major, in pyarrow's memory pool, which still holds the pages the
    reader has just freed: filling fresh pages from the system instead costs more than the copy
    itself (most so on a virtual machine)."""
    import pyarrow as pa

    return np.frombuffer(pa.allocate_buffer(rows * n * 8), dtype=np.float64).reshape((rows, n), order="F")


def _drain(chunks: list, out: np.ndarray, arrow_type) -> np.ndarray:
    """One column's pyarrow chunks copied into `out` (R,), each chunk released as soon as it is
    copied (nulls become NaN)."""
    end = len(out)
    while chunks:
        chunk = chunks.pop()  # from the end: popping the front of a long list is quadratic
        if chunk.type != arrow_type:
            chunk = chunk.cast(arrow_type)
        _copy_values(chunk, out[end - len(chunk) : end])
        end -= len(chunk)
    return out


def _copy_values(chunk, out: np.ndarray) -> None:
    """A fixed-width pyarrow array's values into `out`, read from its buffers (pyarrow's own
    to_numpy goes through pandas, whose import alone costs a noticeable part of a second); nulls
    become NaN in a float `out` (an int64 time column with a null is refused by the caller)."""
    n = len(out)
    if n == 0:
        return
    if chunk.null_count == n:  # a column of gaps (pyarrow's null type holds no value buffer)
        out[:] = np.nan if out.dtype.kind == "f" else 0
        return
    validity, data = chunk.buffers()[:2]
    out[:] = np.frombuffer(data, dtype=out.dtype, count=n, offset=chunk.offset * out.itemsize)
    if chunk.null_count and out.dtype.kind == "f":
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), count=chunk.offset + n, bitorder="little")
        out[bits[chunk.offset :] == 0] = np.nan


def _read_csv(path: Path):
    import pyarrow as pa
    from pyarrow import csv as pacsv

    read = pacsv.ReadOptions(block_size=BLOCK_BYTES)  # parsed in parallel; types inferred from every block
    convert = pacsv.ConvertOptions(null_values=MISSING_MARKERS, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False)
    try:
        return pacsv.read_csv(path, read_options=read, convert_options=convert)
    except pa.ArrowInvalid as exc:
        _explain_csv(path)  # raises the precise one-line error when a Python scan finds one
        raise UserError(f"data file {path} is not a readable CSV ({str(exc).splitlines()[0]}); "
                        "check its quoting and that every row has one cell per column") from None


def _read_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"data file {path} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def _explain_csv(path: Path) -> None:
    """Scan the file with Python's csv module for what pyarrow refused, and raise it."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = None
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank lines carry nothing
                if header is None:
                    header = row
                    _check_separator(path, header)
                elif len(row) != len(header):
                    raise UserError(f"{path} line {reader.line_num}: {len(row)} cells, but the header has "
                                    f"{len(header)}; every row needs one cell per column")
    except UnicodeDecodeError as exc:
        raise UserError(f"data file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise UserError(f"data file {path} is not a readable CSV ({exc}); check its quoting") from None
    if header is None:
        raise UserError(f"data file {path} is empty; it needs a header row and one row per time step")


def data_line(path: Path, row: int) -> int:
    """The line of the file that holds data row `row` (0-based); blank lines are skipped as pyarrow does."""
    if path.suffix.lower() in (".parquet", ".pq") or not path.is_file():
        return row + 1  # Parquet and data in memory have no lines: the row number, counted from 1
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        seen = -2  # the header is row -1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                seen += 1
                if seen == row:
                    return reader.line_num
    return row + 2


def locate(table: Table, row: int) -> str:
    """`file line N` of data row `row` (0-based) of a table read from one file or several."""
    if table.origin is not None:
        row = int(table.origin[row])
    if not table.parts:
        return f"{table.path} line {data_line(table.path, row)}"
    path, start = next((p, s) for p, s in reversed(table.parts) if s <= row)
    return f"{path} line {data_line(path, row - start)}"


def concatenate(tables: list[Table], spec: str) -> Table:
    """Several files with the same header as one series, in the given (name) order."""
    import pyarrow as pa

    first = tables[0]
    for name in first.names:  # a value column with text in one file: name that file's bad cell
        if any(name in t.numeric for t in tables) and any(name in t.text for t in tables):
            for t in tables:
                if name in t.text:
                    numeric_column(t, name, "--data.csv")
    for other in tables[1:]:
        kinds = [(n in t.numeric, n in t.times) for t in (first, other) for n in t.names]
        if other.names != first.names or kinds[: len(first.names)] != kinds[len(first.names) :]:
            raise UserError(f"{other.path} has the columns {', '.join(other.names)} but {first.path} has "
                            f"{', '.join(first.names)} (or their kinds differ); every file of {spec} needs the "
                            "same header and the same kind of values per column")
    table = Table(Path(spec), first.names, sum(t.rows for t in tables))
    table.integer = set.intersection(*(t.integer for t in tables))
    table.numeric = {n: np.concatenate([t.numeric[n] for t in tables]) for n in first.numeric}
    table.times = {n: np.concatenate([t.times[n] for t in tables]) for n in first.times}
    table.text = {n: pa.chunked_array([c for t in tables for c in t.text[n].chunks], first.text[n].type)
                  for n in first.text}
    starts = np.cumsum([0] + [t.rows for t in tables[:-1]])
    table.parts = [(t.path, int(s)) for t, s in zip(tables, starts)]
    return table


def _check_separator(path: Path, header: list[str]) -> None:
    """A header read as one column that holds another separator: a ;- or tab-separated file."""
    used = next((sep for sep in (";", "\t", "|") if sep in header[0]), None) if len(header) == 1 else None
    if used is not None:
        shown = "tab" if used == "\t" else repr(used)
        raise UserError(f"{path} line 1 ({header[0].strip()!r}) is one column: the file is separated "
                        f"by {shown}, not commas; save it as comma-separated CSV (decimal points, "
                        "not commas)")


def _check_header(path: Path, names: list[str], rows: int) -> None:
    """A header row that is really data, empty or repeated names, formula-like names."""
    if rows == 0:
        raise UserError(f"data file {path} has a header but no data rows; add one row per time step")
    if path.suffix.lower() not in (".parquet", ".pq"):
        _check_separator(path, names)
    if all(_NUMBER.match(name) or _DATE.match(name) for name in names):
        raise UserError(f"{path} line 1 ({', '.join(names[:4])}) is numbers or dates, not column names: "
                        "the file has no header row; add one (e.g. date,value) as its first line")
    for i, name in enumerate(names):
        if not name:
            raise UserError(f"{path} line 1: column {i + 1} has no name; give every column a name")
        if names.index(name) != i:
            raise UserError(f"{path} line 1: the column name {name!r} appears twice; rename one")


def non_numbers(table: Table, name: str) -> tuple[int, str] | None:
    """(row, cell) of the first cell of a text column that is not a number, when most cells are."""
    import pyarrow.compute as pc

    column = table.text[name]
    if not any(c is not None and _NUMBER.match(c) for c in column.slice(0, 1000).to_pylist()):
        return None  # a label or date column: nothing numeric about it
    ok = pc.match_substring_regex(column, _NUMBER.pattern).fill_null(True)
    bad = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
    return (int(bad[0]), column[int(bad[0])].as_py()) if len(bad) else None


def pick(table: Table, wanted: list[str], option: str) -> list[str]:
    """The named columns, checked; an unknown name gets the closest one and the list."""
    for name in wanted:
        if name not in table.names:
            close = difflib.get_close_matches(name, table.names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"{table.path} has no column {name!r} ({option}); {hint}"
                            f"its columns are: {', '.join(table.names)}")
    return list(wanted)


def numeric_column(table: Table, name: str, option: str) -> np.ndarray:
    """A column as float64 (R,) with NaN for missing cells; a text cell or inf names its line."""
    if name in table.numeric:
        values = table.numeric[name]
    elif name in table.times:
        raise UserError(f"{table.path} column {name!r} holds dates or times ({option}); it is the time "
                        "index, not a value: leave it out, or name it with --data.time_column")
    else:
        bad = non_numbers(table, name)
        if bad is None:
            first = first_text(table, name)
            raise UserError(f"{table.path} column {name!r} ({option}) holds text such as {first!r}, "
                            "not numbers; choose numeric columns")
        row, cell = bad
        raise UserError(f"{locate(table, row)}, column {name!r}: {cell!r} is "
                        "not a number; write it as a plain number (1000, 16, 2.5), leave the cell empty "
                        "for a gap, or leave the column out with --data.column")
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise UserError(f"{locate(table, row)}, column {name!r}: {values[row]} is "
                        "not a finite number (or too large for float64); fix the value or leave the cell empty")
    return values


def table_from_columns(columns: dict[str, np.ndarray], label: str) -> Table:
    """A Table from named NumPy columns held in memory (a DataFrame's or an array's)."""
    import pyarrow as pa

    arrays = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind == "O":  # text, or numbers with None for a gap
            arrays[name] = pa.array(values.tolist(), from_pandas=True)
        else:
            arrays[name] = pa.array(values, from_pandas=True)  # NaN -> null, datetime64 -> timestamp
    arrow = pa.table(arrays)
    if arrow.num_rows == 0:
        raise UserError(f"{label} has no rows; give one row per time step")
    return from_arrow(arrow, Path(label))


def first_text(table: Table, name: str) -> str:
    """The first non-empty cell of a text column (for messages)."""
    cells = [c for c in table.text[name].drop_null().slice(0, 100).to_pylist() if c]
    return cells[0] if cells else ""


def take_rows(table: Table, rows: np.ndarray) -> Table:
    """The rows `rows` (ascending) of a table as a table of their own; errors still name the
    file's lines."""
    import pyarrow as pa

    part = Table(table.path, table.names, len(rows), integer=set(table.integer), parts=table.parts,
                 origin=rows if table.origin is None else table.origin[rows])
    part.numeric = {n: v[rows] for n, v in table.numeric.items()}
    part.times = {n: v[rows] for n, v in table.times.items()}
    part.text = {n: v.take(pa.array(rows)) for n, v in table.text.items()}
    return part
