"""rnnscope.nn.RNN is a drop-in for torch.nn.RNN: same constructor, forward, names, numbers."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err, requires_cuda

import rnnscope.nn

TOL = 1e-9


def run_both(ours, theirs, x, h0, every_step):
    results = []
    for rnn in (ours, theirs):
        rnn.zero_grad()
        xi = x.detach().clone().requires_grad_(True)
        out, h_n = rnn(xi, h0)
        loss = out.pow(2).sum() if every_step else h_n[-1].sum()
        loss.backward()
        grads = [p.grad.clone() for p in rnn.parameters()] + [xi.grad.clone()]
        results.append((out.detach(), h_n.detach(), grads))
    return results


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("every_step", [False, True])
def test_equals_torch_nn_rnn(nonlinearity, num_layers, batch_first, bidirectional, every_step):
    torch.manual_seed(0)
    kwargs = dict(nonlinearity=nonlinearity, batch_first=batch_first, bidirectional=bidirectional)
    theirs = torch.nn.RNN(3, 6, num_layers, **kwargs).double()
    ours = rnnscope.nn.RNN(3, 6, num_layers, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())  # unchanged: same names and shapes
    x = torch.randn((2, 8, 3) if batch_first else (8, 2, 3), dtype=torch.float64)
    h0 = torch.randn(num_layers * (1 + bidirectional), 2, 6, dtype=torch.float64)
    for given_h0 in (None, h0):
        (o1, h1, g1), (o2, h2, g2) = run_both(ours, theirs, x, given_h0, every_step)
        assert rel_err(o1, o2) <= TOL and rel_err(h1, h2) <= TOL
        for a, b in zip(g1, g2):
            assert rel_err(a, b) <= TOL


def test_same_seed_gives_torch_initial_weights():
    torch.manual_seed(7)
    theirs = torch.nn.RNN(4, 5, 2, bidirectional=True)
    torch.manual_seed(7)
    ours = rnnscope.nn.RNN(4, 5, 2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


def test_torch_loads_our_state_dict_too():
    ours = rnnscope.nn.RNN(2, 3, 2, nonlinearity="relu")
    theirs = torch.nn.RNN(2, 3, 2, nonlinearity="relu")
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 1, 2)
    assert torch.allclose(ours(x)[0], theirs(x)[0], atol=1e-6)


def test_float32_trains_with_torch_optimizers_and_clipping():
    torch.manual_seed(1)
    rnn = rnnscope.nn.RNN(1, 8, nonlinearity="sigmoid", batch_first=True)
    readout = torch.nn.Linear(8, 1)
    params = list(rnn.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=0.05)
    x = torch.rand(16, 10, 1)
    y = x.sum(dim=1)  # many-to-one: sum of the sequence
    losses = []
    for _ in range(60):
        opt.zero_grad()
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(readout(out[:, -1]), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    assert rnn.weight_hh_l0.grad.dtype == torch.float32
    assert losses[-1] < 0.1 * losses[0]


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(2)
    rnn = rnnscope.nn.RNN(3, 16, 2, dropout=0.5)
    x = torch.randn(4, 2, 3)
    rnn.eval()
    assert torch.equal(rnn(x)[0], rnn(x)[0])
    rnn.train()
    assert not torch.equal(rnn(x)[0], rnn(x)[0])
    with pytest.warns(UserWarning, match="num_layers=1"):
        rnnscope.nn.RNN(3, 4, dropout=0.2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nonlinearity="gelu"), "Unknown nonlinearity"),
        (dict(proj_size=2), "proj_size"),
        (dict(num_layers=0), "num_layers"),
        (dict(dropout=1.5), "dropout"),
        (dict(time_reduction="max"), "time_reduction"),
    ],
)
def test_unsupported_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnnscope.nn.RNN(3, 4, **kwargs)


def test_bad_inputs_raise_like_torch():
    rnn = rnnscope.nn.RNN(3, 4)
    with pytest.raises(RuntimeError, match="input_size"):
        rnn(torch.randn(5, 2, 7))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        rnn(torch.randn(5, 2, 3), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="2D or 3D"):
        rnn(torch.randn(5, 2, 3, 1))
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 7), [5, 3])
    with pytest.raises(RuntimeError, match="input_size"):
        rnn(packed)


def test_repr_names_the_sigmoid():
    assert "nonlinearity='sigmoid'" in repr(rnnscope.nn.RNN(1, 1, nonlinearity="sigmoid"))


@requires_cuda
def test_cuda_matches_cpu():
    torch.manual_seed(3)
    cpu = rnnscope.nn.RNN(3, 8, 2).double()
    gpu = rnnscope.nn.RNN(3, 8, 2).double().cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    out_cpu, _ = cpu(x)
    out_gpu, _ = gpu(x.cuda())
    out_cpu.sum().backward()
    out_gpu.sum().backward()
    assert rel_err(out_gpu.cpu(), out_cpu) <= TOL
    for a, b in zip(cpu.parameters(), gpu.parameters()):
        assert rel_err(b.grad.cpu(), a.grad) <= TOL
