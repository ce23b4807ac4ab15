"""The engine's speed on this machine: whole training steps timed at a few shapes, then fitted.

Steps of train's own loop (`looptime`) are timed at a few shapes around the configured one, in
every benchmark process at once (1 thread each, sharing the cores as a run's workers do; each
shape started together and averaged over the processes), and fitted by `fit.fit_compute`.
"""

from __future__ import annotations

from rnnscope.calibrate.fit import ComputeFit, fit_compute
from rnnscope.calibrate.looptime import loop_step_seconds


def compute_shapes(shape) -> list[tuple[int, int, int]]:
    """(B, L, H) timed by `measure_compute`: the configured shape, the batch split 2 and 4 ways
    (the local data-parallel runs), one layer (a pipeline stage) and twice the hidden size."""
    B, L, H = shape.batch, shape.layers, shape.hidden
    return sorted({(B, L, H), (max(1, B // 2), L, H), (max(1, B // 4), L, H), (B, 1, H),
                   (B, L, 2 * H)})


def measure_compute(shape, cfg, repeats: int = 3, sync=None, combine=None) -> ComputeFit:
    """Time whole training steps of train's model (1 thread) around `shape` and fit the device.

    Each shape is timed as steps of train's own loop (`looptime.loop_step_seconds`: batch,
    forward, readout, loss, backward, gradient norm, optimizer step; the median of `repeats`
    after a warm-up). In a calibration of several processes, `sync` (a barrier) starts every
    shape together in all of them and `combine` (list of seconds -> the same list averaged over
    the processes) makes every process fit the same points.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        variants = compute_shapes(shape)
        seconds = [loop_step_seconds(cfg, b, l, h, repeats, sync) for b, l, h in variants]
    finally:
        torch.set_num_threads(threads)
    if combine is not None:
        seconds = combine(seconds)
    return fit_compute([(*v, t) for v, t in zip(variants, seconds)], shape)
