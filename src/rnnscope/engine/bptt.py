"""Backpropagation through time for one Elman layer, written by hand.

Forward:  the input projection of every time step is one matmul before the loop; only the
recurrence  z_t = xw_t + h_{t-1} W_hhᵀ,  h_t = f(z_t)  runs step by step.
Backward, in the chapter's words:
  output error        ∂L/∂h_t arriving from above (the loss or the next layer)
  local error term    δ_t = ∂L/∂h_t ⊙ f'(z_t)          (error × activation derivative)
  propagated in time  ∂L/∂h_{t-1} += δ_t W_hh           (for t = T … 1)
  weight adjustments  dW_ih = Σ_t δ_tᵀ x_t,  dW_hh = Σ_t δ_tᵀ h_{t-1},  db = Σ_t δ_t
accumulated over the time steps (one matmul each, after the loop), or averaged over them with
time_reduction="mean".
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.cells import Activation, get_activation
from rnnscope.engine.op import EngineOp, opaque
from rnnscope.engine.trace import LayerTrace, active_trace
from rnnscope.errors import UserError

TIME_REDUCTIONS = ("sum", "mean")


def _forward_loop(
    x: torch.Tensor,  # (T, B, I)
    h0: torch.Tensor,  # (B, H)
    W_ih: torch.Tensor,  # (H, I)
    W_hh: torch.Tensor,  # (H, H)
    bias: torch.Tensor | None,  # (H,) b_ih + b_hh
    act: Activation,
    z_record: torch.Tensor | None,  # (T, B, H) filled with z_t when tracing
) -> torch.Tensor:
    """Run the recurrence; returns h (T, B, H)."""
    T, B, I = x.shape
    H = W_hh.shape[0]
    x2d = x.reshape(T * B, I)
    # the input projection of all time steps at once; h starts out holding it
    if bias is None:
        h = torch.mm(x2d, W_ih.t())  # (T·B, H)
    else:
        h = torch.addmm(bias, x2d, W_ih.t())  # (T·B, H)
    h = h.view(T, B, H)
    W_hh_t = W_hh.t()
    h_prev = h0
    # unbind: all T step views in one call, cheaper than indexing h[t] inside the loop
    for t, h_t in enumerate(h.unbind(0)):
        h_t.addmm_(h_prev, W_hh_t)  # z_t = x_t W_ihᵀ + b + h_{t-1} W_hhᵀ
        if z_record is not None:
            z_record[t].copy_(h_t)
        act.forward_(h_t)  # h_t = f(z_t), in place
        h_prev = h_t
    return h


def _summed_bias(b_ih: torch.Tensor | None, b_hh: torch.Tensor | None) -> torch.Tensor | None:
    """(H,) b_ih + b_hh; either may be absent."""
    biases = [b for b in (b_ih, b_hh) if b is not None]
    return sum(biases[1:], biases[0]) if biases else None


class ElmanBPTT(torch.autograd.Function):
    """One Elman layer over a whole sequence, with hand-written BPTT as its backward."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, activation, time_reduction, record):
        act = get_activation(activation)
        bias = _summed_bias(b_ih, b_hh)
        z_record = None
        if record is not None:
            z_record = torch.empty(x.shape[0], x.shape[1], W_hh.shape[0], dtype=x.dtype, device=x.device)
        h = _forward_loop(x, h0, W_ih, W_hh, bias, act, z_record)  # (T, B, H)
        if record is not None:
            record.z, record.h = z_record, h.detach().clone()
        ctx.act, ctx.time_reduction, ctx.record = act, time_reduction, record
        ctx.has_b_ih, ctx.has_b_hh = b_ih is not None, b_hh is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, W_ih, W_hh, h)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        x, h0, W_ih, W_hh, h = ctx.saved_tensors
        needs = ctx.needs_input_grad[:6]
        grads = _backward_pass(x, h0, W_ih, W_hh, h, grad_out, grad_h_last, needs,
                               (ctx.has_b_ih, ctx.has_b_hh), ctx.act, ctx.time_reduction, ctx.record)
        return *grads, None, None, None


