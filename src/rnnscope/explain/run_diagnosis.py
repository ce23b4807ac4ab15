"""Diagnostics of a run directory written by `rnnscope train`: the checkpoint's model, re-traced
on a batch of the run's own data, plus the records taken during training (diagnostics.jsonl)."""

from __future__ import annotations

from pathlib import Path

import torch

from rnnscope.diagnostics.probe import traced_pass
from rnnscope.diagnostics.record import read_records
from rnnscope.diagnostics.summary import summarize
from rnnscope.errors import UserError

BATCH = 32  # sequences the checkpoint's model is traced on


def run_loss(kind: str):
    """The run's own loss as loss_fn(model_output, targets): SequenceModel returns (ŷ, h_n)."""
    from rnnscope.train.metrics import loss_fn

    return lambda output, targets: loss_fn(kind, output[0], targets)


def run_batch(dataset, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """The first sequences of the validation part (of the training part when there is none)."""
    if dataset.has_val:
        return dataset.x_val[:batch], dataset.y_val[:batch]
    return dataset.x_train[:batch], dataset.y_train[:batch]


def diagnose_run(run_dir: str | Path, checkpoint: str = "latest", epsilon: float | None = None,
                 data_csv: str | None = None) -> dict:
    """Trace the run's checkpointed model on its own data, and read its training-time records.

    Returns {"run_dir", "step", "loss", "epsilon", "layers": [summary, …] (now),
    "records": [diagnostics.jsonl records], "source": where "layers" came from}.
    """
    from rnnscope.data import build_dataset
    from rnnscope.train.checkpoint import checkpoint_dir
    from rnnscope.train.restore import load_run, restore_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; give the --train.run_dir of a run")
    records = read_records(run_dir)
    if not (checkpoint_dir(run_dir) / f"{checkpoint}.pt").exists():
        if not records:
            raise UserError(f"{run_dir} has neither checkpoints/{checkpoint}.pt nor diagnostics.jsonl; "
                            "is it a run directory of `rnnscope train`?")
        return _from_last_record(run_dir, records, epsilon, "no checkpoint yet")
    cfg, ckpt = load_run(run_dir, checkpoint)
    if data_csv:  # the run's CSV, where it lives now
        cfg.data.csv = data_csv
    epsilon = cfg.diagnostics.epsilon if epsilon is None else epsilon
    model = restore_model(cfg, ckpt)
    try:
        dataset = build_dataset(cfg.data, cfg.train.seed, normalization=ckpt.get("normalization"))
    except UserError as exc:  # e.g. the run's CSV has moved since training
        if not records:
            raise
        return _from_last_record(run_dir, records, epsilon, f"cannot rebuild the run's data: {exc}")
    trace, loss = traced_pass(model, *run_batch(dataset), loss_fn=run_loss(dataset.kind))
    return {"run_dir": str(run_dir), "step": ckpt.get("step"), "loss": loss, "epsilon": epsilon,
            "layers": summarize(trace, epsilon), "records": records,
            "source": f"checkpoints/{checkpoint}.pt (step {ckpt.get('step')}), traced on {BATCH} sequences"}


def _from_last_record(run_dir: Path, records: list[dict], epsilon: float | None, why: str) -> dict:
    """The latest picture when the checkpoint cannot be traced: the last training-time record."""
    last = records[-1]
    layers = last["layers"]
    return {"run_dir": str(run_dir), "step": last["step"], "loss": last.get("loss"),
            "epsilon": layers[0]["horizon"]["epsilon"] if layers else (epsilon or 1e-3), "layers": layers,
            "records": records, "source": f"diagnostics.jsonl, step {last['step']} ({why})"}
