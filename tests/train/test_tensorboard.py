"""--train.tensorboard true: event files that TensorBoard reads back, with the run's own numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnscope.train import load_config, train
from rnnscope.train.tensorboard import TensorBoardLog


def _events(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tb") / "run"
    train(load_config(None, ["--train.run_dir", str(run_dir), "--train.max_steps", "40",
                             "--train.tensorboard", "true", "--diagnostics.every", "20",
                             "--train.progress", "false", "--data.samples", "96", "--data.seq_len", "12"]))
    return run_dir


def test_scalars_are_the_metrics_lines(run_dir):
    acc = _events(run_dir / "tensorboard")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [m["step"] for m in metrics]
    assert [e.value for e in loss] == pytest.approx([m["loss"] for m in metrics], rel=1e-6)
    assert {"train/val_loss", "train/grad_norm", "train/lr", "train/samples_per_s",
            "layer0/horizon"} <= set(acc.Tags()["scalars"])


def test_histograms_hold_z_and_the_gradient_by_time_step(run_dir):
    acc = _events(run_dir / "tensorboard")
    records = [json.loads(line) for line in (run_dir / "diagnostics.jsonl").read_text().splitlines()]
    z = acc.Histograms("layer0/z")
    assert [e.step for e in z] == [r["step"] for r in records] == [20, 40]
    layer = records[-1]["layers"][0]
    assert z[-1].histogram_value.num == sum(layer["z_histogram"]["counts"])
    by_t = acc.Histograms("layer0/grad_norm_by_t")[-1].histogram_value
    assert list(by_t.bucket_limit) == list(range(1, 13))  # t = 0 … 11
    assert list(by_t.bucket) == pytest.approx(layer["gradient_flow"]["norms"], rel=1e-6)


def test_communication_share_is_the_mean_over_the_steps_since_the_last_line(tmp_path):
    rows = [{"phase": "step", "step": s, "step_comm_fraction": f}
            for s, f in ((1, 0.2), (1, 0.2), (2, 0.4), (3, 0.9))] + [{"phase": "log", "step": 2,
                                                                       "step_comm_fraction": 1.0}]
    log = TensorBoardLog(tmp_path)
    log.metrics({"step": 2, "loss": 1.0}, SimpleNamespace(rows=rows))
    log.metrics({"step": 3, "loss": 1.0}, SimpleNamespace(rows=rows))
    log.close()
    shares = _events(tmp_path).Scalars("comm/comm_share")
    assert [(e.step, round(e.value, 6)) for e in shares] == [(2, 0.3), (3, 0.9)]


def test_off_by_default_writes_nothing(tmp_path):
    assert load_config(None, []).train.tensorboard is False
    TensorBoardLog(None).metrics({"step": 1, "loss": 1.0})  # a no-op, no writer
    assert not any(tmp_path.iterdir())
