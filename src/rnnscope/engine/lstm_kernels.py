"""The LSTM recurrence as two Triton kernels, as engine/elman_kernels.py does for the Elman cell.

Each program owns BLOCK_B batch rows and the full hidden width of all four gates, keeps the
four (H, H) blocks of W_hh (i, f, g, o) in registers and loops over t inside the kernel. In the
words of engine/lstm.py:

    forward   a_t = ax_t + h_{t-1} W_hhᵀ (four blocks)   i, f, o = σ(a)   g = tanh(a_g)
              c_t = f ⊙ c_{t-1} + i ⊙ g                   h_t = o ⊙ tanh(c_t)
    backward  dh_t = (output error at t) + Σ_gates δ_{t+1} W_hh
              dc_t = dh_t ⊙ o ⊙ tanh'(c_t) + dc_{t+1} ⊙ f_{t+1}
              δ_o = dh_t ⊙ tanh(c_t) ⊙ σ'(a_o)   δ_i = dc_t ⊙ g ⊙ σ'(a_i)
              δ_f = dc_t ⊙ c_{t-1} ⊙ σ'(a_f)     δ_g = dc_t ⊙ i ⊙ tanh'(a_g)

Rows are (T·B, ·) time-major; a gate block is columns [k·H, (k+1)·H) of a (T·B, 4H) row.
This module imports triton: only engine/fused_lstm.py imports it, lazily.
"""

from __future__ import annotations

import triton.language as tl

from rnnscope.engine.triton_blocks import as_kernel, batch_tile, sigmoid, tanh, times, weight_block


def lstm_forward(
    ax_ptr,  # (T·B, 4H) x_t W_ihᵀ + b on entry; the activated gates [i f g o] on exit
    h0_ptr, c0_ptr,  # (B, H)
    w_ptr,  # (4H, H) W_hh
    a_ptr,  # (T·B, 4H) the weighted sums a_t, written only when WRITE_A (a Trace)
    c_ptr, h_ptr,  # (T·B, H) out: c_t and h_t
    T, B, H,
    USE_DOT: tl.constexpr, PREC: tl.constexpr, WRITE_A: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows, cols, mask = batch_tile(B, H, BLOCK_B, BLOCK_H)
    # W_gᵀ (k, j) = W_hh[g·H + j, k] for each gate block
    W_i = weight_block(w_ptr, 0, H, True, BLOCK_H)
    W_f = weight_block(w_ptr, 1, H, True, BLOCK_H)
    W_g = weight_block(w_ptr, 2, H, True, BLOCK_H)
    W_o = weight_block(w_ptr, 3, H, True, BLOCK_H)
    state = rows[:, None] * H + cols[None, :]  # (BLOCK_B, BLOCK_H) within one step's (B, H)
    gate = rows[:, None] * (4 * H) + cols[None, :]  # gate i's block within one step's (B, 4H)
    h = tl.load(h0_ptr + state, mask=mask, other=0.0)
    c = tl.load(c0_ptr + state, mask=mask, other=0.0)
    for t in range(T):
        a_i = tl.load(ax_ptr + gate, mask=mask, other=0.0) + times(h, W_i, USE_DOT, PREC)
        a_f = tl.load(ax_ptr + gate + H, mask=mask, other=0.0) + times(h, W_f, USE_DOT, PREC)
        a_g = tl.load(ax_ptr + gate + 2 * H, mask=mask, other=0.0) + times(h, W_g, USE_DOT, PREC)
        a_o = tl.load(ax_ptr + gate + 3 * H, mask=mask, other=0.0) + times(h, W_o, USE_DOT, PREC)
        if WRITE_A:
            tl.store(a_ptr + gate, a_i, mask=mask)
            tl.store(a_ptr + gate + H, a_f, mask=mask)
            tl.store(a_ptr + gate + 2 * H, a_g, mask=mask)
            tl.store(a_ptr + gate + 3 * H, a_o, mask=mask)
            a_ptr += 4 * B * H
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), tanh(a_g), sigmoid(a_o)
        c = f * c + i * g  # the cell state
        h = o * tanh(c)
        tl.store(ax_ptr + gate, i, mask=mask)
        tl.store(ax_ptr + gate + H, f, mask=mask)
        tl.store(ax_ptr + gate + 2 * H, g, mask=mask)
        tl.store(ax_ptr + gate + 3 * H, o, mask=mask)
        tl.store(c_ptr + state, c, mask=mask)
        tl.store(h_ptr + state, h, mask=mask)
        ax_ptr += 4 * B * H
        c_ptr += B * H
        h_ptr += B * H


