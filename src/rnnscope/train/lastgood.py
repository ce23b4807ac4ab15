"""Checkpoints that are really good: written only once the weights they hold proved finite.

A checkpoint taken right after an optimizer step holds weights whose loss nobody has computed
yet. With a learning rate far too large, that step can throw the weights so far that the next
loss is inf: the checkpoint saved after it would be the bad one ("the last good checkpoint" that
evaluates to inf, and from which a resume with a lower lr diverges at once).

So a checkpoint is taken as a snapshot (the bytes torch.save writes) and kept pending; it goes to
disk when the next step's loss and gradient norm are finite (`confirm`), which proves its
weights. At the end of training, or when a signal stops it, there is no next step: the snapshot
is written at once if every weight is finite (`offer(..., now=True)`). A divergence leaves the
pending snapshot unwritten, so latest.pt stays the last checkpoint whose loss was finite.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rnnscope.train.checkpoint import encode_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def finite_weights(weights: dict) -> bool:
    """True when every floating tensor of a state dict is finite."""
    return all(bool(torch.isfinite(t).all()) for t in weights.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())


class LastGood:
    """Pending checkpoint snapshots of one run, written once they are proven (see above)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.pending: dict[str, bytes] = {}  # file name -> snapshot, oldest first

    def offer(self, name: str, state: dict, now: bool = False) -> None:
        """Snapshot `state` for checkpoints/`name`; with now=True write it (and every pending
        snapshot) at once, provided its weights are finite."""
        if not finite_weights(state["model"]):
            self.pending.pop(name, None)
            log.warning("not writing %s at step %s: its weights are not finite", name, state["step"])
            return
        self.pending[name] = encode_checkpoint(state)
        if now:
            self.confirm()

    def confirm(self) -> None:
        """The step after the snapshots had a finite loss and gradient: write them."""
        for name, data in self.pending.items():
            save_checkpoint(self.folder / name, data)
        self.pending.clear()
