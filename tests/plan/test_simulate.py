"""Step simulation: closed forms of the single device, hidden split and pipeline, overlap."""

import pytest

from rnnscope.costs.layout import ParallelLayout
from rnnscope.costs.traffic import RNNShape, pipeline_traffic
from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link
from rnnscope.plan.compute import Device, step_seconds
from rnnscope.plan.simulate import PlanInputs, simulate, single_device_seconds
from rnnscope.plan.topology import Topology, group_collective

DEVICE = Device("test", {4: 1e12}, utilization=1.0, step_overhead_s=1e-5)
SHAPE = RNNShape(input_size=8, hidden=64, layers=3, seq_len=20, batch=16, output_size=1)


def inputs(link=Link.simple(5e-6, 50e9), **kw):
    return PlanInputs(SHAPE, DEVICE, Topology(link), **kw)


def test_single_device_is_t_times_the_layer_steps():
    f0, b0 = step_seconds(DEVICE, 16, 64, 8, 4)
    f, b = step_seconds(DEVICE, 16, 64, 64, 4)
    plan = simulate(inputs(), ParallelLayout())
    assert plan.step_s == pytest.approx(20 * (f0 + b0 + 2 * (f + b)))
    assert plan.efficiency == pytest.approx(1.0) and not plan.items


def test_data_parallel_on_a_perfect_network_scales_perfectly():
    plan = simulate(inputs(Link.simple(0.0, 1e30)), ParallelLayout(data=8))
    assert plan.exposed_comm_s == pytest.approx(0.0, abs=1e-12)
    assert plan.efficiency == pytest.approx(1.0)


def test_data_parallel_exposes_only_what_the_backward_cannot_hide():
    slow = simulate(inputs(Link.simple(1e-3, 1e6)), ParallelLayout(data=4))
    (item,) = slow.items
    assert 0 < item.exposed_s <= item.cost.seconds
    assert slow.step_s == pytest.approx(slow.compute_s + slow.exposed_comm_s)


def test_hidden_split_puts_two_collectives_per_step_on_the_critical_path():
    k = 4
    inp = inputs()
    plan = simulate(inp, ParallelLayout(hidden_split=k))
    topo, state = inp.topology, 16 * 64 * 4
    ag = group_collective(topo, "all_gather", state, k).seconds
    rs = group_collective(topo, "reduce_scatter", state, k).seconds
    rs_in = group_collective(topo, "reduce_scatter", 20 * state, k).seconds
    f0, b0 = step_seconds(DEVICE, 16, 64, 8, 4, k)
    f, b = step_seconds(DEVICE, 16, 64, 64, 4, k)
    compute = 20 * (f0 + b0 + 2 * (f + b))
    assert plan.compute_s == pytest.approx(compute)
    assert plan.step_s == pytest.approx(compute + 3 * 20 * (ag + rs) + 2 * rs_in)
    assert {i.tag: i.count for i in plan.items} == {"hidden_state": 60, "hidden_grad": 60,
                                                    "input_grad": 2}


def test_pipeline_bubble_and_bytes_follow_the_formulas():
    chunk, p = 5, 3
    plan = simulate(inputs(chunk=chunk), ParallelLayout(pipeline=p))
    chunks = 20 // chunk
    assert plan.bubble_fraction == pytest.approx((p - 1) / (chunks + p - 1))
    assert plan.inter_bytes == pipeline_traffic(SHAPE, p, chunk).sent_bytes  # an inner stage
    free = simulate(inputs(Link.simple(0.0, 1e30), chunk=chunk), ParallelLayout(pipeline=p))
    assert free.exposed_comm_s == pytest.approx(0.0, abs=1e-12)
    assert free.bubble_s > 0


def test_strong_scaling_splits_the_batch_and_refuses_too_many_replicas():
    plan = simulate(inputs(scaling="strong"), ParallelLayout(data=4))
    assert plan.batch_per_replica == 4
    with pytest.raises(UserError, match=r"d\(32\) > batch\(16\)"):
        simulate(inputs(scaling="strong"), ParallelLayout(data=32))


