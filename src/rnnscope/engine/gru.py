"""Backpropagation through time for one GRU layer, written by hand (torch.nn.GRU's formulation).

Forward (gates stacked r, z, n in W_ih (3H, I) and W_hh (3H, H)):
  r_t = σ(x_t W_irᵀ + b_ir + h_{t-1} W_hrᵀ + b_hr)                 reset gate
  z_t = σ(x_t W_izᵀ + b_iz + h_{t-1} W_hzᵀ + b_hz)                 update gate
  hn_t = h_{t-1} W_hnᵀ + b_hn                                       the recurrent part of n
  n_t = tanh(x_t W_inᵀ + b_in + r_t ⊙ hn_t)                          new gate (the candidate)
  h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}
The input projection of all gates for all steps is one matmul before the loop; each step computes
h_{t-1} W_hhᵀ for all three gates in one addmm.

Backward, in the chapter's words, for t = T … 1:
  output error   ∂L/∂h_t = (from the loss or the layer above) + ∂L/∂h_t+1 ⊙ z_t+1 + d_t+1 W_hh
  error terms    δ_n = ∂L/∂h_t ⊙ (1 − z_t) ⊙ tanh'(a_n)     δ_z = ∂L/∂h_t ⊙ (h_{t-1} − n_t) ⊙ σ'(a_z)
                 δ_r = δ_n ⊙ hn_t ⊙ σ'(a_r)                  W_hn's share of δ_n: r_t ⊙ δ_n
  d_t = [δ_r, δ_z, r_t ⊙ δ_n] reaches W_hh and h_{t-1};  [δ_r, δ_z, δ_n] reaches W_ih and x_t.
  weight adjustments  dW_ih = Σ_t [δ_r δ_z δ_n]ᵀ x_t,  dW_hh = Σ_t d_tᵀ h_{t-1}
Every error term is ∂L/∂h_t times a factor known from the forward pass, so the factors of all steps
are computed at once before the loop, and each step is one in-place product, one matmul and one
addcmul.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.gated import (check_layer_args, last_output_error, new_record, record_weight_adjustments,
                                   recurrent_weight_adjustment, reduce_over_time, split_gates, tanh_into)

_aten = torch.ops.aten


def _biases(b_ih: torch.Tensor | None, b_hh: torch.Tensor | None, H: int):
    """(bias of the input projection, bias of the recurrent matmul): b_hr and b_hz join b_ih,
    b_hn stays in the recurrent part because the reset gate scales it."""
    bias_x = None if b_ih is None else b_ih.clone()  # (3H,)
    bias_h = None
    if b_hh is not None:
        if bias_x is None:
            bias_x = torch.cat([b_hh[: 2 * H], b_hh.new_zeros(H)])
        else:
            bias_x[: 2 * H] += b_hh[: 2 * H]
        bias_h = torch.cat([b_hh.new_zeros(2 * H), b_hh[2 * H :]])  # (3H,) 0, 0, b_hn
    return bias_x, bias_h


def _forward_loop(x, h0, W_ih, W_hh, bias_x, bias_h, a_record):
    """Run the recurrence; returns gates (T, B, 3H) activated, hh (T, B, 3H) = h_{t-1} W_hhᵀ (+ b_hn), h."""
    T, B, I = x.shape
    H = W_hh.shape[1]
    x2d = x.reshape(T * B, I)
    # the input projection of all three gates for all time steps at once
    gates = torch.mm(x2d, W_ih.t()) if bias_x is None else torch.addmm(bias_x, x2d, W_ih.t())  # (T·B, 3H)
    gates = gates.view(T, B, 3 * H)
    hh, h = x.new_empty(T, B, 3 * H), x.new_empty(T, B, H)
    W_hh_t = W_hh.t()
    # every per-step view made once, before the loop
    rz_steps, r_steps, z_steps = gates[:, :, : 2 * H].unbind(0), gates[:, :, :H].unbind(0), gates[:, :, H : 2 * H].unbind(0)
    n_steps, hh_steps = gates[:, :, 2 * H :].unbind(0), hh.unbind(0)
    hh_rz_steps, hn_steps, h_steps = hh[:, :, : 2 * H].unbind(0), hh[:, :, 2 * H :].unbind(0), h.unbind(0)
    h_prev = h0
    for t in range(T):
        if bias_h is None:
            torch.mm(h_prev, W_hh_t, out=hh_steps[t])  # (B, 3H) h_{t-1} W_hhᵀ, all gates
        else:
            torch.addmm(bias_h, h_prev, W_hh_t, out=hh_steps[t])  # (B, 3H), + b_hn in the n rows
        rz_steps[t].add_(hh_rz_steps[t])  # a_r, a_z
        if a_record is not None:
            a_record[t, :, : 2 * H].copy_(rz_steps[t])
        rz_steps[t].sigmoid_()  # r_t, z_t
        n_steps[t].addcmul_(r_steps[t], hn_steps[t])  # a_n = x_t W_inᵀ + b_in + r_t ⊙ hn_t
        if a_record is not None:
            a_record[t, :, 2 * H :].copy_(n_steps[t])
        tanh_into(n_steps[t], n_steps[t])  # n_t
        torch.lerp(n_steps[t], h_prev, z_steps[t], out=h_steps[t])  # h_t = n_t + z_t ⊙ (h_{t-1} − n_t)
        h_prev = h_steps[t]
    return gates, hh, h


class GRUBPTT(torch.autograd.Function):
    """One GRU layer over a whole sequence, with hand-written BPTT as its backward."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, time_reduction, record):
        H = W_hh.shape[1]
        a_record = None if record is None else x.new_empty(x.shape[0], x.shape[1], 3 * H)
        gates, hh, h = _forward_loop(x, h0, W_ih, W_hh, *_biases(b_ih, b_hh, H), a_record)
        if record is not None:
            record.preactivations, record.gates = split_gates("gru", a_record), split_gates("gru", gates)
            record.hn, record.h = hh[:, :, 2 * H :].clone(), h.clone()
        ctx.time_reduction, ctx.record = time_reduction, record
        ctx.has_b_ih, ctx.has_b_hh = b_ih is not None, b_hh is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, W_ih, W_hh, gates, hh, h)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        x, h0, W_ih, W_hh, gates, hh, h = ctx.saved_tensors
        T, B, I = x.shape
        H = h.shape[2]
        record = ctx.record
        r, z, n = gates.chunk(3, dim=2)  # (T, B, H) each, activated
        hn = hh[:, :, 2 * H :]  # (T, B, H) h_{t-1} W_hnᵀ + b_hn
        h_prev = torch.cat([h0.unsqueeze(0), h[:-1]])  # (T, B, H) h_{t-1}

        # the forward-only factors of every error term, for all steps at once;
        # d_recurrent becomes d_t = [δ_r, δ_z, r ⊙ δ_n] in the loop
        n_factor = _aten.tanh_backward(torch.sub(1, z), n)  # (T, B, H) (1 − z_t) ⊙ tanh'(a_n)
        d_recurrent = torch.empty_like(gates)  # (T, B, 3H)
        d_r, d_z, d_hn = d_recurrent.chunk(3, dim=2)
        _aten.sigmoid_backward.grad_input(torch.mul(n_factor, hn), r, grad_input=d_r)  # … ⊙ hn_t ⊙ σ'(a_r)
        _aten.sigmoid_backward.grad_input(torch.sub(h_prev, n), z, grad_input=d_z)  # (h_{t-1} − n_t) ⊙ σ'(a_z)
        torch.mul(n_factor, r, out=d_hn)  # r_t ⊙ (1 − z_t) ⊙ tanh'(a_n)

        dh = torch.empty_like(h)  # (T, B, H) ∂L/∂h_t, the output error of every step
        last_output_error(dh[T - 1], grad_out, grad_h_last)
        step_steps = d_recurrent.unflatten(2, (3, H)).unbind(0)  # (B, 3, H) each
        dh_for_gates = dh.unsqueeze(2).unbind(0)  # (B, 1, H) views of dh's rows
        d_steps, dh_steps, z_steps = d_recurrent.unbind(0), dh.unbind(0), z.unbind(0)
        out_errors = grad_out.unbind(0) if grad_out is not None else None
        for t in reversed(range(T)):
            step_steps[t].mul_(dh_for_gates[t])  # d_t = ∂L/∂h_t ⊙ the factors: δ_r, δ_z, r ⊙ δ_n
            if t > 0:
                # propagate back through W_hh (all gates) and through the update gate (z_t h_{t-1})
                if out_errors is None:
                    torch.mm(d_steps[t], W_hh, out=dh_steps[t - 1])  # (B, H)
                else:
                    torch.addmm(out_errors[t - 1], d_steps[t], W_hh, out=dh_steps[t - 1])  # (B, H)
                dh_steps[t - 1].addcmul_(dh_steps[t], z_steps[t])

        # the error terms that reach W_ih and x: δ_r, δ_z as above, δ_n = ∂L/∂h_t ⊙ n_factor
        d_input = torch.empty_like(gates)  # (T, B, 3H)
        d_input[:, :, : 2 * H].copy_(d_recurrent[:, :, : 2 * H])
        torch.mul(dh, n_factor, out=d_input[:, :, 2 * H :])
        needs = ctx.needs_input_grad
        dx = dh0 = dW_ih = dW_hh = db_ih = db_hh = None
        d_input2d = d_input.view(T * B, 3 * H)
        if needs[0]:
            dx = torch.mm(d_input2d, W_ih).view(T, B, I)  # ∂L/∂x_t = [δ_r δ_z δ_n] W_ih
        if needs[1]:
            dh0 = torch.addcmul(torch.mm(d_recurrent[0], W_hh), dh[0], z[0])  # ∂L/∂h_0 = d_1 W_hh + ∂L/∂h_1 ⊙ z_1
        # weight adjustments, accumulated over all time steps in one matmul each
        if needs[2]:
            dW_ih = torch.mm(d_input2d.t(), x.reshape(T * B, I))  # (3H, I)
        if needs[3]:
            dW_hh = recurrent_weight_adjustment(d_recurrent, h0, h)  # (3H, H)
        if needs[4] and ctx.has_b_ih:
            db_ih = d_input2d.sum(0)  # (3H,)
        if needs[5] and ctx.has_b_hh:
            db_hh = d_recurrent.view(T * B, 3 * H).sum(0)  # (3H,)
        reduce_over_time((dW_ih, dW_hh, db_ih, db_hh), T, ctx.time_reduction)
        if record is not None:
            record.dh, record.delta = dh.clone(), split_gates("gru", d_input)
            record.delta["hn"] = d_recurrent[:, :, 2 * H :].clone()
            if record.weight_adjustments:
                record_weight_adjustments(record, d_input, d_recurrent, x, h0, h)
        return dx, dh0, dW_ih, dW_hh, db_ih, db_hh, None, None


def gru_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU layer over a sequence with hand-written BPTT.

    Args:
        x: (T, B, I) inputs, time-major.
        h0: (B, H) initial hidden state.
        W_ih, W_hh, b_ih, b_hh: the layer's weights, shaped as in torch.nn.GRU (3H rows, gates
            r, z, n; biases may be None).
        time_reduction: "sum" or "mean" (the weight adjustments divided by T), as for elman_layer.
        trace_name: the name this layer gets in an active Trace (default "layer").

    Returns:
        out (T, B, H), every h_t; and h_T (B, H).
    """
    check_layer_args("gru", x, (h0,), W_hh, time_reduction)
    record = new_record("gru", trace_name, time_reduction, x, h0, None, W_ih, W_hh)
    return GRUBPTT.apply(x.contiguous(), h0.contiguous(), W_ih, W_hh, b_ih, b_hh, time_reduction, record)
