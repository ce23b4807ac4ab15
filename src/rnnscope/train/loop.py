"""The training loop, read top to bottom: `train()` tells the story, one named step per function.

    from rnnscope.train import load_config, train
    result = train(load_config(None, ["--data.task", "adding", "--train.epochs", "3"]))

Single process: `rnnscope train [--config run.toml] [--section.key value ...]`.
Data parallel:  `rnnscope train --parallel.strategy data --parallel.nproc 2` (the CLI starts
`torchrun --nproc-per-node 2 -m rnnscope train ...`; each worker calls train(cfg, distributed=ctx)).

    set_up             process settings, run directory (on resume its checkpoint), data, model,
                       optimizer, logs, and `total_steps`, the one count of optimizer steps
    remaining_batches  epoch after epoch, the batches not yet trained on, until the last step
      train_batch      this rank's share; per TBPTT window: forward, then `update`
        update         loss → backward → clip → divergence check → optimizer step → on_step_end
        diagnose       on a --diagnostics.every step: before_diagnostics, then the probe
      before_snapshot  every rank, at a batch end that logs or checkpoints
      log_and_validate a metrics line, validation, best.pt, lr plateau, patience
      checkpoint       latest.pt; a stop signal ends the run here
    close, finish      release the run's resources; the final evaluation and the TrainResult

Where training stands lives in one `TrainState`, what the run is built from in one `Run`
(train/state.py); the set-up's parts are in train/setup.py and train/resume.py.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnscope.costs.layout import MODEL_STRATEGIES
from rnnscope.data import batch_order, build_dataset
from rnnscope.data.tasks import IGNORE
from rnnscope.errors import UserError
from rnnscope.train.checkpoint import checkpoint_dir, rng_state
from rnnscope.train.config import Config, to_dict
from rnnscope.train.distributed import DistContext, SingleProcess
from rnnscope.train.forecasting import validation_forecast
from rnnscope.train.lastgood import LastGood
from rnnscope.train.memory import check_memory
from rnnscope.train.metrics import evaluate, loss_fn
from rnnscope.train.model import SequenceModel, grad_norm, initialize, parameter_count
from rnnscope.train.precision import Precision
from rnnscope.train.progress import Progress
from rnnscope.train.resume import check_not_finished, restore
from rnnscope.train.schedule import EarlyStop, LrSchedule
from rnnscope.train.setup import (apply_process_settings, build_optimizer, claim_run_dir, diagnostics_hook,
                                  open_logs, resolve_device, restores_torch_settings)
from rnnscope.train.state import Run, TrainState
from rnnscope.train.stop import SignalStop
from rnnscope.train.tbptt import tbptt_windows


class DivergenceError(UserError):
    """The loss or the gradients became NaN or inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What a finished run reports (the CLI's summary table)."""

    run_dir: Path | None
    steps: int
    epochs: int  # epochs started (the last one may be partial when max_steps stopped it)
    first_loss: float | None  # the first logged training loss, to show the improvement
    train_loss: float | None  # over the whole training set, at the end
    val_loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None
    best_val_loss: float | None
    seconds: float
    samples_per_s: float
    parameters: int
    task: str
    stopped_early: bool = False  # --train.patience ended the run
    forecast: dict | None = None  # CSV: the final model and the baselines on validation (train/forecasting.py)
    first_loss_step: int | None = None  # the first line of metrics.jsonl (first_loss's step)


def crossed(before: int, now: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, now]."""
    return now // every > before // every


def diverged(step: int, loss: float, norm: float, run_dir: Path, cfg: Config) -> DivergenceError:
    """The error for a NaN or inf loss or gradient norm: the step, the quantity, what was kept."""
    what, value = ("loss", loss) if not math.isfinite(loss) else ("gradient norm", norm)
    latest = checkpoint_dir(run_dir) / "latest.pt"
    kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written before it"
    return DivergenceError(f"training diverged at step {step}: the {what} is {value}; {kept}. Lower "
                           f"--optim.lr (now {cfg.optim.lr}), set --optim.clip, or change --model.init_scale")


def window_target(dataset, y: torch.Tensor, w) -> torch.Tensor | None:
    """The targets of one TBPTT window, or None when the window asks for nothing."""
    if not dataset.every_step:
        return y if w.end == dataset.x_train.shape[1] else None  # many-to-one: the last window
    target = y[:, w.loss_start : w.end]  # (B, t, O) or (B, t) class indices
    if dataset.kind == "classification" and not bool((target != IGNORE).any()):
        return None  # e.g. the copy task before its recall steps
    return target


def model_for(cfg: Config, dataset) -> SequenceModel:
    """The network for this dataset, seeded and initialized as the config says."""
    torch.manual_seed(cfg.train.seed)
    model = SequenceModel(dataset.input_size, dataset.output_size, cfg.model, dataset.every_step)
    initialize(model, cfg.model.init, cfg.model.init_scale, cfg.model.forget_bias)
    return model


def total_steps(cfg: Config, dataset, windows: list, batch_size: int) -> int:
    """The run's optimizer steps: epochs × batches × updates per batch, capped by --train.max_steps
    (which alone counts when --train.epochs is 0). The loop, the lr schedule and the progress bar
    all read this one number."""
    batches_per_epoch = len(batch_order(dataset.x_train.shape[0], batch_size, cfg.train.seed, 0))
    updates_per_batch = sum(window_target(dataset, dataset.y_train, w) is not None for w in windows)
    total = cfg.train.epochs * batches_per_epoch * updates_per_batch  # 0 when epochs = 0
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps) if total else cfg.train.max_steps
    return total


@restores_torch_settings
def train(cfg: Config, *, distributed: DistContext | None = None, resume: bool = False) -> TrainResult:
    """Train from a resolved Config; with resume=True continue cfg.train.run_dir's latest checkpoint.

    Raises DivergenceError (a UserError) when the loss or a gradient becomes NaN or inf.
    """
    if distributed is None:  # a worker: the launcher checked for all of them before starting any
        check_memory(cfg)  # before anything is allocated: refuse what cannot fit
    run, state = set_up(cfg, distributed if distributed is not None else SingleProcess(), resume)
    run.model.train()
    run.stop.install()  # Ctrl-C, SIGTERM: finish the batch, checkpoint, then Interrupted
    try:
        for b, idx in remaining_batches(run, state):
            step_before = state.step
            train_batch(run, state, idx)
            state.batch_trained(b, run.batch_size)
            run.progress.advance(state.step)
            logs = crossed(step_before, state.step, cfg.train.log_every) or state.done
            saves = crossed(step_before, state.step, cfg.train.checkpoint_every) or state.done
            if logs or saves:
                run.dist.before_snapshot(state.step, run.optimizer)  # every rank: the whole model here
            if logs:
                log_and_validate(run, state)  # patience may make this step the last
            checkpoint(run, state, due=saves or state.done)
    except Exception as exc:
        if run.stop.requested and run.dist.is_main:
            # a stop that did not reach the end of its batch (a second signal, or a peer that
            # left first): the last completed step's snapshot, still pending, is written as the
            # stop would have written it (its weights are finite: offer checked them)
            run.last_good.confirm()
        run.stop.after_failure(exc)  # a peer that left after a stop signal: Interrupted, not a traceback
        raise
    finally:
        close(run)
    return finish(run, state)


# -- set up ----------------------------------------------------------------------------------------

def set_up(cfg: Config, dist: DistContext, resume: bool) -> tuple[Run, TrainState]:
    """Everything before the first batch, in the order resume's bitwise equality relies on (the
    checkpoint's RNG state is set after the model's seeded initialization)."""
    device = getattr(dist, "device", None) or resolve_device(cfg.train.device)
    apply_process_settings(cfg)
    run_dir, lock, ckpt = claim_run_dir(cfg, dist, resume)
    # data, then the model (its initial weights come from the seed), then the optimizer
    dataset = build_dataset(cfg.data, cfg.train.seed, normalization=ckpt["normalization"] if ckpt else None)
    net = model_for(cfg, dataset).to(device)
    model = dist.wrap_model(net)  # DDP and friends wrap before the optimizer sees the parameters
    optimizer = build_optimizer(cfg.optim, model.parameters())
    precision = Precision(cfg.train.precision, device)
    state = restore(ckpt, net, optimizer, dist, cfg, run_dir) if ckpt is not None else TrainState()
    precision.load_state_dict(ckpt.get("grad_scaler") if ckpt else None)  # fp16: the scale where it stood
    metrics, tensorboard = open_logs(cfg, dist, run_dir, state.step)

    windows = tbptt_windows(dataset.x_train.shape[1], cfg.train.tbptt_k1, cfg.train.tbptt_k2)
    batch_size = min(cfg.data.batch_size, dataset.x_train.shape[0])
    state.total_steps = total_steps(cfg, dataset, windows, batch_size)
    if ckpt is not None:
        check_not_finished(state.step, state.total_steps, run_dir)
    run = Run(cfg=cfg, dist=dist, device=device, run_dir=run_dir, lock=lock, dataset=dataset, net=net,
              model=model, optimizer=optimizer, precision=precision, windows=windows, batch_size=batch_size,
              metrics=metrics, tensorboard=tensorboard,
              progress=Progress(state.total_steps, cfg.train.progress and dist.is_main, start_step=state.step),
              last_good=LastGood(checkpoint_dir(run_dir)),
              schedule=LrSchedule(cfg.optim, optimizer, state.total_steps),
              early_stop=EarlyStop(cfg.train.patience),
              record_step=diagnostics_hook() if cfg.diagnostics.every > 0 and dist.is_main else None,
              stop=SignalStop())
    state.t_start = state.t_log = time.perf_counter()
    return run, state


# -- one batch -------------------------------------------------------------------------------------

def remaining_batches(run: Run, state: TrainState) -> Iterator[tuple[int, torch.Tensor]]:
    """(index in its epoch, sequence indices) of each batch still to train on, epoch after epoch,
    until the last step; state.epoch follows the epochs."""
    cfg, n = run.cfg, run.dataset.x_train.shape[0]
    epochs = range(state.epoch, cfg.train.epochs) if cfg.train.epochs else itertools.count(state.epoch)
    for epoch in epochs:
        state.epoch = epoch
        if state.done:
            return
        for b, idx in enumerate(batch_order(n, run.batch_size, cfg.train.seed, epoch)):
            if b < state.batches_done:
                continue  # resuming inside this epoch: these batches were already trained on
            yield b, idx
            if state.done:
                return  # batches_done stays: a checkpoint of the last step says where it stood
        state.batches_done = 0  # the epoch ran to its end: the next one starts at its first batch


def train_batch(run: Run, state: TrainState, idx: torch.Tensor) -> None:
    """One batch: this rank's share of it, then each TBPTT window's forward and, where the window
    asks for something, one update."""
    data = run.dataset
    x, y = run.dist.shard((data.x_train[idx].to(run.device), data.y_train[idx].to(run.device)))
    states = {0: None}  # hidden state (detached) at each window boundary; None = zeros
    for w in run.windows:
        target = window_target(data, y, w)  # None: nothing asked in this window
        y_hat, h_n = forward(run, x, states[w.start], w, grad=target is not None)
        states[w.end] = h_n.detach()
        if target is None:
            continue
        if data.every_step:
            y_hat = y_hat[:, w.loss_start - w.grad_start :]  # the new steps only
        update(run, state, y_hat, target)
        diagnose(run, state, (x, y))


def forward(run: Run, x: torch.Tensor, h, w, grad: bool):
    """(ŷ, h_n) of window w: (B, t, O) or (B, O), and the state after it."""
    with torch.set_grad_enabled(grad), run.precision.autocast():
        if w.grad_start > w.start:  # steps carried forward, not backpropagated
            with torch.no_grad():
                _, h = run.model(x[:, w.start : w.grad_start], h)
        return run.model(x[:, w.grad_start : w.end], h)


def update(run: Run, state: TrainState, y_hat: torch.Tensor, target: torch.Tensor) -> None:
    """Loss, backward (the engine's BPTT), clip, divergence check, optimizer step."""
    optimizer, precision = run.optimizer, run.precision
    loss = loss_fn(run.dataset.kind, y_hat.float(), target)
    optimizer.zero_grad(set_to_none=True)
    precision.backward(loss, optimizer)
    norm = grad_norm(run.model)
    if run.cfg.optim.clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.optim.clip)
    loss_value = loss.item()
    if not (math.isfinite(loss_value) and (math.isfinite(norm) or precision.overflow_expected())):
        raise diverged(state.step + 1, loss_value, norm, run.run_dir, run.cfg)  # no step, no checkpoint
    run.last_good.confirm()  # this loss is finite: the pending checkpoint's weights are good
    precision.step(optimizer)
    state.step += 1
    run.schedule.after_step(state.step)
    run.dist.on_step_end(state.step, run.model)
    state.grad_norm = norm
    state.loss_sum, state.loss_count = state.loss_sum + loss_value, state.loss_count + 1


