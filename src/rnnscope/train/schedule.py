"""Learning-rate schedules (--optim.schedule) and early stopping (--train.patience) for the loop.

    cosine:   lr_step = lr · ½(1 + cos(π · step / total_steps)), set after every optimizer step
    plateau:  the lr is halved when the validation loss has not improved for 3 checks
              (the lr lives in the optimizer's state, so a resumed run keeps the lowered value)
    patience: training stops after `patience` validation checks without a new best loss;
              best.pt holds the best weights
"""

from __future__ import annotations

import math

from rnnscope.errors import UserError

PLATEAU_CHECKS = 3  # validation checks without improvement before the lr is halved
PLATEAU_FACTOR = 0.5


class LrSchedule:
    """Sets the optimizer's lr after each step (cosine) or each validation check (plateau)."""

    def __init__(self, optim_cfg, optimizer, total_steps: int) -> None:
        self.name, self.base_lr, self.total = optim_cfg.schedule, optim_cfg.lr, max(total_steps, 1)
        self.optimizer, self.best, self.bad = optimizer, math.inf, 0

    def after_step(self, step: int) -> None:
        """Cosine: the lr for the next step."""
        if self.name == "cosine":
            lr = self.base_lr * 0.5 * (1 + math.cos(math.pi * min(step, self.total) / self.total))
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def after_validation(self, loss: float) -> None:
        """Plateau: halve the lr after PLATEAU_CHECKS checks without a lower loss."""
        if self.name != "plateau":
            return
        if loss < self.best:
            self.best, self.bad = loss, 0
            return
        self.bad += 1
        if self.bad >= PLATEAU_CHECKS:
            for group in self.optimizer.param_groups:
                group["lr"] *= PLATEAU_FACTOR
            self.bad = 0


class EarlyStop:
    """Counts validation checks without a new best; says when `patience` of them have passed."""

    def __init__(self, patience: int) -> None:
        if patience < 0:
            raise UserError(f"--train.patience must be ≥ 0, got {patience}")
        self.patience, self.best, self.bad, self.stopped = patience, math.inf, 0, False

    def should_stop(self, loss: float) -> bool:
        """Record one check's loss; True once patience checks in a row did not improve on the best."""
        if loss < self.best:
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        self.stopped = self.patience > 0 and self.bad >= self.patience
        return self.stopped
