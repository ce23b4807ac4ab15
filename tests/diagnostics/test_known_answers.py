"""The issue's known answers: ×10 weights saturate; sigmoid over T = 200 vanishes and forgets;
relu with identity W_hh and small inputs does not vanish; relu with spectral radius 3 explodes."""

import pytest
import torch
from torch import nn

from rnnscope.diagnostics import summarize, traced_pass
from rnnscope.diagnostics.advice import rows_for
from rnnscope.nn import RNN


class ManyToOne(nn.Module):
    """An RNN with a linear readout of the last step."""

    def __init__(self, activation: str, hidden: int = 16):
        super().__init__()
        self.rnn = RNN(1, hidden, nonlinearity=activation, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.readout(self.rnn(x)[0][:, -1])  # (B, 1)


def diagnose(model, T, input_scale=1.0, seed=0, batch=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, 1, generator=g) * input_scale
    y = torch.randn(batch, 1, generator=g)
    trace, _ = traced_pass(model, x, y)
    (layer,) = summarize(trace)
    return layer, {row.check: row.verdict for row in rows_for(layer)}


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_times_ten_saturate(activation, seed):
    torch.manual_seed(seed)
    model = ManyToOne(activation)
    layer, verdicts = diagnose(model, T=50, batch=64)
    assert layer["saturation"]["saturated_fraction"] < 0.01 and verdicts["saturation"] == "ok"
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(10)
    layer, verdicts = diagnose(model, T=50, batch=64)
    assert layer["saturation"]["saturated_fraction"] > 0.05
    assert layer["saturation"]["slow_fraction"] > 0.4
    assert verdicts["saturation"] == "saturated"


def test_sigmoid_over_200_steps_vanishes_and_forgets():
    torch.manual_seed(0)
    layer, verdicts = diagnose(ManyToOne("sigmoid"), T=200)
    assert verdicts["gradient flow"] == "vanishing"
    assert layer["gradient_flow"]["growth_per_step"] < 0.5
    assert layer["horizon"]["horizon"] < 20  # far below T = 200
    assert verdicts["memory horizon"] == "short memory"


def test_relu_identity_small_inputs_does_not_vanish():
    torch.manual_seed(0)
    model = ManyToOne("relu")
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(torch.eye(16))
        model.rnn.bias_hh_l0.zero_()
        model.rnn.bias_ih_l0.fill_(0.01)
    layer, verdicts = diagnose(model, T=100, input_scale=0.01)
    assert verdicts["gradient flow"] == "healthy"
    assert layer["gradient_flow"]["growth_per_step"] > 0.97
    assert layer["horizon"]["horizon"] > 50


def test_relu_spectral_radius_three_explodes():
    torch.manual_seed(0)
    model = ManyToOne("relu")
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(16, 16))
        model.rnn.weight_hh_l0.copy_(3.0 * q)  # every eigenvalue has modulus 3
        assert torch.linalg.eigvals(model.rnn.weight_hh_l0).abs().max() > 2.9
    layer, verdicts = diagnose(model, T=30)
    assert verdicts["gradient flow"] == "exploding"
    assert layer["gradient_flow"]["growth_per_step"] > 1.3


def test_a_loss_at_every_step_shows_as_direct_share():
    torch.manual_seed(0)
    model = ManyToOne("tanh")
    many_to_one = diagnose(model, T=20)[0]["gradient_flow"]["direct_share"]
    x, y = torch.randn(8, 20, 1), torch.randn(8, 20, 1)
    trace, _ = traced_pass(model.rnn, x, y, loss_fn=lambda out, t: ((model.readout(out[0]) - t) ** 2).mean())
    every_step = summarize(trace)[0]["gradient_flow"]["direct_share"]
    assert many_to_one < 1e-4  # only the last step gets an error from the loss; the rest is carried back
    assert every_step > 0.5
