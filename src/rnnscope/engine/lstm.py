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

The loops run over rows (N, ·) and a layout saying which rows each step holds: a padded batch
(DenseLayout, T steps of B rows) or a packed one (PackedLayout: the running sequences only, so
each step's matmul covers exactly them). Under torch.compile / torch.export the layer is the
custom operator rnnscope::lstm_forward (engine/op.py).

On the CPU (float32, float64) both loops run compiled by default (engine/lstm_kernel.py): the same
equations, each step's pointwise work one pass over its rows instead of 7 and 5 tensor calls, and
each step's matmul by size (a register-tiled loop, addmm, or for large float32 steps oneDNN:
engine/onednn.py). The
pure-torch loops below are the fallback (no compiler, CUDA, other dtypes, RNNSCOPE_FUSED_LSTM=0)
and the reference the kernel is tested against, Trace included.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine import lstm_kernel, onednn
from rnnscope.engine.gated import (check_layer_args, empty_batch, input_weight_adjustment, new_record,
                                   record_weight_adjustments, recurrent_weight_adjustment, reduce_over_time,
                                   split_gates, tanh_into)
from rnnscope.engine.op import EngineOp, opaque
from rnnscope.engine.packed import DenseLayout, PackedLayout, as_rows, output_errors

_aten = torch.ops.aten
_PLAIN = (torch.Tensor, torch.nn.Parameter)  # the kernel reads memory: no tensor subclasses


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


def _fused_loops(x, *tensors):
    """The compiled loops of engine/lstm_kernel.py when they can run on these tensors, else None."""
    ops = lstm_kernel.kernel(x)
    if ops is None or any(t is not None and (t.dtype != x.dtype or t.device != x.device or type(t) not in _PLAIN)
                          for t in (x, *tensors)):
        return None
    return ops


def _forward_loop(x, h0, c0, W_ih, W_hh, b_ih, b_hh, layout, a_record):
    """Run the recurrence over x (N, I); returns gates (N, 4H) activated, c, tanh(c) and h (N, H) each."""
    ops = _fused_loops(x, h0, c0, W_ih, W_hh, b_ih, b_hh)
    if ops is not None:
        return _fused_forward_loop(ops, x, h0, c0, W_ih, W_hh, b_ih, b_hh, layout, a_record)
    N = x.shape[0]
    H = W_hh.shape[1]
    W_ih, W_hh = _doubled_cell_rows(W_ih, H), _doubled_cell_rows(W_hh, H)
    biases = [_doubled_cell_rows(b, H) for b in (b_ih, b_hh) if b is not None]
    bias = sum(biases[1:], biases[0]) if biases else None  # (4H,) b_ih + b_hh, either may be absent
    # the input projection of all four gates for all time steps at once
    gates = torch.mm(x, W_ih.t()) if bias is None else torch.addmm(bias, x, W_ih.t())  # (N, 4H)
    c, tanh_c, h = (x.new_empty(N, H) for _ in range(3))
    W_hh_t = W_hh.t()
    # every per-step view made once, before the loop
    split = layout.split
    a_steps, g_steps = split(gates), split(gates[:, 2 * H : 3 * H])  # (n_t, 4H), (n_t, H)
    i_steps, f_steps, o_steps = (split(gates[:, k * H : (k + 1) * H]) for k in (0, 1, 3))
    c_steps, tanh_c_steps, h_steps = split(c), split(tanh_c), split(h)
    a_record_steps = split(a_record) if a_record is not None else None
    h_prev, c_prev = h0, c0
    for t, n in enumerate(layout.batch_sizes):
        if n != h_prev.shape[0]:  # packed: sequences that ended drop out of the batch
            h_prev, c_prev = h_prev[:n], c_prev[:n]
        a_steps[t].addmm_(h_prev, W_hh_t)  # a_t = x_t W_ihᵀ + b + h_{t-1} W_hhᵀ, all gates (a_g doubled)
        if a_record_steps is not None:
            a_record_steps[t].copy_(a_steps[t])
        a_steps[t].sigmoid_()  # i_t, f_t, o_t and s = σ(2a_g), so that g_t = tanh(a_g) = 2s − 1
        torch.mul(f_steps[t], c_prev, out=c_steps[t])  # c_t = f_t ⊙ c_{t-1}
        c_steps[t].addcmul_(i_steps[t], g_steps[t], value=2).sub_(i_steps[t])  #   + i_t ⊙ (2s − 1)
        tanh_into(c_steps[t], tanh_c_steps[t])
        torch.mul(o_steps[t], tanh_c_steps[t], out=h_steps[t])  # h_t = o_t ⊙ tanh(c_t)
        h_prev, c_prev = h_steps[t], c_steps[t]
    gates[:, 2 * H : 3 * H].mul_(2).sub_(1)  # g_t = 2σ(2a_g) − 1 for all steps at once
    if a_record is not None:
        a_record[:, 2 * H : 3 * H].div_(2)  # the recorded a_g as the model defines it
    return gates, c, tanh_c, h


