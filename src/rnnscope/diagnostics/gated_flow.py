"""Gradient flow and memory horizon of an LSTM or GRU layer, from the engine's GatedLayerTrace.

Gradient flow: ‖∂L/∂h_t‖ per step (both cells) and, for LSTM, ‖∂L/∂c_t‖, the cell-state error
that flows back × f_t per step instead of × w_h·σ'(z_t) ≤ 0.25·w_h (the Elman cell's factor).

Memory horizon: the chain of the state Jacobians ∂s_t/∂s_{t-1}, with s = (h, c) for LSTM (2H
numbers) and s = h for GRU, built from the recorded gates and W_hh (no autograd, no second
forward pass). With a_t = x_t W_ihᵀ + b + h_{t-1} W_hhᵀ, W_k the H rows of W_hh of gate k,
σ'_k = k(1 − k) and diag(v)·W written v ⊙ W (each row scaled):

  LSTM  ∂c_t/∂h_{t-1} = (c_{t-1} σ'_f) ⊙ W_f + (g σ'_i) ⊙ W_i + (i (1 − g²)) ⊙ W_g
        ∂c_t/∂c_{t-1} = diag(f_t)                                   the cell-state path
        ∂h_t/∂h_{t-1} = (tanh(c_t) σ'_o) ⊙ W_o + (o (1 − tanh²c_t)) ⊙ ∂c_t/∂h_{t-1}
        ∂h_t/∂c_{t-1} = diag(o (1 − tanh²c_t) f_t)
  GRU   ∂h_t/∂h_{t-1} = diag(z_t) + ((h_{t-1} − n) σ'_z) ⊙ W_z
                        + ((1 − z)(1 − n²)) ⊙ (r ⊙ W_n + (hn σ'_r) ⊙ W_r)

`relative[k]` is ‖∂s_T/∂s_{T-k}‖_F / ‖I‖_F (see `horizon`); a test checks the chain against
autograd through the engine. Above EXACT_MAX state numbers the norms are estimated with random
probe vectors (`_chain`), which a test checks against the exact ones.
"""

from __future__ import annotations

import torch

from rnnscope.diagnostics.gradient_flow import GradientFlow, flow_of, share_arrived_directly
from rnnscope.diagnostics.horizon import DEFAULT_EPSILON, Horizon, horizon_of_chain
from rnnscope.engine.gated import GATES
from rnnscope.engine.trace import GatedLayerTrace

EXACT_MAX = 64  # state sizes N up to this get the exact chain of (N, N) Jacobians
PROBES = 32  # above, ‖J_k‖_F is estimated from this many probe vectors (relative spread ≈ √(2/m) at worst)

def hidden_flow(layer: GatedLayerTrace) -> GradientFlow:
    """‖∂L/∂h_t‖ per step; direct_share: how much of it arrived at step t, not from step t+1."""
    assert layer.dh is not None, "the trace has no backward record (run backward inside the Trace)"
    share = 0.0
    if layer.steps > 1:
        keys = ("i", "f", "g", "o") if layer.cell == "lstm" else ("r", "z", "hn")  # W_hh's row blocks
        deltas = torch.cat([layer.delta[k][1:] for k in keys], dim=2)  # (T-1, B, G·H)
        carried = deltas @ layer.W_hh  # (T-1, B, H)
        if layer.cell == "gru":
            carried = carried + layer.dh[1:] * layer.gates["z"][1:]  # h_t = z ⊙ h_{t-1} + …
        share = share_arrived_directly(layer.dh[:-1], carried)
    return flow_of(layer.name, layer.dh, share)


def cell_flow(layer: GatedLayerTrace) -> GradientFlow | None:
    """LSTM: ‖∂L/∂c_t‖ per step; direct_share: the part that came from h_t rather than × f_{t+1} from c_{t+1}."""
    if layer.dc is None:
        return None
    share = 0.0
    if layer.steps > 1:
        share = share_arrived_directly(layer.dc[:-1], layer.dc[1:] * layer.gates["f"][1:])
    return flow_of(layer.name, layer.dc, share)


def _at(tensor: torch.Tensor, t: int, max_samples: int) -> torch.Tensor:
    return tensor[t, :max_samples].detach().double()  # (S, H)


