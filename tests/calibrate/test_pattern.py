"""The strategies' own code paths: message sizes, the no-network stand-in, the overhead fits."""

import pytest
import torch

from rnnscope.plan.compute import Device, step_seconds
from rnnscope.calibrate.pattern import LoopbackComm, chunk_overhead, payload_sizes, split_overhead, \
    time_patterns
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
                             "--data.batch_size", "4", "--parallel.chunk", "3"])
    timed = time_patterns(SHAPE, cfg, workers=2, repeats=1)
    assert (timed.split_ways, timed.stages, timed.chunk) == (2, 2, 3)
    assert timed.split_s > 0 and timed.stage_s > 0 and timed.whole_s > 0
    assert timed.ddp_s is None and timed.split_real_s == timed.pipe_real_s == 0.0  # no group


def test_a_one_layer_model_has_no_pipeline_to_time():
    cfg = load_config(None, ["--model.hidden", "8", "--model.layers", "1", "--data.seq_len", "7",
                             "--data.batch_size", "4"])
    shape = RNNShape(input_size=1, hidden=8, layers=1, seq_len=7, batch=4, output_size=1)
    timed = time_patterns(shape, cfg, workers=2, repeats=1)
    assert timed.stages == 1 and timed.stage_s == timed.whole_s == 0.0
    assert timed.split_s > 0


def test_the_waits_are_what_a_real_exchange_takes_beyond_the_model():
    from rnnscope.calibrate.pattern import chunk_wait, data_wait, split_wait

    T, L = SHAPE.seq_len, SHAPE.layers
    # the real loop's step = the simulated one + 2·T·L waits of 30 µs
    assert split_wait(0.6 + 2 * T * L * 30e-6, 0.6, SHAPE) == pytest.approx(30e-6)
    # faster than the model (its collectives timed slower than a run's exchange): negative
    assert split_wait(0.6 - 2 * T * L * 10e-6, 0.6, SHAPE) == pytest.approx(-10e-6)
    # a pipeline of 2 stages and 5 chunks: 2 waves of 6 slots
    assert chunk_wait(0.2 + 12 * 1e-4, 0.2, stages=2, chunks=5) == pytest.approx(1e-4)
    # a real step shorter than the simulated one (the loop's work hidden in the bubble): negative
    assert chunk_wait(0.2 - 12 * 1e-4, 0.2, stages=2, chunks=5) == pytest.approx(-1e-4)
    # data parallelism with 3 DDP buckets: one all-reduce each, either way
    assert data_wait(8e-3 + 3 * 2e-4, 8e-3, buckets=3) == pytest.approx(2e-4)
    assert data_wait(8e-3 - 3 * 1e-4, 8e-3, buckets=3) == pytest.approx(-1e-4)


