"""Dead neurons: units whose output stays near zero for every sample and every time step.

A unit whose h is practically zero feeds nothing into the next time step (h is the recurrent
input), so it neither remembers nor learns: the chapter's "dead" neuron (figure 5-4, σ(−7) ≈
0.0009). Rule per activation:
  sigmoid, tanh   |h| < ε everywhere (ε defaults to 1e-3)
  relu            h == 0 exactly everywhere (z ≤ 0: no output and no gradient)
  lstm, gru       |h| < ε everywhere (h = o ⊙ tanh(c), or a mix of tanh outputs: like tanh)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnscope.engine.trace import GatedLayerTrace, LayerTrace

DEFAULT_EPSILON = 1e-3


@dataclass(frozen=True)
class DeadUnits:
    """The dead units of one layer."""

    layer: str
    activation: str
    rule: str  # "|h| < 0.001" or "h == 0"
    hidden: int  # H
    units: list[int] = field(default_factory=list)  # indices of dead units

    @property
    def fraction(self) -> float:
        """Share of the layer's units that are dead."""
        return len(self.units) / self.hidden

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return {**self.__dict__, "fraction": self.fraction}


def dead_units(layer: LayerTrace | GatedLayerTrace, epsilon: float = DEFAULT_EPSILON) -> DeadUnits:
    """Units of the layer whose output never leaves zero (relu) or ±ε (sigmoid, tanh, lstm, gru)."""
    assert layer.h is not None, "the trace has no activations"
    activation = layer.cell if isinstance(layer, GatedLayerTrace) else layer.activation
    h = layer.h.detach()  # (T, B, H)
    peak = h.abs().amax(dim=(0, 1))  # (H,) largest |h| of each unit over time and batch
    if activation == "relu":
        dead, rule = peak == 0, "h == 0"
    else:
        dead, rule = peak < epsilon, f"|h| < {epsilon:g}"
    units = [int(i) for i in dead.nonzero().flatten()]
    return DeadUnits(layer.name, activation, rule, h.shape[2], units)
