"""The engine's forward and gradients against autograd on an unrolled reference, in float64."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rnn_reference import unrolled_rnn
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import elman_layer
from rnnscope.errors import UserError

TOL = 1e-9


def grads_of(rnn, x, h0, loss_fn, forward):
    """Outputs and the gradients of every parameter, x and h0 after loss_fn(output, h_n).backward()."""
    rnn.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    h0 = None if h0 is None else h0.detach().clone().requires_grad_(True)
    out, h_n = forward(rnn, x, h0)
    loss_fn(out, h_n).backward()
    grads = {name: p.grad.clone() for name, p in rnn.named_parameters()}
    grads["x"] = x.grad.clone()
    if h0 is not None:
        grads["h0"] = h0.grad.clone()
    return out.detach(), h_n.detach(), grads


def engine_forward(rnn, x, h0):
    return rnn(x, h0)


def loss_last_step(out, h_n):
    return (h_n[-1] ** 2).sum() * 0.5  # many-to-one: the loss sees only the last step


def loss_every_step(out, h_n):
    return torch.sin(out).pow(2).mean() + h_n.sum()  # many-to-many, plus a term on h_n


def check_against_reference(rnn, x, h0, loss_fn) -> None:
    out, h_n, grads = grads_of(rnn, x, h0, loss_fn, engine_forward)
    ref_out, ref_h_n, ref_grads = grads_of(rnn, x, h0, loss_fn, unrolled_rnn)
    assert rel_err(out, ref_out) <= TOL, "forward pass went wrong"
    assert rel_err(h_n, ref_h_n) <= TOL
    for name, ref in ref_grads.items():
        assert rel_err(grads[name], ref) <= TOL, f"backward pass went wrong for {name}"


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("loss_fn", [loss_last_step, loss_every_step])
def test_matches_unrolled_autograd(nonlinearity, num_layers, loss_fn):
    torch.manual_seed(num_layers)
    rnn = rnnscope.nn.RNN(3, 5, num_layers, nonlinearity=nonlinearity).double()
    x = torch.randn(7, 4, 3, dtype=torch.float64)
    check_against_reference(rnn, x, None, loss_fn)


@pytest.mark.parametrize(
    "T, B, batch_first, with_h0, bidirectional",
    [(1, 3, False, False, False), (6, 1, True, True, False), (1, 1, True, True, False),
     (5, 2, False, True, True), (4, 3, True, False, True)],
)
def test_shapes_and_options(T, B, batch_first, with_h0, bidirectional):
    torch.manual_seed(T * 10 + B)
    rnn = rnnscope.nn.RNN(2, 4, 2, batch_first=batch_first, bidirectional=bidirectional).double()
    x = torch.randn((B, T, 2) if batch_first else (T, B, 2), dtype=torch.float64)
    D = 2 if bidirectional else 1
    h0 = torch.randn(2 * D, B, 4, dtype=torch.float64) if with_h0 else None
    check_against_reference(rnn, x, h0, loss_every_step)
    check_against_reference(rnn, x, h0, loss_last_step)


def test_unbatched_input():
    torch.manual_seed(1)
    rnn = rnnscope.nn.RNN(3, 4, 2, nonlinearity="sigmoid").double()
    x, h0 = torch.randn(5, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out, h_n = rnn(x, h0)
    assert out.shape == (5, 4) and h_n.shape == (2, 4)
    check_against_reference(rnn, x, h0, loss_every_step)


def test_no_bias():
    torch.manual_seed(2)
    rnn = rnnscope.nn.RNN(3, 4, bias=False).double()
    assert [n for n, _ in rnn.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    check_against_reference(rnn, torch.randn(4, 2, 3, dtype=torch.float64), None, loss_every_step)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
def test_mean_reduction_is_sum_over_T(nonlinearity):
    torch.manual_seed(3)
    T = 9
    summed = rnnscope.nn.RNN(3, 5, 2, nonlinearity=nonlinearity).double()
    averaged = rnnscope.nn.RNN(3, 5, 2, nonlinearity=nonlinearity, time_reduction="mean").double()
    averaged.load_state_dict(summed.state_dict())
    x = torch.randn(T, 4, 3, dtype=torch.float64)
    _, _, g_sum = grads_of(summed, x, None, loss_every_step, engine_forward)
    _, _, g_mean = grads_of(averaged, x, None, loss_every_step, engine_forward)
    for name, _ in summed.named_parameters():
        assert rel_err(g_mean[name], g_sum[name] / T) <= 1e-12, name
    assert rel_err(g_mean["x"], g_sum["x"]) <= 1e-12  # only the weight adjustments are averaged


def test_finite_differences_on_a_tiny_network():
    torch.manual_seed(4)
    rnn = rnnscope.nn.RNN(2, 3, 2, nonlinearity="sigmoid").double()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    W_ih, W_hh, b_ih, b_hh = rnn.all_weights[0]

    def layer0(x, h0, W_ih, W_hh, b_ih, b_hh):
        return elman_layer(x, h0[0], W_ih, W_hh, b_ih, b_hh, activation="sigmoid")

    assert torch.autograd.gradcheck(layer0, (x, h0, W_ih, W_hh, b_ih, b_hh), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda x, h0: rnn(x, h0)[0], (x, h0), eps=1e-6, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 12),
    B=st.integers(1, 5),
    I=st.integers(1, 6),
    H=st.integers(1, 7),
    num_layers=st.integers(1, 3),
    nonlinearity=st.sampled_from(["tanh", "relu", "sigmoid"]),
    batch_first=st.booleans(),
    every_step=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_random_shapes(T, B, I, H, num_layers, nonlinearity, batch_first, every_step, seed):
    torch.manual_seed(seed)
    rnn = rnnscope.nn.RNN(I, H, num_layers, nonlinearity=nonlinearity, batch_first=batch_first).double()
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    check_against_reference(rnn, x, None, loss_every_step if every_step else loss_last_step)


def test_unknown_activation_lists_choices():
    x, h0, W = torch.randn(2, 1, 1), torch.zeros(1, 1), torch.randn(1, 1)
    with pytest.raises(UserError, match="relu, sigmoid, tanh"):
        elman_layer(x, h0, W, W, activation="softsign")
    with pytest.raises(UserError, match="time_reduction"):
        elman_layer(x, h0, W, W, time_reduction="max")
