"""Training: typed config, the loop, checkpoints with exact resume, metrics.

    from rnnscope.train import load_config, train
    result = train(load_config("run.toml", ["--optim.lr", "0.5"]))
"""

from rnnscope.train.config import Config, load_config
from rnnscope.train.loop import DivergenceError, TrainResult, train
from rnnscope.train.restore import load_run, restore_model

__all__ = ["Config", "DivergenceError", "TrainResult", "load_config", "load_run", "restore_model", "train"]