def test_calibrated_waits_put_the_real_exchange_back_into_the_simulation():
    """exchange_waits inverts the simulation: with the waits it returns, the simulated hidden
    split and pipeline take what the real group was given to take."""
    import dataclasses

    from rnnscope.calibrate.machine import exchange_waits
    from rnnscope.calibrate.pattern import Patterns
    from rnnscope.costs.layout import ParallelLayout
    from rnnscope.plan.alphabeta import Link
    from rnnscope.plan.simulate import PlanInputs, simulate
    from rnnscope.plan.topology import Topology

    shape = RNNShape(input_size=1, hidden=8, layers=2, seq_len=10, batch=4, output_size=1)
    inputs = PlanInputs(shape, DEVICE, Topology(Link.simple(5e-5, 1e9)), chunk=5,
                        step_fixed_s=1e-3)
    wait_split, wait_chunk = 40e-6, 300e-6
    split_plan = simulate(inputs, ParallelLayout(hidden_split=2))
    pipe = simulate(inputs, ParallelLayout(pipeline=2))
    exchanges = 2 * 10 * 2  # an all-gather and a reduce-scatter per layer and time step
    pat = Patterns(split_ways=2, split_s=0.05, stages=2, chunk=5, stage_s=0.0, whole_s=0.0,
                   split_real_s=split_plan.step_s + exchanges * wait_split,  # whole loop steps
                   pipe_real_s=pipe.step_s + 2 * (2 + 2 - 1) * wait_chunk)
    split, chunk, data = exchange_waits(inputs, pat, world=2)
    assert split == pytest.approx(wait_split) and chunk == pytest.approx(wait_chunk)
    assert data == 0.0  # data parallelism's loop not timed
    assert simulate(dataclasses.replace(inputs, split_wait_s=split),
                    ParallelLayout(hidden_split=2)).step_s == pytest.approx(pat.split_real_s)
    # a loop step shorter than the simulation (the micro-benchmark's collectives slower than a
    # run's exchange) shortens it as much, down to exchanges that take nothing
    faster = dataclasses.replace(pat, split_real_s=0.9 * split_plan.step_s)
    split, _, _ = exchange_waits(inputs, faster, world=2)
    assert split < 0
    assert simulate(dataclasses.replace(inputs, split_wait_s=split),
                    ParallelLayout(hidden_split=2)).step_s == pytest.approx(faster.split_real_s)
    bare = simulate(dataclasses.replace(inputs, split_wait_s=-1.0), ParallelLayout(hidden_split=2))
    assert 0 < bare.step_s < split_plan.step_s
    waited = dataclasses.replace(inputs, chunk_wait_s=chunk)
    assert simulate(waited, ParallelLayout(pipeline=2)).step_s == pytest.approx(
        pipe.step_s + 2 * 3 * wait_chunk)
    # a loop step shorter than the simulation (its work hidden in the bubble) shortens it as much
    # (nearly: a shorter slot can make another stage the slowest one of a wave)
    hidden = 0.02 * pipe.step_s
    faster = dataclasses.replace(pat, pipe_real_s=pipe.step_s - hidden)
    _, chunk, _ = exchange_waits(inputs, faster, world=2)
    assert chunk == pytest.approx(-hidden / (2 * 3))
    shortened = pipe.step_s - simulate(dataclasses.replace(inputs, chunk_wait_s=chunk),
                                       ParallelLayout(pipeline=2)).step_s
    assert shortened == pytest.approx(hidden, rel=0.05)
    # however negative, no slot of a wave takes less than nothing
    assert simulate(dataclasses.replace(inputs, chunk_wait_s=-1.0), ParallelLayout(pipeline=2)).step_s > 0
    # nothing timed on a real group: no waits
    assert exchange_waits(inputs, dataclasses.replace(pat, split_real_s=0.0, pipe_real_s=0.0),
                          world=2) == (0.0, 0.0, 0.0)


def test_the_data_wait_puts_data_parallelisms_real_step_back_into_the_simulation():
    """exchange_waits inverts the data-parallel simulation too: with the wait it returns, the
    simulated DDP step takes what its loop on the real group took, longer or shorter."""
    import dataclasses

    from rnnscope.calibrate.machine import exchange_waits
    from rnnscope.calibrate.pattern import Patterns
    from rnnscope.costs.layout import ParallelLayout
    from rnnscope.plan.alphabeta import Link
    from rnnscope.plan.simulate import PlanInputs, simulate
    from rnnscope.plan.topology import Topology

    shape = RNNShape(input_size=1, hidden=8, layers=2, seq_len=10, batch=4, output_size=1)
    inputs = PlanInputs(shape, DEVICE, Topology(Link.simple(5e-5, 1e9)), step_fixed_s=1e-3,
                        bucket_mb=0.0002, ddp_overhead_s=2e-4)  # 210-byte buckets: several
    plan = simulate(inputs, ParallelLayout(data=2))
    buckets = plan.gradient_buckets
    assert buckets > 1
    for real in (1.3 * plan.step_s, plan.step_s - 0.5 * plan.exposed_comm_s):
        pat = Patterns(split_ways=1, split_s=0.0, stages=1, chunk=1, stage_s=0.0, whole_s=0.0,
                       data_real_s=real)
        split, chunk, data = exchange_waits(inputs, pat, world=2)
        assert (split, chunk) == (0.0, 0.0)
        assert data == pytest.approx((real - plan.step_s) / buckets)
        assert simulate(dataclasses.replace(inputs, data_wait_s=data),
                        ParallelLayout(data=2)).step_s == pytest.approx(real)


