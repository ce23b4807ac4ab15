"""Losses, accuracy and the metrics log (one JSON object per line in RUN_DIR/metrics.jsonl)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnscope.data.tasks import IGNORE
from rnnscope.train.runfiles import write_atomic

METRIC_FIELDS = ("step", "epoch", "loss", "val_loss", "grad_norm", "lr", "samples_per_s")


def loss_fn(kind: str, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE for regression (the chapter's), cross-entropy for classification (ignoring -100).

    Args:
        kind: "regression" or "classification".
        y_hat: (B, T, O) or (B, O) predictions; logits (B, T, C) for classification.
        y: targets of the same shape; class indices (B, T) for classification.
    """
    if kind == "classification":
        return F.cross_entropy(y_hat.reshape(-1, y_hat.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
    known = ~torch.isnan(y)  # a missing target (--data.missing mask) counts for nothing
    if not bool(known.all()):
        return F.mse_loss(y_hat[known], y[known]) if bool(known.any()) else (y_hat * 0.0).sum()
    return F.mse_loss(y_hat, y)


def correct(y_hat: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """(right, asked) class predictions, counting only the steps with a target."""
    asked = y != IGNORE  # (B, T)
    right = (y_hat.argmax(-1) == y) & asked
    return int(right.sum()), int(asked.sum())


@torch.no_grad()
def evaluate(model, kind: str, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> dict:
    """Loss (and accuracy for classification) of model over (x, y), in batches, without gradients."""
    if x.shape[0] == 0:
        return {"loss": None} | ({"accuracy": None} if kind == "classification" else {})
    total, count, right, asked = 0.0, 0, 0, 0
    was_training = model.training
    model.eval()
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        y_hat, _ = model(xb)
        total += float(loss_fn(kind, y_hat, yb)) * xb.shape[0]
        count += xb.shape[0]
        if kind == "classification":
            r, a = correct(y_hat, yb)
            right, asked = right + r, asked + a
    model.train(was_training)
    result = {"loss": total / count}
    if kind == "classification":
        result["accuracy"] = right / asked if asked else None
    return result


def _clean(value):
    """JSON has no NaN or inf: write them as strings so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Appends one JSON object per log step to RUN_DIR/metrics.jsonl (only on the main process)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None

    def truncate_after(self, step: int) -> None:
        """On resume: drop lines past the checkpoint's step (they will be written again)."""
        if self.path is None or not self.path.exists():
            return
        keep, lines = [], self.path.read_text().splitlines()
        for line in lines:
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                pass  # a line cut short by a kill
        if keep != lines or not self.path.read_text().endswith("\n"):
            # atomically: a kill during the rewrite must not erase the history
            write_atomic(self.path, "".join(line + "\n" for line in keep))

    def write(self, record: dict) -> None:
        """Append one record."""
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a metrics.jsonl file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
