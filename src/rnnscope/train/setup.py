"""What the loop builds before its first step: the run directory, the device and the optimizer."""

from __future__ import annotations

import contextlib
import datetime
import functools
from pathlib import Path

import torch

from rnnscope.diagnostics.record import record_step
from rnnscope.errors import UserError


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
