"""The chapter's worked example (figure 5-3), number by number, computed by the engine.

One input, a recurrent layer of sigmoid neurons (one by default), a short sequence and MSE:

  forward, per step   z_t = w_x·x_t + w_h·h_{t-1} + b,   h_t = σ(z_t)
  prediction          ŷ = h_T (the neuron's own last output), or ŷ = w_y·h_T + b_y (a linear readout)
  loss                L = (ŷ − y)²  (MSE of one target)
  output error        ∂L/∂ŷ = 2(ŷ − y)
  backward, per step  error_t = ∂L/∂h_t, error_term δ_t = error_t·σ'(z_t),
                      adjustment_t = learning rate × δ_t × input  (h_{t-1} for w_h, x_t for w_x, 1 for b)
  accumulated         Σ_t adjustment_t   (÷ T with time_reduction="mean")
  update              w ← w − accumulated adjustment  (plain gradient descent)

Every number comes from the engine: the forward values and error terms from its Trace, the
per-step adjustments from Trace(weight_adjustments=True) and the gradient from the
autograd.Function's backward. `check` holds max |Σ adjustments − lr × gradient|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnscope.engine.bptt import TIME_REDUCTIONS, elman_layer
from rnnscope.engine.cells import get_activation
from rnnscope.engine.trace import Trace
from rnnscope.errors import UserError


@dataclass
class Setting:
    """What the walkthrough runs on; the defaults are the chapter's setting."""

    sequence: tuple[float, ...] = (0.5, -0.2, 0.9)  # x_1 … x_T, one input per step
    target: float = 0.8  # y
    w_x: float = 0.5  # input weight (hidden = 1 only)
    w_h: float = 0.8  # recurrent weight (hidden = 1 only)
    b: float = 0.1  # bias (hidden = 1 only)
    lr: float = 0.5  # learning rate
    activation: str = "sigmoid"
    hidden: int = 1  # neurons in the recurrent layer
    time_reduction: str = "sum"  # "sum" accumulates the adjustments; "mean" averages them over T
    readout: str = "none"  # "none": ŷ = h_T (hidden must be 1); "linear": ŷ = w_y·h_T + b_y
    epochs: int = 1  # gradient-descent steps on the one sequence
    seed: int = 0  # random initial weights for hidden > 1

    def validate(self) -> None:
        """Raise a UserError naming any value that cannot work."""
        get_activation(self.activation)
        if not self.sequence:
            raise UserError("--sequence is empty; give at least one input, e.g. --sequence 0.5,-0.2,0.9")
        if not all(math.isfinite(v) for v in (*self.sequence, self.target, self.w_x, self.w_h, self.b, self.lr)):
            raise UserError("--sequence, --target, --w-x, --w-h, --b and --lr must be finite numbers")
        if self.hidden < 1 or self.hidden > 8:
            raise UserError(f"--hidden must be between 1 and 8 (a walkthrough, not a model), got {self.hidden}")
        if self.readout not in ("none", "linear"):
            raise UserError(f"--readout must be none or linear, got {self.readout!r}")
        if self.hidden > 1 and self.readout == "none":
            raise UserError(f"--hidden {self.hidden} needs --readout linear: ŷ is one number, h_T has {self.hidden}")
        if self.time_reduction not in TIME_REDUCTIONS:
            raise UserError(f"--time-reduction must be one of {', '.join(TIME_REDUCTIONS)}, got {self.time_reduction!r}")
        if not 1 <= self.epochs <= 10000:
            raise UserError(f"--epochs must be between 1 and 10000, got {self.epochs}")
        if self.lr <= 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")


