"""A finished (or stopped) run brought back: its config, its checkpoint and its trained model."""

from __future__ import annotations

from pathlib import Path

import torch

from rnnscope.errors import UserError
from rnnscope.train.checkpoint import check_structure, checkpoint_dir, load_checkpoint
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
    ckpt = check_structure(load_checkpoint(path), path)
    return from_dict(ckpt["config"], str(path)), ckpt


def restore_model(cfg: Config, ckpt: dict) -> SequenceModel:
    """The trained network of a checkpoint, in eval mode on the CPU."""
    info = ckpt["dataset"]
    model = SequenceModel(info["input_size"], info["output_size"], cfg.model, info["every_step"])
    load_weights(model, ckpt["model"], "the checkpoint")
    return model.eval()


def load_weights(model: torch.nn.Module, weights: dict, source: str) -> None:
    """model.load_state_dict(weights), with a mismatch told in one line (the first name or shape
    that differs) instead of torch's paragraph."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    if missing or extra:
        raise UserError(f"{source} does not fit this model: it lacks {missing[:3]} and has "
                        f"{extra[:3]} besides; was it trained with another --model.layers "
                        "or rnnscope version?")
    for name, tensor in own.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise UserError(f"{source} does not fit this model: {name} has shape "
                            f"{tuple(weights[name].shape)} there, {tuple(tensor.shape)} in the model "
                            "this config builds; resume and evaluate with the run's own --model "
                            "and --data settings")
    model.load_state_dict(weights)
