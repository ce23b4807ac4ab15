"""Per-step traffic formulas of the data, pipeline and hidden-split strategies."""

from dataclasses import replace

import pytest

from rnnscope.errors import UserError
from rnnscope.costs.traffic import (
    RNNShape, data_parallel_traffic, ddp_buckets, hidden_split_traffic, pipeline_traffic,
    rnn_parameters,
)

SHAPE = RNNShape(input_size=3, hidden=16, layers=3, seq_len=10, batch=4, output_size=2)


def test_parameters_match_torch_rnn_and_head():
    torch = pytest.importorskip("torch")
    rnn = torch.nn.RNN(3, 16, num_layers=3)
    head = torch.nn.Linear(16, 2)
    expected = [(f"rnn.{k}", v.numel()) for k, v in rnn.named_parameters()]
    expected += [(f"readout.{k}", v.numel()) for k, v in head.named_parameters()]
    assert rnn_parameters(SHAPE) == expected


def test_ddp_buckets_small_first_bucket_then_cap():
    mib = 1024 * 1024
    # gradients are ready in reverse registration order: 3 MiB fills the 1 MiB first bucket,
    # then 2 + 1 + 0.5 MiB stay under the 4 MiB cap until the end
    assert ddp_buckets([mib // 2, mib, 2 * mib, 3 * mib], 4 * mib) == [3 * mib, 3 * mib + mib // 2]
    assert ddp_buckets([mib, mib, mib, mib], 2 * mib) == [mib, 2 * mib, mib]
    assert ddp_buckets([10, 20], 25 * mib) == [30]


def test_data_parallel_all_reduces_every_gradient_byte():
    n = 4
    traffic = data_parallel_traffic(SHAPE, n)
    grad_bytes = 4 * sum(e for _, e in rnn_parameters(SHAPE))
    assert [t.payload_bytes for t in traffic.transfers] == [grad_bytes]
    assert traffic.network_bytes == 2 * (n - 1) * grad_bytes
    assert traffic.messages == 2 * (n - 1)


def test_pipeline_bytes_and_messages_follow_the_formula():
    T, B, H, b, L, O = 10, 4, 16, 4, 3, 2
    traffic = pipeline_traffic(replace(SHAPE, output_size=0), stages=L, chunk=3)
    assert traffic.network_bytes == 2 * (L - 1) * T * B * H * b
    assert sum(t.count for t in traffic.transfers) == 2 * (L - 1) * 4  # ceil(10/3) = 4
    assert traffic.sent_bytes == 2 * T * B * H * b  # an inner stage: both directions
    two = pipeline_traffic(replace(SHAPE, output_size=0), stages=2, chunk=10)
    assert two.sent_bytes == T * B * H * b and two.messages == 1
    # with a readout, the last stage broadcasts ŷ (B, T, O): a chain moves it (S−1) times
    with_output = pipeline_traffic(SHAPE, stages=L, chunk=3)
    assert with_output.network_bytes - traffic.network_bytes == (L - 1) * B * T * O * b
    last_step = pipeline_traffic(replace(SHAPE, every_step=False), stages=L, chunk=3)
    assert last_step.network_bytes - traffic.network_bytes == (L - 1) * B * O * b


def test_hidden_split_two_collectives_per_time_step_and_layer():
    K, T, B, H, b, L = 4, 10, 4, 16, 4, 3
    traffic = hidden_split_traffic(SHAPE, K)
    counts = {t.tag: t.count for t in traffic.transfers}
    assert counts == {"hidden_state": T * L, "hidden_grad": T * L, "input_grad": L - 1}
    per_step = (K - 1) * B * H * b // K
    assert traffic.sent_bytes == 2 * T * L * per_step + (L - 1) * (K - 1) * T * B * H * b // K


@pytest.mark.parametrize("call, match", [
    (lambda: hidden_split_traffic(SHAPE, 3), r"hidden\(16\) % hs\(3\) = 1"),
    (lambda: pipeline_traffic(SHAPE, stages=4), r"--model.layers \(3\) < pipeline stages \(4\)"),
    (lambda: pipeline_traffic(SHAPE, stages=2, chunk=0), "chunk must be ≥ 1"),
    (lambda: RNNShape(hidden=0), "hidden must be ≥ 1, got 0"),
])
def test_bad_shapes_raise_user_error(call, match):
    with pytest.raises(UserError, match=match):
        call()


@pytest.mark.parametrize("strategy", ["pipeline", "hidden_split"])
def test_clipping_a_model_split_adds_one_all_reduce_of_the_norm(strategy):
    from rnnscope.costs.backends import GLOO
    from rnnscope.costs.traffic import network_totals, strategy_traffic

    shape = replace(SHAPE, hidden=12)  # 3 divides it
    plain = network_totals(strategy_traffic(strategy, shape, 3), GLOO)
    clipped = strategy_traffic(strategy, shape, 3, clip=True)
    assert clipped.transfers[-1].tag == "grad_norm" and clipped.transfers[-1].payload_bytes == 8
    # a ring all-reduce of 8 bytes on 3 ranks: 2(n−1)·S bytes in 2(n−1)·n messages, all ranks
    assert network_totals(clipped, GLOO) == (plain[0] + 2 * 2 * 8, plain[1] + 2 * 2 * 3)
    assert strategy_traffic("data", SHAPE, 3, clip=True).transfers == \
        strategy_traffic("data", SHAPE, 3).transfers  # every replica has the whole gradient
