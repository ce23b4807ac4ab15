"""Trace records the engine's own per-step numbers, and nothing when it is off."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import Trace, get_activation


def traced_step(weight_adjustments=True, time_reduction="sum"):
    torch.manual_seed(0)
    rnn = rnnscope.nn.RNN(2, 3, 2, nonlinearity="sigmoid", time_reduction=time_reduction).double()
    x = torch.randn(5, 4, 2, dtype=torch.float64)
    with Trace(weight_adjustments=weight_adjustments) as trace:
        out, h_n = rnn(x)
        (out.pow(2).sum() + h_n.sum()).backward()
    return rnn, x, out, trace


def test_records_every_layer_and_step():
    rnn, x, out, trace = traced_step()
    assert [layer.name for layer in trace.layers] == ["layer0", "layer1"]
    top = trace.layer("layer1")
    assert top.steps == 5 and top.z.shape == top.h.shape == top.dh.shape == top.delta.shape == (5, 4, 3)
    assert torch.equal(top.h, out.detach())
    assert torch.allclose(top.h, torch.sigmoid(top.z), atol=0, rtol=1e-15)
    assert torch.equal(trace.layer("layer1").x, trace.layer("layer0").h)
    # the error term is the error times the activation derivative, per step
    sigmoid = get_activation("sigmoid")
    assert rel_err(top.delta, top.dh * sigmoid.derivative(top.z)) <= 1e-14


@pytest.mark.parametrize("time_reduction", ["sum", "mean"])
def test_per_step_adjustments_accumulate_to_the_gradients(time_reduction):
    rnn, _, _, trace = traced_step(time_reduction=time_reduction)
    scale = 1 / 5 if time_reduction == "mean" else 1.0
    for k in range(2):
        layer = trace.layer(f"layer{k}")
        assert rel_err(scale * layer.dW_hh_steps.sum(0), getattr(rnn, f"weight_hh_l{k}").grad) <= 1e-12
        assert rel_err(scale * layer.dW_ih_steps.sum(0), getattr(rnn, f"weight_ih_l{k}").grad) <= 1e-12
        assert rel_err(scale * layer.db_steps.sum(0), getattr(rnn, f"bias_hh_l{k}").grad) <= 1e-12


def test_dh_is_the_gradient_with_respect_to_each_hidden_state():
    torch.manual_seed(1)
    rnn = rnnscope.nn.RNN(2, 3, nonlinearity="tanh").double()
    x = torch.randn(6, 2, 2, dtype=torch.float64)
    with Trace() as trace:
        out, _ = rnn(x)
        out.retain_grad()
        out[-1].pow(2).sum().backward()
    layer = trace.layer("layer0")
    assert layer.dW_hh_steps is None  # only on request
    # at the last step nothing comes from the future: dh_T is the output error itself
    assert rel_err(layer.dh[-1], out.grad[-1]) <= 1e-14
    # earlier steps: the loss touches only h_T, so dh_t is all propagated error
    expected = torch.mm(layer.delta[-1], rnn.weight_hh_l0.detach())
    assert rel_err(layer.dh[-2], expected) <= 1e-14


def test_no_trace_records_nothing():
    torch.manual_seed(2)
    rnn = rnnscope.nn.RNN(2, 3)
    with Trace() as trace:
        pass
    rnn(torch.randn(4, 1, 2))[0].sum().backward()
    assert trace.layers == []
    with pytest.raises(KeyError, match="recorded: none"):
        trace.layer("layer0")


def test_bidirectional_names():
    rnn = rnnscope.nn.RNN(2, 3, bidirectional=True)
    with Trace() as trace:
        rnn(torch.randn(4, 1, 2))
    assert [layer.name for layer in trace.layers] == ["layer0", "layer0_reverse"]
