"""The engine as a custom operator (engine/op.py): the same numbers as the eager engine, opaque to
torch.compile (one graph, no unrolled loop), exportable, and honest about Trace under compile."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import Trace, elman_layer, gru_layer, lstm_layer
from rnnscope.engine.bptt import ELMAN_OP
from rnnscope.engine.gru import GRU_OP
from rnnscope.engine.lstm import LSTM_OP

TOL = 1e-9
# module -> the name of its layers' operator (rnnscope::<name>_forward)
OPERATORS = {"RNN": "elman", "LSTM": "lstm", "GRU": "gru"}


def flat(out, state) -> list[torch.Tensor]:
    """A module's output and its final state (h_n, or an LSTM's (h_n, c_n)) as one list."""
    return [out, *(state if isinstance(state, tuple) else (state,))]


def loss_of(out, state) -> torch.Tensor:
    return out.pow(2).sum() + sum(s.sum() * (k + 1) for k, s in enumerate(flat(out, state)[1:]))


def layer_inputs(bias: bool, T: int = 5, B: int = 3, I: int = 2, H: int = 4):
    torch.manual_seed(T + B)
    shapes = [(T, B, I), (B, H), (H, I), (H, H)] + ([(H,), (H,)] if bias else [])
    tensors = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    return tensors + ([] if bias else [None, None])


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("bias, time_reduction", [(True, "sum"), (False, "mean")])
def test_operator_equals_eager_engine_forward_and_backward(activation, bias, time_reduction):
    inputs = layer_inputs(bias)
    results = []
    for run in ("eager", "operator"):
        if run == "eager":
            out, h_last = elman_layer(*inputs, activation=activation, time_reduction=time_reduction)
        else:
            out, h_last = ELMAN_OP(inputs, f"{activation} {time_reduction}")
        (out.sin().sum() + h_last.pow(2).sum()).backward()
        grads = [t.grad.clone() for t in inputs if t is not None]
        for t in inputs:
            if t is not None:
                t.grad = None
        results.append([out.detach(), h_last.detach()] + grads)
    for a, b in zip(*results):
        assert rel_err(b, a) <= TOL


def gated_inputs(cell: str, bias: bool, T: int = 5, B: int = 3, I: int = 2, H: int = 4):
    torch.manual_seed(T + B)
    G = 4 if cell == "lstm" else 3
    shapes = [(T, B, I), (B, H)] + ([(B, H)] if cell == "lstm" else []) + [(G * H, I), (G * H, H)]
    shapes += [(G * H,), (G * H,)] if bias else []
    tensors = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    return tensors + ([] if bias else [None, None])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bias, time_reduction", [(True, "sum"), (False, "mean")])
def test_gated_operator_equals_eager_engine_forward_and_backward(cell, bias, time_reduction):
    inputs = gated_inputs(cell, bias)
    layer, op, outputs = (lstm_layer, LSTM_OP, 3) if cell == "lstm" else (gru_layer, GRU_OP, 2)
    results = []
    for run in ("eager", "operator"):
        if run == "eager":
            outs = layer(*inputs, time_reduction=time_reduction)
        else:
            outs = op(inputs, time_reduction)[:outputs]
        loss_of(outs[0], tuple(outs[1:])).backward()
        grads = [t.grad.clone() for t in inputs if t is not None]
        for t in inputs:
            if t is not None:
                t.grad = None
        results.append([o.detach() for o in outs] + grads)
    for a, b in zip(*results, strict=True):
        assert rel_err(b, a) <= TOL


def test_operator_passes_torch_opcheck():
    inputs = layer_inputs(bias=True, T=3, B=2)
    torch.library.opcheck(ELMAN_OP.forward_op, (inputs, [True] * 6, "tanh sum"))
    no_bias = layer_inputs(bias=False, T=3, B=2)[:4]
    torch.library.opcheck(ELMAN_OP.forward_op, (no_bias, [True] * 4 + [False] * 2, "relu mean"))
    inputs = gated_inputs("lstm", bias=True, T=3, B=2)  # (opcheck is slow: one call per cell)
    torch.library.opcheck(LSTM_OP.forward_op, (inputs, [True] * len(inputs), "sum"))
    no_bias = [t for t in gated_inputs("gru", bias=False, T=3, B=2) if t is not None]
    torch.library.opcheck(GRU_OP.forward_op, (no_bias, [True] * len(no_bias) + [False] * 2, "mean"))


class Captured:
    """A torch.compile backend that keeps the FX graphs it is given and runs them as they are."""

    def __init__(self) -> None:
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


@pytest.mark.parametrize("module", OPERATORS)
def test_compile_sees_one_opaque_operator_and_gives_the_same_gradients(module):
    torch._dynamo.reset()
    torch.manual_seed(0)
    rnn = getattr(rnnscope.nn, module)(3, 5, 2, batch_first=True, bidirectional=True).double()
    x = torch.randn(2, 40, 3, dtype=torch.float64)
    results = []
    backend = Captured()
    for model in (rnn, torch.compile(rnn, backend=backend, fullgraph=True)):
        rnn.zero_grad()
        out, state = model(x)
        loss_of(out, state).backward()
        results.append([t.detach() for t in flat(out, state)] + [p.grad.clone() for p in rnn.parameters()])
    for a, b in zip(*results, strict=True):
        assert rel_err(b, a) <= TOL
    assert len(backend.graphs) == 1  # fullgraph: no graph break anywhere
    targets = [str(n.target) for n in backend.graphs[0].graph.nodes if n.op == "call_function"]
    assert sum(f"{OPERATORS[module]}_stack_forward" in t for t in targets) == 1  # 2 layers × 2 directions, one call
    assert len(targets) < 40  # not one node per time step (T = 40): the loop was not unrolled


@pytest.mark.parametrize("module", OPERATORS)
def test_compile_with_autograd_engine_backend_equals_eager(module):
    """aot_eager: the compiler's own autograd graph calls rnnscope::<cell>_backward."""
    torch._dynamo.reset()
    torch.manual_seed(1)
    kwargs = {"nonlinearity": "sigmoid"} if module == "RNN" else {}
    rnn = getattr(rnnscope.nn, module)(2, 4, time_reduction="mean", **kwargs).double()
    x = torch.randn(6, 3, 2, dtype=torch.float64)
    results = []
    for model in (rnn, torch.compile(rnn, backend="aot_eager", fullgraph=True)):
        rnn.zero_grad()
        out, state = model(x)
        (out[-1].sum() + flat(out, state)[-1].pow(2).sum()).backward()
        results.append([p.grad.clone() for p in rnn.parameters()])
    for a, b in zip(*results, strict=True):
        assert rel_err(b, a) <= TOL