def _backward_pass(x, h0, W_ih, W_hh, h, grad_out, grad_h_last, needs, has_bias, act: Activation,
                   time_reduction: str, record: LayerTrace | None):
    """BPTT over the whole sequence: the gradients of (x, h0, W_ih, W_hh, b_ih, b_hh), None where
    `needs` says no. grad_out (T, B, H) and grad_h_last (B, H) may each be None (no gradient)."""
    T, B, I = x.shape
    H = W_hh.shape[0]
    delta = torch.empty_like(h)  # (T, B, H) local error terms δ_t
    dh_record = torch.empty_like(h) if record is not None else None

    # output error at the last step: from the loss on y_T and from h_n
    dh_buffer = torch.empty_like(h0)  # (B, H) reused every step: no allocation in the loop
    if grad_out is None:
        dh = grad_h_last if grad_h_last is not None else torch.zeros_like(h0)
    else:
        dh = grad_out[T - 1] if grad_h_last is None else grad_out[T - 1] + grad_h_last
    h_steps, delta_steps = h.unbind(0), delta.unbind(0)
    out_errors = grad_out.unbind(0) if grad_out is not None else None
    for t in reversed(range(T)):
        if dh_record is not None:
            dh_record[t].copy_(dh)
        act.error_term(dh, h_steps[t], out=delta_steps[t])  # error term δ_t = error × f'(z_t)
        if t > 0:
            # propagate the error term back through W_hh, adding the output error at t−1
            if out_errors is None:
                dh = torch.mm(delta_steps[t], W_hh, out=dh_buffer)  # (B, H)
            else:
                dh = torch.addmm(out_errors[t - 1], delta_steps[t], W_hh, out=dh_buffer)  # (B, H)

    grads = _gradients_from_error_terms(x, h0, W_ih, W_hh, h, delta, needs, has_bias, time_reduction)
    if record is not None:
        _record_backward(record, dh_record, delta, x, h0, h)
    return grads


def _gradients_from_error_terms(x, h0, W_ih, W_hh, h, delta, needs, has_bias, time_reduction: str):
    """The gradients of (x, h0, W_ih, W_hh, b_ih, b_hh) from the error terms δ (T, B, H), one
    matmul each after the time loop (None where `needs` says no); the fused kernels use it too."""
    T, B, I = x.shape
    H = W_hh.shape[0]
    dx = dh0 = dW_ih = dW_hh = db_ih = db_hh = None
    delta2d = delta.view(T * B, H)
    if needs[0]:
        dx = torch.mm(delta2d, W_ih).view(T, B, I)  # ∂L/∂x_t = δ_t W_ih
    if needs[1]:
        dh0 = torch.mm(delta[0], W_hh)  # ∂L/∂h_0 = δ_1 W_hh
    # weight adjustments, accumulated over all time steps in one matmul each
    scale = 1.0 / T if time_reduction == "mean" else 1.0
    if needs[2]:
        dW_ih = torch.mm(delta2d.t(), x.reshape(T * B, I))  # (H, I) Σ_t δ_tᵀ x_t
    if needs[3]:
        dW_hh = torch.mm(delta[0].t(), h0)  # (H, H) δ_1ᵀ h_0
        if T > 1:
            dW_hh.addmm_(delta[1:].reshape(-1, H).t(), h[:-1].reshape(-1, H))  # + Σ_{t≥2} δ_tᵀ h_{t-1}
    has_b_ih, has_b_hh = has_bias
    if (needs[4] and has_b_ih) or (needs[5] and has_b_hh):
        db = delta2d.sum(0)  # (H,) Σ_t Σ_batch δ_t
        db_ih = db if needs[4] and has_b_ih else None
        db_hh = db.clone() if needs[5] and has_b_hh else None
    if scale != 1.0:
        for grad in (dW_ih, dW_hh, db_ih, db_hh):
            if grad is not None:
                grad.mul_(scale)
    return dx, dh0, dW_ih, dW_hh, db_ih, db_hh


