"""Autocast for the drop-in modules: torch.nn's recurrent modules' dtype policy, as one wrapper.

What torch does under autocast (torch 2.13):
- CUDA, fp16 or bf16: cuDNN's RNN is on autocast's lower-precision list; the input, the initial
  state and the weights are cast to the low dtype (aten/src/ATen/native/cudnn/AutocastRNN.cpp),
  the whole recurrence runs in it, and output and h_n come back in it.
- CPU, bf16: torch.nn.RNN decomposes into per-step linear layers, each on the list, so the
  recurrent state is bf16 from the first step on; output and h_n are bf16 (LSTM too).
  torch.nn.GRU on the CPU is the exception, and torch.nn.LSTM on a PackedSequence there: their
  matmuls run in bf16 but the gate arithmetic mixes them with the fp32 initial state, so their
  state, output and h_n (c_n) stay fp32.
In both cases the matmuls accumulate in fp32 inside the kernel (cuBLAS, oneDNN) and the weight
gradients reach the fp32 parameters through the cast's backward.

rnnscope does the same: under autocast, input, state and weights are cast to the autocast dtype
and the module runs with autocast switched off inside (every tensor already has the dtype, so
the per-op cast checks would only cost time). The hand-written backward then runs in that dtype
too; its weight adjustments are one matmul over all time steps, so their sum over time is
accumulated in fp32 by the matmul kernel, not step by step in the low dtype. For GRU on the CPU
(and LSTM on a packed batch there) the results are cast back to the input's dtype (fp32), as
torch returns them; the state between steps is bf16 in rnnscope where torch keeps it fp32 (the
engine runs one dtype throughout).

A module plugs in with two lines at the top of its forward:

    low = autocast_dtype(input)
    if low is not None:
        return run_in_autocast_dtype(self, low, input, hx)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.nn.utils.stateless import _reparametrize_module  # what torch.func.functional_call uses


def autocast_dtype(input: torch.Tensor | PackedSequence) -> torch.dtype | None:
    """The dtype autocast asks for on the input's device, or None when autocast is off there
    (or the input is not floating point)."""
    data = input.data if isinstance(input, PackedSequence) else input
    device_type = data.device.type
    if not data.is_floating_point() or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def cpu_input_dtype(input: torch.Tensor | PackedSequence) -> torch.dtype | None:
    """The input's dtype when it is on the CPU, else None: the result_dtype of a module whose
    torch.nn counterpart returns fp32 under CPU autocast (GRU; LSTM on a PackedSequence)."""
    data = input.data if isinstance(input, PackedSequence) else input
    return data.dtype if data.device.type == "cpu" else None


def _cast(value, dtype: torch.dtype):
    """A tensor, a PackedSequence or a tuple of tensors (an LSTM's (h, c)) in `dtype`; None stays."""
    if value is None:
        return None
    if isinstance(value, tuple) and not isinstance(value, PackedSequence):
        return tuple(_cast(v, dtype) for v in value)
    return value.to(dtype)


def run_in_autocast_dtype(module: nn.Module, dtype: torch.dtype, input, hx=None, result_dtype=None):
    """Call `module` on input and hx with its parameters, input and state cast to `dtype` and
    autocast off (the module's forward sees no autocast, so it does not come back here).
    Differentiable: the gradients reach the parameters in their own dtype. With result_dtype,
    the output and the final state are cast to it (torch.nn.GRU on the CPU returns fp32)."""
    data = input.data if isinstance(input, PackedSequence) else input
    params = {name: p.to(dtype) for name, p in module.named_parameters()}
    # module.forward, not module(): the caller's hooks already run around this call, once
    with torch.autocast(data.device.type, enabled=False), _reparametrize_module(module, params):
        output, state = module.forward(_cast(input, dtype), _cast(hx, dtype))
    if result_dtype is None:
        return output, state
    if isinstance(output, PackedSequence):  # its indices stay integers
        output = output._replace(data=output.data.to(result_dtype))
    else:
        output = output.to(result_dtype)
    return output, _cast(state, result_dtype)