@pytest.mark.parametrize("layout, match", [
    (ParallelLayout(hidden_split=3), r"hidden\(64\) % hs\(3\) = 1"),
    (ParallelLayout(pipeline=4), r"--model.layers \(3\) < pipeline stages \(4\)"),
    (ParallelLayout(pipeline=3, hidden_split=2), r"pp\(3\) \* hs\(2\) = 6: a pipeline of hidden splits"),
])
def test_layouts_the_model_cannot_take(layout, match):
    with pytest.raises(UserError, match=match):
        simulate(inputs(), layout)


def test_single_device_seconds_grows_with_the_batch():
    assert single_device_seconds(inputs(), 64) > single_device_seconds(inputs(), 16)


def test_more_local_workers_than_cores_compute_slower():
    shared = simulate(inputs(Link.simple(0.0, 1e30), cores=2), ParallelLayout(data=4))
    alone = simulate(inputs(Link.simple(0.0, 1e30)), ParallelLayout(data=4))
    assert shared.compute_s == pytest.approx(2 * alone.compute_s)
    assert simulate(inputs(cores=2), ParallelLayout(data=2)).compute_s == pytest.approx(
        simulate(inputs(), ParallelLayout(data=2)).compute_s)


def test_calibrated_code_path_overheads_lengthen_split_and_pipeline():
    free = Link.simple(0.0, 1e30)
    base = simulate(inputs(free), ParallelLayout(hidden_split=2))
    extra = simulate(inputs(free, split_overhead_s=1e-4), ParallelLayout(hidden_split=2))
    assert extra.step_s - base.step_s == pytest.approx(3 * 20 * 3 * 1e-4)  # 3·T·L·extra
    base = simulate(inputs(free, chunk=5), ParallelLayout(pipeline=3))
    extra = simulate(inputs(free, chunk=5, chunk_overhead_s=1e-4), ParallelLayout(pipeline=3))
    # 3 stages of 1 layer, 4 chunks: each wave is (4 + 3 − 1) chunk times of its stage
    assert extra.step_s - base.step_s == pytest.approx(6 * 1e-4 + 6 * 2e-4)
    assert extra.compute_s - base.compute_s == pytest.approx(3 * 4 * 1e-4)


def test_without_overlap_the_gradient_all_reduce_follows_the_backward():
    slow = Link.simple(1e-3, 1e8)
    hidden = simulate(inputs(slow), ParallelLayout(data=4))
    after = simulate(inputs(slow, overlap=False), ParallelLayout(data=4))
    comm = after.items[0].cost.seconds
    assert after.step_s == pytest.approx(after.compute_s + comm)
    assert hidden.step_s <= after.step_s


def test_ddp_overhead_is_computing_on_each_replica_not_waiting():
    free = Link.simple(0.0, 1e30)
    base = simulate(inputs(free), ParallelLayout(data=4))
    extra = simulate(inputs(free, ddp_overhead_s=1e-3), ParallelLayout(data=4))
    assert extra.step_s - base.step_s == pytest.approx(1e-3)
    assert extra.compute_s - base.compute_s == pytest.approx(1e-3)
    assert extra.exposed_comm_s == pytest.approx(base.exposed_comm_s, abs=1e-12)
    # model-parallel replicas reduce their gradients without DDP
    assert simulate(inputs(free, ddp_overhead_s=1e-3), ParallelLayout(data=2, hidden_split=2)).step_s == \
        pytest.approx(simulate(inputs(free), ParallelLayout(data=2, hidden_split=2)).step_s)


def test_messages_on_the_cores_lengthen_every_chunk_of_a_stage():
    # 3 stages of 1 layer, 4 chunks of 5 steps; a send takes 1 µs (less than a chunk's
    # compute); the inner stage, one of the two slowest, pays twice
    link = Link.simple(1e-6, 1e30)
    apart = simulate(inputs(link, chunk=5), ParallelLayout(pipeline=3))
    shared = simulate(inputs(link, chunk=5, comm_on_cores=True), ParallelLayout(pipeline=3))
    # each wave: Σ_stages (1 + 2 + 1) µs once, then (4 − 1) chunks at the slowest stage (+2 µs)
    assert shared.step_s - apart.step_s == pytest.approx(2 * (4e-6 + 3 * 2e-6))


