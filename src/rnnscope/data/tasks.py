"""Built-in tasks, generated in-process from the run's seed.

- sine:   forecast the value `horizon` steps ahead of a noisy sine (random phase and period),
          at every step (many-to-many) or only the last (many-to-one). MSE.
- adding: Hochreiter and Schmidhuber's adding problem: two channels, random values in [0, 1) and
          a marker that is 1 at two positions (one in each half); predict the sum of the two
          marked values at the end. Predicting 1.0 always gives MSE ≈ 0.167; a network that
          remembers gets near 0. The classic long-range test (--data.seq_len 1000 and more).
- copy:   read a pattern of `copy_length` symbols, wait, see a "go" marker, then recall the
          pattern. Cross-entropy on the recall steps only; accuracy is the share recalled right.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rnnscope.data.dataset import Dataset, split
from rnnscope.data.shapes import task_shape

IGNORE = -100  # class-index target where nothing is asked (torch's cross_entropy ignore_index)


def sine(data_cfg, seed: int) -> Dataset:
    """Noisy sines with a random phase and a period of 12–30 steps; forecast `horizon` ahead."""
    rng = np.random.default_rng(seed)
    n, T, k = data_cfg.samples, data_cfg.seq_len, data_cfg.horizon
    every_step = data_cfg.predict != "last_step"
    period = rng.uniform(12.0, 30.0, size=(n, 1))  # time steps per cycle
    phase = rng.uniform(0.0, 2 * math.pi, size=(n, 1))
    t = np.arange(T + k)[None, :]  # (1, T + k)
    series = np.sin(2 * math.pi * t / period + phase)  # (n, T + k)
    series = series + data_cfg.noise * rng.standard_normal(series.shape)
    x = torch.tensor(series[:, :T, None], dtype=torch.float32)  # (n, T, 1)
    if every_step:
        y = torch.tensor(series[:, k : T + k, None], dtype=torch.float32)  # (n, T, 1)
    else:
        y = torch.tensor(series[:, T + k - 1, None], dtype=torch.float32)  # (n, 1)
    x_tr, y_tr, x_va, y_va = split(x, y, data_cfg.val_fraction)
    shape = task_shape(data_cfg)
    return Dataset(x_tr, y_tr, x_va, y_va, kind="regression", every_step=every_step,
                   input_size=shape.input_size, output_size=shape.output_size, name="sine",
                   input_names=["sine"],
                   target_names=[f"sine(t+{k})"])


def adding(data_cfg, seed: int) -> Dataset:
    """The adding problem: many-to-one regression of the sum of the two marked values."""
    shape = task_shape(data_cfg)  # refuses what the task cannot take
    T = data_cfg.seq_len
    rng = np.random.default_rng(seed)
    n = data_cfg.samples
    values = rng.uniform(0.0, 1.0, size=(n, T))
    first = rng.integers(0, T // 2, size=n)  # one marker in the first half
    second = rng.integers(T // 2, T, size=n)  # one in the second
    marker = np.zeros((n, T))
    rows = np.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = torch.tensor(np.stack([values, marker], axis=2), dtype=torch.float32)  # (n, T, 2)
    target = values[rows, first] + values[rows, second]
    y = torch.tensor(target[:, None], dtype=torch.float32)  # (n, 1)
    x_tr, y_tr, x_va, y_va = split(x, y, data_cfg.val_fraction)
    return Dataset(x_tr, y_tr, x_va, y_va, kind="regression", every_step=shape.every_step,
                   input_size=shape.input_size, output_size=shape.output_size, name="adding",
                   input_names=["value", "marker"], target_names=["sum"])


def copy(data_cfg, seed: int) -> Dataset:
    """The copy task: one-hot symbols, blank and go marker in; the pattern's symbols out."""
    shape = task_shape(data_cfg)  # refuses what the task cannot take
    T, L, K = data_cfg.seq_len, data_cfg.copy_length, data_cfg.copy_symbols
    rng = np.random.default_rng(seed)
    n = data_cfg.samples
    pattern = rng.integers(0, K, size=(n, L))
    blank, go = K, K + 1  # input channels after the K symbols
    tokens = np.full((n, T), blank)
    tokens[:, :L] = pattern
    tokens[:, T - L - 1] = go  # "now recall", one step before the recall starts
    x = torch.nn.functional.one_hot(torch.tensor(tokens), K + 2).float()  # (n, T, K + 2)
    target = np.full((n, T), IGNORE)
    target[:, T - L :] = pattern
    y = torch.tensor(target, dtype=torch.long)  # (n, T)
    x_tr, y_tr, x_va, y_va = split(x, y, data_cfg.val_fraction)
    return Dataset(x_tr, y_tr, x_va, y_va, kind="classification", every_step=shape.every_step,
                   input_size=shape.input_size, output_size=shape.output_size, name="copy",
                   input_names=[f"symbol{i}" for i in range(K)] + ["blank", "go"],
                   target_names=["symbol"])


# name -> generator; a plain dict registry
TASKS = {"sine": sine, "adding": adding, "copy": copy}
