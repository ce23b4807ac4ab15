"""The fused Triton time loops (engine/fused_triton.py) against the engine's Python loop.

On a machine without CUDA the kernels run in Triton's interpreter, which Triton switches on once,
at its first import, from TRITON_INTERPRET=1; and torch imports triton already when rnnscope is
imported (torch._dynamo looks for it). So, unless this process was started with
TRITON_INTERPRET=1, test_kernels_in_the_interpreter runs this file's kernel tests again in a
child process started with it. Tolerances: float64 ≤ 1e-9 relative, float32 ≤ 1e-5 (1e-4 on
a GPU at T = 50). The CUDA tests (skipped without a GPU) compare the compiled kernels with
cuDNN's torch.nn.RNN and with the loop; tools/gpu_checks.sh runs them.

Skipped as a whole where triton is not installed (pip install -e ".[test,triton]").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from testing_utils import rel_err, requires_cuda

import rnnscope.nn
from rnnscope.engine import Trace, elman_layer, gru_layer, lstm_layer
from rnnscope.engine import fused_gru, fused_lstm, fused_triton
from rnnscope.engine.fused_gru import fused_gru_layer, gru_layer_for
from rnnscope.engine.fused_lstm import fused_lstm_layer, lstm_layer_for
from rnnscope.engine.fused_triton import elman_layer_for, fused_elman_layer
from rnnscope.errors import UserError

triton = pytest.importorskip("triton", reason="triton is not installed (the `triton` extra)")
KERNELS_RUN_HERE = torch.cuda.is_available() or fused_triton.interpreter_active()
needs_kernels = pytest.mark.skipif(
    not KERNELS_RUN_HERE,
    reason="no GPU and no Triton interpreter in this process: test_kernels_in_the_interpreter runs it")
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def layer_results(layer, x, h0, weights, activation, time_reduction="sum", loss="both"):
    """Outputs, gradients and the Trace's per-step tensors of one layer call."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, h0, *weights)]
    with Trace(weight_adjustments=True) as trace:
        out, h_last = layer(*leaves, activation=activation, time_reduction=time_reduction)
        terms = {"out": torch.sin(out).pow(2).sum(), "last": h_last.pow(2).sum()}
        loss_value = terms["out"] + terms["last"] if loss == "both" else terms[loss]
        loss_value.backward()
    record = trace.layers[0]
    results = {"out": out.detach(), "h_last": h_last.detach()}
    results |= {name: t.grad for name, t in zip(("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"), leaves)}
    results |= {name: getattr(record, name) for name in ("z", "h", "dh", "delta", "dW_ih_steps",
                                                         "dW_hh_steps", "db_steps")}
    return results


def random_layer(T, B, I, H, dtype, h0_given, device=DEVICE):
    """x (T, B, I), h0 (B, H) and (W_ih, W_hh, b_ih, b_hh) with torch's initial scale."""
    g = torch.Generator().manual_seed(T * 1000 + B * 10 + H)
    scale = H ** -0.5
    x = torch.randn(T, B, I, generator=g, dtype=dtype)
    h0 = torch.randn(B, H, generator=g, dtype=dtype) if h0_given else torch.zeros(B, H, dtype=dtype)
    weights = [(torch.rand(*shape, generator=g, dtype=dtype) * 2 - 1) * scale * 1.5
               for shape in ((H, I), (H, H), (H,), (H,))]
    return x.to(device), h0.to(device), [w.to(device) for w in weights]


def assert_equal_results(fused, loop, tolerance):
    for name, expected in loop.items():
        assert rel_err(fused[name], expected) <= tolerance, f"{name}: {rel_err(fused[name], expected):.2e}"


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("T, B, I, H, h0_given", [(1, 3, 2, 16, False), (7, 20, 5, 40, True)])
def test_kernels_equal_the_loop(dtype, activation, T, B, I, H, h0_given):
    """Forward outputs, z_t, ∂L/∂h_t, δ_t and every gradient; B and H off the 16-blocks (masks)."""
    x, h0, weights = random_layer(T, B, I, H, dtype, h0_given)
    fused = layer_results(fused_elman_layer, x, h0, weights, activation)
    loop = layer_results(elman_layer, x, h0, weights, activation)
    assert_equal_results(fused, loop, TOLERANCE[dtype])


