"""TensorBoard event files beside metrics.jsonl (`--train.tensorboard true`): RUN_DIR/tensorboard.

Written through torch.utils.tensorboard.SummaryWriter (the `tensorboard` package's format),
on the main process only; view them with `tensorboard --logdir RUN_DIR/tensorboard`.

    scalars     loss, val_loss, grad_norm, lr, samples_per_s (every metrics line);
                comm_share (parallel runs: the share of those steps' time spent communicating);
                per layer: saturated and slow fractions, gradient growth per step, horizon
    histograms  per layer and diagnostics record: z (the pre-activations), every other
                `*_histogram` a cell's summary carries (e.g. forget-gate values of gated cells),
                and ‖∂L/∂h_t‖ by time step (`grad_norm_by_t`: bucket t holds the norm at t, so
                TensorBoard's histogram view shows the gradient's profile over t at each step)

Like metrics.jsonl this is a log the loop writes, not a picture; drawing stays in rnnscope.report.
"""

from __future__ import annotations

import math
from pathlib import Path

SCALARS = ("loss", "val_loss", "grad_norm", "lr", "samples_per_s", "val_accuracy")


def _float(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class TensorBoardLog:
    """Scalars and histograms for TensorBoard; does nothing when `log_dir` is None."""

    def __init__(self, log_dir: str | Path | None) -> None:
        self.writer = None
        self._last_step = 0  # the previous metrics line's step, for the communication share
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))

    def metrics(self, record: dict, ledger=None) -> None:
        """One metrics line; with a ledger (parallel runs), the communication share since the last."""
        if self.writer is None:
            return
        step = record["step"]
        for key in SCALARS:
            value = _float(record.get(key))
            if value is not None:
                self.writer.add_scalar(f"train/{key}", value, step)
        if ledger is not None:
            rows = [r for r in ledger.rows if r["phase"] == "step" and self._last_step < r["step"] <= step]
            by_step = {r["step"]: r for r in rows}  # every row of a step carries its step's share
            shares = [_float(r["step_comm_fraction"]) for r in by_step.values()]
            shares = [s for s in shares if s is not None]
            if shares:
                self.writer.add_scalar("comm/comm_share", sum(shares) / len(shares), step)
        self._last_step = step

    def diagnostics(self, record: dict | None) -> None:
        """One diagnostics record (diagnostics.jsonl's): per-layer scalars and histograms."""
        if self.writer is None or record is None:
            return
        step = record["step"]
        for layer in record["layers"]:
            name = layer["layer"]
            sat, flow = layer.get("saturation", {}), layer.get("gradient_flow", {})
            for tag, value in (("saturated_fraction", sat.get("saturated_fraction")),
                               ("slow_fraction", sat.get("slow_fraction")),
                               ("grad_growth_per_step", flow.get("growth_per_step")),
                               ("horizon", layer.get("horizon", {}).get("horizon"))):
                if _float(value) is not None:
                    self.writer.add_scalar(f"{name}/{tag}", _float(value), step)
            for key, hist in layer.items():
                if key.endswith("_histogram") and isinstance(hist, dict) and "edges" in hist:
                    self._binned(f"{name}/{key.removesuffix('_histogram')}", hist["edges"], hist["counts"], step)
            norms = [_float(v) or 0.0 for v in flow.get("norms", [])]
            if norms:
                self._binned(f"{name}/grad_norm_by_t", list(range(len(norms) + 1)), norms, step)

    def _binned(self, tag: str, edges: list[float], counts: list[float], step: int) -> None:
        """A histogram already binned: counts[i] in [edges[i], edges[i+1])."""
        total = float(sum(counts))
        if total <= 0:
            return
        centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
        mass = sum(c * x for c, x in zip(counts, centres))
        self.writer.add_histogram_raw(
            tag, min=edges[0], max=edges[-1], num=total, sum=mass,
            sum_squares=sum(c * x * x for c, x in zip(counts, centres)),
            bucket_limits=list(edges[1:]), bucket_counts=list(counts), global_step=step)

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
