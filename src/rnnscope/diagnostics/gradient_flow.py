"""Gradient flow: how ‖∂L/∂h_t‖ changes as the error travels back through the time steps.

The engine's trace holds dh_t = ∂L/∂h_t (T, B, H) for every layer: what arrives from the loss or
the layer above plus what comes back from step t+1. Its norm per time step, fitted as
ln‖dh_{T-1-k}‖ ≈ a + k·ln(g), gives g, the growth per step going back in time (g < 1 shrinks,
g > 1 grows), and g^(T-1), how much of the last step's gradient reaches the first step.

Verdict: "vanishing" when less than 1% of it reaches the first step (or it underflows to zero),
"exploding" when more than 100× does (or it overflows), "healthy" otherwise.

With a loss on every time step, each dh_t also receives that step's own output error, so the
norms stay level even when the long-range part vanishes. `direct_share` says how much of dh_t
arrived directly (from the loss or the layer above at step t) rather than from step t+1: the
trace's dh_t minus the part carried back from step t+1, δ_{t+1} W_hh. When it is large, the
memory horizon (`horizon`) is the measure of long-range flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rnnscope.engine.trace import LayerTrace

VANISHING_SPAN = 1e-2  # first-step gradient / last-step gradient below this: vanishing
EXPLODING_SPAN = 1e2  # above this: exploding
VERDICTS = ("healthy", "vanishing", "exploding", "no gradient")


@dataclass(frozen=True)
class GradientFlow:
    """‖∂L/∂h_t‖ per time step of one layer, its fitted decay and a verdict."""

    layer: str
    norms: list[float] = field(repr=False)  # ‖dh_t‖ over batch and units, t = 0 … T-1
    growth_per_step: float  # g: factor per step going back in time (fit)
    span: float  # g^(T-1): the fitted gradient at t = 0 relative to t = T-1
    verdict: str  # one of VERDICTS
    direct_share: float  # mean over t < T-1 of ‖d_t‖ / (‖d_t‖ + ‖δ_{t+1} W_hh‖), d_t = dh_t − δ_{t+1} W_hh

    def as_dict(self) -> dict:
        """A JSON-ready dict (non-finite numbers as strings, which JSON lacks)."""
        return {key: _jsonable(value) for key, value in self.__dict__.items()}


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def fit_growth(norms: list[float]) -> float:
    """Least-squares g in ‖dh_{T-1-k}‖ ≈ c·g^k over the finite, positive norms; 1.0 if too few."""
    points = [
        (len(norms) - 1 - t, math.log(n)) for t, n in enumerate(norms) if n > 0 and math.isfinite(n)
    ]
    if len(points) < 2:
        return 1.0
    mean_k = sum(k for k, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var_k = sum((k - mean_k) ** 2 for k, _ in points)
    if var_k == 0:
        return 1.0
    slope = sum((k - mean_k) * (y - mean_y) for k, y in points) / var_k
    return math.exp(slope)


def verdict_of(norms: list[float], growth: float) -> tuple[str, float]:
    """The verdict and the span g^(T-1) for a sequence of per-step gradient norms."""
    T = len(norms)
    if any(not math.isfinite(n) for n in norms):
        return "exploding", math.inf
    if all(n == 0 for n in norms):
        return "no gradient", 0.0
    span = growth ** (T - 1) if T > 1 else 1.0
    last_nonzero = max(t for t, n in enumerate(norms) if n > 0)
    if any(n == 0 for n in norms[:last_nonzero]):  # underflowed on its way back
        return "vanishing", span
    if span < VANISHING_SPAN:
        return "vanishing", span
    if span > EXPLODING_SPAN:
        return "exploding", span
    return "healthy", span


def gradient_flow(layer: LayerTrace) -> GradientFlow:
    """‖∂L/∂h_t‖ per time step from the trace, its growth per step and the verdict."""
    assert layer.dh is not None, "the trace has no backward record (run backward inside the Trace)"
    return flow_of(layer.name, layer.dh, _direct_share(layer))


def flow_of(name: str, grads, direct_share: float) -> GradientFlow:
    """The GradientFlow of per-step gradients (T, B, N): their norms, fitted growth and verdict.

    The gated cells' ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ (`gated_flow`) go through here too.
    """
    norms = [float(n) for n in grads.detach().double().flatten(1).norm(dim=1)]  # (T,)
    growth = fit_growth(norms)
    verdict, span = verdict_of(norms, growth)
    return GradientFlow(name, norms, growth, span, verdict, direct_share)


def _direct_share(layer: LayerTrace) -> float:
    """How much of ∂L/∂h_t arrived at step t itself rather than from step t+1 (0 when T = 1)."""
    if layer.delta is None or layer.steps < 2:
        return 0.0
    return share_arrived_directly(layer.dh[:-1], layer.delta[1:] @ layer.W_hh)  # δ_{t+1} W_hh


def share_arrived_directly(total_grads, carried) -> float:
    """Mean over steps of ‖d_t‖ / (‖d_t‖ + ‖carried_t‖), d_t = total_grads_t − carried_t; (T-1, B, N) each."""
    direct = (total_grads - carried).flatten(1).double().norm(dim=1)  # (T-1,) ‖what arrived at step t itself‖
    total = direct + carried.flatten(1).double().norm(dim=1)  # (T-1,)
    shares = (direct / total)[total > 0]
    share = float(shares.mean()) if shares.numel() else 0.0
    return share if math.isfinite(share) else 0.0
