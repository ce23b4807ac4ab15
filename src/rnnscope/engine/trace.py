"""Trace: an opt-in record of every per-time-step quantity the engine computes.

    with Trace(weight_adjustments=True) as trace:
        output, h_n = rnn(x)
        loss_fn(output, y).backward()
    layer = trace.layer("layer0")
    layer.z, layer.h, layer.dh, layer.delta      # (T, B, H) each
    layer.dW_hh_steps                            # (T, H, H): δ_tᵀ h_{t-1}, summed over the batch

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
class Trace:
    """Context manager that records a LayerTrace for every engine layer call inside it.

    Args:
        weight_adjustments: also record the per-step weight adjustments (T·H·(H+I) numbers
            per layer: meant for small models, explain and diagnostics).
    """

    weight_adjustments: bool = False
    layers: list[LayerTrace] = field(default_factory=list)

    def __enter__(self) -> "Trace":
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc_info) -> None:
        _ACTIVE.reset(self._token)

    def layer(self, name: str) -> LayerTrace:
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
