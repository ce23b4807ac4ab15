"""Built-in tasks: shapes, what the targets mean, determinism by seed; the batch order."""

from __future__ import annotations

import pytest
import torch

from rnnscope.data import batch_order, build_dataset
from rnnscope.data.tasks import IGNORE
from rnnscope.errors import UserError
from rnnscope.train.config import load_config


def data(*overrides: str):
    return load_config(None, list(overrides)).data


def test_sine_every_step_targets_are_the_series_shifted_by_the_horizon():
    ds = build_dataset(data("--data.samples", "10", "--data.seq_len", "12", "--data.horizon", "3",
                            "--data.val_fraction", "0.2"), seed=1)
    assert ds.x_train.shape == (8, 12, 1) and ds.y_train.shape == (8, 12, 1)
    assert ds.x_val.shape == (2, 12, 1) and ds.every_step and ds.kind == "regression"
    torch.testing.assert_close(ds.y_train[:, :-3], ds.x_train[:, 3:])  # y_t = x_{t+3}


def test_sine_last_step_is_many_to_one():
    ds = build_dataset(data("--data.samples", "6", "--data.predict", "last_step"), seed=0)
    assert ds.y_train.shape == (5, 1) and not ds.every_step


def test_same_seed_same_data_other_seed_other_data():
    cfg = data("--data.samples", "8")
    a, b, c = build_dataset(cfg, 3), build_dataset(cfg, 3), build_dataset(cfg, 4)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


def test_adding_target_is_the_sum_of_the_two_marked_values():
    ds = build_dataset(data("--data.task", "adding", "--data.samples", "50", "--data.seq_len", "30"), 0)
    x, y = ds.x_train, ds.y_train  # (N, T, 2), (N, 1)
    assert x.shape[1:] == (30, 2) and y.shape[1:] == (1,) and not ds.every_step
    assert torch.equal(x[:, :, 1].sum(1), torch.full((x.shape[0],), 2.0))  # two markers each
    assert bool((x[:, :15, 1].sum(1) == 1).all())  # one in each half
    torch.testing.assert_close((x[:, :, 0] * x[:, :, 1]).sum(1, keepdim=True), y)


def test_adding_refuses_every_step():
    with pytest.raises(UserError, match="adding.*last_step"):
        build_dataset(data("--data.task", "adding", "--data.predict", "every_step"), 0)


def test_copy_recalls_the_pattern_after_the_go_marker():
    ds = build_dataset(data("--data.task", "copy", "--data.samples", "20", "--data.seq_len", "12",
                            "--data.copy_length", "3", "--data.copy_symbols", "5"), 0)
    x, y = ds.x_train, ds.y_train  # (N, 12, 7) one-hot, (N, 12)
    assert x.shape[1:] == (12, 7) and ds.kind == "classification" and ds.output_size == 5
    pattern = x[:, :3, :5].argmax(-1)  # (N, 3)
    assert torch.equal(y[:, -3:], pattern)
    assert bool((y[:, :-3] == IGNORE).all())
    assert bool((x[:, 8, 6] == 1).all())  # the go marker, one step before the recall


def test_copy_needs_room_for_pattern_and_recall():
    with pytest.raises(UserError, match="seq_len ≥ 2·copy_length \\+ 1 = 7"):
        build_dataset(data("--data.task", "copy", "--data.seq_len", "6", "--data.copy_length", "3"), 0)


def test_batch_order_is_a_fixed_permutation_per_epoch_dropping_the_last_partial_batch():
    a, b = batch_order(10, 3, seed=0, epoch=2), batch_order(10, 3, seed=0, epoch=2)
    assert [t.tolist() for t in a] == [t.tolist() for t in b]
    assert len(a) == 3 and all(len(t) == 3 for t in a)
    assert len(set(torch.cat(a).tolist())) == 9
    assert [t.tolist() for t in a] != [t.tolist() for t in batch_order(10, 3, seed=0, epoch=3)]
    assert len(batch_order(2, 8, seed=0, epoch=0)) == 1  # less than one batch: all of it


@pytest.mark.parametrize("overrides", [(), ("--data.predict", "last_step"), ("--data.task", "adding"),
                                       ("--data.task", "copy", "--data.copy_symbols", "6")])
def test_the_task_shape_without_torch_is_the_built_tasks(overrides):
    from rnnscope.data.shapes import task_shape

    cfg = data("--data.samples", "8", "--data.seq_len", "12", *overrides)
    ds, shape = build_dataset(cfg, seed=0), task_shape(cfg)
    assert (shape.input_size, shape.output_size, shape.every_step) == (
        ds.input_size, ds.output_size, ds.every_step)


def test_the_planner_sizes_a_built_in_task_without_importing_torch():
    """`rnnscope plan` must answer at once: reading a task's shape must not import torch (≈ 1 s)."""
    import subprocess
    import sys

    code = ("import sys; from rnnscope.cli import main; "
            "status = main(['plan', '--workers', '4096', '--json', '--data.task', 'copy']); "
            "assert status == 0, status; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
