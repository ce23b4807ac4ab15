"""`rnnscope explain lstm` / `gru`: one gated unit over three steps, number by number, from the
engine's Trace, beside the chapter's Elman neuron on the same sequence.

LSTM (one unit, one input, ŷ = h_T, L = (ŷ − y)²):

  forward   a_k = w_x,k·x_t + w_h,k·h_{t-1} + b_k  for the gates k = i, f, g, o
            i, f, o = σ(a)   g = tanh(a_g)   c_t = f·c_{t-1} + i·g   h_t = o·tanh(c_t)
  backward  ∂L/∂c_t = ∂L/∂h_t·o_t·(1 − tanh²c_t) + ∂L/∂c_{t+1}·f_{t+1}
            δ_i = ∂L/∂c_t·g·σ'(a_i)  δ_f = ∂L/∂c_t·c_{t-1}·σ'(a_f)  δ_g = ∂L/∂c_t·i·(1 − g²)
            δ_o = ∂L/∂h_t·tanh(c_t)·σ'(a_o)   ∂L/∂h_{t-1} = Σ_k δ_k·w_h,k

The error that reaches c_{t-1} along the cell state is ∂L/∂c_t × f_t: no activation derivative,
no weight. The Elman neuron's error reaches h_{t-1} × w_h·σ'(z_t) ≤ 0.25·w_h. GRU: h_t = z·h_{t-1}
+ (1 − z)·n, so the error reaches h_{t-1} directly × z_t, besides through the gates.

Every number comes from the engine (Trace with weight adjustments, and the autograd.Function's
gradient); `check` holds max |Σ_t per-step adjustment − engine gradient|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from rnnscope.diagnostics.gated_flow import step_jacobians
from rnnscope.engine.gated import GATE_NAMES, GATES
from rnnscope.engine.gru import gru_layer
from rnnscope.engine.lstm import lstm_layer
from rnnscope.engine.trace import Trace
from rnnscope.errors import UserError
from rnnscope.explain.walkthrough import Setting, walkthrough

# (w_x, w_h, b) per gate: small weights, so every gate sits on the steep part of its curve
DEFAULT_WEIGHTS = {
    "lstm": {"i": (0.5, 0.4, 0.0), "f": (0.3, 0.2, 1.0), "g": (0.8, 0.6, 0.1), "o": (0.4, 0.3, 0.0)},
    "gru": {"r": (0.5, 0.4, 0.0), "z": (0.3, 0.2, 1.0), "n": (0.8, 0.6, 0.1)},
}
CARRY = {"lstm": "f", "gru": "z"}  # the gate the error is multiplied by along the carried state


@dataclass
class GatedSetting:
    """What the gated walkthrough runs on: one unit, one input per step, ŷ = h_T, MSE."""

    cell: str = "lstm"
    sequence: tuple[float, ...] = (0.5, -0.2, 0.9)  # the chapter's x_1 … x_T
    target: float = 0.8  # the chapter's y
    carry_bias: float | None = None  # b of the forget gate (LSTM) or update gate (GRU); None: 1.0
    weights: dict = field(default_factory=dict)  # gate -> (w_x, w_h, b); missing gates: DEFAULT_WEIGHTS

    def validate(self) -> None:
        """Raise a UserError naming any value that cannot work."""
        if self.cell not in GATES:
            raise UserError(f"cell must be lstm or gru, got {self.cell!r}")
        if not self.sequence:
            raise UserError("--sequence is empty; give at least one input, e.g. --sequence 0.5,-0.2,0.9")
        numbers = (*self.sequence, self.target, self.carry_bias if self.carry_bias is not None else 0.0)
        if not all(math.isfinite(v) for v in numbers):
            raise UserError("--sequence, --target and --forget-bias must be finite numbers")

    def gate_weights(self) -> dict[str, tuple[float, float, float]]:
        """(w_x, w_h, b) of every gate, in torch's row order."""
        chosen = {**DEFAULT_WEIGHTS[self.cell], **self.weights}
        if self.carry_bias is not None:
            w_x, w_h, _ = chosen[CARRY[self.cell]]
            chosen[CARRY[self.cell]] = (w_x, w_h, self.carry_bias)
        return {gate: chosen[gate] for gate in GATES[self.cell]}


def _f(t: torch.Tensor) -> float:
    return float(t.detach().reshape(()))


