"""Training data: built-in tasks generated in-process and the user's own CSV time series.

    dataset = build_dataset(cfg.data, seed=0)
    dataset.x_train   # (N, T, I), batch first
    dataset.y_train   # (N, T, O) every step, (N, O) last step, or (N, T) class indices

The names below are imported on first use, so that a torch-free module of this package (shapes,
which the planner reads) does not pay for importing torch.
"""

__all__ = ["Dataset", "batch_order", "build_dataset"]


def __getattr__(name: str):
    if name in __all__:
        from rnnscope.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'rnnscope.data' has no attribute {name!r}")
