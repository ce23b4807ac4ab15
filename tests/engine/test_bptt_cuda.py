"""The engine on a CUDA device: the same gradients as the float64 reference, and as torch.nn.RNN.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with
`python -m pytest tests -k cuda`.
"""

from __future__ import annotations

import pytest
import torch
from rnn_reference import unrolled_rnn
from testing_utils import rel_err, requires_cuda

import rnnscope.nn
from rnnscope.engine import Trace

pytestmark = requires_cuda


def gradients(rnn, x, h0, forward=None):
    """Output, h_n and the gradients of every parameter, x and h0 of a many-to-many loss
    (`forward(rnn, x, h0)` instead of `rnn(x, h0)` when given), all on the CPU."""
    rnn.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    h0 = h0.detach().clone().requires_grad_(True)
    out, h_n = forward(rnn, x, h0) if forward is not None else rnn(x, h0)
    (torch.sin(out).pow(2).mean() + h_n.sum()).backward()
    grads = {name: p.grad.detach().cpu() for name, p in rnn.named_parameters()}
    return out.detach().cpu(), h_n.detach().cpu(), grads | {"x": x.grad.cpu(), "h0": h0.grad.cpu()}


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("num_layers, bidirectional, time_reduction",
                         [(1, False, "sum"), (3, False, "mean"), (2, True, "sum")])
def test_float64_on_cuda_equals_the_unrolled_reference_on_cpu(nonlinearity, num_layers,
                                                             bidirectional, time_reduction):
    torch.manual_seed(num_layers)
    cpu = rnnscope.nn.RNN(3, 16, num_layers, nonlinearity=nonlinearity, batch_first=True,
                          bidirectional=bidirectional, time_reduction=time_reduction).double()
    gpu = rnnscope.nn.RNN(3, 16, num_layers, nonlinearity=nonlinearity, batch_first=True,
                          bidirectional=bidirectional, time_reduction=time_reduction).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    D = 2 if bidirectional else 1
    x = torch.randn(5, 40, 3, dtype=torch.float64)  # (B, T, I)
    h0 = torch.randn(num_layers * D, 5, 16, dtype=torch.float64)
    out, h_n, grads = gradients(gpu, x.cuda(), h0.cuda())
    ref_out, ref_h_n, ref_grads = gradients(cpu, x, h0, unrolled_rnn)
    assert rel_err(out, ref_out) <= 1e-9, "forward pass went wrong"
    assert rel_err(h_n, ref_h_n) <= 1e-9
    T = x.shape[1]
    for name, ref in ref_grads.items():
        if time_reduction == "mean" and name.startswith(("weight", "bias")):
            ref = ref / T  # the reference sums the weight adjustments over the time steps
        assert rel_err(grads[name], ref) <= 1e-9, f"backward pass went wrong for {name}"


def test_float32_on_cuda_equals_torch_nn_rnn(monkeypatch):
    """The drop-in promise on a GPU: torch.nn.RNN (cuDNN) and rnnscope.nn.RNN agree in fp32.

    cuDNN rounds fp32 RNN matmuls to TF32 by default (relative error ≈ 2e-4 at T = 100); the
    engine's matmuls are plain fp32 (torch's default), so TF32 is off for the comparison."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    ours = rnnscope.nn.RNN(8, 64, 2, batch_first=True).cuda()
    theirs = torch.nn.RNN(8, 64, 2, batch_first=True).cuda()
    theirs.load_state_dict(ours.state_dict())
    x, h0 = torch.randn(16, 100, 8, device="cuda"), torch.randn(2, 16, 64, device="cuda")
    out, h_n, grads = gradients(ours, x, h0)
    ref_out, ref_h_n, ref_grads = gradients(theirs, x, h0)
    assert rel_err(out, ref_out) <= 1e-5 and rel_err(h_n, ref_h_n) <= 1e-5
    for name, ref in ref_grads.items():
        assert rel_err(grads[name], ref) <= 1e-4, name


def test_trace_records_cuda_runs():
    torch.manual_seed(1)
    rnn = rnnscope.nn.RNN(2, 4, nonlinearity="sigmoid").cuda()
    x = torch.randn(6, 3, 2, device="cuda")  # (T, B, I)
    with Trace() as trace:
        out, _ = rnn(x)
        out.sum().backward()
    layer = trace.layers[0]
    assert torch.allclose(layer.h.to(out.device), out.detach())
    assert layer.delta is not None and layer.delta.shape == (6, 3, 4)