@needs_kernels
@pytest.mark.parametrize("loss, time_reduction", [("out", "sum"), ("last", "mean")])
def test_one_of_the_two_outputs_gets_a_gradient(loss, time_reduction):
    """Only ∂L/∂y_t (no ∂L/∂h_T), or only ∂L/∂h_T: the kernel's HAS_GRAD_OUT / HAS_GRAD_LAST paths."""
    x, h0, weights = random_layer(4, 5, 3, 24, torch.float64, True)
    fused = layer_results(fused_elman_layer, x, h0, weights, "tanh", time_reduction, loss)
    loop = layer_results(elman_layer, x, h0, weights, "tanh", time_reduction, loss)
    assert_equal_results(fused, loop, 1e-9)


@needs_kernels
def test_w_hh_read_every_step(monkeypatch):
    """The large-H variant (RELOAD_W: W_hh read again each step instead of kept in registers)."""
    monkeypatch.setattr(fused_triton, "W_RESIDENT_MAX", 16)  # BLOCK_H 32 > 16: reread
    x, h0, weights = random_layer(3, 5, 2, 20, torch.float32, True)
    fused = layer_results(fused_elman_layer, x, h0, weights, "tanh")
    loop = layer_results(elman_layer, x, h0, weights, "tanh")
    assert_equal_results(fused, loop, 1e-5)


@needs_kernels
def test_no_bias_and_no_h0_gradient():
    x, h0, (W_ih, W_hh, _, _) = random_layer(3, 4, 2, 16, torch.float64, True)
    results = []
    for layer in (fused_elman_layer, elman_layer):
        W = [W_ih.clone().requires_grad_(True), W_hh.clone().requires_grad_(True)]
        out, _ = layer(x, h0, *W, activation="sigmoid")
        out.sum().backward()
        results.append([out.detach(), W[0].grad, W[1].grad])
    for fused, loop in zip(*results):
        assert rel_err(fused, loop) <= 1e-9


@needs_kernels
def test_nn_rnn_fused_equals_the_default_path(monkeypatch):
    """rnnscope.nn.RNN with RNNSCOPE_FUSED=1 (two layers, bidirectional) equals RNNSCOPE_FUSED=0."""
    torch.manual_seed(3)
    rnn = rnnscope.nn.RNN(3, 17, num_layers=2, bidirectional=True, batch_first=True,
                          nonlinearity="relu").double().to(DEVICE)
    x = torch.randn(6, 5, 3, dtype=torch.float64, device=DEVICE)  # (B, T, I)
    h0 = torch.randn(4, 6, 17, dtype=torch.float64, device=DEVICE)
    results = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("RNNSCOPE_FUSED", setting)
        assert (elman_layer_for(x, 17) is fused_elman_layer) == (setting == "1")
        rnn.zero_grad()
        xs, h0s = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
        out, h_n = rnn(xs, h0s)
        (torch.sin(out).pow(2).mean() + h_n.sum()).backward()
        results[setting] = [out.detach(), h_n.detach(), xs.grad, h0s.grad] + [p.grad.clone() for p in rnn.parameters()]
    for fused, loop in zip(results["1"], results["0"]):
        assert rel_err(fused, loop) <= 1e-9


@needs_kernels
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_nn_gated_fused_equals_the_default_path(monkeypatch, cell):
    """rnnscope.nn.LSTM and GRU with RNNSCOPE_FUSED=1 (two layers, bidirectional, states given)
    equal RNNSCOPE_FUSED=0: the modules dispatch to the fused layers and back."""
    torch.manual_seed(4)
    rnn = getattr(rnnscope.nn, cell)(3, 16, num_layers=2, bidirectional=True, batch_first=True)
    rnn = rnn.double().to(DEVICE)
    x = torch.randn(5, 4, 3, dtype=torch.float64, device=DEVICE)  # (B, T, I)
    states = [torch.randn(4, 5, 16, dtype=torch.float64, device=DEVICE) for _ in range(2 if cell == "LSTM" else 1)]
    layer_for, fused = (lstm_layer_for, fused_lstm_layer) if cell == "LSTM" else (gru_layer_for, fused_gru_layer)
    results = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("RNNSCOPE_FUSED", setting)
        assert (layer_for(x, 16) is fused) == (setting == "1")
        rnn.zero_grad()
        xs = x.clone().requires_grad_(True)
        given = [s.clone().requires_grad_(True) for s in states]
        out, finals = rnn(xs, tuple(given) if cell == "LSTM" else given[0])
        finals = finals if cell == "LSTM" else (finals,)
        (torch.sin(out).pow(2).mean() + sum(f.sum() for f in finals)).backward()
        results[setting] = ([out.detach(), *[f.detach() for f in finals], xs.grad, *[s.grad for s in given]]
                            + [p.grad.clone() for p in rnn.parameters()])
    for fused_value, loop_value in zip(results["1"], results["0"]):
        assert rel_err(fused_value, loop_value) <= 1e-9


