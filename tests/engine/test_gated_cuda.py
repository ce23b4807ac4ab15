"""LSTM and GRU on a CUDA device: float64 gradients equal the CPU's, fp32 equals cuDNN's torch.nn.LSTM/GRU.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with
`python -m pytest tests -k cuda`.
"""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err, requires_cuda

import rnnscope.nn
from rnnscope.engine import Trace

pytestmark = requires_cuda
MODULES = {"lstm": (rnnscope.nn.LSTM, torch.nn.LSTM), "gru": (rnnscope.nn.GRU, torch.nn.GRU)}


def gradients(rnn, x):
    """Output and the gradients of every parameter and x of a many-to-many loss, on the CPU."""
    rnn.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    out, _ = rnn(x)
    torch.sin(out).pow(2).mean().backward()
    return out.detach().cpu(), {name: p.grad.cpu() for name, p in rnn.named_parameters()} | {"x": x.grad.cpu()}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float64_on_cuda_equals_the_cpu(cell):
    torch.manual_seed(0)
    cpu = MODULES[cell][0](3, 64, 2, bidirectional=True, batch_first=True).double()
    gpu = MODULES[cell][0](3, 64, 2, bidirectional=True, batch_first=True).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(40, 9, 3, dtype=torch.float64)  # B·H above VML_TANH_MAX: the CPU's sigmoid tanh
    out, grads = gradients(cpu, x)
    with Trace() as trace:
        out_gpu, grads_gpu = gradients(gpu, x.cuda())
    assert rel_err(out_gpu, out) <= 1e-9
    for name, grad in grads.items():
        assert rel_err(grads_gpu[name], grad) <= 1e-9, name
    assert trace.layer("layer1_reverse").dh.is_cuda


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_equals_cudnn(cell):
    torch.manual_seed(1)
    ours = MODULES[cell][0](4, 32).cuda()
    theirs = MODULES[cell][1](4, 32).cuda()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(20, 8, 4, device="cuda")
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        out, grads = gradients(ours, x)
        ref_out, ref_grads = gradients(theirs, x)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert rel_err(out, ref_out) <= 1e-5
    for name, grad in ref_grads.items():
        assert rel_err(grads[name], grad) <= 1e-4, name
