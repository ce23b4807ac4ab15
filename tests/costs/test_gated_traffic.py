"""Gated cells in the formulas: G·H rows per recurrent weight, G times the FLOPs, the same h_t on
the wire for the model splits, and the memory a worker holds."""

from __future__ import annotations

import pytest

from rnnscope.costs.layout import ParallelLayout
from rnnscope.costs.traffic import (GATE_COUNT, RNNShape, data_parallel_traffic, hidden_split_traffic,
                                    pipeline_traffic, rnn_parameters, strategy_traffic)
from rnnscope.errors import UserError
from rnnscope.plan.compute import (SAVED_PER_STEP, backward_step_flops, forward_step_flops,
                                   memory_per_worker)


def _shape(cell: str, **kw) -> RNNShape:
    return RNNShape(input_size=3, hidden=8, layers=2, seq_len=10, batch=4, output_size=2,
                    bytes_per_element=4, cell=cell, **kw)


@pytest.mark.parametrize("cell, gates", [("elman", 1), ("lstm", 4), ("gru", 3)])
def test_parameters_stack_every_gates_rows_as_torch_does(cell, gates):
    import torch
    from types import SimpleNamespace
    from rnnscope.train.model import SequenceModel
    net = SequenceModel(3, 2, SimpleNamespace(hidden=8, layers=2, activation="tanh",
                                              time_reduction="sum", cell=cell), True)
    assert GATE_COUNT[cell] == gates
    assert rnn_parameters(_shape(cell)) == [(n, p.numel()) for n, p in net.named_parameters()]
    assert torch.Size([gates * 8, 8]) == net.rnn.weight_hh_l1.shape


def test_data_parallel_all_reduces_g_times_the_recurrent_gradients():
    b = 4
    recurrent = {cell: sum(n for name, n in rnn_parameters(_shape(cell)) if name.startswith("rnn."))
                 for cell in GATE_COUNT}
    assert recurrent["lstm"] == 4 * recurrent["elman"] and recurrent["gru"] == 3 * recurrent["elman"]
    readout = 2 * 8 + 2
    for cell in GATE_COUNT:
        t = data_parallel_traffic(_shape(cell), 4)
        assert sum(x.payload_bytes * x.count for x in t.transfers) == (recurrent[cell] + readout) * b


def test_the_model_splits_send_only_h_whatever_the_cell():
    for cell in ("lstm", "gru"):
        for strategy in ("pipeline", "hidden_split"):
            gated = strategy_traffic(strategy, _shape(cell), 2, chunk=3, clip=True)
            elman = strategy_traffic(strategy, _shape("elman"), 2, chunk=3, clip=True)
            assert (gated.sent_bytes, gated.messages, gated.network_bytes) == (
                elman.sent_bytes, elman.messages, elman.network_bytes), (cell, strategy)
    t = hidden_split_traffic(_shape("lstm"), 2)
    assert sum(x.count for x in t.transfers if x.tag == "hidden_state") == 10 * 2  # T·L, h only
    assert pipeline_traffic(_shape("gru"), 2).network_bytes == 2 * 10 * 4 * 8 * 4 + 4 * 10 * 2 * 4


def test_flops_grow_with_the_gates():
    assert forward_step_flops(4, 8, 3) == 2 * 4 * 8 * 11
    assert forward_step_flops(4, 8, 3, gates=4) == 4 * forward_step_flops(4, 8, 3)
    assert backward_step_flops(4, 8, 3, gates=3) == 2 * forward_step_flops(4, 8, 3, gates=3)


def test_memory_per_worker_by_cell_and_layout():
    b, T, B, H = 4, 10, 4, 8
    for cell in GATE_COUNT:
        s = _shape(cell)
        params = sum(n for _, n in rnn_parameters(s))
        single = memory_per_worker(s, ParallelLayout(1, 1, 1), B)
        assert single == (4 * params + 2 * T * B * H * SAVED_PER_STEP[cell]) * b
        # a hidden split holds half the recurrent weights and saved gates, plus the gathered h
        half = memory_per_worker(s, ParallelLayout(1, 1, 2), B)
        recurrent = sum(n for name, n in rnn_parameters(s) if name.startswith("rnn."))
        assert half == (4 * (recurrent // 2 + params - recurrent)
                        + 2 * (T * B * H * SAVED_PER_STEP[cell] // 2 + T * B * H)) * b
        assert memory_per_worker(s, ParallelLayout(1, 2, 1), B) < single
    assert memory_per_worker(_shape("lstm"), ParallelLayout(1, 1, 1), B) > memory_per_worker(
        _shape("elman"), ParallelLayout(1, 1, 1), B)


def test_an_unknown_cell_is_refused():
    with pytest.raises(UserError, match="--model.cell must be one of elman, lstm, gru, got 'peephole'"):
        _shape("peephole")
