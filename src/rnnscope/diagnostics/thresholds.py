"""The chapter's saturation thresholds, turned into a rule that works for every activation.

The chapter (figure 5-4) says a sigmoid neuron learns slowly beyond |z| > 2.2 and is saturated
beyond |z| > 5.5. What makes those places special is how small the derivative has become there,
relative to its largest value:

    σ'(2.2) / σ'(0) ≈ 0.359      ("slow learning" below this ratio)
    σ'(5.5) / σ'(0) ≈ 0.0162     ("saturated" below this ratio)

The derivative-ratio rule applies the same two ratios to any activation f: a pre-activation z is
"slow" when f'(z)/max f' < 0.359 and "saturated" when f'(z)/max f' < 0.0162. For tanh that gives
|z| > 1.1 and |z| > 2.75 exactly, since tanh(z) = 2σ(2z) − 1. For relu f' is 1 or 0, so both
rules mark exactly the pre-activations z ≤ 0, where no gradient passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from rnnscope.engine.cells import Activation, get_activation

CHAPTER_SLOW_Z = 2.2  # the chapter's |z| where a sigmoid's rate of change "slows down significantly"
CHAPTER_SATURATED_Z = 5.5  # the chapter's |z| where it "becomes negligible from a learning perspective"


def derivative_ratio(activation: Activation, z: torch.Tensor) -> torch.Tensor:
    """f'(z) / max f', computed with the engine's own derivative."""
    return activation.derivative(z) / activation.max_derivative


def _sigmoid_ratio_at(z: float) -> float:
    sigmoid = get_activation("sigmoid")
    return float(derivative_ratio(sigmoid, torch.tensor([z], dtype=torch.float64))[0])


SLOW_RATIO = _sigmoid_ratio_at(CHAPTER_SLOW_Z)  # ≈ 0.3592
SATURATED_RATIO = _sigmoid_ratio_at(CHAPTER_SATURATED_Z)  # ≈ 0.01622


def threshold_z(activation_name: str, ratio: float) -> float | None:
    """The |z| beyond which f'(z)/max f' < ratio, or None where f' is a step (relu).

    Found by bisection on the engine's derivative, which falls monotonically in |z| for the
    smooth activations (sigmoid, tanh).
    """
    activation = get_activation(activation_name)
    probe = torch.linspace(-10.0, 10.0, 2001, dtype=torch.float64)
    values = derivative_ratio(activation, probe)
    if bool(((values == 0) | (values == 1)).all()):  # a step derivative: no |z| threshold exists
        return None
    lo, hi = 0.0, 100.0  # ratio(lo) ≥ ratio > ratio(hi)
    for _ in range(80):  # 100 / 2^80: far below float64's resolution of z
        mid = 0.5 * (lo + hi)
        if float(derivative_ratio(activation, torch.tensor([mid], dtype=torch.float64))[0]) >= ratio:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Thresholds:
    """The two |z| limits of one activation under the derivative-ratio rule."""

    activation: str
    slow_z: float | None  # None: f' is a step (relu), the rule is "z ≤ 0"
    saturated_z: float | None

    def describe(self, which: str) -> str:
        """Human words for a zone: '|z| > 5.5' or 'z ≤ 0 (relu passes no gradient)'."""
        value = self.slow_z if which == "slow" else self.saturated_z
        if value is None:
            return "z ≤ 0"
        return f"|z| > {value:.3g}"


@lru_cache(maxsize=None)
def thresholds(activation_name: str) -> Thresholds:
    """The slow-learning and saturation thresholds of an activation, by the derivative-ratio rule."""
    return Thresholds(
        activation_name,
        threshold_z(activation_name, SLOW_RATIO),
        threshold_z(activation_name, SATURATED_RATIO),
    )