def lstm_backward(
    gates_ptr,  # (T·B, 4H) activated gates
    c_ptr, c_prev_ptr,  # (T·B, H) c_t and c_{t-1}
    dh_out_ptr,  # (T·B, H) the output error at every step (∂L/∂h_T included at the last)
    grad_c_last_ptr,  # (B, H) ∂L/∂c_T (read only when HAS_GRAD_C_LAST)
    w_ptr,  # (4H, H) W_hh
    delta_ptr,  # (T·B, 4H) out: error terms [δ_i δ_f δ_g δ_o]
    dh0_ptr, dc0_ptr,  # (B, H) out: ∂L/∂h_0, ∂L/∂c_0
    dh_ptr, dc_ptr,  # (T·B, H) out: ∂L/∂h_t and ∂L/∂c_t, only when WRITE_D (a Trace)
    T, B, H,
    USE_DOT: tl.constexpr, PREC: tl.constexpr, HAS_GRAD_C_LAST: tl.constexpr, WRITE_D: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows, cols, mask = batch_tile(B, H, BLOCK_B, BLOCK_H)
    # W_g (j, k) = W_hh[g·H + j, k]
    W_i = weight_block(w_ptr, 0, H, False, BLOCK_H)
    W_f = weight_block(w_ptr, 1, H, False, BLOCK_H)
    W_g = weight_block(w_ptr, 2, H, False, BLOCK_H)
    W_o = weight_block(w_ptr, 3, H, False, BLOCK_H)
    state = rows[:, None] * H + cols[None, :]
    gate = rows[:, None] * (4 * H) + cols[None, :]
    last = (T - 1).to(tl.int64) * B * H  # step T's offset in a (T·B, H) array
    c_ptr += last
    c_prev_ptr += last
    dh_out_ptr += last
    dh_ptr += last
    dc_ptr += last
    gates_ptr += 4 * last
    delta_ptr += 4 * last
    if HAS_GRAD_C_LAST:
        dc_next = tl.load(grad_c_last_ptr + state, mask=mask, other=0.0)
    else:
        dc_next = tl.zeros((BLOCK_B, BLOCK_H), dtype=c_ptr.dtype.element_ty)
    dh_next = tl.zeros((BLOCK_B, BLOCK_H), dtype=c_ptr.dtype.element_ty)
    for _ in range(T):  # t = T … 1
        dh = tl.load(dh_out_ptr + state, mask=mask, other=0.0) + dh_next  # ∂L/∂h_t
        i = tl.load(gates_ptr + gate, mask=mask, other=0.0)
        f = tl.load(gates_ptr + gate + H, mask=mask, other=0.0)
        g = tl.load(gates_ptr + gate + 2 * H, mask=mask, other=0.0)
        o = tl.load(gates_ptr + gate + 3 * H, mask=mask, other=0.0)
        tanh_c = tanh(tl.load(c_ptr + state, mask=mask, other=0.0))
        c_prev = tl.load(c_prev_ptr + state, mask=mask, other=0.0)
        dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c)  # the cell-state error
        if WRITE_D:
            tl.store(dh_ptr + state, dh, mask=mask)
            tl.store(dc_ptr + state, dc, mask=mask)
            dh_ptr -= B * H
            dc_ptr -= B * H
        d_i = dc * g * i * (1.0 - i)
        d_f = dc * c_prev * f * (1.0 - f)
        d_g = dc * i * (1.0 - g * g)
        d_o = dh * tanh_c * o * (1.0 - o)
        tl.store(delta_ptr + gate, d_i, mask=mask)
        tl.store(delta_ptr + gate + H, d_f, mask=mask)
        tl.store(delta_ptr + gate + 2 * H, d_g, mask=mask)
        tl.store(delta_ptr + gate + 3 * H, d_o, mask=mask)
        dc_next = dc * f  # back through the forget gate
        # every gate's error term back through its block of W_hh: ∂L/∂h_{t-1} (∂L/∂h_0 at the end)
        dh_next = (times(d_i, W_i, USE_DOT, PREC) + times(d_f, W_f, USE_DOT, PREC)
                   + times(d_g, W_g, USE_DOT, PREC) + times(d_o, W_o, USE_DOT, PREC))
        c_ptr -= B * H
        c_prev_ptr -= B * H
        dh_out_ptr -= B * H
        gates_ptr -= 4 * B * H
        delta_ptr -= 4 * B * H
    tl.store(dh0_ptr + state, dh_next, mask=mask)
    tl.store(dc0_ptr + state, dc_next, mask=mask)


def compile_kernels() -> tuple:
    """(forward, backward) as Triton kernels, compiled or interpreted as elman_kernels' are."""
    return as_kernel(lstm_forward, do_not_specialize=["T"]), as_kernel(lstm_backward, do_not_specialize=["T"])