def step_jacobians(layer: GatedLayerTrace, t: int, max_samples: int = 16) -> torch.Tensor:
    """∂s_t/∂s_{t-1} for the first samples: (S, 2H, 2H) for LSTM (rows and columns h then c), (S, H, H) for GRU."""
    W = dict(zip(GATES[layer.cell], layer.W_hh.detach().double().chunk(len(GATES[layer.cell]))))  # (H, H) each
    gate = {k: _at(v, t, max_samples) for k, v in layer.gates.items()}  # (S, H) each
    d_sigma = lambda k: gate[k] * (1 - gate[k])  # noqa: E731  σ' read off the gate's value
    rows = lambda v, M: v.unsqueeze(2) * M  # noqa: E731  diag(v) · M, (S, H, H)
    if layer.cell == "gru":
        h = _at(layer.h, t - 1, max_samples) if t > 0 else layer.h0[:max_samples].double()  # (S, H) h_{t-1}
        hn = _at(layer.hn, t, max_samples)  # (S, H)
        r, z, n = gate["r"], gate["z"], gate["n"]
        through_n = rows(r, W["n"]) + rows(hn * d_sigma("r"), W["r"])  # ∂(r ⊙ hn)/∂h_{t-1}
        return torch.diag_embed(z) + rows((h - n) * d_sigma("z"), W["z"]) + rows((1 - z) * (1 - n * n), through_n)
    c_prev = _at(layer.c, t - 1, max_samples) if t > 0 else layer.c0[:max_samples].double()  # (S, H)
    tanh_c = torch.tanh(_at(layer.c, t, max_samples))  # (S, H)
    i, f, g, o = gate["i"], gate["f"], gate["g"], gate["o"]
    dc_dh = rows(c_prev * d_sigma("f"), W["f"]) + rows(g * d_sigma("i"), W["i"]) + rows(i * (1 - g * g), W["g"])
    through_c = o * (1 - tanh_c * tanh_c)  # ∂h_t/∂c_t
    dh_dh = rows(tanh_c * d_sigma("o"), W["o"]) + rows(through_c, dc_dh)
    top = torch.cat([dh_dh, torch.diag_embed(through_c * f)], dim=2)  # (S, H, 2H)
    bottom = torch.cat([dc_dh, torch.diag_embed(f)], dim=2)  # (S, H, 2H)
    return torch.cat([top, bottom], dim=1)  # (S, 2H, 2H)


def _chain(layer: GatedLayerTrace, max_samples: int, probes: int | None = None):
    """Yield J_k = ∂s_T/∂s_{T-k} for k = 0 … T-1, (S, N, N); with `probes` = m, V·J_k instead, (S, m, N).

    V's rows are Gaussian / √m, so ‖V·J‖_F² is an unbiased estimate of ‖J‖_F² (E[VᵀV] = I) at
    m·N² instead of N³ per step (a fixed seed: the same layer gives the same estimate).
    """
    S = min(max_samples, layer.x.shape[1])
    N = layer.W_hh.shape[1] * (2 if layer.cell == "lstm" else 1)
    if probes is None:
        J = torch.eye(N, dtype=torch.float64).expand(S, N, N).clone()  # (S, N, N) J_0 = I
    else:
        generator = torch.Generator().manual_seed(0)
        J = torch.randn(S, probes, N, generator=generator, dtype=torch.float64) / probes**0.5  # (S, m, N) V·J_0
    yield J
    for k in range(1, layer.steps):
        J = J @ step_jacobians(layer, layer.steps - k, max_samples)  # step t = T − k
        yield J


def gated_jacobian_chain(layer: GatedLayerTrace, max_samples: int = 16) -> torch.Tensor:
    """∂s_T/∂s_{T-k} for k = 0 … T-1: (T, S, N, N), float64 (for tests and small layers)."""
    return torch.stack(list(_chain(layer, max_samples)))


def gated_horizon(layer: GatedLayerTrace, epsilon: float = DEFAULT_EPSILON, max_samples: int = 16) -> Horizon:
    """How far back the state s_T = (h_T, c_T) (LSTM) or h_T (GRU) still depends on s_{T-k}.

    Exact up to EXACT_MAX state numbers; above, the Frobenius norms are estimated with PROBES
    random probe vectors (N³ per step would make a record of a 128-unit LSTM take seconds).
    """
    N = layer.W_hh.shape[1] * (2 if layer.cell == "lstm" else 1)
    probes = None if N <= EXACT_MAX else PROBES
    return horizon_of_chain(layer.name, _chain(layer, max_samples, probes), layer.steps, epsilon)
