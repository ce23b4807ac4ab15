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
    rows = ["date,temp,load"] + [f"d{i},{20 + 5 * math.sin(i / 4):.4f},{100 + i % 5}" for i in range(120)]
    path.write_text("\n".join(rows) + "\n")
    run = root / "run"
    assert main(["train", "--data.csv", str(path), "--data.target", "temp", "--data.seq_len", "8",
                 "--model.hidden", "8", "--data.batch_size", "8", "--train.epochs", "15",
                 "--train.run_dir", str(run)]) == 0
    return path, run


def test_predict_writes_denormalized_predictions_for_every_window(csv_run, capsys):
    path, run = csv_run
    assert main(["predict", str(run), "--data.csv", str(path), "-o", str(run / "p.csv")]) == 0
    assert "wrote 113 predictions" in capsys.readouterr().out
    rows = list(csv.DictReader((run / "p.csv").open()))
    assert list(rows[0]) == ["row", "temp_predicted", "temp"]
    assert rows[0]["row"] == "9" and rows[-1]["row"] == "121" and rows[-1]["temp"] == ""  # a forecast
    # de-normalized: in the data's units (15..25), not around 0
    predicted = [float(r["temp_predicted"]) for r in rows]
    assert 10 < sum(predicted) / len(predicted) < 30
    error = [abs(float(r["temp_predicted"]) - float(r["temp"])) for r in rows[:-1]]
    assert sum(error) / len(error) < 1.5  # predicting the mean would be off by ≈ 3.2


def test_predict_needs_the_training_columns(csv_run, tmp_path, capsys):
    _, run = csv_run
    other = tmp_path / "other.csv"
    other.write_text("temp,x\n1,2\n")
    assert main(["predict", str(run), "--data.csv", str(other)]) == 2
    err = capsys.readouterr().err
    assert "has no column 'load'" in err and "\n" not in err.strip()


def test_evaluate_prints_losses_and_rmse(csv_run, capsys):
    _, run = csv_run
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["parts"]) == {"train", "validation"} and result["checkpoint"] == "best"
    assert result["parts"]["validation"]["rmse"]["temp"] > 0
    assert main(["evaluate", str(run), "--checkpoint", "latest"]) == 0
    assert "validation" in capsys.readouterr().out


def test_evaluate_on_another_csv(csv_run, capsys):
    path, run = csv_run
    assert main(["evaluate", str(run), "--data.csv", str(path), "--json"]) == 0
    (part,) = json.loads(capsys.readouterr().out)["parts"].values()
    assert part["sequences"] == 120 - 8 - 1 + 1


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
