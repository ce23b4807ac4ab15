"""The layer pipeline: gradients equal single-process training, traffic equals the formula."""

from __future__ import annotations

import pytest
import torch

from model_reference import make_batch, make_net, reference_grads
from testing_utils import rel_err
from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.costs.layout import bubble_fraction, chunk_bounds, split_layers
from rnnscope.parallel.pipeline import PipelineStage
from rnnscope.costs.traffic import RNNShape, pipeline_traffic


def test_split_layers_is_contiguous_and_even():
    assert split_layers(5, 2) == [range(0, 3), range(3, 5)]
    assert split_layers(4, 4) == [range(k, k + 1) for k in range(4)]
    assert sum(len(r) for r in split_layers(7, 3)) == 7


def test_fewer_layers_than_stages_is_refused_with_the_arithmetic():
    with pytest.raises(UserError, match=r"--model.layers \(2\) < pipeline stages \(3\)"):
        split_layers(2, 3)


def test_chunks_and_bubble():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert bubble_fraction(2, 1) == 0.5
    assert bubble_fraction(4, 97) == pytest.approx(3 / 100)
    with pytest.raises(UserError, match="chunk"):
        chunk_bounds(10, 0)


def _equivalence(rank, world, layers, activation, every_step, T, chunk, time_reduction,
                 cell="elman"):
    torch.manual_seed(0)
    net = make_net(layers, 6, activation, every_step, time_reduction, cell=cell)
    x, y = make_batch(4, T, every_step)
    expected = reference_grads(net, x, y)
    stage = PipelineStage(net, Communicator(), chunk)
    y_hat, h_n = stage.forward(x, None, build_graph=True)
    if stage.is_last:
        from rnnscope.train.metrics import loss_fn
        loss = loss_fn("regression", y_hat, y)
        grad = torch.autograd.grad(loss, y_hat, retain_graph=True)[0]
        stage.backward(y_hat, grad)
    else:
        assert y_hat is None
        stage.backward(None, None)
    owned = stage.owned_names(net)
    assert owned, "every stage owns a layer"
    params = dict(net.named_parameters())
    for name in owned:
        err = rel_err(params[name].grad, expected[name])
        assert err <= 1e-10, f"rank {rank} {name}: rel err {err:.2e}"
    for name in set(params) - set(owned):
        assert params[name].grad is None, f"rank {rank} computed {name} it does not own"
    # measured traffic: the formula's bytes and messages across the one boundary
    records = stage.comm.ledger.pending()
    sent = [r for r in records if r.op == "send"]
    b, C = 8, -(-T // chunk)
    plan = pipeline_traffic(RNNShape(3, 6, layers, T, 4, 2, b), world, chunk)
    tags = {"pp-act"} if stage.is_first else {"pp-grad"} if stage.is_last else {"pp-act", "pp-grad"}
    assert {r.tag for r in sent} == tags  # an inner stage sends both ways, an end stage one
    assert sum(r.payload_bytes for r in sent) == len(tags) * T * 4 * 6 * b
    assert len(sent) == len(tags) * C
    sends = [t for t in plan.transfers if t.op == "send"]  # the boundaries (ŷ's broadcast aside)
    assert sum(t.payload_bytes * t.count for t in sends) == 2 * (world - 1) * T * 4 * 6 * b
    assert sum(t.count for t in sends) == 2 * (world - 1) * C


CASES = [  # layers, activation, every_step, T, chunk, time_reduction
    (2, "tanh", True, 100, 1, "sum"),
    (3, "sigmoid", False, 23, 5, "mean"),
    (4, "sigmoid", True, 17, 4, "sum"),
]


GATED_CASES = [  # layers, every_step, T, chunk, time_reduction, cell: only h_t crosses a boundary
    (2, True, 20, 4, "sum", "lstm"),
    (3, False, 13, 5, "mean", "lstm"),
    (2, True, 20, 1, "mean", "gru"),
    (3, False, 13, 4, "sum", "gru"),
]


def _all_cases(rank, world):
    for case in CASES:
        _equivalence(rank, world, *case)


def _gated_cases(rank, world):
    for layers, every_step, T, chunk, time_reduction, cell in GATED_CASES:
        _equivalence(rank, world, layers, "tanh", every_step, T, chunk, time_reduction, cell)


@pytest.mark.distributed
def test_pipeline_gradients_equal_single_process(ranks):
    """2 to 4 layers, tanh and sigmoid, T up to 100, chunks of 1, 4 and 5 steps, sum and mean."""
    ranks(_all_cases, 2, timeout_s=90)


@pytest.mark.distributed
def test_gated_pipeline_gradients_equal_single_process(ranks):
    """LSTM and GRU stages: c_t stays in its stage, the gradients and the traffic are exact."""
    ranks(_gated_cases, 2, timeout_s=90)