def lstm_results(layer, x, h0, c0, weights, time_reduction="sum", loss=("out", "h", "c")):
    """Outputs, gradients and the Trace's per-step tensors of one LSTM layer call."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, h0, c0, *weights)]
    with Trace(weight_adjustments=True) as trace:
        out, h_last, c_last = layer(*leaves, time_reduction=time_reduction)
        terms = {"out": torch.sin(out).pow(2).sum(), "h": h_last.pow(2).sum(), "c": (1.3 * c_last).sum()}
        sum(terms[name] for name in loss).backward()
    record = trace.layers[0]
    results = {"out": out.detach(), "h_last": h_last.detach(), "c_last": c_last.detach()}
    results |= {name: t.grad for name, t in zip(("x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"), leaves)}
    results |= {name: getattr(record, name) for name in ("c", "h", "dh", "dc", "dW_ih_steps", "dW_hh_steps",
                                                         "db_ih_steps", "db_hh_steps")}
    for field in ("gates", "preactivations", "delta"):
        results |= {f"{field}[{gate}]": value for gate, value in getattr(record, field).items()}
    return results


def random_lstm(T, B, I, H, dtype, device=DEVICE):
    """x, h0, c0 and the four LSTM weights (4H rows), torch's initial scale."""
    g = torch.Generator().manual_seed(T * 1000 + B * 10 + H)
    tensors = [torch.randn(T, B, I, generator=g, dtype=dtype), torch.randn(B, H, generator=g, dtype=dtype),
               torch.randn(B, H, generator=g, dtype=dtype)]
    tensors += [(torch.rand(*shape, generator=g, dtype=dtype) * 2 - 1) * H ** -0.5
                for shape in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    x, h0, c0, *weights = [t.to(device) for t in tensors]
    return x, h0, c0, weights


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, B, I, H, loss, time_reduction", [(1, 3, 2, 16, ("out",), "sum"),
                                                              (6, 20, 3, 24, ("out", "h", "c"), "mean"),
                                                              (4, 5, 2, 17, ("c",), "sum")])
def test_lstm_kernels_equal_the_loop(dtype, T, B, I, H, loss, time_reduction):
    """The fused LSTM: outputs, h_T, c_T, every gradient, and the Trace (gates, a_t, c_t, dh_t,
    dc_t, every gate's δ_t, per-step weight adjustments); only ∂L/∂c_T reaching it, too."""
    x, h0, c0, weights = random_lstm(T, B, I, H, dtype)
    fused = lstm_results(fused_lstm_layer, x, h0, c0, weights, time_reduction, loss)
    loop = lstm_results(lstm_layer, x, h0, c0, weights, time_reduction, loss)
    assert_equal_results(fused, loop, TOLERANCE[dtype])


def gru_results(layer, x, h0, weights, time_reduction="sum", loss=("out", "h")):
    """Outputs, gradients and the Trace's per-step tensors of one GRU layer call (a None weight: no bias)."""
    leaves = [None if t is None else t.detach().clone().requires_grad_(True) for t in (x, h0, *weights)]
    with Trace(weight_adjustments=True) as trace:
        out, h_last = layer(*leaves, time_reduction=time_reduction)
        terms = {"out": torch.sin(out).pow(2).sum(), "h": h_last.pow(2).sum()}
        sum(terms[name] for name in loss).backward()
    record = trace.layers[0]
    results = {"out": out.detach(), "h_last": h_last.detach()}
    results |= {name: t.grad for name, t in zip(("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"), leaves) if t is not None}
    results |= {name: getattr(record, name) for name in ("h", "hn", "dh", "dW_ih_steps", "dW_hh_steps",
                                                         "db_ih_steps", "db_hh_steps")}
    for field in ("gates", "preactivations", "delta"):
        results |= {f"{field}[{gate}]": value for gate, value in getattr(record, field).items()}
    return results


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T, B, I, H, loss, time_reduction, biases", [
    (1, 3, 2, 16, ("out",), "sum", (True, True)), (6, 20, 3, 24, ("out", "h"), "mean", (True, True)),
    (4, 5, 2, 17, ("h",), "sum", (False, True)), (3, 4, 2, 16, ("out",), "sum", (True, False))])
