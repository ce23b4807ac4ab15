"""The Elman recurrence as two Triton kernels: the whole forward time loop, the whole backward one.

Persistent kernels: each program owns BLOCK_B rows of the batch and the full hidden width
(engine/triton_blocks.py's tile), loads W_hh once into registers (or, with
RELOAD_W for large H, every step from the caches) and loops over the time steps inside the kernel, so a layer costs one launch forward and one backward
however long the sequence. Per step, in the words of engine/bptt.py:

    forward   z_t = xw_t + h_{t-1} W_hhᵀ,   h_t = f(z_t)            (xw = x W_ihᵀ + b, one torch matmul before)
    backward  dh_t = ∂L/∂y_t (+ ∂L/∂h_T at t = T) + δ_{t+1} W_hh
              δ_t  = dh_t ⊙ f'(z_t)   (f' read off h_t),    and after the loop ∂L/∂h_0 = δ_1 W_hh

The weight adjustments stay one torch matmul each after the loop (engine/bptt.py's). The product
with W_hh (tl.dot in fp32, broadcast sums in fp64) and the activations (exp only, so that Triton's
interpreter runs the code a GPU compiles) are engine/triton_blocks.py's.

This module imports triton: only engine/fused_triton.py imports it, lazily.
"""

from __future__ import annotations

import triton.language as tl

from rnnscope.engine.triton_blocks import as_kernel, batch_tile, sigmoid, tanh, times, weight_block_layout

# the ACT constexpr (a kernel reads a global only when it is a tl.constexpr)
TANH, RELU, SIGMOID = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)
ACT_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2}


def elman_forward(
    xw_ptr,  # (T, B, H) x_t W_ihᵀ + b on entry; h_t on exit (written in place, step by step)
    h0_ptr,  # (B, H)
    w_ptr,  # (H, H) W_hh
    z_ptr,  # (T, B, H) z_t, written only when WRITE_Z (a Trace asked for it)
    T, B, H,
    ACT: tl.constexpr, USE_DOT: tl.constexpr, PREC: tl.constexpr, WRITE_Z: tl.constexpr, RELOAD_W: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows, cols, mask = batch_tile(B, H, BLOCK_B, BLOCK_H)  # this program's batch rows, all of H
    w_offsets, w_mask = weight_block_layout(H, True, BLOCK_H)  # W_hhᵀ (computed once: RELOAD_W rereads)
    W_hh_t = tl.load(w_ptr + w_offsets, mask=w_mask, other=0.0)
    offsets = rows[:, None] * H + cols[None, :]  # (BLOCK_B, BLOCK_H) within one step
    h = tl.load(h0_ptr + offsets, mask=mask, other=0.0)  # h_0
    step = B * H
    for t in range(T):
        if RELOAD_W:  # too large for registers: read it again each step (from the L1/L2 caches)
            W_hh_t = tl.load(w_ptr + w_offsets, mask=w_mask, other=0.0)
        xw_t = tl.load(xw_ptr + offsets, mask=mask, other=0.0)
        z = xw_t + times(h, W_hh_t, USE_DOT, PREC)  # z_t = xw_t + h_{t-1} W_hhᵀ
        if WRITE_Z:
            tl.store(z_ptr + offsets, z, mask=mask)
            z_ptr += step
        if ACT == TANH:
            h = tanh(z)
        elif ACT == RELU:
            h = tl.maximum(z, 0.0)
        else:
            h = sigmoid(z)
        # padded columns hold f(0) (σ(0) = 0.5), harmless: W_hh's padded rows and columns are 0
        tl.store(xw_ptr + offsets, h, mask=mask)  # h_t
        xw_ptr += step


def elman_backward(
    h_ptr,  # (T, B, H) h_t
    grad_out_ptr,  # (T, B, H) ∂L/∂y_t (read only when HAS_GRAD_OUT)
    grad_last_ptr,  # (B, H) ∂L/∂h_T (read only when HAS_GRAD_LAST)
    w_ptr,  # (H, H) W_hh
    delta_ptr,  # (T, B, H) out: error terms δ_t
    dh0_ptr,  # (B, H) out: ∂L/∂h_0
    dh_ptr,  # (T, B, H) out: ∂L/∂h_t, written only when WRITE_DH (a Trace asked for it)
    T, B, H,
    ACT: tl.constexpr, USE_DOT: tl.constexpr, PREC: tl.constexpr, HAS_GRAD_OUT: tl.constexpr,
    HAS_GRAD_LAST: tl.constexpr, WRITE_DH: tl.constexpr, RELOAD_W: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows, cols, mask = batch_tile(B, H, BLOCK_B, BLOCK_H)
    w_offsets, w_mask = weight_block_layout(H, False, BLOCK_H)  # W_hh
    W_hh = tl.load(w_ptr + w_offsets, mask=w_mask, other=0.0)
    offsets = rows[:, None] * H + cols[None, :]
    step = B * H
    last = (T - 1).to(tl.int64) * step  # the offset of step T, where the loop starts
    h_ptr += last
    grad_out_ptr += last
    delta_ptr += last
    dh_ptr += last
    if HAS_GRAD_LAST:
        dh_next = tl.load(grad_last_ptr + offsets, mask=mask, other=0.0)  # ∂L/∂h_T joins at the last step
    else:
        dh_next = tl.zeros((BLOCK_B, BLOCK_H), dtype=h_ptr.dtype.element_ty)
    for _ in range(T):  # t = T … 1
        if RELOAD_W:
            W_hh = tl.load(w_ptr + w_offsets, mask=w_mask, other=0.0)
        dh = dh_next  # the error arriving from step t+1 (δ_{t+1} W_hh)
        if HAS_GRAD_OUT:
            dh += tl.load(grad_out_ptr + offsets, mask=mask, other=0.0)  # output error at t
            grad_out_ptr -= step
        if WRITE_DH:
            tl.store(dh_ptr + offsets, dh, mask=mask)
            dh_ptr -= step
        h = tl.load(h_ptr + offsets, mask=mask, other=0.0)
        if ACT == TANH:
            delta = dh * (1.0 - h * h)  # δ_t = dh_t ⊙ tanh'(z_t)
        elif ACT == RELU:
            delta = tl.where(h > 0.0, dh, 0.0)
        else:
            delta = dh * h * (1.0 - h)
        tl.store(delta_ptr + offsets, delta, mask=mask)
        # propagate the error term back through W_hh: ∂L/∂h_{t-1} (∂L/∂h_0 after the last step)
        dh_next = times(delta, W_hh, USE_DOT, PREC)
        h_ptr -= step
        delta_ptr -= step
    tl.store(dh0_ptr + offsets, dh_next, mask=mask)


def compile_kernels() -> tuple:
    """(forward, backward) as Triton kernels: compiled for the GPU, or run by Triton's interpreter
    when TRITON_INTERPRET=1 was set before triton was first imported (Triton decides it there,
    for its own library functions such as tl.sum too)."""
    # T unspecialized: Triton would turn T = 1 into a constant, and `(T - 1).to(...)` needs a tensor
    return as_kernel(elman_forward, do_not_specialize=["T"]), as_kernel(elman_backward, do_not_specialize=["T"])
