"""What `--resume` may change, what it checks, and whether a strategy can resume at all.

A resume continues a checkpoint with the run's config.toml and any `--section.key` options. Some
settings may change on the way (a lower learning rate after a divergence, more steps, where the
CSV lives now); the others would silently train something else than the checkpoint holds, so
they are refused with one line. The same comparison catches a config.toml that does not match
its checkpoint (an old run's file, or one damaged by hand).

Every strategy resumes bitwise (single process, data parallel, the pipeline and the hidden split).
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import torch

from rnnscope.errors import UserError
from rnnscope.train.checkpoint import check_structure, checkpoint_dir, load_checkpoint, set_rng_state
from rnnscope.train.config import to_dict
from rnnscope.train.restore import load_weights
from rnnscope.train.state import TrainState

# settings a resume may change: (section, key); a whole section with key None
SAFE_ON_RESUME: set[tuple[str, str | None]] = {
    ("optim", "lr"), ("optim", "momentum"), ("optim", "weight_decay"), ("optim", "clip"),
    ("train", "epochs"), ("train", "max_steps"), ("train", "run_dir"), ("train", "log_every"),
    ("train", "checkpoint_every"), ("train", "device"), ("train", "threads"),
    ("train", "flush_denormal"), ("train", "progress"),
    ("data", "csv"),  # the same file, somewhere else now (its normalization is the checkpoint's)
    ("parallel", None), ("diagnostics", None),
}
CONFIG_SECTIONS = ("model", "data", "optim", "train")  # what a complete config.toml has at least



def resume_command(run_dir: str | Path) -> str:
    """The exact command that continues the run in `run_dir`."""
    return f"rnnscope train --resume {shlex.quote(str(Path(run_dir).absolute()))}"


def resume_hint(run_dir: str | Path) -> str:
    """"; continue with: rnnscope train --resume DIR"."""
    return f"; continue with: {resume_command(run_dir)}"


def _safe(section: str, key: str) -> bool:
    return (section, key) in SAFE_ON_RESUME or (section, None) in SAFE_ON_RESUME


def check_config_file(path: Path) -> None:
    """Refuse a run's config.toml that is empty, cut short or not TOML (a kill while it was
    written, before rnnscope wrote it atomically): resuming with defaults would train silently
    on the wrong data."""
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is damaged ({exc}); the checkpoint holds the run's config: "
                        "restore config.toml from a copy, or start a new --train.run_dir") from None
    missing = [s for s in CONFIG_SECTIONS if s not in table]
    if missing:
        raise UserError(f"{path} is incomplete (no [{'], ['.join(missing)}] section); it was "
                        "cut short or edited: restore it from a copy, or start a new "
                        "--train.run_dir")


def check_resume(now: dict, saved: dict, run_dir: Path) -> None:
    """Refuse a resume whose config differs from the checkpoint's in a setting that must stay.

    Args:
        now: the resolved config of this resume (to_dict: config.toml, then the options).
        saved: the config stored in the checkpoint.
        run_dir: the run, for the message.
    """
    if not isinstance(saved, dict):
        return  # load_checkpoint's structure check reports a malformed checkpoint
    for section, fields in saved.items():
        if not isinstance(fields, dict):
            continue
        for key, old in fields.items():
            new = now.get(section, {}).get(key, old)  # a field this version lacks: nothing to say
            if new == old or _safe(section, key):
                continue
            safe = ", ".join(f"--{s}.{k}" for s, k in sorted(SAFE_ON_RESUME, key=str) if k)
            raise UserError(
                f"--{section}.{key} cannot change on resume: the checkpoint in {run_dir} was "
                f"trained with {old!r}, this resume asks for {new!r} (from the options or "
                f"{Path(run_dir) / 'config.toml'}); leave it out (a resume may change {safe}), "
                "or start a new --train.run_dir")


def apply_optimizer_settings(optimizer: torch.optim.Optimizer, optim_cfg) -> None:
    """After loading a checkpoint's optimizer state: the learning rate, momentum and weight
    decay of this resume's config win (unchanged values leave the resume bitwise exact)."""
    for group in optimizer.param_groups:
        group["lr"] = optim_cfg.lr
        group["weight_decay"] = optim_cfg.weight_decay
        if "momentum" in group and group["momentum"] != 0:
            group["momentum"] = optim_cfg.momentum


def check_not_finished(step: int, total: int, run_dir: Path) -> None:
    """Refuse to resume a run that already took every step its config asks for."""
    if total and step >= total:
        raise UserError(f"the run in {run_dir} already finished ({step} of {total} steps); to "
                        "train on, resume with a larger --train.epochs or --train.max_steps")


def load_for_resume(run_dir: Path, cfg) -> dict:
    """RUN_DIR/checkpoints/latest.pt, checked: well formed, and its config agrees with this
    resume's in every setting that must not change."""
    path = checkpoint_dir(run_dir) / "latest.pt"
    ckpt = check_structure(load_checkpoint(path), path)
    check_resume(to_dict(cfg), ckpt["config"], run_dir)
    return ckpt


def restore(ckpt: dict, net: torch.nn.Module, optimizer: torch.optim.Optimizer, dist,
            cfg, run_dir: Path) -> TrainState:
    """Load a checkpoint's weights, this rank's share of its optimizer state and its RNG state;
    the TrainState it was saved at."""
    try:
        load_weights(net, ckpt["model"], f"the checkpoint in {run_dir}")
        optimizer.load_state_dict(dist.local_optimizer_state(ckpt["optimizer"]))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"the checkpoint in {run_dir} does not fit this config "
                        f"({str(exc).strip().splitlines()[0]}); resume without changing "
                        "--model, --data or --optim.name") from None
    apply_optimizer_settings(optimizer, cfg.optim)  # a resume's --optim.lr (momentum, decay) wins
    set_rng_state(ckpt["rng"])
    return TrainState(step=ckpt["step"], epoch=ckpt["epoch"], batches_done=ckpt["batches_done"],
                      best_val=ckpt["best_val"])