def test_gru_kernels_equal_the_loop(dtype, T, B, I, H, loss, time_reduction, biases):
    """The fused GRU: outputs, h_T, every gradient, and the Trace (gates, a_t, hn_t, dh_t, every
    gate's δ_t and W_hn's share, per-step weight adjustments); with b_ih or b_hh absent (b_hn)."""
    x, h0, _, weights = random_lstm(T, B, I, H, dtype)
    weights = [w[: 3 * H] for w in weights]  # (3H, ·): r, z, n
    weights = [w if keep else None for w, keep in zip(weights, (True, True, *biases))]
    fused = gru_results(fused_gru_layer, x, h0, weights, time_reduction, loss)
    loop = gru_results(gru_layer, x, h0, weights, time_reduction, loss)
    assert_equal_results(fused, loop, TOLERANCE[dtype])


def test_which_gated_layer_runs(monkeypatch):
    x = torch.zeros(3, 2, 4)
    monkeypatch.delenv("RNNSCOPE_FUSED", raising=False)
    assert lstm_layer_for(x, 32) is lstm_layer  # CPU tensors: the loop unless forced
    monkeypatch.setenv("RNNSCOPE_FUSED", "1")
    if KERNELS_RUN_HERE:
        assert lstm_layer_for(x, 32) is fused_lstm_layer
    else:
        with pytest.raises(UserError, match="set TRITON_INTERPRET=1 too"):
            lstm_layer_for(x, 32)
    assert lstm_layer_for(x, 65) is lstm_layer  # four blocks of W_hh too large for one program
    assert lstm_layer_for(x.double(), 33) is lstm_layer
    assert gru_layer_for(x, 65) is gru_layer
    monkeypatch.setenv("RNNSCOPE_FUSED", "0")
    assert lstm_layer_for(x, 32) is lstm_layer
    assert gru_layer_for(x, 32) is gru_layer


def test_which_layer_runs(monkeypatch):
    """The dispatch: the loop on CPU unless forced, for dtypes and sizes the kernels do not take,
    and with RNNSCOPE_FUSED=0; a wrong value of the variable is the user's one-line error."""
    x = torch.zeros(3, 2, 4)
    monkeypatch.delenv("RNNSCOPE_FUSED", raising=False)
    assert elman_layer_for(x, 32) is elman_layer  # CPU tensors: the loop unless forced
    monkeypatch.setenv("RNNSCOPE_FUSED", "1")
    if KERNELS_RUN_HERE:
        assert elman_layer_for(x, 32) is fused_elman_layer
    else:  # CPU tensors, and triton imported without its interpreter: say how to get it
        with pytest.raises(UserError, match="set TRITON_INTERPRET=1 too"):
            elman_layer_for(x, 32)
    assert elman_layer_for(x, 257) is elman_layer  # W_hh too large for one program
    assert elman_layer_for(x.double(), 65) is elman_layer  # fp64's broadcast products too large
    assert elman_layer_for(x.half(), 32) is elman_layer
    assert elman_layer_for(x[:0], 32) is elman_layer  # T = 0: the loop's own error
    assert elman_layer_for(x[:, :0], 32) is elman_layer  # B = 0: no program to launch
    monkeypatch.setenv("RNNSCOPE_FUSED", "0")
    assert elman_layer_for(x, 32) is elman_layer
    monkeypatch.setenv("RNNSCOPE_FUSED", "yes")
    with pytest.raises(UserError, match="RNNSCOPE_FUSED='yes'"):
        elman_layer_for(x, 32)


def test_forcing_without_triton_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("RNNSCOPE_FUSED", "1")
    monkeypatch.setattr(fused_triton, "triton_imports", lambda: False)
    with pytest.raises(UserError, match=r"triton does not import here: pip install"):
        elman_layer_for(torch.zeros(3, 2, 4), 32)


