"""The lr schedules and early stopping, step by step."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from rnnscope.errors import UserError
from rnnscope.train.schedule import EarlyStop, LrSchedule


def optimizer(lr: float = 1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_cosine_goes_from_lr_to_zero():
    opt = optimizer()
    schedule = LrSchedule(SimpleNamespace(schedule="cosine", lr=1.0), opt, total_steps=10)
    schedule.after_step(5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    schedule.after_step(10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_plateau_halves_after_three_checks_without_improvement():
    opt = optimizer()
    schedule = LrSchedule(SimpleNamespace(schedule="plateau", lr=1.0), opt, total_steps=10)
    for loss in (1.0, 0.9, 0.95, 0.92):  # the best is 0.9: two checks without a new best
        schedule.after_validation(loss)
    assert opt.param_groups[0]["lr"] == 1.0
    schedule.after_validation(0.91)  # the third
    assert opt.param_groups[0]["lr"] == 0.5


def test_none_leaves_the_lr_alone():
    opt = optimizer(0.3)
    schedule = LrSchedule(SimpleNamespace(schedule="none", lr=0.3), opt, total_steps=10)
    schedule.after_step(5)
    schedule.after_validation(math.inf)
    assert opt.param_groups[0]["lr"] == 0.3


def test_early_stop_counts_checks_without_a_new_best():
    stop = EarlyStop(2)
    assert [stop.should_stop(v) for v in (1.0, 0.5, 0.6, 0.4, 0.45, 0.41)] == [False] * 5 + [True]
    assert not any(EarlyStop(0).should_stop(v) for v in (1.0, 2.0, 3.0))
    with pytest.raises(UserError, match="--train.patience must be ≥ 0"):
        EarlyStop(-1)
