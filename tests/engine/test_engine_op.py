"""The engine as a custom operator (engine/op.py): the same numbers as the eager engine, opaque to
torch.compile (one graph, no unrolled loop), exportable, and honest about Trace under compile."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import Trace, elman_layer
from rnnscope.engine.bptt import ELMAN_OP

TOL = 1e-9


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


def test_operator_passes_torch_opcheck():
    inputs = layer_inputs(bias=True, T=3, B=2)
    torch.library.opcheck(ELMAN_OP.forward_op, (inputs, [True] * 6, "tanh sum"))
    no_bias = layer_inputs(bias=False, T=3, B=2)[:4]
    torch.library.opcheck(ELMAN_OP.forward_op, (no_bias, [True] * 4 + [False] * 2, "relu mean"))


def test_gradcheck_through_the_operator_only_wanted_inputs():
    x, h0, W_ih, W_hh, b_ih, b_hh = layer_inputs(bias=True, T=3, B=2)
    h0 = h0.detach()  # not every input wants a gradient: the operator returns None for it
    assert torch.autograd.gradcheck(lambda *t: ELMAN_OP([t[0], h0, *t[1:]], "tanh sum"),
                                    (x, W_ih, W_hh, b_ih, b_hh))


class Captured:
    """A torch.compile backend that keeps the FX graphs it is given and runs them as they are."""

    def __init__(self) -> None:
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def test_compile_sees_one_opaque_operator_and_gives_the_same_gradients():
    torch._dynamo.reset()
    torch.manual_seed(0)
    rnn = rnnscope.nn.RNN(3, 5, 2, batch_first=True, bidirectional=True).double()
    x = torch.randn(2, 40, 3, dtype=torch.float64)
    results = []
    backend = Captured()
    for model in (rnn, torch.compile(rnn, backend=backend, fullgraph=True)):
        rnn.zero_grad()
        out, h_n = model(x)
        (out.pow(2).sum() + h_n.sum()).backward()
        results.append([out.detach(), h_n.detach()] + [p.grad.clone() for p in rnn.parameters()])
    for a, b in zip(*results):
        assert rel_err(b, a) <= TOL
    assert len(backend.graphs) == 1  # fullgraph: no graph break anywhere
    targets = [str(n.target) for n in backend.graphs[0].graph.nodes if n.op == "call_function"]
    assert sum("elman_forward" in t for t in targets) == 4  # 2 layers × 2 directions
    assert len(targets) < 40  # not one node per time step (T = 40): the loop was not unrolled


def test_compile_with_autograd_engine_backend_equals_eager():
    """aot_eager: the compiler's own autograd graph calls rnnscope::elman_backward."""
    torch._dynamo.reset()
    torch.manual_seed(1)
    rnn = rnnscope.nn.RNN(2, 4, nonlinearity="sigmoid", time_reduction="mean").double()
    x = torch.randn(6, 3, 2, dtype=torch.float64)
    results = []
    for model in (rnn, torch.compile(rnn, backend="aot_eager", fullgraph=True)):
        rnn.zero_grad()
        out, h_n = model(x)
        out[-1].sum().backward()
        results.append([p.grad.clone() for p in rnn.parameters()])
    for a, b in zip(*results):
        assert rel_err(b, a) <= TOL


def test_trace_records_nothing_under_compile_and_says_why():
    torch._dynamo.reset()
    rnn = rnnscope.nn.RNN(2, 3)
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


def test_export_for_inference_with_a_free_sequence_length():
    torch.manual_seed(2)
    rnn = rnnscope.nn.RNN(3, 4, 2, batch_first=True).eval()
    x = torch.randn(2, 7, 3)
    exported = torch.export.export(rnn, (x,), dynamic_shapes=({1: torch.export.Dim("T", min=2)},))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert any("elman_forward" in t for t in targets)
    for steps in (7, 12):
        x = torch.randn(2, steps, 3)
        for a, b in zip(exported.module()(x), rnn(x)):
            assert torch.allclose(a, b, atol=1e-6)


def test_compile_of_a_packed_batch_runs_the_engine_eagerly():
    torch._dynamo.reset()
    torch.manual_seed(3)
    rnn = rnnscope.nn.RNN(2, 3, bidirectional=True).double()
    x = torch.randn(5, 3, 2, dtype=torch.float64)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, [5, 2, 4], enforce_sorted=False)
    results = []
    for model in (rnn, torch.compile(rnn, backend="aot_eager")):
        rnn.zero_grad()
        out, h_n = model(packed)
        assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
        (out.data.sin().sum() + h_n.sum()).backward()
        results.append([out.data.detach(), h_n.detach()] + [p.grad.clone() for p in rnn.parameters()])
    for a, b in zip(*results):
        assert rel_err(b, a) <= TOL
