"""The hidden-unit split: gradients equal single-process training, traffic equals the formula."""

from __future__ import annotations

import pytest
import torch

from model_reference import make_batch, make_net, reference_grads
from testing_utils import rel_err
from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.costs.layout import split_hidden
from rnnscope.parallel.gated_split import GatedHiddenSplitStage
from rnnscope.parallel.hidden_split import HiddenSplitStage
from rnnscope.costs.collectives import collective_cost
from rnnscope.costs.traffic import RNNShape, hidden_split_traffic
from rnnscope.train.metrics import loss_fn


def test_split_must_divide_hidden():
    assert split_hidden(8, 2) == 4
    with pytest.raises(UserError, match=r"hidden\(6\) % hs\(4\) = 2"):
        split_hidden(6, 4)


def _equivalence(rank, world, layers, activation, every_step, T, time_reduction, hidden=8,
                 cell="elman"):
    net = make_net(layers, hidden, activation, every_step, time_reduction, cell=cell)
    B, H, b = 3, hidden, 8
    x, y = make_batch(B, T, every_step)
    expected = reference_grads(net, x, y)
    y_ref = net(x)[0].detach()
    comm = Communicator()
    stage = HiddenSplitStage(net, comm) if cell == "elman" else GatedHiddenSplitStage(net, comm)
    y_hat, h_n = stage.forward(x, None, build_graph=True)
    assert rel_err(y_hat.detach(), y_ref) <= 1e-12, "forward pass went well"
    loss = loss_fn("regression", y_hat, y)
    stage.backward(y_hat, torch.autograd.grad(loss, y_hat, retain_graph=True)[0])
    rows = stage.rows
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    for layer, weights in enumerate(stage.weights):
        for kind, w in zip(names, weights):
            name = f"rnn.{kind}_l{layer}"
            err = rel_err(w.grad, expected[name][rows])
            assert err <= 1e-10, f"rank {rank} {name}: rel err {err:.2e}"
    for name in ("readout.weight", "readout.bias"):
        param = dict(net.named_parameters())[name]
        assert rel_err(param.grad, expected[name]) <= 1e-10
    # per step and layer one all-gather (hs-act) and one reduce-scatter (hs-grad) of B·H·b
    records = comm.ledger.pending()
    gathers = [r for r in records if r.tag == "hs-act"]
    scatters = [r for r in records if r.tag == "hs-grad"]
    assert len(gathers) == T * layers and len(scatters) == T * layers + (layers - 1)
    assert all(r.payload_bytes == B * H * b for r in gathers)
    per_step = collective_cost("all_gather", B * H * b, world, element_size=b)
    assert gathers[0].wire_bytes_sent == per_step.sent_bytes == (world - 1) * B * H * b // world
    plan = hidden_split_traffic(RNNShape(3, H, layers, T, B, 2, b), world)
    assert sum(r.payload_bytes for r in gathers + scatters) == sum(
        t.payload_bytes * t.count for t in plan.transfers)
    comm.ledger.close_step(1)


CASES = [  # layers, activation, every_step, T, time_reduction
    (2, "tanh", True, 100, "sum"),
    (3, "sigmoid", False, 20, "mean"),
    (4, "sigmoid", True, 9, "sum"),
]


GATED_CASES = [  # layers, every_step, T, time_reduction, cell: each rank H/K units of every gate
    (2, True, 15, "sum", "lstm"),
    (3, False, 9, "mean", "lstm"),
    (2, True, 15, "mean", "gru"),
    (3, False, 9, "sum", "gru"),
]


def _all_cases(rank, world):
    for case in CASES:
        _equivalence(rank, world, *case)


def _gated_cases(rank, world):
    for layers, every_step, T, time_reduction, cell in GATED_CASES:
        _equivalence(rank, world, layers, "tanh", every_step, T, time_reduction, cell=cell)


@pytest.mark.distributed
def test_hidden_split_gradients_equal_single_process(ranks):
    """2 to 4 layers, tanh and sigmoid, T up to 100, sum and mean over time, on 2 ranks."""
    ranks(_all_cases, 2, timeout_s=90)


@pytest.mark.distributed
def test_gated_hidden_split_gradients_equal_single_process(ranks):
    """LSTM and GRU: h_t all-gathered, c_t local, the same bytes and messages as Elman's."""
    ranks(_gated_cases, 2, timeout_s=90)
