"""Diagnostics during training: one JSON line per record in RUN_DIR/diagnostics.jsonl.

The training loop calls

    record_step(model, batch, step, run_dir)

every `--diagnostics.every` optimizer steps. It runs one extra traced forward and backward pass
on (the first 16 samples of) the batch and appends

    {"step": 100, "loss": 0.031, "seconds": 0.004, "layers": [<summary of layer0>, ...]}

where each layer summary holds saturation, dead units, gradient flow, memory horizon and the z
histogram (see `summary.summarize_layer`). Training itself is not affected: the pass uses
torch.autograd.grad (the model's .grad stays as it was) and a forked RNG state.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from torch import nn

from rnnscope.diagnostics.probe import LossFn, traced_pass
from rnnscope.diagnostics.summary import summarize
from rnnscope.errors import UserError

FILENAME = "diagnostics.jsonl"
MAX_SAMPLES = 16  # samples of the batch the record traces: enough for fractions and norms, and cheap
HORIZON_SAMPLES = 8  # of those, the samples whose Jacobian chain gives the memory horizon


def record_step(
    model: nn.Module,
    batch,
    step: int,
    run_dir: str | Path,
    *,
    loss_fn: LossFn | None = None,
    epsilon: float = 1e-3,
    max_samples: int = MAX_SAMPLES,
) -> dict:
    """Diagnose the model on this batch and append one line to run_dir/diagnostics.jsonl.

    Args:
        model: the training model (possibly DDP-wrapped) with an rnnscope.nn.RNN inside.
        batch: (inputs, targets), inputs batch-first (B, T, I).
        step: the optimizer step this record belongs to.
        run_dir: the run directory.
        loss_fn: loss(model_output, targets); default MSE (float targets) or cross-entropy.
        epsilon: dead-unit and memory-horizon threshold (--diagnostics.epsilon).
        max_samples: only the first samples of the batch are traced.

    Returns:
        The record that was written.
    """
    inputs, targets = batch[0], batch[1]
    inputs, targets = inputs[:max_samples], targets[:max_samples]
    start = time.perf_counter()
    trace, loss = traced_pass(model, inputs, targets, loss_fn)
    layers = summarize(trace, epsilon, max_samples=min(max_samples, HORIZON_SAMPLES))
    record = jsonable({"step": int(step), "loss": loss, "layers": layers})
    record["seconds"] = time.perf_counter() - start
    path = Path(run_dir) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")
    return record


def jsonable(value):
    """The value with every non-finite float as a string ("inf", "nan"), which JSON cannot hold."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {key: jsonable(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def read_records(run_dir: str | Path) -> list[dict]:
    """Every record of run_dir/diagnostics.jsonl, in order ([] when the file does not exist)."""
    path = Path(run_dir) / FILENAME
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == sum(1 for _ in path.open(encoding="utf-8")):
                    break  # a last line cut short by a killed run: ignore it
                raise UserError(f"{path}, line {number}, is not valid JSON ({exc}); delete that line") from None
    return records
