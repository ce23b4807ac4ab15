"""The training loop: one function, read top to bottom.

    from rnnscope.train import load_config, train
    result = train(load_config(None, ["--data.task", "adding", "--train.epochs", "3"]))

Single process: `rnnscope train [--config run.toml] [--section.key value ...]`.
Data parallel:  `rnnscope train --parallel.strategy data --parallel.nproc 2` (the CLI starts
`torchrun --nproc-per-node 2 -m rnnscope train ...`; each worker calls train(cfg, distributed=ctx)).

Per step: (TBPTT window) forward → loss → backward → clip → divergence check → optimizer step →
distributed.on_step_end → diagnostics. Per batch: log, validate, checkpoint.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnscope.costs.layout import MODEL_STRATEGIES
from rnnscope.data import batch_order, build_dataset
from rnnscope.data.tasks import IGNORE
from rnnscope.errors import UserError
from rnnscope.train.checkpoint import checkpoint_dir, rng_state, set_rng_state
from rnnscope.train.config import Config, to_dict, to_toml
from rnnscope.train.distributed import DistContext, SingleProcess
from rnnscope.train.forecasting import validation_forecast
from rnnscope.train.lastgood import LastGood
from rnnscope.train.memory import check_memory
from rnnscope.train.metrics import MetricsLog, evaluate, loss_fn
from rnnscope.train.model import SequenceModel, grad_norm, initialize, parameter_count
from rnnscope.train.precision import Precision
from rnnscope.train.progress import Progress
from rnnscope.train.restore import load_weights
from rnnscope.train.resume import apply_optimizer_settings, check_not_finished, load_for_resume
from rnnscope.train.runfiles import RunLock, absolute_paths, write_atomic
from rnnscope.train.schedule import EarlyStop, LrSchedule
from rnnscope.train.setup import (build_optimizer, check_fresh, default_run_dir, diagnostics_hook,
                                  resolve_device, restores_torch_settings)
from rnnscope.train.stop import SignalStop
from rnnscope.train.tensorboard import TensorBoardLog
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
    first_loss_step: int | None = None  # the step of first_loss (the first line of metrics.jsonl)


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


@restores_torch_settings
def train(cfg: Config, *, distributed: DistContext | None = None, resume: bool = False) -> TrainResult:
    """Train from a resolved Config; with resume=True continue cfg.train.run_dir's latest checkpoint.

    Raises DivergenceError (a UserError) when the loss or a gradient becomes NaN or inf.
    """
    if distributed is None:  # a worker: the launcher checked for all of them before starting any
        check_memory(cfg)  # before anything is allocated: refuse what cannot fit
    dist = distributed if distributed is not None else SingleProcess()
    device = getattr(dist, "device", None) or resolve_device(cfg.train.device)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)  # small recurrent matmuls: threads cost more than they give
    # vanishing error terms (σ' ≤ 0.25 per step) fall below float32's smallest normal number
    # within ~60 steps; as subnormals they cost ~10x per step on CPU (T = 100, H = 128, 2 layers).
    # torch cannot say whether flushing was on: restores_torch_settings switches it off at the end
    torch.set_flush_denormal(cfg.train.flush_denormal)
    seed = cfg.train.seed
    random.seed(seed)
    np.random.seed(seed)

    # the run directory, and on resume the checkpoint to continue from
    run_dir = Path(cfg.train.run_dir) if cfg.train.run_dir else default_run_dir()
    cfg.train.run_dir = str(run_dir)
    absolute_paths(cfg)  # config.toml and checkpoints name the run's files from anywhere
    run_lock = RunLock(run_dir).acquire() if dist.is_main else None  # one run per directory
    ckpt = load_for_resume(run_dir, cfg) if resume else None
    if ckpt is None and dist.is_main:
        check_fresh(run_dir)

    # data, then the model (its initial weights come from the seed), then the optimizer
    dataset = build_dataset(cfg.data, seed, normalization=ckpt["normalization"] if ckpt else None)
    net = model_for(cfg, dataset).to(device)
    model = dist.wrap_model(net)  # DDP and friends wrap before the optimizer sees the parameters
    optimizer = build_optimizer(cfg.optim, model.parameters())
    precision = Precision(cfg.train.precision, device)  # autocast (and fp16's gradient scaler)
    step, epoch, batches_done, best_val = 0, 0, 0, math.inf
    if ckpt is not None:
        try:
            load_weights(net, ckpt["model"], f"the checkpoint in {run_dir}")
            optimizer.load_state_dict(dist.local_optimizer_state(ckpt["optimizer"]))
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UserError(f"the checkpoint in {run_dir} does not fit this config "
                            f"({str(exc).strip().splitlines()[0]}); resume without changing "
                            "--model, --data or --optim.name") from None
        apply_optimizer_settings(optimizer, cfg.optim)  # a resume's --optim.lr (momentum, decay) wins
        set_rng_state(ckpt["rng"])
        step, epoch, batches_done, best_val = ckpt["step"], ckpt["epoch"], ckpt["batches_done"], ckpt["best_val"]

    metrics = MetricsLog(run_dir / "metrics.jsonl" if dist.is_main else None)
    tensorboard = TensorBoardLog(run_dir / "tensorboard" if cfg.train.tensorboard and dist.is_main else None)
    if dist.is_main:
        checkpoint_dir(run_dir).mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.toml", to_toml(cfg))
        metrics.truncate_after(step)

    last_good = LastGood(checkpoint_dir(run_dir))  # written once the next step's loss is finite

    def checkpoint(name: str, now: bool = False) -> None:
        last_good.offer(name, {
            "model": net.state_dict(), "optimizer": dist.optimizer_state(optimizer), "step": step,
            "epoch": epoch, "batches_done": batches_done, "best_val": best_val, "rng": rng_state(),
            "config": to_dict(cfg), "normalization": dataset.normalization,
            "dataset": {"kind": dataset.kind, "every_step": dataset.every_step, "name": dataset.name,
                        "input_size": dataset.input_size, "output_size": dataset.output_size,
                        "input_names": dataset.input_names, "target_names": dataset.target_names},
        }, now)

    # how long: epochs × batches × updates per batch, capped by max_steps
    T = dataset.x_train.shape[1]
    windows = tbptt_windows(T, cfg.train.tbptt_k1, cfg.train.tbptt_k2)
    batch_size = min(cfg.data.batch_size, dataset.x_train.shape[0])
    batches_per_epoch = len(batch_order(dataset.x_train.shape[0], batch_size, seed, 0))
    updates_per_batch = sum(window_target(dataset, dataset.y_train, w) is not None for w in windows)
    total = cfg.train.epochs * batches_per_epoch * updates_per_batch  # 0 when epochs = 0
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps) if total else cfg.train.max_steps
    if ckpt is not None:
        check_not_finished(step, total, run_dir)
    record_step = diagnostics_hook() if cfg.diagnostics.every > 0 and dist.is_main else None
    schedule, early_stop = LrSchedule(cfg.optim, optimizer, total), EarlyStop(cfg.train.patience)

    progress = Progress(total, cfg.train.progress and dist.is_main, start_step=step)
    first_loss, loss_sum, loss_count, samples, t_log = None, 0.0, 0, 0, time.perf_counter()
    first_loss_step = None
    t_start, samples_total = t_log, 0
    model.train()
    stop = SignalStop().install()  # Ctrl-C, SIGTERM: finish the batch, checkpoint, Interrupted
    try:
        epochs = range(epoch, cfg.train.epochs) if cfg.train.epochs else itertools.count(epoch)
        for epoch in epochs:
            if step >= total:
                break
            for b, idx in enumerate(batch_order(dataset.x_train.shape[0], batch_size, seed, epoch)):
                if b < batches_done:
                    continue  # resuming inside this epoch: these batches were already trained on
                x, y = dist.shard((dataset.x_train[idx].to(device), dataset.y_train[idx].to(device)))
                step_before = step
                states = {0: None}  # hidden state (detached) at each window boundary; None = zeros
                for w in windows:
                    target = window_target(dataset, y, w)  # None: nothing asked in this window
                    h = states[w.start]
                    with torch.set_grad_enabled(target is not None), precision.autocast():
                        if w.grad_start > w.start:  # steps carried forward, not backpropagated
                            with torch.no_grad():
                                _, h = model(x[:, w.start : w.grad_start], h)
                        y_hat, h_n = model(x[:, w.grad_start : w.end], h)  # (B, t, O) or (B, O)
                    states[w.end] = h_n.detach()
                    if target is None:
                        continue
                    if dataset.every_step:
                        y_hat = y_hat[:, w.loss_start - w.grad_start :]  # the new steps only

                    # forward is done: loss, backward (the engine's BPTT), clip, check, step
                    loss = loss_fn(dataset.kind, y_hat.float(), target)
                    optimizer.zero_grad(set_to_none=True)
                    precision.backward(loss, optimizer)
                    norm = grad_norm(model)
                    if cfg.optim.clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip)
                    loss_value = loss.item()
                    if not (math.isfinite(loss_value) and (math.isfinite(norm) or precision.overflow_expected())):
                        raise diverged(step + 1, loss_value, norm, run_dir, cfg)  # no step, no checkpoint
                    last_good.confirm()  # this loss is finite: the pending checkpoint's weights are good
                    precision.step(optimizer)
                    step += 1
                    schedule.after_step(step)
                    dist.on_step_end(step, model)
                    if record_step is not None and step % cfg.diagnostics.every == 0:
                        tensorboard.diagnostics(record_step(
                            net, (x, y), step, run_dir, epsilon=cfg.diagnostics.epsilon,
                            loss_fn=lambda out, target: loss_fn(dataset.kind, out[0], target)))
                    loss_sum, loss_count = loss_sum + loss_value, loss_count + 1

                batches_done, samples = b + 1, samples + batch_size
                samples_total += batch_size
                progress.advance(step)
                if step >= total or any(crossed(step_before, step, every) for every in
                                        (cfg.train.log_every, cfg.train.checkpoint_every)):
                    dist.before_snapshot(step, optimizer)  # every rank, before a log or checkpoint
                if crossed(step_before, step, cfg.train.log_every) or step >= total:
                    now = time.perf_counter()
                    val = evaluate(net, dataset.kind, dataset.x_val.to(device), dataset.y_val.to(device))
                    loss_mean = dist.average(loss_sum / max(loss_count, 1))  # over all replicas
                    record = {"step": step, "epoch": epoch, "loss": loss_mean,
                              "val_loss": val["loss"], "grad_norm": dist.grad_norm(model, norm),
                              "lr": optimizer.param_groups[0]["lr"],
                              "samples_per_s": samples / max(now - t_log, 1e-9)}
                    if dataset.kind == "classification":
                        record["val_accuracy"] = val["accuracy"]
                    first_loss, first_loss_step = ((record["loss"], step) if first_loss is None
                                                   else (first_loss, first_loss_step))
                    metrics.write(record)
                    tensorboard.metrics(record, getattr(dist, "ledger", None))
                    progress.update(step, epoch, record["loss"], val["loss"], record["samples_per_s"])
                    score = val["loss"] if val["loss"] is not None else record["loss"]
                    if dist.is_main and score < best_val:
                        best_val = score
                        checkpoint("best.pt", now=step >= total)
                    schedule.after_validation(score)
                    if early_stop.should_stop(score):
                        total = step  # patience ran out: this is the last step
                    loss_sum, loss_count, samples, t_log = 0.0, 0, 0, now
                # a stop checkpoints at once where each rank holds the whole model; a model split
                # would need every rank's pieces (before_snapshot), so it keeps its last checkpoint
                stop_here = stop.requested and cfg.parallel.strategy not in MODEL_STRATEGIES
                if dist.is_main and (crossed(step_before, step, cfg.train.checkpoint_every) or step >= total
                                     or stop_here):
                    checkpoint("latest.pt", now=step >= total or stop_here)
                if dist.is_main:
                    stop.check(step, checkpoint_dir(run_dir) / "latest.pt" if stop_here else None)
                if step >= total:
                    break
            else:
                batches_done = 0  # the epoch ran to its end: the next one starts at its first batch
            if step >= total:
                break
    except Exception as exc:
        stop.after_failure(exc)  # a peer that left after a stop signal: Interrupted, not a traceback
        raise
    finally:
        stop.restore()
        progress.close()
        tensorboard.close()
        dist.close(run_dir if dist.is_main else None)
        if run_lock is not None:
            run_lock.release()

    seconds = time.perf_counter() - t_start
    final_train = evaluate(net, dataset.kind, dataset.x_train.to(device), dataset.y_train.to(device))
    final_val = evaluate(net, dataset.kind, dataset.x_val.to(device), dataset.y_val.to(device))
    return TrainResult(
        run_dir=run_dir if dist.is_main else None, steps=step, epochs=epoch + 1, first_loss=first_loss,
        train_loss=final_train["loss"], val_loss=final_val["loss"],
        train_accuracy=final_train.get("accuracy"), val_accuracy=final_val.get("accuracy"),
        best_val_loss=best_val if math.isfinite(best_val) else None, seconds=seconds,
        samples_per_s=samples_total / max(seconds, 1e-9), parameters=parameter_count(net),
        task=dataset.name, stopped_early=early_stop.stopped, first_loss_step=first_loss_step,
        forecast=validation_forecast(net.cpu(), dataset, cfg.data.seq_len) if dist.is_main else None)