def gated_walkthrough(setting: GatedSetting) -> dict:
    """Forward, backward, per-step adjustments and gradients of one LSTM or GRU unit, with checks."""
    setting.validate()
    cell, T = setting.cell, len(setting.sequence)
    chosen = setting.gate_weights()
    column = lambda i: torch.tensor([[w[i]] for w in chosen.values()], dtype=torch.float64)  # noqa: E731 (G, 1)
    W_ih, W_hh = column(0).requires_grad_(True), column(1).requires_grad_(True)
    b = column(2).flatten().requires_grad_(True)  # (G,) as b_ih; b_hh = 0 (for GRU: b_hn = 0)
    x = torch.tensor(setting.sequence, dtype=torch.float64).view(T, 1, 1)  # (T, B=1, I=1)
    zero = torch.zeros(1, 1, dtype=torch.float64)
    with Trace(weight_adjustments=True) as trace:
        if cell == "lstm":
            _, h_T, _ = lstm_layer(x, zero, zero, W_ih, W_hh, b, None, trace_name="layer0")
        else:
            _, h_T = gru_layer(x, zero, W_ih, W_hh, b, torch.zeros_like(b), trace_name="layer0")
        y_hat = h_T  # (1, 1): the unit's own last output
        y_hat.retain_grad()
        loss = (y_hat - setting.target).pow(2).sum()
        loss.backward()
    layer = trace.layer("layer0")
    gates = GATES[cell]
    h_prev = torch.cat([zero.unsqueeze(0), layer.h[:-1]])  # (T, 1, 1)
    forward = []
    for t in range(T):
        row = {"t": t + 1, "x": setting.sequence[t], "h_prev": _f(h_prev[t]),
               "gates": {k: {"a": _f(layer.preactivations[k][t]), "value": _f(layer.gates[k][t])} for k in gates},
               "h": _f(layer.h[t])}
        if cell == "lstm":
            c_prev = layer.c0 if t == 0 else layer.c[t - 1]
            row.update(c_prev=_f(c_prev), c=_f(layer.c[t]), tanh_c=math.tanh(_f(layer.c[t])))
        else:
            row["hn"] = _f(layer.hn[t])
        forward.append(row)
    elman = _elman_factors(setting)
    backward = []
    for t in reversed(range(T)):
        jacobian = step_jacobians(layer, t)[0]  # (N, N): ∂(h_t, c_t)/∂(h_{t-1}, c_{t-1}) or ∂h_t/∂h_{t-1}
        carry = _f(layer.gates[CARRY[cell]][t])
        row = {"t": t + 1, "dh": _f(layer.dh[t]), "delta": {k: _f(layer.delta[k][t]) for k in layer.delta},
               "carry": carry, "elman_factor": elman["factors"][t], "jacobian": jacobian.tolist()}
        if cell == "lstm":
            row.update(dc=_f(layer.dc[t]), to_c_prev=_f(layer.dc[t]) * carry)  # ∂L/∂c_t · f_t
        else:
            row["to_h_prev_direct"] = _f(layer.dh[t]) * carry  # ∂L/∂h_t · z_t
        backward.append(row)
    steps = {"w_x": layer.dW_ih_steps.sum(0).flatten(), "w_h": layer.dW_hh_steps.sum(0).flatten(),
             "b": layer.db_ih_steps.sum(0)}  # (G,) each: Σ_t of the per-step adjustments
    engine = {"w_x": W_ih.grad.flatten(), "w_h": W_hh.grad.flatten(), "b": b.grad}
    check = max(float((steps[k] - engine[k]).abs().max()) for k in engine)
    per_gate = lambda d: {g: {k: float(v[i]) for k, v in d.items()} for i, g in enumerate(gates)}  # noqa: E731
    return {
        "setting": {"cell": cell, "sequence": list(setting.sequence), "target": setting.target},
        "gate_names": GATE_NAMES[cell], "weights": {g: dict(zip(("w_x", "w_h", "b"), w)) for g, w in chosen.items()},
        "forward": forward, "prediction": _f(y_hat), "target": setting.target, "loss": float(loss.detach()),
        "output_error": _f(y_hat.grad), "backward": backward,
        "accumulated": per_gate(steps), "engine_gradient": per_gate(engine), "check": check, "elman": elman,
    }


def _elman_factors(setting: GatedSetting) -> dict:
    """The chapter's Elman neuron (figure 5-3's weights) on the same sequence: w_h·σ'(z_t) per step."""
    chapter = walkthrough(Setting(sequence=tuple(setting.sequence), target=setting.target))
    w_h = chapter["initial_weights"]["w_h"]
    by_step = {row["t"]: row["derivative"] for row in chapter["backward"]}
    return {"w_h": w_h, "factors": [w_h * by_step[t] for t in range(1, len(setting.sequence) + 1)]}
