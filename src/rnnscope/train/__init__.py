"""Training: typed config, the loop, checkpoints with exact resume, metrics.

    from rnnscope.train import load_config, train
    result = train(load_config("run.toml", ["--optim.lr", "0.5"]))

The names below are imported on first use, so that `rnnscope --help` and the CLI's parsers,
which need only the config, do not pay for importing torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "Config": "rnnscope.train.config",
    "load_config": "rnnscope.train.config",
    "DivergenceError": "rnnscope.train.loop",
    "TrainResult": "rnnscope.train.loop",
    "train": "rnnscope.train.loop",
    "load_run": "rnnscope.train.restore",
    "restore_model": "rnnscope.train.restore",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'rnnscope.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