def _fused_forward_loop(ops, x, h0, c0, W_ih, W_hh, b_ih, b_hh, layout, a_record):
    """_forward_loop's recurrence in the compiled kernel: per step one matmul and one pass over the
    step's rows for the gates (the biases added there), c_t, tanh(c_t) and h_t (engine/lstm_kernel.py)."""
    N, H = x.shape[0], W_hh.shape[1]
    biases = [b for b in (b_ih, b_hh) if b is not None]
    bias = sum(biases[1:], biases[0]).contiguous() if biases else None  # (4H,) b_ih + b_hh, either may be absent
    # the input projection of all four gates for all time steps at once; the loop adds h_{t-1} W_hhᵀ + b
    gates = torch.mm(x, W_ih.t())  # (N, 4H)
    c, tanh_c, h = (x.new_empty(N, H) for _ in range(3))
    ops.forward_loop(gates, h0.contiguous(), c0.contiguous(), W_hh.t(), layout.batch_sizes, c, tanh_c, h, a_record,
                     bias, onednn.use_for(x, h0.shape[0], H, 4 * H))
    return gates, c, tanh_c, h


def _backward_pass(x, h0, c0, W_ih, W_hh, gates, c, tanh_c, h, grad_out, grad_h_last, grad_c_last, needs,
                   has_bias, layout, time_reduction, record):
    """BPTT over rows (N, ·): the gradients of (x, h0, c0, W_ih, W_hh, b_ih, b_hh), None where
    `needs` says no. grad_out (N, H) or (T, B, H), grad_h_last and grad_c_last (B, H) may each be None."""
    ops = _fused_loops(gates, c0, c, tanh_c, W_hh)
    if ops is not None:
        delta, dh, dc_all, dc_record = _fused_error_terms(ops, c0, W_hh, gates, c, tanh_c, h, grad_out, grad_h_last,
                                                          grad_c_last, layout, record is not None)
    else:
        delta, dh, dc_all, dc_record = _error_terms(c0, W_hh, gates, c, tanh_c, h, grad_out, grad_h_last, grad_c_last,
                                                    layout, record is not None)
    return _gradients(x, h0, W_ih, W_hh, h, delta, dh, dc_all, dc_record, needs, has_bias, layout, time_reduction,
                      record)