def test_the_engine_runs_without_triton():
    """Without triton the engine imports and trains on the loop (a child where `import triton` fails)."""
    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch, rnnscope.nn\n"
            "from rnnscope.engine.fused_triton import elman_layer_for, triton_imports\n"
            "assert not triton_imports()\n"
            "rnn = rnnscope.nn.RNN(2, 8)\n"
            "rnn(torch.zeros(3, 1, 2))[0].sum().backward()\n")
    env = {k: v for k, v in os.environ.items() if k != "RNNSCOPE_FUSED"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


@pytest.mark.skipif(KERNELS_RUN_HERE, reason="the kernel tests ran in this process")
def test_kernels_in_the_interpreter():
    """This file's kernel tests, in a child process whose triton was imported with TRITON_INTERPRET=1."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"TRITON_INTERPRET": "1"}
    env.pop("RNNSCOPE_FUSED", None)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(Path(__file__).resolve()),
         "-k", "not in_the_interpreter and not cuda and not without_triton and not compile"],
        cwd=root, env=env, capture_output=True, text=True, timeout=280)
    summary = child.stdout.strip().splitlines()[-1] if child.stdout.strip() else ""
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-2000:]
    assert "passed" in summary and "skipped" not in summary, summary  # every kernel test ran


@pytest.mark.skipif(fused_triton.interpreter_active(), reason="Triton's interpreter is on: nothing compiles")
@pytest.mark.parametrize("dtype, precision", [("fp32", "ieee"), ("fp32", "tf32"), ("fp64", "ieee")])
def test_kernels_compile_for_a_gpu(dtype, precision):
    """The Elman, LSTM and GRU kernels, every flag on, compiled for an H100 (sm_90) without one: Triton's front end
    and ptxas accept them (what the interpreter cannot tell: globals, types, loop-carried values)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constants = {"ACT": 2, "USE_DOT": dtype == "fp32", "PREC": precision, "WRITE_Z": True, "RELOAD_W": True,
                 "HAS_GRAD_OUT": True, "HAS_GRAD_LAST": True, "WRITE_DH": True, "BLOCK_B": 16, "BLOCK_H": 16,
                 "WRITE_A": True, "HAS_GRAD_C_LAST": True, "WRITE_D": True, "HAS_B_HN": True}  # the last four: the gated cells'
    for kernel in (*fused_triton._kernels(), *fused_lstm._kernels(), *fused_gru._kernels()):
        names = kernel.arg_names
        signature = {n: "*" + dtype if n.endswith("_ptr") else "i32" if n in ("T", "B", "H") else "constexpr"
                     for n in names}
        constexprs = {(names.index(n),): constants[n] for n in names if signature[n] == "constexpr"}
        compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constexprs),
                                  target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "enable_fp_fusion": True})
        assert compiled.asm["cubin"], kernel.__name__


# --- on a GPU: the compiled kernels against cuDNN and the loop (tools/gpu_checks.sh) ---

@requires_cuda
@pytest.mark.parametrize("B, T, I, H", [(64, 100, 8, 128), (32, 1000, 1, 32), (1, 200, 1, 16), (20, 30, 5, 256)])
def test_cuda_fused_float32_equals_cudnn(B, T, I, H, monkeypatch):
    """The drop-in promise, fused: cuDNN's torch.nn.RNN (TF32 off) and the fused rnnscope.nn.RNN."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.delenv("RNNSCOPE_FUSED", raising=False)
    torch.manual_seed(0)
    ours = rnnscope.nn.RNN(I, H).cuda()
    theirs = torch.nn.RNN(I, H).cuda()
    theirs.load_state_dict(ours.state_dict())
    x, h0 = torch.randn(T, B, I, device="cuda"), torch.randn(1, B, H, device="cuda") * 0.5
    assert elman_layer_for(x, H) is fused_elman_layer
    results = []
    for rnn in (ours, theirs):
        rnn.zero_grad()
        xs, h0s = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
        out, h_n = rnn(xs, h0s)
        (torch.sin(out).pow(2).mean() + h_n.sum()).backward()
        results.append([out.detach(), h_n.detach(), xs.grad, h0s.grad] + [p.grad for p in rnn.parameters()])
    for name, fused, cudnn in zip(["out", "h_n", "x", "h0", "W_ih", "W_hh", "b_ih", "b_hh"], *results):
        assert rel_err(fused, cudnn) <= (1e-5 if name in ("out", "h_n") else 1e-4), name


@requires_cuda
def test_cuda_fused_tf32_equals_cudnn_tf32(monkeypatch):
    """torch's "high" float32 matmul precision: the kernels' tl.dot in TF32, as cuDNN's default."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        torch.manual_seed(0)
        ours, theirs = rnnscope.nn.RNN(8, 128).cuda(), torch.nn.RNN(8, 128).cuda()
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(100, 64, 8, device="cuda")
        assert rel_err(ours(x)[0], theirs(x)[0]) <= 5e-3  # TF32: 10-bit mantissas, ≈ 1e-3 per product
    finally:
        torch.set_float32_matmul_precision(precision)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_cuda_kernels_equal_the_loop(dtype, activation):
    """The compiled kernels (tl.dot in fp32, broadcast sums in fp64) against the loop on the GPU."""
    for T, B, I, H, h0_given in [(1, 3, 2, 16, False), (50, 37, 5, 40, True)]:
        x, h0, weights = random_layer(T, B, I, H, dtype, h0_given, device="cuda")
        fused = layer_results(fused_elman_layer, x, h0, weights, activation)
        loop = layer_results(elman_layer, x, h0, weights, activation)
        assert_equal_results(fused, loop, TOLERANCE[dtype] * (10 if dtype == torch.float32 else 1))


