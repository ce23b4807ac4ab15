"""Forecasting end to end: a trending, seasonal series with gaps beats the naive forecast on its
untouched test split with the documented recipe; multi-step forecasts; Python use; the picture;
early stopping and lr schedules; broken models and spreadsheet formulas."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch

from rnnscope.cli import main
from rnnscope.train.metrics import read_metrics

# the recipe docs/forecasting.md gives for a trending series with gaps
RECIPE = ["--data.missing", "interpolate", "--data.difference", "1", "--optim.name", "adam",
          "--optim.lr", "0.01", "--model.activation", "tanh", "--data.seq_len", "14"]


def trend_series(path, days: int = 360, seed: int = 0):
    """Daily sales: a linear trend, a weekly season, noise; some days missing, some cells empty."""
    rng = np.random.default_rng(seed)
    lines = ["date,sales,price"]
    for i in range(days):
        if i % 37 == 5:
            continue  # a day the file skips
        sales = 50 + 0.3 * i + 8 * math.sin(2 * math.pi * i / 7) + rng.normal(0, 1)
        price = "" if i % 53 == 7 else f"{10 + math.cos(i / 20):.3f}"
        lines.append(f"{np.datetime64('2022-01-01') + i},{'' if i % 41 == 3 else f'{sales:.3f}'},{price}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trend_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trend")
    path = trend_series(root / "sales.csv")
    run = root / "run"
    assert main(["train", "--data.csv", str(path), "--data.target", "sales", *RECIPE, "--train.epochs", "10",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    return path, run


def test_the_recipe_beats_the_naive_forecast_on_the_test_split(trend_run, capsys):
    _, run = trend_run
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    entry = result["targets"]["sales"]
    assert result["split"] == "test" and result["season"] == 7
    assert set(entry["baselines"]) == {"naive", "seasonal_naive", "mean"}
    assert entry["model"]["rmse"] < entry["baselines"]["naive"]["rmse"]
    assert entry["rmse_vs_naive"] < 1 and entry["model"]["mase"] < entry["baselines"]["naive"]["mase"]


def test_the_summary_warns_when_the_model_loses_to_naive(tmp_path, capsys):
    path = trend_series(tmp_path / "sales.csv")
    assert main(["train", "--data.csv", str(path), "--data.target", "sales", "--data.missing", "ffill",
                 "--train.epochs", "2", "--train.run_dir", str(tmp_path / "run"), "--train.progress", "false"]) == 0
    out = capsys.readouterr().out
    assert "time index: date (every day, from 2022-01-01)" in out and "inputs: sales, price" in out
    assert "validation RMSE sales: model" in out
    assert "warning: the model forecasts sales worse than the naive last value" in out
    assert "--data.difference 1" in out
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")  # the summary counts as the log does
    assert f"{records[0]['loss']:.4g} (step {records[0]['step']})" in out
    assert f"(epochs 0–{records[-1]['epoch']})" in out


def test_predict_writes_dates_and_draws_the_picture(trend_run, tmp_path, capsys):
    _, run = trend_run
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    assert main(["predict", str(run), "-o", str(out), "--plot", str(png)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["time"] == "2022-01-16" and rows[-1]["time"] == "2022-12-27"  # origin 14 + 1; one past the end
    assert rows[-1]["split"] == "future" and rows[-1]["sales"] == ""
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_load_run_forecasts_a_dataframe_and_an_array(trend_run):
    pd = pytest.importorskip("pandas")
    import rnnscope

    path, run = trend_run
    model = rnnscope.load_run(run)
    frame = pd.read_csv(path, parse_dates=["date"])
    result = model.predict(frame)
    assert list(result.columns) == ["time", "step", "sales_predicted"]
    with open(run / "predictions.csv", "w"):
        pass
    assert main(["predict", str(run), "--data.csv", str(path), "-o", str(run / "predictions.csv")]) == 0
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    np.testing.assert_allclose(result["sales_predicted"].to_numpy(), [float(r["sales_predicted"]) for r in rows],
                               rtol=1e-5)  # the same forecasts as the CLI's
    array = frame[model.columns].to_numpy()[:100]
    values = model.predict(array)
    assert values.shape == (100 - 14, 1, 1) and np.isfinite(values).all()


def test_multi_step_forecasts_every_step_to_the_horizon(tmp_path, capsys):
    path = trend_series(tmp_path / "sales.csv", days=200)
    run = tmp_path / "run"
    assert main(["train", "--data.csv", str(path), "--data.target", "sales", *RECIPE, "--data.horizon", "3",
                 "--data.steps", "all", "--data.predict", "last_step", "--train.epochs", "3",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["targets"]["sales"]
    assert list(entry["per_step"]) == ["t+1", "t+2", "t+3"]
    # the naive forecast gets worse with the step on a trending series
    assert main(["predict", str(run), "-o", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert {r["step"] for r in rows} == {"1", "2", "3"}


def test_mask_mode_trains_with_missing_targets_left_out(tmp_path, capsys):
    path = trend_series(tmp_path / "sales.csv", days=150)
    run = tmp_path / "run"
    assert main(["train", "--data.csv", str(path), "--data.missing", "mask", "--train.epochs", "2",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    records = read_metrics(run / "metrics.jsonl")
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["val_loss"]) for r in records)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["targets"]["sales"]["model"]["rmse"] > 0


def test_patience_stops_early_and_cosine_decays_the_lr(tmp_path, capsys):
    path = trend_series(tmp_path / "sales.csv", days=150)
    run = tmp_path / "run"
    assert main(["train", "--data.csv", str(path), "--data.missing", "ffill", "--optim.lr", "3",
                 "--train.patience", "2", "--train.log_every", "1", "--train.epochs", "50",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    out = capsys.readouterr().out
    records = read_metrics(run / "metrics.jsonl")
    assert "stopped early at step" in out and len(records) < 50 * 2
    run2 = tmp_path / "cosine"
    assert main(["train", "--data.csv", str(path), "--data.missing", "ffill", "--optim.schedule", "cosine",
                 "--data.batch_size", "8", "--train.log_every", "2", "--train.epochs", "4", "--train.run_dir", str(run2), "--train.progress", "false"]) == 0
    lrs = [r["lr"] for r in read_metrics(run2 / "metrics.jsonl")]
    assert len(lrs) > 5 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 1e-6 < 0.1 < lrs[0] < 0.15


def test_a_forecast_that_is_not_finite_is_an_error_and_no_file(trend_run, tmp_path, capsys):
    from rnnscope.train.checkpoint import load_checkpoint, save_checkpoint

    _, run = trend_run
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    ckpt = load_checkpoint(broken / "checkpoints" / "best.pt")
    ckpt["model"]["readout.bias"] = torch.full_like(ckpt["model"]["readout.bias"], math.inf)
    save_checkpoint(broken / "checkpoints" / "best.pt", ckpt)
    out = tmp_path / "p.csv"
    assert main(["predict", str(broken), "-o", str(out)]) == 2
    assert "is not a finite number" in capsys.readouterr().err and not out.exists()


def test_formula_like_column_names_are_neutralised_in_predictions(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("=HYPERLINK(1)\n" + "".join(f"{math.sin(i / 3):.3f}\n" for i in range(60)))
    run = tmp_path / "run"
    assert main(["train", "--data.csv", str(path), "--data.seq_len", "5", "--train.epochs", "1",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    assert main(["predict", str(run)]) == 0
    header = (run / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("time,step,'=HYPERLINK(1)_predicted,'=HYPERLINK(1)")


def test_predict_to_a_closed_pipe_ends_quietly(trend_run):
    import subprocess
    import sys

    _, run = trend_run
    proc = subprocess.run(f"'{sys.executable}' -m rnnscope predict '{run}' -o - | head -2", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("time,step,sales_predicted") and len(proc.stdout.splitlines()) == 2
    assert proc.stderr == ""
