"""The user's CSV: every bad input gets one line naming the file, the line or column and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from rnnscope.data import build_dataset
from rnnscope.data.csv import denormalize, prediction_windows
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


def test_numeric_columns_by_default_and_chronological_split(tmp_path):
    ds = dataset(series(tmp_path), "--data.val_fraction", "0.2")
    assert ds.input_names == ["temp", "load"] and ds.target_names == ["temp", "load"]
    # 40 train rows -> 40 - (5 + 1) + 1 = 35 windows; 10 validation rows -> 5
    assert ds.x_train.shape == (35, 5, 2) and ds.x_val.shape == (5, 5, 2)
    # the normalization is fitted on the 40 training rows only
    assert ds.normalization["mean"][0] == pytest.approx(np.arange(40).mean() * 0.5)
    temp = denormalize(["temp"], ds.x_val[0, :, :1].numpy(), ds.normalization)[:, 0]
    np.testing.assert_allclose(temp, [20.0, 20.5, 21.0, 21.5, 22.0], rtol=1e-5)  # rows 40..44


def test_target_horizon_and_stride(tmp_path):
    ds = dataset(series(tmp_path), "--data.column", "temp", "load", "--data.target", "temp",
                 "--data.horizon", "2", "--data.stride", "3", "--data.val_fraction", "0")
    assert ds.x_train.shape == (15, 5, 2) and ds.y_train.shape == (15, 5, 1)
    torch_x = ds.x_train[:, 2:, 0]  # temp at steps 2..4 of each window
    assert np.allclose(ds.y_train[:, :3, 0].numpy(), torch_x.numpy(), atol=1e-6)  # y_t = temp_{t+2}
    last = dataset(series(tmp_path), "--data.target", "temp", "--data.predict", "last_step",
                   "--data.val_fraction", "0")
    assert last.y_train.shape == (45, 1)


def test_saved_normalization_is_used_instead_of_a_new_fit(tmp_path):
    saved = {"columns": ["temp", "load"], "mean": [0.0, 0.0], "std": [1.0, 1.0]}
    ds = dataset(series(tmp_path), "--data.val_fraction", "0", normalization=saved)
    assert float(ds.x_train[1, 0, 0]) == pytest.approx(0.5)  # raw values: nothing subtracted


@pytest.mark.parametrize("text, message", [
    (None, r"nope\.csv does not exist; check the --data.csv path"),
    ("", r"is empty; it needs a header row"),
    ("a,b\n", r"has a header but no data rows"),
    ("a,b\n1,2\n3\n", r"line 3: 1 cells, but the header has 2"),
    ("a,b\n1,2\n3,x\n", r"line 3, column 'b': 'x' is not a number; fix the cell or leave the column out"),
    ("a,b\n1,2\n3,\n", r"line 3, column 'b': is empty"),
    ("a,b\n1,2\n3,nan\n", r"line 3, column 'b': nan is not a finite number; fill in the value or drop the row"),
    ("a,b\n1,2\n-inf,2\n", r"line 3, column 'a': -inf is not a finite number"),
    ("a,b\nx,y\n", r"no numeric column in its first data row; name the columns with --data.column"),
])
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "nope.csv" if text is None else write(tmp_path, text)
    with pytest.raises(UserError, match=message):
        dataset(path, "--data.val_fraction", "0")


def test_binary_files_are_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,\xff\xfe\n")
    with pytest.raises(UserError, match=r"is not UTF-8 text \(byte 6\); save it as UTF-8 CSV"):
        dataset(path, "--data.val_fraction", "0")


def test_unknown_column_names_the_closest_and_lists_the_columns(tmp_path):
    with pytest.raises(UserError, match=r"no column 'tmp' \(--data.column\); did you mean 'temp'\? "
                                        r"its columns are: date, temp, load"):
        dataset(series(tmp_path), "--data.column", "tmp")
    with pytest.raises(UserError, match=r"no column 'Load' \(--data.target\)"):
        dataset(series(tmp_path), "--data.target", "Load")


def test_fewer_rows_than_one_window(tmp_path):
    with pytest.raises(UserError, match=r"has 8 data rows; its training part \(4 rows\) is shorter than "
                                        r"one window"):
        dataset(series(tmp_path, rows=8), "--data.val_fraction", "0.5")
    with pytest.raises(UserError, match=r"shorter than one window \(seq_len 5 \+ horizon 1 = 6 rows\); "
                                        r"lower --data.seq_len"):
        dataset(series(tmp_path, rows=5), "--data.val_fraction", "0")
    with pytest.raises(UserError, match=r"the validation part \(3 of 30 rows"):
        dataset(series(tmp_path, rows=30), "--data.val_fraction", "0.1")


def test_prediction_windows_cover_every_start_row():
    x = np.arange(12, dtype=float).reshape(6, 2)
    w = prediction_windows(x, 4)
    assert w.shape == (3, 4, 2) and float(w[2, 0, 0]) == 4.0
    with pytest.raises(UserError, match="fewer than one window"):
        prediction_windows(x, 7)
