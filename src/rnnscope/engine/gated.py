"""What the LSTM and GRU layers of the engine share: gate names, argument checks, Trace records.

Both cells stack their gates' weights as torch.nn.LSTM / torch.nn.GRU do: W_ih is (G·H, I) and
W_hh is (G·H, H) with one block of H rows per gate, in the order of GATES below, so one matmul
computes every gate's weighted sum at once.
"""

from __future__ import annotations

import torch

from rnnscope.engine.bptt import TIME_REDUCTIONS
from rnnscope.engine.trace import GatedLayerTrace, active_trace
from rnnscope.errors import UserError

# torch's letters, in torch's row order, and what the chapter-style prose calls them
GATE_NAMES: dict[str, dict[str, str]] = {
    "lstm": {"i": "input gate", "f": "forget gate", "g": "cell candidate", "o": "output gate"},
    "gru": {"r": "reset gate", "z": "update gate", "n": "new gate"},
}
GATES: dict[str, tuple[str, ...]] = {cell: tuple(names) for cell, names in GATE_NAMES.items()}


# torch.tanh on CPU calls MKL's VML, which runs its own threads; on a loaded machine they stall
# (measured on the 2-core box, 2 threads, 8192 floats: tanh 5.6 ms, sigmoid 4 µs). Above this
# size the gated layers compute tanh(x) = 2σ(2x) − 1 with torch's own sigmoid kernel instead.
VML_TANH_MAX = 2048


def tanh_into(src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = tanh(src) (out may be src): torch.tanh for small or GPU tensors, else 2σ(2x) − 1."""
    if out.is_cuda or out.numel() <= VML_TANH_MAX:
        return torch.tanh(src, out=out)
    return torch.mul(src, 2, out=out).sigmoid_().mul_(2).sub_(1)


def check_layer_args(cell: str, x: torch.Tensor, states: tuple[torch.Tensor, ...], W_hh: torch.Tensor,
                     time_reduction: str) -> None:
    """Refuse shapes and options the gated layers cannot run (x (T, B, I); every state (B, H))."""
    if time_reduction not in TIME_REDUCTIONS:
        raise UserError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
    if x.dim() != 3 or any(s.dim() != 2 for s in states):
        shapes = ", ".join(str(tuple(s.shape)) for s in states)
        raise ValueError(f"{cell}_layer wants x (T, B, I) and states (B, H); got {tuple(x.shape)} and {shapes}")
    if x.shape[0] == 0:
        raise ValueError(f"{cell}_layer needs at least one time step (T = 0)")
    gates = len(GATES[cell])
    if W_hh.dim() != 2 or W_hh.shape[0] != gates * W_hh.shape[1]:
        raise ValueError(f"{cell}_layer wants W_hh ({gates}·H, H); got {tuple(W_hh.shape)}")


def empty_batch(x: torch.Tensor, states: tuple[torch.Tensor, ...], weights) -> tuple[torch.Tensor, ...]:
    """What a layer returns for a batch of no sequences (B = 0), as torch's modules do: out
    (T, 0, H) and the final states, each (0, H). There is nothing to compute, but the outputs
    stay in the autograd graph (each is the inputs' and weights' sum times 0), so a loss over
    them backpropagates: every gradient is zero, as torch's."""
    anchor = sum((w.sum() for w in weights if w is not None), x.sum()) * 0
    out = x.new_zeros(x.shape[0], 0, states[0].shape[1]) + anchor
    return (out, *(state + anchor for state in states))


def new_record(cell: str, trace_name: str | None, time_reduction: str, x, h0, c0, W_ih, W_hh, mask=None
               ) -> GatedLayerTrace | None:
    """A GatedLayerTrace appended to the active Trace, or None when no Trace is active
    (x (T, B, I); mask (T, B) for a packed batch, False at its padded steps)."""
    trace = active_trace()
    if trace is None:
        return None
    record = GatedLayerTrace(
        name=trace_name or "layer",
        cell=cell,
        time_reduction=time_reduction,
        x=x.detach().clone(),
        h0=h0.detach().clone(),
        c0=None if c0 is None else c0.detach().clone(),
        W_ih=W_ih.detach().clone(),
        W_hh=W_hh.detach().clone(),
        weight_adjustments=trace.weight_adjustments,
        mask=mask,
    )
    trace.layers.append(record)
    return record


def split_gates(cell: str, stacked: torch.Tensor) -> dict[str, torch.Tensor]:
    """{letter: (…, H) copy} of a (…, G·H) tensor holding every gate's block side by side."""
    blocks = stacked.chunk(len(GATES[cell]), dim=-1)
    return {name: block.clone() for name, block in zip(GATES[cell], blocks)}


def record_weight_adjustments(record: GatedLayerTrace, d_input: torch.Tensor, d_recurrent: torch.Tensor,
                              x: torch.Tensor, h0: torch.Tensor, h: torch.Tensor) -> None:
    """Per-step weight adjustments: dW_ih_t = d_input_tᵀ x_t, dW_hh_t = d_recurrent_tᵀ h_{t-1}.

    d_input, d_recurrent (T, B, G·H): the error terms that reach W_ih and W_hh (the same tensor
    for LSTM; for GRU they differ in the n rows, where W_hn's share is r_t ⊙ δ_n).
    """
    h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])  # (T, B, H) h_{t-1}
    record.dW_ih_steps = torch.bmm(d_input.transpose(1, 2), x)  # (T, G·H, I)
    record.dW_hh_steps = torch.bmm(d_recurrent.transpose(1, 2), h_prev)  # (T, G·H, H)
    record.db_ih_steps = d_input.sum(1)  # (T, G·H)
    record.db_hh_steps = d_recurrent.sum(1)  # (T, G·H)


def reduce_over_time(grads: tuple, T: int, time_reduction: str) -> None:
    """Divide the accumulated weight adjustments by T in place when time_reduction is "mean"."""
    if time_reduction == "mean" and T > 1:
        for grad in grads:
            if grad is not None:
                grad.div_(T)


def input_weight_adjustment(d_input: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dW_ih = Σ_t d_tᵀ x_t over rows, d_input (N, G·H) and x (N, I), returned (G·H, I).

    Computed as (xᵀ d)ᵀ: the same sums, but the product's long side is G·H, not I; with few inputs
    (I = 1 … 32) torch's CPU matmul was up to 5× faster that way round (benchmarks/engine.py).
    Returned with the weight's strides (a fresh row-major copy: with I = 1 the transpose already
    counts as contiguous, but its strides differ): a gradient whose strides differ from its DDP
    bucket's makes DDP warn, and copy it every step.
    """
    return torch.mm(x.t(), d_input).t().clone(memory_format=torch.contiguous_format)


def recurrent_weight_adjustment(d_recurrent: torch.Tensor, h0: torch.Tensor, h_previous: torch.Tensor) -> torch.Tensor:
    """dW_hh = Σ_t d_tᵀ h_{t-1} in two matmuls over rows: d_recurrent (N, G·H); step 1's B rows
    read h_0 (B, H), the other N − B rows read h_previous (N − B, H), their rows at t − 1."""
    B = h0.shape[0]
    dW_hh = torch.mm(d_recurrent[:B].t(), h0)  # (G·H, H) d_1ᵀ h_0
    if d_recurrent.shape[0] > B:
        dW_hh.addmm_(d_recurrent[B:].t(), h_previous)  # + Σ_{t≥2} d_tᵀ h_{t-1}
    return dW_hh
