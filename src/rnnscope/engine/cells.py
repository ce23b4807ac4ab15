"""Activation functions of an Elman cell, each with its derivative beside it.

An Elman step is  z_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh,  h_t = f(z_t).
The backward of one step needs f'(z_t); for every activation here it can be read off the
output h_t alone, so the forward pass keeps only h (and z when a Trace asks for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rnnscope.errors import UserError


@dataclass(frozen=True)
class Activation:
    """One nonlinearity f with its derivative, written side by side."""

    name: str
    forward_: Callable[[torch.Tensor], torch.Tensor]  # f applied in place
    derivative_from_output: Callable[[torch.Tensor], torch.Tensor]  # f'(z) computed from h = f(z)
    error_term_: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]  # (dh, h, out): out = dh ⊙ f'(z)
    max_derivative: float  # max over z of f'(z): the reference for saturation ratios

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """h = f(z), out of place."""
        return self.forward_(z.clone())

    def error_term(self, dh: torch.Tensor, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """out = dh ⊙ f'(z), the local error term, in one fused pass (f' read off h = f(z))."""
        self.error_term_(dh, h, out)
        return out

    def derivative(self, z: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """f'(z); pass h = f(z) if it is at hand to save recomputing it."""
        return self.derivative_from_output(self.forward(z) if h is None else h)


# Each derivative allocates one new tensor and works in place on it: on long sequences these
# arrays are tens of MB, and every extra pass over them costs as much as a matmul step.
def _sigmoid_derivative(h: torch.Tensor) -> torch.Tensor:
    return torch.sub(1, h).mul_(h)  # σ'(z) = σ(z)(1 − σ(z)), at most 0.25 at z = 0


def _tanh_derivative(h: torch.Tensor) -> torch.Tensor:
    return torch.mul(h, h).neg_().add_(1)  # tanh'(z) = 1 − tanh²(z)


def _relu_derivative(h: torch.Tensor) -> torch.Tensor:
    return (h > 0).to(h.dtype)  # 1 where z > 0 (h > 0 exactly there), else 0


# The fused error-term kernels are the ones autograd itself uses for these activations:
# one pass computing dh ⊙ f'(z) from h, instead of materialising f'(z) for every step first.
_aten = torch.ops.aten


def _sigmoid_error_term(dh, h, out):
    return _aten.sigmoid_backward.grad_input(dh, h, grad_input=out)  # dh ⊙ h(1 − h)


def _tanh_error_term(dh, h, out):
    return _aten.tanh_backward.grad_input(dh, h, grad_input=out)  # dh ⊙ (1 − h²)


def _relu_error_term(dh, h, out):
    return _aten.threshold_backward.grad_input(dh, h, 0, grad_input=out)  # dh where h > 0, else 0


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", torch.sigmoid_, _sigmoid_derivative, _sigmoid_error_term, 0.25),
    "tanh": Activation("tanh", torch.tanh_, _tanh_derivative, _tanh_error_term, 1.0),
    "relu": Activation("relu", torch.relu_, _relu_derivative, _relu_error_term, 1.0),
}


def get_activation(name: str) -> Activation:
    """The activation called `name`; an unknown name lists the choices."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        choices = ", ".join(sorted(ACTIVATIONS))
        raise UserError(f"unknown activation {name!r}; choose one of: {choices}") from None
