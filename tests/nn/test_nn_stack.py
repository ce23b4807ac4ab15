"""Under torch.compile a module's whole stack is one operator (nn/stack.py, engine/op.py): the same
outputs and gradients as eager in float64 (input, initial states and weights), for every cell,
depth, direction and bias setting; dropout in training keeps one operator per layer."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn

OPERATORS = {"RNN": "elman", "LSTM": "lstm", "GRU": "gru"}


class Captured:
    """A backend that keeps the FX graphs it is given and runs them through aot_eager."""

    def __init__(self) -> None:
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)


def _states(module: str, rnn, B: int):
    D = 2 if rnn.bidirectional else 1
    shape = (rnn.num_layers * D, B, rnn.hidden_size)
    make = lambda: torch.randn(shape, dtype=torch.float64, requires_grad=True)
    return (make(), make()) if module == "LSTM" else make()


@pytest.mark.parametrize("module", OPERATORS)
@pytest.mark.parametrize("layers, bidirectional, bias", [(3, False, True), (2, True, False)])
def test_the_stack_operator_gives_eager_outputs_and_gradients(module, layers, bidirectional, bias):
    torch._dynamo.reset()
    torch.manual_seed(layers)
    rnn = getattr(rnnscope.nn, module)(3, 4, layers, bias=bias, bidirectional=bidirectional,
                                       dropout=0.3).double().eval()  # eval: no dropout drawn
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = _states(module, rnn, 2)
    backend = Captured()
    results = []
    for model in (rnn, torch.compile(rnn, backend=backend, fullgraph=True)):
        for t in [x, *(h0 if isinstance(h0, tuple) else (h0,)), *rnn.parameters()]:
            t.grad = None
        out, state = model(x, h0)
        finals = state if isinstance(state, tuple) else (state,)
        loss = out.sin().sum() + sum((k + 2) * s.pow(2).sum() for k, s in enumerate(finals))
        loss.backward()
        inputs = [x, *(h0 if isinstance(h0, tuple) else (h0,))]
        results.append([out.detach(), *(s.detach() for s in finals), *(t.grad.clone() for t in inputs),
                        *(p.grad.clone() for p in rnn.parameters())])
    for a, b in zip(*results, strict=True):
        assert rel_err(b, a) <= 1e-9
    targets = [str(n.target) for n in backend.graphs[0].graph.nodes if n.op == "call_function"]
    assert sum(f"{OPERATORS[module]}_stack_forward" in t for t in targets) == 1
    assert not any(f"{OPERATORS[module]}_forward" in t for t in targets)  # no per-layer operator


@pytest.mark.parametrize("module", ["RNN", "GRU"])
def test_dropout_in_training_keeps_one_operator_per_layer(module):
    torch._dynamo.reset()
    rnn = getattr(rnnscope.nn, module)(3, 4, 2, dropout=0.5)
    backend = Captured()
    out, _ = torch.compile(rnn, backend=backend)(torch.randn(5, 2, 3))
    out.sum().backward()
    targets = [str(n.target) for n in backend.graphs[0].graph.nodes if n.op == "call_function"]
    assert sum(f"{OPERATORS[module]}_forward" in t for t in targets) == 2
    assert not any("_stack_forward" in t for t in targets)


@pytest.mark.parametrize("module", OPERATORS)
def test_no_graph_break_and_one_dynamic_recompile_over_sequence_lengths(module):
    torch._dynamo.reset()
    rnn = getattr(rnnscope.nn, module)(3, 4, 2, batch_first=True)
    readout = torch.nn.Linear(4, 1)

    def model(x):
        out, _ = rnn(x)
        return readout(out[:, -1])

    backend = Captured()
    compiled = torch.compile(model, backend=backend, fullgraph=True)  # fullgraph: a graph break fails
    for steps in (5, 7, 9, 30):  # the second length makes T dynamic; no graph after that
        compiled(torch.randn(2, steps, 3)).sum().backward()
    assert len(backend.graphs) == 2
