"""Backpropagation through time for one GRU layer, written by hand (torch.nn.GRU's formulation).

Forward (gates stacked r, z, n in W_ih (3H, I) and W_hh (3H, H)):
  r_t = σ(x_t W_irᵀ + b_ir + h_{t-1} W_hrᵀ + b_hr)                 reset gate
  z_t = σ(x_t W_izᵀ + b_iz + h_{t-1} W_hzᵀ + b_hz)                 update gate
  hn_t = h_{t-1} W_hnᵀ + b_hn                                       the recurrent part of n
  n_t = tanh(x_t W_inᵀ + b_in + r_t ⊙ hn_t)                          new gate (the candidate)
  h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}
The input projection of all gates for all steps is one matmul before the loop; each step computes
h_{t-1} W_hhᵀ for all three gates in one addmm (oneDNN's linear for large float32 steps:
engine/onednn.py says when and why).

Backward, in the chapter's words, for t = T … 1:
  output error   ∂L/∂h_t = (from the loss or the layer above) + ∂L/∂h_t+1 ⊙ z_t+1 + d_t+1 W_hh
  error terms    δ_n = ∂L/∂h_t ⊙ (1 − z_t) ⊙ tanh'(a_n)     δ_z = ∂L/∂h_t ⊙ (h_{t-1} − n_t) ⊙ σ'(a_z)
                 δ_r = δ_n ⊙ hn_t ⊙ σ'(a_r)                  W_hn's share of δ_n: r_t ⊙ δ_n
  d_t = [δ_r, δ_z, r_t ⊙ δ_n] reaches W_hh and h_{t-1};  [δ_r, δ_z, δ_n] reaches W_ih and x_t.
  weight adjustments  dW_ih = Σ_t [δ_r δ_z δ_n]ᵀ x_t,  dW_hh = Σ_t d_tᵀ h_{t-1}
Every error term is ∂L/∂h_t times a factor known from the forward pass, so the factors of all steps
are computed at once before the loop, and each step is one in-place product, one matmul and one
addcmul.

The loops run over rows (N, ·) laid out by a DenseLayout (a padded batch) or a PackedLayout (the
running sequences of each step only), as in engine/lstm.py; under torch.compile / torch.export
the layer is the custom operator rnnscope::gru_forward (engine/op.py).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine import onednn
from rnnscope.engine.gated import (check_layer_args, empty_batch, input_weight_adjustment, new_record,
                                   record_weight_adjustments, recurrent_weight_adjustment, reduce_over_time,
                                   split_gates, tanh_into)
from rnnscope.engine.op import EngineOp, opaque
from rnnscope.engine.packed import DenseLayout, PackedLayout, as_rows, output_errors

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


def _forward_loop(x, h0, W_ih, W_hh, bias_x, bias_h, layout, a_record):
    """Run the recurrence over x (N, I); returns gates (N, 3H) activated, hh (N, 3H) = h_{t-1} W_hhᵀ
    (+ b_hn), and h (N, H)."""
    N = x.shape[0]
    H = W_hh.shape[1]
    # the input projection of all three gates for all time steps at once
    gates = torch.mm(x, W_ih.t()) if bias_x is None else torch.addmm(bias_x, x, W_ih.t())  # (N, 3H)
    hh, h = x.new_empty(N, 3 * H), x.new_empty(N, H)
    W_hh_t = W_hh.t()
    # every per-step view made once, before the loop
    split = layout.split
    rz_steps, r_steps, z_steps = split(gates[:, : 2 * H]), split(gates[:, :H]), split(gates[:, H : 2 * H])
    n_steps, hh_steps = split(gates[:, 2 * H :]), split(hh)
    hh_rz_steps, hn_steps, h_steps = split(hh[:, : 2 * H]), split(hh[:, 2 * H :]), split(h)
    a_record_steps = split(a_record) if a_record is not None else None
    W_rows = W_hh.contiguous() if onednn.use_for(x, h0.shape[0], H, 3 * H) else None  # large float32 steps: oneDNN
    h_prev = h0
    for t, n in enumerate(layout.batch_sizes):
        if n != h_prev.shape[0]:  # packed: sequences that ended drop out of the batch
            h_prev = h_prev[:n]
        if W_rows is not None:
            hh_steps[t].copy_(onednn.linear(h_prev, W_rows, bias_h))
        elif bias_h is None:
            torch.mm(h_prev, W_hh_t, out=hh_steps[t])  # (n_t, 3H) h_{t-1} W_hhᵀ, all gates
        else:
            torch.addmm(bias_h, h_prev, W_hh_t, out=hh_steps[t])  # (n_t, 3H), + b_hn in the n rows
        rz_steps[t].add_(hh_rz_steps[t])  # a_r, a_z
        if a_record_steps is not None:
            a_record_steps[t][:, : 2 * H].copy_(rz_steps[t])
        rz_steps[t].sigmoid_()  # r_t, z_t
        n_steps[t].addcmul_(r_steps[t], hn_steps[t])  # a_n = x_t W_inᵀ + b_in + r_t ⊙ hn_t
        if a_record_steps is not None:
            a_record_steps[t][:, 2 * H :].copy_(n_steps[t])
        tanh_into(n_steps[t], n_steps[t])  # n_t
        torch.lerp(n_steps[t], h_prev, z_steps[t], out=h_steps[t])  # h_t = n_t + z_t ⊙ (h_{t-1} − n_t)
        h_prev = h_steps[t]
    return gates, hh, h


def _backward_pass(x, h0, W_ih, W_hh, gates, hh, h, grad_out, grad_h_last, needs, has_bias, layout,
                   time_reduction, record):
    """BPTT over rows (N, ·): the gradients of (x, h0, W_ih, W_hh, b_ih, b_hh), None where `needs`
    says no. grad_out (N, H) or (T, B, H) and grad_h_last (B, H) may each be None."""
    B, H = h0.shape
    r, z, n = gates.chunk(3, dim=1)  # (N, H) each, activated
    hn = hh[:, 2 * H :]  # (N, H) h_{t-1} W_hnᵀ + b_hn
    h_prev = torch.cat([h0, layout.previous(h)])  # (N, H) h_{t-1}

    # the forward-only factors of every error term, for all steps at once;
    # d_recurrent becomes d_t = [δ_r, δ_z, r ⊙ δ_n] in the loop
    n_factor = _aten.tanh_backward(torch.sub(1, z), n)  # (N, H) (1 − z_t) ⊙ tanh'(a_n)
    d_recurrent = torch.empty_like(gates)  # (N, 3H)
    d_r, d_z, d_hn = d_recurrent.chunk(3, dim=1)
    _aten.sigmoid_backward.grad_input(torch.mul(n_factor, hn), r, grad_input=d_r)  # … ⊙ hn_t ⊙ σ'(a_r)
    _aten.sigmoid_backward.grad_input(torch.sub(h_prev, n), z, grad_input=d_z)  # (h_{t-1} − n_t) ⊙ σ'(a_z)
    torch.mul(n_factor, r, out=d_hn)  # r_t ⊙ (1 − z_t) ⊙ tanh'(a_n)

    dh = output_errors(layout, grad_out, grad_h_last, h)  # (N, H) ∂L/∂h_t; the loop adds what step t+1 sends
    split = layout.split
    step_steps = split(d_recurrent.unflatten(1, (3, H)))  # (n_t, 3, H) each
    dh_for_gates = split(dh.unsqueeze(1))  # (n_t, 1, H) views of dh's rows
    d_steps, dh_steps, z_steps = split(d_recurrent), split(dh), split(z)
    sizes = layout.batch_sizes
    W_hh_t = W_hh.t().contiguous() if onednn.use_for(gates, B, 3 * H, H) else None  # (H, 3H) for oneDNN
    for t in reversed(range(layout.steps)):
        step_steps[t].mul_(dh_for_gates[t])  # d_t = ∂L/∂h_t ⊙ the factors: δ_r, δ_z, r ⊙ δ_n
        if t > 0:
            # propagate back through W_hh (all gates) and through the update gate (z_t h_{t-1}),
            # onto the running rows of step t−1
            dh_prev = dh_steps[t - 1] if sizes[t] == sizes[t - 1] else dh_steps[t - 1][: sizes[t]]
            if W_hh_t is None:
                dh_prev.addmm_(d_steps[t], W_hh)
            else:
                dh_prev.add_(onednn.linear(d_steps[t], W_hh_t))
            dh_prev.addcmul_(dh_steps[t], z_steps[t])

    # the error terms that reach W_ih and x: δ_r, δ_z as above (d_recurrent's first 2H columns, not
    # copied), and δ_n = ∂L/∂h_t ⊙ n_factor; each product below is taken over the two parts
    d_rz, delta_n = d_recurrent[:, : 2 * H], torch.mul(dh, n_factor)  # (N, 2H) a view, (N, H)
    dx = dh0 = dW_ih = dW_hh = db_ih = db_hh = None
    if needs[0]:
        dx = torch.mm(d_rz, W_ih[: 2 * H]).addmm_(delta_n, W_ih[2 * H :])  # (N, I) ∂L/∂x_t = [δ_r δ_z δ_n] W_ih
    if needs[1]:
        # ∂L/∂h_0 = d_1 W_hh + ∂L/∂h_1 ⊙ z_1 (every sequence runs at t = 1)
        dh0 = torch.addcmul(torch.mm(d_recurrent[:B], W_hh), dh[:B], z[:B])
    # weight adjustments, accumulated over all time steps in one matmul each
    if needs[2]:
        dW_ih = torch.cat([input_weight_adjustment(d_rz, x), input_weight_adjustment(delta_n, x)])  # (3H, I)
    if needs[3]:
        dW_hh = recurrent_weight_adjustment(d_recurrent, h0, layout.previous(h))  # (3H, H)
    has_b_ih, has_b_hh = has_bias
    if (needs[4] and has_b_ih) or (needs[5] and has_b_hh):
        db_recurrent = d_recurrent.sum(0)  # (3H,) Σ d_t; b_ih's r and z rows get the same sums
        db_hh = db_recurrent if needs[5] and has_b_hh else None
        db_ih = torch.cat([db_recurrent[: 2 * H], delta_n.sum(0)]) if needs[4] and has_b_ih else None  # (3H,)
    reduce_over_time((dW_ih, dW_hh, db_ih, db_hh), layout.steps, time_reduction)
    if record is not None:
        pad = layout.pad
        d_input = torch.cat([d_rz, delta_n], dim=1)  # (N, 3H) [δ_r δ_z δ_n]
        record.dh, record.delta = pad(dh).clone(), split_gates("gru", pad(d_input))
        record.delta["hn"] = pad(d_recurrent[:, 2 * H :].contiguous()).clone()
        if record.weight_adjustments:
            record_weight_adjustments(record, pad(d_input), pad(d_recurrent), pad(x), h0, pad(h))
    return dx, dh0, dW_ih, dW_hh, db_ih, db_hh


class GRUBPTT(torch.autograd.Function):
    """One GRU layer over a padded x (T, B, I) (layout None) or packed rows x (N, I) and their
    PackedLayout, with hand-written BPTT as its backward; out is shaped as x."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, layout, time_reduction, record):
        ctx.x_shape = x.shape
        x, layout = as_rows(x, layout)
        H = W_hh.shape[1]
        a_record = None if record is None else x.new_empty(x.shape[0], 3 * H)
        gates, hh, h = _forward_loop(x, h0, W_ih, W_hh, *_biases(b_ih, b_hh, H), layout, a_record)
        if record is not None:
            pad = layout.pad
            record.preactivations, record.gates = split_gates("gru", pad(a_record)), split_gates("gru", pad(gates))
            record.hn, record.h = pad(hh[:, 2 * H :].contiguous()).clone(), pad(h).clone()
        ctx.layout, ctx.time_reduction, ctx.record = layout, time_reduction, record
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, W_ih, W_hh, gates, hh, h)
        return h.view(*ctx.x_shape[:-1], H), layout.last(h).clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        dx, *grads = _backward_pass(*ctx.saved_tensors, grad_out, grad_h_last, ctx.needs_input_grad[:6], ctx.has_bias,
                               ctx.layout, ctx.time_reduction, ctx.record)
        return None if dx is None else dx.view(ctx.x_shape), *grads, None, None, None