def _error_terms(c0, W_hh, gates, c, tanh_c, h, grad_out, grad_h_last, grad_c_last, layout, recording):
    """The backward loop over the steps (pure torch): returns δ_t (N, 4H), ∂L/∂h_t (N, H), ∂L/∂c_0
    (B, H) and, when recording, ∂L/∂c_t (N, H)."""
    H = c0.shape[1]
    i, f, g, o = gates.chunk(4, dim=1)  # (N, H) each, activated
    c_prev = torch.cat([c0, layout.previous(c)])  # (N, H) c_{t-1}

    # delta starts as the forward-only factors of each error term and becomes δ_t in the loop
    delta = torch.empty_like(gates)  # (N, 4H)
    d_i, d_f, d_g, d_o = delta.chunk(4, dim=1)
    _aten.sigmoid_backward.grad_input(g, i, grad_input=d_i)  # g_t ⊙ σ'(a_i)
    _aten.sigmoid_backward.grad_input(c_prev, f, grad_input=d_f)  # c_{t-1} ⊙ σ'(a_f)
    _aten.tanh_backward.grad_input(i, g, grad_input=d_g)  # i_t ⊙ tanh'(a_g)
    _aten.sigmoid_backward.grad_input(tanh_c, o, grad_input=d_o)  # tanh(c_t) ⊙ σ'(a_o)
    through_tanh = _aten.tanh_backward(o, tanh_c)  # (N, H) ∂h_t/∂c_t = o_t ⊙ tanh'(c_t)

    dh = output_errors(layout, grad_out, grad_h_last, h)  # (N, H) ∂L/∂h_t; the loop adds δ_{t+1} W_hh
    # (B, H) ∂L/∂c_t; a packed sequence's row keeps ∂L/∂c_n until the loop reaches its last step
    dc_all = torch.zeros_like(c0) if grad_c_last is None else grad_c_last.clone()
    dc_record = torch.empty_like(h) if recording else None

    split = layout.split
    ifg_steps = split(delta[:, : 3 * H].unflatten(1, (3, H)))  # (n_t, 3, H) δ_i δ_f δ_g
    o_steps, delta_steps = split(d_o), split(delta)
    dh_steps, f_steps, through_tanh_steps = split(dh), split(f), split(through_tanh)
    dc_record_steps = split(dc_record) if dc_record is not None else None
    sizes = layout.batch_sizes
    dc = dc_for_gates = None
    for t in reversed(range(layout.steps)):
        if dc is None or sizes[t] != dc.shape[0]:  # packed: the sequences ending at t join in
            dc = dc_all[: sizes[t]]
            dc_for_gates = dc.unsqueeze(1)  # (n_t, 1, H): a view, so it follows dc's in-place updates
        dc.addcmul_(dh_steps[t], through_tanh_steps[t])  # cell-state error: + ∂L/∂h_t ⊙ o_t ⊙ tanh'(c_t)
        if dc_record_steps is not None:
            dc_record_steps[t].copy_(dc)
        ifg_steps[t].mul_(dc_for_gates)  # δ_i, δ_f, δ_g = ∂L/∂c_t ⊙ their factors
        o_steps[t].mul_(dh_steps[t])  # δ_o = ∂L/∂h_t ⊙ tanh(c_t) ⊙ σ'(a_o)
        dc.mul_(f_steps[t])  # back through the forget gate: ∂L/∂c_{t-1} gets ∂L/∂c_t ⊙ f_t
        if t > 0:
            # propagate the error terms of all gates back through W_hh, onto the output error at t−1
            dh_prev = dh_steps[t - 1] if sizes[t] == sizes[t - 1] else dh_steps[t - 1][: sizes[t]]
            dh_prev.addmm_(delta_steps[t], W_hh)  # (n_t, H), the running rows only
    return delta, dh, dc_all, dc_record


def _fused_error_terms(ops, c0, W_hh, gates, c, tanh_c, h, grad_out, grad_h_last, grad_c_last, layout, recording):
    """_error_terms in the compiled kernel: per step one pass over the step's rows for ∂L/∂c_t and
    the four error terms, then one addmm back through W_hh (engine/lstm_kernel.py)."""
    dh = output_errors(layout, grad_out, grad_h_last, h)  # (N, H) ∂L/∂h_t; the loop adds δ_{t+1} W_hh
    # (B, H) ∂L/∂c_t; a packed sequence's row keeps ∂L/∂c_n until the loop reaches its last step
    dc_all = (torch.zeros_like(c0, memory_format=torch.contiguous_format) if grad_c_last is None
              else grad_c_last.clone(memory_format=torch.contiguous_format))
    delta = torch.empty_like(gates)  # (N, 4H) δ_t = [δ_i δ_f δ_g δ_o]
    dc_record = torch.empty_like(h) if recording else None
    ops.backward_loop(gates, c0.contiguous(), c, tanh_c, W_hh, layout.batch_sizes, dh, dc_all, delta, dc_record,
                      onednn.use_for(gates, c0.shape[0], 4 * c0.shape[1], c0.shape[1]))
    return delta, dh, dc_all, dc_record


