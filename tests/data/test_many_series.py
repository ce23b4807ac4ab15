"""Several series in one run (data/many.py): a long-format file with --data.series_column, or a
glob with --data.files series. Windows never cross series, every series has its own splits,
scaling per series or global, baselines and metrics per series and over all of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnscope.data import build_dataset
from rnnscope.data.series import prepare, split_bounds
from rnnscope.errors import UserError
from rnnscope.train.config import load_config
from rnnscope.train.forecasting import score_series

# (id, days, level, slope): three series of different lengths, each with a trend and a weekly season
SERIES = (("north", 70, 50.0, 0.3), ("south", 50, 200.0, -0.5), ("east", 90, 10.0, 0.1))


def long_file(path, skip_every: int = 23, empty_every: int = 19):
    """One row per (day, store), sorted by day and so interleaved; some days skipped, some cells empty."""
    rng = np.random.default_rng(0)
    rows = []
    for store, days, level, slope in SERIES:
        for i in range(days):
            if i % skip_every == 5:
                continue
            value = level + slope * i + 5 * math.sin(2 * math.pi * i / 7) + rng.normal(0, 0.5)
            cell = "" if i % empty_every == 3 or (store == "south" and i == 0) else f"{value:.4f}"
            rows.append((i, store, f"{np.datetime64('2023-01-01') + i},{store},{cell}"))
    rows.sort(key=lambda r: r[0])
    path.write_text("date,store,sales\n" + "".join(r[2] + "\n" for r in rows))
    return path


def cfg_for(path, *overrides: str):
    return load_config(None, ["--data.csv", str(path), "--data.seq_len", "5", "--data.series_column", "store",
                              "--data.missing", "interpolate", *overrides]).data


def test_each_series_has_its_own_time_index_split_and_no_window_crosses_a_series(tmp_path):
    cfg = cfg_for(long_file(tmp_path / "long.csv"), "--data.predict", "last_step")
    ds = build_dataset(cfg, seed=0)
    parts = ds.series
    assert [p.series_id for p in parts] == ["north", "south", "east"]  # the order of their first row
    assert [p.x.shape[0] for p in parts] == [days for _, days, _, _ in SERIES]  # skipped days are grid rows
    for p in parts:
        assert p.bounds == split_bounds(p.x.shape[0], 0.2, 0.2)  # every series cut in time order
        assert p.spec["time"]["start"] == int(np.datetime64("2023-01-01", "s").astype(np.int64))
    assert ds.input_names == ["sales"]  # neither the id nor the time is an input
    offsets = np.cumsum([0] + [p.x.shape[0] for p in parts])
    L = cfg.seq_len
    for part, (x, y) in enumerate(((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test))):
        starts, ends = x.index.numpy(), y.index.numpy()  # window start and origin rows in the stack
        series = np.searchsorted(offsets, starts, side="right") - 1
        assert np.all(starts + L <= offsets[series + 1])  # the whole window lies in one series
        assert np.all(ends == starts + L - 1)  # the target is the window's own origin row
        origin_local = ends - offsets[series]
        bounds = np.array([parts[s].bounds for s in series])
        assert np.all(origin_local + 1 >= bounds[:, part]) and np.all(origin_local + 1 < bounds[:, part + 1])
        assert set(series) == {0, 1, 2}  # every series contributes to every split
        i = len(starts) // 2  # a window is the rows of its own series
        s, local = series[i], starts[i] - offsets[series[i]]
        assert torch.equal(x[i : i + 1][0], torch.from_numpy(parts[s].x[local : local + L]))
        assert torch.equal(y[[i]][0], torch.from_numpy(parts[s].t[local + L - 1]))
        assert x.shape == (len(starts), L, 1)
    assert ds.x_train.index.numel() < ds.x_train.base.shape[0]  # an index into the windows, not copies
    assert parts[1].x.base is parts[0].x.base  # each series' rows are a view into one stacked array


def test_normalization_per_series_or_global_and_baselines_stay_inside_their_series(tmp_path):
    path = long_file(tmp_path / "long.csv")
    spec, parts = prepare(cfg_for(path))  # default: per series
    for p in parts:
        n = p.bounds[1]
        filled = p.base[:n, 0]  # the filled train rows of this series only
        assert p.spec["x_mean"][0] == pytest.approx(filled.mean())
        assert p.spec["y_train_mean"][0] == pytest.approx(np.nanmean(p.y[:n, 0]))
    assert len({p.spec["x_mean"][0] for p in parts}) == 3
    assert spec["series"]["normalize_by"] == "series" and list(spec["series"]["stats"]) == ["north", "south", "east"]
    south = parts[1]
    assert np.isnan(south.y[0, 0]) and np.isnan(south.y_past[0, 0])  # no value carried in from 'north'
    spec_g, parts_g = prepare(cfg_for(path, "--data.normalize_by", "global"))
    pooled = np.concatenate([p.base[: p.bounds[1], 0] for p in parts_g])
    assert all(p.spec["x_mean"][0] == pytest.approx(pooled.mean()) for p in parts_g)
    assert all(p.spec["t_std"] == spec_g["t_std"] for p in parts_g)
    assert len({p.spec["y_train_mean"][0] for p in parts_g}) == 3  # the mean baseline: each series' own
    np.testing.assert_allclose(parts_g[0].x[:, 0], (parts[0].base[:, 0] - pooled.mean()) / pooled.std(), rtol=1e-5)


class Zero(torch.nn.Module):
    """A model whose normalized forecast is 0: the train mean of its series, in data units."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 1, dtype=x.dtype), None


