"""Checkpoints: written atomically, read back with torch.load(weights_only=True).

A checkpoint holds everything exact resume needs: model and optimizer state, the step, the data
position (epoch, batches done in it), the RNG states of torch, numpy and python, the best
validation loss so far, the resolved config and the CSV normalization. Only plain types and
tensors go in, so the safe unpickler (weights_only=True) can read it.

Atomic: torch.save into a temporary file in the same folder, fsync, then os.replace, so a run
killed at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from rnnscope.errors import UserError

FORMAT = 1  # bump when the layout changes


def rng_state() -> dict:
    """The global RNG states of torch, numpy and python, as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write state to path atomically (temporary file, fsync, os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when writing failed
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with the safe unpickler; a missing or broken file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; is the run directory right, "
                        "and did the run reach its first checkpoint?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: name it, never a traceback
        raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                        "it is not an rnnscope checkpoint or it is damaged") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not an rnnscope checkpoint of format {FORMAT}")
    return state


def checkpoint_dir(run_dir: str | Path) -> Path:
    """RUN_DIR/checkpoints."""
    return Path(run_dir) / "checkpoints"
