"""A finished (or stopped) run brought back: its config, its checkpoint and its trained model."""

from __future__ import annotations

from pathlib import Path

from rnnscope.errors import UserError
from rnnscope.train.checkpoint import checkpoint_dir, load_checkpoint
from rnnscope.train.config import Config, from_dict
from rnnscope.train.model import SequenceModel


def load_run(run_dir: str | Path, which: str = "best") -> tuple[Config, dict]:
    """(the run's config, its checkpoint); `which` is "best" (by validation loss) or "latest"."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; give the --train.run_dir of a run")
    if which not in ("best", "latest"):
        raise UserError(f"--checkpoint must be best or latest, got {which!r}")
    path = checkpoint_dir(run_dir) / f"{which}.pt"
    ckpt = load_checkpoint(path)
    return from_dict(ckpt["config"], str(path)), ckpt


def restore_model(cfg: Config, ckpt: dict) -> SequenceModel:
    """The trained network of a checkpoint, in eval mode on the CPU."""
    info = ckpt["dataset"]
    model = SequenceModel(info["input_size"], info["output_size"], cfg.model, info["every_step"])
    model.load_state_dict(ckpt["model"])
    return model.eval()
