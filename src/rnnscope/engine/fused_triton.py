"""The Elman layer with its time loops fused into Triton kernels: one launch forward, one backward.

On a GPU the engine's Python loop issues a few kernel launches per time step, and launches, not
arithmetic, decide its time. Here the input projection of all steps is one torch matmul, the
whole recurrence one kernel launch (engine/elman_kernels.py), the whole backward time loop one
more, and the weight adjustments one torch matmul each after it, from the error terms δ_t the
kernel wrote (bptt.py's `_gradients_from_error_terms`). Same inputs, outputs and gradients as
`elman_layer`, and the same Trace: the kernels write z_t and ∂L/∂h_t when a Trace asks.

    layer = elman_layer_for(x, hidden_size)     # fused_elman_layer or the loop's elman_layer
    out, h_T = layer(x, h0, W_ih, W_hh, b_ih, b_hh, activation="sigmoid")

When it runs (`elman_layer_for`): with RNNSCOPE_FUSED unset, on CUDA tensors of float32 (H ≤ 256)
or float64 (H ≤ 64, for checks) when triton imports; RNNSCOPE_FUSED=0 never; RNNSCOPE_FUSED=1
on any device, CPU tensors included (there Triton's interpreter runs the kernels, which needs
TRITON_INTERPRET=1 set before triton's first import: slow, for tests). Under torch.compile/export the loop's opaque operator runs instead. triton is imported
only when a fused layer first runs: the engine works without it.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.bptt import (
    TIME_REDUCTIONS,
    _gradients_from_error_terms,
    _new_record,
    _record_backward,
    _summed_bias,
    elman_layer,
)
from rnnscope.engine.cells import get_activation
from rnnscope.engine.op import opaque
from rnnscope.errors import UserError

ENV = "RNNSCOPE_FUSED"  # "0": never fused, "1": fused wherever the kernels apply, unset: on CUDA
MAX_HIDDEN = {torch.float32: 256, torch.float64: 64}  # one program holds W_hh (and fp64's broadcast products)
BLOCK_B = 16  # batch rows per program (tl.dot wants every dimension ≥ 16)
# Up to this BLOCK_H a program keeps W_hh in registers; above, it rereads it every step (RELOAD_W).
# Compiled for sm_90, keeping it spills less at H = 256 than rereading (ptxas: 104 B of stack vs
# 3.6 kB with TF32), so the reread variant is off until a GPU measures otherwise.
W_RESIDENT_MAX = 256
# tl.dot's input precision, following torch's float32 matmul precision, so that the kernels round
# as the loop's torch.mm would: "highest" (torch's default) IEEE fp32, "high" and "medium" TF32.
DOT_PRECISION = {"highest": "ieee", "high": "tf32", "medium": "tf32"}


@functools.cache
def triton_imports() -> bool:
    """Whether triton can be imported here (the `triton` extra is installed)."""
    try:
        import triton  # noqa: F401
    except Exception:  # not installed, or a broken install: the loop runs instead
        return False
    return True


def kernels_apply(x: torch.Tensor, hidden_size: int) -> bool:
    """Whether the fused kernels can run this layer: float32 or float64, H within MAX_HIDDEN, at
    least one time step and one row, and no compiler tracing (which sees the loop's opaque operator)."""
    return (x.dtype in MAX_HIDDEN and hidden_size <= MAX_HIDDEN[x.dtype] and x.dim() == 3
            and x.shape[0] > 0 and x.shape[1] > 0 and not opaque())


def fused_setting() -> str:
    """RNNSCOPE_FUSED as "0", "1" or "" (unset: automatic); any other value is a user's mistake."""
    value = os.environ.get(ENV, "").strip()
    if value not in ("", "0", "1"):
        raise UserError(f"{ENV}={value!r} in the environment: use 1 (fused kernels), 0 (the Python loop) "
                        "or leave it unset (fused on CUDA when triton is installed)")
    return value


def elman_layer_for(x: torch.Tensor, hidden_size: int) -> Callable:
    """The Elman layer function to run on x: fused_elman_layer or the loop's elman_layer
    (see the module docstring for when)."""
    return fused_elman_layer if use_fused(x, lambda: kernels_apply(x, hidden_size)) else elman_layer


def use_fused(x: torch.Tensor, kernels_fit: Callable[[], bool]) -> bool:
    """Whether a layer on x runs fused kernels (the rules of the module docstring; kernels_fit
    says whether the cell's kernels take x's dtype and sizes). RNNSCOPE_FUSED=1 where the kernels
    cannot run (no triton; CPU tensors without Triton's interpreter) is the user's one-line error."""
    if opaque():  # torch.compile / export: the loop's opaque operator (checked first: it traces)
        return False
    setting = fused_setting()
    if setting == "0" or not kernels_fit():
        return False
    if setting == "1":
        if not triton_imports():
            raise UserError(f"{ENV}=1 in the environment, but triton does not import here: "
                            "pip install -e '.[triton]', or unset it")
        if not x.is_cuda and not interpreter_active():
            raise UserError(f"{ENV}=1 in the environment on CPU tensors: Triton runs kernels on the CPU only "
                            "in its interpreter; set TRITON_INTERPRET=1 too (before triton is first imported)")
        return True
    return x.is_cuda and triton_imports()


@functools.cache
def _kernels() -> tuple:
    """(forward, backward) kernels (triton imported here, once)."""
    from rnnscope.engine.elman_kernels import compile_kernels

    return compile_kernels()


@functools.cache
def interpreter_active() -> bool:
    """Whether Triton's interpreter runs the kernels (TRITON_INTERPRET=1 before triton's import)."""
    from rnnscope.engine.triton_blocks import interpreter_active as active

    return active()


def _launch_settings(x: torch.Tensor, H: int) -> dict:
    """The constexprs and launch options every kernel call shares."""
    block_h = max(16, 1 << (H - 1).bit_length())  # the smallest power of two ≥ H, and ≥ 16
    return {"USE_DOT": x.dtype == torch.float32, "PREC": DOT_PRECISION[torch.get_float32_matmul_precision()],
            "RELOAD_W": block_h > W_RESIDENT_MAX,
            "BLOCK_B": BLOCK_B, "BLOCK_H": block_h, "num_warps": 4 if block_h <= 64 else 8,
            "enable_fp_fusion": True}  # a*b + c as one FMA (Triton's default today, said out loud)


def _grid(B: int) -> tuple[int]:
    """One program per BLOCK_B rows of the batch."""
    return (-(-B // BLOCK_B),)


def _act_code(activation: str) -> int:
    from rnnscope.engine.elman_kernels import ACT_CODES

    get_activation(activation)  # an unknown name: the engine's one-line error listing the choices
    return ACT_CODES[activation]


def fused_forward(x, h0, W_ih, W_hh, bias, activation: str, z_record: torch.Tensor | None) -> torch.Tensor:
    """The recurrence in one kernel launch; returns h (T, B, H) (z_record, if given, gets z_t)."""
    T, B, I = x.shape
    H = W_hh.shape[0]
    x2d = x.reshape(T * B, I)
    # the input projection of all time steps at once; the kernel overwrites it with h_t
    h = torch.mm(x2d, W_ih.t()) if bias is None else torch.addmm(bias, x2d, W_ih.t())  # (T·B, H)
    h = h.view(T, B, H)
    forward, _ = _kernels()
    settings = _launch_settings(x, H)
    forward[_grid(B)](h, h0.contiguous(), W_hh.contiguous(), h if z_record is None else z_record, T, B, H,
                  ACT=_act_code(activation), WRITE_Z=z_record is not None, **settings)
    return h


def fused_error_terms(h, W_hh, grad_out, grad_h_last, activation: str, dh_record: torch.Tensor | None):
    """The backward time loop in one kernel launch: (δ (T, B, H), ∂L/∂h_0 (B, H)); grad_out
    (T, B, H) and grad_h_last (B, H) may each be None; dh_record, if given, gets ∂L/∂h_t."""
    T, B, H = h.shape
    delta, dh0 = torch.empty_like(h), h.new_empty(B, H)
    _, backward = _kernels()
    settings = _launch_settings(h, H)
    backward[_grid(B)](h, h if grad_out is None else grad_out.contiguous(),
                   dh0 if grad_h_last is None else grad_h_last.contiguous(), W_hh.contiguous(),
                   delta, dh0, delta if dh_record is None else dh_record, T, B, H,
                   ACT=_act_code(activation), HAS_GRAD_OUT=grad_out is not None,
                   HAS_GRAD_LAST=grad_h_last is not None, WRITE_DH=dh_record is not None, **settings)
    return delta, dh0


class FusedElman(torch.autograd.Function):
    """One Elman layer over a whole sequence: ElmanBPTT's math, each time loop one kernel launch."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, activation, time_reduction, record):
        z_record = None
        if record is not None:
            z_record = x.new_empty(x.shape[0], x.shape[1], W_hh.shape[0])
        h = fused_forward(x, h0, W_ih, W_hh, _summed_bias(b_ih, b_hh), activation, z_record)  # (T, B, H)
        if record is not None:
            record.z, record.h = z_record, h.detach().clone()
        ctx.activation, ctx.time_reduction, ctx.record = activation, time_reduction, record
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, W_ih, W_hh, h)
        return h, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        x, h0, W_ih, W_hh, h = ctx.saved_tensors
        record = ctx.record
        dh_record = torch.empty_like(h) if record is not None else None
        delta, dh0 = fused_error_terms(h, W_hh, grad_out, grad_h_last, ctx.activation, dh_record)
        needs = list(ctx.needs_input_grad[:6])
        wants_dh0, needs[1] = needs[1], False  # the kernel computed ∂L/∂h_0 already
        grads = list(_gradients_from_error_terms(x, h0, W_ih, W_hh, h, delta, needs, ctx.has_bias,
                                                 ctx.time_reduction))
        grads[1] = dh0 if wants_dh0 else None
        if record is not None:
            _record_backward(record, dh_record, delta, x, h0, h)
        return *grads, None, None, None


def fused_elman_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    activation: str = "tanh",
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """engine.elman_layer with fused time loops (same arguments, same results); where the kernels
    do not apply (dtype, hidden size, T = 0, compiler tracing) it is elman_layer itself."""
    if not kernels_apply(x, W_hh.shape[0]):
        return elman_layer(x, h0, W_ih, W_hh, b_ih, b_hh, activation, time_reduction, trace_name)
    if time_reduction not in TIME_REDUCTIONS:
        raise UserError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
    if h0.dim() != 2:
        raise ValueError(f"fused_elman_layer wants h0 (B, H); got {tuple(h0.shape)}")
    record = _new_record(x, h0, W_ih, W_hh, activation, time_reduction, trace_name)
    return FusedElman.apply(
        x.contiguous(), h0.contiguous(), W_ih, W_hh, b_ih, b_hh, activation, time_reduction, record
    )
