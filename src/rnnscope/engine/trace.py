"""Trace: an opt-in record of every per-time-step quantity the engine computes.

    with Trace(weight_adjustments=True) as trace:
        output, h_n = rnn(x)
        loss_fn(output, y).backward()
    layer = trace.layer("layer0")
    layer.z, layer.h, layer.dh, layer.delta      # (T, B, H) each
    layer.dW_hh_steps                            # (T, H, H): δ_tᵀ h_{t-1}, summed over the batch

LSTM and GRU layers record a GatedLayerTrace instead: gates, c_t, h_t, the error term of every
gate and the cell-state error (docs/engine.md, "Gated cells").

With no Trace active the engine records nothing and pays nothing but one lookup per layer call.
Under torch.compile / torch.export the engine is one opaque operator and records nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

_ACTIVE: ContextVar["Trace | None"] = ContextVar("rnnscope_active_trace", default=None)


@dataclass
class LayerTrace:
    """What one Elman layer (one direction) computed, per time step. Tensors are detached copies."""

    name: str  # "layer0", "layer0_reverse", ...
    activation: str
    time_reduction: str
    x: torch.Tensor  # (T, B, I) the layer's input, time-major
    h0: torch.Tensor  # (B, H)
    W_ih: torch.Tensor  # (H, I)
    W_hh: torch.Tensor  # (H, H)
    weight_adjustments: bool = False  # record the per-step terms below as well
    z: torch.Tensor | None = None  # (T, B, H) pre-activations (weighted sums)
    h: torch.Tensor | None = None  # (T, B, H) activations
    dh: torch.Tensor | None = None  # (T, B, H) ∂L/∂h_t, from the layer above and from step t+1
    delta: torch.Tensor | None = None  # (T, B, H) error terms δ_t = ∂L/∂h_t ⊙ f'(z_t)
    dW_ih_steps: torch.Tensor | None = None  # (T, H, I) δ_tᵀ x_t
    dW_hh_steps: torch.Tensor | None = None  # (T, H, H) δ_tᵀ h_{t-1}
    db_steps: torch.Tensor | None = None  # (T, H) Σ_batch δ_t (for b_ih and b_hh alike)
    mask: torch.Tensor | None = None  # (T, B) bool, False at padded steps of a packed batch (None: all real)

    @property
    def steps(self) -> int:
        """Number of time steps T."""
        return self.x.shape[0]


@dataclass
class GatedLayerTrace:
    """What one LSTM or GRU layer (one direction) computed, per time step. Tensors are detached copies.

    Gates are keyed by torch's letters (GATE_NAMES in engine.gated says them in words):
    LSTM "i" input, "f" forget, "g" cell candidate, "o" output; GRU "r" reset, "z" update,
    "n" new. Every per-step tensor is (T, B, H) unless said otherwise.
    """

    name: str  # "layer0", "layer0_reverse", ...
    cell: str  # "lstm" or "gru"
    time_reduction: str
    x: torch.Tensor  # (T, B, I) the layer's input, time-major
    h0: torch.Tensor  # (B, H)
    c0: torch.Tensor | None  # (B, H) LSTM's initial cell state; None for GRU
    W_ih: torch.Tensor  # (G·H, I) all gates' input weights, torch's row order
    W_hh: torch.Tensor  # (G·H, H) all gates' recurrent weights
    weight_adjustments: bool = False  # record the per-step terms below as well
    preactivations: dict[str, torch.Tensor] = field(default_factory=dict)  # gate → weighted sum a_t
    gates: dict[str, torch.Tensor] = field(default_factory=dict)  # gate → its activation (σ or tanh of a_t)
    hn: torch.Tensor | None = None  # GRU: W_hn h_{t-1} + b_hn, the part the reset gate scales
    c: torch.Tensor | None = None  # LSTM: cell states c_t
    h: torch.Tensor | None = None  # hidden states h_t (the layer's output)
    dh: torch.Tensor | None = None  # ∂L/∂h_t, from the layer above and from step t+1
    dc: torch.Tensor | None = None  # LSTM: ∂L/∂c_t, the cell-state error (from h_t and, × f_{t+1}, from c_{t+1})
    delta: dict[str, torch.Tensor] = field(default_factory=dict)  # gate → error term ∂L/∂a_t
    dW_ih_steps: torch.Tensor | None = None  # (T, G·H, I) per-step adjustment of W_ih
    dW_hh_steps: torch.Tensor | None = None  # (T, G·H, H) per-step adjustment of W_hh
    db_ih_steps: torch.Tensor | None = None  # (T, G·H)
    db_hh_steps: torch.Tensor | None = None  # (T, G·H) (differs from db_ih in GRU's n rows: r ⊙ δ_n)
    mask: torch.Tensor | None = None  # (T, B) bool, False at padded steps of a packed batch (None: all real)

    @property
    def steps(self) -> int:
        """Number of time steps T."""
        return self.x.shape[0]


@dataclass
class Trace:
    """Context manager that records a LayerTrace (Elman) or GatedLayerTrace (LSTM, GRU) per layer call.

    Args:
        weight_adjustments: also record the per-step weight adjustments (T·H·(H+I) numbers
            per layer: meant for small models, explain and diagnostics).
    """

    weight_adjustments: bool = False
    layers: list[LayerTrace | GatedLayerTrace] = field(default_factory=list)

    def __enter__(self) -> "Trace":
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc_info) -> None:
        _ACTIVE.reset(self._token)

    def layer(self, name: str) -> LayerTrace | GatedLayerTrace:
        """The most recent record of the layer called `name`."""
        for record in reversed(self.layers):
            if record.name == name:
                return record
        known = ", ".join(dict.fromkeys(r.name for r in self.layers)) or (
            "none recorded (a model under torch.compile records no Trace: run the uncompiled "
            "module, e.g. compiled._orig_mod, inside the Trace)")
        raise KeyError(f"no layer {name!r} in this trace; recorded: {known}")


def active_trace() -> Trace | None:
    """The Trace whose `with` block we are in, if any."""
    return _ACTIVE.get()
