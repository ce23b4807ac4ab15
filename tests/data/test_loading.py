"""Loading a file fast without changing what is loaded: read once, in parallel blocks, columns
copied from pyarrow's buffers into one column-major block, the model's columns taken as a view of
it when they are neighbours, and the checks done in one pass each (the benchmark is
benchmarks/data_loading.py; these tests hold the results, not the times)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnscope.data import build_dataset, table
from rnnscope.errors import UserError
from rnnscope.train.config import load_config


def dataset(path, *overrides: str):
    cfg = load_config(None, ["--data.csv", str(path), "--data.seq_len", "4", *overrides])
    return build_dataset(cfg.data, 0)


def raw_inputs(ds) -> np.ndarray:
    """The inputs in the file's units: (R, I)."""
    n = ds.normalization
    return ds.series.x[:, : len(n["columns"])] * np.array(n["std"]) + np.array(n["mean"])


def test_a_one_series_file_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "s.csv"
    path.write_text("t,v\n" + "".join(f"{i},{i % 5}\n" for i in range(40)))
    reads = []
    real = table._read_csv
    monkeypatch.setattr(table, "_read_csv", lambda p: reads.append(p) or real(p))
    dataset(path)
    assert reads == [path]


def test_cells_across_many_blocks_are_the_files_cells(tmp_path, monkeypatch):
    # blocks of 64 bytes: many chunks per column, gaps at every offset inside a chunk, a column
    # empty in the first blocks and a whole-number column that holds a decimal late in the file
    monkeypatch.setattr(table, "BLOCK_BYTES", 64)
    rng = np.random.default_rng(1)
    rows, lines = 300, ["t,a,late,whole,empty"]
    expect = {name: np.full(rows, np.nan) for name in ("a", "late", "whole", "empty")}
    for i in range(rows):
        a = "" if rng.random() < 0.2 else ("NA" if rng.random() < 0.1 else f"{rng.normal():.4f}")
        late = f"{i * 0.25}" if i > 200 else ""
        whole = "2.5" if i == 250 else str(i % 9)
        lines.append(f"{i},{a},{late},{whole},")
        expect["a"][i] = float(a) if a not in ("", "NA") else np.nan
        expect["late"][i] = float(late) if late else np.nan
        expect["whole"][i] = float(whole)
    path = tmp_path / "blocks.csv"
    path.write_text("\n".join(lines) + "\n")
    t = table.read_table(path)
    for name, values in expect.items():
        np.testing.assert_array_equal(t.numeric[name], values, err_msg=name)
    np.testing.assert_array_equal(t.numeric["t"], np.arange(rows))
    assert t.integer == {"t"}  # every cell of the file is seen: "whole" has a decimal at row 250
    assert t.block.flags.f_contiguous and t.block.shape == (rows, 5)


def test_neighbouring_columns_are_a_view_others_a_copy_with_the_same_values(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("t,a,b,c\n" + "".join(f"{i},{i % 7},{10 + i % 3},{i * 0.5}\n" for i in range(60)))
    t = table.read_table(path)
    assert np.shares_memory(t.side_by_side(["a", "b"]), t.block)
    assert t.side_by_side(["b", "a"]) is None and t.side_by_side(["a", "c"]) is None
    assert t.side_by_side(["a", "nope"]) is None
    together = raw_inputs(dataset(path, "--data.column", "a", "b", "c"))
    apart = raw_inputs(dataset(path, "--data.column", "c", "a"))
    np.testing.assert_allclose(apart, together[:, [2, 0]], atol=1e-5)
    np.testing.assert_allclose(together[:, 1], 10 + np.arange(60) % 3, atol=1e-5)


def test_a_regular_and_a_gapped_time_index_give_their_grid(tmp_path):
    days = [f"2024-01-{d:02d}" for d in range(1, 29)]
    path = tmp_path / "daily.csv"
    path.write_text("date,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(days)))
    ds = dataset(path)
    np.testing.assert_array_equal(ds.series.positions, np.arange(28))
    gapped = tmp_path / "gapped.csv"
    gapped.write_text("date,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(days) if i != 9))
    ds = dataset(gapped, "--data.missing", "interpolate")
    assert ds.series.x.shape[0] == 28  # the skipped day is a row again, filled
    np.testing.assert_allclose(raw_inputs(ds)[:, 0], np.arange(28), atol=1e-4)


@pytest.mark.parametrize("overrides, message", [
    ((), r"column 'b': normalized values overflow float32"),
    (("--data.column", "a", "--data.target", "b"), r"column 'b': the target values overflow float32"),
])
def test_an_overflow_names_its_own_column_when_it_is_not_the_first(tmp_path, overrides, message):
    # b is small in the train rows and 1e300 in the test rows: scaled by the train statistics it
    # overflows float32; a beside it is fine
    rows = [f"{i % 5},{1e300 if i >= 45 else i % 3}" for i in range(50)]
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError, match=message):
        dataset(path, *overrides)


def test_an_empty_time_stamp_names_its_line(tmp_path):
    path = tmp_path / "dates.csv"
    days = [f"2024-01-{d:02d}" if d != 12 else "" for d in range(1, 29)]
    path.write_text("date,v\n" + "".join(f"{d},{i}\n" for i, d in enumerate(days)))
    with pytest.raises(UserError, match=r"line 13, column 'date': the time stamp is empty"):
        table.read_table(path)
