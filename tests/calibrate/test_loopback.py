"""The gloo micro-benchmark through the Communicator: a real 2-process run on 127.0.0.1."""

import pytest

from rnnscope.calibrate.loopback import measure_network


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_gloo_micro_benchmark_on_loopback():
    measured = measure_network(2, budget_s=0.01, timeout_s=200, sizes=(4, 4096)).network
    assert set(measured) == {"send", "all_reduce", "all_gather", "reduce_scatter", "broadcast"}
    for op, times in measured.items():
        assert set(times) == {8, 4096}  # a whole float32 shard per rank: 4 B moves as 8 B
        assert all(0 < t < 5 for t in times.values()), (op, times)


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_the_calibration_also_times_the_loop_and_the_strategies_code_in_every_process():
    from rnnscope.costs.traffic import RNNShape
    from rnnscope.train.config import load_config

    cfg = load_config(None, ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "6",
                             "--data.samples", "64", "--data.batch_size", "8",
                             "--parallel.chunk", "2"])
    shape = RNNShape(input_size=1, hidden=8, layers=2, seq_len=6, batch=8, output_size=1)
    measured = measure_network(2, budget_s=0.005, timeout_s=200, sizes=(4,),
                               compute_args=(shape, cfg))
    compute, patterns = measured.compute, measured.patterns
    assert compute.flops_per_s > 0 and len(compute.points) == 5
    assert patterns.split_ways == 2 and patterns.stages == 2 and patterns.chunk == 2
    for key in ("split_s", "stage_s", "whole_s", "ddp_s", "plain_s", "split_real_s",
                "pipe_real_s"):
        assert 0 < getattr(patterns, key) < 1, key


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_the_real_exchange_is_the_median_over_several_process_groups(monkeypatch):
    """One slow group (the odd one out) must not move the figure the waits are fitted from."""
    import datetime

    import torch.distributed as dist

    from rnnscope.calibrate import loopback
    from rnnscope.parallel.comm import Communicator

    figures = iter([0.50, 0.90, 0.52])  # the second group is slow
    groups = []

    def fake_time_exchanges(shape, cfg, comm, repeats, sync, slowest):
        groups.append(comm.group)
        return next(figures)

    monkeypatch.setattr(loopback, "time_exchanges", fake_time_exchanges)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{loopback.free_port()}", rank=0,
                            world_size=1, timeout=datetime.timedelta(seconds=30))
    try:
        comm = Communicator()
        split_s = loopback.exchange_seconds((None, None), comm, slowest=None, groups=3)
    finally:
        dist.destroy_process_group()
    assert split_s == 0.52
    assert groups[0] is None and len({id(g) for g in groups}) == 3  # the calibration's own, then two new
