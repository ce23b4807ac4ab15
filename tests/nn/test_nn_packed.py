"""PackedSequence through rnnscope.nn.RNN, LSTM and GRU: torch.nn's numbers, each sequence stopping
at its own length, one matmul per step on the running rows, and a Trace that marks the padded steps."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils._python_dispatch import TorchDispatchMode

import rnnscope.nn
from rnnscope.engine import Trace, elman_layer, gru_layer, lstm_layer
from rnnscope.engine.packed import PackedLayout

TOL = 1e-9
LENGTHS = [3, 6, 1, 4, 6]


def _states(h0):
    """h0, or each of an LSTM's (h0, c0), as a tuple."""
    return h0 if isinstance(h0, tuple) else (h0,)


def packed_run(rnn, x, lengths, h0, enforce_sorted=False):
    """Padded output, the final state(s) and every gradient (parameters, x, the initial state(s)) of
    a loss on all outputs; h0 is a tensor, an LSTM's (h0, c0) or None."""
    rnn.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    if h0 is not None:
        h0 = tuple(s.detach().clone().requires_grad_(True) for s in _states(h0))
        h0 = h0 if isinstance(rnn, (torch.nn.LSTM, rnnscope.nn.LSTM)) else h0[0]
    out, h_n = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=enforce_sorted), h0)
    padded, out_lengths = pad_packed_sequence(out, batch_first=True)
    assert out_lengths.tolist() == list(lengths)
    (padded.sin().sum() + sum(s.pow(2).sum() * (k + 1) for k, s in enumerate(_states(h_n)))).backward()
    grads = [p.grad.clone() for p in rnn.parameters()] + [x.grad]
    grads += [s.grad for s in _states(h0)] if h0 is not None else []
    return [padded.detach(), *(s.detach() for s in _states(h_n))] + grads


MODULES = {"RNN": (torch.nn.RNN, rnnscope.nn.RNN), "LSTM": (torch.nn.LSTM, rnnscope.nn.LSTM),
           "GRU": (torch.nn.GRU, rnnscope.nn.GRU)}
CASES = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]