@requires_cuda
@pytest.mark.parametrize("B, T, I, H", [(64, 100, 8, 64), (1, 200, 1, 16)])
def test_cuda_fused_lstm_equals_cudnn(B, T, I, H, monkeypatch):
    """The fused LSTM layer with torch.nn.LSTM's weights equals cuDNN's LSTM (TF32 off)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H).cuda()
    x = torch.randn(T, B, I, device="cuda")
    h0, c0 = torch.randn(1, B, H, device="cuda") * 0.5, torch.randn(1, B, H, device="cuda") * 0.5
    ref_out, (ref_h, ref_c) = lstm(x, (h0, c0))
    (torch.sin(ref_out).pow(2).mean() + ref_h.sum() + ref_c.sum()).backward()
    ref_grads = [p.grad.clone() for p in lstm.all_weights[0]]
    weights = [p.detach().clone().requires_grad_(True) for p in lstm.all_weights[0]]
    out, h_T, c_T = fused_lstm_layer(x, h0[0], c0[0], *weights)
    (torch.sin(out).pow(2).mean() + h_T.sum() + c_T.sum()).backward()
    assert rel_err(out, ref_out) <= 1e-5 and rel_err(c_T, ref_c[0]) <= 1e-5
    for weight, ref in zip(weights, ref_grads):
        assert rel_err(weight.grad, ref) <= 1e-4


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_lstm_kernels_equal_the_loop(dtype):
    x, h0, c0, weights = random_lstm(50, 37, 5, 40, dtype, device="cuda")
    fused = lstm_results(fused_lstm_layer, x, h0, c0, weights)
    loop = lstm_results(lstm_layer, x, h0, c0, weights)
    assert_equal_results(fused, loop, TOLERANCE[dtype] * (10 if dtype == torch.float32 else 1))


@requires_cuda
def test_cuda_fused_gru_equals_cudnn(monkeypatch):
    """The fused GRU layer with torch.nn.GRU's weights equals cuDNN's GRU (TF32 off)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    gru = torch.nn.GRU(8, 64).cuda()
    x, h0 = torch.randn(100, 64, 8, device="cuda"), torch.randn(1, 64, 64, device="cuda") * 0.5
    ref_out, ref_h = gru(x, h0)
    (torch.sin(ref_out).pow(2).mean() + ref_h.sum()).backward()
    ref_grads = [p.grad.clone() for p in gru.all_weights[0]]
    weights = [p.detach().clone().requires_grad_(True) for p in gru.all_weights[0]]
    out, h_T = fused_gru_layer(x, h0[0], *weights)
    (torch.sin(out).pow(2).mean() + h_T.sum()).backward()
    assert rel_err(out, ref_out) <= 1e-5
    for weight, ref in zip(weights, ref_grads):
        assert rel_err(weight.grad, ref) <= 1e-4


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_gru_kernels_equal_the_loop(dtype):
    x, h0, _, weights = random_lstm(50, 37, 5, 32, dtype, device="cuda")
    weights = [w[: 3 * 32] for w in weights]
    fused = gru_results(fused_gru_layer, x, h0, weights)
    loop = gru_results(gru_layer, x, h0, weights)
    assert_equal_results(fused, loop, TOLERANCE[dtype] * (10 if dtype == torch.float32 else 1))
