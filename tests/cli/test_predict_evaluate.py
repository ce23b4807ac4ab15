"""`rnnscope predict` and `rnnscope evaluate` on a trained run (CSV and built-in task)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from rnnscope.cli import main


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("csvrun")
    path = root / "series.csv"
    rows = ["date,temp,load"] + [f"d{i},{20 + 5 * math.sin(i / 4):.4f},{100 + i % 5}" for i in range(150)]
    path.write_text("\n".join(rows) + "\n")
    run = root / "run"
    assert main(["train", "--data.csv", str(path), "--data.target", "temp", "--data.seq_len", "8",
                 "--model.hidden", "8", "--data.batch_size", "8", "--train.epochs", "15",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    return path, run


def test_predict_writes_forecasts_in_data_units_for_every_window(csv_run, capsys):
    path, run = csv_run
    assert main(["predict", str(run), "--data.csv", str(path), "-o", str(run / "p.csv")]) == 0
    assert "wrote 143 predictions" in capsys.readouterr().out  # 150 − 8 + 1 windows
    rows = list(csv.DictReader((run / "p.csv").open()))
    assert list(rows[0]) == ["time", "step", "temp_predicted", "temp"]
    assert rows[0]["time"] == "9" and rows[-1]["time"] == "151" and rows[-1]["temp"] == ""  # a forecast
    predicted = [float(r["temp_predicted"]) for r in rows]
    assert 10 < sum(predicted) / len(predicted) < 30  # de-normalized: 15..25, not around 0
    error = [abs(float(r["temp_predicted"]) - float(r["temp"])) for r in rows[:-1]]
    assert sum(error) / len(error) < 1.5  # predicting the mean would be off by ≈ 3.2


def test_predict_on_the_runs_own_data_names_the_split_of_each_row(csv_run):
    _, run = csv_run
    assert main(["predict", str(run)]) == 0
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    splits = [r["split"] for r in rows]
    assert splits[0] == "train" and splits[-1] == "future"
    assert splits.count("validation") == 30 and splits.count("test") == 30  # 20% of 150 rows each


def test_predict_needs_the_training_columns(csv_run, tmp_path, capsys):
    _, run = csv_run
    other = tmp_path / "other.csv"
    other.write_text("temp,x\n1,2\n")
    assert main(["predict", str(run), "--data.csv", str(other)]) == 2
    err = capsys.readouterr().err
    assert "has no column 'load'" in err and "\n" not in err.strip()


def test_predict_output_errors_are_one_line(csv_run, tmp_path, capsys):
    _, run = csv_run
    assert main(["predict", str(run), "-o", str(tmp_path)]) == 2
    assert "is a directory; give a file name" in capsys.readouterr().err
    assert main(["predict", str(run), "-o", str(tmp_path / "no" / "p.csv")]) == 2
    assert "does not exist; create it" in capsys.readouterr().err


def test_evaluate_scores_the_test_split_beside_the_baselines(csv_run, capsys):
    _, run = csv_run
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["checkpoint"] == "best" and result["forecasts"] == 30
    entry = result["targets"]["temp"]
    assert set(entry["model"]) == {"mae", "rmse", "smape", "mase"}
    assert set(entry["baselines"]) == {"naive", "mean"}  # no time step, no season: no seasonal naive
    assert entry["model"]["rmse"] < entry["baselines"]["mean"]["rmse"]
    assert main(["evaluate", str(run), "--split", "val", "--checkpoint", "latest"]) == 0
    out = capsys.readouterr().out
    assert "temp on val" in out and "naive" in out and "best baseline" in out


def test_evaluate_on_another_csv(csv_run, capsys):
    path, run = csv_run
    assert main(["evaluate", str(run), "--data.csv", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["forecasts"] == 150 - 8  # every window whose target the file holds


def test_builtin_task_predict_and_evaluate(tmp_path, capsys):
    run = tmp_path / "copy"
    assert main(["train", "--data.task", "copy", "--data.seq_len", "9", "--data.samples", "100",
                 "--train.epochs", "1", "--train.run_dir", str(run)]) == 0
    assert main(["predict", str(run)]) == 0
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    assert list(rows[0]) == ["sample", "step", "target", "predicted"] and len(rows) == 20 * 3
    assert main(["evaluate", str(run), "--json"]) == 0
    out = capsys.readouterr().out
    assert 0 <= json.loads(out[out.index("{"):])["parts"]["validation"]["accuracy"] <= 1
    assert main(["predict", str(run), "--data.csv", "x.csv"]) == 2


def test_a_missing_run_is_a_user_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_evaluate_without_a_test_split_says_what_to_do(tmp_path, capsys):
    path = tmp_path / "s.parquet"
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"v": np.sin(np.arange(80) / 3.0)}), path)
    run = tmp_path / "run"
    assert main(["train", "--data.csv", str(path), "--data.seq_len", "5", "--data.test_fraction", "0",
                 "--train.epochs", "1", "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "the test data holds no complete forecast" in err and "--split val" in err
    assert main(["evaluate", str(run), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["forecasts"] == 16  # 20% of 80 rows


def test_predict_on_a_new_file_with_gaps_takes_a_missing_mode(csv_run, tmp_path, capsys):
    path, run = csv_run
    lines = path.read_text().splitlines()
    lines[20] = lines[20].rsplit(",", 1)[0] + ","  # an empty 'load' cell
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("\n".join(lines) + "\n")
    assert main(["predict", str(run), "--data.csv", str(gappy), "-o", str(tmp_path / "p.csv")]) == 2
    assert "line 21, column 'load': the cell is empty" in capsys.readouterr().err
    assert main(["predict", str(run), "--data.csv", str(gappy), "--data.missing", "ffill",
                 "-o", str(tmp_path / "p.csv")]) == 0
