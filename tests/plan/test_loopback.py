"""The gloo micro-benchmark through the Communicator: a real 2-process run on 127.0.0.1."""

import pytest

from rnnscope.plan.loopback import measure_network


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_gloo_micro_benchmark_on_loopback():
    measured = measure_network(2, budget_s=0.01, timeout_s=200, sizes=(4, 4096))
    assert set(measured) == {"send", "all_reduce", "all_gather", "reduce_scatter", "broadcast"}
    for op, times in measured.items():
        assert set(times) == {8, 4096}  # a whole float32 shard per rank: 4 B moves as 8 B
        assert all(0 < t < 5 for t in times.values()), (op, times)
