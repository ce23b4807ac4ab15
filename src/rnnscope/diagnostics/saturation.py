"""Saturated neurons: where the layer's pre-activations z sit on the activation's curve.

A pre-activation counts as "slow" or "saturated" when f'(z)/max f' is below the ratios that the
chapter's sigmoid thresholds |z| > 2.2 and |z| > 5.5 define (see `thresholds`). The fractions
are cumulative: every saturated z is also slow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnscope.diagnostics.thresholds import SATURATED_RATIO, SLOW_RATIO, derivative_ratio, thresholds
from rnnscope.engine.cells import get_activation
from rnnscope.engine.trace import LayerTrace

HIST_RANGE = 10.0  # the z histogram covers [-10, 10]; values beyond land in the outer bins
HIST_BINS = 80


@dataclass(frozen=True)
class Saturation:
    """Saturation of one layer over a batch and every time step."""

    layer: str
    activation: str
    slow_fraction: float  # share of z with f'(z)/max f' < SLOW_RATIO
    saturated_fraction: float  # share of z with f'(z)/max f' < SATURATED_RATIO
    slow_rule: str  # e.g. "|z| > 2.2"
    saturated_rule: str  # e.g. "|z| > 5.5"
    mean_abs_z: float
    count: int  # number of pre-activations looked at (T·B·H)

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return dict(self.__dict__)


def saturation(layer: LayerTrace) -> Saturation:
    """Fractions of the layer's pre-activations in the slow-learning and saturated zones."""
    assert layer.z is not None, "the trace has no pre-activations"
    activation = get_activation(layer.activation)
    z = layer.z.detach()  # (T, B, H)
    ratio = derivative_ratio(activation, z)  # (T, B, H)
    limits = thresholds(layer.activation)
    return Saturation(
        layer=layer.name,
        activation=layer.activation,
        slow_fraction=float((ratio < SLOW_RATIO).double().mean()),
        saturated_fraction=float((ratio < SATURATED_RATIO).double().mean()),
        slow_rule=limits.describe("slow"),
        saturated_rule=limits.describe("saturated"),
        mean_abs_z=float(z.abs().mean()),
        count=z.numel(),
    )


def z_histogram(layer: LayerTrace, bins: int = HIST_BINS, limit: float = HIST_RANGE) -> dict:
    """Histogram of the layer's z values on [-limit, limit], outliers clamped into the end bins.

    Returns {"edges": [bins + 1 floats], "counts": [bins ints]}: what the S-curve plot draws.
    """
    assert layer.z is not None, "the trace has no pre-activations"
    z = layer.z.detach().float().flatten().clamp(-limit, limit)
    counts = torch.histc(z, bins=bins, min=-limit, max=limit)
    edges = torch.linspace(-limit, limit, bins + 1, dtype=torch.float64)
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
