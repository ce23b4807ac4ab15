"""What the training loop carries from step to step (`TrainState`) and what it is built from (`Run`).

train/loop.py's named steps each take these two objects: the state changes as training goes, the
run's parts are built once by `set_up` and only used afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # for the annotations only: the loop imports all of these itself
    from rnnscope.train.config import Config
    from rnnscope.train.distributed import DistContext
    from rnnscope.train.lastgood import LastGood
    from rnnscope.train.metrics import MetricsLog
    from rnnscope.train.model import SequenceModel
    from rnnscope.train.precision import Precision
    from rnnscope.train.progress import Progress
    from rnnscope.train.runfiles import RunLock
    from rnnscope.train.schedule import EarlyStop, LrSchedule
    from rnnscope.train.stop import SignalStop
    from rnnscope.train.tensorboard import TensorBoardLog


@dataclass
class TrainState:
    """Where training stands. A checkpoint saves the first four fields; resume restores them."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batches_done: int = 0  # batches of `epoch` trained on (a resume inside the epoch skips them)
    best_val: float = math.inf
    total_steps: int = 0  # the run's last step (loop.total_steps); patience may bring it closer
    grad_norm: float = math.nan  # the last step's, before clipping
    # since the last metrics line
    loss_sum: float = 0.0
    loss_count: int = 0
    samples: int = 0
    t_log: float = 0.0
    # for the TrainResult
    first_loss: float | None = None
    first_loss_step: int | None = None
    samples_total: int = 0
    t_start: float = 0.0

    @property
    def done(self) -> bool:
        """The last step is behind us."""
        return self.step >= self.total_steps

    def batch_trained(self, b: int, batch_size: int) -> None:
        """Batch b of this epoch (`batch_size` sequences) is trained on."""
        self.batches_done = b + 1
        self.samples, self.samples_total = self.samples + batch_size, self.samples_total + batch_size


@dataclass
class Run:
    """What a run is built from, fixed after set-up."""

    cfg: Config
    dist: DistContext
    device: torch.device
    run_dir: Path
    lock: RunLock | None  # held by the main rank: one run per directory
    dataset: object  # rnnscope.data's Dataset: tensors, kind, normalization, names
    net: SequenceModel  # the whole model, unwrapped: checkpoints, validation, diagnostics
    model: nn.Module  # what trains: net, or what the DistContext wrapped it in
    optimizer: torch.optim.Optimizer
    precision: Precision  # autocast (and fp16's gradient scaler)
    windows: list  # the TBPTT windows of one sequence
    batch_size: int
    metrics: MetricsLog
    tensorboard: TensorBoardLog
    progress: Progress
    last_good: LastGood  # checkpoints are written once the next step's loss is finite
    schedule: LrSchedule
    early_stop: EarlyStop
    record_step: object  # the diagnostics probe (main rank, --diagnostics.every > 0) or None
    stop: SignalStop  # Ctrl-C, SIGTERM: finish the batch, checkpoint, Interrupted
