"""The GRU layer with its time loops fused into Triton kernels (engine/gru_kernels.py).

engine/fused_lstm.py's design for torch.nn.GRU's cell: one torch matmul for the input projection
(b_ih, b_hr and b_hz folded in by gru.py's `_biases`; b_hn stays inside, where the reset gate
scales it), one launch forward, one launch backward, and the weight adjustments one torch matmul
each after it (engine/gated.py's helpers, as engine/gru.py uses them). Same arguments, results,
gradients and Trace as `gru_layer`; where the kernels do not apply it is gru_layer.

Not yet chosen automatically by rnnscope.nn.GRU (no GPU has measured it): call it directly, or
use `gru_layer_for` in nn/gru.py the way nn/rnn.py uses fused_triton.elman_layer_for.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.fused_lstm import _grid, _settings, kernels_apply  # the LSTM's sizes: 3 blocks fit as 4 do
from rnnscope.engine.fused_triton import use_fused
from rnnscope.engine.gated import (check_layer_args, new_record, record_weight_adjustments,
                                   recurrent_weight_adjustment, reduce_over_time, split_gates)
from rnnscope.engine.gru import _biases, gru_layer
from rnnscope.engine.packed import DenseLayout, output_errors

def gru_layer_for(x: torch.Tensor, hidden_size: int) -> Callable:
    """fused_gru_layer or the loop's gru_layer, by the rules of fused_triton.elman_layer_for."""
    return fused_gru_layer if use_fused(x, lambda: kernels_apply(x, hidden_size)) else gru_layer


@functools.cache
def _kernels() -> tuple:
    from rnnscope.engine.gru_kernels import compile_kernels

    return compile_kernels()


class FusedGRU(torch.autograd.Function):
    """One GRU layer over x (T, B, I): GRUBPTT's math, each time loop one kernel launch."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, time_reduction, record):
        T, B, I = x.shape
        H = W_hh.shape[1]
        bias_x, _ = _biases(b_ih, b_hh, H)
        x2d = x.reshape(T * B, I)
        gates = torch.mm(x2d, W_ih.t()) if bias_x is None else torch.addmm(bias_x, x2d, W_ih.t())  # (T·B, 3H)
        hn, h = x.new_empty(T * B, H), x.new_empty(T * B, H)
        a_record = None if record is None else torch.empty_like(gates)
        b_hn = None if b_hh is None else b_hh[2 * H :].contiguous()
        forward, _ = _kernels()
        forward[_grid(B)](gates, h0, W_hh.contiguous(), h0 if b_hn is None else b_hn,
                          gates if a_record is None else a_record, hn, h, T, B, H,
                          HAS_B_HN=b_hn is not None, WRITE_A=record is not None, **_settings(x, H))
        if record is not None:
            pad = DenseLayout(T, B).pad
            record.preactivations, record.gates = split_gates("gru", pad(a_record)), split_gates("gru", pad(gates))
            record.hn, record.h = pad(hn).clone(), pad(h).clone()
        ctx.time_reduction, ctx.record = time_reduction, record
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, W_ih, W_hh, gates, hn, h)
        return h.view(T, B, H), h[(T - 1) * B:].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        x, h0, W_ih, W_hh, gates, hn, h = ctx.saved_tensors
        T, B, I = x.shape
        H = h0.shape[1]
        layout = DenseLayout(T, B)
        dh_out = output_errors(layout, grad_out, grad_h_last, h)  # (T·B, H) errors from outside
        h_prev = torch.cat([h0, layout.previous(h)])  # (T·B, H) h_{t-1}
        d_input, d_hn = torch.empty_like(gates), torch.empty_like(h)
        dh0 = torch.empty_like(h0)
        record = ctx.record
        dh_rec = torch.empty_like(h) if record is not None else d_hn
        _, backward = _kernels()
        backward[_grid(B)](gates, hn, h_prev, dh_out, W_hh.contiguous(), d_input, d_hn, dh0, dh_rec, T, B, H,
                           WRITE_D=record is not None, **_settings(x, H))
        d_recurrent = torch.cat([d_input[:, : 2 * H], d_hn], dim=1)  # (T·B, 3H) [δ_r, δ_z, r ⊙ δ_n]
        needs = ctx.needs_input_grad
        dx = torch.mm(d_input, W_ih).view(T, B, I) if needs[0] else None  # ∂L/∂x_t = [δ_r δ_z δ_n] W_ih
        dW_ih = torch.mm(d_input.t(), x.reshape(T * B, I)) if needs[2] else None  # (3H, I)
        dW_hh = recurrent_weight_adjustment(d_recurrent, h0, layout.previous(h)) if needs[3] else None
        has_b_ih, has_b_hh = ctx.has_bias
        db_ih = d_input.sum(0) if needs[4] and has_b_ih else None  # (3H,)
        db_hh = d_recurrent.sum(0) if needs[5] and has_b_hh else None  # (3H,)
        reduce_over_time((dW_ih, dW_hh, db_ih, db_hh), T, ctx.time_reduction)
        if record is not None:
            pad = layout.pad
            record.dh, record.delta = pad(dh_rec), split_gates("gru", pad(d_input))
            record.delta["hn"] = pad(d_hn).clone()
            if record.weight_adjustments:
                record_weight_adjustments(record, pad(d_input), pad(d_recurrent), x, h0, pad(h))
        return dx, dh0 if needs[1] else None, dW_ih, dW_hh, db_ih, db_hh, None, None


def fused_gru_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """engine.gru_layer with fused time loops (same arguments, same results); where the kernels
    do not apply it is gru_layer itself."""
    if not kernels_apply(x, W_hh.shape[1]):
        return gru_layer(x, h0, W_ih, W_hh, b_ih, b_hh, time_reduction, trace_name)
    check_layer_args("gru", x, (h0,), W_hh, time_reduction)
    record = new_record("gru", trace_name, time_reduction, x, h0, None, W_ih, W_hh)
    return FusedGRU.apply(x.contiguous(), h0.contiguous(), W_ih, W_hh, b_ih, b_hh, time_reduction, record)
