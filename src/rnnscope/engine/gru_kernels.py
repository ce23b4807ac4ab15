"""The GRU recurrence as two Triton kernels, as engine/lstm_kernels.py does for the LSTM.

In the words of engine/gru.py (torch.nn.GRU's formulation; gate blocks r, z, n):

    forward   r = σ(ax_r + h_{t-1} W_hrᵀ)   z = σ(ax_z + h_{t-1} W_hzᵀ)   hn = h_{t-1} W_hnᵀ + b_hn
              n = tanh(ax_n + r ⊙ hn)        h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
    backward  dh_t = (output error at t) + d_{t+1} W_hh + dh_{t+1} ⊙ z_{t+1}
              δ_n = dh_t ⊙ (1 − z) ⊙ tanh'(a_n)   δ_r = δ_n ⊙ hn ⊙ σ'(a_r)
              δ_z = dh_t ⊙ (h_{t-1} − n) ⊙ σ'(a_z)   d_t = [δ_r, δ_z, r ⊙ δ_n] (what reaches W_hh)

(ax: x W_ihᵀ with b_ih and b_hr, b_hz folded in, one torch matmul before.) This module imports
triton: only engine/fused_gru.py imports it, lazily.
"""

from __future__ import annotations

import triton.language as tl

from rnnscope.engine.triton_blocks import as_kernel, batch_tile, sigmoid, tanh, times, weight_block