def test_the_split_loops_compute_and_communication_divide_the_plan_as_they_divide_its_real_step():
    """split_compute puts what the real loop computed beyond the simulation into the per-time-step
    overhead, exchange_waits what its collectives waited into the exchanges: the plan then takes
    the real step, and its exposed communication is the real step's communication."""
    import dataclasses

    from rnnscope.calibrate.machine import exchange_waits, split_compute
    from rnnscope.calibrate.pattern import Patterns, split_loop_overhead
    from rnnscope.costs.layout import ParallelLayout
    from rnnscope.plan.alphabeta import Link
    from rnnscope.plan.simulate import PlanInputs, simulate
    from rnnscope.plan.topology import Topology

    shape = RNNShape(input_size=1, hidden=8, layers=2, seq_len=10, batch=4, output_size=1)
    inputs = PlanInputs(shape, DEVICE, Topology(Link.simple(5e-5, 1e9)), chunk=5,
                        step_fixed_s=1e-3, split_overhead_s=20e-6)
    layout = ParallelLayout(hidden_split=2)
    plan = simulate(inputs, layout)
    compute_s = plan.step_s - plan.exposed_comm_s
    # the run's exchanges wait 40 µs each beyond the model (an all-gather and a reduce-scatter per
    # layer and time step), and it computes 30 µs more per layer and time step (backward twice)
    real_comm = plan.exposed_comm_s + 2 * 10 * 2 * 40e-6
    real = real_comm + compute_s + 3 * 10 * 2 * 30e-6
    assert split_loop_overhead(real, real_comm, compute_s, shape) == pytest.approx(30e-6)
    pat = Patterns(split_ways=2, split_s=0.05, stages=2, chunk=5, stage_s=0.0, whole_s=0.0,
                   split_real_s=real, split_real_comm_s=real_comm)
    overhead = split_compute(inputs, pat, world=2)
    assert overhead == pytest.approx(50e-6)  # the stage's own 20 µs and the loop's 30
    fitted = dataclasses.replace(inputs, split_overhead_s=overhead)
    wait = exchange_waits(fitted, pat, world=2).split_s
    assert wait == pytest.approx(40e-6)
    final = simulate(dataclasses.replace(fitted, split_wait_s=wait), layout)
    assert final.step_s == pytest.approx(real)
    assert final.exposed_comm_s == pytest.approx(real_comm)
    # the loop's communication not timed: the stage's own figure stays
    assert split_compute(inputs, dataclasses.replace(pat, split_real_comm_s=0.0), 2) == 20e-6
    # a loop that computed less than the simulation: less overhead, never below nothing
    assert split_compute(inputs, dataclasses.replace(pat, split_real_s=real_comm), 2) == 0.0


