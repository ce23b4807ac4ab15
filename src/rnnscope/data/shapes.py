"""What a built-in task feeds the model, known from [data] alone, without generating it.

    task_shape(cfg.data)   # TaskShape(input_size=2, output_size=1, every_step=False) for adding

The planner reads this (it must not import torch to size a model); the tasks build their Dataset
with the same numbers. A CSV's sizes depend on its columns, so they need the file: None here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.errors import UserError


@dataclass(frozen=True)
class TaskShape:
    """Input features, outputs (features or classes) and whether a target sits at every step."""

    input_size: int
    output_size: int
    every_step: bool


def task_shape(data_cfg) -> TaskShape | None:
    """The built-in task's shape, or a UserError for a [data] the task cannot take; None for a CSV
    or an unknown task (building it says what is wrong)."""
    if data_cfg.csv:
        return None
    T = data_cfg.seq_len
    if data_cfg.task == "sine":
        return TaskShape(1, 1, data_cfg.predict != "last_step")
    if data_cfg.task == "adding":  # two channels: value and marker; the sum at the end
        if data_cfg.predict == "every_step":
            raise UserError("--data.task adding has one target at the last step; "
                            "leave --data.predict at auto or last_step")
        if T < 2:
            raise UserError(f"--data.task adding needs --data.seq_len ≥ 2, got {T}")
        return TaskShape(2, 1, False)
    if data_cfg.task == "copy":  # K symbols, blank and go in; one of K classes out, every step
        if data_cfg.predict == "last_step":
            raise UserError("--data.task copy recalls a pattern over several steps; "
                            "leave --data.predict at auto or every_step")
        L, K = data_cfg.copy_length, data_cfg.copy_symbols
        if T < 2 * L + 1:
            raise UserError(f"--data.task copy needs --data.seq_len ≥ 2·copy_length + 1 = {2 * L + 1} "
                            f"(pattern, go marker, recall), got {T}")
        return TaskShape(K + 2, K, True)
    return None
