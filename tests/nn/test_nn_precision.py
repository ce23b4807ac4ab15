"""Autocast through rnnscope.nn.RNN, LSTM and GRU: torch.nn's dtype policy (everything in the low dtype,
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
        out, state = rnn(inp)
        states = state if isinstance(state, tuple) else (state,)  # h_n, or an LSTM's (h_n, c_n)
        data = out if packed_lengths is None else out.data
        loss = data.float().pow(2).mean() + sum(s.float().sum() for s in states)
    loss.backward()
    return [data, *states], [p.grad for p in rnn.parameters()]


def compare_with_torch(device, dtype, packed_lengths=None, module="RNN"):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, module)(3, 16, 2, batch_first=True).to(device)
    ours = getattr(rnnscope.nn, module)(3, 16, 2, batch_first=True).to(device)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, 30, 3, device=device)
    o1, g1 = autocast_run(ours, x, device.split(":")[0], dtype, packed_lengths)
    o2, g2 = autocast_run(theirs, x, device.split(":")[0], dtype, packed_lengths)
    # torch's policy: output and state in the low dtype; on the CPU, GRU and packed LSTM return fp32
    fp32_on_cpu = module == "GRU" or (module == "LSTM" and packed_lengths is not None)
    expected = torch.float32 if fp32_on_cpu and device == "cpu" else dtype
    for a, b in zip(o1, o2, strict=True):
        assert a.dtype == b.dtype == expected
        assert rel_err(a.float(), b.float()) <= LOW_TOL
    for a, b in zip(g1, g2, strict=True):
        assert a.dtype == torch.float32  # the parameters and their gradients stay fp32
        assert rel_err(a, b) <= LOW_TOL


@pytest.mark.parametrize("module", ["RNN", "LSTM", "GRU"])
def test_cpu_bf16_autocast_follows_torch_nn_rnn(module):
    compare_with_torch("cpu", torch.bfloat16, module=module)


@pytest.mark.parametrize("module", ["RNN", "LSTM", "GRU"])
def test_cpu_bf16_autocast_with_a_packed_batch(module):
    compare_with_torch("cpu", torch.bfloat16, packed_lengths=[30, 7, 1, 22, 30, 9], module=module)


@pytest.mark.parametrize("module", ["RNN", "LSTM", "GRU"])
def test_no_autocast_leaves_fp32_alone_and_disabled_autocast_too(module):
    rnn = getattr(rnnscope.nn, module)(2, 3)
    x = torch.randn(4, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        out, h_n = rnn(x)
    assert out.dtype == torch.float32
    assert all(s.dtype == torch.float32 for s in (h_n if isinstance(h_n, tuple) else (h_n,)))


@pytest.mark.parametrize("module", ["RNN", "LSTM", "GRU"])
def test_trace_records_in_the_autocast_dtype(module):
    from rnnscope.engine import Trace

    rnn = getattr(rnnscope.nn, module)(2, 3)
    with Trace() as trace, torch.autocast("cpu", dtype=torch.bfloat16):
        rnn(torch.randn(4, 2, 2))
    assert trace.layer("layer0").h.dtype == torch.bfloat16


@requires_cuda
@pytest.mark.parametrize("module", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_follows_torch_nn_rnn(dtype, module):
    compare_with_torch("cuda", dtype, module=module)


def test_hooks_run_once_under_autocast():
    rnn = rnnscope.nn.RNN(2, 3)
    seen = []
    rnn.register_forward_hook(lambda module, args, output: seen.append(output[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rnn(torch.randn(4, 2, 2))
    assert seen == [torch.bfloat16]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_train_precision_bf16_trains_the_gated_cells_to_the_fp32_loss(tmp_path, cell):
    """--train.precision bf16 with --model.cell lstm / gru: the sine task's loss within 2% of fp32's
    (the tolerance tests/train/test_train_precision.py states for the Elman model)."""
    from rnnscope.train import load_config, train

    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = load_config(None, ["--model.cell", cell, "--train.precision", precision, "--train.epochs", "3",
                                 "--train.progress", "false", "--train.run_dir", str(tmp_path / precision)])
        result = train(cfg)
        losses[precision] = (result.first_loss, result.val_loss)
    assert losses["bf16"][1] < 0.5 * losses["bf16"][0]  # it learned
    assert abs(losses["bf16"][1] - losses["fp32"][1]) <= 0.02 * losses["fp32"][1]
