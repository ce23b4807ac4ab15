"""The Dataset a training run consumes, how it is built from [data], and the order of its batches."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rnnscope.errors import UserError


@dataclass
class Dataset:
    """Train and validation sequences, batch first, with what the model needs to know about them.

    Targets: regression every step (N, T, O), regression last step (N, O), classification every
    step (N, T) class indices with -100 where nothing is asked.
    """

    x_train: torch.Tensor  # (N, T, I)
    y_train: torch.Tensor
    x_val: torch.Tensor  # (M, T, I), M may be 0
    y_val: torch.Tensor
    kind: str  # "regression" | "classification"
    every_step: bool  # a target at every time step (many-to-many) or only the last (many-to-one)
    input_size: int
    output_size: int  # target features, or classes for classification
    name: str  # "sine", "adding", "copy" or the CSV path
    input_names: list[str] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    normalization: dict | None = None  # CSV only: {"columns": [...], "mean": [...], "std": [...], "spec": {...}}
    x_test: torch.Tensor | None = None  # CSV only: the test split's windows (N, T, I)
    y_test: torch.Tensor | None = None
    series: object | None = None  # CSV only: the data.series.Prepared arrays the windows view

    @property
    def has_val(self) -> bool:
        """Whether a validation part exists."""
        return self.x_val.shape[0] > 0


def build_dataset(data_cfg, seed: int, normalization: dict | None = None) -> Dataset:
    """The dataset [data] asks for: the CSV when --data.csv is set, else the built-in task.

    Args:
        data_cfg: a DataConfig.
        seed: the run's seed (built-in tasks are generated from it).
        normalization: a saved CSV normalization to apply instead of fitting a new one.
    """
    if data_cfg.csv:
        from rnnscope.data.csv import csv_dataset

        return csv_dataset(data_cfg, normalization=normalization)
    from rnnscope.data.tasks import TASKS

    if data_cfg.task not in TASKS:
        raise UserError(f"unknown --data.task {data_cfg.task!r}; choose one of {', '.join(TASKS)}")
    return TASKS[data_cfg.task](data_cfg, seed)


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The index batches of one epoch: a permutation fixed by (seed, epoch), so resume can replay it.

    The last partial batch is dropped (every step sees the same batch size) unless the data hold
    less than one batch, which then is the only batch.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator)
    if n <= batch_size:
        return [order]
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def split(x: torch.Tensor, y: torch.Tensor, val_fraction: float):
    """Cut generated sequences into train (the first part) and validation (the rest)."""
    n_val = int(round(x.shape[0] * val_fraction))
    n_train = x.shape[0] - n_val
    if n_train < 1:
        raise UserError(f"--data.val_fraction {val_fraction} leaves no training sequences; lower it")
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