@pytest.mark.parametrize("module, nonlinearity", CASES)
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (1, True), (3, True)])
@pytest.mark.parametrize("given_h0", [False, True])
def test_packed_equals_torch_nn_in_float64(module, nonlinearity, num_layers, bidirectional, given_h0):
    torch.manual_seed(num_layers)
    kwargs = dict(bidirectional=bidirectional, batch_first=True)
    if nonlinearity is not None:
        kwargs["nonlinearity"] = nonlinearity
    theirs_cls, ours_cls = MODULES[module]
    theirs = theirs_cls(3, 4, num_layers, **kwargs).double()
    ours = ours_cls(3, 4, num_layers, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(len(LENGTHS), max(LENGTHS), 3, dtype=torch.float64)
    h0 = None
    if given_h0:
        shape = (num_layers * (1 + bidirectional), len(LENGTHS), 4)
        h0 = torch.randn(shape, dtype=torch.float64)
        if module == "LSTM":
            h0 = (h0, torch.randn(shape, dtype=torch.float64))
    for a, b in zip(packed_run(ours, x, LENGTHS, h0), packed_run(theirs, x, LENGTHS, h0), strict=True):
        assert rel_err(a, b) <= TOL


@pytest.mark.parametrize("module", MODULES)
def test_sorted_batch_and_no_bias_equal_torch(module):
    torch.manual_seed(3)
    theirs_cls, ours_cls = MODULES[module]
    theirs = theirs_cls(2, 3, 2, bias=False, batch_first=True).double()
    ours = ours_cls(2, 3, 2, bias=False, batch_first=True).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    lengths = [5, 5, 2]  # already sorted: sorted_indices is None
    for a, b in zip(packed_run(ours, x, lengths, None, True), packed_run(theirs, x, lengths, None, True)):
        assert rel_err(a, b) <= TOL


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("time_reduction", ["sum", "mean"])
def test_packed_equals_each_sequence_run_alone(module, time_reduction):
    """The reference is the padded engine on each sequence by itself: for the sigmoid RNN (torch
    has none) and for "mean" (T is the longest sequence's length, so each alone is rescaled to it)."""
    torch.manual_seed(4)
    kwargs = {"nonlinearity": "sigmoid"} if module == "RNN" else {}
    rnn = MODULES[module][1](2, 3, batch_first=True, time_reduction=time_reduction, **kwargs).double()
    x = torch.randn(len(LENGTHS), max(LENGTHS), 2, dtype=torch.float64)
    out, *rest = packed_run(rnn, x, LENGTHS, None)
    states, grads = rest[: 2 if module == "LSTM" else 1], rest[2 if module == "LSTM" else 1 :]
    W = [p.detach().clone().requires_grad_(True) for p in rnn.parameters()]
    zeros = torch.zeros(1, 3, dtype=torch.float64)
    for b, n in enumerate(LENGTHS):
        xb = x[b, :n].unsqueeze(1)  # (n, 1, 2)
        if module == "RNN":
            out_b, *states_b = elman_layer(xb, zeros, *W, activation="sigmoid", time_reduction=time_reduction)
        elif module == "LSTM":
            out_b, *states_b = lstm_layer(xb, zeros, zeros, *W, time_reduction=time_reduction)
        else:
            out_b, *states_b = gru_layer(xb, zeros, *W, time_reduction=time_reduction)
        assert rel_err(out[b, :n], out_b[:, 0].detach()) <= TOL
        for mine, alone in zip(states, states_b, strict=True):
            assert rel_err(mine[0, b], alone[0].detach()) <= TOL
        assert torch.all(out[b, n:] == 0)  # pad_packed_sequence's zeros: nothing ran there
        scale = n / max(LENGTHS) if time_reduction == "mean" else 1.0
        loss = out_b.sin().sum() + sum(s.pow(2).sum() * (k + 1) for k, s in enumerate(states_b))
        loss.mul(scale).backward()
    for mine, reference in zip(grads, W):
        assert rel_err(mine, reference.grad) <= TOL


class MatmulShapes(TorchDispatchMode):
    """Records the shape of the first operand of every (add)mm the engine calls."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.addmm_, torch.ops.aten.addmm, torch.ops.aten.mm):
            self.shapes.append((str(func.overloadpacket), tuple(args[1 if "add" in str(func) else 0].shape)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("module", MODULES)
def test_one_matmul_per_step_on_the_running_rows_only(module):
    rnn = MODULES[module][1](2, 3)
    x = torch.randn(max(LENGTHS), len(LENGTHS), 2)
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    with MatmulShapes() as recorded:
        out, _ = rnn(packed)
    # h_{t-1}[:n_t] W_hhᵀ, one per step (in place, or GRU's into its own buffer); the input
    # projection is one matmul over all N rows before the loop
    recurrent = [shape for op, shape in recorded.shapes if shape[0] != packed.data.shape[0]]
    assert recurrent == [(int(n), 3) for n in packed.batch_sizes]
    assert [op for op, shape in recorded.shapes].count("aten.addmm") + \
        [op for op, shape in recorded.shapes].count("aten.addmm_") == len(packed.batch_sizes) + 1


@pytest.mark.parametrize("module", MODULES)
def test_trace_marks_the_padded_steps(module):
    rnn = MODULES[module][1](2, 3, bidirectional=True)
    x = torch.randn(max(LENGTHS), len(LENGTHS), 2)
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    with Trace(weight_adjustments=True) as trace:
        out, h_n = rnn(packed)
        (out.data.sum() + sum(s.sum() for s in _states(h_n))).backward()
    sorted_lengths = sorted(LENGTHS, reverse=True)  # the trace keeps the packed (sorted) order
    for name in ("layer0", "layer0_reverse"):
        record = trace.layer(name)
        assert record.mask.shape == (6, 5)
        assert record.mask.sum(0).tolist() == sorted_lengths
        if module == "RNN":
            fields = (record.z, record.h, record.dh, record.delta)
        else:
            fields = (record.h, record.dh, *record.gates.values(), *record.delta.values())
        for field in fields:
            assert field.shape == (6, 5, 3)
            assert torch.all(field[~record.mask] == 0)
        assert torch.allclose(record.dW_hh_steps.sum(0), rnn.weight_hh_l0.grad if name == "layer0"
                              else rnn.weight_hh_l0_reverse.grad, atol=1e-6)
    with Trace() as trace:  # a padded batch: no mask
        rnn(x)
    assert trace.layer("layer0").mask is None


def test_packed_layout_bookkeeping():
    layout = PackedLayout(torch.tensor([3, 2, 2, 1]))  # lengths 4, 3, 1
    assert layout.lengths.tolist() == [4, 3, 1]
    assert layout.offsets == [0, 3, 5, 7]
    assert layout.last_rows.tolist() == [7, 6, 2]
    assert layout.prev_rows.tolist() == [0, 1, 3, 4, 5]  # the rows of h_{t-1} for rows 3 … 7
    assert layout.reverse_rows.tolist() == [7, 6, 2, 5, 4, 3, 1, 0]


@pytest.mark.parametrize("module", MODULES)
def test_wrong_h0_batch_says_the_expected_shape(module):
    rnn = MODULES[module][1](2, 3)
    packed = pack_padded_sequence(torch.randn(4, 3, 2), [4, 2, 1])
    h0 = torch.zeros(1, 2, 3)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 3, 3\)"):
        rnn(packed, (h0, h0) if module == "LSTM" else h0)