# The same forward and backward as the custom operator the compiler sees (engine/op.py).
# options: "<time_reduction>"; inputs: x (T, B, I), h0, W_ih, W_hh, b_ih, b_hh.
def _op_forward(inputs, options: str) -> list[torch.Tensor]:
    x, h0, W_ih, W_hh, b_ih, b_hh = inputs
    T, B, I = x.shape
    layout = DenseLayout(T, B)
    H = W_hh.shape[1]
    gates, hh, h = _forward_loop(x.reshape(T * B, I), h0, W_ih, W_hh, *_biases(b_ih, b_hh, H), layout, None)
    return [h.view(T, B, H), layout.last(h).clone(), gates, hh]  # the outputs, then the residuals


def _op_backward(inputs, outputs, grads, needs, options: str) -> list[torch.Tensor | None]:
    x, h0, W_ih, W_hh, b_ih, b_hh = inputs
    h, _, gates, hh = outputs
    T, B, I = x.shape
    result = list(_backward_pass(x.reshape(T * B, I), h0, W_ih, W_hh, gates, hh, h.reshape(T * B, -1), grads[0],
                                 grads[1], needs, (b_ih is not None, b_hh is not None), DenseLayout(T, B),
                                 options, None))
    if result[0] is not None:
        result[0] = result[0].view(T, B, I)
    return result