def initial_weights(setting: Setting) -> dict[str, torch.Tensor]:
    """W_ih (H, 1), W_hh (H, H), b (H,) and, with a readout, w_y (1, H), b_y (1,); float64."""
    H = setting.hidden
    if H == 1:
        weights = {
            "W_ih": torch.tensor([[setting.w_x]], dtype=torch.float64),
            "W_hh": torch.tensor([[setting.w_h]], dtype=torch.float64),
            "b": torch.tensor([setting.b], dtype=torch.float64),
        }
    else:
        g = torch.Generator().manual_seed(setting.seed)
        bound = 1.0 / math.sqrt(H)  # torch.nn.RNN's initialization
        uniform = lambda *shape: (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * bound  # noqa: E731
        weights = {"W_ih": uniform(H, 1), "W_hh": uniform(H, H), "b": uniform(H)}
    if setting.readout == "linear":
        g = torch.Generator().manual_seed(setting.seed + 1)
        weights["w_y"] = (torch.rand(1, H, generator=g, dtype=torch.float64) * 2 - 1) / math.sqrt(H)
        weights["b_y"] = torch.zeros(1, dtype=torch.float64)
    return {name: w.double().requires_grad_(True) for name, w in weights.items()}


def _numbers(t: torch.Tensor):
    """A scalar for one number, else a nested list (what the table and the JSON show)."""
    t = t.detach().double()
    return float(t.reshape(())) if t.numel() == 1 else t.tolist()


def one_epoch(setting: Setting, weights: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """Forward, backward and update on the sequence; returns the numbers and the updated weights."""
    T, lr = len(setting.sequence), setting.lr
    x = torch.tensor(setting.sequence, dtype=torch.float64).view(T, 1, 1)  # (T, B=1, I=1)
    h0 = torch.zeros(1, setting.hidden, dtype=torch.float64)  # (1, H)
    with Trace(weight_adjustments=True) as trace:
        out, h_T = elman_layer(
            x, h0, weights["W_ih"], weights["W_hh"], weights["b"], None,
            activation=setting.activation, time_reduction=setting.time_reduction, trace_name="layer0",
        )  # out (T, 1, H)
        if setting.readout == "linear":
            y_hat = torch.nn.functional.linear(h_T, weights["w_y"], weights["b_y"])  # (1, 1)
        else:
            y_hat = h_T  # (1, 1): the neuron's own output at the last step
        y_hat.retain_grad()
        loss = torch.nn.functional.mse_loss(y_hat, torch.full_like(y_hat, setting.target))
        loss.backward()
    layer = trace.layer("layer0")
    derivative = get_activation(setting.activation).derivative(layer.z, layer.h)  # (T, 1, H)
    h_prev = torch.cat([h0.unsqueeze(0), layer.h[:-1]])  # (T, 1, H)
    forward = [
        {"t": t + 1, "x": _numbers(x[t, 0]), "h_prev": _numbers(h_prev[t, 0]), "z": _numbers(layer.z[t, 0]),
         "h": _numbers(layer.h[t, 0])}
        for t in range(T)
    ]
    backward = [
        {"t": t + 1, "error": _numbers(layer.dh[t, 0]), "derivative": _numbers(derivative[t, 0]),
         "error_term": _numbers(layer.delta[t, 0]),
         "adjust_w_h": _numbers(lr * layer.dW_hh_steps[t]), "adjust_w_x": _numbers(lr * layer.dW_ih_steps[t]),
         "adjust_b": _numbers(lr * layer.db_steps[t])}
        for t in reversed(range(T))
    ]
    scale = 1.0 / T if setting.time_reduction == "mean" else 1.0
    accumulated = {
        "w_h": lr * layer.dW_hh_steps.sum(0), "w_x": lr * layer.dW_ih_steps.sum(0), "b": lr * layer.db_steps.sum(0),
    }
    applied = {name: value * scale for name, value in accumulated.items()}
    engine = {"w_h": weights["W_hh"].grad, "w_x": weights["W_ih"].grad, "b": weights["b"].grad}
    check = max(float((applied[k] - lr * engine[k]).abs().max()) for k in applied)
    readout_adjust = {k: lr * weights[k].grad for k in ("w_y", "b_y") if k in weights}
    with torch.no_grad():
        updated = {name: (w - lr * w.grad).detach().requires_grad_(True) for name, w in weights.items()}
    numbers = {
        "forward": forward,
        "prediction": _numbers(y_hat[0]),
        "target": setting.target,
        "loss": float(loss.detach()),
        "output_error": _numbers(y_hat.grad[0]),  # ∂L/∂ŷ = 2(ŷ − y)
        "backward": backward,
        "accumulated": {k: _numbers(v) for k, v in accumulated.items()},
        "applied": {k: _numbers(v) for k, v in applied.items()},
        "lr_times_engine_gradient": {k: _numbers(lr * v) for k, v in engine.items()},
        "readout_adjustment": {k: _numbers(v) for k, v in readout_adjust.items()},
        "check": check,
        "updated": _named(updated),
    }
    return numbers, updated


def _named(weights: dict[str, torch.Tensor]) -> dict:
    """The chapter's names for the weights: w_x, w_h, b (and w_y, b_y)."""
    names = {"W_ih": "w_x", "W_hh": "w_h", "b": "b", "w_y": "w_y", "b_y": "b_y"}
    return {names[k]: _numbers(v) for k, v in weights.items()}


def walkthrough(setting: Setting) -> dict:
    """The whole worked example: the first epoch in detail, then the loss of every epoch."""
    setting.validate()
    weights = initial_weights(setting)
    start = _named(weights)
    detail, weights = one_epoch(setting, weights)
    losses = [{"epoch": 1, "loss": detail["loss"], "prediction": detail["prediction"]}]
    for epoch in range(2, setting.epochs + 1):
        numbers, weights = one_epoch(setting, weights)
        losses.append({"epoch": epoch, "loss": numbers["loss"], "prediction": numbers["prediction"]})
    return {
        "setting": {**setting.__dict__, "sequence": list(setting.sequence)},
        "initial_weights": start,
        **detail,
        "epochs": losses,
        "final_weights": _named(weights),
    }