@pytest.mark.parametrize("layout", [ParallelLayout(pipeline=3), ParallelLayout(data=2, hidden_split=4)])
def test_clipping_a_model_split_waits_for_one_norm_all_reduce(layout):
    link = Link.simple(1e-4, 1e9)
    plain, clipped = simulate(inputs(link), layout), simulate(inputs(link, clip=True), layout)
    (norm,) = [item for item in clipped.items if item.tag == "grad_norm"]
    assert norm.op == "all_reduce" and norm.payload_bytes == 8 and norm.count == 1
    assert norm.cost.seconds == pytest.approx(group_collective(
        Topology(link), "all_reduce", 8, layout.model, 1, 8).seconds)
    assert clipped.step_s == pytest.approx(plain.step_s + norm.cost.seconds)
    data_only = ParallelLayout(data=4)  # every replica holds the whole gradient: nothing to add
    assert simulate(inputs(link, clip=True), data_only).step_s == simulate(inputs(link), data_only).step_s


def test_exchange_waits_lengthen_every_exchange_and_every_chunk_slot_as_exposed_time():
    wait = 2e-4
    split = ParallelLayout(hidden_split=2)
    bare, waited = simulate(inputs(), split), simulate(inputs(split_wait_s=wait), split)
    T, L = SHAPE.seq_len, SHAPE.layers
    # one wait per all-gather (forward) and per reduce-scatter (backward): 2·T·L of them
    assert waited.step_s - bare.step_s == pytest.approx(2 * T * L * wait)
    assert waited.compute_s == pytest.approx(bare.compute_s)  # waiting, not computing
    assert waited.exposed_comm_s - bare.exposed_comm_s == pytest.approx(2 * T * L * wait)
    assert simulate(inputs(split_wait_s=wait), ParallelLayout()).step_s == pytest.approx(
        simulate(inputs(), ParallelLayout()).step_s)  # nothing to wait for alone
    # a pipeline: every stage's chunk, forward and backward; each wave has chunks + p − 1 slots
    pipe = ParallelLayout(pipeline=3)
    bare = simulate(inputs(chunk=5), pipe)
    waited = simulate(inputs(chunk=5, chunk_wait_s=wait), pipe)
    chunks, p = 4, 3
    assert waited.step_s - bare.step_s == pytest.approx(2 * (chunks + p - 1) * wait)
    assert waited.compute_s == pytest.approx(bare.compute_s)
    assert waited.bubble_s == pytest.approx(bare.bubble_s)
    # data parallelism: one wait per DDP bucket's all-reduce, exposed after the backward
    small = ParallelLayout(data=2)
    many = dict(bucket_mb=0.01)  # 10 KiB buckets: several per step
    bare = simulate(inputs(**many), small)
    waited = simulate(inputs(data_wait_s=wait, **many), small)
    buckets = bare.gradient_buckets
    assert buckets > 1
    assert waited.step_s - bare.step_s == pytest.approx(buckets * wait)
    assert waited.exposed_comm_s - bare.exposed_comm_s == pytest.approx(buckets * wait)
    assert waited.compute_s == pytest.approx(bare.compute_s)
    # negative (the calibration's one-rank DDP slower than a replica's): never below no comm
    fast = simulate(inputs(data_wait_s=-1.0, **many), small)
    assert fast.step_s == pytest.approx(bare.step_s - bare.exposed_comm_s)
    # a model split's gradient all-reduce is not DDP's: the data wait leaves it as it is
    hybrid = ParallelLayout(data=2, hidden_split=2)
    assert simulate(inputs(data_wait_s=wait), hybrid).step_s == pytest.approx(
        simulate(inputs(), hybrid).step_s)