def _op_fake(inputs, options: str) -> list[torch.Tensor]:
    x, h0, _, W_hh = inputs[:4]
    T, B, H = x.shape[0], x.shape[1], W_hh.shape[1]
    return [x.new_empty(T, B, H), h0.new_empty(B, H), x.new_empty(T * B, 3 * H), x.new_empty(T * B, 3 * H)]


GRU_OP = EngineOp("gru", _op_forward, _op_backward, _op_fake)


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
    if x.shape[1] == 0:  # no sequences: torch's modules return empty outputs
        return empty_batch(x, (h0,), (W_ih, W_hh, b_ih, b_hh))
    if opaque():  # torch.compile / export: one opaque operator, and no Trace
        out, h_last = GRU_OP([x, h0, W_ih, W_hh, b_ih, b_hh], time_reduction)[:2]
        return out, h_last
    record = new_record("gru", trace_name, time_reduction, x, h0, None, W_ih, W_hh)
    return GRUBPTT.apply(x, h0.contiguous(), W_ih, W_hh, b_ih, b_hh, None, time_reduction, record)


@torch.compiler.disable  # data-dependent steps: under torch.compile this runs eagerly (a graph break)
def gru_packed_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    layout: PackedLayout,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU layer over a packed batch (engine/packed.py): each step's matmul on its running rows.

    Args:
        x: (N, I) the packed rows; h0: (B, H) in the packed batch's (sorted) order.
        layout: the batch's PackedLayout. The rest as for gru_layer ("mean" divides by T, the
            longest sequence's steps).

    Returns:
        out (N, H), packed; and h_n (B, H), every sequence's last real step. A Trace records
        (T, B, ·) tensors with zeros at the padded steps and `mask` (T, B).
    """
    check_layer_args("gru", x.unsqueeze(0), (h0,), W_hh, time_reduction)
    record = new_record("gru", trace_name, time_reduction, layout.pad(x), h0, None, W_ih, W_hh, layout.mask())
    return GRUBPTT.apply(x.contiguous(), h0.contiguous(), W_ih, W_hh, b_ih, b_hh, layout, time_reduction, record)