def gru_forward(
    ax_ptr,  # (T·B, 3H) the input projection on entry; the activated gates [r z n] on exit
    h0_ptr,  # (B, H)
    w_ptr,  # (3H, H) W_hh
    b_hn_ptr,  # (H,) b_hn (read only when HAS_B_HN)
    a_ptr,  # (T·B, 3H) the weighted sums [a_r a_z a_n], written only when WRITE_A (a Trace)
    hn_ptr, h_ptr,  # (T·B, H) out: hn_t = h_{t-1} W_hnᵀ + b_hn, and h_t
    T, B, H,
    USE_DOT: tl.constexpr, PREC: tl.constexpr, HAS_B_HN: tl.constexpr, WRITE_A: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows, cols, mask = batch_tile(B, H, BLOCK_B, BLOCK_H)
    # W_gᵀ (k, j) = W_hh[g·H + j, k]
    W_r = weight_block(w_ptr, 0, H, True, BLOCK_H)
    W_z = weight_block(w_ptr, 1, H, True, BLOCK_H)
    W_n = weight_block(w_ptr, 2, H, True, BLOCK_H)
    state = rows[:, None] * H + cols[None, :]
    gate = rows[:, None] * (3 * H) + cols[None, :]
    h = tl.load(h0_ptr + state, mask=mask, other=0.0)
    if HAS_B_HN:
        b_hn = tl.load(b_hn_ptr + cols, mask=cols < H, other=0.0)[None, :]
    else:
        b_hn = tl.zeros((1, BLOCK_H), dtype=h0_ptr.dtype.element_ty)
    for t in range(T):
        a_r = tl.load(ax_ptr + gate, mask=mask, other=0.0) + times(h, W_r, USE_DOT, PREC)
        a_z = tl.load(ax_ptr + gate + H, mask=mask, other=0.0) + times(h, W_z, USE_DOT, PREC)
        hn = times(h, W_n, USE_DOT, PREC) + b_hn
        r, z = sigmoid(a_r), sigmoid(a_z)
        a_n = tl.load(ax_ptr + gate + 2 * H, mask=mask, other=0.0) + r * hn
        n = tanh(a_n)
        if WRITE_A:
            tl.store(a_ptr + gate, a_r, mask=mask)
            tl.store(a_ptr + gate + H, a_z, mask=mask)
            tl.store(a_ptr + gate + 2 * H, a_n, mask=mask)
            a_ptr += 3 * B * H
        h = n + z * (h - n)  # (1 − z) ⊙ n + z ⊙ h_{t-1}
        tl.store(ax_ptr + gate, r, mask=mask)
        tl.store(ax_ptr + gate + H, z, mask=mask)
        tl.store(ax_ptr + gate + 2 * H, n, mask=mask)
        tl.store(hn_ptr + state, hn, mask=mask)
        tl.store(h_ptr + state, h, mask=mask)
        ax_ptr += 3 * B * H
        hn_ptr += B * H
        h_ptr += B * H


def gru_backward(
    gates_ptr,  # (T·B, 3H) activated gates [r z n]
    hn_ptr, h_prev_ptr,  # (T·B, H) hn_t and h_{t-1}
    dh_out_ptr,  # (T·B, H) the output error at every step (∂L/∂h_T included at the last)
    w_ptr,  # (3H, H) W_hh
    d_input_ptr,  # (T·B, 3H) out: [δ_r δ_z δ_n], what reaches W_ih and x
    d_hn_ptr,  # (T·B, H) out: r ⊙ δ_n, W_hn's share
    dh0_ptr,  # (B, H) out: ∂L/∂h_0
    dh_ptr,  # (T·B, H) out: ∂L/∂h_t, only when WRITE_D (a Trace)
    T, B, H,
    USE_DOT: tl.constexpr, PREC: tl.constexpr, WRITE_D: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows, cols, mask = batch_tile(B, H, BLOCK_B, BLOCK_H)
    # W_g (j, k) = W_hh[g·H + j, k]
    W_r = weight_block(w_ptr, 0, H, False, BLOCK_H)
    W_z = weight_block(w_ptr, 1, H, False, BLOCK_H)
    W_n = weight_block(w_ptr, 2, H, False, BLOCK_H)
    state = rows[:, None] * H + cols[None, :]
    gate = rows[:, None] * (3 * H) + cols[None, :]
    last = (T - 1).to(tl.int64) * B * H
    hn_ptr += last
    h_prev_ptr += last
    dh_out_ptr += last
    d_hn_ptr += last
    dh_ptr += last
    gates_ptr += 3 * last
    d_input_ptr += 3 * last
    dh_next = tl.zeros((BLOCK_B, BLOCK_H), dtype=hn_ptr.dtype.element_ty)
    for _ in range(T):  # t = T … 1
        dh = tl.load(dh_out_ptr + state, mask=mask, other=0.0) + dh_next  # ∂L/∂h_t
        r = tl.load(gates_ptr + gate, mask=mask, other=0.0)
        z = tl.load(gates_ptr + gate + H, mask=mask, other=0.0)
        n = tl.load(gates_ptr + gate + 2 * H, mask=mask, other=0.0)
        hn = tl.load(hn_ptr + state, mask=mask, other=0.0)
        h_prev = tl.load(h_prev_ptr + state, mask=mask, other=0.0)
        if WRITE_D:
            tl.store(dh_ptr + state, dh, mask=mask)
            dh_ptr -= B * H
        d_n = dh * (1.0 - z) * (1.0 - n * n)
        d_r = d_n * hn * r * (1.0 - r)
        d_z = dh * (h_prev - n) * z * (1.0 - z)
        d_hn = r * d_n
        tl.store(d_input_ptr + gate, d_r, mask=mask)
        tl.store(d_input_ptr + gate + H, d_z, mask=mask)
        tl.store(d_input_ptr + gate + 2 * H, d_n, mask=mask)
        tl.store(d_hn_ptr + state, d_hn, mask=mask)
        # back through W_hh (all gates) and through the update gate's z ⊙ h_{t-1}
        dh_next = (times(d_r, W_r, USE_DOT, PREC) + times(d_z, W_z, USE_DOT, PREC)
                   + times(d_hn, W_n, USE_DOT, PREC) + dh * z)
        hn_ptr -= B * H
        h_prev_ptr -= B * H
        dh_out_ptr -= B * H
        d_hn_ptr -= B * H
        gates_ptr -= 3 * B * H
        d_input_ptr -= 3 * B * H
    tl.store(dh0_ptr + state, dh_next, mask=mask)


def compile_kernels() -> tuple:
    """(forward, backward) as Triton kernels, compiled or interpreted as elman_kernels' are."""
    return as_kernel(gru_forward, do_not_specialize=["T"]), as_kernel(gru_backward, do_not_specialize=["T"])
