"""The seam between the training loop and a parallel strategy: the DistContext protocol.

`rnnscope.parallel.context.from_env(cfg)` returns an object with this shape; the loop calls it at
fixed points and knows nothing else about torch.distributed:

    model = distributed.wrap_model(model)          # before the optimizer is built (DDP, pipeline, ...)
    for step ...:
        x, y = distributed.shard((x, y))          # this rank's share of the global batch
        ... forward, backward, clip, optimizer step ...
        distributed.on_step_end(step, model)      # after every optimizer step: ledger flush, checksums
        distributed.before_diagnostics(step)      # on a --diagnostics.every step: the whole model here
        distributed.before_snapshot(step, opt)    # before a log or checkpoint: the whole model here
        loss = distributed.average(loss)          # before a metrics line: the global batch's loss
        norm = distributed.grad_norm(model, norm) # ... and the whole model's gradient norm
    distributed.close(run_dir)                    # at the end, on every rank

Only the rank with `is_main` prints progress and writes the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

Batch = tuple[torch.Tensor, ...]  # (x (B, T, I), y (B, ...)): every tensor has the batch on dim 0


@runtime_checkable
class DistContext(Protocol):
    """What the training loop needs from a parallel strategy.

    Optional attribute: `device` (torch.device) — where this rank's model and batches live; when
    absent or None the loop uses --train.device.
    """

    is_main: bool  # this rank prints progress and writes metrics, checkpoints and config

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The model this rank trains (e.g. DistributedDataParallel(model)); called once, before
        the optimizer is built. The returned module's forward has the same signature."""
        ...

    def shard(self, batch: Batch) -> Batch:
        """This rank's share of one global batch (the same tensors, cut along dim 0)."""
        ...

    def on_step_end(self, step: int, model: nn.Module) -> None:
        """Called after every optimizer step with the number of steps done so far (1-based)."""
        ...

    def before_diagnostics(self, step: int) -> None:
        """Called by every rank after `on_step_end` of a step that --diagnostics.every records,
        before the main rank's probe runs the unwrapped model: it must then hold the whole model
        (a model split gathers its pieces)."""
        ...

    def average(self, value: float) -> float:
        """The mean of `value` over the data replicas (each computed it on its share of the
        global batch); called by every rank at the same point, before a metrics line."""
        ...

    def grad_norm(self, model: nn.Module, local: float) -> float:
        """The whole model's gradient norm, given `local`, the norm of `model`'s own gradients
        (a rank that holds a piece of the model has only its piece); called by every rank at
        the same point, before a metrics line."""
        ...

    def before_snapshot(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        """Called by every rank at a batch end that logs or checkpoints, before either: the
        unwrapped model must then hold the whole model and `optimizer_state` the whole
        optimizer's state (a model split gathers its pieces)."""
        ...

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer state a checkpoint holds: the whole model's, as one process has it."""
        ...

    def local_optimizer_state(self, state: dict) -> dict:
        """This rank's share of a checkpoint's optimizer state (what its optimizer loads)."""
        ...

    def close(self, run_dir: Path | None) -> None:
        """Called once at the end of training (also after divergence), on every rank; what is
        written into run_dir is the main rank's to write, except a rank's own rows of a run that
        ended early (parallel.context)."""
        ...


class WholeModel:
    """The hooks of a process that holds the whole model and its whole optimizer (a one-process
    run, or one data-parallel replica): nothing to gather, the local norm, its own optimizer state."""

    def before_diagnostics(self, step: int) -> None:
        """The whole model is here already."""

    def grad_norm(self, model: nn.Module, local: float) -> float:
        """The whole model is here: the local norm."""
        return local

    def before_snapshot(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        """The whole model is here already."""

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer covers the whole model: its own state."""
        return optimizer.state_dict()

    def local_optimizer_state(self, state: dict) -> dict:
        """The optimizer covers the whole model: all of it."""
        return state


class SingleProcess(WholeModel):
    """The DistContext of an ordinary one-process run: every hook does nothing."""

    is_main = True
    device = None

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The model itself."""
        return model

    def shard(self, batch: Batch) -> Batch:
        """The whole batch."""
        return batch

    def on_step_end(self, step: int, model: nn.Module) -> None:
        """Nothing to synchronize."""

    def average(self, value: float) -> float:
        """One replica: the value itself."""
        return value

    def close(self, run_dir: Path | None) -> None:
        """Nothing to release."""
