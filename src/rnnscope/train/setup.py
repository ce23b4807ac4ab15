"""What the loop builds before its first step: the process settings, the run directory and its
logs, the device and the optimizer."""

from __future__ import annotations

import contextlib
import datetime
import functools
import random
from pathlib import Path

import numpy as np
import torch

from rnnscope.diagnostics.record import record_step
from rnnscope.errors import UserError
from rnnscope.train.checkpoint import checkpoint_dir
from rnnscope.train.config import to_toml
from rnnscope.train.metrics import MetricsLog
from rnnscope.train.resume import load_for_resume
from rnnscope.train.runfiles import RunLock, absolute_paths, write_atomic
from rnnscope.train.tensorboard import TensorBoardLog


def default_run_dir(root: str | Path = "runs") -> Path:
    """runs/<date-time>, with a suffix when that name is taken."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = Path(root) / stamp, 2
    while path.exists():
        path, n = Path(root) / f"{stamp}-{n}", n + 1
    return path


def check_fresh(run_dir: Path) -> None:
    """Refuse to start a new run on top of an old one (one that was stopped before its first
    checkpoint has nothing to continue: a new start replaces it)."""
    if (run_dir / "checkpoints" / "latest.pt").exists():
        raise UserError(f"--train.run_dir {run_dir} already holds a run; continue it with "
                        f"--resume {run_dir} or choose another --train.run_dir")


def resolve_device(name: str) -> torch.device:
    """--train.device as a torch.device ("auto": cuda when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--train.device cuda, but torch sees no CUDA device here; use cpu or auto")
    return torch.device(name)


def build_optimizer(optim_cfg, params) -> torch.optim.Optimizer:
    """SGD (the chapter's gradient descent), SGD with momentum, or Adam."""
    if optim_cfg.name == "sgd":
        return torch.optim.SGD(params, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay)
    if optim_cfg.name == "momentum":
        return torch.optim.SGD(params, lr=optim_cfg.lr, momentum=optim_cfg.momentum,
                               weight_decay=optim_cfg.weight_decay)
    if optim_cfg.name == "adam":
        return torch.optim.Adam(params, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay)
    raise UserError(f"unknown --optim.name {optim_cfg.name!r}; choose sgd, momentum or adam")


def diagnostics_hook():
    """What the loop records diagnostics through: rnnscope.diagnostics.record.record_step."""
    return record_step


@contextlib.contextmanager
def denormals_flushed(enabled: bool):
    """Inside the block, CPU ops flush subnormal floats to zero when `enabled`
    (--train.flush_denormal); afterwards flushing is off, torch's default (torch cannot report
    whether it was on before)."""
    torch.set_flush_denormal(enabled)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def restores_torch_settings(train_fn):
    """Decorate train(): whichever way it ends (returned, raised before or inside its loop), the
    process-wide settings it changes are put back: flushing subnormals off (torch's default: torch
    cannot report whether it was on before) and the number of CPU threads as it was."""

    @functools.wraps(train_fn)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        try:
            return train_fn(*args, **kwargs)
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(threads)

    return wrapper


def apply_process_settings(cfg) -> None:
    """Threads, denormal flushing and the Python and numpy seeds (restores_torch_settings puts
    torch's back when train() returns)."""
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)  # small recurrent matmuls: threads cost more than they give
    # vanishing error terms (σ' ≤ 0.25 per step) fall below float32's smallest normal number
    # within ~60 steps; as subnormals they cost ~10x per step on CPU (T = 100, H = 128, 2 layers).
    # torch cannot say whether flushing was on: restores_torch_settings switches it off at the end
    torch.set_flush_denormal(cfg.train.flush_denormal)
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)


def claim_run_dir(cfg, dist, resume: bool) -> tuple[Path, RunLock | None, dict | None]:
    """The run directory, its lock (main rank), and on resume the checkpoint to continue from."""
    run_dir = Path(cfg.train.run_dir) if cfg.train.run_dir else default_run_dir()
    cfg.train.run_dir = str(run_dir)
    absolute_paths(cfg)  # config.toml and checkpoints name the run's files from anywhere
    lock = RunLock(run_dir).acquire() if dist.is_main else None  # one run per directory
    ckpt = load_for_resume(run_dir, cfg) if resume else None
    if ckpt is None and dist.is_main:
        check_fresh(run_dir)
    return run_dir, lock, ckpt


def open_logs(cfg, dist, run_dir: Path, step: int) -> tuple[MetricsLog, TensorBoardLog]:
    """metrics.jsonl (cut after `step` on resume), TensorBoard and config.toml: the main rank's."""
    metrics = MetricsLog(run_dir / "metrics.jsonl" if dist.is_main else None)
    tensorboard = TensorBoardLog(run_dir / "tensorboard" if cfg.train.tensorboard and dist.is_main else None)
    if dist.is_main:
        checkpoint_dir(run_dir).mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.toml", to_toml(cfg))
        metrics.truncate_after(step)
    return metrics, tensorboard
