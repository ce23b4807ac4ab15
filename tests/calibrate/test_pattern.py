"""The strategies' own code paths: message sizes, the no-network stand-in, the overhead fits."""

import pytest
import torch

from rnnscope.plan.compute import Device, step_seconds
from rnnscope.calibrate.pattern import LoopbackComm, chunk_overhead, payload_sizes, split_overhead, \
    time_hidden_split, time_patterns, time_pipeline_stage
from rnnscope.costs.traffic import RNNShape, rnn_parameters
from rnnscope.train.config import load_config

DEVICE = Device("test", {4: 1e9}, utilization=1.0, step_overhead_s=1e-5)
SHAPE = RNNShape(input_size=1, hidden=8, layers=2, seq_len=7, batch=4, output_size=1)


def test_payload_sizes_name_every_message_of_the_local_runs():
    sizes = payload_sizes(SHAPE, chunk=3, bucket_mb=25)
    state = 4 * 8 * 4  # B·H·b
    assert {state, 7 * state, 3 * state, 1 * state, 4 * 7 * 1 * 4} <= set(sizes)
    assert {n * 4 for _, n in rnn_parameters(SHAPE)} <= set(sizes)
    assert sizes == sorted(sizes)


def test_loopback_comm_fills_what_a_collective_would():
    comm = LoopbackComm(1, 2)
    out = torch.empty(6)
    comm.all_gather(out, torch.arange(3.0), tag="t")
    assert out.tolist() == [0, 1, 2, 0, 1, 2]
    part = torch.empty(3)
    comm.reduce_scatter(part, torch.arange(6.0), tag="t")
    assert part.tolist() == [3, 4, 5]
    comm.isend(part, 0, tag="t").wait()


def test_split_overhead_is_what_the_engine_model_leaves_out():
    f0, b0 = step_seconds(DEVICE, 4, 8, 1, 4, 2)
    f1, b1 = step_seconds(DEVICE, 4, 8, 8, 4, 2)
    model = 7 * (f0 + b0 + f1 + b1)
    assert split_overhead(model + 3 * 7 * 2 * 5e-5, SHAPE, DEVICE, 2) == pytest.approx(5e-5)
    assert split_overhead(model / 2, SHAPE, DEVICE, 2) == 0.0


def test_chunk_overhead_is_the_cost_of_more_engine_calls():
    # 2 stages of 2 layers: the first holds layer 0; ceil(7 / 3) = 3 chunks, 2 more calls
    assert chunk_overhead(0.01 + 3 * 2 * 1e-4, 0.01, SHAPE, 2, 3) == pytest.approx(1e-4)
    assert chunk_overhead(0.01, 0.02, SHAPE, 2, 3) == 0.0
    assert chunk_overhead(0.02, 0.01, SHAPE, 2, 7) == 0.0  # one chunk: nothing to compare


def test_stages_are_timed_without_a_network():
    cfg = load_config(None, ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "7",
                             "--data.batch_size", "4"])
    assert time_hidden_split(SHAPE, cfg, 2, repeats=1) > 0
    assert time_pipeline_stage(SHAPE, cfg, 2, 3, repeats=1) > 0
    assert time_pipeline_stage(SHAPE, cfg, 1, 3, repeats=1) > 0  # one stage: the readout too


def test_a_one_layer_model_has_no_pipeline_to_time():
    cfg = load_config(None, ["--model.hidden", "8", "--model.layers", "1", "--data.seq_len", "7",
                             "--data.batch_size", "4"])
    shape = RNNShape(input_size=1, hidden=8, layers=1, seq_len=7, batch=4, output_size=1)
    timed = time_patterns(shape, cfg, workers=2, repeats=1)
    assert timed.stages == 1 and timed.stage_s == timed.whole_s == 0.0
    assert timed.split_s > 0
