"""rnnscope.nn.LSTM and rnnscope.nn.GRU are drop-ins for torch.nn.LSTM and torch.nn.GRU: same
constructor, forward, parameter names, initial weights; what is unsupported says so.
(The gradients against torch.nn are checked in tests/engine/test_gated_bptt.py.)"""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn

PAIRS = {"lstm": (rnnscope.nn.LSTM, torch.nn.LSTM), "gru": (rnnscope.nn.GRU, torch.nn.GRU)}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("kwargs", [{}, {"num_layers": 2, "bidirectional": True}, {"bias": False, "batch_first": True}])
def test_same_seed_gives_torch_initial_weights(cell, kwargs):
    ours_cls, theirs_cls = PAIRS[cell]
    torch.manual_seed(7)
    theirs = theirs_cls(4, 5, **kwargs)
    torch.manual_seed(7)
    ours = ours_cls(4, 5, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    theirs.load_state_dict(ours.state_dict())  # and back again
    assert [len(group) for group in ours.all_weights] == [len(group) for group in theirs.all_weights]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_positional_constructor_and_outputs_match_torch(cell):
    ours_cls, theirs_cls = PAIRS[cell]
    # input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
    args = (3, 4, 2, True, True, 0.0, True)
    torch.manual_seed(1)
    ours, theirs = ours_cls(*args).double(), theirs_cls(*args).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, state = ours(x)
    ref_out, ref_state = theirs(x)
    assert out.shape == ref_out.shape == (2, 5, 8)
    assert rel_err(out, ref_out) <= 1e-12
    if cell == "lstm":
        assert isinstance(state, tuple) and len(state) == 2
        for a, b in zip(state, ref_state):
            assert a.shape == b.shape == (4, 2, 4) and rel_err(a, b) <= 1e-12
    else:
        assert state.shape == ref_state.shape == (4, 2, 4) and rel_err(state, ref_state) <= 1e-12
    assert repr(ours) == repr(theirs)


def test_unsupported_options_say_so():
    with pytest.raises(ValueError, match="proj_size=3: rnnscope.nn.LSTM does not support projections"):
        rnnscope.nn.LSTM(2, 4, proj_size=3)
    with pytest.raises(ValueError, match="only supported for LSTM"):
        rnnscope.nn.GRU(2, 4, proj_size=3)
    with pytest.raises(RuntimeError, match=r"Expected cell state size \(1, 2, 4\)"):
        rnnscope.nn.LSTM(2, 4)(torch.randn(3, 2, 2), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)))
    with pytest.raises(RuntimeError, match="input_size"):
        rnnscope.nn.GRU(2, 4)(torch.randn(3, 2, 5))
    with pytest.warns(UserWarning, match="dropout"):
        rnnscope.nn.GRU(2, 4, dropout=0.5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_between_layers_only_in_training(cell):
    torch.manual_seed(0)
    rnn = PAIRS[cell][0](2, 8, 2, dropout=0.5)
    x = torch.randn(4, 3, 2)
    rnn.eval()
    assert torch.equal(rnn(x)[0], rnn(x)[0])
    rnn.train()
    assert not torch.equal(rnn(x)[0], rnn(x)[0])