def test_the_data_loops_compute_and_all_reduce_divide_the_plan_as_they_divide_its_real_step():
    """data_compute puts what data parallelism's loop computed beyond the simulation into DDP's
    per-step overhead (either way), exchange_waits what its all-reduce waited into the bucket: the
    plan then takes the real step, and its exposed communication is the real step's."""
    import dataclasses

    from rnnscope.calibrate.machine import data_compute, exchange_waits
    from rnnscope.calibrate.pattern import Patterns, data_loop_overhead
    from rnnscope.costs.layout import ParallelLayout
    from rnnscope.plan.alphabeta import Link
    from rnnscope.plan.simulate import PlanInputs, simulate
    from rnnscope.plan.topology import Topology

    shape = RNNShape(input_size=1, hidden=8, layers=2, seq_len=10, batch=4, output_size=1)
    inputs = PlanInputs(shape, DEVICE, Topology(Link.simple(5e-5, 1e9)), step_fixed_s=1e-3,
                        ddp_overhead_s=4e-4)  # 25 MiB buckets: one, all-reduced after the backward
    layout = ParallelLayout(data=2)
    plan = simulate(inputs, layout)
    assert plan.gradient_buckets == 1
    compute_s = plan.step_s - plan.exposed_comm_s
    for extra in (3e-4, -3e-4):  # the real loop computes more, or less, than the simulation
        real_comm = plan.exposed_comm_s + 1e-3  # its all-reduce waited 1 ms beyond the model
        real = real_comm + compute_s + extra
        assert data_loop_overhead(real, real_comm, compute_s) == pytest.approx(extra)
        pat = Patterns(split_ways=1, split_s=0.0, stages=1, chunk=1, stage_s=0.0, whole_s=0.0,
                       data_real_s=real, data_real_comm_s=real_comm)
        overhead = data_compute(inputs, pat, world=2)
        assert overhead == pytest.approx(4e-4 + extra)
        fitted = dataclasses.replace(inputs, ddp_overhead_s=overhead)
        wait = exchange_waits(fitted, pat, world=2).data_s
        assert wait == pytest.approx(1e-3)
        final = simulate(dataclasses.replace(fitted, data_wait_s=wait), layout)
        assert final.step_s == pytest.approx(real)
        assert final.exposed_comm_s == pytest.approx(real_comm)
    # the loop's communication not timed: the one-rank loops' own figure stays
    assert data_compute(inputs, dataclasses.replace(pat, data_real_comm_s=0.0), 2) == 4e-4
    # several buckets, whose all-reduces overlap the backward: the loop's in-flight time is not
    # all exposed, so nothing is divided
    small = dataclasses.replace(inputs, bucket_mb=0.0002)
    assert data_compute(small, pat, 2) == 4e-4


def test_with_more_workers_than_cores_the_calibration_still_inverts_the_simulation():
    """The simulation multiplies the overheads and the waits by the workers' share of a core
    (4 workers on 2 cores: 2); what the calibration derives from a real loop at that world is
    divided by it, so the plan still takes the real step."""
    import dataclasses

    from rnnscope.calibrate.machine import data_compute, exchange_waits, split_compute
    from rnnscope.calibrate.pattern import Patterns
    from rnnscope.costs.layout import ParallelLayout
    from rnnscope.plan.alphabeta import Link
    from rnnscope.plan.simulate import PlanInputs, simulate
    from rnnscope.plan.topology import Topology

    shape = RNNShape(input_size=1, hidden=8, layers=4, seq_len=10, batch=8, output_size=1)
    inputs = PlanInputs(shape, DEVICE, Topology(Link.simple(5e-5, 1e9)), chunk=5, cores=2,
                        step_fixed_s=1e-3, split_overhead_s=20e-6, ddp_overhead_s=4e-4)
    world = 4
    plans = {s: simulate(inputs, ParallelLayout.for_strategy(s, world))
             for s in ("data", "pipeline", "hidden_split")}
    real = {s: 1.2 * plan.step_s for s, plan in plans.items()}
    comm = {s: plans[s].exposed_comm_s + 2e-3 for s in ("data", "hidden_split")}
    pat = Patterns(split_ways=4, split_s=0.05, stages=4, chunk=5, stage_s=0.0, whole_s=0.0,
                   split_real_s=real["hidden_split"], split_real_comm_s=comm["hidden_split"],
                   pipe_real_s=real["pipeline"], data_real_s=real["data"],
                   data_real_comm_s=comm["data"])
    fitted = dataclasses.replace(inputs, split_overhead_s=split_compute(inputs, pat, world),
                                 ddp_overhead_s=data_compute(inputs, pat, world))
    waits = exchange_waits(fitted, pat, world)
    final = dataclasses.replace(fitted, split_wait_s=waits.split_s, chunk_wait_s=waits.chunk_s,
                                data_wait_s=waits.data_s)
    for strategy in ("data", "hidden_split"):
        step = simulate(final, ParallelLayout.for_strategy(strategy, world))
        assert step.step_s == pytest.approx(real[strategy]), strategy
        assert step.exposed_comm_s == pytest.approx(comm[strategy]), strategy
    pipe = simulate(final, ParallelLayout.for_strategy("pipeline", world))
    assert pipe.step_s == pytest.approx(real["pipeline"], rel=0.02)
