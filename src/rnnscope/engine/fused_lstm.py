"""The LSTM layer with its time loops fused into Triton kernels (engine/lstm_kernels.py).

engine/fused_triton.py's design for the gated cell: the input projection of all four gates for
all steps is one torch matmul, the forward recurrence one launch, the backward time loop one
launch, and the weight adjustments one torch matmul each after it from the error terms the
kernel wrote (the helpers of engine/gated.py, as engine/lstm.py uses them). Same arguments,
results, gradients and Trace as `lstm_layer`; where the kernels do not apply it is lstm_layer.

    out, h_T, c_T = fused_lstm_layer(x, h0, c0, W_ih, W_hh, b_ih, b_hh)

Not yet chosen automatically by rnnscope.nn.LSTM (no GPU has measured it): call it directly, or
wire `lstm_layer_for` into nn/lstm.py the way nn/rnn.py uses fused_triton.elman_layer_for.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.fused_triton import BLOCK_B, DOT_PRECISION, use_fused
from rnnscope.engine.gated import (check_layer_args, new_record, record_weight_adjustments,
                                   recurrent_weight_adjustment, reduce_over_time, split_gates)
from rnnscope.engine.lstm import lstm_layer
from rnnscope.engine.op import opaque
from rnnscope.engine.packed import DenseLayout, output_errors

MAX_HIDDEN = {torch.float32: 64, torch.float64: 32}  # four (H, H) blocks of W_hh per program


def kernels_apply(x: torch.Tensor, hidden_size: int) -> bool:
    """Whether the fused LSTM kernels can run this layer (dtype, H, T ≥ 1, B ≥ 1, no compiler)."""
    return (x.dtype in MAX_HIDDEN and hidden_size <= MAX_HIDDEN[x.dtype] and x.dim() == 3
            and x.shape[0] > 0 and x.shape[1] > 0 and not opaque())


def lstm_layer_for(x: torch.Tensor, hidden_size: int) -> Callable:
    """fused_lstm_layer or the loop's lstm_layer, by the rules of fused_triton.elman_layer_for."""
    return fused_lstm_layer if use_fused(x, lambda: kernels_apply(x, hidden_size)) else lstm_layer


@functools.cache
def _kernels() -> tuple:
    from rnnscope.engine.lstm_kernels import compile_kernels

    return compile_kernels()


def _settings(x: torch.Tensor, H: int) -> dict:
    block_h = max(16, 1 << (H - 1).bit_length())
    return {"USE_DOT": x.dtype == torch.float32, "PREC": DOT_PRECISION[torch.get_float32_matmul_precision()],
            "BLOCK_B": BLOCK_B, "BLOCK_H": block_h, "num_warps": 4 if block_h <= 32 else 8,
            "enable_fp_fusion": True}


