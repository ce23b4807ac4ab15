"""`rnnscope explain forgetting`: figure 5-5, how little a small h_1 still changes later steps.

One recurrent neuron runs steps 2 … T twice with the engine, once from h_1 = 0.0007 (the
chapter's value) and once from h_1 = 0, as a batch of two. The difference h_t − h_t' is what
h_1 still contributes at step t. To first order it is h_1 · ∂h_t/∂h_1, and

    ∂h_t/∂h_1 = ∏_{j=2}^{t} w_h · σ'(z_j)

the product of derivatives over t − 1 steps (σ'(z) ≤ 0.25, so it shrinks unless w_h > 4).
The chapter's example (h_2 rises by 0.0008 when h_1 = 0.0007) needs w_h·σ'(z_2) ≈ 1.14, i.e.
w_h ≥ 4.57; the default w_h = 4.6 with z_2 ≈ 0 reproduces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnscope.engine.bptt import elman_layer
from rnnscope.engine.cells import get_activation
from rnnscope.engine.trace import Trace
from rnnscope.errors import UserError


@dataclass
class ForgettingSetting:
    """The hypothetical network of figure 5-5."""

    h1: float = 0.0007  # the small hidden state at step 1
    steps: int = 5  # T: time steps in all (the network runs steps 2 … T)
    inputs: tuple[float, ...] = ()  # x_2 … x_T (default: zeros)
    w_x: float = 1.0
    w_h: float = 4.6
    b: float = 0.0
    activation: str = "sigmoid"

    def validate(self) -> None:
        """Raise a UserError naming any value that cannot work."""
        get_activation(self.activation)
        if self.steps < 2 or self.steps > 1000:
            raise UserError(f"--steps must be between 2 and 1000, got {self.steps}")
        if self.inputs and len(self.inputs) != self.steps - 1:
            raise UserError(
                f"--sequence has {len(self.inputs)} inputs but steps 2 … {self.steps} need {self.steps - 1}; "
                f"give {self.steps - 1} values or change --steps"
            )
        if not all(math.isfinite(v) for v in (self.h1, self.w_x, self.w_h, self.b, *self.inputs)):
            raise UserError("--h1, --w-x, --w-h, --b and --sequence must be finite numbers")


def forgetting(setting: ForgettingSetting) -> dict:
    """h_t from h_1 and from 0, their difference, and ∏ w_h·f'(z_j) for t = 2 … T."""
    setting.validate()
    n = setting.steps - 1
    inputs = setting.inputs or (0.0,) * n
    x = torch.tensor(inputs, dtype=torch.float64).view(n, 1, 1).expand(n, 2, 1)  # (T-1, 2, 1)
    h0 = torch.tensor([[setting.h1], [0.0]], dtype=torch.float64)  # (2, 1): with h_1 and with h_1 = 0
    W_ih = torch.tensor([[setting.w_x]], dtype=torch.float64)
    W_hh = torch.tensor([[setting.w_h]], dtype=torch.float64)
    b = torch.tensor([setting.b], dtype=torch.float64)
    with Trace() as trace:
        elman_layer(x, h0, W_ih, W_hh, b, None, activation=setting.activation, trace_name="layer0")
    layer = trace.layer("layer0")
    derivative = get_activation(setting.activation).derivative(layer.z[:, 0], layer.h[:, 0])  # (T-1, 1)
    product = torch.cumprod(setting.w_h * derivative[:, 0], dim=0)  # (T-1,) ∂h_t/∂h_1
    rows = [{"t": 1, "x": None, "z": None, "h": setting.h1, "h_from_zero": 0.0, "difference": setting.h1,
             "derivative": None, "product": 1.0, "linear_estimate": setting.h1}]
    for i in range(n):
        h_a, h_b = float(layer.h[i, 0, 0]), float(layer.h[i, 1, 0])
        rows.append({
            "t": i + 2, "x": inputs[i], "z": float(layer.z[i, 0, 0]), "h": h_a, "h_from_zero": h_b,
            "difference": h_a - h_b, "derivative": float(derivative[i, 0]), "product": float(product[i]),
            "linear_estimate": setting.h1 * float(product[i]),
        })
    notes = [
        "Δh_t (difference) = h_t(h_1) − h_t(h_1 = 0): what the step-1 state still contributes at step t",
        "∏ w_h·f' (product) = ∂h_t/∂h_1 over steps 2 … t; h_1·∏ (linear_estimate) is Δh_t to first order",
        f"the chapter: h_2 changes by 0.0008 for h_1 = 0.0007; here h_2 changes by {rows[1]['difference']:.4g}",
    ]
    if setting.activation == "sigmoid":
        notes.append(
            "σ'(z) ≤ 0.25, so each step multiplies by at most 0.25·w_h: with w_h < 4 the history fades "
            "geometrically, the vanishing gradient of BPTT seen forward"
        )
    return {"setting": {**setting.__dict__, "inputs": list(inputs)}, "rows": rows, "notes": notes}
