"""Backpropagation through time for one LSTM layer, written by hand.

Forward (torch.nn.LSTM's cell; gates stacked i, f, g, o in W_ih (4H, I) and W_hh (4H, H)):
  a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh          the weighted sums of all four gates
  i_t = σ(a_i)   f_t = σ(a_f)   g_t = tanh(a_g)   o_t = σ(a_o)
  c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                         the cell state
  h_t = o_t ⊙ tanh(c_t)
The input projection of all steps is one matmul before the loop; each step adds h_{t-1} W_hhᵀ for
all four gates in one addmm and applies the gates in place (one sigmoid for all four: g's rows
are doubled in a copy of the weights, and tanh(a) = 2σ(2a) − 1).

Backward, in the chapter's words, for t = T … 1:
  output error        ∂L/∂h_t = (from the loss or the layer above) + δ_{t+1} W_hh
  cell-state error    ∂L/∂c_t = ∂L/∂h_t ⊙ o_t ⊙ tanh'(c_t) + ∂L/∂c_{t+1} ⊙ f_{t+1}
                      (it flows back through the forget gate: × f, not × w·σ'(z) as in Elman)
  error terms         δ_o = ∂L/∂h_t ⊙ tanh(c_t) ⊙ σ'(a_o)     δ_i = ∂L/∂c_t ⊙ g_t ⊙ σ'(a_i)
                      δ_f = ∂L/∂c_t ⊙ c_{t-1} ⊙ σ'(a_f)       δ_g = ∂L/∂c_t ⊙ i_t ⊙ tanh'(a_g)
  weight adjustments  dW_ih = Σ_t δ_tᵀ x_t,  dW_hh = Σ_t δ_tᵀ h_{t-1},  db = Σ_t δ_t  (δ_t = [δ_i δ_f δ_g δ_o])
The factors that multiply ∂L/∂h_t and ∂L/∂c_t in these lines depend on the forward pass only, so
they are computed for all steps at once before the loop; the loop then does five small in-place
operations and one matmul per step.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.gated import (check_layer_args, last_output_error, new_record, record_weight_adjustments,
                                   recurrent_weight_adjustment, reduce_over_time, split_gates, tanh_into)

_aten = torch.ops.aten


def _doubled_cell_rows(weight: torch.Tensor | None, H: int) -> torch.Tensor | None:
    """A copy of a (4H, …) weight or bias with the cell candidate's rows (g) times 2.

    With them the loop's one sigmoid over all four gates gives σ(2a_g), and g = tanh(a_g) =
    2σ(2a_g) − 1: one fast kernel for the four gates (see gated.VML_TANH_MAX for why not tanh).
    """
    if weight is None:
        return None
    doubled = weight.clone()
    doubled[2 * H : 3 * H] *= 2
    return doubled


def _forward_loop(x, h0, c0, W_ih, W_hh, b_ih, b_hh, a_record):
    """Run the recurrence; returns gates (T, B, 4H) activated, c, tanh(c) and h (T, B, H) each."""
    T, B, I = x.shape
    H = W_hh.shape[1]
    W_ih, W_hh = _doubled_cell_rows(W_ih, H), _doubled_cell_rows(W_hh, H)
    biases = [_doubled_cell_rows(b, H) for b in (b_ih, b_hh) if b is not None]
    bias = sum(biases[1:], biases[0]) if biases else None  # (4H,) b_ih + b_hh, either may be absent
    x2d = x.reshape(T * B, I)
    # the input projection of all four gates for all time steps at once
    if bias is None:
        gates = torch.mm(x2d, W_ih.t())  # (T·B, 4H)
    else:
        gates = torch.addmm(bias, x2d, W_ih.t())  # (T·B, 4H)
    gates = gates.view(T, B, 4 * H)
    c, tanh_c, h = (x.new_empty(T, B, H) for _ in range(3))
    W_hh_t = W_hh.t()
    # every per-step view made once, before the loop
    a_steps, g_steps = gates.unbind(0), gates[:, :, 2 * H : 3 * H].unbind(0)  # (B, 4H), (B, H)
    i_steps, f_steps, o_steps = (gates[:, :, k * H : (k + 1) * H].unbind(0) for k in (0, 1, 3))
    c_steps, tanh_c_steps, h_steps = c.unbind(0), tanh_c.unbind(0), h.unbind(0)
    h_prev, c_prev = h0, c0
    for t in range(T):
        a_steps[t].addmm_(h_prev, W_hh_t)  # a_t = x_t W_ihᵀ + b + h_{t-1} W_hhᵀ, all gates (a_g doubled)
        if a_record is not None:
            a_record[t].copy_(a_steps[t])
        a_steps[t].sigmoid_()  # i_t, f_t, o_t and s = σ(2a_g), so that g_t = tanh(a_g) = 2s − 1
        torch.mul(f_steps[t], c_prev, out=c_steps[t])  # c_t = f_t ⊙ c_{t-1}
        c_steps[t].addcmul_(i_steps[t], g_steps[t], value=2).sub_(i_steps[t])  #   + i_t ⊙ (2s − 1)
        tanh_into(c_steps[t], tanh_c_steps[t])
        torch.mul(o_steps[t], tanh_c_steps[t], out=h_steps[t])  # h_t = o_t ⊙ tanh(c_t)
        h_prev, c_prev = h_steps[t], c_steps[t]
    gates[:, :, 2 * H : 3 * H].mul_(2).sub_(1)  # g_t = 2σ(2a_g) − 1 for all steps at once
    if a_record is not None:
        a_record[:, :, 2 * H : 3 * H].div_(2)  # the recorded a_g as the model defines it
    return gates, c, tanh_c, h


class LSTMBPTT(torch.autograd.Function):
    """One LSTM layer over a whole sequence, with hand-written BPTT as its backward."""

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, b_ih, b_hh, time_reduction, record):
        a_record = None if record is None else x.new_empty(x.shape[0], x.shape[1], W_hh.shape[0])
        gates, c, tanh_c, h = _forward_loop(x, h0, c0, W_ih, W_hh, b_ih, b_hh, a_record)
        if record is not None:
            record.preactivations, record.gates = split_gates("lstm", a_record), split_gates("lstm", gates)
            record.c, record.h = c.clone(), h.clone()
        ctx.time_reduction, ctx.record = time_reduction, record
        ctx.has_b_ih, ctx.has_b_hh = b_ih is not None, b_hh is not None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, c0, W_ih, W_hh, gates, c, tanh_c, h)
        return h, h[-1].clone(), c[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last, grad_c_last):
        x, h0, c0, W_ih, W_hh, gates, c, tanh_c, h = ctx.saved_tensors
        T, B, I = x.shape
        H = h.shape[2]
        record = ctx.record
        i, f, g, o = gates.chunk(4, dim=2)  # (T, B, H) each, activated
        c_prev = torch.cat([c0.unsqueeze(0), c[:-1]])  # (T, B, H) c_{t-1}

        # delta starts as the forward-only factors of each error term and becomes δ_t in the loop
        delta = torch.empty_like(gates)  # (T, B, 4H)
        d_i, d_f, d_g, d_o = delta.chunk(4, dim=2)
        _aten.sigmoid_backward.grad_input(g, i, grad_input=d_i)  # g_t ⊙ σ'(a_i)
        _aten.sigmoid_backward.grad_input(c_prev, f, grad_input=d_f)  # c_{t-1} ⊙ σ'(a_f)
        _aten.tanh_backward.grad_input(i, g, grad_input=d_g)  # i_t ⊙ tanh'(a_g)
        _aten.sigmoid_backward.grad_input(tanh_c, o, grad_input=d_o)  # tanh(c_t) ⊙ σ'(a_o)
        through_tanh = _aten.tanh_backward(o, tanh_c)  # (T, B, H) ∂h_t/∂c_t = o_t ⊙ tanh'(c_t)

        dh = torch.empty_like(h)  # (T, B, H) ∂L/∂h_t, the output error of every step
        last_output_error(dh[T - 1], grad_out, grad_h_last)
        dc = torch.zeros_like(h0) if grad_c_last is None else grad_c_last.clone()  # (B, H) ∂L/∂c_t
        dc_record = torch.empty_like(h) if record is not None else None

        dc_for_gates = dc.unsqueeze(1)  # (B, 1, H): a view, so it follows dc's in-place updates
        ifg_steps = delta[:, :, : 3 * H].unflatten(2, (3, H)).unbind(0)  # (B, 3, H) δ_i δ_f δ_g
        o_steps, delta_steps = d_o.unbind(0), delta.unbind(0)
        dh_steps, f_steps, through_tanh_steps = dh.unbind(0), f.unbind(0), through_tanh.unbind(0)
        out_errors = grad_out.unbind(0) if grad_out is not None else None
        for t in reversed(range(T)):
            dc.addcmul_(dh_steps[t], through_tanh_steps[t])  # cell-state error: + ∂L/∂h_t ⊙ o_t ⊙ tanh'(c_t)
            if dc_record is not None:
                dc_record[t].copy_(dc)
            ifg_steps[t].mul_(dc_for_gates)  # δ_i, δ_f, δ_g = ∂L/∂c_t ⊙ their factors
            o_steps[t].mul_(dh_steps[t])  # δ_o = ∂L/∂h_t ⊙ tanh(c_t) ⊙ σ'(a_o)
            dc.mul_(f_steps[t])  # back through the forget gate: ∂L/∂c_{t-1} gets ∂L/∂c_t ⊙ f_t
            if t > 0:
                # propagate the error terms of all gates back through W_hh, adding the output error at t−1
                if out_errors is None:
                    torch.mm(delta_steps[t], W_hh, out=dh_steps[t - 1])  # (B, H)
                else:
                    torch.addmm(out_errors[t - 1], delta_steps[t], W_hh, out=dh_steps[t - 1])  # (B, H)

        needs = ctx.needs_input_grad
        dx = dh0 = dc0 = dW_ih = dW_hh = db_ih = db_hh = None
        delta2d = delta.view(T * B, 4 * H)
        if needs[0]:
            dx = torch.mm(delta2d, W_ih).view(T, B, I)  # ∂L/∂x_t = δ_t W_ih
        if needs[1]:
            dh0 = torch.mm(delta[0], W_hh)  # ∂L/∂h_0 = δ_1 W_hh
        if needs[2]:
            dc0 = dc  # ∂L/∂c_0 = ∂L/∂c_1 ⊙ f_1
        # weight adjustments, accumulated over all time steps in one matmul each
        if needs[3]:
            dW_ih = torch.mm(delta2d.t(), x.reshape(T * B, I))  # (4H, I) Σ_t δ_tᵀ x_t
        if needs[4]:
            dW_hh = recurrent_weight_adjustment(delta, h0, h)  # (4H, H) Σ_t δ_tᵀ h_{t-1}
        if (needs[5] and ctx.has_b_ih) or (needs[6] and ctx.has_b_hh):
            db = delta2d.sum(0)  # (4H,) Σ_t Σ_batch δ_t
            db_ih = db if needs[5] and ctx.has_b_ih else None
            db_hh = db.clone() if needs[6] and ctx.has_b_hh else None
        reduce_over_time((dW_ih, dW_hh, db_ih, db_hh), T, ctx.time_reduction)
        if record is not None:
            record.dh, record.dc, record.delta = dh.clone(), dc_record, split_gates("lstm", delta)
            if record.weight_adjustments:
                record_weight_adjustments(record, delta, delta, x, h0, h)
        return dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, None, None


def lstm_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM layer over a sequence with hand-written BPTT.

    Args:
        x: (T, B, I) inputs, time-major.
        h0, c0: (B, H) initial hidden and cell states.
        W_ih, W_hh, b_ih, b_hh: the layer's weights, shaped as in torch.nn.LSTM (4H rows, gates
            i, f, g, o; biases may be None).
        time_reduction: "sum" or "mean" (the weight adjustments divided by T), as for elman_layer.
        trace_name: the name this layer gets in an active Trace (default "layer").

    Returns:
        out (T, B, H), every h_t; h_T (B, H); c_T (B, H).
    """
    check_layer_args("lstm", x, (h0, c0), W_hh, time_reduction)
    record = new_record("lstm", trace_name, time_reduction, x, h0, c0, W_ih, W_hh)
    return LSTMBPTT.apply(x.contiguous(), h0.contiguous(), c0.contiguous(), W_ih, W_hh, b_ih, b_hh,
                          time_reduction, record)