def _grid(B: int) -> tuple[int]:
    return (-(-B // BLOCK_B),)


class FusedLSTM(torch.autograd.Function):
    """One LSTM layer over x (T, B, I): LSTMBPTT's math, each time loop one kernel launch."""

    @staticmethod
    def forward(ctx, x, h0, c0, W_ih, W_hh, b_ih, b_hh, time_reduction, record):
        T, B, I = x.shape
        H = W_hh.shape[1]
        x2d = x.reshape(T * B, I)
        biases = [b for b in (b_ih, b_hh) if b is not None]
        bias = sum(biases[1:], biases[0]) if biases else None  # (4H,)
        # all four gates' input projection for every step; the kernel turns it into the gates
        gates = torch.mm(x2d, W_ih.t()) if bias is None else torch.addmm(bias, x2d, W_ih.t())  # (T·B, 4H)
        c, h = x.new_empty(T * B, H), x.new_empty(T * B, H)
        a_record = None if record is None else torch.empty_like(gates)
        forward, _ = _kernels()
        forward[_grid(B)](gates, h0, c0, W_hh.contiguous(), gates if a_record is None else a_record, c, h,
                          T, B, H, WRITE_A=record is not None, **_settings(x, H))
        if record is not None:
            pad = DenseLayout(T, B).pad
            record.preactivations, record.gates = split_gates("lstm", pad(a_record)), split_gates("lstm", pad(gates))
            record.c, record.h = pad(c).clone(), pad(h).clone()
        ctx.time_reduction, ctx.record = time_reduction, record
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, c0, W_ih, W_hh, gates, c, h)
        return h.view(T, B, H), h[(T - 1) * B:].clone(), c[(T - 1) * B:].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last, grad_c_last):
        x, h0, c0, W_ih, W_hh, gates, c, h = ctx.saved_tensors
        T, B, I = x.shape
        H = h0.shape[1]
        layout = DenseLayout(T, B)
        dh_out = output_errors(layout, grad_out, grad_h_last, h)  # (T·B, H) errors from outside
        c_prev = torch.cat([c0, layout.previous(c)])  # (T·B, H) c_{t-1}
        delta = torch.empty_like(gates)  # (T·B, 4H)
        dh0, dc0 = torch.empty_like(h0), torch.empty_like(c0)
        record = ctx.record
        dh_rec, dc_rec = (torch.empty_like(h), torch.empty_like(h)) if record is not None else (delta, delta)
        _, backward = _kernels()
        backward[_grid(B)](gates, c, c_prev, dh_out, c0 if grad_c_last is None else grad_c_last.contiguous(),
                           W_hh.contiguous(), delta, dh0, dc0, dh_rec, dc_rec, T, B, H,
                           HAS_GRAD_C_LAST=grad_c_last is not None, WRITE_D=record is not None,
                           **_settings(x, H))
        needs = ctx.needs_input_grad
        x2d = x.reshape(T * B, I)
        dx = torch.mm(delta, W_ih).view(T, B, I) if needs[0] else None  # ∂L/∂x_t = δ_t W_ih
        dW_ih = torch.mm(delta.t(), x2d) if needs[3] else None  # (4H, I) Σ_t δ_tᵀ x_t
        dW_hh = recurrent_weight_adjustment(delta, h0, layout.previous(h)) if needs[4] else None
        db_ih = db_hh = None
        has_b_ih, has_b_hh = ctx.has_bias
        if (needs[5] and has_b_ih) or (needs[6] and has_b_hh):
            db = delta.sum(0)  # (4H,) Σ_t Σ_batch δ_t
            db_ih = db if needs[5] and has_b_ih else None
            db_hh = db.clone() if needs[6] and has_b_hh else None
        reduce_over_time((dW_ih, dW_hh, db_ih, db_hh), T, ctx.time_reduction)
        if record is not None:
            pad = layout.pad
            record.dh, record.dc, record.delta = pad(dh_rec), pad(dc_rec), split_gates("lstm", pad(delta))
            if record.weight_adjustments:
                padded_delta = pad(delta)
                record_weight_adjustments(record, padded_delta, padded_delta, x, h0, pad(h))
        return (dx, dh0 if needs[1] else None, dc0 if needs[2] else None, dW_ih, dW_hh, db_ih, db_hh,
                None, None)


def fused_lstm_layer(
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
    """engine.lstm_layer with fused time loops (same arguments, same results); where the kernels
    do not apply it is lstm_layer itself."""
    if not kernels_apply(x, W_hh.shape[1]):
        return lstm_layer(x, h0, c0, W_ih, W_hh, b_ih, b_hh, time_reduction, trace_name)
    check_layer_args("lstm", x, (h0, c0), W_hh, time_reduction)
    record = new_record("lstm", trace_name, time_reduction, x, h0, c0, W_ih, W_hh)
    return FusedLSTM.apply(x.contiguous(), h0.contiguous(), c0.contiguous(), W_ih, W_hh, b_ih, b_hh,
                           time_reduction, record)
