"""Losses, accuracy and the metrics log."""

from __future__ import annotations

import json

import pytest
import torch

from rnnscope.data.tasks import IGNORE
from rnnscope.train.metrics import MetricsLog, correct, evaluate, loss_fn, read_metrics


def test_mse_and_cross_entropy_ignoring_unasked_steps():
    assert float(loss_fn("regression", torch.ones(2, 3), torch.zeros(2, 3))) == 1.0
    logits = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])  # (1, 2, 2)
    y = torch.tensor([[IGNORE, 1]])
    expected = torch.nn.functional.cross_entropy(logits[0, 1:], y[0, 1:])
    torch.testing.assert_close(loss_fn("classification", logits, y), expected)
    assert correct(logits, y) == (1, 1)


def test_evaluate_batches_and_restores_the_mode():
    model = torch.nn.Module()
    model.forward = lambda x: (x * 0, None)
    model.train()
    result = evaluate(model, "regression", torch.ones(5, 2, 1), torch.full((5, 2, 1), 2.0), batch_size=2)
    assert result == {"loss": 4.0} and model.training
    assert evaluate(model, "classification", torch.ones(0, 2, 1), torch.ones(0, 2)) == {"loss": None, "accuracy": None}


def test_log_writes_valid_json_even_for_nan_and_truncates_on_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    for step in (10, 20, 30):
        log.write({"step": step, "loss": float("nan") if step == 20 else 0.5})
    with path.open("a") as f:
        f.write('{"step": 40, "lo')  # a line cut short by SIGKILL
    log.truncate_after(20)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]
    assert read_metrics(path)[1]["loss"] == "nan"


def test_a_log_without_a_path_writes_nothing(tmp_path):
    MetricsLog(None).write({"step": 1})
    MetricsLog(None).truncate_after(0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["regression"])
def test_loss_is_a_scalar(kind):
    assert loss_fn(kind, torch.zeros(3, 1), torch.zeros(3, 1)).ndim == 0
