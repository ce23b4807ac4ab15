"""What the Elman, LSTM and GRU Triton kernels share: a program's tile, W_hh's blocks, the product
with them, the activations, and how a function becomes a kernel.

Each program owns BLOCK_B rows of the batch and the full hidden width, padded to BLOCK_H (a power
of two ≥ 16) with masks; a block of W_hh is loaded zero-padded to (BLOCK_H, BLOCK_H), so the
padded rows and columns add nothing to a product.

The product with a block is tl.dot for float32 (PREC: "ieee" fp32, or "tf32" when torch allows it
for matmuls) and a sum of broadcast products for float64 (tl.dot does not take fp64 on every
GPU); USE_DOT picks one. The activations are written with exp only (libdevice's tanh is not
available in Triton's interpreter), so the interpreter on a CPU (TRITON_INTERPRET=1 set before
triton's first import) runs the very code a GPU compiles.

The helpers are Triton functions, called from the kernels (Triton inlines them). This module
imports triton: only the engine/*_kernels.py modules import it.
"""

from __future__ import annotations

import triton
import triton.language as tl


def as_kernel(fn, **options):
    """triton.jit(fn), interpreted exactly when triton's own library functions are (whatever
    TRITON_INTERPRET says now)."""
    jit = triton.jit(**options) if options else triton.jit
    if not hasattr(triton, "knobs"):  # triton before 3.4 (pyproject asks for 3.6; a GPU box may differ)
        return jit(fn)
    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = interpreter_active()
        return jit(fn)


def interpreter_active() -> bool:
    """Whether Triton's interpreter runs kernels in this process (TRITON_INTERPRET=1 was set
    before triton's first import: its library functions, tl.sum included, are interpreted)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.sum, InterpretedFunction)


@as_kernel
def batch_tile(B, H, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """This program's batch rows (BLOCK_B,), the hidden columns (BLOCK_H,) and the mask of the
    (BLOCK_B, BLOCK_H) tile that falls inside a (B, H) step."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_H)
    mask = (rows[:, None] < B) & (cols[None, :] < H)
    return rows, cols, mask


@as_kernel
def weight_block_layout(H, TRANSPOSED: tl.constexpr, BLOCK_H: tl.constexpr):
    """Where an (H, H) block of W_hh lies in a (BLOCK_H, BLOCK_H) tile: the offsets and the mask
    of W_g, or of W_gᵀ when TRANSPOSED (what the forward step multiplies h_{t-1} by)."""
    ks = tl.arange(0, BLOCK_H)
    cols = tl.arange(0, BLOCK_H)
    w_mask = (ks[:, None] < H) & (cols[None, :] < H)
    if TRANSPOSED:
        w_offsets = cols[None, :] * H + ks[:, None]  # (k, j) = W_g[j, k]
    else:
        w_offsets = ks[:, None] * H + cols[None, :]  # (j, k) = W_g[j, k]
    return w_offsets, w_mask


@as_kernel
def weight_block(w_ptr, g, H, TRANSPOSED: tl.constexpr, BLOCK_H: tl.constexpr):
    """Gate block g of W_hh (G·H, H), zero-padded to (BLOCK_H, BLOCK_H): W_g, or W_gᵀ when
    TRANSPOSED."""
    w_offsets, w_mask = weight_block_layout(H, TRANSPOSED, BLOCK_H)
    return tl.load(w_ptr + g * H * H + w_offsets, mask=w_mask, other=0.0)


@as_kernel
def times(v, W, USE_DOT: tl.constexpr, PREC: tl.constexpr):
    """v (BLOCK_B, BLOCK_H) @ W (BLOCK_H, BLOCK_H): tl.dot in fp32, broadcast sums in fp64."""
    if USE_DOT:
        return tl.dot(v, W, input_precision=PREC)
    else:
        return tl.sum(v[:, :, None] * W[None, :, :], axis=1)


@as_kernel
def sigmoid(a):
    """σ(a) = 1 / (1 + e^−a)."""
    return 1.0 / (1.0 + tl.exp(-a))


@as_kernel
def tanh(a):
    """tanh(a) = 1 − 2 / (e^2a + 1), with exp only."""
    return 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)  # exp overflowing to inf gives 1