@pytest.mark.parametrize("module", OPERATORS)
def test_kernels_run_without_view_replay_inside_a_compiled_step(module, monkeypatch):
    """AOT autograd turns view replay on around a compiled graph; the engine's many per-step
    views made its loops ~6 % slower there, so its kernels turn it off (forward and backward)."""
    import rnnscope.engine.op as op

    seen = []
    with_nones = op._with_nones

    def spy(tensors, present):
        if type(tensors[0]) is torch.Tensor:  # a kernel's real call (not shape propagation, not a mask)
            seen.append(torch._C._is_view_replay_enabled())
        return with_nones(tensors, present)

    monkeypatch.setattr(op, "_with_nones", spy)
    torch._dynamo.reset()
    rnn = getattr(rnnscope.nn, module)(2, 4, 2).double()
    torch.compile(rnn, backend="aot_eager", fullgraph=True)(torch.randn(5, 3, 2, dtype=torch.float64))[0].sum().backward()
    assert seen == [False, False]  # the stack's forward and backward kernels


@pytest.mark.parametrize("module", OPERATORS)
def test_trace_records_nothing_under_compile_and_says_why(module):
    torch._dynamo.reset()
    rnn = getattr(rnnscope.nn, module)(2, 3)
    compiled = torch.compile(rnn, backend="eager", fullgraph=True)
    x = torch.randn(4, 1, 2)
    with Trace() as trace:
        compiled(x)
    assert trace.layers == []
    with pytest.raises(KeyError, match="torch.compile"):
        trace.layer("layer0")
    with Trace() as trace:  # the eager module still records
        rnn(x)
    assert trace.layer("layer0").h.shape == (4, 1, 3)


@pytest.mark.parametrize("module", OPERATORS)
def test_export_for_inference_with_a_free_sequence_length(module):
    torch.manual_seed(2)
    rnn = getattr(rnnscope.nn, module)(3, 4, 2, batch_first=True).eval()
    x = torch.randn(2, 7, 3)
    exported = torch.export.export(rnn, (x,), dynamic_shapes=({1: torch.export.Dim("T", min=2)},))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert any(f"{OPERATORS[module]}_stack_forward" in t for t in targets)
    for steps in (7, 12):
        x = torch.randn(2, steps, 3)
        mine, reference = exported.module()(x), rnn(x)
        for a, b in zip(flat(*mine), flat(*reference), strict=True):
            assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("module", OPERATORS)
def test_compile_of_a_packed_batch_runs_the_engine_eagerly(module):
    torch._dynamo.reset()
    torch.manual_seed(3)
    rnn = getattr(rnnscope.nn, module)(2, 3, bidirectional=True).double()
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
    results = []
    for model in (rnn, torch.compile(rnn, backend="aot_eager")):
        rnn.zero_grad()
        out, state = model(packed)
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        loss_of(out.data.sin(), state).backward()
        results.append([t.detach() for t in flat(out.data, state)] + [p.grad.clone() for p in rnn.parameters()])
    for a, b in zip(*results, strict=True):
        assert rel_err(b, a) <= TOL
