"""Saturation, dead units and gradient flow on hand-made traces with known answers."""

import math

import pytest
import torch

from rnnscope.diagnostics.dead import dead_units
from rnnscope.diagnostics.gradient_flow import fit_growth, gradient_flow
from rnnscope.diagnostics.saturation import saturation, z_histogram
from rnnscope.engine.cells import get_activation
from rnnscope.engine.trace import LayerTrace


def make_trace(activation: str, z: torch.Tensor, dh: torch.Tensor | None = None) -> LayerTrace:
    """A LayerTrace with the given z (T, B, H); h = f(z) by the engine's activation."""
    T, B, H = z.shape
    z = z.double()
    return LayerTrace(
        name="layer0", activation=activation, time_reduction="sum",
        x=torch.zeros(T, B, 1, dtype=torch.float64), h0=torch.zeros(B, H, dtype=torch.float64),
        W_ih=torch.zeros(H, 1, dtype=torch.float64), W_hh=torch.eye(H, dtype=torch.float64),
        z=z, h=get_activation(activation).forward(z), dh=dh,
    )


def test_saturation_fractions_follow_the_thresholds():
    sig = saturation(make_trace("sigmoid", torch.tensor([0.0, 3.0, -6.0, 6.0]).view(4, 1, 1)))
    assert (sig.slow_fraction, sig.saturated_fraction) == (0.75, 0.5)
    tanh = saturation(make_trace("tanh", torch.tensor([0.0, 1.5, -3.0]).view(3, 1, 1)))
    assert tanh.slow_fraction == pytest.approx(2 / 3) and tanh.saturated_fraction == pytest.approx(1 / 3)
    relu = saturation(make_trace("relu", torch.tensor([-1.0, 0.0, 2.0, 3.0]).view(4, 1, 1)))
    assert relu.saturated_fraction == 0.5 and relu.saturated_rule == "z ≤ 0"


def test_z_histogram_counts_every_value_outliers_in_the_end_bins():
    hist = z_histogram(make_trace("sigmoid", torch.tensor([-50.0, 0.1, 0.2, 50.0]).view(4, 1, 1)))
    assert sum(hist["counts"]) == 4 and hist["counts"][0] == 1 and hist["counts"][-1] == 1
    assert len(hist["edges"]) == len(hist["counts"]) + 1


def test_dead_units_per_activation():
    z = torch.zeros(5, 3, 4)
    z[:, :, 1] = -9.0  # σ(−9) ≈ 1.2e-4 < ε: dead sigmoid unit
    z[:, :, 2] = -1.0  # relu: exactly 0 everywhere
    z[0, 0, 3] = 1.0  # positive for one sample at one step: not dead
    sig = dead_units(make_trace("sigmoid", z))
    assert sig.units == [1] and sig.fraction == 0.25
    relu = dead_units(make_trace("relu", z))
    assert relu.units == [0, 1, 2] and relu.rule == "h == 0"  # unit 0 has z = 0: relu(0) = 0
    assert dead_units(make_trace("tanh", z)).units == [0]  # tanh(0) = 0 everywhere


def _flow(norms: list[float]) -> str:
    dh = torch.tensor(norms, dtype=torch.float64).view(-1, 1, 1)
    return gradient_flow(make_trace("tanh", torch.zeros(len(norms), 1, 1), dh))


def test_growth_fit_and_verdicts():
    T = 20
    shrinking = _flow([0.5 ** (T - 1 - t) for t in range(T)])
    assert shrinking.growth_per_step == pytest.approx(0.5) and shrinking.verdict == "vanishing"
    assert shrinking.span == pytest.approx(0.5 ** (T - 1))
    assert _flow([1.0] * T).verdict == "healthy"
    assert _flow([0.9 ** (T - 1 - t) for t in range(T)]).verdict == "healthy"  # 0.9^19 ≈ 0.135
    assert _flow([2.0 ** (T - 1 - t) for t in range(T)]).verdict == "exploding"
    assert _flow([0.0, 0.0, 1e-30, 1.0]).verdict == "vanishing"  # underflowed on the way back
    assert _flow([math.inf, 1.0, 1.0]).verdict == "exploding"
    assert _flow([0.0, 0.0]).verdict == "no gradient"
    assert fit_growth([3.0]) == 1.0
