"""Autocast through rnnscope.nn.RNN: torch.nn.RNN's dtype policy (everything in the low dtype,
fp32 parameters and gradients), and its numbers within the low dtype's rounding."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err, requires_cuda
from torch.nn.utils.rnn import pack_padded_sequence

import rnnscope.nn

# bf16 keeps 8 significant bits (relative rounding 2^-8 ≈ 0.4%); over 30 steps and two layers the
# two implementations round differently, so they agree to about 1%, as each agrees with fp32
LOW_TOL = 3e-2


def autocast_run(rnn, x, device_type, dtype, packed_lengths=None):
    rnn.zero_grad()
    inp = x if packed_lengths is None else pack_padded_sequence(x, packed_lengths, batch_first=True,
                                                                enforce_sorted=False)
    with torch.autocast(device_type, dtype=dtype):
        out, h_n = rnn(inp)
        data = out if packed_lengths is None else out.data
        loss = data.float().pow(2).mean() + h_n.float().sum()
    loss.backward()
    return data, h_n, [p.grad for p in rnn.parameters()]


def compare_with_torch(device, dtype, packed_lengths=None):
    torch.manual_seed(0)
    theirs = torch.nn.RNN(3, 16, 2, batch_first=True).to(device)
    ours = rnnscope.nn.RNN(3, 16, 2, batch_first=True).to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, 30, 3, device=device)
    o1, h1, g1 = autocast_run(ours, x, device.split(":")[0], dtype, packed_lengths)
    o2, h2, g2 = autocast_run(theirs, x, device.split(":")[0], dtype, packed_lengths)
    assert o1.dtype == o2.dtype == dtype and h1.dtype == h2.dtype == dtype  # torch's policy
    assert rel_err(o1.float(), o2.float()) <= LOW_TOL and rel_err(h1.float(), h2.float()) <= LOW_TOL
    for a, b in zip(g1, g2):
        assert a.dtype == torch.float32  # the parameters and their gradients stay fp32
        assert rel_err(a, b) <= LOW_TOL


def test_cpu_bf16_autocast_follows_torch_nn_rnn():
    compare_with_torch("cpu", torch.bfloat16)


def test_cpu_bf16_autocast_with_a_packed_batch():
    compare_with_torch("cpu", torch.bfloat16, packed_lengths=[30, 7, 1, 22, 30, 9])


def test_no_autocast_leaves_fp32_alone_and_disabled_autocast_too():
    rnn = rnnscope.nn.RNN(2, 3)
    x = torch.randn(4, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        out, h_n = rnn(x)
    assert out.dtype == h_n.dtype == torch.float32


def test_trace_records_in_the_autocast_dtype():
    from rnnscope.engine import Trace

    rnn = rnnscope.nn.RNN(2, 3)
    with Trace() as trace, torch.autocast("cpu", dtype=torch.bfloat16):
        rnn(torch.randn(4, 2, 2))
    assert trace.layer("layer0").h.dtype == torch.bfloat16


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_follows_torch_nn_rnn(dtype):
    compare_with_torch("cuda", dtype)


def test_hooks_run_once_under_autocast():
    rnn = rnnscope.nn.RNN(2, 3)
    seen = []
    rnn.register_forward_hook(lambda module, args, output: seen.append(output[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rnn(torch.randn(4, 2, 2))
    assert seen == [torch.bfloat16]
