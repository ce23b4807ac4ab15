"""Training data: built-in tasks generated in-process and the user's own CSV time series.

    dataset = build_dataset(cfg.data, seed=0)
    dataset.x_train   # (N, T, I), batch first
    dataset.y_train   # (N, T, O) every step, (N, O) last step, or (N, T) class indices
"""

from rnnscope.data.dataset import Dataset, batch_order, build_dataset

__all__ = ["Dataset", "batch_order", "build_dataset"]
