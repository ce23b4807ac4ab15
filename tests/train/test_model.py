"""The trained network: rnnscope.nn.RNN + readout, and the initial weights the config asks for."""

from __future__ import annotations

import math

import pytest
import torch

from rnnscope.nn import RNN
from rnnscope.train.config import load_config
from rnnscope.train.model import SequenceModel, grad_norm, initialize


def model(*overrides: str, every_step: bool = True) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(3, 2, load_config(None, list(overrides)).model, every_step)


def test_uses_rnnscope_rnn_with_the_configured_activation_and_shapes():
    m = model("--model.hidden", "5", "--model.layers", "2", "--model.activation", "tanh")
    assert isinstance(m.rnn, RNN) and m.rnn.nonlinearity == "tanh" and m.rnn.num_layers == 2
    y_hat, h_n = m(torch.randn(4, 7, 3))
    assert y_hat.shape == (4, 7, 2) and h_n.shape == (2, 4, 5)
    y_last, _ = model(every_step=False)(torch.randn(4, 7, 3))
    assert y_last.shape == (4, 2)


def test_identity_and_orthogonal_init():
    m = model("--model.hidden", "6")
    initialize(m, "identity", 1.0)
    assert torch.equal(m.rnn.weight_hh_l0, torch.eye(6)) and torch.equal(m.rnn.bias_ih_l0, torch.zeros(6))
    initialize(m, "orthogonal", 1.0)
    W = m.rnn.weight_hh_l0
    torch.testing.assert_close(W @ W.T, torch.eye(6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("init", ["default", "xavier", "orthogonal"])
def test_scale_multiplies_the_weights_not_the_biases(init):
    a, b = model(), model()
    torch.manual_seed(1)
    initialize(a, init, 1.0)
    torch.manual_seed(1)
    initialize(b, init, 10.0)
    for name in ("weight_ih_l0", "weight_hh_l0"):
        torch.testing.assert_close(getattr(b.rnn, name), 10 * getattr(a.rnn, name))
    torch.testing.assert_close(b.rnn.bias_hh_l0, a.rnn.bias_hh_l0)


def test_large_init_scale_saturates_sigmoid_neurons():
    # the chapter's point: too large initial weights push z past ±5.5 where σ' is negligible
    m = model("--model.hidden", "16")
    initialize(m, "default", 40.0)
    h, _ = m.rnn(torch.randn(8, 20, 3))
    saturated = ((h < 0.0041) | (h > 1 - 0.0041)).float().mean()  # σ(z) for |z| > 5.5
    assert saturated > 0.5


def test_grad_norm_is_the_global_l2_norm():
    m = model()
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    assert grad_norm(m) == pytest.approx(math.sqrt(sum(p.numel() for p in m.parameters())))
    next(m.parameters()).grad[0] = float("nan")
    assert math.isnan(grad_norm(m))
