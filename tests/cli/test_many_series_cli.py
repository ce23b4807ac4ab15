"""Several series end to end: train on a long-format file, predict writes each row's series id,
evaluate --json scores over all series and per series, load_run(...).predict on a DataFrame,
and a series unknown to a per-series run is one line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from rnnscope.cli import main
from tests.data.test_many_series import SERIES, long_file


@pytest.fixture(scope="module")
def many_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    path = long_file(root / "long.csv")
    run = root / "run"
    assert main(["train", "--data.csv", str(path), "--data.series_column", "store", "--data.missing",
                 "interpolate", "--data.seq_len", "7", "--model.hidden", "8", "--train.epochs", "1",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    return path, run


def test_predict_writes_the_series_id_of_every_forecast(many_run, capsys):
    path, run = many_run
    out = run / "p.csv"
    assert main(["predict", str(run), "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["store", "time", "step", "sales_predicted", "sales", "split"]
    ids = [r["store"] for r in rows]
    assert list(dict.fromkeys(ids)) == ["north", "south", "east"]
    for store, days, _, _ in SERIES:  # one forecast per origin with a full window (seq_len 7)
        mine = [r for r in rows if r["store"] == store]
        assert len(mine) == days - 7 + 1
        assert mine[0]["time"] == str(np.datetime64("2023-01-01") + 7)  # its own times, one step ahead
        assert {r["split"] for r in mine} >= {"train", "validation", "test", "future"}
    capsys.readouterr()


def test_evaluate_json_scores_all_series_and_each(many_run, capsys):
    _, run = many_run
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["series"]) == ["north", "south", "east"]
    per = result["series"]
    assert result["forecasts"] == sum(s["forecasts"] for s in per.values())
    total = result["targets"]["sales"]["model"]
    maes = [s["targets"]["sales"]["model"]["mae"] for s in per.values()]
    assert min(maes) < total["mae"] < max(maes)  # a mean over all series' forecasts (exact: tests/data)
    assert set(result["targets"]["sales"]["baselines"]) == {"naive", "seasonal_naive", "mean"}
    assert main(["evaluate", str(run)]) == 0
    assert "series south" in capsys.readouterr().out


def test_load_run_forecasts_a_long_dataframe_and_refuses_an_unknown_series(many_run):
    pd = pytest.importorskip("pandas")
    import rnnscope
    from rnnscope.errors import UserError

    path, run = many_run
    frame = pd.read_csv(path)
    model = rnnscope.load_run(run)
    forecasts = model.predict(frame)
    assert list(forecasts.columns) == ["store", "time", "step", "sales_predicted"]
    assert list(dict.fromkeys(forecasts["store"])) == ["north", "south", "east"]
    frame["store"] = frame["store"].replace("east", "west")
    with pytest.raises(UserError, match=r"series 'west' was not in the run's training data.*normalize_by global"):
        model.predict(frame)
