"""The time index, gaps (--data.missing), transforms and the leakage rules of data/series.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rnnscope.data import build_dataset, gaps
from rnnscope.data.series import prepare
from rnnscope.errors import UserError
from rnnscope.train.config import load_config


def write(tmp_path, lines: list[str], name: str = "s.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def cfg_for(path, *overrides: str):
    return load_config(None, ["--data.csv", str(path), "--data.seq_len", "3", *overrides]).data


def daily(tmp_path, n: int = 40, skip=(), empty=()):
    lines = ["date,y"]
    for i in range(n):
        if i in skip:
            continue
        day = np.datetime64("2021-03-01") + i
        lines.append(f"{day},{'' if i in empty else float(i)}")
    return write(tmp_path, lines)


def test_a_date_column_is_the_time_index_never_an_input(tmp_path):
    spec, p = prepare(cfg_for(daily(tmp_path)))
    assert spec["inputs"] == ["y"] and spec["time"] == {"name": "date", "kind": "datetime", "unit": "s",
                                                         "start": 1614556800, "step": 86400}
    assert spec["season"] == 7  # daily data: a weekly season


def test_a_year_column_is_detected_and_an_explicit_column_wins(tmp_path):
    path = write(tmp_path, ["YEAR,value"] + [f"{1950 + i},{(i * 7) % 11}" for i in range(30)])
    spec, _ = prepare(cfg_for(path))
    assert spec["time"]["name"] == "YEAR" and spec["inputs"] == ["value"] and spec["targets"] == ["value"]
    spec, _ = prepare(cfg_for(path, "--data.column", "YEAR", "value"))
    assert spec["time"]["kind"] == "row" and spec["inputs"] == ["YEAR", "value"]
    spec, _ = prepare(cfg_for(path, "--data.time_column", "none"))
    assert spec["inputs"] == ["YEAR", "value"]


def test_monthly_dates_have_a_step_of_one_month(tmp_path):
    months = [f"{2000 + m // 12}-{m % 12 + 1:02d}-01" for m in range(36) if m != 7]
    path = write(tmp_path, ["month,v"] + [f"{d},{i % 5}" for i, d in enumerate(months)])
    spec, p = prepare(cfg_for(path, "--data.missing", "interpolate"))
    assert spec["time"]["unit"] == "month" and spec["time"]["step"] == 1 and spec["season"] == 12
    assert p.x.shape[0] == 36  # the skipped month is a gap row


@pytest.mark.parametrize("rows, message", [
    (["t,v", "2020-01-02,1", "2020-01-01,2", "2020-01-03,3"], r"line 3, column 't': the row goes back in time; sort"),
    (["t,v", "2020-01-01,1", "2020-01-01,2", "2020-01-03,3"], r"line 3, column 't': the row repeats the time"),
    (["t,v", "2020-01-01,1", "2020-01-03,2", "2020-01-06,3"],
     r"line 4, column 't': this row comes 3 days after the one before, not a multiple of the step \(2 days\)"),
    (["t,v", "31/01/2020,1", "01/02/2020,2"], r"cannot read '31/01/2020' as a date; write dates as 2020-01-31"),
])
def test_bad_time_columns(tmp_path, rows, message):
    with pytest.raises(UserError, match=message):
        prepare(cfg_for(write(tmp_path, rows), "--data.time_column", "t"))


@pytest.mark.parametrize("asked", [(), ("--data.time_column", "date")])
def test_a_date_column_with_a_cell_that_is_not_a_date_names_its_line(tmp_path, asked):
    """Its first rows are dates: one stray cell further down is an error naming it, not a silent
    fall-back to row numbers (which would train on the file without its time index)."""
    days = [f"{np.datetime64('2021-03-01') + i}" for i in range(80)]
    days[60] = "unknown"
    path = write(tmp_path, ["date,y"] + [f"{d},{i % 7}" for i, d in enumerate(days)])
    hint = r" \(it was taken for the time column" if not asked else ""
    with pytest.raises(UserError, match=rf"s\.csv line 62, column 'date': 'unknown' is not a date like the rows "
                                        rf"before it{hint}"):
        prepare(cfg_for(path, *asked))
    spec, _ = prepare(cfg_for(path, "--data.time_column", "none"))  # the way out the message names
    assert spec["time"]["kind"] == "row" and spec["inputs"] == ["y"]


def test_missing_cells_and_skipped_times_are_refused_by_default_with_the_options(tmp_path):
    with pytest.raises(UserError, match=r"line 6, column 'y': the cell is empty .* \(2 such cells in the file\); "
                                        r"choose --data.missing drop, ffill, interpolate or mask"):
        prepare(cfg_for(daily(tmp_path, empty=(4, 9))))
    with pytest.raises(UserError, match=r"s\.csv line 5: the time column 'date' skips 2 time steps in all "
                                        r"\(the first just before this line\)"):
        prepare(cfg_for(daily(tmp_path, skip=(3, 4))))


def test_ffill_and_interpolate_fill_inputs_on_the_time_grid(tmp_path):
    path = daily(tmp_path, skip=(5,), empty=(10, 11))
    _, p = prepare(cfg_for(path, "--data.missing", "interpolate", "--data.scale", "none"))
    assert p.x.shape == (40, 1)
    np.testing.assert_allclose(p.x[[5, 10, 11], 0], [5.0, 10.0, 11.0])  # a straight line, refilled
    assert np.isnan(p.y[[5, 10, 11], 0]).all()  # the metrics see the gaps as gaps
    _, p = prepare(cfg_for(path, "--data.missing", "ffill", "--data.scale", "none"))
    np.testing.assert_allclose(p.x[[5, 10, 11], 0], [4.0, 9.0, 9.0])


def test_interpolation_never_reaches_across_a_split_boundary():
    values = np.array([[0.0], [1.0], [np.nan], [np.nan], [4.0], [5.0]])
    # the gap is at the end of train (rows 0..3): row 4 belongs to validation, so it is not used
    filled = gaps.fill(values, "interpolate", [0, 4, 6, 6])
    np.testing.assert_allclose(filled[:, 0], [0, 1, 1, 1, 4, 5])
    filled = gaps.fill(values, "interpolate", [0, 6, 6, 6])  # one part: a straight line
    np.testing.assert_allclose(filled[:, 0], [0, 1, 2, 3, 4, 5])


def test_mask_adds_a_missing_channel_and_leaves_missing_targets_out(tmp_path):
    path = daily(tmp_path, empty=(10,))
    ds = build_dataset(cfg_for(path, "--data.missing", "mask", "--data.predict", "last_step"), 0)
    assert ds.input_names == ["y", "y_missing"]
    x = ds.series.x
    assert x[10, 1] == 1.0 and x[9, 1] == 0.0 and np.isfinite(x).all()
    assert np.isnan(ds.series.t[9, 0])  # the target of origin 9 is row 10: missing, out of the loss


def test_drop_warns_what_it_breaks(tmp_path, caplog):
    path = daily(tmp_path, empty=(10,))
    with caplog.at_level(logging.WARNING):
        _, p = prepare(cfg_for(path, "--data.missing", "drop"))
    assert p.x.shape[0] == 39
    assert "removed 1 rows inside the series" in caplog.text and "2021-03-10 is followed by 2021-03-12" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        prepare(cfg_for(daily(tmp_path, empty=(0, 1)), "--data.missing", "drop"))
    assert caplog.text == ""  # leading rows: the spacing of the rest is intact


def test_normalization_and_baseline_statistics_come_from_the_train_rows_only(tmp_path):
    path = daily(tmp_path, n=50)  # y = 0..49; train rows 0..29
    spec, _ = prepare(cfg_for(path))
    assert spec["x_mean"] == [pytest.approx(14.5)] and spec["y_train_mean"] == [pytest.approx(14.5)]
    assert spec["mase_scale"] == [pytest.approx(7.0)]  # |y_t − y_{t−7}| over the train rows, season 7


def test_differencing_turns_a_trend_into_a_level_and_back(tmp_path):
    path = daily(tmp_path)
    spec, p = prepare(cfg_for(path, "--data.difference", "1", "--data.horizon", "3", "--data.steps", "all",
                              "--data.scale", "none"))
    assert p.t.shape == (40, 3)
    np.testing.assert_allclose(p.t[5], [1.0, 2.0, 3.0])  # y[s+k] − y[s] on y = s
    from rnnscope.data.series import to_data_units

    back = to_data_units(spec, p.t[[5]].astype(float), p.base[[5]])
    np.testing.assert_allclose(back[0, :, 0], [6.0, 7.0, 8.0])


def test_only_a_first_column_with_other_values_beside_it_is_taken_as_years(tmp_path):
    lone = write(tmp_path, ["count"] + [str(i) for i in range(30)], "lone.csv")  # a series, not an index
    spec, _ = prepare(cfg_for(lone))
    assert spec["time"]["kind"] == "row" and spec["inputs"] == ["count"]
    later = write(tmp_path, ["v,n"] + [f"{(i * 7) % 11},{i}" for i in range(30)], "later.csv")
    spec, _ = prepare(cfg_for(later))
    assert spec["time"]["kind"] == "row" and spec["inputs"] == ["v", "n"]


def test_a_column_with_no_value_at_all_is_a_column_of_gaps(tmp_path):
    path = write(tmp_path, ["date,v,w"] + [f"{np.datetime64('2021-01-01') + i},,{i % 3}" for i in range(30)])
    with pytest.raises(UserError, match=r"line 2, column 'v': the cell is empty .* \(30 such cells"):
        prepare(cfg_for(path))
    with pytest.raises(UserError, match=r"column 'v' has no value in the train rows, so its target statistics"):
        prepare(cfg_for(path, "--data.missing", "mask"))


def test_season_given_or_from_the_step_and_an_explicit_integer_time_column(tmp_path):
    path = write(tmp_path, ["hour,load"] + [f"{i},{i % 24}" for i in range(0, 200, 2)])  # every 2 hours
    spec, p = prepare(cfg_for(path, "--data.time_column", "hour", "--data.season", "12"))
    assert spec["time"] == {"name": "hour", "kind": "integer", "unit": "1", "start": 0, "step": 2}
    assert spec["season"] == 12 and spec["inputs"] == ["load"]
    assert prepare(cfg_for(path))[0]["season"] == 0  # an integer index has no obvious season


def test_several_files_by_a_glob_are_one_series_in_name_order(tmp_path):
    days = [f"{np.datetime64('2021-01-01') + i},{i % 5}" for i in range(60)]
    write(tmp_path, ["date,v"] + days[:30], "part1.csv")
    write(tmp_path, ["date,v"] + days[30:], "part2.csv")
    spec, p = prepare(cfg_for(str(tmp_path / "part*.csv")))
    assert p.x.shape == (60, 1) and spec["time"]["name"] == "date"
    write(tmp_path, ["date,v"] + days[30:35] + ["2021-03-09,x"], "part3.csv")
    with pytest.raises(UserError, match=r"part3\.csv line 7, column 'v': 'x' is not a number"):
        prepare(cfg_for(str(tmp_path / "part*.csv")))
    write(tmp_path, ["date,v"] + days[:5], "part3.csv")  # overlaps part1: time goes back
    with pytest.raises(UserError, match=r"part3\.csv line 2, column 'date': the row goes back in time"):
        prepare(cfg_for(str(tmp_path / "part*.csv")))
    write(tmp_path, ["date,w"] + days[:5], "part3.csv")
    with pytest.raises(UserError, match=r"part3\.csv has the columns date, w but .*part1\.csv has date, v"):
        prepare(cfg_for(str(tmp_path / "part*.csv")))
    with pytest.raises(UserError, match=r"no file matches this pattern"):
        prepare(cfg_for(str(tmp_path / "nothing*.csv")))
