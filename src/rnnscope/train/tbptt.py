"""Truncated BPTT: which time steps each optimizer update covers.

TBPTT(k1, k2) (Williams and Peng): every k1 time steps an update is made, backpropagating through
the last k2 steps; the hidden state is carried (detached) from one window to the next, so the
network still sees the whole history in its forward pass. k1 = 0 means full BPTT: one update per
sequence over all T steps.
"""

from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    """One update's time steps, as half-open ranges over [0, T).

    start: where the state is taken from (a window boundary already reached, or an earlier
           boundary when k2 > k1); steps start..grad_start run without a graph.
    grad_start..end: the steps backpropagated through.
    loss_start..end: the steps whose targets enter this update's loss (the new ones).
    """

    start: int
    grad_start: int
    loss_start: int
    end: int


def tbptt_windows(T: int, k1: int, k2: int) -> list[Window]:
    """The windows of one sequence of T steps.

    Args:
        T: sequence length.
        k1: time steps between updates (0 = full BPTT: one window over everything).
        k2: time steps backpropagated (0 = k1). When k2 > k1 it must be a multiple of k1, so the
            window starts on a boundary whose hidden state is known.
    """
    if k1 <= 0:
        return [Window(0, 0, 0, T)]
    k2 = k2 or k1
    assert k2 <= k1 or k2 % k1 == 0, "config validation guarantees this"
    windows = []
    for begin in range(0, T, k1):
        end = min(begin + k1, T)
        if k2 <= k1:
            grad_start = max(begin, end - k2)
            windows.append(Window(begin, grad_start, begin, end))
        else:
            start = max(0, begin - (k2 - k1))  # an earlier boundary: its state is stored
            windows.append(Window(start, start, begin, end))
    return windows
