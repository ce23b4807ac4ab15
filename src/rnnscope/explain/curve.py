"""`rnnscope explain sigmoid`: the facts of figure 5-4, σ(z), σ'(z) and σ'(z)/σ'(0) at chosen z.

The chapter's thresholds are |z| > 2.2 (learning slows down) and |z| > 5.5 (the rate of change is
negligible); `rnnscope.diagnostics.thresholds` turns them into derivative ratios, which this page
also applies to tanh and relu. The values come from the engine's Activation (forward and
derivative), in float64.
"""

from __future__ import annotations

import math

import torch

from rnnscope.diagnostics.thresholds import SATURATED_RATIO, SLOW_RATIO, derivative_ratio, thresholds
from rnnscope.engine.cells import get_activation
from rnnscope.errors import UserError

DEFAULT_Z = (-7.0, -5.5, -5.0, -2.2, 0.0, 2.2, 5.5)
CHAPTER_PRINTED = 0.0998  # what the chapter prints beside z = -5


def zone(ratio: float) -> str:
    """The chapter's zone of a pre-activation, by its derivative ratio f'(z)/max f'."""
    if math.isclose(ratio, SATURATED_RATIO, rel_tol=1e-9):
        return "threshold: saturated beyond"
    if math.isclose(ratio, SLOW_RATIO, rel_tol=1e-9):
        return "threshold: slow beyond"
    if ratio < SATURATED_RATIO:
        return "saturated"
    if ratio < SLOW_RATIO:
        return "slow learning"
    return "learns"


def default_z(activation: str) -> tuple[float, ...]:
    """The chapter's z values, plus ± the activation's own thresholds where they differ."""
    limits = thresholds(activation)
    extra = {s * v for v in (limits.slow_z, limits.saturated_z) if v is not None for s in (-1, 1)}
    return tuple(sorted(set(DEFAULT_Z) | {round(v, 6) for v in extra}))


def curve_facts(z_values: tuple[float, ...] | None = None, activation: str = "sigmoid") -> dict:
    """f(z), f'(z), f'(z)/max f' and the zone for each z, plus the thresholds and notes."""
    if z_values is None:
        z_values = default_z(activation)
    if not z_values:
        raise UserError("--z is empty; give values like --z=-5,-2.2,0,2.2")
    if not all(math.isfinite(z) for z in z_values):
        raise UserError(f"--z values must be finite numbers, got {list(z_values)}")
    act = get_activation(activation)
    z = torch.tensor(z_values, dtype=torch.float64)
    h = act.forward(z)
    derivative = act.derivative(z, h)
    ratio = derivative_ratio(act, z)
    rows = [
        {"z": float(z[i]), "f": float(h[i]), "derivative": float(derivative[i]), "ratio": float(ratio[i]),
         "zone": zone(float(ratio[i]))}
        for i in range(len(z_values))
    ]
    limits = thresholds(activation)
    notes = [
        f"max f'(z) = {act.max_derivative:g}; the derivative-ratio rule: slow learning where "
        f"f'(z)/max f' < {SLOW_RATIO:.4f} (= σ'(2.2)/σ'(0)), saturated where < {SATURATED_RATIO:.4f} "
        f"(= σ'(5.5)/σ'(0)); for {activation} that is {limits.describe('slow')} and "
        f"{limits.describe('saturated')}",
    ]
    if activation == "sigmoid":
        sig = lambda v: float(torch.sigmoid(torch.tensor(v, dtype=torch.float64)))  # noqa: E731
        notes.append(
            f"the chapter prints y = {CHAPTER_PRINTED} beside z = −5; that is σ(−2.2) = {sig(-2.2):.4f}. "
            f"σ(−5) = {sig(-5.0):.4f} and σ(−7) = {sig(-7.0):.4f}: below z ≈ −5 the output is practically "
            "zero, the neuron is 'dead' and the next step barely sees its hidden state"
        )
    if activation == "relu":
        notes.append("relu's derivative is 1 for z > 0 and 0 for z ≤ 0: no slow zone, only on or off")
    return {
        "activation": activation,
        "max_derivative": act.max_derivative,
        "slow_ratio": SLOW_RATIO,
        "saturated_ratio": SATURATED_RATIO,
        "slow_z": limits.slow_z,
        "saturated_z": limits.saturated_z,
        "rows": rows,
        "notes": notes,
    }
