"""LSTM and GRU: the engine's forward and gradients against torch.nn and an unrolled autograd
reference, in float64 (relative error ≤ 1e-9)."""

from __future__ import annotations

import pytest
import torch
from gated_reference import unrolled
from hypothesis import given, settings
from hypothesis import strategies as st
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import Trace, gru_layer, lstm_layer, onednn
from rnnscope.engine.gated import VML_TANH_MAX
from rnnscope.errors import UserError

TOL = 1e-9
OURS = {"lstm": rnnscope.nn.LSTM, "gru": rnnscope.nn.GRU}
THEIRS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def states_of(hx):
    """The state tensors of an LSTM's (h, c) or a GRU's h, as a tuple."""
    return tuple(hx) if isinstance(hx, tuple) else (hx,)


def run(rnn, forward, x, hx, loss_fn):
    """Outputs and the gradients of every parameter, x and the initial states after loss_fn.backward()."""
    rnn.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    if hx is not None:
        hx = tuple(s.detach().clone().requires_grad_(True) for s in states_of(hx))
        hx = hx if len(hx) == 2 else hx[0]
    out, final = forward(rnn, x, hx)
    loss_fn(out, states_of(final)).backward()
    grads = {name: p.grad.clone() for name, p in rnn.named_parameters()}
    grads["x"] = x.grad.clone()
    if hx is not None:
        for k, s in enumerate(states_of(hx)):
            grads[f"state{k}"] = s.grad.clone()
    return [out.detach()] + [s.detach() for s in states_of(final)], grads


def engine(rnn, x, hx):
    return rnn(x, hx)


def loss_last_step(out, finals):
    return sum((s[-1] ** 2).sum() for s in finals) * 0.5  # many-to-one: only the last step (h_T and c_T)


def loss_every_step(out, finals):
    return torch.sin(out).pow(2).mean() + sum(s.sum() for s in finals)  # many-to-many, plus the final states


def check(rnn, x, hx, loss_fn, against=("unrolled", "torch")) -> None:
    """rnn's forward and gradients equal the unrolled reference's and torch.nn's on the same weights."""
    values, grads = run(rnn, engine, x, hx, loss_fn)
    references = {"unrolled": unrolled}
    if "torch" in against:
        cell = "lstm" if rnn.mode == "LSTM" else "gru"
        twin = THEIRS[cell](rnn.input_size, rnn.hidden_size, rnn.num_layers, bias=rnn.bias,
                            batch_first=rnn.batch_first, bidirectional=rnn.bidirectional).double()
        twin.load_state_dict(rnn.state_dict())
        references["torch"] = lambda _, x, hx: twin(x, hx)
    for name, forward in references.items():
        module = twin if name == "torch" else rnn
        ref_values, ref_grads = run(module, forward, x, hx, loss_fn)
        for value, ref in zip(values, ref_values):
            assert rel_err(value, ref) <= TOL, f"forward pass went wrong against {name}"
        assert ref_grads.keys() == grads.keys()
        for key, ref in ref_grads.items():
            assert rel_err(grads[key], ref) <= TOL, f"backward pass went wrong for {key} against {name}"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("loss_fn", [loss_last_step, loss_every_step])
