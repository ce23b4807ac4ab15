"""Per-gate diagnostics of an LSTM or GRU layer: saturation of every gate, and the carry gate.

Saturation applies the chapter's derivative-ratio rule (see `thresholds`) to each gate with its
own activation: σ for LSTM's input, forget and output gates and GRU's reset and update gates
(slow beyond |a| > 2.2, saturated beyond |a| > 5.5), tanh for LSTM's cell candidate g and GRU's
new gate n (beyond |a| > 1.1 and |a| > 2.75).

A saturated gate is not the Elman neuron's problem, though: a forget gate held at σ(5) ≈ 0.993
is the LSTM working as intended (it carries the cell state, and the cell-state error goes back
× f_t ≈ 1 per step). What tells whether a layer remembers is the carry gate's distribution:

  LSTM  forget gate f_t:   c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t      near 1: carrying, near 0: forgetting
  GRU   update gate z_t:   h_t = z_t ⊙ h_{t-1} + (1 − z_t) ⊙ n_t  near 1: carrying, near 0: replacing
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnscope.diagnostics.saturation import Saturation
from rnnscope.diagnostics.thresholds import SATURATED_RATIO, SLOW_RATIO, derivative_ratio, thresholds
from rnnscope.engine.cells import get_activation
from rnnscope.engine.gated import GATE_NAMES, GATES
from rnnscope.engine.trace import GatedLayerTrace

CARRY_GATE = {"lstm": "f", "gru": "z"}  # the gate whose value says how much of the old state is kept
FORGETTING_BELOW = 0.1  # a carry-gate value below this drops (nearly) all of the old state in one step
CARRYING_ABOVE = 0.9  # above this it keeps it: 0.9^10 ≈ 0.35 of it survives ten steps
GATE_BINS = 40  # histogram bins over the gate's range ([0, 1] for σ, [-1, 1] for tanh)


def gate_activation(gate: str) -> str:
    """The activation of a gate: tanh for LSTM's g and GRU's n, σ for every other gate."""
    return "tanh" if gate in ("g", "n") else "sigmoid"


def gate_saturation(layer: GatedLayerTrace, gate: str) -> Saturation:
    """The derivative-ratio rule on one gate's weighted sums a_t (T·B·H of them)."""
    name = gate_activation(gate)
    a = layer.preactivations[gate].detach()  # (T, B, H)
    ratio = derivative_ratio(get_activation(name), a)  # (T, B, H)
    limits = thresholds(name)
    return Saturation(
        layer=f"{layer.name}.{gate}",
        activation=name,
        slow_fraction=float((ratio < SLOW_RATIO).double().mean()),
        saturated_fraction=float((ratio < SATURATED_RATIO).double().mean()),
        slow_rule=limits.describe("slow"),
        saturated_rule=limits.describe("saturated"),
        mean_abs_z=float(a.abs().mean()),
        count=a.numel(),
    )


def all_gates_saturation(layer: GatedLayerTrace, per_gate: dict[str, Saturation]) -> dict:
    """The layer's saturation over all its gates together (each gate judged by its own activation)."""
    count = sum(s.count for s in per_gate.values())
    share = lambda key: sum(getattr(s, key) * s.count for s in per_gate.values()) / count  # noqa: E731
    return {"layer": layer.name, "activation": layer.cell, "slow_fraction": share("slow_fraction"),
            "saturated_fraction": share("saturated_fraction"), "slow_rule": "each gate's own",
            "saturated_rule": "each gate's own (σ: |a| > 5.5, tanh: |a| > 2.75)",
            "mean_abs_z": share("mean_abs_z"), "count": count}


@dataclass(frozen=True)
class CarryGate:
    """The distribution of the carry gate (LSTM's forget gate f, GRU's update gate z)."""

    layer: str
    gate: str  # "f" or "z"
    name: str  # "forget gate" or "update gate"
    mean: float
    forgetting_fraction: float  # share of values below FORGETTING_BELOW
    carrying_fraction: float  # share above CARRYING_ABOVE
    unit_means: list[float]  # mean value per unit (H,)

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return {**self.__dict__, "forgetting_below": FORGETTING_BELOW, "carrying_above": CARRYING_ABOVE}


def carry_gate(layer: GatedLayerTrace) -> CarryGate:
    """How the carry gate's values fall between forgetting (near 0) and carrying (near 1)."""
    gate = CARRY_GATE[layer.cell]
    values = layer.gates[gate].detach().double()  # (T, B, H), in (0, 1)
    return CarryGate(
        layer=layer.name, gate=gate, name=GATE_NAMES[layer.cell][gate], mean=float(values.mean()),
        forgetting_fraction=float((values < FORGETTING_BELOW).double().mean()),
        carrying_fraction=float((values > CARRYING_ABOVE).double().mean()),
        unit_means=[round(float(m), 6) for m in values.mean(dim=(0, 1))],
    )


def gate_histogram(layer: GatedLayerTrace, gate: str, bins: int = GATE_BINS) -> dict:
    """Histogram of a gate's values over its range: {"edges": bins + 1 floats, "counts": bins ints}."""
    low = -1.0 if gate_activation(gate) == "tanh" else 0.0
    values = layer.gates[gate].detach().float().flatten().clamp(low, 1.0)
    counts = torch.histc(values, bins=bins, min=low, max=1.0)
    edges = torch.linspace(low, 1.0, bins + 1, dtype=torch.float64)
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def gates_summary(layer: GatedLayerTrace, per_gate: dict[str, Saturation] | None = None) -> dict:
    """Per gate: its words, activation, saturation and histogram, keyed by torch's letter.

    `per_gate` (gate -> gate_saturation) is computed here when not given.
    """
    per_gate = per_gate or {gate: gate_saturation(layer, gate) for gate in GATES[layer.cell]}
    return {
        gate: {"name": GATE_NAMES[layer.cell][gate], **per_gate[gate].as_dict(),
               "histogram": gate_histogram(layer, gate)}
        for gate in GATES[layer.cell]
    }