def test_metrics_over_series_equal_a_hand_computation(tmp_path):
    a = [1.0, 2, 4, 3, 5, 6, 8, 7, 9, 10]
    b = [100.0, 90, 95, 80, 85, 70, 75, 60]
    lines = ["id,v"] + [f"a,{v}" for v in a] + [f"b,{v}" for v in b]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = load_config(None, ["--data.csv", str(path), "--data.seq_len", "2", "--data.series_column", "id",
                             "--data.val_fraction", "0.2", "--data.test_fraction", "0.3"]).data
    _, parts = prepare(cfg)
    result = score_series(Zero(), parts, part=2, seq_len=2)
    errors, naive_errors, mean_errors, scaled = [], [], [], []
    for values in (a, b):
        R = len(values)
        n_train, n_test = R - int(R * 0.2) - int(R * 0.3), int(R * 0.3)
        # the Zero model forecasts the mean target of the train origins: rows 1 .. n_train-1
        forecast = sum(values[1:n_train]) / (n_train - 1)
        mean = sum(values[:n_train]) / n_train  # the mean baseline: the train rows' mean
        scale = sum(abs(values[i] - values[i - 1]) for i in range(1, n_train)) / (n_train - 1)
        for target in range(R - n_test, R):  # every test row, forecast from the row before
            errors.append(forecast - values[target])
            naive_errors.append(values[target - 1] - values[target])
            mean_errors.append(mean - values[target])
            scaled.append(abs(forecast - values[target]) / scale)
    model, naive = result["targets"]["v"]["model"], result["targets"]["v"]["baselines"]["naive"]
    assert result["forecasts"] == len(errors) == 3 + 2
    assert model["mae"] == pytest.approx(np.mean(np.abs(errors)))
    assert model["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(errors))))
    assert model["mase"] == pytest.approx(np.mean(scaled))
    assert naive["rmse"] == pytest.approx(math.sqrt(np.mean(np.square(naive_errors))))
    mean_baseline = result["targets"]["v"]["baselines"]["mean"]
    assert mean_baseline["mae"] == pytest.approx(np.mean(np.abs(mean_errors)))
    per = result["series"]
    assert list(per) == ["a", "b"] and per["a"]["forecasts"] == 3 and per["b"]["forecasts"] == 2
    assert per["b"]["targets"]["v"]["model"]["mae"] == pytest.approx(np.mean(np.abs(errors[3:])))


def test_files_of_a_glob_as_separate_series(tmp_path):
    for name, n, start in (("shop1.csv", 40, "2023-01-01"), ("shop2.csv", 30, "2023-01-05")):
        days = [f"{np.datetime64(start) + i},{i % 7 + (5 if name == 'shop2.csv' else 0)}" for i in range(n)]
        (tmp_path / name).write_text("date,v\n" + "\n".join(days) + "\n")
    pattern = str(tmp_path / "shop*.csv")
    with pytest.raises(UserError, match=r"goes back in time.*add --data\.files series$"):
        prepare(load_config(None, ["--data.csv", pattern, "--data.seq_len", "3"]).data)
    spec, parts = prepare(load_config(None, ["--data.csv", pattern, "--data.seq_len", "3", "--data.files",
                                             "series"]).data)
    assert [p.series_id for p in parts] == ["shop1.csv", "shop2.csv"] and spec["series"]["by"] == "file"
    assert [p.x.shape[0] for p in parts] == [40, 30]
    assert parts[1].spec["time"]["start"] == int(np.datetime64("2023-01-05", "s").astype(np.int64))


@pytest.mark.parametrize("lines, options, message", [
    (["date,v", "2023-01-01,1"], [], r"no column 'store' \(--data\.series_column\); its columns are: date, v"),
    (["store,v", "a,1", ",2"], [], r"s\.csv line 3, column 'store' \(--data\.series_column\): the series id is empty"),
    (["store,v"] + [f"a,{i}" for i in range(30)] + [f"b,{i}" for i in range(2)], [],
     r"series 'b' has 2 rows, too few for a train window .*seq_len 5.*3 for a shorter one"),
    (["store,v", "a,1"], ["--data.files", "series"], r"--data\.series_column store and --data\.files series"),
    (["store,v", "a,1"], ["--data.column", "store"], r"column 'store' is the series id"),
    (["store,v"] + [f"a,{i}" for i in range(30)] + ["a,"], ["--data.missing", "error"],
     r"s\.csv line 32, column 'v': the cell is empty.*\[counted in series 'a'\]$"),
])
def test_bad_inputs_are_one_line(tmp_path, lines, options, message):
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=message) as info:
        build_dataset(cfg_for(path, *options), seed=0)
    assert "\n" not in str(info.value)