def test_matches_torch_and_unrolled_autograd(cell, num_layers, loss_fn):
    torch.manual_seed(num_layers)
    rnn = OURS[cell](3, 5, num_layers).double()
    check(rnn, torch.randn(7, 4, 3, dtype=torch.float64), None, loss_fn)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "T, B, batch_first, with_hx, bidirectional",
    [(1, 3, False, False, False), (6, 1, True, True, False), (1, 1, True, True, False),
     (5, 2, False, True, True), (4, 3, True, False, True)],
)
def test_shapes_and_options(cell, T, B, batch_first, with_hx, bidirectional):
    torch.manual_seed(T * 10 + B)
    rnn = OURS[cell](2, 4, 2, batch_first=batch_first, bidirectional=bidirectional).double()
    x = torch.randn((B, T, 2) if batch_first else (T, B, 2), dtype=torch.float64)
    D = 2 if bidirectional else 1
    hx = None
    if with_hx:
        hx = tuple(torch.randn(2 * D, B, 4, dtype=torch.float64) for _ in range(2 if cell == "lstm" else 1))
        hx = hx if cell == "lstm" else hx[0]
    check(rnn, x, hx, loss_every_step)
    check(rnn, x, hx, loss_last_step)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unbatched_input_and_no_bias(cell):
    torch.manual_seed(1)
    rnn = OURS[cell](3, 4, 2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    hx = tuple(torch.randn(2, 4, dtype=torch.float64) for _ in range(2)) if cell == "lstm" else torch.randn(2, 4, dtype=torch.float64)
    out, _ = rnn(x, hx)
    assert out.shape == (5, 4)
    check(rnn, x, hx, loss_every_step)
    plain = OURS[cell](3, 4, bias=False).double()
    assert [n for n, _ in plain.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    check(plain, torch.randn(4, 2, 3, dtype=torch.float64), None, loss_every_step)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_large_layers_take_the_sigmoid_tanh(cell):
    """B·H above VML_TANH_MAX: tanh is computed as 2σ(2x) − 1; still exact to float64 round-off."""
    torch.manual_seed(5)
    H = 48
    B = VML_TANH_MAX // H + 1
    rnn = OURS[cell](2, H).double()
    check(rnn, torch.randn(3, B, 2, dtype=torch.float64), None, loss_every_step, against=("torch",))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("through_onednn", [True, False])
def test_large_float32_steps_through_onednn_or_addmm_match_float64_torch(cell, through_onednn, monkeypatch):
    """Steps of ≥ onednn.MIN_MACS multiply-adds in float32: their matmuls go to oneDNN (engine/onednn.py;
    the LSTM's compiled loop adds h_{t-1} W_hhᵀ and the biases in its gate pass) or stay addmm. Both
    equal torch's module in float64 to float32 rounding, with a Trace recording the whole weighted
    sums, and on a packed batch."""
    monkeypatch.setattr(onednn, "ENABLED", through_onednn)
    torch.manual_seed(8)
    B, H = 96, 256
    assert onednn.use_for(torch.zeros(1), B, H, 3 * H) == (through_onednn and onednn.AVAILABLE)
    ours = OURS[cell](3, H)
    reference = getattr(torch.nn, cell.upper())(3, H).double()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(3, B, 3)
    with Trace() as trace:
        out, finals = ours(x)
        (out.sum() + states_of(finals)[-1].sum()).backward()
    ref_out, ref_finals = reference(x.double())
    (ref_out.sum() + states_of(ref_finals)[-1].sum()).backward()
    for value, ref in zip((out, *states_of(finals)), (ref_out, *states_of(ref_finals))):
        assert rel_err(value.double(), ref) <= 1e-5
    for p, q in zip(ours.parameters(), reference.parameters()):
        assert rel_err(p.grad.double(), q.grad) <= 1e-4
    # h_0 = 0: the first gate's weighted sum at t = 1 is the input projection and both biases
    a_1 = x.double()[0] @ reference.weight_ih_l0[:H].t() + reference.bias_ih_l0[:H] + reference.bias_hh_l0[:H]
    first_gate = "i" if cell == "lstm" else "r"
    assert rel_err(trace.layer("layer0").preactivations[first_gate][0].double(), a_1) <= 1e-5

    lengths = [3] * 60 + [2] * 36
    out, _ = ours(torch.nn.utils.rnn.pack_padded_sequence(x, lengths))
    ref_out, _ = reference(torch.nn.utils.rnn.pack_padded_sequence(x.double(), lengths))
    assert rel_err(out.data.double(), ref_out.data) <= 1e-5


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_mean_reduction_is_sum_over_T(cell):
    torch.manual_seed(3)
    T = 9
    summed = OURS[cell](3, 5, 2).double()
    averaged = OURS[cell](3, 5, 2, time_reduction="mean").double()
    averaged.load_state_dict(summed.state_dict())
    x = torch.randn(T, 4, 3, dtype=torch.float64)
    _, g_sum = run(summed, engine, x, None, loss_every_step)
    _, g_mean = run(averaged, engine, x, None, loss_every_step)
    for name, _ in summed.named_parameters():
        assert rel_err(g_mean[name], g_sum[name] / T) <= 1e-12, name
    assert rel_err(g_mean["x"], g_sum["x"]) <= 1e-12  # only the weight adjustments are averaged


def test_finite_differences_on_tiny_layers():
    torch.manual_seed(4)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0, c0 = (torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    lstm, gru = rnnscope.nn.LSTM(2, 3).double(), rnnscope.nn.GRU(2, 3).double()

    def lstm_all(x, h0, c0, *weights):
        out, h_n, c_n = lstm_layer(x, h0, c0, *weights)
        return out, c_n

    assert torch.autograd.gradcheck(lstm_all, (x, h0, c0, *lstm.all_weights[0]), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda x, h0, *w: gru_layer(x, h0, *w)[0], (x, h0, *gru.all_weights[0]),
                                    eps=1e-6, atol=1e-8)


@settings(max_examples=12, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    T=st.integers(1, 8),
    B=st.integers(1, 4),
    I=st.integers(1, 5),
    H=st.integers(1, 6),
    num_layers=st.integers(1, 3),
    batch_first=st.booleans(),
    bidirectional=st.booleans(),
    every_step=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_random_shapes(cell, T, B, I, H, num_layers, batch_first, bidirectional, every_step, seed):
    torch.manual_seed(seed)
    rnn = OURS[cell](I, H, num_layers, batch_first=batch_first, bidirectional=bidirectional).double()
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    check(rnn, x, None, loss_every_step if every_step else loss_last_step, against=("unrolled",))


def test_layer_errors_name_the_problem():
    x, h0, W = torch.randn(2, 1, 1), torch.zeros(1, 1), torch.randn(4, 1)
    with pytest.raises(UserError, match="time_reduction"):
        lstm_layer(x, h0, h0, W, W, time_reduction="max")
    with pytest.raises(ValueError, match="at least one time step"):
        gru_layer(x[:0], h0, W[:3], W[:3])
    with pytest.raises(ValueError, match=r"W_hh \(3·H, H\)"):
        gru_layer(x, h0, W, W)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("I", [1, 3])  # with one input, (4H, 1) has two contiguous stride patterns
def test_parameter_gradients_have_the_parameters_strides(cell, I):
    """Every weight's gradient, as the engine returns it (before AccumulateGrad would fix its
    layout), is laid out as the weight: DDP's hooks see it raw, and copy and warn about a gradient
    whose strides differ from its bucket's."""
    torch.manual_seed(9)
    rnn = OURS[cell](I, 5, 2, bidirectional=True)
    out, _ = rnn(torch.randn(4, 2, I))
    names, params = zip(*rnn.named_parameters())
    for name, p, grad in zip(names, params, torch.autograd.grad(out.sum(), params)):
        assert grad.stride() == p.stride(), name
