"""The user's CSV: read with pyarrow, every bad input gets one line naming the file, the line or
column and the fix; windows are views; the split is chronological in three parts."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnnscope.data import build_dataset
from rnnscope.data.csv import prediction_windows
from rnnscope.errors import UserError
from rnnscope.train.config import load_config


def write(tmp_path, text: str, name: str = "series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def series(tmp_path, rows: int = 50):
    lines = ["date,temp,load"] + [f"d{i},{i * 0.5},{100 + (i % 7)}" for i in range(rows)]
    return write(tmp_path, "\n".join(lines) + "\n")


def dataset(path, *overrides: str, normalization=None):
    cfg = load_config(None, ["--data.csv", str(path), "--data.seq_len", "5", *overrides])
    return build_dataset(cfg.data, 0, normalization=normalization)


def test_numeric_columns_by_default_and_three_chronological_splits(tmp_path):
    ds = dataset(series(tmp_path))  # 50 rows: train 30, validation 10, test 10
    assert ds.input_names == ["temp", "load"] and ds.target_names == ["temp", "load"]
    # train: origins 4..28 (the target row o + 1 ≤ 29); validation and test: every origin whose
    # target lies in them, the inputs reaching back into the rows before
    assert ds.x_train.shape == (25, 5, 2) and ds.x_val.shape == (10, 5, 2) and ds.x_test.shape == (10, 5, 2)
    spec = ds.normalization["spec"]
    assert spec["x_mean"][0] == pytest.approx(np.arange(30).mean() * 0.5)  # fitted on the 30 train rows
    temp = ds.x_test[0, :, 0].numpy() * spec["x_std"][0] + spec["x_mean"][0]
    np.testing.assert_allclose(temp, [17.5, 18.0, 18.5, 19.0, 19.5], rtol=1e-5)  # rows 35..39, origin 39
    target = ds.y_test[0, -1, 0].item() * spec["t_std"][0] + spec["t_mean"][0]
    assert target == pytest.approx(20.0)  # row 40: the first test row


def test_windows_are_views_not_copies(tmp_path):
    ds = dataset(series(tmp_path, rows=200))
    base = ds.series.x.__array_interface__["data"][0]
    for x in (ds.x_train, ds.x_val, ds.x_test):
        assert x.untyped_storage().data_ptr() == base  # one array under every window
    assert not ds.x_train.is_contiguous()


def test_target_horizon_and_stride(tmp_path):
    ds = dataset(series(tmp_path), "--data.column", "temp", "load", "--data.target", "temp",
                 "--data.horizon", "2", "--data.stride", "3", "--data.val_fraction", "0",
                 "--data.test_fraction", "0")
    # origins 4..47 every 3 rows -> 15 windows
    assert ds.x_train.shape == (15, 5, 2) and ds.y_train.shape == (15, 5, 1)
    spec = ds.normalization["spec"]
    x = ds.x_train[:, 2:, 0].numpy() * spec["x_std"][0] + spec["x_mean"][0]
    y = ds.y_train[:, :3, 0].numpy() * spec["t_std"][0] + spec["t_mean"][0]
    np.testing.assert_allclose(y, x, atol=1e-4)  # y_t = temp_{t+2}
    last = dataset(series(tmp_path), "--data.target", "temp", "--data.predict", "last_step",
                   "--data.val_fraction", "0", "--data.test_fraction", "0")
    assert last.y_train.shape == (45, 1)


def test_a_saved_spec_is_used_instead_of_a_new_fit(tmp_path):
    first = dataset(series(tmp_path))
    spec = dict(first.normalization["spec"], x_mean=[0.0, 0.0], x_std=[1.0, 1.0])
    ds = dataset(series(tmp_path), normalization={"spec": spec})
    assert float(ds.x_train[0, 1, 0]) == pytest.approx(0.5)  # raw values: nothing subtracted
    assert ds.x_test.shape == first.x_test.shape  # the run's own file keeps its three splits


@pytest.mark.parametrize("text, message", [
    (None, r"nope\.csv does not exist; check the --data.csv path"),
    ("", r"is empty; it needs a header row"),
    ("a,b\n", r"has a header but no data rows"),
    ("a,b\n1,2\n3\n", r"line 3: 1 cells, but the header has 2"),
    ("a,b\n1,2\n3,x\n", r"line 3, column 'b': 'x' is not a number; write it as a plain number"),
    ("a,b\n1,2\n3,\n", r"line 3, column 'b': the cell is empty or marks a missing value \(1 such cells in the "
                       r"file\); choose --data.missing drop, ffill, interpolate or mask"),
    ("a,b\n1,2\n3,nan\n4,NA\n", r"line 3, column 'b': the cell is empty .* \(2 such cells"),
    ("a,b\n1,2\n-inf,2\n", r"line 3, column 'a': -inf is not a finite number"),
    ("a,b\n1,2\n1e400,2\n", r"line 3, column 'a': inf is not a finite number \(or too large for float64\)"),
    ("a,b\nx,y\n", r"has no numeric column \(columns: a, b\); name the columns with --data.column"),
    ("1,2\n3,4\n", r"line 1 \(1, 2\) is numbers or dates, not column names: the file has no header row"),
    ("2020-01-01,5.5\n2020-01-02,6\n", r"line 1 \(2020-01-01, 5.5\) is numbers or dates"),
    ("a,a\n1,2\n", r"line 1: the column name 'a' appears twice"),
    ("a,b\n1 000,2\n3,4\n", r"line 2, column 'a': '1 000' is not a number"),
    ("a,b\nn/a,2\n3,4\n", r"line 2, column 'a': the cell is empty or marks a missing value"),
    ("date;sales\n2020-01-01;5,5\n", r"line 1 \('date;sales'\) is one column: the file is separated by ';', "
                                     r"not commas; save it as comma-separated CSV"),
    ("a\tb\n1\t2\n", r"is separated by tab, not commas"),
])
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "nope.csv" if text is None else write(tmp_path, text)
    with pytest.raises(UserError, match=message):
        dataset(path, "--data.val_fraction", "0", "--data.test_fraction", "0", "--data.seq_len", "1")


def test_blank_lines_do_not_shift_the_line_numbers(tmp_path):
    path = write(tmp_path, "a,b\n\n1,2\n\n3,x\n")
    with pytest.raises(UserError, match=r"line 5, column 'b'"):
        dataset(path)


def test_a_column_that_begins_with_a_gap_marker_is_kept(tmp_path):
    # 'n/a' in the first cell used to drop the column from the default columns silently
    path = write(tmp_path, "a,b\n" + "".join(f"{'n/a' if i == 0 else i},{i % 7}\n" for i in range(40)))
    ds = dataset(path, "--data.missing", "ffill")
    assert ds.input_names == ["a", "b"]


def test_binary_files_are_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(UserError, match=r"is not UTF-8 text"):
        dataset(path, "--data.val_fraction", "0")


def test_a_directory_or_a_fifo_is_named_for_what_it_is(tmp_path):
    with pytest.raises(UserError, match=r"is a directory; give a CSV or Parquet file"):
        dataset(tmp_path)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match=r"is a FIFO \(named pipe\); save the data to a regular file"):
        dataset(fifo)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    with pytest.raises(UserError, match=r"cannot be opened \(Too many levels of symbolic links\)"):
        dataset(loop)


def test_unknown_column_names_the_closest_and_lists_the_columns(tmp_path):
    with pytest.raises(UserError, match=r"no column 'tmp' \(--data.column\); did you mean 'temp'\? "
                                        r"its columns are: date, temp, load"):
        dataset(series(tmp_path), "--data.column", "tmp")
    with pytest.raises(UserError, match=r"no column 'Load' \(--data.target\)"):
        dataset(series(tmp_path), "--data.target", "Load")


def test_fewer_rows_than_one_window(tmp_path):
    with pytest.raises(UserError, match=r"the train part \(4 of 8 rows\) holds no complete forecast"):
        dataset(series(tmp_path, rows=8), "--data.val_fraction", "0.5", "--data.test_fraction", "0")
    with pytest.raises(UserError, match=r"seq_len 5 rows and its target 1 later, 6 rows in all"):
        dataset(series(tmp_path, rows=5), "--data.val_fraction", "0", "--data.test_fraction", "0")
    with pytest.raises(UserError, match=r"must be below 1"):
        dataset(series(tmp_path), "--data.val_fraction", "0.5", "--data.test_fraction", "0.5")


def test_parquet_files_read_like_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"temp": np.arange(50) * 0.5, "load": 100.0 + np.arange(50) % 7}),
                   tmp_path / "s.parquet")
    ds = dataset(tmp_path / "s.parquet")
    assert ds.input_names == ["temp", "load"] and ds.x_train.shape == (25, 5, 2)


def test_overflowing_values_name_the_column_and_the_cause(tmp_path):
    # 1e200 squared overflows float64: the statistics are computed on scaled values and stay finite
    big = write(tmp_path, "a\n" + "".join(f"{(i % 5) * 1e200}\n" for i in range(50)))
    ds = dataset(big)
    assert np.isfinite(ds.x_train.numpy()).all() and ds.normalization["spec"]["x_std"][0] > 1e199
    huge = write(tmp_path, "a\n" + "".join(f"{(-1) ** i * 1.7e308}\n" for i in range(50)), "huge.csv")
    with pytest.raises(UserError, match=r"column 'a'"):
        dataset(huge, "--data.difference", "1")


def test_prediction_windows_cover_every_start_row():
    x = np.arange(12, dtype=float).reshape(6, 2)
    w = prediction_windows(x, 4)
    assert w.shape == (3, 4, 2) and float(w[2, 0, 0]) == 4.0
    with pytest.raises(UserError, match="fewer than one window"):
        prediction_windows(x, 7)


def test_later_blocks_may_hold_decimals_or_text(tmp_path, monkeypatch):
    from rnnscope.data import table

    monkeypatch.setattr(table, "BLOCK_BYTES", 64)  # many blocks: the first shows whole numbers only
    rows = [f"{i},{i % 7}" for i in range(40)] + ["40,2.5"] + [f"{i},{i % 7}" for i in range(41, 60)]
    ds = dataset(write(tmp_path, "t,v\n" + "\n".join(rows) + "\n"))
    assert ds.input_names == ["v"]  # t: the time index; v read as float64 throughout
    assert 2.5 in set(np.round(ds.series.x[:, 0] * ds.normalization["std"][0] + ds.normalization["mean"][0], 4))
    rows[50] = "50,oops"
    with pytest.raises(UserError, match=r"line 52, column 'v': 'oops' is not a number"):
        dataset(write(tmp_path, "t,v\n" + "\n".join(rows) + "\n", "bad.csv"))
