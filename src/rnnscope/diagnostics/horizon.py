"""Memory horizon ("forgotten history", figure 5-5): how far back h_T still depends on h_{T-k}.

For one Elman layer h_t = f(z_t), z_t = x_t W_ihᵀ + h_{t-1} W_hhᵀ + b, so

    ∂h_t/∂h_{t-1} = diag(f'(z_t)) · W_hh            (H, H)
    ∂h_T/∂h_{T-k} = ∏_{j=0}^{k-1} diag(f'(z_{T-j})) · W_hh

This module builds that chain of Jacobians from the trace: the pre-activations z_t the engine
recorded, the engine's Activation.derivative and the W_hh the layer used (no autograd, no second
forward pass). `relative[k]` is the Frobenius norm ‖∂h_T/∂h_{T-k}‖_F relative to k = 0 (where
the Jacobian is I, norm √H), averaged over the samples: the root-mean-square singular value, which
lies within a factor √H of the spectral norm and costs no SVD (a record must stay cheap when the
horizon spans a thousand steps). The horizon is the largest k whose relative norm is still above
ε (default 1e-3), in time steps. A test checks the full chain against autograd through the engine.

Steps are counted in the order the layer processed them, so for a "_reverse" layer k counts
towards the end of the sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from rnnscope.engine.cells import get_activation
from rnnscope.engine.trace import LayerTrace

DEFAULT_EPSILON = 1e-3
FLOOR = 1e-12  # stop multiplying once the norm is this far below ε
CHUNK = 32  # steps whose norms are taken together (and between checks for stopping early)


@dataclass(frozen=True)
class Horizon:
    """The memory horizon of one layer."""

    layer: str
    epsilon: float
    relative: list[float] = field(repr=False)  # ‖∂h_T/∂h_{T-k}‖ / ‖∂h_T/∂h_T‖, k = 0, 1, …
    horizon: int  # largest k with relative[k] > ε
    steps: int  # T
    reached_start: bool  # True when even k = T-1 is above ε: the whole sequence is remembered

    def as_dict(self) -> dict:
        """A JSON-ready dict (inf as a string)."""
        relative = [r if math.isfinite(r) else str(r) for r in self.relative]
        return {**self.__dict__, "relative": relative}


def jacobian_chain(layer: LayerTrace, max_samples: int = 16) -> torch.Tensor:
    """∂h_T/∂h_{T-k} for k = 0 … T-1 and the first samples of the batch: (T, S, H, H), float64.

    Meant for tests and small layers; `memory_horizon` keeps only the norms.
    """
    chain = list(_chain(layer, max_samples))
    return torch.stack(chain)


def _chain(layer: LayerTrace, max_samples: int):
    """Yield J_k = ∂h_T/∂h_{T-k}, (S, H, H), for k = 0, 1, … T-1."""
    assert layer.z is not None, "the trace has no pre-activations"
    activation = get_activation(layer.activation)
    z = layer.z[:, :max_samples].detach().double()  # (T, S, H)
    h = None if layer.h is None else layer.h[:, :max_samples].detach().double()
    fprime = activation.derivative(z, h)  # (T, S, H) f'(z_t)
    W_hh = layer.W_hh.detach().double()  # (H, H)
    T, S, H = z.shape
    J = torch.eye(H, dtype=torch.float64).expand(S, H, H).clone()  # (S, H, H) J_0 = I
    yield J
    for k in range(1, T):
        t = T - k  # J_k = J_{k-1} · diag(f'(z_t)) · W_hh, with t the step being stepped through
        J = (J * fprime[t].unsqueeze(1)) @ W_hh  # (S, H, H)
        yield J


def memory_horizon(layer: LayerTrace, epsilon: float = DEFAULT_EPSILON, max_samples: int = 16) -> Horizon:
    """‖∂h_T/∂h_{T-k}‖ relative to k = 0 for every k, and the horizon: the largest k above ε."""
    return horizon_of_chain(layer.name, _chain(layer, max_samples), layer.z.shape[0], epsilon)


def horizon_of_chain(name: str, chain, T: int, epsilon: float = DEFAULT_EPSILON) -> Horizon:
    """The Horizon of a chain of state Jacobians J_k = ∂s_T/∂s_{T-k}, each (S, N, N), k = 0 … T-1.

    `relative[k]` is ‖J_k‖_F / ‖I‖_F averaged over the S samples; the gated cells' chains
    (`gated_horizon`) go through here too, with s = (h, c) for LSTM.
    """
    relative: list[float] = []
    chunk: list[torch.Tensor] = []
    for J in chain:
        chunk.append(J)
        if len(chunk) < CHUNK and len(relative) + len(chunk) < T:
            continue
        stacked = torch.stack(chunk)  # (K, S, N, N): the norms of a chunk of steps in one call
        norms = torch.linalg.matrix_norm(stacked) / math.sqrt(stacked.shape[-1])  # (K, S) ‖J_k‖_F / ‖I‖_F
        relative += norms.mean(dim=1).tolist()
        chunk = []
        stop = next((i for i, r in enumerate(relative) if not math.isfinite(r) or r < epsilon * FLOOR), None)
        if stop is not None:  # overflowed, or so far below ε that the rest only shrinks further
            relative = relative[: stop + 1]
            break
    above = [k for k, r in enumerate(relative) if r > epsilon]
    horizon = max(above) if above else 0
    if any(not math.isfinite(r) for r in relative):  # grew without bound: nothing is forgotten
        horizon = T - 1
    return Horizon(name, epsilon, relative, horizon, T, reached_start=horizon == T - 1)