def _gradients(x, h0, W_ih, W_hh, h, delta, dh, dc_all, dc_record, needs, has_bias, layout, time_reduction, record):
    """The gradients of (x, h0, c0, W_ih, W_hh, b_ih, b_hh) from the error terms δ_t (N, 4H), each
    after the loop in one matmul; None where `needs` says no. Fills the Trace record's backward."""
    B = h0.shape[0]
    dx = dh0 = dc0 = dW_ih = dW_hh = db_ih = db_hh = None
    if needs[0]:
        dx = torch.mm(delta, W_ih)  # (N, I) ∂L/∂x_t = δ_t W_ih
    if needs[1]:
        dh0 = torch.mm(delta[:B], W_hh)  # ∂L/∂h_0 = δ_1 W_hh (every sequence runs at t = 1)
    if needs[2]:
        dc0 = dc_all  # ∂L/∂c_0 = ∂L/∂c_1 ⊙ f_1
    # weight adjustments, accumulated over all time steps in one matmul each
    if needs[3]:
        dW_ih = input_weight_adjustment(delta, x)  # (4H, I) Σ_t δ_tᵀ x_t
    if needs[4]:
        dW_hh = recurrent_weight_adjustment(delta, h0, layout.previous(h))  # (4H, H) Σ_t δ_tᵀ h_{t-1}
    has_b_ih, has_b_hh = has_bias
    if (needs[5] and has_b_ih) or (needs[6] and has_b_hh):
        db = delta.sum(0)  # (4H,) Σ_t Σ_batch δ_t
        db_ih = db if needs[5] and has_b_ih else None
        db_hh = db.clone() if needs[6] and has_b_hh else None
    reduce_over_time((dW_ih, dW_hh, db_ih, db_hh), layout.steps, time_reduction)
    if record is not None:
        pad = layout.pad
        record.dh, record.dc, record.delta = pad(dh).clone(), pad(dc_record), split_gates("lstm", pad(delta))
        if record.weight_adjustments:
            padded_delta = pad(delta)
            record_weight_adjustments(record, padded_delta, padded_delta, pad(x), h0, pad(h))
    return dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh


class LSTMBPTT(torch.autograd.Function):
    """One LSTM layer over a padded x (T, B, I) (layout None) or packed rows x (N, I) and their
    PackedLayout, with hand-written BPTT as its backward; out is shaped as x."""

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, b_ih, b_hh, layout, time_reduction, record):
        ctx.x_shape = x.shape
        x, layout = as_rows(x, layout)
        a_record = None if record is None else x.new_empty(x.shape[0], W_hh.shape[0])
        gates, c, tanh_c, h = _forward_loop(x, h0, c0, W_ih, W_hh, b_ih, b_hh, layout, a_record)
        if record is not None:
            pad = layout.pad
            record.preactivations, record.gates = split_gates("lstm", pad(a_record)), split_gates("lstm", pad(gates))
            record.c, record.h = pad(c).clone(), pad(h).clone()
        ctx.layout, ctx.time_reduction, ctx.record = layout, time_reduction, record
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, c0, W_ih, W_hh, gates, c, tanh_c, h)
        return h.view(*ctx.x_shape[:-1], h.shape[1]), layout.last(h).clone(), layout.last(c).clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last, grad_c_last):
        dx, *grads = _backward_pass(*ctx.saved_tensors, grad_out, grad_h_last, grad_c_last, ctx.needs_input_grad[:7],
                               ctx.has_bias, ctx.layout, ctx.time_reduction, ctx.record)
        return None if dx is None else dx.view(ctx.x_shape), *grads, None, None, None