def diagnose(run: Run, state: TrainState, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """On a --diagnostics.every step: every rank's hook (a model split gathers the whole model),
    then the main rank's probe of `net` on this batch."""
    every = run.cfg.diagnostics.every
    if every == 0 or state.step % every != 0:
        return
    run.dist.before_diagnostics(state.step)
    if run.record_step is not None:
        kind = run.dataset.kind
        run.tensorboard.diagnostics(run.record_step(
            run.net, batch, state.step, run.run_dir, epsilon=run.cfg.diagnostics.epsilon,
            loss_fn=lambda out, target: loss_fn(kind, out[0], target)))


# -- log, validate, checkpoint ---------------------------------------------------------------------

def log_and_validate(run: Run, state: TrainState) -> None:
    """A metrics line (loss and gradient norm over every replica and piece), validation, best.pt,
    the lr plateau and patience. Every rank calls it (average and grad_norm are collectives)."""
    dist, data = run.dist, run.dataset
    now = time.perf_counter()
    val = evaluate(run.net, data.kind, data.x_val.to(run.device), data.y_val.to(run.device))
    loss_mean = dist.average(state.loss_sum / max(state.loss_count, 1))  # over all replicas
    record = {"step": state.step, "epoch": state.epoch, "loss": loss_mean,
              "val_loss": val["loss"], "grad_norm": dist.grad_norm(run.model, state.grad_norm),
              "lr": run.optimizer.param_groups[0]["lr"],
              "samples_per_s": state.samples / max(now - state.t_log, 1e-9)}
    if data.kind == "classification":
        record["val_accuracy"] = val["accuracy"]
    if state.first_loss is None:
        state.first_loss, state.first_loss_step = record["loss"], state.step
    run.metrics.write(record)
    run.tensorboard.metrics(record, getattr(dist, "ledger", None))
    run.progress.update(state.step, state.epoch, record["loss"], val["loss"], record["samples_per_s"])
    score = val["loss"] if val["loss"] is not None else record["loss"]
    if dist.is_main and score < state.best_val:
        state.best_val = score
        save(run, state, "best.pt", now=state.done)
    run.schedule.after_validation(score)
    if run.early_stop.should_stop(score):
        state.total_steps = state.step  # patience ran out: this is the last step
    state.loss_sum, state.loss_count, state.samples, state.t_log = 0.0, 0, 0, now


def checkpoint(run: Run, state: TrainState, due: bool) -> None:
    """latest.pt when due (or at a stop signal), on the main rank; a signal ends the run here."""
    # a stop checkpoints at once where each rank holds the whole model; a model split
    # would need every rank's pieces (before_snapshot), so it keeps its last checkpoint
    stop_here = run.stop.requested and run.cfg.parallel.strategy not in MODEL_STRATEGIES
    if not run.dist.is_main:
        return
    if due or stop_here:
        save(run, state, "latest.pt", now=state.done or stop_here)
    run.stop.check(state.step, checkpoint_dir(run.run_dir) / "latest.pt" if stop_here else None)


def save(run: Run, state: TrainState, name: str, now: bool = False) -> None:
    """Offer checkpoints/`name`: written once the next step's loss is finite, or at once (now)."""
    data = run.dataset
    run.last_good.offer(name, {
        "model": run.net.state_dict(), "optimizer": run.dist.optimizer_state(run.optimizer),
        "step": state.step, "epoch": state.epoch, "batches_done": state.batches_done,
        "best_val": state.best_val, "rng": rng_state(), "config": to_dict(run.cfg),
        "normalization": data.normalization, "grad_scaler": run.precision.state_dict(),
        "dataset": {"kind": data.kind, "every_step": data.every_step, "name": data.name,
                    "input_size": data.input_size, "output_size": data.output_size,
                    "input_names": data.input_names, "target_names": data.target_names},
    }, now)


# -- finish ----------------------------------------------------------------------------------------

def close(run: Run) -> None:
    """Release what the run holds, also after an error: signal handlers, bars, files, the
    DistContext (which gathers its ledger), the lock."""
    run.stop.restore()
    run.progress.close()
    run.tensorboard.close()
    run.dist.close(run.run_dir)
    if run.lock is not None:
        run.lock.release()


def finish(run: Run, state: TrainState) -> TrainResult:
    """The final evaluation on the whole training and validation sets, and the run's summary."""
    seconds = time.perf_counter() - state.t_start
    net, data, device = run.net, run.dataset, run.device
    final_train = evaluate(net, data.kind, data.x_train.to(device), data.y_train.to(device))
    final_val = evaluate(net, data.kind, data.x_val.to(device), data.y_val.to(device))
    main = run.dist.is_main
    return TrainResult(
        run_dir=run.run_dir if main else None, steps=state.step, epochs=state.epoch + 1,
        first_loss=state.first_loss, train_loss=final_train["loss"], val_loss=final_val["loss"],
        train_accuracy=final_train.get("accuracy"), val_accuracy=final_val.get("accuracy"),
        best_val_loss=state.best_val if math.isfinite(state.best_val) else None, seconds=seconds,
        samples_per_s=state.samples_total / max(seconds, 1e-9), parameters=parameter_count(net),
        task=data.name, stopped_early=run.early_stop.stopped, first_loss_step=state.first_loss_step,
        forecast=validation_forecast(net.cpu(), data, run.cfg.data.seq_len) if main else None)