def test_a_saved_spec_rebuilds_the_same_windows_and_drop_names_its_series(tmp_path, caplog):
    path = long_file(tmp_path / "long.csv")
    cfg = cfg_for(path)
    ds = build_dataset(cfg, seed=0)
    again = build_dataset(cfg, seed=0, normalization=ds.normalization)  # resume, diagnose
    assert torch.equal(again.x_val[:], ds.x_val[:]) and torch.equal(again.y_test[:], ds.y_test[:])
    with caplog.at_level("WARNING"):
        prepare(cfg_for(path, "--data.missing", "drop"))
    assert "rows inside series 'east'" in caplog.text


def test_a_global_run_forecasts_a_new_series_with_its_own_times(tmp_path):
    spec, _ = prepare(cfg_for(long_file(tmp_path / "long.csv"), "--data.normalize_by", "global"))
    new = tmp_path / "new.csv"
    new.write_text("date,store,sales\n" + "".join(f"{np.datetime64('2024-02-01') + i},west,{i}\n" for i in range(12)))
    _, parts = prepare(cfg_for(new), spec=spec)  # as predict and evaluate --data.csv do
    (west,) = parts
    assert west.series_id == "west" and west.bounds == [0, 12, 12, 12]
    assert west.spec["x_mean"] == spec["x_mean"]  # the run's scaling over all its series
    assert west.spec["time"]["start"] == int(np.datetime64("2024-02-01", "s").astype(np.int64))
    spec_s, _ = prepare(cfg_for(tmp_path / "long.csv"))
    with pytest.raises(UserError, match=r"series 'west' was not in the run's training data"):
        prepare(cfg_for(new), spec=spec_s)