# The same forward and backward as the custom operator the compiler sees (engine/op.py).
# options: "<time_reduction>"; inputs: x (T, B, I), h0, c0, W_ih, W_hh, b_ih, b_hh.
def _op_forward(inputs, options: str) -> list[torch.Tensor]:
    x, h0, c0, W_ih, W_hh, b_ih, b_hh = inputs
    T, B, I = x.shape
    layout = DenseLayout(T, B)
    gates, c, tanh_c, h = _forward_loop(x.reshape(T * B, I), h0, c0, W_ih, W_hh, b_ih, b_hh, layout, None)
    # the outputs, then the residuals the backward needs
    return [h.view(T, B, -1), layout.last(h).clone(), layout.last(c).clone(), gates, c, tanh_c]


def _op_backward(inputs, outputs, grads, needs, options: str) -> list[torch.Tensor | None]:
    x, h0, c0, W_ih, W_hh, b_ih, b_hh = inputs
    h, _, _, gates, c, tanh_c = outputs
    T, B, I = x.shape
    result = list(_backward_pass(x.reshape(T * B, I), h0, c0, W_ih, W_hh, gates, c, tanh_c, h.reshape(T * B, -1),
                                 grads[0], grads[1], grads[2], needs, (b_ih is not None, b_hh is not None),
                                 DenseLayout(T, B), options, None))
    if result[0] is not None:
        result[0] = result[0].view(T, B, I)
    return result


def _op_fake(inputs, options: str) -> list[torch.Tensor]:
    x, h0, _, _, W_hh = inputs[:5]
    T, B, H = x.shape[0], x.shape[1], W_hh.shape[1]
    return [x.new_empty(T, B, H), h0.new_empty(B, H), h0.new_empty(B, H), x.new_empty(T * B, 4 * H),
            *(x.new_empty(T * B, H) for _ in range(2))]


LSTM_OP = EngineOp("lstm", _op_forward, _op_backward, _op_fake)


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
    if x.shape[1] == 0:  # no sequences: torch's modules return empty outputs
        return empty_batch(x, (h0, c0), (W_ih, W_hh, b_ih, b_hh))
    if opaque():  # torch.compile / export: one opaque operator, and no Trace
        out, h_last, c_last = LSTM_OP([x, h0, c0, W_ih, W_hh, b_ih, b_hh], time_reduction)[:3]
        return out, h_last, c_last
    record = new_record("lstm", trace_name, time_reduction, x, h0, c0, W_ih, W_hh)
    return LSTMBPTT.apply(x, h0.contiguous(), c0.contiguous(), W_ih, W_hh, b_ih, b_hh, None, time_reduction, record)


@torch.compiler.disable  # data-dependent steps: under torch.compile this runs eagerly (a graph break)
def lstm_packed_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    layout: PackedLayout,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One LSTM layer over a packed batch (engine/packed.py): each step's matmul on its running rows.

    Args:
        x: (N, I) the packed rows; h0, c0: (B, H) in the packed batch's (sorted) order.
        layout: the batch's PackedLayout. The rest as for lstm_layer ("mean" divides by T, the
            longest sequence's steps).

    Returns:
        out (N, H), packed; and (h_n, c_n) (B, H) each, every sequence's last real step. A Trace
        records (T, B, ·) tensors with zeros at the padded steps and `mask` (T, B).
    """
    check_layer_args("lstm", x.unsqueeze(0), (h0, c0), W_hh, time_reduction)
    record = new_record("lstm", trace_name, time_reduction, layout.pad(x), h0, c0, W_ih, W_hh, layout.mask())
    out, h_n, c_n = LSTMBPTT.apply(x.contiguous(), h0.contiguous(), c0.contiguous(), W_ih, W_hh, b_ih, b_hh,
                                   layout, time_reduction, record)
    return out, (h_n, c_n)
