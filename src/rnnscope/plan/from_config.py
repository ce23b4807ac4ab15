"""The planner's RNNShape from a train Config: the same keys `rnnscope train` reads."""

from __future__ import annotations

import dataclasses

from rnnscope.costs.traffic import RNNShape


def shape_from_config(cfg, input_size: int | None = None, output_size: int | None = None,
                      bytes_per_element: int = 4) -> RNNShape:
    """[model] and [data] as an RNNShape; input/output sizes and every_step from the data task
    unless both sizes are given: a built-in task's from data.shapes (no torch import, so a plan
    stays well under a second), a CSV's from the file (built with a handful of samples)."""
    every_step = cfg.data.predict != "last_step"
    if input_size is None or output_size is None or cfg.data.predict == "auto":
        from rnnscope.data.shapes import task_shape

        data = task_shape(cfg.data)
        if data is None:
            from rnnscope.data.dataset import build_dataset

            data = build_dataset(dataclasses.replace(cfg.data, samples=8), seed=0)
        input_size = data.input_size if input_size is None else input_size
        output_size = data.output_size if output_size is None else output_size
        every_step = data.every_step
    return RNNShape(input_size=input_size, hidden=cfg.model.hidden, layers=cfg.model.layers,
                    seq_len=cfg.data.seq_len, batch=cfg.data.batch_size,
                    output_size=output_size, bytes_per_element=bytes_per_element,
                    every_step=every_step, cell=cfg.model.cell)
