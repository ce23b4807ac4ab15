"""Large float32 matmuls of the gated cells' CPU time loops, through oneDNN.

torch's CPU matmul (addmm, mm) calls MKL's sgemm; torch.nn.LSTM and torch.nn.GRU's own CPU kernels
call oneDNN. On the AMD EPYC machines this project is measured on, MKL runs its generic code path,
and oneDNN's linear (torch.ops.mkldnn._linear_pointwise, the op torch's compiler uses on the CPU)
was faster for the large configuration's step matmuls (benchmarks/engine.py, (256, 50, 32, 512):
(256, 512) × (512, 2048) 2.7 against 3.3 ms; the GRU's (256, 1536) × (1536, 512) 1.9 against 4.3
ms in a training step's profile) and slower below about 10^7 multiply-adds, where its fixed cost
per call counts; docs/engine.md has the measurements. float64 has no oneDNN kernel.

The LSTM's compiled loop (engine/lstm_kernel.py) and the GRU's torch loop (engine/gru.py) ask
`use_for` once per sequence and then call `linear` (or the same operator from C++) every step.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

# False: every step's matmul stays torch's addmm (the tests run both).
ENABLED = True
# A step's matmul goes to oneDNN from this many multiply-adds (rows × inputs × outputs).
MIN_MACS = 1 << 24


def _available() -> bool:
    try:
        return torch.ops.mkldnn._linear_pointwise.default is not None and torch.backends.mkldnn.is_available()
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


AVAILABLE = _available()


def use_for(x: torch.Tensor, rows: int, inner: int, outer: int) -> bool:
    """Whether a step's (rows, inner) × (inner, outer) matmul on tensors like x goes to oneDNN.

    Not under a TorchDispatchMode (FlopCounterMode must see aten matmuls), not for float64 or
    anything off the CPU, not below MIN_MACS.
    """
    return (ENABLED and AVAILABLE and x.device.type == "cpu" and x.dtype == torch.float32
            and rows * inner * outer >= MIN_MACS and not is_in_torch_dispatch_mode())


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (n, K) · weightᵀ (+ bias): weight (N, K) contiguous, as torch.nn.functional.linear."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
