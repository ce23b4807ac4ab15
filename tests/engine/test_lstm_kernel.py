"""The LSTM's two loops: the compiled kernel (engine/lstm_kernel.py) and the pure-torch fallback,
each against torch.nn.LSTM and the unrolled autograd reference in float64 (≤ 1e-9), and against
each other, Trace included. The kernel is built once per machine (cached); this module is where a
fresh CI machine pays for it."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import torch
from test_gated_bptt import check, loss_every_step, loss_last_step
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import Trace, lstm_kernel, lstm_layer
from rnnscope.engine.lstm import _fused_loops

CAN_BUILD = shutil.which("g++") is not None and shutil.which("ninja") is not None


def needs_kernel() -> None:
    """Skip, saying why, where the kernel cannot be built (test_the_kernel_builds_where_a_compiler_is
    fails where it should have been)."""
    if lstm_kernel.kernel(torch.zeros(1)) is None:
        pytest.skip(f"the kernel cannot be built here: {lstm_kernel._state.get('error')}")


@pytest.fixture(params=["fused", "torch"])
def path(request, monkeypatch):
    """Run a test once on the compiled loops and once on the pure-torch loops."""
    if request.param == "fused":
        needs_kernel()
        monkeypatch.setenv(lstm_kernel.ENV_VAR, "1")
    else:
        monkeypatch.setenv(lstm_kernel.ENV_VAR, "0")
    return request.param


@pytest.mark.skipif(not CAN_BUILD, reason="needs g++ and ninja")
def test_the_kernel_builds_where_a_compiler_is(monkeypatch):
    monkeypatch.setenv(lstm_kernel.ENV_VAR, "1")
    x = torch.zeros(2, 3)
    assert lstm_kernel.kernel(x) is not None, lstm_kernel._state.get("error")
    assert _fused_loops(x, torch.zeros(3, dtype=torch.float64)) is None  # mixed dtypes: the torch loop
    assert lstm_kernel.kernel(x.to(torch.bfloat16)) is None
    monkeypatch.setenv(lstm_kernel.ENV_VAR, "0")
    assert lstm_kernel.kernel(x) is None


def test_a_failed_build_leaves_the_torch_loop(monkeypatch, capsys):
    def fails():
        raise RuntimeError("Error building extension\nmain.cpp:1:1: error: no compiler today\nninja: build stopped")

    monkeypatch.setattr(lstm_kernel, "_state", {})
    monkeypatch.setattr(lstm_kernel, "_build", fails)
    monkeypatch.setenv(lstm_kernel.ENV_VAR, "1")
    assert lstm_kernel.kernel(torch.zeros(1)) is None
    assert lstm_kernel.kernel(torch.zeros(1)) is None  # tried once
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "main.cpp:1:1: error: no compiler today" in err and lstm_kernel.ENV_VAR in err
    torch.manual_seed(0)
    check(rnnscope.nn.LSTM(2, 3).double(), torch.randn(4, 2, 2, dtype=torch.float64), None, loss_every_step)


def test_one_build_for_concurrent_callers(monkeypatch, tmp_path):
    """Threads (and, through the lock file, processes) that all find no library wait for one build."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    builds, loads = [], []

    def compile_slowly(directory):
        builds.append(directory)
        time.sleep(0.3)
        (directory / f"{lstm_kernel._NAME}.so").write_bytes(b"")

    monkeypatch.setattr(lstm_kernel, "_compile", compile_slowly)
    monkeypatch.setattr(torch.ops, "load_library", loads.append)
    threads = [threading.Thread(target=lstm_kernel._build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert builds == [lstm_kernel.cache_dir()] and str(tmp_path) in str(builds[0])
    assert len(loads) == 3


@pytest.mark.parametrize("num_layers, bidirectional, batch_first, with_hx", [
    (1, False, False, True), (2, True, True, False), (3, False, False, False)])
def test_both_loops_match_torch_and_autograd(path, num_layers, bidirectional, batch_first, with_hx):
    torch.manual_seed(1)
    rnn = rnnscope.nn.LSTM(3, 5, num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    D = 2 if bidirectional else 1
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    hx = tuple(torch.randn(num_layers * D, 4 if batch_first else 6, 5, dtype=torch.float64)
               for _ in range(2)) if with_hx else None
    for loss_fn in (loss_last_step, loss_every_step):
        check(rnn, x, hx, loss_fn)


@pytest.mark.parametrize("B, H", [(1, 1), (8, 48)])  # the kernel's plain matmul loops, then torch's addmm
def test_both_loops_on_tiny_and_larger_steps(path, B, H):
    torch.manual_seed(2)
    check(rnnscope.nn.LSTM(2, H).double(), torch.randn(3, B, 2, dtype=torch.float64),
          tuple(torch.randn(1, B, H, dtype=torch.float64) for _ in range(2)), loss_every_step)


def test_both_loops_on_a_packed_batch(path):
    """Sequences of lengths 5, 3, 3, 1: a step's matmul and pass cover the running rows only."""
    torch.manual_seed(3)
    rnn = rnnscope.nn.LSTM(2, 4, num_layers=2, bidirectional=True).double()
    twin = torch.nn.LSTM(2, 4, num_layers=2, bidirectional=True).double()
    twin.load_state_dict(rnn.state_dict())
    lengths = [5, 3, 3, 1]
    x = torch.randn(5, 4, 2, dtype=torch.float64)
    hx = tuple(torch.randn(4, 4, 4, dtype=torch.float64) for _ in range(2))
    results = []
    for module in (rnn, twin):
        module.zero_grad()
        xs, states = x.clone().requires_grad_(True), tuple(s.clone().requires_grad_(True) for s in hx)
        packed = torch.nn.utils.rnn.pack_padded_sequence(xs, lengths)
        out, (h_n, c_n) = module(packed, states)
        padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out)
        ((padded ** 2).sum() + h_n.sum() + (c_n ** 2).sum()).backward()
        results.append([padded, h_n, c_n, xs.grad, *(s.grad for s in states), *(p.grad for p in module.parameters())])
    for ours, theirs in zip(*results):
        assert rel_err(ours, theirs) <= 1e-9


def _traced(T, B, I, H, fused, monkeypatch, packed=False):
    """Every field of a weight-adjustment Trace of one LSTM layer's forward and backward."""
    monkeypatch.setenv(lstm_kernel.ENV_VAR, "1" if fused else "0")
    torch.manual_seed(4)
    weights = [torch.randn(4 * H, I, dtype=torch.float64), torch.randn(4 * H, H, dtype=torch.float64),
               torch.randn(4 * H, dtype=torch.float64), torch.randn(4 * H, dtype=torch.float64)]
    weights = [w.mul_(0.5).requires_grad_(True) for w in weights]
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    with Trace(weight_adjustments=True) as trace:
        out, h_T, c_T = lstm_layer(x, h0, c0, *weights, trace_name="layer0")
        (out.sin().sum() + (c_T ** 2).sum()).backward()
    record = trace.layer("layer0")
    fields = {name: value for name, value in vars(record).items() if value is not None}
    return fields, [x.grad, *(w.grad for w in weights)]


def test_the_trace_is_the_same_on_both_loops(monkeypatch):
    needs_kernel()
    fused, fused_grads = _traced(4, 3, 2, 5, True, monkeypatch)
    pure, pure_grads = _traced(4, 3, 2, 5, False, monkeypatch)
    assert fused.keys() == pure.keys() and {"preactivations", "gates", "c", "dc", "delta", "dW_hh_steps"} <= fused.keys()
    for name, value in pure.items():
        if isinstance(value, dict):
            assert value.keys() == fused[name].keys(), name
            for key in value:
                assert rel_err(fused[name][key], value[key]) <= 1e-12, f"{name}[{key}]"
        elif isinstance(value, torch.Tensor):
            assert rel_err(fused[name], value) <= 1e-12, name
        else:
            assert fused[name] == value, name
    for ours, theirs in zip(fused_grads, pure_grads):
        assert rel_err(ours, theirs) <= 1e-12


def test_float32_on_the_kernel_is_float32_close(path):
    torch.manual_seed(6)
    ours = rnnscope.nn.LSTM(3, 40)
    reference = torch.nn.LSTM(3, 40).double()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(20, 16, 3)
    out, (h_n, c_n) = ours(x)
    ref_out, (ref_h, ref_c) = reference(x.double())
    for value, ref in ((out, ref_out), (h_n, ref_h), (c_n, ref_c)):
        assert rel_err(value.double(), ref) <= 1e-5
    out.sum().backward()
    ref_out.sum().backward()
    for p, q in zip(ours.parameters(), reference.parameters()):
        assert rel_err(p.grad.double(), q.grad) <= 1e-4


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_a_jit_trace_of_the_kernel_replays_at_other_lengths():
    """The traced autograd.Function reruns its forward, and the kernel takes the step sizes of
    the new input (the torch loop's trace keeps the traced length's steps: tests/nn/test_compat.py)."""
    needs_kernel()
    rnn = rnnscope.nn.LSTM(3, 4, batch_first=True).double().eval()
    traced = torch.jit.trace(rnn, (torch.randn(2, 5, 3, dtype=torch.float64),), check_trace=False)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(traced(x)[0], rnn(x)[0])


def test_nan_and_saturating_inputs_come_out_as_in_torch(path):
    """The kernel is compiled with -ffast-math: NaN still spreads, and saturated gates stay finite."""
    torch.manual_seed(7)
    ours = rnnscope.nn.LSTM(2, 3)
    theirs = torch.nn.LSTM(2, 3)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 2)
    x[1, 0, 0] = float("nan")
    assert torch.equal(ours(x)[0].isnan(), theirs(x)[0].isnan()) and ours(x)[0].isnan().any()
    big = torch.randn(4, 2, 2) * 1e4
    assert torch.allclose(ours(big)[0], theirs(big)[0], atol=1e-6)

