"""Checkpoints: written atomically, read back with torch.load(weights_only=True).

A checkpoint holds everything exact resume needs: model and optimizer state, the step, the data
position (epoch, batches done in it), the RNG states of torch, numpy and python, the best
validation loss so far, the resolved config and the CSV normalization. Only plain types and
tensors go in, so the safe unpickler (weights_only=True) can read it.

Atomic: torch.save into a temporary file in the same folder, fsync, then os.replace, so a run
killed at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import numpy as np
import torch

from rnnscope.errors import UserError
from rnnscope.train.runfiles import write_atomic

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


def encode_checkpoint(state: dict) -> bytes:
    """The bytes torch.save writes for a checkpoint (a snapshot: later training does not touch it)."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str | Path, state: dict | bytes) -> None:
    """Write state (or encode_checkpoint's bytes) to path atomically (temporary file, fsync,
    os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, state if isinstance(state, bytes) else encode_checkpoint(state))


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with the safe unpickler; a missing or broken file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; is the run directory right, "
                        "and did the run reach its first checkpoint?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated, foreign or malicious file: one line, no traceback
        text = str(exc)
        named = re.search(r"GLOBAL ([\w.]+)", text)
        if "Weights only load failed" in text and named:
            raise UserError(f"checkpoint {path} cannot be read safely: it would make the "
                            f"unpickler load {named.group(1)}, and rnnscope only loads tensors "
                            "and plain data; do not use a file from an untrusted source, use a "
                            "checkpoint rnnscope wrote") from None
        first = text.strip().splitlines()[0] if text.strip() else ""
        raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {first}); "
                        "it is not an rnnscope checkpoint or it is damaged") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not an rnnscope checkpoint of format {FORMAT}")
    return state


def checkpoint_dir(run_dir: str | Path) -> Path:
    """RUN_DIR/checkpoints."""
    return Path(run_dir) / "checkpoints"


# what every training checkpoint holds, and the type of each (issue 16: malformed checkpoints)
TRAINING_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": dict, "optimizer": dict, "step": int, "epoch": int, "batches_done": int,
    "best_val": (int, float), "rng": dict, "config": dict, "normalization": (dict, type(None)),
    "dataset": dict,
}
DATASET_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "every_step": bool, "name": str, "input_size": int, "output_size": int,
    "input_names": list, "target_names": list,
}


def check_structure(state: dict, path: str | Path) -> dict:
    """Refuse, in one line, a readable checkpoint that lacks what training, resume, predict and
    evaluate need or whose parts disagree; returns `state`."""
    def refuse(what: str) -> UserError:
        return UserError(f"checkpoint {path} is malformed: {what}; it was not written by this "
                         "rnnscope, or it was edited: use another checkpoint (--checkpoint "
                         "best or latest) or train again")

    for key, kind in TRAINING_KEYS.items():
        if key not in state:
            raise refuse(f"it has no {key!r}")
        if not isinstance(state[key], kind) or (kind is int and isinstance(state[key], bool)):
            raise refuse(f"its {key!r} is a {type(state[key]).__name__}")
    if state["step"] < 0 or state["epoch"] < 0 or state["batches_done"] < 0:
        raise refuse(f"step {state['step']}, epoch {state['epoch']}, batches_done "
                     f"{state['batches_done']} cannot be negative")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["model"].items()):
        raise refuse("its 'model' is not a table of named tensors")
    if not all(isinstance(v, dict) for v in state["config"].values()):
        raise refuse("its 'config' is not a table of [section] tables")
    for key, kind in DATASET_KEYS.items():
        if not isinstance(state["dataset"].get(key), kind):
            raise refuse(f"its dataset info has no {key!r} of type {getattr(kind, '__name__', kind)}")
    info = state["dataset"]
    if info["input_size"] < 1 or info["output_size"] < 1:
        raise refuse(f"input_size {info['input_size']} and output_size {info['output_size']} "
                     "must be ≥ 1")
    readout = state["model"].get("readout.weight")
    if readout is not None and (readout.dim() != 2 or readout.shape[0] != info["output_size"]):
        raise refuse(f"its readout has shape {tuple(readout.shape)} but the dataset info says "
                     f"{info['output_size']} outputs")
    if info["kind"] == "regression" and len(info["target_names"]) not in (0, info["output_size"]):
        raise refuse(f"{len(info['target_names'])} target names for {info['output_size']} outputs")
    rng = state["rng"]
    if not isinstance(rng.get("torch"), torch.Tensor) or not isinstance(rng.get("numpy"), dict) \
            or not isinstance(rng.get("python"), (tuple, list)):
        raise refuse("its 'rng' lacks the torch, numpy or python state")
    return state