def _record_backward(record: LayerTrace, dh, delta, x, h0, h) -> None:
    """Fill a trace record's backward fields (only ever called when a Trace asked for them)."""
    record.dh, record.delta = dh, delta.clone()
    if record.weight_adjustments:
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])  # (T, B, H) h_{t-1}
        record.dW_ih_steps = torch.bmm(delta.transpose(1, 2), x)  # (T, H, I)
        record.dW_hh_steps = torch.bmm(delta.transpose(1, 2), h_prev)  # (T, H, H)
        record.db_steps = delta.sum(1)  # (T, H)


# The same forward and backward as the custom operator the compiler sees (engine/op.py).
# options: "<activation> <time_reduction>"; inputs: x, h0, W_ih, W_hh, b_ih, b_hh.
def _op_forward(inputs, options: str) -> list[torch.Tensor]:
    x, h0, W_ih, W_hh, b_ih, b_hh = inputs
    activation, _ = options.split()
    h = _forward_loop(x, h0, W_ih, W_hh, _summed_bias(b_ih, b_hh), get_activation(activation), None)
    return [h, h[-1].clone()]  # out (T, B, H), h_T (B, H)


def _op_backward(inputs, outputs, grads, needs, options: str) -> list[torch.Tensor | None]:
    x, h0, W_ih, W_hh, b_ih, b_hh = inputs
    activation, time_reduction = options.split()
    return list(_backward_pass(x, h0, W_ih, W_hh, outputs[0], grads[0], grads[1], needs,
                               (b_ih is not None, b_hh is not None), get_activation(activation),
                               time_reduction, None))


def _op_fake(inputs, options: str) -> list[torch.Tensor]:
    x, h0, _, W_hh = inputs[:4]
    return [x.new_empty(x.shape[0], x.shape[1], W_hh.shape[0]), h0.new_empty(h0.shape)]


ELMAN_OP = EngineOp("elman", _op_forward, _op_backward, _op_fake)


def elman_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    activation: str = "tanh",
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Elman layer over a sequence with hand-written BPTT.

    Args:
        x: (T, B, I) inputs, time-major.
        h0: (B, H) initial hidden state.
        W_ih, W_hh, b_ih, b_hh: the layer's weights, shaped as in torch.nn.RNN (biases may be None).
        activation: "sigmoid", "tanh" or "relu".
        time_reduction: "sum" accumulates the weight adjustments over the time steps (what torch
            and Keras do); "mean" divides them by T (the option the chapter describes).
        trace_name: the name this layer gets in an active Trace (default "layer").

    Returns:
        out (T, B, H), every h_t; and h_T (B, H).
    """
    if time_reduction not in TIME_REDUCTIONS:
        raise UserError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
    if x.dim() != 3 or h0.dim() != 2:
        raise ValueError(f"elman_layer wants x (T, B, I) and h0 (B, H); got {tuple(x.shape)} and {tuple(h0.shape)}")
    if x.shape[0] == 0:
        raise ValueError("elman_layer needs at least one time step (T = 0)")
    if opaque():  # torch.compile / export / jit.trace: one opaque operator, and no Trace
        out, h_last = ELMAN_OP([x, h0, W_ih, W_hh, b_ih, b_hh], f"{activation} {time_reduction}")
        return out, h_last
    record = _new_record(x, h0, W_ih, W_hh, activation, time_reduction, trace_name)
    return ElmanBPTT.apply(
        x.contiguous(), h0.contiguous(), W_ih, W_hh, b_ih, b_hh, activation, time_reduction, record
    )


def _new_record(x, h0, W_ih, W_hh, activation: str, time_reduction: str,
                trace_name: str | None) -> LayerTrace | None:
    """The active Trace's new record for this layer call (appended to it), or None with no Trace."""
    trace = active_trace()
    if trace is None:
        return None
    record = LayerTrace(
        name=trace_name or "layer",
        activation=activation,
        time_reduction=time_reduction,
        x=x.detach().clone(),
        h0=h0.detach().clone(),
        W_ih=W_ih.detach().clone(),
        W_hh=W_hh.detach().clone(),
        weight_adjustments=trace.weight_adjustments,
    )
    trace.layers.append(record)
    return record
